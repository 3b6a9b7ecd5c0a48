"""CodeWhisperer's own quirks (issue 21), against the emulator over HTTP: its 403 "bearer token
... invalid" where 401 is meant gets one refresh and one retry and changes no status by itself;
an external IdP's token is sent with `TokenType: EXTERNAL_IDP`, without which it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiro_tui.core.models import Health
from kiro_tui.demo import account_from_seed
from tests.support.engine import at, control

BEARER_INVALID = {"path": "GetUsageLimits", "status": 403, "error_type": "AccessDeniedException",
                  "message": "The bearer token included in the request is invalid."}


@pytest.fixture
async def engine(isolated_dirs: Path, emulator, emulator_time, http, endpoints):
    from kiro_tui.core.clock import ManualClock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.store import AccountStore

    with AccountStore.open(isolated_dirs / "store" / "accounts.db") as store:
        yield Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, None, http=http,
                     fetch_usage=False)


def _operations(emulator) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(r["operation"], r["status"]) for r in emulator.requests()
            if r["operation"] in ("GetUsageLimits", "RefreshToken", "CreateToken")]


async def test_a_403_bearer_invalid_gets_one_refresh_and_one_retry(engine, emulator) -> None:
    account = account_from_seed(emulator.seed(kind="social", email="quirk@example.com"), "accq403")
    engine.store.save(account)
    control(emulator, "faults", {**BEARER_INVALID, "count": 1})

    record = await engine.fetch_usage_now(account.id)

    assert record is not None and record.error is None and record.limit  # the retry's figures
    assert _operations(emulator) == [("GetUsageLimits", 403), ("RefreshToken", 200), ("GetUsageLimits", 200)]
    after = engine.store.get(account.id)
    assert after.health is Health.OK and after.refresh_token != account.refresh_token  # the rotation kept


async def test_a_403_that_stays_is_reported_once_and_changes_no_status(engine, emulator) -> None:
    account = account_from_seed(emulator.seed(kind="builder-id", email="stays@example.com"), "accq403b")
    engine.store.save(account)
    control(emulator, "faults", {**BEARER_INVALID, "count": 5})

    record = await engine.fetch_usage_now(account.id)

    assert record is not None and "bearer token" in (record.error or "")
    assert _operations(emulator) == [("GetUsageLimits", 403), ("CreateToken", 200), ("GetUsageLimits", 403)]
    assert engine.store.get(account.id).health is Health.OK  # one refresh and one retry, no verdict


async def test_an_external_idp_token_is_sent_with_its_token_type(engine, emulator) -> None:
    account = account_from_seed(emulator.seed(kind="external-idp", email="entra@example.com"), "accqext")
    engine.store.save(account)

    record = await engine.fetch_usage_now(account.id)

    assert record is not None and record.error is None
    assert _operations(emulator) == [("GetUsageLimits", 200)]  # taken at once: no refresh, no retry
    (call,) = [r for r in emulator.requests() if r["operation"] == "GetUsageLimits"]
    assert call["email"] == "entra@example.com"
