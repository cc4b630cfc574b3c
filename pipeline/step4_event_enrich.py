"""Step 4: event profile enrichment.

Reads data/processed/qualified_events.json and data/raw/users.json and writes
data/processed/enriched_events.json: each qualified event with its weekday, host, participant names,
common occupations and interests, average age, a low-occupancy flag, a clean description and a
readable summary. Ages are measured at --now; weekdays, dates and times use --timezone.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import html  # noqa: E402
import re  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, tzinfo  # noqa: E402
from typing import Any, Iterable, Optional  # noqa: E402

from utils import rules  # noqa: E402
from utils.cli import build_arg_parser, gc_paused, start_step, step_main  # noqa: E402
from utils.dates import calculate_age, date_out_of_range, is_date_only, parse_iso_date, to_iso  # noqa: E402
from utils.jsonio import input_repair_rows, save_json_atomic, split_objects  # noqa: E402
from utils.log import log_stats_table  # noqa: E402
from utils.paths import ENRICHED_EVENTS_FILE, QUALIFIED_EVENTS_FILE, USERS_FILE, processed_path, raw_path  # noqa: E402
from utils.people import (  # noqa: E402
    clean_text, format_day, format_time, full_name, host_name, index_users_by_email, index_users_by_id, is_number,
    join_words, load_all_users, load_qualified_events, normalize_email_text, record_id, strip_invisible, text_list,
    weekday_name,
)

STEP_NAME = "event_enrich"

# `parse_iso_date`, `load_all_users` and `load_qualified_events` are the shared implementations
# imported above; they are part of this module's interface, as the spec names them.
__all__ = [
    "load_qualified_events", "load_all_users", "parse_iso_date", "clean_html", "get_day_of_week",
    "extract_host_name", "match_participants", "calculate_common_occupations", "calculate_common_interests",
    "calculate_average_age", "detect_low_occupancy", "extract_participant_names", "generate_event_summary",
    "enrich_events", "main",
]

# The spec's tag pattern. Tags that end a block (</p>, <br>, …) become a space so that paragraphs
# do not run together ("one</p><p>two" -> "one two"); inline tags vanish ("<b>Hel</b>lo" -> "Hello").
_TAG = re.compile(r"<[^>]+>")
_BLOCK_TAG = re.compile(r"</?(?:p|br|div|li|ul|ol|h[1-6]|tr|td|th|table|blockquote|section|article|hr)\b",
                        re.IGNORECASE)
_SUMMARY_GUESTS = 5


def _replace_tag(match: re.Match) -> str:
    return " " if _BLOCK_TAG.match(match.group()) else ""


def clean_html(description: Any) -> str:
    """Tags removed (regex `<[^>]+>`), entities unescaped, invisible characters and extra whitespace removed.

    Linear in the length of the text, even for a description of many "<" and no ">". Returns "" when
    the description is missing.
    """
    if not isinstance(description, str):
        return ""
    # No tag can start after the last ">": searching there from every "<" would scan to the end each
    # time (quadratic: 640 KB of "<" took 23 s). Before it, every "<" finds a ">" and the scan moves on.
    tags_end = description.rfind(">") + 1
    text = _TAG.sub(_replace_tag, description[:tags_end]) + description[tags_end:]
    # Unescaped after the tags are gone, so "&lt;b&gt;" stays text; stripped after, so "&#8238;" goes too.
    return " ".join(strip_invisible(html.unescape(text)).split())


def get_day_of_week(start_date: Any, zone: tzinfo) -> Optional[str]:
    """The English day name of `startDate` (string or datetime) in `zone`, or None if invalid.

    A `startDate` without a zone (or a date alone) is read in `zone`.
    """
    start = start_date if isinstance(start_date, datetime) else parse_iso_date(start_date, zone)
    return weekday_name(start, zone) if start is not None else None


def extract_host_name(event: dict, users_by_id: dict[str, dict]) -> Optional[str]:
    """The host's full name from `ownerId` (matched to a user's `id` or `_id`), or None."""
    return host_name(event.get("ownerId"), users_by_id)


def match_participants(participants: Any, users_by_email: dict[str, dict]) -> tuple[list[dict], int]:
    """The users behind a participant list (case-insensitive email, each once), and how many matched no user."""
    if not isinstance(participants, list):
        return [], 0
    matched: dict[str, dict] = {}
    unmatched = 0
    for value in participants:
        email = normalize_email_text(value)
        user = users_by_email.get(email) if email is not None else None
        if user is None:
            unmatched += 1
        elif email not in matched:
            matched[email] = user
    return list(matched.values()), unmatched


def _top(values: Iterable[str]) -> list[str]:
    # Counter keeps first-appearance order and sorted() is stable, so ties go to the earliest value.
    counts = Counter(values)
    return [value for value, _ in sorted(counts.items(), key=lambda item: -item[1])[:rules.TOP_DEMOGRAPHICS]]


def calculate_common_occupations(participant_users: list[dict]) -> list[str]:
    """The 5 most frequent occupations of the participants, ties broken by first appearance."""
    return _top(occupation for user in participant_users
                if (occupation := clean_text(user.get("occupation"))) is not None)


def calculate_common_interests(participant_users: list[dict]) -> list[str]:
    """The 5 most frequent interests (each counted once per participant), ties by first appearance."""
    return _top(interest for user in participant_users
                for interest in dict.fromkeys(text_list(user.get("interests"))))


def calculate_average_age(participant_users: list[dict], now: datetime) -> Optional[int]:
    """The mean of the known participant ages, rounded half up to an integer, or None."""
    ages = [age for user in participant_users if (age := calculate_age(user.get("birthDay"), now)) is not None]
    if not ages:
        return None
    # Integer arithmetic: exact half-up rounding (28.5 -> 29), unlike round()'s half-to-even.
    return (2 * sum(ages) + len(ages)) // (2 * len(ages))


def _capacity(value: Any) -> Optional[int | float]:
    """`maxParticipants` when it is a number, else None (also for a whole number beyond any float)."""
    if not is_number(value):
        return None
    try:
        return int(value) if float(value).is_integer() else value
    except OverflowError:
        return None


def detect_low_occupancy(participant_count: int, max_participants: Any) -> bool:
    """Spec rule: `count / max < 0.3`, or `count < 3` with `max >= 10`; False when max is not a positive number."""
    capacity = _capacity(max_participants)
    if capacity is None or capacity <= 0:
        return False
    return (participant_count / capacity < rules.LOW_OCCUPANCY_RATIO
            or (participant_count < rules.LOW_OCCUPANCY_MIN_COUNT
                and capacity >= rules.LOW_OCCUPANCY_LARGE_TABLE))


def extract_participant_names(participant_users: list[dict]) -> list[str]:
    """"First Last (Occupation)", or "First Last" without an occupation; users without a name are skipped."""
    names = []
    for user in participant_users:
        name = full_name(user)
        if name is None:
            continue
        occupation = clean_text(user.get("occupation"))
        names.append(f"{name} ({occupation})" if occupation else name)
    return names


def generate_event_summary(profile: dict, start: datetime, zone: tzinfo) -> str:
    """A paragraph for a copywriter (and step 5's prompt) with every known fact; unknown facts are left out.

    Args:
        profile: The enriched record (every field but `summary`).
        start: The parsed `startDate`.
        zone: The zone the date and time are shown in.
    """
    head = profile["name"] or "This event"
    if profile["categories"]:
        head += f" ({', '.join(profile['categories'])})"
    # An all-day event (a startDate without a time) has no clock time to show: none is invented.
    when = "(all day)" if is_date_only(profile["startDate"]) else f"at {format_time(start, zone)}"
    first = f"{head} is on {profile['day_of_week']}, {format_day(start, zone)} {when}"
    if profile["venueName"]:
        first += f" at {profile['venueName']}"
    if profile["neighborhood"]:
        first += f" in {profile['neighborhood']}"
    if profile["host_name"]:
        first += f", hosted by {profile['host_name']}"
    sentences = [first + "."]

    count, capacity = profile["participant_count"], profile["maxParticipants"]
    if count == 0:
        seats = "No one has signed up yet" + (f" ({capacity} seats)" if capacity is not None else "")
    elif capacity is not None:
        seats = f"{count} of {capacity} seats {'is' if count == 1 else 'are'} taken"
    else:
        seats = f"{count} {'person has' if count == 1 else 'people have'} signed up"
    names = profile["participant_names"]
    if names:
        seats += f"; guests include {join_words(names[:_SUMMARY_GUESTS])}"
    sentences.append(seats + ".")
    if profile["has_low_occupancy"]:
        sentences.append("The table has low occupancy and needs more guests.")
    if profile["common_occupations"]:
        sentences.append(f"Common guest occupations: {join_words(profile['common_occupations'])}.")
    if profile["common_interests"]:
        sentences.append(f"Common guest interests: {join_words(profile['common_interests'])}.")
    if profile["average_age"] is not None:
        sentences.append(f"The average guest age is {profile['average_age']}.")
    if profile["features"]:
        sentences.append(f"Features: {join_words(profile['features'])}.")
    if profile["description"]:
        sentences.append(f"About: {profile['description']}")
    return " ".join(sentences)


def _date_text(value: Any, moment: datetime) -> str:
    """How a parsed date is written out: a date alone stays "YYYY-MM-DD" (an all-day date), else UTC ISO 8601."""
    return value.strip() if is_date_only(value) else to_iso(moment)


def enrich_event(event: dict, start: datetime, users_by_id: dict[str, dict], users_by_email: dict[str, dict],
                 now: datetime, zone: tzinfo) -> tuple[dict, int]:
    """One enriched record in the spec's field order, and how many participants matched no user."""
    participants = event.get("participants")
    participant_count = len(participants) if isinstance(participants, list) else 0
    guests, unmatched = match_participants(participants, users_by_email)
    capacity = _capacity(event.get("maxParticipants"))
    end = parse_iso_date(event.get("endDate"), zone)
    profile = {
        "id": record_id(event),
        "name": clean_text(event.get("name")),
        "startDate": _date_text(event.get("startDate"), start),
        "endDate": _date_text(event.get("endDate"), end) if end is not None else None,
        "day_of_week": get_day_of_week(start, zone),
        "venueName": clean_text(event.get("venueName")),
        "neighborhood": clean_text(event.get("neighborhood")),
        "categories": text_list(event.get("categories")),
        "features": text_list(event.get("features")),
        "maxParticipants": capacity,
        "participant_count": participant_count,
        "description": clean_html(event.get("description")),
        "host_name": extract_host_name(event, users_by_id),
        "common_occupations": calculate_common_occupations(guests),
        "common_interests": calculate_common_interests(guests),
        "average_age": calculate_average_age(guests, now),
        "has_low_occupancy": detect_low_occupancy(participant_count, capacity),
        "participant_names": extract_participant_names(guests),
    }
    profile["summary"] = generate_event_summary(profile, start, zone)
    return profile, unmatched


def enrich_events(raw_qualified_events: list, raw_users: list, now: datetime,
                  zone: tzinfo) -> tuple[list[dict], list[tuple[str, int]]]:
    """Enrich every qualified event; return the records and the statistics rows."""
    events, bad_events = split_objects(raw_qualified_events)
    users, bad_users = split_objects(raw_users)
    users_by_id = index_users_by_id(users)
    users_by_email = index_users_by_email(users)

    records: list[dict] = []
    invalid_start = start_out_of_range = end_out_of_range = unmatched = 0
    for event in events:
        start = parse_iso_date(event.get("startDate"), zone)
        if start is None:
            if date_out_of_range(event.get("startDate")):
                start_out_of_range += 1
            else:
                invalid_start += 1
            continue
        record, missing = enrich_event(event, start, users_by_id, users_by_email, now, zone)
        unmatched += missing
        end_out_of_range += record["endDate"] is None and date_out_of_range(event.get("endDate"))
        records.append(record)
    # Counted over all users (not per event), so a guest of several events counts once.
    birthdays_out_of_range = sum(1 for user in users if date_out_of_range(user.get("birthDay")))

    listed = sum(record["participant_count"] for record in records)
    stats = [
        ("qualified events loaded", len(raw_qualified_events)),
        *input_repair_rows(raw_qualified_events, "qualified events"),
        ("qualified events skipped: not an object", bad_events),
        ("qualified events skipped: missing or invalid startDate", invalid_start),
        ("qualified events skipped: startDate out of range", start_out_of_range),
        ("events with endDate out of range (read as missing)", end_out_of_range),
        ("users loaded (participants, hosts)", len(raw_users)),
        *input_repair_rows(raw_users, "users"),
        ("users skipped: not an object", bad_users),
        ("users with birthDay out of range (age unknown)", birthdays_out_of_range),
        ("participants listed", listed),
        ("participants matched to a user", listed - unmatched),
        ("participants matching no user", unmatched),
        ("events with unknown host", sum(1 for record in records if record["host_name"] is None)),
        ("events with low occupancy", sum(1 for record in records if record["has_low_occupancy"])),
        ("enriched events", len(records)),
    ]
    return records, stats


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 4 from the command line."""
    args = build_arg_parser(__doc__).parse_args(argv)
    run = start_step(STEP_NAME, args)
    output = processed_path(run.data_dir, ENRICHED_EVENTS_FILE)
    with gc_paused():
        events = load_qualified_events(processed_path(run.data_dir, QUALIFIED_EVENTS_FILE))
        users = load_all_users(raw_path(run.data_dir, USERS_FILE))
        records, stats = enrich_events(events, users, run.now, run.zone)
        save_json_atomic(output, records)
    log_stats_table(run.logger, "Step 4: event profile enrichment", stats)
    run.logger.info("wrote %d enriched events to %s", len(records), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
