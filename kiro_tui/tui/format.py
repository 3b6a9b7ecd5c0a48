"""How account facts read on screen: words, colours and countdowns. Pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta

import humanize
from rich.text import Text

from kiro_tui.core.models import Account, Mode, Status
from kiro_tui.core.summary import describe_expiry, printable

STATUS_STYLES = {
    Status.FRESH: "green",
    Status.EXPIRING: "yellow",
    Status.EXPIRED: "red",
    Status.REFRESHING: "cyan",
    Status.REFRESH_FAILING: "dark_orange",
    Status.NEEDS_LOGIN: "bold red",
    Status.SUSPENDED: "bold magenta",
}
ALERT_STATUSES = {Status.NEEDS_LOGIN, Status.SUSPENDED}


def short_reason(text: str | None) -> str:
    """The gist of an error, fit for the screen: the part before any parenthesised detail."""
    if not text:
        return ""
    return printable(text.split(" (")[0].removesuffix(": log in again"))


def health(account: Account, now: datetime, window: timedelta, refreshing: bool) -> Text:
    """`fresh`, `retrying in 30 seconds (timed out)`, `NEEDS LOGIN: refresh token invalid`, ..."""
    status = account.status(now, window, refreshing)
    style = STATUS_STYLES[status]
    if status is Status.REFRESH_FAILING:
        wait = account.next_refresh_at - now if account.next_refresh_at else timedelta(0)
        when = "now" if wait.total_seconds() <= 0 else f"in {humanize.naturaldelta(wait)}"
        text = Text(f"retrying {when}", style=style)
        reason = _transient_reason(account.last_error)
        if reason:
            text.append(f" ({reason})", style="dim")
        return text
    if status is Status.NEEDS_LOGIN:
        return Text(f"NEEDS LOGIN: {short_reason(account.last_error) or 'log in again'}", style=style)
    if status is Status.SUSPENDED:
        return Text("SUSPENDED", style=style)
    text = Text(status.value, style=style)
    if account.sync_error and account.mode is Mode.SYNC:
        text.append(" · out of sync", style="yellow")
    return text


def _transient_reason(error: str | None) -> str:
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


def expires(account: Account, now: datetime) -> Text:
    style = "red" if account.expires_at <= now else ""
    return Text(describe_expiry(account.expires_at, now), style=style)


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
