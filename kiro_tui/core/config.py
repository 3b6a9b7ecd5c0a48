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
        values[key] = _check(key, value, Settings.__dataclass_fields__[key].default, where)
    return Settings(**values)  # type: ignore[arg-type]


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
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "a number"
    if isinstance(default, int) and not isinstance(value, int):
        return "a whole number"
    low, high = _RANGES[key]
    return None if low <= value <= high else f"between {low:g} and {high:g}"
