"""Where kiro-tui and kiro-cli keep their files, by platformdirs (honours XDG_* on Linux)."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "kiro-tui"
PRIVATE_DIR_MODE = 0o700


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def store_file() -> Path:
    return data_dir() / "accounts.db"


def kiro_cli_db_candidates() -> list[Path]:
    """kiro-cli's database, then Amazon Q CLI's legacy one (`dirs::data_local_dir()` in Rust).

    `roaming=False` gives %LOCALAPPDATA% on Windows, which is what the `dirs` crate uses.
    """
    return [
        Path(platformdirs.user_data_dir(name, appauthor=False, roaming=False)) / "data.sqlite3"
        for name in ("kiro-cli", "amazon-q")
    ]


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and every missing parent 0700.

    `Path.mkdir(parents=True)` gives the parents the umask's mode ($XDG_STATE_HOME/kiro-tui came
    out 0755). Folders that already exist are left as they are: they need not be kiro-tui's."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        try:
            candidate.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # another kiro-tui process made it first: not ours to change
        candidate.chmod(PRIVATE_DIR_MODE)  # ours: exactly 0700, even under an odd umask
