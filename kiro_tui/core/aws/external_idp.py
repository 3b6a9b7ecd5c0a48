"""An external IdP's OAuth2 token endpoint (Entra ID, Okta, ...): form-encoded refresh grant,
as kiro-cli does it (public client, no secret)."""

from __future__ import annotations

from typing import Any

import httpx

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.tokens import TokenResult, expires_in_of
from kiro_tui.core.aws.transport import exchange, require

SERVICE = "external IdP"


_DEAD = ("invalid_grant", "invalid_client", "unauthorized_client", "interaction_required")


def classify(status: int, code: str, message: str, body: dict[str, Any]) -> ServiceError:
    """The IdP's own JSON error. Only an OAuth error that says the grant or client is dead
    calls for a login; anything else is retried."""
    text = f"{SERVICE} refresh: {code or f'HTTP {status}'}" + (f" ({message})" if message else "")
    if code in _DEAD and status < 500:
        return ServiceError(text, ErrorClass.NEEDS_LOGIN, status=status, code=code)
    return ServiceError(f"{text}; retrying", ErrorClass.TRANSIENT, status=status, code=code)


class ExternalIdpClient:
    def __init__(self, http: httpx.AsyncClient, endpoints: Endpoints) -> None:
        self.http, self.endpoints = http, endpoints

    async def refresh(self, token_endpoint: str, client_id: str, refresh_token: str,
                      scopes: list[str] | None = None) -> TokenResult:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
        if scopes:
            form["scope"] = " ".join(scopes)
        body = await exchange(
            self.http, "POST", self.endpoints.absolute(token_endpoint),
            service=f"{SERVICE} refresh", classify=classify, data=form,
        )
        rotated = body.get("refresh_token")
        expires_in, warning = expires_in_of(body.get("expires_in"), "expires_in")
        return TokenResult(
            access_token=require(body, "access_token", str, f"{SERVICE} refresh"),
            refresh_token=rotated if isinstance(rotated, str) and rotated else None,
            expires_in=expires_in,
            warnings=(warning,) if warning else (),
            id_token=body["id_token"] if isinstance(body.get("id_token"), str) else None,
        )
