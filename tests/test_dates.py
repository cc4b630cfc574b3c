"""utils.dates: ISO 8601 parsing, age, days since, time zones. Every `now` is fixed."""

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from utils.dates import (
    TIMEZONE_ENV, calculate_age, date_out_of_range, days_since, is_date_only, parse_iso_date, parse_now,
    resolve_timezone, to_iso, utc_now,
)
from utils.errors import PipelineError

UTC = timezone.utc


@pytest.fixture
def local_time_is_utc_plus_14(monkeypatch):
    """Make the machine's local time UTC+14, so reading a naive datetime as local time shows."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")  # POSIX sign: a fixed UTC+14, in every year
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def at(text: str) -> datetime:
    """A fixed aware `now`, written out by hand (not via the code under test)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


# --- parse_iso_date -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected_utc", [
    ("2019-08-05T17:00:00.000Z", datetime(2019, 8, 5, 17, 0, tzinfo=UTC)),
    ("2019-08-05T17:00:00Z", datetime(2019, 8, 5, 17, 0, tzinfo=UTC)),
    ("2019-08-05T17:00:00+00:00", datetime(2019, 8, 5, 17, 0, tzinfo=UTC)),
    # +05:30 early on Jan 1 is still Dec 31 in UTC.
    ("2023-01-01T02:00:00+05:30", datetime(2022, 12, 31, 20, 30, tzinfo=UTC)),
    # -05:00 late on Dec 31 is already Jan 1 (of the next year) in UTC.
    ("2023-12-31T22:00:00-05:00", datetime(2024, 1, 1, 3, 0, tzinfo=UTC)),
    ("2024-02-28T23:30:00-01:00", datetime(2024, 2, 29, 0, 30, tzinfo=UTC)),
])
def test_parse_instant_with_z_and_offsets(text, expected_utc):
    parsed = parse_iso_date(text)
    assert parsed == expected_utc  # aware datetimes compare as instants
    assert parsed.utcoffset() is not None


def test_parse_keeps_the_written_offset():
    parsed = parse_iso_date("2023-01-01T02:00:00+05:30")
    assert parsed.utcoffset() == timedelta(hours=5, minutes=30)
    assert (parsed.year, parsed.month, parsed.day, parsed.hour) == (2023, 1, 1, 2)


@pytest.mark.parametrize("fraction, microsecond", [
    ("1", 100000),
    ("12", 120000),
    ("123", 123000),
    ("1234", 123400),
    ("12345", 123450),
    ("123456", 123456),
    ("1234567", 123456),
    ("12345678", 123456),
    ("123456789", 123456),
])
def test_parse_fractional_seconds_of_1_to_9_digits(fraction, microsecond):
    parsed = parse_iso_date(f"2020-05-06T07:08:09.{fraction}Z")
    assert parsed == datetime(2020, 5, 6, 7, 8, 9, microsecond, tzinfo=UTC)


def test_parse_fractional_seconds_with_an_offset():
    parsed = parse_iso_date("2020-05-06T07:08:09.5-05:00")
    assert parsed == datetime(2020, 5, 6, 12, 8, 9, 500000, tzinfo=UTC)


def test_parse_date_only_is_midnight_utc():
    parsed = parse_iso_date("2019-08-05")
    assert parsed == datetime(2019, 8, 5, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_parse_naive_date_time_is_read_as_utc():
    parsed = parse_iso_date("2019-08-05T17:00:00")
    assert parsed.utcoffset() == timedelta(0)
    assert parsed == datetime(2019, 8, 5, 17, 0, tzinfo=UTC)


def test_parse_ignores_surrounding_whitespace():
    assert parse_iso_date("  2019-08-05T17:00:00Z\n") == datetime(2019, 8, 5, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize("wrapped, expected", [
    ({"$date": "2019-08-05T17:00:00.000Z"}, datetime(2019, 8, 5, 17, 0, tzinfo=UTC)),
    ({"$date": {"$numberLong": "-86400000"}}, datetime(1969, 12, 31, tzinfo=UTC)),
])
def test_parse_extended_json_date(wrapped, expected):
    assert parse_iso_date(wrapped) == expected


@pytest.mark.parametrize("value", [
    None, 123, 12.5, True, [], {}, "", "   ", "2023-13-45", "2023-02-30", "2023-02-29", "not-a-date",
    "2019-08-05T25:00:00Z", "2019-08-05T17:00:00+25:00", b"2019-08-05", ["2019-08-05"],
    {"$date": True}, {"$date": "nope"}, {"$date": "2019-08-05", "x": 1},
])
def test_parse_invalid_input_returns_none_without_raising(value):
    assert parse_iso_date(value) is None


# --- to_iso ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("moment, expected", [
    (datetime(2026, 11, 25, 14, 3, tzinfo=UTC), "2026-11-25T14:03:00.000Z"),
    (datetime(2026, 11, 25, 14, 3, 4, 123999, tzinfo=UTC), "2026-11-25T14:03:04.123Z"),  # truncated
    (datetime(2023, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2022-12-31T20:30:00.000Z"),
    (datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC), "0999-03-04T05:06:07.000Z"),
])
def test_to_iso(moment, expected):
    assert to_iso(moment) == expected


def test_to_iso_reads_a_naive_datetime_as_utc(local_time_is_utc_plus_14):
    assert to_iso(datetime(2026, 11, 25, 14, 3)) == "2026-11-25T14:03:00.000Z"


# --- calculate_age --------------------------------------------------------------------------------

@pytest.mark.parametrize("now, expected", [
    ("2026-06-14T23:59:59+0000", 35),   # birthday tomorrow
    ("2026-06-15T00:00:00+0000", 36),   # birthday today, first second
    ("2026-06-15T23:59:59+0000", 36),   # birthday today, last second
    ("2026-06-16T00:00:00+0000", 36),
    ("2026-01-01T00:00:00+0000", 35),
    ("2026-12-31T00:00:00+0000", 36),
])
def test_age_around_the_birthday(now, expected):
    assert calculate_age("1990-06-15T00:00:00.000Z", at(now)) == expected


@pytest.mark.parametrize("now, expected", [
    ("2024-02-28T12:00:00+0000", 23),   # leap year, the day before
    ("2024-02-29T00:00:00+0000", 24),   # leap year, the day itself
    ("2024-03-01T00:00:00+0000", 24),
    ("2023-02-28T23:59:59+0000", 22),   # non-leap year: not yet on Feb 28
    ("2023-03-01T00:00:00+0000", 23),   # non-leap year: reached on Mar 1
    ("2025-02-28T12:00:00+0000", 24),
    ("2025-03-01T12:00:00+0000", 25),
])
def test_age_with_a_feb_29_birthday(now, expected):
    assert calculate_age("2000-02-29", at(now)) == expected


def test_age_of_someone_born_on_feb_28_in_a_leap_year():
    assert calculate_age("2000-02-28", at("2024-02-28T00:00:00+0000")) == 24
    assert calculate_age("2000-02-28", at("2024-02-27T23:59:59+0000")) == 23


def test_age_born_today_is_zero():
    assert calculate_age("2026-11-25", at("2026-11-25T12:00:00+0000")) == 0


@pytest.mark.parametrize("birthday", ["2026-11-26", "2030-01-01T00:00:00Z"])
def test_age_born_after_now_is_none(birthday):
    assert calculate_age(birthday, at("2026-11-25T12:00:00+0000")) is None


@pytest.mark.parametrize("birthday", [None, "", "not-a-date", "1990-02-30", 19900615, [], {}])
def test_age_of_invalid_birthday_is_none(birthday):
    assert calculate_age(birthday, at("2026-11-25T12:00:00+0000")) is None


def test_age_uses_the_utc_calendar_date_of_birthday_and_now():
    # 1990-06-15T22:00-05:00 is 1990-06-16T03:00Z: the birthday is Jun 16.
    assert calculate_age("1990-06-15T22:00:00-05:00", at("2026-06-15T12:00:00+0000")) == 35
    assert calculate_age("1990-06-15T22:00:00-05:00", at("2026-06-16T00:00:00+0000")) == 36
    # now 2026-06-15T01:00+05:30 is 2026-06-14T19:30Z: the Jun 15 birthday is not reached yet.
    assert calculate_age("1990-06-15", at("2026-06-15T01:00:00+0530")) == 35


def test_age_accepts_datetimes_and_extended_json():
    now = at("2026-06-15T12:00:00+0000")
    assert calculate_age(datetime(1990, 6, 15, tzinfo=UTC), now) == 36
    assert calculate_age(datetime(1990, 6, 16, tzinfo=UTC), now) == 35
    assert calculate_age({"$date": "1990-06-16T00:00:00Z"}, now) == 35


def test_age_reads_naive_datetimes_as_utc(local_time_is_utc_plus_14):
    # Naive values are UTC everywhere; astimezone() would read them as the machine's local time
    # (here UTC+14, which would move the birthday 1990-06-15T05:00 back to Jun 14).
    assert calculate_age(datetime(1990, 6, 15, 5, 0), at("2026-06-14T20:00:00+0000")) == 35
    assert calculate_age(datetime(1990, 6, 15, 5, 0), at("2026-06-15T00:00:00+0000")) == 36
    assert calculate_age(datetime(1990, 6, 15), datetime(2026, 6, 14, 23, 59)) == 35


def test_age_out_of_range_is_none_not_an_error():
    # 0001-01-01T00:00+01:00 would be in the year 0 in UTC.
    assert calculate_age("0001-01-01T00:00:00+01:00", at("2026-06-15T12:00:00+0000")) is None


# --- days_since -----------------------------------------------------------------------------------

NOW = at("2026-11-25T12:00:00+0000")


@pytest.mark.parametrize("then, expected", [
    ("2026-11-24T12:01:00Z", 0),    # 23h59m
    ("2026-11-24T12:00:01Z", 0),    # 23h59m59s
    ("2026-11-24T12:00:00Z", 1),    # exactly 24h
    ("2026-11-23T12:00:01Z", 1),    # 47h59m59s
    ("2026-11-25T12:00:00Z", 0),    # now
    ("2026-11-25T13:00:00Z", -1),   # 1 hour in the future
    ("2026-11-25T12:00:00.001Z", -1),
    ("2026-11-26T13:00:00Z", -2),   # 25 hours in the future
    ("2025-11-25T12:00:00Z", 365),
    ("2024-11-25T12:00:00Z", 730),  # Feb 29 2024 is before Nov 2024: 365 + 365
    ("2024-02-25T12:00:00Z", 1004),  # 5 (to Mar 1) + 306 (to Jan 1) + 365 (2025) + 328 (to Nov 25)
    ("2026-11-25", 0),              # date-only = midnight UTC, 12h ago
    ("2026-11-24", 1),              # 36h ago
])
def test_days_since_floors(then, expected):
    assert days_since(then, NOW) == expected


def test_days_since_with_offsets_crossing_midnight():
    then = "2026-11-24T23:30:00-05:00"  # = 2026-11-25T04:30Z
    assert days_since(then, at("2026-11-26T04:29:59+0000")) == 0
    assert days_since(then, at("2026-11-26T04:30:00+0000")) == 1
    # The same instants with `now` written in +05:30.
    assert days_since(then, at("2026-11-26T09:59:59+0530")) == 0
    assert days_since(then, at("2026-11-26T10:00:00+0530")) == 1


def test_days_since_accepts_datetimes_and_extended_json():
    assert days_since(datetime(2026, 11, 24, 12, 0, tzinfo=UTC), NOW) == 1
    assert days_since({"$date": {"$numberLong": "0"}}, at("1970-01-03T00:00:00+0000")) == 2


def test_days_since_reads_naive_datetimes_as_utc():
    # Before the fix a naive `then` raised TypeError (naive minus aware).
    assert days_since(datetime(2026, 11, 24, 12, 0), NOW) == 1
    assert days_since(datetime(2026, 11, 24, 12, 1), NOW) == 0
    assert days_since("2026-11-24T12:00:00Z", datetime(2026, 11, 25, 12, 0)) == 1


@pytest.mark.parametrize("then", [None, "", "yesterday", "2026-13-01", 1700000000, [], {}])
def test_days_since_invalid_is_none(then):
    assert days_since(then, NOW) is None


# --- resolve_timezone / parse_now / utc_now -------------------------------------------------------

def test_resolve_timezone_by_name():
    zone = resolve_timezone("America/New_York")
    # Nov 25 2026 is after the DST change: EST, UTC-5.
    assert datetime(2026, 11, 25, 12, 0, tzinfo=UTC).astimezone(zone).hour == 7
    assert str(zone) == "America/New_York"


def test_resolve_timezone_default_is_new_york(monkeypatch):
    monkeypatch.delenv(TIMEZONE_ENV, raising=False)
    zone = resolve_timezone()
    assert datetime(2026, 11, 25, 12, 0, tzinfo=UTC).astimezone(zone).hour == 7  # EST, UTC-5
    assert str(zone) == "America/New_York"


def test_resolve_timezone_empty_env_is_the_default(monkeypatch):
    monkeypatch.setenv(TIMEZONE_ENV, "")
    assert str(resolve_timezone()) == "America/New_York"


def test_resolve_timezone_from_env(monkeypatch):
    monkeypatch.setenv(TIMEZONE_ENV, "Asia/Kolkata")
    zone = resolve_timezone()
    assert str(zone) == "Asia/Kolkata"
    assert datetime(2026, 11, 25, 20, 0, tzinfo=UTC).astimezone(zone).strftime("%A %H:%M") == "Thursday 01:30"


def test_resolve_timezone_explicit_name_beats_env(monkeypatch):
    monkeypatch.setenv(TIMEZONE_ENV, "Asia/Kolkata")
    assert str(resolve_timezone("Europe/Paris")) == "Europe/Paris"


@pytest.mark.parametrize("name", ["Mars/Base", "", "utc ", "../etc/passwd", "/etc/localtime", "America", "zone.tab"])
def test_resolve_timezone_unknown_is_a_pipeline_error(name):
    with pytest.raises(PipelineError) as caught:
        resolve_timezone(name)
    assert repr(name) in str(caught.value)
    assert "IANA" in str(caught.value)


def test_resolve_timezone_unknown_in_env_names_the_variable(monkeypatch):
    monkeypatch.setenv(TIMEZONE_ENV, "Mars/Base")
    with pytest.raises(PipelineError) as caught:
        resolve_timezone()
    assert "'Mars/Base'" in str(caught.value)
    assert "PIPELINE_TIMEZONE" in str(caught.value)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-25T12:00:00Z", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
    ("2026-11-25T12:00:00", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
    ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
    ("2026-11-25T17:30:00+05:30", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
])
def test_parse_now(text, expected):
    parsed = parse_now(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize("text", ["", "now", "2026-11-31", "25/11/2026"])
def test_parse_now_invalid_is_a_pipeline_error(text):
    with pytest.raises(PipelineError) as caught:
        parse_now(text)
    assert repr(text) in str(caught.value)
    assert "ISO 8601" in str(caught.value)


def test_utc_now_is_aware_utc_and_current():
    before = datetime.now(UTC)
    moment = utc_now()
    after = datetime.now(UTC)
    assert moment.utcoffset() == timedelta(0)
    assert before <= moment <= after


# --- sentinel and extreme dates: read as missing, never a crash ---------------------------------

SENTINEL_DATES = [
    "0001-01-01T00:00:00Z",
    {"$date": {"$numberLong": "-62135596800000"}},  # the same instant as Extended JSON
    "0001-01-01T00:00:00+01:00",  # the year 0 in UTC: astimezone would overflow
    "9999-12-31T23:59:59-05:00",  # the year 10000 in UTC
    "1899-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
]
ZONES = ["UTC", "America/New_York", "Europe/Paris", "Asia/Tokyo", "Asia/Kolkata", "Pacific/Kiritimati",
         "Etc/GMT+12"]


@pytest.mark.parametrize("value", SENTINEL_DATES)
def test_a_sentinel_date_is_missing_and_reported_as_out_of_range(value):
    assert parse_iso_date(value) is None
    assert date_out_of_range(value) is True
    now = at("2026-11-25T12:00:00+0000")
    assert calculate_age(value, now) is None
    assert days_since(value, now) is None


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00", "9999-12-31", "9999-12-31T23:59:59"])
def test_a_sentinel_without_a_zone_is_missing_in_every_zone(value, zone_name):
    assert parse_iso_date(value, ZoneInfo(zone_name)) is None


@pytest.mark.parametrize("value", ["1900-01-01T00:00:00Z", "2199-12-31T12:00:00Z", "2027-01-03"])
def test_the_edges_of_the_sane_range_are_dates(value):
    assert parse_iso_date(value) is not None
    assert date_out_of_range(value) is False


@pytest.mark.parametrize("value", [None, "", "soon", 7, {"$date": "nope"}])
def test_what_is_not_a_date_is_not_out_of_range(value):
    assert date_out_of_range(value) is False


def test_an_extended_json_date_beyond_any_datetime_is_out_of_range():
    assert date_out_of_range({"$date": {"$numberLong": str(10 ** 18)}}) is True


# --- dates without a time or a zone: read in the community's zone -------------------------------

def test_a_date_only_value_is_midnight_in_the_given_zone():
    start = parse_iso_date("2027-01-03", ZoneInfo("America/New_York"))
    assert start == at("2027-01-03T05:00:00+0000")  # midnight EST, 05:00 UTC: still Jan 3 in New York


def test_a_local_time_without_a_zone_is_read_in_the_given_zone():
    start = parse_iso_date("2027-07-03T19:30:00", ZoneInfo("Europe/Paris"))
    assert start == at("2027-07-03T17:30:00+0000")  # CEST is UTC+2 in July


def test_a_value_with_its_own_zone_ignores_the_given_zone():
    assert parse_iso_date("2027-01-03T19:00:00Z", ZoneInfo("Asia/Tokyo")) == at("2027-01-03T19:00:00+0000")


@pytest.mark.parametrize("value, expected", [
    ("2027-01-03", True), (" 2027-01-03 ", True), ("2027-01-03T00:00:00", False),
    ("2027-01-03T19:00:00Z", False), ("", False), (None, False), ({"$date": "2027-01-03"}, False),
])
def test_is_date_only(value, expected):
    assert is_date_only(value) is expected


def test_a_now_outside_the_sane_years_says_so():
    with pytest.raises(PipelineError, match="outside the years 1900-2199"):
        parse_now("9999-12-31T23:59:59Z")
