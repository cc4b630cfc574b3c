"""utils/people.py: matching people by email and id, names, and the words used in summaries."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from utils import people
from utils.errors import PipelineError

NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


@pytest.mark.parametrize("value, expected", [
    ("  Maya.Chen@Example.COM ", "maya.chen@example.com"), ("a@b.c", "a@b.c"), ("   ", None), ("", None),
    (None, None), (42, None), (["a@b.c"], None), ("n/a", "n/a"), ("Ann @x", "ann @x"),
])
def test_normalize_email_text_keeps_any_non_blank_text(value, expected):
    assert people.normalize_email_text(value) == expected


@pytest.mark.parametrize("value, expected", [(" u1 ", "u1"), (7, "7"), ("", None), (True, None), (None, None),
                                             (1.5, None)])
def test_as_id(value, expected):
    assert people.as_id(value) == expected


def test_record_id_prefers_id_then_underscore_id():
    assert people.record_id({"id": "a", "_id": "b"}) == "a"
    assert people.record_id({"id": " ", "_id": "b"}) == "b"
    assert people.record_id({}) is None


@pytest.mark.parametrize("user, expected", [
    ({"firstName": " Maya ", "lastName": "Chen"}, "Maya Chen"), ({"firstName": "Maya"}, "Maya"),
    ({"lastName": "Chen", "firstName": " "}, "Chen"), ({"firstName": 3}, None), ({}, None), (None, None),
])
def test_full_name(user, expected):
    assert people.full_name(user) == expected


def test_first_name_clean_text_and_text_list():
    assert people.first_name({"firstName": " Jo "}) == "Jo"
    assert people.first_name({}) is None
    assert people.clean_text("  SoHo ") == "SoHo"
    assert people.clean_text(" ") is None
    assert people.clean_text(["SoHo"]) is None
    assert people.text_list([" jazz ", "", None, 3, "wine"]) == ["jazz", "wine"]
    assert people.text_list("jazz") == []


def test_index_users_by_id_uses_both_keys_and_keeps_the_first():
    first = {"id": "u1", "_id": "oid1"}
    second = {"id": "oid1", "_id": "oid2"}
    third = {"id": 5}
    index = people.index_users_by_id([first, second, third])
    assert index == {"u1": first, "oid1": first, "oid2": second, "5": third}


def test_index_users_by_email_normalises_and_keeps_the_first():
    first = {"email": " Ann@X.com"}
    second = {"email": "ann@x.com"}
    index = people.index_users_by_email([first, second, {"email": None}, {}])
    assert index == {"ann@x.com": first}


def test_host_name():
    users = people.index_users_by_id([{"id": "h1", "_id": "oid-h1", "firstName": "Dan", "lastName": "Host"},
                                      {"id": "h2"}])
    assert people.host_name("h1", users) == "Dan Host"
    assert people.host_name(" oid-h1 ", users) == "Dan Host"
    assert people.host_name("h2", users) is None  # known, but nameless
    assert people.host_name("nobody", users) is None
    assert people.host_name(None, users) is None


@pytest.mark.parametrize("items, expected", [([], ""), (["a"], "a"), (["a", "b"], "a and b"),
                                             (["a", "b", "c"], "a, b and c")])
def test_join_words(items, expected):
    assert people.join_words(items) == expected


@pytest.mark.parametrize("phrase, expected", [
    ("woman", "a"), ("Engineer", "an"), ("18-year-old man", "an"), ("8-year-old", "an"), ("80-year-old", "an"),
    ("11-year-old", "an"), ("28-year-old woman", "a"), ("", "a"),
])
def test_article(phrase, expected):
    assert people.article(phrase) == expected


def test_plural():
    assert people.plural(1, "event") == "1 event"
    assert people.plural(0, "event") == "0 events"
    assert people.plural(2, "person", "people") == "2 people"


def test_dates_are_shown_in_the_zone():
    moment = datetime(2026, 11, 28, 2, 30, tzinfo=timezone.utc)
    assert people.format_day(moment, UTC) == "November 28, 2026"
    assert people.format_day(moment, NEW_YORK) == "November 27, 2026"
    assert people.format_time(moment, NEW_YORK) == "9:30 PM EST"
    assert people.format_time(datetime(2026, 7, 1, 16, 5, tzinfo=timezone.utc), NEW_YORK) == "12:05 PM EDT"
    assert people.format_time(datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc), UTC) == "12:00 AM UTC"
    assert people.weekday_name(moment, UTC) == "Saturday"
    assert people.weekday_name(moment, NEW_YORK) == "Friday"


@pytest.mark.parametrize("days, expected", [
    (0, "today"), (1, "1 day ago"), (59, "59 days ago"), (60, "2 months ago"), (364, "12 months ago"),
    (365, "1 year ago"), (996, "2 years ago"),
])
def test_days_ago(days, expected):
    assert people.days_ago(days) == expected


def test_loaders_read_json_lists_and_fail_readably(tmp_path):
    path = tmp_path / "users.json"
    path.write_text('[{"id": "u1", "createdAt": {"$date": 0}}, 3]', encoding="utf-8")
    assert people.load_all_users(path) == [{"id": "u1", "createdAt": "1970-01-01T00:00:00.000Z"}, 3]
    with pytest.raises(PipelineError, match="qualified events file not found"):
        people.load_qualified_events(tmp_path / "missing.json")


# --- invisible characters are removed where names and text are read (issue 12) ------------------

def test_clean_text_and_names_lose_bidi_and_zero_width_characters():
    user = {"firstName": "\u202eAnn", "lastName": "Lee\u200b", "interests": ["ja\u2066zz", "\u200b"]}
    assert people.first_name(user) == "Ann"
    assert people.full_name(user) == "Ann Lee"
    assert people.text_list(user["interests"]) == ["jazz"]  # an item of only invisible characters is blank
    assert people.clean_text("\ufeff  \u200d ") is None


def test_plain_ascii_text_loses_its_control_characters_too():
    # ASCII is the fast path; a bell, an escape or a DEL in it is still not text a person can see.
    user = {"firstName": "An\x07n", "lastName": "\x1bLee", "interests": ["ja\x7fzz", "\x00"]}
    assert people.first_name(user) == "Ann"
    assert people.full_name(user) == "Ann Lee"
    assert people.text_list(user["interests"]) == ["jazz"]
    assert people.clean_text("Supper\nclub") == "Supper\nclub"  # a line break is not hidden


def test_clean_text_keeps_emoji_joined_by_a_zwj():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    assert people.clean_text(f" Supper {family} ") == f"Supper {family}"
