"""An account's places kept in step with the store, around each refresh and every watch pass.

- Before a refresh, the places that hold copies of the token are read: a tool there that
  refreshed by itself hands over its newer token with no network call (`adopt_newer`). A file
  that looks as it did when it was last found or written holding this token is not read
  (`PlaceReads`, kept by the store).
- After a commit, an account's places are written one after another in one job of the place
  writes' lane (`lane`: a few accounts at once, on its threads or, in a burst, in a process of
  their own; compare-and-swap on the account's token lineage, `place_writes.may_replace`), their
  folders fsynced at the end; what the job answers is remembered here, and the places' states
  recorded in one commit; a place that cannot be written now stays pending and is retried.
- Every watch pass, a place a tool rewrote since the last pass (`place_signature`, one stat)
  is read at once, so a newer token there reaches the other places without waiting for
  kiro-tui's own refresh. Where the kernel tells which folders changed (core/file_events.py),
  only the files in those folders are stat-ed; every file, every `FULL_LOOK_EVERY` passes.

Taking an account for this work (lock and lease) is the refresher's: see `Refresher`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from kiro_tui.core.clock import Clock
from kiro_tui.core.errors import StoreError
from kiro_tui.core.identity import is_spent, merge_login, same_login, takes_over
from kiro_tui.core.lane import Lane
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, Health, Mode, Outcome, Place, PlaceRole, PlaceState
from kiro_tui.core.place_reads import LOOK_AGAIN, PlaceReads, is_database
from kiro_tui.core.place_worker import PlaceWorkerGone
from kiro_tui.core.place_writes import Written, checked_signature, signature_of, write_files
from kiro_tui.core.places import PlaceError, PlaceLogin, TokenCopy, WriteOutcome, WriteResult, place_format
from kiro_tui.core.places.base import PlaceSignature, place_signature
from kiro_tui.core.store import AccountStore, RefreshLogEntry
from kiro_tui.core.timefmt import format_timestamp

if TYPE_CHECKING:
    from kiro_tui.core.file_events import FolderEvents

log = logging.getLogger("kiro_tui.refresh")

FULL_LOOK_EVERY = 20
"""Watch passes between two looks at every place file, even those in folders where the kernel
reported nothing (a network file system may not report a change made on another machine)."""

class PlaceSync:
    """The place work of one refresher: what it reads and writes for an account, and how each
    place file looked at the last pass (so a tool's rewrite is noticed and kiro-tui's own is not)."""

    def __init__(self, store: AccountStore, clock: Clock, writeback_timeout: float) -> None:
        self.store, self.clock, self.writeback_timeout = store, clock, writeback_timeout
        self._seen: dict[str, PlaceSignature] = {}
        """How each place file looked at the last pass (or just after kiro-tui wrote it)."""
        self._reads: PlaceReads | None = None
        """What each place held when last read or written (loaded at the first refresh)."""
        self._looked: dict[str, PlaceSignature] = {}
        """How each place file looks in this watch pass (`look_at_places`)."""
        self.looks = 0
        """Counts the changes to what the passes saw (`_looked` or `_seen`): while it and the
        places stay the same, a step of the watch pass that compares them finds nothing new."""
        self._looks_lock = threading.Lock()
        self._in_folder: dict[str, list[str]] = {}
        """The place files by folder, as of the last look at every file."""
        self._files: tuple[tuple[int, int], dict[str, bool]] | None = None
        """Every place file and whether it is a database, as of a places version: made again only
        when the places changed (a step per place, each pass, was most of a pass at 10,000)."""
        self._quiet: tuple[object, ...] | None = None
        """What `changed` last compared (the places' version, `looks`): nothing new since."""
        self._events: FolderEvents | None = None
        """Which folders changed (inotify), from the first watch pass on; None before it."""
        self._pending: tuple[tuple[int, int], set[str]] | None = None
        """The accounts with a pending place, as of a places version."""
        self._passes = 0
        self._events_lock = threading.Lock()
        self._closed = False
        self.lane = Lane("kiro-tui places")
        """Where the place writes run: a few accounts' at a time, each account's on one thread."""

    def places_to_read(self, account: Account) -> list[Place]:
        """Copies a tool may have refreshed by itself: sources (unless own mode) and links."""
        return [p for p in self.store.places(account.id)
                if p.role is PlaceRole.LINK or account.mode is not Mode.OWN]

    def places_to_write(self, account: Account, tx: sqlite3.Connection | None = None) -> list[Place]:
        """Copies kiro-tui keeps fresh: links always, sources in sync mode; never a place kiro-tui
        must not write (opencode's kiro.db: opencode saves over it; it is synced through kiro-cli).
        `tx`: read in that transaction."""
        return [p for p in self.store.places(account.id, tx)
                if (p.role is PlaceRole.LINK or account.mode is Mode.SYNC) and writable(p.kind)]

    def left_stale(self, account: Account, written: list[Place], tx: sqlite3.Connection | None = None) -> list[Place]:
        """The account's other places, marked as holding an older token: kiro-tui does not write
        them (opencode's kiro.db, a source in own or follow mode), so after the token moved on they
        are never "in-sync"."""
        addresses = {p.address for p in written}
        return [replace(p, state=PlaceState.STALE, pending_from=None,
                        detail="holds an older token: kiro-tui does not write this place"
                        + ("" if writable(p.kind) else f" ({p.kind})"))
                for p in self.store.places(account.id, tx)
                if p.address not in addresses and p.state in (PlaceState.IN_SYNC, PlaceState.ADOPTED)]

    async def adopt_newer(self, account: Account) -> str | None:
        """If a place holds a newer token of this login, take it (no network call), mark the
        account's other places pending and write them; returns the kind of place it came from."""
        places = self.places_to_read(account)
        token_print = fingerprint(account.refresh_token)
        now = self.clock.now()

        def read(place: Place, reads: PlaceReads) -> PlaceLogin | PlaceError | None:
            signature = repr(checked_signature(place))
            if reads.remembered(place.address, signature) == (True, token_print):
                return None  # unchanged since it was found or written holding this token: nothing newer
            try:
                login = place_format(place.kind).read_entry(Path(place.path), place.entry, now)
            except PlaceError as exc:
                return exc
            reads.learn(place.address, signature, fingerprint(login.refresh_token) if login else None)
            return login

        reads = self.reads()
        found = await asyncio.to_thread(lambda: [read(place, reads) for place in places]) if places else []
        for place, login in zip(places, found, strict=True):
            if isinstance(login, PlaceError):
                log.info("%s: cannot read %s %s before refreshing: %s", account.id, place.kind, place.path, login)
                continue
            if login is None or not login.refresh_token:
                continue
            ours = login.refresh_token == account.refresh_token
            if ours and login.expires_at <= account.expires_at:
                continue  # the place holds what we hold
            spent = is_spent(self.store, account, login)  # with `ours`: the token is of this lineage
            if not ((ours or spent or same_login(account, login)) and takes_over(account, login, spent)):
                continue
            replaced = fingerprint(account.refresh_token)
            merge_login(account, login, spent)
            account.sync_error = None
            account.last_refresh_at = self.clock.now()
            now = self.clock.now()
            # Every other copy still holds the token just replaced, which the tool has spent: mark
            # them pending with the adoption (as a refresh does), then write them.
            others = [replace(p, state=PlaceState.PENDING, pending_from=replaced,
                              detail=f"writing the token taken from {place.kind}")
                      for p in self.places_to_write(account) if p.address != place.address]
            marks = [replace(place, state=PlaceState.ADOPTED, pending_from=None,
                             detail=f"took its newer token ({format_timestamp(now)})"),
                     *others, *self.left_stale(account, [*others, place])]
            entry = RefreshLogEntry(account.id, now, Outcome.ADOPTED, message=f"newer token from {place.kind}")
            # The tool's token, now the only live one: committed before anything else is written.
            await self.store.writer.run(partial(self._commit_adoption, replace(account), marks, entry),
                                        see_through=True)
            await self.write_places(account, others)
            return place.kind
        return None

    def _commit_adoption(self, account: Account, marks: list[Place], entry: RefreshLogEntry,
                         tx: sqlite3.Connection) -> None:
        self.store.save(account, tx)
        for mark in marks:
            self.store.save_place(tx, mark)
        self.store.log_refresh(tx, entry)

    async def write_places(self, account: Account, places: list[Place] | None = None) -> list[WriteResult]:
        """Write the account's current token into its places (compare-and-swap on the lineage)
        and record each place's state. A place that cannot be written now stays pending."""
        if not account.refresh_token:
            return []
        targets = places if places is not None else self.places_to_write(account)
        copy = TokenCopy.of(account)
        copy_print = fingerprint(account.refresh_token)
        try:
            lineage = self.store.lineage(account.id)  # the account is this refresher's: it stays so meanwhile
        except (StoreError, sqlite3.Error) as exc:  # the places stay pending, written at a later pass
            log.warning("%s: not writing its places now: its token lineage cannot be read: %s", account.id, exc)
            return []
        reads = self.reads()
        job = partial(write_files, targets, copy, lineage, copy_print, self.writeback_timeout)
        # One hop to the writers' lane for all of them, one place after another, their folders
        # synced together at the end: a hop per file, several at once, made the writers' threads
        # and the event loop take the interpreter lock from each other (see `lane`).
        try:
            done = await self.lane.run(job) if targets else []
        except PlaceWorkerGone as exc:  # the places stay pending: written again at a later pass
            done = [Written(WriteResult(WriteOutcome.FAILED, str(exc))) for _ in targets]
        results = []
        for place, written in zip(targets, done, strict=True):
            if written.seen is not None:  # our own write: not a tool's change at the next look
                self._seen[place.path] = written.seen
                if place.path in self._looked:
                    self._looked[place.path] = written.seen
                self.count_change()
            if written.holds:
                reads.learn(place.address, repr(written.result.written), copy_print)
            results.append(written.result)
        for result in results:
            if result.outcome is WriteOutcome.WRITTEN and result.detail:  # e.g. a mode tightened to 0600
                log.warning("%s %s: %s", account.id, account.name, result.detail)
        await self._record_places(account, list(zip(targets, results, strict=True)))
        return results

    async def _record_places(self, account: Account, written: list[tuple[Place, WriteResult]]) -> None:
        """Each place's new state, in one commit. In sync needs no fsync of the store: the place
        was marked pending durably before it was written, so a crash that loses this record leaves
        it pending, and the next pass finds it holding the token already (unchanged). A place left
        pending or in error is recorded durably."""
        now = self.clock.now()
        sync_error = account.sync_error
        changes: list[tuple[Place, str | None]] = []  # the place's new record, the account's sync error then
        for place, result in written:
            state = result.state
            detail = None if state is PlaceState.IN_SYNC else _place_detail(place, result)
            holds_ours = state is PlaceState.IN_SYNC and account.refresh_token
            updated = replace(place, state=state, detail=detail,
                              pending_from=place.pending_from if state is PlaceState.PENDING else None,
                              written_at=now if result.outcome is WriteOutcome.WRITTEN else place.written_at,
                              written_print=fingerprint(account.refresh_token) if holds_ours
                              else place.written_print)
            error = None if state is PlaceState.IN_SYNC else f"out of sync: {detail}"
            if state is PlaceState.ERROR:
                error = f"out of sync: {detail}; kept kiro-tui's token"
            if updated == place and (place.role is not PlaceRole.SOURCE or sync_error == error):
                continue  # nothing to record (a place found already holding the token)
            if place.role is PlaceRole.SOURCE:
                sync_error = error
            changes.append((updated, error))
        reads = self.reads()
        if not changes:  # what was learned waits for the next commit (a commit of its own would
            return       # make every other kiro-tui process look at the store again)
        def record(tx: sqlite3.Connection) -> None:
            for updated, _ in changes:
                self.store.update_place(tx, updated)
            reads.save(tx)
            if any(p.role is PlaceRole.SOURCE for p, _ in changes):
                self.store.update(account.id, tx, sync_error=sync_error)

        try:
            await self.store.writer.run(record, durable=any(p.state is not PlaceState.IN_SYNC for p, _ in changes))
        except StoreError as exc:
            log.warning("%s: could not record the state of %s: %s", account.id,
                        ", ".join(p.path for p, _ in changes), exc)
            return
        account.sync_error = sync_error
        for _, error in changes:
            if error:
                log.warning("%s %s: %s", account.id, account.name, error)

    def reads(self) -> PlaceReads:
        """What each place held when last read or written, kept by the store: a place that looks as
        it did then is not read again before a refresh. Loaded once, on the store's thread (its
        connection is never used from two threads at once)."""
        if self._reads is None:
            try:
                self._reads = PlaceReads(self.store)
            except (StoreError, sqlite3.Error) as exc:  # nothing remembered: every place is read
                log.info("what the places held cannot be read from the store now: %s", exc)
                return PlaceReads(self.store, wanted=False)
        return self._reads

    def pending_accounts(self) -> set[str]:
        """Accounts with a place still pending (locked, missing, or after a failed write):
        found again only when the places changed."""
        version = self.store.places_version()
        if self._pending is None or self._pending[0] != version:
            self._pending = (version, {p.account_id for p in self.store.places() if p.state is PlaceState.PENDING})
        return set(self._pending[1])

    async def write_pending(self, account_id: str) -> None:
        """Write this account's pending places (the caller has the account to itself)."""
        try:
            account = self.store.get(account_id)
        except StoreError:
            return
        if account is None or account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED):
            return
        places = [p for p in self.places_to_write(account) if p.state is PlaceState.PENDING]
        if places:
            await self.write_places(account, places)

    def left_as_seen(self, path: str, signature: PlaceSignature) -> bool:
        """The file looks as kiro-tui last saw it, or as its own last write left it (which is no
        tool's change: the watch pass does not import a source again for it)."""
        return self._seen.get(path) == signature

    def count_change(self) -> None:
        """`looks` one more, from any thread (the lane's threads write places at once): exact
        under a lock, though a count one short would still show a change."""
        with self._looks_lock:
            self.looks += 1

    def saw_own_write(self, place: Place) -> None:
        """kiro-tui just wrote this place itself: not a tool's change at the next look."""
        self._seen[place.path] = signature_of(place)
        self.count_change()

    async def look_at_places(self) -> dict[str, PlaceSignature]:
        """How each place file looks now, shared by the watch pass's steps; kiro-tui's
        own writes keep it current. A file is stat-ed (with its -wal, for a database) when the
        kernel reports a change in its folder, when it cannot tell, when the file is new to the
        pass, and every `FULL_LOOK_EVERY` passes; otherwise it looks as it did at the last pass."""
        version = self.store.places_version()  # read first: a later commit makes the files again next pass
        if self._files is None or self._files[0] != version:
            kinds: dict[str, bool] = {}  # whether a kind is a database, asked once per kind
            databases: dict[str, bool] = {}
            for place in self.store.places():
                if place.kind not in kinds:
                    kinds[place.kind] = is_database(place.kind)
                databases.setdefault(place.path, kinds[place.kind])
            self._files = (version, databases)
        before = self._looked
        looked = await asyncio.to_thread(self._look, self._files[1])
        if looked is not before and looked != before:
            self.count_change()
        self._looked = looked
        return looked

    def _look(self, databases: dict[str, bool]) -> dict[str, PlaceSignature]:
        with self._events_lock:  # `close` waits for a look still running in its thread
            if self._closed:  # a look that began after `close`: no new descriptor, stat all
                return {path: place_signature(path, database) for path, database in databases.items()}
            if self._events is None:
                from kiro_tui.core.file_events import FolderEvents  # (ctypes: loaded by the watch alone)

                self._events = FolderEvents()
            return self._look_with(self._events, databases)

    def _look_with(self, events: FolderEvents, databases: dict[str, bool]) -> dict[str, PlaceSignature]:
        touched = events.touched()  # drained before any stat: a later change is told next pass
        full = touched is None or self._passes % FULL_LOOK_EVERY == 0
        changed_folders = touched or set()
        self._passes += 1
        before = self._looked
        if not full and databases.keys() == before.keys() and events.watching_all(self._in_folder.keys()):
            # The same files as last time, every folder watched: only the files in the folders the
            # kernel reported are stat-ed, without a step per file (the usual pass: none at all).
            stale = [path for folder in changed_folders for path in self._in_folder.get(folder, ())]
            looked = dict(before) if stale else before
            for path in stale:
                looked[path] = place_signature(path, databases[path])
            return looked
        looked = {}
        in_folder: dict[str, list[str]] = {}
        for path, database in databases.items():
            folder = os.path.dirname(path)
            in_folder.setdefault(folder, []).append(path)
            # Watched only from now (new, or once refused): changes before it were never told, so
            # stat it; the watch comes first, so no change can fall between the watch and the stat.
            told = events.watching(folder)
            if not told:
                events.watches(folder)
            if full or not told or folder in changed_folders or path not in before:
                looked[path] = place_signature(path, database)
            else:
                looked[path] = before[path]
        self._in_folder = in_folder
        return looked

    def close(self) -> None:
        """Let go of the kernel's change reports (a file descriptor) and the writers' thread."""
        self.lane.close()
        with self._events_lock:  # never under a look: its descriptor could be reused meanwhile
            self._closed = True
            if self._events is not None:
                self._events.close()
                self._events = None

    async def changed(self, every: list[Place] | None = None,
                      looked: dict[str, PlaceSignature] | None = None) -> dict[str, list[str]]:
        """The place files a tool rewrote since the last pass (a cheap stat tells), by account
        id. The first pass only learns how each place looks. `looked`: how the files looked
        earlier in this pass (`look_at_places`); only places not in it are looked at here.
        The same places as last time, looked at as then: nothing is new (no step per place)."""
        quiet = (self.store.places_version(), self.looks) if every is None and looked is self._looked else None
        if quiet is not None and quiet == self._quiet:
            return {}
        places: dict[str, list[Place]] = {}
        for place in self.store.places() if every is None else every:
            places.setdefault(place.path, []).append(place)
        looked = looked or {}
        unseen = [path for path in places if path not in looked]
        fresh = await asyncio.to_thread(
            lambda: {path: place_signature(path, is_database(places[path][0].kind)) for path in unseen}
        ) if unseen else {}
        now_seen = {path: looked[path] if path in looked else fresh[path] for path in places}
        for gone in self._seen.keys() - now_seen.keys():  # unlinked or removed since
            del self._seen[gone]
        changed: dict[str, list[str]] = {}  # account id -> its changed place paths
        for path, signature in now_seen.items():
            before = self._seen.get(path)
            self._seen[path] = signature
            if before is not None and before != signature:
                for place in places[path]:
                    changed.setdefault(place.account_id, []).append(path)
        self._quiet = quiet
        return changed

    def look_again(self, paths: list[str]) -> None:
        """These places count as changed at the next pass (their account was busy in this one)."""
        for path in paths:
            self._seen[path] = LOOK_AGAIN
        self.count_change()

    async def pass_on(self, account: Account, paths: list[str]) -> None:
        """A changed place that holds the account's own token (kiro-cli refreshed and a
        re-import took it): its siblings are written the token too."""
        mine = [p for p in self.places_to_read(account) if p.path in paths]
        for place in mine:
            try:
                login = await asyncio.to_thread(place_format(place.kind).read_entry, Path(place.path), place.entry,
                                                self.clock.now())
            except PlaceError:
                continue
            if login is not None and login.refresh_token == account.refresh_token:
                others = [p for p in self.places_to_write(account) if p.path not in paths]
                await self.write_places(account, others)
                return


def writable(kind: str) -> bool:
    """kiro-tui writes this kind's places (`PlaceFormat.writable`); an unknown kind it does not."""
    try:
        return bool(place_format(kind).writable)
    except PlaceError:
        return False


def _place_detail(place: Place, result: WriteResult) -> str:
    text = result.detail or result.outcome.value
    if result.state is PlaceState.PENDING:
        return f"{text}; will retry"
    return text
