"""Tests for the sample-data generator: determinism, schema, realism, and the dirt ratio."""

import os
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from utils.dates import calculate_age, parse_iso_date, parse_now
from utils.jsonio import load_json_list, normalize_extended_json
from utils.paths import EVENTS_FILE, MESSAGES_FILE, PROJ_ROOT, USERS_FILE
from utils.sample_data import (
    EVENT_DIRT_KINDS, TAG_INTERESTS, USER_DIRT_KINDS, attendance_signal, default_now, generate_dataset, main,
    write_dataset,
)

NOW = parse_now("2026-01-15T00:00:00Z")
NOW_ISO = "2026-01-15T00:00:00.000Z"
FILES = (USERS_FILE, EVENTS_FILE, MESSAGES_FILE)
REQUIRED_USER_FIELDS = (
    "interests", "phone", "email", "homeNeighborhood", "occupation",
    "gender", "relationshipStatus", "tableTypePreference", "workNeighborhood",
)
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
RESERVED_DOMAINS = ("example.com", "example.org", "example.net")


@pytest.fixture(scope="module")
def dataset():
    return generate_dataset(2000, 400, seed=11, now=NOW)


@pytest.fixture(scope="module")
def big_dataset():
    return generate_dataset(5000, 500, seed=3, now=NOW)


def dirty_indices(data, collection):
    return {entry["index"] for entry in data["dirt"] if entry["collection"] == collection}


def clean(data, collection):
    dirty = dirty_indices(data, collection)
    return [record for index, record in enumerate(data[collection]) if index not in dirty]


def read_files(folder):
    return {name: (Path(folder) / name).read_bytes() for name in FILES}


def attendance(data, events):
    """Per event, the indices of the users whose e-mail (trimmed, any case) is listed."""
    by_email = {}
    for index, user in enumerate(data["users"]):
        if isinstance(user.get("email"), str):
            by_email.setdefault(user["email"], index)
    return [
        [by_email[p.strip().lower()] for p in event["participants"] if p.strip().lower() in by_email]
        for event in events
    ]


# --- the dirt check, written independently of the generator --------------------------------

def user_is_dirty(user, seen_ids):
    if any(isinstance(value, dict) for value in user.values()):
        return True  # Extended JSON wrapper
    for field in REQUIRED_USER_FIELDS:
        value = user.get(field)
        if field == "interests":
            if not (isinstance(value, list) and value and all(isinstance(i, str) and i.strip() for i in value)):
                return True
        elif not (isinstance(value, str) and value.strip()):
            return True
    for field in ("birthDay", "createdAt"):
        if not isinstance(user.get(field), str) or parse_iso_date(user[field]) is None:
            return True
    if not isinstance(user.get("_id"), str) or not isinstance(user.get("id"), str):
        return True
    return user["id"] in seen_ids


def measured_dirty_users(users):
    seen, dirty = set(), set()
    for index, user in enumerate(users):
        if user_is_dirty(user, seen):
            dirty.add(index)
        if isinstance(user.get("id"), str):
            seen.add(user["id"])
    return dirty


def event_is_dirty(event):
    if any(isinstance(value, dict) for value in event.values()):
        return True
    participants = event.get("participants")
    if not (isinstance(participants, list) and all(isinstance(p, str) for p in participants)):
        return True
    if not isinstance(event.get("startDate"), str) or parse_iso_date(event["startDate"]) is None:
        return True
    maximum = event.get("maxParticipants")
    return not isinstance(maximum, int) or isinstance(maximum, bool)


# --- determinism -------------------------------------------------------------------------------

def test_same_seed_and_now_give_byte_identical_files(tmp_path):
    write_dataset(generate_dataset(400, 60, seed=5, now=NOW), tmp_path / "a")
    write_dataset(generate_dataset(400, 60, seed=5, now=NOW), tmp_path / "b")
    assert read_files(tmp_path / "a") == read_files(tmp_path / "b")


def test_different_seed_or_now_gives_different_files(tmp_path):
    write_dataset(generate_dataset(400, 60, seed=5, now=NOW), tmp_path / "a")
    write_dataset(generate_dataset(400, 60, seed=6, now=NOW), tmp_path / "b")
    write_dataset(generate_dataset(400, 60, seed=5, now=NOW + timedelta(days=1)), tmp_path / "c")
    a, b, c = (read_files(tmp_path / name) for name in "abc")
    for name in FILES:
        assert a[name] != b[name]
        assert a[name] != c[name]


def test_output_does_not_depend_on_hash_seed(tmp_path):
    args = ["--users", "300", "--events", "50", "--seed", "7", "--now", "2026-01-15"]
    outputs = []
    for hash_seed in ("0", "4242"):
        out = tmp_path / f"hash{hash_seed}"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        result = subprocess.run(
            [sys.executable, "-m", "utils.sample_data", *args, "--out", str(out)],
            cwd=PROJ_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(read_files(out))
    # This process has yet another (random) hash seed.
    write_dataset(generate_dataset(300, 50, seed=7, now=NOW), tmp_path / "here")
    assert outputs[0] == outputs[1] == read_files(tmp_path / "here")


# --- schema ------------------------------------------------------------------------------------

def test_clean_users_follow_the_input_schema(dataset):
    users = clean(dataset, "users")
    assert len(users) == 2000 - len(dirty_indices(dataset, "users"))
    for user in users:
        assert OBJECT_ID.match(user["_id"])
        assert isinstance(user["id"], str) and user["id"]
        assert user["firstName"].strip() and user["lastName"].strip()
        assert user["email"] == user["email"].lower()
        assert user["email"].split("@")[1] in RESERVED_DOMAINS
        assert re.match(r"^\+1(212|646|917|718|347|929|332)555\d{4}$", user["phone"])
        assert isinstance(user["interests"], list) and 2 <= len(user["interests"]) <= 6
        assert len(set(user["interests"])) == len(user["interests"])
        for field in REQUIRED_USER_FIELDS[1:]:
            assert isinstance(user[field], str) and user[field].strip(), field
        assert user["role"] in ("POTENTIAL", "REGULAR", "HOST", "ADMIN")
        assert re.match(r"^\d{4}-\d{2}-\d{2}T00:00:00\.000Z$", user["birthDay"])
        assert 21 <= calculate_age(user["birthDay"], NOW) <= 70
        assert ISO_MS.match(user["createdAt"])
        created = parse_iso_date(user["createdAt"])
        assert NOW - timedelta(days=3 * 365) <= created < NOW
        for optional in ("preferredCuisines", "allergies"):
            if optional in user:
                assert isinstance(user[optional], list)
    assert len({user["email"] for user in users}) == len(users)


def test_users_look_like_a_real_community(dataset):
    users = clean(dataset, "users")
    roles = Counter(user["role"] for user in users)
    assert 0.20 <= roles["POTENTIAL"] / len(users) <= 0.30
    assert roles["HOST"] > 0 and roles["ADMIN"] > 0
    recent = sum(NOW - parse_iso_date(user["createdAt"]) <= timedelta(days=30) for user in users)
    assert 0.05 <= recent / len(users) <= 0.11
    oldest = min(parse_iso_date(user["createdAt"]) for user in users)
    assert oldest < NOW - timedelta(days=2 * 365)
    assert any(user["birthDay"][5:10] == "02-29" for user in users)
    ages = [calculate_age(user["birthDay"], NOW) for user in users]
    assert min(ages) <= 23 and max(ages) >= 60
    assert len({user["homeNeighborhood"] for user in users}) >= 30
    assert len({interest for user in users for interest in user["interests"]}) >= 35
    assert any("allergies" not in user for user in users)
    assert any(user.get("allergies") == [] for user in users)
    assert any(user.get("allergies") for user in users)


def test_clean_events_follow_the_input_schema(dataset):
    events = clean(dataset, "events")
    for event in events:
        assert OBJECT_ID.match(event["_id"])
        assert isinstance(event["id"], str) and event["name"].strip()
        assert ISO_MS.match(event["startDate"]) and event["startDate"].endswith(":00.000Z")
        duration = parse_iso_date(event["endDate"]) - parse_iso_date(event["startDate"])
        assert timedelta(hours=2) <= duration <= timedelta(hours=4)
        assert event["type"] in ("public", "private")
        assert event["eventStatus"] in ("approved", "canceled", "pending")
        assert 4 <= event["maxParticipants"] <= 20
        assert 1 <= event["minParticipants"] <= event["maxParticipants"]
        assert all(isinstance(p, str) and "@" in p for p in event["participants"])
        assert len(event["participants"]) <= event["maxParticipants"]
        assert isinstance(event["ownerId"], str) and event["ownerId"]
        assert event["venueName"].strip() and event["neighborhood"].strip()
        assert isinstance(event["categories"], list) and event["categories"]
        assert isinstance(event["features"], list) and event["features"]
        if "description" in event:
            assert "<p>" in event["description"] and "&" in event["description"]
    descriptions = " ".join(event.get("description", "") for event in events)
    for entity in ("&amp;", "&nbsp;", "&quot;", "&#39;", "&eacute;", "<br/>", "<b>"):
        assert entity in descriptions


def test_event_mix_exercises_step_2(dataset):
    events = clean(dataset, "events")
    past = [e for e in events if e["startDate"] < NOW_ISO]
    future = [e for e in events if e["startDate"] > NOW_ISO]
    assert 0.65 <= len(past) / len(events) <= 0.75
    assert min(e["startDate"] for e in past) < "2024-06-01"
    assert max(e["startDate"] for e in future) <= "2026-03-25"
    assert any(e["type"] == "private" for e in future)
    assert any(e["eventStatus"] == "canceled" for e in future)
    assert any(e["eventStatus"] == "pending" for e in future)
    open_public = [e for e in future if e["type"] == "public" and e["eventStatus"] == "approved"]
    assert sum(len(e["participants"]) == e["maxParticipants"] for e in open_public) >= 2
    assert sum(len(e["participants"]) / e["maxParticipants"] < 0.3 for e in open_public) >= 5
    assert any(0.5 <= len(e["participants"]) / e["maxParticipants"] < 1 for e in open_public)
    invited = [e for e in events if e.get("invitedParticipants")]
    assert 0.10 <= len(invited) / len(events) <= 0.30


def test_owner_ids_mostly_point_at_users(dataset):
    users = normalize_extended_json(dataset["users"])
    by_id = {user["id"] for user in users} | {user["_id"] for user in users}
    object_ids = {user["_id"] for user in users}
    owners = [event["ownerId"] for event in dataset["events"]]
    resolved = [owner for owner in owners if owner in by_id]
    assert len(resolved) / len(owners) >= 0.9
    assert len(resolved) < len(owners)  # a few unknown owners
    assert any(owner in object_ids for owner in owners)


def test_message_history_covers_about_15_percent_of_users(dataset):
    users = normalize_extended_json(dataset["users"])
    ids = {user["id"]: i for i, user in enumerate(users)}
    ids.update({user["_id"]: i for i, user in enumerate(users)})
    messages = dataset["messages"]
    messaged = {ids[m["user_id"]] for m in messages if m["user_id"] in ids}
    assert 0.10 <= len(messaged) / len(users) <= 0.20
    assert sum(m["user_id"] is None for m in messages) == 2
    assert any(m["user_id"] in {user["_id"] for user in users} for m in messages)
    event_ids = {event["id"] for event in dataset["events"]}
    for message in messages:
        for key in ("user_name", "user_email", "user_phone", "event_id", "event_name", "event_date",
                    "message", "campaign"):
            assert isinstance(message[key], str) and message[key], key
        assert message["campaign"] in ("Seat The Newcomer", "Fill the Table", "Return to Table")
        assert message["event_id"] in event_ids
        assert message["message"].endswith("https://cucu.li/bookings/" + message["event_id"])
        if "airtable_id" in message:
            assert re.match(r"^rec[A-Za-z0-9]{14}$", message["airtable_id"])


# --- participation -----------------------------------------------------------------------------

def test_attendance_has_a_heavy_tail(big_dataset):
    past = [e for e in clean(big_dataset, "events") if e["startDate"] < NOW_ISO]
    counts = Counter(index for attendees in attendance(big_dataset, past) for index in attendees)
    per_user = sorted((counts[i] for i in range(len(big_dataset["users"]))), reverse=True)
    total = sum(per_user)
    top = per_user[: len(per_user) // 20]
    assert sum(top) / total >= 0.30
    assert sum(1 for c in per_user if c == 0) / len(per_user) >= 0.40
    assert per_user[0] >= 15
    assert sum(1 for c in per_user if c == 1) > sum(1 for c in per_user if c >= 5)


def test_friends_attend_together(dataset):
    past = [e for e in clean(dataset, "events") if e["startDate"] < NOW_ISO]
    pairs = Counter()
    for attendees in attendance(dataset, past):
        people = sorted(set(attendees))
        pairs.update((a, b) for i, a in enumerate(people) for b in people[i + 1:])
    assert sum(1 for shared in pairs.values() if shared >= 2) >= 50
    # Chance alone pairs regulars up now and then; friend groups make some pairs inseparable.
    assert sum(1 for shared in pairs.values() if shared >= 8) >= 4
    assert max(pairs.values()) >= 12


def test_attendance_follows_interests_and_neighborhoods(dataset):
    """RSVPs share an interest with the event, and sit near home or work, far more often than chance."""
    users = clean(dataset, "users")
    past = [e for e in clean(dataset, "events") if e["startDate"] < NOW_ISO]
    rsvps = [(dataset["users"][index], event) for event, attendees in zip(past, attendance(dataset, past))
             for index in attendees]
    usable = [(user, event) for user, event in rsvps if isinstance(user.get("interests"), list)]
    assert len(usable) > 1000

    def related(user, event):
        tags = list(event["categories"]) + list(event["features"])
        return bool({i for tag in tags for i in TAG_INTERESTS.get(tag, ())} & set(user["interests"]))

    def near(user, event):
        return event["neighborhood"] in (user.get("homeNeighborhood"), user.get("workNeighborhood"))

    rng = random.Random(1)
    members = [user for user in users if isinstance(user.get("interests"), list)]
    shuffled = [(rng.choice(members), event) for _, event in usable]
    share = lambda test, pairs: sum(test(user, event) for user, event in pairs) / len(pairs)  # noqa: E731
    assert share(related, usable) >= share(related, shuffled) + 0.10
    assert share(near, usable) >= 1.5 * share(near, shuffled)


def test_attendance_signal_counts_by_hand():
    ana = {"email": "ana@example.com", "interests": ["jazz"], "homeNeighborhood": "Harlem"}
    ben = {"email": "ben@example.com", "interests": ["hiking"], "homeNeighborhood": "SoHo"}
    events = [
        {"name": "Ramen Night", "startDate": "2025-01-01T00:00:00.000Z", "categories": ["Music"], "features": [],
         "neighborhood": "Harlem", "participants": ["ANA@example.com ", "ben@example.com", "guest@example.net"]},
        {"name": "Cozy Ramen Night", "startDate": "2025-02-01T00:00:00.000Z", "categories": ["Dinner"],
         "features": [], "neighborhood": "SoHo", "participants": ["ana@example.com"]},
    ]
    signal = attendance_signal({"users": [ana, ben], "events": events})
    # 3 member RSVPs (the guest is not a member): Ana-jazz/Music related and in Harlem; Ben neither;
    # Ana again at a second Ramen Night: a repeat concept, unrelated (Dinner draws "food"), not near.
    assert signal["rsvps"] == 3
    assert signal["related_interest"] == round(1 / 3, 3)
    assert signal["near"] == round(1 / 3, 3)
    assert signal["repeat_concept"] == round(1 / 3, 3)


def test_participants_signed_up_before_the_event(dataset):
    users = dataset["users"]
    by_email = {u["email"]: u for u in users if isinstance(u.get("email"), str)}
    checked = 0
    for event in clean(dataset, "events"):
        for email in event["participants"]:
            user = by_email.get(email.strip().lower())
            created = parse_iso_date(user.get("createdAt")) if user else None
            if created is not None:
                assert created < parse_iso_date(event["startDate"])
                checked += 1
    assert checked > 1000


def test_participant_emails_vary_like_real_rsvps(dataset):
    emails = {u["email"] for u in dataset["users"] if isinstance(u.get("email"), str)}
    listed = [p for e in clean(dataset, "events") for p in e["participants"]]
    other_case = [p for p in listed if p.strip() != p.strip().lower() and p.strip().lower() in emails]
    spaced = [p for p in listed if p != p.strip()]
    guests = [p for p in listed if p.strip().lower() not in emails]
    assert 0.05 <= len(other_case) / len(listed) <= 0.15
    assert spaced
    assert 0.005 <= len(guests) / len(listed) <= 0.08


# --- dirt --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_users, n_events, seed", [(500, 80, 42), (2000, 400, 11), (1000, 150, 99)])
def test_dirt_ratio_measured_from_the_data(n_users, n_events, seed):
    data = generate_dataset(n_users, n_events, seed=seed, now=NOW)
    dirty_users = measured_dirty_users(data["users"])
    dirty_events = {i for i, event in enumerate(data["events"]) if event_is_dirty(event)}
    # Every spoiled record is visibly spoiled, and no clean one is.
    assert dirty_users == dirty_indices(data, "users")
    assert dirty_events == dirty_indices(data, "events")
    assert 0.02 <= len(dirty_users) / n_users <= 0.05
    assert 0.02 <= len(dirty_events) / n_events <= 0.05
    overall = (len(dirty_users) + len(dirty_events)) / (n_users + n_events)
    assert 0.02 <= overall <= 0.05


def test_every_dirt_kind_appears_and_looks_as_named(dataset):
    kinds = Counter(entry["kind"] for entry in dataset["dirt"])
    assert set(USER_DIRT_KINDS) | set(EVENT_DIRT_KINDS) <= set(kinds)
    users, events = dataset["users"], dataset["events"]
    for entry in dataset["dirt"]:
        record = (users if entry["collection"] == "users" else events)[entry["index"]]
        kind = entry["kind"]
        if kind == "participants_null":
            assert record["participants"] is None
        elif kind == "participants_string":
            assert isinstance(record["participants"], str)
        elif kind == "interests_string":
            assert isinstance(record["interests"], str) and record["interests"]
        elif kind == "interests_empty":
            assert record["interests"] == []
        elif kind == "blank_phone":
            assert record["phone"] == ""
        elif kind == "phone_not_string":
            assert isinstance(record["phone"], int)
        elif kind == "max_participants_string":
            assert record["maxParticipants"].isalpha()
        elif kind == "max_participants_missing":
            assert "maxParticipants" not in record
        elif kind == "missing_start_date":
            assert "startDate" not in record
        elif kind == "extjson_oid":
            assert set(record["_id"]) == {"$oid"}
        elif kind == "extjson_number":
            assert set(record["maxParticipants"]) == {"$numberInt"}
        elif kind == "extjson_date":
            wrapped = [v for v in record.values() if isinstance(v, dict)]
            assert len(wrapped) == 1 and set(wrapped[0]) == {"$date"}
            assert parse_iso_date(normalize_extended_json(wrapped[0])) is not None
        elif kind == "duplicate_id":
            earlier = [u for u in users[: entry["index"]] if u.get("id") == record["id"]]
            assert earlier and earlier[0]["email"] != record["email"]


def test_written_files_load_with_the_pipeline_loader(tmp_path, dataset):
    write_dataset(dataset, tmp_path)
    users = load_json_list(tmp_path / USERS_FILE, what="users")
    events = load_json_list(tmp_path / EVENTS_FILE, what="events")
    messages = load_json_list(tmp_path / MESSAGES_FILE, what="messages")
    assert len(users) == 2000 and len(events) == 400 and len(messages) == len(dataset["messages"])
    assert all(isinstance(item, dict) for item in users + events + messages)
    # Extended JSON comes out as plain values once loaded.
    assert all(isinstance(user["_id"], str) for user in users)
    assert not any(isinstance(v, dict) for event in events for v in event.values())


# --- command line ------------------------------------------------------------------------------

def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--users", "--events", "--seed", "--now", "--out"):
        assert flag in text


def test_docs_mention_every_flag():
    doc = (PROJ_ROOT / "docs" / "sample-data.md").read_text(encoding="utf-8")
    for flag in ("--users", "--events", "--seed", "--now", "--out", "python -m utils.sample_data"):
        assert flag in doc


def test_main_writes_three_files(tmp_path, capsys):
    code = main(["--users", "200", "--events", "30", "--seed", "1", "--now", "2026-01-15", "--out", str(tmp_path)])
    assert code == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(FILES)
    out = capsys.readouterr().out
    assert "Wrote 200 users, 30 events" in out and "Generated in" in out
    assert read_files(tmp_path) == _files_of(generate_dataset(200, 30, seed=1, now=NOW), tmp_path / "again")


def _files_of(data, folder):
    write_dataset(data, folder)
    return read_files(folder)


@pytest.mark.parametrize("argv, message", [
    (["--now", "yesterday"], "Error: --now 'yesterday' is not an ISO 8601 date"),
    (["--users", "0"], "Error: --users must be between 1"),
    (["--events", "-3"], "Error: --events must be between 0"),
])
def test_main_reports_bad_arguments(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(message)
    assert not any(tmp_path.iterdir())


def test_default_now_is_midnight_utc():
    now = default_now()
    assert (now.hour, now.minute, now.second, now.microsecond) == (0, 0, 0, 0)
    assert now.utcoffset() == timedelta(0)
