"""How an account is described to people and scripts (`list`, `list --json`, the TUI)."""

from __future__ import annotations

from datetime import datetime, timedelta

import humanize

from kiro_tui.core.masking import mask
from kiro_tui.core.models import DEFAULT_QUOTA_WARNING, AccountView, Place, UsageRecord
from kiro_tui.core.places import effective_window
from kiro_tui.core.timefmt import format_timestamp, seconds_until


def printable(text: str, keep_newlines: bool = False) -> str:
    """Text from kiro-cli or AWS made safe to put on a terminal: every control character (the
    ESC of an escape sequence, a bell, a carriage return, a newline unless kept) becomes "?"."""
    if keep_newlines:
        return "\n".join(printable(line) for line in text.split("\n"))
    return text if text.isprintable() else "".join(ch if ch.isprintable() else "?" for ch in text)


def _stamp(when: datetime | None) -> str | None:
    return format_timestamp(when) if when else None


def account_json(
    view: AccountView,
    now: datetime,
    window: timedelta,
    show_secrets: bool = False,
    counts: tuple[int, int] = (0, 0),
    quota_warning: float = DEFAULT_QUOTA_WARNING,
    holds: dict[tuple[str, str, str], str] | None = None,
    holders: dict[tuple[str, str, str], str | None] | None = None,
) -> dict[str, object]:
    """The `list --json` object (its enums are `StrEnum`s: JSON writes their values, and they equal
    them). Secrets are masked unless `show_secrets`. `counts` are the
    successes and failures in the account's kept refresh history; `holds` says what each place
    holds (Engine.holdings); `holders`, whose login a single-login place holds (the same `Holdings`)."""
    account = view.account
    reveal = (lambda s: s) if show_secrets else mask
    return {
        "id": account.id,
        "label": account.label,
        "email": account.email,
        "auth_method": account.auth_method,
        "provider": account.provider,
        "region": account.region,
        "start_url": account.start_url,
        "profile_arn": account.profile_arn,
        "profile_name": account.profile_name,
        "expires_at": _stamp(account.expires_at),
        "expires_in_seconds": seconds_until(account.expires_at, now),
        "status": view.status(now, window, quota_warning),
        "source": account.source,
        "source_key": account.source_key,
        "mode": account.mode,
        "last_refresh_at": _stamp(account.last_refresh_at),
        "next_refresh_at": _stamp(account.due_time(effective_window(window, view.places))),
        "consecutive_failures": account.consecutive_failures,
        "refresh_successes": counts[0],
        "refresh_failures": counts[1],
        "last_error": account.last_error,
        "sync_error": account.sync_error,
        "held": view.held,
        "scopes": account.scopes,
        "client_id": account.client_id,
        "client_secret_expires_at": _stamp(account.client_secret_expires_at),
        "access_token": reveal(account.access_token),
        "refresh_token": reveal(account.refresh_token),
        "client_secret": reveal(account.client_secret),
        "usage": usage_json(view.usage),
        "places": [place_json(p, (holds or {}).get(p.address), (holders or {}).get(p.address)) for p in view.places],
        "name": account.name,
        "nickname": account.nickname,
    }


def usage_json(usage: UsageRecord | None) -> dict[str, object] | None:
    if usage is None:
        return None
    return {
        "used": usage.used,
        "limit": usage.limit,
        "resets_at": _stamp(usage.resets_at),
        "fetched_at": _stamp(usage.fetched_at),
        "error": usage.error,
        "subscription": usage.subscription,
    }


def place_json(place: Place, holds: str | None = None, holds_account: str | None = None) -> dict[str, object]:
    """`holds_account`: for the IDE's file and kiro-cli's database (one login each, the one the
    tool uses), the id of the account whose login is there now; None otherwise or if unknown."""
    return {
        "kind": place.kind,
        "path": place.path,
        "entry": place.entry or None,
        "role": place.role,
        "holds": holds,
        "holds_account": holds_account,
        "state": place.state,
        "detail": place.detail,
        "written_at": _stamp(place.written_at),
    }


def describe_usage(usage: UsageRecord | None) -> str:
    """'12 of 50 used (24 %)', 'not fetched yet', 'unavailable: …'."""
    if usage is None:
        return "not fetched yet"
    if not usage.known:
        return f"unavailable: {usage.error}" if usage.error else "not fetched yet"
    text = f"{usage.used:g} of {usage.limit:g} used"
    if usage.fraction is not None:
        text += f" ({usage.fraction:.0%})"
    return text


def describe_expiry(expires_at: datetime, now: datetime) -> str:
    """'in 42 minutes' / 'expired 3 minutes ago', via humanize."""
    delta = expires_at - now
    if delta.total_seconds() > 0:
        return f"in {humanize.naturaldelta(delta)}"
    return f"expired {humanize.naturaldelta(-delta)} ago"
