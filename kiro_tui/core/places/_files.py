"""File handling every place format shares.

Reading a place never writes to it and never hangs: files are opened non-blocking (a FIFO
cannot stall us), must be regular, and are read only up to a cap. A JSON document keeps its
text so that a rewrite changes only the values kiro-tui owns: every other byte (unknown
fields, key order, spacing, escapes) stays exactly as the tool wrote it. Writes are atomic:
a temporary file in the same folder, fsync, rename.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from kiro_tui.core.paths import make_private_dirs
from kiro_tui.core.places.base import PlaceError, inode_mtime_size

try:  # POSIX: an advisory lock so two kiro-tui processes never interleave a read-modify-write
    import fcntl
except ImportError:  # pragma: no cover - Windows: the atomic rename is all there is
    fcntl = None  # type: ignore[assignment]  # (no module there)

MAX_PLACE_BYTES = 1024 * 1024
"""No token file comes near this; a bigger file is the wrong file, and we do not read it all."""
PRIVATE_FILE_MODE = 0o600
"""Every file holding a token, after kiro-tui wrote it, whatever its mode was before."""
TEMP_SUFFIX = ".kiro-tui.tmp"
"""Not `.json`: tools that watch or merge `*.json` in the folder never see a half-written file."""
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_LOCK_POLL = 0.02
_deferred = threading.local()
"""`folders`: the folders this thread's atomic writes left to sync, inside `folder_syncs_deferred`."""


class PlaceMissing(PlaceError):
    """The place is not there (or is a link to nothing): a reader answers None, a writer MISSING."""


class PlaceLocked(PlaceError):
    """Another kiro-tui process held the place's lock past the timeout."""


def absolute(path: Path) -> Path:
    """One spelling of a place's path: absolute, `~` expanded, symbolic links kept (a link is
    what the tool reads, and the Kiro IDE's file must not become one by our hand)."""
    return Path(os.path.abspath(Path(path).expanduser()))


class UnsafeToWrite(PlaceError):
    """Writing a token here could hand it to someone else (a link, a folder others can write)."""


def refuse_link(path: Path, what: str) -> None:
    """A token is never written through a symbolic link: one planted in a shared folder would
    hand it to whoever planted it (and keep their file's mode)."""
    if os.path.islink(path):
        raise UnsafeToWrite(f"{what} {path} is a symbolic link (to {os.readlink(path)}); kiro-tui never writes a token "
                            "through a link: link kiro-tui to the file itself, or replace the link with the file")


def unsafe_folder(folder: Path) -> str | None:
    """Why no token may be written into `folder`, if so: someone other than the person can
    create, swap or plant links in it. A sticky folder of the person's own is fine."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows: no such modes
        return None
    try:
        st = os.stat(folder)
    except OSError:
        return None  # the write itself then fails, naming what is wrong
    me, mode = os.geteuid(), st.st_mode
    if mode & stat.S_ISVTX and st.st_uid == me:
        return None
    if st.st_uid not in (me, 0):
        who = f"belongs to another user (uid {st.st_uid})"
    elif mode & stat.S_IWOTH:
        who = "is writable by every user" + (" (sticky, but not yours)" if mode & stat.S_ISVTX else "")
    elif mode & stat.S_IWGRP and st.st_gid != os.getegid():
        who = f"is writable by group {st.st_gid}"
    else:
        return None
    return (f"the folder {folder} {who}, who could swap the file for a link to one they can read; kiro-tui writes "
            "no token there: keep the file in a folder only you can write (chmod o-w,g-w)")


@contextmanager
def open_place(path: Path, what: str, follow: bool = True) -> Iterator[tuple[int, os.stat_result]]:
    """A read-only descriptor on a regular file, with its stat; every way it can fail is one
    PlaceError naming the file and what to do. `follow=False`: a symbolic link is refused."""
    try:
        fd = os.open(path, _OPEN_FLAGS | (0 if follow else getattr(os, "O_NOFOLLOW", 0)))
    except FileNotFoundError as exc:
        if os.path.islink(path):
            raise PlaceMissing(f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                               "fix the link or point kiro-tui at the real file") from exc
        raise PlaceMissing(f"{what} {path} does not exist; check the path") from exc
    except PermissionError as exc:
        raise PlaceError(f"cannot read {what} {path}: permission denied; "
                         "run kiro-tui as the user who owns it") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            refuse_link(path, what)
        if exc.errno == errno.ELOOP:
            raise PlaceError(f"cannot read {what} {path}: it is a symbolic link that loops; "
                             "fix the link or point kiro-tui at the real file") from exc
        if exc.errno == errno.ENOTDIR:
            raise PlaceMissing(f"{what} {path} does not exist (a part of the path is a file); check the path") from exc
        raise PlaceError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise PlaceError(f"{path} is a folder, not {what}; pass the file itself")
        if not stat.S_ISREG(st.st_mode):
            raise PlaceError(f"{path} is not a regular file (a pipe, device or socket), so not {what}; "
                             "pass the file itself")
        yield fd, st
    finally:
        os.close(fd)


def read_capped(fd: int, path: Path, what: str, st: os.stat_result) -> bytes:
    """The whole file, refusing one larger than MAX_PLACE_BYTES (without reading it all)."""
    too_big = PlaceError(f"{what} {path} is larger than {MAX_PLACE_BYTES // (1024 * 1024)} MB, far more than "
                         "any token file; check that this is the right file")
    if st.st_size > MAX_PLACE_BYTES:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= MAX_PLACE_BYTES:
            chunk = os.read(fd, MAX_PLACE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise PlaceError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if size > MAX_PLACE_BYTES:
        raise too_big
    return b"".join(chunks)


@dataclass
class JsonDoc:
    """A JSON file as read: its parsed value and its text, so a rewrite can change only the
    values it means to (see `with_values`)."""

    path: Path
    text: str
    data: object
    st: os.stat_result
    _offset: int = field(default=0, repr=False)  # 1 after a byte order mark

    @property
    def mode(self) -> int:
        return stat.S_IMODE(self.st.st_mode)

    @property
    def mapping(self) -> dict[str, object]:
        """The JSON object at the top (what every format holds); anything else is refused by name."""
        if not isinstance(self.data, dict):
            raise PlaceError(f"{self.path} holds a JSON {json_type(self.data)}, not an object; "
                             "check that this is the right file")
        return self.data

    def with_values(self, values: dict[str, object]) -> bytes:
        """The document with these top-level members set: an existing member's value is
        replaced where it stands (every occurrence, if the key is repeated), a new one is added
        at the end in the document's own spacing. Every other byte is kept."""
        members, layout = _members(self.text, self._offset)
        edits: list[tuple[int, int, str]] = []
        added = []
        for key, value in values.items():
            encoded = json.dumps(value)
            if key in members:
                edits.extend((start, end, encoded) for start, end in members[key])
            else:
                added.append(json.dumps(key) + layout.colon + encoded)
        if added:
            joined = ("," + layout.lead).join(added)
            text = ("," + layout.lead + joined) if layout.has_members else (layout.lead + joined)
            edits.append((layout.insert_at, layout.insert_at, text))
        text = self.text
        for start, end, new in sorted(edits, key=lambda edit: edit[0], reverse=True):
            text = text[:start] + new + text[end:]
        return text.encode("utf-8")


@dataclass
class _Layout:
    has_members: bool
    insert_at: int
    lead: str  # what comes before the first key: "" or "\n  "
    colon: str  # ":" or ": "


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index


def _members(text: str, offset: int) -> tuple[dict[str, list[tuple[int, int]]], _Layout]:
    """Where each top-level member's value sits in a document already known to be a valid
    JSON object: {key: [(start, end), ...]} and how its members are spaced."""
    spans: dict[str, list[tuple[int, int]]] = {}
    index = _skip(text, offset) + 1  # past "{"
    after_brace = index
    index = _skip(text, index)
    if text[index] == "}":
        return spans, _Layout(False, after_brace, "", ":")
    lead, colon = text[after_brace:index], ":"
    while True:
        key, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]  # in CPython, not typeshed
        key_end = index
        index = _skip(text, _skip(text, index) + 1)  # past ":"
        if not spans:
            colon = text[key_end:index]
        _, end = _DECODER.raw_decode(text, index)
        spans.setdefault(key, []).append((index, end))
        index = _skip(text, end)
        if text[index] == "}":
            return spans, _Layout(True, end, lead, colon)
        index = _skip(text, index + 1)  # past ","


def parse_json(raw: bytes, path: Path, what: str, st: os.stat_result) -> JsonDoc:
    """Decode and parse a place file; one clean PlaceError for every way it can be broken."""
    if not raw.strip():
        raise PlaceError(f"{what} {path} is empty; remove it or let its tool write it again")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlaceError(f"{what} {path} is not UTF-8 text (a byte at offset {exc.start} is not); "
                         "check that this is the right file") from exc
    offset = 1 if text.startswith("\ufeff") else 0
    try:
        data = json.loads(text[offset:])
    except json.JSONDecodeError as exc:
        raise PlaceError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                         "fix it or let its tool write it again") from exc
    except (ValueError, RecursionError) as exc:  # a number of 4,300+ digits; nesting past the stack
        raise PlaceError(f"{what} {path} is not a token file ({type(exc).__name__} while reading its JSON); "
                         "check that this is the right file") from exc
    return JsonDoc(path, text, data, st, offset)


def read_json(path: Path, what: str) -> JsonDoc:
    with open_place(path, what) as (fd, st):
        raw = read_capped(fd, path, what, st)
    return parse_json(raw, path, what, st)


def json_type(value: object) -> str:
    """A JSON value's type in JSON's words, for messages."""
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", type(None): "null", bytes: "blob"}.get(type(value), "number")


@contextmanager
def locked_json(path: Path, what: str, timeout: float) -> Iterator[JsonDoc]:
    """The document at `path`, read under an exclusive advisory lock held until the block
    ends, so two kiro-tui processes never both rewrite it from the same old copy. The lock is
    on the file itself (no lock file lands in the tool's folder); a file replaced while we
    waited is opened again. It is opened to be rewritten: never through a symbolic link."""
    refuse_link(path, what)
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        with open_place(path, what, follow=False) as (fd, st):
            _lock(fd, path, deadline)
            try:
                current = os.stat(path)
            except FileNotFoundError as exc:
                raise PlaceMissing(f"{what} {path} was removed while kiro-tui waited to write it") from exc
            if (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
                continue  # another writer renamed a new file into place: lock that one
            yield parse_json(read_capped(fd, path, what, st), path, what, st)
            return


def _lock(fd: int, path: Path, deadline: float) -> None:
    if fcntl is None:  # pragma: no cover - Windows
        return
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PlaceLocked(f"{path} stayed locked by another kiro-tui process") from None
            time.sleep(min(_LOCK_POLL, remaining))


def atomic_write(path: Path, data: bytes, mode: int, *, exclusive: bool = False,
                 owner: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """Put `data` at `path` all at once: a temporary file in the same folder, fsynced, then
    renamed over it (`exclusive`: linked into place, failing if a file appeared there). A
    reader sees the old file or the new one, never half of either. Never into a folder others
    can write (`unsafe_folder`); the rename replaces a link at `path`, never follows it.
    Returns the new file's (inode, mtime, size) as written, before anyone else could touch it."""
    refusal = unsafe_folder(path.parent)
    if refusal:
        raise UnsafeToWrite(refusal)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    temp = Path(temp_name)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            if owner is not None and hasattr(os, "fchown"):
                with suppress(OSError):  # only root may give a file away; otherwise it is ours already
                    os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
            os.chmod(temp, mode)
        if exclusive:
            _link_into_place(temp, path)
        else:
            os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
    folders: dict[Path, None] | None = getattr(_deferred, "folders", None)
    if folders is None:
        _sync_folder(path.parent)
    else:
        folders[path.parent] = None
    return inode_mtime_size(st)


@contextmanager
def folder_syncs_deferred() -> Iterator[None]:
    """Within the block, this thread's `atomic_write`s leave the fsync of their folder (which
    makes the rename durable) to the block's end, where each folder is synced once. Why: each
    fsync waits for a journal commit, and the first one at the end commits every rename before
    it, so the others find nothing left to wait for (on ext4: several places written in a row
    cost one commit for their renames, not one each). What is written inside is durable only
    once the block has ended: report it written after that."""
    if getattr(_deferred, "folders", None) is not None:  # an outer block syncs them
        yield
        return
    folders: dict[Path, None] = {}
    _deferred.folders = folders
    try:
        yield
    finally:
        _deferred.folders = None
        for folder in folders:
            _sync_folder(folder)


def _link_into_place(temp: Path, path: Path) -> None:
    try:
        os.link(temp, path)
    except FileExistsError:
        raise PlaceError(f"{path} already exists; kiro-tui does not overwrite it: link it instead") from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise PlaceError(f"{path} already exists; kiro-tui does not overwrite it: link it instead") from None
        os.replace(temp, path)
        return
    temp.unlink()


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where folders cannot be opened."""
    with suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def list_folder(folder: Path, what: str) -> list[Path]:
    """The entries of a folder (sorted), or a clean PlaceError when it cannot be listed."""
    try:
        return sorted(folder / name for name in os.listdir(folder))
    except PermissionError as exc:
        raise PlaceError(f"cannot list {folder} for {what}: permission denied; "
                         "run kiro-tui as the user who owns it") from exc
    except OSError as exc:
        raise PlaceError(f"cannot list {folder} for {what}: {exc.strerror or exc}") from exc


def is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def wants_folder(path: Path) -> bool:
    """A folder, or a path that does not exist yet and has no suffix: `create` makes a file in it."""
    return is_folder(path) or (not os.path.lexists(path) and not path.suffix)


def is_present(path: Path) -> bool:
    """Something is at `path` (a file, or a link, even a broken one) that is not a folder:
    worth handing to a reader, which says what is wrong with it if anything is."""
    return os.path.lexists(path) and not is_folder(path)


def prepare_folder(folder: Path) -> None:
    """Create a missing folder for a new place file, and every missing parent, private (0700)
    like the tools make theirs."""
    try:
        make_private_dirs(folder)
    except OSError as exc:
        raise PlaceError(f"cannot create the folder {folder}: {exc.strerror or exc}") from exc


STALE_TEMP_SECONDS = 300.0
"""A write takes milliseconds: a temporary copy this old was left by a process that was killed."""


def remove_stale_temps(folders: Iterable[Path], older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the temporary copies of token files (`*.kiro-tui.tmp`, kiro-tui's own naming) a
    killed kiro-tui left in these folders: regular files of the person's own, older than
    `older_than` seconds (a younger one may be another process's write under way)."""
    removed = []
    now = time.time()
    me = os.geteuid() if hasattr(os, "geteuid") else None
    for folder in set(folders):
        try:
            names = [name for name in os.listdir(folder) if name.startswith(".") and name.endswith(TEMP_SUFFIX)]
        except OSError:
            continue
        for name in names:
            path = folder / name
            with suppress(OSError):
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and (me is None or st.st_uid == me) and now - st.st_mtime > older_than:
                    path.unlink()
                    removed.append(path)
    return removed


def resolved(path: Path) -> Path:
    """The one spelling of a path: absolute, symbolic links and `..` resolved (as far as they exist)."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # a loop: reported by the file check
        return Path(path).expanduser().absolute()
