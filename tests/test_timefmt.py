from datetime import UTC, datetime

import pytest

from kiro_tui.core.timefmt import (
    TimestampError,
    format_timestamp,
    parse_timestamp,
    seconds_until,
)


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("2026-01-24T02:29:46Z", 0),
        ("2026-01-24T02:29:46.2Z", 200_000),
        ("2026-01-24T02:29:46.233105Z", 233_105),
        ("2026-01-24T02:29:46.123456789Z", 123_456),
        ("2026-01-24T02:29:46.785Z", 785_000),
        ("2026-01-24T02:29:46.233105+00:00", 233_105),
    ],
)
def test_parses_zero_to_nine_fraction_digits(text: str, micro: int) -> None:
    parsed = parse_timestamp(text)
    assert parsed == datetime(2026, 1, 24, 2, 29, 46, micro, tzinfo=UTC)


def test_offsets_are_converted_to_utc() -> None:
    assert parse_timestamp("2026-01-24T04:29:46+02:00") == datetime(2026, 1, 24, 2, 29, 46, tzinfo=UTC)


def test_epoch_seconds_and_milliseconds() -> None:
    assert parse_timestamp(1_767_225_600) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_timestamp(1_767_225_600_000) == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["2026-01-24T02:29:46", "yesterday", "", "2026-13-40T00:00:00Z", None, True, []])
def test_rejects_what_is_not_rfc3339_with_timezone(bad: object) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(bad)


def test_formats_like_kiro_cli() -> None:
    assert format_timestamp(datetime(2026, 1, 24, 2, 29, 46, tzinfo=UTC)) == "2026-01-24T02:29:46Z"
    assert format_timestamp(datetime(2026, 1, 24, 2, 29, 46, 233100, tzinfo=UTC)) == "2026-01-24T02:29:46.2331Z"


def test_round_trip() -> None:
    when = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert parse_timestamp(format_timestamp(when)) == when


def test_seconds_until_is_negative_after_expiry() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert seconds_until(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), now) == 30
    assert seconds_until(datetime(2026, 1, 1, 11, 59, 0, tzinfo=UTC), now) == -60
