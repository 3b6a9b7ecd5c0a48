"""CPU used by the accounts screen sitting idle with 1,000 accounts ticking (countdowns every
second, the refresh engine and store checks running), over 30 seconds.

    python benchmarks/tui_idle.py [--accounts 1000] [--seconds 30]

Goal: ≤ 1 % of one core. The app runs headless (Textual's test driver) at 150x40.

Also printed: the CPU of the busiest tick, the one where every countdown on screen changes
(a minute passed; the clock is injected, so this part does not depend on timing); the summary
line's share of a tick (issue 24's goal at 10,000: ≤ 2 ms); and the peak RSS of the TUI
settled on the accounts, each in a fresh process, against the bare Textual app showing the same
number of rows (benchmarks/bare_table_app.py; goal ≤ 2×).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable

from benchmarks.bare_table_app import BareTable
from benchmarks.tui_startup import SIZE, filled_store
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import ManualClock, SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.store import AccountStore
from kiro_tui.tui.app import make_app
from kiro_tui.tui.widgets.accounts_table import AccountsTable


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(store: AccountStore, count: int, seconds: float) -> tuple[float, float]:
    app = make_app(store.path, Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"), None, [],
                   run_engine=True, fetch_usage=False)
    async with app.run_test(size=SIZE) as pilot:
        while app.screen.query_one(AccountsTable).row_count < count:
            await pilot.pause(0.05)
        await pilot.pause(2)  # settle: first paint, first ticks
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(seconds)
        return cpu_seconds() - cpu0, time.perf_counter() - wall0


@asynccontextmanager
async def app_at_rest(store: AccountStore, count: int) -> AsyncIterator[tuple[App[object], Pilot[object], ManualClock]]:
    """The app on `count` accounts, every row in, its engine not running, on a clock that moves
    only when told."""
    clock = ManualClock(datetime.now(UTC))
    app = make_app(store.path, Settings(), clock, Endpoints(override="http://127.0.0.1:9"), None, [],
                   run_engine=False, fetch_usage=False)
    async with app.run_test(size=SIZE) as pilot:
        while app.screen.query_one(AccountsTable).row_count < count:
            await pilot.pause(0.05)
        await pilot.pause()
        yield app, pilot, clock


async def busiest_tick(store: AccountStore, count: int, ticks: int = 5) -> float:
    """Median CPU seconds of a tick right after a minute passed."""
    costs = []
    async with app_at_rest(store, count) as (app, pilot, clock):
        for _ in range(ticks):
            clock.advance(60)
            cpu0 = cpu_seconds()
            app.screen.tick()  # type: ignore[attr-defined]
            await pilot.pause()  # the repaint it caused
            costs.append(cpu_seconds() - cpu0)
    return statistics.median(costs)


async def summary_tick(store: AccountStore, count: int, ticks: int = 21) -> float:
    """Median CPU seconds of the summary line's part of a tick (a second passed, nothing changed)."""
    costs = []
    async with app_at_rest(store, count) as (app, pilot, clock):
        for _ in range(ticks):
            clock.advance(1)
            cpu0 = time.thread_time()
            app.screen.update_summary(clock.now())  # type: ignore[attr-defined]
            costs.append(time.thread_time() - cpu0)
            await pilot.pause()
    return statistics.median(costs)


def settled_rss(kind: str, store: Path, count: int) -> float:
    """Peak RSS (MB) of a fresh process showing `count` accounts, settled for 3 s: kiro-tui's app
    on the store (its engine running), or the bare table app."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.tui_idle", "--rss-of", kind, "--store", str(store),
                           "--accounts", str(count)], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def peak_rss_mb() -> float:
    """This process's peak RSS since it started: Linux's VmHWM (ru_maxrss there is inherited
    from the parent across fork and exec, so a child would report its parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)


async def show_settled(kind: str, store: Path, count: int) -> None:
    if kind == "bare":
        bare = BareTable(count)
        async with bare.run_test(size=SIZE) as pilot:
            while bare.query_one(DataTable).row_count < count:
                await pilot.pause(0.05)
            await pilot.pause(3)
        return
    app = make_app(store, Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"), None, [],
                   run_engine=True, fetch_usage=False)
    async with app.run_test(size=SIZE) as pilot:
        while app.screen.query_one(AccountsTable).row_count < count:
            await pilot.pause(0.05)
        await pilot.pause(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rss-of", choices=("tui", "bare"), help=argparse.SUPPRESS)  # the child of settled_rss
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_of:
        asyncio.run(show_settled(args.rss_of, args.store, args.accounts))
        print(peak_rss_mb())
        return
    with filled_store(args.accounts) as store:
        cpu, wall = asyncio.run(measure(store, args.accounts, args.seconds))
        busiest = asyncio.run(busiest_tick(store, args.accounts))
        summary = asyncio.run(summary_tick(store, args.accounts))
        rss, bare_rss = settled_rss("tui", store.path, args.accounts), settled_rss("bare", store.path, args.accounts)
    print(f"accounts:   {args.accounts}")
    print(f"window:     {wall:.1f} s wall")
    print(f"cpu:        {cpu:.3f} s  = {100 * cpu / wall:.2f} % of one core  (goal ≤ 1 %)")
    print(f"busiest tick (every countdown on screen changes): {busiest * 1000:.0f} ms CPU, median of 5")
    print(f"summary line, a tick with nothing changed: {summary * 1000:.2f} ms CPU, median of 21  (goal ≤ 2 ms)")
    print(f"peak RSS settled: {rss:.1f} MB vs the bare table app {bare_rss:.1f} MB, ratio {rss / bare_rss:.2f}  "
          "(goal ≤ 2)")


if __name__ == "__main__":
    main()
