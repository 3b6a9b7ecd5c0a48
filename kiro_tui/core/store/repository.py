"""AccountStore: the store file (`opening.py`) with every table's reads and writes."""

from __future__ import annotations

import logging
import sqlite3

from kiro_tui.core.masking import fingerprint
from kiro_tui.core.store.accounts import AccountRows
from kiro_tui.core.store.history import History
from kiro_tui.core.store.leases import Leases, Preferences
from kiro_tui.core.store.places import PlaceRows

log = logging.getLogger("kiro_tui.store")


class AccountStore(AccountRows, PlaceRows, History, Leases, Preferences):
    """Accounts by id. Open with `AccountStore.open(path)`; close when done.

    The connection may be handed to another thread (the TUI's engine runs on its own), but
    it is used by one thread at a time."""

    def reopen_if_replaced(self) -> list[str] | None:
        """When the file was replaced: reopen the one now at the path (making one if it is gone)
        and carry into it every account whose token here is newer than there, with its places and
        lineage. Returns the ids carried over (None: not replaced). Raises StoreError when the new
        file cannot be used; this connection stays open on the old one then."""
        if not self.replaced():
            return None
        self.stop_writer()  # what it has queued or under way lands in the old file, carried below
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
        self.place_commits += 1  # (what kept the old file's places stands for no other)
        self.commits += 1  # (nor what was read from it: its data_version counted another file)
        self._seen = None  # (nor its generations): `others_committed` says yes once
        with self._own_lock:
            self._own.clear()
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
