"""utils.airtable_crud with the real pyairtable client against the loopback fake Airtable API."""

import json
import logging
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.fakes.airtable_server import FAKE_BASE_ID, FAKE_TABLE_ID, FakeAirtable
from tests.helpers import subprocess_env
from utils import airtable_crud
from utils.airtable_crud import (
    AirtableConfigError,
    AirtableError,
    create_message_record,
    delete_message_record,
    fetch_member_rows,
    get_message_record,
    init_airtable_client,
    preflight_check,
    update_message_record,
    upsert_message_records,
)
from utils.airtable_fields import COLUMN_TYPES, MESSAGES_FIELD_MAPPING, AirtableRow, message_record_to_fields
from utils.errors import PipelineError
from utils.paths import PROJ_ROOT


def message_record(user_id: str = "u1", **overrides) -> dict:
    record = {
        "user_name": "Ana Lopez", "event_name": "Salsa Night", "user_id": user_id, "event_id": "e7",
        "user_email": "ana@example.com", "user_phone": "+14155550100",
        "user_summary": "Loves dancing.", "event_summary": "Beginner salsa, 8 of 12 seats taken.",
        "message": "Hi Ana! Salsa Night Fri, 4 seats left: https://cucu.li/bookings/e7",
        "match_reasoning": "Dance interest.", "message_reasoning": "Urgency and a name.",
        "confidence_percentage": 85, "campaign": "Fill the Table",
        "quality_check_response": {"approved": True, "issues": []},
        "event_date": "2026-12-01",  # not mapped: must not be sent
    }
    record.update(overrides)
    return record


def full_schema(send_status: bool = True) -> dict:
    """Every mapped column with its type, and the team's Send Status (a single select in Airtable)."""
    return {**COLUMN_TYPES, **({"Send Status": "singleSelect"} if send_status else {})}


# --------------------------------------------------------------------------- configuration


def test_missing_settings_name_every_variable_before_any_request(airtable_fake, monkeypatch):
    monkeypatch.delenv("AIRTABLE_API_KEY")
    monkeypatch.delenv("AIRTABLE_MESSAGES_TABLE_ID")
    with pytest.raises(AirtableConfigError) as caught:
        create_message_record(message_record())
    message = str(caught.value)
    assert "AIRTABLE_API_KEY" in message and "AIRTABLE_MESSAGES_TABLE_ID" in message
    assert "AIRTABLE_BASE_ID" not in message.split(":")[0] and ".env" in message
    assert isinstance(caught.value, PipelineError)
    assert airtable_fake.requests == []


def test_malformed_base_id_is_reported(monkeypatch):
    monkeypatch.setenv("AIRTABLE_API_KEY", "pat123")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "my-base")
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", "tblX")
    with pytest.raises(AirtableConfigError, match="AIRTABLE_BASE_ID='my-base' is not a base id"):
        airtable_crud.check_airtable_config()


def test_client_uses_only_the_environment(airtable_fake):
    api, base, table = init_airtable_client()
    assert api.api_key == airtable_fake.token
    assert base.id == FAKE_BASE_ID and table.name == FAKE_TABLE_ID
    assert str(api.endpoint_url) == airtable_fake.url
    assert init_airtable_client()[2] is table  # one client per process
    assert api.timeout == airtable_crud.TIMEOUT


# --------------------------------------------------------------------------- mapping


def test_field_mapping():
    fields = message_record_to_fields(message_record(confidence_percentage="85%", sms_segments=2,
                                                     compliance_issues=["too long", "2 emoji"],
                                                     status=None))
    assert fields == {
        "User Name": "Ana Lopez", "Event Name": "Salsa Night", "User ID": "u1", "Event ID": "e7",
        "User Email": "ana@example.com", "User Phone": "+14155550100",
        "User Summary": "Loves dancing.", "Event Summary": "Beginner salsa, 8 of 12 seats taken.",
        "Message": "Hi Ana! Salsa Night Fri, 4 seats left: https://cucu.li/bookings/e7",
        "Reasoning": "Match: Dance interest.\n\nMessage: Urgency and a name.",
        "Confidence": 85, "Campaign": "Fill the Table",
        "Quality Check": json.dumps({"approved": True, "issues": []}, indent=2),
        "SMS Segments": 2, "Compliance Issues": "too long\n2 emoji",
    }


@pytest.mark.parametrize("name", ["reasoning", "match_reasoning", "message_reasoning"])
def test_each_reasoning_name_maps_to_reasoning(name):
    assert message_record_to_fields({"user_id": "u1", name: "Because."}) == {"User ID": "u1", "Reasoning": "Because."}


def test_every_mapped_column_has_a_type_and_the_user_id_column_is_the_key():
    assert set(MESSAGES_FIELD_MAPPING.values()) == set(COLUMN_TYPES)
    assert airtable_crud.USER_ID_COLUMN == "User ID"
    for name in ("user_name", "event_name", "user_id", "event_id", "user_email", "user_phone", "user_summary",
                 "event_summary", "message", "reasoning", "confidence_percentage", "campaign",
                 "quality_check_response", "status", "sms_encoding", "sms_segments", "compliance_issues",
                 "generator", "fingerprint"):
        assert name in MESSAGES_FIELD_MAPPING


# --------------------------------------------------------------------------- CRUD round trip


def test_round_trip(airtable_fake):
    airtable_fake.set_schema(full_schema())

    ok, record_id = create_message_record(message_record())
    assert ok and record_id.startswith("rec")
    sent = airtable_fake.requests_to("POST")[0].json
    assert sent["fields"] == message_record_to_fields(message_record())
    assert "event_date" not in json.dumps(sent)
    assert sent["typecast"] is False

    assert get_message_record(record_id)["fields"]["Message"].startswith("Hi Ana!")
    assert update_message_record(record_id, {"Status": "sent"}) is True
    assert airtable_fake.requests_to("PATCH", record_id)[0].json["fields"] == {"Status": "sent"}
    assert get_message_record(record_id)["fields"]["Status"] == "sent"
    assert delete_message_record(record_id) is True
    assert get_message_record(record_id) is None
    assert airtable_fake.rows() == []


def test_missing_records_give_the_spec_failure_values(airtable_fake):
    assert get_message_record("rec00000000000404") is None
    assert update_message_record("rec00000000000404", {"Status": "x"}) is False
    assert delete_message_record("rec00000000000404") is False


def test_listing_pages_through_offsets(airtable_fake):
    for index in range(7):
        airtable_fake.add_row({"User ID": f"u{index}"})
    _, _, table = init_airtable_client()
    rows = table.all(page_size=3)
    assert [r["fields"]["User ID"] for r in rows] == [f"u{i}" for i in range(7)]
    offsets = [r.query.get("offset") for r in airtable_fake.requests_to("GET")]
    assert offsets[0] is None and all(offsets[1:]) and len(offsets) == 3


# --------------------------------------------------------------------------- upsert


def test_upsert_twice_leaves_one_row_per_user(airtable_fake):
    airtable_fake.set_schema(full_schema())
    records = [message_record(f"u{i}", message=f"first {i}") for i in range(25)]

    first_ids = upsert_message_records(records)

    assert len(first_ids) == 25 and len(set(first_ids)) == 25
    batches = airtable_fake.requests_to("PATCH")
    assert [len(r.json["records"]) for r in batches] == [10, 10, 5]
    assert all(r.json["performUpsert"] == {"fieldsToMergeOn": ["User ID"]} for r in batches)

    again = [message_record(f"u{i}", message=f"second {i}") for i in reversed(range(25))]
    second_ids = upsert_message_records(again)

    assert second_ids == list(reversed(first_ids))
    rows = airtable_fake.rows()
    assert len(rows) == 25
    assert sorted(r["Message"] for r in rows) == sorted(f"second {i}" for i in range(25))


def test_upsert_with_a_user_twice_in_one_upload(airtable_fake, caplog):
    with caplog.at_level(logging.WARNING, logger="utils.airtable_crud"):
        ids = upsert_message_records([message_record("u1", message="old"), message_record("u2"),
                                      message_record("u1", message="new")])
    assert ids[0] == ids[2] != ids[1]
    assert sorted(r["Message"] for r in airtable_fake.rows() if r["User ID"] == "u1") == ["new"]
    assert "more than once" in caplog.text


def test_upsert_needs_a_user_id_before_any_request(airtable_fake):
    with pytest.raises(AirtableError, match="message record 1 has no user_id"):
        upsert_message_records([message_record("u1"), message_record(None)])
    assert airtable_fake.requests == []
    assert upsert_message_records([]) == []


# --------------------------------------------------------------------------- rate limit and retries


def test_burst_over_the_rate_limit_succeeds_through_retries(airtable_fake, monkeypatch):
    monkeypatch.setenv("AIRTABLE_MAX_RPS", "0")  # no client throttle: let the burst hit the limit
    results = []

    def create(index: int) -> None:
        results.append(create_message_record(message_record(f"burst{index}")))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert airtable_fake.rejected_429 >= 1  # the limit was hit, and the POSTs were retried
    assert all(ok for ok, _ in results) and len(results) == 12
    assert len(airtable_fake.rows()) == 12


def test_throttle_keeps_under_five_requests_per_second(airtable_fake, monkeypatch):
    airtable_fake.rate_window = 1.0  # the real limit, in real time
    monkeypatch.setenv("AIRTABLE_MAX_RPS", "5")
    started = time.monotonic()
    for index in range(7):
        assert create_message_record(message_record(f"t{index}"))[0]
    elapsed = time.monotonic() - started

    assert airtable_fake.rejected_429 == 0
    assert elapsed >= 1.2  # 7 requests at most 5 per second
    times = [r.time for r in airtable_fake.requests]
    assert all(later - earlier >= 0.15 for earlier, later in zip(times, times[1:]))  # evenly spaced


def test_rate_limit_exhausted_gives_a_clear_error(airtable_fake, monkeypatch):
    monkeypatch.setenv("AIRTABLE_MAX_RETRIES", "2")
    airtable_fake.fail_next(429, times=3)
    with pytest.raises(AirtableError, match=r"kept answering 429.*after 2 retries.*AIRTABLE_MAX_RPS"):
        upsert_message_records([message_record()])
    assert len(airtable_fake.requests) == 3


def test_server_errors_are_retried_for_upserts(airtable_fake):
    airtable_fake.fail_next(503, times=2)
    ids = upsert_message_records([message_record("u1")])
    assert len(ids) == 1 and len(airtable_fake.rows()) == 1
    assert len(airtable_fake.requests_to("PATCH")) == 3


def test_server_errors_are_not_retried_for_creates(airtable_fake, caplog):
    airtable_fake.fail_next(500)
    with caplog.at_level(logging.ERROR, logger="utils.airtable_crud"):
        assert create_message_record(message_record()) == (False, None)
    assert len(airtable_fake.requests) == 1
    assert "server error (500" in caplog.text and "not retried" in caplog.text


def test_server_errors_exhausted_on_an_upsert(airtable_fake, monkeypatch):
    monkeypatch.setenv("AIRTABLE_MAX_RETRIES", "1")
    airtable_fake.fail_next(502, times=2)
    with pytest.raises(AirtableError, match=r"server error \(502 SERVER_ERROR.*after 1 retries"):
        upsert_message_records([message_record()])


# --------------------------------------------------------------------------- error messages


def test_wrong_token(airtable_fake, monkeypatch, caplog):
    monkeypatch.setenv("AIRTABLE_API_KEY", "patWRONG.SECRET")
    with caplog.at_level(logging.ERROR, logger="utils.airtable_crud"):
        assert create_message_record(message_record()) == (False, None)
    assert "rejected the token in AIRTABLE_API_KEY (401 AUTHENTICATION_REQUIRED" in caplog.text
    assert "data.records:write" in caplog.text
    with pytest.raises(AirtableError, match="401") as caught:
        upsert_message_records([message_record()])
    assert caught.value.status_code == 401
    assert "patWRONG.SECRET" not in caplog.text + str(caught.value)


def test_token_without_access(airtable_fake):
    airtable_fake.scopes.discard("data.records:write")
    with pytest.raises(AirtableError, match=r"refused access \(403 INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND\).*scopes"):
        upsert_message_records([message_record()])


def test_unknown_base(airtable_fake, monkeypatch):
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appNOSUCHBASE0001")
    with pytest.raises(AirtableError, match="403.*access to base appNOSUCHBASE0001.*AIRTABLE_BASE_ID"):
        upsert_message_records([message_record()])


def test_unknown_table(airtable_fake, monkeypatch):
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", "tblNOSUCHTABLE001")
    with pytest.raises(AirtableError, match=r"404 TABLE_NOT_FOUND.*check the base and table ids.*"
                                            r"AIRTABLE_MESSAGES_TABLE_ID=tblNOSUCHTABLE001"):
        upsert_message_records([message_record()])


def test_unknown_column_names_the_field_and_the_mapping(airtable_fake):
    schema = full_schema()
    del schema["User Phone"]
    airtable_fake.set_schema(schema)
    with pytest.raises(AirtableError) as caught:
        upsert_message_records([message_record()])
    message = str(caught.value)
    assert 'no column "User Phone" (our field user_phone)' in message
    assert "UNKNOWN_FIELD_NAME" in message and "MESSAGES_FIELD_MAPPING" in message and "--check" in message
    assert caught.value.column == "User Phone"
    assert airtable_fake.rows() == []


def test_value_of_the_wrong_type_names_the_column(airtable_fake):
    airtable_fake.set_schema(full_schema())
    with pytest.raises(AirtableError) as caught:
        upsert_message_records([message_record(confidence_percentage="very sure")])
    message = str(caught.value)
    assert 'column "Confidence" (our field confidence_percentage) rejected the value' in message
    assert "INVALID_VALUE_FOR_COLUMN" in message and "of type number" in message


def test_unreachable_airtable(monkeypatch):
    monkeypatch.setenv("AIRTABLE_API_KEY", "pat123")
    monkeypatch.setenv("AIRTABLE_BASE_ID", FAKE_BASE_ID)
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", FAKE_TABLE_ID)
    monkeypatch.setenv("AIRTABLE_MAX_RETRIES", "0")  # the endpoint is a closed port (conftest)
    with pytest.raises(AirtableError, match="could not reach Airtable at http://127.0.0.1:9.*AIRTABLE_ENDPOINT_URL"):
        upsert_message_records([message_record()])


# --------------------------------------------------------------------------- the team's column


def test_the_mapping_never_writes_send_status():
    assert "Send Status" not in MESSAGES_FIELD_MAPPING.values()
    fields = message_record_to_fields(message_record(send_status="Sent", **{"Send Status": "Sent"}))
    assert "Send Status" not in fields and fields["User ID"] == "u1"


def test_review_reasons_are_uploaded_one_per_line():
    fields = message_record_to_fields(message_record(review_reasons=["quality check: not approved",
                                                                     "gate: 181 characters"]))
    assert fields["Review Reasons"] == "quality check: not approved\ngate: 181 characters"
    assert COLUMN_TYPES["Review Reasons"] == "multilineText"
    assert message_record_to_fields(message_record(review_reasons=[]))["Review Reasons"] == ""  # clears the cell


def test_update_refuses_send_status_before_any_request(airtable_fake):
    with pytest.raises(AirtableError, match="refusing to write the team's column 'Send Status'") as caught:
        update_message_record("rec00000000000001", {"Status": "approved", "Send Status": "Sent"})
    assert caught.value.column == "Send Status"
    assert airtable_fake.requests == []


def test_upsert_and_create_refuse_send_status_even_if_the_mapping_is_changed(airtable_fake, monkeypatch):
    monkeypatch.setitem(MESSAGES_FIELD_MAPPING, "send_status", "Send Status")
    with pytest.raises(AirtableError, match="never writes it"):
        upsert_message_records([message_record("u1"), message_record("u2", send_status="Sent")])
    with pytest.raises(AirtableError, match="Send Status"):
        create_message_record(message_record("u3", send_status="Sent"))
    assert airtable_fake.requests == []


def test_re_upload_keeps_the_teams_send_status(airtable_fake):
    airtable_fake.set_schema(full_schema())
    upsert_message_records([message_record("u1", message="first")])
    airtable_fake.team_set_send_status("u1", "Scheduled")
    upsert_message_records([message_record("u1", message="second")])
    row = airtable_fake.row_for("u1")["fields"]
    assert row["Send Status"] == "Scheduled" and row["Message"] == "second"
    assert all("Send Status" not in json.dumps(r.json) for r in airtable_fake.requests_to("PATCH"))


# --------------------------------------------------------------------------- reading rows before an upload


def test_fetch_member_rows_pages_through_the_table_reading_only_the_needed_columns(airtable_fake, caplog):
    airtable_fake.set_schema(full_schema())
    for index in range(230):
        airtable_fake.add_row({"User ID": f"u{index}", "Message": f"text {index}", "User Summary": "long " * 50,
                               "Event ID": f"e{index % 3}"})
    airtable_fake.team_set_send_status("u7", "Sent")
    airtable_fake.add_row({"Message": "a row typed by hand, no user id"})

    with caplog.at_level(logging.WARNING, logger="utils.airtable_crud"):
        rows = fetch_member_rows(["u7", "u8", "u229", "u999"])

    assert sorted(rows) == ["u229", "u7", "u8"]
    assert rows["u7"] == AirtableRow(record_id=rows["u7"].record_id, user_id="u7", message="text 7",
                                     send_status="Sent", status=None, event_id="e1")
    assert rows["u8"].send_status is None and rows["u229"].message == "text 229"
    lists = airtable_fake.requests_to("GET", FAKE_TABLE_ID)
    assert len(lists) == 3  # 231 rows, 100 per page
    for request in lists:
        assert sorted(request.query["fields[]"]) == ["Event ID", "Message", "Send Status", "Status", "User ID"]
        assert request.query["pageSize"] == ["100"]
    assert "1 row in table" in caplog.text and "no User ID" in caplog.text


def test_fetch_member_rows_reports_a_member_with_several_rows(airtable_fake, caplog):
    first = airtable_fake.add_row({"User ID": "u1", "Message": "one"})
    second = airtable_fake.add_row({"User ID": "u1", "Message": "two"})
    with caplog.at_level(logging.WARNING, logger="utils.airtable_crud"):
        rows = fetch_member_rows()
    assert rows["u1"].record_id == first and rows["u1"].duplicate_record_ids == (second,)
    assert f"member u1 has 2 rows ({first}, {second})" in caplog.text


def test_fetch_member_rows_without_a_send_status_column(airtable_fake):
    airtable_fake.set_schema(full_schema(send_status=False))
    airtable_fake.add_row({"User ID": "u1", "Message": "hi"})
    with pytest.raises(AirtableError, match='no column "Send Status"'):
        fetch_member_rows(["u1"])
    rows = fetch_member_rows(["u1"], include_send_status=False)
    assert rows["u1"].message == "hi" and rows["u1"].send_status is None


def test_fetch_member_rows_turns_any_cell_shape_into_text(airtable_fake):
    airtable_fake.add_row({"User ID": " u1 ", "Send Status": {"id": "sel1", "name": "Do not send"}})
    airtable_fake.add_row({"User ID": "u2", "Send Status": ["Approved", "Scheduled"]})
    airtable_fake.add_row({"User ID": "u3", "Send Status": True})
    airtable_fake.add_row({"User ID": "u4", "Send Status": "   "})
    rows = fetch_member_rows()
    assert {user_id: row.send_status for user_id, row in rows.items()} == {
        "u1": "Do not send", "u2": "Approved, Scheduled", "u3": "checked", "u4": None}


# --------------------------------------------------------------------------- pre-flight


def test_preflight_on_a_complete_table_is_one_schema_request(airtable_fake):
    airtable_fake.set_schema(full_schema())
    report = preflight_check()
    assert report.columns_verified and report.send_status_exists and report.warnings == []
    assert report.table_name == "Messages" and "Review Reasons" in report.columns
    assert [r.path for r in airtable_fake.requests] == [f"/v0/meta/bases/{FAKE_BASE_ID}/tables"]


def test_preflight_names_every_missing_column_at_once(airtable_fake):
    schema = full_schema()
    del schema["Review Reasons"], schema["User Phone"], schema["Fingerprint"]
    airtable_fake.set_schema(schema)
    with pytest.raises(AirtableError) as caught:
        preflight_check()
    message = str(caught.value)
    assert 'lacks 3 columns the upload writes: "User Phone" (phoneNumber), "Review Reasons" (multilineText), ' \
           '"Fingerprint" (singleLineText)' in message
    assert "utils/airtable_fields.py" in message
    assert len(airtable_fake.requests) == 1


def test_preflight_checks_only_the_columns_asked_for(airtable_fake):
    schema = full_schema()
    del schema["Fingerprint"]
    airtable_fake.set_schema(schema)
    assert preflight_check(["User ID", "Message"]).columns_verified
    with pytest.raises(AirtableError, match='"Fingerprint"'):
        preflight_check(["User ID", "Fingerprint"])


def test_preflight_with_a_wrong_token(airtable_fake, monkeypatch):
    airtable_fake.set_schema(full_schema())
    monkeypatch.setenv("AIRTABLE_API_KEY", "wrong-airtable-token-for-tests")
    with pytest.raises(AirtableError, match=r"rejected the token in AIRTABLE_API_KEY \(401") as caught:
        preflight_check()
    assert "schema.bases:read" in str(caught.value) and "wrong-airtable-token" not in str(caught.value)
    assert len(airtable_fake.requests) == 1


def test_preflight_with_a_wrong_base(airtable_fake, monkeypatch):
    airtable_fake.set_schema(full_schema())
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appNOSUCHBASE0001")
    with pytest.raises(AirtableError, match=r"refused access \(403.*access to base appNOSUCHBASE0001") as caught:
        preflight_check()
    assert caught.value.status_code == 403
    # The schema's 403 could be a missing scope, so one row read tells: it fails too, for a wrong base.
    assert [r.method for r in airtable_fake.requests] == ["GET", "GET"]


def test_preflight_with_a_wrong_table(airtable_fake, monkeypatch):
    airtable_fake.set_schema(full_schema())
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", "tblNOSUCHTABLE001")
    with pytest.raises(AirtableError, match=rf"table tblNOSUCHTABLE001 is not in base {FAKE_BASE_ID}; its tables "
                                            rf"are: Messages \({FAKE_TABLE_ID}\)"):
        preflight_check()


def test_preflight_accepts_the_table_name(airtable_fake, monkeypatch):
    airtable_fake.set_schema(full_schema())
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", "Messages")
    assert preflight_check().table_id == FAKE_TABLE_ID


def test_preflight_without_the_schema_scope_falls_back_to_a_one_row_read(airtable_fake):
    airtable_fake.set_schema(full_schema())
    airtable_fake.deny_schema_scope()
    report = preflight_check()
    assert not report.columns_verified and report.send_status_exists and report.columns == []
    assert len(report.warnings) == 1 and "lacks the schema.bases:read scope" in report.warnings[0]
    meta, read = airtable_fake.requests
    assert meta.path.endswith("/tables") and read.path == f"/v0/{FAKE_BASE_ID}/{FAKE_TABLE_ID}"
    assert read.query["maxRecords"] == ["1"] and read.query["fields[]"] == ["Send Status"]


def test_preflight_without_the_schema_scope_still_sees_a_missing_send_status(airtable_fake):
    airtable_fake.set_schema(full_schema(send_status=False))
    airtable_fake.deny_schema_scope()
    report = preflight_check()
    assert not report.send_status_exists
    assert any('no "Send Status" column' in warning for warning in report.warnings)


def test_preflight_without_the_schema_scope_and_a_wrong_table(airtable_fake, monkeypatch):
    airtable_fake.set_schema(full_schema())
    airtable_fake.deny_schema_scope()
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", "tblNOSUCHTABLE001")
    with pytest.raises(AirtableError, match="404 TABLE_NOT_FOUND.*AIRTABLE_MESSAGES_TABLE_ID=tblNOSUCHTABLE001"):
        preflight_check()


def test_preflight_warns_about_a_missing_send_status_and_a_number_column_of_another_type(airtable_fake):
    schema = full_schema(send_status=False)
    schema["Confidence"] = "singleLineText"
    airtable_fake.set_schema(schema)
    report = preflight_check()
    assert report.columns_verified and not report.send_status_exists
    assert report.warnings[0].startswith("column 'Confidence' is of type singleLineText, expected number")
    assert "edited is still held" in report.warnings[1]


def test_preflight_needs_the_settings_before_any_request(airtable_fake, monkeypatch):
    monkeypatch.delenv("AIRTABLE_BASE_ID")
    with pytest.raises(AirtableConfigError, match="AIRTABLE_BASE_ID"):
        preflight_check()
    assert airtable_fake.requests == []


# --------------------------------------------------------------------------- --check


def test_check_passes_on_a_complete_table(airtable_fake, capsys):
    airtable_fake.set_schema(full_schema())
    assert airtable_crud.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert f"Airtable table Messages ({FAKE_TABLE_ID}): all 20 mapped columns present" in out
    assert "Send Status column: present" in out and out.rstrip().endswith("OK")


def test_check_reports_every_missing_column_on_one_error_line(airtable_fake, capsys):
    schema = full_schema()
    del schema["Fingerprint"], schema["Generator"]
    airtable_fake.set_schema(schema)

    assert airtable_crud.main(["--check"]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("Error: the Airtable table Messages") and '"Generator"' in err and '"Fingerprint"' in err


def test_check_says_when_send_status_is_absent(airtable_fake, capsys):
    airtable_fake.set_schema(full_schema(send_status=False))
    assert airtable_crud.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "Send Status column: absent (edited Message text still holds a row)" in out


def test_check_without_the_schema_scope(airtable_fake, capsys):
    airtable_fake.set_schema(full_schema())
    airtable_fake.deny_schema_scope()
    assert airtable_crud.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "token, base and table work; columns not verified" in out and "warning: the token" in out


@pytest.mark.parametrize("setting, value, expected", [
    ("AIRTABLE_API_KEY", "wrong-airtable-token-for-tests", "Error: Airtable rejected the token"),
    ("AIRTABLE_BASE_ID", "appNOSUCHBASE0001", "Error: Airtable refused access (403"),
    ("AIRTABLE_MESSAGES_TABLE_ID", "tblNOSUCHTABLE001", "Error: table tblNOSUCHTABLE001 is not in base"),
])
def test_check_with_wrong_settings(airtable_fake, monkeypatch, capsys, setting, value, expected):
    airtable_fake.set_schema(full_schema())
    monkeypatch.setenv(setting, value)
    assert airtable_crud.main(["--check"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1 and out == ""


def test_check_as_a_command_prints_one_error_line_and_no_traceback(airtable_fake):
    schema = full_schema()
    del schema["Review Reasons"]
    airtable_fake.set_schema(schema)
    done = subprocess.run([sys.executable, "-m", "utils.airtable_crud", "--check"], cwd=PROJ_ROOT,
                          capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith('Error: the Airtable table Messages') and '"Review Reasons"' in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_check_needs_the_flag():
    with pytest.raises(SystemExit) as caught:
        airtable_crud.main([])
    assert caught.value.code == 2


# --------------------------------------------------------------------------- the fake itself


def test_fake_enforces_its_contract(airtable_fake):
    headers = {"Authorization": f"Bearer {airtable_fake.token}"}
    url = f"{airtable_fake.url}/v0/{FAKE_BASE_ID}/{FAKE_TABLE_ID}"
    too_many = {"records": [{"fields": {"User ID": str(i)}} for i in range(11)]}
    answer = requests.post(url, json=too_many, headers=headers, timeout=5)
    assert answer.status_code == 422 and "at most" not in answer.text and "1 to 10" in answer.text
    assert requests.get(f"{url}/rec00000000000001/extra", headers=headers, timeout=5).status_code == 404
    assert requests.get(f"{airtable_fake.url}/v0/appNOSUCHBASE0001/{FAKE_TABLE_ID}", headers=headers,
                        timeout=5).status_code == 403  # Airtable's answer for a base the token cannot see
    assert requests.get(f"{airtable_fake.url}/v1/whatever", headers=headers, timeout=5).status_code == 404
    meta = f"{airtable_fake.url}/v0/meta/bases/{FAKE_BASE_ID}/tables"
    assert requests.get(meta, params={"include": "something"}, headers=headers, timeout=5).status_code == 422
    assert requests.get(url, params={"filterByFormula": "1"}, headers=headers, timeout=5).status_code == 422
    assert requests.get(url, timeout=5).status_code == 401
    assert "authorization" not in airtable_fake.requests[-1].headers


def test_fake_serves_pyairtable_batch_endpoints(airtable_fake):
    _, _, table = init_airtable_client()
    created = table.batch_create([{"User ID": f"b{i}", "Status": "new"} for i in range(12)])
    assert [len(r.json["records"]) for r in airtable_fake.requests_to("POST")] == [10, 2]
    updated = table.batch_update([{"id": r["id"], "fields": {"Status": "sent"}} for r in created[:3]])
    assert [r["fields"] for r in updated] == [{"User ID": f"b{i}", "Status": "sent"} for i in range(3)]
    replaced = table.update(created[3]["id"], {"User ID": "b3"}, replace=True)
    assert replaced["fields"] == {"User ID": "b3"}
    deleted = table.batch_delete([r["id"] for r in created[:11]])
    assert all(d["deleted"] for d in deleted) and len(deleted) == 11
    assert airtable_fake.rows() == [{"User ID": "b11", "Status": "new"}]


def test_fake_standalone_start_and_stop():
    with FakeAirtable() as fake:
        url = fake.url
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/v0/meta/bases/x/tables", timeout=5).status_code == 401
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v0/meta/bases/x/tables", timeout=1)
