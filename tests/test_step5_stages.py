"""Step 5 stage by stage against the Claude fake: what each edit re-runs, the next-day rule, the cap, the status rule."""

import json
import math
import re

import pytest

from pipeline import step5_match_message as step5
from pipeline.match_message.stages import is_day_bound, stage_cause
from tests.test_step5_match_message import (  # noqa: F401 - fixtures
    _args, _calls_by_purpose, _calls_by_purpose_of, _events, _records, _users, airtable_fake, data_dir, model,
)
from utils.errors import PipelineError
from utils.paths import PROJ_ROOT
from utils.message_store import MessageStore

NEXT_DAY = "2026-11-26T12:00:00Z"


def _new_calls(fake, since: int) -> dict:
    return _calls_by_purpose_of(fake.message_bodies[since:])


# --- what each edit re-runs ----------------------------------------------------------------------

@pytest.mark.parametrize("name, suffix, expected", [
    ("QUALITY_CHECK_PROMPT", "\nBe strict.", {"check": 12}),
    ("COMPLIANCE_REWRITE_PROMPT", "\nKeep it short.", {"check": 12}),
    ("CHECK_TEMPERATURE", 0.2, {"check": 12}),
    # The fake writes the same text again, so the unchanged messages need no new check.
    ("WRITE_TEMPERATURE", 0.5, {"write": 12, "check": 12}),
    ("MESSAGE_GENERATION_PROMPT", "\nBe brief.", {"write": 12}),
    ("CAMPAIGN_TONES", None, {"write": 12}),
    ("MATCHING_USER_PROMPT", "\nThink twice.", {"match": 12}),
])
def test_each_edit_reruns_only_its_stages(name, suffix, expected, data_dir, model, anthropic_fake, monkeypatch):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    first = {record["user_id"]: record["message"] for record in _records(data_dir)}
    calls = len(anthropic_fake.message_bodies)

    if name == "CAMPAIGN_TONES":
        value = {**step5.CAMPAIGN_TONES, "Fill the Table": "calm and cheerful"}
    elif isinstance(suffix, float):
        value = suffix
    else:
        value = getattr(step5, name) + suffix
    monkeypatch.setattr(step5, name, value)
    assert step5.main(_args(data_dir, "--no-upload")) == 0

    assert _new_calls(anthropic_fake, calls) == expected
    assert {record["user_id"]: record["message"] for record in _records(data_dir)} == first
    # And the edit is remembered: a third run makes no call.
    calls = len(anthropic_fake.message_bodies)
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    assert len(anthropic_fake.message_bodies) == calls


def test_matching_prompt_edit_rewrites_only_members_whose_event_changed(data_dir, model, anthropic_fake,
                                                                          monkeypatch):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    before = {record["user_id"]: record["event_id"] for record in _records(data_dir)}
    calls = len(anthropic_fake.message_bodies)

    monkeypatch.setattr(step5, "MATCHING_PROMPT", step5.MATCHING_PROMPT + "\nPrefer small tables.")
    moved = {"Maya", "Ben"}
    original_pick = model.pick
    model.pick = lambda summary: (original_pick(summary) + (3 if summary.split()[0] in moved else 0)) % len(_events())
    assert step5.main(_args(data_dir, "--no-upload")) == 0

    after = {record["user_id"]: record["event_id"] for record in _records(data_dir)}
    changed = [user_id for user_id in after if after[user_id] != before[user_id]]
    assert sorted(changed) == ["u-ben", "u-maya"]
    assert _new_calls(anthropic_fake, calls) == {"match": 12, "write": 2, "check": 2}


def test_the_report_shows_each_stages_calls_and_their_causes(data_dir, model, anthropic_fake, monkeypatch, capsys):
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 0
    out = capsys.readouterr().out
    assert re.search(r"match cause: new member\s+3\n", out) and re.search(r"match: Claude calls\s+3\n", out)
    monkeypatch.setattr(step5, "QUALITY_CHECK_PROMPT", step5.QUALITY_CHECK_PROMPT + " ")
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "4")) == 0
    out = capsys.readouterr().out
    assert re.search(r"match: members run\s+1\n", out) and re.search(r"match cause: new member\s+1\n", out)
    assert re.search(r"check cause: changed prompt or settings\s+3\n", out)
    assert re.search(r"check cause: new member\s+1\n", out) and re.search(r"check: Claude calls\s+4\n", out)


# --- the next-day rule ---------------------------------------------------------------------------

def test_a_run_on_another_day_rewrites_only_day_bound_messages(data_dir, model, anthropic_fake):
    tonight = {"Maya", "Ben", "Cara"}

    def message_for(first: str, today: str) -> str:
        return (f"Hi {first}! Dinner tonight, {today}, with good people. Grab your seat:" if first in tonight
                else f"Hi {first}! A cozy dinner with good people. Grab your seat:")

    inner = model.__call__

    def responder(body):
        answer = inner(body)
        if isinstance(answer, dict) and "message" in answer and "reasoning" in answer:
            first = answer["message"].split("!")[0][3:]
            today = re.search(r"Today is (\w+),", body["messages"][0]["content"]).group(1)
            answer = {**answer, "message": message_for(first, today)}
        return answer

    anthropic_fake.responder = responder
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    assert {record["written_on"] for record in _records(data_dir)} == {"2026-11-25"}
    calls = len(anthropic_fake.message_bodies)

    # Same day: nothing to do.
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    assert len(anthropic_fake.message_bodies) == calls

    # Next day: only the three "tonight" messages are written again; nobody is matched again.
    args = [arg if arg != "2026-11-25T12:00:00Z" else NEXT_DAY for arg in _args(data_dir, "--no-upload")]
    assert step5.main(args) == 0
    assert _new_calls(anthropic_fake, calls) == {"write": 3, "check": 3}
    written = {record["user_name"].split()[0]: record["written_on"] for record in _records(data_dir)}
    assert {name for name, day in written.items() if day == "2026-11-26"} == tonight
    # The date is in no fingerprint: a second run that day is free.
    calls = len(anthropic_fake.message_bodies)
    assert step5.main(args) == 0
    assert len(anthropic_fake.message_bodies) == calls


@pytest.mark.parametrize("text, bound", [
    ("Dinner tonight at 8", True), ("See you TOMORROW", True), ("this Friday at 7pm", True),
    ("this Sat at 7pm", True), ("in 3 days", True), ("in two days", True), ("next week", True),
    ("today at 1pm", True), ("Fri Dec 4 at 7pm", False), ("Friday Supper Club", False),
    ("a thistle salad", False), ("sometimes", False), ("", False),
])
def test_day_bound_wording(text, bound):
    assert is_day_bound(text) is bound


def test_stage_cause_names_why_a_stage_runs():
    record = {"stages": {"write": {"settings": "s", "inputs": "i"}, "match": {"settings": "s", "inputs": "i",
                                                                              "error": "boom"}}}
    assert stage_cause(None, "write", "s", "i") == "new member"
    assert stage_cause(record, "write", "s", "i") is None
    assert stage_cause(record, "write", "s2", "i") == "changed prompt or settings"
    assert stage_cause(record, "write", "s", "i2") == "new event or changed profile"
    assert stage_cause(record, "match", "s", "i") == "failed before"
    assert stage_cause(record, "write", "s", "i", fresh=True) == "--fresh"


# --- the cap against the fake --------------------------------------------------------------------

def test_no_event_goes_over_its_cap_and_members_without_an_event_cost_no_write(data_dir, model, anthropic_fake,
                                                                              airtable_fake, capsys):
    events_path = data_dir / "processed" / "enriched_events.json"
    events = json.loads(events_path.read_text())
    for event in events:
        event["maxParticipants"] = event["participant_count"] + 1  # one free seat each
    events_path.write_text(json.dumps(events))
    assert step5.main(_args(data_dir, "--invites-per-seat", "1")) == 0

    records = _records(data_dir)
    invited = [record for record in records if record["status"] == "approved"]
    no_event = [record for record in records if record["status"] == "no_event"]
    assert len(invited) == len(events) and len(no_event) == len(_users()) - len(events)
    assert sorted(record["event_id"] for record in invited) == sorted(event["id"] for event in events)
    assert all("message" not in record and not record["uploaded"] for record in no_event)
    assert _calls_by_purpose(anthropic_fake) == {"match": 12, "write": len(events), "check": len(events)}
    assert sorted(row["User ID"] for row in airtable_fake.rows()) == sorted(r["user_id"] for r in invited)
    out = capsys.readouterr().out
    assert re.search(rf"no event \(whole shortlist full\)\s+{len(no_event)}\n", out)
    assert "no event (every shortlisted event is full): " in out

    # A re-run with a wider cap keeps the invitations already made (they count first) and invites more.
    assert step5.main(_args(data_dir, "--invites-per-seat", "2")) == 0
    by_event = {}
    for record in _records(data_dir):
        if record["status"] == "approved":
            by_event[record["event_id"]] = by_event.get(record["event_id"], 0) + 1
    assert all(count <= math.ceil(2 * 1) for count in by_event.values())
    assert len(invited) < sum(by_event.values()) <= len(_users())
    assert all(r["event_id"] == r2["event_id"] for r in invited for r2 in _records(data_dir)
               if r2["user_id"] == r["user_id"])


# --- the status rule (issue 11, section 3) -----------------------------------------------------

def _check_answers(model, anthropic_fake, verdict):
    inner = model.__call__

    def responder(body):
        answer = inner(body)
        if isinstance(answer, dict) and "quality_score" in answer:
            return verdict(body)
        return answer

    anthropic_fake.responder = responder


def test_quality_check_not_approved_without_improvement_is_needs_review_with_reasons(data_dir, model,
                                                                                      anthropic_fake, capsys):
    _check_answers(model, anthropic_fake, lambda body: {
        "quality_score": 40, "approved": False, "issues": ["Too generic", "No hook"], "improved_message": None})
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    for record in _records(data_dir):
        assert record["status"] == "needs_review"
        assert record["review_reasons"] == ["quality check: Too generic", "quality check: No hook"]
        assert record["compliance_issues"] == [] and record["approved_by_quality_check"] is False
        assert record["message_reasoning"] == "Warm and short."
    out = capsys.readouterr().out
    assert re.search(r"quality check approved \(Claude\)\s+0\n", out)
    assert re.search(r"passed the compliance gate\s+2\n", out)


def test_an_adopted_improved_message_that_passes_the_gate_is_approved(data_dir, model, anthropic_fake):
    _check_answers(model, anthropic_fake, lambda body: {
        "quality_score": 60, "approved": False, "issues": ["Flat opener"],
        "improved_message": "Hi " + re.search(r"first name: (\w+)", body["messages"][0]["content"]).group(1)
                            + ", the jazz crowd misses you. Pull up a chair:"})
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    for record in _records(data_dir):
        assert record["status"] == "approved" and record["review_reasons"] == []
        assert "the jazz crowd misses you" in record["message"] and record["message"].endswith(record["event_id"])
        assert "improved version" in record["message_reasoning"] and "Flat opener" in record["message_reasoning"]


def test_an_improved_message_that_fails_the_gate_is_rewritten_and_checked_again(data_dir, model, anthropic_fake):
    verdicts = iter([
        {"quality_score": 50, "approved": False, "issues": ["Dull"], "improved_message": "Hi Maya! CLICK HERE now"},
        {"quality_score": 50, "approved": False, "issues": ["Still dull"], "improved_message": None},
    ])
    _check_answers(model, anthropic_fake, lambda body: next(verdicts))
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "1")) == 0
    record = _records(data_dir)[0]
    assert _calls_by_purpose(anthropic_fake) == {"match": 1, "write": 1, "check": 2, "rewrite": 1}
    assert record["compliance_rewrite"] is True and record["compliance_issues"] == []
    assert record["status"] == "needs_review" and record["review_reasons"] == ["quality check: Still dull"]
    assert record["message_reasoning"] == "Fixed."


def test_a_message_under_180_characters_means_fewer_than_180(data_dir, model, anthropic_fake):
    link = "https://cucu.li/bookings/q-supper"
    model.pick = lambda summary: 0
    model.message = "Hi {first}! " + "x" * (179 - len("Hi Maya! ") - 1 - len(link))  # exactly 179 with the link
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "1")) == 0
    assert len(_records(data_dir)[0]["message"]) == 179 and _records(data_dir)[0]["status"] == "approved"


# --- the uploader's errors --------------------------------------------------------------------------

def test_an_uploader_error_takes_the_normal_error_path(data_dir, model, anthropic_fake, airtable_fake,
                                                      monkeypatch, capsys):
    real_put = MessageStore.put

    def disk_full_after_upload(self, record):
        if record.get("uploaded") is True:
            raise PipelineError("cannot write processed_messages.json.journal: No space left on device")
        return real_put(self, record)

    monkeypatch.setattr(MessageStore, "put", disk_full_after_upload)
    assert step5.main(_args(data_dir, "--limit", "2")) == 1
    captured = capsys.readouterr()
    assert "\nError: the Airtable upload stopped: cannot write" in captured.err
    assert "No space left on device" in captured.err and "Traceback" not in captured.err
    assert "Exception in thread" not in captured.err


# --- the team-loop seams ---------------------------------------------------------------------------

def test_held_members_are_left_alone_and_their_rows_count_against_the_cap(tmp_path):
    import logging

    from pipeline.match_message.generators import OfflineGenerator
    from pipeline.match_message.phases import Phases, RunOptions
    from utils.dates import parse_now

    now = parse_now("2026-11-25T12:00:00Z")
    users, events = _users(), _events()
    generator = OfflineGenerator(events, now, __import__("datetime").timezone.utc)
    events_seen = []
    real_shortlist = generator.shortlist
    generator.shortlist = lambda user: events_seen.append("shortlist") or real_shortlist(user)
    held_record = {"user_id": "u-maya", "status": "approved", "message": "Edited by the team", "event_id": "q-cozy"}
    store = MessageStore(tmp_path / "processed_messages.json")
    store.put(held_record)
    options = RunOptions(workers=2, fresh=True, upload=True, invites_per_seat=1, today="2026-11-25",
                         held={"u-maya": "Send Status: Sent"}, held_invites={"q-cozy": 4})
    base = lambda user: {"user_id": user["id"], "user_name": user["name"], "user_summary": user["summary"]}  # noqa: E731
    outcome = Phases(generator, events, store, options, base, logging.getLogger("test"), None).run(users)
    records = store.snapshot()
    store.close()

    assert events_seen.count("shortlist") == len(users) - 1
    assert outcome.held == {"u-maya": "Send Status: Sent"}
    assert records["u-maya"] == held_record and "u-maya" not in outcome.assignment
    # q-cozy has 4 free seats and a cap of 4 at one invite per seat: the 4 held rows fill it.
    assert outcome.prior["q-cozy"] == 4
    assert not any(choice and choice["event_id"] == "q-cozy" for choice in outcome.assignment.values())


def test_a_failed_record_carries_every_field_known_when_it_failed(data_dir, model, anthropic_fake, monkeypatch):
    real = step5.quality_check_message

    def broken_for_ben(message, user, *args, **kwargs):
        if user["id"] == "u-ben":
            raise KeyError("quality")
        return real(message, user, *args, **kwargs)

    monkeypatch.setattr(step5, "quality_check_message", broken_for_ben)
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 1  # Ben unfinished
    ben = {record["user_id"]: record for record in _records(data_dir)}["u-ben"]
    assert ben["status"] == "failed" and ben["failed_stage"] == "check"
    assert ben["error"] == "unexpected KeyError: 'quality'"
    assert ben["event_id"] and ben["campaign"] == "Fill the Table" and ben["match_reasoning"] == "Interests fit."
    assert ben["message"].startswith("Hi Ben!") and ben["written_on"] == "2026-11-25"
    assert ben["user_email"] and ben["user_summary"]

    # The re-run redoes only the failed stage: no match or write call for Ben.
    monkeypatch.setattr(step5, "quality_check_message", real)
    calls = len(anthropic_fake.message_bodies)
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    assert _new_calls(anthropic_fake, calls) == {"check": 1}
    assert {record["user_id"]: record for record in _records(data_dir)}["u-ben"]["status"] == "approved"


def test_a_smaller_cap_on_a_rerun_leaves_members_without_an_event_and_without_a_stale_message(data_dir, model,
                                                                                               anthropic_fake):
    events_path = data_dir / "processed" / "enriched_events.json"
    events = json.loads(events_path.read_text())
    for event in events:
        event["maxParticipants"] = event["participant_count"] + 1
    events_path.write_text(json.dumps(events))
    assert step5.main(_args(data_dir, "--no-upload", "--invites-per-seat", "2")) == 0
    calls = len(anthropic_fake.message_bodies)
    assert step5.main(_args(data_dir, "--no-upload", "--invites-per-seat", "1")) == 0

    records = _records(data_dir)
    invited = [record for record in records if record["status"] == "approved"]
    assert len(invited) == len(events) and len({record["event_id"] for record in invited}) == len(events)
    for record in records:
        if record["status"] == "no_event":
            assert not {"message", "event_id", "campaign"} & set(record)
    assert "match" not in _new_calls(anthropic_fake, calls)


def _edited(value):
    """A different value of the same kind, to see which stage fingerprints a setting is part of."""
    if isinstance(value, str):
        return value + "\nEdited."
    if isinstance(value, dict):
        return {**value, "edited": "edited"}
    return value + 0.125


def test_the_docs_table_of_what_an_edit_costs_matches_the_fingerprints(monkeypatch):
    """A stage's column says "everyone ..." exactly when the setting is part of that stage's fingerprint."""
    lines = (PROJ_ROOT / "docs" / "5-match-message.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("| you edit |"))
    table = []
    for line in lines[start + 2:]:
        if not line.strip().startswith("|"):
            break
        table.append(line)
    rows = [line.split("|")[1:-1] for line in table]
    before = step5.stage_settings_parts()
    checked = set()
    for edited, *columns in rows:
        names = [name for name in re.findall(r"`([A-Z_]+)`", edited) if hasattr(step5, name)]
        for name in names:
            with monkeypatch.context() as patch:
                patch.setattr(step5, name, _edited(getattr(step5, name)))
                after = step5.stage_settings_parts()
            for stage, column in zip(("match", "write", "check"), columns):
                says_everyone = column.strip().startswith("everyone")
                assert says_everyone == (after[stage] != before[stage]), (name, stage, column.strip())
            checked.add(name)
    assert {"WRITE_TEMPERATURE", "CHECK_TEMPERATURE", "MESSAGE_GENERATION_PROMPT", "MATCHING_PROMPT"} <= checked


def test_a_displaced_uploaded_invitation_keeps_counting_against_its_events_cap(tmp_path, caplog):
    # R1 item 6: the no_event member's Airtable row is left in place, so it still invites them.
    import logging

    from pipeline.match_message.generators import OfflineGenerator
    from pipeline.match_message.phases import Phases, RunOptions
    from utils.dates import parse_now

    now = parse_now("2026-11-25T12:00:00Z")
    users, events = _users(), _events()
    first, others = users[0], users[1:]
    target = events[0]["id"]
    store = MessageStore(tmp_path / "processed_messages.json")
    store.put({"user_id": first["id"], "status": "approved", "message": "Hi!", "event_id": target,
               "airtable_id": "rec1", "uploaded": True})
    base = lambda user: {"user_id": user["id"], "user_name": user["name"], "user_summary": user["summary"]}  # noqa: E731

    def run(selected, held_invites):
        options = RunOptions(workers=1, fresh=True, upload=True, invites_per_seat=1, today="2026-11-25",
                             held_invites=held_invites)
        generator = OfflineGenerator(events, now, __import__("datetime").timezone.utc)
        return Phases(generator, events, store, options, base, logging.getLogger("test"), None).run(selected)

    # Every event filled by rows the team holds: the uploaded member is displaced.
    with caplog.at_level(logging.WARNING):
        displaced = run([first], {event["id"]: 1000 for event in events})
    assert displaced.assignment == {first["id"]: None}
    assert "still counts against that event's cap" in caplog.text
    saved = store.get(first["id"])
    assert saved["status"] == "no_event" and saved["uploaded"] is True and "message" not in saved

    later = run(others, {})
    store.close()
    assert later.prior == {target: 1}
    added = sum(1 for choice in later.assignment.values() if choice and choice["event_id"] == target)
    assert later.caps[target] is not None and 1 + added <= later.caps[target]
