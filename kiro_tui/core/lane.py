"""The place writes' own worker threads, a few jobs at a time, so the event loop keeps the
interpreter and the disk gets several fsyncs at once.

Why a few threads, not one nor the executor's six: a place write mostly waits on its fsyncs,
and fsyncs issued together share the file system's journal commit (on a journaled ext4,
1.7-1.8 ms a place write on one thread, 0.9 ms on three), while between its system calls a
write runs Python and takes the interpreter lock from the event loop, which turns the network
slots over. With a thread per file and six at once, the writers kept taking the lock from the
loop: one thread was faster in all seven interleaved pairs of `refresh_throughput --links 3`.
A job is one account's writes (`PlaceSync.write_places`), so `WRITERS` threads mean that many
accounts' writes under way, never one account's files spread over threads.

A job waits for its turn at most `LANE_WAIT` seconds; then, if it has not started, it runs
beside the lane, on a thread of the loop's own executor. So a place its tool keeps locked, a
slow disk or a burst the threads cannot keep up with holds the others back for that long at
most, and they go on in parallel as before. One second, not less: in that benchmark, with the
lane's one thread of then, jobs waited 150-250 ms for their turn, and at 0.25 s most of one
run's went beside the lane (1.48).

A burst moves to a process of its own (core/place_worker.py): a job that finds every thread
busy starts it, and from then on jobs run there, `WRITERS` at a time, until it has been idle a
minute. Their Python then no longer takes the interpreter lock from the loop (see there for
the figures). A job that cannot go there (not picklable, no process on this platform, or the
process could not start) runs on the threads as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from kiro_tui.core import place_worker
from kiro_tui.core.place_worker import NotRun, PlaceWorker

T = TypeVar("T")
log = logging.getLogger("kiro_tui.places")
LANE_WAIT = 1.0
"""Seconds a job waits for its turn before it runs beside the lane."""
WRITERS = 3
"""The lane's threads: jobs under way at once."""


class Lane:
    def __init__(self, name: str, wait: float = LANE_WAIT, writers: int = WRITERS) -> None:
        self.wait = wait
        self._writers = writers
        self._threads = ThreadPoolExecutor(max_workers=writers, thread_name_prefix=name)
        self._closed = False
        self.beside = 0
        """Jobs that waited `wait` for their turn and ran beside the lane."""
        self.separate = place_worker.available()
        """A burst may move to the process of its own (False: the threads only)."""
        self.worker: PlaceWorker | None = None
        """That process, while it runs."""
        self._on_threads = 0
        self._count_lock = threading.Lock()

    async def run(self, job: Callable[[], T]) -> T:
        """`job()` on one of the lane's threads in its turn, or beside them if its turn has not
        come within `wait` seconds. Queued on the threads themselves, so that a thread goes from
        one job to the next without waiting for the event loop to hand it over."""
        if self._closed:  # a write after the engine closed (never expected): done all the same
            return await asyncio.to_thread(job)
        try:
            return await self._in_turn(job)
        except NotRun:  # its process never took it (it ended, or could not start): made here instead
            if self.worker is not None and not self.worker.ready:
                self.separate = False  # (said in the log by the process's side)
            return await asyncio.to_thread(job)

    async def _in_turn(self, job: Callable[[], T]) -> T:
        queued = self._submit(job)
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

    def _submit(self, job: Callable[[], T]) -> Future[T]:
        """To the process while it runs (or when this job would wait for a thread), else to a
        thread."""
        if self.worker is not None and self.worker.winding_down:
            self.worker = None
        if self.worker is None and self.separate and self._on_threads >= self._writers:
            try:
                self.worker = PlaceWorker(self._writers)
                log.info("place writes moved to a process of their own (pid %d) for a burst: every thread was busy",
                         self.worker.pid)
            except (OSError, RuntimeError) as exc:  # (no process, or no thread to read its answers)
                self.separate = False
                log.warning("place writes stay on kiro-tui's own threads: their process did not start: %s", exc)
        if self.worker is not None:
            sent = self.worker.submit(job)
            if sent is not None:
                return sent
        with self._count_lock:
            self._on_threads += 1
        queued = self._threads.submit(job)
        queued.add_done_callback(self._off_thread)
        return queued

    def _off_thread(self, _: object) -> None:
        with self._count_lock:
            self._on_threads -= 1

    def close(self) -> None:
        """The threads and the process end once the jobs under way are done; a later job runs
        beside."""
        self._closed = True
        self._threads.shutdown(wait=False)
        if self.worker is not None:
            self.worker.close()
