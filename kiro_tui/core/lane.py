"""The place writes' own worker thread, one job at a time, so the event loop keeps the interpreter.

Why: a place write mostly waits on its system calls, but between them it runs Python. With one
thread per write and several at once (the executor's six), the writers kept taking the
interpreter lock from the event loop, and the event loop is what turns the network slots over.
`refresh_throughput --links 3` at 1,000 accounts, seven pairs of runs interleaved: one writer
was faster in every pair (1.09-1.30 against 1.19-1.57).

A job waits for its turn at most `LANE_WAIT` seconds; then it runs beside the lane, on a thread
of the loop's own executor. So a place its tool keeps locked, a slow disk or a burst the one
thread cannot keep up with holds the others back for that long at most, and they go on in
parallel as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
LANE_WAIT = 0.25
"""Seconds a job waits for its turn before it runs beside the lane."""


class Lane:
    def __init__(self, name: str, wait: float = LANE_WAIT) -> None:
        self.wait = wait
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._turns: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._closed = False
        self.beside = 0
        """Jobs that waited `wait` for their turn and ran beside the lane."""

    def _turn(self) -> asyncio.Semaphore:
        """The lane's turn on the running loop (a refresher may outlive one `asyncio.run`)."""
        loop = asyncio.get_running_loop()
        if self._turns is None or self._turns[0] is not loop:
            self._turns = (loop, asyncio.Semaphore(1))
        return self._turns[1]

    async def run(self, job: Callable[[], T]) -> T:
        """`job()` on the lane's thread in its turn, or beside it once it has waited `wait`."""
        if self._closed:  # a write after the engine closed (never expected): done all the same
            return await asyncio.to_thread(job)
        turn = self._turn()
        try:
            async with asyncio.timeout(self.wait):
                await turn.acquire()
        except TimeoutError:
            self.beside += 1
            return await asyncio.to_thread(job)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, job)
        finally:
            turn.release()

    def close(self) -> None:
        """The thread ends once the job under way is done; a later job runs beside."""
        self._closed = True
        self._thread.shutdown(wait=False)
