"""config.toml: a few settings, each checked for type and range, unknown keys refused by name."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path

from kiro_tui.core.errors import ConfigError
from kiro_tui.core.models import Mode


@dataclass(frozen=True)
class Settings:
    refresh_window: int = 600
    """Seconds before expiry at which an account is refreshed (and shown as expiring)."""
    concurrency: int = 8
    """How many refreshes may run at once."""
    import_mode: str = Mode.SYNC.value
    """Mode given to accounts newly imported from kiro-cli: sync, follow or own."""
    kiro_cli_db: str | None = None
    """kiro-cli's data.sqlite3, when it is not in the usual place."""
    watch_interval: float = 3.0
    """Seconds between cheap checks of kiro-cli's database for changes."""
    bell: bool = False
    """Ring the terminal bell when an account needs a login."""
    fetch_usage: bool = True
    """Fetch every account's quota in the background (a few calls per watch pass)."""
    quota_warning: float = 0.9
    """Share of the monthly limit from which an account shows as "quota low"."""
    notify: tuple[str, ...] = ("desktop",)
    """How a person hears that a login needs them: any of desktop, command, webhook ([] for none)."""
    notify_command: tuple[str, ...] | None = None
    """A command (argv list, no shell) run on each notice; {id} {label} {status} {message} filled in."""
    notify_webhook: str | None = None
    """An https URL (or http to this machine) that receives each notice as a JSON POST."""

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.refresh_window)

    @property
    def default_import_mode(self) -> Mode:
        return Mode(self.import_mode)


_RANGES: dict[str, tuple[float, float]] = {
    "refresh_window": (0, 86_400),
    "concurrency": (1, 256),
    "watch_interval": (0.2, 3_600),
    "quota_warning": (0.01, 1.0),
}


def load_settings(path: Path) -> Settings:
    """Settings from `path`, or the defaults when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix or delete it") from exc
    return settings_from_mapping(data, str(path))


def settings_from_mapping(data: dict[str, object], where: str) -> Settings:
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, object] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"config file {where}: unknown key {key!r}; known keys are {', '.join(sorted(known))}"
            )
        checked = _check(key, value, Settings.__dataclass_fields__[key].default, where)
        values[key] = tuple(checked) if isinstance(checked, list) else checked
    channels = values.get("notify", ())
    assert isinstance(channels, tuple)  # checked above
    if "command" in channels and not values.get("notify_command"):
        raise ConfigError(f"config file {where}: notify names \"command\" but notify_command is not set; "
                          'set it (e.g. notify_command = ["notify-send", "{label}", "{message}"])')
    if "webhook" in channels and not values.get("notify_webhook"):
        raise ConfigError(f"config file {where}: notify names \"webhook\" but notify_webhook is not set")
    return Settings(**values)  # type: ignore[arg-type]  # each value was checked against its field above


def _check(key: str, value: object, default: object, where: str) -> object:
    expected = _expected(key, value, default)
    if expected:
        raise ConfigError(f"config file {where}: {key} must be {expected}, not {value!r}")
    return value


def _expected(key: str, value: object, default: object) -> str | None:
    """What `value` should have been, or None when it is fine."""
    if key == "import_mode":
        return None if value in {m.value for m in Mode} else "one of sync, follow, own"
    if key == "kiro_cli_db":
        return None if isinstance(value, str) and value else "a file path string"
    if key == "notify":
        channels = ("desktop", "command", "webhook")
        fine = isinstance(value, list) and all(v in channels for v in value)
        return None if fine else f"a list of {', '.join(channels)} (or [] for none)"
    if key == "notify_command":
        fine = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
        return None if fine else 'a list of words, the program first (no shell), e.g. ["notify-send", "{label}"]'
    if key == "notify_webhook":
        return None if isinstance(value, str) and _webhook_ok(value) else "an https:// URL (or http:// to 127.0.0.1)"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "a number"
    if isinstance(default, int) and not isinstance(value, int):
        return "a whole number"
    low, high = _RANGES[key]
    return None if low <= value <= high else f"between {low:g} and {high:g}"


def _webhook_ok(url: str) -> bool:
    """https anywhere; plain http only to this machine (a notice must not cross a network in clear)."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme == "https":
        return bool(host)
    if parts.scheme != "http":
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
