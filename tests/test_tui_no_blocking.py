"""Nothing the TUI does waits on SQLite, a file or the network on Textual's loop, even when
the store is contended (issue 11). Proved by running it, not by reading the code.

1. A stall detector on the app's own loop: a task sleeps 10 ms over and over and records how
   late it wakes. Anything that blocks the loop (a store call waiting for a lock, an fsync, a
   socket) shows up as one late wake-up as long as the block; the loop thread's CPU time over
   the same wait is recorded beside it (a blocked call uses none, a repaint uses all of it),
   and a watchdog thread grabs the loop thread's stack while a wake-up is overdue, so a
   failure names what was running.
   While it runs, another connection holds the store's write lock (BEGIN IMMEDIATE, from a
   thread of its own, so that releasing it never depends on the loop under test) and the test
   does every kind of write a person can cause: refresh (`r`), a mode change (`m`), an import
   (`i`), while accounts come due and the engine refreshes them against the emulator. The lock
   is held until HOLD_AFTER_REQUESTS seconds after the last of those was asked for. The test
   checks that they all met the lock (the engine's thread is seen waiting inside the store,
   the three workers are still waiting when it is released) and all landed after it.

   The bound, and why it neither flakes nor misses: a write made on the loop waits for the
   lock to go, so it stalls the loop at least HOLD_AFTER_REQUESTS = 4 s (8 s if it comes
   before the last request: the holder then waits 4 s for the requests before its 4 s, still
   under the store's 10 s busy timeout, so it shows as a stall and not as an error). A healthy
   run's worst stall is Textual repainting, CPU on the loop thread. On the 2-core machine this
   was written on, with other people's test runs going (load average 2), it was 170 to 330 ms
   (a bare Textual DataTable there spends 60 to 130 ms of CPU repainting after one changed
   cell, and pushing a modal screen re-renders the whole screen beneath it); with two more
   busy loops started beside it, 640 to 750 ms. The 1.5 s bound is 2.7x under the smallest
   failure and 2x over the worst healthy stall seen even then. (Shown to fail: a store write
   put into the mode handler stalled the loop 7.6 to 7.9 s, 30 ms of it CPU, and the report named
   `mode_chosen -> AccountStore.set_mode -> BEGIN IMMEDIATE`.) Since the table draws again only
   the cells that changed (tests/test_tui_drawing.py), healthy stalls are far shorter:
   benchmarks/tui_burst.py's worst is 23 to 40 ms on a quiet machine. The bound is kept for
   loaded CI machines.

2. A stall detector only sees calls that block, and a read does not block on a writer (the
   store is in WAL mode). So a second test runs the same scenario under a profiling hook on the
   loop's thread that records every SQLite, file-open and network-socket call made on it,
   blocking or not: there must be none. It measures no time, so load cannot make it flaky.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events

from benchmarks.harness import LoopStallMonitor
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.importer import import_snapshot
from kiro_tui.core.models import Mode
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from kiro_tui.demo import account_from_seed
from kiro_tui.tui.screens.choice import ChoiceScreen
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from tests.support.engine import at, seed_into_kiro_cli
from tests.support.tui import build_app, build_store, settle
from tests.support.waiting import until_async

SIZE = (160, 40)
HOLD_AFTER_REQUESTS = 4.0
WORST_STALL_BOUND = 1.5
DUE_ACCOUNTS = 24


class LockHolder:
    """Another connection holding the store's write lock, from its own thread, until `after`
    seconds once `requested` is set (or `give_up` seconds pass without it)."""

    def __init__(self, path: Path, after: float, give_up: float = 4.0,
                 before_release: Callable[[], object] | None = None) -> None:
        self.path, self.after, self.give_up, self.before_release = path, after, give_up, before_release
        self.seen_before_release: object = None
        self.acquired = threading.Event()
        self.requested = threading.Event()
        self.released = threading.Event()
        self._thread = threading.Thread(target=self._hold, name="lock holder", daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self.acquired.wait(15), "could not take the store's write lock"

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.acquired.set()
            self.requested.wait(self.give_up)
            time.sleep(self.after)
            if self.before_release is not None:
                self.seen_before_release = self.before_release()
            conn.execute("COMMIT")
        finally:
            conn.close()
            self.released.set()

    def join(self) -> None:
        self._thread.join(15)


def press(app, *keys: str) -> None:  # type: ignore[no-untyped-def]
    """Keys as the terminal sends them, without the pilot's wait for the process to go idle
    (with the engine busy that wait alone outlasts the lock)."""
    for key in keys:
        app.post_message(events.Key(key, {"enter": "\r", "down": None}.get(key, key)))


def frames_in(thread_id: int | None, filename_part: str) -> bool:
    frame = sys._current_frames().get(thread_id or -1)
    while frame is not None:
        if filename_part in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False


class LoopIoTripwire:
    """Records every SQLite, file-open and network-socket call made on this thread (a profile
    hook: C calls are seen as they are made, whether they would block or not)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _hook(self, frame, event: str, arg: object) -> None:  # type: ignore[no-untyped-def]
        if event != "c_call":
            return
        owner = getattr(arg, "__self__", None)
        name = getattr(arg, "__qualname__", None) or getattr(arg, "__name__", repr(arg))
        if isinstance(owner, (sqlite3.Connection, sqlite3.Cursor, sqlite3.Blob)) or arg is sqlite3.connect:
            kind = "sqlite3"
        elif arg is io.open or arg is open or arg is io.open_code or name in ("FileIO", "io.FileIO"):
            kind = "file"
        elif isinstance(owner, socket.socket) and owner.family != socket.AF_UNIX:
            kind = "socket"  # asyncio's own self-pipe (a unix socketpair) is the loop's wake-up, not I/O
        else:
            return
        where = traceback.extract_stack(frame, limit=6)
        self.calls.append(f"{kind} {name} at " + " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                                                              for f in reversed(where)))

    def __enter__(self) -> LoopIoTripwire:
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)


async def contended_scenario(tmp_path: Path, emulator, emulator_time, kiro_db, *,  # type: ignore[no-untyped-def]
                             monitor: LoopStallMonitor | None = None,
                             tripwire: LoopIoTripwire | None = None) -> dict[str, object]:
    """The app with its engine running on accounts that come due while another connection
    holds the store's write lock, and a person refreshing, changing a mode and importing.
    The stall monitor and the tripwire, if given, watch the contended part. Returns what was seen."""
    now = at(emulator_time.now)
    seed_into_kiro_cli(emulator, kiro_db, kind="social", email="cli@example.com", expires_in=3600)
    seeded = [emulator.seed(kind="social", email=f"due{i}@example.com", expires_in=900) for i in range(DUE_ACCOUNTS)]
    store_path = tmp_path / "store" / "accounts.db"
    with build_store(store_path, [account_from_seed(s, f"{i:08x}") for i, s in enumerate(seeded)]) as store:
        report = import_snapshot(store, read_kiro_cli(kiro_db.path, now), now, Mode.SYNC)
    cli_id = report.imported[0].id
    spent = {f"{i:08x}": s["token"]["refresh_token"] for i, s in enumerate(seeded)}

    clock = ManualClock(now)
    app = build_app(store, emulator.url, clock=clock, kiro_cli_db=kiro_db.path, run_engine=True)
    seen: dict[str, object] = {"cli_id": cli_id}
    said: list[str] = []  # every toast, kept (Textual drops them when they time out)
    notify = app.notify

    def keep(message: str, **how: object) -> object:
        said.append(f"{how.get('title', '')}: {message}")
        return notify(message, **how)  # type: ignore[arg-type]

    app.notify = keep  # type: ignore[method-assign]
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        table = app.screen.query_one(AccountsTable)
        assert table.row_count == DUE_ACCOUNTS + 1
        engine_thread = app.engine._thread.ident
        holder = LockHolder(store_path, HOLD_AFTER_REQUESTS, before_release=lambda: sorted(
            w.group for w in list(app.workers) if w.group in ("refresh", "edit", "import") and not w.is_finished))
        async with contextlib.AsyncExitStack() as watching:
            if monitor is not None:
                await watching.enter_async_context(monitor)
            if tripwire is not None:
                watching.enter_context(tripwire)
            holder.start()
            clock.advance(400)  # every seeded account now expires inside the 600 s window: due
            table.move_cursor(row=table.get_row_index("00000003"))
            await until_async(lambda: app.accounts_screen.selected_view() is not None
                              and app.accounts_screen.selected_view().id == "00000003", "the first row selected")
            press(app, "r")  # refresh the highlighted account now
            await until_async(lambda: any(w.group == "refresh" for w in app.workers), "the refresh to start")
            table.move_cursor(row=table.get_row_index(cli_id))
            await until_async(lambda: app.accounts_screen.selected_view().id == cli_id, "the kiro-cli row selected")
            press(app, "m")
            await until_async(lambda: isinstance(app.screen, ChoiceScreen), "the mode choice")
            press(app, "down", "enter")  # sync -> follow
            await until_async(lambda: not isinstance(app.screen, ChoiceScreen), "the mode choice closed")
            press(app, "i")  # import from kiro-cli
            await until_async(lambda: any(w.group == "import" for w in app.workers), "the import to start")
            holder.requested.set()
            for _ in range(6):  # a person moving around while all that waits
                press(app, "down")
                await asyncio.sleep(0.05)
            waited_in_store = False
            while not holder.released.is_set():
                waited_in_store = waited_in_store or frames_in(engine_thread, "kiro_tui/core/store/")
                await asyncio.sleep(0.02)
            holder.join()
            seen["unfinished_at_release"] = holder.seen_before_release
            seen["engine_waited_in_store"] = waited_in_store
            await app.engine.call(lambda engine: engine.scheduler.wait_idle())
            await settle(pilot)
        seen["toasts"] = said
    conn = sqlite3.connect(store_path)
    try:
        rows = dict(conn.execute("SELECT id, refresh_token FROM accounts").fetchall())
        seen["refreshed"] = sum(1 for account_id, token in spent.items() if rows.get(account_id) != token)
        seen["cli_mode"] = conn.execute("SELECT mode FROM accounts WHERE id = ?", (cli_id,)).fetchone()[0]
    finally:
        conn.close()
    return seen


def check_the_scenario_happened(seen: dict[str, object]) -> None:
    """The writes really met the lock, and every one of them landed after it."""
    assert seen["engine_waited_in_store"], "the engine never waited for the store: nothing was contended"
    assert set(seen["unfinished_at_release"]) == {"refresh", "edit", "import"}, seen  # each waited for the lock
    assert seen["refreshed"] == DUE_ACCOUNTS, seen
    assert seen["cli_mode"] == "follow", seen
    shown = "\n".join(seen["toasts"])  # type: ignore[arg-type]
    assert "Imported from kiro-cli" in shown and "Mode:" in shown, shown
    assert "refreshed; expires" in shown, shown  # the `r` answer
@pytest.mark.slow


async def test_the_loop_never_stalls_while_the_store_is_locked(tmp_path, emulator, emulator_time, kiro_db) -> None:
    monitor = LoopStallMonitor()
    seen = await contended_scenario(tmp_path, emulator, emulator_time, kiro_db, monitor=monitor)
    assert monitor.beats, "the stall detector never ran"
    assert monitor.worst < WORST_STALL_BOUND, (
        f"Textual's loop stalled {monitor.worst * 1000:.0f} ms while another connection held the store's "
        f"write lock: something waited on the store on the UI loop.\n{monitor.report()}")
    check_the_scenario_happened(seen)
    print(f"\nworst stall {monitor.worst * 1000:.0f} ms; {monitor.report()}")
@pytest.mark.slow


async def test_no_sqlite_file_or_socket_call_runs_on_the_loop(tmp_path, emulator, emulator_time, kiro_db) -> None:
    tripwire = LoopIoTripwire()
    seen = await contended_scenario(tmp_path, emulator, emulator_time, kiro_db, tripwire=tripwire)
    assert not tripwire.calls, "I/O on Textual's loop:\n" + "\n".join(dict.fromkeys(tripwire.calls))
    check_the_scenario_happened(seen)


def test_the_stall_detector_sees_a_blocked_loop() -> None:
    """The detector itself: a 300 ms blocking call on the loop is reported as such, with its stack."""

    async def scenario() -> LoopStallMonitor:
        async with LoopStallMonitor() as monitor:
            await asyncio.sleep(0.05)
            time.sleep(0.3)  # the kind of call that must never happen on the UI loop
            await asyncio.sleep(0.05)
        return monitor

    monitor = asyncio.run(scenario())
    assert 0.28 <= monitor.worst < 2.0
    assert any(" scenario" in stack for stack in monitor.longest_stacks(1)), monitor.report()


def test_the_tripwire_sees_sqlite_on_the_loop(tmp_path) -> None:
    """The tripwire itself: a SQLite call on this thread is recorded; one on another thread is not."""
    conn = sqlite3.connect(tmp_path / "x.db", check_same_thread=False)
    with LoopIoTripwire() as tripwire:
        worker = threading.Thread(target=lambda: conn.execute("SELECT 1").fetchone())
        worker.start()
        worker.join()
        assert not tripwire.calls
        conn.execute("SELECT 1").fetchone()
    conn.close()
    assert tripwire.calls and tripwire.calls[0].startswith("sqlite3 ")
