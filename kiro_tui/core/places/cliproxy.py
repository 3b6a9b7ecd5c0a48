"""CLIProxyAPI (Plus)'s auth files as places.

Every `*.json` in its auth folder (default `~/.cli-proxy-api`) whose `"type"` is `"kiro"`, or
that has no `"type"` but an `auth_method` of `social` or `builder-id` (the proxy loads those as
Kiro logins too); files of its other providers are not ours and are left alone. Fields are snake_case and
`expires_at` / `last_refresh` are Go `time.RFC3339`. The proxy writes each file as a
`json.Marshal` of a map: compact, keys sorted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from kiro_tui.core.models import Account, AuthMethod
from kiro_tui.core.places._fields import (
    Fields,
    build_login,
    client_of,
    go_rfc3339,
    oidc_method,
    provider_title,
    social_provider,
    words,
)
from kiro_tui.core.places._files import JsonDoc, is_present, list_folder, read_json
from kiro_tui.core.places._json_place import JsonFilePlace
from kiro_tui.core.places.base import PlaceError, PlaceLogin, TokenCopy
from kiro_tui.core.places.kiro_ide import sso_cache_folder

AUTH_FOLDER = ".cli-proxy-api"
KIRO_TYPE = "kiro"
_METHOD_WORDS = {AuthMethod.SOCIAL: "social", AuthMethod.BUILDER_ID: "builder-id", AuthMethod.IDC: "idc"}
_OIDC_PROVIDERS = {AuthMethod.BUILDER_ID: "AWS", AuthMethod.IDC: "Enterprise"}
_UNTYPED_KIRO_METHODS = ("social", "builderid")
"""`auth_method` words that make a file with no `"type"` a Kiro login to the proxy."""
IDC_CAVEAT = ("CLIProxyAPIPlus up to deeac6c sends every login but builder-id to the social refresh endpoint and "
              "ignores region and start_url, so it cannot refresh this IdC login itself: kiro-tui refreshes it "
              "first while it is linked (keep it linked; an export goes stale). Builds carrying the Kiro code of "
              "router-for-me/CLIProxyAPI pull 5111 (idc + client + region refreshed at OIDC) refresh it themselves")


class CliProxyPlace(JsonFilePlace):
    kind = "cliproxy"
    title = "CLIProxyAPI"
    what = "CLIProxyAPI auth file"
    native = "snake"
    indent = None
    sort_keys = True

    def default_paths(self) -> list[Path]:
        return [Path.home() / AUTH_FOLDER]

    def files_in(self, folder: Path) -> list[Path]:
        return [path for path in list_folder(folder, self.what)
                if path.suffix == ".json" and is_present(path) and _may_be_kiro(path)]

    def file_name(self, account: Account) -> str:
        who = re.sub(r"[^A-Za-z0-9_-]", "-", account.email) if account.email else account.id
        return f"kiro-{_METHOD_WORDS[account.auth_method]}-{who}.json"

    def check_shape(self, doc: JsonDoc) -> None:
        super().check_shape(doc)
        if isinstance(doc.data, dict) and _untyped_kiro(doc.data):
            return
        kind = doc.data.get("type") if isinstance(doc.data, dict) else None
        if not isinstance(kind, str) or kind.lower() != KIRO_TYPE:
            raise PlaceError(f"{doc.path} is not a Kiro auth file of CLIProxyAPI (its \"type\" is "
                             f"{str(kind)[:40]!r}); kiro-tui leaves other providers' files alone")

    def parse(self, doc: JsonDoc, now: datetime) -> PlaceLogin:
        fields = Fields(doc.mapping, "snake")
        where = f"{self.what} {doc.path}"
        method = words(fields.text("auth_method"))
        email = fields.text("email")
        if method == "social" or not (method or fields.text("client_id")):
            return build_login(fields, AuthMethod.SOCIAL, where, now, email=email,
                               provider=social_provider(fields.text("provider")))
        start_url = fields.text("start_url")  # a missing client: the proxy loads it from the IDE's cache
        return build_login(fields, oidc_method(start_url, says_idc=method == "idc"), where, now,
                           region=fields.text("region"), start_url=start_url, email=email,
                           client=client_of(fields, sso_cache_folder()))

    def stamp(self, when: datetime) -> str:
        return go_rfc3339(when)

    def token_values(self, copy: TokenCopy) -> dict[str, object]:
        return {**super().token_values(copy), "last_refresh": go_rfc3339(datetime.now(UTC))}

    def caveat(self, account: Account) -> str | None:
        return IDC_CAVEAT if account.auth_method is AuthMethod.IDC else None

    def new_document(self, account: Account) -> dict[str, object]:
        method = account.auth_method
        oidc = method is not AuthMethod.SOCIAL
        return {
            "type": KIRO_TYPE,
            "access_token": account.access_token,
            "refresh_token": account.refresh_token,
            "expires_at": go_rfc3339(account.expires_at),
            "last_refresh": go_rfc3339(account.last_refresh_at or datetime.now(UTC)),
            "auth_method": _METHOD_WORDS[method],
            "provider": _OIDC_PROVIDERS[method] if oidc else provider_title(account.provider),
            "profile_arn": account.profile_arn,
            "email": account.email,
            "client_id": account.client_id if oidc else None,
            "client_secret": account.client_secret if oidc else None,
            "region": account.region if oidc else None,
            "start_url": account.start_url if method is AuthMethod.IDC else None,
        }


def _may_be_kiro(path: Path) -> bool:
    """A Kiro auth file, or one that cannot be read (scanning it then says what is wrong); a
    readable object of another provider, or with neither a "type" nor a Kiro `auth_method`,
    is not ours."""
    try:
        doc = read_json(path, "CLIProxyAPI auth file")
    except PlaceError:
        return True
    if not isinstance(doc.data, dict):
        return True
    if "type" not in doc.data:
        return _untyped_kiro(doc.data)
    kind = doc.data["type"]
    return not isinstance(kind, str) or kind.lower() == KIRO_TYPE


def _untyped_kiro(data: dict[str, object]) -> bool:
    """No `"type"`, but an `auth_method` the proxy takes for a Kiro login."""
    method = data.get("auth_method")
    return "type" not in data and isinstance(method, str) and words(method) in _UNTYPED_KIRO_METHODS
