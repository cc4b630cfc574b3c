"""The prompt-edit loop of step 5 (issue 14): safe prompts, --preview, --dry-run, --max-cost, --max-segments,
review.html. Real clients against the loopback fakes."""

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline import step5_match_message as step5
from pipeline.match_message import texts
from tests.test_step5_match_message import (  # noqa: F401 - fixtures used by name
    _args, _calls_by_purpose, _calls_by_purpose_of, _purpose, _records, _user_text, _users, airtable_fake, data_dir,
    model,
)
from utils.sms import sms_segments

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "5-match-message.md"


def _processed(data_dir: Path) -> Path:
    return data_dir / "processed"


def _cost_in_call_log(log_dir: Path, stamp_glob: str = "claude_calls_*.jsonl") -> float:
    """The list-price cost of every call in the call logs under log_dir."""
    from utils.ai_prompt import CallUsage

    total = 0.0
    for path in log_dir.glob(stamp_glob):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            usage = {k: entry["usage"].get(k, 0) for k in (
                "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
            total += CallUsage(**usage).cost_usd(entry.get("model") or step5.ai_prompt.resolve_model(None))
    return total


# --- 1. prompts safe to edit -----------------------------------------------------------------------

def test_unknown_placeholder_stops_at_start_up_with_one_line_and_no_call(data_dir, model, anthropic_fake,
                                                                         airtable_fake, monkeypatch, capsys):
    monkeypatch.setattr(step5, "MESSAGE_GENERATION_PROMPT", step5.MESSAGE_GENERATION_PROMPT + " {neighbourhood}")

    assert step5.main(_args(data_dir)) == 1

    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("Error: MESSAGE_GENERATION_PROMPT uses {neighbourhood}, which step 5 does not fill")
    assert "{first_name}" in err[-1]
    assert anthropic_fake.message_bodies == [] and airtable_fake.requests == []
    assert not (_processed(data_dir) / "processed_messages.json").exists()


def test_a_pasted_json_example_is_sent_as_written(data_dir, model, anthropic_fake, monkeypatch):
    example = 'Example answer: {"message": "Hi Ann! {{first_name}} stays", "meta": {"tags": ["a"]}}'
    monkeypatch.setattr(step5, "MESSAGE_GENERATION_PROMPT", step5.MESSAGE_GENERATION_PROMPT + "\n" + example)

    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0

    writes = [_user_text(body) for body in anthropic_fake.message_bodies if _purpose(body) == "write"]
    assert len(writes) == 2
    for text in writes:
        assert text.endswith('Example answer: {"message": "Hi Ann! {first_name} stays", "meta": {"tags": ["a"]}}')
        assert "{user_summary}" not in text and "{today}" not in text
    assert {record["status"] for record in _records(data_dir)} == {"approved"}


def _doc_placeholders() -> dict[str, set[str]]:
    """The placeholder table of docs/5, section "Editing the prompts": constant -> placeholders."""
    section = DOC.read_text().split("## Editing the prompts", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        match = re.match(r"\| `([A-Z_]+_PROMPT)` \|[^|]*\| (.*) \|$", line)
        if match:
            table[match.group(1)] = set(re.findall(r"`\{(\w+)\}`", match.group(2)))
    return table


def test_the_docs_placeholder_table_is_what_step_5_fills():
    assert _doc_placeholders() == {name: set(names) for name, names in step5.PROMPT_PLACEHOLDERS.items()}
    assert "today" in _doc_placeholders()["MATCHING_PROMPT"]


def test_each_prompt_uses_only_what_it_is_filled_with():
    from utils.prompt_template import placeholders_in

    step5.check_prompts()
    assert set(placeholders_in(step5.MATCHING_USER_PROMPT)) == {"user_summary", "shortlist_size"}
    # The budget is a placeholder of the writing prompt, so it reaches Claude.
    assert "max_body_chars" in placeholders_in(step5.MESSAGE_GENERATION_PROMPT)


def test_stage_fingerprints_cover_the_prompt_text(monkeypatch):
    before = step5.stage_settings_parts()
    monkeypatch.setattr(step5, "QUALITY_CHECK_PROMPT", step5.QUALITY_CHECK_PROMPT + " Be kind.")
    after = step5.stage_settings_parts()
    assert before["check"] != after["check"]
    assert before["match"] == after["match"] and before["write"] == after["write"]


# --- 2. --preview ------------------------------------------------------------------------------------

def test_preview_changes_nothing_else_and_shows_before_and_after(data_dir, model, anthropic_fake, airtable_fake,
                                                                 monkeypatch, capsys):
    assert step5.main(_args(data_dir)) == 0
    saved_path = _processed(data_dir) / "processed_messages.json"
    saved_bytes, saved_rows = saved_path.read_bytes(), airtable_fake.rows()
    airtable_requests, calls_before = len(airtable_fake.requests), len(anthropic_fake.message_bodies)
    # A message-prompt edit, and the model writes differently under it.
    monkeypatch.setattr(step5, "MESSAGE_GENERATION_PROMPT", step5.MESSAGE_GENERATION_PROMPT + " Mention the dessert.")
    model.message = "Hi {first}! Dessert is on us at this dinner. Take a seat:"

    assert step5.main(_args(data_dir, "--preview", "3")) == 0

    assert saved_path.read_bytes() == saved_bytes
    assert not saved_path.with_name(saved_path.name + ".journal").exists()
    assert len(airtable_fake.requests) == airtable_requests and airtable_fake.rows() == saved_rows
    new_calls = anthropic_fake.message_bodies[calls_before:]
    # The matching prompt is unchanged: the saved shortlists are reused.
    assert sorted(_purpose(body) for body in new_calls) == ["check"] * 3 + ["write"] * 3
    preview = json.loads((_processed(data_dir) / "preview_messages.json").read_text())
    assert len(preview) == 3 and all("Dessert is on us" in record["message"] for record in preview)
    saved = {record["user_id"]: record for record in json.loads(saved_bytes)}
    for record in preview:
        assert record["event_id"] == saved[record["user_id"]]["event_id"]  # the saved run's assignment
    text = capsys.readouterr().out
    for record in preview:
        assert f"{record['user_id']} (" in text
        assert f"saved: {saved[record['user_id']]['message']}" in text
        assert f"new:   {record['message']}" in text
    assert re.search(r"\d+ chars, 1 segment\(s\), GSM-7; approved, quality score 88", text)
    assert "preview cost: $" in text
    page = (_processed(data_dir) / "review.html").read_text()
    assert page.count('class="sms before"') == 3


def test_preview_sample_is_deterministic_and_spread(data_dir, model, anthropic_fake, monkeypatch):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    picks = []
    for _ in range(2):
        assert step5.main(_args(data_dir, "--preview", "4")) == 0
        picks.append([r["user_id"] for r in json.loads((_processed(data_dir) / "preview_messages.json").read_text())])
    assert picks[0] == picks[1] and len(set(picks[0])) == 4
    saved = {record["user_id"]: record for record in _records(data_dir)}
    # Spread: no event has two of the four members while another event of the saved run has none.
    events = [saved[user_id]["event_id"] for user_id in picks[0]]
    assert len(set(events)) == min(4, len({record["event_id"] for record in saved.values()}))


def test_preview_user_id_and_email_pick_the_members(data_dir, model, anthropic_fake):
    users = _users()
    assert step5.main(_args(data_dir, "--preview", "1", "--user-id", users[0]["id"],
                            "--email", users[5]["email"].upper())) == 0
    preview = json.loads((_processed(data_dir) / "preview_messages.json").read_text())
    assert [record["user_id"] for record in preview] == [users[0]["id"], users[5]["id"]]
    assert not (_processed(data_dir) / "processed_messages.json").exists()


# --- 3. --dry-run and --max-cost -------------------------------------------------------------------

#: How close a dry run's Claude estimate must be to the actual cost of the same run at the fake
#: (docs/5-match-message.md, "Cost before you spend").
ESTIMATE_TOLERANCE = 0.20


def _listing(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_dry_run_calls_nothing_writes_nothing_and_estimates_the_run(data_dir, model, anthropic_fake, airtable_fake,
                                                                    tmp_path, capsys):
    # A first run elsewhere leaves a call log, whose averages the estimate uses.
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    assert step5.main(_args(other, "--no-upload")) == 0
    before = _listing(data_dir)
    calls = len(anthropic_fake.message_bodies)

    capsys.readouterr()
    assert step5.main(_args(data_dir, "--dry-run")) == 0

    assert len(anthropic_fake.message_bodies) == calls
    # The run would upload, so the plan reads the team's rows like the real run: reads only.
    assert airtable_fake.requests and {request.method for request in airtable_fake.requests} == {"GET"}
    assert _listing(data_dir) == before
    text = capsys.readouterr().out
    assert "to match: 12 (new member: 12)" in text and "up to date: 0" in text
    estimate = float(re.search(r"total: 36 calls, .*?, \$(\d+\.\d+)", text).group(1))
    assert re.search(r"Estimated SMS cost: \d+ segments x \$0\.0083 = \$\d+\.\d\d", text)

    logs = data_dir.parent / "logs"
    for path in logs.glob("claude_calls_*.jsonl"):
        path.rename(path.with_name("earlier_" + path.name))
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    actual = _cost_in_call_log(logs)
    assert actual > 0
    assert abs(estimate - actual) <= ESTIMATE_TOLERANCE * actual, (estimate, actual)


def test_dry_run_counts_the_members_the_team_holds(data_dir, model, anthropic_fake, airtable_fake, capsys):
    assert step5.main(_args(data_dir)) == 0
    uploaded = sorted(row["User ID"] for row in airtable_fake.rows())
    airtable_fake.team_set_send_status(uploaded[0], "Sent")
    airtable_fake.team_edit_message(uploaded[1], "Hi! Edited by the team.")
    rows_before, calls = airtable_fake.snapshot(), len(anthropic_fake.message_bodies)
    capsys.readouterr()

    assert step5.main(_args(data_dir, "--dry-run", "--fresh")) == 0

    text = capsys.readouterr().out
    assert re.search(r"\bheld: 2\b", text), text
    assert airtable_fake.snapshot() == rows_before and len(anthropic_fake.message_bodies) == calls
    capsys.readouterr()
    assert step5.main(_args(data_dir, "--dry-run", "--fresh", "--no-upload")) == 0
    assert re.search(r"\bheld: 0\b", capsys.readouterr().out)


def _dry_run_after_an_edit(data_dir, monkeypatch, capsys, prompt: str, addition: str) -> str:
    """A full run, then `addition` appended to the prompt `prompt`, then a dry run: its printout."""
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    monkeypatch.setattr(step5, prompt, getattr(step5, prompt) + addition)
    capsys.readouterr()
    assert step5.main(_args(data_dir, "--dry-run", "--no-upload")) == 0
    return capsys.readouterr().out


def test_dry_run_plan_after_a_message_prompt_edit(data_dir, model, anthropic_fake, monkeypatch, capsys):
    text = _dry_run_after_an_edit(data_dir, monkeypatch, capsys, "MESSAGE_GENERATION_PROMPT", " Short.")
    assert "to match: 0" in text
    assert "to write: 12 (changed prompt or settings: 12)" in text
    assert re.search(r"match: 0 calls", text) and re.search(r"write: 12 calls", text)


def test_dry_run_after_an_offline_run_has_nothing_to_do(data_dir, capsys):
    assert step5.main(_args(data_dir, "--offline")) == 0
    records = _records(data_dir)
    capsys.readouterr()
    assert step5.main(_args(data_dir, "--offline", "--dry-run")) == 0
    text = capsys.readouterr().out
    assert f"up to date: {len(records)}" in text and "to write: 0" in text and "Claude: none (offline)" in text
    segments = sum(record.get("sms_segments", 0) for record in records)
    assert f"Estimated SMS cost: {segments} segments" in text
    capsys.readouterr()
    # The one-segment budget changes the write fingerprint: every message with an event is to write again.
    assert step5.main(_args(data_dir, "--offline", "--dry-run", "--max-segments", "1")) == 0
    written = sum(1 for record in records if record.get("message"))
    assert f"to write: {written} (changed prompt or settings: {written})" in capsys.readouterr().out


def test_max_cost_below_the_estimate_stops_before_starting(data_dir, model, anthropic_fake, capsys):
    assert step5.main(_args(data_dir, "--no-upload", "--max-cost", "0.000001")) == 1
    err = capsys.readouterr().err
    assert "above --max-cost $0.0000" in err and "nothing was started" in err
    assert anthropic_fake.message_bodies == []


def test_max_cost_reached_mid_run_stops_cleanly_and_keeps_finished_work(data_dir, model, anthropic_fake, capsys):
    # Answers far longer than the estimate assumes: the actual spend overtakes the limit mid-run.
    original = model.__call__

    def verbose(body):
        answer = original(body)
        if "reasoning" in answer:
            answer = {**answer, "reasoning": "very long reasoning " * 400}
        return answer

    anthropic_fake.responder = verbose
    assert step5.main(_args(data_dir, "--no-upload", "--workers", "1", "--max-cost", "0.15")) == 3
    captured = capsys.readouterr()
    last_line = captured.out.strip().splitlines()[-1]
    assert "stopped: the Claude spend $" in last_line and "reached --max-cost $0.1500" in last_line
    calls = len(anthropic_fake.message_bodies)
    assert 0 < calls < 36
    records = _records(data_dir)
    assert all(record["status"] != "failed" for record in records)
    assert (_processed(data_dir) / "review.html").exists()

    anthropic_fake.responder = model
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    # Finished work was kept: the re-run does not redo it.
    assert len(anthropic_fake.message_bodies) - calls < 36
    assert {record["status"] for record in _records(data_dir)} == {"approved"}


# --- 4. --max-segments -------------------------------------------------------------------------------

def test_one_segment_budget_offline(data_dir):
    assert step5.main(_args(data_dir, "--offline", "--max-segments", "1")) == 0
    messages = [record for record in _records(data_dir) if record.get("message")]
    assert messages
    for record in messages:
        if record["status"] == "approved":
            assert len(record["message"]) <= 160 and sms_segments(record["message"]) == 1
        else:
            assert any(issue.startswith(("length", "segments")) for issue in record["compliance_issues"])


def test_one_segment_budget_reaches_the_prompt_and_the_gate(data_dir, model, anthropic_fake):
    model.message = "Hi {first}! " + "A long and lovely dinner with good people and stories. " * 3
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2", "--max-segments", "1")) == 0
    writes = [_user_text(body) for body in anthropic_fake.message_bodies if _purpose(body) == "write"]
    budgets = {160 - 1 - len(f"https://cucu.li/bookings/{record['event_id']}") for record in _records(data_dir)}
    assert {int(re.search(r"At most (\d+) characters", text).group(1)) for text in writes} == budgets
    assert all("under 161 characters" in text for text in writes)
    # The long draft fails the one-segment gate and is rewritten (the rewrite is short).
    assert _calls_by_purpose(anthropic_fake)["rewrite"] == 2
    for record in _records(data_dir):
        assert len(record["message"]) <= 160 and record["sms_segments"] == 1


def test_the_budget_is_part_of_the_write_fingerprint(data_dir):
    assert step5.main(_args(data_dir, "--offline")) == 0
    assert step5.main(_args(data_dir, "--offline", "--max-segments", "1")) == 0
    assert texts.sms_chars_under(1) == 161 and texts.sms_chars_under(None) == texts.SMS_CHARS_UNDER
    stages = [record["stages"]["write"]["settings"] for record in _records(data_dir)]
    assert step5.main(_args(data_dir, "--offline")) == 0
    assert [record["stages"]["write"]["settings"] for record in _records(data_dir)] != stages


# --- 5. review.html ----------------------------------------------------------------------------------

def test_every_run_writes_the_review_page_with_before_and_after(data_dir, model, anthropic_fake, monkeypatch):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    page = (_processed(data_dir) / "review.html").read_text()
    records = _records(data_dir)
    assert page.count('<tr class="msg') == len(records)
    assert 'class="sms before"' not in page

    monkeypatch.setattr(step5, "MESSAGE_GENERATION_PROMPT", step5.MESSAGE_GENERATION_PROMPT + " Shorter.")
    model.message = "Hi {first}! Dinner soon, good people. Seat:"
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    page = (_processed(data_dir) / "review.html").read_text()
    assert page.count('<tr class="msg') == 2 and page.count('class="sms before"') == 2


# --- 4. --preview with --max-cost, estimates after a matching-prompt edit, the page's invitations -------

def test_preview_refuses_an_estimate_above_max_cost_before_any_call(data_dir, model, anthropic_fake, capsys):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    calls = len(anthropic_fake.message_bodies)
    capsys.readouterr()
    assert step5.main(_args(data_dir, "--preview", "3", "--fresh", "--max-cost", "0.000001")) == 1
    err = capsys.readouterr().err
    assert "above --max-cost $0.0000" in err and "nothing was started" in err and "Traceback" not in err
    assert len(anthropic_fake.message_bodies) == calls


def test_preview_stopped_at_max_cost_exits_3_without_a_traceback(data_dir, model, anthropic_fake, capsys):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    saved_bytes = (_processed(data_dir) / "processed_messages.json").read_bytes()
    original = model.__call__

    def verbose(body):
        answer = original(body)
        return {**answer, "reasoning": "very long reasoning " * 400} if "reasoning" in answer else answer

    anthropic_fake.responder = verbose
    calls = len(anthropic_fake.message_bodies)
    capsys.readouterr()
    # The estimate (3 members re-written and re-checked, short answers assumed) passes; the spend does not.
    assert step5.main(_args(data_dir, "--preview", "3", "--fresh", "--workers", "1", "--max-cost", "0.02")) == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "stopped: the Claude spend $" in captured.out and "reached --max-cost $0.0200" in captured.out
    assert 0 < len(anthropic_fake.message_bodies) - calls < 9
    assert (_processed(data_dir) / "processed_messages.json").read_bytes() == saved_bytes
    assert (_processed(data_dir) / "preview_messages.json").exists()
    assert "stopped at --max-cost" in (_processed(data_dir) / "review.html").read_text()


def test_matching_prompt_edit_estimates_rewrites_only_as_up_to(data_dir, model, anthropic_fake, monkeypatch, capsys):
    text = _dry_run_after_an_edit(data_dir, monkeypatch, capsys, "MATCHING_PROMPT", "\nPrefer small tables.")
    assert "to match: 12" in text and "to write: 0" in text and "may be rewritten: up to 12" in text
    assert re.search(r"write: 0 calls", text) and re.search(r"check: 0 calls", text)
    certain = float(re.search(r"total: 12 calls, .*?, \$(\d+\.\d+)", text).group(1))
    extra = float(re.search(r"and up to 24 more calls, \$(\d+\.\d+)", text).group(1))
    assert extra > 0

    # A limit between the certain part and certain + "up to" lets the run start; it spends only the match.
    calls = len(anthropic_fake.message_bodies)
    limit = f"{certain + extra / 2:.6f}"
    assert step5.main(_args(data_dir, "--no-upload", "--max-cost", limit)) == 0
    assert _calls_by_purpose_of(anthropic_fake.message_bodies[calls:]) == {"match": 12}


def test_preview_page_counts_the_saved_runs_invitations_per_event(data_dir, model, anthropic_fake):
    assert step5.main(_args(data_dir, "--no-upload")) == 0
    records = _records(data_dir)
    by_event = Counter(record.get("event_id") for record in records if record["status"] == "approved")
    member = next(record for record in records if by_event[record.get("event_id")] > 1)
    assert step5.main(_args(data_dir, "--preview", "1", "--user-id", member["user_id"])) == 0
    page = (_processed(data_dir) / "review.html").read_text()
    table = re.search(r'<table class="small" id="events-table">(.*?)</table>', page, re.S).group(1)
    row = next(row for row in table.split("<tr>") if f">{member['event_id']}<" in row)
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', row)[0] == str(by_event[member["event_id"]])
