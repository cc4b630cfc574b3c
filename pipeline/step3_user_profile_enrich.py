"""Step 3: user profile enrichment.

Reads data/processed/qualified_users.json, data/raw/events.json, data/raw/users.json and
data/processed/qualified_events.json, and writes data/processed/enriched_users.json: each qualified
user with event history, hosts, friends, invitations, status flags, engagement tier, segment and a
readable summary. Every date rule is measured against --now; dates in summaries use --timezone.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collections import Counter  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, tzinfo  # noqa: E402
from typing import NamedTuple, Optional  # noqa: E402

from utils import rules  # noqa: E402
from utils.cli import build_arg_parser, gc_paused, start_step, step_main  # noqa: E402
from utils.dates import calculate_age, date_out_of_range, days_since, parse_iso_date, to_iso  # noqa: E402
from utils.jsonio import input_repair_rows, load_json_list, save_json_atomic, split_objects  # noqa: E402
from utils.log import log_stats_table  # noqa: E402
from utils.paths import (  # noqa: E402
    ENRICHED_USERS_FILE, EVENTS_FILE, QUALIFIED_EVENTS_FILE, QUALIFIED_USERS_FILE, USERS_FILE,
    processed_path, raw_path,
)
from utils.people import (  # noqa: E402
    article, clean_text, days_ago, first_name, format_day, full_name, host_name, index_users_by_email,
    index_users_by_id, join_words, load_all_users, load_qualified_events, normalize_email_text, plural,
    record_id, strip_invisible, text_list,
)

STEP_NAME = "user_profile_enrich"

# The spec's key functions `calculate_age`, `load_all_users` and `load_qualified_events` are the
# shared implementations imported above; they are part of this module's interface.
__all__ = [
    "load_qualified_users", "load_all_events", "load_all_users", "load_qualified_events", "calculate_age",
    "index_past_events", "build_lookups", "associate_user_events", "extract_event_hosts", "identify_friends",
    "primary_status", "engagement_tier", "user_segment", "generate_user_summary", "enrich_users", "main",
]

PRIMARY_STATUSES = ("new_user", "never_attended", "dormant_60_days", "active_recent", "signed_up_online",
                    "active_regular")
ENGAGEMENT_TIERS = ("high", "medium", "low")
USER_SEGMENTS = ("new_online_signup", "new_app_user", "first_timer", "active_regular", "dormant", "churned")

# How the summary words each primary status.
_STATUS_WORDS = {
    "new_user": "new member",
    "never_attended": "never attended",
    "dormant_60_days": "no event in over 60 days",
    "active_recent": "attended in the last week",
    "signed_up_online": "signed up online",
    "active_regular": "active regular",
}
# Gender values we can word as a noun and a pronoun pair; anything else is described by its own
# text and referred to by first name, so the summary never guesses a pronoun.
_GENDER_WORDS = {
    "female": ("woman", "She", "Her"), "woman": ("woman", "She", "Her"), "f": ("woman", "She", "Her"),
    "male": ("man", "He", "His"), "man": ("man", "He", "His"), "m": ("man", "He", "His"),
}
_SUMMARY_NAMES = 5
# users.json fields of table_type_preference, relationship_status, occupation, gender, homeNeighborhood,
# workNeighborhood.
_TEXT_SOURCES = ("tableTypePreference", "relationshipStatus", "occupation", "gender", "homeNeighborhood",
                 "workNeighborhood")
# (list field, singular, plural) as worded in the summary.
_LIST_WORDS = (("interests", "interest", "interests"), ("cuisine_preferences", "favourite cuisine", "favourite cuisines"),
               ("dietary_restrictions", "dietary restriction", "dietary restrictions"))
_SUMMARY_FRIENDS = 3


class PastEvent(NamedTuple):
    """What a user's history needs from one past event, computed once per event."""

    start: datetime
    start_iso: str
    name: Optional[str]
    host: Optional[str]
    emails: tuple[str, ...]  # unique normalised participant emails, in list order


@dataclass
class Lookups:
    """The indexes built once per run and shared by every user."""

    past_events_by_email: dict[str, list[PastEvent]]
    names_by_email: dict[str, str]
    invited_by_email: dict[str, list[str]]


def load_qualified_users(path: Path) -> list:
    """Load step 1's output."""
    return load_json_list(path, what="qualified users")


def load_all_events(path: Path) -> list:
    """Load the raw events export (history is taken from it)."""
    return load_json_list(path, what="events")


def index_past_events(events: list[dict], users_by_id: dict[str, dict], now: datetime,
                      zone: Optional[tzinfo] = None) -> tuple[dict[str, list[PastEvent]], Counter]:
    """Index the events that started before `now` by participant email, newest first.

    Each event is parsed once; its host is looked up once. Events sharing an `id` are kept once.
    A `startDate` without a zone is read in `zone`, the community's zone (None: UTC).

    Returns:
        email -> past events (newest first), and counts: "duplicate", "invalid_date",
        "date_out_of_range", "upcoming", "past", "unknown_host".
    """
    counts: Counter = Counter()
    seen_ids: set[str] = set()
    past: list[PastEvent] = []
    for event in events:
        ident = record_id(event)
        if ident is not None:
            if ident in seen_ids:
                counts["duplicate"] += 1
                continue
            seen_ids.add(ident)
        start = parse_iso_date(event.get("startDate"), zone)
        if start is None:
            counts["date_out_of_range" if date_out_of_range(event.get("startDate")) else "invalid_date"] += 1
            continue
        if start >= now:
            counts["upcoming"] += 1
            continue
        participants = event.get("participants")
        emails = tuple(dict.fromkeys(
            email for email in map(normalize_email_text, participants) if email is not None
        )) if isinstance(participants, list) else ()
        host = host_name(event.get("ownerId"), users_by_id)
        counts["unknown_host"] += host is None
        past.append(PastEvent(start, to_iso(start), clean_text(event.get("name")), host, emails))
    counts["past"] = len(past)
    # Sorting once, newest first, makes every per-user list come out sorted (ties keep file order).
    past.sort(key=lambda item: item.start, reverse=True)
    by_email: dict[str, list[PastEvent]] = {}
    for item in past:
        for email in item.emails:
            bucket = by_email.get(email)
            if bucket is None:
                by_email[email] = [item]
            else:
                bucket.append(item)
    return by_email, counts


def index_invitations(qualified_events: list[dict]) -> dict[str, list[str]]:
    """Map each invited email to the names of the qualified events that invite it, in file order."""
    by_email: dict[str, list[str]] = {}
    for event in qualified_events:
        name = clean_text(event.get("name"))
        invited = event.get("invitedParticipants")
        if name is None or not isinstance(invited, list):
            continue
        for email in dict.fromkeys(map(normalize_email_text, invited)):
            if email is not None:
                by_email.setdefault(email, []).append(name)
    return by_email


def associate_user_events(email: Optional[str], past_events_by_email: dict[str, list[PastEvent]]) -> list[PastEvent]:
    """The user's history: past events listing `email` among participants, newest first."""
    return past_events_by_email.get(normalize_email_text(email), []) if email else []


def extract_event_hosts(history: list[PastEvent]) -> list[str]:
    """Unique host names of the history events, in order of first appearance; unknown hosts skipped."""
    return list(dict.fromkeys(item.host for item in history if item.host is not None))


def identify_friends(email: str, history: list[PastEvent], names_by_email: dict[str, str]) -> list[str]:
    """Users sharing 2+ history events with `email`, as "First Last (n)", most shared first, then by name."""
    if len(history) < rules.FRIEND_MIN_SHARED_EVENTS:
        return []
    shared: Counter = Counter()
    for item in history:
        shared.update(item.emails)
    ranked = []
    for other, count in shared.items():
        if count >= rules.FRIEND_MIN_SHARED_EVENTS and other != email:
            name = names_by_email.get(other)
            if name is not None:
                ranked.append((-count, name, other))
    ranked.sort()
    return [f"{name} ({-negative})" for negative, name, _ in ranked]


def primary_status(is_new_user: bool, event_count: int, hasnt_attended_in_60_days: Optional[bool],
                   recently_attended_last_week: Optional[bool], signed_up_online: bool) -> str:
    """The first status that applies, in the spec's order."""
    if is_new_user:
        return "new_user"
    if event_count == 0:
        return "never_attended"
    if hasnt_attended_in_60_days:
        return "dormant_60_days"
    if recently_attended_last_week:
        return "active_recent"
    if signed_up_online:
        return "signed_up_online"
    return "active_regular"


def engagement_tier(event_count: int, days_since_last_event: Optional[int]) -> str:
    """"high", "medium" or "low" from the event count and the recency of the last event."""
    if days_since_last_event is None:
        return "low"
    if event_count >= rules.HIGH_TIER_MIN_EVENTS and days_since_last_event <= rules.HIGH_TIER_MAX_DAYS:
        return "high"
    if event_count >= rules.MEDIUM_TIER_MIN_EVENTS and days_since_last_event <= rules.MEDIUM_TIER_MAX_DAYS:
        return "medium"
    return "low"


def user_segment(is_new_user: bool, signed_up_online: bool, event_count: int,
                 days_since_last_event: Optional[int]) -> str:
    """The first segment that applies, in the issue's order."""
    if is_new_user:
        return "new_online_signup" if signed_up_online else "new_app_user"
    if event_count <= rules.FIRST_TIMER_MAX_EVENTS or days_since_last_event is None:
        return "first_timer"
    if days_since_last_event <= rules.ACTIVE_SEGMENT_MAX_DAYS:
        return "active_regular"
    if days_since_last_event <= rules.DORMANT_SEGMENT_MAX_DAYS:
        return "dormant"
    return "churned"


def _is_are(items: list, singular: str, plural_form: str) -> str:
    return f"{singular} is" if len(items) == 1 else f"{plural_form} are"


def generate_user_summary(profile: dict, joined_at: Optional[datetime], last_event_at: Optional[datetime],
                          zone: tzinfo) -> str:
    """A paragraph for a copywriter (and step 5's prompt) with every known fact; unknown facts are left out.

    Args:
        profile: The enriched record (every field but `summary`).
        joined_at: The parsed `createdAt`, or None.
        last_event_at: The start of the newest history event, or None.
        zone: The zone dates are shown in.
    """
    name = profile["name"] or "This user"
    gender = profile["gender"]
    noun, subject, possessive = _GENDER_WORDS.get(gender.lower(), (None, None, None)) if gender else (None,) * 3
    if subject is None:
        noun = f"{gender.lower()} member" if gender else "member"
        subject = profile["first_name"] or name
        possessive = subject + "'s"
    age = profile["age"]
    described = f"{age}-year-old {noun}" if age is not None else noun
    first = f"{name} is {article(described)} {described}"
    occupation = profile["occupation"]
    if occupation:
        first += f" working as {article(occupation)} {occupation}"
    places = []
    if profile["homeNeighborhood"]:
        places.append("living in " + profile["homeNeighborhood"])
    if profile["workNeighborhood"]:
        places.append("working in " + profile["workNeighborhood"])
    if places:
        first += (", " if occupation else " ") + " and ".join(places)
    sentences = [first + "."]

    days_signed_up = profile["days_since_signup"]
    if joined_at is not None:
        when = f"{days_ago(days_signed_up)} (on {format_day(joined_at, zone)})" if days_signed_up >= 0 \
            else f"on {format_day(joined_at, zone)}"
        sentences.append(f"{subject} joined {when}.")
    for field, singular, plural_form in _LIST_WORDS:
        items = profile[field]
        if items:
            sentences.append(f"{possessive} {_is_are(items, singular, plural_form)} {join_words(items)}.")
    if profile["table_type_preference"]:
        sentences.append(f"{possessive} table preference is {profile['table_type_preference']}.")

    count = profile["event_count"]
    names = profile["historical_event_names"]
    if count == 0:
        sentences.append(f"{subject} has not attended any events yet.")
    else:
        history = f"{subject} has attended {plural(count, 'event')}"
        if last_event_at is not None:
            latest = f" {names[0]}" if names else ""
            history += f", most recently{latest} on {format_day(last_event_at, zone)} " \
                       f"({days_ago(profile['days_since_last_event'])})"
        if len(names) > 1:
            history += "; earlier ones include " + join_words(names[1:_SUMMARY_NAMES])
        sentences.append(history + ".")
    sentences.append(f"Status: {_STATUS_WORDS[profile['primary_status']]}, "
                     f"{profile['engagement_tier']} engagement.")
    if profile["event_hosts"]:
        sentences.append(f"{subject} has been hosted by {join_words(profile['event_hosts'][:_SUMMARY_NAMES])}.")
    if profile["friends"]:
        sentences.append(f"Friends from past events (shared events): "
                         f"{join_words(profile['friends'][:_SUMMARY_FRIENDS])}.")
    if profile["invited_event_names"]:
        sentences.append(f"{subject} is invited to {join_words(profile['invited_event_names'][:_SUMMARY_NAMES])}.")
    return " ".join(sentences)


def enrich_user(user: dict, email: str, lookups: Lookups, now: datetime, zone: tzinfo) -> dict:
    """One enriched record, fields in the spec's order (plus `first_name`, an addition for step 5)."""
    history = associate_user_events(email, lookups.past_events_by_email)
    joined_at = parse_iso_date(user.get("createdAt"), zone)
    days_signed_up = days_since(joined_at, now) if joined_at is not None else None
    event_count = len(history)
    last_event_at = history[0].start if history else None
    days_last = days_since(last_event_at, now) if last_event_at is not None else None
    is_new = days_signed_up is not None and days_signed_up <= rules.NEW_USER_MAX_DAYS
    online = user.get("role") == rules.ONLINE_SIGNUP_ROLE
    dormant = days_last > rules.DORMANT_AFTER_DAYS if days_last is not None else None
    recent = days_last <= rules.RECENT_MAX_DAYS if days_last is not None else None
    get = user.get
    # clean_text inlined for the six plain text fields: its call overhead showed at 100,000 users.
    table, relationship, occupation, gender, home, work = [
        ((value if value.isascii() and value.isprintable() else strip_invisible(value)).strip() or None)
        if isinstance(value := get(source), str) else None
        for source in _TEXT_SOURCES
    ]
    profile = {
        "id": record_id(user),
        "name": full_name(user),
        "first_name": first_name(user),
        "email": email,
        "interests": text_list(get("interests")),
        "cuisine_preferences": text_list(get("preferredCuisines")),
        "dietary_restrictions": text_list(get("allergies")),
        "table_type_preference": table,
        "relationship_status": relationship,
        "occupation": occupation,
        "gender": gender,
        "homeNeighborhood": home,
        "workNeighborhood": work,
        "age": calculate_age(get("birthDay"), now),
        "event_count": event_count,
        "last_event_date": history[0].start_iso if history else None,
        "days_since_last_event": days_last,
        "days_since_signup": days_signed_up,
        "historical_event_names": [item.name for item in history if item.name is not None],
        "event_hosts": extract_event_hosts(history),
        "invited_event_names": list(lookups.invited_by_email.get(email, ())),
        "friends": identify_friends(email, history, lookups.names_by_email),
        "is_new_user": is_new,
        "has_never_attended_events": event_count == 0,
        "hasnt_attended_in_60_days": dormant,
        "signed_up_online": online,
        "recently_attended_last_week": recent,
        "primary_status": primary_status(is_new, event_count, dormant, recent, online),
        "engagement_tier": engagement_tier(event_count, days_last),
        "user_segment": user_segment(is_new, online, event_count, days_last),
    }
    profile["summary"] = generate_user_summary(profile, joined_at, last_event_at, zone)
    return profile


def build_lookups(raw_events: list, raw_users: list, raw_qualified_events: list, now: datetime,
                  zone: Optional[tzinfo] = None) -> tuple[Lookups, list[tuple[str, int]]]:
    """Index history, names and invitations once; return the lookups and their statistics rows."""
    events, bad_events = split_objects(raw_events)
    users, bad_users = split_objects(raw_users)
    qualified_events, bad_qualified_events = split_objects(raw_qualified_events)
    users_by_id = index_users_by_id(users)
    names_by_email = {email: name for email, user in index_users_by_email(users).items()
                      if (name := full_name(user)) is not None}
    past_by_email, event_counts = index_past_events(events, users_by_id, now, zone)
    lookups = Lookups(past_by_email, names_by_email, index_invitations(qualified_events))
    stats = [
        ("users loaded (hosts, friends)", len(raw_users)),
        *input_repair_rows(raw_users, "users"),
        ("users skipped: not an object", bad_users),
        ("events loaded (history)", len(raw_events)),
        *input_repair_rows(raw_events, "events"),
        ("events skipped: not an object", bad_events),
        ("events skipped: duplicate id", event_counts["duplicate"]),
        ("events skipped: missing or invalid startDate", event_counts["invalid_date"]),
        ("events skipped: startDate out of range", event_counts["date_out_of_range"]),
        ("events upcoming (not history)", event_counts["upcoming"]),
        ("past events indexed", event_counts["past"]),
        ("past events with unknown host", event_counts["unknown_host"]),
        ("qualified events loaded (invitations)", len(raw_qualified_events)),
        *input_repair_rows(raw_qualified_events, "qualified events"),
        ("qualified events skipped: not an object", bad_qualified_events),
    ]
    return lookups, stats


def enrich_users(raw_qualified_users: list, raw_events: list, raw_users: list, raw_qualified_events: list,
                 now: datetime, zone: tzinfo) -> tuple[list[dict], list[tuple[str, int]]]:
    """Enrich every qualified user; return the records and the statistics rows."""
    lookups, lookup_stats = build_lookups(raw_events, raw_users, raw_qualified_events, now, zone)
    # Everything needed from all users and events is in `lookups` now. Dropping these references
    # lets a caller that passed the lists straight in (as main() does) free them before the
    # records are built: 100,000 raw users are several hundred MB.
    del raw_events, raw_users, raw_qualified_events
    qualified, bad_qualified = split_objects(raw_qualified_users)
    records: list[dict] = []
    no_email = 0
    out_of_range: Counter = Counter()
    for user in qualified:
        email = normalize_email_text(user.get("email"))
        if email is None:
            no_email += 1
            continue
        record = enrich_user(user, email, lookups, now, zone)
        # Only a date that came out missing can be a placeholder, so most users are never re-parsed.
        if record["days_since_signup"] is None and date_out_of_range(user.get("createdAt")):
            out_of_range["createdAt"] += 1
        if record["age"] is None and date_out_of_range(user.get("birthDay")):
            out_of_range["birthDay"] += 1
        records.append(record)

    with_history = sum(1 for record in records if record["event_count"])
    statuses = Counter(record["primary_status"] for record in records)
    tiers = Counter(record["engagement_tier"] for record in records)
    segments = Counter(record["user_segment"] for record in records)
    stats = [
        ("qualified users loaded", len(raw_qualified_users)),
        *input_repair_rows(raw_qualified_users, "qualified users"),
        ("qualified users skipped: not an object", bad_qualified),
        ("qualified users skipped: no usable email", no_email),
        ("qualified users with createdAt out of range (read as missing)", out_of_range["createdAt"]),
        ("qualified users with birthDay out of range (read as missing)", out_of_range["birthDay"]),
        *lookup_stats,
        ("users with event history", with_history),
        ("users without event history", len(records) - with_history),
    ]
    stats += [(f"primary_status {name}", statuses[name]) for name in PRIMARY_STATUSES]
    stats += [(f"engagement_tier {name}", tiers[name]) for name in ENGAGEMENT_TIERS]
    stats += [(f"user_segment {name}", segments[name]) for name in USER_SEGMENTS]
    stats.append(("enriched users", len(records)))
    return records, stats


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 3 from the command line."""
    args = build_arg_parser(__doc__).parse_args(argv)
    run = start_step(STEP_NAME, args)
    output = processed_path(run.data_dir, ENRICHED_USERS_FILE)
    with gc_paused():
        # Loaded straight into enrich_users, which frees all users and events once indexed.
        records, stats = enrich_users(
            load_qualified_users(processed_path(run.data_dir, QUALIFIED_USERS_FILE)),
            load_all_events(raw_path(run.data_dir, EVENTS_FILE)),
            load_all_users(raw_path(run.data_dir, USERS_FILE)),
            load_qualified_events(processed_path(run.data_dir, QUALIFIED_EVENTS_FILE)),
            run.now, run.zone,
        )
        save_json_atomic(output, records)
    log_stats_table(run.logger, "Step 3: user profile enrichment", stats)
    run.logger.info("wrote %d enriched users to %s", len(records), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
