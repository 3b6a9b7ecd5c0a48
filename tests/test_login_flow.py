"""The device-code login flow in the core, against the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from kiro_tui.core.aws.codewhisperer import QClient
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.login import LoginError, LoginFlow, LoginRequest, last_request, remember_request, save_login
from kiro_tui.core.models import Account, AuthMethod, Health, Mode
from kiro_tui.core.store import AccountStore
from tests.support.engine import at

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


async def test_identity_center_login_with_two_profiles_is_saved_own(flow, emulator, emulator_time, tmp_path: Path) -> None:
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
        account = save_login(store, login, token, listing.profiles[1], clock.now())
        remember_request(store, request)
        saved = store.get(account.id)
        assert saved is not None
        assert (saved.auth_method, saved.mode, saved.region, saved.start_url) == (AuthMethod.IDC, Mode.OWN, "eu-west-1", IDC)
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
            ids.append(save_login(store, login, token, None, clock.now(), email).id)
        assert ids[0] == ids[1] and len(store.accounts()) == 1
        dead = store.get(ids[0])
        assert dead is not None
        store.update(dead.id, email=None, health=Health.NEEDS_LOGIN)
        login = await login_flow.start(LoginRequest(replaces=dead.id))
        httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
        token = await login_flow.wait_for_token(login)
        renewed = save_login(store, login, token, None, clock.now(), None)
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
        saved = save_login(store, login, token, None, clock.now(), email)
        assert saved.id != dave.id and saved.email == "erin@example.com"
        assert store.get(dave.id) == dave  # untouched: still dave, still needs a login
        assert len(store.accounts()) == 2
