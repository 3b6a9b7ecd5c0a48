"""The watch pass's place checks scale with what changed: each place file is stat'ed once a
pass, the places table is kept in memory until someone commits, and only a file that changed
is read again."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.harness import build_imported_store
from kiro_tui.core import file_events
from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.file_events import FolderEvents
from kiro_tui.core.held import commit_new_token
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Place, UsageRecord
from kiro_tui.core.places import FORMATS
from kiro_tui.core.store import AccountStore
from tests.support.places import go_rfc3339

DATABASES = {"kiro-cli", "gateway-db", "opencode"}


@pytest.fixture
async def engine(tmp_path: Path, http):  # type: ignore[no-untyped-def]
    store_path = tmp_path / "accounts.db"
    await asyncio.to_thread(build_imported_store, store_path, 12)  # 3 each: kiro-cli databases, CLIProxyAPI, AIClient-2-API, kiro-gateway
    with AccountStore.open(store_path) as store:
        engine = Engine(store, Settings(), ManualClock(), Endpoints(override="http://127.0.0.1:9"), None,
                        fetch_usage=False)
        engine._http = http
        yield engine


def count_stats(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counted: Counter[str] = Counter()
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        counted[os.fspath(path)] += 1
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    return counted


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The place files read (scanned, or one entry read), by any format."""
    read: list[str] = []
    for fmt in FORMATS.values():
        for name in ("scan", "read_entry"):
            real = getattr(fmt, name)

            def spy(path, *args, _real=real, **kwargs):  # type: ignore[no-untyped-def]
                read.append(str(path))
                return _real(path, *args, **kwargs)

            monkeypatch.setattr(fmt, name, spy)
    return read


def proxy_refreshed_by_itself(engine: Engine) -> Place:
    """A CLIProxyAPI place whose file now holds a newer token of its login, as the proxy's own
    refresh leaves it."""
    changed = next(p for p in engine.store.places() if p.kind == "cliproxy")
    record = json.loads(Path(changed.path).read_text())
    newer = engine.store.get(changed.account_id).expires_at + timedelta(hours=1)  # type: ignore[union-attr]
    record.update(access_token="aoaAAAAAGrefreshed-by-the-proxy", refresh_token="aorAAAAAGrefreshed-by-the-proxy",
                  expires_at=go_rfc3339(newer))
    Path(changed.path).write_text(json.dumps(record))
    return changed


def places_queries(store: AccountStore) -> list[str]:
    statements: list[str] = []
    store.connection.set_trace_callback(lambda sql: statements.append(sql) if "FROM places" in sql else None)
    return statements


@pytest.mark.parametrize("inotify", [False, True])
async def test_a_watch_pass_stats_each_place_file_once(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                       inotify: bool) -> None:
    """Once each without the kernel's change reports (macOS, or none left); with them, a quiet
    pass stats none, and a pass after a tool's write only that file (tests/test_file_events.py)."""
    if not inotify:
        monkeypatch.setattr(file_events, "_libc", lambda: None)
    else:
        probe = FolderEvents()
        working = probe.working
        probe.close()
        if not working:
            pytest.skip("no inotify here")
    places = engine.store.places()
    await engine.watch_pass()  # the first pass learns how each place looks
    stats = count_stats(monkeypatch)

    await engine.watch_pass()

    expected = Counter({p.path: 1 for p in places})
    expected.update({f"{p.path}-wal": 1 for p in places if p.kind in DATABASES})
    assert len(places) == 12 and expected  # (the store was built with every place)
    seen = {path: n for path, n in stats.items() if path in expected}
    assert seen == ({} if inotify else expected)


async def test_the_places_table_is_read_again_only_after_a_commit(engine: Engine) -> None:
    await engine.watch_pass()
    queries = places_queries(engine.store)

    await engine.watch_pass()
    assert [q for q in queries if "WHERE 1" in q] == []  # kept in memory: nothing committed since

    account = engine.store.accounts()[0]  # commits that never touch a place (the steady watch's)
    engine.store.save_usage(account.id, UsageRecord(used=3, limit=50, fetched_at=engine.clock.now()))
    engine.store.save_place_reads({("cliproxy", "/nowhere.json", ""): ("()", None)})
    await engine.watch_pass()
    assert [q for q in queries if "WHERE 1" in q] == []

    account = engine.store.accounts()[0]
    engine.store.update(account.id, label="renamed")  # any commit
    await engine.watch_pass()
    assert len([q for q in queries if "WHERE 1" in q]) == 1  # read once, for every step of the pass


async def test_only_the_place_a_tool_rewrote_is_read_again(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    await engine.watch_pass()
    changed = proxy_refreshed_by_itself(engine)
    reads = count_reads(monkeypatch)

    await engine.watch_pass()

    assert reads and set(reads) == {changed.path}
    assert engine.store.get(changed.account_id).refresh_token == "aorAAAAAGrefreshed-by-the-proxy"  # type: ignore[union-attr]
    reads.clear()
    await engine.watch_pass()
    assert reads == []  # nothing changed since


async def test_after_quiet_passes_a_change_or_a_place_to_look_at_again_is_still_seen(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass that finds nothing new compares no place (`PlaceSync.looks` and the places'
    version stay put); a tool's rewrite, or a place left for the next pass, still counts."""
    for _ in range(3):
        await engine.watch_pass()
    sync = engine.refresher.places  # type: ignore[union-attr]
    looks = sync.looks
    await engine.watch_pass()
    assert sync.looks == looks  # quiet: nothing looked different

    proxy = next(p for p in engine.store.places() if p.kind == "cliproxy")
    sync.look_again([proxy.path])  # its account was busy in this pass
    assert await sync.changed(looked=sync._looked) == {proxy.account_id: [proxy.path]}

    await engine.watch_pass()
    record = json.loads(Path(proxy.path).read_text())
    newer = engine.store.get(proxy.account_id).expires_at + timedelta(hours=1)  # type: ignore[union-attr]
    record.update(access_token="aoaAAAAAGafter-quiet", refresh_token="aorAAAAAGafter-quiet", expires_at=go_rfc3339(newer))
    Path(proxy.path).write_text(json.dumps(record))
    reads = count_reads(monkeypatch)
    await engine.watch_pass()
    assert set(reads) == {proxy.path}
    assert engine.store.get(proxy.account_id).refresh_token == "aorAAAAAGafter-quiet"  # type: ignore[union-attr]


async def test_a_tool_s_change_to_a_held_account_s_place_is_taken_once_the_store_has_its_token(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """While an account's token is held (the store would not take it), a tool's rewrite of its
    place waits; it is not forgotten, and is taken at the first pass after."""
    await engine.watch_pass()
    refresher = engine.refresher
    assert refresher is not None
    proxy = next(p for p in engine.store.places() if p.kind == "cliproxy")
    record = json.loads(Path(proxy.path).read_text())
    newer = engine.store.get(proxy.account_id).expires_at + timedelta(hours=1)  # type: ignore[union-attr]
    record.update(access_token="aoaAAAAAGwhile-held", refresh_token="aorAAAAAGwhile-held", expires_at=go_rfc3339(newer))
    Path(proxy.path).write_text(json.dumps(record))

    monkeypatch.setitem(refresher.held, proxy.account_id, object())  # (only whether it is held is asked)
    assert await refresher.adopt_from_changed_places(looked=await refresher.look_at_places()) == set()
    monkeypatch.delitem(refresher.held, proxy.account_id)
    assert await refresher.adopt_from_changed_places(looked=await refresher.look_at_places()) \
        == {proxy.account_id}
    assert engine.store.get(proxy.account_id).refresh_token == "aorAAAAAGwhile-held"  # type: ignore[union-attr]


async def test_what_a_place_holds_is_read_again_only_when_its_file_changed(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    views = (await engine.views()).views
    reads = count_reads(monkeypatch)
    first = (await engine.holdings(views)).states
    assert set(first.values()) == {"current"} and len(first) == 12
    assert reads == []  # the import remembered what each file held, and none changed since

    engine.store.connection.execute("DELETE FROM place_reads")  # forgotten: each is read once
    assert (await engine.holdings(views)).states == first and len(set(reads)) == 12
    reads.clear()
    assert (await engine.holdings(views)).states == first
    assert reads == []  # remembered: nothing changed

    changed = next(p for p in engine.store.places() if p.kind == "gateway")
    record = json.loads(Path(changed.path).read_text())
    record["refreshToken"] = "aorAAAAAGrotated-by-the-gateway"  # the same login, a token kiro-tui never saw
    Path(changed.path).write_text(json.dumps(record))
    holds = (await engine.holdings(views)).states
    assert set(reads) == {changed.path}
    assert holds == {**first, changed.address: "newer"}  # what the next pass adopts

    reads.clear()
    Path(changed.path).unlink()
    assert (await engine.holdings(views)).states[changed.address] == "missing"


async def test_whose_login_a_place_holds_is_read_again_only_when_its_file_changed(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    views = (await engine.views()).views
    reads = count_reads(monkeypatch)
    first = (await engine.holdings(views)).holders
    databases = [p for p in engine.store.places() if p.kind == "kiro-cli"]
    assert len(databases) == 3 and {first[p.address] for p in databases} == {p.account_id for p in databases}
    assert reads == []  # the import remembered whose login each file held, and none changed since

    engine.store.connection.execute("DELETE FROM place_reads")  # forgotten: each is read again, once
    assert (await engine.holdings(views)).holders == first
    assert sorted(reads).count(databases[0].path) == 2  # its entry read, and the whole file scanned, once each

    reads.clear()
    assert (await engine.holdings(views)).holders == first and reads == []  # remembered: nothing changed

    changed, other = databases[0], databases[1]
    their_token = engine.store.get(other.account_id).refresh_token  # type: ignore[union-attr]
    with sqlite3.connect(changed.path) as conn:  # `use` in another kiro-tui, say: the other login is there now
        (value,) = conn.execute("SELECT value FROM auth_kv WHERE key = ?", (changed.entry,)).fetchone()
        conn.execute("UPDATE auth_kv SET value = ? WHERE key = ?",
                     (json.dumps({**json.loads(value), "refresh_token": their_token}), changed.entry))
    conn.close()
    now = (await engine.holdings(views)).holders
    assert set(reads) == {changed.path}
    assert now == {**first, changed.address: other.account_id}


async def test_a_refresh_reads_no_imported_place_that_is_as_the_import_found_it(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The import kept how each file looked with the token it held: before spending a token,
    kiro-tui reads only a place that changed since (a tool's own refresh), not all of them."""
    await engine.start()
    sync = engine.refresher.places  # type: ignore[union-attr]
    reads = count_reads(monkeypatch)
    for account in engine.store.accounts():
        assert await sync.adopt_newer(account) is None
    assert reads == []

    changed = proxy_refreshed_by_itself(engine)
    account = engine.store.get(changed.account_id)
    assert account is not None and await sync.adopt_newer(account) == "cliproxy"
    assert reads == [changed.path]
    assert engine.store.get(changed.account_id).refresh_token == "aorAAAAAGrefreshed-by-the-proxy"  # type: ignore[union-attr]


async def test_a_refresh_reads_no_file_just_linked(engine: Engine, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`link` creates the place with the account's token and finds it there under its lock:
    the first refresh after it reads none of them (it read every one before, a third of a
    linked refresh's place work; a database, until its signature was taken under its lock)."""
    account = next(a for a in engine.store.accounts() if a.auth_method.value == "social")
    for kind in ("kiro-ide", "cliproxy", "gateway-db"):
        await engine.link(account.id, kind, tmp_path / "links" / (
            "kiro-auth-token.json" if kind == "kiro-ide" else kind))
    linked = {p.kind: p.path for p in engine.store.places(account.id) if p.role.value == "link"}
    assert set(linked) == {"kiro-ide", "cliproxy", "gateway-db"}
    reads = count_reads(monkeypatch)
    fresh = engine.store.get(account.id)
    assert fresh is not None and await engine.refresher.places.adopt_newer(fresh) is None  # type: ignore[union-attr]
    assert reads == []


async def test_a_linked_file_holding_a_newer_access_token_is_still_read_and_taken(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that finds the file holding the account's refresh token with a later expiry (its
    tool refreshed the access token without rotating) leaves it as it is, and must not mark it
    as holding only kiro-tui's token: the next refresh reads it and takes the newer one."""
    account = next(a for a in engine.store.accounts() if a.auth_method.value == "social")
    await engine.link(account.id, "cliproxy", tmp_path / "links" / "cliproxy")
    place = next(p for p in engine.store.places(account.id) if p.kind == "cliproxy" and p.role.value == "link")
    record = json.loads(Path(place.path).read_text())
    newer = account.expires_at + timedelta(hours=1)
    record.update(access_token="aoaAAAAAGnewer-access", expires_at=go_rfc3339(newer))
    replacement = Path(place.path + ".new")
    replacement.write_text(json.dumps(record))
    replacement.replace(place.path)  # (as the proxy writes: a new file renamed into place)
    sync = engine.refresher.places  # type: ignore[union-attr]
    fresh = engine.store.get(account.id)
    assert fresh is not None
    (written,) = await sync.write_places(fresh, [place])
    assert written.outcome.value == "unchanged"
    reads = count_reads(monkeypatch)
    fresh = engine.store.get(account.id)
    assert fresh is not None
    assert await sync.adopt_newer(fresh) == "cliproxy"
    assert reads == [place.path]
    assert engine.store.get(account.id).access_token == "aoaAAAAAGnewer-access"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["cliproxy", "gateway-db"])
async def test_a_place_whose_file_times_are_whole_seconds_is_read_before_every_refresh(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """On a file system that keeps whole seconds (FAT, HFS+, ext4 with small inodes), a tool's
    rewrite in the same second, at the same size, keeps the signature: such a place is read
    before each refresh, never taken on its signature (one with finer times is skipped)."""
    account = next(a for a in engine.store.accounts() if a.auth_method.value == "social")
    await engine.link(account.id, kind, tmp_path / "links" / kind)
    (place,) = [p for p in engine.store.places(account.id) if p.role.value == "link"]
    fresh = engine.store.get(account.id)
    assert fresh is not None
    reads = count_reads(monkeypatch)
    assert await engine.refresher.places.adopt_newer(fresh) is None  # type: ignore[union-attr]
    assert reads == []  # as the link left it (finer times here)
    second = 1_800_000_000 * 1_000_000_000
    os.utime(place.path, ns=(second, second))  # as a file system keeping whole seconds reports it
    for _ in range(2):
        assert await engine.refresher.places.adopt_newer(fresh) is None  # type: ignore[union-attr]
    assert reads == [place.path, place.path]  # read each time, though unchanged the second time


async def test_a_place_linked_while_the_pass_looks_is_left_for_the_next_pass(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A place committed (another process's import) while the pass's look runs in its thread is
    not in that look: the pass compares it next time instead of failing on it."""
    await engine.watch_pass()
    refresher = engine.refresher
    assert refresher is not None
    looking = refresher.look_at_places
    source = next(p for p in engine.store.places() if p.role.value == "source")

    async def look_without_one() -> dict[str, object]:
        looked = dict(await looking())
        del looked[source.path]  # as if the place came after the look began
        return looked

    monkeypatch.setattr(refresher, "look_at_places", look_without_one)
    monkeypatch.setattr(engine.watcher, "places_quiet", None)  # (compare every place this pass)
    await engine.watcher._check_places()
    assert engine.problem is None


async def test_a_source_kiro_tui_wrote_back_itself_is_not_imported_again(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a refresh, sync mode writes the new token back into the place the account came
    from. That is no tool's change: the next watch pass does not import the place again (each
    such import re-read and rescheduled every account, so a burst of 1,000 refreshes cost the
    engine 21 ms of CPU a refresh)."""
    await engine.watch_pass()
    refresher = engine.refresher
    assert refresher is not None
    source = next(p for p in engine.store.places() if p.kind == "cliproxy" and p.role.value == "source")
    account = engine.store.get(source.account_id)
    assert account is not None
    spent = account.refresh_token
    account.access_token, account.refresh_token = "aoaAAAAAGnew:sig", "aorAAAAAGnew:sig"  # as the service answered
    now = engine.clock.now()
    pending = await commit_new_token(engine.store, refresher.places, account, replaced=fingerprint(spent),
                                     lineage=[spent, account.refresh_token], refreshed_at=now, now=now,
                                     places=refresher.places.places_to_write(account), moved_on=True)
    assert source.address in {p.address for p in pending}
    await refresher.write_places(account, pending)
    assert "aorAAAAAGnew:sig" in Path(source.path).read_text()  # written back: the file changed
    reads = count_reads(monkeypatch)
    await engine.watch_pass()
    assert source.path not in reads


async def test_a_source_read_again_unchanged_reschedules_nothing(engine: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A source whose file was rewritten with what it held already is read again, and that
    import changes nothing: no account is read again to be rescheduled (each such import read
    every account: at 10,000 accounts a tenth of a second)."""
    await engine.watch_pass()
    source = next(p for p in engine.store.places() if p.kind == "cliproxy" and p.role.value == "source")
    text = Path(source.path).read_text()
    Path(source.path).unlink()
    Path(source.path).write_text(text)  # the same login, a new file: looks changed
    os.chmod(source.path, 0o600)
    reads = count_reads(monkeypatch)
    statements: list[str] = []
    engine.store.connection.set_trace_callback(statements.append)
    await engine.watch_pass()
    assert source.path in reads  # read again, and imported
    assert not [s for s in statements if s.startswith("SELECT id, auth_method") and "WHERE id IN" not in s]
