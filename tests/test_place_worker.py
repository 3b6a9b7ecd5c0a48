"""The place writes' own process (core/place_worker.py): a burst of place writes runs there, so
their Python does not take the interpreter lock from the event loop. What it must never do:
lose a job's answer or what it logged, stop halfway through a write because kiro-tui's
terminal sent a signal, or leave places counted as written when it was killed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import threading
from functools import partial
from pathlib import Path

import pytest

from kiro_tui.core import place_worker
from kiro_tui.core.clock import ManualClock
from kiro_tui.core.config import Settings
from kiro_tui.core.engine import Engine
from kiro_tui.core.lane import Lane
from kiro_tui.core.models import Outcome, PlaceState
from kiro_tui.core.place_worker import PlaceWorker, PlaceWorkerGone
from kiro_tui.core.places import place_format
from kiro_tui.core.store import AccountStore
from tests.support.engine import account_from_seed, at
from tests.support.waiting import until_async

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the process runs on POSIX systems only")


@pytest.fixture(autouse=True)
def no_process_left(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every process a test started is gone after it, even when the test failed halfway (a
    process it stopped with SIGSTOP would otherwise stay)."""
    started: list[PlaceWorker] = []
    real_init = PlaceWorker.__init__

    def init(self: PlaceWorker, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(PlaceWorker, "__init__", init)
    yield
    for worker in started:
        if worker._process.poll() is None:
            worker._process.kill()
            worker._process.wait()


async def answer(future):  # type: ignore[no-untyped-def]
    """A job's answer from the process; a wait of more than 30 s is this test's failure, not a hang."""
    return await asyncio.wait_for(asyncio.wrap_future(future), 30)


def until_there(path: Path) -> str:
    """A shell loop that waits for `path` to exist (30 s at most: a failed test never hangs on it)."""
    return f"i=0; while [ ! -e '{path}' ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done"


async def test_a_job_that_finds_every_thread_busy_starts_the_process_and_runs_there() -> None:
    lane = Lane("test lane", wait=30, writers=1)
    let_first_end = threading.Event()
    first = asyncio.ensure_future(lane.run(lambda: let_first_end.wait(10)))  # (a lambda: on a thread)
    await asyncio.sleep(0.05)
    assert lane.worker is None  # nobody waits for a thread yet: no process
    pid = await lane.run(partial(os.getpid))
    assert lane.worker is not None and pid == lane.worker.pid != os.getpid()
    let_first_end.set()
    assert await first is True
    assert await lane.run(partial(os.getpid)) == pid  # the burst's process serves what follows
    # A job that cannot be sent there (not picklable) runs on the lane's thread.
    assert (await lane.run(lambda: threading.current_thread().name)).startswith("test lane")
    lane.close()


async def test_what_a_job_logs_in_the_process_reaches_kiro_tuis_log(caplog: pytest.LogCaptureFixture) -> None:
    worker = PlaceWorker(writers=1)
    caplog.set_level(logging.INFO, logger="kiro_tui")
    job = partial(logging.getLogger("kiro_tui.places").warning, "a place says %s", "hello")
    assert await answer(worker.submit(job)) is None
    (record,) = [r for r in caplog.records if r.getMessage() == "a place says hello"]
    assert record.name == "kiro_tui.places" and record.process != os.getpid()
    worker.close()


async def test_signals_from_the_terminal_do_not_stop_a_write_under_way(tmp_path: Path) -> None:
    """Ctrl-C and a closed terminal go to the terminal's process group, a service's stop to every
    process of the service: they are kiro-tui's to answer (it ends its refreshes, then closes
    the process), not a write's to abandon."""
    worker = PlaceWorker(writers=1)
    assert os.getsid(worker.pid) != os.getsid(0)  # not in the terminal's session: Ctrl-C is not sent to it
    assert await answer(worker.submit(partial(os.getpid))) == worker.pid
    go = tmp_path / "go"
    job = partial(subprocess.run, ["sh", "-c", until_there(go) + "; echo done"],
                  capture_output=True, text=True)
    answered = asyncio.ensure_future(answer(worker.submit(job)))
    await until_async(lambda: worker._sent, "the job sent")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        os.kill(worker.pid, sig)
    await asyncio.sleep(0.2)
    go.touch()
    assert (await answered).stdout == "done\n"
    assert worker._process.poll() is None
    worker.close()
    await until_async(lambda: worker._process.poll() is not None, "the process ended once closed")
    assert worker._process.returncode == 0


async def test_a_killed_process_fails_its_jobs_and_the_lane_goes_on_without_it() -> None:
    lane = Lane("test lane", wait=30, writers=1)
    lane.worker = worker = PlaceWorker(writers=1)
    await until_async(lambda: worker.ready, "the process ready")
    os.kill(worker.pid, signal.SIGSTOP)  # the job is sent and never answered
    running = asyncio.ensure_future(lane.run(partial(os.getpid)))
    await until_async(lambda: worker._sent, "the job sent")
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(PlaceWorkerGone, match="stopped"):
        await running
    assert worker.winding_down
    assert await lane.run(partial(os.getpid)) == os.getpid()  # on a thread: nobody waits for one
    lane.close()


async def test_a_job_waiting_for_its_turn_at_the_process_runs_beside_and_never_there(tmp_path: Path) -> None:
    """As on the threads (core/lane.py): a place its tool keeps locked holds the others back for
    `wait` at most; the job taken back from the process's queue is never made there too."""
    lane = Lane("test lane", wait=0.2, writers=1)
    lane.worker = worker = PlaceWorker(writers=1)
    await until_async(lambda: worker.ready, "the process ready")  # (else the stuck job itself runs beside)
    go = tmp_path / "go"
    stuck = asyncio.ensure_future(lane.run(partial(subprocess.run, ["sh", "-c", until_there(go)])))
    await until_async(lambda: worker._sent, "the stuck job sent")
    assert await lane.run(partial(os.getpid)) == os.getpid()  # beside, here
    assert lane.beside == 1
    go.touch()
    assert (await stuck).returncode == 0
    assert worker.answered == 1  # the stuck one only
    lane.close()


async def test_an_answer_that_cannot_be_sent_back_is_a_failure_not_a_wait(caplog: pytest.LogCaptureFixture) -> None:
    worker = PlaceWorker(writers=1)
    with pytest.raises(PlaceWorkerGone, match="could not be sent"):
        await answer(worker.submit(partial(threading.Lock)))
    assert await answer(worker.submit(partial(os.getpid))) == worker.pid
    worker.close()


async def test_a_process_that_cannot_start_leaves_the_writes_to_the_threads(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """E.g. a Python that cannot import kiro-tui: the jobs it never took run on kiro-tui's own
    threads, and no later burst tries again."""
    monkeypatch.setattr(place_worker, "_CHILD", "import sys; sys.exit(3)")
    lane = Lane("test lane", wait=30, writers=1)
    lane.worker = PlaceWorker(writers=1)
    assert await lane.run(partial(os.getpid)) == os.getpid()
    assert not lane.separate
    assert "place writer process did not start (exit code 3)" in caplog.text
    lane.close()


async def test_the_folder_kiro_tui_was_started_in_is_not_searched_for_modules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `signal.py` in an untrusted folder someone runs kiro-tui from never runs in the process
    that is handed the tokens."""
    (tmp_path / "signal.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    worker = PlaceWorker(writers=1)
    assert await answer(worker.submit(partial(os.getpid))) == worker.pid
    assert not (tmp_path / "ran").exists()
    worker.close()


async def test_the_process_ends_when_idle_and_comes_back_for_the_next_burst() -> None:
    worker = PlaceWorker(writers=1, idle_exit=0.1)
    assert await answer(worker.submit(partial(os.getpid))) == worker.pid
    await until_async(lambda: worker._process.poll() is not None, "the idle process ended")
    assert worker.winding_down and worker._process.returncode == 0
    assert worker.submit(partial(os.getpid)) is None  # the lane starts another


@pytest.fixture
async def engine(tmp_path: Path, emulator, emulator_time, http, endpoints):  # type: ignore[no-untyped-def]
    with AccountStore.open(tmp_path / "store" / "accounts.db") as store:
        engine = Engine(store, Settings(), ManualClock(at(emulator_time.now)), endpoints, None, http=http,
                        fetch_usage=False)
        yield engine
        await engine.close()


def own_account(engine: Engine, emulator) -> str:  # type: ignore[no-untyped-def]
    account = account_from_seed(emulator.seed(kind="social", email="worker@example.com"), "33cc44dd")
    engine.store.save(account)
    return account.id


LINKS = (("kiro-ide", "ide/kiro-auth-token.json"), ("cliproxy", "proxy"), ("gateway-db", "g.sqlite3"))


async def test_a_refresh_writes_its_places_through_the_process_as_on_threads(tmp_path: Path, engine: Engine,
                                                                             emulator) -> None:
    account_id = own_account(engine, emulator)
    for kind, name in LINKS:
        await engine.link(account_id, kind, tmp_path / name)
    lane = engine.refresher.places.lane
    lane.worker = worker = PlaceWorker(writers=3)
    await until_async(lambda: worker.ready, "the process ready")  # (a job waits 1 s for it, then runs beside)
    (result,) = await engine.refresh_now([account_id])
    assert result.outcome is Outcome.REFRESHED
    assert worker.answered == 1  # the account's places, in one job
    account = engine.store.get(account_id)
    assert account is not None
    places = engine.store.places(account_id)
    assert {p.state for p in places} == {PlaceState.IN_SYNC}
    for place in places:
        login = place_format(place.kind).read_entry(Path(place.path), place.entry, account.expires_at)
        assert login is not None and login.refresh_token == account.refresh_token, place.kind
    # As written by kiro-tui itself: the next watch pass sees no tool's change there.
    assert await engine.refresher.places.changed() == {}
    assert await engine.refresher.places.changed() == {}


async def test_places_a_killed_process_was_writing_stay_pending_and_are_written_again(
        tmp_path: Path, engine: Engine, emulator) -> None:
    account_id = own_account(engine, emulator)
    for kind, name in LINKS:
        await engine.link(account_id, kind, tmp_path / name)
    sync = engine.refresher.places
    sync.lane.worker = worker = PlaceWorker(writers=3)
    await until_async(lambda: worker.ready, "the process ready")
    os.kill(worker.pid, signal.SIGSTOP)
    refresh = asyncio.ensure_future(engine.refresh_now([account_id]))
    await until_async(lambda: worker._sent, "the place writes sent")
    os.kill(worker.pid, signal.SIGKILL)
    (result,) = await refresh
    assert result.outcome is Outcome.REFRESHED  # the token is in the store: the places wait
    places = engine.store.places(account_id)
    assert {p.state for p in places} == {PlaceState.PENDING}
    assert all("place writer process stopped" in (p.detail or "") for p in places)
    assert sync.pending_accounts() == {account_id}
    await sync.write_pending(account_id)  # what the watch pass does: on a thread now
    account = engine.store.get(account_id)
    assert account is not None
    assert {p.state for p in engine.store.places(account_id)} == {PlaceState.IN_SYNC}
    for place in engine.store.places(account_id):
        login = place_format(place.kind).read_entry(Path(place.path), place.entry, account.expires_at)
        assert login is not None and login.refresh_token == account.refresh_token, place.kind
