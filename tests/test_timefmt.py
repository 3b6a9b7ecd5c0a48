from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiro_tui.core.timefmt import (
    TimestampError,
    format_timestamp,
    parse_timestamp,
    seconds_until,
)
from tests.support.standins import BadFile, py310_fromisoformat, py310_parse


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


def test_formats_six_fraction_digits_and_z() -> None:
    assert format_timestamp(datetime(2026, 1, 24, 2, 29, 46, tzinfo=UTC)) == "2026-01-24T02:29:46.000000Z"
    assert format_timestamp(datetime(2026, 1, 24, 2, 29, 46, 233100, tzinfo=UTC)) == "2026-01-24T02:29:46.233100Z"
    assert format_timestamp(datetime(2026, 1, 24, 2, 29, 46, 892970, tzinfo=UTC)) == "2026-01-24T02:29:46.892970Z"


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_what_is_written_parses_under_python_3_10_rules(when: datetime) -> None:
    """Issue 21: kiro-gateway on Python 3.10 reads kiro-cli's `expires_at` with
    fromisoformat(value.replace('Z', '+00:00')), which takes 0, 3 or 6 fraction digits only;
    one write in ten with a trimmed fraction made it refresh a token with an hour left."""
    assert py310_parse(format_timestamp(when)) == when.timestamp()


def test_the_python_3_10_model_refuses_what_it_refused() -> None:
    """The model is honest: a trimmed fraction (what kiro-cli itself writes) and a bare `Z`
    without the gateway's replacement are refused, 3 and 6 digits and `+00:00` are taken."""
    for refused in ("2026-01-24T02:29:46.89297+00:00", "2026-01-24T02:29:46.5+00:00",
                    "2026-01-24T02:29:46.1234+00:00"):
        with pytest.raises(BadFile):
            py310_parse(refused)
    with pytest.raises(ValueError):
        py310_fromisoformat("2026-01-24T02:29:46.123456Z")
    assert py310_parse("2026-01-24T02:29:46.785Z") == datetime(2026, 1, 24, 2, 29, 46, 785000, tzinfo=UTC).timestamp()
    assert py310_parse("2026-01-24T02:29:46+00:00") == datetime(2026, 1, 24, 2, 29, 46, tzinfo=UTC).timestamp()


def test_round_trip() -> None:
    when = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert parse_timestamp(format_timestamp(when)) == when


def test_seconds_until_is_negative_after_expiry() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert seconds_until(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), now) == 30
    assert seconds_until(datetime(2026, 1, 1, 11, 59, 0, tzinfo=UTC), now) == -60
