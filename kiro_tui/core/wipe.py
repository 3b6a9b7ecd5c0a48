"""What kiro-tui keeps on disk, and forgetting all of it (`kiro-tui paths`, `kiro-tui forget --all`).

kiro-tui's own folders only: its data folder (the store with every token, the rescue copies of
tokens the store would not take, anything else it keeps there), its log folder and its config
file. Never kiro-cli's database, and never a copy it linked or exported into another tool's
file: those belong to the tools that read them, and are listed so a person can decide.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kiro_tui.core import paths


@dataclass(frozen=True)
class OwnPath:
    name: str
    """config, data, store, logs: the key in `kiro-tui paths --json`."""
    path: Path
    holds: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "path": str(self.path), "exists": self.path.exists(), "holds": self.holds}


def own_paths() -> list[OwnPath]:
    """Every file and folder kiro-tui itself keeps (the store is inside the data folder)."""
    return [
        OwnPath("config", paths.config_file(), "settings (config.toml)"),
        OwnPath("data", paths.data_dir(), "the store, rescue copies of tokens; every secret kiro-tui keeps"),
        OwnPath("store", paths.store_file(), "every account and its tokens (SQLite)"),
        OwnPath("logs", paths.log_dir(), "the log files (tokens masked)"),
    ]


def _forgettable() -> list[Path]:
    return [paths.data_dir(), paths.log_dir(), paths.config_file()]


def to_forget() -> list[Path]:
    """What `forget --all` deletes, as it stands now: whichever of kiro-tui's own folders and
    config file exist (the data folder holds the store; on macOS and Windows the config too)."""
    found: list[Path] = []
    for path in _forgettable():
        if (path.exists() or path.is_symlink()) and not any(path.is_relative_to(f) for f in found):
            found.append(path)
    return found


def forget(targets: list[Path]) -> list[Path]:
    """Delete these (from `to_forget`), then kiro-tui's own parent folders left empty. Returns
    what was deleted. Anything but kiro-tui's own folders and config file is refused: a
    mistake here must not reach anything else."""
    own = _forgettable()
    deleted = []
    for path in targets:
        if path not in own:
            raise ValueError(f"{path} is not one of kiro-tui's own folders")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        deleted.append(path)
        parent = path.parent  # ~/.local/state/kiro-tui once its log folder is gone; ~/.config/kiro-tui
        if parent.name == paths.APP_NAME and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    return deleted
