"""kiro-cli's own JSON shapes for `auth_kv` and `state` values (serde snake_case, RFC 3339 `Z`).

Every field kiro-cli 2.12 requires is written: `oauth_flow` in an OIDC token and its
registration, `client_secret_expires_at` in the registration (null only when unknown), and
`provider` and a non-empty `profile_arn` in a social token (kiro-cli's own default profile when
the login came without one, as kiro-cli does).

The one place that knows how kiro-cli writes a login: used by the `sync` write-back and by
the emulator when it hands out tokens a test can put in a kiro-cli database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from kiro_tui.core.timefmt import format_timestamp

SOCIAL_TOKEN_KEY = "kirocli:social:token"
OIDC_TOKEN_KEY = "kirocli:odic:token"
OIDC_REGISTRATION_KEY = "kirocli:odic:device-registration"
EXTERNAL_IDP_TOKEN_KEY = "kirocli:external-idp:token"
PROFILE_STATE_KEY = "api.codewhisperer.profile"
IDC_START_URL_STATE_KEY = "auth.idc.start-url"
IDC_REGION_STATE_KEY = "auth.idc.region"
DEFAULT_SOCIAL_PROFILE_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
"""What kiro-cli puts in a social login that came without a profile (kiro-cli 2.12 needs one)."""
# The tables a kiro-cli database needs for its logins (what readers such as kiro-gateway open).
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
    "migration_time INTEGER NOT NULL);"
    "CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB);"
    "CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT);"
)


def dumps(value: object) -> str:
    """serde_json::to_string: compact, bound as TEXT."""
    return json.dumps(value, separators=(",", ":"))


def oidc_token(
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime,
    region: str | None,
    start_url: str | None,
    scopes: list[str] | None,
    oauth_flow: str = "DeviceCode",
) -> dict[str, object]:
    return {
        "access_token": access_token,
        "expires_at": format_timestamp(expires_at),
        "refresh_token": refresh_token,
        "region": region,
        "start_url": start_url,
        "oauth_flow": oauth_flow,
        "scopes": scopes,
    }


def device_registration(
    client_id: str,
    client_secret: str,
    expires_at: datetime | None,
    region: str,
    scopes: list[str] | None,
    oauth_flow: str = "DeviceCode",
) -> dict[str, object]:
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "client_secret_expires_at": format_timestamp(expires_at.replace(microsecond=0)) if expires_at else None,
        "region": region,
        "oauth_flow": oauth_flow,
        "scopes": scopes,
    }


def social_token(
    access_token: str, refresh_token: str | None, expires_at: datetime, provider: str, profile_arn: str | None
) -> dict[str, object]:
    return {
        "access_token": access_token,
        "expires_at": format_timestamp(expires_at),
        "refresh_token": refresh_token,
        "provider": provider.lower(),
        "profile_arn": profile_arn or DEFAULT_SOCIAL_PROFILE_ARN,
    }


def external_idp_token(
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime,
    issuer_url: str | None,
    token_endpoint: str,
    client_id: str,
) -> dict[str, object]:
    return {
        "access_token": access_token,
        "expires_at": format_timestamp(expires_at),
        "refresh_token": refresh_token,
        "issuer_url": issuer_url,
        "token_endpoint": token_endpoint,
        "client_id": client_id,
    }


def profile(arn: str, name: str) -> dict[str, object]:
    return {"arn": arn, "profile_name": name}


@dataclass(frozen=True)
class TokenKey:
    """One `auth_kv` key that can hold a login, in kiro-cli's priority order."""

    key: str
    kind: str  # "external-idp" | "odic" | "social"
    registration_key: str | None = None
    legacy: bool = False


# kiro-cli's bearer order is external-idp → odic → social; Amazon Q CLI's legacy keys follow.
# The `oidc` spellings are never written by first-party code; some third-party tools do.
TOKEN_KEYS: tuple[TokenKey, ...] = (
    TokenKey(EXTERNAL_IDP_TOKEN_KEY, "external-idp"),
    TokenKey(OIDC_TOKEN_KEY, "odic", OIDC_REGISTRATION_KEY),
    TokenKey("kirocli:oidc:token", "odic", "kirocli:oidc:device-registration"),
    TokenKey(SOCIAL_TOKEN_KEY, "social"),
    TokenKey("codewhisperer:odic:token", "odic", "codewhisperer:odic:device-registration", legacy=True),
    TokenKey("codewhisperer:oidc:token", "odic", "codewhisperer:oidc:device-registration", legacy=True),
)
