"""Opening another tool's SQLite database strictly read-only.

`mode=ro` sees rows still in the -wal file but can never write the database; a busy timeout
rides out the tool's own writes. Every failure is one PlaceError naming the file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.places._files import open_place
from kiro_tui.core.places.base import PlaceError

SQLITE_HEADER = b"SQLite format 3\x00"
_HEADER_SIZE = 100
DEFAULT_BUSY_TIMEOUT = 5.0


def _text(value: bytes) -> str:
    """Text columns as str; bytes that are not UTF-8 become unpaired surrogates, which the
    field reader names, so one bad row is skipped instead of failing the whole query."""
    return value.decode("utf-8", "surrogateescape")


def read_header(path: Path, what: str) -> bytes:
    """The database header; a clean PlaceError unless `path` is a readable SQLite file."""
    with open_place(path, what) as (fd, _):
        try:
            header = os.read(fd, _HEADER_SIZE)
        except OSError as exc:
            raise PlaceError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if not header:
        raise PlaceError(f"{what} {path} is empty (0 bytes), not a database; let its tool create it again")
    if not header.startswith(SQLITE_HEADER) or len(header) < _HEADER_SIZE:
        raise PlaceError(f"{path} is not a SQLite database, so not {what}; check the path")
    return header


def _no_one_has_it_open(path: Path, header: bytes) -> bool:
    """A WAL database whose -wal file is gone: every connection has closed it. Opening it
    read-only would still create empty -wal and -shm files beside it; `immutable` does not.
    (A tool that opens it meanwhile writes to a new -wal first: the file we read stays whole.)"""
    in_wal_mode = header[18] == 2 and header[19] == 2
    return in_wal_mode and not os.path.lexists(f"{path}-wal")


Explain = Callable[[Path, sqlite3.Error, float], KiroTuiError]
"""A format's own words for a SQLite failure (path, error, busy timeout): kiro-cli's name --db."""

LEFT_MID_WRITE = ("SQLITE_READONLY_ROLLBACK", "SQLITE_READONLY_RECOVERY")
"""A program stopped mid-write (killed, crashed, power lost): its hot journal must be rolled
back (or its WAL index rebuilt) first, which a read-only connection may not do."""


@contextmanager
def open_read_only(path: Path, what: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                   explain: Explain | None = None) -> Iterator[sqlite3.Connection]:
    """A connection that can never write, and leaves no file behind that was not there. A
    database a program left mid-write is read from a private copy, rolled back there (what
    that program or any writer sees next), so the place stays readable and untouched."""
    header = read_header(path, what)
    uri = "file:" + urllib.parse.quote(str(Path(path).absolute())) + "?mode=ro"
    if _no_one_has_it_open(path, header):
        uri += "&immutable=1"
    say = explain or (lambda failed, exc, timeout: _explain(failed, what, exc, timeout))
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise say(path, exc, busy_timeout) from exc
    try:
        conn.text_factory = _text
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        with unless_left_mid_write(conn, path, busy_timeout) as usable:
            yield usable
    except sqlite3.Error as exc:
        raise say(path, exc, busy_timeout) from exc
    finally:
        conn.close()


@contextmanager
def unless_left_mid_write(conn: sqlite3.Connection, path: Path, busy_timeout: float) -> Iterator[sqlite3.Connection]:
    """`conn`; or, when a program left the database mid-write, a private rolled-back copy of it."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", None) not in LEFT_MID_WRITE:
            raise
        with _rolled_back_copy(path, busy_timeout) as copy:
            copy.text_factory = conn.text_factory
            yield copy
        return
    yield conn


@contextmanager
def _rolled_back_copy(path: Path, busy_timeout: float) -> Iterator[sqlite3.Connection]:
    """The database and its journal (or WAL) copied into a private folder and opened there,
    where SQLite rolls the unfinished write back; the copy is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="kiro-tui-read-") as folder:
        copy = Path(folder) / "copy.sqlite3"
        try:
            shutil.copyfile(path, copy)
            for suffix in ("-journal", "-wal"):
                if os.path.exists(f"{path}{suffix}"):
                    shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
        except OSError as exc:
            raise sqlite3.OperationalError(f"unable to open a copy of it: {exc.strerror or exc}") from exc
        conn = sqlite3.connect(copy, timeout=busy_timeout)
        try:
            yield conn
        finally:
            conn.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _explain(path: Path, what: str, exc: sqlite3.Error, busy_timeout: float) -> PlaceError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return PlaceError(f"{what} {path} stayed locked by another program for {busy_timeout:g} s; try again")
    if "not a database" in text or "malformed" in text:
        return PlaceError(f"{what} {path} is damaged ({text}); let its tool create it again")
    if "unable to open" in text:
        return PlaceError(f"cannot open {what} {path} ({text}); check that it and its folder are readable")
    return PlaceError(f"cannot read {what} {path}: {text}")


def is_kiro_cli_format(path: Path) -> bool:
    """A readable SQLite file with kiro-cli's `auth_kv` table (what kiro-gateway accepts)."""
    try:
        with open_read_only(path, "database", busy_timeout=1.0) as conn:
            return "auth_kv" in tables(conn)
    except PlaceError:
        return False
