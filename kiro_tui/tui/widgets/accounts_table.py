"""The accounts table: keyed by account id, updated row by row; rebuilt only when many rows
leave at once (a filter) or when a new width shows other columns. Status colours come from
the theme ($success, $warning, $error in app.tcss, through component classes), so a theme
picked in the palette recolours them.

Every column has a width decided once for the table's width (`plan_columns`): the ticking
ones (Expires, Status, Usage, Last refresh) fixed, so a countdown never makes a column jump;
Name and Profile as wide as their longest text allows (Profile at least a profile id's, room
allowing, so the first one a refresh brings does not widen it). Columns that do not fit are dropped
in a fixed order (Last refresh, Region, Mode, Method, Profile, Usage) rather than cut, and
the name column is pinned (fixed_columns) should the terminal be too narrow even for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, Row, RowKey

from kiro_tui.core.models import DEFAULT_QUOTA_WARNING, AccountView, Mode, Status
from kiro_tui.core.summary import printable
from kiro_tui.tui import format as fmt
from kiro_tui.tui.host import host
from kiro_tui.tui.widgets.table_cells import Cell, shared_cell, text_cell


@dataclass(frozen=True)
class ColumnSpec:
    key: str
    label: str
    width: int | None
    """Fixed content width; None for a column as wide as its longest text (min_width..max_width)."""
    drop: int = 0
    """Dropped when the table is too narrow, lowest first; 0: always shown."""
    min_width: int = 0
    max_width: int = 0
    usual: int = 0
    """The width its text usually takes, planned for (room allowing) before any is seen: the
    first one seen then fits, and the table is not laid out and drawn again to widen it."""

    @property
    def reserve(self) -> int:
        """The content width the column needs to be shown at all."""
        return self.width if self.width is not None else self.min_width


# What matters most comes first, so a narrow terminal still shows name, expiry and status.
COLUMN_SPECS = (
    ColumnSpec("name", "Name", None, min_width=16, max_width=40),
    ColumnSpec("expires", "Expires", 12),  # "99+ days ago", "in 59 min"
    ColumnSpec("status", "Status", 13),  # "NEEDS LOGIN !"
    ColumnSpec("usage", "Usage", 11, drop=6),  # "▰▰▰▱▱ ~62%"
    ColumnSpec("method", "Method", 10, drop=4),  # "Builder ID"
    ColumnSpec("region", "Region", 14, drop=2),  # "ap-southeast-1"
    ColumnSpec("profile", "Profile", None, drop=5, min_width=8, max_width=24,
               usual=12),  # a profile id (an ARN's last part), which a refresh's answer may bring
    ColumnSpec("mode", "Mode", 6, drop=3),
    ColumnSpec("last", "Last refresh", 12, drop=1),
)
COLUMNS = tuple((spec.key, spec.label) for spec in COLUMN_SPECS)
SPECS = {spec.key: spec for spec in COLUMN_SPECS}
CELL_PADDING = 1
FIRST_ROWS = 60
"""Rows added before the first frame: more than a tall terminal shows."""
MORE_ROWS = 500
"""Rows added a frame after that."""
SegmentLines = list[list[Segment]]
STATUS_CLASSES = {status: f"status--{status.value}" for status in Status}
USAGE_CLASSES = {level: f"usage--{level}" for level in ("ok", "low", "over", "unknown")}


def _moved(lines: SegmentLines, row: int, column: int) -> SegmentLines:
    """A cell's lines as drawn for another row, with this row's mouse data (DataTable puts
    the row and column of the cell under the mouse in each segment's style, and nothing else
    of the row there)."""
    here = Style.from_meta({"row": row, "column": column})
    return [[Segment(text, style + here if style is not None else None, control) for text, style, control in line]
            for line in lines]


def plan_columns(width: int, longest: dict[str, int] | None = None) -> dict[str, int]:
    """The columns shown in `width` cells and the content width of each, in table order.

    Columns are dropped by priority until the rest fit; the room left widens Name, then
    Profile, up to their longest text (and their maximum). If even the columns that are
    never dropped do not fit, they are all kept (the table scrolls sideways, Name pinned).
    """
    longest = longest or {}
    shown = list(COLUMN_SPECS)

    def need(specs: list[ColumnSpec]) -> int:
        return sum(spec.reserve + 2 * CELL_PADDING for spec in specs)

    for spec in sorted((s for s in COLUMN_SPECS if s.drop), key=lambda s: s.drop):
        if need(shown) <= width:
            break
        shown.remove(spec)
    slack = max(0, width - need(shown))
    widths = {spec.key: spec.reserve for spec in shown}
    for spec in shown:
        if spec.width is None:
            wanted = max(len(spec.label), spec.usual, min(longest.get(spec.key, 0), spec.max_width))
            extra = min(max(0, wanted - spec.min_width), slack)
            slack -= extra
            widths[spec.key] = max(len(spec.label), min(wanted, spec.min_width + extra))
    return widths


class AccountsTable(DataTable[Cell]):
    """Rows keyed by account id. `show` reconciles with a new list, `update_rows` repaints some
    rows, `tick` repaints countdowns.

    Enter selects a row (the screen then offers fixes); the footer names it only when the
    highlighted account needs a login, is suspended or waits for kiro-cli (expired in follow mode),
    the only times it does something.
    Home and End go to the first and the last account (not sideways: every column fits).
    """

    BINDINGS = [
        Binding("enter", "select_cursor", "Fix login",
                tooltip="On an account that needs a login (or waits for kiro-cli): re-import it or log in again"),
        Binding("home", "scroll_top", "First account", show=False, tooltip="Go to the first account"),
        Binding("end", "scroll_bottom", "Last account", show=False, tooltip="Go to the last account"),
    ]
    COMPONENT_CLASSES = {*STATUS_CLASSES.values(), *USAGE_CLASSES.values(), "accounts--muted"}

    _stale: set[str]
    """Rows whose account changed while they were off screen: painted when they come into view."""

    class Filled(Message):
        """Every row of the first `show` is in the table (they are added a chunk a frame)."""

    def __init__(self, **kwargs: Any) -> None:  # DataTable's own keywords (id, classes, ...)
        # What was drawn, keyed on the cells' own objects ("drawing", below); made before
        # DataTable's own set-up, which clears its caches.
        self._cells_drawn: LRUCache[tuple[object, ...], tuple[Cell, int, SegmentLines]] = LRUCache(4096)
        self._lines_composed: LRUCache[tuple[object, ...], tuple[tuple[Cell, ...], tuple[SegmentLines, SegmentLines]]]
        self._lines_composed = LRUCache(1024)
        self._rows_kept: tuple[object, int, list[Row], list[tuple[RowKey, int]] | None] | None = None
        """The rows in order and each line's row, for the rows as they stand ("drawing")."""
        super().__init__(cursor_type="row", zebra_stripes=True, cell_padding=CELL_PADDING, **kwargs)
        self.accounts: dict[str, AccountView] = {}
        self.window = timedelta(minutes=10)
        self.quota_warning = DEFAULT_QUOTA_WARNING
        self.widths: dict[str, int] = {}
        """The columns shown now and their content widths (see `plan_columns`)."""
        self._longest: dict[str, int] = {}
        """The longest Name and Profile text seen since the columns were planned."""
        self._planned_for = 0
        self._stale = set()
        self._to_add: dict[str, AccountView] = {}
        """Rows held back from a first `show` of many accounts, added a chunk a frame."""
        self._sort_when_done = False
        self._filling = 0
        """Which chunked fill is under way (a later one makes an earlier one's chunks stop)."""
        self._select_when_added: str | None = None
        """The row the cursor was on when a fill started again: the cursor goes back to it once it is in."""

    def on_mount(self) -> None:
        # The table spans the screen; its own size is known only at the first resize, which
        # plans again if this guess was wrong. The vertical scrollbar's gutter is always kept
        # free (scrollbar-gutter: stable in app.tcss), so a scrollbar appearing moves nothing.
        self._plan(self.app.size.width - self.styles.scrollbar_size_vertical)
        # Once the new theme's styles are in place (its signal follows the CSS refresh; a watch
        # on `theme` runs before it, and resolved the old theme's colours).
        self.app.theme_changed_signal.subscribe(self, lambda theme: self._recolour())

    def on_resize(self, event: events.Resize) -> None:
        room = self.scrollable_content_region.width
        if room and room != self._planned_for:
            self._plan(room)

    def _plan(self, room: int) -> None:
        """Choose the columns for `room` cells: new widths are set in place, other columns
        rebuild the table (the rows, in order, with the cursor where it was)."""
        self._planned_for = room
        for key in ("name", "profile"):
            self._longest[key] = max((self.text_len(view, key) for view in self.accounts.values()), default=0)
        widths = plan_columns(room, self._longest)
        if widths == self.widths:
            return
        if list(widths) == list(self.widths):
            self._set_widths(widths)
            return
        self.widths = widths
        self._pin()
        self._rebuild()

    def _pin(self) -> None:
        """Pin the name only when the columns cannot all fit (the table then scrolls sideways):
        a pinned column has a background of its own, which a table that fits does not need."""
        self.fixed_columns = int(sum(width + 2 * CELL_PADDING for width in self.widths.values()) > self._planned_for)

    def _set_widths(self, widths: dict[str, int]) -> None:
        for key, width in widths.items():
            self.columns[ColumnKey(key)].width = width
        self.widths = widths
        self._pin()
        super()._clear_caches()  # DataTable's: the cells drawn stay, each at its width ("drawing")
        self._require_update_dimensions = True
        self.refresh()

    def _rebuild(self) -> None:
        """New columns: every row again, in the same order, the cursor on the same account."""
        selected = self.selected_id
        order = [str(row.key.value) for row in self.ordered_rows] if self.row_count else []
        now = host(self).clock.now()
        with self.app.batch_update():
            self.clear(columns=True)
            for key, width in self.widths.items():
                self.add_column(SPECS[key].label, width=width, key=key)
            for account_id in order:
                cells = self.cells(self.accounts[account_id], now)
                self.add_row(*(cells[key] for key in self.widths), key=account_id)
            if selected in self.accounts:
                self.move_cursor(row=self.get_row_index(selected))

    def _recolour(self) -> None:
        """A new theme: status colours are resolved again from its variables. The rows on screen
        are repainted now, the others when they scroll into view; rows still to be added are
        added in the new colours (going through `show` here dropped them)."""
        now = host(self).clock.now()
        on_screen = set(self.visible_ids())
        self._stale |= self.accounts.keys() - on_screen
        with self.app.batch_update():
            for account_id in on_screen:
                self._stale.discard(account_id)
                self._paint(account_id, self.cells(self.accounts[account_id], now))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor":
            view = self.accounts.get(self.selected_id or "")
            return view is not None and fmt.offers_fixes(view, host(self).clock.now(), self.window)
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

    def style_of(self, component: str) -> Style:
        return self.get_component_rich_style(component, partial=True)

    def status_cell(self, view: AccountView, now: datetime) -> Cell:
        """One short word (the reason is in the detail panel), coloured by the theme."""
        status = view.status(now, self.window, self.quota_warning)
        style = self.style_of(STATUS_CLASSES[status])
        problem = view.held or view.places_in_error or (view.account.sync_error and view.account.mode is Mode.SYNC)
        if problem:  # beyond its status: a held token, a place in error, kiro-cli out of sync
            mark = Span(len(status.label), len(status.label) + 2, self.style_of(STATUS_CLASSES[Status.NEEDS_LOGIN]))
            return shared_cell(status.label + " !", style, (mark,))
        return shared_cell(status.label, style)

    def usage_cell(self, view: AccountView, now: datetime) -> Cell:
        """`▰▰▰▱▱  62%`: used of the month's limit; `~` and muted when the figures are stale;
        `—` until known (the detail panel says why)."""
        usage = view.usage
        parts = fmt.usage_bar(usage, now) if usage is not None else None
        muted = self.style_of("accounts--muted")
        if parts is None:
            return shared_cell("—", muted)
        used, left, percent = parts
        stale = usage is not None and fmt.usage_is_stale(usage, now)
        level = self.style_of(USAGE_CLASSES[fmt.usage_level(usage, self.quota_warning)])
        return text_cell(Text.assemble((used, muted if stale else level), (left, muted), " ",
                                       (percent, muted if stale else level)))

    def cells(self, view: AccountView, now: datetime) -> dict[str, Cell]:
        """Every cell of a row. What came from outside is made printable: an escape sequence
        must not reach the terminal."""
        account = view.account
        return {
            "name": Cell(printable(account.name), ellipsis=True),
            "method": shared_cell(account.auth_method.label),
            "region": shared_cell(printable(account.region), ellipsis=True),
            "profile": shared_cell(printable(fmt.profile_label(account)), ellipsis=True),
            "mode": shared_cell(account.mode.value),
            **self.ticking_cells(view, now),
        }

    def text_len(self, view: AccountView, key: str) -> int:
        if key == "name":
            return len(printable(view.account.name))
        return len(printable(fmt.profile_label(view.account)))

    def ticking_cells(self, view: AccountView, now: datetime) -> dict[str, Cell]:
        """The cells that change with the clock alone."""
        expired = view.account.expires_at <= now
        style = self.style_of(STATUS_CLASSES[Status.EXPIRED]) if expired else ""
        return {
            "expires": shared_cell(fmt.short_countdown(view.account.expires_at, now), style),
            "status": self.status_cell(view, now),
            "usage": self.usage_cell(view, now),
            "last": shared_cell(fmt.short_ago(view.account.last_refresh_at, now)),
        }

    def show(self, views: list[AccountView], now: datetime) -> None:
        """Make the rows match `views`: add, remove and update cells in place; keep the cursor.

        Into an empty table, only the first screenful is added before the next frame; the rest
        follows a chunk a frame, in name order (a thousand rows cost a third of a second to add,
        and a person first sees the first screen). So is a table many rows come back into (a
        filter cleared): it starts again empty, and the cursor goes back to its row once that is in."""
        selected = self.selected_id
        if self.accounts and sum(1 for view in views if view.id not in self.accounts) > FIRST_ROWS:
            with self.app.batch_update():
                self.clear()
            self.accounts = {}
            self._to_add.clear()
            self._select_when_added = selected
        if not self.accounts and not self._to_add and len(views) > FIRST_ROWS:
            ordered = sorted(views, key=lambda view: view.account.name.lower())
            self._to_add = {view.id: view for view in ordered[FIRST_ROWS:]}
            views = ordered[:FIRST_ROWS]
            self._filling += 1
            self.call_after_refresh(self._add_more, now, self._filling)
        else:
            if not self.accounts:
                self.call_after_refresh(self.post_message, self.Filled())
            self._to_add.clear()  # a later show (a filter) adds every row it wants itself
            self._select_when_added = None
        self._stale.clear()  # every row is painted below
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
                reorder |= self._put(view, now)
            if reorder:
                self.sort("name", key=lambda name: str(name).lower())
            if selected in self.accounts:
                self.move_cursor(row=self.get_row_index(selected), scroll=rebuilt)  # a rebuild scrolled to the top
            self._reselect()

    def _add_more(self, now: datetime, filling: int) -> None:
        """The next chunk of the rows `show` held back (appended in order: the first rows added
        were the first names, so the table stays sorted)."""
        if filling != self._filling:
            return  # a later fill took over
        chunk = [self._to_add.pop(key) for key in list(self._to_add)[:MORE_ROWS]]
        with self.app.batch_update():
            for view in chunk:
                if view.id not in self.accounts:
                    self._put(view, now)
            self._reselect()
        if self._to_add:
            self.call_after_refresh(self._add_more, now, filling)
            return
        if self._sort_when_done:
            self._sort_when_done = False
            self.sort("name", key=lambda name: str(name).lower())
        self.call_after_refresh(self.post_message, self.Filled())

    def _reselect(self) -> None:
        """Put the cursor back on the row it was on before a fill started again, once it is in."""
        wanted = self._select_when_added
        if wanted is not None and wanted in self.accounts:
            self._select_when_added = None
            self.move_cursor(row=self.get_row_index(wanted))

    @property
    def adding(self) -> bool:
        """Rows are still being added after the first screenful."""
        return bool(self._to_add)

    def update_rows(self, ids: Iterable[str], views: dict[str, AccountView], shown: Callable[[AccountView], bool],
                    now: datetime) -> None:
        """Repaint just these accounts' rows (add, change, or remove them); `shown` says whether
        an account passes the filter (asked of these alone: a set of every shown id cost a
        burst's re-read 4 ms at 10,000). A changed row that is off screen is only remembered
        and painted when it scrolls into view: DataTable redraws every visible row on any cell
        update, so a burst of changes below the fold would cost a redraw each for nothing a
        person can see."""
        on_screen = set(self.visible_ids())
        reorder = False
        with self.app.batch_update():
            for account_id in ids:
                view = views.get(account_id)
                if account_id in self._to_add:  # not added yet: it will be, as it is then
                    if view is None or not shown(view):
                        del self._to_add[account_id]
                    else:
                        self._to_add[account_id] = view
                    continue
                if view is None or not shown(view):
                    if account_id in self.accounts:
                        self.remove_row(account_id)
                        self.accounts.pop(account_id)
                        self._stale.discard(account_id)
                    continue
                previous = self.accounts.get(account_id)
                if (previous is not None and account_id not in on_screen
                        and previous.account.name == view.account.name):
                    self.accounts[account_id] = view
                    self._stale.add(account_id)
                    continue
                self._stale.discard(account_id)
                reorder |= self._put(view, now)
            if reorder and self._to_add:
                self._sort_when_done = True  # sorting now would put the rows still to come out of order
            elif reorder:
                selected = self.selected_id
                self.sort("name", key=lambda name: str(name).lower())
                if selected in self.accounts:
                    self.move_cursor(row=self.get_row_index(selected), scroll=False)

    def _put(self, view: AccountView, now: datetime) -> bool:
        """Add or repaint one row; True when the order may have changed."""
        cells = self.cells(view, now)
        previous = self.accounts.get(view.id)
        self.accounts[view.id] = view
        self._fit("name", cells["name"].cell_len)
        self._fit("profile", cells["profile"].cell_len)
        if previous is None:
            self.add_row(*(cells[key] for key in self.widths), key=view.id)
            return True
        self._paint(view.id, cells)
        return previous.account.name != view.account.name

    def _fit(self, key: str, length: int) -> None:
        """A longer name or profile: its column widens if the table has room left (never
        narrows in place; planning again on a resize does)."""
        if length <= self._longest.get(key, 0):
            return
        self._longest[key] = length
        if key in self.widths and length > self.widths[key] and self._planned_for:
            widths = plan_columns(self._planned_for, self._longest)
            if list(widths) == list(self.widths) and widths[key] > self.widths[key]:
                self._set_widths(widths)

    def visible_ids(self) -> list[str]:
        """Account ids of the rows on screen now (plus one either side)."""
        rows = self.ordered_rows
        first = max(0, int(self.scroll_y) - 1)
        last = min(len(rows), first + self.size.height + 2)
        return [str(row.key.value) for row in rows[first:last]]

    def tick(self, now: datetime) -> None:
        """Repaint the time-dependent cells of visible rows whose text changed, and the whole of
        a visible row that changed while it was off screen.

        Off-screen rows are repainted when they scroll into view, so the cost of a tick does
        not grow with the number of accounts.
        """
        with self.app.batch_update():
            for account_id in self.visible_ids():
                view = self.accounts[account_id]
                if account_id in self._stale:
                    self._stale.discard(account_id)
                    self._paint(account_id, self.cells(view, now))
                else:
                    self._paint(account_id, self.ticking_cells(view, now))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._stale and round(old_value) != round(new_value):
            self.tick(host(self).clock.now())  # rows changed off screen, now in view

    def _paint(self, account_id: str, cells: dict[str, Cell]) -> None:
        """Update the cells whose text or style changed, in the columns shown.

        Widths never follow the text here: every column has its planned width, so nothing
        is measured again (DataTable narrows a column by measuring every cell of it again,
        for each narrower cell, which with a thousand rows made one tick cost seconds).
        """
        for key, value in cells.items():
            if key not in self.widths:
                continue
            shown = self.get_cell(account_id, key)
            if shown is value or (shown.plain, shown.style, shown.spans) == (value.plain, value.style, value.spans):
                continue
            self.update_cell(account_id, key, value)

    # ------------------------------------------------------------------ drawing
    #
    # DataTable keys its drawing caches on a count of every update anywhere in the table, so one
    # changed cell makes it draw every visible cell and compose every visible line again. There
    # is such an update each second (the countdowns) and one per re-read in a burst of refreshes:
    # 200-odd cells at 0.2 ms and 20-odd lines at 0.7 ms, a 40-60 ms stall of the UI each time.
    # Here a cell is drawn again only when it changed (a changed cell is another Cell, `_paint`),
    # and a line composed again only when one of its row's cells did, or the cursor, the hover,
    # the widths or the styles; style and layout changes clear these with DataTable's own caches.
    # A cell object is shared by the rows showing the same text ("fresh", "in 59 min"): drawn
    # for one row, it is the same for the next but for the row number in its mouse data
    # (`_moved`): a burst that turns every row on screen draws each shared cell once, not once a row.
    # The header is left to DataTable.

    #
    # DataTable also keys its list of the rows in order, and of which row each line of the table
    # is, on that count: one changed cell made the next frame build both again, every row each
    # (96 ms for a visible cell's change at 10,000 accounts, 19 ms at 1,000). Here they are kept
    # while the rows and their order stand: adding a row raises the count of rows, and removing,
    # sorting or clearing rows replaces DataTable's map of row positions.

    @property
    def ordered_rows(self) -> list[Row]:
        return self._kept_rows()[2]

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        rows_at, count, rows, lines = self._kept_rows()
        if lines is None:
            lines = [(row.key, y) for row in rows for y in range(row.height)]
            self._rows_kept = (rows_at, count, rows, lines)
        return lines

    def clear(self, columns: bool = False) -> AccountsTable:
        self._rows_kept = None  # (DataTable's clear empties the line map first: not one made only for that)
        super().clear(columns)
        return self

    def _kept_rows(self) -> tuple[object, int, list[Row], list[tuple[RowKey, int]] | None]:
        kept = self._rows_kept
        if kept is None or kept[0] is not self._row_locations or kept[1] != self.row_count:
            kept = self._rows_kept = (self._row_locations, self.row_count, super().ordered_rows, None)
        return kept

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> SegmentLines:
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key, column_key = self._row_locations.get_key(row_index), self._column_locations.get_key(column_index)
        assert row_key is not None and column_key is not None  # both indexes are in range here
        cell = self._data[row_key][column_key]
        key = (id(cell), column_index, base_style, width, cursor, hover, self._show_hover_cursor,
               self._pseudo_class_state, self.show_cursor, self.fixed_columns, row_index < self.fixed_rows,
               self.rows[row_key].height)
        drawn = self._cells_drawn.get(key)
        if drawn is not None and drawn[0] is cell:  # the same object, not one that reuses its id
            if drawn[1] == row_index:
                return drawn[2]
            lines = _moved(drawn[2], row_index, column_index)  # a shared cell drawn for another row
        else:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._cells_drawn[key] = (cell, row_index, lines)
        return lines

    def _render_line_in_row(self, row_key: RowKey, line_no: int, base_style: Style, cursor_location: Coordinate,
                            hover_location: Coordinate) -> tuple[SegmentLines, SegmentLines]:
        cells = tuple(self._data.get(row_key, {}).values())
        if not cells:  # the header
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        key = (row_key, line_no, self._row_locations.get(row_key), base_style, cursor_location, hover_location,
               self.cursor_type, self.show_cursor, self._show_hover_cursor, self._pseudo_class_state,
               self.size.width, self.fixed_columns, tuple(c.get_render_width(self) for c in self.ordered_columns))
        composed = self._lines_composed.get(key)
        if composed is not None and len(composed[0]) == len(cells) and all(
                old is new for old, new in zip(composed[0], cells, strict=True)):
            return composed[1]
        line = super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        self._lines_composed[key] = (cells, line)
        return line

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._forget_drawing()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_drawing()

    def _forget_drawing(self) -> None:
        self._cells_drawn.clear()
        self._lines_composed.clear()
