"""The engine's watch pass: cheap change detection of kiro-cli's database, re-import, healing."""

from __future__ import annotations

from pathlib import Path

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.events import AccountsChanged, ImportFailed, ImportFinished
from kiro_tui.core.importer import mark_refresh_token_dead
from kiro_tui.core.models import Health, Mode
from kiro_tui.core.store import AccountStore
from tests.support.kiro_cli_db import KiroCliDb


def engine_for(store: AccountStore, db: Path, events: list) -> Engine:
    return Engine(store, Settings(), ManualClock(), Endpoints(override="http://127.0.0.1:9"), db,
                  on_event=events.append, fetch_usage=False)


def imports(events: list) -> list[ImportFinished]:
    return [e for e in events if isinstance(e, ImportFinished)]


async def test_reimports_only_on_change_and_heals_needs_login(tmp_path: Path, kiro_db: KiroCliDb, http) -> None:
    kiro_db.put_oidc()
    events: list = []
    with AccountStore.open(tmp_path / "accounts.db") as store:
        engine = engine_for(store, kiro_db.path, events)
        engine._http = http
        await engine.watch_pass()
        (first,) = imports(events)
        assert first.automatic and [i.action for i in first.report.imported] == ["added"]
        await engine.watch_pass()
        assert len(imports(events)) == 1  # nothing changed: not even read
        (account,) = store.accounts()
        account.health, account.last_error = Health.NEEDS_LOGIN, "refresh token invalid: log in again"
        mark_refresh_token_dead(account)
        store.save(account)
        kiro_db.put_oidc()  # kiro-cli logs in again
        await engine.watch_pass()
        healed = imports(events)[-1]
        assert [i.action for i in healed.report.imported] == ["updated"]
        assert store.get(account.id).health is Health.OK  # type: ignore[union-attr]


async def test_own_accounts_are_left_alone_by_automatic_imports(tmp_path: Path, kiro_db: KiroCliDb, http) -> None:
    kiro_db.put_social()
    events: list = []
    with AccountStore.open(tmp_path / "accounts.db") as store:
        engine = engine_for(store, kiro_db.path, events)
        engine._http = http
        await engine.watch_pass()
        (account,) = store.accounts()
        store.update(account.id, mode=Mode.OWN)
        written = kiro_db.put_social()
        await engine.watch_pass()
        report = imports(events)[-1].report
        assert report.imported[0].note == "own mode: refreshed by kiro-tui"
        assert store.get(account.id).access_token != written["access_token"]  # type: ignore[union-attr]


async def test_missing_or_broken_database_is_reported_not_raised(tmp_path: Path, http) -> None:
    events: list = []
    missing = tmp_path / "nope" / "data.sqlite3"
    with AccountStore.open(tmp_path / "accounts.db") as store:
        engine = engine_for(store, missing, events)
        engine._http = http
        await engine.watch_pass()
        assert events == []
        missing.parent.mkdir()
        missing.write_bytes(b"garbage" * 100)
        await engine.watch_pass()
        (failed,) = [e for e in events if isinstance(e, ImportFailed)]
        assert failed.automatic and "not a SQLite database" in failed.error
        assert engine.watch_error is not None


async def test_views_between_two_passes_do_not_hide_another_processs_change(
        tmp_path: Path, kiro_db: KiroCliDb, http) -> None:
    """What the watch pass compares another process's commit with is its own: a presenter reading
    the accounts (`views`) in between changes nothing it reports."""
    kiro_db.put_oidc()
    events: list = []
    with AccountStore.open(tmp_path / "accounts.db") as store:
        engine = engine_for(store, kiro_db.path, events)
        engine._http = http
        await engine.watch_pass()
        (account,) = store.accounts()
        with AccountStore.open(tmp_path / "accounts.db") as other:  # another kiro-tui process
            other.update(account.id, email="someone@example.com")
        await engine.views()  # the TUI repaints meanwhile
        events.clear()
        await engine.watch_pass()
        assert [e.ids for e in events if isinstance(e, AccountsChanged)] == [frozenset({account.id})]
