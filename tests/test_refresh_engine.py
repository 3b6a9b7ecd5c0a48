"""The refresh engine against the emulator over loopback, with an injected clock."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from kiro_tui.core.config import Settings
from kiro_tui.core.importer import NEWER_TOLERANCE
from kiro_tui.core.models import Health, Mode, Outcome, Status
from kiro_tui.core.refresh import RefreshClients
from kiro_tui.core.refresh_call import Backoff
from kiro_tui.core.scheduler import RefreshScheduler
from kiro_tui.core.store import REFRESH_LOG_KEEP
from kiro_tui.core.timefmt import parse_timestamp
from tests.support.engine import (
    calls,
    control,
)
from tests.support.refresh_rig import Rig


async def test_rotation_end_to_end_with_write_back_in_kiro_cli_format(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="builder-id", email="rot@example.com")
    registration_before = rig.db.get_json("auth_kv", "kirocli:odic:device-registration")
    state_before = rig.db.get_json("state", "api.codewhisperer.profile")
    rig.make_due(account_id)
    result = await rig.refresher.refresh(account_id)
    assert (result.outcome, result.status) == (Outcome.REFRESHED, Status.FRESH)
    account = rig.store.get(account_id)
    assert account is not None and account.refresh_token != seeded["token"]["refresh_token"]
    assert account.expires_at == rig.clock.now() + timedelta(seconds=3600)
    # kiro-cli's row now holds our new token, in its own format, everything else untouched
    row = rig.db.get_json("auth_kv", "kirocli:odic:token")
    assert row["refresh_token"] == account.refresh_token and row["access_token"] == account.access_token
    assert list(row) == list(seeded["token"])  # same fields, same order
    assert row["expires_at"].endswith("Z") and parse_timestamp(row["expires_at"]) == account.expires_at
    assert {k: row[k] for k in ("region", "start_url", "oauth_flow", "scopes")} == {
        k: seeded["token"][k] for k in ("region", "start_url", "oauth_flow", "scopes")}
    assert rig.db.get_json("auth_kv", "kirocli:odic:device-registration") == registration_before
    assert rig.db.get_json("state", "api.codewhisperer.profile") == state_before
    with rig.db.connect() as conn:
        assert conn.execute("SELECT typeof(value) FROM auth_kv WHERE key='kirocli:odic:token'").fetchone() == ("text",)
    # the emulator accepts the rotated token: a second refresh works too
    rig.clock.advance(3600)
    second = await rig.refresher.refresh(account_id)
    assert second.outcome == Outcome.REFRESHED
    assert len(calls(rig.emulator, "rot@example.com", "CreateToken")) == 2
    assert [(c.before, c.after) for c in rig.changes][:2] == [
        (Status.EXPIRING, Status.REFRESHING), (Status.REFRESHING, Status.FRESH)]


async def test_revoked_token_costs_exactly_one_call_then_none(rig: Rig) -> None:
    account_id, _ = rig.add(Mode.OWN, kind="social", email="dead@example.com")
    control(rig.emulator, "revoke", {"email": "dead@example.com"})
    rig.make_due(account_id)
    result = await rig.refresher.refresh(account_id)
    assert (result.outcome, result.status, result.classification) == (Outcome.FAILED, Status.NEEDS_LOGIN, "needs-login")
    assert "refresh token invalid: log in again" in (result.message or "")
    assert len(calls(rig.emulator, "dead@example.com")) == 0  # the token was dead: no user to attribute
    assert [r["status"] for r in rig.emulator.requests() if r["operation"] == "RefreshToken"] == [400]
    # no more network calls: not by the scheduler, not by a forced refresh
    scheduler = RefreshScheduler(rig.store, rig.refresher, rig.clock, Settings())
    task = asyncio.create_task(scheduler.run())
    for _ in range(5):
        rig.clock.advance(3600)
        await asyncio.sleep(0.01)
    again = await rig.refresher.refresh(account_id, force=True)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert again.outcome == Outcome.SKIPPED and again.status is Status.NEEDS_LOGIN
    assert len([r for r in rig.emulator.requests() if r["operation"] == "RefreshToken"]) == 1


async def test_500_three_times_then_recovers_with_jittered_backoff(rig: Rig) -> None:
    account_id, _ = rig.add(Mode.OWN, kind="idc", email="flaky@example.com", region="eu-west-1")
    control(rig.emulator, "faults", {"path": "/token", "status": 500, "count": 3})
    rig.make_due(account_id)
    backoff = Backoff()
    for attempt in (1, 2, 3):
        result = await rig.refresher.refresh(account_id)
        assert (result.outcome, result.status, result.classification) == (
            Outcome.FAILED, Status.REFRESH_FAILING, "transient")
        account = rig.store.get(account_id)
        assert account is not None and account.consecutive_failures == attempt
        delay = (account.next_refresh_at - rig.clock.now()).total_seconds()  # type: ignore[operator]
        assert 0 <= delay <= backoff.ceiling(attempt)
        assert result.retry_in == pytest.approx(delay, abs=0.01)
        not_yet = await rig.refresher.refresh(account_id) if delay > 0.01 else None
        assert not_yet is None or not_yet.outcome == Outcome.SKIPPED  # backing off: no call before next_refresh_at
        rig.clock.set(account.next_refresh_at)  # type: ignore[arg-type]
    result = await rig.refresher.refresh(account_id)
    assert (result.outcome, result.status) == (Outcome.REFRESHED, Status.FRESH)
    account = rig.store.get(account_id)
    assert account is not None and (account.consecutive_failures, account.last_error) == (0, None)
    statuses = [r["status"] for r in rig.emulator.requests() if r["operation"] == "CreateToken"]
    assert statuses == [500, 500, 500, 200]
    history = rig.store.refresh_history(account_id)
    assert [h.outcome for h in history] == [Outcome.REFRESHED, Outcome.FAILED, Outcome.FAILED, Outcome.FAILED]


def test_backoff_is_full_jitter_capped_at_five_minutes() -> None:
    backoff, rng = Backoff(), random.Random(1)
    assert [backoff.ceiling(n) for n in (1, 2, 3, 7, 20)] == [5, 10, 20, 300, 300]
    samples = [backoff.delay(3, rng) for _ in range(2000)]
    assert 0 <= min(samples) < 2 and 18 < max(samples) <= 20  # spread over the whole [0, ceiling]


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ({"status": 429}, "slow_down"),
        ({"kind": "reset"}, "connection failed"),
        ({"kind": "malformed"}, "malformed response"),
        ({"kind": "timeout", "seconds": 3}, "timed out"),
    ],
)
async def test_other_transient_failures_back_off_and_recover(rig: Rig, fault: dict, needle: str, endpoints) -> None:
    from kiro_tui.core.aws.transport import make_http_client

    account_id, _ = rig.add(Mode.OWN, kind="builder-id", email="t@example.com")
    control(rig.emulator, "faults", {"path": "/token", "count": 1, **fault})
    rig.make_due(account_id)
    async with make_http_client(timeout=0.5) as quick:
        rig.refresher.clients = RefreshClients.create(quick, endpoints)
        failed = await rig.refresher.refresh(account_id)
        assert (failed.status, failed.classification) == (Status.REFRESH_FAILING, "transient")
        assert needle in (failed.message or "")
        rig.clock.set(rig.store.get(account_id).next_refresh_at)  # type: ignore[union-attr,arg-type]
        recovered = await rig.refresher.refresh(account_id)
    assert recovered.status is Status.FRESH


async def test_expired_registration_needs_login(rig: Rig) -> None:
    account_id, _ = rig.add(Mode.OWN, kind="builder-id", email="reg@example.com", registration_expires_in=7200)
    rig.emulator.state.registrations[rig.store.get(account_id).client_id].expires_at = 0  # type: ignore[union-attr]
    rig.make_due(account_id)
    result = await rig.refresher.refresh(account_id)
    assert result.status is Status.NEEDS_LOGIN
    assert "client registration invalid or expired" in (result.message or "")
    assert "Client is expired" in (result.message or "")


async def test_newer_kiro_cli_token_is_adopted_without_a_network_call(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="builder-id", email="adopt@example.com")
    rig.make_due(account_id)
    newer = dict(seeded["token"])
    newer.update(access_token="aoaAAAAAGfromkirocli", refresh_token="aorAAAAAGfromkirocli",
                 expires_at=(rig.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.123Z"))
    rig.db.set_json("auth_kv", "kirocli:odic:token", newer)
    result = await rig.refresher.refresh(account_id)
    assert (result.outcome, result.status) == (Outcome.ADOPTED, Status.FRESH)
    assert rig.store.get(account_id).access_token == "aoaAAAAAGfromkirocli"  # type: ignore[union-attr]
    assert rig.emulator.requests() == []


async def test_write_back_refused_when_kiro_cli_row_changed(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="social", email="cas@example.com")
    rig.make_due(account_id)
    other = dict(seeded["token"])
    older = rig.store.get(account_id).expires_at - NEWER_TOLERANCE - timedelta(minutes=1)  # type: ignore[union-attr]
    other.update(refresh_token="aorAAAAAGsomeoneelse", access_token="aoaAAAAAGsomeoneelse",
                 expires_at=older.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))  # well before ours: not a newer token
    rig.db.set_json("auth_kv", "kirocli:social:token", other)
    before = rig.db.get_json("auth_kv", "kirocli:social:token")
    result = await rig.refresher.refresh(account_id)
    assert result.outcome == Outcome.REFRESHED
    assert rig.db.get_json("auth_kv", "kirocli:social:token") == before
    assert "out of sync" in (rig.store.get(account_id).sync_error or "")  # type: ignore[union-attr]


async def test_write_back_waits_out_a_locked_database_then_retries(rig: Rig) -> None:
    import sqlite3

    account_id, _ = rig.add(kind="social", email="lock@example.com")
    rig.make_due(account_id)
    holder = sqlite3.connect(rig.db.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    rig.refresher.writeback_timeout = 0.2
    try:
        result = await rig.refresher.refresh(account_id)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.outcome == Outcome.REFRESHED
    account = rig.store.get(account_id)
    assert account is not None and "will retry" in (account.sync_error or "")
    assert rig.db.get_json("auth_kv", "kirocli:social:token")["refresh_token"] != account.refresh_token
    await rig.refresher.retry_pending_places()
    assert rig.db.get_json("auth_kv", "kirocli:social:token")["refresh_token"] == account.refresh_token
    assert rig.store.get(account_id).sync_error is None  # type: ignore[union-attr]


async def test_follow_mode_never_calls_the_network(rig: Rig) -> None:
    account_id, seeded = rig.add(Mode.FOLLOW, kind="social", email="follow@example.com")
    rig.clock.advance(7200)  # long expired
    result = await rig.refresher.refresh(account_id, force=True)
    assert (result.outcome, result.status) == (Outcome.FOLLOWED, Status.EXPIRED)
    newer = dict(seeded["token"])
    newer.update(access_token="aoaAAAAAGkirocliRefreshed",
                 expires_at=(rig.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    rig.db.set_json("auth_kv", "kirocli:social:token", newer)
    mirrored = await rig.refresher.refresh(account_id)
    assert (mirrored.outcome, mirrored.status) == (Outcome.ADOPTED, Status.FRESH)
    assert rig.emulator.requests() == []


async def test_lease_held_elsewhere_means_no_call(rig: Rig) -> None:
    account_id, _ = rig.add(Mode.OWN, kind="social", email="lease@example.com")
    rig.make_due(account_id)
    assert await rig.store.acquire_lease(account_id, "other-process", rig.clock.now(), 60)
    result = await rig.refresher.refresh(account_id)
    assert (result.outcome, result.status) == (Outcome.BUSY, Status.REFRESHING)
    assert rig.emulator.requests() == []
    rig.clock.advance(61)  # the other process died: its lease runs out
    assert (await rig.refresher.refresh(account_id, force=True)).outcome == Outcome.REFRESHED


async def test_scheduler_refreshes_each_account_within_a_second_of_its_due_time(rig: Rig) -> None:
    ids = []
    for minutes in (20, 40, 60):
        account_id, _ = rig.add_own(kind="social", email=f"due{minutes}@example.com", expires_in=minutes * 60)
        ids.append(account_id)
    scheduler = RefreshScheduler(rig.store, rig.refresher, rig.clock, Settings())
    task = asyncio.create_task(scheduler.run())
    start = rig.clock.now()
    try:
        for minutes, account_id in zip((20, 40, 60), ids, strict=True):
            due = start + timedelta(minutes=minutes - 10)
            rig.clock.set(due - timedelta(seconds=1))
            await asyncio.sleep(0.02)
            await scheduler.wait_idle()
            assert rig.store.get(account_id).last_refresh_at is None  # type: ignore[union-attr]
            rig.clock.set(due)
            for _ in range(2000):  # let the woken scheduler run (up to 10 s on a loaded machine); the clock stands still
                await asyncio.sleep(0.005)
                await scheduler.wait_idle()
                if rig.store.get(account_id).last_refresh_at:  # type: ignore[union-attr]
                    break
            refreshed_at = rig.store.get(account_id).last_refresh_at  # type: ignore[union-attr]
            assert refreshed_at is not None and timedelta(0) <= refreshed_at - due < timedelta(seconds=1)
        assert scheduler.next_due() is not None  # each is due again 50 minutes after its refresh
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_concurrency_is_bounded_and_single_flight(rig: Rig) -> None:
    ids = [rig.add_own(kind="social", email=f"c{i}@example.com", expires_in=60)[0] for i in range(12)]
    control(rig.emulator, "faults", {"latency_ms": 30})
    running, peak, per_account = 0, 0, {}
    settings = Settings(concurrency=3)  # the engine gives both the same settings
    refresher = rig.new_refresher(settings=settings)
    original = refresher._call

    async def counting(account):  # type: ignore[no-untyped-def]
        nonlocal running, peak
        running += 1
        per_account[account.id] = per_account.get(account.id, 0) + 1
        peak = max(peak, running)
        try:
            return await original(account)
        finally:
            running -= 1

    refresher._call = counting  # type: ignore[method-assign]
    scheduler = RefreshScheduler(rig.store, refresher, rig.clock, settings)
    task = asyncio.create_task(scheduler.run())
    for _ in range(1000):
        await asyncio.sleep(0.01)
        if len(per_account) == 12 and running == 0:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert peak == 3
    assert per_account == {account_id: 1 for account_id in ids}


async def test_due_accounts_wait_in_the_schedule_not_as_tasks(rig: Rig) -> None:
    """Many accounts due at once: a task is made for as many as may run (twice the network
    slots), the rest start as those end; every one is refreshed, once. (A task each at once was
    10,000 tasks in a burst, walked by every full garbage collection.)"""
    ids = [rig.add_own(kind="social", email=f"w{i}@example.com", expires_in=60)[0] for i in range(20)]
    control(rig.emulator, "faults", {"latency_ms": 30})
    settings = Settings(concurrency=2)
    refresher = rig.new_refresher(settings=settings)
    scheduler = RefreshScheduler(rig.store, refresher, rig.clock, settings)
    scheduler.keep_results = True
    tasks = []
    task = asyncio.create_task(scheduler.run())
    for _ in range(1000):
        await asyncio.sleep(0.01)
        tasks.append(len([t for t in asyncio.all_tasks() if t.get_name().startswith("refresh ")]))
        if len(scheduler.results) == 20:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert max(tasks) == 4  # 2 x concurrency, never 20
    assert sorted(r.account_id for r in scheduler.results) == sorted(ids)
    assert {r.outcome for r in scheduler.results} == {"refreshed"}


async def test_a_slot_is_held_only_for_the_call_and_a_refresh_waiting_for_one_does_not_start_after_a_stop(
        rig: Rig) -> None:
    """One network slot, a slow service: the second refresh is under way (leased, waiting for the
    slot) while the first is on the wire. A stop then lets the first finish and commit, and the
    second never calls: its token is not spent."""
    first, second = (rig.add_own(kind="social", email=f"s{i}@example.com", expires_in=60)[0] for i in range(2))
    control(rig.emulator, "faults", {"latency_ms": 400})
    settings = Settings(concurrency=1)
    refresher = rig.new_refresher(settings=settings)
    scheduler = RefreshScheduler(rig.store, refresher, rig.clock, settings)
    scheduler.keep_results = True
    task = asyncio.create_task(scheduler.run())
    for _ in range(500):
        await asyncio.sleep(0.01)
        if len(scheduler.in_flight) == 2 and len(scheduler.under_way) == 1:
            break
    assert len(scheduler.in_flight) == 2 and len(scheduler.under_way) == 1  # one slot: one call at a time
    assert refresher.network.locked()
    assert await scheduler.drain(timeout=10) == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    outcomes = {r.account_id: (r.outcome, r.message) for r in scheduler.results}
    assert len(rig.refresh_calls()) == 1
    called, waited = (first, second) if outcomes[first][0] is Outcome.REFRESHED else (second, first)
    assert outcomes[called][0] is Outcome.REFRESHED
    assert outcomes[waited] == (Outcome.SKIPPED, "not started: kiro-tui was asked to stop")
    assert rig.store.get(waited).health is Health.OK  # nothing spent, nothing marked


async def test_a_wait_for_a_slot_that_would_eat_into_the_call_s_deadline_ends_unspent(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for a network slot may take only what the lease leaves beyond the call's
    deadline (0.3 s here): a refresh that waited longer is not started and is tried again soon."""
    first, second = (rig.add_own(kind="social", email=f"w{i}@example.com", expires_in=60)[0] for i in range(2))
    control(rig.emulator, "faults", {"latency_ms": 1500})
    refresher = rig.new_refresher(settings=Settings(concurrency=1))
    monkeypatch.setattr("kiro_tui.core.refresh.LEASE_SECONDS", refresher.deadline + 0.3)
    monkeypatch.setattr("kiro_tui.core.refresh.LEASE_MARGIN", 0.0)
    one, other = await asyncio.gather(refresher.refresh(first, force=True), refresher.refresh(second, force=True))
    assert one.outcome is Outcome.REFRESHED
    assert (other.outcome, other.message) == (Outcome.BUSY, "every network slot stayed busy: not started, "
                                                            "tried again soon")
    assert len(rig.refresh_calls()) == 1 and rig.store.get(second).health is Health.OK


async def test_a_call_that_could_outlast_the_lease_is_not_started(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """What is left of the lease when the slot is taken must hold the whole deadline and the
    margin; here it cannot, so the token is not spent."""
    (account_id, _) = rig.add_own(kind="social", email="late@example.com", expires_in=60)
    monkeypatch.setattr("kiro_tui.core.refresh.LEASE_SECONDS", rig.refresher.deadline + 1.0)
    result = await rig.refresher.refresh(account_id, force=True)
    assert (result.outcome, result.message) == (
        Outcome.BUSY, "too little of the lease was left for the call: not started, tried again soon")
    assert rig.refresh_calls() == [] and rig.store.get(account_id).health is Health.OK
    assert not rig.refresher.network.locked() and rig.refresher.started == set()


async def test_external_idp_route(rig: Rig) -> None:
    account_id, seeded = rig.add(kind="external-idp", email="ext@example.com")
    result = await rig.refresher.refresh(account_id, force=True)
    assert (result.outcome, result.status) == (Outcome.REFRESHED, Status.FRESH)
    assert rig.db.get_json("auth_kv", "kirocli:external-idp:token")["refresh_token"] == \
        rig.store.get(account_id).refresh_token  # type: ignore[union-attr]
    assert [r["operation"] for r in rig.emulator.requests()] == [None]  # the IdP's own token endpoint
    assert rig.emulator.requests()[0]["path"].endswith("/oauth2/v2.0/token")


async def test_refresh_history_is_bounded(rig: Rig) -> None:
    account_id, _ = rig.add(Mode.OWN, kind="social", email="many@example.com")
    for _ in range(REFRESH_LOG_KEEP + 5):
        assert (await rig.refresher.refresh(account_id, force=True)).outcome == Outcome.REFRESHED
    assert len(rig.store.refresh_history(account_id, limit=1000)) == REFRESH_LOG_KEEP
    assert rig.store.refresh_counts()[account_id] == (REFRESH_LOG_KEEP, 0)


async def test_suspended_account_stops_refreshing(rig: Rig) -> None:
    account_id, _ = rig.add(Mode.OWN, kind="social", email="ban@example.com")
    control(rig.emulator, "faults", {"path": "/refreshToken", "status": 403, "reason": "TEMPORARILY_SUSPENDED",
                                     "message": "Your account is temporarily suspended"})
    result = await rig.refresher.refresh(account_id, force=True)
    assert (result.status, result.classification) == (Status.SUSPENDED, "suspended")
    assert (await rig.refresher.refresh(account_id, force=True)).outcome == Outcome.SKIPPED
    assert rig.store.get(account_id).health is Health.SUSPENDED  # type: ignore[union-attr]
