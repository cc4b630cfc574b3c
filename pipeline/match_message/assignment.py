"""Phase 2 of step 5: give each member at most one event from their shortlist, within every event's cap.

The rule (greedy by confidence): every (member, choice) pair is taken in order of confidence, highest
first; ties go to the better shortlist rank, then to the member who comes first in the input, then to
the lower event index. A pair is granted when its member has no event yet and its event has room. The
result depends only on the inputs. See docs/5-match-message.md, "Assign", for why greedy and not exact.
"""

import argparse
import math
from collections import Counter
from typing import Iterable, Mapping, Optional

from utils.offline_engine import seats_left

#: Invitations per free seat when `--invites-per-seat` is not given (reason in docs/5-match-message.md).
DEFAULT_INVITES_PER_SEAT = 3.0


def finite_non_negative(text: str) -> float:
    """Argparse type of `--invites-per-seat` and `--max-cost`: a finite number, 0 or more.

    Args:
        text: The flag's value as typed.

    Returns:
        The number.

    Raises:
        argparse.ArgumentTypeError: Not a number, "nan", "inf" or below 0 (argparse prints it, exit 2).
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 0 or more, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number, 0 or more, got {text!r}")
    return value


def invitation_cap(event: dict, invites_per_seat: float) -> Optional[int]:
    """At most `ceil(invites_per_seat * free seats)` invitations; None means no cap.

    Args:
        event: An enriched event (`maxParticipants`, `participant_count`).
        invites_per_seat: `--invites-per-seat`; 0 turns the cap off.

    Returns:
        The cap, or None when the cap is off or the event's capacity is unknown.
    """
    if invites_per_seat <= 0:
        return None
    free = seats_left(event)
    if free is None:
        return None
    return math.ceil(invites_per_seat * free)


def invitation_caps(events: list[dict], invites_per_seat: float) -> dict[str, Optional[int]]:
    """Every event's cap, keyed by event id."""
    return {event["id"]: invitation_cap(event, invites_per_seat) for event in events}


#: A `no_event` record's field naming the event of its uploaded invitation, whose Airtable row is left in place.
STANDING_ROW_EVENT = "uploaded_event_id"


def invitation_event_id(record: dict) -> Optional[str]:
    """The event a saved record's invitation counts against, or None.

    Args:
        record: A saved record.

    Returns:
        Its `event_id`; for a `no_event` record, the event of the uploaded row it left standing in Airtable
        (that row still invites the member), else None.
    """
    if record.get("status") == "no_event":
        return record.get(STANDING_ROW_EVENT)
    return record.get("event_id")


def prior_invitations(records: Iterable[dict], held_invites: Mapping[str, int] = None) -> dict[str, int]:
    """Invitations that already exist outside this assignment, per event id.

    Args:
        records: Records of members who are not being assigned now: finished ones (uploaded rows, or rows
            a later run will upload), and `no_event` ones whose uploaded row was left in Airtable.
        held_invites: Rows the team holds, per event id.

    Returns:
        {event_id: count}.
    """
    counts = Counter(event_id for record in records if (event_id := invitation_event_id(record)))
    counts.update(held_invites or {})
    return dict(counts)


def assign_events(shortlists: Mapping[str, list[dict]], caps: Mapping[str, Optional[int]],
                  prior: Mapping[str, int], keep: Optional[Mapping[str, str]] = None) -> dict[str, Optional[dict]]:
    """Assign each member at most one event from their shortlist, greedy by confidence.

    Members in `keep` first get the event their uploaded invitation is for, when it is still on their
    shortlist and has room (in the members' order): a re-run does not move a row the team may have seen.

    Args:
        shortlists: {user_id: ranked choices}, in the members' order; each choice has `event_id`,
            `event_index` and `confidence`.
        caps: {event_id: cap or None (no cap)}; an event missing here has no cap.
        prior: {event_id: invitations that already count against the cap}.
        keep: {user_id: event_id of the member's uploaded invitation}, optional.

    Returns:
        {user_id: the granted choice with its 1-based `rank` added, or None (every choice was full)},
        for every member in `shortlists`.
    """
    pairs = []
    for position, (user_id, choices) in enumerate(shortlists.items()):
        for rank, choice in enumerate(choices, start=1):
            pairs.append((-float(choice["confidence"]), rank, position, choice["event_index"], user_id, choice))
    kept = [(0.0, rank, position, choice["event_index"], user_id, choice)
            for position, (user_id, choices) in enumerate(shortlists.items())
            for rank, choice in enumerate(choices, start=1) if (keep or {}).get(user_id) == choice["event_id"]]
    pairs.sort(key=lambda pair: pair[:4])
    used = Counter(prior)
    granted: dict[str, Optional[dict]] = {user_id: None for user_id in shortlists}
    for _, rank, _, _, user_id, choice in kept + pairs:
        if granted[user_id] is not None:
            continue
        cap = caps.get(choice["event_id"])
        if cap is not None and used[choice["event_id"]] >= cap:
            continue
        used[choice["event_id"]] += 1
        granted[user_id] = {**choice, "rank": rank}
    return granted
