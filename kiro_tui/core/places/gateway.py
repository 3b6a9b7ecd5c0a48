"""kiro-gateway's credentials as places.

`gateway`: its `KIRO_CREDS_FILE` JSON (camelCase; `clientId` / `clientSecret` or a
`clientIdHash` naming a registration in the IDE's cache make it an OIDC login; `authMethod`
`external_idp` with `tokenEndpoint`, `issuerUrl`, `scopes` an external IdP one). Its
multi-account `credentials.json` is an array of `{type, path, enabled, …}`: `discover` follows
the enabled `json` entries (a folder is scanned for files with `refreshToken` or `clientId`);
`sqlite` entries are kiro-cli-format databases, listed by `gateway_sqlite_paths` for the caller
to read as kind kiro-cli.

`gateway-db`: a kiro-cli-format database kiro-tui writes for the gateway. The gateway does
not re-read its JSON file while running, but it re-reads a database before refreshing, so
this is the link to recommend. Its timestamps are kiro-tui's fixed six fraction digits
(`format_timestamp`): Python 3.10, which the gateway supports, cannot parse 1, 2, 4 or 5.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path

from kiro_tui.core.models import DEFAULT_REGION, KIRO_SCOPES, Account, AuthMethod
from kiro_tui.core.paths import kiro_cli_db_candidates
from kiro_tui.core.places import kiro_cli_format as fmt
from kiro_tui.core.places._fields import (
    Fields,
    build_login,
    client_of,
    oidc_method,
    profile_region,
    python_iso,
    social_provider,
    words,
)
from kiro_tui.core.places._files import (
    JsonDoc,
    absolute,
    atomic_write,
    is_folder,
    is_present,
    list_folder,
    prepare_folder,
    read_json,
    wants_folder,
)
from kiro_tui.core.places._json_place import JsonFilePlace
from kiro_tui.core.places._sqlite import is_kiro_cli_format
from kiro_tui.core.places.base import Created, PlaceError, PlaceLogin
from kiro_tui.core.places.kiro_cli import KiroCliPlace, replace_database_login
from kiro_tui.core.places.kiro_ide import sso_cache_folder

CREDS_FILE_ENV = "KIRO_CREDS_FILE"
ACCOUNTS_FILE_ENV = "ACCOUNTS_CONFIG_FILE"
"""kiro-gateway's multi-account `credentials.json` (relative to its own folder unless absolute)."""
DB_FILE_ENV = "KIRO_CLI_DB_FILE"
"""The kiro-cli-format database kiro-gateway reads in SQLite mode."""
DB_FILE_NAME = "kiro-gateway.sqlite3"
EXTERNAL_IDP_WORD = "external_idp"
_WHAT = "kiro-gateway credentials file"


class GatewayPlace(JsonFilePlace):
    kind = "gateway"
    title = "kiro-gateway"
    what = _WHAT
    supports = (AuthMethod.SOCIAL, AuthMethod.BUILDER_ID, AuthMethod.IDC, AuthMethod.EXTERNAL_IDP)
    finding = (f"kiro-gateway's file is wherever its {CREDS_FILE_ENV} or {ACCOUNTS_FILE_ENV} says, and neither "
               "is set here: name it with `kiro-tui import --from gateway --path FILE`")

    def default_paths(self) -> list[Path]:
        """Only what this environment names: the gateway has no default file."""
        return _named_by_env(CREDS_FILE_ENV, ACCOUNTS_FILE_ENV)

    def discover(self, path: Path) -> list[Path]:
        """A credentials file is itself; a `credentials.json` array gives its enabled `json`
        entries; a folder gives its credentials files."""
        return _discover_json(absolute(path), set())

    def file_name(self, account: Account) -> str:
        return f"kiro-{account.id}.json"

    def check_shape(self, doc: JsonDoc) -> None:
        if isinstance(doc.data, list):
            raise PlaceError(f"{doc.path} is kiro-gateway's list of credentials (credentials.json), not one "
                             "credentials file; import from it with its path, and kiro-tui follows its entries")
        super().check_shape(doc)

    def parse(self, doc: JsonDoc, now: datetime) -> PlaceLogin:
        fields = Fields(doc.mapping, "camel")
        where = f"{self.what} {doc.path}"
        method, provider = words(fields.text("auth_method")), fields.text("provider")
        region = fields.text("region")
        token_endpoint = fields.text("token_endpoint")
        if token_endpoint or "externalidp" in (method, words(provider)):
            return build_login(fields, AuthMethod.EXTERNAL_IDP, where, now, region=region, client=client_of(fields),
                               token_endpoint=token_endpoint, issuer_url=fields.text("issuer_url"),
                               provider=None if words(provider) == "externalidp" else provider)
        if not (fields.text("client_id") or fields.text("client_id_hash")):
            return build_login(fields, AuthMethod.SOCIAL, where, now, region=region,
                               provider=social_provider(provider))
        start_url = fields.text("start_url")
        return build_login(fields, oidc_method(start_url, says_idc=False), where, now, region=region,
                           start_url=start_url, client=client_of(fields, sso_cache_folder()))

    def stamp(self, when: datetime) -> str:
        return python_iso(when)

    def caveat(self, account: Account) -> str | None:
        """kiro-gateway's JSON mode reads one `region` for its login refresh and its API calls
        (its issue #81; kiro/auth.py 143be9e7: no per-file API region), so an IdC login whose
        profile lives in another region calls the wrong API host from it."""
        api_region = profile_region(account.profile_arn)
        if account.auth_method not in (AuthMethod.BUILDER_ID, AuthMethod.IDC) or not api_region:
            return None
        if api_region == account.region:
            return None
        return (f"kiro-gateway's JSON file has one region for both its login and its API calls (its issue #81): "
                f"{account.name} signs in at {account.region} but its profile is in {api_region}, so the gateway "
                f"will call the wrong region. Link it with gateway-db instead (the gateway takes the API region from "
                f"the profile there), or give its credentials.json entry \"api_region\": \"{api_region}\"")

    def new_document(self, account: Account) -> dict[str, object]:
        method = account.auth_method
        region = account.region  # the gateway's one region: OIDC and API alike
        if method is AuthMethod.SOCIAL:
            region = profile_region(account.profile_arn) or DEFAULT_REGION
        document: dict[str, object] = {
            "refreshToken": account.refresh_token, "accessToken": account.access_token,
            "profileArn": account.profile_arn, "region": region, "expiresAt": python_iso(account.expires_at),
        }
        if method in (AuthMethod.BUILDER_ID, AuthMethod.IDC):
            document.update(clientId=account.client_id, clientSecret=account.client_secret)
        elif method is AuthMethod.EXTERNAL_IDP:
            document.update(authMethod=EXTERNAL_IDP_WORD, provider=account.provider,
                            tokenEndpoint=account.token_endpoint, issuerUrl=account.issuer_url,
                            clientId=account.client_id,
                            scopes=" ".join(account.scopes) if account.scopes else None)
        return document


def _discover_json(path: Path, seen: set[Path]) -> list[Path]:
    if path in seen:  # a credentials.json that names itself, or a folder holding it
        return []
    seen.add(path)
    if is_folder(path):
        found: list[Path] = []
        for candidate in list_folder(path, _WHAT):
            if candidate.suffix != ".json" or not is_present(candidate):
                continue
            data = _json_or_none(candidate)
            if isinstance(data, list):
                found.extend(_discover_json(candidate, seen))
            elif data is None or not isinstance(data, dict) or _is_credentials(data):
                found.append(candidate)
        return _unique(found)
    if not is_present(path):
        return []
    data = _json_or_none(path)
    if isinstance(data, list):
        return _unique([p for entry in _entries(path, data, "json") for p in _discover_json(entry, seen)])
    return [path]


def gateway_sqlite_paths(credentials_json: Path) -> list[Path]:
    """The kiro-cli-format databases an enabled `sqlite` entry of kiro-gateway's
    `credentials.json` names (a folder entry: each database in it with an `auth_kv` table),
    for the caller to read as kind kiro-cli."""
    credentials_json = absolute(credentials_json)
    data = _json_or_none(credentials_json)
    if not isinstance(data, list):
        return []
    found: list[Path] = []
    for entry in _entries(credentials_json, data, "sqlite"):
        if is_folder(entry):
            found.extend(p for p in list_folder(entry, "kiro-gateway databases")
                         if is_present(p) and is_kiro_cli_format(p))
        elif is_present(entry):
            found.append(entry)
    return _unique(found)


def _entries(credentials_json: Path, data: list[object], kind: str) -> list[Path]:
    """The paths of the enabled entries of one type; relative ones from the file's folder."""
    paths = []
    for entry in data:
        if not isinstance(entry, dict) or str(entry.get("type", "")).lower() != kind:
            continue
        if entry.get("enabled", True) in (False, 0, "false", "False"):
            continue
        where = entry.get("path")
        if isinstance(where, str) and where and "\x00" not in where:
            paths.append(absolute(credentials_json.parent / Path(where).expanduser()))
    return paths


def _json_or_none(path: Path) -> object:
    try:
        return read_json(path, _WHAT).data
    except PlaceError:
        return None


def _is_credentials(data: dict[str, object]) -> bool:
    """kiro-gateway's own test for a credentials file in a folder: a refresh token or a client id."""
    return any(data.get(key) for key in ("refreshToken", "refresh_token", "clientId", "client_id"))


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def _named_by_env(*variables: str) -> list[Path]:
    """The files these variables name, as kiro-gateway reads them (set in this environment)."""
    return _unique([absolute(Path(named).expanduser()) for name in variables if (named := os.environ.get(name))])


# -- gateway-db: a kiro-cli-format database for the gateway ---------------------------------

class GatewayDbPlace(KiroCliPlace):
    """Read and written like kiro-cli's database (compare-and-swap on the token key)."""

    kind = "gateway-db"
    title = "kiro-gateway database"
    rereads_before_refresh: float | None = 600.0  # kiro-gateway reloads its SQLite file when within 600 s of expiry

    @property
    def finding(self) -> str:  # type: ignore[override]  # a property where the other formats have a constant
        if os.environ.get(DB_FILE_ENV):  # named: found, or kiro-cli's own database (read as kiro-cli)
            return ""
        return (f"kiro-gateway's database is wherever its {DB_FILE_ENV} says, and it is not set here: name it "
                "with `kiro-tui import --from gateway-db --path FILE`")

    def default_paths(self) -> list[Path]:
        """The database this environment names for the gateway, unless it is kiro-cli's own
        (read as kiro-cli: the gateway then shares kiro-cli's login)."""
        kiro_clis = {absolute(p) for p in kiro_cli_db_candidates()}
        return [p for p in _named_by_env(DB_FILE_ENV) if p not in kiro_clis]

    def discover(self, path: Path) -> list[Path]:
        path = absolute(path)
        if is_folder(path):
            return [p for p in list_folder(path, self.title) if is_present(p) and is_kiro_cli_format(p)]
        return [path] if is_present(path) else []

    def create(self, path: Path, account: Account) -> Created:
        return create_gateway_db(path, account)

    def caveat(self, account: Account) -> str | None:
        return None  # the gateway reads the API region from the profile in the database

    def replace_login(self, path: Path, account: Account, held: frozenset[str]) -> Created:
        if not held and not os.path.lexists(path):
            return create_gateway_db(path, account)
        return replace_database_login(path, account, held)


def create_gateway_db(path: Path, account: Account) -> Created:
    """A new kiro-cli-format database (mode 0600) holding `account`'s login, for kiro-gateway's
    `KIRO_CLI_DB_FILE` (or a `sqlite` entry of its credentials.json). A folder gets
    `kiro-gateway.sqlite3`. Never overwrites; the entry is the token's `auth_kv` key."""
    path = absolute(path)
    target = path / DB_FILE_NAME if wants_folder(path) else path
    if os.path.lexists(target):
        raise PlaceError(f"{target} already exists; kiro-tui does not overwrite it: link it instead")
    if not account.refresh_token:
        raise PlaceError(f"{account.name} has no refresh token to write; log in again first")
    key, auth_kv, state = gateway_rows(account)
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(fmt.SCHEMA)
        conn.executemany("INSERT INTO auth_kv (key, value) VALUES (?1, ?2)",
                         [(name, fmt.dumps(value)) for name, value in auth_kv.items()])
        conn.executemany("INSERT INTO state (key, value) VALUES (?1, ?2)",
                         [(name, fmt.dumps(value)) for name, value in state.items()])
        conn.commit()
        image = conn.serialize()
    finally:
        conn.close()
    prepare_folder(target.parent)
    atomic_write(target, image, 0o600, exclusive=True)
    return Created(target, key)


def gateway_rows(account: Account) -> tuple[str, dict[str, object], dict[str, object]]:
    """(token key, auth_kv rows, state rows) for `account` in kiro-cli's own JSON shapes."""
    expires = account.expires_at
    access, refresh = account.access_token, account.refresh_token
    state: dict[str, object] = {}
    if account.profile_arn:
        name = account.profile_name or ("Social_Default_Profile" if account.auth_method is AuthMethod.SOCIAL
                                        else account.profile_arn.rsplit("/", 1)[-1])
        state[fmt.PROFILE_STATE_KEY] = fmt.profile(account.profile_arn, name)
    if account.auth_method is AuthMethod.SOCIAL:
        token = fmt.social_token(access, refresh, expires, account.provider or "github", account.profile_arn)
        return fmt.SOCIAL_TOKEN_KEY, {fmt.SOCIAL_TOKEN_KEY: token}, state
    if account.auth_method is AuthMethod.EXTERNAL_IDP:
        if not (account.token_endpoint and account.client_id):
            raise PlaceError(f"{account.name} has no token endpoint or client id to write; log in again first")
        token = fmt.external_idp_token(access, refresh, expires, account.issuer_url, account.token_endpoint,
                                       account.client_id)
        return fmt.EXTERNAL_IDP_TOKEN_KEY, {fmt.EXTERNAL_IDP_TOKEN_KEY: token}, state
    if not (account.client_id and account.client_secret):
        raise PlaceError(f"{account.name} has no OIDC client registration to write; log in again first")
    scopes = account.scopes or list(KIRO_SCOPES)
    flow = account.oauth_flow or "DeviceCode"
    start_url = account.start_url if account.auth_method is AuthMethod.IDC else None
    token = fmt.oidc_token(access, refresh, expires, account.region, start_url, scopes, flow)
    registration = fmt.device_registration(account.client_id, account.client_secret,
                                           account.client_secret_expires_at, account.region, scopes, flow)
    if start_url:  # as kiro-cli keeps an IdC login: what an older gateway's rewrite of the token drops
        state[fmt.IDC_START_URL_STATE_KEY] = start_url
        state[fmt.IDC_REGION_STATE_KEY] = account.region
    return fmt.OIDC_TOKEN_KEY, {fmt.OIDC_TOKEN_KEY: token, fmt.OIDC_REGISTRATION_KEY: registration}, state
