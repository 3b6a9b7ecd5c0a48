"""The one write kiro-tui ever makes into kiro-cli's database: a refreshed token, in `sync` mode.

Compare-and-swap: inside a short BEGIN IMMEDIATE, the row is rewritten only if it holds a
refresh token of the account's lineage (the one we spent, or an older one: a database moved
away and back, a write that failed), recognised by fingerprint. The JSON keeps every field
kiro-cli (or anyone) put there and only
changes `access_token`, `refresh_token`, `expires_at` (and a social login's `profile_arn`); it
is bound as TEXT, as kiro-cli's rusqlite reads only TEXT. The registration and every other key
are left alone. If kiro-cli moved on, or holds the lock past the timeout, we write nothing.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from kiro_tui.core.kiro_cli_format import dumps
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.timefmt import format_timestamp

DEFAULT_WRITE_TIMEOUT = 2.0


class WriteBack(StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"  # it already holds our token
    CHANGED = "changed"  # kiro-cli's row holds a token that is not of this account's lineage
    MISSING = "missing"  # the key is gone (kiro-cli logged out)
    LOCKED = "locked"  # kiro-cli held the lock past the timeout
    FAILED = "failed"  # the file could not be opened or written


@dataclass(frozen=True)
class WriteBackResult:
    outcome: WriteBack
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is WriteBack.WRITTEN


def write_back_token(
    db_path: Path,
    key: str,
    belongs: Callable[[str | None], bool],
    access_token: str,
    refresh_token: str,
    expires_at: datetime,
    profile_arn: str | None = None,
    timeout: float = DEFAULT_WRITE_TIMEOUT,
) -> WriteBackResult:
    uri = "file:" + urllib.parse.quote(str(Path(db_path).absolute())) + "?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        return WriteBackResult(WriteBack.FAILED, f"cannot open {db_path}: {exc}")
    try:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT value FROM auth_kv WHERE key = ?1", (key,)).fetchone()
        if row is None:
            conn.execute("ROLLBACK")
            return WriteBackResult(WriteBack.MISSING, f"{key} is no longer in kiro-cli's database")
        raw = row[0].decode("utf-8") if isinstance(row[0], bytes) else row[0]
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            value = None
        found = value.get("refresh_token") if isinstance(value, dict) else None
        held = fingerprint(found) if isinstance(found, str) else None
        if held is not None and held == fingerprint(refresh_token):
            conn.execute("ROLLBACK")
            return WriteBackResult(WriteBack.UNCHANGED)
        if not isinstance(value, dict) or not belongs(held):
            conn.execute("ROLLBACK")
            return WriteBackResult(WriteBack.CHANGED,
                                   f"kiro-cli's {key} holds a refresh token kiro-tui has not seen (another login, "
                                   "or refreshed by another tool)")
        value["access_token"] = access_token
        value["refresh_token"] = refresh_token
        value["expires_at"] = format_timestamp(expires_at)
        if profile_arn and "profile_arn" in value:
            value["profile_arn"] = profile_arn
        conn.execute("UPDATE auth_kv SET value = ?1 WHERE key = ?2", (dumps(value), key))
        conn.execute("COMMIT")
        return WriteBackResult(WriteBack.WRITTEN)
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if "locked" in str(exc) or "busy" in str(exc):
            return WriteBackResult(WriteBack.LOCKED, f"kiro-cli's database stayed locked for {timeout:g} s")
        return WriteBackResult(WriteBack.FAILED, f"cannot write {db_path}: {exc}")
    except sqlite3.Error as exc:
        return WriteBackResult(WriteBack.FAILED, f"cannot write {db_path}: {exc}")
    finally:
        conn.close()
