"""The TUI open on 1,000 accounts that all come due at the same instant: how long its event
loop stalls while the engine refreshes them, and how long the refreshes take against the
engine alone doing the same work with no UI (headless).

    python -m benchmarks.tui_burst [--accounts 1000] [--latency-ms 100] [--concurrency 16] [--lead 12] [--direct]

The emulator runs in its own process with `latency-ms` on every response. Each run gets its
own 1,000 logins and its own store, each login imported from a tool's file the way people get
them (sync mode: every refresh writes its place back; `--direct` fills the store directly,
with no places, as this script did before 2026-12-07); every token is set to expire `refresh_window` seconds
after a moment `lead` seconds ahead, so that every account comes due at that moment, when
the TUI is already open and settled (or the headless engine running). Both runs use the
same settings (concurrency 16, as benchmarks/refresh_throughput.py) and fetch no usage.

Printed: for the TUI, over every round, the event-loop stalls on the app's loop over the burst (from the due
moment until every refresh is on screen, plus one second), worst and 99th percentile (of
wake-ups of a task sleeping 10 ms), and where the longest ones were; the time from the due
moment until the store holds every refresh, for the TUI and headless, and their ratio; and
until the screen shows every one (medians over the rounds; single runs on a shared 2-core
machine swing by 2x); the CPU the UI and engine threads used; and, for scale, the stalls of
a bare Textual DataTable that only has one cell changed ten times a second.
Goals: worst stall ≤ 50 ms; time ≤ 1.1x headless.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import (
    EmulatorProcess,
    LoopStallMonitor,
    StoreProgress,
    build_imported_store,
    burst_app,
    describe_stalls,
    emulator_logins,
    percentile,
    seed_accounts,
    set_expiry,
    until_loaded,
    where_stalled,
    write_store,
)
from benchmarks.tui_startup import SIZE
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.models import Account
from kiro_tui.core.store import AccountStore


def due_together(accounts: list[Account], settings: Settings, lead: float) -> tuple[list[Account], float]:
    """The accounts, each expiring so that it comes due `lead` seconds from now; and that
    moment on the perf_counter clock."""
    due_wall = datetime.now(UTC) + timedelta(seconds=lead)
    due_at = time.perf_counter() + lead
    return [replace(a, expires_at=due_wall + settings.window) for a in accounts], due_at


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))


async def headless(store_path: Path, url: str, settings: Settings, total: int, due_at: float) -> tuple[float, float]:
    """The engine alone (what `kiro-tui watch` runs), on this thread's loop. Returns the time
    until the store holds every refresh, and the CPU the engine's thread spent meanwhile."""
    with AccountStore.open(store_path) as store, StoreProgress(store_path, total) as progress:
        engine = Engine(store, settings, SystemClock(), Endpoints(override=url), None, fetch_usage=False)
        await engine.start()
        task = asyncio.create_task(engine.run())
        await sleep_until(due_at)
        cpu = time.thread_time()
        done = await progress.wait(timeout=600)
        cpu = time.thread_time() - cpu
        await engine.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.close()
    return done - due_at, cpu


def thread_cpu(ident: int) -> float:
    """CPU seconds used so far by the thread `ident` (Linux, macOS)."""
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


async def tui(store_path: Path, url: str, settings: Settings, total: int, due_at: float) -> dict[str, object]:
    """The app (headless driver) with its engine running, as `kiro-tui` runs it."""
    app = burst_app(store_path, url, settings)
    monitor = LoopStallMonitor()
    result: dict[str, object] = {}
    with StoreProgress(store_path, total) as progress:
        async with app.run_test(size=SIZE), monitor:
            screen = app.accounts_screen
            await until_loaded(app, total)
            result["settled_before_due"] = due_at - time.perf_counter()
            await sleep_until(due_at)
            threads = {"UI": threading.get_ident(), "engine": app.engine._thread.ident}
            cpu = {name: thread_cpu(ident) for name, ident in threads.items()}
            result["store"] = await progress.wait(timeout=600) - due_at
            while not (all(v.account.last_refresh_at is not None for v in screen.views.values())
                       and not screen._loading):
                await asyncio.sleep(0.02)
            shown = time.perf_counter()
            result["screen"] = shown - due_at
            result["cpu"] = {name: thread_cpu(ident) - cpu[name] for name, ident in threads.items()}
            await asyncio.sleep(1.0)  # the repaints behind the last change
            end = time.perf_counter()
    result["beats"] = monitor.window(due_at, end)
    result["where"] = where_stalled(monitor, due_at, end)
    return result


async def bare_floor(count: int, seconds: float = 3.0, every: float = 0.1) -> list:
    """What Textual itself costs here: a bare 1,000-row DataTable (benchmarks/tui_startup.py)
    with one visible cell changed every `every` seconds, under the same stall detector."""
    from benchmarks.tui_startup import BareTable

    rows = [(f"user{i}@example.com", "in 20 minutes", "fresh", "social", "us-east-1", "—", "own", "never")
            for i in range(count)]
    app = BareTable(rows)
    monitor = LoopStallMonitor()
    async with app.run_test(size=SIZE) as pilot:
        from textual.widgets import DataTable

        table = app.query_one(DataTable)
        await pilot.pause(0.5)
        async with monitor:
            start = time.perf_counter()
            i = 0
            while time.perf_counter() - start < seconds:
                i += 1
                table.update_cell_at((i % 20, 1), f"in {i % 60} minutes")
                await asyncio.sleep(every)
            end = time.perf_counter()
    return monitor.window(start, end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--lead", type=float, default=12.0, help="seconds from start until everything is due")
    parser.add_argument("--rounds", type=int, default=3, help="TUI and headless runs each, taking turns")
    parser.add_argument("--direct", action="store_true",
                        help="fill the store directly (no places) instead of importing each login from a tool's file")
    args = parser.parse_args()
    settings = replace(Settings(), concurrency=args.concurrency)

    headless_times, headless_cpus, results = [], [], []
    with EmulatorProcess() as emulator, tempfile.TemporaryDirectory() as tmp:
        emulator.control("faults", {"latency_ms": args.latency_ms})
        for round_ in range(args.rounds):
            for kind in ("headless", "tui") if round_ % 2 == 0 else ("tui", "headless"):
                path = Path(tmp) / f"{kind}{round_}.db"
                if args.direct:
                    fresh = seed_accounts(emulator.url, args.accounts, prefix=f"{kind[0]}{round_}-")
                    accounts, due_at = due_together(fresh, settings, args.lead)
                    write_store(path, accounts)
                else:  # as people get them: each login imported from a tool's file, so each has its place
                    logins = emulator_logins(emulator.url, args.accounts, prefix=f"{kind[0]}{round_}-")
                    build_imported_store(path, logins, places=Path(tmp) / f"{kind}{round_}-places")
                    due_at = time.perf_counter() + args.lead
                    set_expiry(path, datetime.now(UTC) + timedelta(seconds=args.lead) + settings.window)
                gc.collect()
                if kind == "headless":
                    elapsed, cpu = asyncio.run(headless(path, emulator.url, settings, args.accounts, due_at))
                    headless_times.append(elapsed)
                    headless_cpus.append(cpu)
                else:
                    results.append(asyncio.run(tui(path, emulator.url, settings, args.accounts, due_at)))
    floor_beats = asyncio.run(bare_floor(args.accounts))

    beats = [b for r in results for b in r["beats"]]  # type: ignore[union-attr]
    late = [b.late for b in beats]
    tui_times = [r["store"] for r in results]
    floor = args.accounts * args.latency_ms / 1000 / args.concurrency
    print(f"accounts:            {args.accounts}, all due at once; emulator latency {args.latency_ms} ms "
          f"(own process); concurrency {args.concurrency}; {args.rounds} rounds, TUI and headless taking turns")
    settled = ", ".join(f"{r['settled_before_due']:.1f} s" for r in results)
    print(f"TUI settled before the due moment by: {settled}")
    print(f"event-loop stalls on the app's loop over the bursts ({len(late)} wake-ups of a 10 ms sleeper):")
    per_round = ", ".join(f"{max(b.late for b in r['beats']) * 1000:.0f}" for r in results)  # type: ignore[union-attr]
    print(f"  worst:             {max(late, default=0) * 1000:.0f} ms  (goal ≤ 50 ms); per round: {per_round} ms")
    print(f"  99th percentile:   {percentile(late, 99) * 1000:.0f} ms")
    print(f"  detail:            {describe_stalls(beats)}")
    for line in results[-1]["where"]:  # type: ignore[union-attr]
        print(f"  a long one:        {line}")
    print(f"  for scale, Textual alone: a bare {args.accounts}-row DataTable with one visible cell changed every "
          f"100 ms: {describe_stalls(floor_beats)}")
    print("all refreshed (in the store), from the due moment:")
    print(f"  headless engine:   median {statistics.median(headless_times):.2f} s  "
          f"({', '.join(f'{t:.2f}' for t in headless_times)})")
    print(f"  TUI:               median {statistics.median(tui_times):.2f} s  "  # type: ignore[type-var]
          f"({', '.join(f'{t:.2f}' for t in tui_times)})")
    print(f"  ratio:             {statistics.median(tui_times) / statistics.median(headless_times):.2f}"  # type: ignore[type-var,operator]
          "  (goal ≤ 1.1)")
    print(f"  latency floor:     {floor:.2f} s  (N x RTT / concurrency)")
    shown = ", ".join(f"{r['screen']:.2f}" for r in results)
    print(f"all shown refreshed on screen: {shown} s after the due moment")
    print("CPU over the burst: TUI's UI thread " + ", ".join(f"{r['cpu']['UI']:.1f}" for r in results)  # type: ignore[index]
          + " s; its engine thread " + ", ".join(f"{r['cpu']['engine']:.1f}" for r in results)  # type: ignore[index]
          + " s; headless engine " + ", ".join(f"{c:.1f}" for c in headless_cpus) + " s")


if __name__ == "__main__":
    main()
