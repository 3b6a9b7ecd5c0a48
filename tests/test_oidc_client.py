"""The SSO OIDC client against the emulator over loopback HTTP."""

from __future__ import annotations

import httpx
import pytest

from kiro_tui.core.aws.errors import (
    AccessDenied,
    AuthorizationPending,
    DeviceCodeExpired,
    ErrorClass,
    ServiceError,
    SlowDown,
)
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.models import BUILDER_ID_START_URL


@pytest.fixture
def oidc(http, endpoints) -> OidcClient:
    return OidcClient(http, endpoints)


async def test_device_flow_pending_slow_down_then_token(oidc: OidcClient, emulator, emulator_time) -> None:
    reg = await oidc.register_client("us-east-1")
    assert reg.client_id and reg.client_secret
    assert (reg.expires_at.timestamp() - emulator_time.now) == 90 * 86400
    auth = await oidc.start_device_authorization(reg, BUILDER_ID_START_URL)
    assert auth.verification_uri_complete.endswith(f"?user_code={auth.user_code}")
    assert auth.interval == 1 and auth.expires_in == 600
    with pytest.raises(AuthorizationPending) as pending:
        await oidc.create_token_device(reg, auth.device_code)
    assert pending.value.classification is ErrorClass.TRANSIENT
    with pytest.raises(SlowDown):
        await oidc.create_token_device(reg, auth.device_code)  # again within `interval`
    emulator_time.advance(1)
    httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": auth.user_code}).raise_for_status()
    token = await oidc.create_token_device(reg, auth.device_code)
    assert token.access_token.startswith("aoa") and token.refresh_token and token.refresh_token.startswith("aor")
    assert token.expires_in == 3600


async def test_denied_and_expired_codes(oidc: OidcClient, emulator, emulator_time) -> None:
    reg = await oidc.register_client("us-east-1")
    denied = await oidc.start_device_authorization(reg, BUILDER_ID_START_URL)
    httpx.post(f"{emulator.url}/_emulator/deny", json={"user_code": denied.user_code}).raise_for_status()
    with pytest.raises(AccessDenied):
        await oidc.create_token_device(reg, denied.device_code)
    expired = await oidc.start_device_authorization(reg, BUILDER_ID_START_URL)
    emulator_time.advance(601)
    with pytest.raises(DeviceCodeExpired) as info:
        await oidc.create_token_device(reg, expired.device_code)
    assert info.value.classification is ErrorClass.NEEDS_LOGIN


async def test_refresh_rotates_and_the_old_token_dies(oidc: OidcClient, emulator) -> None:
    seeded = emulator.seed(kind="builder-id", email="b@example.com")
    reg, token = seeded["device_registration"], seeded["token"]
    first = await oidc.refresh("us-east-1", reg["client_id"], reg["client_secret"], token["refresh_token"])
    assert first.refresh_token and first.refresh_token != token["refresh_token"]
    with pytest.raises(ServiceError) as info:
        await oidc.refresh("us-east-1", reg["client_id"], reg["client_secret"], token["refresh_token"])
    assert info.value.classification is ErrorClass.NEEDS_LOGIN
    assert info.value.code == "invalid_grant"
    assert token["refresh_token"] not in str(info.value)
    second = await oidc.refresh("us-east-1", reg["client_id"], reg["client_secret"], first.refresh_token)
    assert second.access_token != first.access_token


async def test_revoked_refresh_token_needs_login(oidc: OidcClient, emulator) -> None:
    seeded = emulator.seed(kind="idc", email="i@example.com", region="eu-west-1")
    httpx.post(f"{emulator.url}/_emulator/revoke", json={"email": "i@example.com"}).raise_for_status()
    reg, token = seeded["device_registration"], seeded["token"]
    with pytest.raises(ServiceError) as info:
        await oidc.refresh("eu-west-1", reg["client_id"], reg["client_secret"], token["refresh_token"])
    assert info.value.classification is ErrorClass.NEEDS_LOGIN


async def test_expired_registration_needs_login(oidc: OidcClient, emulator) -> None:
    seeded = emulator.seed(kind="builder-id", registration_expires_in=-60)
    reg, token = seeded["device_registration"], seeded["token"]
    with pytest.raises(ServiceError) as info:
        await oidc.refresh("us-east-1", reg["client_id"], reg["client_secret"], token["refresh_token"])
    assert (info.value.classification, info.value.code, info.value.status) == (
        ErrorClass.NEEDS_LOGIN, "invalid_client", 401)
    assert "Client is expired" in str(info.value)


@pytest.mark.parametrize(
    ("fault", "expected_status"),
    [
        ({"status": 500}, 500),
        ({"status": 503}, 503),
        ({"status": 429}, 429),
        ({"kind": "reset"}, None),
        ({"kind": "malformed"}, 200),
    ],
)
async def test_transient_failures(oidc: OidcClient, emulator, fault: dict, expected_status) -> None:
    seeded = emulator.seed(kind="builder-id")
    reg, token = seeded["device_registration"], seeded["token"]
    httpx.post(f"{emulator.url}/_emulator/faults", json={"path": "/token", "count": 1, **fault}).raise_for_status()
    with pytest.raises(ServiceError) as info:
        await oidc.refresh("us-east-1", reg["client_id"], reg["client_secret"], token["refresh_token"])
    assert info.value.classification is ErrorClass.TRANSIENT
    assert info.value.status == expected_status
    # the fault is spent and the token was not consumed: the next call works
    ok = await oidc.refresh("us-east-1", reg["client_id"], reg["client_secret"], token["refresh_token"])
    assert ok.access_token


async def test_timeout_is_transient(emulator, endpoints) -> None:
    from kiro_tui.core.aws.transport import make_http_client

    seeded = emulator.seed(kind="builder-id")
    reg, token = seeded["device_registration"], seeded["token"]
    httpx.post(f"{emulator.url}/_emulator/faults",
               json={"path": "/token", "kind": "timeout", "seconds": 5, "count": 1}).raise_for_status()
    async with make_http_client(timeout=0.3) as quick:
        with pytest.raises(ServiceError) as info:
            await OidcClient(quick, endpoints).refresh("us-east-1", reg["client_id"], reg["client_secret"],
                                                       token["refresh_token"])
    assert info.value.classification is ErrorClass.TRANSIENT
    assert "timed out" in str(info.value)


async def test_unknown_region_is_fatal_config_without_a_call(oidc: OidcClient, emulator) -> None:
    with pytest.raises(ServiceError) as info:
        await oidc.register_client("mars-north-1x")
    assert info.value.classification is ErrorClass.FATAL_CONFIG
    assert emulator.requests() == []


async def test_wrong_identity_center_region_is_fatal_config(oidc: OidcClient, emulator) -> None:
    seeded = emulator.seed(kind="idc", region="eu-west-1", start_url="https://d-1111111111.awsapps.com/start")
    assert seeded["kind"] == "idc"
    reg = await oidc.register_client("us-east-1")
    with pytest.raises(ServiceError) as info:
        await oidc.start_device_authorization(reg, "https://d-1111111111.awsapps.com/start")
    assert info.value.classification is ErrorClass.FATAL_CONFIG
    assert "Couldn't find Identity Center Instance" in str(info.value)
    right = await oidc.register_client("eu-west-1")
    auth = await oidc.start_device_authorization(right, "https://d-1111111111.awsapps.com/start")
    assert auth.user_code


async def test_connection_refused_is_transient(http) -> None:
    from kiro_tui.core.aws.endpoints import Endpoints

    dead = OidcClient(http, Endpoints(override="http://127.0.0.1:9"))
    with pytest.raises(ServiceError) as info:
        await dead.register_client("us-east-1")
    assert info.value.classification is ErrorClass.TRANSIENT
    assert "connection failed" in str(info.value)
