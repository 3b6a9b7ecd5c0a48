"""What happened to each account: its refresh history (`refresh_log`) and its last usage."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kiro_tui.core.models import Outcome, UsageRecord
from kiro_tui.core.store.accounts import account_id_in
from kiro_tui.core.store.codecs import storable_text, time_or_none
from kiro_tui.core.store.opening import StoreFile
from kiro_tui.core.timefmt import format_timestamp

REFRESH_LOG_KEEP = 50


@dataclass(frozen=True)
class RefreshLogEntry:
    account_id: str
    at: datetime
    outcome: str  # an Outcome value
    classification: str | None = None
    duration_ms: int | None = None
    http_status: int | None = None
    message: str | None = None


class History(StoreFile):
    """Each account's refresh outcomes (the newest REFRESH_LOG_KEEP) and usage."""

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
            at = time_or_none(r[1])
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

    def usage(self, account_ids: Iterable[str] | None = None) -> dict[str, UsageRecord]:
        columns = "account_id, used, usage_limit, resets_at, subscription, fetched_at, error, error_at"
        if account_ids is None:
            rows = self._db.execute(f"SELECT {columns} FROM usage").fetchall()
        else:
            rows = [row for where, chunk in account_id_in(account_ids)
                    for row in self._db.execute(f"SELECT {columns} FROM usage WHERE {where}", chunk).fetchall()]
        return {
            r[0]: UsageRecord(r[1], r[2], time_or_none(r[3]), r[4], time_or_none(r[5]), r[6], time_or_none(r[7]))
            for r in rows
        }

    def save_usage(self, account_id: str, record: UsageRecord) -> None:
        with self.transaction(durable=False, places=False) as tx:
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
