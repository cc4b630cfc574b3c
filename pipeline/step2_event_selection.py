"""Step 2: event selection.

Reads data/raw/events.json and writes data/processed/qualified_events.json: the events worth
promoting, i.e. public, not canceled, starting after --now, and with at least one free seat.
"""

import sys
from pathlib import Path

# Run as `python pipeline/step2_event_selection.py` from any folder: make `utils` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import math  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, tzinfo  # noqa: E402
from typing import Any, Optional  # noqa: E402

from utils.cli import build_arg_parser, start_step, step_main  # noqa: E402
from utils.dates import date_out_of_range, parse_iso_date  # noqa: E402  (the spec lists it as a step-2 function)
from utils.jsonio import (  # noqa: E402
    input_repair_rows, load_json_list, normalize_extended_json, save_json_atomic, split_objects,
)
from utils.log import log_stats_table  # noqa: E402
from utils.paths import EVENTS_FILE, QUALIFIED_EVENTS_FILE, processed_path, raw_path  # noqa: E402
from utils.people import is_number  # noqa: E402

STEP_NAME = "event_selection"
STATS_TITLE = "Step 2: event selection"

EPILOG = """\
example:
  python pipeline/step2_event_selection.py --data-dir data --now 2026-11-25T12:00:00Z

Rules, statistics and sample output: docs/2-event-selection.md"""

# Exclusion reasons: the keys of the filters' Counters and, in this order, the statistics rows.
INVALID_DATE = "invalid date"
DATE_OUT_OF_RANGE = "date out of range"
PAST = "past"
PRIVATE = "private"
CANCELED = "canceled"
INVALID_CAPACITY = "invalid capacity"
INVALID_PARTICIPANTS = "invalid participants"
FULL = "full"
EXCLUSION_REASONS = (INVALID_DATE, DATE_OUT_OF_RANGE, PAST, PRIVATE, CANCELED, INVALID_CAPACITY, INVALID_PARTICIPANTS, FULL)


def load_events(path: Path) -> list:
    """Load the raw events export (Extended JSON normalised)."""
    return load_json_list(path, what="events")


def filter_future_events(events: list[dict], now: datetime,
                         zone: Optional[tzinfo] = None) -> tuple[list[dict], Counter]:
    """Keep events whose `startDate` is strictly after `now`; count the rest as invalid date, out of range or past.

    A `startDate` without a zone (a date alone is midnight) is read in `zone`, the community's zone (None: UTC).
    """
    kept: list[dict] = []
    excluded: Counter = Counter()
    for event in events:
        value = event.get("startDate")
        start = parse_iso_date(value, zone)
        if start is None:
            excluded[DATE_OUT_OF_RANGE if date_out_of_range(value) else INVALID_DATE] += 1
        elif start <= now:
            excluded[PAST] += 1
        else:
            kept.append(event)
    return kept, excluded


def filter_public_events(events: list[dict]) -> tuple[list[dict], int]:
    """Keep events whose `type` is exactly "public"; return them and how many were private (or untyped)."""
    kept = [event for event in events if event.get("type") == "public"]
    return kept, len(events) - len(kept)


def filter_active_events(events: list[dict]) -> tuple[list[dict], int]:
    """Drop events whose `eventStatus` is exactly "canceled"; return the rest and the number dropped."""
    kept = [event for event in events if event.get("eventStatus") != "canceled"]
    return kept, len(events) - len(kept)


def read_max_participants(value: Any) -> Optional[float]:
    """`maxParticipants` as a number, or None unless it is a finite JSON number (a bool or "10" is not)."""
    if isinstance(value, dict):
        value = normalize_extended_json(value)  # {"$numberInt": "10"} when not loaded by load_events
    if not is_number(value):
        return None
    try:
        # json.load accepts NaN and Infinity; `n >= NaN` is always False, which would read as "free seats".
        return value if math.isfinite(value) else None
    except OverflowError:
        return None  # an integer beyond any float (a 401-digit count) is no capacity


def capacity_problem(event: dict) -> Optional[str]:
    """Why an event has no free seat (invalid capacity, invalid participants or full), or None if it has one."""
    max_participants = read_max_participants(event.get("maxParticipants"))
    if max_participants is None:
        return INVALID_CAPACITY
    participants = event.get("participants")
    if participants is None:
        participants = []
    if not isinstance(participants, list):
        return INVALID_PARTICIPANTS
    return FULL if len(participants) >= max_participants else None


def filter_events_with_capacity(events: list[dict]) -> tuple[list[dict], Counter]:
    """Keep events where `len(participants) < maxParticipants`; count the rest by `capacity_problem`."""
    kept: list[dict] = []
    excluded: Counter = Counter()
    for event in events:
        problem = capacity_problem(event)
        if problem is None:
            kept.append(event)
        else:
            excluded[problem] += 1
    return kept, excluded


def select_events(raw_events: list, now: datetime,
                  zone: Optional[tzinfo] = None) -> tuple[list[dict], list[tuple[str, int]]]:
    """Apply the step-2 filters in order, counting each excluded event once, under the first filter it fails.

    Returns the qualified events (input order) and the statistics rows (with what loading repaired).
    """
    events, not_objects = split_objects(raw_events)
    excluded: Counter = Counter()
    events, by_date = filter_future_events(events, now, zone)
    excluded.update(by_date)
    events, private = filter_public_events(events)
    excluded[PRIVATE] = private
    events, canceled = filter_active_events(events)
    excluded[CANCELED] = canceled
    qualified, by_capacity = filter_events_with_capacity(events)
    excluded.update(by_capacity)
    stats = [("events loaded", len(raw_events)), *input_repair_rows(raw_events, "events"),
             ("events skipped: not an object", not_objects)]
    stats += [(f"filtered: {reason}", excluded[reason]) for reason in EXCLUSION_REASONS]
    stats.append(("qualified events", len(qualified)))
    return qualified, stats


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 2 from the command line."""
    args = build_arg_parser(__doc__, EPILOG).parse_args(argv)
    run = start_step(STEP_NAME, args)
    events = load_events(raw_path(run.data_dir, EVENTS_FILE))
    qualified, stats = select_events(events, run.now, run.zone)
    output = processed_path(run.data_dir, QUALIFIED_EVENTS_FILE)
    save_json_atomic(output, qualified)
    log_stats_table(run.logger, STATS_TITLE, stats)
    run.logger.info("wrote %d qualified events to %s", len(qualified), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
