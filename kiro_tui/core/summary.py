"""How an account is described to people and scripts (`list`, `list --json`, the TUI)."""

from __future__ import annotations

from datetime import datetime, timedelta

import humanize

from kiro_tui.core.masking import mask
from kiro_tui.core.models import Account
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
    account: Account,
    now: datetime,
    window: timedelta,
    show_secrets: bool = False,
    refreshing: bool = False,
    counts: tuple[int, int] = (0, 0),
) -> dict[str, object]:
    """The `list --json` object. Secrets are masked unless `show_secrets`. `counts` are the
    successes and failures in the account's kept refresh history."""
    reveal = (lambda s: s) if show_secrets else mask
    return {
        "id": account.id,
        "label": account.label,
        "email": account.email,
        "auth_method": account.auth_method.value,
        "provider": account.provider,
        "region": account.region,
        "start_url": account.start_url,
        "profile_arn": account.profile_arn,
        "profile_name": account.profile_name,
        "expires_at": _stamp(account.expires_at),
        "expires_in_seconds": seconds_until(account.expires_at, now),
        "status": account.status(now, window, refreshing).value,
        "source": account.source,
        "source_key": account.source_key,
        "mode": account.mode.value,
        "last_refresh_at": _stamp(account.last_refresh_at),
        "next_refresh_at": _stamp(account.next_refresh_at),
        "consecutive_failures": account.consecutive_failures,
        "refresh_successes": counts[0],
        "refresh_failures": counts[1],
        "last_error": account.last_error,
        "sync_error": account.sync_error,
        "scopes": account.scopes,
        "client_id": account.client_id,
        "client_secret_expires_at": _stamp(account.client_secret_expires_at),
        "access_token": reveal(account.access_token),
        "refresh_token": reveal(account.refresh_token),
        "client_secret": reveal(account.client_secret),
    }


def describe_expiry(expires_at: datetime, now: datetime) -> str:
    """'in 42 minutes' / 'expired 3 minutes ago', via humanize."""
    delta = expires_at - now
    if delta.total_seconds() > 0:
        return f"in {humanize.naturaldelta(delta)}"
    return f"expired {humanize.naturaldelta(-delta)} ago"
