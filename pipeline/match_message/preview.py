"""--preview: try the current prompts on a few members without changing anything the run keeps.

A preview works on a copy of the saved records held in memory (`MemoryStore`): the phases read the
saved shortlists and messages from it and put the new ones back into it, so the stage logic is the
run's own (a saved shortlist whose matching prompt is unchanged is reused, no match call), while
processed_messages.json, its journal and Airtable are never touched. Only preview_messages.json and
review.html are written.
"""

import copy
import threading
from typing import Iterable, Optional

from pipeline.match_message.stages import digest
from utils.sms import sms_encoding, sms_segments


class MemoryStore:
    """The MessageStore's face (get, put, snapshot, close) over records kept in memory only."""

    def __init__(self, records: Iterable[dict]):
        self.records = {record["user_id"]: copy.deepcopy(record) for record in records
                        if isinstance(record, dict) and isinstance(record.get("user_id"), str)}
        self.recovered = 0
        self._lock = threading.Lock()

    def get(self, user_id: str) -> Optional[dict]:
        """The record of a member, or None."""
        with self._lock:
            return self.records.get(user_id)

    def put(self, record: dict) -> None:
        """Keep a record (in memory only)."""
        with self._lock:
            self.records[record["user_id"]] = record

    def snapshot(self) -> dict[str, dict]:
        """A shallow copy of every record by user id."""
        with self._lock:
            return dict(self.records)

    def close(self) -> None:
        """Nothing to close: a preview writes no journal."""


def sample_members(users: list[dict], saved: dict[str, dict], count: int, seed: str) -> list[dict]:
    """`count` members spread across campaigns and events, the same ones for the same `seed`.

    Members are grouped by the campaign and event of their saved record (members without one form a
    group of their own); the groups take turns, each giving its member with the lowest hash of
    (`seed`, user id). So every campaign and event is represented before any gets a second member.

    Args:
        users: The members to choose from.
        saved: user id -> saved record.
        count: How many to pick.
        seed: The prompts' fingerprint: the sample changes only when the prompts change.

    Returns:
        The chosen members, in the input order.
    """
    groups: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for index, user in enumerate(users):
        record = saved.get(user["id"]) or {}
        key = (str(record.get("campaign") or ""), str(record.get("event_id") or ""))
        groups.setdefault(key, []).append((digest([seed, user["id"]]), index))
    queues = [sorted(members) for _, members in sorted(groups.items(), key=lambda pair: digest([seed, *pair[0]]))]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0)[1])
    return [users[index] for index in sorted(chosen)]


def _size_line(message: Optional[str]) -> str:
    if not message:
        return "(no message)"
    return f"{len(message)} chars, {sms_segments(message)} segment(s), {sms_encoding(message)}"


def _verdict_line(record: Optional[dict]) -> str:
    record = record or {}
    score = (record.get("quality_check_response") or {}).get("quality_score") \
        if isinstance(record.get("quality_check_response"), dict) else None
    reasons = "; ".join(str(reason) for reason in record.get("review_reasons") or ()) or "none"
    return (f"{record.get('status', 'none')}, quality score {score if score is not None else 'n/a'}, "
            f"reasons: {reasons}")


def comparison_lines(user: dict, before: Optional[dict], after: Optional[dict]) -> list[str]:
    """What a preview prints for one member: the saved message above the new one, each with its facts."""
    before_message = (before or {}).get("message") if (before or {}).get("status") != "no_event" else None
    after_message = (after or {}).get("message") if (after or {}).get("status") != "no_event" else None
    event = (after or before or {}).get("event_name") or (after or before or {}).get("event_id") or "no event"
    mark = "unchanged" if before_message == after_message else "changed"
    return [
        f"{user['id']} ({(after or before or {}).get('campaign') or 'no campaign'}, {event}): {mark}",
        f"  saved: {before_message or '(none)'}",
        f"         {_size_line(before_message)}; {_verdict_line(before) if before else 'no saved record'}",
        f"  new:   {after_message or '(none)'}",
        f"         {_size_line(after_message)}; {_verdict_line(after)}",
    ]
