"""Rescue copies of tokens the store would not take: the only live copy of a rotated login.

A copy counts only once it is on disk and read back the same (fsynced file and folder, mode
0600, a regular file of ours). It goes to the first folder that takes it: beside the store
(`accounts.db.rescue/`), else kiro-tui's state folder, else its runtime folder (the store's
file system is often the full one; the others usually are not). The refresher tries the
account's own places last (core/refresh.py), in their tools' formats.

Every start reads the copies back (`load`), and a copy is removed from every folder as soon
as the store holds its token (`remove`); one the store already went past is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import platformdirs

from kiro_tui.core.paths import APP_NAME, make_private_dirs

FILE_MODE = 0o600


class RescueNotVerified(OSError):
    """The file was written but does not read back as written."""


def beside_store(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".rescue")


def folders(store_path: Path) -> list[Path]:
    """Where rescue copies of this store's tokens may be, in the order they are tried. The
    state and runtime folders are shared by every store: a subfolder per store (by its path)."""
    key = hashlib.sha256(str(Path(store_path).absolute()).encode()).hexdigest()[:16]
    found = [beside_store(store_path),
             Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)) / "rescue" / key]
    if os.environ.get("XDG_RUNTIME_DIR") or not sys.platform.startswith("linux"):  # never platformdirs' /tmp guess
        runtime = Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
        if runtime.parent.is_dir():  # made by the login session, not by us
            found.append(runtime / "rescue" / key)
    return found


def write_verified(folder: Path, name: str, data: dict[str, object]) -> Path:
    """Write `data` as `folder/name` durably and prove it: read back equal, 0600, a regular file.
    Raises OSError (RescueNotVerified when it does not read back); leaves no temporary file."""
    make_private_dirs(folder)
    target = folder / name
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    payload = json.dumps(data).encode("utf-8")
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
        try:
            written = 0
            while written < len(payload):
                written += os.write(fd, payload[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    _sync_folder(folder)
    info = os.stat(target, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != FILE_MODE:
        raise RescueNotVerified(f"{target} is not a private regular file (mode {stat.S_IMODE(info.st_mode):04o})")
    with open(target, "rb") as handle:
        if handle.read() != payload:
            raise RescueNotVerified(f"{target} does not read back as written")
    return target


def save(store_path: Path, account_id: str, data: dict[str, object]) -> tuple[Path | None, list[str]]:
    """Write a verified copy into the first folder that takes it. Returns (its path or None,
    why each folder tried before it failed)."""
    failures: list[str] = []
    for folder in folders(store_path):
        try:
            return write_verified(folder, f"{account_id}.json", {**data, "store": str(store_path)}), failures
        except OSError as exc:
            failures.append(f"{folder}: {exc.strerror or exc}")
    return None, failures


def rewrite(path: Path, store_path: Path, data: dict[str, object]) -> None:
    """Replace the copy at `path` (one `save` wrote), verified as `save` does. Raises OSError."""
    write_verified(path.parent, path.name, {**data, "store": str(store_path)})


def is_copy(store_path: Path, path: Path) -> bool:
    """Whether `path` is a rescue copy of this store's (not a tool's file a token was rescued into)."""
    return path.parent in folders(store_path)


def load(store_path: Path) -> list[tuple[Path, dict[str, object] | None, str | None]]:
    """Every rescue copy of this store's tokens: (path, data, None), or (path, None, why) for one
    that cannot be read (it is left where it is)."""
    found: list[tuple[Path, dict[str, object] | None, str | None]] = []
    for folder in folders(store_path):
        try:
            files = sorted(folder.glob("*.json"))
        except OSError:
            continue
        for path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                found.append((path, None, str(exc)))
                continue
            if data.get("store", str(store_path)) != str(store_path):
                continue  # another store's (a hash collision of two paths): not ours to use
            found.append((path, data, None))
    return found


def pending(store_path: Path) -> bool:
    """Whether any rescue copy of this store's tokens is waiting (cheap: no file is read)."""
    for folder in folders(store_path):
        try:
            if any(folder.glob("*.json")):
                return True
        except OSError:
            continue
    return False


def remove(store_path: Path, account_id: str) -> list[str]:
    """Delete this account's rescue copies in every folder; returns the ones that could not be."""
    stuck = []
    for folder in folders(store_path):
        path = folder / f"{account_id}.json"
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            stuck.append(f"{path}: {exc.strerror or exc}")
    return stuck


def _sync_folder(folder: Path) -> None:
    """The rename is durable only once the folder is (POSIX); not possible on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
