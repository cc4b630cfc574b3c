"""Step 2 (event selection): unit tests per filter, script tests on hand-made and generated data."""

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import utils.dates
from pipeline import step2_event_selection as step2
from utils.log import format_stats_table
from utils.paths import PROJ_ROOT
from tests.helpers import parse_stats, subprocess_env, table_text, write_json

NOW_TEXT = "2026-11-25T12:00:00Z"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
SCRIPT = PROJ_ROOT / "pipeline" / "step2_event_selection.py"
FUTURE = "2026-12-01T19:00:00.000Z"
PAST = "2026-11-01T19:00:00.000Z"


def good_event(ident="e1", **overrides):
    """An event that passes every filter; overrides replace fields."""
    event = {
        "_id": f"oid-{ident}",
        "id": ident,
        "name": f"Dinner {ident}",
        "startDate": FUTURE,
        "endDate": "2026-12-01T22:00:00.000Z",
        "type": "public",
        "eventStatus": "approved",
        "maxParticipants": 10,
        "participants": ["a@example.com", "b@example.com"],
    }
    event.update(overrides)
    return event


def without(event, *fields):
    """The event with the given fields removed."""
    return {key: value for key, value in event.items() if key not in fields}


def ids(events):
    return [event["id"] for event in events]


def test_parse_iso_date_is_the_shared_parser():
    assert step2.parse_iso_date is utils.dates.parse_iso_date


# --- dates ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("start", [
    "2026-12-01T19:00:00Z",                      # Z
    "2026-12-01T19:00:00.000Z",                  # milliseconds, as the exports write it
    "2026-12-01T19:00:00.123456789Z",            # more fractional digits than Python keeps
    "2026-11-25T08:00:00-05:00",                 # offset: 13:00 UTC
    "2026-11-25T12:00:00.001Z",                  # one millisecond after now
    "2026-11-26",                                # date only: midnight UTC
    {"$date": "2026-12-01T19:00:00Z"},           # Extended JSON, text
    {"$date": 1796151600000},                    # Extended JSON, milliseconds (2026-12-01T19:00Z)
])
def test_future_dates_in_each_format_are_kept(start):
    kept, excluded = step2.filter_future_events([good_event(startDate=start)], NOW)
    assert ids(kept) == ["e1"] and excluded == Counter()


@pytest.mark.parametrize("start", [
    "2026-11-25T12:00:00Z",                      # exactly now
    "2026-11-25T12:00:00.000Z",                  # exactly now, with milliseconds
    "2026-11-25T07:00:00-05:00",                 # exactly now, written with an offset
    "2026-11-25T11:59:59.999Z",                  # just before now
    "2026-11-25",                                # today at midnight UTC, before noon
    PAST,
    {"$date": 0},                                # 1970
])
def test_now_and_earlier_are_past(start):
    kept, excluded = step2.filter_future_events([good_event(startDate=start)], NOW)
    assert kept == [] and excluded == Counter({"past": 1})


@pytest.mark.parametrize("start", [None, "", "   ", "soon", "2026-02-30T10:00:00Z", "12/01/2026", 1796151600000,
                                   ["2026-12-01"], {"$date": True}, {"when": FUTURE}])
def test_missing_or_invalid_dates_are_invalid(start):
    kept, excluded = step2.filter_future_events([good_event(startDate=start)], NOW)
    assert kept == [] and excluded == Counter({"invalid date": 1})


def test_absent_start_date_is_invalid():
    kept, excluded = step2.filter_future_events([without(good_event(), "startDate")], NOW)
    assert kept == [] and excluded == Counter({"invalid date": 1})


def test_future_filter_keeps_input_order():
    events = [good_event("a"), good_event("b", startDate=PAST), good_event("c", startDate="2026-11-30T00:00:00Z")]
    kept, excluded = step2.filter_future_events(events, NOW)
    assert ids(kept) == ["a", "c"] and excluded == Counter({"past": 1})


# --- type ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["private", "Public", " public", "", None, ["public"], 1])
def test_anything_but_exactly_public_is_private(kind):
    kept, excluded = step2.filter_public_events([good_event(type=kind)])
    assert kept == [] and excluded == 1


def test_absent_type_is_private():
    assert step2.filter_public_events([without(good_event(), "type")]) == ([], 1)


def test_public_events_are_kept():
    events = [good_event("a"), good_event("b", type="private"), good_event("c")]
    kept, excluded = step2.filter_public_events(events)
    assert ids(kept) == ["a", "c"] and excluded == 1


# --- status --------------------------------------------------------------------------------------

def test_canceled_events_are_dropped():
    kept, excluded = step2.filter_active_events([good_event("a", eventStatus="canceled"), good_event("b")])
    assert ids(kept) == ["b"] and excluded == 1


@pytest.mark.parametrize("status", ["approved", "pending", "Canceled", "cancelled", "", None, ["canceled"]])
def test_only_exactly_canceled_is_dropped(status):
    kept, excluded = step2.filter_active_events([good_event(eventStatus=status)])
    assert ids(kept) == ["e1"] and excluded == 0


def test_absent_status_is_active():
    assert ids(step2.filter_active_events([without(good_event(), "eventStatus")])[0]) == ["e1"]


# --- capacity ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (10, 10), (2.5, 2.5), (0, 0), ({"$numberInt": "8"}, 8), ({"$numberDouble": "1.5"}, 1.5),
    (None, None), (True, None), (False, None), ("10", None), ("ten", None), ([10], None),
    (float("nan"), None), (float("inf"), None), ({"$numberDouble": "NaN"}, None),
])
def test_read_max_participants(value, expected):
    assert step2.read_max_participants(value) == expected


@pytest.mark.parametrize("participants, maximum", [
    ([], 1), (["a"], 2), (None, 1), (["a", "b"], 2.5),
])
def test_events_with_a_free_seat_are_kept(participants, maximum):
    kept, excluded = step2.filter_events_with_capacity([good_event(participants=participants, maxParticipants=maximum)])
    assert ids(kept) == ["e1"] and excluded == Counter()


def test_absent_participants_count_as_empty():
    kept, excluded = step2.filter_events_with_capacity([without(good_event(maxParticipants=1), "participants")])
    assert ids(kept) == ["e1"] and excluded == Counter()


@pytest.mark.parametrize("participants, maximum", [
    (["a", "b"], 2), (["a", "b", "c"], 2), ([], 0), (None, 0), (["a"], -1), ([None, 5], 2),
])
def test_full_events_are_dropped(participants, maximum):
    kept, excluded = step2.filter_events_with_capacity([good_event(participants=participants, maxParticipants=maximum)])
    assert kept == [] and excluded == Counter({"full": 1})


@pytest.mark.parametrize("maximum", [None, "10", True, [5], float("nan")])
def test_unusable_max_participants_is_invalid_capacity(maximum):
    kept, excluded = step2.filter_events_with_capacity([good_event(maxParticipants=maximum)])
    assert kept == [] and excluded == Counter({"invalid capacity": 1})


def test_absent_max_participants_is_invalid_capacity():
    kept, excluded = step2.filter_events_with_capacity([without(good_event(), "maxParticipants")])
    assert kept == [] and excluded == Counter({"invalid capacity": 1})


@pytest.mark.parametrize("participants", ["a@example.com", {"a": 1}, 3])
def test_participants_that_are_not_a_list_are_invalid(participants):
    kept, excluded = step2.filter_events_with_capacity([good_event(participants=participants)])
    assert kept == [] and excluded == Counter({"invalid participants": 1})


def test_invalid_capacity_is_reported_before_invalid_participants():
    kept, excluded = step2.filter_events_with_capacity([good_event(maxParticipants="x", participants="y")])
    assert excluded == Counter({"invalid capacity": 1})


# --- the hand-made data set ----------------------------------------------------------------------
# Designed so every filter fires, and events failing several filters test "counted once, first filter".

def hand_made_events():
    return [
        good_event("e1", participants=["a", "b", "c"]),                       # qualifies
        without(good_event("e2"), "startDate"),                              # invalid date
        good_event("e3", startDate="not a date", type="private"),            # invalid date (before private)
        good_event("e4", startDate=NOW_TEXT),                                # past: exactly now
        good_event("e5", startDate="2026-11-25T07:00:00-05:00"),             # past: now, with an offset
        good_event("e6", startDate="2026-11-25T12:00:00.001Z", participants=None, maxParticipants=5),  # qualifies
        good_event("e7", type="private"),                                    # private
        without(good_event("e8", eventStatus="canceled"), "type"),           # private (before canceled)
        good_event("e9", eventStatus="canceled"),                            # canceled
        without(good_event("e10"), "maxParticipants"),                       # invalid capacity
        good_event("e11", maxParticipants="10"),                             # invalid capacity
        good_event("e12", maxParticipants=3, participants=["a", "b", "c"]),  # full
        good_event("e13", participants="a@example.com"),                     # invalid participants
        good_event("e14", startDate={"$date": "2026-12-24T18:00:00Z"},
                   maxParticipants={"$numberInt": "8"}, participants=[]),    # qualifies (Extended JSON)
        42,                                                                  # not an object
        good_event("e15", eventStatus="canceled", maxParticipants=1, participants=["a"]),  # canceled (before full)
        good_event("e16", startDate=PAST, type="private"),                   # past (before private)
        good_event("e17", maxParticipants=2.5, participants=["a", "b"]),     # qualifies
        good_event("e18", maxParticipants=True),                             # invalid capacity
        good_event("e19", eventStatus="pending", maxParticipants=4, participants=["a", "b", "c"]),  # qualifies
    ]


EXPECTED_QUALIFIED_IDS = ["e1", "e6", "e14", "e17", "e19"]
EXPECTED_STATS = [
    ("events loaded", 20),
    ("events repaired: text with a lone surrogate (now U+FFFD)", 0),
    ("events repaired: numbers too large (now null)", 0),
    ("events skipped: not an object", 1),
    ("filtered: invalid date", 2),
    ("filtered: date out of range", 0),
    ("filtered: past", 3),
    ("filtered: private", 2),
    ("filtered: canceled", 2),
    ("filtered: invalid capacity", 3),
    ("filtered: invalid participants", 1),
    ("filtered: full", 1),
    ("qualified events", 5),
]


def test_select_events_on_hand_made_data():
    qualified, stats = step2.select_events(hand_made_events(), NOW)
    assert ids(qualified) == EXPECTED_QUALIFIED_IDS
    assert stats == EXPECTED_STATS


def test_select_events_does_not_modify_its_input():
    events = hand_made_events()
    step2.select_events(events, NOW)
    assert events == hand_made_events()


def test_select_events_on_empty_input():
    qualified, stats = step2.select_events([], NOW)
    assert qualified == [] and all(value == 0 for _, value in stats)


def test_select_events_depends_on_now():
    later = datetime(2026, 12, 1, 19, 0, tzinfo=timezone.utc)      # e1's start: now it is past
    qualified, _ = step2.select_events([good_event("e1"), good_event("e2", startDate="2026-12-02")], later)
    assert ids(qualified) == ["e2"]


# --- the script ----------------------------------------------------------------------------------



@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data = tmp_path / "data"
    write_json(data / "raw" / "events.json", hand_made_events())
    return data


def run_step(data: Path, log_dir: Path, now: str = NOW_TEXT) -> int:
    return step2.main(["--data-dir", str(data), "--log-dir", str(log_dir), "--now", now])


def read_log(log_dir: Path) -> str:
    logs = list(log_dir.glob("event_selection_*.log"))
    assert len(logs) == 1
    return logs[0].read_text(encoding="utf-8")


def test_script_writes_the_qualified_events_and_stats(data_dir, tmp_path, capsys):
    assert run_step(data_dir, tmp_path / "logs") == 0
    output = json.loads((data_dir / "processed" / "qualified_events.json").read_text(encoding="utf-8"))
    assert ids(output) == EXPECTED_QUALIFIED_IDS
    # Records pass through unchanged apart from Extended JSON normalisation.
    assert output[0] == good_event("e1", participants=["a", "b", "c"])
    assert output[2]["startDate"] == "2026-12-24T18:00:00Z" and output[2]["maxParticipants"] == 8
    table = format_stats_table(step2.STATS_TITLE, EXPECTED_STATS)
    assert table in read_log(tmp_path / "logs")
    assert table in capsys.readouterr().out


def test_script_now_with_an_offset(data_dir, tmp_path):
    # 2026-12-01T14:00:00-05:00 is e1's start (19:00 UTC), so e1 is no longer in the future.
    assert run_step(data_dir, tmp_path / "logs", now="2026-12-01T14:00:00-05:00") == 0
    output = json.loads((data_dir / "processed" / "qualified_events.json").read_text(encoding="utf-8"))
    assert ids(output) == ["e14"]


def test_script_runs_as_a_subprocess_from_another_folder(data_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", "data", "--log-dir", "logs", "--now", NOW_TEXT],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "qualified events" in result.stdout
    output = json.loads((data_dir / "processed" / "qualified_events.json").read_text(encoding="utf-8"))
    assert ids(output) == EXPECTED_QUALIFIED_IDS


# The malformed and missing input cases are in tests/test_malformed_inputs.py, shared with step 1.


# --- generated sample data: invariants -----------------------------------------------------------



@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from utils import sample_data

    out = tmp_path_factory.mktemp("sample")
    dataset = sample_data.generate_dataset(n_users=500, n_events=2000, seed=11, now=NOW)
    sample_data.write_dataset(dataset, out / "data" / "raw")
    return dataset, out


def test_generated_data_invariants(generated, monkeypatch):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    dataset, out = generated
    assert step2.main(["--data-dir", str(out / "data"), "--log-dir", str(out / "logs"), "--now", NOW_TEXT]) == 0
    stats = parse_stats(read_log(out / "logs"), step2.STATS_TITLE)
    loaded = step2.load_events(out / "data" / "raw" / "events.json")
    qualified = json.loads((out / "data" / "processed" / "qualified_events.json").read_text(encoding="utf-8"))

    for event in qualified:
        start = utils.dates.parse_iso_date(event["startDate"])
        assert start is not None and start > NOW, event.get("id")
        assert event["type"] == "public"
        assert event.get("eventStatus") != "canceled"
        maximum = event["maxParticipants"]
        assert isinstance(maximum, (int, float)) and not isinstance(maximum, bool)
        assert len(event.get("participants") or []) < maximum

    # Qualified events are input records, unchanged, in input order.
    first_index: dict[str, int] = {}
    for index, event in enumerate(loaded):
        first_index.setdefault(json.dumps(event, sort_keys=True), index)
    order = [first_index[json.dumps(event, sort_keys=True)] for event in qualified]
    assert order == sorted(order)

    # Every loaded event is counted exactly once.
    assert stats["events loaded"] == len(loaded) == len(dataset["events"])
    removed = [value for label, value in stats.items() if label.startswith(("filtered: ", "events skipped: "))]
    assert len(removed) == 9
    assert sum(removed) + stats["qualified events"] == stats["events loaded"]
    assert stats["qualified events"] == len(qualified)
    # The generated data exercises the main filters.
    assert 0 < stats["qualified events"] < stats["events loaded"]
    for label in ("filtered: past", "filtered: private", "filtered: canceled", "filtered: full"):
        assert stats[label] > 0, label


def test_docs_sample_output_is_what_the_step_prints(tmp_path, monkeypatch, capsys):
    """The doc's sample run must stay real: regenerate its sample data and compare the table."""
    from utils import sample_data

    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    dataset = sample_data.generate_dataset(n_users=2000, n_events=300, seed=7, now=NOW)
    sample_data.write_dataset(dataset, tmp_path / "data" / "raw")
    capsys.readouterr()
    assert step2.main(["--data-dir", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs"),
                        "--now", NOW_TEXT]) == 0
    table = table_text(capsys.readouterr().out, step2.STATS_TITLE)
    doc = (PROJ_ROOT / "docs" / "2-event-selection.md").read_text(encoding="utf-8")
    assert table in doc, "re-run the command in the doc's 'Sample console output' and paste the new output"


# --- hostile values (issue 12): counted, never fatal ----------------------------------------------

@pytest.mark.parametrize("start", [
    "0001-01-01T00:00:00Z", {"$date": {"$numberLong": "-62135596800000"}}, "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
])
def test_a_placeholder_start_date_is_counted_as_out_of_range(start):
    qualified, stats = step2.select_events([good_event("e1", startDate=start), good_event("e2")], NOW)
    assert ids(qualified) == ["e2"]
    assert dict(stats)["filtered: date out of range"] == 1
    assert dict(stats)["filtered: invalid date"] == 0


def test_a_401_digit_capacity_is_an_invalid_capacity():
    qualified, stats = step2.select_events([good_event("e1", maxParticipants=int("9" * 401))], NOW)
    assert qualified == []
    assert dict(stats)["filtered: invalid capacity"] == 1


@pytest.mark.parametrize("zone_name, start, kept", [
    # A date alone is midnight in the community's zone: in New York, Nov 26 starts at 05:00 UTC.
    ("America/New_York", "2026-11-26", True),
    # A local time without a zone: 06:00 in Tokyo on Nov 25 is 21:00 UTC on Nov 24, before now.
    ("Asia/Tokyo", "2026-11-25T06:00:00", False),
    ("UTC", "2026-11-25T13:00:00", True),
    # 13:00 in Kiritimati (UTC+14) on Nov 25 is 23:00 UTC on Nov 24.
    ("Pacific/Kiritimati", "2026-11-25T13:00:00", False),
])
def test_a_start_without_a_zone_is_read_in_the_community_zone(zone_name, start, kept):
    qualified, stats = step2.select_events([good_event("e1", startDate=start)], NOW, ZoneInfo(zone_name))
    assert (ids(qualified) == ["e1"]) is kept
    assert dict(stats)["filtered: past"] == (0 if kept else 1)


def test_script_counts_repairs_and_goes_on(data_dir, tmp_path):
    raw = json.dumps([good_event("e1", name="Sup\ud83d"), good_event("e2", maxParticipants="__BIG__")])
    (data_dir / "raw" / "events.json").write_text(raw.replace('"__BIG__"', "1e400"), encoding="utf-8")
    assert run_step(data_dir, tmp_path / "logs") == 0
    output = json.loads((data_dir / "processed" / "qualified_events.json").read_text(encoding="utf-8"))
    assert [event["name"] for event in output] == ["Sup\ufffd"]
    stats = parse_stats(read_log(tmp_path / "logs"), step2.STATS_TITLE)
    assert stats["events repaired: text with a lone surrogate (now U+FFFD)"] == 1
    assert stats["events repaired: numbers too large (now null)"] == 1
    assert stats["filtered: invalid capacity"] == 1
