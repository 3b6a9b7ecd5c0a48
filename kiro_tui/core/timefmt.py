"""RFC 3339 timestamps as kiro-cli and the tools beside it write and read them.

kiro-cli (Rust `time` crate) writes `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, trimming trailing zeros
from the fraction. Others write `+00:00` offsets or milliseconds. We accept all of those. We
write one fixed form, six fraction digits and `Z`: every RFC 3339 reader takes it, and so does
Python 3.10's `fromisoformat` once `Z` is replaced (what kiro-gateway does), which refuses 1, 2,
4 or 5 digits, so a trimmed fraction would read as unparseable there (issue 21).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})$"
)


class TimestampError(ValueError):
    """A value that is not an RFC 3339 timestamp with a timezone."""


def parse_timestamp(value: object) -> datetime:
    """Parse an RFC 3339 string (0-9 fractional digits, `Z` or an offset) to aware UTC.

    Epoch numbers (seconds, or milliseconds when ≥ 1e12) are accepted too, as some
    third-party writers store them.
    """
    if isinstance(value, bool):
        raise TimestampError(f"expected an RFC 3339 timestamp, got {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = value / 1000 if value >= 1e12 else value
            return EPOCH + timedelta(seconds=seconds)
        except (OverflowError, OSError, ValueError) as exc:
            raise TimestampError(f"epoch time {_short_number(value)} is out of range") from exc
    if not isinstance(value, str):
        raise TimestampError(f"expected an RFC 3339 timestamp, got {type(value).__name__}")
    match = _RFC3339.match(value.strip())
    if not match:
        raise TimestampError(
            f"{value[:40]!r} is not an RFC 3339 timestamp with a timezone "
            "(like 2026-01-24T02:29:46.233105Z)"
        )
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    tz = "+00:00" if match["tz"] in ("Z", "z") else match["tz"]
    try:
        parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}{tz}")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # 9999-12-31T23:59:59-01:00 is past datetime's end in UTC
        raise TimestampError(f"{value[:40]!r} is not a valid date and time: {exc}") from exc


def _short_number(value: int | float) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"with about {value.bit_length() * 3 // 10} digits"
    return repr(value)


def format_timestamp(when: datetime) -> str:
    """UTC, six fraction digits, `Z` (`2026-01-24T02:29:46.233100Z`): kiro-cli reads any
    precision, and Python 3.10 only 0, 3 or 6 digits. The year always has four digits
    (strftime writes year 999 as "999", which nothing reads)."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    return when.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" becomes "Z"


def shift(when: datetime, delta: timedelta | float) -> datetime:
    """`when + delta`, held at the ends of the calendar instead of raising OverflowError: a
    token that "expires" in the year 9999 or 0001 must not stop a comparison or a schedule."""
    if not isinstance(delta, timedelta):
        seconds = delta
        try:
            delta = timedelta(seconds=seconds)
        except OverflowError:
            return LATEST if seconds > 0 else EARLIEST
    try:
        return when + delta
    except OverflowError:
        return LATEST if delta > timedelta(0) else EARLIEST


def seconds_until(when: datetime, now: datetime) -> int:
    """Whole seconds from `now` to `when`, negative once it has passed (floor)."""
    return int((when - now) // timedelta(seconds=1))
