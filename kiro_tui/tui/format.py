"""How account facts read on screen: words and countdowns. Pure functions; colours come from
the theme (component classes in app.tcss), not from here."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import humanize

from kiro_tui.core.models import Account, AccountView, Mode, Status, UsageRecord
from kiro_tui.core.summary import describe_expiry, printable

USAGE_BAR = 5
"""Cells of the usage bar in the table: ▰ used, ▱ left."""
STALE_USAGE_AGE = timedelta(hours=1)
"""Usage figures older than this (the engine refetches every ten minutes) are shown as stale."""


def short_reason(text: str | None) -> str:
    """The gist of an error, fit for the screen: the part before any parenthesised detail."""
    if not text:
        return ""
    return printable(text.split(" (")[0].removesuffix(": log in again"))


def waits_for_kiro_cli(view: AccountView, now: datetime, window: timedelta) -> bool:
    """Expired in follow mode: kiro-tui never refreshes it; kiro-cli does when it next runs."""
    return view.account.mode is Mode.FOLLOW and view.status(now, window) is Status.EXPIRED


def offers_fixes(view: AccountView, now: datetime, window: timedelta) -> bool:
    """Whether enter has something to offer: only a person can bring this login back."""
    return view.status(now, window).is_alert or waits_for_kiro_cli(view, now, window)


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


_IN_THE_WAY = re.compile(r"a proxy asked for authentication \(407\)|redirected to [^\s;(]+|HTTP \d+ with an HTML page"
                         r"|another account's login|larger than \d+ KB")


def transient_reason(error: str | None) -> str:
    if not error:
        return ""
    lowered = error.lower()
    in_the_way = _IN_THE_WAY.search(error)  # what answered instead of the service, as transport.py words it
    if in_the_way:
        return printable(in_the_way.group(0))
    for needle, word in (("timed out", "timeout"), ("connection failed", "connection"),
                         ("malformed", "bad response"), ("slow_down", "throttled"), ("429", "throttled")):
        if needle in lowered:
            return word
    if "server_error" in lowered or "http 5" in lowered or "internal" in lowered:
        return "server error"
    return short_reason(error)[:30]


def countdown(expires_at: datetime, now: datetime) -> str:
    return describe_expiry(expires_at, now)


def span(seconds: float) -> str:
    """A short duration for a table cell: `45 s`, `12 min`, `3 h`, `2 days`, `99+ days`
    (never longer than 8 characters, so a column can have a fixed width)."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h"
    days = whole // 86400
    if days > 99:
        return "99+ days"
    return f"{days} day" if days == 1 else f"{days} days"


def short_countdown(expires_at: datetime, now: datetime) -> str:
    """The table's Expires cell: `in 50 min`, `in 30 s`, `2 min ago` (12 characters at most);
    the detail panel spells it out."""
    left = (expires_at - now).total_seconds()
    return f"in {span(left)}" if left > 0 else f"{span(-left)} ago"


def short_ago(when: datetime | None, now: datetime) -> str:
    """The table's Last refresh cell: `never`, `now`, `10 min ago` (12 characters at most)."""
    if when is None:
        return "never"
    if when >= now or (now - when).total_seconds() < 1:
        return "now"
    return f"{span((now - when).total_seconds())} ago"


def usage_is_stale(usage: UsageRecord, now: datetime) -> bool:
    """The figures may no longer hold: the last fetch failed, the month they count has reset,
    or nobody could fetch them for an hour (a dead login is not asked again)."""
    if usage.error:
        return True
    if usage.resets_at is not None and usage.resets_at <= now:
        return True
    return usage.fetched_at is not None and now - usage.fetched_at > STALE_USAGE_AGE


def usage_level(usage: UsageRecord | None, quota_warning: float) -> str:
    """`over`, `low`, `ok`, or `unknown`: which colour the usage is shown in."""
    fraction = usage.fraction if usage is not None else None
    if fraction is None:
        return "unknown"
    if fraction >= 1:
        return "over"
    return "low" if fraction >= quota_warning else "ok"


def usage_bar(usage: UsageRecord, now: datetime) -> tuple[str, str, str] | None:
    """(used part, unused part, percentage) of the table's Usage cell, e.g. ("▰▰▰", "▱▱",
    " 62%"); a `~` before the percentage marks stale figures. None when unknown."""
    fraction = usage.fraction
    if fraction is None:
        return None
    filled = max(0, min(USAGE_BAR, int(fraction * USAGE_BAR)))
    percent = f"{min(fraction, 9.99):.0%}"
    if usage_is_stale(usage, now):
        percent = "~" + percent
    return "▰" * filled, "▱" * (USAGE_BAR - filled), percent.rjust(4)


def expiry_phrase(expires_at: datetime, now: datetime) -> str:
    """`expires in 42 minutes` or `expired 16 seconds ago`: never "expires expired"."""
    text = describe_expiry(expires_at, now)
    return text if text.startswith("expired") else f"expires {text}"


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    return humanize.naturaltime(now - when) if when <= now else "just now"


def profile_label(account: Account) -> str:
    return account.profile_label or "—"


def home_relative(path: Path) -> str:
    """`~/…` for a path in the home folder: shorter, and it says the same."""
    try:
        return "~/" + str(Path(path).relative_to(Path.home()))
    except ValueError:
        return str(path)


def place_title(kind: str) -> str:
    """What people call the tool behind a kind of place (`cliproxy` → CLIProxyAPI)."""
    from kiro_tui.core.places import FORMATS

    fmt = FORMATS.get(kind)
    return fmt.title if fmt is not None else kind
