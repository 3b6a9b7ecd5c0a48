"""The app's full garbage collections (tui/collector.py): owed ones run at a quiet moment, or
once put off for too long, never in the middle of activity; CPython decides again afterwards.
An injected clock: nothing here waits on real time."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kiro_tui.tui.collector import LEAST, LONGEST, NEVER, QUIET, Collector
from tests.support.collector import TAKES_OVER

pytestmark = pytest.mark.skipif(not TAKES_OVER, reason="this interpreter's collector keeps no oldest-generation "
                                                       "threshold: the app leaves it to itself")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def collector(clock: Clock) -> Iterator[Collector]:
    KEPT.clear()
    gc.collect()
    given = gc.get_threshold()
    collector = Collector(clock)
    collector.take_over()
    try:
        yield collector
    finally:
        collector.give_back()
        KEPT.clear()
        assert gc.get_threshold() == given


CPYTHONS = gc.get_threshold()[2]
KEPT: list[list[int]] = []


def owe_a_full_collection(grow: bool = True) -> None:
    """What makes CPython start a full collection by itself: enough young collections, and
    (`grow`) the oldest generation grown by more than a quarter since the last one."""
    if grow:
        KEPT.extend([i] for i in range(len(gc.get_objects(generation=2)) // 3 + 1000))
    gc.collect(1)  # (what is kept moves to the oldest generation)
    while gc.get_count()[2] <= CPYTHONS:
        gc.collect(1)


def test_cpython_no_longer_starts_full_collections(collector: Collector) -> None:
    assert gc.get_threshold()[2] == NEVER
    owe_a_full_collection()
    assert gc.get_count()[2] >= CPYTHONS  # owed, and still not run


def test_an_owed_collection_waits_until_nothing_has_happened_for_a_while(clock: Clock,
                                                                          collector: Collector) -> None:
    owe_a_full_collection()
    clock.now += LEAST
    collector.activity()
    assert not collector.tick()
    clock.now += QUIET / 2
    assert not collector.tick()  # something happened a moment ago
    clock.now += QUIET
    collected = gc.get_stats()[2]["collections"]
    assert collector.tick()
    assert gc.get_stats()[2]["collections"] == collected + 1
    assert collector.full_collections == 1


def test_nothing_owed_nothing_run_however_quiet(clock: Clock, collector: Collector) -> None:
    gc.collect()
    clock.now += LONGEST * 2
    assert not collector.tick()
    assert collector.full_collections == 0


def test_a_walk_waits_until_what_outlived_the_last_grew_by_a_quarter(clock: Clock, collector: Collector) -> None:
    """CPython's own rule: at rest after a burst at 10,000 accounts a walk costs 140 ms, and
    young collections alone would owe one every minute."""
    owe_a_full_collection(grow=False)
    clock.now += LEAST
    assert not collector.tick()  # owed and quiet, but nothing much outlived the last walk
    owe_a_full_collection()
    clock.now += QUIET
    assert not collector.tick()  # grown now, but looked a moment ago: the next look in a minute
    clock.now += LEAST
    assert collector.tick()


def test_at_rest_two_full_collections_are_least_apart(clock: Clock, collector: Collector) -> None:
    owe_a_full_collection()
    clock.now += LEAST
    assert collector.tick()
    owe_a_full_collection()
    clock.now += QUIET
    assert not collector.tick()  # quiet, but one ran a moment ago
    clock.now += LEAST
    assert collector.tick()


def test_a_collection_put_off_too_long_runs_even_while_busy(clock: Clock, collector: Collector) -> None:
    owe_a_full_collection()
    for _ in range(int(LONGEST // QUIET)):  # something happens every second or so, for minutes
        clock.now += 1
        collector.activity()
        assert not collector.tick()
    clock.now += LONGEST
    collector.activity()
    assert collector.tick()
