"""When the cyclic garbage collector walks every object: at a quiet moment, not in a burst.

CPython starts a full collection by itself once enough objects have outlived the younger
generations, and it walks every object not frozen while holding the interpreter lock that the
UI and engine threads share. With 10,000 accounts, each re-read as a refresh burst commits it,
those walks paused the UI 24-70 ms at a time in the middle of the burst.

Once the first screen is frozen (`KiroTuiApp.freeze_what_is_built`), the app takes the full
collections over: the young generations are still collected by CPython as usual (they are
small), and the whole heap when nothing has happened for `QUIET` seconds (no key, no click,
no account changed), or, while things keep happening, once `LONGEST` has passed. CPython's own
rule still decides whether a walk is worth it: only once what outlived the last one grew by a
quarter (after a burst at 10,000 accounts a walk costs 140 ms; without that rule one would run
every minute at rest). So garbage in cycles is kept as long as CPython would keep it, never
more than `LONGEST` past that.

An interpreter whose collector has no oldest-generation threshold to set (CPython's incremental
collector ignores it) is left to itself: `take_over` then changes nothing.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

QUIET = 3.0
"""Seconds with no input and no account changed before a full collection may run."""

LONGEST = 300.0
"""Seconds a full collection may be put off while things keep happening."""

LEAST = 60.0
"""Seconds between two full collections at least, and between two looks at whether one is worth it."""

NEVER = 1 << 30
"""The oldest generation's threshold while the app keeps full collections: never reached."""


class Collector:
    """Runs the full collections the app has taken over from CPython (see the module's docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._given: tuple[int, int, int] | None = None
        self.last_activity = self.last_full = self._last_look = clock()
        self.full_collections = 0
        self._kept = 0
        """Objects in the oldest generation after the last full collection (or the freeze)."""

    @property
    def holding(self) -> bool:
        """Whether the app runs the full collections now (False before the first screen, after
        the app left, and where the interpreter would not hand them over)."""
        return self._given is not None

    def take_over(self) -> None:
        """From now on a full collection runs only from `tick`."""
        if self._given is None:
            given = gc.get_threshold()
            gc.set_threshold(given[0], given[1], NEVER)
            if gc.get_threshold()[2] != NEVER:  # not a threshold this collector keeps: leave it be
                gc.set_threshold(*given)
                return
            self._given = given
            self.last_full = self._last_look = self._clock()
            self._kept = len(gc.get_objects(generation=2))

    def give_back(self) -> None:
        """CPython decides again (the app is leaving)."""
        if self._given is not None:
            gc.set_threshold(*self._given)
            self._given = None

    def activity(self) -> None:
        """Something happened that a person may be watching: a key, a click, an account changed.
        (Called from the engine's thread too: one float written.)"""
        self.last_activity = self._clock()

    def tick(self) -> bool:
        """Run a full collection now if CPython would have run one (its count of young
        collections since the last passed its threshold, and what outlived the last grew by a
        quarter) and the moment is quiet, or has not been for `LONGEST`. True when one ran."""
        if self._given is None or gc.get_count()[2] <= self._given[2]:
            return False
        now = self._clock()
        since_full = now - self.last_full
        if now - self._last_look < LEAST:  # (a walk is a look too: this spaces walks as well)
            return False
        if now - self.last_activity < QUIET and since_full < LONGEST:
            return False
        self._last_look = now
        if len(gc.get_objects(generation=2)) - self._kept <= self._kept // 4:
            return False  # not worth a walk yet (a look costs 2 ms at 10,000 accounts, a walk 140)
        gc.collect()
        self.last_full = self._last_look = self._clock()
        self._kept = len(gc.get_objects(generation=2))
        self.full_collections += 1
        return True
