"""The place writes' lane (core/lane.py): jobs take turns on its threads (as many at once as it
has), and a job that waited its bound runs beside stuck ones instead of waiting for them."""

from __future__ import annotations

import asyncio
import threading

from kiro_tui.core.lane import Lane


async def test_jobs_take_turns_on_the_lanes_own_thread() -> None:
    lane = Lane("test lane", wait=30, writers=1)
    first_running, let_first_end = threading.Event(), threading.Event()
    ran: list[tuple[str, str]] = []

    def first() -> str:
        first_running.set()
        let_first_end.wait(10)
        ran.append(("first", threading.current_thread().name))
        return "first"

    def second() -> str:
        ran.append(("second", threading.current_thread().name))
        return "second"

    jobs = asyncio.gather(lane.run(first), lane.run(second))
    await asyncio.to_thread(first_running.wait, 10)
    await asyncio.sleep(0.1)
    assert ran == []  # the second waits for its turn while the first runs
    let_first_end.set()
    assert await jobs == ["first", "second"]
    assert [job for job, _ in ran] == ["first", "second"]
    assert all(thread.startswith("test lane") for _, thread in ran), ran
    assert lane.beside == 0
    lane.close()


async def test_as_many_jobs_run_at_once_as_the_lane_has_threads() -> None:
    """Several accounts' writes under way together, so their fsyncs share the disk's commits;
    one more waits for a thread."""
    lane = Lane("test lane", wait=30, writers=2)
    both_running = threading.Barrier(2, timeout=10)
    let_them_end = threading.Event()
    ran: list[str] = []

    def job(name: str) -> str:
        if name != "third":
            both_running.wait()  # raises (the test fails) unless the two run at the same time
            let_them_end.wait(10)
        ran.append(name)
        return threading.current_thread().name

    jobs = asyncio.gather(lane.run(lambda: job("first")), lane.run(lambda: job("second")),
                          lane.run(lambda: job("third")))
    await asyncio.sleep(0.1)
    assert ran == []  # the third waits for one of the two threads
    let_them_end.set()
    threads = await jobs
    assert "third" in ran[1:]  # on a thread one of the two gave back
    assert all(thread.startswith("test lane") for thread in threads), threads
    assert len(set(threads[:2])) == 2
    lane.close()


async def test_a_job_that_waited_its_bound_runs_beside_a_stuck_one(caplog) -> None:  # type: ignore[no-untyped-def]
    """A place its tool keeps locked (or a hung disk) holds the others back `wait` at most,
    and a person reading the log is told once."""
    lane = Lane("test lane", wait=0.05, writers=1)
    stuck_started, second_done = threading.Event(), threading.Event()

    def stuck() -> bool:
        stuck_started.set()
        return second_done.wait(10)  # ends only once the second has run, beside it

    def second() -> str:
        second_done.set()
        return threading.current_thread().name

    lane.wait = 30  # the stuck job starts on the lane, however slowly this machine gets to it
    stuck_job = asyncio.ensure_future(lane.run(stuck))
    await asyncio.to_thread(stuck_started.wait, 10)
    lane.wait = 0.05
    name = await lane.run(second)
    assert not name.startswith("test lane")
    assert await stuck_job is True
    assert lane.beside == 1
    assert "place writes waited 0.05 s for their thread" in caplog.text
    lane.close()


async def test_a_closed_lane_still_runs_a_job() -> None:
    lane = Lane("test lane")
    lane.close()
    assert await lane.run(lambda: 42) == 42


async def test_a_queued_job_whose_caller_gave_up_never_runs() -> None:
    """A refresh cancelled while its writes wait for their turn (a second Ctrl-C abandons it):
    they are not made behind its back later; its places stay pending, on disk."""
    lane = Lane("test lane", wait=30, writers=1)
    let_first_end = threading.Event()
    ran: list[str] = []
    first = asyncio.ensure_future(lane.run(lambda: let_first_end.wait(10)))
    second = asyncio.ensure_future(lane.run(lambda: ran.append("second")))
    await asyncio.sleep(0.05)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    let_first_end.set()
    assert await first is True
    await lane.run(lambda: ran.append("third"))
    assert ran == ["third"]
    lane.close()
