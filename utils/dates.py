"""Dates: one parser, one idea of "age" and "days since", and time zones for showing dates to people."""

import os
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from utils.errors import PipelineError
from utils.jsonio import normalize_extended_json

TIMEZONE_ENV = "PIPELINE_TIMEZONE"
# The community's zone: the one place the default lives (`--timezone` and PIPELINE_TIMEZONE override it).
DEFAULT_TIMEZONE = "America/New_York"
_ONE_DAY = timedelta(days=1)


# Dates outside these years are placeholders ("0001-01-01", "9999-12-31") or typos, never real
# sign-ups, birthdays or events; read as missing, they also keep every later date sum in range.
MIN_YEAR = 1900
MAX_YEAR = 2199


def _parse_unchecked(value: Any, zone: Optional[tzinfo]) -> Optional[datetime]:
    """`parse_iso_date` without the year range check."""
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
        return parsed.replace(tzinfo=zone or timezone.utc)
    return parsed


def _in_range(moment: datetime) -> bool:
    """Whether the moment falls in the years MIN_YEAR-MAX_YEAR, in UTC as well as where it was written."""
    if MIN_YEAR < moment.year < MAX_YEAR:
        return True  # an offset moves a moment by less than a day: its UTC year is in range too
    utc = _as_utc(moment)
    return utc is not None and MIN_YEAR <= moment.year <= MAX_YEAR and MIN_YEAR <= utc.year <= MAX_YEAR


def parse_iso_date(value: Any, zone: Optional[tzinfo] = None) -> Optional[datetime]:
    """Parse an ISO 8601 date or date-time into an aware datetime; never raises.

    Args:
        value: A string such as `"2019-08-05T17:00:00.000Z"`, `"2019-08-05T12:00:00-05:00"`,
            `"2019-08-05"`, or an Extended JSON `{"$date": …}`.
        zone: The community's time zone: a value without a zone ("2019-08-05T19:00:00", or a
            date-only "2019-08-05", which is midnight there) is read in it. None means UTC.

    Returns:
        The aware datetime, or None if the value is missing, not a string, not a valid date, or
        outside the years MIN_YEAR-MAX_YEAR (see `date_out_of_range`).
    """
    parsed = _parse_unchecked(value, zone)
    return parsed if parsed is not None and _in_range(parsed) else None


def date_out_of_range(value: Any) -> bool:
    """Whether a value is a valid date that `parse_iso_date` refuses for its year.

    Args:
        value: As for `parse_iso_date`, e.g. "0001-01-01T00:00:00Z" or "9999-12-31T23:59:59-05:00".

    Returns:
        True for a readable date before MIN_YEAR or after MAX_YEAR (a sentinel such as 0001-01-01);
        False for an in-range date and for anything that is not a date at all.
    """
    if isinstance(value, dict) and len(value) == 1 and "$date" in value:
        inner = value["$date"]
        if isinstance(inner, dict):
            inner = normalize_extended_json(inner)
        # {"$numberLong": "-62135596800000"} is 0001-01-01; anything that will not convert is out of range.
        if isinstance(inner, int) and not isinstance(inner, bool):
            try:
                return not _in_range(datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=inner))
            except OverflowError:
                return True
    parsed = _parse_unchecked(value, None)
    return parsed is not None and not _in_range(parsed)


def is_date_only(value: Any) -> bool:
    """Whether a value is a calendar date without a time, such as "2027-01-03" (an all-day date).

    Args:
        value: A date field as found in a record.

    Returns:
        True for an ISO 8601 date with no time part; False for date-times and anything else.
    """
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def to_iso(moment: datetime) -> str:
    """Format an aware datetime in UTC the way our exports do.

    Args:
        moment: An aware datetime (a naive one is read as UTC).

    Returns:
        E.g. `"2026-11-25T14:03:00.000Z"` (millisecond precision, 'Z' for UTC).
    """
    utc = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    # isoformat, unlike strftime("%Y"), pads years before 1000 to four digits.
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_utc(moment: datetime) -> Optional[datetime]:
    """An aware datetime in UTC; a naive one is read as UTC. None if the UTC value is out of range."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+01:00 is in the year 0 in UTC.
        return None


def calculate_age(birthday: Any, now: datetime) -> Optional[int]:
    """Whole years between a birthday and `now`.

    A Feb 29 birthday is reached on Mar 1 in years without a Feb 29.

    Args:
        birthday: An ISO 8601 string (or datetime); its UTC calendar date is the birthday.
        now: The reference time (a naive datetime is read as UTC).

    Returns:
        The age in whole years, or None if the birthday is missing, invalid or after `now`.
    """
    born = birthday if isinstance(birthday, datetime) else parse_iso_date(birthday)
    born = _as_utc(born) if born is not None else None
    reference = _as_utc(now)
    if born is None or reference is None:
        return None
    born_day = born.date()
    today = reference.date()
    age = today.year - born_day.year - ((today.month, today.day) < (born_day.month, born_day.day))
    return age if age >= 0 else None


def days_since(then: Any, now: datetime) -> Optional[int]:
    """The floor of `(now - then)` in days.

    Args:
        then: An ISO 8601 string or a datetime (a naive one is read as UTC).
        now: The reference time (a naive datetime is read as UTC).

    Returns:
        Whole days (negative if `then` is in the future), or None if `then` is missing or invalid.
    """
    moment = then if isinstance(then, datetime) else parse_iso_date(then)
    moment = _as_utc(moment) if moment is not None else None
    reference = _as_utc(now)
    if moment is None or reference is None:
        return None
    return (reference - moment) // _ONE_DAY


def resolve_timezone(name: Optional[str] = None) -> tzinfo:
    """The time zone in which dates are shown to people.

    Args:
        name: An IANA name such as "Europe/Paris"; None means `PIPELINE_TIMEZONE`, else
            `DEFAULT_TIMEZONE` (America/New_York).

    Returns:
        The zone.

    Raises:
        PipelineError: The name is not a known IANA zone.
    """
    source = ""
    if name is None:
        name = os.environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE
        source = f" (from {TIMEZONE_ENV})"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PipelineError(
            f"unknown time zone {name!r}{source}: use an IANA name such as 'America/New_York' or 'UTC'"
        ) from None


def parse_now(text: str) -> datetime:
    """Read the `--now` reference time.

    Args:
        text: An ISO 8601 date or date-time; without a time zone it is UTC.

    Returns:
        The aware datetime.

    Raises:
        PipelineError: The text is not a valid ISO 8601 date, or not one in MIN_YEAR-MAX_YEAR.
    """
    parsed = parse_iso_date(text)
    if parsed is None and date_out_of_range(text):
        raise PipelineError(f"--now {text!r} is outside the years {MIN_YEAR}-{MAX_YEAR}, e.g. 2026-11-25T12:00:00Z")
    if parsed is None:
        raise PipelineError(f"--now {text!r} is not an ISO 8601 date, e.g. 2026-11-25T12:00:00Z")
    return parsed


def utc_now() -> datetime:
    """The current time in UTC (the default `now`)."""
    return datetime.now(timezone.utc)
