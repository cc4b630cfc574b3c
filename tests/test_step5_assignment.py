"""Step 5's assignment phase on hand-built cases, and the offline shortlist it is fed from."""

import random

import pytest

from pipeline.match_message.assignment import assign_events, invitation_cap, invitation_caps, prior_invitations
from pipeline.match_message.phases import RunOutcome
from pipeline.match_message.report import over_cap_events, sms_rows
from pipeline import step5_match_message as step5
from utils.dates import parse_now
from utils.offline_engine import offline_match, offline_shortlist


def _choice(event: str, confidence: float) -> dict:
    return {"event_id": event, "event_index": ord(event[-1]) - ord("a"), "campaign": "Fill the Table",
            "reasoning": "r", "confidence": confidence}


def _events_of(assignment: dict) -> dict:
    return {user: (choice["event_id"], choice["rank"]) if choice else None for user, choice in assignment.items()}


def test_first_choice_when_its_event_has_room():
    shortlists = {"u1": [_choice("e-a", 90), _choice("e-b", 80)], "u2": [_choice("e-b", 70)]}
    result = assign_events(shortlists, {"e-a": 1, "e-b": 1}, {})
    assert _events_of(result) == {"u1": ("e-a", 1), "u2": ("e-b", 1)}


def test_a_full_first_choice_falls_back_to_the_second():
    shortlists = {"u1": [_choice("e-a", 90)], "u2": [_choice("e-a", 80), _choice("e-b", 60)]}
    result = assign_events(shortlists, {"e-a": 1, "e-b": 5}, {})
    assert _events_of(result) == {"u1": ("e-a", 1), "u2": ("e-b", 2)}


def test_a_member_whose_whole_shortlist_is_full_gets_no_event():
    shortlists = {"u1": [_choice("e-a", 90)], "u2": [_choice("e-a", 95)], "u3": [_choice("e-a", 50)]}
    result = assign_events(shortlists, {"e-a": 2}, {})
    assert _events_of(result) == {"u1": ("e-a", 1), "u2": ("e-a", 1), "u3": None}


def test_earlier_invitations_count_against_the_cap_first():
    shortlists = {"u1": [_choice("e-a", 90), _choice("e-b", 10)]}
    assert _events_of(assign_events(shortlists, {"e-a": 3, "e-b": 3}, {"e-a": 3})) == {"u1": ("e-b", 2)}
    assert _events_of(assign_events(shortlists, {"e-a": 3, "e-b": 3}, {"e-a": 2})) == {"u1": ("e-a", 1)}


def test_uploaded_invitations_keep_their_event_when_it_is_still_shortlisted():
    shortlists = {"u1": [_choice("e-a", 90)], "u2": [_choice("e-a", 80), _choice("e-b", 60)],
                  "u3": [_choice("e-a", 99), _choice("e-c", 10)]}
    result = assign_events(shortlists, {"e-a": 1, "e-b": 1, "e-c": 1}, {}, keep={"u2": "e-a", "u3": "e-x"})
    assert _events_of(result) == {"u1": None, "u2": ("e-a", 1), "u3": ("e-c", 2)}


def test_no_cap_means_everyone_gets_their_first_choice():
    shortlists = {f"u{i}": [_choice("e-a", 50), _choice("e-b", 40)] for i in range(20)}
    result = assign_events(shortlists, {"e-a": None}, {"e-a": 100})
    assert {choice["event_id"] for choice in result.values()} == {"e-a"}


def test_ties_go_to_the_better_rank_then_to_the_earlier_member():
    # Same confidence: u2's first choice beats u1's second choice; between two first choices, u1 (earlier) wins.
    shortlists = {"u1": [_choice("e-b", 80), _choice("e-a", 80)], "u2": [_choice("e-a", 80)],
                  "u3": [_choice("e-b", 80)]}
    result = assign_events(shortlists, {"e-a": 1, "e-b": 1}, {})
    assert _events_of(result) == {"u1": ("e-b", 1), "u2": ("e-a", 1), "u3": None}


def test_caps_are_respected_and_the_same_input_gives_the_same_output():
    rng = random.Random(7)
    events = [f"e-{chr(ord('a') + i)}" for i in range(6)]
    shortlists = {f"u{i:03d}": [_choice(event, rng.choice([40, 60, 60, 80, 95]))
                                for event in rng.sample(events, 3)] for i in range(200)}
    caps = {event: rng.randint(0, 12) for event in events}
    prior = {events[0]: 2}
    first = assign_events(shortlists, caps, prior)
    assert first == assign_events(dict(shortlists), dict(caps), dict(prior))
    used = {event: prior.get(event, 0) for event in events}
    for user, choice in first.items():
        if choice is not None:
            used[choice["event_id"]] += 1
            assert choice == {**shortlists[user][choice["rank"] - 1], "rank": choice["rank"]}
    assert all(used[event] <= max(caps[event], prior.get(event, 0)) for event in events)
    # Nobody is left without an event while one of their choices still has room.
    for user, choice in first.items():
        if choice is None:
            assert all(used[c["event_id"]] >= caps[c["event_id"]] for c in shortlists[user])


def test_invitation_cap_is_ceil_of_invites_per_seat_times_free_seats():
    event = {"id": "e", "maxParticipants": 10, "participant_count": 7}
    assert invitation_cap(event, 3) == 9
    assert invitation_cap(event, 1.5) == 5  # ceil(4.5)
    assert invitation_cap(event, 0) is None
    assert invitation_cap({**event, "participant_count": 10}, 3) == 0
    assert invitation_cap({"id": "e"}, 3) is None  # unknown capacity: no cap
    assert invitation_caps([event, {**event, "id": "f"}], 2) == {"e": 6, "f": 6}


def test_prior_invitations_count_records_and_held_rows():
    records = [{"event_id": "e-a"}, {"event_id": "e-a"}, {"event_id": "e-b"}, {"user_id": "x"}]
    assert prior_invitations(records, {"e-b": 2, "e-c": 1}) == {"e-a": 2, "e-b": 3, "e-c": 1}


def test_offline_shortlist_is_ranked_distinct_and_starts_with_offline_match():
    now = parse_now("2026-11-25T12:00:00Z")
    user = {"id": "u", "interests": ["jazz", "wine"], "event_count": 4, "days_since_last_event": 3,
            "homeNeighborhood": "SoHo"}
    events = [
        {"id": f"e{i}", "name": f"Event {i}", "categories": [category], "neighborhood": hood,
         "startDate": f"2026-12-0{i + 1}T23:00:00Z", "maxParticipants": 10, "participant_count": 4}
        for i, (category, hood) in enumerate([("Jazz", "SoHo"), ("Wine", "Harlem"), ("Pottery", "SoHo"),
                                              ("Chess", "Harlem"), ("Jazz", "Harlem")])
    ]
    shortlist = offline_shortlist(user, events, now, k=3)
    assert len(shortlist) == 3 and len({choice["event_index"] for choice in shortlist}) == 3
    assert shortlist[0] == offline_match(user, events, now)
    confidences = [choice["confidence"] for choice in shortlist]
    assert confidences == sorted(confidences, reverse=True)
    assert len(offline_shortlist(user, events[:2], now, k=3)) == 2


def test_validate_shortlist_names_each_problem():
    from pipeline.match_message.asking import validate_shortlist

    good = {"event_index": 1, "campaign": "Fill the Table", "reasoning": "r", "confidence": 50}
    assert validate_shortlist({"choices": [good, {**good, "event_index": 2}]}, 6) == []
    assert validate_shortlist({"choices": []}, 6) == ["choices must hold 1 to 3 events, got 0"]
    assert validate_shortlist({"choices": [good] * 4}, 6) == ["choices must hold 1 to 3 events, got 4"]
    assert validate_shortlist({"choices": [good, good]}, 6) == ["each choice must name a different event_index"]
    assert validate_shortlist({"choices": [good, {**good, "event_index": 9}]}, 6) == [
        "choice 2: event_index must be an integer from 0 to 5, got 9"]
    assert validate_shortlist(good, 6) == ['the answer must be a JSON object with a "choices" list']


@pytest.mark.parametrize("flag", ["--invites-per-seat", "--max-cost"])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "three"])
def test_a_number_flag_refuses_nan_inf_and_negatives_before_any_work(flag, text, capsys):
    # nan/inf used to pass argparse and crash invitation_cap after the match phase had run (R1 item 4).
    with pytest.raises(SystemExit) as caught:
        step5.build_parser().parse_args([f"{flag}={text}"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and repr(text) in err and "Traceback" not in err


@pytest.mark.parametrize("flag, dest", [("--invites-per-seat", "invites_per_seat"), ("--max-cost", "max_cost")])
def test_a_number_flag_takes_zero_and_finite_numbers(flag, dest):
    assert getattr(step5.build_parser().parse_args([flag, "0"]), dest) == 0
    assert getattr(step5.build_parser().parse_args([flag, "2.5"]), dest) == 2.5


def _outcome(caps: dict, prior: dict, assigned: list[str]) -> RunOutcome:
    assignment = {f"u{i}": {**_choice(event, 80), "rank": 1} for i, event in enumerate(assigned)}
    return RunOutcome(selected=[], assignment=assignment, caps=caps, prior=prior)


def test_earlier_invitations_over_a_shrunk_cap_are_not_flagged_when_this_run_adds_none():
    # Seats booked since the last run: cap 6, 15 earlier invitations; this run adds none there (R1 item 2).
    assert over_cap_events(_outcome({"e-a": 6, "e-b": 4}, {"e-a": 15}, ["e-b", "e-b"])) == []


def test_this_run_adding_beyond_the_room_left_is_flagged():
    assert over_cap_events(_outcome({"e-a": 6}, {"e-a": 15}, ["e-a"])) == ["e-a"]
    assert over_cap_events(_outcome({"e-a": 6}, {"e-a": 4}, ["e-a", "e-a"])) == []
    assert over_cap_events(_outcome({"e-a": 6}, {"e-a": 4}, ["e-a", "e-a", "e-a"])) == ["e-a"]
    assert over_cap_events(_outcome({"e-a": None}, {"e-a": 40}, ["e-a"] * 5)) == []


def test_the_sms_cost_at_the_other_budget_is_labelled_an_estimate():
    # R1 item 8: at the seed's budget the one-segment figure is not a count of real segments.
    made = [{"sms_segments": 2}, {"sms_segments": 2}, {"sms_segments": 3}]
    rows = dict(sms_rows(made, 180))
    assert rows["  SMS of 2 segments"] == 2 and rows["  SMS of 3 segments"] == 1
    other = [label for label in rows if "--max-segments 1" in label]
    assert other == ["  estimate: the same members at --max-segments 1, 1 segment each (USD)"]
    one_segment = dict(sms_rows([{"sms_segments": 1}], 161))
    assert one_segment["SMS budget of this run"] == "1 segment (--max-segments 1)"
    assert not [label for label in one_segment if "estimate:" in label]
