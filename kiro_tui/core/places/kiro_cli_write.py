"""The write-back: the one write kiro-tui ever makes into kiro-cli's database (sync mode and
links), and `use`'s replacement of the login it holds.

Compare-and-swap: inside a short BEGIN IMMEDIATE, the row is rewritten only if it holds a
refresh token of the account's lineage (the one we spent, or an older one: a database moved
away and back, a write that failed), recognised by fingerprint. The JSON keeps every field
kiro-cli (or anyone) put there and only
changes `access_token`, `refresh_token`, `expires_at` (and a social login's `profile_arn`); it
is bound as TEXT, as kiro-cli's rusqlite reads only TEXT. The registration and every other key
are left alone. If kiro-cli moved on, or holds the lock past the timeout, we write nothing.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kiro_tui.core.masking import fingerprint
from kiro_tui.core.models import Account, AuthMethod
from kiro_tui.core.places import kiro_cli_format as fmt
from kiro_tui.core.places._files import resolved
from kiro_tui.core.places.base import (
    DEFAULT_WRITE_TIMEOUT,
    Created,
    PlaceChanged,
    PlaceError,
    PlaceSignature,
    TokenCopy,
    WriteOutcome,
    WriteResult,
    place_signature,
)
from kiro_tui.core.timefmt import format_timestamp


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
        raw = _as_text(row[0])
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            value = None
        found = value.get("refresh_token") if isinstance(value, dict) else None
        held = fingerprint(found) if isinstance(found, str) else None
        if held is not None and held == fingerprint(refresh_token):
            # Under the write lock: its signature is told only when the row holds all we would
            # write (a later access token is its tool's own, for the next refresh to take).
            exact = value.get("access_token") == access_token \
                and value.get("expires_at") == format_timestamp(expires_at)
            signature = place_signature(str(db_path), database=True) if exact else None
            conn.execute("ROLLBACK")
            return WriteResult(WriteOutcome.UNCHANGED, written=signature)
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
        text = fmt.dumps(value)
        conn.execute("UPDATE auth_kv SET value = ?1 WHERE key = ?2", (text, key))
        conn.execute("COMMIT")
        return WriteResult(WriteOutcome.WRITTEN, written=_left_as(conn, db_path, key, text))
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


def _left_as(conn: sqlite3.Connection, db_path: Path, key: str, text: str) -> PlaceSignature | None:
    """The database's signature while row `key` holds `text`, taken under the write lock again
    (no other program commits meanwhile), so that the read before the next refresh can skip it;
    None when another program holds the lock now, or wrote the row since."""
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM auth_kv WHERE key = ?1", (key,)).fetchone()
            found = _as_text(row[0]) if row else None
            return place_signature(str(db_path), database=True) if found == text else None
        finally:
            conn.execute("ROLLBACK")
    except (sqlite3.Error, UnicodeDecodeError):
        return None


def _as_text(value: Any) -> Any:
    """A row's value as kiro-cli binds it (TEXT), also when an older writer left it as a BLOB
    (any other type is passed on as found: the JSON parse that follows rejects it)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _registration_key_of(key: str) -> str | None:
    return next((tk.registration_key for tk in fmt.TOKEN_KEYS if tk.key == key), None)


def _registration_row(conn: sqlite3.Connection, key: str | None) -> dict[str, object] | None:
    if key is None:
        return None
    row = conn.execute("SELECT value FROM auth_kv WHERE key = ?1", (key,)).fetchone()
    try:
        value = json.loads(_as_text(row[0])) if row else None
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
    kind = next((tk.kind for tk in fmt.TOKEN_KEYS if tk.key == key), None)
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
        state[fmt.IDC_START_URL_STATE_KEY], state[fmt.IDC_REGION_STATE_KEY] = account.start_url, account.region
    replaced = [k.key for k in fmt.TOKEN_KEYS if not k.legacy] + [
        k.registration_key for k in fmt.TOKEN_KEYS if not k.legacy and k.registration_key]
    uri = "file:" + urllib.parse.quote(str(Path(db_path).absolute())) + "?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise PlaceError(f"cannot open {db_path}: {exc}") from exc
    try:
        conn.execute("BEGIN IMMEDIATE")
        found = set()
        for token_key in fmt.TOKEN_KEYS:
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
