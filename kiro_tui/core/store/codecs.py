"""Column codecs: an Account's fields to SQLite columns and back (datetime, enum, JSON, text)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from kiro_tui.core.errors import StoreError
from kiro_tui.core.models import ACCOUNT_FIELDS, Account, AuthMethod, Health, Mode
from kiro_tui.core.timefmt import TimestampError, format_timestamp, parse_timestamp

_DATETIME_FIELDS = {
    "expires_at",
    "client_secret_expires_at",
    "last_refresh_at",
    "next_refresh_at",
    "created_at",
    "updated_at",
}
_ENUM_FIELDS: dict[str, type[AuthMethod] | type[Mode] | type[Health]] = {
    "auth_method": AuthMethod, "mode": Mode, "health": Health}
_JSON_FIELDS = {"scopes", "extra"}
_SECRET_FIELDS = {"access_token", "refresh_token", "client_secret"}


def storable_text(name: str, value: str) -> str:
    """Text SQLite can hold (UTF-8). A lone surrogate (from a JSON `\\udc80` escape) cannot be
    encoded: in a name or an ARN it becomes U+FFFD; in a secret it is refused by name, since a
    changed secret is a wrong secret."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        if name in _SECRET_FIELDS:
            raise StoreError(f"the {name} holds characters that cannot be stored (unpaired surrogates)") from None
        return value.encode("utf-8", "replace").decode("utf-8")


def to_column(name: str, value: object) -> object:
    if value is None:
        return None
    if name in _DATETIME_FIELDS:
        if not isinstance(value, datetime):
            raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
        return format_timestamp(value)
    if name in _JSON_FIELDS:
        return json.dumps(value)  # escapes lone surrogates as \\udXXX: always storable
    if name in _ENUM_FIELDS:
        return str(value)
    if isinstance(value, str):
        return storable_text(name, value)
    return value


def from_column(name: str, value: object) -> object:
    if value is None:
        return {} if name == "extra" else None
    if name in _DATETIME_FIELDS:
        try:  # our own format: the fast path (Python 3.11 reads the Z and ≤ 6 fraction digits)
            return datetime.fromisoformat(str(value))
        except ValueError:
            return parse_timestamp(value)
    if name in _JSON_FIELDS:
        decoded = json.loads(value if isinstance(value, (str, bytes)) else str(value))
        expected = dict if name == "extra" else list
        if not isinstance(decoded, expected):
            raise ValueError(f"{name} is not a JSON {expected.__name__}")
        return decoded
    if name in _ENUM_FIELDS:
        return _ENUM_FIELDS[name](str(value))
    return value


def _ours(value: object) -> datetime | None:
    """A time in our own format (`format_timestamp`), read fast; None for anything else."""
    if type(value) is str and value.endswith("Z"):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def time_or_none(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return _ours(value) or parse_timestamp(value)
    except TimestampError:
        return None


def _decoder(name: str) -> Callable[[object], object] | None:
    """How column `name` is decoded when it is not NULL, as `from_column` does it, with the
    common case first: None for a column read as it is (a row is decoded for every account
    listed, so the per-value work is kept small)."""
    if name in _DATETIME_FIELDS:
        return lambda value: _ours(value) or from_column(name, value)
    if name in _ENUM_FIELDS:
        members = _ENUM_FIELDS[name]._value2member_map_
        return lambda value: members.get(value) or from_column(name, value)
    if name in _JSON_FIELDS:
        return lambda value: from_column(name, value)
    return None


_DECODERS = tuple(zip(ACCOUNT_FIELDS, map(_decoder, ACCOUNT_FIELDS), strict=True))


def row_to_account(row: tuple[object, ...]) -> Account:
    values = {name: value if decode is None or value is None else decode(value)
              for (name, decode), value in zip(_DECODERS, row, strict=True)}
    if values["extra"] is None:
        values["extra"] = {}
    for name in ("id", "access_token"):
        if not isinstance(values[name], str):
            raise ValueError(f"{name} is not text")
    if values["expires_at"] is None:
        raise ValueError("expires_at is missing")
    return Account(**values)  # type: ignore[arg-type]  # each field was decoded by its column's codec


def row_problem(row: tuple[object, ...], exc: Exception) -> str:
    """Which field of a damaged row is at fault, in words."""
    for name, value in zip(ACCOUNT_FIELDS, row, strict=True):
        try:
            from_column(name, value)
        except Exception as field_exc:  # noqa: BLE001
            shown = repr(value)[:40]
            return f"field {name} holds {shown} ({type(field_exc).__name__})"
    return f"{type(exc).__name__}: {str(exc)[:80]}"
