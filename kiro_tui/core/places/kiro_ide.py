"""The Kiro IDE's token cache as a place.

`~/.aws/sso/cache/kiro-auth-token.json` holds the login (camelCase, `expiresAt` from JS
`toISOString()`); an IdC login names its client registration by `clientIdHash`, kept beside
it as `<clientIdHash>.json`. The hash is read from the token file, never computed: the formula
others give did not reproduce their own sample. The IDE rejects a symbolic link, so kiro-tui
never writes through one.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path

from kiro_tui.core.models import Account, AuthMethod
from kiro_tui.core.places._fields import (
    Fields,
    build_login,
    client_of,
    js_iso,
    oidc_method,
    provider_title,
    social_provider,
    words,
)
from kiro_tui.core.places._files import (
    JsonDoc,
    absolute,
    atomic_write,
    is_present,
    prepare_folder,
)
from kiro_tui.core.places._json_place import JsonFilePlace
from kiro_tui.core.places.base import Created, PlaceLogin, TokenCopy

TOKEN_FILE = "kiro-auth-token.json"
AMAZON_START_URL = "https://amzn.awsapps.com/start"
"""The IDE's start URL for a login option that is neither Builder ID nor Enterprise."""


def sso_cache_folder() -> Path:
    return Path.home() / ".aws" / "sso" / "cache"


class KiroIdePlace(JsonFilePlace):
    kind = "kiro-ide"
    title = "Kiro IDE"
    what = "Kiro IDE token file"

    def default_paths(self) -> list[Path]:
        return [sso_cache_folder() / TOKEN_FILE]

    def files_in(self, folder: Path) -> list[Path]:
        return [folder / TOKEN_FILE] if is_present(folder / TOKEN_FILE) else []

    def file_name(self, account: Account) -> str:
        return TOKEN_FILE

    def refuse_write(self, path: Path) -> str | None:
        if os.path.islink(path):
            return (f"{path} is a symbolic link, and the Kiro IDE needs a regular file there: replace the link "
                    "with the file it points to (kiro-tui does not write through links)")
        return None

    def parse(self, doc: JsonDoc, now: datetime) -> PlaceLogin:
        fields = Fields(doc.data, "camel")  # type: ignore[arg-type]
        where = f"{self.what} {doc.path}"
        method, provider = words(fields.text("auth_method")), fields.text("provider")
        region, token_endpoint = fields.text("region"), fields.text("token_endpoint")
        if token_endpoint or method == "externalidp":
            return build_login(fields, AuthMethod.EXTERNAL_IDP, where, now, region=region, client=client_of(fields),
                               token_endpoint=token_endpoint, issuer_url=fields.text("issuer_url"),
                               provider=provider)
        if method == "social" or not (method or fields.text("client_id_hash") or fields.text("client_id")):
            return build_login(fields, AuthMethod.SOCIAL, where, now, region=region,
                               provider=social_provider(provider))
        start_url = fields.text("start_url") or _start_url_of(provider)
        return build_login(fields, oidc_method(start_url, says_idc=words(provider) == "enterprise"), where, now,
                           region=region, start_url=start_url, client=client_of(fields, doc.path.parent))

    def token_values(self, copy: TokenCopy) -> dict[str, object]:
        values: dict[str, object] = {"access_token": copy.access_token, "refresh_token": copy.refresh_token,
                                     "expires_at": js_iso(copy.expires_at)}
        if copy.profile_arn:
            values["profile_arn"] = copy.profile_arn
        return values

    def new_document(self, account: Account) -> dict[str, object]:
        if account.auth_method is AuthMethod.SOCIAL:
            return {"accessToken": account.access_token, "refreshToken": account.refresh_token,
                    "profileArn": account.profile_arn, "expiresAt": js_iso(account.expires_at),
                    "authMethod": "social", "provider": provider_title(account.provider)}
        return {"accessToken": account.access_token, "refreshToken": account.refresh_token,
                "expiresAt": js_iso(account.expires_at), "clientIdHash": _registration_name(account),
                "authMethod": "IdC",
                "provider": "BuilderId" if account.auth_method is AuthMethod.BUILDER_ID else "Enterprise",
                "region": account.region}

    def create(self, path: Path, account: Account, held: frozenset[str] | None = None) -> Created:
        """The token file and, for Builder ID / IdC, the registration it names. The new
        registration is named by a hash of its client id, so it never replaces one the IDE made."""
        self.check_account(account)
        target = self.target(absolute(path), account)
        if held is None:
            self.check_target(target)
        if account.auth_method is not AuthMethod.SOCIAL:
            assert account.client_id and account.client_secret
            registration: dict[str, object] = {"clientId": account.client_id, "clientSecret": account.client_secret}
            if account.client_secret_expires_at:
                registration["expiresAt"] = js_iso(account.client_secret_expires_at)
            prepare_folder(target.parent)
            atomic_write(target.parent / f"{_registration_name(account)}.json", self.serialize(registration), 0o600)
        return super().create(target, account, held)


def _start_url_of(provider: str | None) -> str | None:
    """The IDE's getStartUrl: Builder ID's portal is implied (None, as kiro-cli stores it),
    Enterprise's is the user's own and not in the file, any other option is Amazon's."""
    word = words(provider)
    if word in ("", "builderid", "enterprise"):
        return None
    return AMAZON_START_URL


def _registration_name(account: Account) -> str:
    return hashlib.sha1((account.client_id or "").encode()).hexdigest()
