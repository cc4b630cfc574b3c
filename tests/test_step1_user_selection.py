"""Step 1 (user selection): unit tests per rule, script tests on hand-made and generated data."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline import step1_user_selection as step1
from utils.dates import parse_now
from utils.log import format_stats_table
from utils.paths import PROJ_ROOT
from tests.helpers import parse_stats, subprocess_env, table_text, write_json

NOW = "2026-11-25T12:00:00Z"
SCRIPT = PROJ_ROOT / "pipeline" / "step1_user_selection.py"


def complete_user(ident="u1", **overrides):
    """A user with every required field filled; overrides replace (or, with None, null) fields."""
    user = {
        "_id": f"oid-{ident}",
        "id": ident,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": f"{ident}@example.com",
        "phone": "+15550100",
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

def test_collect_messaged_ids_counts_each_unusable_kind():
    messages = [
        {"user_id": "u1"}, {"user_id": 9}, {"user_id": {"$oid": "abc"}},
        {"user_id": None}, {}, {"user_id": "  "},
        {"user_id": ["u2"]}, {"user_id": 1.5},
        "not a message", None,
    ]
    ids, unusable = step1.collect_messaged_ids(messages)
    assert ids == {"u1", "9", "abc"}
    assert unusable == Counter({"no user_id": 3, "user_id of the wrong type": 2, "not an object": 2})


def test_message_filter_matches_id():
    kept, dropped = step1.filter_users_by_messages([complete_user("u1"), complete_user("u2")], {"u1"})
    assert [u["id"] for u in kept] == ["u2"] and dropped == 1


def test_message_filter_matches_underscore_id_only():
    users = [complete_user("u1", _id="oid-a"), complete_user("u2", _id="oid-b")]
    kept, dropped = step1.filter_users_by_messages(users, {"oid-b"})
    assert [u["id"] for u in kept] == ["u1"] and dropped == 1


def test_message_filter_matches_extended_json_underscore_id():
    kept, dropped = step1.filter_users_by_messages([complete_user("u1", _id={"$oid": "abc"})], {"abc"})
    assert kept == [] and dropped == 1


def test_message_filter_matches_integer_id_against_text_user_id():
    kept, dropped = step1.filter_users_by_messages([complete_user(10)], {"10"})
    assert kept == [] and dropped == 1


def test_message_filter_ignores_surrounding_spaces():
    kept, dropped = step1.filter_users_by_messages([complete_user("u1 "), complete_user("u2")], {"u1"})
    assert [u["id"] for u in kept] == ["u2"] and dropped == 1
    assert step1.collect_messaged_ids([{"user_id": " u1\t"}])[0] == {"u1"}


def test_message_filter_is_case_sensitive():
    kept, dropped = step1.filter_users_by_messages([complete_user("U1")], {"u1"})
    assert len(kept) == 1 and dropped == 0


def test_message_filter_keeps_users_without_ids():
    user = without(complete_user("u1"), "id", "_id")
    kept, dropped = step1.filter_users_by_messages([user], {"u1", "oid-u1"})
    assert kept == [user] and dropped == 0


def test_message_filter_with_no_messages_keeps_everyone():
    users = [complete_user("u1"), complete_user("u2")]
    assert step1.filter_users_by_messages(users, set()) == (users, 0)


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
    ]


EXPECTED_STATS = [
    ("users loaded", 14),
    ("users skipped: not an object", 1),
    ("users skipped: id or _id of the wrong type", 1),
    ("duplicate users dropped", 1),
    ("messages loaded", 10),
    ("messages skipped: not an object", 1),
    ("messages skipped: user_id of the wrong type", 1),
    ("messages ignored: no user_id", 3),
    ("users filtered by message history", 5),
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
    ("qualified users", 3),
]
EXPECTED_QUALIFIED_UNDERSCORE_IDS = ["oid-u1", "oid-9", "oid-12"]


def test_select_users_on_hand_made_data():
    qualified, stats = step1.select_users(hand_made_users(), hand_made_messages())
    # Not loaded through load_users, so u9's Extended JSON _id is still wrapped.
    assert [u["_id"] for u in qualified] == ["oid-u1", {"$oid": "oid-9"}, "oid-12"]
    assert stats == EXPECTED_STATS


def test_select_users_does_not_modify_its_input():
    users, messages = hand_made_users(), hand_made_messages()
    step1.select_users(users, messages)
    assert users == hand_made_users() and messages == hand_made_messages()


def test_select_users_on_empty_input():
    qualified, stats = step1.select_users([], [])
    assert qualified == []
    assert all(value == 0 for _, value in stats)


# --- the script ----------------------------------------------------------------------------------



@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data = tmp_path / "data"
    write_json(data / "raw" / "users.json", hand_made_users())
    write_json(data / "raw" / "messages.json", hand_made_messages())
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
    assert [u.get("id") for u in output] == ["u1", "u9", None]
    # Records pass through unchanged apart from Extended JSON normalisation.
    assert output[1] == complete_user("u9", _id="oid-9")
    table = format_stats_table(step1.STATS_TITLE, EXPECTED_STATS)
    assert table in read_log(tmp_path / "logs")
    assert table in capsys.readouterr().out


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


# The malformed and missing input cases are in tests/test_malformed_inputs.py, shared with step 2.


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
               "duplicate users dropped", "users filtered by message history", "users filtered by missing fields")
    assert sum(stats[label] for label in removed) + stats["qualified users"] == stats["users loaded"]
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
