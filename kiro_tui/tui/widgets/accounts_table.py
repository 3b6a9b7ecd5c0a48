"""The accounts table: keyed by account id, updated cell by cell; rebuilt only when many rows
leave at once (a filter)."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from kiro_tui.core.models import Account
from kiro_tui.core.summary import printable
from kiro_tui.tui import format as fmt

# What matters most comes first, so a narrow terminal still shows name, expiry and health.
COLUMNS = (
    ("name", "Name"),
    ("expires", "Expires"),
    ("health", "Health"),
    ("method", "Method"),
    ("region", "Region"),
    ("profile", "Profile"),
    ("mode", "Mode"),
    ("last", "Last refresh"),
)


class AccountsTable(DataTable[Text]):
    """Rows keyed by account id. `show` reconciles with a new list; `tick` repaints countdowns.

    Enter selects a row (the screen then offers fixes); the footer names it only when the
    highlighted account needs a login or is suspended, the only time it does something.
    """

    BINDINGS = [Binding("enter", "select_cursor", "Fix login")]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.accounts: dict[str, Account] = {}
        self.refreshing: set[str] = set()
        self.window = timedelta(minutes=10)

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            account = self.accounts.get(self.selected_id or "")
            return account is not None and account.status(
                self.app.clock.now(), self.window, account.id in self.refreshing  # type: ignore[attr-defined]
            ) in fmt.ALERT_STATUSES
        return True

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None
        return str(row_key.value)

    def cells(self, account: Account, now: datetime) -> dict[str, Text]:
        """Every cell as Text: names come from kiro-cli and AWS, and a string cell would be
        read as markup ("[/]" in a label would crash the table). Text is also faster to add.
        What came from outside is made printable: an escape sequence must not reach the terminal."""
        refreshing = account.id in self.refreshing
        return {
            "name": Text(printable(account.name)),
            "method": Text(account.auth_method.title),
            "region": Text(printable(account.region)),
            "profile": Text(printable(fmt.profile_label(account))),
            "mode": Text(account.mode.value),
            "expires": fmt.expires(account, now),
            "health": fmt.health(account, now, self.window, refreshing),
            "last": Text(fmt.ago(account.last_refresh_at, now)),
        }

    def show(self, accounts: list[Account], refreshing: set[str], now: datetime) -> None:
        """Make the rows match `accounts`: add, remove and update cells in place; keep the cursor."""
        selected = self.selected_id
        self.refreshing = refreshing
        wanted = {account.id: account for account in accounts}
        gone = {key for key in self.accounts if key not in wanted}
        rebuilt = len(gone) > 1  # DataTable removes a row in O(rows): a filter is cheaper rebuilt
        with self.app.batch_update():
            if rebuilt:
                self.clear()
                self.accounts = {}
            for key in gone & self.accounts.keys():
                self.remove_row(key)
                self.accounts.pop(key)
            reorder = False
            for account in accounts:
                cells = self.cells(account, now)
                if account.id not in self.accounts:
                    self.add_row(*(cells[key] for key, _ in COLUMNS), key=account.id)
                    reorder = True
                else:
                    reorder |= self.accounts[account.id].name != account.name
                    self._paint(account.id, cells)
                self.accounts[account.id] = account
            if reorder:
                self.sort("name", key=lambda name: str(name).lower())
            if selected in self.accounts:
                self.move_cursor(row=self.get_row_index(selected), scroll=rebuilt)  # a rebuild scrolled to the top

    def visible_ids(self) -> list[str]:
        """Account ids of the rows on screen now (plus one either side)."""
        rows = self.ordered_rows
        first = max(0, int(self.scroll_y) - 1)
        last = min(len(rows), first + self.size.height + 2)
        return [str(row.key.value) for row in rows[first:last]]

    def tick(self, now: datetime) -> None:
        """Repaint the time-dependent cells of visible rows whose text changed.

        Off-screen rows are repainted when they scroll into view (within a second), so the
        cost of a tick does not grow with the number of accounts.
        """
        with self.app.batch_update():
            for account_id in self.visible_ids():
                account = self.accounts[account_id]
                refreshing = account_id in self.refreshing
                self._paint(account_id, {
                    "expires": fmt.expires(account, now),
                    "health": fmt.health(account, now, self.window, refreshing),
                    "last": Text(fmt.ago(account.last_refresh_at, now)),
                })

    def _paint(self, account_id: str, cells: dict[str, Text]) -> None:
        """Update the cells whose text or style changed.

        A column is widened when a new text needs it, never narrowed in place: DataTable
        narrows by measuring every cell of the column again, for each narrower cell, which
        with a thousand rows made one tick cost seconds.
        """
        for key, value in cells.items():
            shown = self.get_cell(account_id, key)
            if (shown.plain, shown.style, shown.spans) == (value.plain, value.style, value.spans):
                continue
            grows = value.cell_len > self.columns[key].content_width
            self.update_cell(account_id, key, value, update_width=grows)
