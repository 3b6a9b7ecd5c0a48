"""Leases: which kiro-tui process refreshes an account right now, across processes; and the
preferences (remembered choices)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable
from concurrent.futures import Future
from datetime import datetime, timedelta
from functools import partial

from kiro_tui.core.store.codecs import time_or_none
from kiro_tui.core.store.opening import StoreFile
from kiro_tui.core.timefmt import format_timestamp

log = logging.getLogger("kiro_tui.store")


class Leases(StoreFile):
    """The right to refresh one account, held by one process at a time."""

    async def acquire_lease(self, account_id: str, owner: str, now: datetime, seconds: float) -> bool:
        """Take (or renew) the right to refresh one account, across processes: on the store's
        writer, off the loop, with no fsync of its own (a lost lease simply runs out)."""
        return await self.writer.run(lambda tx: _take_lease(tx, account_id, owner, now, seconds), durable=False,
                                     see_through=True)  # (a caller cancelled meanwhile still gives it back)

    def refreshing_ids(self, now: datetime, besides: str | None = None) -> set[str]:
        """Accounts some kiro-tui process is refreshing right now (a lease that has not run out);
        `besides`: not this owner's, which knows its own refreshes better than its leases (a
        lease is given back by the store's writer a moment after the refresh ended)."""
        rows = self._db.execute("SELECT account_id, until, owner FROM leases").fetchall()
        return {row[0] for row in rows
                if (time_or_none(row[1]) or now) > now and row[2] != besides and not _owner_gone(row[2])}

    def release_lease(self, account_id: str, owner: str) -> None:
        """Give the lease back: queued on the store's writer, ahead of anything this process
        writes next, never waited for (a process knows its own refreshes without its leases; a
        failure is logged, and the lease runs out by itself within a minute)."""
        released = self.writer.submit(lambda tx: _give_back_lease(tx, account_id, owner), durable=False)
        released.add_done_callback(partial(_lease_given_back, account_id))

    def release_leases(self, owner: str, keep: Iterable[str] = ()) -> None:
        """Every lease this process holds but those of the accounts it is working on (`keep`):
        what failed releases left behind, once the store takes writes again."""
        keep = set(keep)
        with self.transaction(durable=False) as tx:
            held = [row[0] for row in tx.execute("SELECT account_id FROM leases WHERE owner = ?", (owner,))]
            tx.executemany("DELETE FROM leases WHERE account_id = ? AND owner = ?",
                           [(account_id, owner) for account_id in held if account_id not in keep])


class Preferences(StoreFile):
    """Remembered choices (the last login's start URL, ...), JSON-encoded by key."""

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


def _take_lease(tx: sqlite3.Connection, account_id: str, owner: str, now: datetime, seconds: float) -> bool:
    """In the caller's transaction: the lease on one account, unless another live process holds it."""
    row = tx.execute("SELECT owner, until FROM leases WHERE account_id = ?", (account_id,)).fetchone()
    if row and row[0] != owner and (time_or_none(row[1]) or now) > now and not _owner_gone(row[0]):
        return False
    tx.execute("INSERT OR REPLACE INTO leases (account_id, owner, until) VALUES (?, ?, ?)",
               (account_id, owner, format_timestamp(now + timedelta(seconds=seconds))))
    return True


def _give_back_lease(tx: sqlite3.Connection, account_id: str, owner: str) -> None:
    tx.execute("DELETE FROM leases WHERE account_id = ? AND owner = ?", (account_id, owner))


def _lease_given_back(account_id: str, released: Future[None]) -> None:
    exc = released.exception()
    if exc is not None:
        log.warning("could not release the lease on %s: %s", account_id, exc)


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


def _write_preference(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO preferences (key, value) VALUES (?, ?)", (key, json.dumps(value)))
