"""The accounts screen at every width: which columns show, that ticking columns never jump, the
Usage column, the footer's keys, Home and End. Driven with the pilot; time is a ManualClock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets._footer import FooterKey

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.models import Account, AuthMethod, Health, Mode, UsageRecord
from kiro_tui.core.store import AccountStore
from kiro_tui.tui.commands import AccountCommands
from kiro_tui.tui.screens.confirm import ConfirmScreen
from kiro_tui.tui.screens.help import HelpScreen
from kiro_tui.tui.widgets.accounts_table import (
    COLUMN_SPECS,
    AccountsTable,
    plan_columns,
)
from tests.support.tui import (
    NOW,
    build_app,
    build_store,
    cell,
    sample_accounts,
    screen_text,
    settle,
    toasts,
)

WIDTHS = (80, 100, 120, 140, 160, 200)
EXPECTED_COLUMNS = {
    80: ["Name", "Expires", "Status", "Usage", "Profile"],
    100: ["Name", "Expires", "Status", "Usage", "Method", "Profile", "Mode"],
    120: ["Name", "Expires", "Status", "Usage", "Method", "Region", "Profile", "Mode"],
    140: [spec.label for spec in COLUMN_SPECS],
    160: [spec.label for spec in COLUMN_SPECS],
    200: [spec.label for spec in COLUMN_SPECS],
}


def _account(account_id: str, email: str, now: datetime, **fields: object) -> Account:
    base: dict[str, object] = {"auth_method": AuthMethod.SOCIAL, "provider": "google", "mode": Mode.OWN,
                               "expires_at": now + timedelta(minutes=40)}
    base.update(fields)
    return Account(id=account_id, access_token=f"aoaAAAAAG{account_id}:sig", refresh_token=f"aorAAAAAG{account_id}:sig",
                   email=email, **base)  # type: ignore[arg-type]


def every_status_accounts(now: datetime = NOW) -> list[Account]:
    """The five samples (fresh, expiring, IdC fresh, NEEDS LOGIN, retrying) and one account in
    each other status: suspended, expired, refreshing, quota low, over quota."""
    return [
        *sample_accounts(now),
        _account("f6a7b8c9", "fay@example.com", now, health=Health.SUSPENDED,
                 last_error="account suspended (AccountSuspendedException)"),
        _account("a7b8c9d0", "gus@example.com", now, expires_at=now - timedelta(seconds=16), mode=Mode.FOLLOW,
                 source="/home/dev/.local/share/kiro-cli/data.sqlite3", source_key="kirocli:social:token"),
        _account("b8c9d0e1", "hal@example.com", now, last_refresh_at=now - timedelta(hours=2)),
        _account("c9d0e1f2", "ivy@example.com", now, auth_method=AuthMethod.BUILDER_ID, provider=None,
                 last_refresh_at=now - timedelta(minutes=3)),
        _account("d0e1f2a3", "jon@example.com", now, region="ap-southeast-1",
                 last_refresh_at=now - timedelta(days=3)),
    ]


EVERY_USAGE = {
    "a1b2c3d4": UsageRecord(31, 50, NOW + timedelta(days=8), "KIRO FREE", NOW - timedelta(minutes=4)),  # 62 %
    "c3d4e5f6": UsageRecord(212.5, 1000, NOW + timedelta(days=8), "KIRO PRO", NOW - timedelta(minutes=30),
                            "AccessDenied: token expired", NOW - timedelta(minutes=2)),  # 21 %, stale
    "c9d0e1f2": UsageRecord(46, 50, NOW + timedelta(days=8), "KIRO FREE", NOW - timedelta(minutes=1)),  # 92 %
    "d0e1f2a3": UsageRecord(55, 50, NOW + timedelta(days=8), "KIRO FREE", NOW - timedelta(minutes=1)),  # 110 %
}


def every_status_store(path: Path) -> AccountStore:
    """A store holding an account in every status, with usage for some (one of them stale)."""
    store = build_store(path, every_status_accounts())
    for account_id, usage in EVERY_USAGE.items():
        store.save_usage(account_id, usage)
    asyncio.run(store.acquire_lease("b8c9d0e1", "another kiro-tui", NOW, 3600))  # hal: being refreshed elsewhere
    return store


@pytest.fixture
def store(tmp_path: Path):
    with every_status_store(tmp_path / "accounts.db") as opened:
        yield opened


def table(app) -> AccountsTable:  # type: ignore[no-untyped-def]
    return app.screen.query_one(AccountsTable)


def header(app) -> str:  # type: ignore[no-untyped-def]
    return screen_text(app).splitlines()[1]


def footer(app) -> str:  # type: ignore[no-untyped-def]
    return screen_text(app).splitlines()[-1]


def row_line(app, text: str) -> str:  # type: ignore[no-untyped-def]
    return next(line for line in screen_text(app).splitlines() if text in line)


async def until(pilot, condition, tries: int = 50) -> None:  # type: ignore[no-untyped-def]
    """Let the app process messages until `condition` holds (bounded; never a wall-clock wait)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause()
    raise AssertionError("the condition never held")


def column_starts(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    line = header(app)
    return {label: line.index(label) for label in (spec.label for spec in COLUMN_SPECS) if f" {label} " in line}


# ---------------------------------------------------------------- columns by width


def test_columns_are_dropped_by_priority_never_cut() -> None:
    """The plan alone: last refresh goes first, then region, mode, method, profile, usage;
    name, expiry and status always stay."""
    seen = []
    for width in range(200, 40, -1):
        shown = list(plan_columns(width, {"name": 20, "profile": 20}))
        if shown not in seen:
            seen.append(shown)
    dropped = [next(k for k in before if k not in after) for before, after in zip(seen, seen[1:], strict=False)]
    assert dropped == ["last", "region", "mode", "method", "profile", "usage"]
    assert seen[-1] == ["name", "expires", "status"]
    assert list(plan_columns(10)) == ["name", "expires", "status"]  # too narrow: kept, scrolled sideways


@pytest.mark.parametrize("width", WIDTHS)
async def test_every_width_shows_whole_columns_and_no_horizontal_scrollbar(store, width: int) -> None:
    app = build_app(store)
    async with app.run_test(size=(width, 40)) as pilot:
        await settle(pilot)
        await pilot.pause()
        grid = table(app)
        assert header(app).split() == " ".join(EXPECTED_COLUMNS[width]).split()
        assert grid.virtual_size.width <= grid.scrollable_content_region.width
        assert grid.max_scroll_x == 0 and not grid.show_horizontal_scrollbar
        assert grid.fixed_columns == 0  # everything fits: nothing to pin
        for email in ("alice@example.com", "team@acme.example", "gus@example.com"):
            assert email in row_line(app, email)  # names whole, not cut
        assert "NEEDS LOGIN" in row_line(app, "dave@example.com")
        assert "▰▰▰▱▱  62%" in row_line(app, "alice@example.com")


async def test_resizing_rebuilds_the_columns_and_keeps_the_selection(store) -> None:
    app = build_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_cursor(row=grid.get_row_index("c9d0e1f2"))
        await pilot.pause()
        await pilot.resize_terminal(80, 40)
        await settle(pilot)
        await pilot.pause()
        assert header(app).split() == " ".join(EXPECTED_COLUMNS[80]).split()
        assert grid.selected_id == "c9d0e1f2" and grid.row_count == 10
        await pilot.resize_terminal(160, 40)
        await settle(pilot)
        await pilot.pause()
        assert header(app).split() == " ".join(EXPECTED_COLUMNS[160]).split()
        assert grid.selected_id == "c9d0e1f2"
        assert cell(app, "c9d0e1f2", "last") == "3 min ago"


async def test_the_name_column_stays_when_the_table_scrolls_sideways(store) -> None:
    app = build_app(store)
    async with app.run_test(size=(40, 30)) as pilot:  # too narrow even for name, expiry and status
        await settle(pilot)
        await pilot.pause()
        grid = table(app)
        assert grid.max_scroll_x > 0 and grid.fixed_columns == 1
        grid.scroll_to(x=grid.max_scroll_x, animate=False)
        await pilot.pause()
        line = row_line(app, "bob@example.com")
        assert line.lstrip().startswith("bob@example.com") and "expiring" in line


# ---------------------------------------------------------------- ticking columns never jump


async def test_ticking_columns_keep_their_width_whatever_the_clock_and_statuses_say(store) -> None:
    clock = ManualClock(NOW)
    app = build_app(store, clock=clock)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.pause()
        before = column_starts(app)
        grid = table(app)
        widths = {key: column.width for key, column in grid.columns.items()}
        remeasured = []
        original = grid.update_cell

        def update_cell(*args, **kwargs):  # type: ignore[no-untyped-def]
            remeasured.append(kwargs.get("update_width", False))
            return original(*args, **kwargs)

        grid.update_cell = update_cell  # type: ignore[method-assign]
        for seconds in (1, 30, 60 * 7, 60 * 40, 3600 * 30, 86400 * 200):  # seconds, minutes, hours, days
            clock.advance(seconds)
            app.screen.tick()
            await pilot.pause()
            assert column_starts(app) == before
        with AccountStore.open(store.path) as other:  # a longer status arrives from elsewhere
            other.update("a1b2c3d4", health=Health.REFRESH_FAILING, last_error="timed out",
                         next_refresh_at=clock.now() + timedelta(seconds=30))
        from tests.support.tui import watch_pass

        await watch_pass(pilot)
        await pilot.pause()
        assert column_starts(app) == before
        assert {key: column.width for key, column in grid.columns.items()} == widths
        assert remeasured and not any(remeasured)  # cells repainted, no column measured again
        assert cell(app, "e5f6a7b8", "expires") == "99+ days ago"  # the longest it gets: still whole
        assert "99+ days ago" in row_line(app, "erin@example.com")


async def test_a_longer_name_widens_its_column_in_place_while_there_is_room(tmp_path: Path) -> None:
    with build_store(tmp_path / "a.db", [_account("00000001", "a@example.com", NOW)]) as store:
        app = build_app(store)
        async with app.run_test(size=(160, 30)) as pilot:
            await settle(pilot)
            grid = table(app)
            narrow = grid.columns["name"].width
            with AccountStore.open(store.path) as other:
                other.save(_account("00000002", "a.much.longer.name@example.com", NOW))
            from tests.support.tui import watch_pass

            await watch_pass(pilot)
            for _ in range(20):  # (once in CI the column was still narrow here: the row had not come in yet?)
                if "00000002" in grid.accounts:
                    break
                await settle(pilot)
            assert "00000002" in grid.accounts, "the new row never came in"
            assert "a.much.longer.name@example.com" in row_line(app, "a.much")
            assert grid.columns["name"].width == len("a.much.longer.name@example.com") > narrow


# ---------------------------------------------------------------- usage and quota


async def test_usage_bars_and_quota_statuses(store) -> None:
    app = build_app(store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert cell(app, "a1b2c3d4", "usage") == "▰▰▰▱▱  62%"
        assert cell(app, "c3d4e5f6", "usage") == "▰▱▱▱▱ ~21%"  # the last fetch failed: stale
        assert cell(app, "c9d0e1f2", "usage") == "▰▰▰▰▱  92%"
        assert cell(app, "d0e1f2a3", "usage") == "▰▰▰▰▰ 110%"
        assert cell(app, "b2c3d4e5", "usage") == "—"  # not known yet
        assert cell(app, "c9d0e1f2", "status") == "quota low"
        assert cell(app, "d0e1f2a3", "status") == "over quota"
        assert cell(app, "a1b2c3d4", "status") == "fresh"
        assert cell(app, "f6a7b8c9", "status") == "suspended"
        assert cell(app, "a7b8c9d0", "status") == "expired"
        assert cell(app, "b8c9d0e1", "status") == "refreshing"
        summary = screen_text(app).splitlines()[0]
        assert "1 over quota" in summary and "1 quota low" in summary
        grid = table(app)  # colours from the theme's variables, through component classes
        assert grid.get_cell("d0e1f2a3", "usage").spans[0].style == grid.style_of("usage--over")
        assert grid.get_cell("c9d0e1f2", "usage").spans[0].style == grid.style_of("usage--low")
        assert grid.get_cell("c3d4e5f6", "usage").spans[0].style == grid.style_of("accounts--muted")
        assert not [t for t in toasts(app) if "quota" in t.lower()]  # no toast: nothing to fix here


async def test_the_quota_warning_is_configurable(store) -> None:
    app = build_app(store, settings=Settings(quota_warning=0.5))
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert cell(app, "a1b2c3d4", "status") == "quota low"  # 62 % of the limit
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("end")  # the statuses come after every key
        await pilot.pause()
        assert "quota low    50% or more of this month's requests used" in screen_text(app)


async def test_usage_turns_stale_when_nobody_could_fetch_it_for_an_hour(store) -> None:
    clock = ManualClock(NOW)
    app = build_app(store, clock=clock)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert cell(app, "c9d0e1f2", "usage") == "▰▰▰▰▱  92%"
        clock.advance(58 * 60)  # 59 minutes since it was fetched: not yet
        app.screen.tick()
        await pilot.pause()
        assert cell(app, "c9d0e1f2", "usage") == "▰▰▰▰▱  92%"
        clock.advance(2 * 60)  # over an hour (a dead login, say: nobody could ask again)
        app.screen.tick()
        await pilot.pause()
        assert cell(app, "c9d0e1f2", "usage") == "▰▰▰▰▱ ~92%"
        grid = table(app)
        grid.move_cursor(row=grid.get_row_index("c9d0e1f2"))
        await settle(pilot)
        assert "46 of 50 used (92%)  KIRO FREE  resets 2026-12-01  (stale: fetched an hour ago)" in screen_text(app)


# ---------------------------------------------------------------- the footer


@pytest.mark.parametrize("width", [80, 100])
async def test_the_footer_always_shows_quit_help_and_the_palette_and_cuts_no_key(store, width: int) -> None:
    app = build_app(store)
    async with app.run_test(size=(width, 40)) as pilot:
        await settle(pilot)
        grid = table(app)
        for account_id in ("a1b2c3d4", "d4e5f6a7"):  # a healthy account; one that needs a login (enter)
            grid.move_cursor(row=grid.get_row_index(account_id))
            await pilot.pause()
            await pilot.pause()
            line = footer(app)
            keys = [key for key in app.screen.query(FooterKey)]
            for key in keys:  # every key shown is shown whole
                assert f"{key.key_display} {key.description}".strip() in line, (key.description, line)
            descriptions = [key.description for key in keys]
            assert {"Help", "Quit", "palette"} <= set(descriptions)
            assert "Refresh" in descriptions  # the next most needed keys, as room allows
            if account_id == "d4e5f6a7":
                assert "Fix login" in descriptions


async def test_the_footer_shows_more_keys_when_the_terminal_grows(store) -> None:
    app = build_app(store)
    async with app.run_test(size=(80, 40)) as pilot:
        await settle(pilot)
        narrow = [key.description for key in app.screen.query(FooterKey)]
        assert "Remove" not in narrow and "Refresh all" not in narrow
        await pilot.resize_terminal(160, 40)
        await settle(pilot)
        await until(pilot, lambda: "Remove" in [key.description for key in app.screen.query(FooterKey)])
        wide = [key.description for key in app.screen.query(FooterKey)]
        assert set(narrow) < set(wide) and {"Remove", "Copy token", "Refresh all"} <= set(wide) - set(narrow)


# ---------------------------------------------------------------- home and end


async def test_home_and_end_go_to_the_first_and_last_account(tmp_path: Path) -> None:
    accounts = [_account(f"{i:08x}", f"user{i:02d}@example.com", NOW) for i in range(40)]
    with build_store(tmp_path / "a.db", accounts) as store:
        app = build_app(store)
        async with app.run_test(size=(80, 30)) as pilot:
            await settle(pilot)
            grid = table(app)
            await pilot.press("end")
            await pilot.pause()
            assert grid.selected_id == f"{39:08x}" and grid.scroll_x == 0
            assert "user39@example.com" in screen_text(app)  # scrolled into view
            await pilot.press("delete")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            assert "Remove user39@example.com from kiro-tui?" in screen_text(app)  # the row in view
            await pilot.press("n")
            await pilot.pause()
            await pilot.press("home")
            await pilot.pause()
            assert grid.selected_id == f"{0:08x}" and grid.scroll_y == 0


# ---------------------------------------------------------------- smaller things


async def test_a_follow_refresh_says_expired_not_expires_expired(tmp_path: Path) -> None:
    gus = _account("a7b8c9d0", "gus@example.com", NOW, expires_at=NOW - timedelta(seconds=16), mode=Mode.FOLLOW,
                   source=str(tmp_path / "no-kiro-cli.sqlite3"), source_key="kirocli:social:token")
    with build_store(tmp_path / "a.db", [gus]) as store:
        app = build_app(store)
        async with app.run_test(size=(120, 30), notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            (toast,) = [t for t in toasts(app) if t.startswith("gus@example.com")]
            assert "followed; expired 16 seconds ago" in toast and "expires expired" not in toast


async def test_the_remove_dialog_tells_apart_two_accounts_with_the_same_email(tmp_path: Path) -> None:
    imported = _account("11111111", "lee@acme.example", NOW, auth_method=AuthMethod.IDC, provider=None,
                        region="eu-west-1", start_url="https://d-4444444444.awsapps.com/start", mode=Mode.SYNC,
                        source="/home/dev/.local/share/kiro-cli/data.sqlite3", source_key="kirocli:odic:token")
    logged_in = _account("22222222", "lee@acme.example", NOW, auth_method=AuthMethod.IDC, provider=None,
                         region="eu-west-1", start_url="https://d-4444444444.awsapps.com/start",
                         profile_name="Team Prod EU", expires_at=NOW + timedelta(minutes=55))
    with build_store(tmp_path / "a.db", [imported, logged_in]) as store:
        app = build_app(store)
        async with app.run_test(size=(100, 40)) as pilot:
            await settle(pilot)
            grid = table(app)
            said = {}
            for account_id in ("11111111", "22222222"):
                grid.move_cursor(row=grid.get_row_index(account_id))
                await pilot.pause()
                await pilot.press("delete")
                await pilot.pause()
                said[account_id] = screen_text(app)
                await pilot.press("n")
                await pilot.pause()
            assert "id      11111111" in said["11111111"]
            assert "from    imported from kiro-cli (kirocli:odic:token)" in said["11111111"]
            assert "status  fresh, expires in 40 minutes" in said["11111111"]
            assert "id      22222222" in said["22222222"]
            assert "login   IdC, d-4444444444, eu-west-1, profile Team Prod EU" in said["22222222"]
            assert "from    logged in with kiro-tui" in said["22222222"]


async def test_the_palette_offers_the_screens_actions_not_cursor_keys(store) -> None:
    app = build_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        actions = [action for action, _, _ in AccountCommands(app.screen)._available()]
        assert "refresh" in actions and "login" in actions
        assert not {"cursor_up", "page_down", "scroll_top", "app.focus_next", "copy_text"} & set(actions)


async def test_profiles_that_arrive_before_the_picker_is_mounted_are_shown(store) -> None:
    """The engine may answer before the dialog has mounted: the options must not be hidden."""
    from kiro_tui.tui.screens.choice import LoadingChoiceScreen

    app = build_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        picker = LoadingChoiceScreen("Profile for team@acme.example", "Profiles this login may use:")
        picker.fill([("arn:1", "Team Dev"), ("arn:2", "Team Prod EU")], "arn:2")
        app.push_screen(picker)
        await until(pilot, lambda: picker.is_mounted and bool(picker.options))
        await pilot.pause()
        choices = picker.query_one("#choices")
        assert choices.display and choices.highlighted == 1  # type: ignore[attr-defined]
        assert "Team Prod EU" in screen_text(app)


async def test_the_login_form_hint_is_whole_at_80_columns(store) -> None:
    app = build_app(store)
    async with app.run_test(size=(80, 30)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await until(pilot, lambda: "Log in with a device code" in screen_text(app))
        assert "Enter logs in from either field; Tab moves between them." in screen_text(app)
