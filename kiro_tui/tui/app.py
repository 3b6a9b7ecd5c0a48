"""The Textual app and its one factory, `make_app`, used by the CLI, the demo, tests and screenshots.

The app only presents: the engine runs on its own thread (core/engine_thread.py) with its own
store connection and HTTP client, so no SQLite, file or network call ever runs on Textual's
loop. Screens reach the app through tui/host.py's `Host` and call the engine with
`await host.engine_thread.call(...)` from workers; the engine's
events arrive as typed messages (tui/messages.py) carrying account ids.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import App
from textual.notifications import SeverityLevel

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import Clock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine_thread import EngineThread
from kiro_tui.core.events import (
    AccountsChanged,
    EngineEvent,
    EngineNotice,
    EngineProblem,
    ImportFailed,
    ImportFinished,
    RunnersChanged,
    StatusChanged,
)
from kiro_tui.core.logs import log_file
from kiro_tui.core.shutdown import (
    EXIT_INTERRUPTED,
    STOP_SIGNALS,
    AbandonedRefreshes,
    abandoned_message,
    leave_the_terminal,
    waiting_message,
)
from kiro_tui.core.summary import printable
from kiro_tui.tui import messages
from kiro_tui.tui.clipboard import pyperclip_copy
from kiro_tui.tui.collector import Collector
from kiro_tui.tui.screens.accounts import AccountsScreen

if TYPE_CHECKING:
    from kiro_tui.tui.host import Host

log = logging.getLogger("kiro_tui.tui")

COLLECTOR_LOOKS_EVERY = 2.0
"""Seconds between two asks whether a full garbage collection is owed and the moment quiet."""


class KiroTuiApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "kiro-tui"

    def __init__(
        self,
        store_path: Path,
        settings: Settings,
        clock: Clock,
        endpoints: Endpoints,
        kiro_cli_db: Path | None,
        kiro_cli_candidates: list[Path],
        *,
        run_engine: bool = True,
        fetch_usage: bool = True,
        system_copy: Callable[[str], None] | None = pyperclip_copy,
    ) -> None:
        super().__init__()
        self.store_path, self.settings, self.clock, self.endpoints = store_path, settings, clock, endpoints
        self.fetch_usage, self.system_copy = fetch_usage, system_copy
        self.engine_thread = EngineThread(store_path, settings, clock, endpoints, kiro_cli_db, kiro_cli_candidates,
                                          on_event=self._engine_event, run_loops=run_engine,
                                          fetch_usage=fetch_usage and settings.fetch_usage)
        self.crashed = False
        self._changed: set[str] = set()
        self._changed_all = False
        self._changed_told = False
        self._changed_lock = threading.Lock()
        self._frozen = False
        self.collector = Collector()
        self.accounts_screen = AccountsScreen()

    @property
    def engine(self) -> EngineThread:
        """The old name of `engine_thread`, kept for the tests' and benchmarks' rigs."""
        return self.engine_thread

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every toast of every screen: names, paths and server errors in it are data from files and
        services, so its title and (unless it is our own markup) its text are made printable."""
        super().notify(message if markup else printable(message), title=printable(title), severity=severity,
                       timeout=timeout, markup=markup)

    def get_default_screen(self) -> AccountsScreen:
        """The accounts screen is the app's base screen (no throwaway default screen under it)."""
        return self.accounts_screen

    def on_load(self) -> None:
        self.engine_thread.start()  # before the first frame: the store is read while Textual draws

    def on_unmount(self) -> None:
        self.engine_thread.request_stop()  # refreshes under way finish on the engine's thread; run_app waits
        self.collector.give_back()
        if self._frozen:
            gc.unfreeze()

    def freeze_what_is_built(self) -> None:
        """Every row is on screen: move what exists now (Textual, the widgets, a thousand rows'
        cells) out of the garbage collector's sight, once. A full collection walks every object
        while holding the interpreter lock the UI and engine threads share: with a thousand
        accounts that stalled the UI 40-70 ms whichever thread ran it. What is built later
        (refreshed accounts, new cells) is still collected, the full collections at quiet
        moments (tui/collector.py)."""
        if not self._frozen:
            self._frozen = True
            gc.freeze()
            self.collector.take_over()
            self.set_interval(COLLECTOR_LOOKS_EVERY, self.collector.tick)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.collector.activity()
        await super().on_event(event)

    # ------------------------------------------------------------------ engine events

    def _engine_event(self, event: EngineEvent) -> None:
        """Called on the engine's thread: hand each event over as a message (thread-safe).

        Changed ids are gathered here and handed over with one message until the screen takes
        them (`take_changed`), so a burst of a thousand refreshes is a few messages, not
        thousands; a status change is handed over only when it needs a person (a toast)."""
        screen = self.accounts_screen
        if isinstance(event, AccountsChanged):
            self.collector.activity()
            with self._changed_lock:
                if event.ids is None:
                    self._changed_all = True
                else:
                    self._changed |= event.ids
                if self._changed_told:
                    return
                self._changed_told = True
            screen.post_message(messages.AccountsUpdated())
        elif isinstance(event, StatusChanged):
            if event.change.after.is_alert and not event.change.before.is_alert:
                screen.post_message(messages.AccountStatusChanged(event))
        elif isinstance(event, ImportFinished):
            screen.post_message(messages.ImportFinished(event))
        elif isinstance(event, ImportFailed):
            screen.post_message(messages.ImportFailed(event.error, event.automatic))
        elif isinstance(event, EngineProblem):
            screen.post_message(messages.EngineProblem(event.problem, event.title))
        elif isinstance(event, EngineNotice):
            screen.post_message(messages.EngineNotice(event.text, event.title))
        elif isinstance(event, RunnersChanged):
            screen.post_message(messages.KeepersChanged(event.keepers))

    def take_changed(self) -> frozenset[str] | None:
        """The ids changed since the last take (None: any may have), for the screen to re-read."""
        with self._changed_lock:
            changed = None if self._changed_all else frozenset(self._changed)
            self._changed, self._changed_all, self._changed_told = set(), False, False
        return changed

    # ------------------------------------------------------------------ crashes

    def _fatal_error(self) -> None:
        """A bug in the app: one line and the log's path, never Textual's traceback with local
        variables (they hold tokens). The traceback, redacted, goes to the private log file."""
        self.crashed = True
        error = sys.exc_info()[1] or self._exception
        log.error("the terminal UI crashed", exc_info=error)
        self._exit_renderables.append(
            f"kiro-tui: internal error: {type(error).__name__}; details in {log_file()}. Please report it.")
        self._close_messages_no_wait()

    def _handle_exception(self, error: Exception) -> None:
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        self._fatal_error()

    def _print_error_renderables(self) -> None:
        for line in self._exit_renderables:
            print(line, file=sys.stderr)
        self._exit_renderables.clear()


if TYPE_CHECKING:
    _satisfies: type[Host] = KiroTuiApp  # screens reach the app only through tui/host.py's interface


def make_app(
    store_path: Path,
    settings: Settings,
    clock: Clock,
    endpoints: Endpoints,
    kiro_cli_db: Path | None,
    kiro_cli_candidates: list[Path] | None = None,
    **options: Any,  # KiroTuiApp's own keywords, passed on
) -> KiroTuiApp:
    """The one way to build the app: the CLI, `kiro-tui demo`, the tests and the screenshot script."""
    candidates = kiro_cli_candidates if kiro_cli_candidates is not None else ([kiro_cli_db] if kiro_cli_db else [])
    return KiroTuiApp(store_path, settings, clock, endpoints, kiro_cli_db, candidates, **options)


HANGUP_GRACE = 5.0
"""Seconds the hangup thread gives Textual to return by itself once the engine has stopped."""


def run_app(store_path: Path, settings: Settings, clock: Clock, endpoints: Endpoints, kiro_cli_db: Path | None,
            kiro_cli_candidates: list[Path], *, on_exit: Callable[[], None] | None = None,
            on_stuck: Callable[[int], None] = os._exit, **options: object) -> int:
    """Run the TUI, then let refreshes under way finish and commit before the process ends
    (the terminal is already restored, so what is waited for is said on stderr; a second
    Ctrl-C or signal abandons them, by name). SIGINT, SIGTERM and SIGHUP (the terminal closed)
    quit like `q`. Returns the exit code.

    After SIGHUP Textual may never return: its writer thread dies on the first write to the
    terminal that went away, and the UI loop then blocks on the writer's full queue. So a
    thread of its own stops the engine (refreshes under way finish and commit), and if Textual
    has still not returned `HANGUP_GRACE` seconds later, `on_stuck(code)` ends the process."""
    app = make_app(store_path, settings, clock, endpoints, kiro_cli_db, kiro_cli_candidates, **options)
    running, finished = [True], threading.Event()

    def end_after_hangup() -> None:
        code = finish_engine(app.engine_thread)
        if not finished.wait(HANGUP_GRACE):
            on_stuck(code)

    def on_signal(signum: int, frame: object) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            leave_the_terminal()  # nothing to draw on any more; no write may fail or block
            if running[0]:
                threading.Thread(target=end_after_hangup, name="kiro-tui hangup", daemon=True).start()
        if running[0]:
            app.exit()  # like `q`: the refreshes under way are waited for below
        else:
            raise KeyboardInterrupt  # already waiting for them: this one abandons them

    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, on_signal)
    try:
        app.run()
    finally:
        running[0] = False
        code = finish_engine(app.engine_thread)
        finished.set()
        if on_exit is not None:
            on_exit()
    if app.crashed or app.return_code:
        return app.return_code or 1
    return code


def finish_engine(engine: EngineThread) -> int:
    def say(line: str) -> None:  # the terminal is restored (or gone, after SIGHUP): stderr, and the log
        log.warning("%s", line)
        print(f"kiro-tui: {line}", file=sys.stderr, flush=True)

    try:
        left = engine.stop(on_waiting=lambda ids: say(waiting_message(ids)))
    except AbandonedRefreshes as exc:
        say(abandoned_message(exc.ids))
        return EXIT_INTERRUPTED
    if left:
        say(f"gave up waiting; {abandoned_message(left)}")
        return 1
    return 0
