"""The Kiro IDE's own rules (issue 21), on files shaped exactly as the IDE writes and reads them:
its clientIdHash formula, the registration it must find, the 15-minute lead over its own
refresh loop, no BOM, mode 0600, no symbolic link, and its newer external-IdP logins."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import AuthMethod, Place, PlaceRole
from kiro_tui.core.places import FORMATS, TokenCopy, WriteOutcome, effective_window
from kiro_tui.core.places.kiro_ide import ide_client_id_hash
from kiro_tui.demo import account_from_seed
from tests.support.engine import at
from tests.support.places import (
    BUILDER_ID_START_URL,
    IDC_PROFILES,
    IDC_START_URL,
    ide_registration_hash,
    js_iso,
    js_stringify,
    seed,
    write_kiro_ide,
)
from tests.support.standins import js_parse

IDE = FORMATS["kiro-ide"]
BUILDER_ID_HASH = "e909a0580879b06ece1202964fbe9dda95ea4ce3"  # the IDE's Builder ID value, seen in the wild
NEW_EXPIRY = datetime(2027, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)


def test_the_client_id_hash_is_the_ides_formula() -> None:
    assert ide_client_id_hash(BUILDER_ID_START_URL) == BUILDER_ID_HASH
    assert ide_client_id_hash("https://amzn.awsapps.com/start") == "06df7ec90decadd0c5dd4ed2f245b2a59d1d8826"
    assert ide_client_id_hash(IDC_START_URL) == ide_registration_hash(IDC_START_URL)  # JSON.stringify, no spaces


@pytest.mark.parametrize("auth", ["builder-id", "idc"])
def test_a_new_ide_file_names_its_registration_as_the_ide_does(auth: str, emulator, isolated_dirs: Path) -> None:
    seeded = (emulator.seed(kind="idc", email="team@acme.example", region="eu-west-1", start_url=IDC_START_URL,
                            profiles=IDC_PROFILES) if auth == "idc" else emulator.seed(kind=auth))
    account = account_from_seed(seeded, "acc1ide")
    folder = isolated_dirs / ".aws" / "sso" / "cache"

    created = IDE.create(folder, account)

    raw = created.path.read_bytes()
    token = json.loads(raw)
    expected_hash = BUILDER_ID_HASH if auth == "builder-id" else ide_registration_hash(IDC_START_URL)
    assert token["clientIdHash"] == expected_hash
    assert token["authMethod"] == "IdC" and token["provider"] == ("BuilderId" if auth == "builder-id" else "Enterprise")
    assert token["region"] == account.region  # the OIDC region (eu-west-1), not the profile's eu-central-1
    assert "profileArn" not in token  # the IDE keeps an IdC profile in its own profile.json
    assert js_parse(token["expiresAt"]) == pytest.approx(account.expires_at.timestamp(), abs=0.001)
    assert token["expiresAt"].endswith("Z") and len(token["expiresAt"].split(".")[1]) == 4  # 3 digits and Z
    assert not raw.startswith(b"\xef\xbb\xbf")
    registration = folder / f"{expected_hash}.json"
    assert json.loads(registration.read_text())["clientId"] == account.client_id
    for path in (created.path, registration):
        assert path.stat().st_mode & 0o777 == 0o600 and not path.is_symlink()
    assert IDE.read_entry(created.path, "", datetime.now(UTC)).needs_login is None


def _belongs(token: str):  # type: ignore[no-untyped-def]
    return lambda held: held == fingerprint(token)


def test_a_write_recreates_the_registration_the_ide_lost(emulator, isolated_dirs: Path) -> None:
    """The IDE deletes `<clientIdHash>.json` when it logs out; another tool may never have
    written it. Without it the IDE's next refresh fails, so every write puts it back."""
    login = seed(emulator, "builder-id")
    token_file = write_kiro_ide(isolated_dirs, login)
    registration = isolated_dirs / f"{BUILDER_ID_HASH}.json"
    registration.unlink()
    account = account_from_seed(emulator.seed(kind="builder-id"), "acc2ide")
    copy = TokenCopy.of(account)

    result = IDE.write_token(token_file, "", copy, _belongs(login.refresh_token), 1.0)

    assert result.outcome is WriteOutcome.WRITTEN, result.detail
    written = json.loads(registration.read_text())
    assert (written["clientId"], written["clientSecret"]) == (account.client_id, account.client_secret)
    assert written["expiresAt"] == js_iso(account.client_secret_expires_at)
    assert registration.stat().st_mode & 0o777 == 0o600
    registration.unlink()  # and again when the token file already held this token (nothing else to write)
    assert IDE.write_token(token_file, "", copy, _belongs(account.refresh_token), 1.0).outcome is WriteOutcome.UNCHANGED
    assert json.loads(registration.read_text())["clientId"] == account.client_id


def test_a_file_naming_its_registration_by_the_old_hash_is_set_right(emulator, isolated_dirs: Path) -> None:
    """kiro-tui used to name the registration sha1(client id), which the IDE never produces: the
    next write names it the IDE's way and puts the registration there; reading still takes the
    hash the file gives."""
    import hashlib

    account = account_from_seed(emulator.seed(kind="builder-id"), "acc3ide")
    old_hash = hashlib.sha1(account.client_id.encode()).hexdigest()
    isolated_dirs.mkdir(parents=True, exist_ok=True)
    token_file = isolated_dirs / "kiro-auth-token.json"
    token_file.write_text(js_stringify({"accessToken": account.access_token, "refreshToken": account.refresh_token,
                                        "expiresAt": js_iso(account.expires_at), "clientIdHash": old_hash,
                                        "authMethod": "IdC", "provider": "BuilderId", "region": "us-east-1"}, 2))
    (isolated_dirs / f"{old_hash}.json").write_text(js_stringify(
        {"clientId": account.client_id, "clientSecret": account.client_secret}, 2))
    assert IDE.read_entry(token_file, "", datetime.now(UTC)).client_id == account.client_id  # the file's hash

    copy = TokenCopy.of(account)
    refreshed = TokenCopy(**{**copy.__dict__, "access_token": "aoa-new", "refresh_token": "aor-new",
                             "expires_at": NEW_EXPIRY})
    assert IDE.write_token(token_file, "", refreshed, _belongs(account.refresh_token), 1.0).outcome \
        is WriteOutcome.WRITTEN

    token = json.loads(token_file.read_text())
    assert token["clientIdHash"] == BUILDER_ID_HASH and token["expiresAt"] == "2027-03-04T05:06:07.891Z"
    assert json.loads((isolated_dirs / f"{BUILDER_ID_HASH}.json").read_text())["clientId"] == account.client_id
    assert IDE.read_entry(token_file, "", datetime.now(UTC)).refresh_token == "aor-new"


def test_the_registration_is_never_written_through_a_symbolic_link(emulator, isolated_dirs: Path) -> None:
    login = seed(emulator, "builder-id")
    token_file = write_kiro_ide(isolated_dirs, login)
    registration = isolated_dirs / f"{BUILDER_ID_HASH}.json"
    elsewhere = isolated_dirs / "elsewhere.json"
    elsewhere.write_text("{}")
    registration.unlink()
    registration.symlink_to(elsewhere)
    account = account_from_seed(emulator.seed(kind="builder-id"), "acc4ide")

    result = IDE.write_token(token_file, "", TokenCopy.of(account), _belongs(login.refresh_token), 1.0)

    assert result.outcome is WriteOutcome.FAILED and "symbolic link" in result.detail
    assert elsewhere.read_text() == "{}" and registration.is_symlink()


def test_an_ide_link_is_refreshed_fifteen_minutes_before_expiry() -> None:
    """The IDE refreshes by itself under 10 minutes and logs out hard if that fails near expiry:
    a login linked to it is refreshed at 15 (the lead is the place kind's own, like gateway-db's)."""
    link = Place("acc", "kiro-ide", "/x/kiro-auth-token.json", role=PlaceRole.LINK)
    source = Place("acc", "kiro-ide", "/x/kiro-auth-token.json", role=PlaceRole.SOURCE)
    assert effective_window(timedelta(minutes=10), [link]) == timedelta(minutes=15)
    assert effective_window(timedelta(minutes=20), [link]) == timedelta(minutes=20)  # a longer window stays
    assert effective_window(timedelta(minutes=10), [source]) == timedelta(minutes=10)  # imported, not linked
    gateway = Place("acc", "gateway-db", "/x/g.sqlite3", role=PlaceRole.LINK)
    assert effective_window(timedelta(minutes=10), [gateway, link]) == timedelta(minutes=15)


def test_an_external_idp_login_of_a_newer_ide_build_is_imported(isolated_dirs: Path) -> None:
    isolated_dirs.mkdir(parents=True, exist_ok=True)
    path = isolated_dirs / "kiro-auth-token.json"
    tenant = "https://login.microsoftonline.com/8f9e6d5c-0000-4000-8000-00000000e1d9"
    path.write_text(js_stringify({
        "accessToken": "eyJ-access", "refreshToken": "0.AXEA-refresh", "expiresAt": "2026-06-01T10:00:00.000Z",
        "authMethod": "external_idp", "provider": "ExternalIdp", "clientId": "00000000-0000-0000-0000-00000000c11d",
        "issuerUrl": f"{tenant}/v2.0", "tokenEndpoint": f"{tenant}/oauth2/v2.0/token",
        "scopes": "api://kiro/.default offline_access", "region": "us-east-1"}, 2))
    os.chmod(path, 0o600)

    snapshot = IDE.scan(path, datetime(2026, 6, 1, 9, tzinfo=UTC))

    (login,) = snapshot.logins
    assert login.auth_method is AuthMethod.EXTERNAL_IDP and login.needs_login is None
    assert login.client_id == "00000000-0000-0000-0000-00000000c11d"
    assert (login.issuer_url, login.token_endpoint) == (f"{tenant}/v2.0", f"{tenant}/oauth2/v2.0/token")
    assert login.scopes == ["api://kiro/.default", "offline_access"]
    assert login.provider is None  # "ExternalIdp" names the kind, not who signed in


# -- the IDE's own rules beside kiro-tui, on an injected clock: many cycles in seconds ---------------

STEP = 5.0  # the IDE's poll (fs.watchFile) and one pass of kiro-tui's watch, in fake seconds


async def _run_beside_the_ide(tmp_path: Path, emulator, emulator_time, http, endpoints, refresh_window: int,
                              cycles: int) -> dict[str, object]:
    """A kiro-tui engine and the Kiro IDE's stand-in (real thresholds: 5 s poll, its own refresh
    under 600 s, on demand and hard logout under 180 s) on one fake clock the emulator shares,
    with strict rotation. Two logins, each linked to its own IDE file; the Builder ID one's
    registration is deleted at the start (the IDE lost it). Returns what happened."""
    from kiro_tui.core.clock import ManualClock
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.store import AccountStore
    from tests.support.standins import KiroIde, Log, Service

    log_path = tmp_path / "ide.jsonl"
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        engine = Engine(store, Settings(refresh_window=refresh_window), ManualClock(at(emulator_time.now)),
                        endpoints, None, http=http, fetch_usage=False)
        ides = []
        for index, kind in enumerate(("social", "builder-id")):
            account = account_from_seed(emulator.seed(kind=kind, email=f"ide-{kind}@example.com"), f"acc{index}1de")
            engine.store.save(account)
            place = await engine.link(account.id, "kiro-ide", tmp_path / f"ide-{index}" / "kiro-auth-token.json")
            token_file = Path(place.path)
            if kind == "builder-id":
                (token_file.parent / f"{BUILDER_ID_HASH}.json").unlink()
            ide = KiroIde(token_file, Service(emulator.url, Log(log_path, "kiro-ide")), 1.0, 300.0)
            ide.load()
            ide.next_use = ide.next_poll = ide.next_loop = emulator_time.now
            ides.append(ide)
        for _ in range(int(cycles * 3600 / STEP)):
            emulator_time.advance(STEP)
            engine.clock.advance(STEP)
            for ide in ides:
                ide.guarded(ide.tick, emulator_time.now)
            due = await engine.due_ids()
            if due:
                await engine.refresh_now(due, force=False)
            await engine.watch_pass()
        registrations = sorted(p.name for p in tmp_path.glob("ide-*/*.json") if p.name != "kiro-auth-token.json")
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    refreshes = [r for r in emulator.requests() if r["operation"] in ("RefreshToken", "CreateToken")]
    return {"events": [e["event"] for e in events], "refreshes": refreshes, "registrations": registrations,
            "bad": [e for e in events if e["event"] in ("bad-file", "error")]}
@pytest.mark.slow


async def test_beside_the_ide_kiro_tui_goes_first_and_the_ide_never_logs_out(tmp_path: Path, emulator, emulator_time,
                                                                               http, endpoints) -> None:
    """Twelve token lifetimes with strict rotation and a 5-minute refresh window a person chose:
    the IDE link's 15-minute lead still puts kiro-tui first, so the IDE never refreshes (and so
    never fails near expiry and logs out); it takes every token from its file, and the
    registration it lost is back. With the lead gone (window 5 minutes) the IDE refreshes by
    itself every cycle: this test then fails."""
    ran = await _run_beside_the_ide(tmp_path, emulator, emulator_time, http, endpoints, refresh_window=300,
                                    cycles=12)
    events = ran["events"]
    assert ran["bad"] == []
    assert events.count("logout") == 0
    assert events.count("refresh") == events.count("refresh-failed") == 0, "the IDE refreshed by itself"
    assert all(r["status"] == 200 for r in ran["refreshes"]) and len(ran["refreshes"]) >= 2 * 12
    assert events.count("took") >= 2 * 12 and events.count("use-failed") == 0
    assert ran["registrations"] == [f"{BUILDER_ID_HASH}.json"]
