"""Injected time, so countdowns, schedules and tests never depend on the wall clock.

asyncio is imported where a clock sleeps: a command that only reads the time (`list`) never
loads it (a fifth of its imports)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock nobody sets: told apart from `now`, it shows the wall clock jumping."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds))

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to; sleepers wake when `advance` passes their deadline.

    Safe across threads: the TUI's engine sleeps on its own event loop while a test moves the
    clock from another, so each sleeper is woken on the loop it sleeps on."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._monotonic = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        import asyncio

        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:  # a sleep lasts monotonic time, as asyncio's does: a jump of the wall clock ends none
            self._sleepers.append((self._monotonic + seconds, future))
        try:
            await future
        finally:
            with self._lock:
                self._sleepers = [(d, f) for d, f in self._sleepers if f is not future]

    def monotonic(self) -> float:
        return self._monotonic

    def set(self, when: datetime) -> None:
        """Time passes (both clocks move) to `when`."""
        self._monotonic += max(0.0, (when - self._now).total_seconds())
        self._now = when
        self._wake()

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def jump(self, seconds: float) -> None:
        """The wall clock is set (a resume from suspend, a correction): no time passes."""
        self._now += timedelta(seconds=seconds)
        self._wake()

    def _wake(self) -> None:
        import asyncio

        with self._lock:
            due = [f for deadline, f in self._sleepers if deadline <= self._monotonic]
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
