"""Linked places are written after each refresh and read before it (issue 14): link, unlink, export."""

from __future__ import annotations

import asyncio
import re
import stat
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Outcome, PlaceRole, PlaceState
from kiro_tui.core.places import WriteOutcome, place_format
from kiro_tui.core.store import AccountStore
from tests.support.engine import account_from_seed, at, calls


@pytest.fixture
async def engine(tmp_path: Path, emulator, emulator_time, http, endpoints):
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        yield Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, None, http=http,
                     fetch_usage=False)


def own_account(engine: Engine, emulator, kind: str = "social", email: str = "link@example.com") -> str:
    account = account_from_seed(emulator.seed(kind=kind, email=email), "11aa22bb")
    engine.store.save(account)
    return account.id


def held(kind: str, path: Path, entry: str = "") -> str | None:
    login = place_format(kind).read_entry(path, entry, at(0))
    return login.refresh_token if login else None


@pytest.mark.parametrize(("kind", "name", "method"), [
    ("kiro-ide", "kiro-auth-token.json", "social"),
    ("cliproxy", "proxy", "builder-id"),
    ("aiclient", "a2a", "social"),
    ("gateway", "creds.json", "idc"),
    ("gateway-db", "gateway.sqlite3", "builder-id"),
])
async def test_link_writes_now_and_after_every_refresh(tmp_path: Path, engine: Engine, emulator, kind: str,
                                                      name: str, method: str) -> None:
    account_id = own_account(engine, emulator, method)
    place = await engine.link(account_id, kind, tmp_path / name)
    assert (place.role, place.state) == (PlaceRole.LINK, PlaceState.IN_SYNC)
    path = Path(place.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.is_file() and not path.is_symlink()
    assert held(kind, path, place.entry) == engine.store.get(account_id).refresh_token
    for _ in range(3):
        (result,) = await engine.refresh_now([account_id])
        assert result.outcome is Outcome.REFRESHED
        account = engine.store.get(account_id)
        assert held(kind, path, place.entry) == account.refresh_token  # the live token, every time
        (after,) = engine.store.places(account_id)
        assert after.state is PlaceState.IN_SYNC and after.written_at is not None


async def test_a_tool_that_refreshed_by_itself_is_adopted_with_no_call(tmp_path: Path, engine: Engine,
                                                                      emulator) -> None:
    account_id = own_account(engine, emulator)
    place = await engine.link(account_id, "cliproxy", tmp_path / "proxy")
    # The proxy refreshes on its own (a rotation kiro-tui did not make) and writes its file its way.
    from kiro_tui.core.aws.social import SocialClient
    from kiro_tui.core.places import TokenCopy

    engine.clock.advance(600)
    account = engine.store.get(account_id)
    rotated = await SocialClient(engine._http, engine.endpoints).refresh(account.refresh_token)
    copy = TokenCopy(rotated.access_token, rotated.refresh_token or "", rotated.expires_at(engine.clock.now()))
    result = place_format("cliproxy").write_token(Path(place.path), "", copy, lambda token_print: True, 1.0)
    assert result.state is PlaceState.IN_SYNC
    before = len(calls(emulator, "link@example.com"))
    (outcome,) = await engine.refresh_now([account_id])
    assert outcome.outcome is Outcome.ADOPTED  # its newer token taken, no network call spent
    assert len(calls(emulator, "link@example.com")) == before
    assert engine.store.get(account_id).refresh_token == rotated.refresh_token


async def test_a_place_is_read_before_a_refresh_only_when_its_file_changed(
        tmp_path: Path, engine: Engine, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """What kiro-tui wrote is what the file holds while it looks the same (issue 24): no read
    then. A tool's rewrite changes the file, and the next refresh reads it and takes its token."""
    account_id = own_account(engine, emulator)
    place = await engine.link(account_id, "cliproxy", tmp_path / "proxy")
    fmt = place_format("cliproxy")
    reads: list[str] = []
    real_read = fmt.read_entry

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(str(path))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(fmt, "read_entry", spy)
    for _ in range(3):
        reads.clear()
        (result,) = await engine.refresh_now([account_id])
        assert result.outcome is Outcome.REFRESHED
        login = real_read(Path(place.path), "", engine.clock.now())
        assert login is not None and login.refresh_token == engine.store.get(account_id).refresh_token
    assert reads == []  # written by the refresh before, unchanged since: not read

    from kiro_tui.core.aws.social import SocialClient
    from kiro_tui.core.places import TokenCopy

    engine.clock.advance(600)
    rotated = await SocialClient(engine._http, engine.endpoints).refresh(engine.store.get(account_id).refresh_token)
    copy = TokenCopy(rotated.access_token, rotated.refresh_token or "", rotated.expires_at(engine.clock.now()))
    assert fmt.write_token(Path(place.path), "", copy, lambda token_print: True, 1.0).state is PlaceState.IN_SYNC
    (outcome,) = await engine.refresh_now([account_id])
    assert reads == [place.path] and outcome.outcome is Outcome.ADOPTED
    assert engine.store.get(account_id).refresh_token == rotated.refresh_token


async def test_link_refuses_another_login_and_unlink_leaves_the_file(tmp_path: Path, engine: Engine,
                                                                     emulator) -> None:
    first = own_account(engine, emulator)
    other = account_from_seed(emulator.seed(kind="social", email="other@example.com"), "33cc44dd")
    engine.store.save(other)
    place = await engine.link(first, "kiro-ide", tmp_path / "kiro-auth-token.json")
    with pytest.raises(KiroTuiError, match="holds another login"):
        await engine.link(other.id, "kiro-ide", tmp_path / "kiro-auth-token.json")
    gone = await engine.unlink(first, "kiro-ide")
    assert [p.path for p in gone] == [place.path] and engine.store.places(first) == []
    assert Path(place.path).exists()
    await engine.refresh_now([first])
    assert held("kiro-ide", Path(place.path)) != engine.store.get(first).refresh_token  # no longer kept fresh


async def test_export_writes_once_and_opencode_is_never_written(tmp_path: Path, engine: Engine, emulator) -> None:
    account_id = own_account(engine, emulator)
    written = await engine.export(account_id, "aiclient", tmp_path / "a2a")
    assert held("aiclient", written) == engine.store.get(account_id).refresh_token
    assert engine.store.places(account_id) == []  # no link
    with pytest.raises(KiroTuiError, match="never writes"):
        await engine.link(account_id, "opencode", tmp_path / "kiro.db")


def test_link_and_list_from_the_command_line(cli, isolated_dirs: Path, emulator) -> None:
    with AccountStore.open(isolated_dirs / "data" / "kiro-tui" / "accounts.db") as store:
        store.save(account_from_seed(emulator.seed(kind="social", email="cli@example.com"), "55ee66ff"))
    env = {"KIRO_TUI_ENDPOINT_URL": emulator.url}
    linked = cli("link", "55ee", "--to", "cliproxy", env=env)
    assert linked.code == 0, linked.err
    assert "written now, and after every refresh" in linked.out
    (account,) = cli("list", "--json").json()
    (place,) = account["places"]
    assert (place["kind"], place["role"], place["state"], place["holds"]) == ("cliproxy", "link", "in-sync", "current")
    assert place["written_at"] is not None
    assert Path(place["path"]).parent == isolated_dirs / ".cli-proxy-api"
    assert cli("refresh", "55ee", env=env).code == 0
    (account,) = cli("list", "--json").json()
    assert account["places"][0]["holds"] == "current"
    assert fingerprint(held("cliproxy", Path(place["path"]))) is not None
    import json

    other = json.loads(Path(place["path"]).read_text())  # someone else's login lands in the file
    other.update(refresh_token="aorSOMEONEELSE", email="else@example.com")
    Path(place["path"]).write_text(json.dumps(other))
    assert cli("refresh", "55ee", env=env).code == 0
    assert cli("list", "--json").json()[0]["places"][0]["state"] == "error"
    assert "(1 place in error)" in cli("list").out  # the CLI shows it, as the TUI counts it
    assert cli("unlink", "55ee", "cliproxy").code == 0
    assert cli("list", "--json").json()[0]["places"] == []


# -- a token a tool wrote reaches every other copy (issue 14's multi-writer proof found both) ------

async def _aiclient_refreshes_by_itself(engine: Engine, path: Path) -> str:
    """AIClient-2-API's own refresh: it spends the token it holds and writes the new one into its
    file its own way (read, four fields set, JSON.stringify(…, null, 2), temporary file, rename)."""
    import json
    import os

    from kiro_tui.core.aws.social import SocialClient
    from tests.support.places import js_iso, js_stringify

    data = json.loads(path.read_text())
    rotated = await SocialClient(engine._http, engine.endpoints).refresh(data["refreshToken"])
    data.update(accessToken=rotated.access_token, refreshToken=rotated.refresh_token,
                expiresAt=js_iso(rotated.expires_at(engine.clock.now())))
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(js_stringify(data, 2))
    os.replace(temporary, path)
    return rotated.refresh_token or ""


async def _link_three(engine: Engine, tmp_path: Path, account_id: str) -> dict[str, Path]:
    return {kind: Path((await engine.link(account_id, kind, tmp_path / name)).path)
            for kind, name in (("aiclient", "a2a"), ("cliproxy", "proxy"), ("kiro-ide", "ide/kiro-auth-token.json"))}


async def test_a_token_adopted_from_one_place_is_written_into_every_other(tmp_path: Path, engine: Engine,
                                                                          emulator) -> None:
    account_id = own_account(engine, emulator)
    paths = await _link_three(engine, tmp_path, account_id)
    engine.clock.advance(1200)
    newer = await _aiclient_refreshes_by_itself(engine, paths["aiclient"])
    before = len(calls(emulator, "link@example.com"))
    engine.clock.advance(3600 - 1200 - 300)  # kiro-tui's own refresh comes due: it reads first

    (outcome,) = await engine.refresh_now([account_id])

    assert outcome.outcome is Outcome.ADOPTED and len(calls(emulator, "link@example.com")) == before
    assert engine.store.get(account_id).refresh_token == newer
    for kind in ("cliproxy", "kiro-ide"):  # the spent token they held is replaced at once
        assert held(kind, paths[kind]) == newer, kind
    states = {p.kind: p.state for p in engine.store.places(account_id)}
    assert states == {"aiclient": PlaceState.ADOPTED, "cliproxy": PlaceState.IN_SYNC, "kiro-ide": PlaceState.IN_SYNC}


async def test_a_tools_refresh_is_taken_at_the_next_watch_pass_not_when_kiro_tui_comes_due(
        tmp_path: Path, engine: Engine, emulator) -> None:
    account_id = own_account(engine, emulator)
    paths = await _link_three(engine, tmp_path, account_id)
    await engine.watch_pass()  # learns how each place looks
    engine.clock.advance(1800)  # AIClient-2-API's 30 minutes: kiro-tui (10 minutes) is far from due
    newer = await _aiclient_refreshes_by_itself(engine, paths["aiclient"])
    before = len(calls(emulator, "link@example.com"))

    await engine.watch_pass()

    assert engine.store.get(account_id).refresh_token == newer
    assert {kind: held(kind, path) for kind, path in paths.items()} == dict.fromkeys(paths, newer)
    assert len(calls(emulator, "link@example.com")) == before  # taken, not spent
    (entry, *_) = engine.store.refresh_history(account_id, 1)
    assert entry.outcome == "adopted"
    await engine.watch_pass()  # nothing changed since: nothing read, nothing adopted again
    assert len(engine.store.refresh_history(account_id, 50)) == 1


async def test_the_gateways_own_write_back_is_adopted_whatever_shape_it_wrote(tmp_path: Path, engine: Engine,
                                                                             emulator) -> None:
    """An older kiro-gateway refreshes and replaces the whole value with its own shape (`+00:00`,
    start_url / oauth_flow dropped, no compare-and-swap): kiro-tui takes that token at the next
    pass with no call, and its next refresh writes into that value, putting back the
    `oauth_flow` kiro-cli 2.12 requires."""
    import json
    import sqlite3

    from kiro_tui.core.aws.oidc import OidcClient

    account_id = own_account(engine, emulator, "builder-id", "gw@example.com")
    place = await engine.link(account_id, "gateway-db", tmp_path / "gateway")
    await engine.watch_pass()
    engine.clock.advance(3000)
    account = engine.store.get(account_id)
    rotated = await OidcClient(engine._http, engine.endpoints).refresh(
        account.region, account.client_id, account.client_secret, account.refresh_token)
    gateway_shape = {"access_token": rotated.access_token, "refresh_token": rotated.refresh_token,
                     "expires_at": (rotated.expires_at(engine.clock.now()) - timedelta(seconds=60)).isoformat(),
                     "region": account.region, "scopes": account.scopes}
    conn = sqlite3.connect(place.path)
    with conn:
        conn.execute("UPDATE auth_kv SET value = ? WHERE key = ?", (json.dumps(gateway_shape), place.entry))
    conn.close()
    before = len(calls(emulator, "gw@example.com"))

    await engine.watch_pass()

    assert engine.store.get(account_id).refresh_token == rotated.refresh_token
    assert len(calls(emulator, "gw@example.com")) == before
    (result,) = await engine.refresh_now([account_id])  # later, kiro-tui's own refresh
    assert result.outcome is Outcome.REFRESHED
    conn = sqlite3.connect(place.path)
    (raw,) = conn.execute("SELECT value FROM auth_kv WHERE key = ?", (place.entry,)).fetchone()
    conn.close()
    written = json.loads(raw)
    assert written["refresh_token"] == engine.store.get(account_id).refresh_token
    assert list(written) == [*gateway_shape, "oauth_flow"]  # its shape kept, and what kiro-cli 2.12 needs
    assert written["oauth_flow"] == "DeviceCode"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", written["expires_at"])


async def test_linking_into_a_folder_finds_the_file_already_holding_this_login(tmp_path: Path, engine: Engine,
                                                                              emulator) -> None:
    """CLIProxyAPI keeps a folder: linking there again (after an unlink, or when the folder already
    holds a copy of this login under another name) links that file, never a second copy."""
    account_id = own_account(engine, emulator, "builder-id")
    folder = tmp_path / "cli-proxy-api"
    first = await engine.link(account_id, "cliproxy", folder)
    await engine.unlink(account_id, "cliproxy")
    again = await engine.link(account_id, "cliproxy", folder)  # the file is still there, holding this login
    assert again.path == first.path and again.role is PlaceRole.LINK
    assert [p.name for p in folder.iterdir()] == [Path(first.path).name]
    await engine.unlink(account_id, "cliproxy")
    copy = folder / "kiro-cli-import-b.json"  # the proxy's own import of the same login, another name
    Path(first.path).rename(copy)
    linked = await engine.link(account_id, "cliproxy", folder)
    assert linked.path == str(copy) and sorted(p.name for p in folder.iterdir()) == [copy.name]
    (result,) = await engine.refresh_now([account_id])
    assert result.outcome is Outcome.REFRESHED
    assert held("cliproxy", copy) == engine.store.get(account_id).refresh_token  # kept fresh from then on


async def test_an_import_does_not_link_back_a_place_the_person_unlinked(tmp_path: Path, engine: Engine,
                                                                        emulator) -> None:
    account_id = own_account(engine, emulator, "social")
    place = await engine.link(account_id, "cliproxy", tmp_path / "proxy")
    await engine.unlink(account_id, "cliproxy")
    report = await engine.import_now(Path(place.path), "cliproxy")
    assert not report.imported and "unlinked from account" in report.skipped[0].reason
    assert f"kiro-tui link {account_id} --to cliproxy" in report.skipped[0].reason
    assert engine.store.places(account_id) == []
    before = Path(place.path).read_bytes()
    await engine.refresh_now([account_id])
    assert Path(place.path).read_bytes() == before  # no longer written
    await engine.link(account_id, "cliproxy", Path(place.path))  # linked again: imports see it again
    assert engine.store.unlinked("cliproxy", place.path, place.entry) is None


async def test_an_unlinked_place_stays_unlinked_after_the_tool_there_refreshes(tmp_path: Path, engine: Engine,
                                                                               emulator) -> None:
    import json

    import httpx

    account_id = own_account(engine, emulator, "social")
    place = await engine.link(account_id, "cliproxy", tmp_path / "proxy")
    await engine.unlink(account_id, "cliproxy")
    path = Path(place.path)
    data = json.loads(path.read_text())  # the proxy refreshes the copy it still holds, by itself
    answer = httpx.post(f"{emulator.url}/refreshToken", json={"refreshToken": data["refresh_token"]}).json()
    data.update(access_token=answer["accessToken"], refresh_token=answer["refreshToken"])
    path.write_text(json.dumps(data))
    report = await engine.import_now(path, "cliproxy")
    assert not report.imported and "unlinked from account" in report.skipped[0].reason
    assert [a.id for a in engine.store.accounts()] == [account_id] and engine.store.places(account_id) == []


async def test_kiro_cli_is_kept_fresh_by_the_sync_mode_not_by_a_link(tmp_path: Path, engine: Engine, emulator) -> None:
    account_id = own_account(engine, emulator, "social")
    with pytest.raises(KiroTuiError, match="sync mode"):
        await engine.link(account_id, "kiro-cli", tmp_path / "data.sqlite3")


async def test_a_subfolder_file_imported_from_is_a_source_of_its_own(tmp_path: Path, engine: Engine, emulator,
                                                                    monkeypatch) -> None:
    """CLIProxyAPI's folder is read one level deep: a file in a subfolder, once imported, is
    listed (and counted) as a place of its own."""
    from tests.support.places import seed, write_cliproxy

    monkeypatch.setenv("HOME", str(tmp_path))
    sub = write_cliproxy(tmp_path / ".cli-proxy-api" / "team", seed(emulator, "social"))
    await engine.import_now(sub, "cliproxy")
    found = {(s.kind, s.path): s.logins for s in await engine.known_places()}
    assert found[("cliproxy", sub)] == 1 and found[("cliproxy", tmp_path / ".cli-proxy-api")] == 0


class _ThreadsSeen:
    """The store's connection, noting which threads run statements on it."""

    def __init__(self, connection) -> None:  # type: ignore[no-untyped-def]
        self._connection, self.threads = connection, set()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._connection, name)

    def execute(self, *args):  # type: ignore[no-untyped-def]
        import threading

        self.threads.add(threading.get_ident())
        return self._connection.execute(*args)

    def executemany(self, *args):  # type: ignore[no-untyped-def]
        import threading

        self.threads.add(threading.get_ident())
        return self._connection.executemany(*args)


async def test_the_store_is_used_from_one_thread_while_places_are_read_and_written_in_others(
        tmp_path: Path, engine: Engine, emulator) -> None:
    """Place files are read and written in worker threads (the writes in their lane, core/lane.py); what they need of
    the store (the lineage a compare-and-swap checks, whose login a tool holds) is asked on the
    store's own thread. (Python's sqlite3 leaves a connection shared by threads to its user; a
    full-disk test once failed a refresh with an internal TypeError in a run where worker
    threads also queried it.)"""
    import threading

    seen = _ThreadsSeen(engine.store._db)
    engine.store._db = seen  # type: ignore[assignment]
    account_id = own_account(engine, emulator)
    for kind, name in (("kiro-ide", "kiro-auth-token.json"), ("cliproxy", "proxy"), ("gateway-db", "g.sqlite3")):
        await engine.link(account_id, kind, tmp_path / name)
    for _ in range(2):
        (result,) = await engine.refresh_now([account_id])
        assert result.outcome is Outcome.REFRESHED
    views = (await engine.views()).views
    assert set((await engine.holdings(views)).states.values()) == {"current"}
    await engine.tools_found()
    await engine.export(account_id, "aiclient", tmp_path / "a2a")
    assert seen.threads == {threading.get_ident()}


async def test_a_refresh_writes_its_places_in_the_writers_lane(tmp_path: Path, engine: Engine, emulator,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every place of a refresh is written on one thread of the lane, one after another, never on
    the event loop's thread (core/lane.py says why); their folders are synced once each after the
    last write, so their renames share a journal commit (`folder_syncs_deferred`), and only then
    are they recorded as written."""
    import threading

    from kiro_tui.core.places import _files

    account_id = own_account(engine, emulator)
    kinds = (("kiro-ide", "ide/kiro-auth-token.json"), ("cliproxy", "proxy"), ("gateway-db", "g.sqlite3"))
    for kind, name in kinds:
        await engine.link(account_id, kind, tmp_path / name)
    threads: list[str] = []
    events: list[str] = []
    for kind, _ in kinds:
        fmt = place_format(kind)

        def on_its_thread(*args, real=fmt.write_token, kind=kind):  # type: ignore[no-untyped-def]
            threads.append(threading.current_thread().name)
            events.append(kind)
            return real(*args)

        monkeypatch.setattr(fmt, "write_token", on_its_thread)
    real_sync = _files._sync_folder
    monkeypatch.setattr(_files, "_sync_folder", lambda folder: (events.append(f"sync {folder.name}"),
                                                                 real_sync(folder)))
    places = engine.refresher.places
    real_record = places._record_places

    async def record(*args):  # type: ignore[no-untyped-def]
        events.append("recorded in the store")
        return await real_record(*args)

    monkeypatch.setattr(places, "_record_places", record)
    (result,) = await engine.refresh_now([account_id])
    assert result.outcome is Outcome.REFRESHED
    assert len(set(threads)) == 1 and threads[0].startswith("kiro-tui places"), threads
    assert events == ["kiro-ide", "cliproxy", "gateway-db", "sync ide", "sync proxy", "recorded in the store"], events
    assert {p.state for p in engine.store.places(account_id)} == {PlaceState.IN_SYNC}


@pytest.mark.parametrize("watched", [False, True], ids=["before-the-next-refresh", "by-the-watch-pass"])
@pytest.mark.parametrize("kind", ["cliproxy", "gateway-db"])
async def test_a_tools_rewrite_just_after_kiro_tuis_write_is_read_before_the_next_refresh(
        tmp_path: Path, engine: Engine, emulator, monkeypatch: pytest.MonkeyPatch, kind: str, watched: bool) -> None:
    """kiro-tui remembers a place as holding its token only if it still looks as it left it (a
    file: inode, mtime, size as written; a database: as stat-ed under its write lock): a tool
    that rewrote it in between is read, and its newer token taken, rather than a spent token sent."""
    from kiro_tui.core.aws.social import SocialClient
    from kiro_tui.core.places import TokenCopy

    account_id = own_account(engine, emulator)
    await engine.link(account_id, kind, tmp_path / "proxy")
    fmt = place_format(kind)
    real_write = fmt.write_token
    rotated: list = []

    def write_then_the_proxy_refreshes(path, entry, copy, belongs, timeout):  # type: ignore[no-untyped-def]
        result = real_write(path, entry, copy, belongs, timeout)
        if not rotated:  # the proxy spends the token kiro-tui just wrote, and writes its own
            token = asyncio.run(SocialClient(httpx.AsyncClient(), engine.endpoints).refresh(copy.refresh_token))
            rotated.append(token)
            theirs = TokenCopy(token.access_token, token.refresh_token or "", token.expires_at(engine.clock.now()))
            assert real_write(path, entry, theirs, lambda token_print: True, 1.0).state is PlaceState.IN_SYNC
        return result

    monkeypatch.setattr(fmt, "write_token", write_then_the_proxy_refreshes)
    (first,) = await engine.refresh_now([account_id])
    assert first.outcome is Outcome.REFRESHED and rotated
    before = len(calls(emulator, "link@example.com"))
    if watched:  # the watch pass tells the tool's rewrite from kiro-tui's write, and takes it
        await engine.watch_pass()
        assert engine.store.get(account_id).refresh_token == rotated[0].refresh_token
        return
    (second,) = await engine.refresh_now([account_id])
    assert second.outcome is Outcome.ADOPTED  # read, not skipped: the proxy's token taken, no call
    assert len(calls(emulator, "link@example.com")) == before
    assert engine.store.get(account_id).refresh_token == rotated[0].refresh_token


async def test_a_place_unlinked_by_another_process_while_it_is_written_stays_unlinked(
        tmp_path: Path, engine: Engine, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    account_id = own_account(engine, emulator)
    place = await engine.link(account_id, "cliproxy", tmp_path / "proxy")
    fmt = place_format("cliproxy")
    real_write = fmt.write_token

    def written_while_unlinked(*args):  # type: ignore[no-untyped-def]
        result = real_write(*args)
        with AccountStore.open(engine.store.path) as other, other.transaction() as tx:  # another kiro-tui
            other.delete_place(tx, place)
        return result

    monkeypatch.setattr(fmt, "write_token", written_while_unlinked)
    (result,) = await engine.refresh_now([account_id])
    assert result.outcome is Outcome.REFRESHED
    assert engine.store.places(account_id) == []  # its state was not recorded back into a new row


async def test_an_older_token_is_never_written_over_a_newer_one_of_the_same_login(tmp_path: Path, engine: Engine,
                                                                               emulator) -> None:
    """Two writes of one account that finish out of order (the lane writes a few accounts at
    once; a held token's commit can race a refresh): the one carrying the older token finds
    the newer one there and leaves it, however the place was last recorded."""
    account_id = own_account(engine, emulator)
    path = Path((await engine.link(account_id, "cliproxy", tmp_path / "proxy")).path)
    (first,) = await engine.refresh_now([account_id])
    assert first.outcome is Outcome.REFRESHED
    stale = engine.store.get(account_id)  # as a slower write of that refresh still holds it
    (second,) = await engine.refresh_now([account_id])
    assert second.outcome is Outcome.REFRESHED
    newest = engine.store.get(account_id).refresh_token
    assert held("cliproxy", path) == newest != stale.refresh_token

    (result,) = await engine.refresher.places.write_places(stale)

    assert result.outcome is WriteOutcome.OTHER, result
    assert held("cliproxy", path) == newest  # the live token stays in the tool's file


async def test_one_place_file_is_written_by_one_lane_thread_at_a_time(tmp_path: Path, engine: Engine, emulator,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two accounts' logins in one kiro-gateway database, written at once: one after the other."""
    import threading
    import time

    first = own_account(engine, emulator, email="one@example.com")
    second = own_account(engine, emulator, email="two@example.com")
    database = tmp_path / "gateway.sqlite3"
    for account_id in (first, second):
        await engine.link(account_id, "gateway-db", database)
    fmt = place_format("gateway-db")
    inside, most = 0, 0
    count = threading.Lock()

    def one_at_a_time(*args, real=fmt.write_token):  # type: ignore[no-untyped-def]
        nonlocal inside, most
        with count:
            inside += 1
            most = max(most, inside)
        time.sleep(0.2)  # long enough for the other lane thread to come in, were it let in
        try:
            return real(*args)
        finally:
            with count:
                inside -= 1

    monkeypatch.setattr(fmt, "write_token", one_at_a_time)
    places = engine.refresher.places
    results = await asyncio.gather(*(places.write_places(engine.store.get(a)) for a in (first, second)))
    assert [r.outcome for (r,) in results] == [WriteOutcome.UNCHANGED] * 2, results
    assert most == 1
