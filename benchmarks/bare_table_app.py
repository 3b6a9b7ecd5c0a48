"""The floor for benchmarks/launch.py: a bare Textual app showing a DataTable with the same
columns and rows kiro-tui shows for its 1,000 accounts, and a footer. Nothing else: no store,
no engine, no network.

    python benchmarks/bare_table_app.py [ROWS]
"""

from __future__ import annotations

import sys

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer

COLUMNS = ("Name", "Expires", "Status", "Method", "Region", "Profile", "Mode", "Last refresh")


class BareTable(App[None]):
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column)
        for i in range(self.count):
            table.add_row(f"user{i:04d}@example.com", "in 20 minutes", "fresh", "Social", "us-east-1", "—", "own",
                          "never", key=str(i))


if __name__ == "__main__":
    BareTable(int(sys.argv[1]) if len(sys.argv) > 1 else 1000).run()
