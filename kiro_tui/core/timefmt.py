"""RFC 3339 timestamps as kiro-cli writes and reads them.

kiro-cli (Rust `time` crate) writes `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, trimming trailing zeros
from the fraction. Others write `+00:00` offsets or milliseconds. We accept all of those and
write kiro-cli's own form back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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
        seconds = value / 1000 if value >= 1e12 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise TimestampError(f"epoch time {value!r} is out of range") from exc
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
    except ValueError as exc:
        raise TimestampError(f"{value[:40]!r} is not a valid date and time: {exc}") from exc
    return parsed.astimezone(UTC)


def format_timestamp(when: datetime) -> str:
    """Format like kiro-cli: UTC, `Z`, fraction only when non-zero, trailing zeros trimmed."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def seconds_until(when: datetime, now: datetime) -> int:
    """Whole seconds from `now` to `when`, negative once it has passed (floor)."""
    return int((when - now) // timedelta(seconds=1))
