"""The watch pass stats only the place files in folders the kernel says changed (inotify), all of
them when it cannot tell, and every file every FULL_LOOK_EVERY passes; a change is never missed."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import pytest

from kiro_tui.core import file_events, place_reads, place_sync
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.file_events import FolderEvents
from kiro_tui.core.models import Account, AuthMethod, Place
from kiro_tui.core.place_sync import FULL_LOOK_EVERY, PlaceSync
from kiro_tui.core.store import AccountStore

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


@linux_only
def test_folder_events_tell_which_folder_changed_and_when_they_cannot_tell(tmp_path: Path) -> None:
    quiet, busy = tmp_path / "quiet", tmp_path / "busy"
    quiet.mkdir()
    busy.mkdir()
    events = FolderEvents()
    try:
        assert events.working
        assert events.watches(str(quiet)) and events.watches(str(busy))
        assert events.touched() == set()
        (busy / "token.json").write_text("{}")
        assert events.touched() == {str(busy)}
        assert events.touched() == set()  # drained
        (quiet / "gone").mkdir()
        (quiet / "gone").rmdir()
        assert events.touched() == {str(quiet)}
        busy.joinpath("token.json").unlink()
        busy.rmdir()  # a watched folder goes away: it cannot tell what happened there since
        assert events.touched() is None
        assert not events.watches(str(busy))  # not there: its files are stat-ed instead
    finally:
        events.close()


class Stats:
    """Counts the stats the watch pass makes (place_signature calls), by path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real = place_sync.place_signature

        def counted(path: str, database: bool = False) -> place_sync.PlaceSignature:
            self.paths.append(path)
            return real(path, database)

        monkeypatch.setattr(place_sync, "place_signature", counted)
        monkeypatch.setattr(place_reads, "place_signature", counted)  # (PlaceReads.signature's)

    def take(self) -> list[str]:
        taken, self.paths = self.paths, []
        return taken


def _sync(tmp_path: Path, places: list[Place]) -> PlaceSync:
    """A PlaceSync over a store holding these places (it looks at what the store lists)."""
    store = AccountStore.open(tmp_path / "accounts.db")
    now = ManualClock().now()
    for account_id in dict.fromkeys(p.account_id for p in places):
        store.save(Account(id=account_id, auth_method=AuthMethod.SOCIAL, access_token="a", refresh_token="r",
                           expires_at=now))
    with store.transaction() as tx:
        for place in places:
            store.save_place(tx, place)
    return PlaceSync(store, ManualClock(), 1.0)


def _places(tmp_path: Path, count: int) -> list[Place]:
    places = []
    for i in range(count):
        folder = tmp_path / f"tool{i}"
        folder.mkdir()
        (folder / "token.json").write_text('{"refreshToken": "x"}')
        places.append(Place(f"acct{i}", "cliproxy", str(folder / "token.json")))
    return places


@linux_only
def test_a_quiet_pass_stats_nothing_and_a_change_is_stat_ed_and_seen(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    places = _places(tmp_path, 5)
    stats = Stats(monkeypatch)
    sync = _sync(tmp_path, places)

    async def passes() -> None:
        first = await sync.look_at_places()
        assert sorted(stats.take()) == sorted(p.path for p in places)  # the first pass looks at all
        assert await sync.look_at_places() == first and stats.take() == []  # nothing changed: no stat
        Path(places[2].path).write_text('{"refreshToken": "a tool refreshed"}')
        after = await sync.look_at_places()
        assert stats.take() == [places[2].path]
        assert after[places[2].path] != first[places[2].path]  # and the change shows
        for _ in range(FULL_LOOK_EVERY - 3):
            await sync.look_at_places()
        assert stats.take() == []
        await sync.look_at_places()  # every FULL_LOOK_EVERY passes: every file, told or not
        assert sorted(stats.take()) == sorted(p.path for p in places)

    try:
        asyncio.run(passes())
    finally:
        sync.close()


def test_without_inotify_every_pass_stats_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_events, "_libc", lambda: None)  # macOS, or a kernel without it
    places = _places(tmp_path, 3)
    stats = Stats(monkeypatch)
    sync = _sync(tmp_path, places)

    async def passes() -> None:
        for _ in range(3):
            await sync.look_at_places()
            assert sorted(stats.take()) == sorted(p.path for p in places)

    asyncio.run(passes())
    sync.close()


@linux_only
def test_a_folder_watched_only_from_now_has_its_files_looked_at(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A place whose folder could not be watched (not there yet) is stat-ed the pass its watch
    begins: what happened there before the watch was never told."""
    later = tmp_path / "later"
    place = Place("acct", "cliproxy", str(later / "token.json"))
    stats = Stats(monkeypatch)
    sync = _sync(tmp_path, [place])

    async def passes() -> None:
        first = await sync.look_at_places()
        assert first[place.path] == (None,) and stats.take() == [place.path]
        later.mkdir()
        Path(place.path).write_text('{"refreshToken": "a tool logged in"}')
        after = await sync.look_at_places()
        assert stats.take() == [place.path] and after[place.path] != (None,)

    try:
        asyncio.run(passes())
    finally:
        sync.close()


@linux_only
def test_a_look_after_close_stats_every_file_and_keeps_no_descriptor(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    places = _places(tmp_path, 2)
    stats = Stats(monkeypatch)
    sync = _sync(tmp_path, places)
    asyncio.run(sync.look_at_places())
    stats.take()
    gc.collect()  # what earlier tests left for the collector closes its descriptors now, not mid-count
    opened = len(os.listdir("/proc/self/fd"))
    sync.close()
    assert len(os.listdir("/proc/self/fd")) == opened - 1  # the inotify descriptor let go
    asyncio.run(sync.look_at_places())  # (a watch pass's look that began as the engine closed)
    assert sorted(stats.take()) == sorted(p.path for p in places)
    assert len(os.listdir("/proc/self/fd")) == opened - 1
