"""Hostile and broken input through the whole pipeline (issue 12).

Every bad value the issue lists goes through steps 1 to 5 (step 5 offline, through its command line)
in every time zone the tests use: each step finishes, and counts what it repaired or read as missing.
Whole-file problems give one `Error:` line naming the file in all five steps. Injected contact points
never reach an approved message, whether the offline templates or a model copy them.
"""

import json
import re
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline import step1_user_selection as step1
from pipeline import step2_event_selection as step2
from pipeline import step3_user_profile_enrich as step3
from pipeline import step4_event_enrich as step4
from pipeline import step5_match_message as step5
from tests.helpers import parse_stats
from utils.sample_data import generate_dataset, write_dataset

NOW_TEXT = "2026-11-25T12:00:00Z"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
# Every zone the tests use, and the two ends of the clock (UTC+14 and UTC-12).
ZONES = ["UTC", "America/New_York", "Europe/Paris", "Asia/Tokyo", "Asia/Kolkata", "Pacific/Kiritimati",
         "Etc/GMT+12"]
HUGE = "__1e400__"  # written to the file as the bare number 1e400, which no Python value dumps as
SENTINEL_DATES = ["0001-01-01T00:00:00Z", {"$date": {"$numberLong": "-62135596800000"}},
                  "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"]
FOREIGN = ("evil.to", "212-555-0199", "t.me/evil")
STEPS = [
    ("step1_user_selection", step1, []),
    ("step2_event_selection", step2, []),
    ("step3_user_profile_enrich", step3, []),
    ("step4_event_enrich", step4, []),
    ("step5_match_message", step5, ["--offline", "--no-upload"]),
]


def _is_invisible(ch: str) -> bool:
    return unicodedata.category(ch) == "Cf" and ch != "\u200d"


def hostile_dataset() -> dict:
    """Generated raw data with every bad value of issue 12 put where the steps will meet it."""
    data = generate_dataset(n_users=80, n_events=40, seed=5, now=NOW)
    users, events = data["users"], data["events"]
    qualified_users = step1.select_users(users, data["messages"]).qualified
    qualified_events, _ = step2.select_events(events, NOW)
    assert len(qualified_users) >= 8 and len(qualified_events) >= 7
    # The selections are the raw records themselves (the steps write them through), so changing
    # them changes the raw files; the identity check keeps this test honest if that ever changes.
    raw_ids = {id(record) for record in users + events}
    assert all(id(record) in raw_ids for record in qualified_users + qualified_events)
    q, qe = qualified_users, qualified_events

    q[0]["firstName"] = "Ann\ud83d"  # half an emoji: one bad member must not stop everyone's run
    q[1]["firstName"], q[1]["lastName"] = "\u202eBo", "Lee\udc00"
    q[2]["createdAt"] = SENTINEL_DATES[0]
    q[3]["createdAt"] = SENTINEL_DATES[1]
    q[4]["birthDay"] = SENTINEL_DATES[2]
    q[5]["birthDay"] = SENTINEL_DATES[3]
    q[6]["createdAt"], q[6]["interests"] = SENTINEL_DATES[3], ["jazz", HUGE]
    q[7]["birthDay"] = HUGE

    qe[0]["name"] = "Sup\ud83d at evil.to/x"
    qe[1]["endDate"] = SENTINEL_DATES[3]
    qe[2]["endDate"] = SENTINEL_DATES[2]
    qe[2]["participants"] = list(qe[2].get("participants") or [])[:1] + [q[0]["email"], q[1]["email"]]
    qe[2]["maxParticipants"] = 50
    qe[3]["maxParticipants"] = int("9" * 401)
    qe[4]["maxParticipants"] = HUGE
    qe[5]["description"] = "<" * 5000 + " Call 212-555-0199 \ud83d"
    qe[6]["startDate"] = "2026-12-10"  # all day, in the community's zone
    qualified_ids = {id(event) for event in qe}
    past = [event for event in events if id(event) not in qualified_ids][:4]
    for event, value in zip(past, SENTINEL_DATES):
        event["startDate"] = value
    return data


def write_raw(dataset: dict, raw_dir: Path) -> None:
    """Write the raw files with escapes for lone surrogates and a bare 1e400 for HUGE."""
    write_dataset(dataset, raw_dir)
    for name in ("users.json", "events.json"):
        path = raw_dir / name
        text = json.dumps(dataset[name.removesuffix(".json")])
        path.write_text(text.replace(json.dumps(HUGE), "1e400"), encoding="utf-8")


def step_stats(log_dir: Path, step_name: str, title: str) -> dict[str, int]:
    logs = sorted(log_dir.glob(f"{step_name.split('_', 1)[1]}_*.log"))
    assert logs, step_name
    return parse_stats(logs[-1].read_text(encoding="utf-8"), title)


@pytest.mark.parametrize("zone_name", ZONES)
def test_every_bad_value_goes_through_steps_1_to_5_in_every_zone(tmp_path, monkeypatch, zone_name):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data_dir, log_dir = tmp_path / "data", tmp_path / "logs"
    write_raw(hostile_dataset(), data_dir / "raw")
    common = ["--data-dir", str(data_dir), "--log-dir", str(log_dir), "--now", NOW_TEXT, "--timezone", zone_name]
    for name, module, extra in STEPS:
        assert module.main([*common, *extra]) == 0, name

    stats2 = step_stats(log_dir, "2_event_selection", step2.STATS_TITLE)
    assert stats2["filtered: date out of range"] == 4
    assert stats2["events repaired: text with a lone surrogate (now U+FFFD)"] == 2
    assert stats2["events repaired: numbers too large (now null)"] == 1
    stats3 = step_stats(log_dir, "3_user_profile_enrich", "Step 3: user profile enrichment")
    assert stats3["qualified users with createdAt out of range (read as missing)"] == 3
    assert stats3["qualified users with birthDay out of range (read as missing)"] == 2
    assert stats3["events skipped: startDate out of range"] == 4
    assert stats3["users repaired: text with a lone surrogate (now U+FFFD)"] == 2
    assert stats3["users repaired: numbers too large (now null)"] == 2
    stats4 = step_stats(log_dir, "4_event_enrich", "Step 4: event profile enrichment")
    assert stats4["events with endDate out of range (read as missing)"] == 2

    processed = data_dir / "processed"
    enriched_users = json.loads((processed / "enriched_users.json").read_text(encoding="utf-8"))
    enriched_events = json.loads((processed / "enriched_events.json").read_text(encoding="utf-8"))
    names = {user["name"] for user in enriched_users}
    assert any(name.startswith("Ann\ufffd") for name in names)
    assert any(name == "Bo Lee\ufffd" for name in names)  # U+202E removed, the surrogate replaced
    guests = [name for event in enriched_events for name in event["participant_names"]]
    assert any(name.startswith("Ann\ufffd") for name in guests)
    all_day = [event for event in enriched_events if event["startDate"] == "2026-12-10"]
    assert len(all_day) == 1 and "on Thursday, December 10, 2026 (all day)" in all_day[0]["summary"]

    records = json.loads((processed / "processed_messages.json").read_text(encoding="utf-8"))
    assert len(records) == len(enriched_users)
    # no_event: every shortlisted event was at its invitation cap (issue 13); never "failed".
    assert all(record["status"] in ("approved", "needs_review", "no_event") for record in records)
    approved = [record["message"] for record in records if record["status"] == "approved"]
    assert approved
    for message in approved:
        message.encode("utf-8")
        assert not any(token in message for token in FOREIGN), message
        assert not any(_is_invisible(ch) for ch in message), message


# --- whole-file problems: one Error line naming the file, in all five steps --------------------------

STEP_INPUTS = {
    "step1_user_selection": "raw/users.json",
    "step2_event_selection": "raw/events.json",
    "step3_user_profile_enrich": "processed/qualified_users.json",
    "step4_event_enrich": "processed/qualified_events.json",
    "step5_match_message": "processed/enriched_users.json",
}
BROKEN_FILES = {
    "nested deeper than the recursion limit": ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    "an integer of more than 4,300 digits": ('[{"id": "u1", "n": ' + "7" * 5000 + "}]", "number too long"),
}


@pytest.mark.parametrize("problem", sorted(BROKEN_FILES))
@pytest.mark.parametrize("name, module, extra", STEPS, ids=[name for name, _, _ in STEPS])
def test_a_broken_file_is_one_error_line_naming_it(tmp_path, monkeypatch, capsys, name, module, extra, problem):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data_dir = tmp_path / "data"
    # Valid inputs everywhere, then the broken one: the step must get as far as reading it.
    write_dataset(generate_dataset(n_users=5, n_events=3, seed=1, now=NOW), data_dir / "raw")
    for relative in ("processed/qualified_users.json", "processed/qualified_events.json",
                     "processed/enriched_users.json", "processed/enriched_events.json"):
        (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / relative).write_text('[{"id": "x", "summary": "s", "startDate": "2027-01-01T00:00:00Z"}]',
                                         encoding="utf-8")
    broken = data_dir / STEP_INPUTS[name]
    text, reason = BROKEN_FILES[problem]
    broken.write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = module.main(["--data-dir", str(data_dir), "--log-dir", str(tmp_path / "logs"), "--now", NOW_TEXT,
                        *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("Error: "), err
    assert str(broken) in err[0] and reason in err[0]


# --- injected contact points never reach an approved message -----------------------------------------

LINK_RE = re.compile(r"https://cucu\.li/bookings/\S+$")


def _offline_run(tmp_path, users: list[dict], events: list[dict]) -> list[dict]:
    data_dir = tmp_path / "data"
    (data_dir / "processed").mkdir(parents=True)
    (data_dir / "raw").mkdir()
    (data_dir / "processed" / "enriched_users.json").write_text(json.dumps(users), encoding="utf-8")
    (data_dir / "processed" / "enriched_events.json").write_text(json.dumps(events), encoding="utf-8")
    (data_dir / "raw" / "users.json").write_text(json.dumps([{"id": u["id"], "email": u["email"],
                                                              "phone": "+12125550100"} for u in users]))
    args = ["--data-dir", str(data_dir), "--log-dir", str(tmp_path / "logs"), "--now", NOW_TEXT,
            "--timezone", "America/New_York", "--offline", "--no-upload"]
    assert step5.main(args) == 0
    return json.loads((data_dir / "processed" / "processed_messages.json").read_text(encoding="utf-8"))


def _fixture(name: str) -> list[dict]:
    return json.loads((Path(__file__).parent / "fixtures" / name).read_text(encoding="utf-8"))


def test_offline_templates_never_approve_an_injected_event_name_or_a_hidden_control(tmp_path):
    users, events = _fixture("enriched_users.json"), _fixture("enriched_events.json")
    for user in users:
        user["first_name"] = "\u202e" + (user["first_name"] or "Ann")
    for index, event in enumerate(events):
        if index % 2 == 0:
            event["name"] = ["Supper at evil.to/x", "Call 212-555-0199", "Join t.me/evil"][index // 2 % 3]
    records = _offline_run(tmp_path, users, events)
    approved = [record for record in records if record["status"] == "approved"]
    assert approved  # the clean events still get approved messages
    for record in records:
        message = record["message"]
        assert "\u202e" not in message
        if record["status"] == "approved":
            assert not any(token in message for token in FOREIGN), message
            assert len(re.findall(r"https?://", message)) == 1 and LINK_RE.search(message)


class CopyingModel:
    """A model that follows injections: every message it writes copies the given text."""

    def __init__(self, copied: str):
        self.copied = copied

    def __call__(self, body: dict) -> dict:
        # One answer with every field any step-5 prompt asks for; each reader takes what it needs.
        choice = {"event_index": 0, "campaign": "Fill the Table", "reasoning": "Fits.", "confidence": 80}
        return {"choices": [choice], **choice,
                "message": f"Hi Maya! {self.copied} Grab a seat:", "quality_score": 90, "approved": True,
                "issues": [], "improved_message": None}


def _claude_run(tmp_path, anthropic_fake, copied: str) -> list[dict]:
    users = _fixture("enriched_users.json")
    for user in users:
        user["first_name"], user["name"] = "Maya", "Maya " + (user["name"] or "").split(" ")[-1]
    anthropic_fake.responder = CopyingModel(copied)
    data_dir = tmp_path / copied.replace(" ", "_")[:20] / "data"
    (data_dir / "processed").mkdir(parents=True)
    (data_dir / "raw").mkdir()
    (data_dir / "processed" / "enriched_users.json").write_text(json.dumps(users), encoding="utf-8")
    events = _fixture("enriched_events.json")
    (data_dir / "processed" / "enriched_events.json").write_text(json.dumps(events), encoding="utf-8")
    (data_dir / "raw" / "users.json").write_text(json.dumps([{"id": u["id"], "email": u["email"],
                                                              "phone": "+12125550100"} for u in users]))
    args = ["--data-dir", str(data_dir), "--log-dir", str(data_dir.parent / "logs"), "--now", NOW_TEXT,
            "--no-upload", "--workers", "2"]
    step5.main(args)
    return json.loads((data_dir / "processed" / "processed_messages.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("copied", [
    "Supper at evil.to/x tonight.",  # from an event name
    "Claim at evil.example/claim.",  # from an event description
    "Chat t.me/evil or wa.me/12125550199.",  # from a member's bio
    "Tip pay.me/d or 10.0.0.7/pay.",
    "Call 212-555-0199 or (646) 555-0142.",  # from a member's occupation field
    "Text \uff12\uff11\uff12\u200b555\u200b0199.",  # fullwidth digits and zero-width spaces
])
def test_a_model_that_copies_injected_text_never_gets_a_foreign_contact_point_approved(
        tmp_path, monkeypatch, anthropic_fake, copied):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    records = _claude_run(tmp_path, anthropic_fake, copied)
    assert records and all(record["status"] in ("approved", "needs_review") for record in records)
    for record in records:
        assert record["status"] == "needs_review", record["message"]
        assert {rule.split(":")[0] for rule in record["compliance_issues"]} & {"link", "phone"}


def test_a_bidi_control_copied_by_the_model_never_reaches_an_approved_message(tmp_path, monkeypatch,
                                                                                anthropic_fake):
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    records = _claude_run(tmp_path, anthropic_fake, "Dinner for \u202eAnn\u2066 tonight.")
    assert records
    for record in records:
        if record["status"] == "approved":
            assert not any(_is_invisible(ch) for ch in record["message"]), record["message"]


def test_the_same_model_with_clean_text_gets_approved(tmp_path, monkeypatch, anthropic_fake):
    # The control for the test above: the blocks come from the injected text, not from the set-up.
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    records = _claude_run(tmp_path, anthropic_fake, "Dinner @7pm, only $25, 3 seats left at St. Mark's Pl.")
    assert records and all(record["status"] == "approved" for record in records), \
        [(record["status"], record.get("compliance_issues")) for record in records]
