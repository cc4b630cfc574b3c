"""Step 5 in the team's daily loop (issue 11), end to end with the real clients at the loopback fakes.

Held rows (Send Status, edited text, deleted rows), the pre-flight before any Claude call, an
unreachable Claude, exit codes, the opt-out re-check and the SMS footer.
"""

import json
import re

import pytest

from pipeline import step5_match_message as step5
from pipeline.match_message import asking, texts
from pipeline.match_message.team_loop import message_sha256
from tests.test_step5_match_message import (  # noqa: F401 - fixtures
    _args, _calls_by_purpose_of, _records, _users, airtable_fake, data_dir, model,
)
from utils import ai_prompt
from utils.airtable_fields import COLUMN_TYPES

NEXT_DAY = "2026-11-26T12:00:00Z"


def _args_on(data_dir, now: str, *extra: str) -> list[str]:
    args = _args(data_dir, *extra)
    args[args.index("--now") + 1] = now
    return args


def _by_id(data_dir) -> dict[str, dict]:
    return {record["user_id"]: record for record in _records(data_dir)}


def _row_of(snapshot: dict, user_id: str) -> dict:
    [record] = [r for r in snapshot.values() if r["fields"].get("User ID") == user_id]
    return record


def _stat(output: str, label: str) -> int:
    """One number from the run's statistics table."""
    [value] = re.findall(rf"^{re.escape(label)}\s{{3,}}(\d+)$", output, flags=re.MULTILINE)
    return int(value)


def _edit_the_message_prompt(monkeypatch) -> None:
    monkeypatch.setattr(step5, "MESSAGE_GENERATION_PROMPT", step5.MESSAGE_GENERATION_PROMPT + "\nBe brief.")


# --- held rows -------------------------------------------------------------------------------------

def test_rows_the_team_holds_stay_byte_identical_the_next_day_after_a_prompt_edit_and_fresh(
        data_dir, model, anthropic_fake, airtable_fake, monkeypatch, capsys):
    assert step5.main(_args(data_dir)) == 0
    first = _by_id(data_dir)
    assert all(r["uploaded_message_sha256"] == message_sha256(r["message"]) for r in first.values())
    airtable_fake.team_set_send_status("u-maya", "Sent")
    airtable_fake.team_edit_message("u-ben", "Hi Ben! The team wrote this one by hand.")
    before = airtable_fake.snapshot()
    capsys.readouterr()

    _edit_the_message_prompt(monkeypatch)
    model.message = "Hi {first}! A new dinner with good people. Grab your seat:"
    calls = len(anthropic_fake.message_bodies)
    assert step5.main(_args_on(data_dir, NEXT_DAY, "--fresh")) == 0

    after = airtable_fake.snapshot()
    for user_id in ("u-maya", "u-ben"):
        assert _row_of(after, user_id) == _row_of(before, user_id)
    assert _by_id(data_dir)["u-maya"] == first["u-maya"] and _by_id(data_dir)["u-ben"] == first["u-ben"]
    # Nobody else is held: their rows were rewritten in place with the new text.
    assert "A new dinner" in _row_of(after, "u-cara")["fields"]["Message"]
    assert _row_of(after, "u-cara")["id"] == _row_of(before, "u-cara")["id"]
    assert len(after) == len(_users())
    # No Claude call for a held member.
    write_prompts = [json.dumps(body) for body in anthropic_fake.message_bodies[calls:]
                     if _calls_by_purpose_of([body]).get("write")]
    assert len(write_prompts) == len(_users()) - 2
    assert not any("first name: Maya" in text or "first name: Ben" in text for text in write_prompts)
    out = capsys.readouterr().out
    assert "held u-maya: Send Status is 'Sent'" in out
    assert "held u-ben: the Message text differs from the text the pipeline last uploaded" in out
    assert _stat(out, "held by the team") == 2
    assert _stat(out, "  held: send status") == _stat(out, "  held: edited text") == 1


def test_a_row_given_back_is_regenerated_into_the_same_row(data_dir, model, anthropic_fake, airtable_fake,
                                                          monkeypatch):
    assert step5.main(_args(data_dir)) == 0
    airtable_fake.team_set_send_status("u-maya", "Do not send")
    record_id = airtable_fake.row_for("u-maya")["id"]
    _edit_the_message_prompt(monkeypatch)
    model.message = "Hi {first}! Another dinner with good people. Grab your seat:"
    assert step5.main(_args(data_dir, "--user-id", "u-maya")) == 0
    assert "Another" not in airtable_fake.row_for("u-maya")["fields"]["Message"]

    airtable_fake.team_set_send_status("u-maya", None)  # the team gives the row back
    assert step5.main(_args(data_dir, "--user-id", "u-maya")) == 0
    row = airtable_fake.row_for("u-maya")
    assert row["id"] == record_id and row["fields"]["Message"].startswith("Hi Maya! Another dinner")


def test_a_deleted_row_stays_deleted_unless_recreate_deleted(data_dir, model, anthropic_fake, airtable_fake,
                                                            capsys):
    assert step5.main(_args(data_dir)) == 0
    airtable_fake.team_delete_row("u-cara")
    calls = len(anthropic_fake.message_bodies)
    capsys.readouterr()
    assert step5.main(_args_on(data_dir, NEXT_DAY, "--fresh")) == 0
    assert airtable_fake.row_for("u-cara") is None
    assert "held u-cara: the team deleted the row" in capsys.readouterr().out

    assert step5.main(_args_on(data_dir, NEXT_DAY, "--recreate-deleted")) == 0
    assert airtable_fake.row_for("u-cara")["fields"]["Message"] == _by_id(data_dir)["u-cara"]["message"]
    assert len(airtable_fake.rows()) == len(_users())
    assert len(anthropic_fake.message_bodies) > calls


def test_the_team_send_status_is_never_written(data_dir, model, anthropic_fake, airtable_fake):
    assert step5.main(_args(data_dir)) == 0
    assert step5.main(_args(data_dir, "--fresh")) == 0
    bodies = [request.json for request in airtable_fake.requests_to("PATCH")]
    assert bodies and not any("Send Status" in record["fields"] for body in bodies for record in body["records"])


# --- pre-flight ------------------------------------------------------------------------------------

@pytest.mark.parametrize("variable, value, said", [
    ("AIRTABLE_API_KEY", "wrong-airtable-token-for-tests", "AIRTABLE_API_KEY"),
    ("AIRTABLE_BASE_ID", "appNOSUCHBASE0001", "appNOSUCHBASE0001"),
    ("AIRTABLE_MESSAGES_TABLE_ID", "tblNOSUCHTABLE001", "tblNOSUCHTABLE001"),
])
def test_preflight_stops_a_wrong_token_base_or_table_before_any_claude_call(
        data_dir, model, anthropic_fake, airtable_fake, monkeypatch, capsys, variable, value, said):
    monkeypatch.setenv(variable, value)
    assert step5.main(_args(data_dir)) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and said in err and "Traceback" not in err
    assert anthropic_fake.message_bodies == []
    assert airtable_fake.rows() == []


def test_preflight_names_every_missing_column_before_any_claude_call(data_dir, model, anthropic_fake,
                                                                     airtable_fake, capsys):
    airtable_fake.set_schema({name: kind for name, kind in COLUMN_TYPES.items()
                              if name not in ("Review Reasons", "Fingerprint")})
    assert step5.main(_args(data_dir)) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and '"Review Reasons"' in err and '"Fingerprint"' in err
    assert anthropic_fake.message_bodies == []


def test_no_upload_skips_the_preflight(data_dir, model, anthropic_fake, airtable_fake, monkeypatch):
    monkeypatch.setenv("AIRTABLE_API_KEY", "wrong-airtable-token-for-tests")
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    assert airtable_fake.requests == []


# --- unreachable Claude and exit codes -------------------------------------------------------------

def test_an_unreachable_claude_stops_the_run_and_keeps_finished_work(data_dir, model, anthropic_fake, monkeypatch,
                                                                     capsys):
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "2")) == 0
    finished = _by_id(data_dir)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # a closed port
    ai_prompt.reset_client()
    capsys.readouterr()
    assert step5.main(_args(data_dir, "--no-upload", "--workers", "1")) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Claude" in errors[0]
    assert "Re-run step 5" in errors[0] and "nothing is paid for again" in errors[0]
    # Finished work is kept; the run stopped at once: nobody else got a record, not even a failed one.
    assert _by_id(data_dir) == finished


def test_an_unreachable_claude_is_not_retried_like_a_transient_failure():
    assert not asking.is_transient(ai_prompt.ClaudeUnreachableError("closed port", failures=3))
    assert asking.is_transient(ai_prompt.ClaudeError("could not connect"))


def test_a_partial_upload_failure_exits_non_zero_and_says_a_rerun_finishes_it(
        data_dir, model, anthropic_fake, airtable_fake, capsys):
    airtable_fake.fail_next(422, times=2, methods=["PATCH"])  # the batch, then its first record alone
    assert step5.main(_args(data_dir)) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 member not uploaded" in last and "Re-run step 5" in last and "paid for again" in last
    calls = len(anthropic_fake.message_bodies)
    assert step5.main(_args(data_dir)) == 0
    assert len(anthropic_fake.message_bodies) == calls
    assert len(airtable_fake.rows()) == len(_users())


# --- opt-outs ----------------------------------------------------------------------------------------

def test_an_opt_out_added_after_step_1_stops_the_message_and_clears_the_pipelines_row(
        data_dir, model, anthropic_fake, airtable_fake, capsys):
    assert step5.main(_args(data_dir)) == 0
    raw = {user["id"]: user for user in json.loads((data_dir / "raw" / "users.json").read_text())}
    maya_phone = raw["u-maya"]["phone"]  # "+1212555NNNN", written differently in the opt-out file
    formatted = f"({maya_phone[2:5]}) {maya_phone[5:8]}-{maya_phone[8:]}"
    (data_dir / "raw" / "opt_outs.json").write_text(json.dumps([formatted, {"email": " BEN@example.com "}]))
    calls = len(anthropic_fake.message_bodies)
    capsys.readouterr()
    assert step5.main(_args(data_dir, "--fresh")) == 0
    records = _by_id(data_dir)
    assert records["u-maya"]["status"] == records["u-ben"]["status"] == "opted_out"
    assert records["u-maya"]["message"] == "" and records["u-cara"]["status"] == "approved"
    for user_id in ("u-maya", "u-ben"):
        row = airtable_fake.row_for(user_id)["fields"]
        assert row["Status"] == "opted_out" and not row.get("Message")
    write_prompts = [json.dumps(body) for body in anthropic_fake.message_bodies[calls:]
                     if _calls_by_purpose_of([body]).get("write")]
    assert len(write_prompts) == len(_users()) - 2
    assert not any("first name: Maya" in text or "first name: Ben" in text for text in write_prompts)
    assert _stat(capsys.readouterr().out, "opted out (no message)") == 2


# --- the SMS footer ------------------------------------------------------------------------------------

def test_the_footer_goes_before_the_link_and_counts_in_the_budget(monkeypatch):
    link = "https://cucu.li/bookings/e1"
    without = texts.body_budget(link)
    monkeypatch.setenv("SMS_FOOTER", "Reply STOP to opt out")
    assert texts.body_budget(link) == without - len("Reply STOP to opt out") - 1
    assert texts.attach_link("Hi Ann! Join us:", link) == f"Hi Ann! Join us: Reply STOP to opt out {link}"
    # A text that already ends with the footer does not get it twice.
    assert texts.attach_link("Hi Ann! Join us: Reply STOP to opt out", link).count("Reply STOP") == 1


def test_the_footer_is_in_every_message_and_a_changed_footer_rewrites(data_dir, model, anthropic_fake, monkeypatch):
    monkeypatch.setenv("SMS_FOOTER", "Reply STOP to opt out")
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 0
    records = _records(data_dir)
    assert all(r["message"].endswith(f"Reply STOP to opt out https://cucu.li/bookings/{r['event_id']}")
               and len(r["message"]) < texts.SMS_CHARS_UNDER and r["status"] == "approved" for r in records)
    write_prompts = [json.dumps(body) for body in anthropic_fake.message_bodies
                     if _calls_by_purpose_of([body]).get("write")]
    budgets = {texts.body_budget(f"https://cucu.li/bookings/{r['event_id']}") for r in records}
    assert write_prompts and all(any(f"At most {budget} characters" in text for budget in budgets)
                                 for text in write_prompts)
    calls = len(anthropic_fake.message_bodies)
    monkeypatch.setenv("SMS_FOOTER", "Txt STOP to end")
    assert step5.main(_args(data_dir, "--no-upload", "--limit", "3")) == 0
    assert _calls_by_purpose_of(anthropic_fake.message_bodies[calls:]).get("write") == 3
    assert all("Txt STOP to end https://" in r["message"] for r in _records(data_dir))


def test_offline_templates_fit_the_footer_in_the_budget(data_dir, monkeypatch):
    monkeypatch.setenv("SMS_FOOTER", "Reply STOP to opt out of these texts")
    assert step5.main(_args(data_dir, "--offline")) == 0
    records = [r for r in _records(data_dir) if r.get("message")]
    assert records and all("Reply STOP to opt out of these texts https://" in r["message"] for r in records)
    assert all(len(r["message"]) < texts.SMS_CHARS_UNDER for r in records)


def test_held_invitations_count_against_the_events_cap(data_dir, model, anthropic_fake, airtable_fake, capsys):
    assert step5.main(_args(data_dir)) == 0
    maya = _by_id(data_dir)["u-maya"]
    airtable_fake.team_set_send_status("u-maya", "Scheduled")
    capsys.readouterr()
    assert step5.main(_args_on(data_dir, NEXT_DAY, "--fresh")) == 0
    out = capsys.readouterr().out
    [row] = [line.split() for line in out.splitlines() if f"({maya['event_id']})" in line and "rank" not in line]
    invites, earlier = int(row[-7]), int(row[-6])  # event, invites, earlier, free seats, cap, rank 1..3
    others = sum(1 for r in _records(data_dir) if r.get("event_id") == maya["event_id"] and r["user_id"] != "u-maya"
                 and r["status"] in ("approved", "needs_review"))
    assert earlier == 1 and invites == others + 1


def test_without_a_send_status_column_edited_text_is_still_held(data_dir, model, anthropic_fake, airtable_fake,
                                                                monkeypatch, capsys):
    airtable_fake.set_schema(dict(COLUMN_TYPES))  # no Send Status column
    assert step5.main(_args(data_dir)) == 0
    assert 'has no "Send Status" column' in capsys.readouterr().out
    airtable_fake.team_edit_message("u-cara", "Hi Cara! Typed by the team.")
    before = airtable_fake.row_for("u-cara")
    _edit_the_message_prompt(monkeypatch)
    model.message = "Hi {first}! Changed text. Grab your seat:"
    assert step5.main(_args(data_dir, "--fresh")) == 0
    assert airtable_fake.row_for("u-cara") == before
    assert "Changed text" in airtable_fake.row_for("u-ben")["fields"]["Message"]
