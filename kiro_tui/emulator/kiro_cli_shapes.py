"""Hand out an emulated user's tokens as the rows kiro-cli would have written for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from kiro_tui.core.models import KIRO_SCOPES
from kiro_tui.core.places import kiro_cli_format as fmt

if TYPE_CHECKING:
    from kiro_tui.emulator.service import User


def kiro_cli_rows(
    user: User,
    tokens: dict[str, object],
    registration: dict[str, object] | None,
    now: float,
) -> dict[str, object]:
    expires_at = datetime.fromtimestamp(now, UTC) + timedelta(seconds=int(tokens["expiresIn"]))  # type: ignore[call-overload]  # our own answer
    access, refresh = str(tokens["accessToken"]), str(tokens["refreshToken"])
    profile = user.profiles[0] if user.profiles else None
    auth_kv: dict[str, object] = {}
    state: dict[str, object] = {}
    result: dict[str, object] = {"email": user.email, "kind": user.kind, "user_id": user.user_id}
    if user.kind == "social":
        key = fmt.SOCIAL_TOKEN_KEY
        token = fmt.social_token(access, refresh, expires_at, user.provider, profile.arn if profile else None)
    elif user.kind == "external-idp":
        key = fmt.EXTERNAL_IDP_TOKEN_KEY
        # Real-looking Entra ID URLs: kiro-tui's clients send them to the emulator when
        # KIRO_TUI_ENDPOINT_URL is set, and the emulator serves any form POST to …/token.
        tenant = "8f9e6d5c-0000-4000-8000-00000000e1d9"
        token = fmt.external_idp_token(
            access, refresh, expires_at, f"https://login.microsoftonline.com/{tenant}/v2.0",
            f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token", "00000000-0000-0000-0000-000000000000",
        )
    else:
        key = fmt.OIDC_TOKEN_KEY
        start_url = None if user.kind == "builder-id" else user.start_url
        token = fmt.oidc_token(access, refresh, expires_at, user.region, start_url, list(KIRO_SCOPES))
        assert registration is not None
        reg = fmt.device_registration(
            str(registration["clientId"]),
            str(registration["clientSecret"]),
            datetime.fromtimestamp(int(registration["clientSecretExpiresAt"]), UTC),  # type: ignore[call-overload]  # our own answer
            user.region,
            list(KIRO_SCOPES),
        )
        auth_kv[fmt.OIDC_REGISTRATION_KEY] = reg
        result["device_registration"] = reg
        result["registration_key"] = fmt.OIDC_REGISTRATION_KEY
        if user.kind == "idc":
            state["auth.idc.start-url"] = user.start_url
            state["auth.idc.region"] = user.region
    auth_kv[key] = token
    result["token"] = token
    result["token_key"] = key
    if profile is not None:
        name = "Social_Default_Profile" if user.kind == "social" else profile.name
        result["profile"] = fmt.profile(profile.arn, name)
        state[fmt.PROFILE_STATE_KEY] = result["profile"]
    else:
        result["profile"] = None
    result["auth_kv"] = auth_kv
    result["state"] = state
    return result
