"""What a successful token call returns, whatever the service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kiro_tui.core.timefmt import shift

DEFAULT_EXPIRES_IN = 3600
MAX_EXPIRES_IN = 30 * 86_400
"""Longer than any Kiro or AWS access token lives. A larger answer is a service bug: we refresh
as if it said an hour rather than trust it (or overflow a datetime on it)."""


@dataclass(frozen=True)
class TokenResult:
    access_token: str
    refresh_token: str | None  # None: the service did not rotate it; keep the old one
    expires_in: int
    profile_arn: str | None = None
    warnings: tuple[str, ...] = field(default=())
    """Fields of the answer that were clamped or dropped, by name: never at the token's cost."""
    id_token: str | None = None
    """An OpenID id token, when the service sends one: who the answer says it is for."""

    def expires_at(self, now: datetime) -> datetime:
        return shift(now, self.expires_in)


def expires_in_of(value: object, name: str = "expiresIn") -> tuple[int, str | None]:
    """Seconds from a response's `expiresIn` / `expires_in`, and a warning if it was unusable
    (missing, not a positive number, or absurdly long): then an hour is assumed."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip()) if len(value.strip()) < 20 else None
    if seconds is None:
        problem = None if value is None else f"{name} {str(value)[:24]!r} is not a number; assumed 1 hour"
        return DEFAULT_EXPIRES_IN, problem
    if not 0 < seconds <= MAX_EXPIRES_IN or seconds != seconds:
        return DEFAULT_EXPIRES_IN, f"{name} {str(value)[:24]} is out of range; assumed 1 hour"
    return int(seconds), None


def optional_text(body: dict[str, object], name: str, limit: int = 2048) -> tuple[str | None, str | None]:
    """An optional text field of an answer: (value, None), or (None, warning) when it cannot be
    kept (not text, too long, or holding characters that cannot be stored)."""
    value = body.get(name)
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        return None, f"{name} is not text; ignored"
    if len(value) > limit:
        return None, f"{name} is {len(value)} characters long; ignored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None, f"{name} holds characters that cannot be stored; ignored"
    return value, None
