"""How account facts read on screen: words and countdowns. Pure functions; colours come from
the theme (component classes in app.tcss), not from here."""

from __future__ import annotations

from datetime import datetime, timedelta

import humanize

from kiro_tui.core.models import Account, AccountView, Mode, Status
from kiro_tui.core.summary import describe_expiry, printable


def short_reason(text: str | None) -> str:
    """The gist of an error, fit for the screen: the part before any parenthesised detail."""
    if not text:
        return ""
    return printable(text.split(" (")[0].removesuffix(": log in again"))


def status_detail(view: AccountView, now: datetime, window: timedelta, quota_warning: float) -> str:
    """The status with its reason, for the detail panel: `retrying in 30 seconds (timeout)`,
    `NEEDS LOGIN: refresh token invalid`, `quota low: 46 of 50 used`, ..."""
    account = view.account
    status = view.status(now, window, quota_warning)
    if status is Status.REFRESH_FAILING:
        wait = account.next_refresh_at - now if account.next_refresh_at else timedelta(0)
        when = "now" if wait.total_seconds() <= 0 else f"in {humanize.naturaldelta(wait)}"
        reason = transient_reason(account.last_error)
        text = f"retrying {when}" + (f" ({reason})" if reason else "")
    elif status is Status.NEEDS_LOGIN:
        text = f"NEEDS LOGIN: {short_reason(account.last_error) or 'log in again'}"
    elif status is Status.SUSPENDED:
        text = f"suspended: {short_reason(account.last_error)}" if account.last_error else "suspended"
    elif status in (Status.QUOTA_LOW, Status.OVER_QUOTA) and view.usage is not None:
        text = f"{status.label}: {view.usage.used:g} of {view.usage.limit:g} used"
    else:
        text = status.label
    if view.held:
        text += f" · {view.held}"
    if account.sync_error and account.mode is Mode.SYNC:
        text += " · out of sync"
    return printable(text)


def transient_reason(error: str | None) -> str:
    if not error:
        return ""
    lowered = error.lower()
    for needle, word in (("timed out", "timeout"), ("connection failed", "connection"),
                         ("malformed", "bad response"), ("slow_down", "throttled"), ("429", "throttled")):
        if needle in lowered:
            return word
    if "server_error" in lowered or "http 5" in lowered or "internal" in lowered:
        return "server error"
    return short_reason(error)[:30]


def countdown(expires_at: datetime, now: datetime) -> str:
    return describe_expiry(expires_at, now)


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    return humanize.naturaltime(now - when) if when <= now else "just now"


def profile_label(account: Account) -> str:
    if account.profile_name:
        return account.profile_name
    if account.profile_arn:
        return account.profile_arn.rsplit("/", 1)[-1]
    return "—"
