"""Read kiro-cli's (and Amazon Q CLI's) SQLite database, strictly read-only.

kiro-cli keeps each login as one JSON row in `auth_kv` (see docs/architecture.md and the
field tables there). We read every token kind, the matching OIDC device registration and
the selected profile from `state`. A broken row is reported and skipped; the other rows
still import. The database file itself is never modified by a read.
The write-back lives in kiro_cli_write.py.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kiro_tui.core import paths
from kiro_tui.core.errors import KiroCliError, KiroTuiError
from kiro_tui.core.models import DEFAULT_REGION, Account, AuthMethod, classify_start_url
from kiro_tui.core.places import kiro_cli_format as fmt
from kiro_tui.core.places._fields import EXPIRY_SKEW, BadField, Fields, profile_region
from kiro_tui.core.places._files import json_type, resolved
from kiro_tui.core.places._sqlite import DEFAULT_BUSY_TIMEOUT, SQLITE_HEADER
from kiro_tui.core.places._sqlite import open_read_only as sqlite_read_only
from kiro_tui.core.places.base import (
    Created,
    PlaceError,
    PlaceLogin,
    PlaceSnapshot,
    TokenCopy,
    WriteOutcome,
    WriteResult,
)
from kiro_tui.core.places.kiro_cli_format import TOKEN_KEYS, TokenKey
from kiro_tui.core.places.kiro_cli_write import replace_database_login, write_back_token

IDC_START_URL_STATE_KEY = fmt.IDC_START_URL_STATE_KEY
IDC_REGION_STATE_KEY = fmt.IDC_REGION_STATE_KEY


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
    """The shared read-only opener (`_sqlite.open_read_only`: never writes, leaves no -wal or
    -shm behind), after kiro-cli's own checks, in kiro-cli's words (they name --db)."""
    _check_file(path)
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(sqlite_read_only(path, "kiro-cli database", busy_timeout, explain=_explain))
        except PlaceError as exc:  # the file changed since the check (its header no longer SQLite's)
            raise KiroCliError(str(exc)) from exc
        yield conn


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
        raise _BadValue(f"{key}: value is a JSON {json_type(data)}, expected an object")
    return data


@contextmanager
def _naming(key: str) -> Iterator[None]:
    """A field the shared reader cannot use, named with the row (or state key) it is in."""
    try:
        yield
    except BadField as exc:
        raise _BadValue(f"{key}: {exc}") from exc


def _parse_login(token_key: TokenKey, auth: dict[str, object], now: datetime) -> PlaceLogin:
    key = token_key.key
    data = _json_object(auth[key], key)
    fields = Fields(data, "snake")
    with _naming(key):
        access_token, refresh_token, expires_at = fields.token()
        login_of = functools.partial(PlaceLogin, key=key, access_token=access_token, expires_at=expires_at,
                                     refresh_token=refresh_token, raw=data)
        if token_key.kind == "social":
            provider = fields.text("provider")
            profile_arn = fields.text("profile_arn")
            login = login_of(
                auth_method=AuthMethod.SOCIAL,
                provider=provider.lower() if provider else None,
                profile_arn=profile_arn,
                region=profile_region(profile_arn) or DEFAULT_REGION,
            )
        elif token_key.kind == "external-idp":
            login = login_of(
                auth_method=AuthMethod.EXTERNAL_IDP,
                token_endpoint=fields.text("token_endpoint", required=True),
                issuer_url=fields.text("issuer_url"),
                client_id=fields.text("client_id", required=True),
                provider=fields.text("provider"),
                scopes=fields.scopes(),
            )
        else:
            start_url = fields.text("start_url")
            login = login_of(
                auth_method=classify_start_url(start_url),
                region=fields.text("region") or DEFAULT_REGION,
                start_url=start_url,
                scopes=fields.scopes(),
                oauth_flow=fields.text("oauth_flow"),
                registration_key=token_key.registration_key,
            )
    if token_key.kind not in ("social", "external-idp"):
        _attach_registration(login, auth, now)
    if not refresh_token:
        login.needs_login = f"{key} has no refresh token; log in again"
    return login


def _attach_registration(login: PlaceLogin, auth: dict[str, object], now: datetime) -> None:
    """Use the device registration only where kiro-cli itself would (same region, not expired)."""
    reg_key = login.registration_key
    if reg_key is None or reg_key not in auth:
        login.needs_login = f"no OIDC client registration ({reg_key}) beside {login.key}; log in again"
        return
    try:
        reg = Fields(_json_object(auth[reg_key], reg_key), "snake")
        with _naming(reg_key):
            client_id = reg.text("client_id", required=True)
            client_secret = reg.text("client_secret", required=True)
            secret_expires = reg.time("client_secret_expires_at")
            reg_region = reg.text("region") or DEFAULT_REGION
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
            key = f"state {fmt.PROFILE_STATE_KEY}"
            profile = Fields(_json_object(state[fmt.PROFILE_STATE_KEY], key), "snake")
            with _naming(key):
                snapshot.profile_arn = profile.text("arn")
                snapshot.profile_name = profile.text("profile_name")
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




# ---------------------------------------------------------------- the place

class KiroCliPlace:
    kind = "kiro-cli"
    title = "kiro-cli"
    writable = True
    is_database = True
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
