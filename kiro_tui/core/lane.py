"""The place writes' own worker thread, one job at a time, so the event loop keeps the interpreter.

Why: a place write mostly waits on its system calls, but between them it runs Python. With one
thread per write and several at once (the executor's six), the writers kept taking the
interpreter lock from the event loop, and the event loop is what turns the network slots over.
`refresh_throughput --links 3` at 1,000 accounts, runs interleaved in pairs: one writer thread
was faster in all seven (1.09-1.30 against 1.19-1.57), and this lane faster than an account's
writes on the executor's threads in all four (1.31-1.46 against 1.49-1.78, a slower hour).

A job waits for its turn at most `LANE_WAIT` seconds; then, if it has not started, it runs
beside the lane, on a thread of the loop's own executor. So a place its tool keeps locked, a
slow disk or a burst the one thread cannot keep up with holds the others back for that long at
most, and they go on in parallel as before. One second, not less: in that benchmark jobs wait
150-250 ms for their turn, and at 0.25 s most of one run's went beside the lane (1.48).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("kiro_tui.places")
LANE_WAIT = 1.0
"""Seconds a job waits for its turn before it runs beside the lane."""


class Lane:
    def __init__(self, name: str, wait: float = LANE_WAIT) -> None:
        self.wait = wait
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False
        self.beside = 0
        """Jobs that waited `wait` for their turn and ran beside the lane."""

    async def run(self, job: Callable[[], T]) -> T:
        """`job()` on the lane's thread in its turn, or beside it if its turn has not come
        within `wait` seconds. Queued on the thread itself, so that the thread goes from one
        job to the next without waiting for the event loop to hand it over."""
        if self._closed:  # a write after the engine closed (never expected): done all the same
            return await asyncio.to_thread(job)
        queued = self._thread.submit(job)
        answer = asyncio.wrap_future(queued)
        try:
            async with asyncio.timeout(self.wait):
                return await asyncio.shield(answer)
        except TimeoutError:
            if not queued.cancel():  # it has started: it finishes where it is
                return await answer
        except asyncio.CancelledError:
            # Taken back if it has not started: never made behind the caller's back (what it
            # would write stays pending, on disk). One under way finishes, and what it raises
            # is read here, not left to be logged as never retrieved.
            if not queued.cancel():
                answer.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise
        self.beside += 1
        if self.beside == 1 or self.beside % 100 == 0:
            log.warning("place writes waited %g s for their thread (a place kept locked, a slow disk?): "
                        "%d ran beside it so far", self.wait, self.beside)
        return await asyncio.to_thread(job)

    def close(self) -> None:
        """The thread ends once the job under way is done; a later job runs beside."""
        self._closed = True
        self._thread.shutdown(wait=False)
