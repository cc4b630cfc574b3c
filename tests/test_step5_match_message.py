"""Step 5 end to end: the real anthropic and pyairtable clients against the loopback fakes."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import step5_match_message as step5
from pipeline.match_message import asking, texts
from pipeline.match_message.upload import Uploader
from tests.fakes.anthropic_server import Fault, Reply
from utils.airtable_fields import COLUMN_TYPES, SEND_STATUS_COLUMN
from utils.message_store import MessageStore
from utils.sms import check_message

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOW = "2026-11-25T12:00:00Z"
SPEC_FIELDS = (
    "user_name", "event_name", "user_id", "event_id", "user_email", "user_phone", "user_summary",
    "event_summary", "message", "match_reasoning", "message_reasoning", "confidence_percentage",
    "campaign", "quality_check_response",
)


# --- data --------------------------------------------------------------------------------------

def _users() -> list[dict]:
    return json.loads((FIXTURES / "enriched_users.json").read_text())


def _events() -> list[dict]:
    return json.loads((FIXTURES / "enriched_events.json").read_text())


def _phone(index: int) -> str:
    return f"+1212555{index:04d}"


@pytest.fixture
def airtable_fake(airtable_fake):
    """The Airtable fake with the Messages table's real columns, the team's Send Status included."""
    airtable_fake.set_schema({**COLUMN_TYPES, SEND_STATUS_COLUMN: "singleSelect"})
    return airtable_fake


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A data folder with step 3/4 fixtures as input and raw users carrying phone numbers."""
    root = tmp_path / "data"
    (root / "processed").mkdir(parents=True)
    (root / "raw").mkdir()
    shutil.copy(FIXTURES / "enriched_users.json", root / "processed" / "enriched_users.json")
    shutil.copy(FIXTURES / "enriched_events.json", root / "processed" / "enriched_events.json")
    # Upper-case emails: the phone lookup must match case-insensitively.
    raw = [{"id": user["id"], "email": user["email"].upper(), "phone": _phone(index)}
           for index, user in enumerate(_users())]
    (root / "raw" / "users.json").write_text(json.dumps(raw))
    return root


def _args(data_dir: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(data_dir), "--log-dir", str(data_dir.parent / "logs"), "--now", NOW, *extra]


def _records(data_dir: Path) -> list[dict]:
    return json.loads((data_dir / "processed" / "processed_messages.json").read_text())


# --- a scripted model ----------------------------------------------------------------------------

def _user_text(body: dict) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(block["text"] for block in content)


def _purpose(body: dict) -> str:
    text = _user_text(body)
    if text.startswith("Member profile:"):
        return "match"
    if text.startswith("Write one SMS"):
        return "write"
    if text.startswith("You review an SMS"):
        return "check"
    if text.startswith("This SMS invitation failed"):
        return "rewrite"
    raise AssertionError(f"unexpected prompt: {text[:80]!r}")


class Model:
    """Answers like Claude would, deterministically; tests override one behaviour at a time."""

    def __init__(self):
        self.picks: dict[str, int] = {}  # user summary -> event index it answered
        self.message = "Hi {first}! A cozy dinner with good people this week. Grab your seat:"
        self.rewrite = "Hi {first}! Dinner with good people this week. Grab your seat:"
        self.match_override = None

    def pick(self, summary: str) -> int:
        # Spread members over the catalog in a way the test can recompute from the summary alone.
        return sum(map(ord, summary)) % len(_events())

    def __call__(self, body: dict):
        purpose = _purpose(body)
        text = _user_text(body)
        if purpose == "match":
            summary = text.split("\n", 1)[1].split("\n\nRank", 1)[0]
            if self.match_override is not None:
                answer = self.match_override(summary)
                if isinstance(answer, dict) and "event_index" in answer:
                    return {"choices": [answer]}  # a one-event shortlist
                if answer is not None:
                    return answer
            index = self.pick(summary)
            self.picks[summary] = index
            return {"choices": [
                {"event_index": (index + offset) % len(_events()), "campaign": "Fill the Table",
                 "reasoning": "Interests fit.", "confidence": 80 - 10 * offset}
                for offset in range(3)]}
        pattern = r"first name \((\w+)\)" if purpose == "rewrite" else r"first name: (\w+)"
        first = re.search(pattern, text).group(1)
        if purpose == "write":
            return {"message": self.message.format(first=first), "reasoning": "Warm and short.", "confidence": 70}
        if purpose == "rewrite":
            return {"message": self.rewrite.format(first=first), "reasoning": "Fixed.", "confidence": 70}
        return {"quality_score": 88, "approved": True, "issues": [], "improved_message": None}


@pytest.fixture
def model(anthropic_fake) -> Model:
    scripted = Model()
    anthropic_fake.responder = scripted
    return scripted


def _calls_by_purpose_of(bodies: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for body in bodies:
        counts[_purpose(body)] = counts.get(_purpose(body), 0) + 1
    return counts


def _calls_by_purpose(fake) -> dict[str, int]:
    return _calls_by_purpose_of(fake.message_bodies)


# --- full runs -------------------------------------------------------------------------------------

def test_full_run_gives_every_user_a_record_and_one_airtable_row(data_dir, model, anthropic_fake, airtable_fake):
    assert step5.main(_args(data_dir, "--workers", "4")) == 0

    users, events = _users(), _events()
    records = _records(data_dir)
    assert [record["user_id"] for record in records] == [user["id"] for user in users]
    for index, (user, record) in enumerate(zip(users, records)):
        for name in SPEC_FIELDS:
            assert name in record, name
        event = events[model.picks[user["summary"]]]
        assert record["event_id"] == event["id"]
        assert record["event_name"] == event["name"]
        assert record["message"].endswith(f" https://cucu.li/bookings/{event['id']}")
        assert record["message"].count("https://") == 1
        assert record["user_phone"] == _phone(index)
        assert record["status"] == "approved" and record["compliance_issues"] == []
        assert record["uploaded"] is True and record["airtable_id"].startswith("rec")
        assert record["quality_check_response"]["quality_score"] == 88
        assert record["confidence_percentage"] == 80
        assert record["generator"] == "claude"
    rows = airtable_fake.rows()
    assert sorted(row["User ID"] for row in rows) == sorted(user["id"] for user in users)
    assert {row["Message"] for row in rows} == {record["message"] for record in records}
    # Exactly three calls per member: match, write, check.
    assert _calls_by_purpose(anthropic_fake) == {"match": 12, "write": 12, "check": 12}


def test_requests_carry_model_temperatures_schemas_and_the_cached_catalog(data_dir, model, anthropic_fake,
                                                                          airtable_fake):
    assert step5.main(_args(data_dir, "--model", "claude-test-model", "--no-upload")) == 0

    bodies = anthropic_fake.message_bodies
    assert {body["model"] for body in bodies} == {"claude-test-model"}
    matches = [body for body in bodies if _purpose(body) == "match"]
    systems = [json.dumps(body["system"], sort_keys=True) for body in matches]
    assert len(set(systems)) == 1, "every matching call must send the identical system block"
    block = matches[0]["system"][-1]
    assert block["cache_control"] == {"type": "ephemeral"}
    for index, event in enumerate(_events()):
        assert f"[{index}]" in block["text"] and event["summary"] in block["text"]
    temperatures = {_purpose(body): body["temperature"] for body in bodies}
    assert temperatures == {"match": 0.7, "write": 0.9, "check": 0.7}
    for body in bodies:
        schema = body["output_config"]["format"]["schema"]
        assert schema["type"] == "object" and schema["required"]
    # The fake served the catalog from its cache after the first call.
    usage_lines = [json.loads(line) for path in (data_dir.parent / "logs").glob("claude_calls_*.jsonl")
                   for line in path.read_text().splitlines()]
    assert sum(1 for line in usage_lines if line["usage"]["cache_read_input_tokens"] > 0) >= 11


def test_rerun_with_nothing_changed_makes_no_calls_and_adds_no_rows(data_dir, model, anthropic_fake, airtable_fake):
    assert step5.main(_args(data_dir)) == 0
    calls, rows = len(anthropic_fake.message_bodies), airtable_fake.rows()
    writes = len(airtable_fake.requests_to("PATCH")) + len(airtable_fake.requests_to("POST"))
    first = _records(data_dir)

    assert step5.main(_args(data_dir)) == 0

    assert len(anthropic_fake.message_bodies) == calls
    assert airtable_fake.rows() == rows
    assert len(airtable_fake.requests_to("PATCH")) + len(airtable_fake.requests_to("POST")) == writes
    assert _records(data_dir) == first


def test_prompt_edit_regenerates_everyone_and_updates_rows_in_place(data_dir, model, anthropic_fake, airtable_fake,
                                                                    monkeypatch):
    assert step5.main(_args(data_dir)) == 0
    ids_before = {row["User ID"]: record_id for record_id, row in
                  ((rid, rec["fields"]) for rid, rec in airtable_fake.table.records.items())}
    calls = len(anthropic_fake.message_bodies)

    monkeypatch.setattr(step5, "MESSAGE_GENERATION_PROMPT", step5.MESSAGE_GENERATION_PROMPT + "\nBe brief.")
    model.message = "Hey {first}, new week, new table. Come eat with us:"
    assert step5.main(_args(data_dir)) == 0

    # A message-prompt edit re-writes and re-checks everyone, and matches no one again.
    new_calls = _calls_by_purpose_of(anthropic_fake.message_bodies[calls:])
    assert new_calls == {"write": len(_users()), "check": len(_users())}
    rows = {rid: rec["fields"] for rid, rec in airtable_fake.table.records.items()}
    assert len(rows) == len(_users())
    assert {row["User ID"]: rid for rid, row in rows.items()} == ids_before
    assert all(row["Message"].startswith("Hey ") for row in rows.values())


def test_limit_and_user_id_select_members_and_keep_other_records(data_dir, model, anthropic_fake):
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    assert [record["user_id"] for record in _records(data_dir)] == ["u-maya", "u-ben"]

    assert step5.main(_args(data_dir, "--no-upload", "--user-id", "u-kim", "--user-id", "u-ben")) == 0
    # u-ben was up to date; only u-kim is new. The file keeps the input order.
    assert [record["user_id"] for record in _records(data_dir)] == ["u-maya", "u-ben", "u-kim"]
    assert _calls_by_purpose(anthropic_fake)["match"] == 3


def test_fresh_regenerates_up_to_date_members(data_dir, model, anthropic_fake):
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 0
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3", "--fresh")) == 0
    assert _calls_by_purpose(anthropic_fake)["match"] == 6


def test_no_upload_records_are_uploaded_by_a_later_run_without_claude_calls(data_dir, model, anthropic_fake,
                                                                            airtable_fake):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    assert all(record["uploaded"] is False for record in _records(data_dir))
    calls = len(anthropic_fake.message_bodies)

    assert step5.main(_args(data_dir)) == 0

    assert len(anthropic_fake.message_bodies) == calls
    assert len(airtable_fake.rows()) == len(_users())
    assert all(record["uploaded"] is True for record in _records(data_dir))


def test_failed_upload_is_marked_and_the_next_run_uploads_it(data_dir, model, anthropic_fake, airtable_fake,
                                                              monkeypatch):
    monkeypatch.setenv("AIRTABLE_MAX_RETRIES", "0")
    airtable_fake.fail_next(503, times=50, methods=["PATCH"])
    assert step5.main(_args(data_dir)) == 1  # uploads failed: unfinished
    records = _records(data_dir)
    assert all(record["uploaded"] is False and record["upload_error"] for record in records)
    calls = len(anthropic_fake.message_bodies)

    airtable_fake.fail_next(503, times=0)
    with airtable_fake.lock:
        airtable_fake._failures.clear()
    assert step5.main(_args(data_dir)) == 0

    assert len(anthropic_fake.message_bodies) == calls
    assert sorted(row["User ID"] for row in airtable_fake.rows()) == sorted(user["id"] for user in _users())
    assert all(record["uploaded"] is True and "upload_error" not in record for record in _records(data_dir))


def test_missing_airtable_credentials_fail_fast_before_any_claude_call(data_dir, model, anthropic_fake, capsys):
    assert step5.main(_args(data_dir)) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "AIRTABLE_API_KEY" in err and "--no-upload" in err
    assert anthropic_fake.message_bodies == []
    assert not (data_dir / "processed" / "processed_messages.json").exists()


def test_missing_anthropic_key_fails_fast(data_dir, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert step5.main(_args(data_dir, "--no-upload")) == 1
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err


# --- validation and faults -------------------------------------------------------------------------

def test_invalid_answer_gets_one_corrective_retry(data_dir, model, anthropic_fake):
    bad = {"count": 0}

    def once_out_of_range(summary):
        if summary.startswith("Maya") and bad["count"] == 0:
            bad["count"] += 1
            return {"event_index": 99, "campaign": "Fill the Table", "reasoning": "x", "confidence": 50}
        return None

    model.match_override = once_out_of_range
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "1")) == 0

    record = _records(data_dir)[0]
    assert record["status"] == "approved"
    retry = [body for body in anthropic_fake.message_bodies if _purpose(body) == "match"][1]
    assert "event_index must be an integer from 0 to 5, got 99" in _user_text(retry)


def test_answers_still_invalid_after_retry_mark_only_that_user_failed(data_dir, model, anthropic_fake):
    model.match_override = lambda summary: (
        {"event_index": 1, "campaign": "Win Back", "reasoning": "x", "confidence": 150}
        if summary.startswith("Ben") else None)
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 1  # one member unfinished

    by_id = {record["user_id"]: record for record in _records(data_dir)}
    assert by_id["u-ben"]["status"] == "failed"
    assert "campaign must be one of" in by_id["u-ben"]["error"]
    assert "confidence must be a number from 0 to 100" in by_id["u-ben"]["error"]
    assert by_id["u-maya"]["status"] == by_id["u-cara"]["status"] == "approved"

    model.match_override = None
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 0
    assert [record["status"] for record in _records(data_dir)] == ["approved"] * 3
    # The re-run only redid the failed member.
    assert _calls_by_purpose(anthropic_fake)["write"] == 3


def test_prose_around_json_is_parsed_when_structured_outputs_are_unsupported(data_dir, model, anthropic_fake):
    anthropic_fake.reject_structured_outputs = True
    inner = model

    def chatty(body):
        answer = inner(body)
        return "Sure! Here is my answer:\n```json\n" + json.dumps(answer) + "\n```\nHope that helps."

    anthropic_fake.responder = chatty
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    assert [record["status"] for record in _records(data_dir)] == ["approved", "approved"]


def test_rate_limits_overloads_server_errors_and_malformed_output_are_survived(data_dir, model, anthropic_fake):
    # The SDK retries these itself (4 retries by default)...
    anthropic_fake.fail("rate_limit", 2)
    anthropic_fake.fail("overloaded", 1)
    anthropic_fake.fail("server_error", 1)
    # ...but not a cut-off response body: step 5 tries that call again itself.
    anthropic_fake.fail("malformed", 1)
    # Malformed model output: the right JSON type but the wrong shape; a corrective retry fixes it.
    anthropic_fake.reply(Reply({"event_idx": 2, "msg": "?"}))
    assert step5.main(_args(data_dir, "--no-upload", "--workers", "4")) == 0

    records = _records(data_dir)
    assert len(records) == len(_users())
    assert all(record["status"] == "approved" for record in records)
    assert anthropic_fake.pending == 0


def test_users_whose_retries_run_out_fail_and_a_rerun_finishes_them(data_dir, model, anthropic_fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "1")
    monkeypatch.setattr(step5.ClaudeAsker, "RATE_LIMIT_ROUNDS", 1)
    outage = {"on": True}

    def server_down_for_cara(summary):
        if summary.startswith("Cara") and outage["on"]:
            return Fault("server_error", retry_after_ms=1)
        return None

    model.match_override = server_down_for_cara
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "4")) == 1  # Cara unfinished
    by_id = {record["user_id"]: record for record in _records(data_dir)}
    assert by_id["u-cara"]["status"] == "failed" and "500" in by_id["u-cara"]["error"]
    assert sum(record["status"] == "approved" for record in by_id.values()) == 3

    outage["on"] = False
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "4")) == 0
    assert all(record["status"] == "approved" for record in _records(data_dir))


def test_workers_run_calls_concurrently(data_dir, model, anthropic_fake):
    anthropic_fake.latency = 0.2
    assert step5.main(_args(data_dir, "--no-upload", "--workers", "6")) == 0
    assert anthropic_fake.max_in_flight >= 6


# --- compliance gate -------------------------------------------------------------------------------

def test_non_compliant_message_triggers_one_rewrite_that_quotes_the_failures(data_dir, model, anthropic_fake):
    model.message = "Hi {first}! CLICK HERE for the BEST dinner!!! see www.example.org/deal"
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0

    for record in _records(data_dir):
        assert record["status"] == "approved" and record["compliance_rewrite"] is True
        assert record["message"].startswith("Hi ") and "Dinner with good people" in record["message"]
    rewrites = [body for body in anthropic_fake.message_bodies if _purpose(body) == "rewrite"]
    assert len(rewrites) == 2
    prompt = _user_text(rewrites[0])
    assert "spam:" in prompt and "link:" in prompt


def test_message_that_stays_non_compliant_is_kept_as_needs_review(data_dir, model, anthropic_fake, capsys):
    model.message = model.rewrite = "Hi {first}! Free drinks all night at the OPEN BAR!!!"
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 0

    records = _records(data_dir)
    assert [record["status"] for record in records] == ["needs_review"] * 3
    for record in records:
        rules = {issue.split(":", 1)[0] for issue in record["compliance_issues"]}
        assert {"spam", "banned_content"} <= rules
        assert check_message(record["message"], first_name=record["user_name"].split()[0],
                             link=f"https://cucu.li/bookings/{record['event_id']}") == record["compliance_issues"]
    out = capsys.readouterr().out
    assert re.search(r"needs review\s+3", out)
    assert re.search(r"compliance failures: spam\s+3", out)
    assert re.search(r"estimated Claude cost \(USD\)\s+\d+\.\d{4}", out)
    assert re.search(r"estimated SMS cost \(USD\)\s+\d+\.\d{2}", out)
    assert re.search(r"Claude calls\s+12", out)


def test_typographic_characters_are_normalised_to_gsm(data_dir, model, anthropic_fake):
    model.message = "Hi {first} \u2014 you\u2019ll love this \u201ccozy\u201d dinner\u2026 Grab a seat:"
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "1")) == 0
    record = _records(data_dir)[0]
    assert record["sms_encoding"] == "GSM-7" and record["sms_segments"] == 1
    assert "you'll love this \"cozy\" dinner..." in record["message"]


# --- kill -9 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["match", "write", "check"])
def test_kill_9_in_each_phase_then_rerun_loses_nothing_and_adds_no_duplicate_rows(phase, data_dir, model,
                                                                                  anthropic_fake, airtable_fake):
    anthropic_fake.latency = 0.1
    output = data_dir / "processed" / "processed_messages.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "pipeline" / "step5_match_message.py"), *_args(data_dir, "--workers", "2")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and _calls_by_purpose(anthropic_fake).get(phase, 0) < 5:
            if output.exists():
                assert isinstance(json.loads(output.read_text()), list)  # valid JSON at every moment
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = _calls_by_purpose(anthropic_fake)
    assert 5 <= before.get(phase, 0) < len(_users()), "the run was not killed inside the phase"
    json.loads(output.read_text())
    store = MessageStore(output)  # folds in the journal, as the re-run will
    saved = {stage: sum(1 for record in store.ordered_records() if stage in record.get("stages", {}))
             for stage in ("match", "write", "check")}
    store.close()

    assert step5.main(_args(data_dir)) == 0

    # The re-run resumes where each member stopped: only stages not saved before the kill are paid again.
    after = _calls_by_purpose(anthropic_fake)
    for stage in ("match", "write", "check"):
        assert after.get(stage, 0) - before.get(stage, 0) == len(_users()) - saved[stage], stage
        # Lost work is at most the calls in flight (2 workers).
        assert after.get(stage, 0) <= len(_users()) + 2
    records = _records(data_dir)
    assert [record["user_id"] for record in records] == [user["id"] for user in _users()]
    assert all(record["status"] == "approved" and record["uploaded"] for record in records)
    user_ids = [row["User ID"] for row in airtable_fake.rows()]
    assert sorted(user_ids) == sorted(user["id"] for user in _users())
    assert not (data_dir / "processed" / "processed_messages.json.journal").exists()


# --- pure functions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, problem", [
    ({"event_index": 6, "campaign": "Fill the Table", "reasoning": "r", "confidence": 50}, "event_index"),
    ({"event_index": -1, "campaign": "Fill the Table", "reasoning": "r", "confidence": 50}, "event_index"),
    ({"event_index": "2", "campaign": "Fill the Table", "reasoning": "r", "confidence": 50}, "event_index"),
    ({"event_index": True, "campaign": "Fill the Table", "reasoning": "r", "confidence": 50}, "event_index"),
    ({"event_index": 2.0, "campaign": "Fill the Table", "reasoning": "r", "confidence": 50}, "event_index"),
    ({"event_index": 2, "campaign": "fill the table", "reasoning": "r", "confidence": 50}, "campaign"),
    ({"event_index": 2, "campaign": "Fill the Table", "reasoning": "r", "confidence": 101}, "confidence"),
    ({"event_index": 2, "campaign": "Fill the Table", "reasoning": "r", "confidence": "90"}, "confidence"),
    ({"event_index": 2, "campaign": "Fill the Table", "reasoning": " ", "confidence": 9}, "reasoning"),
    ([1, 2], "JSON object"),
])
def test_validate_match_names_each_problem(answer, problem):
    problems = asking.validate_match(answer, 6)
    assert len(problems) == 1 and problem in problems[0]


def test_validate_match_accepts_the_edges():
    for index, confidence in ((0, 0), (5, 100), (3, 55.5)):
        answer = {"event_index": index, "campaign": "Return to Table", "reasoning": "r", "confidence": confidence}
        assert asking.validate_match(answer, 6) == []


@pytest.mark.parametrize("answer, ok", [
    ({"message": "Hi Ann", "reasoning": "r", "confidence": 10}, True),
    ({"message": "   ", "reasoning": "r", "confidence": 10}, False),
    ({"message": None, "reasoning": "r", "confidence": 10}, False),
    ({"message": "Hi Ann", "reasoning": "r", "confidence": -1}, False),
    ({"message": "Hi Ann", "confidence": 10}, False),
])
def test_validate_generation(answer, ok):
    assert (asking.validate_generation(answer) == []) is ok


@pytest.mark.parametrize("answer, ok", [
    ({"quality_score": 90, "approved": True, "issues": [], "improved_message": None}, True),
    ({"quality_score": 40, "approved": False, "issues": ["long"], "improved_message": "Hi"}, True),
    ({"quality_score": 140, "approved": True, "issues": [], "improved_message": None}, False),
    ({"quality_score": 90, "approved": "yes", "issues": [], "improved_message": None}, False),
    ({"quality_score": 90, "approved": True, "issues": "none", "improved_message": None}, False),
    ({"quality_score": 90, "approved": True, "issues": [], "improved_message": 3}, False),
])
def test_validate_quality(answer, ok):
    assert (asking.validate_quality(answer) == []) is ok


def test_attach_link_appends_once_and_removes_a_link_the_model_wrote():
    link = "https://cucu.li/bookings/e1"
    assert texts.attach_link("Hi Ann! Join us:", link) == "Hi Ann! Join us: https://cucu.li/bookings/e1"
    assert texts.attach_link(f"Hi Ann! {link} Join us: {link}", link) == f"Hi Ann! Join us: {link}"


def test_create_phone_lookup_is_case_insensitive_and_keeps_the_first_phone():
    raw = [{"email": " Ann@X.com ", "phone": "+1"}, {"email": "ann@x.com", "phone": "+2"},
           {"email": "bo@x.com", "phone": ""}, "junk", {"email": None, "phone": "+3"}]
    assert step5.create_phone_lookup(raw) == {"ann@x.com": "+1"}


def test_an_unexpected_error_fails_one_member_not_the_run(data_dir, model, anthropic_fake, monkeypatch):
    real = step5.generate_message

    def broken_for_ben(user, *args, **kwargs):
        if user["id"] == "u-ben":
            raise KeyError("summary")
        return real(user, *args, **kwargs)

    monkeypatch.setattr(step5, "generate_message", broken_for_ben)
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 1  # Ben unfinished
    by_id = {record["user_id"]: record for record in _records(data_dir)}
    assert by_id["u-ben"]["status"] == "failed" and by_id["u-ben"]["error"] == "unexpected KeyError: 'summary'"
    assert by_id["u-maya"]["status"] == by_id["u-cara"]["status"] == "approved"


def test_a_failed_compliance_rewrite_keeps_the_message_for_review(data_dir, model, anthropic_fake):
    model.message = "Hi {first}! CLICK HERE for dinner"
    inner = model

    def rewrite_breaks(body):
        if _purpose(body) == "rewrite":
            return Fault("bad_request", message="rewrite refused")
        return inner(body)

    anthropic_fake.responder = rewrite_breaks
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "1")) == 0
    record = _records(data_dir)[0]
    assert record["status"] == "needs_review" and record["message"].startswith("Hi Maya! CLICK HERE")
    assert "rewrite refused" in record["rewrite_error"]
    assert {issue.split(":")[0] for issue in record["compliance_issues"]} == {"spam"}


def test_the_first_cached_call_goes_alone_so_the_others_read_the_cache(data_dir, model, anthropic_fake):
    anthropic_fake.latency = 0.2
    assert step5.main(_args(data_dir, "--no-upload", "--workers", "6")) == 0
    matches = [request for request in anthropic_fake.requests
               if request.json and _purpose(request.json) == "match"]
    arrivals = sorted(request.time for request in matches)
    assert arrivals[1] - arrivals[0] >= 0.2, "the second matching call started before the first was answered"
    assert arrivals[5] - arrivals[1] < 0.15, "after the first, the waiting workers call in parallel"


def test_offline_run_never_replaces_claude_records(data_dir, model, anthropic_fake):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    claude_records = _records(data_dir)
    assert step5.main(_args(data_dir, "--offline")) == 0
    assert _records(data_dir) == claude_records
    assert step5.main(_args(data_dir, "--offline", "--fresh", "--limit", "1")) == 0
    assert _records(data_dir)[0]["generator"] == "offline"
    assert _records(data_dir)[1:] == claude_records[1:]


def test_failed_regeneration_keeps_the_last_good_record(data_dir, model, anthropic_fake, monkeypatch):
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    good = _records(data_dir)

    monkeypatch.setattr(step5, "MATCHING_PROMPT", step5.MATCHING_PROMPT + " ")
    model.match_override = lambda summary: (
        {"event_index": 42, "campaign": "Fill the Table", "reasoning": "x", "confidence": 5}
        if summary.startswith("Ben") else None)
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0

    maya, ben = _records(data_dir)
    assert maya["fingerprint"] != good[0]["fingerprint"]
    # What the team sees is unchanged; only the failed stage is noted, so the next run retries it.
    unchanged = ("regeneration_error", "stages")
    assert {key: value for key, value in ben.items() if key not in unchanged} == \
        {key: value for key, value in good[1].items() if key not in unchanged}
    assert ben["stages"]["match"]["error"] == ben["regeneration_error"]
    assert "event_index must be an integer" in ben["regeneration_error"]

    model.match_override = None
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    ben = _records(data_dir)[1]
    assert ben["fingerprint"] != good[1]["fingerprint"] and "regeneration_error" not in ben
    assert ben["status"] == "approved"
    calls = len(anthropic_fake.message_bodies)
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    assert len(anthropic_fake.message_bodies) == calls


def test_exit_code_is_1_when_every_member_failed(data_dir, model, anthropic_fake):
    model.match_override = lambda summary: {"event_index": -3, "campaign": "x", "reasoning": "", "confidence": 5}
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 1
    assert [record["status"] for record in _records(data_dir)] == ["failed", "failed"]


def test_one_record_airtable_refuses_does_not_block_its_batch(data_dir, model, anthropic_fake, airtable_fake):
    import logging

    assert step5.main(_args(data_dir, "--no-upload")) == 0
    # Two rows now share u-maya's key (added after the run read the rows), so Airtable refuses any
    # upsert that contains u-maya.
    airtable_fake.add_row({"User ID": "u-maya"})
    airtable_fake.add_row({"User ID": "u-maya"})
    store = MessageStore(data_dir / "processed" / "processed_messages.json")
    uploader = Uploader(store, logging.getLogger("test"))
    for record in _records(data_dir):
        uploader.submit(record)
    uploader.close()
    store.close()
    by_id = {record["user_id"]: record for record in _records(data_dir)}
    assert by_id["u-maya"]["uploaded"] is False and "more than one record" in by_id["u-maya"]["upload_error"]
    assert all(record["uploaded"] for user_id, record in by_id.items() if user_id != "u-maya")
    assert uploader.failed == 1 and uploader.uploaded == len(by_id) - 1


def test_a_member_with_two_rows_is_held_and_the_others_upload(data_dir, model, anthropic_fake, airtable_fake):
    airtable_fake.add_row({"User ID": "u-maya"})
    airtable_fake.add_row({"User ID": "u-maya"})
    assert step5.main(_args(data_dir)) == 0
    by_id = {record["user_id"]: record for record in _records(data_dir)}
    assert "u-maya" not in by_id
    assert all(record["uploaded"] for record in by_id.values())
    assert [row["User ID"] for row in airtable_fake.rows()].count("u-maya") == 2


def test_uploads_at_airtables_real_rate_never_hit_429(tmp_path, airtable_fake, monkeypatch):
    import logging

    from utils import airtable_crud

    airtable_fake.rate_window = 1.0  # Airtable's real limit: 5 requests per second per base
    monkeypatch.setenv("AIRTABLE_MAX_RPS", "5")
    airtable_crud.reset_airtable_client()
    store = MessageStore(tmp_path / "processed_messages.json")
    uploader = Uploader(store, logging.getLogger("test"), max_wait_seconds=0.01)
    for index in range(200):
        record = {"user_id": f"u{index:03d}", "message": f"Hi {index}", "status": "approved"}
        store.put(record)
        uploader.submit(record)
    uploader.close()
    store.close()

    assert airtable_fake.rejected_429 == 0
    assert uploader.uploaded == 200 and len(airtable_fake.rows()) == 200
    batches = airtable_fake.requests_to("PATCH")
    assert all(len(request.json["records"]) <= 10 for request in batches)
    assert len(batches) <= 25
