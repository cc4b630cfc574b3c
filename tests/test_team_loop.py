"""pipeline.match_message.team_loop: who holds a row, as pure rules and end to end through the fake Airtable."""

import hashlib

import pytest

from pipeline.match_message.team_loop import (
    DELETED_ROW,
    DUPLICATE_ROWS,
    EDITED_TEXT,
    HOLD_KINDS,
    SEND_STATUS,
    UNKNOWN_ROW,
    HoldReason,
    classify_member,
    held_members,
    hold_counts,
    hold_log_lines,
    last_uploaded_sha256,
    message_sha256,
    prior_invites_by_event,
)
from utils.airtable_crud import fetch_member_rows, upsert_message_records
from utils.airtable_fields import COLUMN_TYPES, AirtableRow

TEXT = "Hi Ana! Salsa Night Fri 8pm, 4 seats left: https://cucu.li/bookings/e7"


def uploaded_record(user_id: str = "u1", message: str = TEXT, event_id: str = "e7", **overrides) -> dict:
    """A saved record as step 5 keeps it after a successful upload."""
    record = {"user_id": user_id, "event_id": event_id, "message": message, "status": "approved",
              "uploaded": True, "airtable_id": f"rec_{user_id}", "uploaded_message_sha256": message_sha256(message)}
    record.update(overrides)
    return record


def row(user_id: str = "u1", message=TEXT, **overrides) -> AirtableRow:
    return AirtableRow(record_id=overrides.pop("record_id", f"rec_{user_id}"), user_id=user_id,
                       message=message, **overrides)


# --------------------------------------------------------------------------- the hash


def test_message_sha256_is_the_sha256_of_the_utf8_text():
    assert message_sha256("Café ☕") == hashlib.sha256("Café ☕".encode("utf-8")).hexdigest()


def test_message_sha256_ignores_only_line_ending_style_and_surrounding_whitespace():
    assert message_sha256("Hi\r\nthere\n") == message_sha256("Hi\nthere") == message_sha256("  Hi\nthere ")
    assert message_sha256("Hi there") != message_sha256("Hi  there")
    assert message_sha256("Hi there") != message_sha256("hi there")


def test_last_uploaded_sha256():
    assert last_uploaded_sha256(None) is None
    assert last_uploaded_sha256({"message": TEXT, "uploaded": False}) is None
    assert last_uploaded_sha256({"message": "new", "uploaded": False, "uploaded_message_sha256": "abc"}) == "abc"
    # A record from before the hash was kept: what it uploaded is its own text.
    assert last_uploaded_sha256({"message": TEXT, "uploaded": True}) == message_sha256(TEXT)


# --------------------------------------------------------------------------- one member


def test_a_row_with_any_send_status_is_held():
    reason = classify_member(uploaded_record(), row(send_status="Do not send"))
    assert reason == HoldReason(SEND_STATUS, "Send Status is 'Do not send'")


def test_send_status_wins_over_an_untouched_text():
    assert classify_member(uploaded_record(), row(send_status="Sent")).kind == SEND_STATUS


def test_edited_text_is_held():
    reason = classify_member(uploaded_record(), row(message=TEXT.replace("Hi Ana!", "Hey Ana,")))
    assert reason.kind == EDITED_TEXT and "differs" in str(reason)


def test_an_edit_is_still_seen_after_the_record_was_regenerated():
    # The record now holds a new, not yet uploaded text; the row still holds the team's edit of the old one.
    record = uploaded_record(message="a new draft", uploaded=False, uploaded_message_sha256=message_sha256(TEXT))
    assert classify_member(record, row(message=TEXT + " See you!")).kind == EDITED_TEXT
    assert classify_member(record, row(message=TEXT)) is None


def test_an_untouched_row_is_not_held_even_with_a_trailing_newline():
    assert classify_member(uploaded_record(), row(message=TEXT + "\n")) is None


@pytest.mark.parametrize("cleared", [None, "", "  \n"])
def test_a_row_whose_text_the_team_cleared_is_given_back(cleared):
    assert classify_member(uploaded_record(), row(message=cleared)) is None


def test_a_deleted_row_stays_deleted_unless_asked():
    reason = classify_member(uploaded_record(), None)
    assert reason.kind == DELETED_ROW
    assert "row rec_u1 the pipeline uploaded" in str(reason) and "--recreate-deleted" in str(reason)
    assert classify_member(uploaded_record(), None, recreate_deleted=True) is None


def test_a_deleted_row_is_seen_from_the_airtable_id_alone():
    assert classify_member({"user_id": "u1", "airtable_id": "rec1", "uploaded": False}, None).kind == DELETED_ROW


def test_a_member_never_uploaded_and_without_a_row_is_free():
    assert classify_member(None, None) is None
    assert classify_member({"user_id": "u1", "message": TEXT, "uploaded": False}, None) is None


def test_a_row_this_data_folder_never_uploaded_is_held():
    assert classify_member(None, row(message="typed by hand")).kind == UNKNOWN_ROW
    never_uploaded = {"user_id": "u1", "message": "our draft", "uploaded": False}
    reason = classify_member(never_uploaded, row(message="someone else's text", record_id="recX"))
    assert reason.kind == UNKNOWN_ROW and "recX" in str(reason)


def test_an_upload_that_went_through_before_a_crash_is_recognised():
    # The run stopped after Airtable saved the row and before the record said so: same text, ours.
    assert classify_member({"user_id": "u1", "message": TEXT, "uploaded": False}, row()) is None


def test_several_rows_for_one_member_are_held():
    reason = classify_member(uploaded_record(), row(duplicate_record_ids=("recB",)))
    assert reason.kind == DUPLICATE_ROWS and "2 rows in Airtable (rec_u1, recB)" in str(reason)


# --------------------------------------------------------------------------- many members


def test_held_members_lists_each_held_member_with_its_reason():
    saved = {"u1": uploaded_record("u1"), "u2": uploaded_record("u2"), "u3": uploaded_record("u3"),
             "u4": uploaded_record("u4"), "u5": {"user_id": "u5", "message": "draft", "uploaded": False}}
    rows = {"u1": row("u1", send_status="Sent"), "u2": row("u2", message="edited"), "u4": row("u4"),
            "u9": row("u9", message="by hand")}

    held = held_members(saved, rows)

    assert {user_id: reason.kind for user_id, reason in held.items()} == {
        "u1": SEND_STATUS, "u2": EDITED_TEXT, "u3": DELETED_ROW, "u9": UNKNOWN_ROW}
    assert list(held) == ["u1", "u2", "u3", "u9"]
    assert hold_counts(held) == {DUPLICATE_ROWS: 0, SEND_STATUS: 1, DELETED_ROW: 1, EDITED_TEXT: 1, UNKNOWN_ROW: 1}
    assert list(hold_counts(held)) == list(HOLD_KINDS)
    assert hold_log_lines(held)[0] == "held u1: Send Status is 'Sent'"


def test_held_members_only_for_the_members_whose_rows_were_read():
    saved = {"u1": uploaded_record("u1"), "u2": uploaded_record("u2")}
    assert held_members(saved, {"u1": row("u1")}, user_ids=["u1"]) == {}
    assert list(held_members(saved, {"u1": row("u1")})) == ["u2"]  # u2's row was not read: looks deleted


def test_prior_invites_count_what_stays_in_airtable():
    saved = {
        "held_sent": uploaded_record("held_sent", event_id="e1"),
        "held_moved": uploaded_record("held_moved", event_id="e1"),  # the team's row now invites to e2
        "deleted": uploaded_record("deleted", event_id="e1"),
        "kept": uploaded_record("kept", event_id="e1"),
        "regen": uploaded_record("regen", event_id="e1"),
        "new": {"user_id": "new", "event_id": "e1", "message": "draft", "uploaded": False},
    }
    rows = {"held_sent": row("held_sent", send_status="Sent", event_id="e1"),
            "held_moved": row("held_moved", send_status="Approved", event_id="e2"),
            "kept": row("kept", event_id="e1"), "regen": row("regen", event_id="e1"),
            "stranger": row("stranger", message="by hand", event_id="e3")}
    held = held_members(saved, rows)
    assert set(held) == {"held_sent", "held_moved", "deleted", "stranger"}

    counts = prior_invites_by_event(saved, rows, held, regenerating={"regen"})

    assert counts == {"e1": 2, "e2": 1, "e3": 1}  # held_sent + kept; held_moved; stranger


def test_prior_invites_without_airtable_use_the_uploaded_flag():
    saved = {"a": uploaded_record("a", event_id="e1"),
             "b": {"user_id": "b", "event_id": "e1", "message": "draft", "uploaded": False}}
    assert prior_invites_by_event(saved, None, {}) == {"e1": 1}
    assert prior_invites_by_event(saved, None, {}, regenerating=["a"]) == {}


# --------------------------------------------------------------------------- end to end through the fake


def test_the_team_loop_through_the_fake_airtable(airtable_fake):
    """Upload, let the team work on the rows, read them back, hold, re-upload the others: held rows untouched."""
    airtable_fake.set_schema({**COLUMN_TYPES, "Send Status": "singleSelect"})
    members = [f"u{index}" for index in range(1, 7)]
    first_run = [{"user_id": user_id, "event_id": "e7", "message": f"Hi {user_id}! {TEXT}", "status": "approved"}
                 for user_id in members]
    ids = upsert_message_records(first_run)
    # What step 5 keeps in each record after a successful upload.
    saved = {record["user_id"]: {**record, "uploaded": True, "airtable_id": airtable_id,
                                 "uploaded_message_sha256": message_sha256(record["message"])}
             for record, airtable_id in zip(first_run, ids)}

    airtable_fake.team_set_send_status("u1", "Sent")
    airtable_fake.team_edit_message("u2", "Hi u2, our own words: https://cucu.li/bookings/e7")
    airtable_fake.team_delete_row("u3")
    airtable_fake.team_edit_message("u5", None)          # given back: text cleared, no Send Status
    airtable_fake.team_set_send_status("u6", "Approved")
    airtable_fake.team_set_send_status("u6", None)        # given back: status cleared, text untouched
    airtable_fake.add_row({"User ID": "u7", "Message": "a row from another data folder"})
    before = airtable_fake.snapshot()

    rows = fetch_member_rows(members + ["u7"])
    held = held_members(saved, rows, user_ids=members + ["u7"])

    assert {user_id: reason.kind for user_id, reason in held.items()} == {
        "u1": SEND_STATUS, "u2": EDITED_TEXT, "u3": DELETED_ROW, "u7": UNKNOWN_ROW}

    # The next day, with a new prompt and --fresh: every member not held is regenerated and uploaded.
    second_run = [{"user_id": user_id, "event_id": "e8", "message": f"New text for {user_id}", "status": "approved"}
                  for user_id in members + ["u7"] if user_id not in held]
    upsert_message_records(second_run)

    after = airtable_fake.snapshot()
    held_ids = [record_id for record_id, record in before.items() if record["fields"]["User ID"] in held]
    assert len(held_ids) == 3  # u1, u2, u7 (u3's row is gone)
    for record_id in held_ids:
        assert after[record_id] == before[record_id]  # byte-identical: every field, the id, the created time
    assert airtable_fake.row_for("u3") is None
    assert {user_id: airtable_fake.row_for(user_id)["fields"]["Message"] for user_id in ("u4", "u5", "u6")} == {
        "u4": "New text for u4", "u5": "New text for u5", "u6": "New text for u6"}
    assert len(after) == len(before)
