"""Injected time, so countdowns, schedules and tests never depend on the wall clock."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when told to; sleepers wake when `advance` passes their deadline.

    Safe across threads: the TUI's engine sleeps on its own event loop while a test moves the
    clock from another, so each sleeper is woken on the loop it sleeps on."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._sleepers.append((self._now + timedelta(seconds=seconds), future))
        try:
            await future
        finally:
            with self._lock:
                self._sleepers = [(d, f) for d, f in self._sleepers if f is not future]

    def set(self, when: datetime) -> None:
        self._now = when
        self._wake()

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def _wake(self) -> None:
        with self._lock:
            due = [f for deadline, f in self._sleepers if deadline <= self._now]
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for future in due:
            loop = future.get_loop()
            if loop is here:
                _resolve(future)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
