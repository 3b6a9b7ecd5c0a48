"""Opening the store file (checks, private modes, migrations), its transactions, and the
one-line words for what goes wrong with it: disk full, read-only, damaged, locked."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Self

from kiro_tui.core.errors import StoreError, StoreWriteError
from kiro_tui.core.paths import make_private_dirs
from kiro_tui.core.store.schema import MIGRATIONS, OUR_TABLES, SCHEMA_VERSION, split_sql

if TYPE_CHECKING:
    from kiro_tui.core.store.writer import StoreWriter

log = logging.getLogger("kiro_tui.store")

FILE_MODE = 0o600
DIR_MODE = 0o700
TEMP_STORE = "MEMORY"
"""Where SQLite keeps a transaction's scratch (the writer's savepoints spill past 64 KiB): in
memory, not a file created and deleted in /var/tmp at a group commit, inside the token's wait."""


def configure(connection: sqlite3.Connection) -> None:
    """What every connection to the store is set to (they are per connection, not in the file)."""
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=10000")
    connection.execute(f"PRAGMA temp_store={TEMP_STORE}")


def _ensure_private(path: Path, mode: int, fixed: list[str]) -> None:
    """Tighten permissions that are looser than `mode` (never loosen them), and say so."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        os.chmod(path, mode)
        fixed.append(f"{path} was readable by others (mode {current:04o}); set it to {mode:04o}")


def _ensure_owner_writable(path: Path, fixed: list[str]) -> None:
    """A -wal or -shm its owner cannot write (left 0400 by a copy or a backup tool) keeps SQLite
    read-only however the store itself is set: give the owner read and write back, and say so."""
    info = path.stat()
    current = stat.S_IMODE(info.st_mode)
    if current & 0o600 != 0o600 and info.st_uid == getattr(os, "getuid", lambda: info.st_uid)():
        os.chmod(path, (current | 0o600) & FILE_MODE)
        fixed.append(f"{path} was read-only (mode {current:04o}), which keeps the store read-only; set it to 0600")


def describe_sqlite_error(exc: BaseException) -> str:
    """The cause of a SQLite failure in words: disk full, read-only, locked, or SQLite's own."""
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        return "disk full"
    if "readonly" in lowered or "read-only" in lowered or "attempt to write a readonly" in lowered:
        return "read-only"
    if "locked" in lowered or "busy" in lowered:
        return "locked by another program"
    if "disk i/o" in lowered:
        return "disk I/O error"
    return text


def damage_message(path: Path, exc: BaseException) -> str | None:
    """One line for a store SQLite finds damaged (a corrupt page): the file, and how to get back
    what it holds. None for any other error."""
    text = str(exc).lower()
    if not isinstance(exc, sqlite3.DatabaseError) or not ("malformed" in text or "corrupt" in text):
        return None
    return (f"the account store {path} is damaged ({exc}); get back what it holds with "
            f"`sqlite3 {path} .recover | sqlite3 {path}.recovered`, then `mv {path} {path}.damaged` and "
            f"`mv {path}.recovered {path}` (or move it aside and run `kiro-tui import` again)")


def _not_writable(path: Path) -> bool:
    """The store or its folder cannot be written (permissions, an immutable flag, a read-only mount)."""
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


ROOM_FOR_A_COMMIT = 1024 * 1024
"""Free space below which the store's file system counts as full: a token commit appends a few
dozen KB to the WAL, and several refreshes commit at once."""


def _free_bytes(folder: Path) -> int | None:
    try:
        usage = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    return usage.f_bavail * usage.f_frsize


def _out_of_space(folder: Path) -> bool:
    """Hardly any room left where the store lives: SQLite then often says "disk I/O error"
    (it cannot grow its -shm or -wal file) rather than "database or disk is full"."""
    free = _free_bytes(folder)
    return free is not None and free < ROOM_FOR_A_COMMIT


def write_error(path: Path, exc: BaseException, reason: str | None = None) -> StoreWriteError:
    reason = reason or describe_sqlite_error(exc)
    if reason == "disk I/O error" and _out_of_space(path.parent):
        reason = "disk full"
    advice = {
        "disk full": "free some space",
        "read-only": f"make {path} and its folder writable by you",
        "locked by another program": "another program holds it; try again",
    }.get(reason, "check the disk")
    return StoreWriteError(f"the account store {path} is not writable: {reason}; {advice}", reason)


class StoreFile:
    """The open store file: one connection, its transactions, and what keeps commits landing.
    The tables' reads and writes build on it (see `AccountStore`)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.permission_fixes: list[str] = []  # warnings for the user: modes we had to tighten
        self._db = connection
        self._durable = True
        self._identity = file_identity(path)
        self.commits = 0
        """This connection's own commits (PRAGMA data_version counts every other connection's,
        the store writer's included): see `version`."""
        self.place_commits = 0
        """This connection's own commits that may have changed the places (PRAGMA data_version
        counts every other connection's): with data_version, what tells `PlaceRows.places` its
        kept rows are stale."""
        self._writer: StoreWriter | None = None
        self._closed = False
        self._counting = False  # (the migrations commit before there is a preferences table)
        self._own: set[int] = set()
        """Generations our commits made (either connection) since `others_committed` last looked."""
        self._own_lock = threading.Lock()  # (the writer's thread adds to it)
        self._seen: tuple[int, int] | None = None
        """(data_version, generation) when `others_committed` last looked."""

    @classmethod
    def open(cls, path: Path) -> Self:
        path = Path(path)
        fixed: list[str] = []
        try:
            make_private_dirs(path.parent)
            if path.is_symlink() and not path.exists():
                raise StoreError(f"the account store {path} is a symbolic link to {os.readlink(path)}, "
                                 "which does not exist; fix or remove the link")
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
            elif not path.is_file():
                raise StoreError(f"the account store {path} is not a regular file; move it aside")
        except PermissionError as exc:
            raise StoreError(
                f"cannot use the account store {path}: permission denied; "
                "fix the folder's permissions or set XDG_DATA_HOME to a folder you own"
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot use the account store {path}: {exc.strerror or exc}") from exc
        try:
            connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the account store {path}: {describe_sqlite_error(exc)}") from exc
        store = cls(path, connection)
        try:
            store._check()  # checked first, tightened after: never chmod a file that turns out not to be ours
            _ensure_private(path.parent, DIR_MODE, fixed)
            _ensure_private(path, FILE_MODE, fixed)
            for suffix in ("-wal", "-shm"):  # SQLite gives these the database's mode: follow it quietly
                side = path.with_name(path.name + suffix)
                if side.exists():
                    _ensure_private(side, FILE_MODE, [])
                    _ensure_owner_writable(side, fixed)
            store._prepare()
        except sqlite3.DatabaseError as exc:
            connection.close()
            reason = describe_sqlite_error(exc)
            if reason == str(exc) and "unable to open" in reason and _not_writable(path):
                reason = "read-only"  # WAL needs its -wal and -shm files beside the store: a read-only folder
            if reason in ("disk full", "read-only", "locked by another program", "disk I/O error"):
                raise write_error(path, exc, reason) from exc
            if damaged := damage_message(path, exc):
                raise StoreError(damaged) from exc
            raise StoreError(
                f"the account store {path} is not a readable kiro-tui database ({exc}); "
                f"move it aside (e.g. `mv {path} {path}.bak`) and run `kiro-tui import` again"
            ) from exc
        except OSError as exc:
            connection.close()
            raise StoreError(f"cannot use the account store {path}: {exc.strerror or exc}") from exc
        except StoreError:
            connection.close()
            raise
        store.permission_fixes = fixed  # the caller says them, once
        return store

    def _check(self) -> None:
        """Refuse what is not a kiro-tui store (or an empty file to make one of) before touching it."""
        with self.path.open("rb") as handle:
            header = handle.read(16)
        if header and header != b"SQLite format 3\x00":
            raise StoreError(f"the account store {self.path} is not a readable kiro-tui database (not a SQLite "
                             f"file); move it aside (e.g. `mv {self.path} {self.path}.bak`) "
                             "and run `kiro-tui import` again")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the account store {self.path} was written by a newer kiro-tui "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade kiro-tui, "
                "or move the file aside to start afresh"
            )
        if version == 0:
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables:
                raise StoreError(
                    f"{self.path} is another program's SQLite database (tables: {', '.join(sorted(tables)[:5])}), "
                    "not a kiro-tui account store; move it aside or set XDG_DATA_HOME elsewhere"
                )
        elif not OUR_TABLES <= {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}:
            raise StoreError(
                f"{self.path} says it is a kiro-tui store (schema {version}) but has no accounts table; "
                "move it aside and run `kiro-tui import` again"
            )

    def _prepare(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        configure(self._db)
        while version < SCHEMA_VERSION:
            with self.transaction():
                step = MIGRATIONS[version]
                if callable(step):
                    step(self._db)
                else:
                    for statement in split_sql(step):
                        self._db.execute(statement)
                version += 1
                self._db.execute(f"PRAGMA user_version={version}")
        self._counting = True

    @property
    def writer(self) -> StoreWriter:
        """The writer thread a refresh's writes go through (store/writer.py), started on first use.
        Its commits are another connection's: PRAGMA data_version counts them here."""
        if self._writer is None:
            from kiro_tui.core.store.writer import StoreWriter  # (not loaded by what only reads: `list`)

            self._writer = StoreWriter(self, self._writer_connection)
            if self._closed:
                self._writer.close()
        return self._writer

    def _writer_connection(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            configure(connection)
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    @property
    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file open here: changes when `reopen_if_replaced` opened another."""
        return self._identity

    def close(self) -> None:
        """Commit what the writer has queued, then close (a later write fails: closed)."""
        self._closed = True
        self.stop_writer()
        self._db.close()

    def stop_writer(self) -> None:
        """Commit what the writer has queued and end its thread; the next write starts another
        (on the file then at the path)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def replaced(self) -> bool:
        """The file at the path is no longer the one open here (a backup restored over it, a
        rename, a deletion): commits here would go into a file nobody will read again."""
        return file_identity(self.path) != self._identity

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, durable: bool = True, places: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: takes the write lock up front so two writers never interleave.

        Durable commits (the default) are fsynced (synchronous=FULL): a rotated refresh token is
        the only live copy there is and must survive a power cut. Leases pass durable=False: a
        lost lease simply runs out. A failure to write raises `StoreWriteError` naming the cause.
        `places=False`: a commit that never touches the places table (a usage figure, a runner's
        last pass) leaves the kept places as they are; the watch re-read all of them after each.
        """
        try:
            if durable != self._durable:
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise write_error(self.path, exc) from exc
        try:
            yield self._db
        except sqlite3.Error as exc:
            self._rollback()
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
                raise
            raise write_error(self.path, exc) from exc
        except BaseException:
            self._rollback()
            raise
        try:
            generation = bump_generation(self._db) if self._counting else None
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise write_error(self.path, exc) from exc
        if generation is not None:
            self.ours(generation)
        self.commits += 1  # PRAGMA data_version counts only other connections' commits
        if places:
            self.place_commits += 1

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite may have rolled back by itself (disk full)
                pass

    def writable(self, wait: float | None = None) -> bool:
        """Whether a token's commit would go through now (see `probe_commit`); `wait`: seconds to
        wait for another program's lock (SQLite's busy timeout, 10 s, otherwise)."""
        before = self._db.execute("PRAGMA busy_timeout").fetchone()[0]
        try:
            if wait is not None:
                self._db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            self.probe_commit()
        except StoreError:
            return False
        finally:
            self._db.execute(f"PRAGMA busy_timeout={int(before)}")
        return True

    def probe_commit(self) -> None:
        """Prove, before a refresh token is spent, that the new one's commit can land: a write
        that goes through SQLite's whole write path into the WAL (a read-only file or folder, a
        lock, a `-shm` SQLite cannot map, a database at its size limit, no room for the WAL to
        grow all fail here), and room on the file system for the commit's pages (on a full disk
        the WAL is where a commit fails). Nearly full: a checkpoint gives the WAL's space back
        first. Not fsynced: the refresh's own commit is, and a disk that takes the write but
        fails the fsync fails that commit, which holds the token (core/held.py). Raises
        StoreWriteError naming the cause."""
        self.check_room()
        with self.transaction(durable=False, places=False) as tx:
            _probe_write(tx)

    async def probe_on_writer(self) -> None:
        """`probe_commit`, its write through the store's writer: off the loop, and through the
        connection the refresh's own commit will take."""
        self.check_room()
        await self.writer.run(_probe_write, durable=False)

    def check_room(self) -> None:
        """The probe's first half (see `probe_commit`): room on the file system for a commit,
        a checkpoint first when nearly full. Raises StoreWriteError (disk full)."""
        if _out_of_space(self.path.parent):
            self.make_room()
            if _out_of_space(self.path.parent):
                free = _free_bytes(self.path.parent) or 0
                raise StoreWriteError(f"the account store {self.path} is not writable: disk full "
                                      f"({free // 1024} KB free); free some space", "disk full")

    def make_room(self) -> bool:
        """Copy the WAL into the database and truncate it (`wal_checkpoint(TRUNCATE)`), giving its
        space back to a full file system; True when it went through. Another process reading the
        store holds it back: then at once False, never waiting (it runs on the engine's loop)."""
        try:
            before = self._db.execute("PRAGMA busy_timeout").fetchone()[0]
            self._db.execute("PRAGMA busy_timeout=0")
            try:
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                self._db.execute(f"PRAGMA busy_timeout={int(before)}")
        except sqlite3.Error as exc:
            log.info("checkpoint of %s failed: %s", self.path, exc)
            return False
        return busy == 0

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def ours(self, generation: int) -> None:
        """A commit of ours made this generation (see `others_committed`)."""
        with self._own_lock:
            self._own.add(generation)

    def others_committed(self) -> bool:
        """Whether anyone but this process committed since the last call (True the first time,
        and after the store was reopened). PRAGMA data_version alone cannot tell: the writer's
        commits are another connection's. Every kiro-tui commit counts a generation in the same
        transaction; a change our own commits do not explain is another's. One statement when
        nothing changed."""
        version = self.data_version()
        if self._seen is not None and version == self._seen[0]:
            return False
        generation = _generation(self._db)
        seen, self._seen = self._seen, (version, generation)
        with self._own_lock:
            ours = sum(1 for own in self._own if seen is not None and seen[1] < own <= generation)
            self._own = {own for own in self._own if own > generation}
        if seen is None or generation <= seen[1]:  # (no generation counted: a program that counts none)
            return True
        return ours < generation - seen[1]

    def data_version(self) -> int:
        """Changes whenever another connection (another kiro-tui process) commits."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def version(self) -> tuple[int, int]:
        """Changes whenever anything stored may have: a commit here, or another process's."""
        return self.commits, self.data_version()


def bump_generation(tx: sqlite3.Connection) -> int:
    """Count a commit (in it): see `StoreFile.others_committed`. (No RETURNING: that needs
    SQLite 3.35, and some systems' Python still links an older one.)"""
    tx.execute("INSERT INTO preferences (key, value) VALUES ('generation', 1) ON CONFLICT (key) DO UPDATE"
               " SET value = CAST(value AS INTEGER) + 1")
    return _generation(tx)


def _generation(db: sqlite3.Connection) -> int:
    """The commits counted so far (0 when none, or when another program left something else)."""
    row = db.execute("SELECT value FROM preferences WHERE key = 'generation'").fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else 0


def _probe_write(tx: sqlite3.Connection) -> None:
    """The probe's second half: a write through SQLite's whole write path, left no trace."""
    tx.execute("INSERT OR REPLACE INTO preferences (key, value) VALUES ('probe', '1')")
    tx.execute("DELETE FROM preferences WHERE key = 'probe'")


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None when there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
