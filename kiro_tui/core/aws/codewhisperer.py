"""CodeWhisperer / Q account APIs: ListAvailableProfiles and GetUsageLimits.

Two wire flavours exist: the awsJson1_0 RPC one (`POST /` + X-Amz-Target, as kiro-cli and Q
CLI send) and the REST one the Kiro IDE uses (`POST /ListAvailableProfiles`,
`GET /getUsageLimits`). We try the usual one first and fall back to the other when a host
answers 404 or "unknown operation", then remember what worked.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from kiro_tui.core.aws.endpoints import PROFILE_REGIONS, Endpoints, valid_region
from kiro_tui.core.aws.errors import ErrorClass, ServiceError, says_invalid_bearer
from kiro_tui.core.aws.transport import exchange, require

SERVICE = "CodeWhisperer"
TARGET_PREFIX = "AmazonCodeWhispererService."
RPC, REST = "rpc", "rest"
USAGE_QUERY = {"isEmailRequired": "true", "origin": "AI_EDITOR", "resourceType": "AGENTIC_REQUEST"}
EXTERNAL_IDP_HEADERS = {"TokenType": "EXTERNAL_IDP"}
"""What an external IdP's access token needs beside it on every call (as the Kiro IDE and
kiro-gateway send it); without it the service takes the token for an AWS one and refuses it."""


def classify(status: int, code: str, message: str, body: dict[str, Any]) -> ServiceError:
    reason = str(body.get("reason") or "")
    text = f"{SERVICE}: {code or f'HTTP {status}'}" + (f" ({message})" if message else "")
    kwargs: dict[str, Any] = {"status": status, "code": code}
    if reason == "TEMPORARILY_SUSPENDED":
        return ServiceError(text, ErrorClass.SUSPENDED, **kwargs)
    if status == 429 or code == "ThrottlingException":
        cls = ErrorClass.QUOTA if reason == "MONTHLY_REQUEST_COUNT" else ErrorClass.TRANSIENT
        return ServiceError(text, cls, **kwargs)
    if status >= 500:
        return ServiceError(text, ErrorClass.TRANSIENT, **kwargs)
    if says_invalid_bearer(status, message):
        return ServiceError(text, ErrorClass.TRANSIENT, **kwargs)  # see errors.is_invalid_bearer
    if status in (401, 403) and reason != "FEATURE_NOT_SUPPORTED":
        return ServiceError(text, ErrorClass.NEEDS_LOGIN, **kwargs)
    return ServiceError(text, ErrorClass.FATAL_CONFIG, **kwargs)


def _wrong_flavour(error: ServiceError) -> bool:
    return error.status == 404 or error.code in ("UnknownOperationException", "UnknownOperation")


@dataclass(frozen=True)
class Profile:
    arn: str
    name: str
    status: str | None = None

    @property
    def region(self) -> str:
        parts = self.arn.split(":")
        return parts[3] if len(parts) > 4 else ""


@dataclass
class ProfileListing:
    profiles: list[Profile]
    errors: dict[str, ServiceError] = field(default_factory=dict)  # region -> why it gave nothing


@dataclass(frozen=True)
class Usage:
    used: float
    limit: float
    reset_at: datetime | None
    email: str | None
    subscription: str | None


class QClient:
    def __init__(self, http: httpx.AsyncClient, endpoints: Endpoints) -> None:
        self.http, self.endpoints = http, endpoints
        self._preferred = {"ListAvailableProfiles": RPC, "GetUsageLimits": REST}

    async def _call(self, operation: str, region: str, access_token: str, body: dict[str, Any],
                    query: dict[str, str] | None = None, external_idp: bool = False) -> dict[str, Any]:
        if not valid_region(region):
            raise ServiceError(f"{SERVICE}: unknown region {region!r}", ErrorClass.FATAL_CONFIG)
        first = self._preferred[operation]
        order = [first, REST if first == RPC else RPC]
        error: ServiceError | None = None
        for flavour in order:
            try:
                result = await self._send(flavour, operation, region, access_token, body, query, external_idp)
            except ServiceError as exc:
                if not _wrong_flavour(exc):
                    raise
                error = exc
                continue
            self._preferred[operation] = flavour
            return result
        assert error is not None
        raise error

    async def _send(self, flavour: str, operation: str, region: str, access_token: str,
                    body: dict[str, Any], query: dict[str, str] | None, external_idp: bool) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {access_token}", **(EXTERNAL_IDP_HEADERS if external_idp else {})}
        service = f"{SERVICE} {operation}"
        if flavour == RPC:
            return await exchange(
                self.http, "POST", self.endpoints.q(region, "/"), service=service, classify=classify,
                content=json.dumps(body).encode(), params=query,
                headers={**auth, "Content-Type": "application/x-amz-json-1.0",
                         "X-Amz-Target": TARGET_PREFIX + operation},
            )
        if operation == "GetUsageLimits":
            return await exchange(self.http, "GET", self.endpoints.q(region, "/getUsageLimits"),
                                  service=service, classify=classify, params=query, headers=auth)
        return await exchange(self.http, "POST", self.endpoints.q(region, f"/{operation}"),
                              service=service, classify=classify, json=body, headers=auth)

    async def list_available_profiles(
        self, access_token: str, regions: tuple[str, ...] = PROFILE_REGIONS, page_size: int = 10,
        external_idp: bool = False,
    ) -> ProfileListing:
        """Every profile in every profile region, merged. A region that fails is reported in
        `errors`; if all fail, the most telling error is raised."""
        results = await asyncio.gather(
            *(self._profiles_in(region, access_token, page_size, external_idp) for region in regions),
            return_exceptions=True,
        )
        listing = ProfileListing(profiles=[])
        seen: set[str] = set()
        for region, result in zip(regions, results, strict=True):
            if isinstance(result, ServiceError):
                listing.errors[region] = result
                continue
            if isinstance(result, BaseException):
                raise result
            for profile in result:
                if profile.arn not in seen:
                    seen.add(profile.arn)
                    listing.profiles.append(profile)
        if len(listing.errors) == len(regions):
            raise _most_telling(list(listing.errors.values()))
        return listing

    async def _profiles_in(self, region: str, access_token: str, page_size: int,
                           external_idp: bool = False) -> list[Profile]:
        profiles: list[Profile] = []
        next_token: str | None = None
        for _ in range(100):  # a hard stop against a service that pages forever
            body: dict[str, Any] = {"maxResults": page_size}
            if next_token:
                body["nextToken"] = next_token
            page = await self._call("ListAvailableProfiles", region, access_token, body, None, external_idp)
            for item in require(page, "profiles", list, f"{SERVICE} ListAvailableProfiles"):
                if isinstance(item, dict) and isinstance(item.get("arn"), str):
                    name = item.get("profileName") or item.get("profile_name") or item["arn"].rsplit("/", 1)[-1]
                    profiles.append(Profile(item["arn"], str(name), item.get("status")))
            next_token = page.get("nextToken") if isinstance(page.get("nextToken"), str) else None
            if not next_token:
                break
        return profiles

    async def get_usage_limits(self, access_token: str, region: str, profile_arn: str | None = None,
                               external_idp: bool = False) -> Usage:
        query = dict(USAGE_QUERY)
        if profile_arn:
            query["profileArn"] = profile_arn
        body = await self._call("GetUsageLimits", region, access_token, dict(query), query, external_idp)
        return parse_usage(body)


def parse_usage(body: dict[str, Any]) -> Usage:
    used = limit = 0.0
    for item in body.get("usageBreakdownList") or []:
        if not isinstance(item, dict):
            continue
        used += _number(item, "currentUsageWithPrecision", "currentUsage")
        limit += _number(item, "usageLimitWithPrecision", "usageLimit")
        trial = item.get("freeTrialInfo")
        if isinstance(trial, dict) and trial.get("freeTrialStatus", "ACTIVE") == "ACTIVE":
            used += _number(trial, "currentUsageWithPrecision", "currentUsage")
            limit += _number(trial, "usageLimitWithPrecision", "usageLimit")
    reset = body.get("nextDateReset")
    reset_at = None
    if isinstance(reset, int | float) and not isinstance(reset, bool) and reset > 0:
        reset_at = datetime.fromtimestamp(reset / 1000 if reset >= 1e12 else reset, UTC)
    user, sub = body.get("userInfo"), body.get("subscriptionInfo")
    email = user.get("email") if isinstance(user, dict) else None
    title = sub.get("subscriptionTitle") if isinstance(sub, dict) else None
    email, title = (email if isinstance(email, str) else None), (title if isinstance(title, str) else None)
    return Usage(used=used, limit=limit, reset_at=reset_at, email=email, subscription=title)


def _number(data: dict[str, Any], precise: str, plain: str) -> float:
    for name in (precise, plain):
        value = data.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def _most_telling(errors: list[ServiceError]) -> ServiceError:
    rank = [ErrorClass.SUSPENDED, ErrorClass.NEEDS_LOGIN, ErrorClass.QUOTA, ErrorClass.FATAL_CONFIG,
            ErrorClass.TRANSIENT]
    return min(errors, key=lambda e: rank.index(e.classification))
