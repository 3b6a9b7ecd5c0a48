"""The device-code login flow in the core, against the emulator."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kiro_tui.core.aws.codewhisperer import QClient
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.transport import make_http_client
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.login import (
    TRANSIENT_BACKOFF,
    LoginError,
    LoginFlow,
    LoginRequest,
    PollStatus,
    last_request,
    remember_request,
    save_login,
)
from kiro_tui.core.models import BUILDER_ID_START_URL, Account, AuthMethod, Health, Mode
from kiro_tui.core.store import AccountStore
from tests.support.engine import at, control

IDC = "https://d-7777777777.awsapps.com/start"
PROFILES = [{"arn": "arn:aws:codewhisperer:us-east-1:1:profile/AAA", "name": "Dev"},
            {"arn": "arn:aws:codewhisperer:eu-central-1:1:profile/BBB", "name": "Prod EU"}]


@pytest.fixture
def flow(http, endpoints, emulator_time) -> tuple[LoginFlow, ManualClock]:
    clock = ManualClock(at(emulator_time.now))
    return LoginFlow(OidcClient(http, endpoints), QClient(http, endpoints), clock), clock


async def approve_soon(emulator, user_code: str) -> None:
    await asyncio.sleep(0)
    httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": user_code}).raise_for_status()


async def test_identity_center_login_with_two_profiles_is_saved_own(flow, emulator, emulator_time,
                                                                   tmp_path: Path) -> None:
    login_flow, clock = flow
    emulator.state.add_user("idc", email="dev@corp.example", region="eu-west-1", start_url=IDC, profiles=PROFILES)
    request = LoginRequest(IDC, "eu-west-1")
    login = await login_flow.start(request)
    assert login.verification_uri_complete.endswith(login.user_code)
    statuses = []
    waiter = asyncio.create_task(login_flow.wait_for_token(login, statuses.append))
    await asyncio.sleep(0.1)
    assert statuses and statuses[0].state == "waiting"
    await approve_soon(emulator, login.user_code)
    emulator_time.advance(login.interval)
    clock.advance(login.interval)
    token = await asyncio.wait_for(waiter, 5)
    listing = await login_flow.profiles(token.access_token)
    assert [(p.name, p.region) for p in listing.profiles] == [("Dev", "us-east-1"), ("Prod EU", "eu-central-1")]
    with AccountStore.open(tmp_path / "a.db") as store:
        account = save_login(store, login, token, listing.profiles[1], clock.now()).account
        remember_request(store, request)
        saved = store.get(account.id)
        assert saved is not None
        assert (saved.auth_method, saved.mode, saved.region, saved.start_url) == (
            AuthMethod.IDC, Mode.OWN, "eu-west-1", IDC)
        assert (saved.profile_name, saved.client_id) == ("Prod EU", login.registration.client_id)
        assert last_request(store) == request


async def test_slow_down_adds_five_seconds(flow, emulator) -> None:
    login_flow, clock = flow
    login = await login_flow.start(LoginRequest())
    statuses = []
    waiter = asyncio.create_task(login_flow.wait_for_token(login, statuses.append))
    await asyncio.sleep(0.05)  # first poll: pending
    emulator.state.devices[login.authorization.device_code].interval = 10  # the service wants slower polls
    clock.advance(1)
    await asyncio.sleep(0.05)
    assert [s.state for s in statuses] == ["waiting", "slow down"]
    assert login.interval == 6
    waiter.cancel()


async def test_denied_expired_and_cancelled(flow, emulator) -> None:
    login_flow, clock = flow
    denied = await login_flow.start(LoginRequest())
    httpx.post(f"{emulator.url}/_emulator/deny", json={"user_code": denied.user_code}).raise_for_status()
    with pytest.raises(LoginError, match="denied in the browser"):
        await login_flow.wait_for_token(denied)
    late = await login_flow.start(LoginRequest())
    clock.advance(601)
    with pytest.raises(LoginError, match="expired before it was approved"):
        await login_flow.wait_for_token(late)
    polls_before = len(emulator.requests())
    cancelled = await login_flow.start(LoginRequest())
    task = asyncio.create_task(login_flow.wait_for_token(cancelled))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    clock.advance(30)
    await asyncio.sleep(0.05)
    assert len(emulator.requests()) == polls_before + 3  # register, start, one poll: then nothing


async def test_wrong_region_bad_input_and_network_down(flow, emulator, http) -> None:
    login_flow, clock = flow
    emulator.state.add_user("idc", region="eu-west-1", start_url=IDC)
    with pytest.raises(LoginError, match="no IAM Identity Center at .* in us-east-1"):
        await login_flow.start(LoginRequest(IDC, "us-east-1"))
    with pytest.raises(LoginError, match="not an AWS region"):
        await login_flow.start(LoginRequest(IDC, "europe"))
    with pytest.raises(LoginError, match="must begin with https://"):
        await login_flow.start(LoginRequest("d-123.awsapps.com/start", "us-east-1"))
    dead = Endpoints(override="http://127.0.0.1:9")
    offline = LoginFlow(OidcClient(http, dead), QClient(http, dead), clock)
    with pytest.raises(LoginError, match="could not reach AWS"):
        await offline.start(LoginRequest())


async def test_logging_in_again_renews_the_account_instead_of_adding_one(flow, emulator, tmp_path: Path) -> None:
    login_flow, clock = flow
    emulator.state.add_user("builder-id", email="same@example.com")
    with AccountStore.open(tmp_path / "a.db") as store:
        ids = []
        for replaces in (None, None):
            login = await login_flow.start(LoginRequest(replaces=replaces))
            httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
            token = await login_flow.wait_for_token(login)
            email = await login_flow.email(token.access_token, None)
            assert email == "same@example.com"
            ids.append(save_login(store, login, token, None, clock.now(), email).account.id)
        assert ids[0] == ids[1] and len(store.accounts()) == 1
        dead = store.get(ids[0])
        assert dead is not None
        store.update(dead.id, email=None, health=Health.NEEDS_LOGIN)
        login = await login_flow.start(LoginRequest(replaces=dead.id))
        httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
        token = await login_flow.wait_for_token(login)
        renewed = save_login(store, login, token, None, clock.now(), None).account
        assert renewed.id == dead.id and len(store.accounts()) == 1
        assert store.get(dead.id).health is Health.OK  # type: ignore[union-attr]
        # each login is in the account's history (newest first), and is not counted as a refresh
        assert [entry.outcome for entry in store.refresh_history(dead.id)] == ["logged-in"] * 3
        assert store.refresh_counts().get(dead.id, (0, 0)) == (0, 0)


async def test_logging_in_again_as_someone_else_leaves_the_dead_account_alone(flow, emulator,
                                                                             tmp_path: Path) -> None:
    login_flow, clock = flow
    emulator.state.add_user("builder-id", email="erin@example.com")  # who signs in at this portal
    with AccountStore.open(tmp_path / "a.db") as store:
        dave = Account(id="d4fe9913", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGdave:sig",
                       refresh_token="aorAAAAAGdave:sig", expires_at=clock.now(), email="dave@example.com",
                       health=Health.NEEDS_LOGIN, mode=Mode.OWN)
        store.save(dave)
        login = await login_flow.start(LoginRequest(replaces=dave.id))
        httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
        token = await login_flow.wait_for_token(login)
        email = await login_flow.email(token.access_token, None)
        saved = save_login(store, login, token, None, clock.now(), email).account
        assert saved.id != dave.id and saved.email == "erin@example.com"
        assert store.get(dave.id) == dave  # untouched: still dave, still needs a login
        assert len(store.accounts()) == 2


async def test_logging_in_again_as_another_account_holder_renews_that_account_only_when_asked_to(
        flow, emulator, tmp_path: Path) -> None:
    from kiro_tui.core.login import RenewsAnother

    login_flow, clock = flow
    emulator.state.add_user("builder-id", email="team@example.com")  # who signs in
    with AccountStore.open(tmp_path / "a.db") as store:
        dave = Account(id="d4fe9913", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGdave:sig",
                       refresh_token="aorAAAAAGdave:sig", expires_at=clock.now(), email="dave@example.com",
                       health=Health.NEEDS_LOGIN, mode=Mode.OWN)
        team = Account(id="7ea70001", auth_method=AuthMethod.BUILDER_ID, access_token="aoaAAAAAGteam:sig",
                       refresh_token="aorAAAAAGteam:sig", expires_at=clock.now(), email="team@example.com",
                       mode=Mode.SYNC, source="kiro-cli", source_key="kirocli:odic:token")
        store.save(dave)
        store.save(team)
        login = await login_flow.start(LoginRequest(replaces=dave.id))
        httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
        token = await login_flow.wait_for_token(login)
        email = await login_flow.email(token.access_token, None)
        with pytest.raises(RenewsAnother) as asked:
            save_login(store, login, token, None, clock.now(), email)
        assert (asked.value.meant.id, asked.value.other.id) == (dave.id, team.id)
        assert "not dave@example.com: that is account 7ea70001 (team@example.com, sync mode)" in str(asked.value)
        assert store.get(team.id) == team and store.get(dave.id) == dave  # nothing saved yet
        renewed = save_login(store, login, token, None, clock.now(), email, renew_other=True).account
        assert renewed.id == team.id and renewed.mode is Mode.OWN  # the person said yes
        assert store.get(dave.id) == dave


# ---------------------------------------------------------------- passing trouble while polling


class SleepRecordingClock(ManualClock):
    """A ManualClock that remembers how long each sleep was: how long the poller chose to wait."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await super().sleep(seconds)


class PollStatuses:
    """The statuses `wait_for_token` reports. When `next` returns one, the poller has reported it
    and is asleep on the clock (it does not yield in between): the test decides when it polls again."""

    def __init__(self) -> None:
        self.seen: list[PollStatus] = []
        self._queue: asyncio.Queue[PollStatus] = asyncio.Queue()

    def __call__(self, status: PollStatus) -> None:
        self.seen.append(status)
        self._queue.put_nowait(status)

    async def next_or_end(self, waiter: asyncio.Task) -> PollStatus | None:
        """The next status, or None once the poller has ended (`waiter` is then done)."""
        getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({getter, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        assert waiter.done(), "the poller neither reported nor ended within 10 s"
        return None

    async def next(self, waiter: asyncio.Task) -> PollStatus:
        status = await self.next_or_end(waiter)
        assert status is not None, f"the poller ended instead of reporting: {waiter.exception()!r}"
        return status


@pytest.fixture
def sleepy_flow(http, endpoints, emulator_time) -> tuple[LoginFlow, SleepRecordingClock]:
    clock = SleepRecordingClock(at(emulator_time.now))
    return LoginFlow(OidcClient(http, endpoints), QClient(http, endpoints), clock), clock


def backoff(trouble: int) -> float:
    """How long the poller should wait after the n-th passing failure in a row (n from 1)."""
    first, ceiling = TRANSIENT_BACKOFF
    return min(ceiling, first * 2 ** (trouble - 1))


def token_polls(emulator) -> list[object]:
    return [r["status"] for r in emulator.requests() if r["operation"] == "CreateToken"]


async def test_server_errors_while_polling_are_waited_out_and_reported(sleepy_flow, emulator, emulator_time) -> None:
    login_flow, clock = sleepy_flow
    login = await login_flow.start(LoginRequest())
    control(emulator, "faults", {"path": "/token", "status": 500, "count": 2})
    control(emulator, "approve", {"user_code": login.user_code})
    statuses = PollStatuses()
    waiter = asyncio.create_task(login_flow.wait_for_token(login, statuses))
    for trouble in (1, 2):
        status = await statuses.next(waiter)
        assert status.state.startswith("trouble reaching AWS (") and "server_error" in status.state
        assert status.state.endswith(f"trying again in {backoff(trouble):g} s")
        assert clock.slept[-1] == backoff(trouble)  # and it does wait that long
        clock.advance(backoff(trouble))
        emulator_time.advance(backoff(trouble))
    token = await asyncio.wait_for(waiter, 10)
    assert token.access_token and token_polls(emulator) == [500, 500, 200]
    assert len(statuses.seen) == 2


async def test_a_reset_and_a_timeout_while_polling_are_waited_out(endpoints, emulator, emulator_time) -> None:
    clock = SleepRecordingClock(at(emulator_time.now))
    async with make_http_client(timeout=0.5) as http:  # the injected hang (30 s) outlasts it
        login_flow = LoginFlow(OidcClient(http, endpoints), QClient(http, endpoints), clock)
        login = await login_flow.start(LoginRequest())
        control(emulator, "faults", {"path": "/token", "kind": "reset", "count": 1})
        control(emulator, "faults", {"path": "/token", "kind": "timeout", "seconds": 30, "count": 1})
        control(emulator, "approve", {"user_code": login.user_code})
        statuses = PollStatuses()
        waiter = asyncio.create_task(login_flow.wait_for_token(login, statuses))
        for trouble, words in ((1, "connection failed"), (2, "timed out")):
            status = await statuses.next(waiter)
            assert status.state.startswith("trouble reaching AWS (") and words in status.state
            clock.advance(backoff(trouble))
            emulator_time.advance(backoff(trouble))
        token = await asyncio.wait_for(waiter, 10)
    assert token.access_token and token_polls(emulator) == ["reset", "timeout", 200]


async def test_passing_trouble_is_retried_with_growing_waits_until_the_code_expires(sleepy_flow, emulator) -> None:
    login_flow, clock = sleepy_flow
    login = await login_flow.start(LoginRequest())
    control(emulator, "faults", {"path": "/token", "status": 503, "count": 1000})
    statuses = PollStatuses()
    waiter = asyncio.create_task(login_flow.wait_for_token(login, statuses))
    while (status := await statuses.next_or_end(waiter)) is not None:  # each turn moves the clock on
        assert status.state.startswith("trouble reaching AWS")
        clock.advance(clock.slept[-1])
    with pytest.raises(LoginError, match="expired before it was approved"):
        await waiter
    assert login.expires_at <= clock.now() < login.expires_at + timedelta(seconds=TRANSIENT_BACKOFF[1])
    assert clock.slept == [backoff(n) for n in range(1, len(clock.slept) + 1)]  # doubling, up to the ceiling
    assert len(token_polls(emulator)) == len(statuses.seen) == len(clock.slept)


async def test_access_denied_after_passing_trouble_still_ends_the_login_at_once(sleepy_flow, emulator,
                                                                                emulator_time) -> None:
    login_flow, clock = sleepy_flow
    login = await login_flow.start(LoginRequest())
    control(emulator, "faults", {"path": "/token", "status": 500, "count": 1})
    control(emulator, "deny", {"user_code": login.user_code})
    statuses = PollStatuses()
    waiter = asyncio.create_task(login_flow.wait_for_token(login, statuses))
    await statuses.next(waiter)
    clock.advance(backoff(1))
    emulator_time.advance(backoff(1))
    with pytest.raises(LoginError, match="denied in the browser"):
        await asyncio.wait_for(waiter, 10)
    assert token_polls(emulator) == [500, 400]  # no poll after the denial
    assert len(statuses.seen) == 1 and clock.slept == [backoff(1)]


@pytest.mark.parametrize("start_url", [None, "  ", BUILDER_ID_START_URL])
async def test_a_builder_id_login_always_goes_to_us_east_1(flow, emulator, tmp_path: Path, start_url) -> None:
    """The login form remembers the region of the last IdC login (eu-west-1); Builder ID lives in us-east-1."""
    login_flow, clock = flow
    login = await login_flow.start(LoginRequest(start_url, "eu-west-1"))
    control(emulator, "approve", {"user_code": login.user_code})
    token = await login_flow.wait_for_token(login)
    with AccountStore.open(tmp_path / "a.db") as store:
        account = save_login(store, login, token, None, clock.now()).account
    assert (account.auth_method, account.region) == (AuthMethod.BUILDER_ID, "us-east-1")
    assert [(r["operation"], r["region"]) for r in emulator.requests()] == [
        ("RegisterClient", "us-east-1"), ("StartDeviceAuthorization", "us-east-1"), ("CreateToken", "us-east-1")]


async def test_logging_in_again_over_an_imported_login_detaches_the_other_session(flow, emulator,
                                                                                   tmp_path: Path) -> None:
    """The person's kiro-cli login and kiro-tui's new one are two sessions (two registrations):
    the account becomes kiro-tui's own, and a later import neither undoes the profile picked
    nor makes kiro-cli's older session a place of it again."""
    from kiro_tui.core.importer import import_snapshot
    from kiro_tui.core.places.kiro_cli import read_kiro_cli
    from tests.support.engine import seed_into_kiro_cli
    from tests.support.kiro_cli_db import KiroCliDb

    login_flow, clock = flow
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="idc", email="pat@acme.example", start_url=IDC, profiles=PROFILES)
    with AccountStore.open(tmp_path / "a.db") as store:
        (item,) = import_snapshot(store, read_kiro_cli(db.path, clock.now()), clock.now(), Mode.SYNC).imported
        store.update(item.id, email="pat@acme.example", profile_arn=PROFILES[0]["arn"], profile_name="Dev")
        login = await login_flow.start(LoginRequest(IDC, "us-east-1"))
        httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
        token = await login_flow.wait_for_token(login)
        prod = (await login_flow.profiles(token.access_token)).profiles[1]
        renewed = save_login(store, login, token, prod, clock.now(), "pat@acme.example").account
        assert renewed.id == item.id and renewed.mode is Mode.OWN and store.places(item.id) == []
        report = import_snapshot(store, read_kiro_cli(db.path, clock.now()), clock.now(), Mode.SYNC)
        assert not report.imported and "an older session of account" in report.skipped[0].reason
        after = store.get(item.id)
        assert (after.profile_arn, after.refresh_token) == (prod.arn, token.refresh_token)  # type: ignore[union-attr]
        assert store.places(item.id) == [] and len(store.accounts()) == 1
        # kiro-cli refreshes its own session (its own client): still that session, still left be
        row = db.get_json("auth_kv", "kirocli:odic:token")
        registration = db.get_json("auth_kv", "kirocli:odic:device-registration")
        answer = httpx.post(f"{emulator.url}/token", json={
            "grantType": "refresh_token", "clientId": registration["client_id"],
            "clientSecret": registration["client_secret"], "refreshToken": row["refresh_token"]}).json()
        db.set_json("auth_kv", "kirocli:odic:token", {**row, "access_token": answer["accessToken"],
                                                      "refresh_token": answer["refreshToken"]})
        report = import_snapshot(store, read_kiro_cli(db.path, clock.now()), clock.now(), Mode.SYNC, automatic=True)
        assert not report.imported and "an older session of account" in report.skipped[0].reason
        assert len(store.accounts()) == 1 and store.get(item.id).refresh_token == token.refresh_token  # type: ignore[union-attr]
