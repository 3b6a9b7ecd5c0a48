"""What a successful token call returns, whatever the service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_EXPIRES_IN = 3600


@dataclass(frozen=True)
class TokenResult:
    access_token: str
    refresh_token: str | None  # None: the service did not rotate it; keep the old one
    expires_in: int
    profile_arn: str | None = None

    def expires_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.expires_in)


def expires_in_of(value: object) -> int:
    """Seconds from a response's `expiresIn` / `expires_in`, defaulting to an hour."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return DEFAULT_EXPIRES_IN
