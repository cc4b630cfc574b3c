"""Step 5 --offline on generated sample data: compliant, deterministic, and with no network at all."""

import json
import math
import re
import socket
from collections import Counter
from pathlib import Path

import pytest

from pipeline import step1_user_selection, step2_event_selection, step3_user_profile_enrich, step4_event_enrich
from pipeline import step5_match_message as step5
from pipeline.match_message.asking import CAMPAIGNS
from utils.sample_data import generate_dataset, write_dataset
from utils.sms import check_message, sms_encoding, sms_segments

NOW = "2026-11-25T12:00:00Z"


@pytest.fixture(scope="module")
def enriched_dir(tmp_path_factory) -> Path:
    """Sample data run through steps 1-4 once for the module."""
    root = tmp_path_factory.mktemp("offline") / "data"
    from utils.dates import parse_now
    write_dataset(generate_dataset(500, 80, 42, parse_now(NOW)), root / "raw")
    common = ["--data-dir", str(root), "--log-dir", str(root.parent / "logs"), "--now", NOW,
              "--timezone", "America/New_York"]
    for step in (step1_user_selection, step2_event_selection, step3_user_profile_enrich, step4_event_enrich):
        assert step.main(common) == 0
    return root


def _copy_inputs(source: Path, target: Path) -> Path:
    for name in ("processed/enriched_users.json", "processed/enriched_events.json", "raw/users.json"):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes((source / name).read_bytes())
    return target


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a socket or resolves a name."""
    opened = []

    def forbidden(*args, **kwargs):
        opened.append(args)
        raise AssertionError("offline mode opened a socket")

    monkeypatch.setattr(socket.socket, "__init__", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    return opened


def _run_offline(data_dir: Path) -> list[dict]:
    args = ["--data-dir", str(data_dir), "--log-dir", str(data_dir.parent / "logs"), "--now", NOW,
            "--timezone", "America/New_York", "--offline", "--workers", "4"]
    assert step5.main(args) == 0
    return json.loads((data_dir / "processed" / "processed_messages.json").read_text())


def test_offline_run_gives_every_user_a_compliant_message_without_network(enriched_dir, tmp_path, no_network,
                                                                          monkeypatch):
    # No key and no Airtable settings: offline needs neither.
    for name in ("ANTHROPIC_API_KEY", "AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "AIRTABLE_MESSAGES_TABLE_ID"):
        monkeypatch.delenv(name, raising=False)
    data_dir = _copy_inputs(enriched_dir, tmp_path / "a")
    records = _run_offline(data_dir)

    users = json.loads((data_dir / "processed" / "enriched_users.json").read_text())
    events = {event["id"]: event for event in json.loads((data_dir / "processed" / "enriched_events.json").read_text())}
    assert len(users) > 100 and len(events) > 5
    assert [record["user_id"] for record in records] == [user["id"] for user in users]
    invited = [(user, record) for user, record in zip(users, records) if record["status"] != "no_event"]
    assert len(invited) > 100
    for user, record in invited:
        link = f"https://cucu.li/bookings/{record['event_id']}"
        assert record["event_id"] in events
        assert record["generator"] == "offline" and record["uploaded"] is False
        assert record["status"] == "approved", (record["message"], record["compliance_issues"])
        assert check_message(record["message"], first_name=user["first_name"], link=link) == []
        assert record["message"].endswith(" " + link)
        assert record["campaign"] in CAMPAIGNS
        assert record["match_reasoning"].startswith("Rule-based score")
        assert 0 <= record["confidence_percentage"] <= 100
        assert record["shortlist_rank"] in (1, 2, 3)
    # No event gets more invitations than ceil(3 x its free seats); members left without one have no message.
    invites = Counter(record["event_id"] for _, record in invited)
    for event_id, count in invites.items():
        event = events[event_id]
        assert count <= math.ceil(3 * (event["maxParticipants"] - event["participant_count"])), event_id
    for record in records:
        if record["status"] == "no_event":
            assert "message" not in record and len(record["stages"]["match"]["shortlist"]) >= 1
    assert no_network == []


def test_offline_output_is_deterministic_for_a_fixed_now(enriched_dir, tmp_path, no_network):
    first = _copy_inputs(enriched_dir, tmp_path / "a")
    second = _copy_inputs(enriched_dir, tmp_path / "b")
    _run_offline(first)
    _run_offline(second)
    assert (first / "processed" / "processed_messages.json").read_bytes() == \
        (second / "processed" / "processed_messages.json").read_bytes()


def test_offline_rerun_skips_everyone(enriched_dir, tmp_path, no_network, capsys):
    data_dir = _copy_inputs(enriched_dir, tmp_path / "a")
    records = _run_offline(data_dir)
    capsys.readouterr()
    assert _run_offline(data_dir) == records
    out = capsys.readouterr().out
    invited = sum(1 for record in records if record["status"] != "no_event")
    assert re.search(r"match: members run\s+0\n", out) and re.search(r"write: members run\s+0\n", out)
    assert re.search(rf"skipped: up to date\s+{invited:,}\n", out)


def test_a_cap_shrunk_below_earlier_invitations_is_not_an_error(enriched_dir, tmp_path, no_network, capsys):
    # R1 item 2: seats booked since the full run leave more earlier invitations than the new cap.
    data_dir = _copy_inputs(enriched_dir, tmp_path / "a")
    records = _run_offline(data_dir)
    busiest, earlier = Counter(r["event_id"] for r in records if r["status"] != "no_event").most_common(1)[0]
    events_path = data_dir / "processed" / "enriched_events.json"
    events = json.loads(events_path.read_text())
    event = next(event for event in events if event["id"] == busiest)
    event["participant_count"] = event["maxParticipants"] - 1  # 1 free seat: cap 3 at --invites-per-seat 3
    events_path.write_text(json.dumps(events))
    assert earlier > 3
    args = ["--data-dir", str(data_dir), "--log-dir", str(data_dir.parent / "logs"), "--now", NOW,
            "--timezone", "America/New_York", "--offline", "--limit", "5", "--fresh"]
    capsys.readouterr()
    assert step5.main(args) == 0, capsys.readouterr().err
    after = json.loads((data_dir / "processed" / "processed_messages.json").read_text())
    # The --limit 5 members were re-assigned; none of them got the full event unless they held it already.
    selected = {r["user_id"] for r in records[:5]}
    held_before = {r["user_id"] for r in records if r["user_id"] in selected and r.get("event_id") == busiest}
    assert {r["user_id"] for r in after if r["user_id"] in selected and r.get("event_id") == busiest
            and r["status"] != "no_event"} <= held_before


def test_max_segments_1_offline_gives_every_member_one_segment(enriched_dir, tmp_path, no_network, capsys):
    # R1 item 8: members named outside GSM-7 (Lucía, Tomás) came out UCS-2 and 3 segments.
    data_dir = _copy_inputs(enriched_dir, tmp_path / "a")
    args = ["--data-dir", str(data_dir), "--log-dir", str(data_dir.parent / "logs"), "--now", NOW,
            "--timezone", "America/New_York", "--offline", "--max-segments", "1"]
    assert step5.main(args) == 0
    records = json.loads((data_dir / "processed" / "processed_messages.json").read_text())
    made = [record for record in records if record.get("message")]
    assert any(sms_encoding(record["user_name"]) != "GSM-7" for record in made)  # the case is in the data
    assert made and all(sms_segments(record["message"]) == 1 == record["sms_segments"] for record in made)
    out = capsys.readouterr().out
    assert re.search(rf"SMS of 1 segment\s+{len(made)}\n", out) and "SMS of 3 segments" not in out
