"""Step 1: user selection.

Reads data/raw/users.json, data/raw/messages.json and the optional data/raw/opt_outs.json, and writes
data/processed/qualified_users.json: the users who have not opted out, have never been messaged (by id,
email or phone), have every field a personal invitation needs and a textable phone, one per phone number.
"""

import sys
from pathlib import Path

# Run as `python pipeline/step1_user_selection.py` from any folder: make `utils` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import logging  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any, Optional  # noqa: E402

from utils.cli import build_arg_parser, start_step, step_main  # noqa: E402
from utils.contacts import MATCH_EMAIL, MATCH_PHONE, OptOuts, load_opt_outs, normalize_email_address, normalize_phone  # noqa: E402
from utils.dates import parse_iso_date  # noqa: E402
from utils.jsonio import (  # noqa: E402
    input_repair_rows, load_json_list, normalize_extended_json, save_json_atomic, split_objects,
)
from utils.log import log_stats_table  # noqa: E402
from utils.people import as_id  # noqa: E402
from utils.paths import (  # noqa: E402
    MESSAGES_FILE, OPT_OUTS_FILE, QUALIFIED_USERS_FILE, USERS_FILE, processed_path, raw_path,
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

# Where a message names its recipient (the exports use both spellings).
MESSAGE_ID_FIELDS = ("user_id", "userId")
MESSAGE_EMAIL_FIELDS = ("user_email", "email")
MESSAGE_PHONE_FIELDS = ("user_phone", "phone", "to")

# Why a message matches nobody, or only on contact details (keys of collect_message_history's Counter).
MESSAGE_NOT_OBJECT = "not an object"
MESSAGE_NO_USER_ID = "no usable user_id"
MESSAGE_NOTHING_USABLE = "no usable user_id, email or phone"

# How a user matched the history, in the order they are checked (keys of filter_users_by_messages' Counter).
MATCH_ID = "id"
HISTORY_MATCH_KINDS = (MATCH_ID, MATCH_EMAIL, MATCH_PHONE)
OPT_OUT_MATCH_KINDS = (MATCH_PHONE, MATCH_EMAIL)

# Sorts after every real date in the shared-phone rule (only ever compared when both are missing).
_NO_DATE = datetime.max.replace(tzinfo=timezone.utc)


@dataclass
class MessageHistory:
    """Everyone the message history reached: identifiers, normalised emails and E.164 phones."""

    ids: set = field(default_factory=set)
    emails: set = field(default_factory=set)
    phones: set = field(default_factory=set)


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


def user_identifier(user: dict) -> Optional[str]:
    """A user's `id`, else its `_id`, as a comparable string (`utils.people.record_id`, Extended JSON too)."""
    return as_identifier(user.get("id")) or as_identifier(user.get("_id"))


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


def collect_message_history(messages: list) -> tuple[MessageHistory, Counter]:
    """Who the history reached, and a count of the messages that name nobody (or nobody by id)."""
    history = MessageHistory()
    unusable: Counter = Counter()
    for message in messages:
        if not isinstance(message, dict):
            unusable[MESSAGE_NOT_OBJECT] += 1
            continue
        has_id = has_contact = False
        for key in MESSAGE_ID_FIELDS:
            ident = as_identifier(message.get(key))
            if ident is not None:
                history.ids.add(ident)
                has_id = True
        for key in MESSAGE_EMAIL_FIELDS:
            email = normalize_email_address(message.get(key))
            if email is not None:
                history.emails.add(email)
                has_contact = True
        for key in MESSAGE_PHONE_FIELDS:
            phone = normalize_phone(message.get(key))
            if phone is not None:
                history.phones.add(phone)
                has_contact = True
        if not has_id:
            unusable[MESSAGE_NO_USER_ID if has_contact else MESSAGE_NOTHING_USABLE] += 1
    return history, unusable


def history_match(user: dict, history: MessageHistory) -> Optional[str]:
    """How the history reached a user (`id`, `email` or `phone`, checked in that order), or None."""
    if as_identifier(user.get("id")) in history.ids or as_identifier(user.get("_id")) in history.ids:
        return MATCH_ID
    if normalize_email_address(user.get("email")) in history.emails:
        return MATCH_EMAIL
    if normalize_phone(user.get("phone")) in history.phones:
        return MATCH_PHONE
    return None


def filter_users_by_messages(users: list[dict], history: MessageHistory) -> tuple[list[dict], Counter]:
    """Drop users the history reached by id, email or phone; return the rest and the drops by match kind."""
    kept: list[dict] = []
    matched: Counter = Counter()
    for user in users:
        kind = history_match(user, history)
        if kind is None:
            kept.append(user)
        else:
            matched[kind] += 1
    return kept, matched


def filter_users_by_opt_outs(users: list[dict], opt_outs: OptOuts) -> tuple[list[dict], Counter]:
    """Drop users whose phone or email opted out; return the rest and the drops by match kind."""
    if not (opt_outs.phones or opt_outs.emails):
        return list(users), Counter()
    kept: list[dict] = []
    matched: Counter = Counter()
    for user in users:
        kind = opt_outs.match(user)
        if kind is None:
            kept.append(user)
        else:
            matched[kind] += 1
    return kept, matched


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


def filter_users_by_phone_number(users: list[dict]) -> tuple[list[dict], int]:
    """Drop users whose phone is not a number a text can be sent to; return the rest and how many were dropped."""
    kept = [user for user in users if normalize_phone(user.get("phone")) is not None]
    return kept, len(users) - len(kept)


def _phone_keeper_order(position: int, user: dict) -> tuple:
    """Sort key of the shared-phone rule: earliest valid `createdAt`, then smallest id as text, then file order."""
    created = parse_iso_date(user.get("createdAt"))
    ident = user_identifier(user) or ""
    # A member without a valid createdAt sorts after every member with one.
    return (created is None, created or _NO_DATE, ident, position)


def keep_one_user_per_phone(users: list[dict]) -> tuple[list[dict], list[tuple[dict, dict]]]:
    """Keep one user per normalised phone number (see `_phone_keeper_order`).

    Returns:
        The kept users in input order, and (dropped user, kept user) pairs for the log.
    """
    by_phone: dict[str, list[int]] = {}
    for position, user in enumerate(users):
        by_phone.setdefault(normalize_phone(user.get("phone")), []).append(position)
    dropped_positions: set[int] = set()
    pairs: list[tuple[dict, dict]] = []
    for phone, positions in by_phone.items():
        if phone is None or len(positions) == 1:
            continue
        keeper = min(positions, key=lambda position: _phone_keeper_order(position, users[position]))
        for position in positions:
            if position != keeper:
                dropped_positions.add(position)
                pairs.append((users[position], users[keeper]))
    kept = [user for position, user in enumerate(users) if position not in dropped_positions]
    return kept, pairs


def opt_out_rows(opt_outs: OptOuts) -> list[tuple[str, int]]:
    """The statistics rows about the opt-out file; they say when there was no file."""
    if not opt_outs.file_found:
        return [(f"opt-out entries loaded (no {OPT_OUTS_FILE}: nobody opted out)", 0),
                ("opt-out entries skipped: no usable phone or email", 0)]
    return [("opt-out entries loaded", opt_outs.entries),
            ("opt-out entries skipped: no usable phone or email", len(opt_outs.skipped))]


@dataclass
class Selection:
    """What `select_users` decided: the qualified users, the statistics rows, and details for the log."""

    qualified: list
    stats: list
    shared_phone_drops: list  # (dropped user, kept user) pairs


def select_users(raw_users: list, raw_messages: list, opt_outs: Optional[OptOuts] = None) -> Selection:
    """Apply every step-1 rule in order; return the qualified users (input order) and the statistics rows."""
    opt_outs = opt_outs if opt_outs is not None else OptOuts()
    users, not_objects = split_objects(raw_users)
    users, bad_ids = drop_users_with_bad_ids(users)
    users, duplicates = drop_duplicate_users(users)
    users, by_opt_out = filter_users_by_opt_outs(users, opt_outs)
    history, unusable_messages = collect_message_history(raw_messages)
    users, by_history = filter_users_by_messages(users, history)
    complete, missing_by_field = filter_users_by_profile_fields(users)
    textable, bad_phones = filter_users_by_phone_number(complete)
    qualified, shared_phone_drops = keep_one_user_per_phone(textable)
    stats = [
        ("users loaded", len(raw_users)),
        *input_repair_rows(raw_users, "users"),
        ("users skipped: not an object", not_objects),
        ("users skipped: id or _id of the wrong type", bad_ids),
        ("duplicate users dropped", duplicates),
        *opt_out_rows(opt_outs),
        ("messages loaded", len(raw_messages)),
        *input_repair_rows(raw_messages, "messages"),
        ("messages skipped: not an object", unusable_messages[MESSAGE_NOT_OBJECT]),
        ("messages without a usable user_id (matched on email/phone)", unusable_messages[MESSAGE_NO_USER_ID]),
        ("messages ignored: no usable user_id, email or phone", unusable_messages[MESSAGE_NOTHING_USABLE]),
        ("users filtered by opt-out", sum(by_opt_out.values())),
        *[(f"  opted out by {kind}", by_opt_out[kind]) for kind in OPT_OUT_MATCH_KINDS],
        ("users filtered by message history", sum(by_history.values())),
        *[(f"  messaged by {kind}", by_history[kind]) for kind in HISTORY_MATCH_KINDS],
        ("users filtered by missing fields", len(users) - len(complete)),
        *[(f"  missing {field}", missing_by_field[field]) for field in REQUIRED_FIELDS],
        ("users filtered by phone: not a valid number", bad_phones),
        ("users filtered by phone: shared with another user", len(shared_phone_drops)),
        ("qualified users", len(qualified)),
    ]
    return Selection(qualified=qualified, stats=stats, shared_phone_drops=shared_phone_drops)


def log_details(logger: logging.Logger, opt_outs: OptOuts, selection: Selection) -> None:
    """Say in the log why opt-out entries were skipped and who lost a shared phone (ids only, no contacts)."""
    if not opt_outs.file_found:
        logger.info("no %s found: nobody is excluded as opted out", OPT_OUTS_FILE)
    for line in opt_outs.skipped:
        logger.warning("opt-out %s; skipped", line)
    if selection.shared_phone_drops:
        # One log record for all of them: one call per user costs seconds on a large export.
        logger.debug("users dropped for a shared phone number:\n%s", "\n".join(
            f"  user {user_identifier(dropped) or '(no id)'} dropped: shares a phone number with user "
            f"{user_identifier(kept) or '(no id)'}, who is kept"
            for dropped, kept in selection.shared_phone_drops))


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 1 from the command line."""
    args = build_arg_parser(__doc__, EPILOG).parse_args(argv)
    run = start_step(STEP_NAME, args)
    users = load_users(raw_path(run.data_dir, USERS_FILE))
    messages = load_messages(raw_path(run.data_dir, MESSAGES_FILE))
    opt_outs = load_opt_outs(raw_path(run.data_dir, OPT_OUTS_FILE))
    selection = select_users(users, messages, opt_outs)
    output = processed_path(run.data_dir, QUALIFIED_USERS_FILE)
    save_json_atomic(output, selection.qualified)
    log_details(run.logger, opt_outs, selection)
    log_stats_table(run.logger, STATS_TITLE, selection.stats)
    run.logger.info("wrote %d qualified users to %s", len(selection.qualified), output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
