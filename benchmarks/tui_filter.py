"""How long the accounts screen takes to apply a filter, and to clear it, with N imported accounts.

    python -m benchmarks.tui_filter [--accounts 1000] [--runs 5] [--filter user09]

Typing "user09" leaves the 25 CLIProxyAPI accounts user0900…user0999 (the rest leave at once);
clearing brings all back. Measured from setting the filter text: the filter until the table
holds just the matching rows, the clear until the first screen is back (the rows a screen
shows, at 150x40, headless) and until every row is; median of the runs. Goals at 10,000:
filter ≤ 100 ms, clear ≤ 300 ms to the first screen.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from textual.widgets import Input

from benchmarks.tui_startup import SIZE, filled_store
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.store import AccountStore
from kiro_tui.tui.app import make_app
from kiro_tui.tui.widgets.accounts_table import AccountsTable


async def until(condition, since: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds from `since` until `condition()` holds (checked between every step of the loop)."""
    while not condition():
        await asyncio.sleep(0)
    return time.perf_counter() - since


async def measure(store: AccountStore, count: int, runs: int, needle: str) -> dict[str, list[float]]:
    app = make_app(store.path, Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"), None, [],
                   run_engine=False, fetch_usage=False)
    times: dict[str, list[float]] = {"filter": [], "clear, first screen": [], "clear, every row": []}
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(AccountsTable)
        while table.row_count < count or table.adding:
            await pilot.pause(0.05)
        await pilot.press("slash")
        await pilot.pause()
        box = app.screen.query_one("#filter", Input)
        box.value = needle  # a round not timed: how many rows the filter leaves
        await pilot.pause()
        matching = len(app.screen.visible_views())  # type: ignore[attr-defined]
        box.value = ""
        while table.row_count < count or table.adding:
            await pilot.pause(0.05)
        screenful = min(count, table.size.height - 1)  # less the header row
        for _ in range(runs):
            started = time.perf_counter()
            box.value = needle
            times["filter"].append(await until(lambda: table.row_count == matching and not table.adding, started))
            await pilot.pause()
            started = time.perf_counter()
            box.value = ""
            times["clear, first screen"].append(await until(
                lambda: table.row_count >= screenful and table.row_count != matching, started))
            times["clear, every row"].append(await until(lambda: table.row_count == count and not table.adding,
                                                         started))
            await pilot.pause()
    print(f"rows left by the filter: {matching}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--filter", default="user09")
    args = parser.parse_args()
    with filled_store(args.accounts) as store:
        times = asyncio.run(measure(store, args.accounts, args.runs, args.filter))
    print(f"accounts: {args.accounts} imported, runs: {args.runs}")
    for name, values in times.items():
        print(f"{name + ':':<20} median {statistics.median(values) * 1000:.0f} ms "
              f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})")


if __name__ == "__main__":
    main()
