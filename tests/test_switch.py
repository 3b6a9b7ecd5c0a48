"""`use`: make an account the one a tool uses, keep what was there, switch back alive (issue 23)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Mode, Outcome, PlaceRole, PlaceState
from kiro_tui.core.places import place_format
from kiro_tui.core.store import AccountStore
from kiro_tui.core.switch import copies_folder
from tests.support.engine import account_from_seed, at, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.places import seed, write_kiro_ide


@pytest.fixture
async def engine(tmp_path: Path, emulator, emulator_time, http, endpoints):
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        yield Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, None, http=http,
                     fetch_usage=False)


def own(engine: Engine, emulator, kind: str, email: str, account_id: str) -> str:
    engine.store.save(account_from_seed(emulator.seed(kind=kind, email=email), account_id))
    return account_id


def held(kind: str, path: Path, entry: str = ""):  # type: ignore[no-untyped-def]
    return place_format(kind).read_entry(path, entry, at(0))


@pytest.mark.parametrize(("kind", "method"), [("kiro-ide", "builder-id"), ("kiro-ide", "social"),
                                              ("cliproxy", "idc"), ("gateway-db", "builder-id")])
async def test_use_puts_the_whole_login_there_and_switching_back_finds_the_first_alive(
        tmp_path: Path, engine: Engine, emulator, kind: str, method: str) -> None:
    first = own(engine, emulator, method, "first@example.com", "aaaa1111")
    second = own(engine, emulator, method, "second@example.com", "bbbb2222")
    path = tmp_path / "tool" / ("kiro-auth-token.json" if kind == "kiro-ide" else "login.json"
                               if kind == "cliproxy" else "gateway.sqlite3")
    path.parent.mkdir()
    (await engine.use(first, kind, path))
    for _round in range(3):
        for account_id, other in ((second, first), (first, second)):
            outcome = await engine.use(account_id, kind, path)
            account = engine.store.get(account_id)
            login = held(kind, path, outcome.entry)
            assert login.refresh_token == account.refresh_token
            assert login.client_id == account.client_id  # the whole login: its own registration too
            assert outcome.previous == [(other, "kept")]
            places = engine.store.places(account_id)
            assert [(p.kind, p.role, p.state) for p in places] == [(kind, PlaceRole.LINK, PlaceState.IN_SYNC)]
            assert engine.store.places(other) == []  # the other keeps its token in kiro-tui alone
            assert engine.store.get(other).mode is Mode.OWN
            # kiro-tui refreshes the one not in use (strict rotation: a dead token would be refused)
            (result,) = await engine.refresh_now([other])
            assert result.outcome is Outcome.REFRESHED, result.message
            (result,) = await engine.refresh_now([account_id])  # and the link is kept fresh
            assert result.outcome is Outcome.REFRESHED, result.message
            assert held(kind, path, outcome.entry).refresh_token == engine.store.get(account_id).refresh_token
    assert stat.S_IMODE(Path(outcome.path).stat().st_mode) == 0o600


async def test_use_on_a_file_holding_an_unknown_login_imports_it_first_and_keeps_a_byte_copy(
        isolated_dirs: Path, engine: Engine, emulator) -> None:
    cache = isolated_dirs / ".aws" / "sso" / "cache"
    stranger = seed(emulator, "builder-id")
    ide = write_kiro_ide(cache, stranger)
    before = ide.read_bytes()
    registration = next(p for p in cache.iterdir() if p.name != ide.name)
    registration_before = registration.read_bytes()
    mine = own(engine, emulator, "builder-id", "mine@example.com", "cccc3333")
    outcome = await engine.use(mine, "kiro-ide")
    (imported, action), = outcome.previous
    assert action == "imported"
    account = engine.store.get(imported)
    assert account.refresh_token == stranger.refresh_token and account.mode is Mode.OWN
    assert engine.store.places(imported) == []
    copies = {p.name.split("-", 1)[1]: p for p in outcome.copies}
    assert copies["kiro-auth-token.json"].read_bytes() == before
    assert copies[registration.name].read_bytes() == registration_before
    for copy in outcome.copies:
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert copy.parent.parent == copies_folder(engine.store)
    assert held("kiro-ide", ide).refresh_token == engine.store.get(mine).refresh_token
    (result,) = await engine.refresh_now([imported])  # the login that was there stays alive in kiro-tui
    assert result.outcome is Outcome.REFRESHED
    back = await engine.use(imported, "kiro-ide")
    assert held("kiro-ide", ide).refresh_token == engine.store.get(imported).refresh_token
    assert back.previous == [(mine, "kept")]


async def test_only_the_last_few_copies_per_place_are_kept(tmp_path: Path, engine: Engine, emulator) -> None:
    from kiro_tui.core.switch import KEEP_COPIES

    first = own(engine, emulator, "social", "one@example.com", "dddd4444")
    second = own(engine, emulator, "social", "two@example.com", "eeee5555")
    path = tmp_path / "kiro-auth-token.json"
    await engine.use(first, "kiro-ide", path)
    for turn in range(KEEP_COPIES + 2):
        engine.clock.advance(1)
        outcome = await engine.use(second if turn % 2 == 0 else first, "kiro-ide", path)
    folder = outcome.copies[0].parent
    assert len([p for p in folder.iterdir() if p.name != "place.txt"]) == KEEP_COPIES
    assert outcome.copies[0].exists()


async def test_use_in_kiro_cli_makes_it_the_accounts_sync_place(tmp_path: Path, engine: Engine, emulator) -> None:
    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="cli@example.com")
    await engine.import_now(db.path)
    (was_there,) = engine.store.accounts()
    engine.kiro_cli_db = db.path
    mine = own(engine, emulator, "idc", "idc@example.com", "ffff6666")
    outcome = await engine.use(mine, "kiro-cli")
    account = engine.store.get(mine)
    assert (account.mode, account.source, account.source_key) == (Mode.SYNC, str(db.path), outcome.entry)
    snapshot = place_format("kiro-cli").scan(db.path, at(0))
    assert [login.refresh_token for login in snapshot.logins] == [account.refresh_token]  # kiro-cli's one login
    assert snapshot.logins[0].client_id == account.client_id
    profile = db.get_json("state", "api.codewhisperer.profile") or {}
    assert profile.get("arn") == account.profile_arn  # the account's, not the old login's
    previous = engine.store.get(was_there.id)
    assert (previous.mode, previous.source) == (Mode.OWN, None) and engine.store.places(was_there.id) == []
    (result,) = await engine.refresh_now([mine])  # sync mode: kiro-cli's copy follows every refresh
    assert result.outcome is Outcome.REFRESHED
    assert place_format("kiro-cli").scan(db.path, at(0)).logins[0].refresh_token == \
        engine.store.get(mine).refresh_token
    views = (await engine.views()).views
    holders = (await engine.holdings(views)).holders
    assert holders[("kiro-cli", str(db.path), outcome.entry)] == mine


async def test_a_file_that_changed_since_it_was_read_is_not_replaced(tmp_path: Path, engine: Engine,
                                                                     emulator) -> None:
    first = own(engine, emulator, "social", "one@example.com", "abab1212")
    path = tmp_path / "kiro-auth-token.json"
    await engine.use(first, "kiro-ide", path)
    account = engine.store.get(first)
    with pytest.raises(KiroTuiError, match="changed while kiro-tui was replacing its login"):
        place_format("kiro-ide").replace_login(path, account, frozenset({fingerprint("someone else's")}))
    assert held("kiro-ide", path).refresh_token == account.refresh_token


async def test_a_dead_login_is_not_put_in_a_tool(tmp_path: Path, engine: Engine, emulator) -> None:
    from kiro_tui.core.models import Health

    first = own(engine, emulator, "social", "one@example.com", "cdcd3434")
    engine.store.update(first, health=Health.NEEDS_LOGIN, last_error="refresh token revoked")
    with pytest.raises(KiroTuiError, match=r"log in again first \(`kiro-tui show cdcd3434`"):
        await engine.use(first, "kiro-ide", tmp_path / "kiro-auth-token.json")
    assert not (tmp_path / "kiro-auth-token.json").exists()


async def test_a_file_that_cannot_be_read_is_left_as_it_is(tmp_path: Path, engine: Engine, emulator) -> None:
    first = own(engine, emulator, "social", "one@example.com", "efef5656")
    path = tmp_path / "kiro-auth-token.json"
    path.write_text('{"accessToken": 3}')
    with pytest.raises(KiroTuiError, match="holds a login kiro-tui cannot read"):
        await engine.use(first, "kiro-ide", path)
    assert path.read_text() == '{"accessToken": 3}'


async def test_a_token_the_tool_rotated_by_itself_is_taken_before_its_file_is_switched(
        tmp_path: Path, engine: Engine, emulator) -> None:
    """The IDE refreshed the login in its file (kiro-tui has not seen that token yet): `use`
    imports it before writing, so the account switched away from keeps the live token."""
    from kiro_tui.core.aws.social import SocialClient
    from kiro_tui.core.places import TokenCopy

    first = own(engine, emulator, "social", "one@example.com", "1a1a1a1a")
    second = own(engine, emulator, "social", "two@example.com", "2b2b2b2b")
    path = tmp_path / "kiro-auth-token.json"
    await engine.use(first, "kiro-ide", path)
    account = engine.store.get(first)
    rotated = await SocialClient(engine._http, engine.endpoints).refresh(account.refresh_token)  # the IDE's refresh
    copy = TokenCopy(rotated.access_token, rotated.refresh_token or "", rotated.expires_at(engine.clock.now()))
    assert place_format("kiro-ide").write_token(path, "", copy, lambda token_print: True, 1.0).state is \
        PlaceState.IN_SYNC
    await engine.use(second, "kiro-ide", path)
    assert engine.store.get(first).refresh_token == rotated.refresh_token
    (result,) = await engine.refresh_now([first])  # strict rotation: the spent token would be refused
    assert result.outcome is Outcome.REFRESHED, result.message


async def test_a_renewal_writes_the_new_registration_into_its_links_and_keeps_them(
        tmp_path: Path, engine: Engine, emulator) -> None:
    import httpx

    from kiro_tui.core.login import LoginRequest

    mine = own(engine, emulator, "builder-id", "renew@example.com", "3c3c3c3c")
    before = engine.store.get(mine)
    ide = tmp_path / "ide" / "kiro-auth-token.json"
    ide.parent.mkdir()
    await engine.use(mine, "kiro-ide", ide)
    await engine.link(mine, "gateway-db", tmp_path / "gateway.sqlite3")
    login = await engine.start_login(LoginRequest(None, "us-east-1", replaces=mine))
    httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
    token = await engine.wait_for_token(login)
    outcome = await engine.finish_login(login, token, None)
    account = outcome.account
    assert account.id == mine and account.client_id != before.client_id
    assert outcome.detached == [] and len(outcome.relinked) == 2
    assert outcome.relinked_note() == ("Wrote the new login into Kiro IDE, kiro-gateway database: still kept "
                                       "fresh there.")
    places = engine.store.places(mine)
    assert sorted((p.kind, p.role, p.state) for p in places) == [
        ("gateway-db", PlaceRole.LINK, PlaceState.IN_SYNC), ("kiro-ide", PlaceRole.LINK, PlaceState.IN_SYNC)]
    for place in places:
        login_there = held(place.kind, Path(place.path), place.entry)
        assert (login_there.refresh_token, login_there.client_id) == (account.refresh_token, account.client_id)
    (result,) = await engine.refresh_now([mine])  # and they stay linked: the next refresh is written there
    assert result.outcome is Outcome.REFRESHED
    assert held("kiro-ide", ide).refresh_token == engine.store.get(mine).refresh_token


async def test_an_account_another_process_is_refreshing_is_not_switched_half_way(
        tmp_path: Path, engine: Engine, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiro_tui.core import switch

    monkeypatch.setattr(switch, "LEASE_WAIT", 0.0)
    first = own(engine, emulator, "social", "one@example.com", "4d4d4d4d")
    await engine.store.acquire_lease(first, "another process", engine.clock.now(), 600)
    with pytest.raises(switch.AccountBusy, match="being refreshed by another kiro-tui process; run this again"):
        await engine.use(first, "kiro-ide", tmp_path / "kiro-auth-token.json")
    assert not (tmp_path / "kiro-auth-token.json").exists() and engine.store.places(first) == []


async def test_a_renewal_writes_the_kiro_cli_database_use_put_it_in_and_keeps_it_in_sync(
        tmp_path: Path, engine: Engine, emulator) -> None:
    import httpx

    from kiro_tui.core.login import LoginRequest

    db = KiroCliDb(tmp_path / "kiro-cli" / "data.sqlite3")
    seed_into_kiro_cli(emulator, db, kind="social", email="cli@example.com")
    engine.kiro_cli_db = db.path
    mine = own(engine, emulator, "builder-id", "renew-cli@example.com", "5e5e5e5e")
    before = engine.store.get(mine)
    outcome = await engine.use(mine, "kiro-cli")
    login = await engine.start_login(LoginRequest(None, "us-east-1", replaces=mine))
    httpx.post(f"{emulator.url}/_emulator/approve", json={"user_code": login.user_code}).raise_for_status()
    token = await engine.wait_for_token(login)
    renewed = await engine.finish_login(login, token, None)
    account = engine.store.get(mine)
    assert renewed.detached == [] and account.client_id != before.client_id
    assert (account.mode, account.source, account.source_key) == (Mode.SYNC, str(db.path), outcome.entry)
    (place,) = engine.store.places(mine)
    assert (place.kind, place.role, place.state) == ("kiro-cli", PlaceRole.SOURCE, PlaceState.IN_SYNC)
    there = held("kiro-cli", db.path, place.entry)
    assert (there.refresh_token, there.client_id) == (account.refresh_token, account.client_id)
    (result,) = await engine.refresh_now([mine])  # sync mode: kiro-cli's copy follows the next refresh
    assert result.outcome is Outcome.REFRESHED
    assert held("kiro-cli", db.path, place.entry).refresh_token == engine.store.get(mine).refresh_token
