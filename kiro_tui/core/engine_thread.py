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
import logging
import threading
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
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._main: asyncio.Task[None] | None = None

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
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._stopped.set()

    async def _main_task(self) -> None:
        self._main = asyncio.current_task()
        self._begin = asyncio.Event()
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
                await self.engine.run()
            else:
                await asyncio.Event().wait()  # serve calls until stopped
        except asyncio.CancelledError:
            pass
        finally:
            await self.engine.close()
            store.close()

    def begin(self) -> None:
        """The first screen is drawn: start the work it did not need (thread-safe, idempotent)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._begin.set)

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
        try:
            future = asyncio.run_coroutine_threadsafe(_call(fn, engine), self._loop)
        except RuntimeError:  # its loop has closed: the app is shutting down
            raise KiroTuiError("the refresh engine has stopped") from None
        return await asyncio.wrap_future(future)

    def call_soon(self, fn: Callable[[Engine], object]) -> None:
        """Run a plain function on the engine's loop, without waiting (e.g. `account_changed`)."""
        if self._loop is not None and self.engine is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, self.engine)

    def request_stop(self, timeout: float = 20.0) -> None:
        """Ask the engine to stop without waiting (from the UI loop as the app closes): refreshes
        under way still finish and commit on the engine's thread; `stop` can wait for them."""
        loop, engine = self._loop, self.engine
        if loop is None or engine is None or loop.is_closed():
            return

        async def stop_then_end() -> None:
            try:
                await engine.stop(timeout)
            finally:
                if self._main is not None:
                    self._main.cancel()

        try:
            loop.call_soon_threadsafe(lambda: loop.create_task(stop_then_end()))
        except RuntimeError:  # the loop closed meanwhile
            pass

    def stop(self, timeout: float = 20.0, on_waiting: Callable[[list[str]], None] | None = None) -> list[str]:
        """Stop from any thread but the engine's, blocking: refreshes under way finish and commit
        first (up to `timeout`). Returns what was abandoned. A KeyboardInterrupt while waiting
        (a second Ctrl-C) cancels what is left and is re-raised after saying what."""
        if self._thread is None or self._loop is None or self._stopped.is_set():
            return []
        self._ready.wait()
        if self.engine is None:
            self._thread.join(timeout)
            return []
        engine = self.engine
        if on_waiting is not None and engine.scheduler is not None and engine.scheduler.in_flight:
            on_waiting(sorted(engine.scheduler.in_flight))
        try:
            future = asyncio.run_coroutine_threadsafe(engine.stop(timeout), self._loop)
        except RuntimeError:  # stopped meanwhile (request_stop finished first)
            self._thread.join(timeout)
            return []
        left: list[str] = []
        try:
            left = future.result(timeout + 5)
        except KeyboardInterrupt:
            left = sorted(engine.scheduler.in_flight) if engine.scheduler else []
            asyncio.run_coroutine_threadsafe(engine.abandon(), self._loop).result(5)
            self._finish()
            raise AbandonedRefreshes(left) from None
        except Exception:  # noqa: BLE001 - the loop is going away regardless
            log.exception("engine stop failed")
        if left:
            asyncio.run_coroutine_threadsafe(engine.abandon(), self._loop).result(5)
        self._finish()
        return left

    def _finish(self) -> None:
        assert self._loop is not None
        if self._main is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._main.cancel)
        if self._thread is not None:
            self._thread.join(10)


class AbandonedRefreshes(KeyboardInterrupt):
    """A second Ctrl-C cut the wait for refreshes under way; `ids` name them."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids)
        self.ids = ids


async def _call(fn: Callable[[Engine], Awaitable[T]], engine: Engine) -> T:
    return await fn(engine)
