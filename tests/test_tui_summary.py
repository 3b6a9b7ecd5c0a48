"""The summary line says what the engine knows of kiro-cli's database: where it is, when the
engine read it, why it could not. The app keeps no copy of it (issue 25): the screen asks the
engine (`Engine.kiro_cli_state`) with every full read and after every import."""

from __future__ import annotations

from pathlib import Path

from kiro_tui.tui import format as fmt
from tests.support.engine import seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.tui import build_app, build_store, settle, watch_pass

SIZE = (200, 30)


def summary(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.screen.query_one("#summary").render())


async def test_the_summary_names_a_database_the_engine_found_after_start(tmp_path: Path, emulator) -> None:
    db_path = tmp_path / "kiro-cli" / "data.sqlite3"
    with build_store(tmp_path / "s.db", []) as store:
        app = build_app(store, emulator.url, kiro_cli_db=None, candidates=[db_path])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert "kiro-cli: no database found" in summary(app)
            assert str(db_path) in str(app.screen.query_one("#empty").render())  # where it looked
            seed_into_kiro_cli(emulator, KiroCliDb(db_path), kind="social", email="cli@example.com")
            await watch_pass(pilot)  # the engine finds it and imports its login
            assert len(app.accounts_screen.views) == 1
            assert f"kiro-cli: {fmt.home_relative(db_path)}, read now" in summary(app), summary(app)


async def test_the_summary_says_when_kiro_clis_database_cannot_be_read_and_when_it_can_again(
        tmp_path: Path, emulator) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="cli@example.com")
    good = db.path.read_bytes()
    with build_store(tmp_path / "s.db", []) as store:
        app = build_app(store, emulator.url, kiro_cli_db=db.path, candidates=[db.path])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await watch_pass(pilot)
            assert f"kiro-cli: {fmt.home_relative(db.path)}, read now" in summary(app), summary(app)
            db.path.write_bytes(b"this is not a database, and longer than the header")
            await watch_pass(pilot)  # the automatic re-read fails: the engine says why
            assert f"kiro-cli: {fmt.home_relative(db.path)} (unreadable: " in summary(app), summary(app)
            assert len(app.accounts_screen.views) == 1  # the account it held is kept
            db.path.write_bytes(good)
            await watch_pass(pilot)
            assert "unreadable: " not in summary(app) and ", read now" in summary(app), summary(app)
