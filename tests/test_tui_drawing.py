"""What the accounts screen draws again when something changes: only what changed.

DataTable draws every visible cell again after any update anywhere in the table, and a
Static's update lays the whole screen out again; with a thousand accounts refreshing, each
of those stalled the UI 30-70 ms (benchmarks/tui_burst.py). These tests count what is
drawn and laid out, never time, and check that what is on screen is still right.
"""

from __future__ import annotations

import gc
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from rich.style import Style
from textual.color import Color
from textual.widgets import DataTable, Static

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.models import Account, AuthMethod, Mode
from kiro_tui.tui.collector import NEVER
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from kiro_tui.tui.widgets.detail_panel import AccountDetail
from kiro_tui.tui.widgets.summary_bar import SummaryBar
from tests.support.collector import TAKES_OVER
from tests.support.tui import NOW, build_app, build_store, cell, screen_lines, screen_text, settle

SIZE = (160, 40)
STEADY = NOW + timedelta(minutes=50, seconds=30)
"""An expiry whose countdown ("in 50 min") does not change over the seconds a test advances."""


def accounts(count: int, ticking: str | None = None) -> list[Account]:
    """`count` accounts named in table order; `ticking`, if given, expires in 45 s (its
    countdown changes every second), the rest show the same text for a minute."""
    return [Account(id=f"acc{i:05d}", auth_method=AuthMethod.SOCIAL, access_token=f"aoaAAAAAG{i}:sig",
                    refresh_token=f"aorAAAAAG{i}:sig", email=f"user{i:03d}@example.com", mode=Mode.OWN,
                    expires_at=NOW + timedelta(seconds=45) if f"acc{i:05d}" == ticking else STEADY)
            for i in range(count)]


class DrawCounter:
    """Counts the data cells DataTable itself draws and the rows' lines it composes (the
    header aside)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cells = self.lines = 0
        draw, compose = DataTable._render_cell, DataTable._render_line_in_row

        def drawing(table, row_index, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.cells += row_index >= 0
            return draw(table, row_index, *args, **kwargs)

        def composing(table, row_key, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.lines += row_key in table.rows
            return compose(table, row_key, *args, **kwargs)

        monkeypatch.setattr(DataTable, "_render_cell", drawing)
        monkeypatch.setattr(DataTable, "_render_line_in_row", composing)


def spans_of(app, word: str) -> list[Style]:  # type: ignore[no-untyped-def]
    """The styles `word` is drawn with on screen now."""
    return [segment.style for line in screen_lines(app) for strip in line for segment in strip
            if segment.text.strip() == word and segment.style is not None]


async def test_a_tick_draws_again_only_the_cell_whose_text_changed(tmp_path: Path, monkeypatch) -> None:
    clock = ManualClock(NOW)
    with build_store(tmp_path / "accounts.db", accounts(30, ticking="acc00007")) as store:
        app = build_app(store, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen_text(app)  # everything drawn once
            counter = DrawCounter(monkeypatch)
            clock.advance(1)
            app.screen.tick()
            await pilot.pause()
            text = screen_text(app)
            assert cell(app, "acc00007", "expires") == "in 44 s"
            assert "in 44 s" in text and text.count("in 50 min") >= 20  # every other row on screen
            # DataTable alone draws every visible cell and composes every visible line: 189 and 21 here
            assert (counter.cells, counter.lines) == (1, 1)


async def test_rows_share_every_cell_but_the_name(tmp_path: Path) -> None:
    """A column of the same text is one cell object (a Text per cell was a sixth of the TUI's
    memory at 10,000 accounts); a changed cell is another object, so it is drawn again."""
    clock = ManualClock(NOW)
    with build_store(tmp_path / "accounts.db", accounts(30, ticking="acc00007")) as store:
        app = build_app(store, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            table = app.screen.query_one(AccountsTable)
            for column in ("method", "mode", "expires", "status", "last"):
                held = {id(table.get_cell(f"acc{i:05d}", column)) for i in range(30) if i != 7}
                assert len(held) == 1, column
            assert len({id(table.get_cell(f"acc{i:05d}", "name")) for i in range(30)}) == 30
            before = table.get_cell("acc00007", "expires")
            clock.advance(1)
            app.screen.tick()
            await pilot.pause()
            after = table.get_cell("acc00007", "expires")
            assert (str(before), str(after)) == ("in 45 s", "in 44 s") and after is not before
            assert "in 44 s" in screen_text(app)


async def test_a_changed_cell_does_not_make_the_table_list_its_rows_again(tmp_path: Path, monkeypatch) -> None:
    """DataTable lists every row in order again after any update (96 ms for one visible cell at
    10,000 accounts); the table keeps that list until rows are added, removed or sorted."""
    clock = ManualClock(NOW)
    with build_store(tmp_path / "accounts.db", accounts(30, ticking="acc00007")) as store:
        app = build_app(store, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen_text(app)
            listed = []
            original = DataTable.ordered_rows
            monkeypatch.setattr(DataTable, "ordered_rows",
                                property(lambda table: listed.append(1) or original.fget(table)))  # type: ignore[attr-defined]
            clock.advance(1)
            app.screen.tick()
            await pilot.pause()
            assert "in 44 s" in screen_text(app) and listed == []
            table = app.screen.query_one(AccountsTable)
            table.remove_row("acc00000")
            await pilot.pause()
            assert [str(row.key.value) for row in table.ordered_rows][:2] == ["acc00001", "acc00002"]
            assert len(listed) == 1  # fewer rows: listed again, once
            assert str(table.get_row_at(0)[0]) == "user001@example.com"


async def test_a_theme_picked_recolours_every_cell_on_screen(tmp_path: Path) -> None:
    with build_store(tmp_path / "accounts.db", accounts(5)) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            colours = set()
            for theme in ("textual-dark", "nord", "gruvbox"):
                app.theme = theme
                await settle(pilot)
                success = Color.parse(app.get_css_variables()["success"]).rich_color
                colours.add(success)
                drawn = [style.color for style in spans_of(app, "fresh")]
                assert drawn.count(success) == 4, theme  # every row but the cursor's, drawn in its colours
            assert len(colours) == 3


async def test_rows_off_screen_or_not_yet_added_take_the_new_theme_too(tmp_path: Path, monkeypatch) -> None:
    show, changed = AccountsTable.show, []

    def show_then_change_theme(table, views, now):  # type: ignore[no-untyped-def]
        show(table, views, now)
        if table.adding and not changed:  # the first screenful is in, the rest still to come
            changed.append(len(table._to_add))
            table.app.theme = "nord"

    monkeypatch.setattr(AccountsTable, "show", show_then_change_theme)
    with build_store(tmp_path / "accounts.db", accounts(300)) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert changed == [240]
            assert app.accounts_screen.table.row_count == 300  # going through `show` kept 60 of them
            nord = Color.parse(app.get_css_variables()["success"]).rich_color
            await pilot.press("pagedown")  # rows already added, but off screen, when the theme changed
            await settle(pilot)
            assert "user040@example.com" in screen_text(app)
            assert [style.color for style in spans_of(app, "fresh")].count(nord) >= 20


async def test_countdowns_ticking_in_the_detail_and_summary_never_lay_the_screen_out(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    clock = ManualClock(NOW)
    with build_store(tmp_path / "accounts.db", accounts(3, ticking="acc00000")) as store:
        app = build_app(store, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            laid_out: list[str] = []
            for widget in (app.screen.query_one("#detail-body", Static), app.screen.query_one(SummaryBar)):
                refresh = widget.refresh

                name = type(widget).__name__

                def recording(*regions, layout=False, _refresh=refresh, _name=name,  # type: ignore[no-untyped-def]
                              **kwargs):
                    if layout:
                        laid_out.append(_name)
                    return _refresh(*regions, layout=layout, **kwargs)

                monkeypatch.setattr(widget, "refresh", recording)
            before = screen_text(app)
            clock.advance(20)  # 45 s -> 25 s: the detail's countdown changes; still "expiring"
            app.screen.tick()
            await pilot.pause()
            after = screen_text(app)
            assert "in 25 seconds" in after and "in 25 seconds" not in before
            clock.advance(30)  # past its expiry: the summary's counts change
            app.screen.tick()
            await pilot.pause()
            assert "1 expired" in screen_text(app).splitlines()[0]
            assert laid_out == []


async def test_a_detail_that_grows_is_laid_out_again_and_shown_whole(tmp_path: Path) -> None:
    with build_store(tmp_path / "accounts.db", accounts(2)) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            detail = app.screen.query_one(AccountDetail)
            short = detail.query_one("#detail-body", Static).size.height
            account = store.get("acc00000")
            assert account is not None
            with store.transaction() as tx:  # an error: the panel gains "Failures" and "Last error"
                store.save(replace(account, last_error="the service said no", consecutive_failures=2), tx)
            app.engine.call_soon(lambda engine: engine.account_changed("acc00000"))
            await settle(pilot)
            assert detail.query_one("#detail-body", Static).size.height > short
            assert "the service said no" in screen_text(app)


async def test_what_the_first_screen_built_is_frozen_while_the_app_runs(tmp_path: Path) -> None:
    with build_store(tmp_path / "accounts.db", accounts(120)) as store:  # more than the first screenful
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.screen.query_one(AccountsTable).row_count == 120
            assert gc.get_freeze_count() > 0
            assert app.collector.holding == TAKES_OVER  # full collections wait for a quiet moment
            assert (gc.get_threshold()[2] == NEVER) == TAKES_OVER
            before = app.collector.last_activity
            app.engine.call_soon(lambda engine: engine.account_changed("acc00000"))
            await settle(pilot)
            assert app.collector.last_activity > before  # an account changed: not quiet
            before = app.collector.last_activity
            await pilot.press("down")
            assert app.collector.last_activity > before  # a key: not quiet
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold()[2] != NEVER and not app.collector.holding  # given back to CPython


async def test_a_cell_many_rows_turn_to_is_drawn_once_and_a_click_still_finds_its_own_row(
        tmp_path: Path, monkeypatch) -> None:
    """A burst of refreshes turns every row on screen to the same text ("in 58 min"): one cell
    object, drawn once for a row and reused for the others (DataTable drew it once a row: about
    40 ms of the UI's time for a screenful), each copy carrying its own row for the mouse."""
    clock = ManualClock(NOW)
    with build_store(tmp_path / "accounts.db", accounts(30)) as store:
        app = build_app(store, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen_text(app)
            counter = DrawCounter(monkeypatch)
            for account in store.accounts():  # every account refreshed at once
                store.save(replace(account, expires_at=STEADY + timedelta(minutes=8)))
            app.screen.mark_dirty(None)
            await settle(pilot)
            text = screen_text(app)
            assert text.count("in 58 min") >= 20 and "in 50 min" not in text
            assert counter.lines >= 20  # every line on screen composed again with its new cell
            assert 1 <= counter.cells <= 3  # that cell drawn for an even row, an odd one, the cursor's
            table = app.screen.query_one(AccountsTable)
            expires_x = sum(table.widths[key] + 2 for key in list(table.widths)[:list(table.widths).index("expires")])
            await pilot.click(AccountsTable, offset=(expires_x + 2, 1 + 17))  # the header, then row 17
            await pilot.pause()
            assert table.cursor_row == 17 and table.selected_id == "acc00017"


async def test_the_first_profile_a_refresh_brings_neither_widens_the_table_nor_grows_the_panel(
        tmp_path: Path, monkeypatch) -> None:
    """Logins imported from a tool's file often have no profile, and their refresh's answer
    brings its ARN. The column is planned for a profile id from the start and the panel always
    has its Profile ARN row, so the first one neither widens the table (which drew every visible
    cell again) nor changes the panel's height (which lays the whole screen out): together the
    61 ms frame of a 10,000-account burst in tui_burst."""
    with build_store(tmp_path / "accounts.db", accounts(30)) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert re.search(r"Profile ARN +none", screen_text(app))  # the first row, selected: no profile
            table = app.screen.query_one(AccountsTable)
            body = app.screen.query_one("#detail-body", Static)
            widths, height = dict(table.widths), body.size.height
            counter = DrawCounter(monkeypatch)
            account = store.get("acc00000")
            assert account is not None and account.profile_arn is None
            store.save(replace(account, profile_arn="arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"))
            app.screen.mark_dirty(frozenset({"acc00000"}))
            await settle(pilot)
            text = screen_text(app)
            assert cell(app, "acc00000", "profile") == "EHGA3GRVQMUK" and "profile/EHGA3GRVQMUK" in text
            assert table.widths == widths and body.size.height == height
            assert counter.cells <= 2  # that row's new cell, not every cell on screen
