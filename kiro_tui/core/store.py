"""kiro-tui's durable account store: one SQLite file, WAL, private to the user.

Every write is one transaction, so a crash leaves either the old row or the new one.
The schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]` upgrades version i to i+1.
A store from a newer kiro-tui, a corrupt one, or another program's SQLite database is refused
and never written to. One row that cannot be read (a hand edit, a bug) is reported and left
out; every other account keeps working. A write that fails says why (disk full, read-only,
locked) as a `StoreWriteError`, so the refresh engine can hold a new token in memory instead.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from kiro_tui.core.errors import StoreError, StoreWriteError
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import (
    ACCOUNT_FIELDS,
    Account,
    AuthMethod,
    Health,
    Mode,
    Outcome,
    Place,
    PlaceRole,
    PlaceState,
    UsageRecord,
)
from kiro_tui.core.paths import make_private_dirs
from kiro_tui.core.timefmt import TimestampError, format_timestamp, parse_timestamp

log = logging.getLogger("kiro_tui.store")

MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        auth_method TEXT NOT NULL,
        access_token TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        refresh_token TEXT,
        label TEXT NOT NULL DEFAULT '',
        email TEXT,
        provider TEXT,
        region TEXT NOT NULL,
        start_url TEXT,
        scopes TEXT,
        oauth_flow TEXT,
        client_id TEXT,
        client_secret TEXT,
        client_secret_expires_at TEXT,
        token_endpoint TEXT,
        issuer_url TEXT,
        profile_arn TEXT,
        profile_name TEXT,
        source TEXT,
        source_key TEXT,
        login_key TEXT,
        mode TEXT NOT NULL,
        health TEXT NOT NULL,
        last_refresh_at TEXT,
        next_refresh_at TEXT,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        created_at TEXT,
        updated_at TEXT,
        extra TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX accounts_by_login ON accounts (source, source_key, login_key);
    """,
    """
    ALTER TABLE accounts ADD COLUMN sync_error TEXT;
    CREATE TABLE refresh_log (
        id INTEGER PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        classification TEXT,
        duration_ms INTEGER,
        http_status INTEGER,
        message TEXT
    );
    CREATE INDEX refresh_log_by_account ON refresh_log (account_id, id);
    CREATE TABLE leases (
        account_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE preferences (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE places (
        id INTEGER PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        entry TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'in-sync',
        detail TEXT,
        pending_from TEXT,
        written_at TEXT,
        UNIQUE (kind, path, entry)
    );
    CREATE INDEX places_by_account ON places (account_id);
    CREATE TABLE lineage (
        fingerprint TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        at TEXT NOT NULL
    );
    CREATE INDEX lineage_by_account ON lineage (account_id, at);
    CREATE TABLE usage (
        account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        used REAL,
        usage_limit REAL,
        resets_at TEXT,
        subscription TEXT,
        fetched_at TEXT,
        error TEXT,
        error_at TEXT
    );
    CREATE TABLE forgotten (
        fingerprint TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        entry TEXT NOT NULL,
        label TEXT NOT NULL,
        at TEXT NOT NULL
    );
    INSERT INTO places (account_id, kind, path, entry, role, state, pending_from)
        SELECT id, 'kiro-cli', source, source_key, 'source',
               CASE WHEN json_valid(extra) AND json_extract(extra, '$.writeback_from') IS NOT NULL
                    THEN 'pending' ELSE 'in-sync' END,
               CASE WHEN json_valid(extra) THEN json_extract(extra, '$.writeback_from') END
        FROM accounts WHERE source IS NOT NULL AND source_key IS NOT NULL;
    """,
    lambda db: _seed_lineage(db),
    "ALTER TABLE places ADD COLUMN written_print TEXT;",
    # Who keeps the accounts fresh (core/runners.py), and what was announced (core/notify.py).
    """
    CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_by TEXT NOT NULL,
        started_at TEXT NOT NULL,
        last_pass_at TEXT,
        interval_seconds REAL NOT NULL
    );
    CREATE TABLE notices (
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        condition TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (account_id, condition)
    );
    """,
    """
    ALTER TABLE accounts ADD COLUMN nickname TEXT;
    CREATE UNIQUE INDEX accounts_by_nickname ON accounts (nickname COLLATE NOCASE) WHERE nickname IS NOT NULL;
    """,
    """
    CREATE TABLE place_reads (
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        entry TEXT NOT NULL DEFAULT '',
        signature TEXT NOT NULL,
        token_print TEXT,
        PRIMARY KEY (kind, path, entry)
    );
    """,
)

REFRESH_LOG_KEEP = 50
LINEAGE_KEEP = 500
"""Refresh tokens remembered per account (by fingerprint): enough to recognise a copy that
fell weeks behind (a tool not run for a while) as the same login."""

SCHEMA_VERSION = len(MIGRATIONS)
_DATETIME_FIELDS = {
    "expires_at",
    "client_secret_expires_at",
    "last_refresh_at",
    "next_refresh_at",
    "created_at",
    "updated_at",
}
_ENUM_FIELDS: dict[str, type[AuthMethod] | type[Mode] | type[Health]] = {
    "auth_method": AuthMethod, "mode": Mode, "health": Health}
_JSON_FIELDS = {"scopes", "extra"}
_SECRET_FIELDS = {"access_token", "refresh_token", "client_secret"}
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_OUR_TABLES = {"accounts"}


def _seed_lineage(db: sqlite3.Connection) -> None:
    """Migration 4: every stored refresh token starts its account's lineage."""
    now = format_timestamp(datetime.now().astimezone())
    rows = db.execute("SELECT id, refresh_token FROM accounts WHERE refresh_token IS NOT NULL").fetchall()
    db.executemany("INSERT OR IGNORE INTO lineage (fingerprint, account_id, at) VALUES (?, ?, ?)",
                   [(fingerprint(token), account_id, now) for account_id, token in rows if token])


def storable_text(name: str, value: str) -> str:
    """Text SQLite can hold (UTF-8). A lone surrogate (from a JSON `\\udc80` escape) cannot be
    encoded: in a name or an ARN it becomes U+FFFD; in a secret it is refused by name, since a
    changed secret is a wrong secret."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        if name in _SECRET_FIELDS:
            raise StoreError(f"the {name} holds characters that cannot be stored (unpaired surrogates)") from None
        return value.encode("utf-8", "replace").decode("utf-8")


def _to_column(name: str, value: object) -> object:
    if value is None:
        return None
    if name in _DATETIME_FIELDS:
        if not isinstance(value, datetime):
            raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
        return format_timestamp(value)
    if name in _JSON_FIELDS:
        return json.dumps(value)  # escapes lone surrogates as \\udXXX: always storable
    if name in _ENUM_FIELDS:
        return str(value)
    if isinstance(value, str):
        return storable_text(name, value)
    return value


def _from_column(name: str, value: object) -> object:
    if value is None:
        return {} if name == "extra" else None
    if name in _DATETIME_FIELDS:
        try:  # our own format: the fast path (Python 3.11 reads the Z and ≤ 6 fraction digits)
            return datetime.fromisoformat(str(value))
        except ValueError:
            return parse_timestamp(value)
    if name in _JSON_FIELDS:
        decoded = json.loads(value if isinstance(value, (str, bytes)) else str(value))
        expected = dict if name == "extra" else list
        if not isinstance(decoded, expected):
            raise ValueError(f"{name} is not a JSON {expected.__name__}")
        return decoded
    if name in _ENUM_FIELDS:
        return _ENUM_FIELDS[name](str(value))
    return value


def _time_or_none(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except TimestampError:
        return None


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
        os.chmod(path, (current | 0o600) & _FILE_MODE)
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


def _write_error(path: Path, exc: BaseException, reason: str | None = None) -> StoreWriteError:
    reason = reason or describe_sqlite_error(exc)
    if reason == "disk I/O error" and _out_of_space(path.parent):
        reason = "disk full"
    advice = {
        "disk full": "free some space",
        "read-only": f"make {path} and its folder writable by you",
        "locked by another program": "another program holds it; try again",
    }.get(reason, "check the disk")
    return StoreWriteError(f"the account store {path} is not writable: {reason}; {advice}", reason)


@dataclass(frozen=True)
class UnreadableRow:
    """A stored account that cannot be turned back into an Account (hand-edited, damaged)."""

    account_id: str
    reason: str

    def describe(self) -> str:
        return (f"account {self.account_id} cannot be read: {self.reason}; "
                f"`kiro-tui remove {self.account_id}` removes it")


class AccountStore:
    """Accounts by id. Open with `AccountStore.open(path)`; close when done.

    The connection may be handed to another thread (the TUI's engine runs on its own), but
    it is used by one thread at a time."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.permission_fixes: list[str] = []  # warnings for the user: modes we had to tighten
        self.unreadable: list[UnreadableRow] = []  # rows the last full read had to leave out
        self._logged_unreadable: set[UnreadableRow] = set()
        self._db = connection
        self._durable = True
        self._identity = _file_identity(path)
        self.commits = 0  # our own commits; PRAGMA data_version counts everyone else's
        self._every_place: tuple[tuple[int, int], list[Place]] | None = None  # ((commits, data_version), places)

    @classmethod
    def open(cls, path: Path) -> AccountStore:
        path = Path(path)
        fixed: list[str] = []
        try:
            make_private_dirs(path.parent)
            if path.is_symlink() and not path.exists():
                raise StoreError(f"the account store {path} is a symbolic link to {os.readlink(path)}, "
                                 "which does not exist; fix or remove the link")
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _FILE_MODE))
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
            _ensure_private(path.parent, _DIR_MODE, fixed)
            _ensure_private(path, _FILE_MODE, fixed)
            for suffix in ("-wal", "-shm"):  # SQLite gives these the database's mode: follow it quietly
                side = path.with_name(path.name + suffix)
                if side.exists():
                    _ensure_private(side, _FILE_MODE, [])
                    _ensure_owner_writable(side, fixed)
            store._prepare()
        except sqlite3.DatabaseError as exc:
            connection.close()
            reason = describe_sqlite_error(exc)
            if reason == str(exc) and "unable to open" in reason and _not_writable(path):
                reason = "read-only"  # WAL needs its -wal and -shm files beside the store: a read-only folder
            if reason in ("disk full", "read-only", "locked by another program", "disk I/O error"):
                raise _write_error(path, exc, reason) from exc
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
        elif not _OUR_TABLES <= {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}:
            raise StoreError(
                f"{self.path} says it is a kiro-tui store (schema {version}) but has no accounts table; "
                "move it aside and run `kiro-tui import` again"
            )

    def _prepare(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        while version < SCHEMA_VERSION:
            with self.transaction():
                step = MIGRATIONS[version]
                if callable(step):
                    step(self._db)
                else:
                    for statement in _split_sql(step):
                        self._db.execute(statement)
                version += 1
                self._db.execute(f"PRAGMA user_version={version}")

    def close(self) -> None:
        self._db.close()

    def replaced(self) -> bool:
        """The file at the path is no longer the one open here (a backup restored over it, a
        rename, a deletion): commits here would go into a file nobody will read again."""
        return _file_identity(self.path) != self._identity

    def reopen_if_replaced(self) -> list[str] | None:
        """When the file was replaced: reopen the one now at the path (making one if it is gone)
        and carry into it every account whose token here is newer than there, with its places and
        lineage. Returns the ids carried over (None: not replaced). Raises StoreError when the new
        file cannot be used; this connection stays open on the old one then."""
        if not self.replaced():
            return None
        old = self._db
        accounts, _ = self.read_accounts()
        places = self.places()
        lineage = old.execute("SELECT fingerprint, account_id, at FROM lineage").fetchall()
        fresh = AccountStore.open(self.path)  # every check a start makes: not a store, newer schema...
        try:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the -wal beside the path is the old file's
        except sqlite3.Error:
            pass
        old.close()
        self._db, self._durable, self._identity = fresh._db, True, fresh._identity
        self._every_place = None  # another file: nothing read from the old one stands
        self.permission_fixes = fresh.permission_fixes
        ours = {(row[0], row[1]) for row in lineage}
        carried = []
        with self.transaction() as tx:
            there = {a.id: a for a in self.read_accounts()[0]}
            for account in accounts:
                found = there.get(account.id)
                if found is not None and found.refresh_token == account.refresh_token \
                        and found.expires_at >= account.expires_at:
                    continue  # the same token there already
                if found is not None and found.refresh_token != account.refresh_token \
                        and (fingerprint(found.refresh_token), account.id) not in ours:
                    log.warning("%s: the replaced store holds a token kiro-tui never had; kept it", account.id)
                    continue
                self.save(account, tx)
                for place in places:
                    if place.account_id == account.id:
                        self.save_place(tx, place)
                carried.append(account.id)
            tx.executemany("INSERT OR IGNORE INTO lineage (fingerprint, account_id, at) SELECT ?, ?, ?"
                           " WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?)",
                           [(row[0], row[1], row[2], row[1]) for row in lineage])
        return carried

    def __enter__(self) -> AccountStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: takes the write lock up front so two writers never interleave.

        Durable commits (the default) are fsynced (synchronous=FULL): a rotated refresh token is
        the only live copy there is and must survive a power cut. Leases pass durable=False: a
        lost lease simply runs out. A failure to write raises `StoreWriteError` naming the cause.
        """
        try:
            if durable != self._durable:
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _write_error(self.path, exc) from exc
        try:
            yield self._db
        except sqlite3.Error as exc:
            self._rollback()
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
                raise
            raise _write_error(self.path, exc) from exc
        except BaseException:
            self._rollback()
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _write_error(self.path, exc) from exc
        self.commits += 1  # PRAGMA data_version counts only other connections' commits

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
        """Prove, before a refresh token is spent, that the new one's commit can land: a durable
        write that must reach the disk (a read-only file or folder, a lock, a `-shm` SQLite cannot
        map, a database at its size limit all fail here), and room on the file system for the
        commit's pages in the WAL (SQLite grows the -wal file until a checkpoint; on a full disk
        that is where a commit fails). Nearly full: a checkpoint gives the WAL's space back
        first. Raises StoreWriteError naming the cause."""
        if _out_of_space(self.path.parent):
            self.make_room()
            if _out_of_space(self.path.parent):
                free = _free_bytes(self.path.parent) or 0
                raise StoreWriteError(f"the account store {self.path} is not writable: disk full "
                                      f"({free // 1024} KB free); free some space", "disk full")
        with self.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO preferences (key, value) VALUES ('probe', '1')")
            tx.execute("DELETE FROM preferences WHERE key = 'probe'")

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

    # ------------------------------------------------------------ accounts

    def read_accounts(self, ids: Iterable[str] | None = None) -> tuple[list[Account], list[UnreadableRow]]:
        """Every account (or those in `ids`) that can be read, and the rows that cannot."""
        columns = ", ".join(ACCOUNT_FIELDS)
        if ids is None:
            rows = self._db.execute(f"SELECT {columns} FROM accounts ORDER BY created_at, id").fetchall()
        else:
            wanted = list(ids)
            rows = []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows += self._db.execute(
                    f"SELECT {columns} FROM accounts WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                ).fetchall()
        accounts, unreadable = [], []
        for row in rows:
            try:
                accounts.append(self._row_to_account(row))
            except Exception as exc:  # noqa: BLE001 - any damage to one row is that row's problem
                unreadable.append(UnreadableRow(str(row[0]), _row_problem(row, exc)))
        if ids is None:
            self.unreadable = unreadable
        for problem in unreadable:  # callers report it (list, the TUI, refresh); the log once per row
            if problem not in self._logged_unreadable:
                self._logged_unreadable.add(problem)
                log.info("%s", problem.describe())
        return accounts, unreadable

    def accounts(self) -> list[Account]:
        """Every readable account; the others are in `self.unreadable` (and the log)."""
        return self.read_accounts()[0]

    def get(self, account_id: str) -> Account | None:
        """The account, None if there is none; a `StoreError` if its row cannot be read."""
        found, unreadable = self.read_accounts([account_id])
        if unreadable:
            raise StoreError(unreadable[0].describe())
        return found[0] if found else None

    def resolve_id(self, prefix: str) -> Account:
        """An account by its id or an unambiguous prefix of it, as people type ids."""
        account_id = self.resolve_raw_id(prefix)
        account = self.get(account_id)
        assert account is not None
        return account

    def resolve_raw_id(self, prefix: str) -> str:
        """The full id for what a person typed: an id, a name or an email, or a unique prefix of
        one (any case but the id's), without reading the row (works on unreadable rows). The
        one resolver every command uses (see core/names.py)."""
        rows = self._db.execute("SELECT id, nickname, email FROM accounts ORDER BY id").fetchall()
        if any(row[0] == prefix for row in rows):
            return prefix
        wanted = prefix.strip().casefold()

        def texts(row: tuple[str, str | None, str | None]) -> list[str]:
            return [value.casefold() for value in row if value]

        exact = [row for row in rows if wanted and wanted in texts(row)]
        begun = [row for row in rows if wanted and any(text.startswith(wanted) for text in texts(row))]
        for matches in (exact, begun):
            if len(matches) == 1:
                return matches[0][0]
            if len(matches) > 1:
                listed = ", ".join(f"{row[0]} ({row[1] or row[2] or 'no name'})" for row in matches[:6])
                raise StoreError(f"{prefix!r} matches {len(matches)} accounts ({listed}); type more of it, or "
                                 "give one a name with `kiro-tui rename ID NAME`")
        raise StoreError(f"no account with id {prefix!r} (nor a name or email beginning so); "
                         "`kiro-tui list` shows them")

    def save(self, account: Account, conn: sqlite3.Connection | None = None) -> None:
        """Insert the row, or update every field of it in place (inside the caller's
        transaction, or its own). Never REPLACE: that deletes the row first, and the
        account's refresh history would go with it (ON DELETE CASCADE)."""
        values = asdict(account)
        columns = ", ".join(ACCOUNT_FIELDS)
        marks = ", ".join("?" for _ in ACCOUNT_FIELDS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in ACCOUNT_FIELDS if name != "id")
        params = [_to_column(name, values[name]) for name in ACCOUNT_FIELDS]
        sql = f"INSERT INTO accounts ({columns}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}"
        if conn is not None:
            conn.execute(sql, params)
            self.add_lineage(conn, account.id, [account.refresh_token])
            return
        with self.transaction() as tx:
            tx.execute(sql, params)
            self.add_lineage(tx, account.id, [account.refresh_token])

    def update(self, account_id: str, conn: sqlite3.Connection | None = None, **changes: object) -> None:
        """Change some fields of one row."""
        unknown = set(changes) - set(ACCOUNT_FIELDS)
        if unknown:
            raise ValueError(f"unknown account fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        params = [_to_column(name, value) for name, value in changes.items()] + [account_id]
        sql = f"UPDATE accounts SET {assignments} WHERE id = ?"
        tokens = [str(changes["refresh_token"])] if changes.get("refresh_token") else []
        if conn is not None:
            conn.execute(sql, params)
            self.add_lineage(conn, account_id, tokens)
            return
        with self.transaction() as tx:
            tx.execute(sql, params)
            self.add_lineage(tx, account_id, tokens)

    def set_mode(self, account: Account, mode: Mode) -> None:
        """Change how an account coexists with the place it came from (see docs/accounts-and-modes.md)."""
        if mode not in account.allowed_modes:
            raise StoreError(
                f"{account.id} ({account.name}) was not imported from another tool, so only `own` applies to it"
            )
        self.update(account.id, mode=mode, sync_error=None)

    def delete(self, account_id: str, forget: bool = True) -> bool:
        """Remove an account (readable or not). `forget` remembers its logins, so an import does
        not bring the same login back under a new id; a new login at that place still imports."""
        with self.transaction() as tx:
            if forget:
                label = tx.execute("SELECT COALESCE(email, label, id) FROM accounts WHERE id = ?",
                                   (account_id,)).fetchone()
                stamp = format_timestamp(datetime.now().astimezone())
                tx.execute(
                    "INSERT OR REPLACE INTO forgotten (fingerprint, kind, path, entry, label, at)"
                    " SELECT lineage.fingerprint, places.kind, places.path, places.entry, ?, ?"
                    " FROM lineage JOIN places ON places.account_id = lineage.account_id"
                    " WHERE lineage.account_id = ?",
                    (label[0] if label else account_id, stamp, account_id),
                )
            return tx.execute("DELETE FROM accounts WHERE id = ?", (account_id,)).rowcount > 0

    def forgotten(self, refresh_token: str | None) -> tuple[str, datetime] | None:
        """(label, when) if a login with this refresh token was removed from kiro-tui."""
        if not refresh_token:
            return None
        row = self._db.execute("SELECT label, at FROM forgotten WHERE fingerprint = ?",
                               (fingerprint(refresh_token),)).fetchone()
        return (row[0], parse_timestamp(row[1])) if row else None

    def preference(self, key: str) -> object:
        """A remembered choice (e.g. the last login's start URL), JSON-decoded; None if unset."""
        row = self._db.execute("SELECT value FROM preferences WHERE key = ?", (key,)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except ValueError:
            return None

    def set_preference(self, key: str, value: object) -> None:
        with self.transaction(durable=False) as tx:
            _write_preference(tx, key, value)

    UNLINKED_KEY = "unlinked_places"

    def unlinked(self, kind: str, path: str, entry: str = "") -> UnlinkMark | None:
        """How this place was detached from an account (a person unlinked it, or logged in again),
        if it was: an import does not make the same session there a place of it again."""
        marks = self.preference(self.UNLINKED_KEY)
        mark = marks.get(f"{kind}\t{path}\t{entry}") if isinstance(marks, dict) else None
        try:
            return (UnlinkMark(str(mark["account"]), parse_timestamp(mark["at"]), str(mark.get("why") or "unlink"),
                               mark.get("client_id") if isinstance(mark.get("client_id"), str) else None)
                    if isinstance(mark, dict) else None)
        except (KeyError, ValueError, TypeError, TimestampError):
            return None

    def mark_unlinked(self, place: Place, at: datetime | None, unlinked: bool = True, why: str = "unlink",
                      client_id: str | None = None) -> None:
        """Remember (or, linked again, forget) that this place was detached from its account, and
        the client registration of the session it held (None for a login without one). Read and
        written under the write lock: two processes unlinking at once both keep their mark."""
        key = f"{place.kind}\t{place.path}\t{place.entry}"
        with self.transaction(durable=False) as tx:
            marks = self.preference(self.UNLINKED_KEY)
            marks = marks if isinstance(marks, dict) else {}
            if unlinked and at is not None:
                marks[key] = {"account": place.account_id, "at": format_timestamp(at), "why": why,
                              "client_id": client_id}
            elif marks.pop(key, None) is None:
                return
            _write_preference(tx, self.UNLINKED_KEY, marks)

    def data_version(self) -> int:
        """Changes whenever another connection (another kiro-tui process) commits."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM accounts")}

    def has_id(self, account_id: str) -> bool:
        """One indexed look-up (an import checks each new id without reading every id)."""
        return self._db.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is not None

    def ids_with_client(self, client_id: str) -> list[str]:
        """The accounts of this client registration, in store order."""
        return [row[0] for row in self._db.execute(
            "SELECT id FROM accounts WHERE client_id = ? ORDER BY created_at, id", (client_id,))]

    def ids_from_place(self, kind: str, path: str) -> list[str]:
        """The accounts imported from this place file (a source place there, or, for kiro-cli's
        database, the `source` it was imported from), in store order."""
        return [row[0] for row in self._db.execute(
            "SELECT id FROM accounts WHERE source = ? OR id IN "
            "(SELECT account_id FROM places WHERE kind = ? AND path = ? AND role = 'source') ORDER BY created_at, id",
            (path, kind, path))]

    def accounts_in_order(self, ids: list[str]) -> list[Account]:
        """These accounts (the readable ones), in the order of `ids`."""
        found = {account.id: account for account in self.read_accounts(ids)[0]}
        return [found[i] for i in ids if i in found]

    # ------------------------------------------------------------ lineage

    def add_lineage(self, conn: sqlite3.Connection, account_id: str, tokens: Iterable[str | None],
                    at: datetime | None = None) -> None:
        """Remember refresh tokens as this account's (current or spent), by fingerprint only."""
        prints = [fingerprint(t) for t in tokens if t]
        if not prints:
            return
        stamp = format_timestamp(at or datetime.now().astimezone())
        conn.executemany("INSERT OR REPLACE INTO lineage (fingerprint, account_id, at) VALUES (?, ?, ?)",
                         [(p, account_id, stamp) for p in prints])
        conn.execute(
            "DELETE FROM lineage WHERE account_id = ? AND fingerprint NOT IN "
            "(SELECT fingerprint FROM lineage WHERE account_id = ? ORDER BY at DESC LIMIT ?)",
            (account_id, account_id, LINEAGE_KEEP),
        )

    def lineage_owner(self, refresh_token: str | None) -> str | None:
        """The account whose lineage holds this refresh token (the current one or a spent one)."""
        if not refresh_token:
            return None
        row = self._db.execute("SELECT account_id FROM lineage WHERE fingerprint = ?",
                               (fingerprint(refresh_token),)).fetchone()
        return row[0] if row else None

    def lineage_rank(self, account_id: str, token_print: str | None) -> int | None:
        """Where this token stands in the account's lineage: a token added later ranks higher
        (a refresh adds the spent token, then the new one); None if it is not (or no longer) there."""
        if not token_print:
            return None
        row = self._db.execute("SELECT rowid FROM lineage WHERE fingerprint = ? AND account_id = ?",
                               (token_print, account_id)).fetchone()
        return row[0] if row else None

    def in_lineage(self, account_id: str, token_print: str | None) -> bool:
        if not token_print:
            return False
        row = self._db.execute("SELECT 1 FROM lineage WHERE fingerprint = ? AND account_id = ?",
                               (token_print, account_id)).fetchone()
        return row is not None

    # ------------------------------------------------------------ places

    def places(self, accounts: str | Iterable[str] | None = None) -> list[Place]:
        """Every place (of one account, or of these accounts). Every place is kept between
        calls until someone commits: the watch pass asks each pass, and mostly nothing changed."""
        if accounts is None:
            if self._db.in_transaction:  # our own uncommitted changes are not in the kept list
                return self._places_where("1", ())
            marker = (self.commits, self._db.execute("PRAGMA data_version").fetchone()[0])
            if self._every_place is None or self._every_place[0] != marker:
                self._every_place = (marker, self._places_where("1", ()))
            return list(self._every_place[1])
        if isinstance(accounts, str):
            return self._places_where("account_id = ?", (accounts,))
        return [place for where, chunk in _account_id_in(accounts) for place in self._places_where(where, chunk)]

    def place_at(self, kind: str, path: str, entry: str = "") -> Place | None:
        return next(iter(self._places_where("kind = ? AND path = ? AND entry = ?", (kind, path, entry))), None)

    def _places_where(self, where: str, params: tuple[object, ...]) -> list[Place]:
        rows = self._db.execute(
            "SELECT account_id, kind, path, entry, role, state, detail, pending_from, written_at, written_print"
            f" FROM places WHERE {where} ORDER BY id", params).fetchall()
        places = []
        for row in rows:
            try:
                places.append(Place(row[0], row[1], row[2], row[3], PlaceRole(row[4]), PlaceState(row[5]),
                                    row[6], row[7], _time_or_none(row[8]), row[9]))
            except ValueError:
                log.warning("place %s of account %s has an unknown role or state; ignored", row[2], row[0])
        return places

    def save_place(self, conn: sqlite3.Connection, place: Place) -> None:
        """Add or update the place at its address (a place belongs to one account at a time)."""
        conn.execute(
            "INSERT INTO places (account_id, kind, path, entry, role, state, detail, pending_from, written_at,"
            " written_print) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, path, entry) DO UPDATE SET"
            " account_id = excluded.account_id, role = excluded.role, state = excluded.state,"
            " detail = excluded.detail, pending_from = excluded.pending_from, written_at = excluded.written_at,"
            " written_print = excluded.written_print",
            (place.account_id, place.kind, storable_text("path", place.path), storable_text("entry", place.entry),
             place.role.value, place.state.value, storable_text("detail", place.detail) if place.detail else None,
             place.pending_from, format_timestamp(place.written_at) if place.written_at else None,
             place.written_print),
        )

    def delete_place(self, conn: sqlite3.Connection, place: Place) -> None:
        conn.execute("DELETE FROM places WHERE kind = ? AND path = ? AND entry = ?", place.address)

    def place_reads(self) -> dict[tuple[str, str, str], tuple[str, str | None]]:
        """What each place address held when last read: (the file's signature then, the
        fingerprint of the refresh token found, None when the entry was not there)."""
        return {(kind, path, entry): (signature, token_print) for kind, path, entry, signature, token_print
                in self._db.execute("SELECT kind, path, entry, signature, token_print FROM place_reads")}

    def save_place_reads(self, reads: dict[tuple[str, str, str], tuple[str, str | None]]) -> None:
        """Remember what these places held (a cache: no fsync; a lost row is read again)."""
        with self.transaction(durable=False) as tx:
            tx.executemany("INSERT OR REPLACE INTO place_reads (kind, path, entry, signature, token_print) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [(*address, signature, token_print) for address, (signature, token_print) in reads.items()])

    # ------------------------------------------------------------ usage

    def usage(self, account_ids: Iterable[str] | None = None) -> dict[str, UsageRecord]:
        columns = "account_id, used, usage_limit, resets_at, subscription, fetched_at, error, error_at"
        if account_ids is None:
            rows = self._db.execute(f"SELECT {columns} FROM usage").fetchall()
        else:
            rows = [row for where, chunk in _account_id_in(account_ids)
                    for row in self._db.execute(f"SELECT {columns} FROM usage WHERE {where}", chunk).fetchall()]
        return {
            r[0]: UsageRecord(r[1], r[2], _time_or_none(r[3]), r[4], _time_or_none(r[5]), r[6], _time_or_none(r[7]))
            for r in rows
        }

    def save_usage(self, account_id: str, record: UsageRecord) -> None:
        with self.transaction(durable=False) as tx:
            tx.execute(
                "INSERT OR REPLACE INTO usage (account_id, used, usage_limit, resets_at, subscription, fetched_at,"
                " error, error_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?)",
                (account_id, record.used, record.limit,
                 format_timestamp(record.resets_at) if record.resets_at else None,
                 storable_text("subscription", record.subscription) if record.subscription else None,
                 format_timestamp(record.fetched_at) if record.fetched_at else None,
                 storable_text("error", record.error) if record.error else None,
                 format_timestamp(record.error_at) if record.error_at else None, account_id),
            )

    # ------------------------------------------------------------ refresh history

    def log_refresh(self, conn: sqlite3.Connection, entry: RefreshLogEntry) -> None:
        """Append one outcome and keep only the newest REFRESH_LOG_KEEP for that account."""
        conn.execute(
            "INSERT INTO refresh_log (account_id, at, outcome, classification, duration_ms, http_status, message)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.account_id, format_timestamp(entry.at), str(entry.outcome), entry.classification,
             entry.duration_ms, entry.http_status,
             storable_text("message", entry.message) if entry.message else None),
        )
        conn.execute(
            "DELETE FROM refresh_log WHERE account_id = ? AND id NOT IN "
            "(SELECT id FROM refresh_log WHERE account_id = ? ORDER BY id DESC LIMIT ?)",
            (entry.account_id, entry.account_id, REFRESH_LOG_KEEP),
        )

    def refresh_history(self, account_id: str, limit: int = REFRESH_LOG_KEEP) -> list[RefreshLogEntry]:
        rows = self._db.execute(
            "SELECT account_id, at, outcome, classification, duration_ms, http_status, message FROM refresh_log"
            " WHERE account_id = ? ORDER BY id DESC LIMIT ?",
            (account_id, limit),
        ).fetchall()
        entries = []
        for r in rows:
            at = _time_or_none(r[1])
            if at is not None:
                entries.append(RefreshLogEntry(r[0], at, r[2], r[3], r[4], r[5], r[6]))
        return entries

    def refresh_counts(self) -> dict[str, tuple[int, int]]:
        """(successes, failures) in the kept history, by account."""
        rows = self._db.execute(
            "SELECT account_id, SUM(outcome = ? OR outcome = ?), SUM(outcome = ?) FROM refresh_log GROUP BY account_id",
            (Outcome.REFRESHED.value, Outcome.ADOPTED.value, Outcome.FAILED.value),
        )
        return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in rows}

    # ------------------------------------------------------------ leases

    def acquire_lease(self, account_id: str, owner: str, now: datetime, seconds: float) -> bool:
        """Take (or renew) the right to refresh one account, across processes."""
        until = format_timestamp(now + timedelta(seconds=seconds))
        with self.transaction(durable=False) as tx:
            row = tx.execute("SELECT owner, until FROM leases WHERE account_id = ?", (account_id,)).fetchone()
            if row and row[0] != owner and (_time_or_none(row[1]) or now) > now and not _owner_gone(row[0]):
                return False
            tx.execute("INSERT OR REPLACE INTO leases (account_id, owner, until) VALUES (?, ?, ?)",
                       (account_id, owner, until))
            return True

    def refreshing_ids(self, now: datetime) -> set[str]:
        """Accounts some kiro-tui process is refreshing right now (a lease that has not run out)."""
        rows = self._db.execute("SELECT account_id, until, owner FROM leases").fetchall()
        return {row[0] for row in rows if (_time_or_none(row[1]) or now) > now and not _owner_gone(row[2])}

    def release_lease(self, account_id: str, owner: str) -> None:
        with self.transaction(durable=False) as tx:
            tx.execute("DELETE FROM leases WHERE account_id = ? AND owner = ?", (account_id, owner))

    def release_leases(self, owner: str) -> None:
        """Every lease this process holds: on shutdown, and after a failed release."""
        with self.transaction(durable=False) as tx:
            tx.execute("DELETE FROM leases WHERE owner = ?", (owner,))

    @staticmethod
    def _row_to_account(row: tuple[object, ...]) -> Account:
        values = {name: _from_column(name, value) for name, value in zip(ACCOUNT_FIELDS, row, strict=True)}
        for name in ("id", "access_token"):
            if not isinstance(values[name], str):
                raise ValueError(f"{name} is not text")
        if values["expires_at"] is None:
            raise ValueError("expires_at is missing")
        return Account(**values)  # type: ignore[arg-type]  # each field was decoded by its column's codec


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None when there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _owner_gone(owner: str) -> bool:
    """A lease holder (`host:pid:nonce`, core/refresh.py's default_owner) that is a process of
    this machine no longer running: it ended without releasing (a full disk would not take the
    release, a SIGKILL). Its lease is void at once, not after a minute of "busy"."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if not hasattr(os, "uname") or host != os.uname().nodename or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process, or no right to ask: alive as far as we know
        return False
    return False


def _row_problem(row: tuple[object, ...], exc: Exception) -> str:
    """Which field of a damaged row is at fault, in words."""
    for name, value in zip(ACCOUNT_FIELDS, row, strict=True):
        try:
            _from_column(name, value)
        except Exception as field_exc:  # noqa: BLE001
            shown = repr(value)[:40]
            return f"field {name} holds {shown} ({type(field_exc).__name__})"
    return f"{type(exc).__name__}: {str(exc)[:80]}"


def _write_preference(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO preferences (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def _account_id_in(account_ids: Iterable[str], size: int = 500) -> Iterator[tuple[str, tuple[str, ...]]]:
    """`account_id IN (?, …)` and its values, in chunks under SQLite's limit on parameters."""
    wanted = tuple(account_ids)
    for start in range(0, len(wanted), size):
        chunk = wanted[start:start + size]
        yield f"account_id IN ({', '.join('?' * len(chunk))})", chunk


class UnlinkMark(NamedTuple):
    account_id: str
    at: datetime
    why: str  # "unlink" (a person unlinked it) or "login" (the account was logged in again)
    client_id: str | None  # the registration of the session the place held, if it had one


@dataclass(frozen=True)
class RefreshLogEntry:
    account_id: str
    at: datetime
    outcome: str  # an Outcome value
    classification: str | None = None
    duration_ms: int | None = None
    http_status: int | None = None
    message: str | None = None


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def touch_updated(account: Account, now: datetime) -> None:
    account.updated_at = now
    if account.created_at is None:
        account.created_at = now
