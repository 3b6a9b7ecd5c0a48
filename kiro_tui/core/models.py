"""The account model shared by the store, the importer, the refresh engine and the UI."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum

BUILDER_ID_START_URL = "https://view.awsapps.com/start"
DEFAULT_REGION = "us-east-1"
# kiro-cli's scopes (prefix `codewhisperer:` + completions, analysis, conversations).
KIRO_SCOPES = ("codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations")
DEFAULT_REFRESH_WINDOW = timedelta(minutes=10)


class AuthMethod(StrEnum):
    SOCIAL = "social"
    BUILDER_ID = "builder-id"
    IDC = "idc"
    EXTERNAL_IDP = "external-idp"

    @property
    def title(self) -> str:
        return _METHOD_TITLES[self]


_METHOD_TITLES = {
    AuthMethod.SOCIAL: "social",
    AuthMethod.BUILDER_ID: "Builder ID",
    AuthMethod.IDC: "IdC",
    AuthMethod.EXTERNAL_IDP: "external",
}


class Mode(StrEnum):
    """How an account coexists with kiro-cli (see docs/accounts-and-modes.md)."""

    SYNC = "sync"
    FOLLOW = "follow"
    OWN = "own"


class Health(StrEnum):
    """What the refresh engine last learned; stored. `Status` is derived from it, the expiry and
    whether a refresh is under way right now (a live lease in the store)."""

    OK = "ok"
    REFRESH_FAILING = "refresh-failing"
    NEEDS_LOGIN = "needs-login"
    SUSPENDED = "suspended"


class Status(StrEnum):
    FRESH = "fresh"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REFRESHING = "refreshing"
    REFRESH_FAILING = "refresh-failing"
    NEEDS_LOGIN = "needs-login"
    SUSPENDED = "suspended"


def classify_start_url(start_url: str | None) -> AuthMethod:
    """kiro-cli's `TokenType::from`: no start URL or the Builder ID portal means Builder ID."""
    if not start_url or start_url.rstrip("/") == BUILDER_ID_START_URL:
        return AuthMethod.BUILDER_ID
    return AuthMethod.IDC


@dataclass
class Account:
    """One login kiro-tui manages. Secrets live here; mask them before showing (see `secrets`)."""

    id: str
    auth_method: AuthMethod
    access_token: str
    expires_at: datetime
    refresh_token: str | None = None
    label: str = ""
    email: str | None = None
    provider: str | None = None
    region: str = DEFAULT_REGION
    start_url: str | None = None
    scopes: list[str] | None = None
    oauth_flow: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_expires_at: datetime | None = None
    token_endpoint: str | None = None
    issuer_url: str | None = None
    profile_arn: str | None = None
    profile_name: str | None = None
    source: str | None = None
    source_key: str | None = None
    login_key: str | None = None
    mode: Mode = Mode.OWN
    health: Health = Health.OK
    last_refresh_at: datetime | None = None
    next_refresh_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    sync_error: str | None = None
    """Why kiro-cli's copy of this login differs from ours (sync mode), if it does."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What a person calls this account: the email once known, else the label."""
        return self.email or self.label or self.id

    @property
    def allowed_modes(self) -> tuple[Mode, ...]:
        """sync and follow need a kiro-cli login to follow; a kiro-tui login can only be own."""
        return (Mode.SYNC, Mode.FOLLOW, Mode.OWN) if self.source else (Mode.OWN,)

    def status(self, now: datetime, window: timedelta = DEFAULT_REFRESH_WINDOW, refreshing: bool = False) -> Status:
        """Health wins over expiry: a dead refresh token matters more than a countdown."""
        if refreshing and self.health in (Health.OK, Health.REFRESH_FAILING):
            return Status.REFRESHING
        if self.health is not Health.OK:
            return Status(self.health.value)
        if self.expires_at <= now:
            return Status.EXPIRED
        if self.expires_at - now <= window:
            return Status.EXPIRING
        return Status.FRESH


ACCOUNT_FIELDS = tuple(f.name for f in fields(Account))
