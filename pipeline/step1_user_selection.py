"""Step 1: user selection.

Reads data/raw/users.json and data/raw/messages.json and writes data/processed/qualified_users.json:
the users who have never been messaged and whose profile has every field a personal invitation needs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collections import Counter  # noqa: E402
from typing import Any, Optional  # noqa: E402

from utils.cli import build_arg_parser, start_step, step_main  # noqa: E402
from utils.jsonio import load_json_list, save_json_atomic, split_objects  # noqa: E402
from utils.log import log_stats_table  # noqa: E402
from utils.paths import (  # noqa: E402
    MESSAGES_FILE, QUALIFIED_USERS_FILE, USERS_FILE, processed_path, raw_path,
)

STEP_NAME = "user_selection"

# The spec's order; per-field statistics are reported in this order too.
REQUIRED_FIELDS = (
    "interests", "phone", "email", "homeNeighborhood", "occupation",
    "gender", "relationshipStatus", "tableTypePreference", "workNeighborhood",
)


def load_users(path: Path) -> list:
    """Load the raw users export."""
    return load_json_list(path, what="users")


def load_messages(path: Path) -> list:
    """Load the message history export."""
    return load_json_list(path, what="messages")


def as_identifier(value: Any) -> Optional[str]:
    """An id as a comparable string, or None when it is missing, blank or of the wrong type."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def drop_duplicate_users(users: list[dict]) -> tuple[list[dict], int]:
    """Keep the first user of each `id`; return the kept users and how many were dropped."""
    seen: set[str] = set()
    kept: list[dict] = []
    for user in users:
        ident = as_identifier(user.get("id"))
        if ident is not None and ident in seen:
            continue
        if ident is not None:
            seen.add(ident)
        kept.append(user)
    return kept, len(users) - len(kept)


def collect_messaged_ids(messages: list) -> tuple[set[str], int]:
    """The `user_id`s of the message history, and how many messages had none usable."""
    messaged: set[str] = set()
    ignored = 0
    for message in messages:
        ident = as_identifier(message.get("user_id")) if isinstance(message, dict) else None
        if ident is None:
            ignored += 1
        else:
            messaged.add(ident)
    return messaged, ignored


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
    """Keep users with all required fields; also return how many users missed each field."""
    kept: list[dict] = []
    missing_by_field: Counter = Counter()
    for user in users:
        missing = [field for field in REQUIRED_FIELDS if is_field_missing(user, field)]
        missing_by_field.update(missing)
        if not missing:
            kept.append(user)
    return kept, missing_by_field


def select_users(raw_users: list, raw_messages: list) -> tuple[list[dict], list[tuple[str, int]]]:
    """Apply every step-1 rule in order; return the qualified users and the statistics rows."""
    users, bad_users = split_objects(raw_users)
    users, duplicates = drop_duplicate_users(users)
    messaged_ids, ignored_messages = collect_messaged_ids(raw_messages)
    users_after_history, by_history = filter_users_by_messages(users, messaged_ids)
    qualified, missing_by_field = filter_users_by_profile_fields(users_after_history)
    stats = [
        ("users loaded", len(raw_users)),
        ("skipped: not an object", bad_users),
        ("duplicate ids dropped", duplicates),
        ("messages loaded", len(raw_messages)),
        ("messages ignored: no user_id", ignored_messages),
        ("filtered by message history", by_history),
        ("filtered by missing fields", len(users_after_history) - len(qualified)),
    ]
    stats += [(f"  missing {field}", missing_by_field[field]) for field in REQUIRED_FIELDS]
    stats.append(("qualified users", len(qualified)))
    return qualified, stats


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 1 from the command line."""
    args = build_arg_parser(__doc__).parse_args(argv)
    run = start_step(STEP_NAME, args)
    users = load_users(raw_path(run.data_dir, USERS_FILE))
    messages = load_messages(raw_path(run.data_dir, MESSAGES_FILE))
    qualified, stats = select_users(users, messages)
    output = processed_path(run.data_dir, QUALIFIED_USERS_FILE)
    save_json_atomic(output, qualified)
    log_stats_table(run.logger, "Step 1: user selection", stats)
    run.logger.info("wrote %d qualified users to %s", len(qualified), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
