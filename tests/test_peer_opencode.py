"""opencode-kiro-auth and sync mode (issue 21, finding 2), with a stand-in of the plugin's own
import of kiro-cli (tests/support/standins.py `opencode_sync_from_kiro_cli`: its upsert, its
swallowed error): what sync mode keeps fresh is kiro-cli's row, which the plugin reads; a row the
plugin already has in kiro.db keeps its spent refresh token, as docs/places.md says."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.models import Outcome
from kiro_tui.core.store import AccountStore
from tests.support.engine import at, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.places import login_of, opencode_row, write_opencode
from tests.support.standins import opencode_sync_from_kiro_cli

EMAIL = "oc@example.com"


@pytest.fixture
async def engine(tmp_path: Path, emulator, emulator_time, http, endpoints):
    kiro_cli_db = tmp_path / "kiro-cli" / "data.sqlite3"
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        yield Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, kiro_cli_db, http=http,
                     fetch_usage=False)


def _held(opencode_db: Path) -> list[str]:
    with sqlite3.connect(opencode_db) as conn:
        return [token for (token,) in conn.execute("SELECT refresh_token FROM accounts")]


def _live(emulator) -> list[str]:  # type: ignore[no-untyped-def]
    with emulator.app.lock:
        return [token for token, grant in emulator.state.refresh_grants.items() if grant.email == EMAIL]


async def test_sync_mode_keeps_kiro_clis_row_fresh_and_the_plugins_own_row_stays_spent(
        engine: Engine, emulator, emulator_time, tmp_path: Path) -> None:
    # A login made in the plugin: its row in kiro.db, and the same token written into kiro-cli's row.
    db = KiroCliDb(engine.kiro_cli_db)
    seeded = seed_into_kiro_cli(emulator, db, kind="social", email=EMAIL)
    first = seeded["token"]["refresh_token"]
    opencode_db = write_opencode(tmp_path / "opencode" / "kiro.db", [opencode_row(login_of(seeded))])
    (item,) = (await engine.import_now(engine.kiro_cli_db)).imported
    await engine.import_now(opencode_db, "opencode")

    emulator_time.advance(3000)
    engine.clock.advance(3000)
    (result,) = await engine.refresh_now([item.id])
    assert result.outcome is Outcome.REFRESHED
    (live,) = _live(emulator)

    # The plugin starts again and imports kiro-cli's logins: its upsert of the row it has fails.
    swallowed = opencode_sync_from_kiro_cli(engine.kiro_cli_db, opencode_db, EMAIL)

    assert swallowed == ["UNIQUE constraint failed: accounts.id"]
    assert _held(opencode_db) == [first] != [live]  # spent: the service no longer takes it
    assert engine.store.get(item.id).refresh_token == live  # kiro-cli's row holds it too (sync)
    places = {p.kind: p for p in engine.store.places(item.id)}
    views = (await engine.views([item.id])).views
    holds = (await engine.holdings(views)).states  # what `list --json` says: kiro-tui never writes kiro.db
    assert holds[places["opencode"].address] == "older" and holds[places["kiro-cli"].address] == "current"


async def test_a_login_the_plugin_reads_from_kiro_cli_for_the_first_time_is_fresh(
        engine: Engine, emulator, emulator_time, tmp_path: Path) -> None:
    db = KiroCliDb(engine.kiro_cli_db)
    seed_into_kiro_cli(emulator, db, kind="social", email=EMAIL)
    (item,) = (await engine.import_now(engine.kiro_cli_db)).imported
    emulator_time.advance(3000)
    engine.clock.advance(3000)
    await engine.refresh_now([item.id])
    opencode_db = write_opencode(tmp_path / "opencode" / "kiro.db", [])

    assert opencode_sync_from_kiro_cli(engine.kiro_cli_db, opencode_db, EMAIL) == []
    assert _held(opencode_db) == _live(emulator)
