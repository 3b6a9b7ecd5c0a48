"""Importing from every place a Kiro login lives, and one account per credential (issue 13).

Each tool's files are built the way that tool writes them (tests/support/places.py), with
tokens from the emulator, so a refresh after the import really works.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.models import AuthMethod, Outcome, PlaceRole
from kiro_tui.core.places import place_format
from kiro_tui.core.places.kiro_cli_format import OIDC_TOKEN_KEY, SOCIAL_TOKEN_KEY
from kiro_tui.core.store import AccountStore
from tests.support.engine import at, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.places import (
    opencode_row,
    seed,
    write_aiclient,
    write_cliproxy,
    write_gateway,
    write_kiro_ide,
    write_opencode,
)


def store_path(home: Path) -> Path:
    return home / "data" / "kiro-tui" / "accounts.db"


@pytest.fixture
async def engine(tmp_path: Path, emulator, emulator_time, http, endpoints):
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        running = Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, None,
                         http=http, fetch_usage=False)
        yield running


def test_every_tool_is_imported_and_refreshes(cli, isolated_dirs: Path, live_emulator) -> None:
    """The installed command, one tool at a time, at each tool's usual place."""
    ide = write_kiro_ide(isolated_dirs / ".aws" / "sso" / "cache", seed(live_emulator, "idc"))
    proxy = write_cliproxy(isolated_dirs / ".cli-proxy-api", seed(live_emulator, "social"))
    (isolated_dirs / ".cli-proxy-api" / "gemini-x.json").write_text('{"type": "gemini", "token": "x"}')
    write_opencode(isolated_dirs / "config" / "opencode" / "kiro.db", [opencode_row(seed(live_emulator, "builder-id"))])
    client = write_aiclient(isolated_dirs / "a2a", seed(live_emulator, "builder-id"))
    gateway = write_gateway(isolated_dirs / "gw" / "creds.json", seed(live_emulator, "social"))
    env = {"KIRO_TUI_ENDPOINT_URL": live_emulator.url}

    sources = {(s["kind"], s["found"], s["logins"]) for s in cli("sources", "--json").json()}
    assert {("kiro-ide", True, 1), ("cliproxy", True, 1), ("opencode", True, 1), ("kiro-cli", False, 0)} <= sources

    for kind, path in (("kiro-ide", None), ("cliproxy", None), ("opencode", None), ("aiclient", client.parent),
                       ("gateway", gateway)):
        args = ["import", "--from", kind, "--json"] + (["--path", str(path)] if path else [])
        result = cli(*args)
        assert result.code == 0, (kind, result.err)
        (item,) = result.json()["imported"]
        assert (item["kind"], item["action"]) == (kind, "added")
        assert item["path"] in (str(ide), str(proxy), str(client), str(gateway)) or kind == "opencode"
    listed = cli("list", "--json").json()
    assert len(listed) == 5
    assert {p["kind"] for a in listed for p in a["places"]} == {"kiro-ide", "cliproxy", "opencode", "aiclient",
                                                               "gateway"}
    assert all(p["role"] == "source" and p["holds"] == "current" for a in listed for p in a["places"])
    modes = {a["places"][0]["kind"]: a["mode"] for a in listed}
    assert modes.pop("opencode") == "follow"  # kiro-tui cannot write opencode's kiro.db (issue 19)
    assert set(modes.values()) == {"sync"}
    refreshed = cli("refresh", "--all", "--json", env=env)
    assert refreshed.code == 0, refreshed.err
    ids = {a["id"]: a["places"][0]["kind"] for a in listed}
    assert {ids[r["id"]]: r["outcome"] for r in refreshed.json()} == {
        "kiro-ide": "refreshed", "cliproxy": "refreshed", "aiclient": "refreshed", "gateway": "refreshed",
        "opencode": "followed"}  # opencode's own token is never spent by kiro-tui


def test_import_all_and_a_broken_file_is_one_clean_message(cli, isolated_dirs: Path, live_emulator) -> None:
    write_cliproxy(isolated_dirs / ".cli-proxy-api", seed(live_emulator, "social"))
    broken = isolated_dirs / ".cli-proxy-api" / "kiro-broken.json"
    broken.write_text('{"type": "kiro", "access_token": ')
    write_kiro_ide(isolated_dirs / ".aws" / "sso" / "cache", seed(live_emulator, "builder-id"))
    before = broken.read_bytes()
    result = cli("import", "--from", "all", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert sorted(i["kind"] for i in report["imported"]) == ["cliproxy", "kiro-ide"]
    assert any(p["path"] == str(broken) for p in report["problems"])
    assert str(broken) in result.err and "Traceback" not in result.err
    assert broken.read_bytes() == before  # nothing is ever written to a place by reading it


async def test_a_cliproxy_copy_of_a_kiro_cli_login_is_one_account_with_two_places(
        tmp_path: Path, engine: Engine, emulator) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seeded = seed_into_kiro_cli(emulator, db, kind="social", email="copy@example.com")
    await engine.import_now(db.path)
    from tests.support.places import login_of

    proxy = write_cliproxy(tmp_path / "proxy", login_of(seeded), provider="kiro-cli")  # the seed's own import
    report = await engine.import_now(proxy, "cliproxy")
    (item,) = report.imported
    (account,) = engine.store.accounts()
    assert item.id == account.id and item.action in ("unchanged", "updated")
    places = engine.store.places(account.id)
    assert sorted((p.kind, p.role) for p in places) == [("cliproxy", PlaceRole.SOURCE), ("kiro-cli", PlaceRole.SOURCE)]


@pytest.mark.parametrize("shape", ["gateway-replaces", "opencode-iso-ms", "kirollm-camel-beside-snake"])
async def test_other_tools_write_backs_keep_one_account(tmp_path: Path, engine: Engine, emulator, shape: str) -> None:
    """Tools that write back into kiro-cli's database rewrite the value in their own shape."""
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seeded = seed_into_kiro_cli(emulator, db, kind="idc", email="lee@acme.example", region="eu-west-1",
                                start_url="https://d-1234567890.awsapps.com/start")
    await engine.import_now(db.path)
    (account,) = engine.store.accounts()
    # The tool refreshed by itself (a rotation kiro-tui never saw) and wrote the row its own way.
    fresh = await engine.refresh_now([account.id])  # rotate at the emulator, as the tool would
    assert fresh[0].outcome is Outcome.REFRESHED
    live = engine.store.get(account.id)
    newer = live.expires_at + timedelta(minutes=5)
    token = seeded["token"]
    if shape == "gateway-replaces":  # older kiro-gateway: the whole value replaced, fields dropped
        value = {"access_token": "aoaGATEWAY", "refresh_token": live.refresh_token,
                 "expires_at": newer.isoformat(), "region": token["region"], "scopes": token["scopes"]}
    elif shape == "opencode-iso-ms":  # toISOString(): milliseconds
        value = {**token, "access_token": "aoaOPENCODE", "refresh_token": live.refresh_token,
                 "expires_at": newer.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
    else:  # kirollm: camelCase beside stale snake_case; the newer of the two wins
        value = {**token, "accessToken": "aoaKIROLLM", "refreshToken": live.refresh_token,
                 "expiresAt": newer.isoformat()}
    db.set_json("auth_kv", OIDC_TOKEN_KEY, value)
    await engine.import_now(db.path)
    (still,) = engine.store.accounts()
    assert still.id == account.id
    assert (still.auth_method, still.start_url) == (AuthMethod.IDC, "https://d-1234567890.awsapps.com/start")
    expected = {"gateway-replaces": "aoaGATEWAY", "opencode-iso-ms": "aoaOPENCODE",
                "kirollm-camel-beside-snake": "aoaKIROLLM"}[shape]
    assert (still.access_token, still.expires_at) == (expected, newer)  # the newer copy was taken


async def test_a_different_person_in_the_same_key_is_another_account(tmp_path: Path, engine: Engine, emulator) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="one@example.com", provider="github")
    await engine.import_now(db.path)
    seed_into_kiro_cli(emulator, db, kind="social", email="two@example.com", provider="google")
    report = await engine.import_now(db.path)
    assert [i.action for i in report.imported] == ["added"] and len(report.missing) == 1
    assert len(engine.store.accounts()) == 2
    assert db.get_json("auth_kv", SOCIAL_TOKEN_KEY)["provider"] == "google"


async def test_holds_compares_each_place_with_the_account(tmp_path: Path, engine: Engine, emulator) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="h@example.com")
    await engine.import_now(db.path)
    (account,) = engine.store.accounts()
    views = (await engine.views()).views
    assert list((await engine.holdings(views)).states.values()) == ["current"]
    engine.store.update(account.id, mode=engine.store.get(account.id).mode.OWN)  # own: never written back
    await engine.refresh_now([account.id])
    views = (await engine.views()).views
    assert list((await engine.holdings(views)).states.values()) == ["older"]  # kiro-cli holds the spent token
    db.path.unlink()
    assert list((await engine.holdings(views)).states.values()) == ["missing"]


def test_sources_json_shape(cli, isolated_dirs: Path) -> None:
    result = cli("sources", "--json")
    assert result.code == 0
    for item in result.json():
        assert set(item) == {"kind", "path", "found", "logins", "error"}
    assert json.loads(result.out)[0]["kind"] == "kiro-cli"


async def test_two_people_of_one_identity_provider_are_two_accounts(tmp_path: Path, engine: Engine, emulator) -> None:
    """An external IdP's client id is the app's, shared by every person of the tenant: it is no
    evidence of one login, and each person's kiro-cli keeps their own token."""
    first = KiroCliDb(tmp_path / "a" / "data.sqlite3")
    second = KiroCliDb(tmp_path / "b" / "data.sqlite3")
    g = seed_into_kiro_cli(emulator, first, kind="external-idp", email="g@contoso.example")
    h = seed_into_kiro_cli(emulator, second, kind="external-idp", email="h@contoso.example")
    assert g["token"]["client_id"] == h["token"]["client_id"]  # the shared app client
    await engine.import_now(first.path)
    report = await engine.import_now(second.path)
    assert [i.action for i in report.imported] == ["added"]
    accounts = engine.store.accounts()
    assert len(accounts) == 2
    results = await engine.refresh_now([a.id for a in accounts])
    assert {r.outcome for r in results} == {Outcome.REFRESHED}
    for db, person in ((first, g), (second, h)):
        (owner,) = [a for a in engine.store.accounts()
                    if any(p.path == str(db.path.resolve()) for p in engine.store.places(a.id))]
        row = db.get_json("auth_kv", "kirocli:external-idp:token")
        assert row["refresh_token"] == owner.refresh_token != person["token"]["refresh_token"]  # rotated, own
        assert sum(p.path == str(db.path.resolve()) for a in accounts for p in engine.store.places(a.id)) == 1


@pytest.mark.parametrize("how", ["import", "refresh"])
async def test_a_token_a_tool_refreshed_is_taken_though_it_expires_a_minute_early(
        tmp_path: Path, engine: Engine, emulator, emulator_time, how: str) -> None:
    """kiro-gateway refreshes kiro-cli's token by itself and stores an expiry 60 s short: that
    token is newer than kiro-tui's (which the service has rotated away), whatever the expiry says."""
    import httpx

    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="gw@example.com")
    await engine.import_now(db.path)
    (account,) = engine.store.accounts()
    (result,) = await engine.refresh_now([account.id])  # sync mode: written back into kiro-cli
    assert result.outcome is Outcome.REFRESHED
    ours = engine.store.get(account.id)
    assert db.get_json("auth_kv", SOCIAL_TOKEN_KEY)["refresh_token"] == ours.refresh_token
    answer = httpx.post(f"{emulator.url}/refreshToken", json={"refreshToken": ours.refresh_token}).json()
    early = at(emulator_time.now + answer["expiresIn"] - 60)  # the gateway's way
    db.set_json("auth_kv", SOCIAL_TOKEN_KEY, {"access_token": answer["accessToken"],
                                               "refresh_token": answer["refreshToken"],
                                               "expires_at": early.isoformat(), "region": "us-east-1"})
    assert early <= ours.expires_at  # no later than ours: expiry alone would keep ours, now dead
    if how == "import":
        report = await engine.import_now(db.path)
        assert [i.action for i in report.imported] == ["updated"]
    else:
        (adopted,) = await engine.refresh_now([account.id])
        assert adopted.outcome is Outcome.ADOPTED
    assert engine.store.get(account.id).refresh_token == answer["refreshToken"]
    (after,) = await engine.refresh_now([account.id])
    assert after.outcome is Outcome.REFRESHED  # the live token was spent, not the dead one


def test_a_skipped_login_is_named_by_the_file_it_is_in(cli, isolated_dirs: Path, live_emulator) -> None:
    ide = write_kiro_ide(isolated_dirs / ".aws" / "sso" / "cache", seed(live_emulator, "social"))
    first = cli("import", "--from", "kiro-ide", "--json")
    assert first.code == 0, first.err
    (item,) = first.json()["imported"]
    assert cli("remove", item["id"], "--yes").code == 0
    again = cli("import", "--from", "kiro-ide")
    assert again.code == 1
    assert f"warning: skipped {ide}: " in again.err and "was removed from kiro-tui" in again.err, again.err
    assert f"error: no usable login in {ide}: " in again.err and "data.sqlite3" not in again.err, again.err
    report = cli("import", "--from", "kiro-ide", "--json").json()
    assert report["skipped"][0]["path"] == str(ide)


async def test_logging_in_as_the_person_of_an_imported_login_renews_it_though_its_email_was_unknown(
        tmp_path: Path, engine: Engine, emulator) -> None:
    """kiro-cli's rows carry no email: the login asks the usage API who holds the imported
    account (with its own token) before deciding it is another person's."""
    import httpx

    from kiro_tui.core.login import LoginRequest

    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    idc = "https://d-5555555555.awsapps.com/start"
    seed_into_kiro_cli(emulator, db, kind="idc", email="sam@acme.example", start_url=idc,
                       profiles=[{"arn": "arn:aws:codewhisperer:us-east-1:1:profile/SAM", "name": "Sam"}])
    await engine.import_now(db.path)
    (imported,) = engine.store.accounts()
    assert imported.email is None
    await engine.link(imported.id, "cliproxy", tmp_path / "proxy")
    login = await engine.start_login(LoginRequest(idc, "us-east-1"))
    httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
    token = await engine.wait_for_token(login)
    (profile,) = (await engine.list_profiles(token.access_token)).profiles
    outcome = await engine.finish_login(login, token, profile)
    account = outcome.account
    assert account.id == imported.id and len(engine.store.accounts()) == 1
    assert account.email == "sam@acme.example"
    # kiro-cli's own session is detached, and said so; the link is written again with the whole new
    # login (the new client registration) and stays the account's (issue 23)
    assert [p.kind for p in outcome.detached] == ["kiro-cli"]
    assert "1 copy of the old session (kiro-cli)" in (outcome.detached_note() or "")
    places = engine.store.places(account.id)
    assert [(p.kind, p.state.value) for p in places] == [("cliproxy", "in-sync")]
    for place in places:
        login = place_format(place.kind).read_entry(Path(place.path), place.entry, engine.clock.now())
        assert login.refresh_token == account.refresh_token
        assert login.client_id == account.client_id != imported.client_id
