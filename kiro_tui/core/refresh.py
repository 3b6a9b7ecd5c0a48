"""Refresh one account: the rules that keep tokens fresh without ever losing one.

- A lease in the store (taken in an IMMEDIATE transaction) makes sure only one kiro-tui
  process refreshes an account at a time; the row is re-read after taking it. The lease is
  released on every path.
- needs-login and suspended accounts cost no network call: exactly one call is spent on a
  dead refresh token, then the account waits for a login or re-import.
- Before spending a refresh token, the places that hold copies of it are read: a tool there
  that refreshed by itself hands over its newer token with no network call (`adopted`).
- The service rotates the refresh token on every refresh, so the answer is the only live copy:
  the new tokens are committed first, with only what is needed to use them, and every place
  still to be written is marked pending in that same transaction. Every other field of the
  answer is checked on its own and dropped with a warning if unusable, never at the token's
  cost. If the store will not take the commit (disk full, read-only), the token is held in
  memory (and in a rescue file beside the store when possible) and committed as soon as it can.
- The store's writes go through its writer (`store/writer.py`), off the event loop: the commits
  of refreshes answered together share one fsync. A network slot is taken after the lease and
  given back once the call's answer is kept: at most `concurrency` logins are at risk at once.
- Places are written after the commit, compare-and-swap on the account's token lineage; a token
  adopted from one place is written into every other.
- Every watch pass, a place a tool rewrote since the last pass is read at once, and a newer token
  there is adopted and passed on to the other places (a tool that refreshes earlier than kiro-tui,
  such as AIClient-2-API, would otherwise leave the others holding a spent refresh token until
  kiro-tui's own refresh came due). In this process one thing at a time happens to an account: a
  refresh, or that place work (a lock per account; the lease keeps other processes out).
- The place work is `place_sync.PlaceSync`'s; held tokens and their rescue copies are
  `held.HeldTokens`', committed by the same transaction as a refresh (`held.commit_new_token`).
- Transient failures back off exponentially with full jitter (base 5 s, cap 5 min). Whatever
  goes wrong with one account, even a bug, is that account's failure: it never stops a pass.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from kiro_tui.core.answer_identity import foreign_answer, quarantine
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError, StoreError, StoreWriteError
from kiro_tui.core.held import HeldToken, HeldTokens, commit_new_token
from kiro_tui.core.held import rescue_dir as rescue_dir  # re-exported: tests and tools find it here
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, Health, Mode, Outcome, Place, Status
from kiro_tui.core.place_sync import PlaceSync
from kiro_tui.core.places import DEFAULT_WRITE_TIMEOUT, WriteResult, effective_window
from kiro_tui.core.places.base import PlaceSignature
from kiro_tui.core.refresh_call import Backoff, answered_profile_arn, judge_failure
from kiro_tui.core.refresh_call import RefreshClients as RefreshClients  # re-exported: tests build it here
from kiro_tui.core.refresh_result import RefreshResult, StatusChange
from kiro_tui.core.store import AccountStore, RefreshLogEntry
from kiro_tui.core.timefmt import format_timestamp, shift

log = logging.getLogger("kiro_tui.refresh")

LEASE_SECONDS = 60.0
LEASE_MARGIN = 5.0
"""Seconds of the lease left over after the call's deadline, at the latest (clocks, a slow commit)."""
REFRESH_DEADLINE = 40.0
"""The whole network call, however slowly the answer trickles in (a slow-loris server beats
every per-read timeout): over well before the lease runs out, so no other process can take the
lease and spend the same refresh token while this call may still be answered."""


class _NotStarted(Exception):
    """A refresh that never got a network slot: its token was not spent."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def default_owner() -> str:
    return f"{os.uname().nodename if hasattr(os, 'uname') else 'host'}:{os.getpid()}:{secrets.token_hex(3)}"


class Refresher:
    def __init__(
        self,
        store: AccountStore,
        clients: RefreshClients,
        clock: Clock,
        settings: Settings,
        *,
        owner: str | None = None,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        on_change: Callable[[StatusChange], None] | None = None,
        writeback_timeout: float = DEFAULT_WRITE_TIMEOUT,
        deadline: float = REFRESH_DEADLINE,
    ) -> None:
        self.store, self.clients, self.clock, self.settings = store, clients, clock, settings
        self.writeback_timeout = writeback_timeout
        self.deadline = min(deadline, LEASE_SECONDS * 2 / 3)
        self.owner = owner or default_owner()
        self.rng = rng or random.Random()
        self.backoff = backoff or Backoff()
        self.on_change = on_change
        self.places = PlaceSync(store, clock, writeback_timeout)
        self.network = asyncio.Semaphore(settings.concurrency)
        """The network slots (`concurrency`), each held from one refresh call until its answer is
        kept: the lease, the adoption and the place writes of one refresh overlap another's call
        instead of idling a slot."""
        self.stopping = False
        """Set by the scheduler's drain: a refresh still waiting for a network slot does not start."""
        self.started: set[str] = set()
        """Accounts whose refresh call went out (a slot taken), until that refresh ends (committed):
        what a stop waits for and a second signal abandons, by name."""
        self.holding = HeldTokens(store)
        self.held = self.holding.tokens
        """Tokens the store would not take yet, by account id (see `held`)."""
        self.saved_held = self.holding.saved
        """(id, name, where its rescue copy was) of each held token committed since: told once."""
        self.store_problem: str | None = None
        """Why the store would not take the last write, until a write goes through again."""
        self.backing_off: dict[str, tuple[int, datetime]] = {}
        """In memory, for failures the store could not record: failures so far and next try."""
        self._locks: dict[str, asyncio.Lock] = {}
        """One per account: a refresh and the watch pass's place work never overlap in this process."""

    # ------------------------------------------------------------------ entry point

    async def refresh(self, account_id: str, force: bool = False,
                      unless_valid_for: timedelta | None = None) -> RefreshResult:
        """One attempt for one account; `force` refreshes even if not yet due; `unless_valid_for`
        refreshes only if the token (re-read under the lease) expires within it (`kiro-tui
        token`: another process that just refreshed is not followed by a second refresh).
        Never raises: whatever goes wrong is this account's outcome."""
        async with self._account_lock(account_id):  # the watch pass's place work finishes first
            try:
                return await self._refresh_unlocked(account_id, force, unless_valid_for)
            finally:
                self.started.discard(account_id)

    async def _refresh_unlocked(self, account_id: str, force: bool,
                                unless_valid_for: timedelta | None = None) -> RefreshResult:
        now = self.clock.now()
        leased_at = time.monotonic()  # the lease runs from `now`, before any wait for the store's lock
        try:
            leased = await self.store.acquire_lease(account_id, self.owner, now, LEASE_SECONDS)
        except StoreError as exc:
            return self._unrecorded_failure(account_id, str(exc))
        if not leased:
            return self._busy(account_id, now)
        try:
            return await self._refresh_leased(account_id, force, leased_at, unless_valid_for)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, or anything unforeseen: this account's failure, backed off
            log.exception("refresh of %s failed unexpectedly", account_id)
            return await self._record_failure_safely(account_id, exc)
        finally:
            self.store.release_lease(account_id, self.owner)

    def _busy(self, account_id: str, now: datetime) -> RefreshResult:
        try:
            account = self.store.get(account_id)
        except StoreError as exc:
            return self._unrecorded_failure(account_id, str(exc))
        status = account.status(now, self.settings.window, refreshing=True) if account else Status.REFRESHING
        return RefreshResult(account_id, Outcome.BUSY, status, account.label if account else "",
                             message="another kiro-tui process is refreshing it")

    def _account_lock(self, account_id: str) -> asyncio.Lock:
        lock = self._locks.get(account_id)
        if lock is None:
            lock = self._locks[account_id] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def _exclusive(self, account_id: str) -> AsyncIterator[bool]:
        """The account to ourselves for the watch pass's place work: True, or False at once when
        it is being refreshed here or by another kiro-tui process (that refresh reads and writes
        its places itself)."""
        lock = self._account_lock(account_id)
        if lock.locked():
            yield False
            return
        async with lock:
            try:
                leased = await self.store.acquire_lease(account_id, self.owner, self.clock.now(), LEASE_SECONDS)
            except StoreError:
                leased = False
            if not leased:
                yield False
                return
            try:
                yield True
            finally:
                self.store.release_lease(account_id, self.owner)

    async def _refresh_leased(self, account_id: str, force: bool, leased_at: float,
                              unless_valid_for: timedelta | None = None) -> RefreshResult:
        try:
            account = self.store.get(account_id)  # re-read: another process may have refreshed already
        except StoreError as exc:  # its row cannot be read (hand-edited): this account's failure, by name
            return RefreshResult(account_id, Outcome.FAILED, Status.REFRESH_FAILING,
                                 classification=ErrorClass.FATAL_CONFIG.value, message=str(exc))
        now = self.clock.now()
        if account is None:
            self.holding.forget(account_id)
            return RefreshResult(account_id, Outcome.SKIPPED, Status.EXPIRED, message="no such account")
        held = self.holding.live(account)
        if held is not None:  # the store has the spent token; the live one is here
            account.access_token, account.refresh_token, account.expires_at = (
                held.access_token, held.refresh_token, held.expires_at)
        before = account.status(now, self.settings.window)
        if account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED):
            return self._result(account, Outcome.SKIPPED, account.last_error)
        if unless_valid_for is not None:
            if account.expires_at > shift(now, unless_valid_for):
                return self._result(account, Outcome.SKIPPED, "still valid")
            force = True
        if held is None:
            adopted = await self._adopt(account, before)
            if account.mode is Mode.FOLLOW and account.source:
                return adopted or self._result(account, Outcome.FOLLOWED, "follow mode: kiro-cli refreshes this login")
            if adopted and not account.is_due(self.clock.now(), self.window_for(account.id)) and (
                    unless_valid_for is None or account.expires_at > shift(self.clock.now(), unless_valid_for)):
                return adopted
        if not force and not account.is_due(now, self.window_for(account.id)):
            return self._result(account, Outcome.SKIPPED, "not due yet")
        return await self._refresh_over_network(account, before, leased_at)

    # ------------------------------------------------------------------ places

    def window_for(self, account_id: str, places: list[Place] | None = None) -> timedelta:
        """This account's refresh window: earlier than configured when a linked tool would
        otherwise refresh first (see places.effective_window)."""
        found = places if places is not None else self.store.places(account_id)
        return effective_window(self.settings.window, found)

    async def _adopt(self, account: Account, before: Status) -> RefreshResult | None:
        """If a place holds a newer token of this login, take it instead of calling the network."""
        taken = await self.places.adopt_newer(account)
        if taken is None:
            return None
        result = self._result(account, Outcome.ADOPTED, f"took {taken}'s newer token")
        self._emit(account, before, result.status)
        return result

    async def write_places(self, account: Account, places: list[Place] | None = None) -> list[WriteResult]:
        """Write the account's current token into its places (see `PlaceSync.write_places`)."""
        return await self.places.write_places(account, places)

    async def retry_pending_places(self) -> None:
        """Write every place still pending (locked, missing, or after a failed write)."""
        for account_id in self.places.pending_accounts():
            if account_id in self.held:
                continue  # the store holds a spent token: nothing right to write yet
            async with self._exclusive(account_id) as mine:
                if mine:  # else being refreshed: that refresh writes its places
                    await self.places.write_pending(account_id)

    async def look_at_places(self) -> dict[str, PlaceSignature]:
        """How each place file looks now (see `PlaceSync.look_at_places`)."""
        return await self.places.look_at_places()

    async def adopt_from_changed_places(self, every: list[Place] | None = None,
                                        looked: dict[str, PlaceSignature] | None = None) -> set[str]:
        """Read every place a tool rewrote since the last pass (`PlaceSync.changed`), and take a
        newer token found there at once, writing it into the account's other places; a changed
        place that holds the account's own token has its siblings written too. An account being
        refreshed is looked at again next pass. Returns the accounts whose token was taken."""
        adopted: set[str] = set()
        changed = list((await self.places.changed(every, looked)).items())
        for done, (account_id, paths) in enumerate(changed):
            try:
                if account_id in self.held:  # its token waits for the store: its places, for the next pass
                    self.places.look_again(paths)
                    continue
                async with self._exclusive(account_id) as mine:
                    if mine:
                        if await self._adopt_or_pass_on(account_id, paths):
                            adopted.add(account_id)
                        continue
                self.places.look_again(paths)
            except BaseException:  # (the store failed, a stop): what is left is looked at next pass
                self.places.look_again([path for _, rest in changed[done:] for path in rest])
                raise
        return adopted

    async def _adopt_or_pass_on(self, account_id: str, paths: list[str]) -> bool:
        """True when a newer token was taken from one of these places."""
        try:
            account = self.store.get(account_id)
        except StoreError:
            return False
        if account is None or account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED):
            return False
        if await self._adopt(account, account.status(self.clock.now(), self.settings.window)):
            return True
        await self.places.pass_on(account, paths)
        return False

    async def write_places_now(self, account_id: str, places: list[Place]) -> None:
        """Write these places now (a new link), never while this account is being refreshed here."""
        async with self._account_lock(account_id):
            account = self.store.get(account_id)
            if account is not None:
                await self.places.write_places(account, places)

    # ------------------------------------------------------------------ the network call

    async def _call(self, account: Account) -> TokenResult:
        """The one seam where a refresh token is spent (tests wrap it to count or stall calls)."""
        return await self.clients.refresh(account)

    def _lease_left(self, leased_at: float) -> float:
        """Seconds a call may still wait before it starts: it must be answered, deadline and
        margin included, while the lease holds, or another process could spend the same token."""
        return LEASE_SECONDS - LEASE_MARGIN - self.deadline - (time.monotonic() - leased_at)

    async def _call_in_a_slot(self, account: Account, before: Status, leased_at: float) -> tuple[TokenResult, float]:
        """The call, in a network slot taken after the store's write probe and the lease (they
        need none); the room for its commit is checked again once it has the slot, since a disk
        can fill while it waits. Waits for the slot only as long as the lease allows. Raises `_NotStarted`
        (the token unspent: no slot in time, a stop meanwhile, the lease too short by then), the
        probe's StoreError, or the call's errors, the slot given back. Returns the answer and
        when the call went out, the slot still taken: the caller gives it back once the answer
        is kept (`_answered`), so at most `concurrency` logins are ever at risk at once, on the
        wire or answered and not yet on disk (a kill loses only those)."""
        # The service rotates the token: spend it only if the new one can be kept.
        await self.store.probe_on_writer()
        try:
            async with asyncio.timeout(max(0.0, self._lease_left(leased_at))):
                await self.network.acquire()
        except TimeoutError:
            raise _NotStarted(Outcome.BUSY, "every network slot stayed busy: not started, tried again soon") from None
        try:
            if self.stopping:
                raise _NotStarted(Outcome.SKIPPED, "not started: kiro-tui was asked to stop")
            if self._lease_left(leased_at) < 0:
                raise _NotStarted(Outcome.BUSY, "too little of the lease was left for the call: not started, "
                                                "tried again soon")
            self.store.check_room()
            self.started.add(account.id)
            self._emit(account, before, Status.REFRESHING)
            sent = time.monotonic()
            async with asyncio.timeout(self.deadline):
                return await self._call(account), sent
        except BaseException:
            self.network.release()
            raise

    async def _refresh_over_network(self, account: Account, before: Status, leased_at: float) -> RefreshResult:
        spent = account.refresh_token
        started = time.monotonic()
        try:
            token, started = await self._call_in_a_slot(account, before, leased_at)
        except _NotStarted as why:
            return self._result(account, why.outcome, str(why))
        except StoreError as exc:  # the write probe: nothing was spent
            return self._unrecorded_failure(
                account.id, f"store not writable: not refreshing, the current token stays valid until "
                            f"{format_timestamp(account.expires_at.astimezone())} ({exc})", account)
        except TimeoutError:
            error = ServiceError(f"no complete answer within {self.deadline:g} s (the refresh's deadline, shorter "
                                 "than its lease); retrying", ErrorClass.TRANSIENT)
            return await self._failed(account, error, round((time.monotonic() - started) * 1000))
        except ServiceError as exc:
            return await self._failed(account, exc, round((time.monotonic() - started) * 1000))
        except KiroTuiError as exc:  # e.g. a stored token endpoint that is not a URL
            error = ServiceError(str(exc), ErrorClass.FATAL_CONFIG)
            return await self._failed(account, error, round((time.monotonic() - started) * 1000))
        given_back = False

        def give_back_slot() -> None:
            """The answer is on disk (or held, or never to be kept): another call may go out."""
            nonlocal given_back
            if not given_back:
                given_back = True
                self.network.release()

        try:
            return await self._answered(account, token, spent, started, give_back_slot)
        finally:
            give_back_slot()

    async def _answered(self, account: Account, token: TokenResult, spent: str | None, started: float,
                        give_back_slot: Callable[[], None]) -> RefreshResult:
        """A refresh's answer: the new token committed (or held), the network slot given back,
        then its places written."""
        duration = round((time.monotonic() - started) * 1000)
        now = self.clock.now()
        foreign = foreign_answer(account, token)
        if foreign is not None:  # never this account's token; kept for a person, retried with our own
            kept = quarantine(self.store.path, account, token, foreign, now)
            return await self._failed(account, ServiceError(kept, ErrorClass.TRANSIENT, status=200), duration)
        before = account.status(now, self.settings.window, refreshing=True)
        account.access_token = token.access_token
        account.refresh_token = token.refresh_token or spent
        account.expires_at = token.expires_at(now)
        account.health, account.last_error = Health.OK, None
        account.consecutive_failures, account.next_refresh_at = 0, None
        account.last_refresh_at = now
        warnings = list(token.warnings)
        profile_arn = answered_profile_arn(account, token, warnings)
        held, pending = await self._commit_token(account, spent, now, duration, warnings, profile_arn)
        give_back_slot()
        if held is not None and held.rescue is None:
            await self.holding.rescue_into_places(account, held, self.places)
        if held is None:
            if profile_arn:
                account.profile_arn = profile_arn
            self.backing_off.pop(account.id, None)
            if pending:
                await self.write_places(account, pending)
        for warning in warnings:
            log.warning("%s %s: %s", account.id, account.name, warning)
        result = self._result(account, Outcome.REFRESHED, held.message if held else None)
        result.warnings = warnings
        self._emit(account, before, result.status)
        return result

    async def _commit_token(self, account: Account, spent: str | None, now: datetime, duration: int,
                            warnings: list[str], profile_arn: str | None = None
                            ) -> tuple[HeldToken | None, list[Place]]:
        """Commit the new tokens (and mark every place to write as pending) in one durable
        transaction; returns the places to write now. If the store will not take it, hold the
        token instead; returns it then (and no place)."""
        moved_on = bool(spent) and account.refresh_token != spent
        places: list[Place] | None = None if moved_on else []  # (None: read in the commit's own transaction)
        entry = RefreshLogEntry(account.id, now, Outcome.REFRESHED, duration_ms=duration, http_status=200,
                                message="; ".join(warnings) or None)
        for attempt in (1, 2):
            try:
                pending = await commit_new_token(self.store, self.places, account, replaced=fingerprint(spent),
                                                 lineage=[spent, account.refresh_token], refreshed_at=now, now=now,
                                                 places=places, moved_on=moved_on, entry=entry,
                                                 profile_arn=profile_arn)
                break
            except Exception as exc:  # whatever failed, the token is held, never dropped
                if attempt == 1 and getattr(exc, "reason", None) in ("disk full", "disk I/O error") \
                        and self.store.make_room():  # the WAL's space, given back: once more
                    log.warning("%s: the store's disk was full; checkpointed its WAL and trying again", account.id)
                    continue
                if not isinstance(exc, StoreError):  # a bug in the commit itself
                    log.exception("%s: the new token's commit failed", account.id)
                    exc = StoreWriteError(f"the account store {self.store.path} did not take the new token",
                                          f"{type(exc).__name__}: {str(exc)[:120]}")
                held = self.holding.hold(account, spent, now, exc, shift(now, self.backoff.base))
                self.store_problem = held.reason
                return held, []
        if account.id in self.held:  # a held token was spent for this one: it and its copies are history
            self.holding.forget(account.id)
        self._store_ok()
        return None, pending

    # ------------------------------------------------------------------ tokens held in memory

    async def commit_held(self, force: bool = False) -> None:
        """Try again to commit every held token (backoff unless `force`) under its account's lock.
        An account whose refresh call is out is left to that refresh, which spends the held token
        and commits its successor (a commit of the held one queued behind would overwrite it with
        a spent token), or, abandoned at a stop, leaves the rescue copy for the next start. Forced
        (start, stop), one still waiting for a network slot is not waited for: nothing of it can
        be committed before this (and a stop's never starts)."""
        for account_id, held in list(self.held.items()):
            lock = self._account_lock(account_id)
            if account_id in self.started or not force and (
                    lock.locked() or held.next_try is not None and held.next_try > self.clock.now()):
                continue
            if lock.locked():
                await self._commit_one_held(account_id, held)
                continue
            async with lock:
                await self._commit_one_held(account_id, held)

    async def _commit_one_held(self, account_id: str, held: HeldToken) -> None:
        if self.held.get(account_id) is not held:  # a refresh meanwhile committed or replaced it
            return
        now = self.clock.now()
        try:
            account = self.store.get(account_id)
            if account is not None and self.holding.live(account) is None:
                return
        except (StoreError, sqlite3.Error) as exc:
            self._held_retry_later(held, now, str(exc))
            return
        if account is None:  # removed meanwhile: nothing to keep it for
            self.holding.forget(account_id)
            return
        before = account.status(now, self.settings.window)
        try:
            places = await self.holding.commit(account, held, now, self.places)
        except (StoreError, sqlite3.Error) as exc:
            self._held_retry_later(held, now, f"the store is not writable: {getattr(exc, 'reason', exc)}")
            return
        if places is None:  # another process wrote the row meanwhile: the next pass looks again
            return
        self._store_ok()
        await self.places.write_places(account, places)
        self._emit(account, before, account.status(self.clock.now(), self.settings.window), force=True)

    def _held_retry_later(self, held: HeldToken, now: datetime, reason: str) -> None:
        self.holding.retry_later(held, now, reason, self.backoff.ceiling(held.attempts + 1))
        self.store_problem = reason

    def _store_ok(self) -> None:
        if self.store_problem is not None:
            self.store_problem = None
            try:
                working = [account_id for account_id, lock in self._locks.items() if lock.locked()]
                self.store.release_leases(self.owner, keep=working)  # any a failed release left behind
            except StoreError:
                pass

    # ------------------------------------------------------------------ failures

    async def _failed(self, account: Account, exc: ServiceError, duration: int) -> RefreshResult:
        """The failure recorded against the account, unless its stored token changed during the
        call (a login, an import, another kiro-tui): the failure was the old token's alone."""
        now = self.clock.now()
        before = account.status(now, self.settings.window, refreshing=True)
        stored = self.holding.stored_print(account)
        dead_held = exc.classification is ErrorClass.NEEDS_LOGIN and self.holding.is_held(account)
        if dead_held:  # the service says the held token is dead: nothing to keep; the stored one is spent
            self.holding.forget(account.id)
        retry_in = judge_failure(account, exc, now, self.backoff, self.rng, stored if dead_held else None)
        changes = dict(health=account.health, last_error=account.last_error, extra=dict(account.extra),
                       consecutive_failures=account.consecutive_failures, next_refresh_at=account.next_refresh_at)
        entry = RefreshLogEntry(account.id, now, Outcome.FAILED, exc.classification.value, duration, exc.status,
                                exc.message)

        def record(tx: sqlite3.Connection) -> bool:
            self.store.log_refresh(tx, entry)
            if not self.store.holds_print(tx, account.id, stored):
                return False
            self.store.update(account.id, tx, **changes)
            return True

        try:
            recorded = await self.store.writer.run(record)
        except StoreError as store_exc:
            return self._unrecorded_failure(account.id, f"{exc.message}; and the store is not writable: {store_exc}",
                                            account)
        message = account.last_error
        if recorded:
            self.holding.judged(account)  # (when it was the held token's own refresh: saving it keeps this)
        else:  # (its retry stays as judged: a transient failure is backed off all the same)
            message = (f"{exc.message}; not held against the account: it holds another token since the call "
                       "went out (a login, an import, another kiro-tui)")
            try:
                current = self.store.get(account.id)
            except StoreError as store_exc:
                return self._unrecorded_failure(account.id, f"{message}; {store_exc}")
            if current is None:
                return RefreshResult(account.id, Outcome.SKIPPED, Status.EXPIRED, message="no such account")
            account = current
        result = self._result(account, Outcome.FAILED, message)
        result.classification = exc.classification.value
        result.retry_in = retry_in
        self._emit(account, before, result.status)
        return result

    async def _record_failure_safely(self, account_id: str, exc: Exception) -> RefreshResult:
        """An unforeseen error: recorded as a transient failure of this account (backed off)."""
        error = ServiceError(f"internal error: {type(exc).__name__}: {str(exc)[:120]}", ErrorClass.TRANSIENT)
        try:
            account = self.store.get(account_id)
        except StoreError as store_exc:
            return self._unrecorded_failure(account_id, f"{error.message}; {store_exc}")
        if account is None:
            return RefreshResult(account_id, Outcome.SKIPPED, Status.EXPIRED, message="no such account")
        return await self._failed(account, error, 0)

    def _unrecorded_failure(self, account_id: str, message: str, account: Account | None = None) -> RefreshResult:
        """A failure the store could not record: backed off in memory so it is not retried at once."""
        failures, _ = self.backing_off.get(account_id, (0, self.clock.now()))
        retry_in = self.backoff.delay(failures + 1, self.rng) + 1.0
        self.backing_off[account_id] = (failures + 1, shift(self.clock.now(), retry_in))
        self.store_problem = message
        log.warning("%s: %s", account_id, message)
        status = account.status(self.clock.now(), self.settings.window) if account else Status.REFRESH_FAILING
        return RefreshResult(account_id, Outcome.FAILED, status, account.label if account else "",
                             classification=ErrorClass.TRANSIENT.value, message=message, retry_in=retry_in)

    # ------------------------------------------------------------------ helpers

    def _result(self, account: Account, outcome: Outcome, message: str | None = None) -> RefreshResult:
        status = account.status(self.clock.now(), self.settings.window)
        return RefreshResult(account.id, outcome, status, account.label, message=message,
                             expires_at=account.expires_at)

    def _emit(self, account: Account, before: Status, after: Status, force: bool = False) -> None:
        if (force or before is not after) and self.on_change is not None:
            self.on_change(StatusChange(account.id, account.name, before, after, account.last_error))
