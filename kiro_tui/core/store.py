"""kiro-tui's durable account store: one SQLite file, WAL, private to the user.

Every write is one transaction, so a crash leaves either the old row or the new one.
The schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]` upgrades version i to i+1.
A store from a newer kiro-tui, or a corrupt one, is refused and never written to.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kiro_tui.core.errors import StoreError
from kiro_tui.core.models import ACCOUNT_FIELDS, Account, AuthMethod, Health, Mode
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp

log = logging.getLogger("kiro_tui.store")

MIGRATIONS: tuple[str, ...] = (
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
)
REFRESH_LOG_KEEP = 50

SCHEMA_VERSION = len(MIGRATIONS)
_DATETIME_FIELDS = {
    "expires_at",
    "client_secret_expires_at",
    "last_refresh_at",
    "next_refresh_at",
    "created_at",
    "updated_at",
}
_ENUM_FIELDS = {"auth_method": AuthMethod, "mode": Mode, "health": Health}
_JSON_FIELDS = {"scopes", "extra"}
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def _to_column(name: str, value: object) -> object:
    if value is None:
        return None
    if name in _DATETIME_FIELDS:
        return format_timestamp(value)  # type: ignore[arg-type]
    if name in _JSON_FIELDS:
        return json.dumps(value)
    if name in _ENUM_FIELDS:
        return str(value)
    return value


def _from_column(name: str, value: object) -> object:
    if value is None:
        return {} if name == "extra" else None
    if name in _DATETIME_FIELDS:
        try:  # our own format: the fast path (Python 3.11 reads the Z and ≤ 6 fraction digits)
            return datetime.fromisoformat(value)  # type: ignore[arg-type]
        except ValueError:
            return parse_timestamp(value)
    if name in _JSON_FIELDS:
        return json.loads(value)  # type: ignore[arg-type]
    if name in _ENUM_FIELDS:
        return _ENUM_FIELDS[name](value)
    return value


def _ensure_private(path: Path, mode: int, fixed: list[str]) -> None:
    """Tighten permissions that are looser than `mode` (never loosen them), and say so."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        os.chmod(path, mode)
        fixed.append(f"{path} was readable by others (mode {current:04o}); set it to {mode:04o}")


class AccountStore:
    """Accounts by id. Open with `AccountStore.open(path)`; close when done."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.permission_fixes: list[str] = []  # warnings for the user: modes we had to tighten
        self._db = connection
        self._durable = True
        self.commits = 0  # our own commits; PRAGMA data_version counts everyone else's

    @classmethod
    def open(cls, path: Path) -> AccountStore:
        path = Path(path)
        fixed: list[str] = []
        try:
            path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            _ensure_private(path.parent, _DIR_MODE, fixed)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, _FILE_MODE))
            _ensure_private(path, _FILE_MODE, fixed)
        except PermissionError as exc:
            raise StoreError(
                f"cannot use the account store {path}: permission denied; "
                "fix the folder's permissions or set XDG_DATA_HOME to a folder you own"
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot use the account store {path}: {exc.strerror}") from exc
        try:
            connection = sqlite3.connect(path, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the account store {path}: {exc}") from exc
        store = cls(path, connection)
        try:
            store._prepare()
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreError(
                f"the account store {path} is not a readable kiro-tui database ({exc}); "
                f"move it aside (e.g. `mv {path} {path}.bak`) and run `kiro-tui import` again"
            ) from exc
        except StoreError:
            connection.close()
            raise
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                _ensure_private(side, _FILE_MODE, fixed)
        store.permission_fixes = fixed
        for message in fixed:
            log.warning("%s", message)
        return store

    def _prepare(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the account store {self.path} was written by a newer kiro-tui "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade kiro-tui, "
                "or move the file aside to start afresh"
            )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        while version < SCHEMA_VERSION:
            with self.transaction():
                for statement in _split_sql(MIGRATIONS[version]):
                    self._db.execute(statement)
                version += 1
                self._db.execute(f"PRAGMA user_version={version}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AccountStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: takes the write lock up front so two writers never interleave.

        Durable commits (the default) are fsynced (synchronous=FULL): a rotated refresh token is
        the only live copy there is and must survive a power cut. Leases pass durable=False: a
        lost lease simply runs out.
        """
        if durable != self._durable:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
            self.commits += 1

    def change_marker(self) -> tuple[int, int]:
        """Changes whenever anyone, this connection or another process, commits: a cheap way
        for a screen to know when to re-read."""
        return self.commits, self.data_version()

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def accounts(self) -> list[Account]:
        rows = self._db.execute(f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM accounts ORDER BY created_at, id")
        return [self._row_to_account(row) for row in rows]

    def accounts_marked(self, extra_key: str) -> list[Account]:
        """Accounts whose `extra` holds `extra_key` (cheap: filtered in SQL)."""
        rows = self._db.execute(
            f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM accounts WHERE json_extract(extra, ?) IS NOT NULL",
            (f"$.{extra_key}",),
        )
        return [self._row_to_account(row) for row in rows]

    def get(self, account_id: str) -> Account | None:
        row = self._db.execute(
            f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        return self._row_to_account(row) if row else None

    def resolve_id(self, prefix: str) -> Account:
        """An account by its id or an unambiguous prefix of it, as people type ids."""
        exact = self.get(prefix)
        if exact:
            return exact
        matches = [a for a in self.accounts() if a.id.startswith(prefix)] if prefix else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise StoreError(f"no account with id {prefix!r}; `kiro-tui list` shows the ids")
        raise StoreError(
            f"id {prefix!r} matches {len(matches)} accounts "
            f"({', '.join(a.id for a in matches)}); type more of it"
        )

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
            return
        with self.transaction() as tx:
            tx.execute(sql, params)

    def update(self, account_id: str, conn: sqlite3.Connection | None = None, **changes: object) -> None:
        """Change some fields of one row."""
        unknown = set(changes) - set(ACCOUNT_FIELDS)
        if unknown:
            raise ValueError(f"unknown account fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        params = [_to_column(name, value) for name, value in changes.items()] + [account_id]
        sql = f"UPDATE accounts SET {assignments} WHERE id = ?"
        if conn is not None:
            conn.execute(sql, params)
            return
        with self.transaction() as tx:
            tx.execute(sql, params)

    def set_mode(self, account: Account, mode: Mode) -> None:
        """Change how an account coexists with kiro-cli (see docs/accounts-and-modes.md)."""
        if mode not in account.allowed_modes:
            raise StoreError(
                f"{account.id} ({account.name}) was not imported from kiro-cli, so only `own` applies to it"
            )
        self.update(account.id, mode=mode, sync_error=None)

    def delete(self, account_id: str) -> bool:
        with self.transaction() as tx:
            return tx.execute("DELETE FROM accounts WHERE id = ?", (account_id,)).rowcount > 0

    def preference(self, key: str) -> object:
        """A remembered choice (e.g. the last login's start URL), JSON-decoded; None if unset."""
        row = self._db.execute("SELECT value FROM preferences WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_preference(self, key: str, value: object) -> None:
        with self.transaction(durable=False) as tx:
            tx.execute("INSERT OR REPLACE INTO preferences (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def data_version(self) -> int:
        """Changes whenever another connection (another kiro-tui process) commits."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM accounts")}

    # ------------------------------------------------------------ refresh history

    def log_refresh(self, conn: sqlite3.Connection, entry: RefreshLogEntry) -> None:
        """Append one outcome and keep only the newest REFRESH_LOG_KEEP for that account."""
        conn.execute(
            "INSERT INTO refresh_log (account_id, at, outcome, classification, duration_ms, http_status, message)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.account_id, format_timestamp(entry.at), entry.outcome, entry.classification,
             entry.duration_ms, entry.http_status, entry.message),
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
        return [RefreshLogEntry(r[0], parse_timestamp(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def refresh_counts(self) -> dict[str, tuple[int, int]]:
        """(successes, failures) in the kept history, by account."""
        rows = self._db.execute(
            "SELECT account_id, SUM(outcome = 'refreshed' OR outcome = 'adopted'), "
            "SUM(outcome = 'failed') FROM refresh_log GROUP BY account_id"
        )
        return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in rows}

    # ------------------------------------------------------------ leases

    def acquire_lease(self, account_id: str, owner: str, now: datetime, seconds: float) -> bool:
        """Take (or renew) the right to refresh one account, across processes."""
        until = format_timestamp(now + timedelta(seconds=seconds))
        with self.transaction(durable=False) as tx:
            row = tx.execute("SELECT owner, until FROM leases WHERE account_id = ?", (account_id,)).fetchone()
            if row and row[0] != owner and parse_timestamp(row[1]) > now:
                return False
            tx.execute("INSERT OR REPLACE INTO leases (account_id, owner, until) VALUES (?, ?, ?)",
                       (account_id, owner, until))
            return True

    def refreshing_ids(self, now: datetime) -> set[str]:
        """Accounts some kiro-tui process is refreshing right now (a lease that has not run out)."""
        rows = self._db.execute("SELECT account_id, until FROM leases").fetchall()
        return {row[0] for row in rows if parse_timestamp(row[1]) > now}

    def release_lease(self, account_id: str, owner: str) -> None:
        with self.transaction(durable=False) as tx:
            tx.execute("DELETE FROM leases WHERE account_id = ? AND owner = ?", (account_id, owner))

    @staticmethod
    def _row_to_account(row: tuple[object, ...]) -> Account:
        values = {name: _from_column(name, value) for name, value in zip(ACCOUNT_FIELDS, row, strict=True)}
        return Account(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RefreshLogEntry:
    account_id: str
    at: datetime
    outcome: str  # refreshed | adopted | failed | skipped | logged-in
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
