"""The refresh call itself: which of the service's clients spends an account's refresh token.

Kept apart from `refresh`, which decides when a call may go out and what its answer becomes: this
module knows only the three ways a login is refreshed (social through the Kiro auth service, an
external IdP's token endpoint, and SSO OIDC for Builder ID and IAM Identity Center), and the
words for what the service answered beyond a token.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from kiro_tui.core.aws.endpoints import Endpoints
from kiro_tui.core.aws.errors import ErrorClass, ServiceError
from kiro_tui.core.aws.external_idp import ExternalIdpClient
from kiro_tui.core.aws.oidc import OidcClient
from kiro_tui.core.aws.social import SocialClient
from kiro_tui.core.aws.tokens import TokenResult
from kiro_tui.core.models import Account, AuthMethod

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
