"""The TUI's `u` (use in a tool) and `n` (name), at 80×24 as a person's terminal is (issue 23)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Input

from kiro_tui.core.places import place_format
from kiro_tui.demo import account_from_seed
from kiro_tui.tui.screens.choice import ChoiceScreen
from kiro_tui.tui.screens.name_prompt import NamePromptScreen
from kiro_tui.tui.widgets.detail_panel import AccountDetail
from tests.support.places import seed, write_kiro_ide
from tests.support.tui import build_app, build_store, screen_text, settle, toasts

SIZE = (80, 24)


def detail(app) -> str:  # type: ignore[no-untyped-def]
    """The detail panel's rows as plain text (it keeps them as markup)."""
    shown = app.accounts_screen.query_one(AccountDetail).shown
    return "\n".join(f"{label} {Text.from_markup(value).plain}" for label, value in shown)


async def test_u_lists_the_tools_found_and_switches_the_ide_between_two_accounts(
        tmp_path: Path, isolated_dirs: Path, emulator) -> None:
    cache = isolated_dirs / ".aws" / "sso" / "cache"
    ide = write_kiro_ide(cache, seed(emulator, "social"))  # a login kiro-tui has never seen
    accounts = [account_from_seed(emulator.seed(kind="builder-id", email=f"{who}@example.com"), account_id)
                for who, account_id in (("ann", "a0000001"), ("bob", "b0000002"))]
    with build_store(tmp_path / "s.db", accounts) as store:
        app = build_app(store, emulator.url, kiro_cli_db=None, candidates=[])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            assert "In use by" not in detail(app)
            for _turn, (account_id, other) in enumerate((("a0000001", None), ("b0000002", "a0000001"),
                                                        ("a0000001", "b0000002"))):
                app.accounts_screen.table.move_cursor(row=app.accounts_screen.table.get_row_index(account_id))
                await settle(pilot)
                await pilot.press("u")
                await settle(pilot)
                picker = app.screen
                assert isinstance(picker, ChoiceScreen)
                assert picker.options[0][0] == f"kiro-ide\t{ide}"
                label = picker.options[0][1]
                held_by = "a login kiro-tui has not seen" if other is None else store.get(other).email
                assert label.startswith("Kiro IDE") and label.endswith(f"now {held_by}"), label
                assert picker.options[-1][1] == "Another file…"
                assert "Use " in screen_text(app) and "Another file" in screen_text(app)  # fits at 80×24
                await pilot.press("enter")
                await settle(pilot)
                assert any(t.startswith("Use in:") and "is now the login in Kiro IDE" in t for t in toasts(app))
                login = place_format("kiro-ide").read_entry(ide, "", app.clock.now())
                assert login.refresh_token == store.get(account_id).refresh_token
                assert "In use by ● Kiro IDE" in detail(app), detail(app)
            # the login that was there first was imported, not lost
            assert len(app.accounts_screen.views) == 3


async def test_n_names_an_account_and_the_name_is_shown(tmp_path: Path, emulator) -> None:
    account = account_from_seed(emulator.seed(kind="social", email="carol@example.com"), "c0000003")
    with build_store(tmp_path / "s.db", [account]) as store:
        app = build_app(store, emulator.url, kiro_cli_db=None, candidates=[])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("n")
            await settle(pilot)
            assert isinstance(app.screen, NamePromptScreen)
            assert "One word" in screen_text(app)
            app.screen.query_one("#name", Input).value = "laptop"
            await pilot.press("enter")
            await settle(pilot)
            assert store.get("c0000003").nickname == "laptop"
            assert "Name: c0000003 is now called laptop." in toasts(app)
            assert "laptop" in screen_text(app) and "laptop  [c0000003]" in detail(app)
            assert "Email carol@example.com" in detail(app)
            await pilot.press("n")
            await settle(pilot)
            app.screen.query_one("#name", Input).value = "two words"
            await pilot.press("enter")
            await settle(pilot)
            assert any("use one word" in t for t in toasts(app)), toasts(app)
            assert store.get("c0000003").nickname == "laptop"
