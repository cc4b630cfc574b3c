"""Step 1 (user selection): unit tests per rule, script tests on hand-made and generated data."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline import step1_user_selection as step1
from utils.contacts import OptOuts, normalize_email_address, normalize_phone, read_opt_outs
from utils.dates import parse_now
from utils.log import format_stats_table
from utils.paths import PROJ_ROOT
from tests.helpers import parse_stats, subprocess_env, table_text, write_json

NOW = "2026-11-25T12:00:00Z"
SCRIPT = PROJ_ROOT / "pipeline" / "step1_user_selection.py"


_PHONES: dict[str, str] = {}


def phone_for(ident) -> str:
    """A valid phone of its own for each id (the same id always gets the same phone)."""
    return _PHONES.setdefault(repr(ident), f"+1646555{len(_PHONES):04d}")


def complete_user(ident="u1", **overrides):
    """A user with every required field filled; overrides replace (or, with None, null) fields."""
    user = {
        "_id": f"oid-{ident}",
        "id": ident,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": f"{ident}@example.com",
        "phone": phone_for(ident),
        "interests": ["wine", "jazz"],
        "homeNeighborhood": "Mission",
        "occupation": "Engineer",
        "gender": "female",
        "relationshipStatus": "single",
        "tableTypePreference": "mixed",
        "workNeighborhood": "SoMa",
    }
    user.update(overrides)
    return user


def without(user, *fields):
    """The user with the given fields removed."""
    return {key: value for key, value in user.items() if key not in fields}


# --- identifiers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("u1", "u1"),
    (" u1 ", "u1"),            # surrounding spaces do not count, as in every step (utils.people.as_id)
    (42, "42"),                # an integer id equals its decimal text
    ({"$oid": "abc"}, "abc"),  # Extended JSON, even when not loaded through load_users
    ("", None),
    ("   ", None),
    (None, None),
    (True, None),
    (4.5, None),
    (["u1"], None),
    ({"a": 1}, None),
])
def test_as_identifier(value, expected):
    assert step1.as_identifier(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("u1", False), ("", False), (None, False), (7, False), ({"$oid": "abc"}, False),
    (["u1"], True), ({"a": 1}, True), (True, True), (1.5, True),
])
def test_is_wrong_type_identifier(value, expected):
    assert step1.is_wrong_type_identifier(value) is expected


def test_drop_users_with_bad_ids_skips_a_list_id():
    users = [complete_user("u1"), complete_user(["u2"]), complete_user("u3")]
    kept, skipped = step1.drop_users_with_bad_ids(users)
    assert [u["id"] for u in kept] == ["u1", "u3"]
    assert skipped == 1


def test_drop_users_with_bad_ids_skips_a_bad_underscore_id():
    users = [complete_user("u1", _id={"nested": "x"}), complete_user("u2")]
    kept, skipped = step1.drop_users_with_bad_ids(users)
    assert [u["id"] for u in kept] == ["u2"]
    assert skipped == 1


def test_drop_users_with_bad_ids_keeps_users_without_ids():
    users = [without(complete_user("u1"), "id", "_id"), complete_user("u2", id=None)]
    kept, skipped = step1.drop_users_with_bad_ids(users)
    assert len(kept) == 2 and skipped == 0


# --- duplicates ----------------------------------------------------------------------------------

def test_duplicates_keep_the_first():
    first = complete_user("u1", occupation="first")
    second = complete_user("u1", occupation="second")
    kept, dropped = step1.drop_duplicate_users([first, complete_user("u2"), second])
    assert [u["occupation"] for u in kept if u["id"] == "u1"] == ["first"]
    assert [u["id"] for u in kept] == ["u1", "u2"]
    assert dropped == 1


def test_duplicates_count_every_extra_copy():
    kept, dropped = step1.drop_duplicate_users([complete_user("u1")] * 3)
    assert len(kept) == 1 and dropped == 2


def test_duplicates_integer_and_text_id_are_the_same_user():
    kept, dropped = step1.drop_duplicate_users([complete_user(7), complete_user("7")])
    assert [u["id"] for u in kept] == [7] and dropped == 1


def test_duplicates_ignore_surrounding_spaces():
    kept, dropped = step1.drop_duplicate_users([complete_user("u1"), complete_user(" u1 ")])
    assert [u["id"] for u in kept] == ["u1"] and dropped == 1


def test_duplicates_only_compare_id_not_underscore_id():
    users = [complete_user("u1", _id="same"), complete_user("u2", _id="same")]
    kept, dropped = step1.drop_duplicate_users(users)
    assert len(kept) == 2 and dropped == 0


def test_users_without_id_are_never_duplicates():
    users = [without(complete_user("a"), "id"), complete_user("b", id=None), complete_user("c", id="")]
    kept, dropped = step1.drop_duplicate_users(users)
    assert len(kept) == 3 and dropped == 0


# --- message history -----------------------------------------------------------------------------

def history(ids=(), emails=(), phones=()):
    """A message history reaching the given (already normalised) ids, emails and phones."""
    return step1.MessageHistory(ids=set(ids), emails=set(emails), phones=set(phones))


def test_collect_message_history_counts_each_unusable_kind():
    messages = [
        {"user_id": "u1"}, {"user_id": 9}, {"user_id": {"$oid": "abc"}}, {"userId": "camel"},
        {"user_id": None}, {}, {"user_id": "  "},
        {"user_id": ["u2"]}, {"user_id": 1.5},
        {"user_email": " Ann@Example.COM "}, {"user_id": None, "to": "(212) 555-0100"},
        {"user_id": "u3", "email": "b@example.com", "phone": "212.555.0101"},
        {"user_email": "n/a", "user_phone": "unknown"},
        "not a message", None,
    ]
    found, unusable = step1.collect_message_history(messages)
    assert found.ids == {"u1", "9", "abc", "camel", "u3"}
    assert found.emails == {"ann@example.com", "b@example.com"}
    assert found.phones == {"+12125550100", "+12125550101"}
    assert unusable == Counter({"no usable user_id, email or phone": 6,  # 5 without any, "n/a"/"unknown"
                                "no usable user_id": 2, "not an object": 2})


@pytest.mark.parametrize("message", [
    {"user_id": "u1"}, {"userId": "u1"}, {"user_id": " u1 "},
    {"user_email": "U1@EXAMPLE.com"}, {"email": "  u1@example.com"},
    {"user_phone": "(212) 555-0100"}, {"phone": "+12125550100"}, {"to": "212.555.0100"},
    {"to": "1-212-555-0100"}, {"user_phone": 2125550100},
])
def test_every_field_of_a_message_excludes_the_member_it_names(message):
    user = complete_user("u1", email="u1@example.com", phone="+1 212 555 0100")
    found, _ = step1.collect_message_history([message])
    kept, matched = step1.filter_users_by_messages([user, complete_user("u2")], found)
    assert [u["id"] for u in kept] == ["u2"] and sum(matched.values()) == 1


def test_history_match_kinds_are_checked_id_then_email_then_phone():
    user = complete_user("u1", email="u1@example.com", phone="2125550100")
    everything = history(ids={"u1"}, emails={"u1@example.com"}, phones={"+12125550100"})
    assert step1.history_match(user, everything) == "id"
    assert step1.history_match(user, history(emails={"u1@example.com"}, phones={"+12125550100"})) == "email"
    assert step1.history_match(user, history(phones={"+12125550100"})) == "phone"
    assert step1.history_match(user, history(ids={"u2"}, emails={"u2@example.com"}, phones={"+12125550199"})) is None


def test_message_filter_counts_by_match_kind():
    users = [complete_user("a"), complete_user("b", email="B@x.org"), complete_user("c", phone="(212) 555-0100"),
             complete_user("d")]
    kept, matched = step1.filter_users_by_messages(users, history(ids={"a"}, emails={"b@x.org"},
                                                                  phones={"+12125550100"}))
    assert [u["id"] for u in kept] == ["d"]
    assert matched == Counter({"id": 1, "email": 1, "phone": 1})


def test_message_filter_matches_id():
    kept, matched = step1.filter_users_by_messages([complete_user("u1"), complete_user("u2")], history({"u1"}))
    assert [u["id"] for u in kept] == ["u2"] and matched == Counter({"id": 1})


def test_message_filter_matches_underscore_id_only():
    users = [complete_user("u1", _id="oid-a"), complete_user("u2", _id="oid-b")]
    kept, matched = step1.filter_users_by_messages(users, history({"oid-b"}))
    assert [u["id"] for u in kept] == ["u1"] and matched == Counter({"id": 1})


def test_message_filter_matches_extended_json_underscore_id():
    kept, matched = step1.filter_users_by_messages([complete_user("u1", _id={"$oid": "abc"})], history({"abc"}))
    assert kept == [] and matched == Counter({"id": 1})


def test_message_filter_matches_integer_id_against_text_user_id():
    kept, matched = step1.filter_users_by_messages([complete_user(10)], history({"10"}))
    assert kept == [] and matched == Counter({"id": 1})


def test_message_filter_ignores_surrounding_spaces():
    kept, matched = step1.filter_users_by_messages([complete_user("u1 "), complete_user("u2")], history({"u1"}))
    assert [u["id"] for u in kept] == ["u2"] and matched == Counter({"id": 1})
    assert step1.collect_message_history([{"user_id": " u1\t"}])[0].ids == {"u1"}


def test_message_filter_is_case_sensitive_for_ids_but_not_emails():
    kept, matched = step1.filter_users_by_messages([complete_user("U1")], history({"u1"}))
    assert len(kept) == 1 and not matched
    kept, matched = step1.filter_users_by_messages([complete_user("U1", email="Ann@Example.com")],
                                                   history(emails={"ann@example.com"}))
    assert kept == [] and matched == Counter({"email": 1})


def test_message_filter_keeps_users_without_ids_unless_a_contact_matches():
    user = without(complete_user("u1"), "id", "_id")
    kept, matched = step1.filter_users_by_messages([user], history({"u1", "oid-u1"}))
    assert kept == [user] and not matched
    kept, matched = step1.filter_users_by_messages([user], history(phones={step1.normalize_phone(user["phone"])}))
    assert kept == [] and matched == Counter({"phone": 1})


def test_message_filter_with_no_messages_keeps_everyone():
    users = [complete_user("u1"), complete_user("u2")]
    assert step1.filter_users_by_messages(users, history()) == (users, Counter())


def test_a_member_without_a_usable_phone_or_email_is_not_matched_by_blank_history_fields():
    # Placeholders on both sides ("n/a", "") must never make two people "the same".
    found, _ = step1.collect_message_history([{"user_email": "n/a", "user_phone": ""}])
    user = complete_user("u1", email="n/a", phone="")
    assert step1.filter_users_by_messages([user], found) == ([user], Counter())


# --- opt-outs ------------------------------------------------------------------------------------

def test_opt_out_filter_by_phone_string_and_email_object():
    opt_outs = read_opt_outs(["212.555.0100", {"email": " ANN@example.com"}])
    users = [complete_user("a", phone="+1 (212) 555-0100"), complete_user("b", email="ann@EXAMPLE.com"),
             complete_user("c")]
    kept, matched = step1.filter_users_by_opt_outs(users, opt_outs)
    assert [u["id"] for u in kept] == ["c"]
    assert matched == Counter({"phone": 1, "email": 1})


def test_opt_out_filter_with_no_opt_outs_keeps_everyone():
    users = [complete_user("a"), complete_user("b")]
    assert step1.filter_users_by_opt_outs(users, OptOuts()) == (users, Counter())


# --- phone rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("phone, textable", [
    ("+12125550100", True), ("(212) 555-0100", True), ("+44 20 7946 0000", True),
    ("555-0100", False), ("+15550100", False), ("call me", False), ("212-555-0100 ext 4", False),
])
def test_phone_number_filter_drops_numbers_a_text_cannot_reach(phone, textable):
    kept, dropped = step1.filter_users_by_phone_number([complete_user("a", phone=phone)])
    assert (len(kept), dropped) == ((1, 0) if textable else (0, 1))


def test_shared_phone_keeps_the_earliest_created_member():
    users = [
        complete_user("late", phone="212-555-0100", createdAt="2024-05-01T00:00:00Z"),
        complete_user("other"),
        complete_user("early", phone="+12125550100", createdAt="2023-01-01T00:00:00Z"),
        complete_user("middle", phone="(212) 555 0100", createdAt="2023-06-01T00:00:00-05:00"),
    ]
    kept, pairs = step1.keep_one_user_per_phone(users)
    assert [u["id"] for u in kept] == ["other", "early"]  # input order kept
    assert [(dropped["id"], keeper["id"]) for dropped, keeper in pairs] == [("late", "early"), ("middle", "early")]


def test_shared_phone_without_dates_keeps_the_smallest_id_then_the_first_in_the_file():
    users = [
        complete_user("u2", phone="2125550100"),
        complete_user("u1", phone="2125550100", createdAt="not a date"),
        without(complete_user("x", phone="2125550100"), "id", "_id"),  # no id: sorts as ""
        without(complete_user("y", phone="2125550100"), "id", "_id"),
    ]
    kept, pairs = step1.keep_one_user_per_phone(users)
    assert kept == [users[2]] and len(pairs) == 3


def test_shared_phone_a_dated_member_beats_an_undated_one():
    users = [complete_user("a", phone="2125550100"),
             complete_user("b", phone="2125550100", createdAt="2025-01-01T00:00:00Z")]
    kept, _ = step1.keep_one_user_per_phone(users)
    assert [u["id"] for u in kept] == ["b"]


def test_shared_phone_rule_does_not_depend_on_the_file_order():
    users = [complete_user(f"u{i}", phone="2125550100", createdAt=f"2025-01-0{i}T00:00:00Z") for i in (3, 1, 2)]
    for ordering in (users, users[::-1], users[1:] + users[:1]):
        kept, pairs = step1.keep_one_user_per_phone(ordering)
        assert [u["id"] for u in kept] == ["u1"] and len(pairs) == 2


def test_distinct_phones_are_all_kept():
    users = [complete_user("a"), complete_user("b"), complete_user("c")]
    assert step1.keep_one_user_per_phone(users) == (users, [])


# --- required fields -----------------------------------------------------------------------------

STRING_FIELDS = [field for field in step1.REQUIRED_FIELDS if field != "interests"]


def test_required_fields_are_the_specs_nine():
    assert step1.REQUIRED_FIELDS == (
        "interests", "phone", "email", "homeNeighborhood", "occupation",
        "gender", "relationshipStatus", "tableTypePreference", "workNeighborhood",
    )


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize("value", [None, "", "   ", "\t\n", 5, True, ["x"], {"a": "b"}])
def test_string_field_missing_when_null_blank_or_wrong_type(field, value):
    assert step1.is_field_missing(complete_user(**{field: value}), field) is True


@pytest.mark.parametrize("field", STRING_FIELDS)
def test_string_field_missing_when_absent(field):
    assert step1.is_field_missing(without(complete_user(), field), field) is True


@pytest.mark.parametrize("field", STRING_FIELDS)
def test_string_field_present_with_surrounding_spaces(field):
    assert step1.is_field_missing(complete_user(**{field: "  x  "}), field) is False


@pytest.mark.parametrize("value", [None, [], [""], ["  ", "\t"], [None], [1, 2], "wine", {"a": "wine"}, [["wine"]]])
def test_interests_missing_unless_a_list_with_a_non_blank_string(value):
    assert step1.is_field_missing(complete_user(interests=value), "interests") is True


def test_interests_missing_when_absent():
    assert step1.is_field_missing(without(complete_user(), "interests"), "interests") is True


@pytest.mark.parametrize("value", [["wine"], ["", "wine"], [None, 3, " jazz "]])
def test_interests_present_with_one_non_blank_string(value):
    assert step1.is_field_missing(complete_user(interests=value), "interests") is False


def test_profile_filter_counts_a_user_under_each_missing_field():
    users = [
        complete_user("ok"),
        complete_user("three", phone="", gender=None, interests=[]),
        without(complete_user("one"), "phone"),
    ]
    kept, missing = step1.filter_users_by_profile_fields(users)
    assert [u["id"] for u in kept] == ["ok"]
    assert missing == Counter({"phone": 2, "gender": 1, "interests": 1})


def test_profile_filter_keeps_records_unchanged():
    user = complete_user("u1", extra={"nested": [1, 2]})
    kept, _ = step1.filter_users_by_profile_fields([user])
    assert kept[0] is user


# --- the hand-made data set ----------------------------------------------------------------------
# Designed so every rule fires; the expected numbers below are counted by hand from this design.

def hand_made_users():
    return [
        complete_user("u1", _id="oid-u1"),                         # qualifies
        complete_user("u2"),                                       # messaged by id
        complete_user("u3", _id="oid-3"),                          # messaged by _id only
        without(complete_user("u4"), "phone"),                     # missing phone
        complete_user("u5", email="  ", interests=[]),             # missing email + interests
        complete_user("u6", interests=["", " "], gender=5),        # missing interests + gender
        complete_user("u1", _id="oid-u1-copy"),                    # duplicate of u1
        "not a user",                                              # not an object
        complete_user(["u7"]),                                     # id of the wrong type
        complete_user("u8", _id={"$oid": "oid-8"}),                # messaged by Extended JSON _id
        complete_user("u9", _id={"$oid": "oid-9"}),                # qualifies; _id normalised
        complete_user(10),                                         # integer id, messaged as "10"
        complete_user("u11", workNeighborhood=None),               # messaged: counted under history only
        without(complete_user("x"), "id") | {"_id": "oid-12"},     # no id; qualifies
        complete_user("u12"),                                      # messaged by email, no user_id
        complete_user("u13", phone="(212) 555-0113"),              # messaged by phone, no user_id
        complete_user("u14", phone="+1 212 555 0114"),             # opted out by phone (a string)
        complete_user("u15"),                                      # opted out by email (an object)
        complete_user("u16", phone="212.555.0116", createdAt="2025-03-01T00:00:00Z"),  # loses the shared phone
        complete_user("u17", phone="+12125550116", createdAt="2024-03-01T00:00:00Z"),  # keeps it: older
        complete_user("u18", phone="555-0100"),                    # phone is not a valid number
        complete_user("u19"),                                      # messaged by userId
    ]


def hand_made_messages():
    return [
        {"user_id": "u2", "message": "hi"},
        {"user_id": "oid-3"},
        {"user_id": "oid-8"},
        {"user_id": "10"},
        {"user_id": "u11"},
        {"user_id": None},
        {"message": "no user_id at all"},
        {"user_id": "  "},
        {"user_id": ["u1"]},        # wrong type: must not exclude u1
        "garbage",
        {"user_email": " U12@Example.COM "},
        {"user_id": None, "to": "+12125550113"},
        {"userId": "u19"},
    ]


def hand_made_opt_outs():
    return [
        "212.555.0114",
        {"email": "U15@EXAMPLE.COM"},
        {"phone": "n/a"},                 # unusable: skipped
        42,                               # unusable: skipped
        "someone@nowhere.example",        # matches nobody
    ]


EXPECTED_STATS = [
    ("users loaded", 22),
    ("users repaired: text with a lone surrogate (now U+FFFD)", 0),
    ("users repaired: numbers too large (now null)", 0),
    ("users skipped: not an object", 1),
    ("users skipped: id or _id of the wrong type", 1),
    ("duplicate users dropped", 1),
    ("opt-out entries loaded", 5),
    ("opt-out entries skipped: no usable phone or email", 2),
    ("messages loaded", 13),
    ("messages repaired: text with a lone surrogate (now U+FFFD)", 0),
    ("messages repaired: numbers too large (now null)", 0),
    ("messages skipped: not an object", 1),
    ("messages without a usable user_id (matched on email/phone)", 2),
    ("messages ignored: no usable user_id, email or phone", 4),
    ("users filtered by opt-out", 2),
    ("  opted out by phone", 1),
    ("  opted out by email", 1),
    ("users filtered by message history", 8),
    ("  messaged by id", 6),
    ("  messaged by email", 1),
    ("  messaged by phone", 1),
    ("users filtered by missing fields", 3),
    ("  missing interests", 2),
    ("  missing phone", 1),
    ("  missing email", 1),
    ("  missing homeNeighborhood", 0),
    ("  missing occupation", 0),
    ("  missing gender", 1),
    ("  missing relationshipStatus", 0),
    ("  missing tableTypePreference", 0),
    ("  missing workNeighborhood", 0),
    ("users filtered by phone: not a valid number", 1),
    ("users filtered by phone: shared with another user", 1),
    ("qualified users", 4),
]
EXPECTED_QUALIFIED_UNDERSCORE_IDS = ["oid-u1", "oid-9", "oid-12", "oid-u17"]


def test_select_users_on_hand_made_data():
    selection = step1.select_users(hand_made_users(), hand_made_messages(), read_opt_outs(hand_made_opt_outs()))
    # Not loaded through load_users, so u9's Extended JSON _id is still wrapped.
    assert [u["_id"] for u in selection.qualified] == ["oid-u1", {"$oid": "oid-9"}, "oid-12", "oid-u17"]
    assert selection.stats == EXPECTED_STATS
    assert [(dropped["id"], kept["id"]) for dropped, kept in selection.shared_phone_drops] == [("u16", "u17")]


def test_select_users_stats_add_up_to_the_users_loaded():
    stats = dict(step1.select_users(hand_made_users(), hand_made_messages(),
                                    read_opt_outs(hand_made_opt_outs())).stats)
    removed = ("users skipped: not an object", "users skipped: id or _id of the wrong type",
               "duplicate users dropped", "users filtered by opt-out", "users filtered by message history",
               "users filtered by missing fields", "users filtered by phone: not a valid number",
               "users filtered by phone: shared with another user")
    assert sum(stats[label] for label in removed) + stats["qualified users"] == stats["users loaded"]
    assert stats["users filtered by opt-out"] == stats["  opted out by phone"] + stats["  opted out by email"]
    assert stats["users filtered by message history"] == sum(
        stats[f"  messaged by {kind}"] for kind in ("id", "email", "phone"))


def test_select_users_without_an_opt_out_file_says_so():
    selection = step1.select_users(hand_made_users(), hand_made_messages())
    stats = dict(selection.stats)
    assert stats["opt-out entries loaded (no opt_outs.json: nobody opted out)"] == 0
    assert "opt-out entries loaded" not in stats
    assert stats["users filtered by opt-out"] == 0
    # u14 and u15 are no longer opted out, so they qualify too.
    assert [u["id"] for u in selection.qualified if u.get("id") in ("u14", "u15")] == ["u14", "u15"]


def test_select_users_does_not_modify_its_input():
    users, messages = hand_made_users(), hand_made_messages()
    step1.select_users(users, messages, read_opt_outs(hand_made_opt_outs()))
    assert users == hand_made_users() and messages == hand_made_messages()


def test_select_users_on_empty_input():
    selection = step1.select_users([], [], read_opt_outs([]))
    assert selection.qualified == []
    assert all(value == 0 for _, value in selection.stats)


# --- the script ----------------------------------------------------------------------------------



@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data = tmp_path / "data"
    write_json(data / "raw" / "users.json", hand_made_users())
    write_json(data / "raw" / "messages.json", hand_made_messages())
    write_json(data / "raw" / "opt_outs.json", hand_made_opt_outs())
    return data


def run_step(data: Path, log_dir: Path) -> int:
    return step1.main(["--data-dir", str(data), "--log-dir", str(log_dir), "--now", NOW])


def read_log(log_dir: Path) -> str:
    logs = list(log_dir.glob("user_selection_*.log"))
    assert len(logs) == 1
    return logs[0].read_text(encoding="utf-8")


def test_script_writes_the_qualified_users_and_stats(data_dir, tmp_path, capsys):
    assert run_step(data_dir, tmp_path / "logs") == 0
    output = json.loads((data_dir / "processed" / "qualified_users.json").read_text(encoding="utf-8"))
    assert [u["_id"] for u in output] == EXPECTED_QUALIFIED_UNDERSCORE_IDS
    assert [u.get("id") for u in output] == ["u1", "u9", None, "u17"]
    # Records pass through unchanged apart from Extended JSON normalisation.
    assert output[1] == complete_user("u9", _id="oid-9")
    table = format_stats_table(step1.STATS_TITLE, EXPECTED_STATS)
    assert table in read_log(tmp_path / "logs")
    assert table in capsys.readouterr().out


def test_script_counts_the_values_it_repaired_on_load(tmp_path, monkeypatch):
    # Half an emoji and a number beyond any float are repaired, not fatal; the statistics say so.
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    users = [complete_user("u1", firstName="Ann\ud83d"), complete_user("u2", lastName="Lee\udc00")]
    users_text = json.dumps(users).replace('"occupation": "Engineer"', '"occupation": 1e400', 1)
    assert "1e400" in users_text
    (data / "raw" / "users.json").write_text(users_text, encoding="utf-8")
    (data / "raw" / "messages.json").write_text('[{"user_id": "u9", "note": "\\ud83d", "n": -1e400}]',
                                                encoding="utf-8")
    assert run_step(data, tmp_path / "logs") == 0
    stats = parse_stats(read_log(tmp_path / "logs"), step1.STATS_TITLE)
    assert stats["users repaired: text with a lone surrogate (now U+FFFD)"] == 2
    assert stats["users repaired: numbers too large (now null)"] == 1
    assert stats["messages repaired: text with a lone surrogate (now U+FFFD)"] == 1
    assert stats["messages repaired: numbers too large (now null)"] == 1
    assert stats["  missing occupation"] == 1  # the 1e400 occupation is read as missing
    output = json.loads((data / "processed" / "qualified_users.json").read_text(encoding="utf-8"))
    assert [user["lastName"] for user in output] == ["Lee\ufffd"]


def test_script_reads_extended_json_ids_and_dates(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data = tmp_path / "data"
    user = complete_user("u1", _id={"$oid": "abc"}, createdAt={"$date": {"$numberLong": "0"}})
    write_json(data / "raw" / "users.json", [user, complete_user("u2", _id={"$oid": "def"})])
    write_json(data / "raw" / "messages.json", [{"user_id": {"$oid": "def"}}])
    assert run_step(data, tmp_path / "logs") == 0
    output = json.loads((data / "processed" / "qualified_users.json").read_text(encoding="utf-8"))
    assert output == [complete_user("u1", _id="abc", createdAt="1970-01-01T00:00:00.000Z")]


def test_script_runs_as_a_subprocess_from_another_folder(data_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", "data", "--log-dir", "logs", "--now", NOW],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "qualified users" in result.stdout
    output = json.loads((data_dir / "processed" / "qualified_users.json").read_text(encoding="utf-8"))
    assert [u["_id"] for u in output] == EXPECTED_QUALIFIED_UNDERSCORE_IDS
    assert len(list((tmp_path / "logs").glob("user_selection_*.log"))) == 1


def test_script_rerun_gives_the_same_output(data_dir, tmp_path):
    output = data_dir / "processed" / "qualified_users.json"
    assert run_step(data_dir, tmp_path / "logs1") == 0
    first = output.read_bytes()
    assert run_step(data_dir, tmp_path / "logs2") == 0
    assert output.read_bytes() == first


# The malformed and missing users/messages cases are in tests/test_malformed_inputs.py, shared with step 2.
OLD_OUTPUT = '[{"id": "from the previous run"}]\n'


@pytest.mark.parametrize("file_name, text, expected", [
    ("opt_outs.json", '["2125550100",', "invalid JSON in {path}, line 1 column 15"),
    ("opt_outs.json", "", "invalid JSON in {path}, line 1 column 1"),
])
def test_malformed_opt_out_file_exits_1_and_keeps_the_old_output(data_dir, tmp_path, capsys, file_name, text, expected):
    bad = data_dir / "raw" / file_name
    if isinstance(text, bytes):
        bad.write_bytes(text)
    else:
        bad.write_text(text, encoding="utf-8")
    output = data_dir / "processed" / "qualified_users.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(OLD_OUTPUT, encoding="utf-8")

    assert run_step(data_dir, tmp_path / "logs") == 1

    err = capsys.readouterr().err
    assert err.startswith("Error: ")
    assert expected.format(path=bad) in err
    assert "Traceback" not in err
    assert output.read_text(encoding="utf-8") == OLD_OUTPUT


def test_malformed_opt_out_file_error_says_what_the_file_must_hold(data_dir, tmp_path, capsys):
    (data_dir / "raw" / "opt_outs.json").write_text('"2125550100"', encoding="utf-8")
    assert run_step(data_dir, tmp_path / "logs") == 1
    err = capsys.readouterr().err
    assert err == (f"Error: {data_dir / 'raw' / 'opt_outs.json'} must hold a JSON list of opt-outs objects, but its "
                   "top level is str. Fix the opt-out file: a JSON array of phone or email strings or "
                   '{"phone": …, "email": …} objects (docs/1-user-selection.md)\n')


def test_script_without_an_opt_out_file_says_nobody_opted_out(data_dir, tmp_path, capsys):
    (data_dir / "raw" / "opt_outs.json").unlink()
    assert run_step(data_dir, tmp_path / "logs") == 0
    out = capsys.readouterr().out
    assert "no opt_outs.json found: nobody is excluded as opted out" in out
    stats = parse_stats(read_log(tmp_path / "logs"), step1.STATS_TITLE)
    assert stats["opt-out entries loaded (no opt_outs.json: nobody opted out)"] == 0
    assert stats["users filtered by opt-out"] == 0
    output = json.loads((data_dir / "processed" / "qualified_users.json").read_text(encoding="utf-8"))
    assert [u.get("id") for u in output] == ["u1", "u9", None, "u14", "u15", "u17"]


def test_script_logs_skipped_opt_out_entries_and_shared_phones_without_contacts(data_dir, tmp_path, capsys):
    assert run_step(data_dir, tmp_path / "logs") == 0
    out = capsys.readouterr().out
    assert "opt-out entry 3: {\"phone\": \"n/a\"} has no usable \"phone\" or \"email\"; skipped" in out
    assert "opt-out entry 4: 42 is not a phone number; skipped" in out
    log = read_log(tmp_path / "logs")
    assert "user u16 dropped: shares a phone number with user u17, who is kept" in log
    assert "2125550116" not in log and "212.555.0116" not in log  # ids in the log, never the phone


def test_script_opt_outs_given_as_strings_and_objects(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data = tmp_path / "data"
    users = [complete_user("a", phone="(212) 555-0100"), complete_user("b", email="Bea@Example.com"),
             complete_user("c", phone="646 555 0199"), complete_user("d", email="dee@example.com"),
             complete_user("e")]
    write_json(data / "raw" / "users.json", users)
    write_json(data / "raw" / "messages.json", [])
    write_json(data / "raw" / "opt_outs.json", [
        "+12125550100", " BEA@example.COM ", {"phone": "1-646-555-0199"}, {"email": "dee@example.com", "phone": ""},
    ])
    assert run_step(data, tmp_path / "logs") == 0
    output = json.loads((data / "processed" / "qualified_users.json").read_text(encoding="utf-8"))
    assert [u["id"] for u in output] == ["e"]
    stats = parse_stats(read_log(tmp_path / "logs"), step1.STATS_TITLE)
    assert (stats["users filtered by opt-out"], stats["  opted out by phone"], stats["  opted out by email"]) == (4, 2, 2)
    assert stats["opt-out entries loaded"] == 4 and stats["opt-out entries skipped: no usable phone or email"] == 0


def test_malformed_input_as_a_subprocess_has_no_traceback(data_dir, tmp_path):
    (data_dir / "raw" / "users.json").write_text("[1, 2", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(data_dir), "--log-dir", str(tmp_path / "logs"),
         "--now", NOW],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: invalid JSON in {data_dir / 'raw' / 'users.json'}, line 1 column 6")
    assert "Traceback" not in result.stderr


# --- generated sample data: invariants -----------------------------------------------------------



@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from utils import sample_data

    out = tmp_path_factory.mktemp("sample")
    dataset = sample_data.generate_dataset(n_users=3000, n_events=300, seed=7, now=parse_now(NOW))
    sample_data.write_dataset(dataset, out / "data" / "raw")
    return dataset, out


def test_generated_data_invariants(generated, monkeypatch):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    dataset, out = generated
    raw, processed = out / "data" / "raw", out / "data" / "processed"
    assert step1.main(["--data-dir", str(out / "data"), "--log-dir", str(out / "logs1"), "--now", NOW]) == 0
    stats = parse_stats(read_log(out / "logs1"), step1.STATS_TITLE)
    loaded_users = step1.load_users(raw / "users.json")
    loaded_messages = step1.load_messages(raw / "messages.json")
    qualified = json.loads((processed / "qualified_users.json").read_text(encoding="utf-8"))

    messaged = {str(m["user_id"]) for m in loaded_messages
                if isinstance(m, dict) and isinstance(m.get("user_id"), (str, int))}
    ids = [str(u["id"]) for u in qualified if u.get("id") is not None]
    assert len(ids) == len(set(ids)), "qualified ids are unique"
    for user in qualified:
        for key in ("id", "_id"):
            assert user.get(key) is None or str(user[key]) not in messaged, (key, user.get(key))
        assert any(isinstance(i, str) and i.strip() for i in user["interests"])
        for field in STRING_FIELDS:
            assert isinstance(user[field], str) and user[field].strip(), (user.get("id"), field)

    # Qualified users are input records, unchanged, in input order.
    first_index: dict[str, int] = {}
    for index, user in enumerate(loaded_users):
        first_index.setdefault(json.dumps(user, sort_keys=True), index)
    order = [first_index[json.dumps(user, sort_keys=True)] for user in qualified]
    assert order == sorted(order) and len(set(order)) == len(order)

    # Every loaded user is accounted for exactly once.
    assert stats["users loaded"] == len(loaded_users) == len(dataset["users"])
    assert stats["messages loaded"] == len(loaded_messages)
    removed = ("users skipped: not an object", "users skipped: id or _id of the wrong type",
               "duplicate users dropped", "users filtered by opt-out", "users filtered by message history",
               "users filtered by missing fields", "users filtered by phone: not a valid number",
               "users filtered by phone: shared with another user")
    assert sum(stats[label] for label in removed) + stats["qualified users"] == stats["users loaded"]

    # Nobody the history reached by email or phone qualifies, and no two qualified users share a phone.
    history_emails = {normalize_email_address(m.get(k)) for m in loaded_messages if isinstance(m, dict)
                      for k in ("user_email", "email")}
    history_phones = {normalize_phone(m.get(k)) for m in loaded_messages if isinstance(m, dict)
                      for k in ("user_phone", "phone", "to")}
    phones = [normalize_phone(user["phone"]) for user in qualified]
    assert None not in phones and len(set(phones)) == len(phones)
    assert not set(phones) & history_phones
    assert not {normalize_email_address(user["email"]) for user in qualified} & history_emails
    per_field = [stats[f"  missing {field}"] for field in step1.REQUIRED_FIELDS]
    assert max(per_field) <= stats["users filtered by missing fields"] <= sum(per_field)
    assert stats["qualified users"] == len(qualified)
    # The generated data exercises the rules: some users qualify and some are filtered.
    assert 0 < stats["qualified users"] < stats["users loaded"]
    assert stats["users filtered by message history"] > 0 and stats["users filtered by missing fields"] > 0


def test_docs_sample_output_is_what_the_step_prints(tmp_path, monkeypatch, capsys):
    """The doc's sample run must stay real: regenerate its sample data and compare the table."""
    from utils import sample_data

    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    dataset = sample_data.generate_dataset(n_users=2000, n_events=300, seed=7, now=parse_now(NOW))
    sample_data.write_dataset(dataset, tmp_path / "data" / "raw")
    capsys.readouterr()
    assert step1.main(["--data-dir", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs"),
                        "--now", NOW]) == 0
    table = table_text(capsys.readouterr().out, step1.STATS_TITLE)
    doc = (PROJ_ROOT / "docs" / "1-user-selection.md").read_text(encoding="utf-8")
    assert table in doc, "re-run the command in the doc's 'Sample console output' and paste the new output"
