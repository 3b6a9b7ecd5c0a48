"""Issue 10, the refresh path under faults: a token the service handed over is never lost, no
account is refreshed in a storm, and the engine never stops without a word.

Real SQLite stores, the emulator over loopback (strict rotation: a spent refresh token dies at
once, so "the login is alive" is checked by refreshing it again), and the installed `kiro-tui`
where the item is about a command. New interfaces (Engine.stop, Refresher.commit_held, places)
are imported inside the tests that use them, so the module also loads on older code.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from kiro_tui.core.config import Settings
from kiro_tui.core.identity import is_dead_refresh_token
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Health, Outcome, Status
from kiro_tui.core.refresh import Refresher
from kiro_tui.core.scheduler import RefreshScheduler
from kiro_tui.core.store import AccountStore
from tests.support.engine import control, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.refresh_rig import Rig
from tests.support.run import run_cli
from tests.support.watch import (
    Watch,
    refresh_request_arrives,
    wait_for_answers,
    watch_config,
)

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------------------------------- helpers


def store_path(isolated_dirs: Path) -> Path:
    return isolated_dirs / "data" / "kiro-tui" / "accounts.db"


# ------------------------------------------------------------------ 1. shutdown mid-refresh


def test_sigterm_mid_refresh_waits_commits_and_the_login_lives(kiro_tui_exe, isolated_dirs, kiro_db: KiroCliDb,
                                                               live_emulator) -> None:
    env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}
    seeded = seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="term@example.com", expires_in=300)
    assert run_cli(kiro_tui_exe, "import", env=env).code == 0
    (row,) = json.loads(run_cli(kiro_tui_exe, "list", "--json").out)
    watch_config(isolated_dirs)
    arrived = refresh_request_arrives(live_emulator)
    control(live_emulator, "faults", {"latency_ms": 3000})
    watch = Watch(kiro_tui_exe, env)
    try:
        watch.wait_for_line("expiring → refreshing")
        assert arrived.wait(30), "the refresh never reached the emulator"
        watch.proc.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=60) == 0, watch.err
    finally:
        watch.kill()
    assert "Traceback" not in watch.err
    answered = wait_for_answers(live_emulator, "RefreshToken")
    assert [r["status"] for r in answered] == [200]  # the service rotated: the old token is dead now
    with AccountStore.open(store_path(isolated_dirs)) as store:
        account = store.get(row["id"])
        assert account is not None and account.refresh_token != seeded["token"]["refresh_token"]
        live = account.refresh_token
    assert kiro_db.get_json("auth_kv", "kirocli:social:token")["refresh_token"] == live  # sync mode wrote it too
    control(live_emulator, "faults", {"latency_ms": 0})
    again = run_cli(kiro_tui_exe, "refresh", row["id"], "--json", env=env)
    (item,) = json.loads(again.out)
    assert (again.code, item["outcome"], item["status"]) == (0, "refreshed", "fresh"), again.out
    assert f"stopping: waiting for 1 refresh under way to finish ({row['id']})" in watch.err  # it did wait


def test_second_signal_while_draining_abandons_and_names_the_account(kiro_tui_exe, isolated_dirs,
                                                                     kiro_db: KiroCliDb, live_emulator) -> None:
    env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}
    seed_into_kiro_cli(live_emulator, kiro_db, kind="social", email="twice@example.com", expires_in=300)
    assert run_cli(kiro_tui_exe, "import", env=env).code == 0
    (row,) = json.loads(run_cli(kiro_tui_exe, "list", "--json").out)
    watch_config(isolated_dirs)
    arrived = refresh_request_arrives(live_emulator)
    control(live_emulator, "faults", {"latency_ms": 20000})  # long enough that only the second signal ends it
    watch = Watch(kiro_tui_exe, env)
    try:
        watch.wait_for_line("expiring → refreshing")
        assert arrived.wait(30)
        watch.proc.send_signal(signal.SIGTERM)
        watch.wait_for_line("stopping: waiting for 1 refresh under way to finish")
        assert row["id"] in watch.err.split("stopping: waiting for", 1)[1]
        assert watch.proc.poll() is None  # still waiting for the answer
        watch.proc.send_signal(signal.SIGINT)
        assert watch.wait(timeout=15) == 0, watch.err
    finally:
        control(live_emulator, "faults", {"latency_ms": 0})
        watch.kill()
    abandoned = [line for line in watch.lines if "abandoned the refresh of" in line]
    assert len(abandoned) == 1 and row["id"] in abandoned[0], watch.err
    assert "Traceback" not in watch.err


async def test_engine_stop_waits_for_the_refresh_in_flight(rig: Rig) -> None:
    from kiro_tui.core.engine import Engine

    account_id, seeded = rig.add_own(kind="social", email="engine-stop@example.com")
    rig.make_due(account_id)
    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, fetch_usage=False)
    await engine.start()
    arrived = refresh_request_arrives(rig.emulator)
    control(rig.emulator, "faults", {"latency_ms": 1500})
    asked = asyncio.create_task(engine.refresh_now([account_id]))
    for _ in range(3000):
        if arrived.is_set():
            break
        await asyncio.sleep(0.01)
    assert arrived.is_set() and engine.scheduler is not None and engine.scheduler.in_flight == {account_id}
    left = await engine.stop()
    assert left == []
    account = rig.store.get(account_id)  # committed by the time stop() returns
    assert account is not None and account.refresh_token != seeded["token"]["refresh_token"]
    (result,) = await asyncio.wait_for(asked, 5)
    assert result.outcome == "refreshed"
    assert [r["status"] for r in rig.refresh_calls()] == [200]
    control(rig.emulator, "faults", {"latency_ms": 0})
    rig.clock.advance(3600)
    again = await rig.new_refresher().refresh(account_id, force=True)
    assert again.outcome == "refreshed", again.message


# ------------------------------------------------------------------ 2. a failed save never drops the token


def fill_to_the_brim(store: AccountStore) -> None:
    """Disk full, as SQLite sees it: no page may be added (`max_page_count`, for the store's
    connection and its writer's), and the free space left in the pages of every table a refresh
    writes is used up by filler rows of decreasing size, until even an empty row fails with
    SQLITE_FULL."""
    connection = store.connection
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    set_page_limit(store, pages)
    fillers = (
        "INSERT INTO preferences (key, value) VALUES (?, ?)",
        "INSERT INTO refresh_log (account_id, at, outcome, message) VALUES (?, '', '', ?)",
        "INSERT INTO lineage (fingerprint, account_id, at) VALUES (?, 'filler', ?)",
    )
    connection.execute("PRAGMA foreign_keys = OFF")  # filler rows belong to no account
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        n = 64 + sum(connection.execute(f"SELECT count(*) FROM {sql.split()[2]}").fetchone()[0]  # past the
                     for sql in fillers if sql.split()[2] in tables)  # numbers of an earlier fill: a store may fill twice
        for sql in fillers:
            if sql.split()[2] not in tables:  # an older schema
                continue
            for size in (4096, 1024, 256, 64, 16, 4, 1, 0):
                while True:
                    n += 1
                    try:
                        connection.execute(sql, (f"filler{n}", "x" * size))
                    except sqlite3.OperationalError as exc:
                        assert "full" in str(exc), exc
                        break
        with pytest.raises(sqlite3.OperationalError, match="full"):
            connection.execute("INSERT INTO refresh_log (account_id, at, outcome) VALUES ('', '', '')")
    finally:
        connection.execute("PRAGMA foreign_keys = ON")


def free_space(store: AccountStore) -> None:
    set_page_limit(store, 1073741823)


def set_page_limit(store: AccountStore, pages: int) -> None:
    """`max_page_count` is a connection's own: set on the store's and on its writer's. (Its row
    is read to the end: a statement left open would keep the writer's connection on an old
    snapshot, and its next write would fail "database is locked", SQLITE_BUSY_SNAPSHOT.)"""
    store.connection.execute(f"PRAGMA max_page_count = {pages}")
    store.writer.submit(lambda tx: tx.execute(f"PRAGMA max_page_count = {pages}").fetchall(), durable=False).result()


def disk_fills_during_the_call(refresher: Refresher, store: AccountStore) -> None:
    """The store fills up while the request is on the wire: after the lease, before the commit."""
    original = refresher._call

    async def call(account):  # type: ignore[no-untyped-def]
        token = await original(account)
        fill_to_the_brim(store)
        refresher._call = original  # type: ignore[method-assign]  # once
        return token

    refresher._call = call  # type: ignore[method-assign]


async def held_account(rig: Rig, email: str, refresher: Refresher | None = None) -> tuple[str, dict]:
    """An account whose refresh was answered while the store was full, so its new token is held
    (by `refresher`, the rig's by default), and the store with room again."""
    refresher = refresher or rig.refresher
    account_id, seeded = rig.add_own(kind="social", email=email)
    rig.make_due(account_id)
    disk_fills_during_the_call(refresher, rig.store)
    assert "token held in memory" in ((await refresher.refresh(account_id)).message or "")
    free_space(rig.store)
    return account_id, seeded


async def test_disk_full_holds_the_token_then_commits_it_and_the_login_lives(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="social", email="full@example.com")
    spent = seeded["token"]["refresh_token"]
    rig.make_due(account_id)
    disk_fills_during_the_call(rig.refresher, rig.store)
    result = await rig.refresher.refresh(account_id)
    assert result.outcome == "refreshed"
    assert result.message == "token held in memory: the store is not writable: disk full"
    assert [r["status"] for r in rig.refresh_calls()] == [200]  # the service rotated: `spent` is dead
    assert rig.store.get(account_id).refresh_token == spent  # type: ignore[union-attr]  # the store could not take it
    from kiro_tui.core.refresh import rescue_dir

    rescue = rescue_dir(rig.store) / f"{account_id}.json"
    assert rescue.exists() and oct(rescue.stat().st_mode & 0o777) == oct(0o600)
    held = json.loads(rescue.read_text())["refresh_token"]
    assert held != spent
    await rig.refresher.commit_held(force=True)  # still full: stays held
    assert rig.store.get(account_id).refresh_token == spent  # type: ignore[union-attr]
    assert rescue.exists() and account_id in rig.refresher.held

    free_space(rig.store)  # space freed
    await rig.refresher.commit_held(force=True)
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token == held
    assert not rescue.exists() and rig.refresher.held == {}
    assert rig.db.get_json("auth_kv", "kirocli:social:token")["refresh_token"] == held  # and kiro-cli has it
    rig.clock.advance(3600)
    again = await rig.refresher.refresh(account_id)
    assert again.outcome == "refreshed" and again.status is Status.FRESH, again.message


async def test_disk_full_through_the_engine_watch_pass(rig: Rig) -> None:
    """The same, the way `watch` and the TUI recover: the next watch pass commits the held token."""
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.events import EngineProblem

    account_id, seeded = rig.add_own(kind="builder-id", email="full-engine@example.com")
    rig.make_due(account_id)
    events: list = []
    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, fetch_usage=False,
                    on_event=events.append)
    await engine.start()
    assert engine.refresher is not None
    disk_fills_during_the_call(engine.refresher, rig.store)
    (result,) = await engine.refresh_now([account_id])
    assert result.message == "token held in memory: the store is not writable: disk full"
    (view,) = (await engine.views([account_id])).views
    assert view.account.refresh_token != seeded["token"]["refresh_token"]  # shown with the live token
    await engine.watch_pass()
    problems = [e.problem for e in events if isinstance(e, EngineProblem)]
    assert problems and "1 token held in memory: the store is not writable: disk full" in problems[-1]
    free_space(rig.store)
    rig.clock.advance(60)  # past the held token's backoff
    await engine.watch_pass()
    assert engine.refresher.held == {}
    assert rig.store.get(account_id).refresh_token == view.account.refresh_token  # type: ignore[union-attr]
    assert [e.problem for e in events if isinstance(e, EngineProblem)][-1] is None  # the problem is over
    rig.clock.advance(3600)
    assert (await rig.new_refresher().refresh(account_id)).outcome == "refreshed"


async def test_a_held_token_is_not_committed_over_the_refresh_that_spent_it(rig: Rig) -> None:
    """A retry of a held token (forced, as at a start) and a refresh of the same account: the refresh spends
    the held token and its successor's commit is queued first; the held token's commit, queued
    behind it, would put the spent token back in the store over the live one."""
    import threading

    account_id, _ = await held_account(rig, "race@example.com")
    held = rig.refresher.held[account_id].refresh_token

    gate, queued = threading.Event(), asyncio.Event()
    original = rig.refresher._call

    async def call(account):  # type: ignore[no-untyped-def]
        token = await original(account)
        rig.store.writer.submit(lambda tx: gate.wait(10) and [], durable=False)  # the writer busy a moment
        queued.set()
        return token

    rig.refresher._call = call  # type: ignore[method-assign]
    refresh = asyncio.create_task(rig.refresher.refresh(account_id, force=True))
    await asyncio.wait_for(queued.wait(), 10)
    for _ in range(20):  # the refresh's commit goes into the writer's queue, behind the gate
        await asyncio.sleep(0)
    retry = asyncio.create_task(rig.refresher.commit_held(force=True))
    for _ in range(20):
        await asyncio.sleep(0)
    gate.set()
    result = await refresh
    await retry
    assert result.outcome == "refreshed", result.message
    account = rig.store.get(account_id)
    assert account is not None
    assert account.refresh_token != held  # the held token was spent by the refresh: the store has its successor
    assert rig.refresher.held == {}
    rig.clock.advance(3600)
    again = await rig.new_refresher().refresh(account_id, force=True)
    assert again.outcome == "refreshed", again.message  # the stored token is alive


def revoke(rig: Rig, refresh_token: str) -> None:
    with rig.emulator.app.lock:
        assert rig.emulator.state.revoke(refresh_token=refresh_token) == 1


async def test_a_login_during_a_failing_refresh_is_not_flagged_dead(rig: Rig) -> None:
    """The service rejects the token a refresh spent, while another process (a login, an import)
    stores a new one: the failure was the old token's, so the account is not flagged."""
    account_id, seeded = rig.add_own(kind="social", email="relogin@example.com")
    rig.make_due(account_id)
    revoke(rig, seeded["token"]["refresh_token"])
    fresh = rig.emulator.seed(kind="social", email="relogin2@example.com")["token"]
    original = rig.refresher._call

    async def call(account):  # type: ignore[no-untyped-def]
        with AccountStore.open(rig.store.path) as other:  # as `kiro-tui login` in another process would
            other.update(account_id, refresh_token=fresh["refresh_token"], access_token=fresh["access_token"])
        return await original(account)

    rig.refresher._call = call  # type: ignore[method-assign]
    result = await rig.refresher.refresh(account_id)
    assert result.outcome == "failed" and "holds another token since the call went out" in (result.message or "")
    assert result.classification == "needs-login"  # the service did say the spent token was dead
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token == fresh["refresh_token"]
    assert account.health is Health.OK and account.last_error is None  # no NEEDS LOGIN over the new login
    assert [e.outcome for e in rig.store.refresh_history(account_id)][:1] == [Outcome.FAILED]  # the failure is in its history
    rig.refresher._call = original  # type: ignore[method-assign]
    again = await rig.refresher.refresh(account_id, force=True)
    assert again.outcome == "refreshed", again.message


async def test_a_rejected_held_token_still_flags_the_account(rig: Rig) -> None:
    """The store holds the token a held one replaced: a refresh that spends the held token and
    is told it is dead is recorded against the account all the same."""
    account_id, _ = await held_account(rig, "held-dead@example.com")
    revoke(rig, rig.refresher.held[account_id].refresh_token)
    result = await rig.refresher.refresh(account_id, force=True)
    assert result.outcome == "failed" and result.status is Status.NEEDS_LOGIN, result.message
    assert rig.refresher.held == {}  # the service said it is dead: no watch pass commits it again
    account = rig.store.get(account_id)
    assert account is not None and account.health is Health.NEEDS_LOGIN
    assert is_dead_refresh_token(account)  # the stored token (spent for the held one) is marked, so an
    # import of it (kiro-cli's database still has it) does not clear the flag


async def test_a_held_token_held_again_still_replaces_the_stored_one(rig: Rig) -> None:
    """The refresh of a held token is answered while the store is full again: the new held token
    replaces what the store holds, not the first held token (never stored), so a rejection of
    it is still recorded against the account."""
    account_id, seeded = await held_account(rig, "held-twice@example.com")
    disk_fills_during_the_call(rig.refresher, rig.store)
    assert "token held in memory" in ((await rig.refresher.refresh(account_id, force=True)).message or "")
    free_space(rig.store)
    assert rig.refresher.held[account_id].spent == fingerprint(seeded["token"]["refresh_token"])
    revoke(rig, rig.refresher.held[account_id].refresh_token)
    result = await rig.refresher.refresh(account_id, force=True)
    assert result.status is Status.NEEDS_LOGIN, result.message
    account = rig.store.get(account_id)
    assert account is not None and account.health is Health.NEEDS_LOGIN


@pytest.mark.parametrize("restarted", [False, True], ids=["same-run", "after-a-restart"])
async def test_saving_a_held_token_keeps_what_its_own_refresh_was_told(rig: Rig, restarted: bool) -> None:
    """The held token's own refresh failed (a 500: backed off) before the store took it: saving
    it must keep that verdict and its backoff, not call the account healthy and due at once (a
    second call straight into the failing service). After a restart (the rescue copy) too."""
    account_id, _ = await held_account(rig, "held-judged@example.com")
    held = rig.refresher.held[account_id].refresh_token
    control(rig.emulator, "faults", {"path": "/refreshToken", "status": 500, "count": 1})
    failed = await rig.refresher.refresh(account_id, force=True)
    assert failed.outcome == "failed" and failed.retry_in, failed.message
    judged = rig.store.get(account_id)
    assert judged is not None and judged.health is Health.REFRESH_FAILING and judged.next_refresh_at is not None
    refresher = rig.new_refresher() if restarted else rig.refresher
    assert refresher.held[account_id].refresh_token == held
    await refresher.commit_held(force=True)
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token == held and refresher.held == {}
    assert (account.health, account.last_error, account.consecutive_failures) == (
        judged.health, judged.last_error, judged.consecutive_failures)
    assert account.next_refresh_at == judged.next_refresh_at  # the backoff stands
    scheduler = RefreshScheduler(rig.store, refresher, rig.clock, Settings())
    scheduler.schedule(account_id)
    due = scheduler.next_due()
    assert due is not None and due[0] == judged.next_refresh_at


async def test_a_held_token_saved_after_its_refresh_failed_clears_another_process_verdict(rig: Rig) -> None:
    """After the held token's own refresh failed, another kiro-tui (started before the hold, so
    without the rescue copy) spends the stored token, already rotated, and records NEEDS LOGIN:
    that verdict is the spent token's, so saving the live held token clears it (found in review)."""
    account_id, _ = await held_account(rig, "judged-then-other@example.com")
    control(rig.emulator, "faults", {"path": "/refreshToken", "status": 500, "count": 1})
    assert (await rig.refresher.refresh(account_id, force=True)).outcome == "failed"
    rig.store.update(account_id, health=Health.NEEDS_LOGIN, last_error="refresh token invalid")
    held = rig.refresher.held[account_id].refresh_token
    await rig.refresher.commit_held(force=True)
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token == held
    assert (account.health, account.last_error, account.next_refresh_at) == (Health.OK, None, None)


async def test_a_held_token_saved_keeps_a_suspension_a_usage_check_heard_meanwhile(rig: Rig) -> None:
    """CodeWhisperer said TEMPORARILY_SUSPENDED to a usage check while the token was held: the
    account is suspended whichever token heard it, so saving the held token keeps that (it
    was called healthy and refreshed again, to be told the same)."""
    account_id, _ = await held_account(rig, "suspended-meanwhile@example.com")
    rig.store.update(account_id, health=Health.SUSPENDED, last_error="account suspended: TEMPORARILY_SUSPENDED")
    held = rig.refresher.held[account_id].refresh_token
    await rig.refresher.commit_held(force=True)
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token == held and rig.refresher.held == {}
    assert (account.health, account.last_error) == (Health.SUSPENDED, "account suspended: TEMPORARILY_SUSPENDED")


async def test_a_held_token_is_not_saved_over_a_token_another_process_stored(rig: Rig) -> None:
    """Another kiro-tui (which loaded this held token's rescue copy) refreshed the account and
    stored the successor between this one's read of the row and its commit: the commit must
    not put the spent held token back over it."""
    account_id, _ = await held_account(rig, "held-other@example.com")
    held = rig.refresher.held[account_id]
    read = rig.store.get(account_id)  # as read before the other process's commit
    assert read is not None
    with AccountStore.open(rig.store.path) as other_store:
        other = rig.new_refresher(other_store)
        assert account_id in other.held  # from the rescue copy
        assert (await other.refresh(account_id, force=True)).outcome == "refreshed"  # spends the held token
    successor = rig.store.get(account_id).refresh_token  # type: ignore[union-attr]
    assert successor not in (held.refresh_token, read.refresh_token)
    assert await rig.refresher.holding.commit(read, held, rig.clock.now(), rig.refresher.places) is None
    assert rig.store.get(account_id).refresh_token == successor  # type: ignore[union-attr]
    assert account_id in rig.refresher.held  # looked at again by the next pass, which drops it:
    await rig.refresher.commit_held(force=True)  # the store has gone past it
    assert rig.refresher.held == {}
    assert rig.store.get(account_id).refresh_token == successor  # type: ignore[union-attr]


async def test_a_held_token_does_not_make_an_account_that_needs_a_login_due(rig: Rig) -> None:
    """The store says the account needs a login (another process found its token dead) while a
    token is held here: the held token's expiry must not make it due, or every start is skipped
    at once and started again, a lease write each time, until the held token is committed."""
    account_id, _ = await held_account(rig, "held-flagged@example.com")
    scheduler = RefreshScheduler(rig.store, rig.refresher, rig.clock, Settings())
    rig.clock.set(rig.refresher.held[account_id].expires_at)  # the held token is due
    scheduler.schedule(account_id)
    assert scheduler.next_due() is not None  # due, while the store has the account healthy
    rig.store.update(account_id, health=Health.NEEDS_LOGIN, last_error="refresh token invalid")
    scheduler.schedule(account_id)
    assert scheduler.next_due() is None


async def test_a_flagged_account_whose_held_token_is_saved_is_scheduled_again(rig: Rig) -> None:
    """Off the schedule while flagged (above), the account must come back on it once the watch
    pass saves its held token (which is live: the flag was for the spent one)."""
    from kiro_tui.core.engine import Engine

    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, fetch_usage=False)
    await engine.start()
    assert engine.refresher is not None and engine.scheduler is not None
    account_id, _ = await held_account(rig, "flagged-saved@example.com", engine.refresher)
    rig.store.update(account_id, health=Health.NEEDS_LOGIN, last_error="refresh token invalid")
    engine.scheduler.schedule_all()  # as the watch does when another process commits
    assert engine.scheduler.next_due() is None
    rig.clock.advance(600)  # past the held token's backoff
    await engine.watch_pass()
    assert engine.refresher.held == {}
    account = rig.store.get(account_id)
    assert account is not None and account.health is Health.OK
    due = engine.scheduler.next_due()
    assert due is not None and due[1] == account_id and due[0] == account.due_time(Settings().window)
    await engine.close()


async def test_a_stop_saves_a_held_token_whose_refresh_waits_for_a_slot(rig: Rig) -> None:
    """One network slot, another account's call out, the held account's refresh waiting for
    the slot: the stop gives up on the call out, and still saves the held token (that refresh
    never starts)."""
    from dataclasses import replace

    from kiro_tui.core.engine import Engine

    engine = Engine(rig.store, replace(Settings(), concurrency=1), rig.clock, rig.endpoints, None, http=rig.http,
                    fetch_usage=False)
    await engine.start()
    assert engine.refresher is not None
    held_id, _ = await held_account(rig, "held-waiting@example.com", engine.refresher)
    held = engine.refresher.held[held_id].refresh_token
    busy_id, _ = rig.add_own(kind="social", email="busy@example.com")
    arrived = refresh_request_arrives(rig.emulator)
    control(rig.emulator, "faults", {"latency_ms": 3000})
    busy = asyncio.create_task(engine.refresh_now([busy_id]))
    await asyncio.wait_for(asyncio.to_thread(arrived.wait, 10), 11)
    waiting = asyncio.create_task(engine.refresh_now([held_id]))
    for _ in range(20):  # it takes its lock and lease, then waits for the only slot
        await asyncio.sleep(0)
    assert engine.refresher._account_lock(held_id).locked() and held_id not in engine.refresher.started
    left = await engine.stop(timeout=0.2)
    assert left == [busy_id]
    assert engine.refresher.held == {}
    stored = rig.store.get(held_id)
    assert stored is not None and stored.refresh_token == held
    control(rig.emulator, "faults", {"latency_ms": 0})
    await asyncio.wait_for(asyncio.gather(busy, waiting), 10)


async def test_a_stop_gives_up_on_a_held_accounts_refresh_in_time(rig: Rig) -> None:
    """A held token's account still being refreshed when a stop's wait runs out: the stop does
    not then wait for that refresh to commit the held token (the rescue copy stays for the next
    start); before, it waited for the whole call."""
    from kiro_tui.core.engine import Engine

    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, fetch_usage=False)
    await engine.start()
    assert engine.refresher is not None
    account_id, seeded = await held_account(rig, "stop-held@example.com", engine.refresher)
    arrived = refresh_request_arrives(rig.emulator)
    control(rig.emulator, "faults", {"latency_ms": 3000})
    asked = asyncio.create_task(engine.refresh_now([account_id]))
    await asyncio.wait_for(asyncio.to_thread(arrived.wait, 10), 11)
    left = await engine.stop(timeout=0.2)
    assert left == [account_id]
    stored = rig.store.get(account_id)  # the stop came back while the call was still out
    assert stored is not None and stored.refresh_token == seeded["token"]["refresh_token"]
    control(rig.emulator, "faults", {"latency_ms": 0})
    await asyncio.wait_for(asked, 10)


async def test_a_new_refresher_picks_up_a_rescued_token(rig: Rig) -> None:
    """A crash while a token is held: the rescue file beside the store brings it back."""
    account_id, seeded = rig.add_own(kind="idc", email="crash@example.com", region="eu-west-1")
    rig.make_due(account_id)
    disk_fills_during_the_call(rig.refresher, rig.store)
    result = await rig.refresher.refresh(account_id)
    assert "token held in memory" in (result.message or "")
    # the process dies here; a new one opens the store (it has room again) with a new refresher
    with AccountStore.open(rig.store.path) as store:
        assert store.get(account_id).refresh_token == seeded["token"]["refresh_token"]  # type: ignore[union-attr]
        refresher = rig.new_refresher(store)
        assert set(refresher.held) == {account_id}
        await refresher.commit_held(force=True)
        from kiro_tui.core.refresh import rescue_dir

        assert not (rescue_dir(store) / f"{account_id}.json").exists()
        rig.clock.advance(3600)
        again = await refresher.refresh(account_id)
        assert again.outcome == "refreshed" and again.status is Status.FRESH, again.message


async def test_expiry_that_overflows_datetime_keeps_the_token(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="social", email="overflow@example.com")
    rig.make_due(account_id)
    control(rig.emulator, "config", {"token_ttl": 300000000000})
    result = await rig.refresher.refresh(account_id)
    assert result.outcome == "refreshed", result.message
    assert any("expiresIn" in w for w in result.warnings), result.warnings
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token != seeded["token"]["refresh_token"]
    assert account.expires_at - rig.clock.now() <= timedelta(days=30)  # clamped, not the year 11476
    assert rig.db.get_json("auth_kv", "kirocli:social:token")["refresh_token"] == account.refresh_token
    control(rig.emulator, "config", {"token_ttl": 3600})
    rig.clock.advance(3600)
    again = await rig.refresher.refresh(account_id)
    assert again.outcome == "refreshed" and again.status is Status.FRESH, again.message


async def test_profile_arn_with_a_lone_surrogate_keeps_the_token(rig: Rig) -> None:
    account_id, seeded = rig.add_own(kind="social", email="surrogate@example.com")
    before = rig.store.get(account_id)
    assert before is not None

    async def answer_with_a_bad_arn(request: httpx.Request) -> httpx.Response:
        """The real emulator answers (and rotates); only the answer's profileArn is made unstorable."""
        real = await rig.http.request(request.method, str(request.url), headers=request.headers,
                                      content=request.content)
        body = real.json()
        raw = json.dumps({**body, "profileArn": "PLACEHOLDER"}).replace(
            '"PLACEHOLDER"', '"arn:aws:codewhisperer:us-east-1:699475941385:profile/\\udc80BAD"')
        return httpx.Response(real.status_code, content=raw.encode(), headers={"content-type": "application/json"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer_with_a_bad_arn)) as odd:
        refresher = rig.new_refresher(http=odd)
        result = await refresher.refresh(account_id, force=True)
    assert result.outcome == "refreshed", result.message
    assert any("profileArn" in w for w in result.warnings), result.warnings
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token != seeded["token"]["refresh_token"]
    assert account.profile_arn == before.profile_arn  # the bad one was dropped, the old one kept
    again = await rig.refresher.refresh(account_id, force=True)
    assert again.outcome == "refreshed" and again.status is Status.FRESH, again.message


# -------------------------------------------------------- 3. a failed write-back does not kill kiro-cli's login


async def retry_write_backs(refresher: Refresher) -> None:
    """The retry every watch pass makes (named `retry_write_backs` before the places rework;
    called by either name so this test also runs against the older code)."""
    retry = getattr(refresher, "retry_pending_places", None) or refresher.retry_write_backs  # type: ignore[attr-defined]
    await retry()


async def test_kiro_cli_database_moved_away_and_back_is_the_same_login(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="builder-id", email="moved@example.com")
    rig.make_due(account_id)
    away = rig.db.path.with_name("data.sqlite3.away")
    rig.db.path.rename(away)
    result = await rig.refresher.refresh(account_id)
    assert result.outcome == "refreshed"
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token != seeded["token"]["refresh_token"]
    assert "different login" not in (account.sync_error or "") and "not seen" not in (account.sync_error or "")
    if hasattr(rig.store, "places"):
        (place,) = rig.store.places(account_id)
        assert place.state.value == "pending"
    await retry_write_backs(rig.refresher)  # still away: stays pending, nothing else happens
    away.rename(rig.db.path)  # moved back: it holds the token kiro-tui spent
    await retry_write_backs(rig.refresher)
    row = rig.db.get_json("auth_kv", "kirocli:odic:token")
    assert row["refresh_token"] == account.refresh_token and row["access_token"] == account.access_token
    account = rig.store.get(account_id)
    assert account is not None and account.sync_error is None
    if hasattr(rig.store, "places"):
        (place,) = rig.store.places(account_id)
        assert place.state.value == "in-sync"
    # kiro-cli's copy is alive: kiro-cli (here the emulator, with kiro-cli's token) can refresh it
    rig.clock.advance(3600)
    assert (await rig.refresher.refresh(account_id)).outcome == "refreshed"
    assert rig.db.get_json("auth_kv", "kirocli:odic:token")["refresh_token"] == \
        rig.store.get(account_id).refresh_token  # type: ignore[union-attr]


async def test_another_person_in_kiro_cli_is_reported_and_not_overwritten(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="builder-id", email="first@example.com")
    # someone else logs in with kiro-cli: a new client registration and a login kiro-tui never saw
    other = rig.emulator.seed(kind="builder-id", email="second@example.com")
    rig.db.set_json("auth_kv", "kirocli:odic:token", other["auth_kv"]["kirocli:odic:token"])
    rig.db.set_json("auth_kv", "kirocli:odic:device-registration",
                    other["auth_kv"]["kirocli:odic:device-registration"])
    assert other["device_registration"]["client_id"] != seeded["device_registration"]["client_id"]
    before = rig.db.get_json("auth_kv", "kirocli:odic:token")
    rig.make_due(account_id)
    result = await rig.refresher.refresh(account_id)
    assert (result.outcome, result.status) == ("refreshed", Status.FRESH)  # our own account is healthy
    assert rig.db.get_json("auth_kv", "kirocli:odic:token") == before  # not overwritten
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token != before["refresh_token"]
    problem = account.sync_error or ""  # reported (the words changed with the fix; the rule did not)
    assert "kirocli:odic:token" in problem and "kept kiro-tui's token" in problem, problem
    await retry_write_backs(rig.refresher)
    assert rig.db.get_json("auth_kv", "kirocli:odic:token") == before
    if hasattr(rig.store, "places"):
        (place,) = rig.store.places(account_id)
        assert place.state.value == "error"


# ------------------------------------------------------------------ 4. no refresh storm


async def test_short_lived_tokens_are_refreshed_at_half_their_lifetime_not_in_a_storm(rig: Rig) -> None:
    """Tokens live 120 s, the refresh window is 600 s: every token is "due" the moment it
    arrives. Over 20 simulated minutes the scheduler refreshes about once a minute."""
    control(rig.emulator, "config", {"token_ttl": 120})
    account_id, _ = rig.add_own(kind="social", email="storm@example.com", expires_in=120)
    scheduler = RefreshScheduler(rig.store, rig.refresher, rig.clock, Settings())
    started_at: list = []
    original = rig.refresher.refresh
    task: asyncio.Task | None = None

    async def refresh(account_id: str, force: bool = False, unless_valid_for=None):  # type: ignore[no-untyped-def]
        started_at.append(rig.clock.now())
        if len(started_at) > 200 and task is not None:  # a storm: stop it so the test can report it
            task.cancel()
        return await original(account_id, force, unless_valid_for)

    rig.refresher.refresh = refresh  # type: ignore[method-assign]
    task = asyncio.create_task(scheduler.run())
    start = rig.clock.now()
    try:
        for _ in range(20 * 60):
            for _ in range(5):  # let the woken scheduler start what is due, and wait for it
                await asyncio.sleep(0)
            await scheduler.wait_idle()
            if task.done():
                break
            rig.clock.advance(1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    calls = [r for r in rig.emulator.requests() if r["operation"] == "RefreshToken"]
    assert 18 <= len(calls) <= 22, f"{len(calls)} refresh calls in 20 minutes"
    assert all(r["status"] == 200 for r in calls)
    gaps = [(b - a).total_seconds() for a, b in zip(started_at, started_at[1:], strict=False)]
    assert min(gaps) >= 30 and all(55 <= g <= 65 for g in gaps), gaps
    assert started_at[0] - start < timedelta(seconds=2)  # the first one right away: it was due
    account = rig.store.get(account_id)
    assert account is not None and account.health.value == "ok"


# ------------------------------------------------------------------ 9. the engine never stops silently


def engine_for(rig: Rig, events: list):  # type: ignore[no-untyped-def]
    from kiro_tui.core.engine import Engine

    return Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, kiro_cli_candidates=[],
                  fetch_usage=False, on_event=events.append)


async def test_a_failing_watch_step_is_reported_and_the_next_pass_works(rig: Rig) -> None:
    from kiro_tui.core.events import AccountsChanged, EngineProblem

    account_id, _ = rig.add_own(kind="social", email="locked@example.com")
    events: list = []
    engine = engine_for(rig, events)
    await engine.start()
    real = rig.store.data_version
    failures = iter([sqlite3.OperationalError("database is locked")])

    def data_version() -> int:
        for exc in failures:
            raise exc
        return real()

    rig.store.data_version = data_version  # type: ignore[method-assign]
    with AccountStore.open(rig.store.path) as other:  # another kiro-tui process commits
        other.update(account_id, label="renamed elsewhere")
    await engine.watch_pass()  # data_version raises: the step fails, the pass does not
    problems = [e.problem for e in events if isinstance(e, EngineProblem)]
    assert problems and "database is locked" in (problems[-1] or ""), problems
    assert not any(isinstance(e, AccountsChanged) for e in events)
    await engine.watch_pass()  # the next pass works: the other process's change is noticed
    assert any(isinstance(e, AccountsChanged) and e.ids and account_id in e.ids for e in events), events
    assert engine.scheduler is not None and engine.scheduler.next_due() is not None  # rescheduled


async def test_a_step_problem_is_cleared_once_the_step_works_again(rig: Rig) -> None:
    from kiro_tui.core.events import EngineProblem

    events: list = []
    engine = engine_for(rig, events)
    await engine.start()
    real = rig.store.data_version
    failures = iter([sqlite3.OperationalError("database is locked")])

    def data_version() -> int:
        for exc in failures:
            raise exc
        return real()

    rig.store.data_version = data_version  # type: ignore[method-assign]
    await engine.watch_pass()
    await engine.watch_pass()
    assert engine.problem is None
    assert [e.problem for e in events if isinstance(e, EngineProblem)][-1] is None


async def test_a_crashed_scheduler_loop_is_restarted_with_backoff(rig: Rig) -> None:
    from kiro_tui.core.events import EngineProblem

    events: list = []
    engine = engine_for(rig, events)
    await engine.start()
    assert engine.scheduler is not None
    real_run = engine.scheduler.run
    runs: list[str] = []

    async def run() -> None:
        runs.append("run")
        if len(runs) == 1:
            await asyncio.sleep(0)
            raise RuntimeError("boom in the scheduler")
        await real_run()

    engine.scheduler.run = run  # type: ignore[method-assign]
    task = asyncio.create_task(engine.run())
    try:
        for _ in range(500):
            if any(isinstance(e, EngineProblem) for e in events):
                break
            await asyncio.sleep(0.01)
        problems = [e.problem for e in events if isinstance(e, EngineProblem)]
        assert problems == ["background refresh stopped: RuntimeError: boom in the scheduler; restarting"]
        assert runs == ["run"] and not task.done()  # waiting out the backoff (1 s of the engine's clock)
        account_id, seeded = rig.add_own(kind="social", email="after-restart@example.com")
        rig.make_due(account_id)  # moves the clock past the backoff too
        for _ in range(1000):
            account = rig.store.get(account_id)
            if account is not None and account.refresh_token != seeded["token"]["refresh_token"]:
                break
            await asyncio.sleep(0.01)
        assert runs == ["run", "run"]  # restarted
        account = rig.store.get(account_id)
        assert account is not None and account.refresh_token != seeded["token"]["refresh_token"]  # and working
        assert not task.done()
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 10)


async def test_a_held_token_is_not_retried_in_a_loop_by_the_scheduler(rig: Rig) -> None:
    """While a token is held, the store still has the spent token's (due) expiry: the scheduler
    must go by the held one, not start the account again and again (each start takes and drops
    a lease: two commits, which on a nearly full disk eat the space freed for the held token)."""
    account_id, _ = rig.add_own(kind="social", email="held-loop@example.com")
    rig.make_due(account_id)
    disk_fills_during_the_call(rig.refresher, rig.store)
    scheduler = RefreshScheduler(rig.store, rig.refresher, rig.clock, Settings())
    starts: list = []
    original = rig.refresher.refresh
    task: asyncio.Task | None = None

    async def refresh(account_id: str, force: bool = False, unless_valid_for=None):  # type: ignore[no-untyped-def]
        starts.append(rig.clock.now())
        if len(starts) > 50 and task is not None:
            task.cancel()
        return await original(account_id, force, unless_valid_for)

    rig.refresher.refresh = refresh  # type: ignore[method-assign]
    task = asyncio.create_task(scheduler.run())
    try:
        for _ in range(200):  # the clock stands still: nothing is due again
            await asyncio.sleep(0)
            await scheduler.wait_idle()
            if task.done():
                break
        assert account_id in rig.refresher.held
        assert len(starts) == 1, f"{len(starts)} starts of a held account at one instant"
        free_space(rig.store)
        rig.clock.advance(30)
        await rig.refresher.commit_held()
        assert rig.refresher.held == {}
        rig.clock.advance(3000)  # the held token's own due time: refreshed once more, and alive
        for _ in range(500):
            await asyncio.sleep(0.01)
            await scheduler.wait_idle()
            if len(starts) == 2:
                break
        assert len(starts) == 2
        assert rig.store.refresh_history(account_id, limit=1)[0].outcome == "refreshed"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_watch_on_a_really_full_disk_holds_the_token_and_saves_it_when_space_is_freed(kiro_tui_exe, tmp_path,
                                                                                      live_emulator) -> None:
    """A 2 MB file system (tmpfs, in a private mount namespace) fills up while `watch` waits for
    the service's answer: the token is held (its rescue copy goes to the state folder: the store's
    disk is full),
    the store is not hammered meanwhile, and once space is freed the token is saved and alive."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", str(tmp_path)],
            capture_output=True).returncode != 0:
        pytest.skip("needs mount namespaces (unshare -m, as root) for a real small file system; "
                    "the max_page_count tests above cover the same path")
    driver = Path(__file__).parent / "support" / "full_disk.py"
    run = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, str(driver),
                          str(tmp_path / "root"), live_emulator.url, kiro_tui_exe],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)
    err = outcome["err"]
    assert outcome["steps"] == {"refreshing": True, "held": True, "saved": True}, err
    beside = tmp_path / "root" / "data" / "kiro-tui" / "accounts.db.rescue"
    assert f"the rescue copy could not be written in {beside}: No space left on device" in err
    assert f"a rescue copy of the held token is saved in {tmp_path / 'root' / 'state' / 'kiro-tui' / 'rescue'}" in err
    assert outcome["code"] == 0, err
    (after,) = json.loads(outcome["after"])
    assert (after["outcome"], after["status"]) == ("refreshed", "fresh"), (outcome["after"], outcome["after_err"])
    assert outcome["spent"] not in err and outcome["spent"] not in outcome["after"]


async def test_a_bug_in_the_token_commit_holds_the_token_and_never_drops_it(rig: Rig, monkeypatch) -> None:
    """Not only a store that will not take the write: whatever fails in the commit, the token the
    service handed over is held (and copied to a rescue file), not lost with the error."""
    account_id, seeded = rig.add(kind="social", email="bug@example.com")
    spent = seeded["token"]["refresh_token"]
    rig.make_due(account_id)

    def broken(tx, entry):  # type: ignore[no-untyped-def]
        raise ValueError("a bug in the history row")

    monkeypatch.setattr(rig.store, "log_refresh", broken)
    result = await rig.refresher.refresh(account_id)
    assert result.outcome == "refreshed", result.message
    assert "token held in memory" in (result.message or "") and "ValueError" in (result.message or "")
    assert [r["status"] for r in rig.refresh_calls()] == [200]  # rotated: `spent` is dead
    assert rig.store.get(account_id).refresh_token == spent  # type: ignore[union-attr]  # nothing half-written
    held = rig.refresher.held[account_id].refresh_token
    assert held != spent

    monkeypatch.undo()
    await rig.refresher.commit_held(force=True)
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token == held and rig.refresher.held == {}
