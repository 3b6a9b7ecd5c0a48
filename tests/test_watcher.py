"""The kiro-cli watcher: cheap change detection, re-import, healing."""

from __future__ import annotations

from pathlib import Path

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.importer import mark_refresh_token_dead
from kiro_tui.core.models import Health, Mode
from kiro_tui.core.store import AccountStore
from kiro_tui.core.watcher import KiroCliWatcher
from tests.support.kiro_cli_db import KiroCliDb


async def test_reimports_only_on_change_and_heals_needs_login(tmp_path: Path, kiro_db: KiroCliDb) -> None:
    kiro_db.put_oidc()
    reports = []
    with AccountStore.open(tmp_path / "accounts.db") as store:
        watcher = KiroCliWatcher(store, kiro_db.path, ManualClock(), Settings(), on_import=reports.append)
        first = await watcher.check()
        assert first is not None and [i.action for i in first.imported] == ["added"]
        assert await watcher.check() is None  # nothing changed: not even read
        (account,) = store.accounts()
        account.health, account.last_error = Health.NEEDS_LOGIN, "refresh token invalid: log in again"
        mark_refresh_token_dead(account)
        store.save(account)
        kiro_db.put_oidc()  # kiro-cli logs in again
        healed = await watcher.check()
        assert healed is not None and [i.action for i in healed.imported] == ["updated"]
        assert store.get(account.id).health is Health.OK  # type: ignore[union-attr]
        assert len(reports) == 2


async def test_own_accounts_are_left_alone_by_automatic_imports(tmp_path: Path, kiro_db: KiroCliDb) -> None:
    kiro_db.put_social()
    with AccountStore.open(tmp_path / "accounts.db") as store:
        watcher = KiroCliWatcher(store, kiro_db.path, ManualClock(), Settings(), on_import=None)
        await watcher.check()
        (account,) = store.accounts()
        store.update(account.id, mode=Mode.OWN)
        written = kiro_db.put_social()
        report = await watcher.check()
        assert report is not None and report.imported[0].note == "own mode: refreshed by kiro-tui"
        assert store.get(account.id).access_token != written["access_token"]  # type: ignore[union-attr]


async def test_missing_or_broken_database_is_reported_not_raised(tmp_path: Path) -> None:
    errors = []
    missing = tmp_path / "nope" / "data.sqlite3"
    with AccountStore.open(tmp_path / "accounts.db") as store:
        watcher = KiroCliWatcher(store, missing, ManualClock(), Settings(), on_error=errors.append)
        assert await watcher.check() is None and errors == []
        missing.parent.mkdir()
        missing.write_bytes(b"garbage" * 100)
        assert await watcher.check() is None
        assert "not a SQLite database" in str(errors[0])
