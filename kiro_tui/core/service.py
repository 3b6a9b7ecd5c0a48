"""`kiro-tui watch` as a background service: a systemd user unit or a launchd agent.

What is written carries no secret and no environment but what `watch` needs to find the same
store and endpoints (XDG folders, kiro-gateway's file, the certificate bundle, a proxy without
credentials) when they are set in the shell that installs it. A file at the unit's path that
kiro-tui did not write is never overwritten or removed without `force`. The service manager is
driven through its own command (`systemctl --user`, `launchctl`) found on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from kiro_tui.core import paths
from kiro_tui.core.errors import KiroTuiError

SYSTEMD, LAUNCHD = "systemd", "launchd"
MANAGERS = (SYSTEMD, LAUNCHD)
UNIT_NAME = "kiro-tui.service"
LAUNCHD_LABEL = "io.github.kiro-tui.watch"
MARKER = "# Written by `kiro-tui service install`; `kiro-tui service uninstall` removes it."
MANAGER_TIMEOUT = 30.0
WATCH_ENV = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "KIRO_CREDS_FILE",
             "KIRO_TUI_ENDPOINT_URL", "SSL_CERT_FILE", "SSL_CERT_DIR")
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
BY_HAND = "kiro-tui watch"


class ServiceError(KiroTuiError):
    """The service could not be installed, removed or asked about (exit 1)."""


class NoManager(ServiceError):
    """No service manager answers here (a container, WSL without systemd)."""


@dataclass(frozen=True)
class ServiceState:
    manager: str | None
    unit_path: Path | None
    installed: bool
    enabled: bool

    def to_json(self) -> dict[str, object]:
        return {"manager": self.manager, "unit_path": str(self.unit_path) if self.unit_path else None,
                "installed": self.installed, "enabled": self.enabled}


@dataclass(frozen=True)
class InstallReport:
    manager: str
    unit_path: Path
    started: bool
    replaced: bool
    left_out: list[str]
    """Environment variables not written because they hold a secret (a proxy with a password)."""


# ------------------------------------------------------------------ which manager


def detect_manager() -> str | None:
    """systemd on Linux when `systemctl --user` answers; launchd on macOS; else None."""
    if sys.platform == "darwin":
        return LAUNCHD if shutil.which("launchctl") else None
    if sys.platform.startswith("linux") and shutil.which("systemctl"):
        try:
            done = subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True,
                                  timeout=MANAGER_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return SYSTEMD if done.returncode == 0 else None
    return None


def choose_manager(wanted: str | None) -> str:
    """The manager asked for, or the one detected; `NoManager` naming what to run instead."""
    if wanted:
        return wanted
    found = detect_manager()
    if found is None:
        raise NoManager(f"no service manager answers here (no systemd user session, no launchd); "
                        f"run `{BY_HAND}` by hand (in tmux, or your own init) to keep accounts fresh")
    return found


def unit_path(manager: str) -> Path:
    if manager == SYSTEMD:
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config) / "systemd" / "user" / UNIT_NAME
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


# ------------------------------------------------------------------ what is written


def watch_command() -> list[str]:
    """The absolute path of the `kiro-tui` running now (so a virtualenv's works) and `watch`."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name in ("kiro-tui", "kiro-tui.exe") and argv0.exists():
        return [os.path.abspath(argv0), "watch"]
    beside = Path(sys.executable).parent / "kiro-tui"
    if beside.exists():
        return [str(beside), "watch"]
    return [os.path.abspath(sys.executable), "-m", "kiro_tui", "watch"]


def watch_environment(environ: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """What `watch` needs from this shell, and the names left out because they hold a password."""
    environ = dict(os.environ) if environ is None else environ
    kept = {name: environ[name] for name in WATCH_ENV if environ.get(name)}
    left_out = []
    for name in PROXY_ENV:
        value = environ.get(name)
        if not value:
            continue
        if "@" in (urlsplit(value if "://" in value else f"//{value}").netloc or ""):
            left_out.append(name)
        else:
            kept[name] = value
    return kept, left_out


def _systemd_word(word: str) -> str:
    """One argument of ExecStart= or one Environment= assignment, quoted as systemd reads it."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(command: list[str], environment: dict[str, str]) -> str:
    lines = [
        MARKER,
        "[Unit]",
        "Description=kiro-tui: keep AWS Kiro logins fresh",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_systemd_word(word) for word in command),
        *(f"Environment={_systemd_word(f'{name}={value}')}" for name, value in sorted(environment.items())),
        "Restart=on-failure",
        "RestartSec=10",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def launchd_plist(command: list[str], environment: dict[str, str], log_dir: Path) -> bytes:
    agent: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": command,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # again after a crash, not after a clean stop
        "ProcessType": "Background",
        "StandardOutPath": str(log_dir / "watch.out.log"),
        "StandardErrorPath": str(log_dir / "watch.err.log"),
    }
    if environment:
        agent["EnvironmentVariables"] = dict(sorted(environment.items()))
    import plistlib  # (with its XML parser: loaded only where a plist is written or read)

    return plistlib.dumps(agent)


def written_by_us(manager: str, path: Path) -> bool:
    """Whether the file at the unit's path is one `service install` wrote."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if manager == SYSTEMD:
        return data.decode("utf-8", "replace").startswith(MARKER)
    import plistlib

    try:
        agent = plistlib.loads(data)
    except Exception:  # noqa: BLE001 - plistlib raises several types on a file that is not a plist
        return False
    return isinstance(agent, dict) and agent.get("Label") == LAUNCHD_LABEL


# ------------------------------------------------------------------ the manager's command


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=MANAGER_TIMEOUT)
    except FileNotFoundError:
        raise ServiceError(f"`{argv[0]}` is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"`{' '.join(argv)}` did not answer in {MANAGER_TIMEOUT:g} s") from None
    if check and done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise ServiceError(f"`{' '.join(argv)}` failed (exit {done.returncode})"
                           + (f": {why[-1]}" if why else ""))
    return done


def _systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["systemctl", "--user", *args], check)


def _gui_domain() -> str:
    return f"gui/{os.getuid()}"


# ------------------------------------------------------------------ install / uninstall / state


def install(manager: str, *, start: bool = True, force: bool = False,
            environ: dict[str, str] | None = None) -> InstallReport:
    path = unit_path(manager)
    replaced = path.exists()
    if replaced and not force and not written_by_us(manager, path):
        raise ServiceError(f"{path} exists and was not written by kiro-tui; not overwriting it "
                           "(pass --force to replace it)")
    environment, left_out = watch_environment(environ)
    command = watch_command()
    if manager == SYSTEMD:
        content = systemd_unit(command, environment).encode()
    else:
        paths.make_private_dirs(paths.log_dir())
        content = launchd_plist(command, environment, paths.log_dir())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(content)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    if start:
        if manager == SYSTEMD:
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", UNIT_NAME)
        else:
            _run(["launchctl", "bootout", f"{_gui_domain()}/{LAUNCHD_LABEL}"], check=False)  # an older copy
            _run(["launchctl", "bootstrap", _gui_domain(), str(path)])
    return InstallReport(manager, path, start, replaced, left_out)


def uninstall(manager: str, *, force: bool = False) -> Path | None:
    """Stop and remove the service; the path removed, or None when nothing was installed."""
    path = unit_path(manager)
    if not path.exists():
        return None
    if not force and not written_by_us(manager, path):
        raise ServiceError(f"{path} was not written by kiro-tui; not removing it (pass --force to remove it)")
    if manager == SYSTEMD:
        _systemctl("disable", "--now", UNIT_NAME, check=False)  # not enabled (--no-start) is fine
        path.unlink()
        _systemctl("daemon-reload")
    else:
        _run(["launchctl", "bootout", f"{_gui_domain()}/{LAUNCHD_LABEL}"], check=False)
        path.unlink()
    return path


def state(manager: str | None) -> ServiceState:
    """Whether the unit is installed and enabled (asked of the manager, quietly)."""
    if manager is None:
        return ServiceState(None, None, False, False)
    path = unit_path(manager)
    installed = path.exists()
    enabled = False
    if installed:
        try:
            if manager == SYSTEMD:
                enabled = _systemctl("is-enabled", UNIT_NAME, check=False).stdout.strip() == "enabled"
            else:
                enabled = _run(["launchctl", "print", f"{_gui_domain()}/{LAUNCHD_LABEL}"], check=False).returncode == 0
        except ServiceError:
            enabled = False
    return ServiceState(manager, path, installed, enabled)
