"""The accounts table, and what remembers a login across tokens: its lineage (refresh tokens
by fingerprint) and the logins a person removed (`forgotten`)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from kiro_tui.core.errors import StoreError
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import ACCOUNT_FIELDS, Account, Mode
from kiro_tui.core.store.codecs import row_problem, row_to_account, to_column
from kiro_tui.core.store.opening import StoreFile
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp

log = logging.getLogger("kiro_tui.store")

LINEAGE_KEEP = 500
"""Refresh tokens remembered per account (by fingerprint): enough to recognise a copy that
fell weeks behind (a tool not run for a while) as the same login."""


@dataclass(frozen=True)
class UnreadableRow:
    """A stored account that cannot be turned back into an Account (hand-edited, damaged)."""

    account_id: str
    reason: str

    def describe(self) -> str:
        return (f"account {self.account_id} cannot be read: {self.reason}; "
                f"`kiro-tui remove {self.account_id}` removes it")


class AccountRows(StoreFile):
    """Accounts by id, their lineage, and the logins removed from kiro-tui."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        super().__init__(path, connection)
        self.unreadable: list[UnreadableRow] = []  # rows the last full read had to leave out
        self._logged_unreadable: set[UnreadableRow] = set()

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
                accounts.append(row_to_account(row))
            except Exception as exc:  # noqa: BLE001 - any damage to one row is that row's problem
                unreadable.append(UnreadableRow(str(row[0]), row_problem(row, exc)))
        if ids is None:
            self.unreadable = unreadable
        for problem in unreadable:  # callers report it (list, the TUI, refresh); the log once per row
            if problem not in self._logged_unreadable:
                self._logged_unreadable.add(problem)
                log.info("%s", problem.describe())
        return accounts, unreadable

    def digests(self) -> dict[str, int]:
        """Each account's row as one number (a hash of every stored column): what changed
        between two reads is told without keeping a second copy of every account and its tokens."""
        columns = ", ".join(ACCOUNT_FIELDS)
        return {row[0]: hash(row) for row in self._db.execute(f"SELECT {columns} FROM accounts")}

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
        try:  # an id, as scripts give it: one row looked at, not every account's
            if self._db.execute("SELECT 1 FROM accounts WHERE id = ?", (prefix,)).fetchone():
                return prefix
        except UnicodeEncodeError:  # bytes a terminal passed that are not UTF-8: no id, so no match
            pass
        rows = self._db.execute("SELECT id, nickname, email FROM accounts ORDER BY id").fetchall()
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
        params = [to_column(name, values[name]) for name in ACCOUNT_FIELDS]
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
        params = [to_column(name, value) for name, value in changes.items()] + [account_id]
        sql = f"UPDATE accounts SET {assignments} WHERE id = ?"
        tokens = [str(changes["refresh_token"])] if changes.get("refresh_token") else []
        if conn is not None:
            conn.execute(sql, params)
            self.add_lineage(conn, account_id, tokens)
            return
        with self.transaction() as tx:
            tx.execute(sql, params)
            self.add_lineage(tx, account_id, tokens)

    def holds_print(self, conn: sqlite3.Connection, account_id: str, token_print: str | None) -> bool:
        """Whether the row exists and holds the refresh token with this fingerprint (None: none),
        read in `conn`'s transaction: the compare of a compare-and-swap written in it."""
        row = conn.execute("SELECT refresh_token FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return row is not None and fingerprint(row[0]) == token_print

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
        return self.print_owner(fingerprint(refresh_token)) if refresh_token else None

    def print_owners(self, token_prints: Iterable[str | None]) -> dict[str, str]:
        """`lineage_owner` of many fingerprints at once (those nobody owns are left out)."""
        wanted = tuple({token_print for token_print in token_prints if token_print})
        owners: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            owners.update(self._db.execute(
                f"SELECT fingerprint, account_id FROM lineage WHERE fingerprint IN ({', '.join('?' * len(chunk))})",
                chunk).fetchall())
        return owners

    def print_owner(self, token_print: str | None) -> str | None:
        """`lineage_owner` by the token's fingerprint."""
        return self.print_owners([token_print]).get(token_print) if token_print else None

    def lineage(self, account_id: str) -> dict[str, int]:
        """The account's whole lineage at once: each token's fingerprint and its rank (a token
        added later ranks higher: a refresh adds the spent token, then the new one), for a
        compare-and-swap asked in a worker thread with no query there."""
        return dict(self._db.execute("SELECT fingerprint, rowid FROM lineage WHERE account_id = ?",
                                     (account_id,)).fetchall())

    def in_lineage(self, account_id: str, token_print: str | None) -> bool:
        if not token_print:
            return False
        row = self._db.execute("SELECT 1 FROM lineage WHERE fingerprint = ? AND account_id = ?",
                               (token_print, account_id)).fetchone()
        return row is not None


def account_id_in(account_ids: Iterable[str], size: int = 500) -> Iterator[tuple[str, tuple[str, ...]]]:
    """`account_id IN (?, …)` and its values, in chunks under SQLite's limit on parameters."""
    wanted = tuple(account_ids)
    for start in range(0, len(wanted), size):
        chunk = wanted[start:start + size]
        yield f"account_id IN ({', '.join('?' * len(chunk))})", chunk


def touch_updated(account: Account, now: datetime) -> None:
    account.updated_at = now
    if account.created_at is None:
        account.created_at = now
