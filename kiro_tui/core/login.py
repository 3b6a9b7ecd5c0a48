"""Device-code login: AWS Builder ID or an IAM Identity Center portal, then a profile.

The flow is the AWS CLI's: register a public client, start a device authorization, try once
at once (the person may have approved already), then poll every `interval` seconds, adding
5 seconds on each `slow_down`, until a token, a denial, or the code's expiry. The account is
saved only at the end, with the chosen profile: nothing half-saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from kiro_tui.core.aws.endpoints import valid_region
from kiro_tui.core.aws.errors import (
    AccessDenied,
    AuthorizationPending,
    DeviceCodeExpired,
    ErrorClass,
    ServiceError,
    SlowDown,
)
from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.clock import Clock
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.identity import email_key, new_account_id, other_person, portal_key
from kiro_tui.core.models import (
    BUILDER_ID_START_URL,
    DEFAULT_REGION,
    KIRO_SCOPES,
    Account,
    AuthMethod,
    Health,
    Mode,
    Place,
    PlaceRole,
    PlaceState,
)
from kiro_tui.core.places import LINK_KINDS, place_format
from kiro_tui.core.store import AccountStore, RefreshLogEntry, touch_updated
from kiro_tui.core.switch import PLACED_BY_USE

if TYPE_CHECKING:  # the clients (and httpx) load with the engine, not with the screens that name them
    from kiro_tui.core.aws.codewhisperer import Profile, ProfileListing, QClient
    from kiro_tui.core.aws.oidc import ClientRegistration, DeviceAuthorization, OidcClient

SLOW_DOWN_STEP = 5
TRANSIENT_BACKOFF = (2.0, 30.0)
"""A 5xx, a timeout or a reset while polling: wait (doubling from 2 s, up to 30 s) and poll again."""


class LoginError(KiroTuiError):
    """A login that cannot go on, in plain words with what to do next."""


class RenewsAnother(LoginError):
    """"Log in again" on one account, signed in as the person of another account kiro-tui holds:
    renewing that one makes it kiro-tui's own login and detaches its copies (kiro-cli's
    included), so nothing is saved until a person says yes (`save_login(renew_other=True)`)."""

    def __init__(self, meant: Account, other: Account, email: str) -> None:
        self.meant, self.other, self.email = meant, other, email
        super().__init__(f"you signed in as {email}, not {meant.name}: that is account {other.id} "
                         f"({other.name}, {other.mode.value} mode); renewing it with this login makes it "
                         "kiro-tui's own login (mode own) and detaches its copies")


@dataclass(frozen=True)
class LoginRequest:
    start_url: str | None = None  # None or blank: AWS Builder ID
    region: str = DEFAULT_REGION
    replaces: str | None = None  # the id of an account this login renews (log in again)

    @property
    def portal(self) -> str:
        return (self.start_url or "").strip() or BUILDER_ID_START_URL

    @property
    def is_builder_id(self) -> bool:
        return portal_key(self.portal) == ""

    def normalised(self) -> LoginRequest:
        """AWS Builder ID lives in us-east-1 only, whatever region was last used for IdC; regions
        are lower case (`EU-WEST-1` as typed is eu-west-1, not a mistake)."""
        return replace(self, region=DEFAULT_REGION if self.is_builder_id else self.region.strip().lower())

    def validate(self) -> None:
        if not valid_region(self.region.strip().lower()):
            raise LoginError(f"{self.region!r} is not an AWS region (like us-east-1 or eu-west-1)")
        if not self.portal.startswith("https://"):
            raise LoginError("the start URL must begin with https:// (like https://d-1234567890.awsapps.com/start)")


@dataclass
class DeviceLogin:
    """A started login: what to show the person, and what polling needs."""

    request: LoginRequest
    registration: ClientRegistration
    authorization: DeviceAuthorization
    expires_at: datetime
    interval: int

    @property
    def user_code(self) -> str:
        return self.authorization.user_code

    @property
    def verification_uri(self) -> str:
        return self.authorization.verification_uri

    @property
    def verification_uri_complete(self) -> str:
        return self.authorization.verification_uri_complete


@dataclass(frozen=True)
class PollStatus:
    """What the last poll said: 'waiting' or 'slow down', and the interval now in force."""

    state: str
    interval: int


def explain(error: ServiceError, request: LoginRequest) -> LoginError:
    """Turn a service failure during login into words a person can act on."""
    if isinstance(error, AccessDenied):
        return LoginError("the request was denied in the browser")
    if isinstance(error, DeviceCodeExpired):
        return LoginError("the code expired before it was approved")
    if "Identity Center Instance" in error.message or error.code == "invalid_request":
        return LoginError(
            f"no IAM Identity Center at {request.portal} in {request.region}: check the start URL "
            "and pick the region your Identity Center lives in"
        )
    if error.classification is ErrorClass.TRANSIENT:
        return LoginError(f"could not reach AWS ({error.message}); check the network and try again")
    return LoginError(f"login failed: {error.message}")


class LoginFlow:
    def __init__(self, oidc: OidcClient, q: QClient, clock: Clock) -> None:
        self.oidc, self.q, self.clock = oidc, q, clock

    async def start(self, request: LoginRequest) -> DeviceLogin:
        request = request.normalised()
        request.validate()
        try:
            registration = await self.oidc.register_client(request.region, KIRO_SCOPES)
            authorization = await self.oidc.start_device_authorization(registration, request.portal)
        except ServiceError as exc:
            raise explain(exc, request) from exc
        return DeviceLogin(
            request=request,
            registration=registration,
            authorization=authorization,
            expires_at=self.clock.now() + timedelta(seconds=authorization.expires_in),
            interval=authorization.interval,
        )

    async def wait_for_token(
        self, login: DeviceLogin, on_status: Callable[[PollStatus], object] | None = None
    ) -> TokenResult:
        """Poll until approved. Cancel the task to stop polling at once. A passing failure (a 5xx,
        throttling, a timeout, a reset) does not end the login: polling goes on with backoff until
        the code expires, as AWS's own clients do."""
        wait = 0.0
        failures = 0
        while True:
            if wait:
                await self.clock.sleep(wait)
            if self.clock.now() >= login.expires_at:
                raise LoginError("the code expired before it was approved")
            wait = login.interval
            try:
                return await self.oidc.create_token_device(login.registration, login.authorization.device_code)
            except AuthorizationPending:
                state, failures = "waiting", 0
            except SlowDown:
                login.interval += SLOW_DOWN_STEP
                state, wait = "slow down", login.interval
            except ServiceError as exc:
                if exc.classification is not ErrorClass.TRANSIENT:
                    raise explain(exc, login.request) from exc
                failures += 1
                wait = max(login.interval, min(TRANSIENT_BACKOFF[1], TRANSIENT_BACKOFF[0] * 2 ** (failures - 1)))
                state = f"trouble reaching AWS ({exc.message}); trying again in {wait:g} s"
            if on_status is not None:
                on_status(PollStatus(state, login.interval))

    async def email(self, access_token: str, profile: Profile | None) -> str | None:
        """Who just signed in, if the usage API says (best effort: None on any failure)."""
        region = profile.region if profile else DEFAULT_REGION
        try:
            usage = await self.q.get_usage_limits(access_token, region, profile.arn if profile else None)
        except ServiceError:
            return None
        return usage.email

    async def profiles(self, access_token: str) -> ProfileListing:
        """Every profile the new login may use, from all profile regions."""
        try:
            return await self.q.list_available_profiles(access_token)
        except ServiceError as exc:
            raise LoginError(f"signed in, but listing profiles failed: {exc.message}") from exc


class LoginOutcome(NamedTuple):
    account: Account
    detached: list[Place]
    """Copies of the old session a renewal detached (each holds the old client's registration)."""
    renewed: Account | None = None
    """The account this login renewed, as it was before (None: a new account)."""
    relinked: list[Place] = []
    """Places of the account kept by a renewal: the caller writes the new login into each
    (`switch.rewrite_places`), so each stays linked with the new client registration."""

    def relinked_note(self) -> str | None:
        if not self.relinked:
            return None
        kinds = ", ".join(sorted({place_format(p.kind).title for p in self.relinked}))
        return f"Wrote the new login into {kinds}: still kept fresh there."

    def detached_note(self) -> str | None:
        if not self.detached:
            return None
        kinds = ", ".join(sorted({place_format(p.kind).title for p in self.detached}))
        linkable = sorted({place_format(p.kind).title for p in self.detached if p.kind in LINK_KINDS})
        kept = sorted({place_format(p.kind).title for p in self.detached if p.kind not in LINK_KINDS})
        advice = []
        if linkable:  # kiro-cli's database cannot be linked: it keeps its own session, as it was
            advice.append(f"link {', '.join(linkable)} again (`kiro-tui link {self.account.id} --to KIND`, or x)")
        if kept:
            advice.append(f"{' and '.join(kept)} keep{'s' if len(kept) == 1 else ''} its own session, "
                          "no longer written by kiro-tui")
        return (f"{len(self.detached)} cop{'y' if len(self.detached) == 1 else 'ies'} of the old session "
                f"({kinds}) no longer kept fresh: they hold the old client registration. {'; '.join(advice)}.")


def save_login(
    store: AccountStore,
    login: DeviceLogin,
    token: TokenResult,
    profile: Profile | None,
    now: datetime,
    email: str | None = None,
    renew_other: bool = False,
) -> LoginOutcome:
    """Store the login (mode own: it is kiro-tui's alone), in one transaction.

    It renews an existing account rather than adding a twin when the request says which
    (log in again), or when an account of the same kind, portal and email exists, whether
    kiro-tui logged it in or imported it (see `same_person`): one person's login is one
    account. The renewed account is kiro-tui's own login from then on (mode own). If the
    person signed in as someone other than the account they meant to renew (both emails
    known and different), that account is left as it was: the caller can tell by the id. If
    that someone else is another account kiro-tui holds, it is renewed only with
    `renew_other` (else `RenewsAnother` is raised and nothing is saved): never silently.
    """
    request = login.request
    method = AuthMethod.BUILDER_ID if request.is_builder_id else AuthMethod.IDC
    start_url = None if method is AuthMethod.BUILDER_ID else request.portal
    portal_name = request.portal.removeprefix("https://").split(".")[0]
    meant = existing = store.get(request.replaces) if request.replaces else None
    if existing is not None and other_person(existing.email, email):
        existing = None  # someone else signed in
    if existing is None and email:  # the same person at the same portal, imported or logged in here
        existing = next((a for a in store.accounts() if same_person(a, email, method, start_url)), None)
        if existing is not None and meant is not None and not renew_other:
            raise RenewsAnother(meant, existing, email)
    account = Account(
        id=existing.id if existing else new_account_id(store.ids()),
        auth_method=method,
        access_token=token.access_token,
        refresh_token=token.refresh_token,
        expires_at=token.expires_at(now),
        label="Builder ID" if method is AuthMethod.BUILDER_ID else f"IdC {portal_name}",
        region=request.region,
        start_url=start_url,
        email=email,
        scopes=list(login.registration.scopes),
        oauth_flow="DeviceCode",
        client_id=login.registration.client_id,
        client_secret=login.registration.client_secret,
        client_secret_expires_at=login.registration.expires_at,
        profile_arn=profile.arn if profile else None,
        profile_name=profile.name if profile else None,
        mode=Mode.OWN,
        last_refresh_at=now,
        created_at=existing.created_at if existing else None,
    )
    touch_updated(account, now)
    # A renewed account is kiro-tui's own login now, with a client registration of its own. Every
    # copy of it elsewhere holds the old session (the old client's registration beside its token):
    # writing only the new token there would break that tool, and taking its details would undo
    # this login. Its links are kept, to have the whole new login written in by the caller
    # (switch.rewrite_places); the places it came from (kiro-cli's own session) are detached, and
    # imports leave that session be (see importer.import_snapshot).
    places = store.places(existing.id) if existing else []
    used_in = existing.extra.get(PLACED_BY_USE) if existing else None  # kiro-cli's database, by `use`

    def kept(place: Place) -> bool:
        return place.role is PlaceRole.LINK or (place.kind == "kiro-cli" and place.path == used_in)

    outcome = LoginOutcome(account, [p for p in places if not kept(p)], renewed=existing,
                           relinked=[replace(p, state=PlaceState.PENDING, detail="writing the new login")
                                     for p in places if kept(p)])
    if existing is not None:
        account.nickname = existing.nickname
        if any(p.role is PlaceRole.SOURCE for p in outcome.relinked):  # still kiro-cli's login, in sync
            account.source, account.source_key = existing.source, existing.source_key
            account.mode, account.extra[PLACED_BY_USE] = Mode.SYNC, used_in
    with store.transaction() as tx:  # the history says when the token came from a login
        store.save(account, tx)
        for place in outcome.detached:
            store.delete_place(tx, place)
        for place in outcome.relinked:
            store.save_place(tx, place)
        store.log_refresh(tx, RefreshLogEntry(account.id, now, "logged-in", message=outcome.detached_note()))
    for place in outcome.detached:
        store.mark_unlinked(place, now, why="login", client_id=existing.client_id if existing else None)
    return outcome


def same_person(account: Account, email: str, method: AuthMethod, start_url: str | None) -> bool:
    """`account` is this person's login: the same email (in any case), kind and portal."""
    return (bool(email_key(account.email)) and email_key(account.email) == email_key(email)
            and account.auth_method is method and portal_key(account.start_url) == portal_key(start_url))


async def learn_emails_of_twins(store: AccountStore, flow: LoginFlow, request: LoginRequest, now: datetime,
                                most: int = 5) -> None:
    """Ask who holds the accounts this login could be a renewal of (same kind and portal) whose
    email is not known yet, with their own working tokens: then one person's login renews
    their account (evidence, not a guess; see `same_person`) instead of adding a second row.
    Best effort."""
    method = AuthMethod.BUILDER_ID if request.is_builder_id else AuthMethod.IDC
    start_url = None if method is AuthMethod.BUILDER_ID else request.portal
    twins = [a for a in store.accounts() if not a.email and a.auth_method is method
             and portal_key(a.start_url) == portal_key(start_url) and a.health is Health.OK and a.expires_at > now]
    from kiro_tui.core.aws.codewhisperer import Profile

    for account in twins[:most]:
        profile = Profile(account.profile_arn, account.profile_name or "") if account.profile_arn else None
        email = await flow.email(account.access_token, profile)
        if email:
            store.update(account.id, email=email)


LAST_LOGIN_KEY = "last_login"


def remember_request(store: AccountStore, request: LoginRequest) -> None:
    store.set_preference(LAST_LOGIN_KEY, {"start_url": request.start_url or "", "region": request.region})


def last_request(store: AccountStore) -> LoginRequest:
    """The values of the last login, to prefill the form (Builder ID in us-east-1 at first)."""
    value = store.preference(LAST_LOGIN_KEY)
    if isinstance(value, dict):
        return LoginRequest(str(value.get("start_url") or "") or None, str(value.get("region") or DEFAULT_REGION))
    return LoginRequest()


def set_profile(store: AccountStore, account_id: str, profile: Profile) -> None:
    store.update(account_id, profile_arn=profile.arn, profile_name=profile.name)
