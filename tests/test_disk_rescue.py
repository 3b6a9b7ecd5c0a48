"""Issue 19/20, the store's side: nothing spends a refresh token whose successor cannot be kept,
and a token the service handed over survives the process when the store cannot take it.

Real stores on disk (SQLite's max_page_count for a full database; a small tmpfs in a private
mount namespace for a full file system), the emulator over loopback, the installed `kiro-tui`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kiro_tui.core import rescue
from kiro_tui.core.models import Mode, Outcome
from kiro_tui.core.refresh import rescue_dir
from kiro_tui.core.store import AccountStore
from tests.support.engine import at, seed_into_kiro_cli
from tests.support.kiro_cli_db import KiroCliDb
from tests.support.watch import refresh_request_arrives
from tests.test_reliability import Rig, disk_fills_during_the_call, fill_to_the_brim, free_space


@pytest.fixture
async def rig(tmp_path: Path, emulator, emulator_time, http, endpoints):
    from kiro_tui.core.clock import ManualClock

    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        yield Rig(tmp_path, store, http, endpoints, ManualClock(at(emulator_time.now)), emulator)


# ------------------------------------------------------------------ the write probe


async def test_a_store_that_cannot_take_the_commit_is_not_refreshed(rig: Rig) -> None:
    """The store is full before the refresh: the probe says so and no token is spent."""
    account_id, seeded = rig.add(kind="social", email="probe@example.com")
    rig.make_due(account_id)
    fill_to_the_brim(rig.store)
    result = await rig.refresher.refresh(account_id)
    assert result.outcome is Outcome.FAILED
    assert (result.message or "").startswith(
        "store not writable: not refreshing, the current token stays valid until "), result.message
    assert "disk full" in (result.message or "")
    assert rig.refresh_calls() == []  # nothing spent
    assert rig.refresher.held == {}
    free_space(rig.store)
    rig.refresher.backing_off.clear()
    again = await rig.refresher.refresh(account_id)
    assert again.outcome is Outcome.REFRESHED, again.message
    assert rig.store.get(account_id).refresh_token != seeded["token"]["refresh_token"]  # type: ignore[union-attr]


async def test_a_refresh_that_waited_for_a_slot_is_not_started_on_a_disk_that_filled_meanwhile(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its probe passed before it waited for a network slot (every slot busy); the disk filled
    while it waited. The room is checked again once it has the slot: no token is spent whose
    successor could not be kept (under load, `refresh --all` on a filling disk spent them all)."""
    from kiro_tui.core.store import opening

    account_id, seeded = rig.add(kind="social", email="waiting@example.com")
    rig.make_due(account_id)
    network = rig.refresher.network
    taken = 0
    while not network.locked():
        await network.acquire()
        taken += 1
    probed = asyncio.Event()
    probe = rig.store.probe_on_writer

    async def probe_then_tell() -> None:
        await probe()
        probed.set()  # the refresh goes on to wait for a slot before this test runs again

    monkeypatch.setattr(rig.store, "probe_on_writer", probe_then_tell)
    refresh = asyncio.ensure_future(rig.refresher.refresh(account_id))
    await probed.wait()
    monkeypatch.setattr(opening, "_free_bytes", lambda folder: 0)  # the disk fills meanwhile
    for _ in range(taken):
        network.release()
    result = await refresh
    assert result.outcome is Outcome.FAILED, result.message
    assert (result.message or "").startswith("store not writable: not refreshing"), result.message
    assert "disk full" in (result.message or "")
    assert rig.refresh_calls() == []  # nothing spent
    assert rig.store.get(account_id).refresh_token == seeded["token"]["refresh_token"]  # type: ignore[union-attr]


# ------------------------------------------------------------------ where the rescue copy goes


def block(folder: Path) -> None:
    """A folder nobody can write into, even root: a file where the folder should be."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("in the way\n")


async def test_the_rescue_goes_to_the_state_folder_when_beside_the_store_fails(rig: Rig) -> None:
    account_id, _ = rig.add_own(kind="builder-id", email="state@example.com")
    rig.make_due(account_id)
    block(rescue_dir(rig.store))
    disk_fills_during_the_call(rig.refresher, rig.store)
    await rig.refresher.refresh(account_id)
    held = rig.refresher.held[account_id]
    state_copy = rescue.folders(rig.store.path)[1] / f"{account_id}.json"
    assert held.rescue == str(state_copy)
    assert held.rescue_failures and str(rescue_dir(rig.store)) in held.rescue_failures[0]
    assert json.loads(state_copy.read_text())["refresh_token"] == held.refresh_token
    assert state_copy.stat().st_mode & 0o777 == 0o600
    assert f"a rescue copy is saved in {state_copy} (read back and verified)" in held.rescue_note
    assert not list(state_copy.parent.glob(".*.tmp"))  # no temporary file left
    # a later run picks it up from there, commits it and removes the copy
    free_space(rig.store)
    later = rig.new_refresher()
    assert set(later.held) == {account_id}
    await later.commit_held(force=True)
    assert rig.store.get(account_id).refresh_token == held.refresh_token  # type: ignore[union-attr]
    assert not state_copy.exists() and later.held == {}
    assert later.saved_held == [(account_id, "state@example.com", str(state_copy))]


async def test_the_rescue_goes_into_the_source_place_when_no_folder_takes_it(rig: Rig) -> None:
    """No rescue folder can be written: the token goes into kiro-cli's database, in its own
    format, read back; a message claims it only then, and the next refresh adopts it."""
    account_id, seeded = rig.add(kind="social", email="source@example.com", mode=Mode.SYNC)
    rig.make_due(account_id)
    for folder in rescue.folders(rig.store.path):
        block(folder)
    disk_fills_during_the_call(rig.refresher, rig.store)
    await rig.refresher.refresh(account_id)
    held = rig.refresher.held[account_id]
    assert held.rescue == f"kiro-cli's {rig.db.path} (in its own format)"
    assert rig.db.get_json("auth_kv", "kirocli:social:token")["refresh_token"] == held.refresh_token
    assert len(held.rescue_failures) == len(rescue.folders(rig.store.path))
    # the process dies; the next one has room and reads kiro-cli before spending anything
    free_space(rig.store)
    later = rig.new_refresher()
    assert later.held == {}
    result = await later.refresh(account_id, force=True)
    assert result.outcome is Outcome.ADOPTED, result.message
    assert rig.store.get(account_id).refresh_token == held.refresh_token  # type: ignore[union-attr]
    assert [r["status"] for r in rig.refresh_calls()] == [200]  # the seeded token was spent once, not twice
    del seeded


async def test_no_copy_anywhere_is_said_plainly(rig: Rig) -> None:
    account_id, _ = rig.add_own(kind="social", email="nowhere@example.com")  # own: no place to fall back on
    rig.make_due(account_id)
    for folder in rescue.folders(rig.store.path):
        block(folder)
    disk_fills_during_the_call(rig.refresher, rig.store)
    await rig.refresher.refresh(account_id)
    held = rig.refresher.held[account_id]
    assert held.rescue is None
    assert held.rescue_note.startswith("NO rescue copy could be written (")
    assert "is only in this process's memory" in held.rescue_note


# ------------------------------------------------------------------ a rescue never outlives its commit


async def test_a_rescue_is_removed_when_a_refresh_spends_the_held_token(rig: Rig) -> None:
    """Issue 20 item 2: the held token is spent by the next refresh (store writable again): its
    rescue copy goes in that step, and a copy left over (a crash between the two) is never spent."""
    account_id, _ = rig.add(kind="social", email="stale@example.com")
    rig.make_due(account_id)
    disk_fills_during_the_call(rig.refresher, rig.store)
    await rig.refresher.refresh(account_id)
    copy = rescue_dir(rig.store) / f"{account_id}.json"
    leftover = copy.read_text()
    free_space(rig.store)
    rig.clock.advance(3600)
    again = await rig.refresher.refresh(account_id, force=True)  # spends the held token, commits the next
    assert again.outcome is Outcome.REFRESHED, again.message
    assert not copy.exists()
    # a copy left by a crash between the commit and the removal: the store has gone past it
    copy.write_text(leftover)
    later = rig.new_refresher()
    assert later.held == {} and not copy.exists()
    third = await later.refresh(account_id, force=True)
    assert third.outcome is Outcome.REFRESHED, third.message
    assert [r["status"] for r in rig.refresh_calls()] == [200, 200, 200]  # never the dead token


# ------------------------------------------------------------------ the scenario, on a real full disk


def _mount_namespaces() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True).returncode == 0


SCENARIOS = {
    "checkpoint": (False, False),
    "reader-state-elsewhere": (True, False),
    "reader-state-full-too": (True, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_refresh_all_on_a_full_disk_loses_no_login(kiro_tui_exe, tmp_path, scenario) -> None:
    """The store on a 4 MB tmpfs that fills while 12 sync-mode refreshes are on the wire (the
    emulator answers after 3 s); the accounts' kiro-cli databases are on another disk with room.

    checkpoint: nothing else reads the store, so a commit that fails gives the WAL's space back
    (a checkpoint) and is tried once more; the refreshes not yet started are not started.
    reader-…: another kiro-tui holds a read on the store, so no space comes back: the tokens are
    held, each in a verified rescue copy the message names (the state folder; with the state
    folder on the full disk too, kiro-cli's own database in its format); `list` saves the copies
    and says so. Every time, every stored token is then spent once more: 0 lost."""
    if not _mount_namespaces():
        pytest.skip("needs mount namespaces (unshare -m, as root) for a real small file system")
    from kiro_tui.emulator import Emulator

    with_reader, state_on_full_disk = SCENARIOS[scenario]
    root = tmp_path / "root"
    kinds = ["social", "builder-id", "idc"]
    with Emulator() as emulator:
        dbs = []
        for n in range(12):
            db = KiroCliDb(root / "kiro-cli" / str(n) / "data.sqlite3")
            seed_into_kiro_cli(emulator, db, kind=kinds[n % 3], email=f"user{n}@example.com", expires_in=300)
            dbs.append(str(db.path))
        arrived = refresh_request_arrives(emulator)
        driver = Path(__file__).parent / "support" / "full_disk_rescue.py"
        flags = [*(["--state-on-full-disk"] if state_on_full_disk else []), *(["--reader"] if with_reader else [])]
        proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", sys.executable, str(driver), str(root),
                                 emulator.url, kiro_tui_exe, *dbs, *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        signal = threading.Thread(target=lambda: arrived.wait(120) and (root / "arrived").touch(), daemon=True)
        signal.start()
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        steps = json.loads(out)
    assert steps["imports"] == [0] * 12 and steps["arrived"]
    said = steps["refresh"]["out"] + steps["refresh"]["err"]
    assert "Traceback" not in said and "internal error" not in said, said
    assert steps["refresh"]["code"] == 1, said  # not every account refreshed: exit 1
    assert "not writable" in said, said
    claims = re.findall(r"a rescue copy is saved in (.+?) \(read back and verified\)", said)
    assert "NO rescue copy" not in said
    if not with_reader:
        assert "refreshed " in steps["refresh"]["out"], said  # the checkpoint made room for the commits
    elif state_on_full_disk:
        assert claims, said  # the disk filled while refreshes were on the wire: tokens needed rescuing
        assert all(c.startswith("kiro-cli's ") and c.endswith(" (in its own format)") for c in claims), claims
    else:
        assert claims, said
        assert all("/state/kiro-tui/rescue/" in c for c in claims), claims
        assert {c: "0o600" for c in claims}.items() <= steps["rescue_files"].items()
        listed = steps["list"]["err"]
        assert listed.count("is now saved in the store") == len(claims), listed
        assert steps["rescue_files_after"] == []
    assert steps["list"]["code"] == 0, steps["list"]["err"]
    again = json.loads(steps["again"]["out"])
    assert len(again) == 12 and all(r["outcome"] in ("refreshed", "adopted") for r in again), steps["again"]
    spend = json.loads(steps["spend"]["out"])
    assert [r["outcome"] for r in spend] == ["refreshed"] * 12, steps["spend"]  # 0 lost
    assert all(r["status"] == "fresh" for r in spend)


# ------------------------------------------------------------------ a deadline shorter than the lease


async def test_a_slow_loris_answer_ends_at_the_deadline_and_no_one_else_spends_the_token(rig: Rig) -> None:
    """Issue 20 item 4: a server that answers one byte at a time never trips a per-read timeout.
    The refresh ends at its own deadline (shorter than the lease); meanwhile another process finds
    the lease held and spends nothing; after it, the lease is free and the token still alive."""
    import asyncio
    import time as wall

    from kiro_tui.core.aws.endpoints import Endpoints
    from kiro_tui.core.config import Settings
    from kiro_tui.core.refresh import LEASE_SECONDS, RefreshClients, Refresher

    asked = asyncio.Event()

    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            asked.set()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(dribble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    account_id, seeded = rig.add_own(kind="social", email="loris@example.com")
    rig.make_due(account_id)
    slow = Refresher(rig.store, RefreshClients.create(rig.http, Endpoints(override=f"http://127.0.0.1:{port}")),
                     rig.clock, Settings(), deadline=1.0)
    assert slow.deadline < LEASE_SECONDS
    try:
        started = wall.monotonic()
        first = asyncio.create_task(slow.refresh(account_id))
        await asyncio.wait_for(asked.wait(), 10)
        other = await rig.new_refresher().refresh(account_id, force=True)  # another process, meanwhile
        assert other.outcome is Outcome.BUSY
        result = await asyncio.wait_for(first, 10)
        elapsed = wall.monotonic() - started
    finally:
        server.close()
    assert result.outcome is Outcome.FAILED and result.classification == "transient", result.message
    assert "no complete answer within 1 s" in (result.message or "")
    assert elapsed < 5
    await rig.store.writer.run(lambda tx: None, durable=False)  # (the release was queued before it: one queue)
    assert rig.store.refreshing_ids(rig.clock.now()) == set()  # the lease is released
    assert rig.store.get(account_id).refresh_token == seeded["token"]["refresh_token"]  # type: ignore[union-attr]
    assert rig.refresh_calls() == []  # the emulator never saw it: the token is unspent
    rig.clock.advance(600)  # past the backoff
    again = await rig.new_refresher().refresh(account_id, force=True)
    assert again.outcome is Outcome.REFRESHED, again.message


# ------------------------------------------------------------------ the store replaced under a running engine


async def test_a_store_replaced_while_the_engine_runs_is_reopened_and_keeps_the_new_tokens(rig: Rig) -> None:
    """Issue 20 item 3: a backup restored over the store (rename) while `watch` runs. The next
    pass notices the new file, reopens it and saves into it the tokens rotated since the backup,
    loudly; then every token is alive."""
    import os
    import sqlite3

    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.events import EngineNotice

    ids = [rig.add_own(kind=kind, email=f"{kind}@replaced.example.com")[0] for kind in ("social", "builder-id", "idc")]
    backup = rig.tmp_path / "backup.db"
    with sqlite3.connect(backup) as copy:
        rig.store.connection.backup(copy)  # a consistent backup, taken before the refreshes
    copy.close()
    events: list = []
    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, fetch_usage=False,
                    on_event=events.append)
    await engine.start()
    for account_id in ids:
        rig.make_due(account_id)
    results = await engine.refresh_now(ids)
    assert [r.outcome for r in results] == [Outcome.REFRESHED] * 3
    rotated = {a.id: a.refresh_token for a in rig.store.accounts()}
    os.replace(backup, rig.store.path)  # the backup restored over the store, watch still running
    await engine.watch_pass()
    notices = [e.text for e in events if isinstance(e, EngineNotice)]
    assert notices and "was replaced while kiro-tui was running" in notices[-1] and "saved 3 newer tokens" in notices[-1]
    with AccountStore.open(rig.store.path) as reopened:  # what the next kiro-tui reads
        assert {a.id: a.refresh_token for a in reopened.accounts()} == rotated
    rig.clock.advance(3600)
    again = await engine.refresh_now(ids)  # into the file now at the path, with live tokens
    assert [r.outcome for r in again] == [Outcome.REFRESHED] * 3, [r.message for r in again]
    await engine.stop()
    await engine.close()
    with AccountStore.open(rig.store.path) as reopened:
        assert {a.id: a.refresh_token for a in reopened.accounts()} != rotated  # committed into the new file


# ------------------------------------------------------------------ suspended, wherever the service says so


async def test_a_usage_fetch_that_hears_suspended_shows_the_account_suspended(rig: Rig) -> None:
    """Issue 19: GetUsageLimits answering TEMPORARILY_SUSPENDED turns the account `suspended`
    (not `fresh` with a stored message), with the status change a toast and a notification hook on."""
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.events import StatusChanged
    from kiro_tui.core.models import Status
    from tests.support.engine import control

    account_id, _ = rig.add_own(kind="social", email="suspended@example.com")
    events: list = []
    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, on_event=events.append)
    await engine.start()
    control(rig.emulator, "suspend", {"email": "suspended@example.com"})
    record = await engine.fetch_usage_now(account_id)
    assert record is not None and "suspended" in (record.error or "")
    account = rig.store.get(account_id)
    assert account is not None and account.status(rig.clock.now(), Settings().window) is Status.SUSPENDED
    assert (account.last_error or "").startswith("account suspended: ")
    changes = [e.change for e in events if isinstance(e, StatusChanged)]
    assert [(c.account_id, c.before, c.after) for c in changes] == [(account_id, Status.FRESH, Status.SUSPENDED)]
    (view,) = (await engine.views([account_id])).views
    assert view.status(rig.clock.now(), Settings().window).label == "suspended"


# ------------------------------------------------------------------ places kiro-tui cannot write


async def test_an_opencode_copy_of_a_kiro_cli_login_is_stale_after_a_refresh_never_in_sync(rig: Rig) -> None:
    """Issue 19: opencode's kiro.db is never written. Alone it imports in follow mode (its own
    token is never spent); holding the same credential as a kiro-cli login it is that account's
    place, and once kiro-tui refreshed, it holds an older token: `stale`, not `in-sync`."""
    from kiro_tui.core.models import PlaceState
    from kiro_tui.core.places import place_format
    from tests.support.places import login_of, opencode_row, write_opencode

    account_id, seeded = rig.add(kind="builder-id", email="both@example.com", mode=Mode.SYNC)
    kiro_db = write_opencode(rig.tmp_path / "opencode" / "kiro.db", [opencode_row(login_of(seeded))])
    from kiro_tui.core.importer import import_snapshot

    report = import_snapshot(rig.store, place_format("opencode").scan(kiro_db, rig.clock.now()), rig.clock.now(),
                             Mode.SYNC)
    assert [item.id for item in report.imported] == [account_id]  # linked to the kiro-cli login
    assert rig.store.get(account_id).mode is Mode.SYNC  # type: ignore[union-attr]  # kiro-cli's: writable
    rig.make_due(account_id)
    assert (await rig.refresher.refresh(account_id)).outcome is Outcome.REFRESHED
    states = {p.kind: p.state for p in rig.store.places(account_id)}
    assert states == {"kiro-cli": PlaceState.IN_SYNC, "opencode": PlaceState.STALE}

    alone = rig.emulator.seed(kind="social", email="alone@example.com")
    only = write_opencode(rig.tmp_path / "opencode2" / "kiro.db", [opencode_row(login_of(alone))])
    (item,) = import_snapshot(rig.store, place_format("opencode").scan(only, rig.clock.now()), rig.clock.now(),
                              Mode.SYNC).imported
    assert rig.store.get(item.id).mode is Mode.FOLLOW  # type: ignore[union-attr]
    assert item.note == f"follow mode: kiro-tui cannot write {only}"
    result = await rig.refresher.refresh(item.id, force=True)
    assert result.outcome is Outcome.FOLLOWED
    assert not [r for r in rig.refresh_calls() if r["email"] == "alone@example.com"]  # opencode's token unspent


# ------------------------------------------------------------------ lesser: a damaged store, a 0400 -shm


def test_a_corrupt_page_is_one_line_naming_the_file_and_recover(kiro_tui_exe, isolated_dirs, emulator) -> None:
    import sqlite3

    from kiro_tui.demo import account_from_seed
    from tests.support.run import run_cli

    path = isolated_dirs / "data" / "kiro-tui" / "accounts.db"
    with AccountStore.open(path) as store:
        store.save(account_from_seed(emulator.seed(kind="social", email="damaged@example.com"), "dama9ed0"))
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root, size = (db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'accounts'").fetchone()[0],
                  db.execute("PRAGMA page_size").fetchone()[0])
    db.close()
    with open(path, "r+b") as handle:  # the accounts table's page overwritten: a torn write, a bad sector
        handle.seek((root - 1) * size)
        handle.write(b"\xff" * size)
    for command in (["list"], ["refresh", "--all"]):
        result = run_cli(kiro_tui_exe, *command)
        assert result.code == 1, result
        (line,) = result.err.strip().splitlines()
        assert "internal error" not in line
        assert line.startswith(f"kiro-tui: error: the account store {path} is damaged")
        assert f"sqlite3 {path} .recover" in line


def test_a_read_only_shm_beside_the_store_is_made_writable_again_and_said(isolated_dirs) -> None:
    """A `-shm` left 0400 (a backup tool, a copy) keeps SQLite read-only for its owner: it is set
    back to 0600 at open, and said."""
    import os

    path = isolated_dirs / "data" / "kiro-tui" / "accounts.db"
    AccountStore.open(path).close()
    shm = path.with_name("accounts.db-shm")
    shm.write_bytes(b"\0" * 32768)
    os.chmod(shm, 0o400)
    with AccountStore.open(path) as store:
        assert shm.stat().st_mode & 0o777 == 0o600
        assert any(f"{shm} was read-only (mode 0400)" in fix for fix in store.permission_fixes), store.permission_fixes
        assert store.writable()


async def test_watch_says_all_is_well_only_once_the_store_takes_writes_again(rig: Rig) -> None:
    """Issue 20 (lesser): a pass that writes nothing goes through while another program still
    holds the store's write lock; the problem is over only when a write goes through again."""
    import sqlite3

    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine
    from kiro_tui.core.events import EngineProblem
    from tests.support.places import login_of, write_cliproxy

    proxy = write_cliproxy(rig.tmp_path / "proxy", login_of(rig.emulator.seed(kind="social", email="l@example.com")))
    rig.store.connection.execute("PRAGMA busy_timeout=100")
    events: list = []
    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, fetch_usage=False,
                    on_event=events.append)
    await engine.import_now(proxy, "cliproxy")
    await engine.watch_pass()  # learns how the place looks
    locker = sqlite3.connect(rig.store.path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        other = write_cliproxy(rig.tmp_path / "other", login_of(rig.emulator.seed(kind="social", email="m@example.com")))
        proxy.write_bytes(other.read_bytes())  # the tool logged in as someone else there
        await engine.watch_pass()  # the changed place is read again; its import cannot be written
        assert engine.problem and "locked" in engine.problem, engine.problem
        await engine.watch_pass()  # nothing to write this time: the pass goes through
        assert engine.problem and "locked" in engine.problem  # but the store still does not take writes
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await engine.watch_pass()
    assert engine.problem is None
    assert [e.problem for e in events if isinstance(e, EngineProblem)][-1] is None
    await engine.close()


async def test_the_engine_view_of_a_held_token_names_its_rescue_copy(rig: Rig) -> None:
    from kiro_tui.core.config import Settings
    from kiro_tui.core.engine import Engine

    account_id, _ = rig.add_own(kind="social", email="shown@example.com")
    rig.make_due(account_id)
    engine = Engine(rig.store, Settings(), rig.clock, rig.endpoints, None, http=rig.http, fetch_usage=False)
    await engine.start()
    assert engine.refresher is not None
    disk_fills_during_the_call(engine.refresher, rig.store)
    await engine.refresh_now([account_id])
    (view,) = (await engine.views([account_id])).views
    copy = rescue_dir(rig.store) / f"{account_id}.json"
    assert view.held == f"token held in memory: the store is not writable: disk full; rescue copy in {copy}"
    await engine.close()


async def test_the_tui_saves_an_earlier_runs_rescue_at_start_and_says_so(tmp_path: Path) -> None:
    """The next start commits what an earlier run rescued, and the TUI says so (a toast)."""
    from kiro_tui.core.masking import fingerprint
    from tests.support.tui import build_app, build_store, settle, toasts

    with build_store(tmp_path / "s.db") as store:
        spent = store.get("b2c3d4e5").refresh_token  # type: ignore[union-attr]
        copy, _ = rescue.save(store.path, "b2c3d4e5", {
            "account_id": "b2c3d4e5", "access_token": "aoaRESCUEDaccess", "refresh_token": "aorRESCUEDrefresh",
            "expires_at": "2026-11-23T12:55:00Z", "spent": fingerprint(spent), "since": "2026-11-23T11:55:00Z"})
        assert copy is not None
        app = build_app(store)
        async with app.run_test(size=(160, 40), notifications=True) as pilot:
            await settle(pilot)
            await pilot.pause()
            said = [t for t in toasts(app) if "rescued" in t]
            assert said == [f"Token saved: b2c3d4e5 bob@example.com: the token an earlier run rescued in {copy} is now saved "
                            "in the store"], toasts(app)
        assert store.get("b2c3d4e5").refresh_token == "aorRESCUEDrefresh"  # type: ignore[union-attr]
        assert not copy.exists()
