"""Time to the first full accounts screen with 1,000 stored accounts, against a bare Textual app
showing a 1,000-row DataTable, measured the same way (headless, several runs, median).

    python benchmarks/tui_startup.py [--accounts 1000] [--runs 11]

Goal: ratio ≤ 1.15.

Three figures: the first full frame (the rows the terminal shows, and the footer's keys,
drawn), which is what a person waits for and what the goal is about; every row in the table
(kiro-tui adds the first screenful before its first frame and the rest a chunk a frame after,
as the launch benchmark's marker also sees; the bare app adds all of them at once); and
"settled", when nothing is left pending (our engine starts its background work right after the
first frame; the bare app has no such work).

Each timed run starts after a full garbage collection, and the two apps take turns going
first: otherwise one app's leftovers are collected inside the other's timing, which swung
single runs by ±40 %.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey

from benchmarks.harness import build_imported_store
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import SystemClock
from kiro_tui.core.config import Settings
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
        for column in ("Name", "Expires", "Health", "Method", "Region", "Profile", "Mode", "Last refresh"):
            table.add_column(column)
        for i, row in enumerate(self.rows):
            table.add_row(*row, key=str(i))


@contextmanager
def filled_store(count: int) -> Iterator[AccountStore]:
    """A temporary store holding `count` accounts imported from tools' files (each with its
    place, as people's are: benchmarks.harness.build_imported_store), expiring 15 to 60 minutes
    from now."""
    with tempfile.TemporaryDirectory() as tmp:
        build_imported_store(Path(tmp) / "accounts.db", count)
        with AccountStore.open(Path(tmp) / "accounts.db") as store:
            yield store


class Timing(NamedTuple):
    first_frame: float  # the first frame painted with every row measured and the footer's keys
    all_rows: float  # every row in the table
    settled: float  # nothing left pending: work queued after the first frame included


def first_screen_drawn(screen: Screen[object], table_type: type[DataTable], count: int) -> bool:
    """The rows the table shows (a screenful) and the footer's keys are in this frame."""
    tables = screen.query(table_type)
    if not tables:
        return False
    table = tables.first()
    shown = min(count, max(1, table.size.height - 1))  # less the header row
    return table.row_count >= shown and bool(screen.query(FooterKey))


def all_rows_in(screen: Screen[object], table_type: type[DataTable], count: int) -> bool:
    tables = screen.query(table_type)
    return bool(tables) and tables.first().row_count == count


async def time_to_screen(app: App[None], table_type: type[DataTable], count: int) -> Timing:
    """Seconds from starting the app to its first full frame, and until it settles.

    The frame time is taken where Textual hands each composited frame to the driver
    (`App._display`, private: a benchmark may look inside), the same for both apps.
    """
    started = time.perf_counter()
    first_frame: float | None = None
    all_rows: float | None = None
    display = app._display

    def timed_display(screen: Screen[object], update: object) -> None:
        nonlocal first_frame, all_rows
        display(screen, update)  # type: ignore[arg-type]
        if update is None:
            return
        if first_frame is None and first_screen_drawn(screen, table_type, count):
            first_frame = time.perf_counter() - started
        if all_rows is None and all_rows_in(screen, table_type, count):
            all_rows = time.perf_counter() - started

    app._display = timed_display  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        while first_frame is None or all_rows is None:
            await asyncio.sleep(0)
        await pilot.pause()  # what was queued behind the first frame
        return Timing(first_frame, all_rows, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    rows = [(f"user{i}@example.com", "in 20 minutes", "fresh", "social", "us-east-1", "—", "own", "never")
            for i in range(args.accounts)]
    with filled_store(args.accounts) as store:
        ours, bare = [], []
        for run in range(args.runs + 1):  # run 0 warms imports and caches for both; not counted
            app = make_app(store.path, Settings(), SystemClock(), Endpoints(override="http://127.0.0.1:9"), None, [],
                           run_engine=False, fetch_usage=False)
            timings = {}
            for name in ("ours", "bare") if run % 2 else ("bare", "ours"):
                gc.collect()
                timings[name] = asyncio.run(time_to_screen(app, AccountsTable, args.accounts) if name == "ours"
                                            else time_to_screen(BareTable(rows), DataTable, args.accounts))
            if run:
                ours.append(timings["ours"])
                bare.append(timings["bare"])
    print(f"accounts: {args.accounts}, runs: {args.runs}")
    for label, field, goal in (("first full frame", "first_frame", "  (goal ≤ 1.15)"),
                               ("every row in the table", "all_rows", ""), ("settled", "settled", "")):
        ours_times = [getattr(t, field) for t in ours]
        bare_times = [getattr(t, field) for t in bare]
        ours_median, bare_median = statistics.median(ours_times), statistics.median(bare_times)
        print(f"{label}:")
        print(f"  kiro-tui:        median {ours_median * 1000:.0f} ms  "
              f"(min {min(ours_times) * 1000:.0f}, max {max(ours_times) * 1000:.0f})")
        print(f"  bare DataTable:  median {bare_median * 1000:.0f} ms  "
              f"(min {min(bare_times) * 1000:.0f}, max {max(bare_times) * 1000:.0f})")
        print(f"  ratio:           {ours_median / bare_median:.2f}{goal}")


if __name__ == "__main__":
    main()
