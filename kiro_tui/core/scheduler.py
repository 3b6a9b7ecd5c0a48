"""Due-time refresh scheduling: sleep until the next account is due, never a polling sweep.

A heap of (due, account id) plus an event to wake early when something changes. Each
account is due at `expires_at − refresh_window` (or at `next_refresh_at` while backing off);
needs-login, suspended and follow-mode accounts are never due. Refreshes run concurrently up
to `concurrency`, one at a time per account, and each is rescheduled when it completes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from datetime import datetime, timedelta

from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.models import Account, Health, Mode
from kiro_tui.core.refresh import BUSY, Refresher, RefreshResult
from kiro_tui.core.store import AccountStore

log = logging.getLogger("kiro_tui.scheduler")
BUSY_RETRY = timedelta(seconds=5)


def due_time(account: Account, window: timedelta) -> datetime | None:
    if account.health in (Health.NEEDS_LOGIN, Health.SUSPENDED) or account.mode is Mode.FOLLOW:
        return None
    if account.health is Health.REFRESH_FAILING and account.next_refresh_at is not None:
        return account.next_refresh_at
    return account.expires_at - window


class RefreshScheduler:
    def __init__(self, store: AccountStore, refresher: Refresher, clock: Clock, settings: Settings) -> None:
        self.store, self.refresher, self.clock, self.settings = store, refresher, clock, settings
        self._heap: list[tuple[datetime, int, str]] = []
        self._due: dict[str, datetime] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._limit = asyncio.Semaphore(settings.concurrency)
        self.results: list[RefreshResult] = []
        self.keep_results = False

    # ------------------------------------------------------------------ schedule changes

    def schedule(self, account_id: str, at: datetime | None = None) -> None:
        """(Re)compute when `account_id` is due, from the store, or set it to `at`."""
        if at is None:
            account = self.store.get(account_id)
            at = due_time(account, self.settings.window) if account else None
        if at is None:
            self._due.pop(account_id, None)
        else:
            self._due[account_id] = at
            heapq.heappush(self._heap, (at, next(self._seq), account_id))
        self._wake.set()

    def schedule_all(self) -> None:
        """Recompute every account (after an import, or another process's changes)."""
        self._due.clear()
        self._heap.clear()
        for account in self.store.accounts():
            at = due_time(account, self.settings.window)
            if at is not None:
                self._due[account.id] = at
                self._heap.append((at, next(self._seq), account.id))
        heapq.heapify(self._heap)
        self._wake.set()

    def next_due(self) -> tuple[datetime, str] | None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale entry
        return (self._heap[0][0], self._heap[0][2]) if self._heap else None

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        self.schedule_all()
        try:
            while True:
                self._wake.clear()
                self._start_due(self.clock.now())
                upcoming = self.next_due()
                delay = (upcoming[0] - self.clock.now()).total_seconds() if upcoming else None
                await self._wait(delay)
        finally:
            for task in list(self._in_flight.values()):
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    def _start_due(self, now: datetime) -> None:
        while (upcoming := self.next_due()) is not None and upcoming[0] <= now:
            heapq.heappop(self._heap)
            account_id = upcoming[1]
            del self._due[account_id]
            if account_id not in self._in_flight:
                self._in_flight[account_id] = asyncio.create_task(self._refresh(account_id))

    async def _wait(self, delay: float | None) -> None:
        waiters = [asyncio.create_task(self._wake.wait())]
        if delay is not None:
            waiters.append(asyncio.create_task(self.clock.sleep(max(0.0, delay))))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _refresh(self, account_id: str) -> None:
        retry_at = None
        try:
            async with self._limit:
                result = await self.refresher.refresh(account_id)
            if self.keep_results:
                self.results.append(result)
            if result.outcome == BUSY:
                retry_at = self.clock.now() + BUSY_RETRY
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not stop the other accounts' refreshes
            log.exception("refresh of %s failed unexpectedly", account_id)
            retry_at = self.clock.now() + BUSY_RETRY
        finally:
            self._in_flight.pop(account_id, None)
        self.schedule(account_id, retry_at)

    async def wait_idle(self) -> None:
        """Until no refresh is running (for tests and one-shot passes)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
