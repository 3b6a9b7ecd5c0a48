"""The engine on a thread of its own, for a presenter whose event loop must never block (the TUI).

Why a thread and not workers on the UI loop: every store call (a lease, a durable commit with
fsync, a wait of up to 10 s for another process's write lock), every read of kiro-cli's
database and every place file is blocking I/O. Moving each one off the loop by hand is easy
to get wrong once; giving the whole engine its own loop, its own store connection and its own
HTTP client makes "nothing blocks the UI" true by construction. The presenter calls the engine
with `call(lambda engine: engine.method(...))` from any loop, and receives events through the
`on_event` callback (called on the engine's thread: hand them over thread-safely, e.g. with
Textual's `post_message`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.events import EngineEvent
from kiro_tui.core.runners import TUI
from kiro_tui.core.shutdown import AbandonedRefreshes
from kiro_tui.core.store import AccountStore

log = logging.getLogger("kiro_tui.engine")
BEGIN_AT_THE_LATEST = 2.0
"""Seconds after the store opens when the engine starts its background work even if the
presenter never said its first screen is up."""
T = TypeVar("T")


class EngineThread:
    def __init__(
        self,
        store_path: Path,
        settings: Settings,
        clock: Clock,
        endpoints: Endpoints,
        kiro_cli_db: Path | None,
        kiro_cli_candidates: list[Path],
        *,
        on_event: Callable[[EngineEvent], None] | None = None,
        run_loops: bool = True,
        fetch_usage: bool = True,
    ) -> None:
        self.store_path, self.settings, self.clock, self.endpoints = store_path, settings, clock, endpoints
        self.kiro_cli_db, self.kiro_cli_candidates = kiro_cli_db, kiro_cli_candidates
        self.on_event, self.run_loops, self.fetch_usage = on_event, run_loops, fetch_usage
        self.engine: Engine | None = None
        self.error: KiroTuiError | None = None
        """Why the engine could not be built (an unusable store, no certificates), if so."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._begin = asyncio.Event()  # (bound to the engine's loop when that first waits on it)
        self._begin_asked = False
        """`begin` was called, perhaps before the engine's loop was there to be told."""
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.left: list[str] = []
        """Refreshes still under way when the stop's wait ran out (then abandoned)."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_thread, name="kiro-tui engine", daemon=True)
        self._thread.start()

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main_task())
        finally:
            try:
                _end_what_is_left(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._stopped.set()

    async def _main_task(self) -> None:
        if self._begin_asked:  # (before this loop was there to be told)
            self._begin.set()
        store = None
        try:
            store = AccountStore.open(self.store_path)  # blocking, but on the engine's own thread
            self.engine = Engine(store, self.settings, self.clock, self.endpoints, self.kiro_cli_db,
                                 kiro_cli_candidates=self.kiro_cli_candidates, on_event=self.on_event,
                                 fetch_usage=self.fetch_usage, runner_kind=TUI if self.run_loops else None)
            self._ready.set()  # the store is open: the first screen's rows can be read now
            try:  # the rest (certificates, scheduling, the first watch pass) once they are on screen
                await asyncio.wait_for(self._begin.wait(), BEGIN_AT_THE_LATEST)
            except TimeoutError:
                pass
            await self.engine.start()
        except asyncio.CancelledError:  # stopped before it began: nothing to finish
            self._ready.set()
            if store is not None:
                store.close()
            return
        except KiroTuiError as exc:
            self.error = exc
            self._ready.set()
            if store is not None:
                store.close()
            return
        except BaseException as exc:
            self.error = KiroTuiError(f"the refresh engine could not start: {type(exc).__name__}: {exc}")
            log.exception("engine start failed")
            self._ready.set()
            if store is not None:
                store.close()
            return
        self._ready.set()
        try:
            if self.run_loops:
                await self.engine.run()  # returns once someone asks the engine to stop
            else:
                await self.engine.until_stopped()  # serve calls until then
        finally:  # the client and the store close only once every refresh under way is over
            try:
                self.left = await self.engine.stop()
                if self.left:  # the wait ran out: cancelled, so each releases its lease while the store is open
                    await self.engine.abandon()
                await self.engine.close()
            except Exception:
                log.exception("engine shutdown failed")
            finally:
                store.close()

    def begin(self) -> None:
        """The first screen is drawn: start the work it did not need (thread-safe, idempotent,
        and at any moment: right after `start`, the engine's loop may not be there yet)."""
        self._begin_asked = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: the engine has ended
                loop.call_soon_threadsafe(self._begin.set)

    async def ready(self) -> Engine:
        """The engine once built; raises what stopped it from being built."""
        if not self._ready.is_set():
            await asyncio.to_thread(self._ready.wait)
        if self.engine is None:
            raise self.error or KiroTuiError("the refresh engine is not running")
        return self.engine

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set() and self.engine is not None

    async def call(self, fn: Callable[[Engine], Awaitable[T]]) -> T:
        """Run `fn(engine)` on the engine's loop and await its result from the caller's loop."""
        engine = await self.ready()
        assert self._loop is not None
        coroutine = _call(fn, engine)
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # its loop has closed: the app is shutting down
            coroutine.close()  # never run: no "was never awaited" warning on the way out
            raise KiroTuiError("the refresh engine has stopped") from None
        return await asyncio.wrap_future(future)

    def call_soon(self, fn: Callable[[Engine], object]) -> None:
        """Run a plain function on the engine's loop, without waiting (e.g. `account_changed`)."""
        if self._loop is not None and self.engine is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, self.engine)

    def request_stop(self, timeout: float = 20.0) -> None:
        """Ask the engine to stop without waiting (from the UI loop as the app closes): refreshes
        under way still finish and commit on the engine's thread, and only then do its HTTP
        client and store close and the thread end; `stop` waits for that."""
        self._on_engine_loop(lambda engine: engine.stop(timeout))

    def _on_engine_loop(self, fn: Callable[[Engine], Awaitable[object]]) -> bool:
        """Start `fn(engine)` on the engine's loop without waiting; False when it has ended."""
        loop, engine = self._loop, self.engine
        if loop is None or engine is None or loop.is_closed() or self._stopped.is_set():
            return False
        try:
            loop.call_soon_threadsafe(lambda: loop.create_task(_call(fn, engine)))
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    def stop(self, timeout: float = 20.0, on_waiting: Callable[[list[str]], None] | None = None) -> list[str]:
        """Stop from any thread but the engine's, blocking until the engine's thread has ended:
        refreshes under way finish and commit first (up to `timeout`, then they are abandoned).
        Returns what was abandoned. A KeyboardInterrupt while waiting (a second Ctrl-C, or a
        signal handler raising it) cancels what is left and is re-raised as AbandonedRefreshes
        naming it."""
        if self._thread is None:
            return []
        if not self._ready.wait(BEGIN_AT_THE_LATEST + 30) or self.engine is None:
            self._thread.join(timeout)
            return []
        engine = self.engine
        stopping = False
        try:  # from here on, a second signal abandons by name, whenever it lands (even mid-message)
            self.begin()  # not waiting out the first screen's grace: the engine goes straight to stopping
            running = engine.under_way
            if on_waiting is not None and running and not self._stopped.is_set():
                on_waiting(running)
            stopping = self._on_engine_loop(lambda e: e.stop(timeout))
            self._join(timeout + 5)
        except KeyboardInterrupt:
            left = engine.under_way
            if not stopping:
                self._on_engine_loop(lambda e: e.stop(timeout))
            self._on_engine_loop(lambda e: e.abandon())
            self._join(10)
            raise AbandonedRefreshes(left) from None
        return list(self.left)

    def _join(self, timeout: float) -> None:
        """Wait for the thread in short steps, so that a signal's KeyboardInterrupt gets through."""
        assert self._thread is not None
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._stopped.wait(0.1)


async def _call(fn: Callable[[Engine], Awaitable[T]], engine: Engine) -> T:
    return await fn(engine)


def _end_what_is_left(loop: asyncio.AbstractEventLoop) -> None:
    """Calls still running when the engine stopped (a login's polling the app no longer waits
    for): cancelled and let finish, as asyncio.run does, so none is destroyed pending with a
    warning on the terminal. Refreshes are over by now: the engine's stop waited for them."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
