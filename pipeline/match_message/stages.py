"""Resume by stage: what each member's saved record already holds, and why a stage must run again.

A record keeps, next to the finished fields the team sees, a `stages` object with one entry per phase
("match", "write", "check"). Each entry stores two hashes: `settings` (the static parts of the
requests that stage builds: template text, model, temperatures, max tokens, schema, tones, character
budget, catalog) and `inputs` (the member-specific parts: summary, assigned event, match, message).
A stage runs again only when one of its hashes changed, when it failed before, or with --fresh.
Today's date is in no hash: the next-day rule (`is_day_bound`) is the only way a date matters.
"""

import hashlib
import re
from typing import Iterable, Optional

STAGES = ("match", "write", "check")
#: Statuses of a record whose message is finished (it may be uploaded).
COMPLETE_STATUSES = ("approved", "needs_review")

CAUSE_NEW = "new member"
CAUSE_SETTINGS = "changed prompt or settings"
CAUSE_FAILED = "failed before"
CAUSE_FRESH = "--fresh"
CAUSE_STALE_DAY = "day-bound wording from an earlier day"
#: What a change of a stage's `inputs` hash means, in the report's words.
CAUSE_INPUTS = {"match": "changed profile", "write": "new event or changed profile", "check": "new message"}

_WEEKDAYS = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day|mon|tue|wed|thu|fri|sat|sun"
_NUMBER_WORDS = r"\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few"
#: Wording that is only true on the day it was written ("tonight", "this Friday", "in 3 days").
DAY_BOUND_RE = re.compile(
    rf"\b(?:today|tonight|tomorrow|yesterday|this (?:morning|afternoon|evening|week|weekend|{_WEEKDAYS})"
    rf"|next (?:week|weekend|{_WEEKDAYS})|in (?:{_NUMBER_WORDS}) days?)\b",
    re.IGNORECASE,
)


def digest(parts: Iterable[object]) -> str:
    """A short stable hash of the parts, in order (each part is its str())."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(str(part).encode("utf-8"))
        sha.update(b"\x00")
    return sha.hexdigest()[:16]


def is_day_bound(message: Optional[str]) -> bool:
    """True when the message says something only true on the day it was written."""
    return bool(message) and DAY_BOUND_RE.search(message) is not None


def stage_entry(record: Optional[dict], stage: str) -> Optional[dict]:
    """The saved entry of one stage, or None."""
    stages = (record or {}).get("stages")
    return stages.get(stage) if isinstance(stages, dict) else None


def stage_cause(record: Optional[dict], stage: str, settings: str, inputs: str, *, fresh: bool = False) -> Optional[str]:
    """Why `stage` must run again for this member, or None when its saved result still holds.

    Args:
        record: The member's saved record, or None.
        stage: "match", "write" or "check".
        settings: The hash of the stage's static request parts in this run.
        inputs: The hash of the member-specific parts in this run.
        fresh: --fresh was given.

    Returns:
        A cause from this module's CAUSE_* names, or None.
    """
    if fresh:
        return CAUSE_FRESH
    entry = stage_entry(record, stage)
    if entry is None:
        return CAUSE_NEW
    if entry.get("error"):
        return CAUSE_FAILED
    if entry.get("settings") != settings:
        return CAUSE_SETTINGS
    if entry.get("inputs") != inputs:
        return CAUSE_INPUTS[stage]
    return None


def with_stage(record: dict, stage: str, entry: dict) -> dict:
    """A copy of the record with one stage entry replaced (later stages are kept; their hashes decide)."""
    stages = dict(record.get("stages") or {})
    stages[stage] = entry
    return {**record, "stages": stages}


def record_fingerprint(record: dict) -> str:
    """One hash of the three stages' hashes: the finished record's `fingerprint`."""
    parts = []
    for stage in STAGES:
        entry = stage_entry(record, stage) or {}
        parts += [entry.get("settings"), entry.get("inputs")]
    return digest(parts)
