"""The accounts screen, driven with the pilot as a person would: keys in, screen out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.events import StatusChanged
from kiro_tui.core.models import Account, Health, Mode, Status
from kiro_tui.core.refresh_result import StatusChange
from kiro_tui.tui.messages import AccountStatusChanged
from kiro_tui.tui.screens.accounts import AccountsScreen
from kiro_tui.tui.screens.choice import ChoiceScreen, LoadingChoiceScreen
from kiro_tui.tui.screens.confirm import ConfirmScreen
from kiro_tui.tui.screens.help import HelpScreen
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from kiro_tui.tui.widgets.detail_panel import AccountDetail
from tests.support.engine import at, control, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.tui import (
    NOW,
    RecordingClipboard,
    build_app,
    build_store,
    cell,
    sample_accounts,
    screen_text,
    settle,
    toasts,
    watch_pass,
)

SIZE = (160, 40)


@pytest.fixture
def store(tmp_path: Path):
    with build_store(tmp_path / "store" / "accounts.db") as opened:
        yield opened


def table(app) -> AccountsTable:  # type: ignore[no-untyped-def]
    return app.screen.query_one(AccountsTable)


async def select(pilot, account_id: str) -> None:  # type: ignore[no-untyped-def]
    await settle(pilot)
    grid = table(pilot.app)
    grid.move_cursor(row=grid.get_row_index(account_id))
    await pilot.pause()  # the highlight message
    await pilot.pause()  # the footer, recomposed for the new bindings


def footer_keys(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [key.description for key in app.screen.query(FooterKey)]


async def test_every_state_is_shown_in_words(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert table(app).row_count == 5
        assert cell(app, "a1b2c3d4", "name") == "alice@example.com"
        assert cell(app, "a1b2c3d4", "expires") == "in 50 min"  # short; the detail spells it out
        assert cell(app, "a1b2c3d4", "status") == "fresh"
        assert cell(app, "b2c3d4e5", "status") == "expiring"
        assert cell(app, "c3d4e5f6", "profile") == "Team Prod EU"
        assert cell(app, "d4e5f6a7", "status") == "NEEDS LOGIN"  # short words; the reason is below
        assert cell(app, "e5f6a7b8", "status") == "retrying"
        assert cell(app, "e5f6a7b8", "expires") == "2 min ago"
        summary = str(app.screen.query_one("#summary").render())
        assert "5 accounts" in summary and "1 NEEDS LOGIN" in summary and "1 retrying" in summary
        await select(pilot, "d4e5f6a7")
        assert "NEEDS LOGIN: refresh token invalid" in screen_text(app)
        await select(pilot, "e5f6a7b8")
        assert "retrying in 40 seconds (timeout)" in screen_text(app)


async def test_countdowns_tick_in_place_without_moving_the_cursor(store) -> None:
    clock = ManualClock(NOW)
    app = build_app(store, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AccountsScreen)
        await select(pilot, "e5f6a7b8")
        row_before = table(app).cursor_row
        clock.advance(30)
        screen.tick()
        await pilot.pause()
        assert "retrying in 10 seconds (timeout)" in screen_text(app)
        clock.advance(60 * 5)
        screen.tick()
        await pilot.pause()
        assert cell(app, "a1b2c3d4", "expires") == "in 44 min"
        assert cell(app, "b2c3d4e5", "expires") == "in 30 s"
        assert table(app).cursor_row == row_before
        assert table(app).selected_id == "e5f6a7b8"


async def test_another_process_changing_the_store_shows_up(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        from kiro_tui.core.store import AccountStore

        with AccountStore.open(store.path) as other:  # e.g. `kiro-tui watch` refreshing
            other.update("b2c3d4e5", expires_at=NOW + timedelta(hours=1), last_refresh_at=NOW)
        await watch_pass(pilot)
        assert cell(app, "b2c3d4e5", "expires") == "in 1 h"
        assert cell(app, "b2c3d4e5", "last") == "now"


async def test_empty_state_says_where_it_looked_and_offers_import_and_login(tmp_path: Path) -> None:
    candidates = [tmp_path / "kiro-cli" / "data.sqlite3", tmp_path / "amazon-q" / "data.sqlite3"]
    with build_store(tmp_path / "s.db", []) as empty:
        app = build_app(empty, kiro_cli_db=None, candidates=candidates)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.pause()
            text = str(app.screen.query_one("#empty").render())
            assert "No accounts yet" in text and str(candidates[0]) in text and str(candidates[1]) in text
            assert "Press i" in text and "l to log in" in text
            keys = footer_keys(app)
            assert "Import" in keys and "Log in" in keys
            assert "Refresh" not in keys and "Remove" not in keys and "Refresh all" not in keys
            await pilot.press("i")
            await settle(pilot)
            assert any("no kiro-cli database found" in t for t in toasts(app))


async def test_i_imports_every_login_from_kiro_cli(tmp_path: Path, emulator) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="new@example.com")
    seed_into_kiro_cli(emulator, db, kind="idc", email="idc@example.com", region="eu-west-1")
    with build_store(tmp_path / "s.db", []) as empty:
        app = build_app(empty, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            assert table(app).row_count == 2
            assert toasts(app).count("Imported from kiro-cli: 2 added") == 1  # said once, not twice
            await pilot.press("i")
            await settle(pilot)
            assert toasts(app).count("Imported from kiro-cli: 2 unchanged") == 1
            assert table(app).row_count == 2


async def test_i_on_a_kiro_cli_database_without_logins_says_so_once(tmp_path: Path) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")  # kiro-cli installed, nobody logged in
    with build_store(tmp_path / "s.db", []) as empty:
        app = build_app(empty, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            said = [t for t in toasts(app) if "Import" in t]
            assert said == [f"Import failed: no login in {db.path}; run `kiro-cli login` first"]


async def test_r_refreshes_the_selected_account_and_R_all(tmp_path: Path, emulator, emulator_time) -> None:
    from kiro_tui.demo import account_from_seed

    clock = ManualClock(at(emulator_time.now))
    with build_store(tmp_path / "s.db", []) as store:
        for i in range(3):
            store.save(account_from_seed(emulator.seed(kind="social", email=f"r{i}@example.com"), f"0000000{i}"))
        app = build_app(store, emulator.url, clock=clock)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await select(pilot, "00000001")
            await pilot.press("r")
            await settle(pilot)
            assert [r["email"] for r in emulator.requests()] == ["r1@example.com"]
            assert cell(app, "00000001", "last") == "now"
            assert any(t.startswith("r1@example.com: refreshed") for t in toasts(app))
            await pilot.press("R")
            await settle(pilot)
            assert sorted(r["email"] for r in emulator.requests()) == [
                "r0@example.com", "r1@example.com", "r1@example.com", "r2@example.com"]
            assert "Refresh all: 3 refreshed or up to date, 0 failed" in toasts(app)


async def test_p_opens_the_profile_picker_and_sets_the_profile(tmp_path: Path, emulator) -> None:
    from kiro_tui.demo import IDC_PROFILES, account_from_seed

    with build_store(tmp_path / "s.db", []) as store:
        seeded = emulator.seed(kind="idc", email="p@example.com", region="eu-west-1", profiles=IDC_PROFILES)
        store.save(account_from_seed(seeded, "11112222"))
        app = build_app(store, emulator.url)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            picker = app.screen
            assert isinstance(picker, LoadingChoiceScreen)
            assert [label.lstrip("● ").split()[0] for _, label in picker.options] == ["Team", "Team"]
            assert picker.options[0][1].startswith("●")  # the profile in use now is marked
            assert picker.query_one("#choices").display  # shown, even when they came before the dialog mounted
            assert "eu-central-1" in picker.options[1][1]
            await pilot.press("down", "enter")
            await pilot.pause()
            assert cell(app, "11112222", "profile") == "Team Prod EU"
            assert store.get("11112222").profile_arn == IDC_PROFILES[1]["arn"]  # type: ignore[union-attr]


async def test_the_profile_picker_waits_for_profiles_that_come_slowly(tmp_path: Path, emulator) -> None:
    """The picker shows its loading indicator while ListAvailableProfiles is on its way (3 s
    here: under CI's load a pause once outlasted 400 ms, and the profiles were in by the first
    look), then the profiles (the snapshot tests once caught it still loading under load)."""
    from kiro_tui.demo import IDC_PROFILES, account_from_seed

    seeded = emulator.seed(kind="idc", email="p@example.com", region="eu-west-1", profiles=IDC_PROFILES)
    with build_store(tmp_path / "s.db", [account_from_seed(seeded, "11112222")]) as store:
        app = build_app(store, emulator.url)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            control(emulator, "faults", {"latency_ms": 3000})
            await pilot.press("p")
            await pilot.pause()
            assert isinstance(app.screen, LoadingChoiceScreen) and app.screen.waiting
            await settle(pilot)
            assert not app.screen.waiting and len(app.screen.options) == len(IDC_PROFILES)
            assert app.screen.query_one("#choices").display and not app.screen.query_one("#loading").display


async def test_m_changes_the_mode(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await select(pilot, "c3d4e5f6")
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        assert [option_id for option_id, _ in app.screen.options] == ["sync", "follow", "own"]
        await pilot.press("down", "enter")
        await pilot.pause()
        assert cell(app, "c3d4e5f6", "mode") == "follow"
        assert store.get("c3d4e5f6").mode is Mode.FOLLOW  # type: ignore[union-attr]
        await select(pilot, "b2c3d4e5")  # logged in with kiro-tui: only own applies
        await pilot.press("m")
        await pilot.pause()
        assert [option_id for option_id, _ in app.screen.options] == ["own"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("clipboard_works", [True, False])
async def test_c_copies_the_token_only_after_asking(store, clipboard_works: bool) -> None:
    clipboard = RecordingClipboard(works=clipboard_works)
    app = build_app(store, clipboard=clipboard)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await select(pilot, "a1b2c3d4")
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert clipboard.copied == [] and app.clipboard == ""
        await pilot.press("c", "y")
        await pilot.pause()
        token = store.get("a1b2c3d4").access_token  # type: ignore[union-attr]
        if clipboard_works:
            assert clipboard.copied == [token]
            assert any("was copied to the clipboard" in t for t in toasts(app))
        else:
            assert app.clipboard == token
            assert any("OSC 52" in t for t in toasts(app))


async def test_delete_removes_only_after_asking(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await select(pilot, "b2c3d4e5")
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert table(app).row_count == 5
        await pilot.press("delete", "y")
        await pilot.pause()
        assert table(app).row_count == 4 and store.get("b2c3d4e5") is None
        assert "Removed: Removed bob@example.com." in toasts(app)


async def test_slash_filters_and_escape_clears(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await pilot.pause()
        assert app.screen.query_one("#filter", Input).has_focus
        await pilot.press(*"acme")
        await pilot.pause()
        assert [table(app).ordered_rows[i].key.value for i in range(table(app).row_count)] == ["c3d4e5f6"]
        await pilot.press("enter")  # back to the table, filter kept
        await pilot.pause()
        assert table(app).has_focus and table(app).row_count == 1
        await pilot.press("escape")
        await pilot.pause()
        assert table(app).row_count == 5


async def test_the_footer_is_rebuilt_only_when_its_keys_change(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await select(pilot, "a1b2c3d4")
        before = list(app.screen.query(FooterKey))
        await select(pilot, "b2c3d4e5")  # another healthy account: the same keys work
        app.screen.refresh_bindings()
        await pilot.pause()
        assert list(app.screen.query(FooterKey)) == before  # the very same widgets
        await select(pilot, "d4e5f6a7")  # needs login: enter now does something
        assert "Fix login" in footer_keys(app)
        assert all(key not in before for key in app.screen.query(FooterKey))


async def test_enter_on_a_needs_login_account_offers_the_fixes(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await select(pilot, "a1b2c3d4")
        assert "Fix login" not in footer_keys(app)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AccountsScreen)  # a fresh account: enter does nothing
        await select(pilot, "d4e5f6a7")
        assert "Fix login" in footer_keys(app)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        assert [option_id for option_id, _ in app.screen.options] == ["login"]  # not from kiro-cli
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one("#region", Input).value == "us-east-1"  # the login form, prefilled


async def test_question_mark_shows_help_and_q_quits(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, AccountsScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_command_palette_runs_the_same_actions(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await select(pilot, "a1b2c3d4")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"mode")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen) and app.screen.title_text == "Mode for alice@example.com"


async def test_needs_login_toast_appears_exactly_once(tmp_path: Path, emulator, emulator_time) -> None:
    from kiro_tui.demo import account_from_seed

    clock = ManualClock(at(emulator_time.now))
    with build_store(tmp_path / "s.db", []) as store:
        store.save(account_from_seed(emulator.seed(kind="builder-id", email="gone@example.com", expires_in=60),
                                     "dead0001"))
        control(emulator, "revoke", {"email": "gone@example.com"})
        app = build_app(store, emulator.url, clock=clock, run_engine=True, kiro_cli_db=None)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            for _ in range(500):  # the engine starts after the first paint, then makes its one call
                await pilot.pause(0.02)
                if store.get("dead0001").health is Health.NEEDS_LOGIN:  # type: ignore[union-attr]
                    break
            for _ in range(3):  # more ticks, more reloads, the scheduler waking: no second toast
                clock.advance(3600)
                app.screen.tick()
                await pilot.pause(0.05)
            needs_login = [t for t in toasts(app) if t.startswith("Needs login")]
            assert needs_login == ["Needs login: gone@example.com: refresh token invalid. Select it and press enter."]
            assert cell(app, "dead0001", "status") == "NEEDS LOGIN"
        assert len([r for r in emulator.requests() if r["operation"] == "CreateToken"]) == 1


ALIVE = replace(sample_accounts()[0], health=Health.OK)
DEAD = replace(ALIVE, health=Health.NEEDS_LOGIN, last_error="refresh token invalid")
NEEDS_LOGIN_TOAST = f"Needs login: {ALIVE.name}: refresh token invalid. Select it and press enter."


def engine_says(before: Status, after: Status) -> AccountStatusChanged:
    """The engine's word that ALIVE turned from `before` to `after` (what its refreshes post)."""
    return AccountStatusChanged(StatusChanged(StatusChange(ALIVE.id, ALIVE.name, before, after, "refresh token invalid")))


@pytest.mark.parametrize("first", ["re-read", "engine"])
async def test_a_login_that_dies_is_toasted_once_each_time_whichever_news_comes_first(tmp_path: Path,
                                                                                     first: str) -> None:
    """The engine's word (AccountStatusChanged) and a re-read of the store both tell of a login
    that died; under load either comes first (CI once showed two toasts). One toast each time
    it dies: dead, logged in again, dead again is two, whatever the order of the news."""
    other = "engine" if first == "re-read" else "re-read"
    with build_store(tmp_path / "s.db", [ALIVE]) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, AccountsScreen)

            async def turn(account: Account, before: Status, after: Status, order: tuple[str, str]) -> None:
                store.save(account)  # (the store has it first: the engine tells of what it committed)
                for news in order:
                    if news == "engine":
                        screen.post_message(engine_says(before, after))
                    else:
                        screen.mark_dirty(frozenset({ALIVE.id}))
                    await settle(pilot)

            await turn(DEAD, Status.FRESH, Status.NEEDS_LOGIN, (first, other))
            assert [t for t in toasts(app) if t.startswith("Needs login")] == [NEEDS_LOGIN_TOAST]
            assert cell(app, ALIVE.id, "status") == "NEEDS LOGIN"
            await turn(ALIVE, Status.NEEDS_LOGIN, Status.FRESH, (other, first))  # logged in again
            await turn(DEAD, Status.FRESH, Status.NEEDS_LOGIN, (other, first))
            assert [t for t in toasts(app) if t.startswith("Needs login")] == [NEEDS_LOGIN_TOAST] * 2


async def test_usage_is_fetched_lazily_cached_and_marked_stale_on_error(tmp_path: Path, emulator,
                                                                       emulator_time) -> None:
    from kiro_tui.demo import account_from_seed

    clock = ManualClock(at(emulator_time.now))
    with build_store(tmp_path / "s.db", []) as store:
        store.save(account_from_seed(emulator.seed(kind="social", email="u@example.com"), "usage001"))
        app = build_app(store, emulator.url, clock=clock, fetch_usage=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            detail = app.screen.query_one(AccountDetail)

            def usage_row() -> str:
                return dict(detail.shown).get("Usage", "")

            for _ in range(200):
                await pilot.pause(0.02)
                if "12.5 of 50 used" in usage_row():
                    break
            assert "12.5 of 50 used" in usage_row() and "KIRO FREE" in usage_row()
            calls = len([r for r in emulator.requests() if r["operation"] == "GetUsageLimits"])
            assert calls == 1
            app.screen.update_detail()  # selecting again within five minutes: from the cache
            await pilot.pause(0.1)
            assert len([r for r in emulator.requests() if r["operation"] == "GetUsageLimits"]) == 1
            control(emulator, "faults", {"path": "GetUsageLimits", "status": 500, "count": 5})
            clock.advance(11 * 60)  # the engine fetches quota again once it is ten minutes old
            await watch_pass(pilot)
            assert "12.5 of 50 used" in usage_row() and "stale" in usage_row()  # the last good figures, marked


@pytest.mark.parametrize("bell", [True, False])
async def test_trouble_found_by_another_process_toasts_once_and_rings_the_bell_if_asked(store, bell: bool) -> None:
    from kiro_tui.core.config import Settings
    from kiro_tui.core.store import AccountStore

    app = build_app(store, settings=Settings(bell=bell))
    rings = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert not [t for t in toasts(app) if t.startswith(("Needs login", "Suspended"))]  # known at start
        with AccountStore.open(store.path) as other:  # `kiro-tui watch` finds alice's token dead
            other.update("a1b2c3d4", health=Health.NEEDS_LOGIN, last_error="refresh token invalid: log in again")
        for _ in range(3):
            await watch_pass(pilot)
        assert [t for t in toasts(app) if t.startswith("Needs login")] == [
            "Needs login: alice@example.com: refresh token invalid. Select it and press enter."]
        assert rings == ([1] if bell else [])


async def test_names_and_errors_are_shown_as_written_never_read_as_markup(tmp_path: Path) -> None:
    """Names, profile names and errors come from kiro-cli and AWS: text like "[/]" is data."""
    from kiro_tui.core.models import Account, AuthMethod
    from kiro_tui.core.store import AccountStore

    odd = Account(id="f00dcafe", auth_method=AuthMethod.SOCIAL, access_token="aoaAAAAAGodd:sig",
                  refresh_token="aorAAAAAGodd:sig", expires_at=NOW + timedelta(minutes=30),
                  label="ops [/] [bold]team[/bold]", profile_name="[red]Prod", mode=Mode.OWN)
    with build_store(tmp_path / "accounts.db", [odd]) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.pause()
            assert cell(app, "f00dcafe", "name") == "ops [/] [bold]team[/bold]"
            text = screen_text(app)
            assert "ops [/] [bold]team[/bold]  [f00dcafe]" in text  # the detail panel
            assert "[red]Prod" in text
            with AccountStore.open(store.path) as other:
                other.update("f00dcafe", health=Health.NEEDS_LOGIN,
                             last_error="refresh token invalid: log in again ([/] invalid_grant)")
            await watch_pass(pilot)
            assert "Needs login: ops [/] [bold]team[/bold]: refresh token invalid. Select it and press enter." \
                in toasts(app)
            await pilot.press("delete")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            assert "Remove ops [/] [bold]team[/bold] from kiro-tui?" in screen_text(app)
            assert "id      f00dcafe" in screen_text(app)


async def test_unusable_certificates_are_said_once_and_the_accounts_still_show(store, monkeypatch,
                                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing-ca.pem"))
    app = build_app(store)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        for _ in range(100):
            await pilot.pause(0.02)
            if any(t.startswith("Cannot reach AWS") for t in toasts(app)):
                break
        (toast,) = [t for t in toasts(app) if t.startswith("Cannot reach AWS")]
        assert "SSL_CERT_FILE=" in toast and toast.endswith("Accounts are shown, but nothing is refreshed.")
        assert table(app).row_count == 5
        await pilot.press("r")
        for _ in range(50):
            await pilot.pause(0.02)
            if any(t.startswith("Cannot refresh") for t in toasts(app)):
                break
        assert any(t.startswith("Cannot refresh: cannot load the certificates") for t in toasts(app))
        await pilot.press("l")
        await pilot.pause()
        await pilot.press("enter")
        for _ in range(50):
            await pilot.pause(0.02)
            if "point it at a PEM bundle" in screen_text(app):
                break
        assert "point it at a PEM bundle, or unset it" in screen_text(app)  # the login screen says why


async def test_a_longer_status_fits_its_fixed_column_and_filtering_keeps_the_selection(tmp_path: Path) -> None:
    from kiro_tui.core.models import Account, AuthMethod
    from kiro_tui.core.store import AccountStore

    accounts = [Account(id=f"{i:08x}", auth_method=AuthMethod.SOCIAL, access_token=f"aoaAAAAAG{i}:sig",
                        refresh_token=f"aorAAAAAG{i}:sig", expires_at=NOW + timedelta(minutes=30 + i),
                        label=f"user{i:02d}@example.com", mode=Mode.OWN) for i in range(30)]
    with build_store(tmp_path / "accounts.db", accounts) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.pause()
            assert "NEEDS LOGIN" not in screen_text(app)  # every status is "fresh"
            with AccountStore.open(store.path) as other:
                other.update("00000003", health=Health.NEEDS_LOGIN,
                             last_error="refresh token invalid: log in again")
            await watch_pass(pilot)
            row = next(line for line in screen_text(app).splitlines() if "user03@example.com" in line)
            assert "NEEDS LOGIN" in row  # the column was wide enough already: nothing cut off
            await select(pilot, "00000011")  # user17
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press(*"user1")  # user10…user19: twenty rows go at once
            await pilot.pause()
            assert table(app).row_count == 10 and table(app).selected_id == "00000011"
            await pilot.press("escape")
            await pilot.pause()
            assert table(app).row_count == 30 and table(app).selected_id == "00000011"


async def test_control_characters_from_outside_never_reach_the_terminal(tmp_path: Path) -> None:
    """An email, a profile name or a server error holding an escape sequence (set the window
    title, clear the screen) is shown with '?' in its place, everywhere it appears."""
    from kiro_tui.core.models import Account, AuthMethod
    from kiro_tui.core.store import AccountStore

    evil = "eve\x1b]0;pwned\x07\x1b[2J@example.com"
    account = Account(id="e5c0e5c0", auth_method=AuthMethod.SOCIAL, access_token="aoaAAAAAGe:sig",
                      refresh_token="aorAAAAAGe:sig", expires_at=NOW + timedelta(minutes=30), email=evil,
                      profile_name="Prod\rEU", region="us-east-1\x1b[5m", mode=Mode.OWN)
    with build_store(tmp_path / "accounts.db", [account]) as store:
        app = build_app(store)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.pause()
            with AccountStore.open(store.path) as other:
                other.update("e5c0e5c0", health=Health.NEEDS_LOGIN, last_error="denied \x1b[31mby\x1b[0m AWS")
            await watch_pass(pilot)
            seen = [screen_text(app), *toasts(app)]
            await pilot.press("delete")
            await pilot.pause()
            seen.append(screen_text(app))
            for text in seen:
                assert not any(ch in text for ch in "\x1b\x07\r"), repr(text)
            assert "eve?]0;pwned??[2J@example.com" in seen[0] and "Prod?EU" in seen[0]
            assert "Needs login: eve?]0;pwned??[2J@example.com: denied ?[31mby?[0m AWS. Select it and press enter." \
                in seen[1:-1]


async def test_the_summary_counts_follow_the_clock_without_any_store_change(tmp_path: Path) -> None:
    from kiro_tui.core.models import Account, AuthMethod

    clock = ManualClock(NOW)
    account = Account(id="c10c0001", auth_method=AuthMethod.SOCIAL, access_token="aoaAAAAAGc:sig",
                      refresh_token="aorAAAAAGc:sig", expires_at=NOW + timedelta(minutes=11),
                      email="clock@example.com", mode=Mode.OWN)
    with build_store(tmp_path / "accounts.db", [account]) as store:
        app = build_app(store, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            summaries = []
            for minutes in (0, 2, 10):  # fresh; inside the 10-minute window; past expiry
                clock.advance(minutes * 60)
                app.screen.tick()
                await pilot.pause()
                summaries.append(screen_text(app).splitlines()[0])
            assert "1 account · 1 fresh" in summaries[0]
            assert "1 account · 1 expiring" in summaries[1]
            assert "1 account · 1 expired" in summaries[2]


async def test_an_expired_follow_account_waits_for_kiro_cli_and_enter_offers_re_import(tmp_path: Path) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    db.put_social(expires_at=NOW - timedelta(minutes=5))  # kiro-cli has not run for a while
    with build_store(tmp_path / "s.db", []) as store:
        app = build_app(store, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            (account,) = store.accounts()
            await app.engine.call(lambda engine: engine.set_mode(account.id, Mode.FOLLOW))
            await settle(pilot)
            await pilot.press("R")
            await settle(pilot)
            (said,) = [t for t in toasts(app) if t.startswith("Refresh all")]
            assert said == ("Refresh all: 0 refreshed or up to date, 1 waiting for kiro-cli (follow mode, expired; "
                            "enter on it offers re-import), 0 failed"), said
            assert app.focused is app.accounts_screen.table  # the first import gave the table the keys
            db.put_social(expires_at=NOW + timedelta(hours=1))  # kiro-cli ran and refreshed it
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, ChoiceScreen) and "waits for kiro-cli" in screen_text(app)
            assert [option for option, _ in app.screen.options] == ["reimport", "sync"]
            await pilot.press("enter")  # Re-import
            await settle(pilot)
            assert store.get(account.id).expires_at == NOW + timedelta(hours=1)  # type: ignore[union-attr]
            assert store.get(account.id).mode is Mode.FOLLOW  # type: ignore[union-attr]
            assert cell(app, account.id, "status") == "fresh"
