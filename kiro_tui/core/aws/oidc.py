"""AWS SSO OIDC: RegisterClient, StartDeviceAuthorization, CreateToken (device code, refresh).

rest-json, camelCase bodies, unsigned. Errors come as `{"error", "error_description"}` with
the exception name in x-amzn-ErrorType.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from kiro_tui.core.aws.endpoints import Endpoints, valid_region
from kiro_tui.core.aws.errors import (
    AccessDenied,
    AuthorizationPending,
    DeviceCodeExpired,
    ErrorClass,
    ServiceError,
    SlowDown,
)
from kiro_tui.core.aws.tokens import TokenResult, expires_in_of
from kiro_tui.core.aws.transport import exchange, require
from kiro_tui.core.models import KIRO_SCOPES

CLIENT_NAME = "kiro-tui"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = [DEVICE_GRANT, "refresh_token"]
SERVICE = "AWS SSO OIDC"


@dataclass(frozen=True)
class ClientRegistration:
    client_id: str
    client_secret: str
    expires_at: datetime
    region: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


_NEEDS_LOGIN = {"invalid_grant", "invalid_client", "expired_token", "access_denied", "unauthorized_client"}


def classify(operation: str) -> Any:
    def classify_error(status: int, code: str, message: str, body: dict[str, Any]) -> ServiceError:
        text = f"{SERVICE} {operation}: {code or f'HTTP {status}'}" + (f" ({message})" if message else "")
        kwargs: dict[str, Any] = {"status": status, "code": code}
        if code == "authorization_pending" or code == "AuthorizationPendingException":
            return AuthorizationPending(text, ErrorClass.TRANSIENT, **kwargs)
        if code in ("slow_down", "SlowDownException"):
            return SlowDown(text, ErrorClass.TRANSIENT, **kwargs)
        if operation == "CreateToken(device)" and code in ("expired_token", "ExpiredTokenException"):
            return DeviceCodeExpired(text, ErrorClass.NEEDS_LOGIN, **kwargs)
        if operation == "CreateToken(device)" and code in ("access_denied", "AccessDeniedException"):
            return AccessDenied(text, ErrorClass.NEEDS_LOGIN, **kwargs)
        if status >= 500 or status == 429:
            return ServiceError(text, ErrorClass.TRANSIENT, **kwargs)
        if code in _NEEDS_LOGIN or (operation == "CreateToken(refresh)" and code == "invalid_request"):
            return ServiceError(text, ErrorClass.NEEDS_LOGIN, **kwargs)
        if operation == "CreateToken(refresh)":  # only the service's verdicts above end a login
            return ServiceError(f"{text}; retrying", ErrorClass.TRANSIENT, **kwargs)
        return ServiceError(text, ErrorClass.FATAL_CONFIG, **kwargs)

    return classify_error


class OidcClient:
    def __init__(self, http: httpx.AsyncClient, endpoints: Endpoints) -> None:
        self.http, self.endpoints = http, endpoints

    def _check_region(self, region: str) -> None:
        if not valid_region(region):
            raise ServiceError(f"{SERVICE}: unknown region {region!r} (like us-east-1)", ErrorClass.FATAL_CONFIG)

    async def _post(self, region: str, path: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check_region(region)
        return await exchange(
            self.http, "POST", self.endpoints.oidc(region, path),
            service=f"{SERVICE} {operation}", classify=classify(operation), json=body,
        )

    async def register_client(
        self, region: str, scopes: tuple[str, ...] = KIRO_SCOPES, client_name: str = CLIENT_NAME
    ) -> ClientRegistration:
        body = await self._post(region, "/client/register", "RegisterClient", {
            "clientName": client_name, "clientType": "public", "scopes": list(scopes), "grantTypes": GRANT_TYPES,
        })
        op = f"{SERVICE} RegisterClient"
        expires = require(body, "clientSecretExpiresAt", int, op)
        return ClientRegistration(
            client_id=require(body, "clientId", str, op),
            client_secret=require(body, "clientSecret", str, op),
            expires_at=datetime.fromtimestamp(expires, UTC),
            region=region,
            scopes=tuple(scopes),
        )

    async def start_device_authorization(self, registration: ClientRegistration, start_url: str) -> DeviceAuthorization:
        body = await self._post(registration.region, "/device_authorization", "StartDeviceAuthorization", {
            "clientId": registration.client_id, "clientSecret": registration.client_secret, "startUrl": start_url,
        })
        op = f"{SERVICE} StartDeviceAuthorization"
        uri = require(body, "verificationUri", str, op)
        return DeviceAuthorization(
            device_code=require(body, "deviceCode", str, op),
            user_code=require(body, "userCode", str, op),
            verification_uri=uri,
            verification_uri_complete=body.get("verificationUriComplete") or uri,
            expires_in=expires_in_of(body.get("expiresIn"))[0] if body.get("expiresIn") else 600,
            interval=int(body["interval"]) if isinstance(body.get("interval"), int) and body["interval"] > 0 else 5,
        )

    async def create_token_device(self, registration: ClientRegistration, device_code: str) -> TokenResult:
        """One poll. Raises AuthorizationPending / SlowDown until the person approves."""
        body = await self._post(registration.region, "/token", "CreateToken(device)", {
            "clientId": registration.client_id, "clientSecret": registration.client_secret,
            "grantType": DEVICE_GRANT, "deviceCode": device_code,
        })
        return self._token(body)

    async def refresh(self, region: str, client_id: str, client_secret: str, refresh_token: str) -> TokenResult:
        body = await self._post(region, "/token", "CreateToken(refresh)", {
            "clientId": client_id, "clientSecret": client_secret,
            "grantType": "refresh_token", "refreshToken": refresh_token,
        })
        return self._token(body)

    @staticmethod
    def _token(body: dict[str, Any]) -> TokenResult:
        op = f"{SERVICE} CreateToken"
        refresh = body.get("refreshToken")
        expires_in, warning = expires_in_of(body.get("expiresIn"))
        return TokenResult(
            access_token=require(body, "accessToken", str, op),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in=expires_in,
            warnings=(warning,) if warning else (),
            id_token=body["idToken"] if isinstance(body.get("idToken"), str) else None,
        )
