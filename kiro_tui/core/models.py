"""The account model shared by the store, the importer, the refresh engine and the UI."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum

from kiro_tui.core.timefmt import shift

BUILDER_ID_START_URL = "https://view.awsapps.com/start"
DEFAULT_REGION = "us-east-1"
# kiro-cli's scopes (prefix `codewhisperer:` + completions, analysis, conversations).
KIRO_SCOPES = ("codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations")
DEFAULT_REFRESH_WINDOW = timedelta(minutes=10)
MIN_REFRESH_GAP = timedelta(seconds=30)
DEFAULT_QUOTA_WARNING = 0.9


class AuthMethod(StrEnum):
    SOCIAL = "social"
    BUILDER_ID = "builder-id"
    IDC = "idc"
    EXTERNAL_IDP = "external-idp"

    @property
    def label(self) -> str:
        """How a person calls it ("Builder ID"); not `title`, which would shadow `str.title`."""
        return _METHOD_TITLES[self]


_METHOD_TITLES = {
    AuthMethod.SOCIAL: "social",
    AuthMethod.BUILDER_ID: "Builder ID",
    AuthMethod.IDC: "IdC",
    AuthMethod.EXTERNAL_IDP: "external",
}


class Mode(StrEnum):
    """How kiro-tui treats the place an account was imported from (its source), whatever its kind:
    `sync` refreshes and writes the new token back, `follow` only reads, `own` refreshes and never
    writes it (docs/accounts-and-modes.md)."""

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
    """What a person sees for an account. The value is the JSON word (`list --json`); `label`
    is what the table, the summary line and `kiro-tui list` show."""

    FRESH = "fresh"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REFRESHING = "refreshing"
    REFRESH_FAILING = "refresh-failing"
    NEEDS_LOGIN = "needs-login"
    SUSPENDED = "suspended"
    QUOTA_LOW = "quota-low"
    OVER_QUOTA = "over-quota"

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]

    @property
    def is_alert(self) -> bool:
        """Only a person can fix it: a toast, the bell, and enter offers the fixes."""
        return self in (Status.NEEDS_LOGIN, Status.SUSPENDED)


_STATUS_LABELS = {
    Status.FRESH: "fresh",
    Status.EXPIRING: "expiring",
    Status.EXPIRED: "expired",
    Status.REFRESHING: "refreshing",
    Status.REFRESH_FAILING: "retrying",
    Status.NEEDS_LOGIN: "NEEDS LOGIN",
    Status.SUSPENDED: "suspended",
    Status.QUOTA_LOW: "quota low",
    Status.OVER_QUOTA: "over quota",
}


class Outcome(StrEnum):
    """What one refresh attempt (or a login) did; the `outcome` of `refresh --json` and the history."""

    REFRESHED = "refreshed"
    ADOPTED = "adopted"
    FOLLOWED = "followed"
    FAILED = "failed"
    SKIPPED = "skipped"
    BUSY = "busy"
    LOGGED_IN = "logged-in"

    @property
    def succeeded(self) -> bool:
        return self in (Outcome.REFRESHED, Outcome.ADOPTED, Outcome.LOGGED_IN)


def classify_start_url(start_url: str | None) -> AuthMethod:
    """kiro-cli's `TokenType::from`: no start URL or the Builder ID portal means Builder ID."""
    if not start_url or start_url.rstrip("/") == BUILDER_ID_START_URL:
        return AuthMethod.BUILDER_ID
    return AuthMethod.IDC


@dataclass(slots=True)
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
    nickname: str | None = None
    """The name a person gave it (`kiro-tui rename`): unique, and accepted wherever an id is."""

    @property
    def name(self) -> str:
        """What a person calls this account: the name they gave it, else the email once known,
        else the label."""
        return self.nickname or self.email or self.label or self.id

    @property
    def profile_label(self) -> str | None:
        """The profile as people recognise it: its name, else the ARN's last part (a social
        login's profile often comes without a name); None without a profile."""
        if self.profile_name:
            return self.profile_name
        return self.profile_arn.rsplit("/", 1)[-1] if self.profile_arn else None

    @property
    def allowed_modes(self) -> tuple[Mode, ...]:
        """sync and follow need a kiro-cli login to follow; a kiro-tui login can only be own."""
        return (Mode.SYNC, Mode.FOLLOW, Mode.OWN) if self.source else (Mode.OWN,)

    def status(self, now: datetime, window: timedelta = DEFAULT_REFRESH_WINDOW, refreshing: bool = False) -> Status:
        """Health wins over expiry: a dead refresh token matters more than a countdown.
        (Quota comes on top of this in `AccountView.status`.)"""
        if refreshing and self.health in (Health.OK, Health.REFRESH_FAILING):
            return Status.REFRESHING
        if self.health is not Health.OK:
            return Status(self.health.value)
        if self.expires_at <= now:
            return Status.EXPIRED
        if self.expires_at <= shift(now, window):
            return Status.EXPIRING
        return Status.FRESH

    def refresh_floor(self) -> datetime | None:
        """The earliest an automatic refresh may come after the last one: half the lifetime the
        token was given, and never under 30 seconds. A token that lives no longer than the refresh
        window would otherwise be due again the moment it arrives (a refresh storm)."""
        if self.last_refresh_at is None:
            return None
        lifetime = self.expires_at - self.last_refresh_at if self.expires_at > self.last_refresh_at else timedelta(0)
        return shift(self.last_refresh_at, max(MIN_REFRESH_GAP, lifetime / 2))

    def due_time(self, window: timedelta) -> datetime | None:
        """When the scheduler should refresh this account; None when it never should by itself
        (needs a login, suspended, or follow mode: kiro-cli refreshes it). The one definition."""
        if self.health in (Health.NEEDS_LOGIN, Health.SUSPENDED) or self.mode is Mode.FOLLOW:
            return None
        if self.health is Health.REFRESH_FAILING and self.next_refresh_at is not None:
            return self.next_refresh_at
        due = shift(self.expires_at, -window)
        floor = self.refresh_floor()
        return max(due, floor) if floor is not None else due

    def is_due(self, now: datetime, window: timedelta) -> bool:
        due = self.due_time(window)
        return due is not None and due <= now


ACCOUNT_FIELDS = tuple(f.name for f in fields(Account))


class PlaceRole(StrEnum):
    SOURCE = "source"
    """Where kiro-tui found the login; the account's mode says whether it is written back."""
    LINK = "link"
    """A copy kiro-tui was asked to keep fresh: written after every refresh."""


class PlaceState(StrEnum):
    IN_SYNC = "in-sync"
    PENDING = "pending"
    """Could not be written yet (locked, missing, read-only): retried every pass."""
    ADOPTED = "adopted"
    """The tool there refreshed by itself; kiro-tui took its token."""
    ERROR = "error"
    """Holds another login now, or cannot be written as it stands: a person must look."""
    STALE = "stale"
    """Holds an older token of the account: a place kiro-tui does not write (opencode's kiro.db, a
    read-only file, an own-mode source) after kiro-tui refreshed. Never "in-sync"."""


@dataclass(slots=True)
class Place:
    """One copy of an account's credential: a kiro-cli key, a tool's file, an opencode row."""

    account_id: str
    kind: str
    path: str
    entry: str = ""
    """Which login inside the place (an auth_kv key, an opencode row id); "" for a whole file."""
    role: PlaceRole = PlaceRole.SOURCE
    state: PlaceState = PlaceState.IN_SYNC
    detail: str | None = None
    pending_from: str | None = None
    """Fingerprint of the token the place held when it could not be written (compare-and-swap)."""
    written_at: datetime | None = None
    written_print: str | None = None
    """Fingerprint of the refresh token kiro-tui last wrote there (or found there, its own): the
    compare-and-swap never replaces a token of the lineage older than this one."""

    @property
    def address(self) -> tuple[str, str, str]:
        return self.kind, self.path, self.entry


@dataclass(frozen=True)
class UsageRecord:
    """The last quota answer for an account (kept, marked stale, when a later fetch fails)."""

    used: float | None = None
    limit: float | None = None
    resets_at: datetime | None = None
    subscription: str | None = None
    fetched_at: datetime | None = None
    error: str | None = None
    error_at: datetime | None = None

    @property
    def known(self) -> bool:
        return self.used is not None and self.limit is not None

    @property
    def fraction(self) -> float | None:
        if self.used is None or not self.limit:
            return None
        return self.used / self.limit


@dataclass(slots=True)
class AccountView:
    """Everything shown about one account: the stored account and what is known around it."""

    account: Account
    refreshing: bool = False
    usage: UsageRecord | None = None
    places: list[Place] = field(default_factory=list)
    held: str | None = None
    """Why a new token is only in memory (the store would not take it), if it is."""

    @property
    def id(self) -> str:
        return self.account.id

    def status(self, now: datetime, window: timedelta = DEFAULT_REFRESH_WINDOW,
               quota_warning: float = DEFAULT_QUOTA_WARNING) -> Status:
        """The account's status, with quota on top of a usable token: over quota or quota low
        matter more than a countdown, less than a dead login."""
        status = self.account.status(now, window, self.refreshing)
        if status in (Status.FRESH, Status.EXPIRING) and self.usage is not None:
            fraction = self.usage.fraction
            if fraction is not None and fraction >= 1:
                return Status.OVER_QUOTA
            if fraction is not None and fraction >= quota_warning:
                return Status.QUOTA_LOW
        return status

    @property
    def places_in_error(self) -> list[Place]:
        return [p for p in self.places if p.state is PlaceState.ERROR]
