"""The store's writer: a refresh's writes run on a thread of their own, off the event loop, and
the writes that queue while one commit is under way are committed together (group commit).

Why: a durable commit waits for the disk (an fsync, milliseconds on a laptop's SSD, far more on
a busy or network disk), and the store's write lock is held meanwhile. On the event loop that
wait stopped every network call; with several refreshes answered at once it was paid once each.
Here the loop only hands a job over; the writer runs every job queued by then in one
transaction, each in a savepoint of its own when it has company, and one COMMIT (one fsync when
any job asked for a durable one) makes them all durable together. A job's answer is given only
after that commit.

A job that raises (its own bug, a constraint, a bad statement) is rolled back to its savepoint:
the error is its own, the others commit. A write the store will not take (disk full, read-only,
locked, I/O error, damage: `STORE_REFUSALS`) fails every job of that group with the same
`StoreWriteError`, as a commit of their own would have. Should the thread itself fail, every
job queued and every later one fails at once rather than waiting for ever. The writer
has its own connection to the store file (one per thread: a connection shared with the loop
would hand the loop its transactions), opened on the first job and reopened when the store
was (`reopen_if_replaced`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kiro_tui.core.errors import StoreWriteError
from kiro_tui.core.store.opening import bump_generation, write_error

if TYPE_CHECKING:
    from kiro_tui.core.store.opening import StoreFile

T = TypeVar("T")
log = logging.getLogger("kiro_tui.store")

GROUP_MOST = 64
"""Jobs committed together at most (a bound on how long the write lock is held at once)."""
STORE_REFUSALS = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
                  sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
                  sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB}
"""SQLite's primary result codes that say the store will not take a write (the whole group's
failure), as against a job's own mistake."""


@dataclass
class _Job(Generic[T]):
    work: Callable[[sqlite3.Connection], T]
    durable: bool
    future: Future[T] = field(default_factory=Future)


class StoreWriter:
    """One store file's writer thread (see the module's docstring)."""

    def __init__(self, store: StoreFile, connect: Callable[[], sqlite3.Connection]) -> None:
        self.store = store
        self._connect = connect
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.groups = 0
        """Commits made (a group of one job or more): with `jobs`, what shows the grouping."""
        self.jobs = 0
        self._running: list[_Job[Any]] = []
        """The group under way (what a failure of the thread itself must answer)."""
        self._synchronous: str | None = None
        """The connection's `PRAGMA synchronous` as last set (set again only when it changes)."""

    def submit(self, work: Callable[[sqlite3.Connection], T], durable: bool = True) -> Future[T]:
        """Queue `work(connection)` to run in the writer's next transaction; the future is done
        once that transaction is committed (or failed). `work` returns values, never a cursor: a
        statement left open keeps the connection on an old snapshot (its next write fails)."""
        job: _Job[T] = _Job(work, durable)
        with self._lock:
            if self._closed:
                job.future.set_exception(StoreWriteError(f"the account store {self.store.path} is closed", "closed"))
                return job.future
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="kiro-tui store writer", daemon=True)
                self._thread.start()
            self._jobs.put(job)
        return job.future

    async def run(self, work: Callable[[sqlite3.Connection], T], durable: bool = True, *,
                  see_through: bool = False) -> T:
        """`work` in the writer's next commit, awaited. A caller cancelled while its job is
        queued takes it back; a job already running finishes and its error, if any, is read.
        `see_through`: the job is never taken back, and the caller is not answered before it
        is done (a new token's commit: its outcome decides whether the token must be held
        instead); a cancellation meanwhile is delivered again at the caller's next await."""
        future = self.submit(work, durable)
        answer = asyncio.wrap_future(future)
        if not see_through:
            try:
                return await asyncio.shield(answer)
            except asyncio.CancelledError:
                if not future.cancel():
                    answer.add_done_callback(lambda done: done.cancelled() or done.exception())
                raise
        cancelled = False
        try:
            while True:
                try:
                    return await asyncio.shield(answer)
                except asyncio.CancelledError:
                    cancelled = True
                    if answer.done():  # (answered: the error, if any, is the job's own)
                        return answer.result()
        finally:
            if cancelled:
                _cancel_again()

    def close(self) -> None:
        """Commit what is queued, then end the thread (a later job fails at once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # ------------------------------------------------------------------ the thread

    def _serve(self) -> None:
        try:
            self._serve_jobs()
        except BaseException as exc:  # a bug here must not leave callers waiting for ever
            log.exception("the store's writer stopped")
            error = StoreWriteError(f"the account store {self.store.path} is not writable: its writer stopped "
                                    f"({type(exc).__name__}: {exc}); restart kiro-tui", "writer stopped")
            with self._lock:
                self._closed = True
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None and job.future.set_running_or_notify_cancel():
                    job.future.set_exception(error)
            for job in self._running:
                if not job.future.done():
                    job.future.set_exception(error)

    def _serve_jobs(self) -> None:
        connection: sqlite3.Connection | None = None
        identity: object = None
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                group, last = [first], False
                while len(group) < GROUP_MOST:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        last = True
                        break
                    group.append(job)
                live = [job for job in group if job.future.set_running_or_notify_cancel()]
                self._running = live
                if live:
                    if connection is not None and identity != self.store.identity:
                        connection.close()
                        connection = None
                    if connection is None:
                        connection, identity = self._open(live)
                    if connection is not None:
                        self._commit(connection, live)
                if last:
                    return
        finally:
            if connection is not None:
                connection.close()

    def _open(self, group: list[_Job[Any]]) -> tuple[sqlite3.Connection | None, object]:
        identity = self.store.identity
        self._synchronous = None
        try:
            return self._connect(), identity
        except sqlite3.Error as exc:
            error = write_error(self.store.path, exc)
            for job in group:
                job.future.set_exception(error)
            return None, None

    def _commit(self, connection: sqlite3.Connection, group: list[_Job[Any]]) -> None:
        answers: list[tuple[_Job[Any], object, BaseException | None]] = []
        alone = len(group) == 1  # (a savepoint only where another job's work must be kept apart)
        try:
            synchronous = "FULL" if any(job.durable for job in group) else "NORMAL"
            if synchronous != self._synchronous:
                connection.execute(f"PRAGMA synchronous={synchronous}")
                self._synchronous = synchronous
            connection.execute("BEGIN IMMEDIATE")
            for job in group:
                if not alone:
                    connection.execute("SAVEPOINT job")
                try:
                    value = job.work(connection)
                except sqlite3.Error as exc:
                    if refused(exc):
                        raise  # the store would not take a write: the whole group fails below
                    answers.append((job, None, exc))  # this job's own mistake: the others go on
                    connection.execute("ROLLBACK" if alone else "ROLLBACK TO job")
                except Exception as exc:  # noqa: BLE001 - a job's bug is its own failure, not its group's
                    answers.append((job, None, exc))
                    connection.execute("ROLLBACK" if alone else "ROLLBACK TO job")
                else:
                    answers.append((job, value, None))
                if not alone:
                    connection.execute("RELEASE job")
            if connection.in_transaction:
                generation = bump_generation(connection)
                connection.execute("COMMIT")
                self.store.ours(generation)
                self.groups += 1
        except sqlite3.Error as exc:
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:  # SQLite may have rolled back by itself (disk full)
                    pass
            error = write_error(self.store.path, exc)
            for job in group:
                job.future.set_exception(error)
            return
        self.jobs += len(group)
        for job, value, failure in answers:
            if failure is not None:
                job.future.set_exception(failure)
            else:
                job.future.set_result(value)


def refused(exc: sqlite3.Error) -> bool:
    """Whether SQLite said the store will not take the write (`STORE_REFUSALS`); an error
    with no code (the module's own) is a job's mistake."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in STORE_REFUSALS


def _cancel_again() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.cancel()
