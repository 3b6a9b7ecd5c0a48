"""Time to the first full accounts screen with 1,000 stored accounts, against a bare Textual app
showing a 1,000-row DataTable, measured the same way (headless, several runs, median).

    python benchmarks/tui_startup.py [--accounts 1000] [--runs 7]

Goal: ratio ≤ 1.15.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
from kiro_tui.core.models import Account, AuthMethod, Mode
from kiro_tui.core.store import AccountStore
from kiro_tui.tui.app import make_app
from kiro_tui.tui.widgets.accounts_table import AccountsTable

SIZE = (150, 40)


class BareTable(App[None]):
    """The floor: a DataTable with the same columns and rows, nothing else."""

    def __init__(self, rows: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield DataTable()
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in ("Name", "Method", "Region", "Profile", "Mode", "Expires", "Health", "Last refresh"):
            table.add_column(column)
        for i, row in enumerate(self.rows):
            table.add_row(*row, key=str(i))


def fill(store: AccountStore, count: int) -> None:
    now = datetime.now(UTC)
    with store.transaction() as tx:
        for i in range(count):
            store.save(Account(
                id=f"{i:08x}", auth_method=AuthMethod.SOCIAL, access_token=f"aoaAAAAAG{i:040d}",
                refresh_token=f"aorAAAAAG{i:040d}", expires_at=now + timedelta(minutes=15 + i % 45),
                label=f"user{i}@example.com", mode=Mode.OWN), tx)


async def time_to_screen(app: App[None], table_type: type[DataTable], count: int) -> float:
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        while True:
            tables = app.screen.query(table_type)
            if tables and tables.first().row_count == count:
                break
            await asyncio.sleep(0)
        await pilot.pause()  # one full refresh of the screen
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = [(f"user{i}@example.com", "social", "us-east-1", "—", "own", "in 20 minutes", "fresh", "never")
            for i in range(args.accounts)]
    with tempfile.TemporaryDirectory() as tmp:
        store = AccountStore.open(Path(tmp) / "accounts.db")
        fill(store, args.accounts)
        ours, bare = [], []
        for run in range(args.runs + 1):  # run 0 warms imports and caches for both; not counted
            app = make_app(store, Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"), None, [],
                           run_engine=False, fetch_usage=False)
            ours_time = asyncio.run(time_to_screen(app, AccountsTable, args.accounts))
            bare_time = asyncio.run(time_to_screen(BareTable(rows), DataTable, args.accounts))
            if run:
                ours.append(ours_time)
                bare.append(bare_time)
        store.close()
    ours_median, bare_median = statistics.median(ours), statistics.median(bare)
    print(f"accounts:        {args.accounts}, runs: {args.runs}")
    print(f"kiro-tui:        median {ours_median * 1000:.0f} ms  (min {min(ours) * 1000:.0f}, max {max(ours) * 1000:.0f})")
    print(f"bare DataTable:  median {bare_median * 1000:.0f} ms  (min {min(bare) * 1000:.0f}, max {max(bare) * 1000:.0f})")
    print(f"ratio:           {ours_median / bare_median:.2f}  (goal ≤ 1.15)")


if __name__ == "__main__":
    main()
