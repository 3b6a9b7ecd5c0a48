"""Every account's status and how many are in each, kept up to date by what changed.

The summary line shows the counts every second. With ten thousand accounts, recounting every
status each second cost more than the rest of the tick (8 ms), and with expiries spread over
an hour some status changes by the clock alone nearly every second. So a re-read counts again
only the accounts it names, and the clock only those whose moment came: each account's next
moments (its refresh window opening, its token expiring) wait on a heap.

When thousands of moments come in the same second (accounts imported or refreshed together),
one step counts `MOMENTS_PER_STEP` of them and leaves the rest to the next (each second's tick,
each re-read): the counts catch up within seconds instead of the UI stalling (at 10,000
accounts whose windows opened together, one step took 66 ms).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from kiro_tui.core.models import AccountView, Health, Status
from kiro_tui.core.timefmt import shift

MOMENTS_PER_STEP = 1000
"""Accounts the clock alone has counted again in one step, at most (a few milliseconds)."""

POPS_PER_STEP = 5 * MOMENTS_PER_STEP
"""Moments taken off the heap in one step, at most, void ones included: each re-read voids an
account's moments and pushes them again, so after a burst they can outnumber the live ones."""


class StatusTally:
    def __init__(self, window: timedelta, quota_warning: float) -> None:
        self.window, self.quota_warning = window, quota_warning
        self.statuses: dict[str, Status] = {}
        self.counts: Counter[Status] = Counter()
        self.held = 0
        """Accounts whose new token is only in memory."""
        self.place_errors = 0
        """Places in error, over every account."""
        self._views: dict[str, AccountView] = {}
        self._moments: list[tuple[datetime, int, str]] = []  # (when, generation, account id): a heap
        self._generation: dict[str, int] = {}
        self._at: datetime | None = None

    def reset(self, views: Mapping[str, AccountView], now: datetime) -> None:
        """Count every account (after a full re-read)."""
        self.statuses, self.counts, self.held, self.place_errors = {}, Counter(), 0, 0
        self._views, self._moments, self._generation = {}, [], {}
        self._at = now
        for account_id, view in views.items():
            self._add(account_id, view, now)

    def update(self, ids: Iterable[str], views: Mapping[str, AccountView], now: datetime) -> None:
        """These accounts were re-read (or removed: not in `views`)."""
        self.advance(now)
        for account_id in ids:
            self._remove(account_id)
            view = views.get(account_id)
            if view is not None:
                self._add(account_id, view, now)

    def advance(self, now: datetime) -> None:
        """The clock moved: count again the accounts whose moment came, up to `MOMENTS_PER_STEP`
        of them and `POPS_PER_STEP` moments looked at (the rest at the next step); a clock that
        went back recounts every account."""
        if self._at is not None and now < self._at:
            self.reset(dict(self._views), now)
            return
        self._at = now
        budget, pops = MOMENTS_PER_STEP, POPS_PER_STEP
        while budget and pops and self._moments and self._moments[0][0] <= now:
            _, generation, account_id = heapq.heappop(self._moments)
            pops -= 1
            if self._generation.get(account_id) != generation:
                continue  # the account was re-read since: its own moments are on the heap
            budget -= 1
            view = self._views[account_id]
            self._count(account_id, view.status(now, self.window, self.quota_warning))

    def _add(self, account_id: str, view: AccountView, now: datetime) -> None:
        self._views[account_id] = view
        self._count(account_id, view.status(now, self.window, self.quota_warning))
        self.held += bool(view.held)
        self.place_errors += len(view.places_in_error)
        generation = self._generation[account_id] = self._generation.get(account_id, 0) + 1
        account = view.account
        if account.health is Health.OK:
            for moment in (shift(account.expires_at, -self.window), account.expires_at):
                if moment > now:
                    heapq.heappush(self._moments, (moment, generation, account_id))

    def _remove(self, account_id: str) -> None:
        view = self._views.pop(account_id, None)
        if view is None:
            return
        self.counts[self.statuses.pop(account_id)] -= 1
        self.held -= bool(view.held)
        self.place_errors -= len(view.places_in_error)
        self._generation[account_id] = self._generation.get(account_id, 0) + 1  # its moments are void

    def _count(self, account_id: str, status: Status) -> None:
        before = self.statuses.get(account_id)
        if before is not None:
            self.counts[before] -= 1
        self.statuses[account_id] = status
        self.counts[status] += 1
