"""The Kiro IDE's token cache as a place.

`~/.aws/sso/cache/kiro-auth-token.json` holds the login (camelCase, `expiresAt` from JS
`toISOString()`: milliseconds and `Z`); a Builder ID / IdC login names its client registration
by `clientIdHash`, kept beside it as `<clientIdHash>.json`. The IDE computes that hash as the
hex sha1 of `JSON.stringify({startUrl})`, so kiro-tui writes that name; reading takes whatever
hash the file gives. IdC's `region` is the OIDC region, and an IdC file has no `profileArn`
(the IDE keeps the profile in its own profile.json).

What the IDE does with the file (issue 21, from its extension code): it polls it (about every
5 s) and re-reads it when another program rewrites it; it refreshes by itself under 10 minutes
(on demand under 3), and a failed refresh near expiry logs it out hard: it deletes the token
file, the profile and, for Builder ID / IdC, the registration. So kiro-tui refreshes a login
linked here 15 minutes before expiry, before the IDE's own loop fires; re-creates the
registration whenever the file it names is missing or holds another client; writes no byte
order mark (the IDE's parser chokes on one), mode 0600, and never through a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kiro_tui.core.models import BUILDER_ID_START_URL, Account, AuthMethod
from kiro_tui.core.places._fields import (
    OIDC_METHODS,
    BadField,
    Fields,
    build_login,
    client_of,
    js_iso,
    oidc_method,
    provider_title,
    read_registration,
    social_provider,
    words,
)
from kiro_tui.core.places._files import (
    JsonDoc,
    absolute,
    atomic_write,
    is_present,
    prepare_folder,
    read_json,
)
from kiro_tui.core.places._json_place import JsonFilePlace
from kiro_tui.core.places.base import Created, PlaceError, PlaceLogin, TokenCopy, WriteOutcome, WriteResult

TOKEN_FILE = "kiro-auth-token.json"
EXTERNAL_IDP_PROVIDER = "ExternalIdp"
BOM = b"\xef\xbb\xbf"
AMAZON_START_URL = "https://amzn.awsapps.com/start"
"""The IDE's start URL for a login option that is neither Builder ID nor Enterprise."""


def sso_cache_folder() -> Path:
    return Path.home() / ".aws" / "sso" / "cache"


class KiroIdePlace(JsonFilePlace):
    kind = "kiro-ide"
    title = "Kiro IDE"
    what = "Kiro IDE token file"
    rereads_before_refresh: float | None = 14 * 60.0
    """The IDE refreshes by itself under 10 minutes and logs out hard when that fails near
    expiry; kiro-tui goes first at 15 minutes (this and `LEAD_MARGIN`), as the tools that sync
    the IDE do, so the IDE's own loop never fires while kiro-tui runs."""

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
        fields = Fields(doc.mapping, "camel")
        where = f"{self.what} {doc.path}"
        method, provider = words(fields.text("auth_method")), fields.text("provider")
        region, token_endpoint = fields.text("region"), fields.text("token_endpoint")
        if token_endpoint or method == "externalidp":  # newer IDE builds
            return build_login(fields, AuthMethod.EXTERNAL_IDP, where, now, region=region, client=client_of(fields),
                               token_endpoint=token_endpoint, issuer_url=fields.text("issuer_url"),
                               provider=None if words(provider) == words(EXTERNAL_IDP_PROVIDER) else provider)
        if method == "social" or not (method or fields.text("client_id_hash") or fields.text("client_id")):
            return build_login(fields, AuthMethod.SOCIAL, where, now, region=region,
                               provider=social_provider(provider))
        start_url = fields.text("start_url") or _start_url_of(provider)
        return build_login(fields, oidc_method(start_url, says_idc=words(provider) == "enterprise"), where, now,
                           region=region, start_url=start_url, client=client_of(fields, doc.path.parent))

    def stamp(self, when: datetime) -> str:
        return js_iso(when)

    def token_values(self, copy: TokenCopy) -> dict[str, object]:
        values = super().token_values(copy)
        client_id_hash = registration_hash(copy.auth_method, copy.start_url)
        if client_id_hash:  # the name the IDE looks its registration up by
            values["client_id_hash"] = client_id_hash
        return values

    def rewritten(self, doc: JsonDoc, values: dict[str, object]) -> bytes:
        return doc.with_values(values).removeprefix(BOM)  # a BOM breaks the IDE's parser

    def rewrite_mode(self, doc: JsonDoc) -> int:
        return 0o600

    def write_token(self, path: Path, entry: str, copy: TokenCopy, belongs: Callable[[str | None], bool],
                    timeout: float) -> WriteResult:
        """The compare-and-swap write, then the registration the file names, re-created if the
        IDE (or anyone) removed it: without it the IDE's next refresh fails and logs it out."""
        result = super().write_token(path, entry, copy, belongs, timeout)
        if result.outcome not in (WriteOutcome.WRITTEN, WriteOutcome.UNCHANGED):
            return result
        if copy.auth_method not in OIDC_METHODS or not (copy.client_id and copy.client_secret):
            return result
        try:
            self.keep_registration(absolute(path), copy)
        except PlaceError as exc:
            return WriteResult(WriteOutcome.FAILED, str(exc))
        except OSError as exc:
            return WriteResult(WriteOutcome.FAILED, f"cannot write the Kiro IDE's client registration beside {path}: "
                                                    f"{exc.strerror or exc}")
        return result

    def keep_registration(self, token_file: Path, copy: TokenCopy) -> None:
        """Write `<clientIdHash>.json` beside the token file unless it already holds this client."""
        doc = read_json(token_file, self.what)
        try:
            named = Fields(doc.data, "camel").text("client_id_hash") if isinstance(doc.data, dict) else None
        except BadField:
            return  # not a name the IDE could use either; the file is its own to fix
        if not named:
            return
        folder = Path(os.path.realpath(token_file)).parent
        try:
            held = read_registration(folder, named)
        except BadField:
            held = None
        if held is not None and held.client_id == copy.client_id and held.client_secret == copy.client_secret:
            return
        assert copy.client_id and copy.client_secret
        self.write_registration(folder / f"{named}.json", copy.client_id, copy.client_secret,
                                copy.client_secret_expires_at)

    def write_registration(self, target: Path, client_id: str, client_secret: str,
                           expires_at: datetime | None) -> None:
        """The IDE's ClientRegistrationStorage shape (`expiresAt` only when known), 0600, never
        through a symbolic link."""
        if os.path.islink(target):
            raise PlaceError(f"{target} is a symbolic link; kiro-tui does not write the Kiro IDE's client "
                             "registration through links: replace it with a regular file")
        registration: dict[str, object] = {"clientId": client_id, "clientSecret": client_secret}
        if expires_at:
            registration["expiresAt"] = js_iso(expires_at)
        atomic_write(target, self.serialize(registration), 0o600)

    def new_document(self, account: Account) -> dict[str, object]:
        if account.auth_method is AuthMethod.SOCIAL:
            return {"accessToken": account.access_token, "refreshToken": account.refresh_token,
                    "profileArn": account.profile_arn, "expiresAt": js_iso(account.expires_at),
                    "authMethod": "social", "provider": provider_title(account.provider)}
        return {"accessToken": account.access_token, "refreshToken": account.refresh_token,
                "expiresAt": js_iso(account.expires_at),
                "clientIdHash": registration_hash(account.auth_method, account.start_url),
                "authMethod": "IdC",
                "provider": "BuilderId" if account.auth_method is AuthMethod.BUILDER_ID else "Enterprise",
                "region": account.region}

    def create(self, path: Path, account: Account, held: frozenset[str] | None = None) -> Created:
        """The token file and, for Builder ID / IdC, the registration it names (under the IDE's
        own name for it, so the IDE finds it)."""
        self.check_account(account)
        target = self.target(absolute(path), account)
        if held is None:
            self.check_target(target)
        if account.auth_method is not AuthMethod.SOCIAL:
            client_id_hash = registration_hash(account.auth_method, account.start_url)
            if client_id_hash is None:
                raise PlaceError(f"kiro-tui does not know {account.name}'s start URL, by which the Kiro IDE finds "
                                 "its client registration; log in to it again with kiro-tui (it asks for the URL)")
            assert account.client_id and account.client_secret
            prepare_folder(target.parent)
            self.write_registration(target.parent / f"{client_id_hash}.json", account.client_id,
                                    account.client_secret, account.client_secret_expires_at)
        return super().create(target, account, held)


def _start_url_of(provider: str | None) -> str | None:
    """The IDE's getStartUrl: Builder ID's portal is implied (None, as kiro-cli stores it),
    Enterprise's is the user's own and not in the file, any other option is Amazon's."""
    word = words(provider)
    if word in ("", "builderid", "enterprise"):
        return None
    return AMAZON_START_URL


def ide_client_id_hash(start_url: str) -> str:
    """The IDE's clientIdHash: hex sha1 of `JSON.stringify({startUrl})` (no spaces, non-ASCII
    as is). Builder ID gives e909a0580879b06ece1202964fbe9dda95ea4ce3."""
    text = json.dumps({"startUrl": start_url}, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def registration_hash(auth_method: AuthMethod | None, start_url: str | None) -> str | None:
    """The name of a Builder ID / IdC login's registration in the IDE's cache; None for other
    logins, and for an IdC login whose start URL kiro-tui does not know."""
    if auth_method is AuthMethod.BUILDER_ID:
        return ide_client_id_hash(BUILDER_ID_START_URL)
    if auth_method is AuthMethod.IDC and start_url:
        return ide_client_id_hash(start_url)
    return None
