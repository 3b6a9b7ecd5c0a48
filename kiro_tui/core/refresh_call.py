"""The refresh call itself: which of the service's clients spends an account's refresh token.

Kept apart from `refresh`, which decides when a call may go out and what its answer becomes: this
module knows only the three ways a login is refreshed (social through the Kiro auth service, an
external IdP's token endpoint, and SSO OIDC for Builder ID and IAM Identity Center), the words
for what the service answered beyond a token, and what a failed call says of the account (its
health, and when to try again).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import httpx

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.external_idp import ExternalIdpClient
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.social import SocialClient
from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.identity import mark_refresh_token_dead
from kiro_tui.core.models import Account, AuthMethod, Health
from kiro_tui.core.timefmt import shift

SOCIAL_AUTH_REGION = "us-east-1"


@dataclass(frozen=True)
class RefreshClients:
    oidc: OidcClient
    social: SocialClient
    external: ExternalIdpClient

    @classmethod
    def create(cls, http: httpx.AsyncClient, endpoints: Endpoints) -> RefreshClients:
        return cls(OidcClient(http, endpoints), SocialClient(http, endpoints), ExternalIdpClient(http, endpoints))

    async def refresh(self, account: Account) -> TokenResult:
        """Spend the account's refresh token with the client its login method uses; a login that
        lacks what its method needs is a `NEEDS_LOGIN` error, with no call made."""
        token = account.refresh_token
        if not token:
            raise ServiceError("no refresh token stored", ErrorClass.NEEDS_LOGIN)
        if account.auth_method is AuthMethod.SOCIAL:
            return await self.social.refresh(token, SOCIAL_AUTH_REGION)
        if account.auth_method is AuthMethod.EXTERNAL_IDP:
            if not (account.token_endpoint and account.client_id):
                raise ServiceError("no token endpoint stored for this external IdP login", ErrorClass.NEEDS_LOGIN)
            return await self.external.refresh(account.token_endpoint, account.client_id, token, account.scopes)
        if not (account.client_id and account.client_secret):
            raise ServiceError("no OIDC client registration stored", ErrorClass.NEEDS_LOGIN)
        return await self.oidc.refresh(account.region, account.client_id, account.client_secret, token)


def answered_profile_arn(account: Account, token: TokenResult, warnings: list[str]) -> str | None:
    """The profile ARN the answer names when it is new, stored by the token's own commit; one
    that cannot be stored (not text) is dropped, named, and never puts the token at risk."""
    arn = token.profile_arn
    if not arn or arn == account.profile_arn:
        return None
    try:
        arn.encode("utf-8")
    except UnicodeEncodeError:
        warnings.append("profileArn not saved: it holds characters that cannot be stored (unpaired surrogates)")
        return None
    return arn


def needs_login_text(exc: ServiceError) -> str:
    """What a person reads when the service says this login is dead: what to do, and why."""
    if exc.code == "invalid_client":
        return f"client registration invalid or expired: log in again ({exc.message})"
    if exc.classification is ErrorClass.FATAL_CONFIG:
        return f"refresh cannot work as configured: log in again ({exc.message})"
    return f"refresh token invalid: log in again ({exc.message})"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base · 2^(n-1)))."""

    base: float = 5.0
    cap: float = 300.0

    def ceiling(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, min(failures, 64) - 1))

    def delay(self, failures: int, rng: random.Random) -> float:
        return rng.uniform(0, self.ceiling(failures))


def judge_failure(account: Account, exc: ServiceError, now: datetime, backoff: Backoff,
                  rng: random.Random, dead_print: str | None = None) -> float | None:
    """Set on `account` what the failed call says of it: retrying (backed off), suspended, or
    needing a login (a permanent flag, only when the service said so; `dead_print`: the stored
    token to mark dead, see `mark_refresh_token_dead`). Returns the seconds to the next try, or
    None when only a person can fix it."""
    account.consecutive_failures += 1
    if exc.classification in (ErrorClass.TRANSIENT, ErrorClass.QUOTA):
        retry_in = backoff.delay(account.consecutive_failures, rng)
        if exc.retry_after:
            retry_in = max(retry_in, min(exc.retry_after, backoff.cap))
        account.health, account.last_error = Health.REFRESH_FAILING, exc.message
        account.next_refresh_at = shift(now, retry_in)
        return retry_in
    if exc.classification is ErrorClass.SUSPENDED:
        account.health, account.last_error = Health.SUSPENDED, f"account suspended: {exc.message}"
        return None
    account.health, account.last_error, account.next_refresh_at = Health.NEEDS_LOGIN, needs_login_text(exc), None
    if exc.classification is ErrorClass.NEEDS_LOGIN:
        mark_refresh_token_dead(account, dead_print)
    return None
