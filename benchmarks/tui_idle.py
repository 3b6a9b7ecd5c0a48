"""CPU used by the accounts screen sitting idle with 1,000 accounts ticking (countdowns every
second, the refresh engine and store checks running), over 30 seconds.

    python benchmarks/tui_idle.py [--accounts 1000] [--seconds 30]

Goal: ≤ 1 % of one core. The app runs headless (Textual's test driver) at 150x40.

Also printed: the CPU of the busiest tick, the one where every countdown on screen changes
(a minute passed; the clock is injected, so this part does not depend on timing).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
from datetime import UTC, datetime

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


async def busiest_tick(store: AccountStore, count: int, ticks: int = 5) -> float:
    """Median CPU seconds of a tick right after a minute passed."""
    clock = ManualClock(datetime.now(UTC))
    app = make_app(store.path, Settings(), clock, Endpoints(override="http://127.0.0.1:9"), None, [],
                   run_engine=False, fetch_usage=False)
    costs = []
    async with app.run_test(size=SIZE) as pilot:
        while app.screen.query_one(AccountsTable).row_count < count:
            await pilot.pause(0.05)
        await pilot.pause()
        for _ in range(ticks):
            clock.advance(60)
            cpu0 = cpu_seconds()
            app.screen.tick()  # type: ignore[attr-defined]
            await pilot.pause()  # the repaint it caused
            costs.append(cpu_seconds() - cpu0)
    return statistics.median(costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    with filled_store(args.accounts) as store:
        cpu, wall = asyncio.run(measure(store, args.accounts, args.seconds))
        busiest = asyncio.run(busiest_tick(store, args.accounts))
    print(f"accounts:   {args.accounts}")
    print(f"window:     {wall:.1f} s wall")
    print(f"cpu:        {cpu:.3f} s  = {100 * cpu / wall:.2f} % of one core  (goal ≤ 1 %)")
    print(f"busiest tick (every countdown on screen changes): {busiest * 1000:.0f} ms CPU, median of 5")


if __name__ == "__main__":
    main()
