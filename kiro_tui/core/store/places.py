"""The places of each account, what each place held when last read (`place_reads`), and the
places a person detached from an account (`unlinked`)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from kiro_tui.core.models import Place, PlaceRole, PlaceState
from kiro_tui.core.store.accounts import account_id_in
from kiro_tui.core.store.codecs import storable_text, time_or_none
from kiro_tui.core.store.opening import StoreFile
from kiro_tui.core.timefmt import format_timestamp

log = logging.getLogger("kiro_tui.store")


class UnlinkMark(NamedTuple):
    account_id: str
    at: datetime
    why: str  # "unlink" (a person unlinked it) or "login" (the account was logged in again)
    client_id: str | None  # the registration of the session the place held, if it had one


class PlaceRows(StoreFile):
    """Where each account's copies live, and what the places held when last read."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        super().__init__(path, connection)
        self._every_place: tuple[tuple[int, int], list[Place]] | None = None  # ((place_commits, data_version), places)

    def places(self, accounts: str | Iterable[str] | None = None, tx: sqlite3.Connection | None = None) -> list[Place]:
        """Every place (of one account, or of these accounts). Every place is kept between
        calls until someone commits: the watch pass asks each pass, and mostly nothing changed.
        `tx`: one account's, read in that transaction (the store writer's, in a job)."""
        if tx is not None and isinstance(accounts, str):
            return self._places_where("account_id = ?", (accounts,), tx)
        if accounts is None:
            if self._db.in_transaction:  # our own uncommitted changes are not in the kept list
                return self._places_where("1", ())
            marker = self.places_version()
            if self._every_place is None or self._every_place[0] != marker:
                self._every_place = (marker, self._places_where("1", ()))
            return list(self._every_place[1])
        if isinstance(accounts, str):
            return self._places_where("account_id = ?", (accounts,))
        return [place for where, chunk in account_id_in(accounts) for place in self._places_where(where, chunk)]

    def places_version(self) -> tuple[int, int]:
        """Changes whenever the places may have: a commit of ours that may touch them, or any
        other process's commit."""
        return self.place_commits, self._db.execute("PRAGMA data_version").fetchone()[0]

    def place_at(self, kind: str, path: str, entry: str = "") -> Place | None:
        return next(iter(self._places_where("kind = ? AND path = ? AND entry = ?", (kind, path, entry))), None)

    def _places_where(self, where: str, params: tuple[object, ...],
                      db: sqlite3.Connection | None = None) -> list[Place]:
        rows = (db or self._db).execute(
            "SELECT account_id, kind, path, entry, role, state, detail, pending_from, written_at, written_print"
            f" FROM places WHERE {where} ORDER BY id", params).fetchall()
        places = []
        roles, states = PlaceRole._value2member_map_, PlaceState._value2member_map_  # (a call per place)
        for row in rows:
            role, state = roles.get(row[4]), states.get(row[5])
            if not isinstance(role, PlaceRole) or not isinstance(state, PlaceState):
                log.warning("place %s of account %s has an unknown role or state; ignored", row[2], row[0])
                continue
            places.append(Place(row[0], row[1], row[2], row[3], role, state, row[6], row[7],
                                time_or_none(row[8]), row[9]))
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

    def update_place(self, conn: sqlite3.Connection, place: Place) -> None:
        """Record the state of a place that is still this account's (never adds one back: a place
        unlinked, or moved to another account by `use`, while it was being written stays so)."""
        conn.execute(
            "UPDATE places SET state = ?, detail = ?, pending_from = ?, written_at = ?, written_print = ?"
            " WHERE kind = ? AND path = ? AND entry = ? AND account_id = ?",
            (place.state.value, storable_text("detail", place.detail) if place.detail else None, place.pending_from,
             format_timestamp(place.written_at) if place.written_at else None, place.written_print,
             place.kind, place.path, place.entry, place.account_id),
        )

    def delete_place(self, conn: sqlite3.Connection, place: Place) -> None:
        conn.execute("DELETE FROM places WHERE kind = ? AND path = ? AND entry = ?", place.address)

    def place_reads(self) -> dict[tuple[str, str, str], tuple[str, str | None]]:
        """What each place address held when last read: (the file's signature then, the
        fingerprint of the refresh token found, None when the entry was not there)."""
        return {(kind, path, entry): (signature, token_print) for kind, path, entry, signature, token_print
                in self._db.execute("SELECT kind, path, entry, signature, token_print FROM place_reads")}

    def save_place_reads(self, reads: dict[tuple[str, str, str], tuple[str, str | None]],
                         tx: sqlite3.Connection | None = None) -> None:
        """Remember what these places held (a cache: no fsync of its own; a lost row is read
        again), in the caller's transaction `tx` when it has one: in a savepoint there, so a
        cache row that cannot be written never costs the caller's own commit."""
        rows = [(*address, signature, token_print) for address, (signature, token_print) in reads.items()]
        sql = "INSERT OR REPLACE INTO place_reads (kind, path, entry, signature, token_print) VALUES (?, ?, ?, ?, ?)"
        if tx is not None:
            tx.execute("SAVEPOINT place_reads")
            try:
                tx.executemany(sql, rows)
            except sqlite3.Error as exc:
                tx.execute("ROLLBACK TO place_reads")
                log.info("cannot remember what the places hold: %s", exc)
            tx.execute("RELEASE place_reads")
            return
        with self.transaction(durable=False, places=False) as own:
            own.executemany(sql, rows)

    # ------------------------------------------------------------ unlink marks

    def unlinked(self, kind: str, path: str, entry: str = "") -> UnlinkMark | None:
        """How this place was detached from an account (a person unlinked it, or logged in again),
        if it was: an import does not make the same session there a place of it again."""
        row = self._db.execute("SELECT account_id, at, why, client_id FROM unlinked"
                               " WHERE kind = ? AND path = ? AND entry = ?", _address(kind, path, entry)).fetchone()
        at = time_or_none(row[1]) if row else None
        return UnlinkMark(row[0], at, row[2], row[3]) if row and at is not None else None

    def mark_unlinked(self, place: Place, at: datetime | None, unlinked: bool = True, why: str = "unlink",
                      client_id: str | None = None) -> None:
        """Remember (or, linked again, forget) that this place was detached from its account, and
        the client registration of the session it held (None for a login without one)."""
        address = _address(place.kind, place.path, place.entry)
        with self.transaction(durable=False) as tx:
            if unlinked and at is not None:
                tx.execute("INSERT OR REPLACE INTO unlinked (kind, path, entry, account_id, at, why, client_id)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (*address, place.account_id, format_timestamp(at), why,
                            storable_text("client_id", client_id) if client_id else None))
            else:
                tx.execute("DELETE FROM unlinked WHERE kind = ? AND path = ? AND entry = ?", address)


def _address(kind: str, path: str, entry: str) -> tuple[str, str, str]:
    """A place's address as stored (text SQLite can hold, as `save_place` stores it)."""
    return kind, storable_text("path", path), storable_text("entry", entry)
