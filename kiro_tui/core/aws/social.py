"""The Kiro social auth service (Google / GitHub logins): POST /refreshToken."""

from __future__ import annotations

from typing import Any

import httpx

from kiro_tui.core.aws.endpoints import Endpoints, valid_region
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.tokens import TokenResult, expires_in_of, optional_text
from kiro_tui.core.aws.transport import exchange, require

SERVICE = "Kiro auth"


def classify(status: int, code: str, message: str, body: dict[str, Any]) -> ServiceError:
    """The service's own JSON error (`exchange` passes nothing else). A login is dead only when
    it says so: its 400 "Invalid refresh token provided", or its 401 (a stale or rotated token);
    anything else it says is retried."""
    text = f"{SERVICE} refresh: HTTP {status}" + (f" ({message})" if message else "")
    if "TEMPORARILY_SUSPENDED" in (str(body.get("reason")), code) or "suspended" in message.lower():
        return ServiceError(text, ErrorClass.SUSPENDED, status=status, code=code)
    if status == 401 or (status == 400 and "invalid refresh token" in message.lower()):
        return ServiceError(text, ErrorClass.NEEDS_LOGIN, status=status, code=code)
    return ServiceError(f"{text}; retrying", ErrorClass.TRANSIENT, status=status, code=code)


class SocialClient:
    def __init__(self, http: httpx.AsyncClient, endpoints: Endpoints) -> None:
        self.http, self.endpoints = http, endpoints

    async def refresh(self, refresh_token: str, region: str = "us-east-1") -> TokenResult:
        if not valid_region(region):
            raise ServiceError(f"{SERVICE}: unknown region {region!r}", ErrorClass.FATAL_CONFIG)
        body = await exchange(
            self.http, "POST", self.endpoints.social(region, "/refreshToken"),
            service=f"{SERVICE} refresh", classify=classify, json={"refreshToken": refresh_token},
        )
        rotated = body.get("refreshToken")
        expires_in, expiry_warning = expires_in_of(body.get("expiresIn"))
        arn, arn_warning = optional_text(body, "profileArn")
        return TokenResult(
            access_token=require(body, "accessToken", str, f"{SERVICE} refresh"),
            refresh_token=rotated if isinstance(rotated, str) and rotated else None,
            expires_in=expires_in,
            profile_arn=arn,
            warnings=tuple(w for w in (expiry_warning, arn_warning) if w),
        )
