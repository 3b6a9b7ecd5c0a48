"""Where kiro-tui and kiro-cli keep their files, by platformdirs (honours XDG_* on Linux)."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "kiro-tui"


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
