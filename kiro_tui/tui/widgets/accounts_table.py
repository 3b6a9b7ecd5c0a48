"""The accounts table: keyed by account id, updated row by row; rebuilt only when many rows
leave at once (a filter). Status colours come from the theme ($success, $warning, $error in
app.tcss, through component classes), so a theme picked in the palette recolours them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from kiro_tui.core.models import DEFAULT_QUOTA_WARNING, AccountView, Mode, Status
from kiro_tui.core.summary import printable
from kiro_tui.tui import format as fmt

# What matters most comes first, so a narrow terminal still shows name, expiry and status.
COLUMNS = (
    ("name", "Name"),
    ("expires", "Expires"),
    ("status", "Status"),
    ("method", "Method"),
    ("region", "Region"),
    ("profile", "Profile"),
    ("mode", "Mode"),
    ("last", "Last refresh"),
)
STATUS_CLASSES = {status: f"status--{status.value}" for status in Status}


class AccountsTable(DataTable[Text]):
    """Rows keyed by account id. `show` reconciles with a new list, `update_rows` repaints some
    rows, `tick` repaints countdowns.

    Enter selects a row (the screen then offers fixes); the footer names it only when the
    highlighted account needs a login or is suspended, the only time it does something.
    """

    BINDINGS = [Binding("enter", "select_cursor", "Fix login", tooltip="Re-import or log in again")]
    COMPONENT_CLASSES = {*STATUS_CLASSES.values(), "accounts--muted"}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.accounts: dict[str, AccountView] = {}
        self.window = timedelta(minutes=10)
        self.quota_warning = DEFAULT_QUOTA_WARNING

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.watch(self.app, "theme", self._recolour, init=False)

    def _recolour(self) -> None:
        """A new theme: status colours are resolved again from its variables."""
        self.show(list(self.accounts.values()), self.app.clock.now(), force=True)  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            view = self.accounts.get(self.selected_id or "")
            return view is not None and view.status(self.app.clock.now(), self.window).is_alert  # type: ignore[attr-defined]
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

    def status_text(self, view: AccountView, now: datetime) -> Text:
        """One short word (the reason is in the detail panel), coloured by the theme."""
        status = view.status(now, self.window, self.quota_warning)
        text = Text(status.label, style=self.get_component_rich_style(STATUS_CLASSES[status], partial=True))
        trouble = view.held or view.places_in_error or (view.account.sync_error and view.account.mode is Mode.SYNC)
        if trouble:
            text.append(" !", style=self.get_component_rich_style(STATUS_CLASSES[Status.NEEDS_LOGIN], partial=True))
        return text

    def cells(self, view: AccountView, now: datetime) -> dict[str, Text]:
        """Every cell as Text: names come from kiro-cli and AWS, and a string cell would be
        read as markup ("[/]" in a label would crash the table). Text is also faster to add.
        What came from outside is made printable: an escape sequence must not reach the terminal."""
        account = view.account
        return {
            "name": Text(printable(account.name)),
            "method": Text(account.auth_method.title),
            "region": Text(printable(account.region)),
            "profile": Text(printable(fmt.profile_label(account))),
            "mode": Text(account.mode.value),
            **self.ticking_cells(view, now),
        }

    def ticking_cells(self, view: AccountView, now: datetime) -> dict[str, Text]:
        """The cells that change with the clock alone."""
        expired = view.account.expires_at <= now
        style = self.get_component_rich_style(STATUS_CLASSES[Status.EXPIRED], partial=True) if expired else ""
        return {
            "expires": Text(fmt.countdown(view.account.expires_at, now), style=style),
            "status": self.status_text(view, now),
            "last": Text(fmt.ago(view.account.last_refresh_at, now)),
        }

    def show(self, views: list[AccountView], now: datetime, force: bool = False) -> None:
        """Make the rows match `views`: add, remove and update cells in place; keep the cursor."""
        selected = self.selected_id
        wanted = {view.id: view for view in views}
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
            for view in views:
                reorder |= self._put(view, now, force)
            if reorder:
                self.sort("name", key=lambda name: str(name).lower())
            if selected in self.accounts:
                self.move_cursor(row=self.get_row_index(selected), scroll=rebuilt)  # a rebuild scrolled to the top

    def update_rows(self, ids: Iterable[str], views: dict[str, AccountView], visible: list[AccountView],
                    now: datetime) -> None:
        """Repaint just these accounts' rows (add, change, or remove them)."""
        shown = {view.id for view in visible}
        reorder = False
        with self.app.batch_update():
            for account_id in ids:
                view = views.get(account_id)
                if view is None or account_id not in shown:
                    if account_id in self.accounts:
                        self.remove_row(account_id)
                        self.accounts.pop(account_id)
                    continue
                reorder |= self._put(view, now)
            if reorder:
                selected = self.selected_id
                self.sort("name", key=lambda name: str(name).lower())
                if selected in self.accounts:
                    self.move_cursor(row=self.get_row_index(selected), scroll=False)

    def _put(self, view: AccountView, now: datetime, force: bool = False) -> bool:
        """Add or repaint one row; True when the order may have changed."""
        cells = self.cells(view, now)
        previous = self.accounts.get(view.id)
        self.accounts[view.id] = view
        if previous is None:
            self.add_row(*(cells[key] for key, _ in COLUMNS), key=view.id)
            return True
        self._paint(view.id, cells, force)
        return previous.account.name != view.account.name

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
                self._paint(account_id, self.ticking_cells(self.accounts[account_id], now))

    def _paint(self, account_id: str, cells: dict[str, Text], force: bool = False) -> None:
        """Update the cells whose text or style changed.

        A column is widened when a new text needs it, never narrowed in place: DataTable
        narrows by measuring every cell of the column again, for each narrower cell, which
        with a thousand rows made one tick cost seconds.
        """
        for key, value in cells.items():
            shown = self.get_cell(account_id, key)
            if not force and (shown.plain, shown.style, shown.spans) == (value.plain, value.style, value.spans):
                continue
            grows = value.cell_len > self.columns[key].content_width
            self.update_cell(account_id, key, value, update_width=grows)
