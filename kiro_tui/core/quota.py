"""Quota: the CodeWhisperer calls the engine makes with an account's own token (its usage and
profiles), and how many the watch pass makes at a time.

A room of its own because these calls follow rules of their own, apart from refreshing: a few
per pass so a thousand accounts never burst at the service, the last good figures kept on an
error, and the service's 403 for a stale bearer token answered with one refresh and one retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from kiro_tui.core.aws.errors import ErrorClass, ServiceError, is_invalid_bearer
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.events import AccountsChanged
from kiro_tui.core.models import Account, AuthMethod, Health, UsageRecord
from kiro_tui.core.places._fields import profile_region
from kiro_tui.core.refresh_result import StatusChange
from kiro_tui.core.timefmt import EARLIEST, shift

if TYPE_CHECKING:
    from kiro_tui.core.aws.codewhisperer import ProfileListing, Usage
    from kiro_tui.core.engine import Engine

log = logging.getLogger("kiro_tui.engine")
T = TypeVar("T")
USAGE_MAX_AGE = timedelta(minutes=10)
"""How old an account's quota figures may grow before a watch pass fetches them again, while
someone looks at them (the TUI)."""
HEADLESS_USAGE_MAX_AGE = timedelta(minutes=60)
"""The same for `kiro-tui watch` with no window open: its figures serve `list`, `show` and the
over-quota notice, and a thousand accounts every ten minutes would be 1.7 calls a second, all
day, at the service (and most of the service's idle CPU)."""
USAGE_PER_PASS = 4
"""Usage calls per watch pass (every `watch_interval` seconds): quota for a thousand accounts
is refreshed in about twelve minutes without ever bursting at the service."""
RESCAN_EVERY = timedelta(minutes=10)
"""How often the queue is made again from every account (a new login, figures another
process fetched): between two, a pass only looks at the queue's head."""


@dataclass
class UsageQueue:
    """The watch pass's schedule of quota calls: every usable account with the time its figures
    grow stale, soonest first, made from every account at once and then taken from the head a
    few a pass, so a pass does not decode a thousand accounts to make four calls."""

    due: list[tuple[datetime, str]] = field(default_factory=list)
    made_at: datetime | None = None


async def fetch_some_usage(engine: Engine, queue: UsageQueue) -> None:
    """The watch pass's share: up to `USAGE_PER_PASS` accounts whose figures are stale, the
    oldest first, each checked again (still usable, still stale) just before its call."""
    if not engine.fetch_usage or engine.network_error is not None:
        return
    now = engine.clock.now()
    max_age = HEADLESS_USAGE_MAX_AGE if engine.runner_kind == "watch" else USAGE_MAX_AGE
    if queue.made_at is None or not (queue.made_at <= now < shift(queue.made_at, RESCAN_EVERY)):
        _fill(engine, queue, now, max_age)  # (a clock that jumped back makes it again too)
    taken = 0
    while queue.due and queue.due[0][0] <= now and taken < USAGE_PER_PASS:
        _, account_id = queue.due.pop(0)
        account = engine.store.get(account_id)
        if account is None or not _usable(account, now) \
                or not _usage_stale(engine.store.usage([account_id]).get(account_id), now, account, max_age):
            continue  # fetched meanwhile (another process), or no longer usable
        taken += 1
        await engine.fetch_usage_now(account_id)


def _fill(engine: Engine, queue: UsageQueue, now: datetime, max_age: timedelta) -> None:
    usage = engine.store.usage()
    due = []
    for account in engine.store.accounts():
        if _usable(account, now):
            record = usage.get(account.id)
            due.append((now if _usage_stale(record, now, account, max_age) else shift(_last_try(record), max_age),
                        _last_try(record), account.id))
    due.sort()  # stale now (never fetched, then the oldest), then as they grow stale
    queue.due = [(when, account_id) for when, _, account_id in due]
    queue.made_at = now


def _usable(account: Account, now: datetime) -> bool:
    return account.health is Health.OK and account.expires_at > now


async def q_call(engine: Engine, account: Account, call: Callable[[Account], Awaitable[T]]) -> T:
    """One CodeWhisperer call made with an account's access token. The service answers 403
    "bearer token ... invalid" where 401 is meant: that gets one refresh and one retry with
    the new token, and changes no status by itself (the refresh may, on its own evidence)."""
    try:
        return await call(account)
    except ServiceError as exc:
        if not is_invalid_bearer(exc) or not account.refresh_token:
            raise
        log.info("%s: CodeWhisperer refused its access token (403); refreshing once and retrying", account.id)
    await engine.refresh_now([account.id])
    return await call(engine.store.get(account.id) or account)


async def account_profiles(engine: Engine, account_id: str) -> ProfileListing:
    """The profiles an account's login may use (its own token; see `q_call`)."""
    engine._network()
    account = engine.store.resolve_id(account_id)
    external_idp = account.auth_method is AuthMethod.EXTERNAL_IDP

    def profiles_of(current: Account) -> Awaitable[ProfileListing]:
        q = engine.q
        assert q is not None
        return q.list_available_profiles(current.access_token, external_idp=external_idp)

    try:
        return await engine.q_call(account, profiles_of)
    except ServiceError as exc:
        raise KiroTuiError(f"listing {account.name}'s profiles failed: {exc.message}") from exc


async def fetch_usage_now(engine: Engine, account_id: str) -> UsageRecord | None:
    """One GetUsageLimits call: saved (keeping the last good figures on error) and announced."""
    await engine.start()
    engine._network()
    store = engine.store
    account = store.get(account_id)
    if account is None:
        return None
    previous = store.usage([account_id]).get(account_id)

    def usage_of(current: Account) -> Awaitable[Usage]:
        q = engine.q
        assert q is not None
        return q.get_usage_limits(current.access_token, profile_region(current.profile_arn) or "us-east-1",
                                  current.profile_arn, external_idp=current.auth_method is AuthMethod.EXTERNAL_IDP)

    now = engine.clock.now()
    try:
        usage = await engine.q_call(account, usage_of)
    except ServiceError as exc:
        record = UsageRecord(previous.used if previous else None, previous.limit if previous else None,
                             previous.resets_at if previous else None,
                             previous.subscription if previous else None,
                             previous.fetched_at if previous else None, exc.message, now)
        if exc.classification is ErrorClass.SUSPENDED:
            _suspended(engine, account, exc)
    else:
        record = UsageRecord(usage.used, usage.limit, usage.reset_at, usage.subscription, now)
        if usage.email and usage.email != account.email:
            store.update(account.id, email=usage.email)
    store.save_usage(account_id, record)
    engine._emit(AccountsChanged(frozenset({account_id})))
    return record


async def fetch_all_usage(engine: Engine, at_once: int = 4) -> None:
    """Fetch the quota now of every account whose token works, `at_once` at a time."""
    now = engine.clock.now()
    usable = [a.id for a in engine.store.accounts() if _usable(a, now)]
    limit = asyncio.Semaphore(at_once)

    async def one(account_id: str) -> None:
        async with limit:
            await engine.fetch_usage_now(account_id)

    await asyncio.gather(*(one(account_id) for account_id in usable))


def _suspended(engine: Engine, account: Account, exc: ServiceError) -> None:
    """CodeWhisperer said TEMPORARILY_SUSPENDED (outside a refresh): the account is shown
    suspended, as a refresh that hears it does, and the status change is told (toast, hook)."""
    now = engine.clock.now()
    window = engine.settings.window
    before = account.status(now, window)
    message = f"account suspended: {exc.message}"
    engine.store.update(account.id, health=Health.SUSPENDED, last_error=message)
    account.health, account.last_error = Health.SUSPENDED, message
    engine._status_changed(StatusChange(account.id, account.name, before, account.status(now, window), message))


def _last_try(record: UsageRecord | None) -> datetime:
    if record is None:
        return EARLIEST
    return max((t for t in (record.fetched_at, record.error_at) if t is not None), default=EARLIEST)


def _usage_stale(record: UsageRecord | None, now: datetime, account: Account, max_age: timedelta) -> bool:
    if record is None:
        return True
    if record.error and record.error_at and account.last_refresh_at and account.last_refresh_at > record.error_at:
        return True  # refreshed since the error (an expired token's AccessDenied): try again now
    return shift(_last_try(record), max_age) <= now
