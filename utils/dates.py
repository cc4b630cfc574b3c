"""Dates: one parser, one idea of "age" and "days since", and time zones for showing dates to people."""

import os
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from utils.errors import PipelineError
from utils.jsonio import normalize_extended_json

TIMEZONE_ENV = "PIPELINE_TIMEZONE"
_ONE_DAY = timedelta(days=1)


def parse_iso_date(value: Any) -> Optional[datetime]:
    """Parse an ISO 8601 date or date-time into an aware datetime; never raises.

    Args:
        value: A string such as `"2019-08-05T17:00:00.000Z"`, `"2019-08-05T12:00:00-05:00"`,
            `"2019-08-05"`, or an Extended JSON `{"$date": …}`. A value without a time zone is
            read as UTC.

    Returns:
        The aware datetime, or None if the value is missing, not a string, or not a valid date.
    """
    if isinstance(value, dict) and len(value) == 1 and "$date" in value:
        value = normalize_extended_json(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        # Python 3.11 reads 'Z', offsets and fractional seconds of any length natively.
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed


def to_iso(moment: datetime) -> str:
    """Format an aware datetime in UTC the way our exports do.

    Args:
        moment: An aware datetime.

    Returns:
        E.g. `"2026-11-25T14:03:00.000Z"` (millisecond precision, 'Z' for UTC).
    """
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def calculate_age(birthday: Any, now: datetime) -> Optional[int]:
    """Whole years between a birthday and `now`.

    A Feb 29 birthday is reached on Mar 1 in years without a Feb 29.

    Args:
        birthday: An ISO 8601 string (or datetime); its UTC calendar date is the birthday.
        now: The reference time (aware).

    Returns:
        The age in whole years, or None if the birthday is missing, invalid or after `now`.
    """
    born = birthday if isinstance(birthday, datetime) else parse_iso_date(birthday)
    if born is None:
        return None
    born_day = born.astimezone(timezone.utc).date()
    today = now.astimezone(timezone.utc).date()
    age = today.year - born_day.year - ((today.month, today.day) < (born_day.month, born_day.day))
    return age if age >= 0 else None


def days_since(then: Any, now: datetime) -> Optional[int]:
    """The floor of `(now - then)` in days.

    Args:
        then: An ISO 8601 string or an aware datetime.
        now: The reference time (aware).

    Returns:
        Whole days (negative if `then` is in the future), or None if `then` is missing or invalid.
    """
    moment = then if isinstance(then, datetime) else parse_iso_date(then)
    if moment is None:
        return None
    return (now - moment) // _ONE_DAY


def resolve_timezone(name: Optional[str] = None) -> tzinfo:
    """The time zone in which dates are shown to people.

    Args:
        name: An IANA name such as "America/New_York"; None means `PIPELINE_TIMEZONE`, else UTC.

    Returns:
        The zone.

    Raises:
        PipelineError: The name is not a known IANA zone.
    """
    if name is None:
        name = os.environ.get(TIMEZONE_ENV) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PipelineError(
            f"unknown time zone {name!r}: use an IANA name such as 'America/New_York' or 'UTC'"
        ) from None


def parse_now(text: str) -> datetime:
    """Read the `--now` reference time.

    Args:
        text: An ISO 8601 date or date-time; without a time zone it is UTC.

    Returns:
        The aware datetime.

    Raises:
        PipelineError: The text is not a valid ISO 8601 date.
    """
    parsed = parse_iso_date(text)
    if parsed is None:
        raise PipelineError(f"--now {text!r} is not an ISO 8601 date, e.g. 2026-11-25T12:00:00Z")
    return parsed


def utc_now() -> datetime:
    """The current time in UTC (the default `now`)."""
    return datetime.now(timezone.utc)
