"""AIClient-2-API's Kiro credential files as places.

Its own logins write `configs/kiro/{ms}_kiro-auth-token/{ms}_kiro-auth-token.json` under its
folder (camelCase, `expiresAt` from JS `toISOString()`, `JSON.stringify(…, null, 2)`); any
other file can be named per pool entry. Its default, `~/.aws/sso/cache/kiro-auth-token.json`,
is the Kiro IDE's file: that place is kind `kiro-ide`. It merges every other `*.json` in the
file's folder over the file (all but `expiresAt`), so one folder holds one account: a folder
where another file carries a token is reported, not guessed at.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from kiro_tui.core.models import DEFAULT_REGION, Account, AuthMethod
from kiro_tui.core.places._fields import (
    BadField,
    Fields,
    build_login,
    client_of,
    js_iso,
    oidc_method,
    profile_region,
    provider_title,
    social_provider,
    words,
)
from kiro_tui.core.places._files import (
    JsonDoc,
    is_folder,
    is_present,
    list_folder,
    read_json,
    wants_folder,
)
from kiro_tui.core.places._json_place import JsonFilePlace
from kiro_tui.core.places.base import PlaceError, PlaceLogin

FILE_SUFFIX = "_kiro-auth-token.json"
SEARCH_PATTERNS = (f"configs/kiro/*/*{FILE_SUFFIX}", f"*/*{FILE_SUFFIX}", f"*{FILE_SUFFIX}")
"""Under AIClient-2-API's folder; also under its configs/kiro or one account's folder."""
_TOKEN_KEYS = ("accessToken", "refreshToken", "access_token", "refresh_token")


class AiClientPlace(JsonFilePlace):
    kind = "aiclient"
    title = "AIClient-2-API"
    what = "AIClient-2-API credentials file"
    finding = ("AIClient-2-API keeps its files under its own folder (configs/kiro/), which kiro-tui cannot "
               "know: name it with `kiro-tui import --from aiclient --path FOLDER`")

    def files_in(self, folder: Path) -> list[Path]:
        found = {path for pattern in SEARCH_PATTERNS for path in folder.glob(pattern) if is_present(path)}
        return sorted(found)

    def parse(self, doc: JsonDoc, now: datetime) -> PlaceLogin:
        data = dict(doc.mapping)
        _merge_folder(doc.path, data)
        fields = Fields(data, "camel")
        where = f"{self.what} {doc.path}"
        method, provider = words(fields.text("auth_method")), fields.text("provider")
        if method == "social" or not (method or fields.text("client_id")):
            return build_login(fields, AuthMethod.SOCIAL, where, now, region=fields.text("region"),
                               provider=social_provider(fields.text("social_provider"), provider))
        says_idc = method in ("idc", "iamidentitycenter", "enterprise") and words(provider) != "builderid"
        start_url = fields.text("start_url")
        return build_login(fields, oidc_method(start_url, says_idc), where, now,
                           region=fields.text("idc_region") or fields.text("region"), start_url=start_url,
                           client=client_of(fields))

    def stamp(self, when: datetime) -> str:
        return js_iso(when)

    def new_document(self, account: Account) -> dict[str, object]:
        api_region = profile_region(account.profile_arn) or DEFAULT_REGION
        if account.auth_method is AuthMethod.SOCIAL:
            return {"accessToken": account.access_token, "refreshToken": account.refresh_token,
                    "profileArn": account.profile_arn, "socialProvider": provider_title(account.provider),
                    "expiresAt": js_iso(account.expires_at), "authMethod": "social", "region": api_region}
        idc = account.auth_method is AuthMethod.IDC
        return {"accessToken": account.access_token, "refreshToken": account.refresh_token,
                "expiresAt": js_iso(account.expires_at), "authMethod": "IdC" if idc else "builder-id",
                "clientId": account.client_id, "clientSecret": account.client_secret,
                "idcRegion": account.region, "region": api_region, "profileArn": account.profile_arn,
                "startUrl": account.start_url if idc else None}

    def target(self, path: Path, account: Account) -> Path:
        """A folder is AIClient-2-API's own: the new file goes where its own logins put theirs."""
        if not wants_folder(path):
            return path
        stamp = f"{time.time_ns() // 1_000_000}_kiro-auth-token"
        return path / "configs" / "kiro" / stamp / f"{stamp}.json"

    def check_target(self, target: Path) -> None:
        super().check_target(target)
        if is_folder(target.parent):
            others = [p.name for p in list_folder(target.parent, self.what) if p.suffix == ".json"]
            if others:
                raise PlaceError(f"{target.parent} already holds {others[0]}: AIClient-2-API merges every *.json "
                                 "in a folder into one login, so each account needs a folder of its own; "
                                 "pick an empty folder")


def _merge_folder(path: Path, data: dict[str, object]) -> None:
    """What AIClient-2-API reads: every other `*.json` in the folder laid over the file, all
    but `expiresAt`. One that carries a token would override this file's: refused, named."""
    try:
        siblings = list_folder(path.parent, AiClientPlace.title)
    except PlaceError:
        return
    for sibling in siblings:
        if sibling.suffix != ".json" or sibling.name == path.name or not is_present(sibling):
            continue
        try:
            other = read_json(sibling, "AIClient-2-API credentials file").data
        except PlaceError:
            continue  # AIClient-2-API skips a file it cannot parse, and so do we
        if not isinstance(other, dict):
            continue
        if any(other.get(key) for key in _TOKEN_KEYS):
            raise BadField(f"{sibling.name} beside it holds a token too, and AIClient-2-API merges every *.json "
                           "in the folder into one login; keep one account per folder")
        data.update((key, value) for key, value in other.items() if key != "expiresAt")
