"""Step 1: user selection.

Reads data/raw/users.json and data/raw/messages.json and writes data/processed/qualified_users.json:
the users who have never been messaged and whose profile has every field a personal invitation needs.
"""

import sys
from pathlib import Path

# Run as `python pipeline/step1_user_selection.py` from any folder: make `utils` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collections import Counter  # noqa: E402
from typing import Any, Optional  # noqa: E402

from utils.cli import build_arg_parser, start_step, step_main  # noqa: E402
from utils.jsonio import load_json_list, normalize_extended_json, save_json_atomic, split_objects  # noqa: E402
from utils.log import log_stats_table  # noqa: E402
from utils.people import as_id  # noqa: E402
from utils.paths import (  # noqa: E402
    MESSAGES_FILE, QUALIFIED_USERS_FILE, USERS_FILE, processed_path, raw_path,
)

STEP_NAME = "user_selection"
STATS_TITLE = "Step 1: user selection"

EPILOG = """\
example:
  python pipeline/step1_user_selection.py --data-dir data --now 2026-11-25T12:00:00Z

Rules, statistics and sample output: docs/1-user-selection.md"""

# The spec's order; per-field statistics are reported in this order too.
REQUIRED_FIELDS = (
    "interests", "phone", "email", "homeNeighborhood", "occupation",
    "gender", "relationshipStatus", "tableTypePreference", "workNeighborhood",
)

# Why a message's user_id could not be used (keys of collect_messaged_ids' Counter).
MESSAGE_NOT_OBJECT = "not an object"
MESSAGE_NO_USER_ID = "no user_id"
MESSAGE_BAD_USER_ID = "user_id of the wrong type"


def load_users(path: Path) -> list:
    """Load the raw users export (Extended JSON normalised)."""
    return load_json_list(path, what="users")


def load_messages(path: Path) -> list:
    """Load the message history export (Extended JSON normalised)."""
    return load_json_list(path, what="messages")


def _plain(value: Any) -> Any:
    # Loaded files are already normalised; this keeps the pure functions right on raw {"$oid": …} too.
    return normalize_extended_json(value) if isinstance(value, dict) else value


def as_identifier(value: Any) -> Optional[str]:
    """An id as the comparable string every step uses (`utils.people.as_id`), or None if unusable."""
    return as_id(_plain(value))


def is_wrong_type_identifier(value: Any) -> bool:
    """True when an id is present and not null but neither text nor an integer (e.g. a list)."""
    value = _plain(value)
    if value is None or isinstance(value, str):
        return False
    return not isinstance(value, int) or isinstance(value, bool)


def drop_users_with_bad_ids(users: list[dict]) -> tuple[list[dict], int]:
    """Skip users whose `id` or `_id` has the wrong type; return the rest and how many were skipped."""
    kept = [
        user for user in users
        if not is_wrong_type_identifier(user.get("id")) and not is_wrong_type_identifier(user.get("_id"))
    ]
    return kept, len(users) - len(kept)


def drop_duplicate_users(users: list[dict]) -> tuple[list[dict], int]:
    """Keep the first user of each `id`; return the kept users and how many were dropped."""
    seen: set[str] = set()
    kept: list[dict] = []
    for user in users:
        ident = as_identifier(user.get("id"))
        if ident is not None:
            if ident in seen:
                continue
            seen.add(ident)
        kept.append(user)
    return kept, len(users) - len(kept)


def collect_messaged_ids(messages: list) -> tuple[set[str], Counter]:
    """The `user_id`s of the message history, and a count of the messages that had none usable."""
    messaged: set[str] = set()
    unusable: Counter = Counter()
    for message in messages:
        if not isinstance(message, dict):
            unusable[MESSAGE_NOT_OBJECT] += 1
            continue
        user_id = message.get("user_id")
        ident = as_identifier(user_id)
        if ident is not None:
            messaged.add(ident)
        elif is_wrong_type_identifier(user_id):
            unusable[MESSAGE_BAD_USER_ID] += 1
        else:
            unusable[MESSAGE_NO_USER_ID] += 1
    return messaged, unusable


def filter_users_by_messages(users: list[dict], messaged_ids: set[str]) -> tuple[list[dict], int]:
    """Drop users whose `id` or `_id` received a message; return the rest and the number dropped."""
    kept = [
        user for user in users
        if as_identifier(user.get("id")) not in messaged_ids
        and as_identifier(user.get("_id")) not in messaged_ids
    ]
    return kept, len(users) - len(kept)


def is_field_missing(user: dict, field: str) -> bool:
    """True when a required field is absent, null, the wrong type or blank."""
    value = user.get(field)
    if field == "interests":
        return not (isinstance(value, list) and any(isinstance(item, str) and item.strip() for item in value))
    return not (isinstance(value, str) and value.strip())


def filter_users_by_profile_fields(users: list[dict]) -> tuple[list[dict], Counter]:
    """Keep users with every required field; also return how many users missed each field."""
    kept: list[dict] = []
    missing_by_field: Counter = Counter()
    for user in users:
        missing = [field for field in REQUIRED_FIELDS if is_field_missing(user, field)]
        missing_by_field.update(missing)
        if not missing:
            kept.append(user)
    return kept, missing_by_field


def select_users(raw_users: list, raw_messages: list) -> tuple[list[dict], list[tuple[str, int]]]:
    """Apply every step-1 rule in order; return the qualified users (input order) and the statistics rows."""
    users, not_objects = split_objects(raw_users)
    users, bad_ids = drop_users_with_bad_ids(users)
    users, duplicates = drop_duplicate_users(users)
    messaged_ids, unusable_messages = collect_messaged_ids(raw_messages)
    users, by_history = filter_users_by_messages(users, messaged_ids)
    qualified, missing_by_field = filter_users_by_profile_fields(users)
    stats = [
        ("users loaded", len(raw_users)),
        ("users skipped: not an object", not_objects),
        ("users skipped: id or _id of the wrong type", bad_ids),
        ("duplicate users dropped", duplicates),
        ("messages loaded", len(raw_messages)),
        ("messages skipped: not an object", unusable_messages[MESSAGE_NOT_OBJECT]),
        ("messages skipped: user_id of the wrong type", unusable_messages[MESSAGE_BAD_USER_ID]),
        ("messages ignored: no user_id", unusable_messages[MESSAGE_NO_USER_ID]),
        ("users filtered by message history", by_history),
        ("users filtered by missing fields", len(users) - len(qualified)),
    ]
    stats += [(f"  missing {field}", missing_by_field[field]) for field in REQUIRED_FIELDS]
    stats.append(("qualified users", len(qualified)))
    return qualified, stats


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 1 from the command line."""
    args = build_arg_parser(__doc__, EPILOG).parse_args(argv)
    run = start_step(STEP_NAME, args)
    users = load_users(raw_path(run.data_dir, USERS_FILE))
    messages = load_messages(raw_path(run.data_dir, MESSAGES_FILE))
    qualified, stats = select_users(users, messages)
    output = processed_path(run.data_dir, QUALIFIED_USERS_FILE)
    save_json_atomic(output, qualified)
    log_stats_table(run.logger, STATS_TITLE, stats)
    run.logger.info("wrote %d qualified users to %s", len(qualified), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
