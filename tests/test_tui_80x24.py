"""80x24 is the standard terminal: every dialog fits in it (or scrolls within it), with its rows
and buttons on screen, as a person sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Button, OptionList
from textual.widgets._footer import FooterKey

from kiro_tui.core.models import Place, PlaceRole
from kiro_tui.demo import IDC_PROFILES, account_from_seed
from kiro_tui.tui.screens.choice import ChoiceScreen, LoadingChoiceScreen
from kiro_tui.tui.screens.confirm import ConfirmScreen
from kiro_tui.tui.screens.help import HelpScreen
from kiro_tui.tui.screens.login_form import LoginFormScreen
from kiro_tui.tui.screens.path_prompt import PathPromptScreen
from tests.support.places import seed, write_cliproxy
from tests.support.tui import build_app, build_store, screen_text, settle

SIZE = (80, 24)
LINKS = [f"/srv/proxy/kiro-{n}.json" for n in range(4)]


@pytest.fixture
def store(tmp_path: Path):
    """The sample accounts; alice's login is linked into four CLIProxyAPI files."""
    with build_store(tmp_path / "s.db") as opened:
        with opened.transaction() as tx:
            for path in LINKS:
                opened.save_place(tx, Place("a1b2c3d4", "cliproxy", path, "", role=PlaceRole.LINK))
        yield opened


def linked(store) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.path for p in store.places("a1b2c3d4") if p.role is PlaceRole.LINK)


def within_screen(app, widget: Widget) -> bool:  # type: ignore[no-untyped-def]
    """Drawn whole: inside the screen and inside every container above it (nothing clipped)."""
    region = widget.region
    if region.area == 0:
        return False
    for ancestor in widget.ancestors:  # inside their borders and padding
        if isinstance(ancestor, Widget) and not ancestor.content_region.contains_region(region):
            return False
    return app.screen.region.contains_region(region)


def highlighted_row_shown(app) -> str:  # type: ignore[no-untyped-def]
    """The highlighted option's words, asserting they are drawn on screen."""
    choices = app.screen.query_one("#choices", OptionList)
    assert within_screen(app, choices), choices.region
    label = str(choices.get_option_at_index(choices.highlighted).prompt).strip()
    assert label[:25] in screen_text(app), (label, screen_text(app))  # a long row wraps after that
    return label


def buttons_shown(app) -> list[str]:  # type: ignore[no-untyped-def]
    buttons = list(app.screen.query(Button))
    assert buttons and all(within_screen(app, button) for button in buttons), [b.region for b in buttons]
    return [str(button.label) for button in buttons]


async def test_the_x_menu_shows_its_last_unlink_row_and_unlinking_asks_first(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        assert highlighted_row_shown(app).startswith("Link to")
        await pilot.press("end")
        await pilot.pause()
        assert highlighted_row_shown(app).endswith(LINKS[-1])  # the row End went to is there to see
        assert f"Unlink CLIProxyAPI  {LINKS[-1]}" in screen_text(app)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)  # not unlinked yet
        assert "Stop keeping /srv/proxy/kiro-3.json fresh for alice@example.com?" in screen_text(app)
        assert buttons_shown(app) == ["Unlink (y)", "Cancel (n)"]
        await pilot.press("n")
        await settle(pilot)
        assert linked(store) == LINKS  # "no" keeps the link
        await pilot.press("x", "end", "enter")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert linked(store) == LINKS[:-1]


async def test_a_taller_terminal_shows_the_whole_x_menu_without_scrolling(store) -> None:
    app = build_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        choices = app.screen.query_one("#choices", OptionList)
        assert choices.max_scroll_y > 0  # 14 rows do not fit in 24 lines: the list scrolls
        await pilot.resize_terminal(80, 40)
        await settle(pilot)
        await pilot.pause()
        assert choices.max_scroll_y == 0 and within_screen(app, choices)  # grown back: every row shown
        assert all(path in screen_text(app) for path in LINKS)


async def test_the_login_form_shows_its_buttons(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, LoginFormScreen)
        assert buttons_shown(app) == ["Log in", "Cancel"]
        text = screen_text(app)
        assert "Enter logs in from either field; Tab moves between them." in text
        assert "Region of your Identity Center" in text


@pytest.mark.parametrize(("key", "confirm"), [("c", "Copy (y)"), ("delete", "Remove (y)")])
async def test_confirmations_show_their_buttons(store, key: str, confirm: str) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert buttons_shown(app) == [confirm, "Cancel (n)"]


async def test_the_mode_and_fix_pickers_show_every_option(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        assert all(within_screen(app, w) for w in app.screen.query(".dialog > *"))
        for mode in ("sync —", "follow —", "own —"):
            assert mode in screen_text(app)
        await pilot.press("escape")
        table = app.accounts_screen.table  # dave needs a login: enter offers the fixes
        table.move_cursor(row=table.get_row_index("d4e5f6a7"))
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        assert "Log in again with a device code" in screen_text(app)
        assert all(within_screen(app, w) for w in app.screen.query(".dialog > *"))


async def test_the_link_path_prompt_and_help_fit(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x", "enter")  # Link to the Kiro IDE
        await settle(pilot)
        assert isinstance(app.screen, PathPromptScreen)
        assert all(within_screen(app, w) for w in app.screen.query(".dialog > *"))
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        dialog = app.screen.query_one(".dialog")
        assert app.screen.region.contains_region(dialog.region) and dialog.max_scroll_y > 0  # scrolls within
        lines = screen_text(app).splitlines()
        wrapped = lines.index(next(line for line in lines if "l        Log in with a device code" in line)) + 1
        assert lines[wrapped].split("█")[1].split()[0] == "Center"  # a long description wraps under itself
        assert lines[wrapped].index("Center") == lines[wrapped - 1].index("Log in")
        dialog.scroll_end(animate=False)
        await pilot.pause()
        assert "own     refresh independently" in screen_text(app)


async def test_the_import_and_profile_pickers_fit(tmp_path: Path, isolated_dirs: Path, emulator, monkeypatch) -> None:
    for variable in ("KIRO_CREDS_FILE", "ACCOUNTS_CONFIG_FILE", "KIRO_CLI_DB_FILE"):
        monkeypatch.delenv(variable, raising=False)
    write_cliproxy(isolated_dirs / ".cli-proxy-api", seed(emulator, "builder-id"))
    with build_store(tmp_path / "s.db", []) as store:
        seeded = emulator.seed(kind="idc", email="p@example.com", region="eu-west-1", profiles=IDC_PROFILES)
        store.save(account_from_seed(seeded, "11112222"))
        app = build_app(store, emulator.url, kiro_cli_db=None, candidates=[])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            assert isinstance(app.screen, ChoiceScreen)
            assert "Not looked for: AIClient-2-API, kiro-gateway" in screen_text(app)  # said plainly
            await pilot.press("end")
            await pilot.pause()
            assert highlighted_row_shown(app).startswith("Everything above")
            await pilot.press("escape")
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            assert isinstance(app.screen, LoadingChoiceScreen)
            await pilot.press("end")
            await pilot.pause()
            assert "Team" in highlighted_row_shown(app)


# ---------------------------------------------------------------- the footer at 80 columns


def footer_keys(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [key.key_display for key in app.screen.query(FooterKey)]


async def test_the_footer_puts_copies_ahead_of_keys_learned_once_and_esc_while_filtering(store) -> None:
    app = build_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        keys = footer_keys(app)
        assert {"r", "x", "?", "q"} <= set(keys) and "del" not in keys, keys
        assert "/" not in keys or keys.index("x") < keys.index("/"), keys
        await pilot.press("slash", "a", "l", "i", "enter")  # "ali": only alice
        await settle(pilot)
        await pilot.pause()
        keys = footer_keys(app)
        assert "esc" in keys and {"x", "?", "q"} <= set(keys), keys
        await pilot.press("escape")
        await settle(pilot)
        await pilot.pause()
        assert "esc" not in footer_keys(app)


async def test_p_shows_at_80_columns_on_an_account_with_several_profiles(tmp_path: Path, emulator) -> None:
    with build_store(tmp_path / "s.db", []) as store:
        store.save(account_from_seed(emulator.seed(kind="idc", email="two@example.com", region="eu-west-1",
                                                   profiles=IDC_PROFILES), "11112222"))
        store.save(account_from_seed(emulator.seed(kind="social", email="one@example.com"), "33334444"))
        app = build_app(store, emulator.url, fetch_usage=True)
        async with app.run_test(size=(60, 24)) as pilot:  # narrower still: p claims its room first
            table = app.accounts_screen.table
            for account_id, shown in (("11112222", True), ("33334444", False), ("11112222", True)):
                await settle(pilot)
                table.move_cursor(row=table.get_row_index(account_id))
                await settle(pilot)
                await pilot.pause()
                assert ("p" in footer_keys(app)) is shown, (account_id, footer_keys(app))
                assert {"r", "?", "q"} <= set(footer_keys(app))
            await pilot.resize_terminal(80, 24)
            await settle(pilot)
            await pilot.pause()
            assert "p" in footer_keys(app)


async def test_the_device_code_screen_fits(tmp_path: Path, emulator, emulator_time) -> None:
    from kiro_tui.core.clock import ManualClock
    from kiro_tui.tui.screens.device_code import DeviceCodeScreen
    from tests.support.engine import at, control

    control(emulator, "config", {"next_user_codes": ["WDJB-MJHT"]})
    with build_store(tmp_path / "s.db", []) as empty:
        app = build_app(empty, emulator.url, clock=ManualClock(at(emulator_time.now)))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("l", "enter")
            for _ in range(200):  # the code comes from the emulator, over loopback HTTP
                if isinstance(app.screen, DeviceCodeScreen) and app.screen.login is not None:
                    break
                await pilot.pause(0.02)
            await pilot.pause()
            text = screen_text(app)
            for words in ("WDJB-MJHT", "The code expires in 10 minutes.", "Waiting for you to approve",
                          "esc Back"):
                assert words in text, (words, text)
            await pilot.press("escape")
