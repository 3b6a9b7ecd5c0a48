"""The store's schema: `MIGRATIONS[i]` upgrades version i to i+1 (`PRAGMA user_version`).

Existing stores must open: never change or reorder a migration, only append one at the end.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime

from kiro_tui.core.masking import fingerprint
from kiro_tui.core.store.codecs import storable_text
from kiro_tui.core.timefmt import TimestampError, format_timestamp, parse_timestamp

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
    # Unlink marks move from a JSON blob in `preferences` into a table of their own.
    lambda db: _move_unlink_marks(db),
)

SCHEMA_VERSION = len(MIGRATIONS)
OUR_TABLES = {"accounts"}
"""Tables any kiro-tui store has, whatever its version: without them it is not one."""

UNLINKED_PREFERENCE = "unlinked_places"
"""Where unlink marks were kept before they had a table: a JSON object in `preferences`, keyed
"kind<TAB>path<TAB>entry"."""


def _seed_lineage(db: sqlite3.Connection) -> None:
    """Migration 4: every stored refresh token starts its account's lineage."""
    now = format_timestamp(datetime.now().astimezone())
    rows = db.execute("SELECT id, refresh_token FROM accounts WHERE refresh_token IS NOT NULL").fetchall()
    db.executemany("INSERT OR IGNORE INTO lineage (fingerprint, account_id, at) VALUES (?, ?, ?)",
                   [(fingerprint(token), account_id, now) for account_id, token in rows if token])


def _move_unlink_marks(db: sqlite3.Connection) -> None:
    """Migration 10: the `unlinked` table, filled from the old JSON preference. A mark that
    could not be read then (no account, no time) was no mark: it is dropped, not carried."""
    db.execute("""
        CREATE TABLE unlinked (
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            entry TEXT NOT NULL DEFAULT '',
            account_id TEXT NOT NULL,
            at TEXT NOT NULL,
            why TEXT NOT NULL,
            client_id TEXT,
            PRIMARY KEY (kind, path, entry)
        )""")
    row = db.execute("SELECT value FROM preferences WHERE key = ?", (UNLINKED_PREFERENCE,)).fetchone()
    try:
        marks = json.loads(row[0]) if row else {}
    except ValueError:
        marks = {}
    rows = []
    for key, mark in (marks.items() if isinstance(marks, dict) else ()):
        kind, _, rest = str(key).partition("\t")
        path, _, entry = rest.rpartition("\t")
        if not isinstance(mark, dict) or not kind or not path:
            continue
        try:
            at = format_timestamp(parse_timestamp(mark["at"]))
            account_id = str(mark["account"])
        except (KeyError, ValueError, TypeError, TimestampError):
            continue
        client_id = mark.get("client_id")
        texts = {"kind": kind, "path": path, "entry": entry, "account_id": account_id, "at": at,
                 "why": str(mark.get("why") or "unlink"),
                 "client_id": client_id if isinstance(client_id, str) else None}
        rows.append(tuple(storable_text(name, text) if text is not None else None for name, text in texts.items()))
    db.executemany("INSERT OR REPLACE INTO unlinked (kind, path, entry, account_id, at, why, client_id)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("DELETE FROM preferences WHERE key = ?", (UNLINKED_PREFERENCE,))


def split_sql(script: str) -> list[str]:
    """A migration's statements, one by one (each runs inside the migration's transaction)."""
    return [s.strip() for s in script.split(";") if s.strip()]
