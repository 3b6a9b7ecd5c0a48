"""kiro-cli 2.12's schema and the kiro-cli-format findings of issue 21, on rows shaped exactly as
each writer leaves them: every row kiro-tui writes (the emulator's kiro-cli shapes, a gateway-db
file, the sync write-back over an older row) is one a 2.12 reader loads; older rows still read;
gateway-db keeps kiro-cli's `auth.idc.*` state keys, and an IdC login an older kiro-gateway
rewrote is still that IdC login."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiro_tui.core.importer import default_label
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import AuthMethod
from kiro_tui.core.places import FORMATS, TokenCopy, WriteOutcome
from kiro_tui.core.places import kiro_cli_format as fmt
from kiro_tui.core.places.base import PlaceLogin
from kiro_tui.core.places.kiro_cli import read_kiro_cli
from kiro_tui.demo import account_from_seed
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.places import IDC_PROFILES, IDC_START_URL
from tests.support.standins import rust_parse

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class Refused(Exception):
    pass


def loads_in_kiro_cli_2_12(auth_kv: dict[str, dict]) -> list[str]:
    """What kiro-cli 2.12 requires of its rows (peer-formats.md: chaogei/Kiro-account-manager PR
    #121, hj01857655 PR #140; the serde structs of kiro-cli-storage.md §4): the token keys it
    loads; raises Refused naming the field it would choke on."""
    loaded = []
    for key, value in auth_kv.items():
        if key == fmt.SOCIAL_TOKEN_KEY:
            if value.get("provider") not in ("google", "github", "Google", "Github", "GitHub"):
                raise Refused(f"{key}: provider {value.get('provider')!r}")
            if not value.get("profile_arn"):
                raise Refused(f"{key}: profile_arn missing")
        elif key == fmt.OIDC_TOKEN_KEY:
            registration = auth_kv.get(fmt.OIDC_REGISTRATION_KEY)
            if value.get("oauth_flow") not in ("DeviceCode", "Pkce", "PKCE"):
                raise Refused(f"{key}: oauth_flow {value.get('oauth_flow')!r}")
            if registration is None or not registration.get("client_secret_expires_at"):
                raise Refused(f"{fmt.OIDC_REGISTRATION_KEY}: client_secret_expires_at missing")
            rust_parse(registration["client_secret_expires_at"])
            if registration.get("oauth_flow") != value["oauth_flow"]:
                raise Refused(f"{fmt.OIDC_REGISTRATION_KEY}: oauth_flow differs from the token's")
            if (registration.get("region") or "us-east-1") != (value.get("region") or "us-east-1"):
                raise Refused(f"{fmt.OIDC_REGISTRATION_KEY}: region differs from the token's")
        else:
            continue
        rust_parse(value["expires_at"])
        loaded.append(key)
    return loaded


def _seed(emulator, kind: str) -> dict:  # type: ignore[no-untyped-def]
    if kind == "idc":
        return emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1", start_url=IDC_START_URL,
                             profiles=IDC_PROFILES)
    return emulator.seed(kind=kind, email=f"{kind}@example.com", profiles=[])  # social: no profile handed out


@pytest.mark.parametrize("kind", ["social", "builder-id", "idc"])
def test_the_emulators_kiro_cli_rows_load_in_2_12(kind: str, emulator) -> None:
    seeded = _seed(emulator, kind)
    assert loads_in_kiro_cli_2_12(seeded["auth_kv"]) == [seeded["token_key"]]
    if kind == "social":  # kiro-cli's own default profile, as kiro-cli writes when the login had none
        assert seeded["token"]["profile_arn"] == fmt.DEFAULT_SOCIAL_PROFILE_ARN


@pytest.mark.parametrize("kind", ["social", "builder-id", "idc"])
def test_a_gateway_db_file_loads_in_2_12(kind: str, emulator, tmp_path: Path) -> None:
    account = account_from_seed(_seed(emulator, kind), "acc212")
    created = FORMATS["gateway-db"].create(tmp_path / "gw.sqlite3", account)
    with sqlite3.connect(created.path) as conn:
        rows = {key: json.loads(value) for key, value in conn.execute("SELECT key, value FROM auth_kv")}
    assert loads_in_kiro_cli_2_12(rows) == [created.entry]


# An older writer's rows (kiro-cli 1.x, or a tool that wrote only what it knew): 2.12 refuses them.
OLD_ROWS = {
    "social": {fmt.SOCIAL_TOKEN_KEY: {"access_token": "aoa-old", "expires_at": "2026-06-01T01:00:00.5Z",
                                      "refresh_token": "aor-old"}},
    "builder-id": {
        fmt.OIDC_TOKEN_KEY: {"access_token": "aoa-old", "expires_at": "2026-06-01T01:00:00.5Z",
                             "refresh_token": "aor-old", "region": "us-east-1", "start_url": None,
                             "scopes": ["codewhisperer:completions"]},
        fmt.OIDC_REGISTRATION_KEY: {"client_id": "cid-old", "client_secret": "sec-old",
                                    "client_secret_expires_at": None, "region": "us-east-1"}},
}


@pytest.mark.parametrize("kind", ["social", "builder-id"])
def test_the_sync_write_back_completes_an_older_row_for_2_12(kind: str, tmp_path: Path) -> None:
    rows = OLD_ROWS[kind]
    with pytest.raises(Refused):
        loads_in_kiro_cli_2_12(rows)
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    for key, value in rows.items():
        db.set_json("auth_kv", key, value)
    key = next(iter(rows))
    copy = TokenCopy("aoa-new", "aor-new", datetime(2026, 6, 1, 2, 0, 0, 120000, tzinfo=UTC),
                     "arn:aws:codewhisperer:us-east-1:111122223333:profile/OWN" if kind == "social" else None,
                     AuthMethod(kind), "github" if kind == "social" else None, None, None,
                     None if kind == "social" else "cid-old", None if kind == "social" else "sec-old",
                     None if kind == "social" else datetime(2026, 8, 30, 0, 0, tzinfo=UTC))

    result = FORMATS["kiro-cli"].write_token(db.path, key, copy, lambda held: held == fingerprint("aor-old"), 1.0)

    assert result.outcome is WriteOutcome.WRITTEN, result.detail
    with sqlite3.connect(db.path) as conn:
        after = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM auth_kv")}
    assert loads_in_kiro_cli_2_12(after) == [key]
    assert after[key]["refresh_token"] == "aor-new" and after[key]["expires_at"] == "2026-06-01T02:00:00.120000Z"
    if kind == "builder-id":
        assert after[fmt.OIDC_REGISTRATION_KEY]["client_secret_expires_at"] == "2026-08-30T00:00:00.000000Z"
        assert after[key]["oauth_flow"] == after[fmt.OIDC_REGISTRATION_KEY]["oauth_flow"] == "DeviceCode"
    else:
        assert (after[key]["provider"], after[key]["profile_arn"]) == ("github", copy.profile_arn)


def test_older_rows_still_read(tmp_path: Path) -> None:
    db = KiroCliDb(tmp_path / "data.sqlite3")
    for key, value in OLD_ROWS["social"].items():
        db.set_json("auth_kv", key, value)
    (login,) = read_kiro_cli(db.path, NOW).logins
    assert login.auth_method is AuthMethod.SOCIAL and login.refresh_token == "aor-old"
    assert login.expires_at == datetime(2026, 6, 1, 1, 0, 0, 500000, tzinfo=UTC)


def test_gateway_db_keeps_the_idc_state_keys_and_an_older_gateways_rewrite_stays_idc(emulator,
                                                                                      tmp_path: Path) -> None:
    account = account_from_seed(_seed(emulator, "idc"), "accgwidc")
    created = FORMATS["gateway-db"].create(tmp_path / "gw.sqlite3", account)
    with sqlite3.connect(created.path) as conn:
        state = dict(conn.execute("SELECT key, value FROM state"))
    assert json.loads(state["auth.idc.start-url"]) == IDC_START_URL  # JSON strings, as kiro-cli keeps them
    assert json.loads(state["auth.idc.region"]) == "eu-west-1"

    # An older kiro-gateway refreshes and replaces the whole value with its own shape.
    rewritten = {"access_token": "aoa-gw", "refresh_token": "aor-gw", "expires_at": "2026-06-01T01:00:00+00:00",
                 "region": "eu-west-1", "scopes": account.scopes}
    with sqlite3.connect(created.path) as conn:
        conn.execute("UPDATE auth_kv SET value = ? WHERE key = ?", (json.dumps(rewritten), created.entry))

    (login,) = read_kiro_cli(created.path, NOW).logins
    assert login.auth_method is AuthMethod.IDC and login.start_url == IDC_START_URL  # not "Builder ID, eu-west-1"
    assert (login.region, login.client_id, login.needs_login) == ("eu-west-1", account.client_id, None)


def test_a_stale_idc_state_key_does_not_turn_kiro_clis_own_builder_id_row_into_idc(emulator, tmp_path: Path) -> None:
    seeded = _seed(emulator, "builder-id")
    db = KiroCliDb(tmp_path / "data.sqlite3")
    for key, value in seeded["auth_kv"].items():
        db.set_json("auth_kv", key, value)
    db.set_json("state", "auth.idc.start-url", IDC_START_URL)  # left behind by an earlier IdC login
    db.set_json("state", "auth.idc.region", "us-east-1")
    (login,) = read_kiro_cli(db.path, NOW).logins
    assert login.auth_method is AuthMethod.BUILDER_ID and login.start_url is None


def test_an_idc_login_with_no_start_url_is_labelled_once() -> None:
    login = PlaceLogin("kirocli:odic:token", AuthMethod.IDC, "a", NOW, "r")
    assert default_label(login) == "IdC (kiro-cli)"
    login.start_url = IDC_START_URL
    assert default_label(login) == "IdC d-9067c1a2b3 (kiro-cli)"


async def test_a_rewritten_idc_login_with_no_state_keys_is_still_its_account(emulator, emulator_time, http,
                                                                             endpoints, tmp_path: Path) -> None:
    """Whatever the rewrite dropped (start_url, oauth_flow) and the state keys lost, the login
    carrying the account's own client registration is that account, not a new Builder ID one."""
    from kiro_tui.core.clock import ManualClock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.store import AccountStore
    from tests.support.engine import at

    account = account_from_seed(_seed(emulator, "idc"), "accrwidc")
    created = FORMATS["gateway-db"].create(tmp_path / "gw.sqlite3", account)
    rewritten = {"access_token": "aoa-gw", "refresh_token": "aor-gw",
                 "expires_at": account.expires_at.isoformat(), "region": "eu-west-1", "scopes": account.scopes}
    with sqlite3.connect(created.path) as conn:
        conn.execute("UPDATE auth_kv SET value = ? WHERE key = ?", (json.dumps(rewritten), created.entry))
        conn.execute("DELETE FROM state WHERE key LIKE 'auth.idc.%'")
    (login,) = read_kiro_cli(created.path, NOW).logins
    assert login.auth_method is AuthMethod.BUILDER_ID and login.client_id == account.client_id  # all it says

    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        store.save(account)
        engine = Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, None, http=http,
                        fetch_usage=False)
        report = await engine.import_now(created.path, "gateway-db")
        assert [item.id for item in report.imported] == [account.id]
        kept = store.get(account.id)
        assert kept.auth_method is AuthMethod.IDC and kept.start_url == IDC_START_URL
