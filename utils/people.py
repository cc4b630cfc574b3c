"""People and the words about them: email and id matching, names, user indexes, and summary phrasing.

Steps 3, 4 and 5 all match users to events by email and hosts by id, and all write sentences for
people to read. The rules live here once:

- emails are compared after stripping and lower-casing;
- a user is found by `id` or `_id`; the first user wins when two share a key;
- dates in sentences are shown in the run's time zone;
- text that people typed loses its invisible format characters (`strip_invisible`: bidi controls,
  zero-width characters) as it is read, so they never reach a summary, a prompt or an SMS.
"""

from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Iterable, Optional

from utils.jsonio import load_json_list
# strip_invisible lives with the emoji tables it needs (a ZWJ inside an emoji is kept); it is part of
# this module's interface because every name and free-text field goes through it here.
from utils.sms import strip_invisible

__all__ = [
    "MONTH_NAMES", "WEEKDAY_NAMES", "load_all_users", "load_qualified_events", "normalize_email_text", "as_id",
    "record_id", "clean_text", "text_list", "first_name", "full_name", "strip_invisible", "index_users_by_id",
    "index_users_by_email", "host_name", "join_words", "plural", "article", "format_day", "format_time",
    "weekday_name", "days_ago",
]

# English whatever the machine's locale (strftime would follow it).
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# --- Loading (one implementation for every step that reads these files) ---------------------

def load_all_users(path: Path) -> list:
    """Load the raw users export (`data/raw/users.json`).

    Args:
        path: The file to read.

    Returns:
        The list as parsed; items that are not objects are left for the caller to skip and count.
    """
    return load_json_list(path, what="users")


def load_qualified_events(path: Path) -> list:
    """Load step 2's output (`data/processed/qualified_events.json`).

    Args:
        path: The file to read.

    Returns:
        The list as parsed; items that are not objects are left for the caller to skip and count.
    """
    return load_json_list(path, what="qualified events")


# --- Values -----------------------------------------------------------------------------------

def normalize_email_text(value: Any) -> Optional[str]:
    """Any text found in an email field, in its comparable form (no check that it is an address).

    Loose on purpose: event lists are matched to users by whatever text both hold. The strict twin,
    `utils.contacts.normalize_email_address`, drops text not shaped like an address (opt-outs, history).

    Args:
        value: Anything found in an `email`, `participants` or `invitedParticipants` field.

    Returns:
        The stripped, lower-cased email, or None when the value is not a non-blank string.
    """
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email or None


def is_number(value: Any) -> bool:
    """True for an int or float that is not a bool (JSON's true/false are no counts)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_id(value: Any) -> Optional[str]:
    """An identifier as a comparable string.

    Args:
        value: An `id`, `_id` or `ownerId` value.

    Returns:
        The stripped string (integers are written in decimal), or None when missing, blank or of
        another type.
    """
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def record_id(record: dict) -> Optional[str]:
    """A record's identifier: its `id`, else its `_id`.

    Args:
        record: A user or event.

    Returns:
        The identifier as a string, or None when the record has neither.
    """
    return as_id(record.get("id")) or as_id(record.get("_id"))


def clean_text(value: Any) -> Optional[str]:
    """A free-text field stripped, or None when it is not a non-blank string.

    Args:
        value: A field such as `occupation` or `homeNeighborhood`.

    Returns:
        The text without invisible format characters (`strip_invisible`) and surrounding spaces, or None.
    """
    if isinstance(value, str):
        # Printable ASCII first: most text is, it holds no invisible character, and this runs per field.
        return (value if value.isascii() and value.isprintable() else strip_invisible(value)).strip() or None
    return None


def text_list(value: Any) -> list[str]:
    """A list field as stripped, non-blank strings (other items are dropped).

    Args:
        value: A field such as `interests` or `allergies`.

    Returns:
        The strings in order, each through `clean_text`; `[]` when the value is not a list.
    """
    if not isinstance(value, list):
        return []
    # clean_text inlined: this runs for every item of every list field of every user.
    return [text for item in value
            if isinstance(item, str)
            and (text := (item if item.isascii() and item.isprintable() else strip_invisible(item)).strip())]


def first_name(user: dict) -> Optional[str]:
    """The user's stripped `firstName`, or None."""
    return clean_text(user.get("firstName"))


def full_name(user: Optional[dict]) -> Optional[str]:
    """`firstName + " " + lastName`, using whichever parts exist.

    Args:
        user: A user record, or None.

    Returns:
        The name, or None when the user is None or has neither part.
    """
    if not user:
        return None
    first, last = user.get("firstName"), user.get("lastName")
    first = clean_text(first) or ""
    last = clean_text(last) or ""
    if first and last:
        return f"{first} {last}"
    return first or last or None


# --- Indexes (build once per run, then look up in O(1)) ----------------------------------------

def index_users_by_id(users: Iterable[dict]) -> dict[str, dict]:
    """Map every user's `id` and `_id` to the user.

    Args:
        users: User records.

    Returns:
        A dict keyed by both identifiers; the first user wins when two share a key.
    """
    index: dict[str, dict] = {}
    for user in users:
        for key in (as_id(user.get("id")), as_id(user.get("_id"))):
            if key is not None and key not in index:
                index[key] = user
    return index


def index_users_by_email(users: Iterable[dict]) -> dict[str, dict]:
    """Map every user's normalised email to the user.

    Args:
        users: User records.

    Returns:
        A dict keyed by `normalize_email_text(user["email"])`; the first user wins; users without an
        email are left out.
    """
    index: dict[str, dict] = {}
    for user in users:
        email = normalize_email_text(user.get("email"))
        if email is not None and email not in index:
            index[email] = user
    return index


def host_name(owner_id: Any, users_by_id: dict[str, dict]) -> Optional[str]:
    """The full name of an event's host.

    Args:
        owner_id: The event's `ownerId`.
        users_by_id: From `index_users_by_id`.

    Returns:
        The host's name, or None when the owner is unknown or has no name.
    """
    key = as_id(owner_id)
    return full_name(users_by_id.get(key)) if key is not None else None


# --- Words for summaries --------------------------------------------------------------------------

def join_words(items: Iterable[str]) -> str:
    """Join as English prose: "a", "a and b", "a, b and c".

    Args:
        items: The words.

    Returns:
        The phrase ("" for no items).
    """
    words = list(items)
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def plural(count: int, singular: str, plural_form: Optional[str] = None) -> str:
    """E.g. `plural(1, "event")` is "1 event" and `plural(3, "event")` is "3 events"."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def article(phrase: str) -> str:
    """The indefinite article for a phrase: "an" before a vowel sound we can spot, else "a".

    Args:
        phrase: E.g. "18-year-old woman", "engineer", "product designer".

    Returns:
        "a" or "an" (numbers: "an" for 8, 11, 18 and 80-89).
    """
    if not phrase:
        return "a"
    if phrase[0].isdigit():
        number = phrase.split("-", 1)[0]
        return "an" if number.startswith("8") or number in ("11", "18") else "a"
    return "an" if phrase[0] in "aeiouAEIOU" else "a"


def format_day(moment: datetime, zone: tzinfo) -> str:
    """A calendar date for people, in a time zone: e.g. "March 3, 2024".

    Args:
        moment: An aware datetime.
        zone: The zone to show it in.

    Returns:
        The date; month names are English whatever the machine's locale.
    """
    local = moment.astimezone(zone)
    return f"{MONTH_NAMES[local.month - 1]} {local.day}, {local.year}"


def format_time(moment: datetime, zone: tzinfo) -> str:
    """A clock time for people, in a time zone: e.g. "7:30 PM EST".

    Args:
        moment: An aware datetime.
        zone: The zone to show it in.

    Returns:
        The 12-hour time with the zone's abbreviation.
    """
    local = moment.astimezone(zone)
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'} {local.tzname()}"


def weekday_name(moment: datetime, zone: tzinfo) -> str:
    """The English day name of a moment in a time zone, e.g. "Friday"."""
    return WEEKDAY_NAMES[moment.astimezone(zone).weekday()]


def days_ago(days: int) -> str:
    """A whole number of elapsed days as a phrase: "today", "5 days ago", "3 months ago", "2 years ago".

    Args:
        days: Whole days, at least 0.

    Returns:
        Days below 60, months (30 days) below a year, else years (365 days).
    """
    if days <= 0:
        return "today"
    if days < 60:
        return plural(days, "day") + " ago"
    if days < 365:
        return plural(days // 30, "month") + " ago"
    return plural(days // 365, "year") + " ago"
