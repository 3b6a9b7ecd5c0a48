"""How long the accounts screen takes to apply a filter, and to clear it, with 1,000 accounts.

    python -m benchmarks.tui_filter [--accounts 1000] [--runs 5]

Typing "user99" leaves 11 rows (989 leave at once); clearing brings all back. Measured from
setting the filter text until the screen has settled, headless at 150x40, median of the runs.
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


async def measure(store: AccountStore, count: int, runs: int) -> tuple[list[float], list[float]]:
    app = make_app(store.path, Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"), None, [],
                   run_engine=False, fetch_usage=False)
    narrow, clear = [], []
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(AccountsTable)
        while table.row_count < count:
            await pilot.pause(0.05)
        await pilot.press("slash")
        await pilot.pause()
        box = app.screen.query_one("#filter", Input)
        for _ in range(runs):
            for text, times in (("user99", narrow), ("", clear)):
                started = time.perf_counter()
                box.value = text
                await pilot.pause()
                times.append(time.perf_counter() - started)
            assert table.row_count == count
    return narrow, clear


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with filled_store(args.accounts) as store:
        narrow, clear = asyncio.run(measure(store, args.accounts, args.runs))
    print(f"accounts:           {args.accounts}, runs: {args.runs}")
    print(f"filter to 11 rows:  median {statistics.median(narrow) * 1000:.0f} ms")
    print(f"clear (all back):   median {statistics.median(clear) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
