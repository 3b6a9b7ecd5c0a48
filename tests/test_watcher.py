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


async def test_quota_is_fetched_a_few_a_pass_without_reading_every_account_each_pass(
        tmp_path: Path, emulator, emulator_time, http, monkeypatch) -> None:
    """The watch pass fetches quota USAGE_PER_PASS accounts at a time, oldest first, from a queue
    made once: a pass does not decode every account (a thousand, every 3 s, was most of
    `watch`'s idle CPU), and once all are fresh it looks again only when one can be stale."""
    from kiro_tui.core import quota
    from kiro_tui.demo import account_from_seed
    from tests.support.engine import at

    clock = ManualClock(at(emulator_time.now))
    with AccountStore.open(tmp_path / "accounts.db") as store:
        for i in range(10):
            store.save(account_from_seed(emulator.seed(kind="social", email=f"q{i}@example.com"), f"quota{i:03d}"))
        engine = Engine(store, Settings(), clock, Endpoints(override=emulator.url), None, fetch_usage=True)
        engine._http = http
        reads = []
        every = store.accounts
        monkeypatch.setattr(store, "accounts", lambda *a, **k: reads.append(1) or every(*a, **k))

        def calls() -> int:
            return len([r for r in emulator.requests() if r["operation"] == "GetUsageLimits"])

        seen = []
        for _ in range(4):
            await engine.watch_pass()
            seen.append(calls())
        per_pass = quota.USAGE_PER_PASS
        assert seen == [per_pass, 2 * per_pass, 10, 10]
        assert set(store.usage()) == {f"quota{i:03d}" for i in range(10)}
        reads_while_fresh = len(reads)
        for _ in range(3):
            await engine.watch_pass()  # all fresh: nothing fetched, no account decoded for quota
        assert calls() == 10 and len(reads) == reads_while_fresh
        clock.advance(quota.USAGE_MAX_AGE.total_seconds() + 1)
        await engine.watch_pass()
        assert calls() == 10 + per_pass  # stale again: fetched again, a few a pass
        await engine.close()


async def test_headless_watch_fetches_quota_hourly_not_every_ten_minutes(
        tmp_path: Path, emulator, emulator_time, http) -> None:
    from kiro_tui.core import quota
    from kiro_tui.demo import account_from_seed
    from tests.support.engine import at

    clock = ManualClock(at(emulator_time.now))
    with AccountStore.open(tmp_path / "accounts.db") as store:
        store.save(account_from_seed(emulator.seed(kind="social", email="h@example.com"), "headless"))
        engine = Engine(store, Settings(), clock, Endpoints(override=emulator.url), None, fetch_usage=True,
                        runner_kind="watch")
        engine._http = http

        def calls() -> int:
            return len([r for r in emulator.requests() if r["operation"] == "GetUsageLimits"])

        await engine.watch_pass()
        assert calls() == 1
        clock.advance(quota.USAGE_MAX_AGE.total_seconds() + 1)  # old enough for a window someone looks at
        await engine.watch_pass()
        assert calls() == 1
        store.update("headless", expires_at=clock.now() + quota.HEADLESS_USAGE_MAX_AGE)  # (as refreshes keep it)
        clock.advance((quota.HEADLESS_USAGE_MAX_AGE - quota.USAGE_MAX_AGE).total_seconds())
        await engine.watch_pass()
        assert calls() == 2
        await engine.close()
