"""Due-time refresh scheduling: sleep until the next account is due, never a polling sweep.

A heap of (due, account id) plus an event to wake early when something changes. When an
account is due is `Account.due_time` (the one definition): `expires_at − refresh_window`, not
before half the token's lifetime has passed, or `next_refresh_at` while backing off; never for
needs-login, suspended and follow-mode accounts. Every refresh, scheduled or asked for now
(`refresh_now`), goes through one concurrency bound, one at a time per account, and is
rescheduled when it completes. `drain` lets refreshes under way finish: their answers are
the only live copies of the rotated tokens.

Due times are wall-clock times, but sleeping is on a monotonic clock, which a laptop's suspend
or a clock being set does not move. So the loop never sleeps longer than `RECHECK`, and at every
wake compares the two clocks: after a jump forward (a resume) every due time is looked at again
at once; after a jump back, the expiries stored before it lie (they were counted on the clock as
it was), so those accounts are due that much earlier, and refreshed then even though the wall
clock says not yet; their new expiry counts from the answer, on the clock as it is now.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.errors import StoreError
from kiro_tui.core.models import Account, Health, Outcome, Status
from kiro_tui.core.refresh import Refresher
from kiro_tui.core.refresh_result import RefreshResult
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import shift

log = logging.getLogger("kiro_tui.scheduler")
BUSY_RETRY = timedelta(seconds=5)
RECHECK = 15.0
"""The longest the loop sleeps: a wall-clock jump is noticed within this many seconds."""
JUMP = 2.0
"""Seconds the wall clock may move against the monotonic clock between two looks before it
counts as a jump (a slew by NTP moves it far less)."""


class RefreshScheduler:
    def __init__(self, store: AccountStore, refresher: Refresher, clock: Clock, settings: Settings) -> None:
        self.store, self.refresher, self.clock, self.settings = store, refresher, clock, settings
        self._heap: list[tuple[datetime, int, str]] = []
        self._due: dict[str, datetime] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[RefreshResult]] = {}
        self._room = 2 * settings.concurrency
        self._limit = asyncio.Semaphore(self._room)
        """Refreshes under way at once: twice the network slots (`Refresher.network`), so one
        refresh's lease, adoption and commit run while another's call is on the wire. Scheduled
        refreshes are started only while there is room (`_start_due`)."""
        self._stopping = False
        self.results: list[RefreshResult] = []
        self.keep_results = False
        self._offset: float | None = None
        """Wall clock minus monotonic clock at the last look, in seconds."""
        self._back_jumps: list[tuple[float, float]] = []
        """(monotonic time it was seen, seconds the wall clock went back) for every jump back."""
        self._answered: dict[str, float] = {}
        """Monotonic time each account's last refresh here ended: its times count on the clock since."""
        self._early: set[str] = set()
        """Accounts due earlier than their stored times say (a jump back): refreshed regardless."""

    # ------------------------------------------------------------------ schedule changes

    def schedule(self, account_id: str, at: datetime | None = None) -> None:
        """(Re)compute when `account_id` is due, from the store, or set it to `at`."""
        if at is None:
            try:
                account = self.store.get(account_id)
            except StoreError as exc:  # an unreadable row: reported where it is shown, not again here
                log.info("%s", exc)
                account = None
            at = self._due_time(account, self.refresher.window_for(account_id)) if account else None
        self._set_due(account_id, at)
        self._wake.set()

    def schedule_all(self) -> None:
        """Recompute every account (after an import, or another process's changes)."""
        self._due.clear()
        self._heap.clear()
        places: dict[str, list] = {}
        for place in self.store.places():
            places.setdefault(place.account_id, []).append(place)
        for account in self.store.accounts():
            at = self._due_time(account, self.refresher.window_for(account.id, places.get(account.id, [])))
            if at is not None:
                self._due[account.id] = at
                self._heap.append((at, next(self._seq), account.id))
        heapq.heapify(self._heap)
        self._wake.set()

    def _due_time(self, account: Account, window: timedelta) -> datetime | None:
        """When `account` is due. A token held in memory (the store would not take it) is the live
        one: its expiry decides, not the spent token's still in the store, which would be due at
        once and start the account again and again, each start two commits on a store short of room.
        An account that needs a login or is suspended stays so: a refresh would skip it at once."""
        held = self.refresher.held.get(account.id)
        if held is not None and account.health not in (Health.NEEDS_LOGIN, Health.SUSPENDED):
            account = replace(account, expires_at=held.expires_at, last_refresh_at=held.since,
                              health=Health.OK, next_refresh_at=None)
        due = account.due_time(window)
        back = self._moved_back_since(account.id)
        if due is None or back == 0:
            self._early.discard(account.id)
            return due
        self._early.add(account.id)
        return shift(due, back)

    def _moved_back_since(self, account_id: str) -> float:
        """Seconds (negative) the wall clock went back since this account's times were written."""
        since = self._answered.get(account_id)
        return sum(moved for seen, moved in self._back_jumps if since is None or seen > since)

    def _notice_jump(self) -> None:
        """Compare the wall clock with the monotonic clock; after a jump, every due time again."""
        monotonic = self.clock.monotonic()
        offset = self.clock.now().timestamp() - monotonic
        previous, self._offset = self._offset, offset
        if previous is None or abs(offset - previous) <= JUMP:
            return
        moved = offset - previous
        log.warning("the wall clock jumped %s by %d seconds; every due time is checked again",
                    "forward" if moved > 0 else "back", abs(round(moved)))
        if moved < 0:
            self._back_jumps.append((monotonic, moved))
        self.schedule_all()

    def _set_due(self, account_id: str, at: datetime | None) -> None:
        held = self.refresher.backing_off.get(account_id)
        if at is not None and held is not None and held[1] > at:
            at = held[1]  # a failure the store could not record still backs off
        if at is None:
            self._due.pop(account_id, None)
        else:
            self._due[account_id] = at
            heapq.heappush(self._heap, (at, next(self._seq), account_id))

    def next_due(self) -> tuple[datetime, str] | None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale entry
        return (self._heap[0][0], self._heap[0][2]) if self._heap else None

    @property
    def in_flight(self) -> set[str]:
        return set(self._in_flight)

    @property
    def under_way(self) -> list[str]:
        """The ids whose refresh call went out and whose refresh has not ended (`Refresher.started`):
        what a stop waits for, and what a second signal abandons. One still waiting for a network
        slot is not among them: after a stop it never takes one."""
        return sorted(self.refresher.started.copy())  # read from other threads too: one atomic copy

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        self.schedule_all()
        while not self._stopping:
            self._wake.clear()
            self._notice_jump()
            self._start_due(self.clock.now())
            upcoming = self.next_due()
            delay = (upcoming[0] - self.clock.now()).total_seconds() if upcoming and not self._full() else RECHECK
            await self._wait(min(delay, RECHECK))  # (a refresh that ends wakes it: see `_refresh`)

    def _full(self) -> bool:
        return len(self._in_flight) >= self._room

    def _start_due(self, now: datetime) -> None:
        """Start the refreshes that are due, while there is room; the rest start as those end.
        A task for every due account at once (10,000 in a burst, each with its coroutine and a
        future waiting its turn) was walked by every full garbage collection: 50-90 ms pauses."""
        while (upcoming := self.next_due()) is not None and upcoming[0] <= now and not self._full():
            heapq.heappop(self._heap)
            account_id = upcoming[1]
            del self._due[account_id]
            self._start(account_id, force=account_id in self._early)

    def _start(self, account_id: str, force: bool,
               unless_valid_for: timedelta | None = None) -> asyncio.Task[RefreshResult]:
        task = self._in_flight.get(account_id)
        if task is None:
            task = asyncio.create_task(self._refresh(account_id, force, unless_valid_for), name=f"refresh {account_id}")
            self._in_flight[account_id] = task
        return task

    async def refresh_now(self, account_ids: list[str], force: bool = True,
                          unless_valid_for: timedelta | None = None) -> list[RefreshResult]:
        """Refresh these accounts now, through the same concurrency bound as scheduled ones; an
        account already being refreshed is not refreshed twice (its result is shared). Being
        in flight here, each is waited for by a stop (`drain`), never cancelled with its caller
        (`unless_valid_for`: see Refresher.refresh)."""
        if self._stopping:
            raise RuntimeError("the refresh engine is stopping")
        tasks = [self._start(account_id, force, unless_valid_for) for account_id in account_ids]
        return list(await asyncio.gather(*(asyncio.shield(t) for t in tasks)))

    async def _wait(self, delay: float | None) -> None:
        waiters: list[asyncio.Task[object]] = [asyncio.create_task(self._wake.wait())]
        if delay is not None:
            waiters.append(asyncio.create_task(self.clock.sleep(max(0.0, delay))))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _refresh(self, account_id: str, force: bool, unless_valid_for: timedelta | None = None) -> RefreshResult:
        retry_at = None
        try:
            async with self._limit:
                if self._stopping:  # asked to stop while it waited its turn: no token spent
                    return self._not_started(account_id)
                result = await self.refresher.refresh(account_id, force, unless_valid_for)
            if self.keep_results:
                self.results.append(result)
            if result.outcome is Outcome.BUSY:
                retry_at = shift(self.clock.now(), BUSY_RETRY)
            elif result.retry_in is not None and result.outcome is Outcome.FAILED:
                retry_at = shift(self.clock.now(), result.retry_in)
            return result
        except asyncio.CancelledError:
            raise
        except Exception:  # refresh() never raises; a bug here must still not stop the other accounts
            log.exception("refresh of %s failed unexpectedly", account_id)
            retry_at = shift(self.clock.now(), BUSY_RETRY)
            raise
        finally:
            self._in_flight.pop(account_id, None)
            self._answered[account_id] = self.clock.monotonic()  # what it wrote counts on the clock as it is
            self._early.discard(account_id)
            if not self._stopping:
                if retry_at is not None:
                    self._set_due(account_id, retry_at)
                    self._wake.set()
                else:
                    self.schedule(account_id)

    def _not_started(self, account_id: str) -> RefreshResult:
        try:
            account = self.store.get(account_id)
        except StoreError:
            account = None
        status = account.status(self.clock.now(), self.settings.window) if account else Status.EXPIRED
        return RefreshResult(account_id, Outcome.SKIPPED, status, account.label if account else "",
                             message="not started: kiro-tui was asked to stop")

    async def drain(self, timeout: float | None) -> list[str]:
        """Stop starting refreshes and let those under way finish (their new tokens are the only
        live copies). Returns the ids of refreshes still running after `timeout`, which the
        caller may then cancel."""
        self._stopping = True
        self.refresher.stopping = True  # a refresh waiting for a network slot does not start
        self._wake.set()
        running = list(self._in_flight.values())
        if running:
            await asyncio.wait(running, timeout=timeout)
        # Named only if its call went out: one still waiting for a slot spends nothing.
        return [account_id for account_id, task in self._in_flight.items()
                if not task.done() and account_id in self.refresher.started]

    async def abandon(self) -> None:
        """Cancel what `drain` left running (the person asked twice)."""
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def wait_idle(self) -> None:
        """Until no refresh is running (for tests and one-shot passes)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
