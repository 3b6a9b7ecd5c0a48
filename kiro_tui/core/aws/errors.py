"""Typed service failures, each classified by what should happen next."""

from __future__ import annotations

import re
from enum import StrEnum

from kiro_tui.core.errors import KiroTuiError


class ErrorClass(StrEnum):
    NEEDS_LOGIN = "needs-login"
    """The refresh token or client registration is dead: only a new login fixes it."""
    SUSPENDED = "suspended"
    """The account is suspended by the service."""
    TRANSIENT = "transient"
    """Try again later: 5xx, throttling, timeouts, connection errors, malformed bodies."""
    FATAL_CONFIG = "fatal-config"
    """Our request cannot work as configured (unknown region, wrong IdC region, bad URL)."""
    QUOTA = "quota"
    """The monthly request quota is used up; retrying will not help until it resets."""


class ServiceError(KiroTuiError):
    """A call to a service failed. The text never holds a token."""

    def __init__(
        self,
        message: str,
        classification: ErrorClass,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.classification = classification
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self)


class AuthorizationPending(ServiceError):
    """Device flow: the person has not approved yet; poll again after the interval."""


class SlowDown(ServiceError):
    """Device flow: polled too fast; add 5 seconds to the interval."""


class DeviceCodeExpired(ServiceError):
    """Device flow: the code ran out; start a new login."""


class AccessDenied(ServiceError):
    """Device flow: the person pressed Deny."""


# Anything shaped like a token or secret: long runs of base64url / JWT characters.
_SECRETISH = re.compile(r"[A-Za-z0-9_\-+/=.:]{24,}")


def redact(text: str) -> str:
    """Mask token-like runs, so an echoed token in a service message never reaches a screen.

    URLs, ARNs and file paths are kept: they name things, they do not grant anything.
    """

    def mask_run(match: re.Match[str]) -> str:
        run = match.group(0)
        return run if run.startswith(("http", "arn:", "/")) else run[:4] + "…"

    return _SECRETISH.sub(mask_run, text)


def is_invalid_bearer(error: ServiceError) -> bool:
    """CodeWhisperer's 403 "The bearer token included in the request is invalid", which it
    answers where 401 is meant (an access token it no longer takes, though the login is fine):
    worth one refresh and one retry, never a verdict on the account by itself."""
    return says_invalid_bearer(error.status, error.message)


def says_invalid_bearer(status: int | None, message: str) -> bool:
    """Whether an answer is that 403 (`is_invalid_bearer`), from its status and message."""
    return status == 403 and "bearer token" in message.lower() and "invalid" in message.lower()
