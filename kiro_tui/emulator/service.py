"""What the emulated AWS SSO OIDC, Kiro social auth and CodeWhisperer services know and do.

Pure logic over in-memory state; `server.py` puts HTTP around it. Behaviour follows the
strictest real service: refresh tokens rotate and the old one dies at once, registrations
and device codes expire, polling faster than `interval` earns `slow_down`.
Errors are `ApiError`s carrying the exact wire shape (status, body, x-amzn-ErrorType).
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kiro_tui.core.models import KIRO_SCOPES
from kiro_tui.emulator.kiro_cli_shapes import kiro_cli_rows

OIDC_NS = "http://internal.amazon.com/coral/com.amazonaws.sso.oidc/"
BUILDER_ID_START_URL = "https://view.awsapps.com/start"
EXTERNAL_IDP_TOKEN_TYPE = "EXTERNAL_IDP"
SOCIAL_DEFAULT_PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
REGISTRATION_TTL = 90 * 24 * 3600
DEVICE_CODE_TTL = 600


class ApiError(Exception):
    """An error response exactly as the real service shapes it."""

    def __init__(self, status: int, error_type: str, body: dict[str, object], namespace: str = "") -> None:
        super().__init__(f"{status} {error_type}")
        self.status, self.error_type, self.body, self.namespace = status, error_type, body, namespace

    @property
    def header(self) -> str:
        return f"{self.error_type}:{self.namespace}" if self.namespace else self.error_type


def oidc_error(status: int, exception: str, error: str, description: str) -> ApiError:
    """SSO OIDC errors: OAuth-style body plus the coral error-type header botocore reads."""
    return ApiError(status, exception, {"error": error, "error_description": description}, OIDC_NS)


def q_error(status: int, exception: str, message: str, reason: str | None = None) -> ApiError:
    return ApiError(status, exception, {"message": message, "reason": reason})


def text_or_none(data: dict[str, object], key: str) -> str | None:
    """A control-API field that may be absent or empty: its text, or None."""
    value = data.get(key)
    return str(value) if value else None


def _token(prefix: str) -> str:
    return f"{prefix}AAAAAG{secrets.token_urlsafe(30)}:{secrets.token_urlsafe(40)}"


def _code_key(user_code: str) -> str:
    return "".join(c for c in user_code if c.isalnum()).upper()


def _user_code() -> str:
    letters = "".join(c for c in string.ascii_uppercase if c not in "AEIOU")
    return "-".join("".join(secrets.choice(letters) for _ in range(4)) for _ in range(2))


@dataclass
class Profile:
    arn: str
    name: str

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]


@dataclass
class User:
    email: str
    kind: str  # social | builder-id | idc | external-idp
    region: str
    start_url: str | None
    profiles: list[Profile]
    user_id: str = field(default_factory=lambda: "u-" + secrets.token_hex(8))
    provider: str = "github"
    suspended: bool = False
    usage: float = 12.5
    limit: float = 50.0


@dataclass
class Registration:
    client_id: str
    client_secret: str
    region: str
    scopes: list[str]
    issued_at: int
    expires_at: int


@dataclass
class DeviceAuthorization:
    device_code: str
    user_code: str
    client_id: str
    region: str
    start_url: str
    expires_at: float
    interval: int
    state: str = "pending"  # pending | approved | denied | used
    last_poll: float | None = None
    email: str | None = None
    created_at: float = 0.0


@dataclass
class Grant:
    """A live refresh token: who it belongs to and, for OIDC, which client it was issued to."""

    email: str
    client_id: str | None
    dies_at: float | None = None  # set when rotated away with a grace window


class EmulatorState:
    """Users, registrations, device codes and tokens; all times from `clock` (epoch seconds)."""

    def __init__(
        self,
        token_ttl: int = 3600,
        approve_after: float | None = None,
        clock: Callable[[], float] = time.time,
        base_url: str = "",
    ) -> None:
        self.token_ttl = token_ttl
        self.approve_after = approve_after
        self.clock = clock
        self.base_url = base_url
        self.users: dict[str, User] = {}
        self.registrations: dict[str, Registration] = {}
        self.devices: dict[str, DeviceAuthorization] = {}
        self.refresh_grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}
        self.idc_regions: dict[str, str] = {}
        self.flavours = {"rpc", "rest"}
        self.rotation_grace = 0.0  # seconds a rotated-away refresh token keeps working (0: none)
        self.issued_secrets: list[str] = []  # every token, client secret and device code handed out
        self.next_user_codes: list[str] = []  # codes to hand out next (tests, screenshots)
        self.verification_uri: str | None = None  # what to report instead of our own /device page
        self.rotated_from: dict[str, str] = {}  # new refresh token -> the one it replaced
        self._user_counter = 0

    # ------------------------------------------------------------------ users and tokens

    def add_user(
        self,
        kind: str,
        email: str | None = None,
        region: str = "us-east-1",
        start_url: str | None = None,
        profiles: list[dict[str, str]] | None = None,
        provider: str = "github",
    ) -> User:
        if kind not in ("social", "builder-id", "idc", "external-idp"):
            raise ValueError(f"unknown kind {kind!r}")
        if kind == "idc" and not start_url:
            start_url = f"https://d-{secrets.randbelow(10**10):010d}.awsapps.com/start"
        if kind == "builder-id":
            start_url = start_url or BUILDER_ID_START_URL
        if kind == "idc":
            assert start_url is not None  # (made above for an IdC user without one)
            self.idc_regions[start_url.rstrip("/")] = region
        if profiles is None:
            social = [{"arn": SOCIAL_DEFAULT_PROFILE_ARN, "name": "Social_Default_Profile"}]
            profiles = social if kind == "social" else []
        self._user_counter += 1
        user = User(
            email=email or f"user{self._user_counter}@example.com",
            kind=kind,
            region=region,
            start_url=start_url,
            profiles=[Profile(p["arn"], p.get("name") or p.get("profile_name") or "Profile") for p in profiles],
            provider=provider,
        )
        self.users[user.email] = user
        return user

    def live_grant(self, refresh_token: str | None) -> Grant | None:
        grant = self.refresh_grants.get(refresh_token or "")
        if grant is None or (grant.dies_at is not None and grant.dies_at <= self.clock()):
            return None
        return grant

    def rotate(self, refresh_token: str, user: User, client_id: str | None) -> dict[str, object]:
        """Spend `refresh_token`: issue new tokens; the old one dies now (or after the grace window)."""
        if self.rotation_grace > 0:
            self.refresh_grants[refresh_token].dies_at = self.clock() + self.rotation_grace
        else:
            del self.refresh_grants[refresh_token]
        tokens = self.issue_tokens(user, client_id)
        self.rotated_from[str(tokens["refreshToken"])] = refresh_token
        return tokens

    def issue_tokens(self, user: User, client_id: str | None, ttl: int | None = None,
                     access: str | None = None, refresh: str | None = None) -> dict[str, object]:
        access, refresh = access or _token("aoa"), refresh or _token("aor")
        self.issued_secrets += [access, refresh]
        ttl = self.token_ttl if ttl is None else ttl
        self.access_tokens[access] = (user.email, self.clock() + ttl)
        self.refresh_grants[refresh] = Grant(user.email, client_id)
        return {"accessToken": access, "refreshToken": refresh, "expiresIn": ttl}

    def revoke(self, refresh_token: str | None = None, email: str | None = None) -> int:
        doomed = [
            token
            for token, grant in self.refresh_grants.items()
            if token == refresh_token or (email is not None and grant.email == email)
        ]
        for token in doomed:
            del self.refresh_grants[token]
        return len(doomed)

    def user_for_access_token(self, access_token: str | None, token_type: str | None = None) -> User:
        """The user a bearer token is for. An external IdP's token is taken only with the header
        `TokenType: EXTERNAL_IDP` (as the service does); a bad one gets the service's 403."""
        entry = self.access_tokens.get(access_token or "")
        if entry is None or entry[1] <= self.clock():
            raise q_error(403, "AccessDeniedException", "The bearer token included in the request is invalid.")
        user = self.users[entry[0]]
        if (user.kind == "external-idp") != (token_type == EXTERNAL_IDP_TOKEN_TYPE):
            raise q_error(403, "AccessDeniedException", "The bearer token included in the request is invalid.")
        if user.suspended:
            raise q_error(
                403, "AccessDeniedException", "Your account is temporarily suspended.", "TEMPORARILY_SUSPENDED"
            )
        return user

    def subject_of(self, refresh_token: str | None) -> str | None:
        grant = self.live_grant(refresh_token)
        return grant.email if grant else None

    # ------------------------------------------------------------------ SSO OIDC

    def register_client(self, body: dict[str, object], region: str) -> dict[str, object]:
        if body.get("clientType") != "public":
            raise oidc_error(400, "InvalidClientMetadataException", "invalid_client_metadata",
                             "Invalid client type: only public clients are supported")
        if not isinstance(body.get("clientName"), str) or not body["clientName"]:
            raise oidc_error(400, "InvalidRequestException", "invalid_request", "clientName is required")
        scopes = body.get("scopes") or []
        if not isinstance(scopes, list):
            raise oidc_error(400, "InvalidScopeException", "invalid_scope", "Invalid scopes")
        return self._register(region, [str(s) for s in scopes])

    def _register(self, region: str, scopes: list[str], ttl: int = REGISTRATION_TTL) -> dict[str, object]:
        now = int(self.clock())
        reg = Registration(
            client_id=secrets.token_urlsafe(16),
            client_secret="eyJraWQiOiJrZXktMTU2Njk2ODEzNiIsImFsZyI6IkhTMzg0In0." + secrets.token_urlsafe(64),
            region=region,
            scopes=scopes,
            issued_at=now,
            expires_at=now + ttl,
        )
        self.registrations[reg.client_id] = reg
        self.issued_secrets.append(reg.client_secret)
        return {
            "clientId": reg.client_id,
            "clientSecret": reg.client_secret,
            "clientIdIssuedAt": reg.issued_at,
            "clientSecretExpiresAt": reg.expires_at,
        }

    def _client(self, body: dict[str, object], region: str) -> Registration:
        reg = self.registrations.get(str(body.get("clientId") or ""))
        if reg is None or reg.client_secret != body.get("clientSecret"):
            raise oidc_error(401, "InvalidClientException", "invalid_client", "Invalid client provided")
        if reg.expires_at <= self.clock():
            raise oidc_error(401, "InvalidClientException", "invalid_client", "Client is expired")
        if reg.region != region:
            raise oidc_error(401, "InvalidClientException", "invalid_client", "Invalid client provided")
        return reg

    def start_device_authorization(self, body: dict[str, object], region: str) -> dict[str, object]:
        for name in ("clientId", "clientSecret", "startUrl"):
            if not body.get(name):
                raise oidc_error(400, "InvalidRequestException", "invalid_request", f"{name} is required")
        reg = self._client(body, region)
        start_url = str(body["startUrl"]).rstrip("/")
        if start_url != BUILDER_ID_START_URL:
            idc_region = self.idc_regions.get(start_url)
            if idc_region is None or idc_region != region:
                raise oidc_error(400, "InvalidRequestException", "invalid_request",
                                 "Couldn't find Identity Center Instance")
        device = DeviceAuthorization(
            device_code=secrets.token_urlsafe(64),
            user_code=self.next_user_codes.pop(0) if self.next_user_codes else _user_code(),
            client_id=reg.client_id,
            region=region,
            start_url=start_url,
            expires_at=self.clock() + DEVICE_CODE_TTL,
            interval=1,
            created_at=self.clock(),
        )
        self.devices[device.device_code] = device
        self.issued_secrets.append(device.device_code)
        uri = self.verification_uri or f"{self.base_url}/device"
        return {
            "deviceCode": device.device_code,
            "userCode": device.user_code,
            "verificationUri": uri,
            "verificationUriComplete": f"{uri}?user_code={device.user_code}",
            "expiresIn": DEVICE_CODE_TTL,
            "interval": device.interval,
        }

    def device_by_user_code(self, user_code: str) -> DeviceAuthorization | None:
        """The authorization for a code as people type it: any case, with or without the dash."""
        wanted = _code_key(user_code)
        return next((d for d in self.devices.values() if _code_key(d.user_code) == wanted), None)

    def decide(self, user_code: str, approve: bool, email: str | None = None) -> DeviceAuthorization:
        device = self.device_by_user_code(user_code)
        if device is None or device.expires_at <= self.clock() or device.state != "pending":
            raise ApiError(404, "NotFound", {"error": "unknown_user_code",
                                             "error_description": "No pending authorization with that code"})
        if not approve:
            device.state = "denied"
            return device
        device.state = "approved"
        device.email = email or self._user_for_portal(device.start_url, device.region).email
        return device

    def _user_for_portal(self, start_url: str, region: str) -> User:
        """Who signs in at a portal: its first known user, else a new one."""
        kind = "builder-id" if start_url == BUILDER_ID_START_URL else "idc"
        for user in self.users.values():
            if user.kind == kind and (user.start_url or "").rstrip("/") == start_url:
                return user
        return self.add_user(kind, region=region, start_url=start_url)

    def create_token(self, body: dict[str, object], region: str) -> dict[str, object]:
        grant_type = body.get("grantType")
        reg = self._client(body, region)
        if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
            return self._poll(reg, str(body.get("deviceCode") or ""))
        if grant_type == "refresh_token":
            return self._refresh_oidc(reg, str(body.get("refreshToken") or ""))
        raise oidc_error(400, "UnsupportedGrantTypeException", "unsupported_grant_type",
                         f"Unsupported grant type: {grant_type}")

    def _poll(self, reg: Registration, device_code: str) -> dict[str, object]:
        device = self.devices.get(device_code)
        if device is None or device.client_id != reg.client_id or device.state == "used":
            raise oidc_error(400, "InvalidGrantException", "invalid_grant", "Invalid grant provided")
        now = self.clock()
        if device.expires_at <= now:
            raise oidc_error(400, "ExpiredTokenException", "expired_token", "Device code has expired")
        if device.state == "denied":
            raise oidc_error(400, "AccessDeniedException", "access_denied", "Authorization was denied")
        if (
            device.state == "pending"
            and self.approve_after is not None
            and now - device.created_at >= self.approve_after
        ):
            self.decide(device.user_code, approve=True)
        too_fast = device.last_poll is not None and now - device.last_poll < device.interval
        device.last_poll = now
        if too_fast:
            raise oidc_error(400, "SlowDownException", "slow_down", "Client is polling too fast")
        if device.state == "pending":
            raise oidc_error(400, "AuthorizationPendingException", "authorization_pending",
                             "Authorization is still pending")
        device.state = "used"
        user = self.users[device.email or ""]
        return {"tokenType": "Bearer", **self.issue_tokens(user, reg.client_id)}

    def _refresh_oidc(self, reg: Registration, refresh_token: str) -> dict[str, object]:
        grant = self.live_grant(refresh_token)
        if grant is None or grant.client_id != reg.client_id:
            raise oidc_error(400, "InvalidGrantException", "invalid_grant", "Invalid refresh token provided")
        return {"tokenType": "Bearer", **self.rotate(refresh_token, self.users[grant.email], reg.client_id)}

    # ------------------------------------------------------------------ Kiro social

    def refresh_social(self, body: dict[str, object]) -> dict[str, object]:
        token = str(body.get("refreshToken") or "")
        grant = self.live_grant(token)
        if grant is None or grant.client_id is not None or self.users[grant.email].kind != "social":
            raise ApiError(400, "", {"message": "Invalid refresh token provided"})
        user = self.users[grant.email]
        profile_arn = user.profiles[0].arn if user.profiles else SOCIAL_DEFAULT_PROFILE_ARN
        return {**self.rotate(token, user, None), "profileArn": profile_arn}

    # ------------------------------------------------------------------ external IdP (OAuth2 form)

    def refresh_external(self, form: dict[str, str]) -> dict[str, object]:
        if form.get("grant_type") != "refresh_token":
            raise ApiError(400, "", {"error": "unsupported_grant_type"})
        grant = self.live_grant(form.get("refresh_token", ""))
        if grant is None or self.users[grant.email].kind != "external-idp":
            raise ApiError(400, "", {"error": "invalid_grant",
                                     "error_description": "AADSTS70000: The provided refresh token is invalid."})
        tokens = self.rotate(form["refresh_token"], self.users[grant.email], None)
        return {"token_type": "Bearer", "access_token": tokens["accessToken"],
                "refresh_token": tokens["refreshToken"], "expires_in": tokens["expiresIn"]}

    # ------------------------------------------------------------------ CodeWhisperer / Q

    def list_available_profiles(self, access_token: str | None, region: str,
                                body: dict[str, object], token_type: str | None = None) -> dict[str, object]:
        user = self.user_for_access_token(access_token, token_type)
        mine = [p for p in user.profiles if p.region == region]
        size = body.get("maxResults") or 10
        if not isinstance(size, int) or not 1 <= size <= 100:
            raise q_error(400, "ValidationException", "maxResults must be between 1 and 100")
        start = int(str(body.get("nextToken") or "0")) if str(body.get("nextToken") or "0").isdigit() else 0
        page = mine[start : start + size]
        next_token = str(start + size) if start + size < len(mine) else None
        return {
            "profiles": [
                {"arn": p.arn, "profileName": p.name, "description": None, "status": "ACTIVE",
                 "profileType": "Q_DEVELOPER"}
                for p in page
            ],
            "nextToken": next_token,
        }

    def get_usage_limits(self, access_token: str | None, params: dict[str, str],
                         token_type: str | None = None) -> dict[str, object]:
        user = self.user_for_access_token(access_token, token_type)
        reset = int(self.clock()) // 86400 * 86400 + 12 * 86400
        body: dict[str, object] = {
            "limits": [],
            "nextDateReset": reset,
            "daysUntilReset": 12,
            "usageBreakdownList": [
                {
                    "resourceType": "CREDIT",
                    "displayName": "Credit",
                    "displayNamePlural": "Credits",
                    "currentUsage": int(user.usage),
                    "currentUsageWithPrecision": user.usage,
                    "usageLimit": int(user.limit),
                    "usageLimitWithPrecision": user.limit,
                    "nextDateReset": reset,
                }
            ],
            "subscriptionInfo": {"subscriptionTitle": "KIRO FREE", "type": "Q_DEVELOPER_STANDALONE_FREE"},
        }
        if str(params.get("isEmailRequired", "")).lower() == "true":
            body["userInfo"] = {"email": user.email, "userId": user.user_id}
        return body

    # ------------------------------------------------------------------ control API helpers

    def seed_account(self, spec: dict[str, object]) -> dict[str, object]:
        """Create a signed-in user; return its tokens in kiro-cli's own `auth_kv` shapes."""
        kind = str(spec.get("kind") or "builder-id")
        user = self.add_user(
            kind,
            email=text_or_none(spec, "email"),
            region=str(spec.get("region") or "us-east-1"),
            start_url=text_or_none(spec, "start_url"),
            profiles=spec.get("profiles"),  # type: ignore[arg-type]  # a test's JSON: a wrong shape is its mistake
            provider=str(spec.get("provider") or "github"),
        )
        expires_in = int(spec.get("expires_in") or self.token_ttl)  # type: ignore[call-overload]  # (a test's JSON)
        registration = None
        client_id = None
        if kind in ("builder-id", "idc"):
            reg_ttl = int(spec.get("registration_expires_in") or REGISTRATION_TTL)  # type: ignore[call-overload]  # (same)
            registration = self._register(user.region, list(KIRO_SCOPES), ttl=reg_ttl)
            client_id = str(registration["clientId"])
        tokens = self.issue_tokens(user, client_id, ttl=expires_in,
                                   access=text_or_none(spec, "access_token"),
                                   refresh=text_or_none(spec, "refresh_token"))
        return kiro_cli_rows(user, tokens, registration, self.clock())
