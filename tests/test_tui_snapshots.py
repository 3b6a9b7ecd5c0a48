"""Snapshots of the main screens at 80, 120 and 160 columns, with a frozen clock and fixed tokens
so they are stable.

Regenerate after a deliberate change with `pytest tests/test_tui_snapshots.py --snapshot-update`,
and look at the new SVGs (snapshot_report.html, or `rsvg-convert x.svg -o x.png`) before
keeping them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.models import Place, PlaceRole, UsageRecord
from kiro_tui.demo import IDC_PROFILES, account_from_seed
from kiro_tui.tui.screens.choice import LoadingChoiceScreen
from kiro_tui.tui.screens.device_code import DeviceCodeScreen
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from tests.support.engine import at, control
from tests.support.tui import NOW, build_app, build_store, settle
from tests.test_tui_layout import every_status_store

WIDTHS = (80, 120, 160)
HEIGHT = 40


@pytest.fixture
def store(tmp_path: Path):
    with every_status_store(tmp_path / "store.db") as opened:
        yield opened


@pytest.mark.parametrize("width", WIDTHS)
def test_accounts_in_every_status(snap_compare, store, width: int) -> None:
    """fresh, expiring, expired, refreshing, retrying, NEEDS LOGIN, suspended, quota low, over
    quota; usage bars (one stale); the columns that fit this width; the footer's keys."""
    assert snap_compare(build_app(store), terminal_size=(width, HEIGHT), run_before=settle)


def test_detail_panel_with_usage(snap_compare, tmp_path: Path) -> None:
    with build_store(tmp_path / "store.db") as store:
        store.save_usage("c3d4e5f6", UsageRecord(212.5, 1000.0, at(NOW.timestamp() + 8 * 86400), "KIRO PRO", NOW))

        async def select_team(pilot) -> None:  # type: ignore[no-untyped-def]
            await settle(pilot)
            table = pilot.app.screen.query_one(AccountsTable)
            table.move_cursor(row=table.get_row_index("c3d4e5f6"))
            await settle(pilot)

        assert snap_compare(build_app(store), terminal_size=(120, HEIGHT), run_before=select_team)


def test_empty_state(snap_compare, tmp_path: Path) -> None:
    candidates = [Path("/home/dev/.local/share/kiro-cli/data.sqlite3"),
                  Path("/home/dev/.local/share/amazon-q/data.sqlite3")]
    with build_store(tmp_path / "empty.db", []) as empty:
        app = build_app(empty, kiro_cli_db=None, candidates=candidates)
        assert snap_compare(app, terminal_size=(120, HEIGHT), run_before=settle)


@pytest.mark.parametrize("width", WIDTHS)
def test_login_code_screen(snap_compare, tmp_path: Path, emulator, emulator_time, width: int) -> None:
    """The code as text and in large type, what was done with the clipboard, the countdown."""
    control(emulator, "config", {"next_user_codes": ["WDJB-MJHT"],
                                 "verification_uri": "https://device.sso.us-east-1.amazonaws.com/"})
    with build_store(tmp_path / "s.db", []) as empty:
        app = build_app(empty, emulator.url, clock=ManualClock(at(emulator_time.now)))

        async def start_login(pilot) -> None:  # type: ignore[no-untyped-def]
            await settle(pilot)
            await pilot.press("l")
            await pilot.pause()
            await pilot.press("enter")
            for _ in range(200):  # the code comes from the emulator, over loopback HTTP
                screen = pilot.app.screen
                if isinstance(screen, DeviceCodeScreen) and screen.login is not None:
                    break
                await pilot.pause(0.02)
            await pilot.pause()

        assert snap_compare(app, terminal_size=(width, HEIGHT), run_before=start_login)


@pytest.mark.parametrize("width", WIDTHS)
def test_profile_picker(snap_compare, tmp_path: Path, emulator, emulator_time, width: int) -> None:
    """Every profile with its region and ARN, the one in use marked; the dialog's own keys."""
    seeded = emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1", profiles=IDC_PROFILES,
                           start_url="https://d-9067c1a2b3.awsapps.com/start",
                           access_token="aoaAAAAAGsnapshotaccess:fixed", refresh_token="aorAAAAAGsnapshotrefresh:fixed")
    account = account_from_seed(seeded, "c3d4e5f6")
    account.client_secret = "fixed-secret"
    account.client_id = "fixed-client"
    with build_store(tmp_path / "s.db", [account]) as store:
        app = build_app(store, emulator.url, clock=ManualClock(at(emulator_time.now)))

        async def open_picker(pilot) -> None:  # type: ignore[no-untyped-def]
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            assert isinstance(pilot.app.screen, LoadingChoiceScreen) and pilot.app.screen.options

        assert snap_compare(app, terminal_size=(width, HEIGHT), run_before=open_picker)


SMALL = (80, 24)
"""The standard terminal: every screen and dialog must fit or scroll within it."""


def test_80x24_accounts(snap_compare, store) -> None:
    assert snap_compare(build_app(store), terminal_size=SMALL, run_before=settle)


def test_80x24_copies_menu_scrolled_to_its_last_unlink(snap_compare, tmp_path: Path) -> None:
    """The `x` menu of an account linked in three files: End shows (and highlights) the last row."""
    with build_store(tmp_path / "store.db") as store:
        with store.transaction() as tx:
            for n in range(3):
                store.save_place(tx, Place("a1b2c3d4", "cliproxy", f"/srv/proxy/kiro-{n}.json", "",
                                           role=PlaceRole.LINK))

        async def open_menu(pilot) -> None:  # type: ignore[no-untyped-def]
            await settle(pilot)
            await pilot.press("x")
            await settle(pilot)
            await pilot.press("end")
            await pilot.pause()

        assert snap_compare(build_app(store), terminal_size=SMALL, run_before=open_menu)


def test_80x24_login_form(snap_compare, store) -> None:
    async def open_form(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)

    assert snap_compare(build_app(store), terminal_size=SMALL, run_before=open_form)


def test_80x24_unlink_asks_first(snap_compare, tmp_path: Path) -> None:
    with build_store(tmp_path / "store.db") as store:
        with store.transaction() as tx:
            store.save_place(tx, Place("a1b2c3d4", "cliproxy", "/srv/proxy/kiro-0.json", "", role=PlaceRole.LINK))

        async def ask(pilot) -> None:  # type: ignore[no-untyped-def]
            await settle(pilot)
            await pilot.press("x")
            await settle(pilot)
            await pilot.press("end", "enter")
            await settle(pilot)

        assert snap_compare(build_app(store), terminal_size=SMALL, run_before=ask)
