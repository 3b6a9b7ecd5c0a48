"""Read kiro-cli's (and Amazon Q CLI's) SQLite database, strictly read-only.

kiro-cli keeps each login as one JSON row in `auth_kv` (see docs/architecture.md and the
field tables there). We read every token kind, the matching OIDC device registration and
the selected profile from `state`. A broken row is reported and skipped; the other rows
still import. The database file itself is never modified by a read.

The write-back, the one write kiro-tui ever makes into kiro-cli's database (sync mode and
links):
Compare-and-swap: inside a short BEGIN IMMEDIATE, the row is rewritten only if it holds a
refresh token of the account's lineage (the one we spent, or an older one: a database moved
away and back, a write that failed), recognised by fingerprint. The JSON keeps every field
kiro-cli (or anyone) put there and only
changes `access_token`, `refresh_token`, `expires_at` (and a social login's `profile_arn`); it
is bound as TEXT, as kiro-cli's rusqlite reads only TEXT. The registration and every other key
are left alone. If kiro-cli moved on, or holds the lock past the timeout, we write nothing.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kiro_tui.core import paths
from kiro_tui.core.errors import KiroCliError, KiroTuiError
from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import DEFAULT_REGION, Account, AuthMethod, classify_start_url
from kiro_tui.core.places import kiro_cli_format as fmt
from kiro_tui.core.places._sqlite import unless_left_mid_write
from kiro_tui.core.places.base import (
    Created,
    PlaceChanged,
    PlaceError,
    PlaceLogin,
    PlaceSnapshot,
    TokenCopy,
    WriteOutcome,
    WriteResult,
)
from kiro_tui.core.timefmt import TimestampError, format_timestamp, parse_timestamp

SQLITE_HEADER = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT = 5.0
IDC_START_URL_STATE_KEY = fmt.IDC_START_URL_STATE_KEY
IDC_REGION_STATE_KEY = fmt.IDC_REGION_STATE_KEY
# kiro-cli treats a registration as expired one minute early (`is_expired`).
EXPIRY_SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenKey:
    """One `auth_kv` key that can hold a login, in kiro-cli's priority order."""

    key: str
    kind: str  # "external-idp" | "odic" | "social"
    registration_key: str | None = None
    legacy: bool = False


# kiro-cli's bearer order is external-idp → odic → social; Amazon Q CLI's legacy keys follow.
# The `oidc` spellings are never written by first-party code; some third-party tools do.
TOKEN_KEYS: tuple[TokenKey, ...] = (
    TokenKey(fmt.EXTERNAL_IDP_TOKEN_KEY, "external-idp"),
    TokenKey(fmt.OIDC_TOKEN_KEY, "odic", fmt.OIDC_REGISTRATION_KEY),
    TokenKey("kirocli:oidc:token", "odic", "kirocli:oidc:device-registration"),
    TokenKey(fmt.SOCIAL_TOKEN_KEY, "social"),
    TokenKey("codewhisperer:odic:token", "odic", "codewhisperer:odic:device-registration", legacy=True),
    TokenKey("codewhisperer:oidc:token", "odic", "codewhisperer:oidc:device-registration", legacy=True),
)


@dataclass
class SkippedKey:
    key: str
    reason: str
    path: str | None = None
    """The file it was in, when known (an import of several places)."""

    @property
    def where(self) -> str:
        """How a message names it: the key in its file, or the file that holds one login."""
        if self.path and self.key and self.key != self.path:
            return f"{self.key} in {self.path}"
        return self.path or self.key


@dataclass
class KiroCliSnapshot:
    path: Path
    logins: list[PlaceLogin]
    skipped: list[SkippedKey]
    profile_arn: str | None = None
    profile_name: str | None = None
    idc_start_url: str | None = None
    idc_region: str | None = None


class _BadValue(ValueError):
    """A row whose JSON is unusable; its text names the field."""


def find_kiro_cli_db(candidates: list[Path]) -> Path:
    """The first candidate that exists, or an error that lists every path tried."""
    for path in candidates:
        if path.exists():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise KiroCliError(
        f"no kiro-cli database found (tried {tried}); run `kiro-cli login` first, "
        "or point at the file with --db PATH"
    )


def _check_file(path: Path) -> None:
    try:
        if path.is_symlink() and not path.exists():
            try:
                os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise KiroCliError(
                        f"cannot read kiro-cli database {path}: it is a symbolic link that loops; "
                        "fix the link or pass the real file with --db"
                    ) from exc
            raise KiroCliError(
                f"cannot read kiro-cli database {path}: it is a symbolic link to {os.readlink(path)}, "
                "which does not exist; fix the link or pass the real file with --db"
            )
        if path.is_dir():
            raise KiroCliError(f"{path} is a folder, not kiro-cli's data.sqlite3; pass the file with --db")
        if not path.exists():
            raise KiroCliError(
                f"kiro-cli database {path} does not exist; check the path, or run `kiro-cli login`"
            )
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except PermissionError as exc:
        raise KiroCliError(
            f"cannot read kiro-cli database {path}: permission denied; "
            "run kiro-tui as the user who runs kiro-cli"
        ) from exc
    except OSError as exc:
        raise KiroCliError(f"cannot read kiro-cli database {path}: {exc.strerror or exc}") from exc
    if not header:
        raise KiroCliError(f"{path} is empty (0 bytes), not a kiro-cli database; run `kiro-cli login`")
    if header != SQLITE_HEADER:
        raise KiroCliError(f"{path} is not a SQLite database; pass kiro-cli's data.sqlite3 with --db")


@contextmanager
def open_read_only(path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Iterator[sqlite3.Connection]:
    """A `mode=ro` connection: it sees rows still in the -wal file but can never write."""
    _check_file(path)
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise _explain(path, exc, busy_timeout) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        with unless_left_mid_write(conn, path, busy_timeout) as usable:
            yield usable
    except sqlite3.Error as exc:
        raise _explain(path, exc, busy_timeout) from exc
    finally:
        conn.close()


def _explain(path: Path, exc: sqlite3.Error, busy_timeout: float) -> KiroCliError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return KiroCliError(
            f"kiro-cli database {path} stayed locked by another program for {busy_timeout:g} s; "
            "wait for kiro-cli to finish and try again"
        )
    if "not a database" in text or "malformed" in text:
        return KiroCliError(
            f"kiro-cli database {path} is damaged ({text}); "
            "run `kiro-cli login` to recreate it, or pass another file with --db"
        )
    if "unable to open" in text:
        return KiroCliError(
            f"cannot open kiro-cli database {path} ({text}); check that it and its folder are readable"
        )
    return KiroCliError(f"cannot read kiro-cli database {path}: {text}")


def read_kiro_cli(path: Path, now: datetime, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> KiroCliSnapshot:
    """Every login in the database at `path`. Raises `KiroCliError` if the file is unusable.
    The path is resolved (symbolic links, `..`): one file is one source, however it is spelled."""
    path = resolved(path)
    with open_read_only(path, busy_timeout) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "auth_kv" not in tables:
            raise KiroCliError(
                f"{path} is a SQLite file but not kiro-cli's database (no auth_kv table); "
                "pass kiro-cli's data.sqlite3 with --db"
            )
        auth = dict(conn.execute("SELECT key, value FROM auth_kv").fetchall())
        state = dict(conn.execute("SELECT key, value FROM state").fetchall()) if "state" in tables else {}
    return parse_snapshot(path, auth, state, now)


def parse_snapshot(
    path: Path, auth: dict[str, object], state: dict[str, object], now: datetime
) -> KiroCliSnapshot:
    """Turn raw `auth_kv` / `state` rows into logins; pure, so it can be property-tested."""
    snapshot = KiroCliSnapshot(path=path, logins=[], skipped=[])
    _read_state(snapshot, state)
    seen_kinds: dict[str, str] = {}
    for token_key in TOKEN_KEYS:
        if token_key.key not in auth:
            continue
        if token_key.kind in seen_kinds:
            snapshot.skipped.append(
                SkippedKey(token_key.key, f"superseded by {seen_kinds[token_key.kind]} (same kind of login)")
            )
            continue
        try:
            login = _parse_login(token_key, auth, now)
        except _BadValue as exc:
            snapshot.skipped.append(SkippedKey(token_key.key, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - whatever the shape, one bad login never stops the rest
            snapshot.skipped.append(SkippedKey(token_key.key, f"unusable value ({type(exc).__name__})"))
            continue
        seen_kinds[token_key.kind] = token_key.key
        snapshot.logins.append(login)
    _attach_profile(snapshot)
    _attach_idc_state(snapshot)
    return snapshot


def _decode(value: object, key: str) -> object:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _BadValue(f"{key}: value is binary, not UTF-8 JSON text") from exc
    if not isinstance(value, str):
        raise _BadValue(f"{key}: value is {type(value).__name__}, expected JSON text")
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as exc:  # ValueError: also a number of more than 4,300 digits
        raise _BadValue(f"{key}: value is not JSON ({exc.__class__.__name__})") from exc


def _json_object(value: object, key: str) -> dict[str, object]:
    data = _decode(value, key)
    if not isinstance(data, dict):
        raise _BadValue(f"{key}: value is a JSON {_json_type(data)}, expected an object")
    return data


def _json_type(data: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(data), "number")


def _string(data: dict[str, object], name: str, key: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise _BadValue(f"{key}: field {name!r} is missing")
        return None
    if not isinstance(value, str):
        raise _BadValue(f"{key}: field {name!r} is a {_json_type(value)}, expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _BadValue(f"{key}: field {name!r} holds an unpaired surrogate (not text)") from exc
    return value


def _time(data: dict[str, object], name: str, key: str, required: bool = False) -> datetime | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _BadValue(f"{key}: field {name!r} is missing")
        return None
    try:
        return parse_timestamp(value)
    except TimestampError as exc:
        raise _BadValue(f"{key}: field {name!r}: {exc}") from exc


def _scopes(data: dict[str, object], key: str) -> list[str] | None:
    value = data.get("scopes")
    if value is None:
        return None
    if isinstance(value, str):  # external IdPs store a space-delimited string
        return value.split()
    if isinstance(value, list) and all(isinstance(s, str) and s.isprintable() for s in value):
        return list(value)
    raise _BadValue(f"{key}: field 'scopes' must be a list of strings")


def _parse_login(token_key: TokenKey, auth: dict[str, object], now: datetime) -> PlaceLogin:
    key = token_key.key
    data = _json_object(auth[key], key)
    access_token, refresh_token, expires_at = _newest_token(data, key)
    login_of = functools.partial(PlaceLogin, key=key, access_token=access_token, expires_at=expires_at,
                                 refresh_token=refresh_token, raw=data)
    if token_key.kind == "social":
        provider = _string(data, "provider", key)
        profile_arn = _string(data, "profile_arn", key)
        login = login_of(
            auth_method=AuthMethod.SOCIAL,
            provider=provider.lower() if provider else None,
            profile_arn=profile_arn,
            region=profile_region(profile_arn) or DEFAULT_REGION,
        )
    elif token_key.kind == "external-idp":
        login = login_of(
            auth_method=AuthMethod.EXTERNAL_IDP,
            token_endpoint=_string(data, "token_endpoint", key, required=True),
            issuer_url=_string(data, "issuer_url", key),
            client_id=_string(data, "client_id", key, required=True),
            provider=_string(data, "provider", key),
            scopes=_scopes(data, key),
        )
    else:
        start_url = _string(data, "start_url", key)
        login = login_of(
            auth_method=classify_start_url(start_url),
            region=_string(data, "region", key) or DEFAULT_REGION,
            start_url=start_url,
            scopes=_scopes(data, key),
            oauth_flow=_string(data, "oauth_flow", key),
            registration_key=token_key.registration_key,
        )
        _attach_registration(login, auth, now)
    if not refresh_token:
        login.needs_login = f"{key} has no refresh token; log in again"
    return login


def _newest_token(data: dict[str, object], key: str) -> tuple[str, str | None, datetime]:
    """(access, refresh, expiry) in kiro-cli's snake_case, or in the camelCase copy some tools
    (kirollm) add beside it, leaving the snake_case one stale: of two copies, the newer wins."""
    copies = []
    for access, refresh, expiry in (("access_token", "refresh_token", "expires_at"),
                                    ("accessToken", "refreshToken", "expiresAt")):
        if access in data or expiry in data:
            token = _string(data, access, key, required=True)
            when = _time(data, expiry, key, required=True)
            assert token is not None and when is not None
            copies.append((when, token, _string(data, refresh, key)))
    if not copies:
        raise _BadValue(f"{key}: field 'access_token' is missing")
    newest_when, newest_token, newest_refresh = max(copies, key=lambda copy: copy[0])
    return newest_token, newest_refresh, newest_when


def _attach_registration(login: PlaceLogin, auth: dict[str, object], now: datetime) -> None:
    """Use the device registration only where kiro-cli itself would (same region, not expired)."""
    reg_key = login.registration_key
    if reg_key is None or reg_key not in auth:
        login.needs_login = f"no OIDC client registration ({reg_key}) beside {login.key}; log in again"
        return
    try:
        reg = _json_object(auth[reg_key], reg_key)
        client_id = _string(reg, "client_id", reg_key, required=True)
        client_secret = _string(reg, "client_secret", reg_key, required=True)
        secret_expires = _time(reg, "client_secret_expires_at", reg_key)
        reg_region = _string(reg, "region", reg_key) or DEFAULT_REGION
    except _BadValue as exc:
        login.needs_login = f"{exc}; log in again"
        return
    if reg_region != login.region:
        login.needs_login = (
            f"{reg_key} is for region {reg_region} but the token is for {login.region}; "
            "kiro-cli cannot refresh it either: log in again"
        )
        return
    login.client_id, login.client_secret = client_id, client_secret
    login.client_secret_expires_at = secret_expires
    if secret_expires is None or secret_expires - EXPIRY_SKEW <= now:
        login.needs_login = "the OIDC client registration has expired: log in again"


def _read_state(snapshot: KiroCliSnapshot, state: dict[str, object]) -> None:
    if fmt.PROFILE_STATE_KEY in state:
        try:
            profile = _json_object(state[fmt.PROFILE_STATE_KEY], f"state {fmt.PROFILE_STATE_KEY}")
            key = f"state {fmt.PROFILE_STATE_KEY}"
            snapshot.profile_arn = _string(profile, "arn", key)
            snapshot.profile_name = _string(profile, "profile_name", key) or _string(profile, "profileName", key)
        except _BadValue as exc:
            snapshot.skipped.append(SkippedKey(f"state {fmt.PROFILE_STATE_KEY}", str(exc)))
    for state_key, attr in ((IDC_START_URL_STATE_KEY, "idc_start_url"), (IDC_REGION_STATE_KEY, "idc_region")):
        if state_key in state:
            try:
                value = _decode(state[state_key], f"state {state_key}")
            except _BadValue:
                value = state[state_key]  # older clients stored it unquoted
                value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if isinstance(value, str):
                setattr(snapshot, attr, value)


def _attach_profile(snapshot: KiroCliSnapshot) -> None:
    """The `state` profile belongs to kiro-cli's active login: the first non-social one, if any.

    A social token carries its own `profile_arn`; it takes the state profile only when it is
    the sole login or the state profile is the social default one.
    """
    if not snapshot.profile_arn:
        return
    target = next((lg for lg in snapshot.logins if lg.auth_method is not AuthMethod.SOCIAL), None)
    if target is None:
        target = next((lg for lg in snapshot.logins if lg.auth_method is AuthMethod.SOCIAL), None)
    if target is None:
        return
    if target.auth_method is AuthMethod.SOCIAL and target.profile_arn:
        if target.profile_arn == snapshot.profile_arn:
            target.profile_name = snapshot.profile_name
        return
    target.profile_arn = snapshot.profile_arn
    target.profile_name = snapshot.profile_name


def _attach_idc_state(snapshot: KiroCliSnapshot) -> None:
    """An IdC login whose token lost its start URL to another tool's rewrite (older kiro-gateway
    versions replace the whole value, dropping `start_url` and `oauth_flow`) is still the IdC
    login kiro-cli's `auth.idc.*` state keys describe. Only a row kiro-cli did not write itself
    (no `oauth_flow`) in the state's region is taken for it: a stale key beside kiro-cli's own
    Builder ID row changes nothing."""
    if not snapshot.idc_start_url:
        return
    for login in snapshot.logins:
        if (login.registration_key and login.start_url is None and "oauth_flow" not in login.raw
                and login.region == (snapshot.idc_region or login.region)):
            login.start_url = snapshot.idc_start_url
            login.auth_method = classify_start_url(login.start_url)


def profile_region(arn: str | None) -> str | None:
    """The API region is the ARN's 4th field (arn:aws:codewhisperer:REGION:account:profile/ID)."""
    if not arn:
        return None
    parts = arn.split(":")
    return parts[3] if len(parts) > 4 and parts[3] else None


def resolved(path: Path) -> Path:
    """The one spelling of a path: absolute, symbolic links and `..` resolved (as far as they exist)."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # a loop: reported by the file check
        return Path(path).expanduser().absolute()


def file_signature(path: Path) -> tuple[tuple[int, int], ...]:
    """Cheap change detector for the database and its -wal: (mtime_ns, size) of each."""
    result = []
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            st = os.stat(candidate)
            result.append((st.st_mtime_ns, st.st_size))
        except OSError:
            result.append((0, -1))
    return tuple(result)


# ---------------------------------------------------------------- the write-back

DEFAULT_WRITE_TIMEOUT = 2.0


def write_back_token(
    db_path: Path,
    key: str,
    belongs: Callable[[str | None], bool],
    access_token: str,
    refresh_token: str,
    expires_at: datetime,
    profile_arn: str | None = None,
    timeout: float = DEFAULT_WRITE_TIMEOUT,
    whole: TokenCopy | None = None,
) -> WriteResult:
    """Compare-and-swap of kiro-cli's row `key`: written only when it holds a refresh token of
    this account's lineage (`belongs`), in kiro-cli's own JSON, every other field kept. A field
    kiro-cli 2.12 requires and the row lacks (an older writer left it out) is filled from `whole`
    (`complete_for_2_12`)."""
    uri = "file:" + urllib.parse.quote(str(Path(db_path).absolute())) + "?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        return WriteResult(WriteOutcome.FAILED, f"cannot open {db_path}: {exc}")
    try:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT value FROM auth_kv WHERE key = ?1", (key,)).fetchone()
        if row is None:
            conn.execute("ROLLBACK")
            return WriteResult(WriteOutcome.MISSING, f"{key} is no longer in kiro-cli's database")
        raw = row[0].decode("utf-8") if isinstance(row[0], bytes) else row[0]
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            value = None
        found = value.get("refresh_token") if isinstance(value, dict) else None
        held = fingerprint(found) if isinstance(found, str) else None
        if held is not None and held == fingerprint(refresh_token):
            conn.execute("ROLLBACK")
            return WriteResult(WriteOutcome.UNCHANGED)
        if not isinstance(value, dict) or not belongs(held):
            conn.execute("ROLLBACK")
            return WriteResult(WriteOutcome.OTHER,
                                   f"kiro-cli's {key} holds a refresh token kiro-tui may not replace (another "
                                   "login, one refreshed by another tool, or an older one of this login that "
                                   "kiro-tui already replaced there)")
        value["access_token"] = access_token
        value["refresh_token"] = refresh_token
        value["expires_at"] = format_timestamp(expires_at)
        if profile_arn and "profile_arn" in value:
            value["profile_arn"] = profile_arn
        if whole is not None:
            registration_key = _registration_key_of(key)
            registration = _registration_row(conn, registration_key)
            if complete_for_2_12(key, value, registration, whole):
                conn.execute("UPDATE auth_kv SET value = ?1 WHERE key = ?2",
                             (fmt.dumps(registration), registration_key))
        conn.execute("UPDATE auth_kv SET value = ?1 WHERE key = ?2", (fmt.dumps(value), key))
        conn.execute("COMMIT")
        return WriteResult(WriteOutcome.WRITTEN)
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if "locked" in str(exc) or "busy" in str(exc):
            return WriteResult(WriteOutcome.LOCKED, f"kiro-cli's database stayed locked for {timeout:g} s")
        return WriteResult(WriteOutcome.FAILED, f"cannot write {db_path}: {exc}")
    except sqlite3.Error as exc:
        return WriteResult(WriteOutcome.FAILED, f"cannot write {db_path}: {exc}")
    finally:
        conn.close()


def _registration_key_of(key: str) -> str | None:
    return next((tk.registration_key for tk in TOKEN_KEYS if tk.key == key), None)


def _registration_row(conn: sqlite3.Connection, key: str | None) -> dict[str, object] | None:
    if key is None:
        return None
    row = conn.execute("SELECT value FROM auth_kv WHERE key = ?1", (key,)).fetchone()
    try:
        value = json.loads(row[0].decode("utf-8") if isinstance(row[0], bytes) else row[0]) if row else None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def complete_for_2_12(key: str, token: dict[str, object], registration: dict[str, object] | None,
                      whole: TokenCopy) -> bool:
    """Fill, in place, what kiro-cli 2.12 requires and an older writer left out: `oauth_flow`
    in an OIDC token and its registration and `client_secret_expires_at` in the registration
    (and an IdC token's `start_url`, by which kiro-cli tells it from Builder ID); `provider` and
    `profile_arn` in a social token. Only missing (or null) fields, and only
    from what kiro-tui knows of this login; a registration of another client is left alone.
    Returns whether the registration changed."""
    kind = next((tk.kind for tk in TOKEN_KEYS if tk.key == key), None)
    if kind == "social":
        if not token.get("provider") and whole.provider:
            token["provider"] = whole.provider.lower()
        if not token.get("profile_arn") and whole.profile_arn:
            token["profile_arn"] = whole.profile_arn
        return False
    if kind != "odic":
        return False
    ours = registration is not None and registration.get("client_id") == whole.client_id
    flow = (registration.get("oauth_flow") if ours and registration else None) or token.get("oauth_flow") \
        or whole.oauth_flow or "DeviceCode"
    if not token.get("oauth_flow"):
        token["oauth_flow"] = flow
    if not token.get("start_url") and whole.auth_method is AuthMethod.IDC and whole.start_url:
        token["start_url"] = whole.start_url  # else kiro-cli takes an IdC login for Builder ID
    if registration is None or not ours:
        return False
    changed = False
    if not registration.get("oauth_flow"):
        registration["oauth_flow"], changed = flow, True
    if not registration.get("client_secret_expires_at") and whole.client_secret_expires_at:
        registration["client_secret_expires_at"], changed = format_timestamp(whole.client_secret_expires_at), True
    return changed


def replace_database_login(db_path: Path, account: Account, held: frozenset[str],
                           timeout: float = DEFAULT_WRITE_TIMEOUT) -> Created:
    """`kiro-tui use`: make `account` the login this kiro-cli-format database holds. In one
    BEGIN IMMEDIATE, and only while its token rows still hold the refresh tokens `held`: every
    kiro-cli token key and its registration is replaced by the account's (kiro-cli's own JSON,
    as TEXT), and the selected profile with the account's. Amazon Q CLI's legacy keys, which
    kiro-cli reads only after its own, are left alone."""
    from kiro_tui.core.places.gateway import gateway_rows  # gateway builds on this module

    key, auth_rows, state = gateway_rows(account)
    if account.auth_method is AuthMethod.IDC:
        state[IDC_START_URL_STATE_KEY], state[IDC_REGION_STATE_KEY] = account.start_url, account.region
    replaced = [k.key for k in TOKEN_KEYS if not k.legacy] + [
        k.registration_key for k in TOKEN_KEYS if not k.legacy and k.registration_key]
    uri = "file:" + urllib.parse.quote(str(Path(db_path).absolute())) + "?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise PlaceError(f"cannot open {db_path}: {exc}") from exc
    try:
        conn.execute("BEGIN IMMEDIATE")
        found = set()
        for token_key in TOKEN_KEYS:
            row = conn.execute("SELECT value FROM auth_kv WHERE key = ?1", (token_key.key,)).fetchone()
            try:
                value = json.loads(row[0]) if row else None
            except (TypeError, ValueError):
                value = None
            token = value.get("refresh_token") if isinstance(value, dict) else None
            if isinstance(token, str) and token:
                found.add(fingerprint(token))
        if frozenset(found) != held:
            conn.execute("ROLLBACK")
            raise PlaceChanged(db_path)
        conn.executemany("DELETE FROM auth_kv WHERE key = ?1", [(name,) for name in replaced])
        conn.executemany("INSERT INTO auth_kv (key, value) VALUES (?1, ?2)",
                         [(name, fmt.dumps(value)) for name, value in auth_rows.items()])
        if fmt.PROFILE_STATE_KEY not in state:  # the one there is the old login's
            conn.execute("DELETE FROM state WHERE key = ?1", (fmt.PROFILE_STATE_KEY,))
        conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?1, ?2)",
                         [(name, fmt.dumps(value)) for name, value in state.items()])
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if "locked" in str(exc) or "busy" in str(exc):
            raise PlaceError(f"{db_path} stayed locked for {timeout:g} s; nothing was written: "
                             "run the command again") from exc
        raise PlaceError(f"cannot write {db_path}: {exc}") from exc
    finally:
        conn.close()
    return Created(resolved(Path(db_path)), key)


# ---------------------------------------------------------------- the place

class KiroCliPlace:
    kind = "kiro-cli"
    title = "kiro-cli"
    writable = True
    rereads_before_refresh: float | None = None
    finding = ""

    def default_paths(self) -> list[Path]:
        return paths.kiro_cli_db_candidates()

    def discover(self, path: Path) -> list[Path]:
        return [resolved(path)] if path.is_file() else []

    def scan(self, path: Path, now: datetime) -> PlaceSnapshot:
        try:
            snapshot = read_kiro_cli(path, now)
        except KiroTuiError as exc:
            raise PlaceError(str(exc)) from exc
        return PlaceSnapshot(self.kind, snapshot.path, snapshot.logins, [(s.key, s.reason) for s in snapshot.skipped])

    def read_entry(self, path: Path, entry: str, now: datetime, busy_timeout: float = 1.0) -> PlaceLogin | None:
        if not path.exists():
            return None
        try:
            snapshot = read_kiro_cli(path, now, busy_timeout=busy_timeout)
        except KiroTuiError as exc:
            raise PlaceError(str(exc)) from exc
        return next((login for login in snapshot.logins if login.key == entry), None)

    def write_token(self, path: Path, entry: str, copy: TokenCopy, belongs: Callable[[str | None], bool],
                    timeout: float) -> WriteResult:
        if not path.exists():
            return WriteResult(WriteOutcome.MISSING, f"kiro-cli's database {path} is not there")
        return write_back_token(path, entry, belongs, copy.access_token, copy.refresh_token, copy.expires_at,
                                copy.profile_arn, timeout, whole=copy)

    def create(self, path: Path, account: Account) -> Created:
        raise PlaceError(f"kiro-tui does not create kiro-cli's database {path}; log in with kiro-cli, then import it")

    def caveat(self, account: Account) -> str | None:
        return None


    def replace_login(self, path: Path, account: Account, held: frozenset[str]) -> Created:
        if not path.exists():
            raise PlaceError(f"kiro-cli's database {path} is not there; run `kiro-cli login` once, so kiro-cli "
                             "makes it, then run this again")
        return replace_database_login(path, account, held)
