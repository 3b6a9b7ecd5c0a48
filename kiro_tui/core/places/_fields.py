"""One login's fields as every place format reads them, and the timestamps each tool writes.

Liberal in what we accept: snake_case or camelCase (the tool's own spelling first; of two
copies of the token, the one that expires later wins), epoch seconds or milliseconds or RFC
3339. A field we cannot use raises BadField naming it, so that login is skipped with a reason
while the others still import. Strict in what we produce: each tool's own timestamp format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import DEFAULT_REGION, AuthMethod, classify_start_url
from kiro_tui.core.places._files import json_type, read_json
from kiro_tui.core.places.base import PlaceError, PlaceLogin
from kiro_tui.core.timefmt import TimestampError, parse_timestamp

Spelling = Literal["snake", "camel"]
OIDC_METHODS = (AuthMethod.BUILDER_ID, AuthMethod.IDC)
_HASH_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
EXPIRY_SKEW = timedelta(minutes=1)
"""A registration counts as expired one minute early, as kiro-cli does (`is_expired`)."""


def profile_region(arn: str | None) -> str | None:
    """The API region is the ARN's 4th field (arn:aws:codewhisperer:REGION:account:profile/ID)."""
    if not arn:
        return None
    parts = arn.split(":")
    return parts[3] if len(parts) > 4 and parts[3] else None


class BadField(ValueError):
    """A field that cannot be used; the text names it as the file spells it."""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def words(value: str | None) -> str:
    """A tool's word for something, compared loosely: `IdC`, `idc`, `builder-id`, `BuilderId`."""
    return "".join(ch for ch in (value or "").lower() if ch.isalnum())


def parse_time(value: object) -> datetime:
    """RFC 3339, or epoch seconds / milliseconds as a number or a string of digits."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return parse_timestamp(value)


class Fields:
    """A login's fields in one JSON object (or one database row), read in either spelling."""

    def __init__(self, data: Mapping[str, object], native: Spelling) -> None:
        self.data = data
        self.native: Spelling = native
        self.token_spelling: Spelling = self._newest_spelling()

    def keys_for(self, name: str, first: Spelling | None = None) -> tuple[str, ...]:
        """The names `name` (given in snake_case) may have here, the preferred one first."""
        snake, camel_name = name, camel(name)
        if snake == camel_name:
            return (snake,)
        return (camel_name, snake) if (first or self.native) == "camel" else (snake, camel_name)

    def present(self, name: str) -> list[str]:
        """Every spelling of `name` that the data holds (a writer updates each one)."""
        return [key for key in self.keys_for(name) if key in self.data]

    def _find(self, name: str, first: Spelling | None) -> tuple[str, object] | None:
        for key in self.keys_for(name, first):
            value = self.data.get(key)
            if value is not None and value != "":
                return key, value
        return None

    def _given(self, name: str, required: bool, first: Spelling | None) -> tuple[str, object] | None:
        """(the key it is under, its value), None when it is not there; a BadField if it must be."""
        found = self._find(name, first)
        if found is None and required:
            raise BadField(f"field {self.keys_for(name)[0]!r} is missing")
        return found

    def text(self, name: str, required: bool = False, first: Spelling | None = None) -> str | None:
        found = self._given(name, required, first)
        if found is None:
            return None
        key, value = found
        if not isinstance(value, str):
            raise BadField(f"field {key!r} is a {json_type(value)}, expected a string")
        if not is_text(value):
            raise BadField(f"field {key!r} holds an unpaired surrogate (not text)")
        return value

    def time(self, name: str, required: bool = False, first: Spelling | None = None) -> datetime | None:
        found = self._given(name, required, first)
        if found is None:
            return None
        key, value = found
        try:
            return parse_time(value)
        except TimestampError as exc:
            raise BadField(f"field {key!r}: {exc}") from exc

    def scopes(self) -> list[str] | None:
        found = self._find("scopes", None)
        if found is None:
            return None
        key, value = found
        if isinstance(value, str) and is_text(value):  # OAuth's own form: space-delimited
            return value.split()
        if isinstance(value, list) and all(isinstance(s, str) and s.isprintable() for s in value):
            return list(value)
        raise BadField(f"field {key!r} must be a list of strings or a space-separated string")

    def token(self) -> tuple[str, str | None, datetime]:
        """(access token, refresh token, expiry) from the newer of the two spellings."""
        first = self.token_spelling
        access = self.text("access_token", required=True, first=first)
        expires = self.time("expires_at", required=True, first=first)
        assert access is not None and expires is not None
        return access, self.text("refresh_token", first=first), expires

    def refresh_fingerprint(self) -> str | None:
        """The fingerprint of the refresh token held here; None if none is usable."""
        found = self._find("refresh_token", self.token_spelling)
        value = found[1] if found else None
        return fingerprint(value) if isinstance(value, str) and is_text(value) else None

    def _newest_spelling(self) -> Spelling:
        best: Spelling = self.native
        best_time: datetime | None = None
        for spelling in (self.native, "camel" if self.native == "snake" else "snake"):
            key = "expires_at" if spelling == "snake" else "expiresAt"
            try:
                when = parse_time(self.data.get(key))
            except TimestampError:
                continue
            if best_time is None or when > best_time:
                best, best_time = spelling, when
        return best


def is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def social_provider(*candidates: str | None) -> str | None:
    """google or github, whatever the tool's casing; anything else ("kiro-cli", "AWS") says
    where a file came from, not who signed in, so it is not kept."""
    for candidate in candidates:
        word = words(candidate)
        if word in ("google", "github"):
            return word
    return None


def provider_title(provider: str | None) -> str | None:
    """A social provider as the Kiro tools write it: Google, Github."""
    return {"google": "Google", "github": "Github"}.get(words(provider))


def oidc_method(start_url: str | None, says_idc: bool) -> AuthMethod:
    """Builder ID or IAM Identity Center: the start URL decides when there is one, else what
    the tool says (kiro-cli's rule: no start URL means Builder ID)."""
    if start_url:
        return classify_start_url(start_url)
    return AuthMethod.IDC if says_idc else AuthMethod.BUILDER_ID


@dataclass(frozen=True)
class Client:
    """A login's OIDC client, and why it could not be read, if so."""

    client_id: str | None = None
    client_secret: str | None = None
    expires_at: datetime | None = None
    problem: str | None = None


def client_of(fields: Fields, registrations: Path | None = None) -> Client:
    """The client a login names: its own `client_id` / `client_secret`, else the registration
    file its `client_id_hash` names in `registrations` (the hash is read, never computed)."""
    client_id, client_secret = fields.text("client_id"), fields.text("client_secret")
    client_id_hash = fields.text("client_id_hash")
    if (client_id and client_secret) or not client_id_hash or registrations is None:
        return Client(client_id, client_secret)
    try:
        return read_registration(registrations, client_id_hash)
    except BadField as exc:
        return Client(client_id, client_secret, problem=f"{exc}; log in again")


def read_registration(folder: Path, client_id_hash: str) -> Client:
    """The client registration `<client_id_hash>.json` in `folder` (`clientId`, `clientSecret`,
    `expiresAt`), as the Kiro IDE keeps it. Raises BadField saying what is wrong."""
    if not _HASH_NAME.fullmatch(client_id_hash):
        raise BadField(f"clientIdHash {client_id_hash[:40]!r} is not a file name")
    path = folder / f"{client_id_hash}.json"
    try:
        doc = read_json(path, "client registration")
    except PlaceError as exc:
        raise BadField(str(exc)) from exc
    if not isinstance(doc.data, dict):
        raise BadField(f"client registration {path} holds a JSON {json_type(doc.data)}, not an object")
    fields = Fields(doc.data, "camel")
    try:
        return Client(fields.text("client_id", required=True), fields.text("client_secret", required=True),
                      fields.time("expires_at"))
    except BadField as exc:
        raise BadField(f"client registration {path}: {exc}") from exc


def build_login(
    fields: Fields,
    auth_method: AuthMethod,
    where: str,
    now: datetime,
    *,
    key: str = "",
    region: str | None = None,
    start_url: str | None = None,
    provider: str | None = None,
    client: Client | None = None,
    token_endpoint: str | None = None,
    issuer_url: str | None = None,
    email: str | None = None,
) -> PlaceLogin:
    """The normalised login; what every format reads the same way (tokens, profile, scopes)
    is read here. `region` is the OIDC region for Builder ID / IdC; a social login's region
    comes from its profile ARN. Raises BadField."""
    client = client or Client()
    access, refresh, expires = fields.token()
    profile_arn = fields.text("profile_arn")
    if auth_method is AuthMethod.SOCIAL:
        region = profile_region(profile_arn) or region
    login = PlaceLogin(
        key=key,
        auth_method=auth_method,
        access_token=access,
        expires_at=expires,
        refresh_token=refresh,
        region=region or DEFAULT_REGION,
        start_url=start_url if auth_method in OIDC_METHODS else None,
        scopes=fields.scopes(),
        provider=provider,
        profile_arn=profile_arn,
        client_id=client.client_id if auth_method is not AuthMethod.SOCIAL else None,
        client_secret=client.client_secret if auth_method in OIDC_METHODS else None,
        client_secret_expires_at=client.expires_at if auth_method in OIDC_METHODS else None,
        token_endpoint=token_endpoint,
        issuer_url=issuer_url,
        email=email,
        raw=dict(fields.data),
    )
    login.needs_login = needs_login(login, where, now)
    if client.problem and login.refresh_token and auth_method in OIDC_METHODS:
        login.needs_login = client.problem  # says more than "no client registration"
    return login


def needs_login(login: PlaceLogin, where: str, now: datetime) -> str | None:
    """Why the login cannot be refreshed as it stands (only a new login fixes it), if so."""
    if not login.refresh_token:
        return f"{where} holds no refresh token; log in again"
    if login.auth_method in OIDC_METHODS:
        if not (login.client_id and login.client_secret):
            return f"{where} has no OIDC client registration (client id and secret); log in again"
        expiry = login.client_secret_expires_at
        if expiry is not None and expiry - EXPIRY_SKEW <= now:
            return f"the OIDC client registration for {where} has expired; log in again"
    if login.auth_method is AuthMethod.EXTERNAL_IDP and not (login.client_id and login.token_endpoint):
        return f"{where} lacks the external identity provider's client id or token endpoint; log in again"
    return None


# -- what each tool writes -------------------------------------------------------------------

def js_iso(when: datetime) -> str:
    """JavaScript's Date.toISOString(): milliseconds (truncated, as a Date holds no more) and Z."""
    when = when.astimezone(UTC)
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:"
            f"{when.second:02d}.{when.microsecond // 1000:03d}Z")


def go_rfc3339(when: datetime) -> str:
    """Go's time.RFC3339 for a UTC time: whole seconds and Z (truncated: never later than true)."""
    when = when.astimezone(UTC)
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:"
            f"{when.second:02d}Z")


def python_iso(when: datetime) -> str:
    """Python's datetime.isoformat() in UTC (`+00:00`, no fraction or six digits): what
    kiro-gateway writes, and all Python 3.10's fromisoformat can read."""
    return when.astimezone(UTC).isoformat()
