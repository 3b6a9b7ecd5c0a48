"""Snapshots of the main screens, with a frozen clock and fixed tokens so they are stable.

Regenerate after a deliberate change with `pytest tests/test_tui_snapshots.py --snapshot-update`,
and read snapshot_report.html before committing the new SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.models import UsageRecord
from kiro_tui.demo import IDC_PROFILES, account_from_seed
from kiro_tui.tui.screens.device_code import DeviceCodeScreen
from kiro_tui.tui.widgets.accounts_table import AccountsTable
from tests.support.engine import at, control
from tests.support.tui import NOW, build_app, build_store, settle

SIZE = (150, 40)


@pytest.fixture
def store(tmp_path: Path):
    with build_store(tmp_path / "store.db") as opened:
        yield opened


def test_accounts_screen_with_mixed_states(snap_compare, store) -> None:
    assert snap_compare(build_app(store), terminal_size=SIZE, run_before=settle)


def test_detail_panel_with_usage(snap_compare, store) -> None:
    store.save_usage("c3d4e5f6", UsageRecord(212.5, 1000.0, at(NOW.timestamp() + 8 * 86400), "KIRO PRO", NOW))

    async def select_team(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        screen = pilot.app.screen
        table = screen.query_one(AccountsTable)
        table.move_cursor(row=table.get_row_index("c3d4e5f6"))
        await settle(pilot)

    assert snap_compare(build_app(store), terminal_size=SIZE, run_before=select_team)


def test_empty_state(snap_compare, tmp_path: Path) -> None:
    candidates = [Path("/home/dev/.local/share/kiro-cli/data.sqlite3"),
                  Path("/home/dev/.local/share/amazon-q/data.sqlite3")]
    with build_store(tmp_path / "empty.db", []) as empty:
        app = build_app(empty, kiro_cli_db=None, candidates=candidates)
        assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_login_code_screen(snap_compare, tmp_path: Path, emulator, emulator_time) -> None:
    control(emulator, "config", {"next_user_codes": ["WDJB-MJHT"],
                                 "verification_uri": "https://device.sso.us-east-1.amazonaws.com/"})
    with build_store(tmp_path / "s.db", []) as empty:
        app = build_app(empty, emulator.url, clock=ManualClock(at(emulator_time.now)))

        async def start_login(pilot) -> None:  # type: ignore[no-untyped-def]
            await settle(pilot)
            await pilot.press("l")
            await pilot.pause()
            await pilot.press("enter")
            for _ in range(100):
                screen = pilot.app.screen
                if isinstance(screen, DeviceCodeScreen) and screen.login is not None:
                    break
                await pilot.pause(0.02)
            await pilot.pause(0.1)

        assert snap_compare(app, terminal_size=SIZE, run_before=start_login)


def test_profile_picker(snap_compare, tmp_path: Path, emulator, emulator_time) -> None:
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

        assert snap_compare(app, terminal_size=SIZE, run_before=open_picker)
