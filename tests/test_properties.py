"""Property-based tests: whatever kiro-cli (or anyone) put in the database, and whatever is in
config.toml, is either taken faithfully or refused with a message. Nothing crashes."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kiro_tui.core.config import Settings, settings_from_mapping
from kiro_tui.core.errors import ConfigError
from kiro_tui.core.models import Account, AuthMethod, Health, Mode
from kiro_tui.core.places._fields import parse_time
from kiro_tui.core.places.kiro_cli import TOKEN_KEYS, parse_snapshot
from kiro_tui.core.store import AccountStore
from kiro_tui.core.timefmt import format_timestamp, parse_timestamp

NOW = datetime(2026, 6, 1, tzinfo=UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
timestamps = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC))
token_fields = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.text(min_size=1) | json_values,
        "refresh_token": st.text() | st.none() | json_values,
        "expires_at": timestamps.map(format_timestamp) | st.text() | json_values,
        "region": st.sampled_from(["us-east-1", "eu-west-1"]) | st.none() | json_values,
        "start_url": st.sampled_from(["https://view.awsapps.com/start", "https://d-1.awsapps.com/start"])
        | st.none() | json_values,
        "provider": st.sampled_from(["github", "Google"]) | json_values,
        "profile_arn": st.just("arn:aws:codewhisperer:us-east-1:1:profile/X") | st.none() | json_values,
        "scopes": st.lists(st.text(max_size=10), max_size=3) | json_values,
        "token_endpoint": st.just("https://login.example.com/token") | json_values,
        "client_id": st.text(min_size=1) | json_values,
        "unknown_field": json_values,
    },
)


@settings(max_examples=300)
@given(key=st.sampled_from([k.key for k in TOKEN_KEYS]), value=token_fields | json_values,
       as_bytes=st.booleans())
@example(key="kirocli:odic:token", value={"access_token": "0", "expires_at": "0"}, as_bytes=False)  # found once
def test_any_token_value_is_imported_faithfully_or_refused_with_a_message(key: str, value: object,
                                                                        as_bytes: bool) -> None:
    raw: object = json.dumps(value)
    if as_bytes:
        raw = raw.encode()  # type: ignore[union-attr]
    snapshot = parse_snapshot(Path("data.sqlite3"), {key: raw}, {}, NOW)
    assert len(snapshot.logins) + len(snapshot.skipped) == 1
    if snapshot.skipped:
        (skipped,) = snapshot.skipped
        assert skipped.key == key and skipped.reason.startswith(key)
        return
    (login,) = snapshot.logins
    assert isinstance(value, dict)
    assert login.access_token == value["access_token"]
    assert login.expires_at == parse_time(value["expires_at"])  # (epoch digits in a string too: liberal)
    assert login.refresh_token == (value.get("refresh_token") or None)
    if login.refresh_token is None:
        assert login.needs_login


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=40),
    secret=st.text(min_size=1, max_size=200),
    expires=timestamps,
    optional_time=st.none() | timestamps,
    scopes=st.none() | st.lists(st.text(max_size=20), max_size=5),
    extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    method=st.sampled_from(list(AuthMethod)),
    mode=st.sampled_from(list(Mode)),
    health=st.sampled_from(list(Health)),
    failures=st.integers(min_value=0, max_value=10**6),
)
def test_store_round_trip(text, secret, expires, optional_time, scopes, extra, method, mode, health,  # type: ignore[no-untyped-def]
                          failures) -> None:
    account = Account(
        id="a1b2c3d4", auth_method=method, access_token=secret, expires_at=expires, refresh_token=secret[::-1],
        label=text, email=text or None, region="eu-west-1", start_url=text or None, scopes=scopes,
        client_secret=secret, client_secret_expires_at=optional_time, last_refresh_at=optional_time,
        profile_name=text, last_error=text or None, mode=mode, health=health, consecutive_failures=failures,
        extra=extra,
    )
    with tempfile.TemporaryDirectory() as tmp, AccountStore.open(Path(tmp) / "a.db") as store:
        store.save(account)
        assert store.get(account.id) == account


config_values = st.integers() | st.floats(allow_nan=False) | st.booleans() | st.text(max_size=20) | st.none()


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["refresh_window", "concurrency", "import_mode", "kiro_cli_db",
                                        "watch_interval", "bell", "colour", "Concurrency"]),
                       config_values, max_size=5))
def test_config_is_taken_or_refused_naming_the_key(data: dict[str, object]) -> None:
    try:
        result = settings_from_mapping(data, "config.toml")
    except ConfigError as exc:
        assert any(f"{key}" in str(exc) for key in data)
        assert str(exc).startswith("config file config.toml: ")
        return
    assert isinstance(result, Settings)
    for key, value in data.items():
        assert getattr(result, key) == value


@given(timestamps)
def test_timestamps_round_trip(when: datetime) -> None:
    text = format_timestamp(when)
    assert text.endswith("Z")
    assert parse_timestamp(text) == when


@given(when=timestamps, offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
       digits=st.integers(min_value=0, max_value=9))
def test_any_rfc3339_spelling_parses_to_the_same_instant(when: datetime, offset_minutes: int, digits: int) -> None:
    local = when.astimezone(timezone(timedelta(minutes=offset_minutes)))
    fraction = f"{local.microsecond:06d}{'0' * 3}"[:digits]
    sign = "+" if offset_minutes >= 0 else "-"
    offset = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + offset
    expected = when.replace(microsecond=int(fraction.ljust(6, "0")[:6]) if digits else 0)
    assert parse_timestamp(text) == expected
