"""Whose row is it: the pure rules that keep the team's Airtable rows theirs (issue 11, section 1).

Step 5 reads the members' current rows (`utils.airtable_crud.fetch_member_rows`) before it generates
or uploads anything, and holds every member whose row is in the team's hands. A held member is never
regenerated, re-uploaded or deleted: not with `--fresh`, not on another day, not after a prompt edit.

A member is held when (first match wins):

1. their row is one of several rows with the same user id (the upsert could not tell which to update);
2. their row has any "Send Status" (Approved, Scheduled, Sent, Do not send, ...);
3. the team deleted a row the pipeline had uploaded: it stays deleted until a run with
   `--recreate-deleted`, so a row removed on purpose does not come back the next morning;
4. their row's Message differs from the text the pipeline last uploaded (the record keeps its
   SHA-256 in `uploaded_message_sha256`);
5. a row exists for them that this data folder never uploaded (another data folder, or typed by hand).

The team gives a row back by clearing its Send Status and restoring the uploaded text or deleting the
text. Text is compared after trimming the ends and turning CRLF into LF, so a trailing newline that
Airtable adds is not an edit.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Collection, Iterable, Mapping, Optional

from utils.airtable_fields import AirtableRow

# HoldReason.kind values, in the order `classify_member` tests them.
DUPLICATE_ROWS = "duplicate_rows"
SEND_STATUS = "send_status"
DELETED_ROW = "deleted_row"
EDITED_TEXT = "edited_text"
UNKNOWN_ROW = "unknown_row"
HOLD_KINDS = (DUPLICATE_ROWS, SEND_STATUS, DELETED_ROW, EDITED_TEXT, UNKNOWN_ROW)


@dataclass(frozen=True)
class HoldReason:
    """Why a member is held: a `kind` from HOLD_KINDS and a sentence for the log."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return self.detail


def message_sha256(text: str) -> str:
    """The SHA-256 (hex) of a message, ends trimmed and CRLF made LF, as kept in `uploaded_message_sha256`."""
    return hashlib.sha256(text.replace("\r\n", "\n").strip().encode("utf-8")).hexdigest()


def last_uploaded_sha256(saved_record: Optional[Mapping]) -> Optional[str]:
    """The hash of the text the pipeline last uploaded for a member, or None if it never uploaded one.

    A record from before the hash was kept, marked uploaded, uploaded its own `message`.
    """
    if not saved_record:
        return None
    kept = saved_record.get("uploaded_message_sha256")
    if isinstance(kept, str) and kept:
        return kept
    message = saved_record.get("message")
    if saved_record.get("uploaded") and isinstance(message, str):
        return message_sha256(message)
    return None


def classify_member(saved_record: Optional[Mapping], row: Optional[AirtableRow], *,
                    recreate_deleted: bool = False) -> Optional[HoldReason]:
    """Whether a member's row is in the team's hands, and why.

    Args:
        saved_record: The member's record in processed_messages.json, or None.
        row: The member's current row in Airtable, or None when there is none.
        recreate_deleted: Upload again the rows the team deleted (`--recreate-deleted`).

    Returns:
        The reason the member is held, or None when the pipeline may regenerate and upload.
    """
    uploaded_sha = last_uploaded_sha256(saved_record)
    airtable_id = saved_record.get("airtable_id") if saved_record else None
    if row is None:
        if (uploaded_sha or airtable_id) and not recreate_deleted:
            named = f" {airtable_id}" if airtable_id else ""
            return HoldReason(DELETED_ROW, f"the team deleted the row{named} the pipeline uploaded; it stays "
                                           f"deleted (re-run with --recreate-deleted to upload it again)")
        return None
    if row.duplicate_record_ids:
        ids = ", ".join((row.record_id,) + row.duplicate_record_ids)
        return HoldReason(DUPLICATE_ROWS, f"{1 + len(row.duplicate_record_ids)} rows in Airtable ({ids}); "
                                          f"delete all but one")
    if row.send_status:
        return HoldReason(SEND_STATUS, f"Send Status is {row.send_status!r}")
    if row.message is None or not row.message.strip():
        return None  # the team cleared the text: the row is given back
    row_sha = message_sha256(row.message)
    if uploaded_sha is not None:
        if row_sha == uploaded_sha:
            return None
        return HoldReason(EDITED_TEXT, "the Message text differs from the text the pipeline last uploaded")
    current = saved_record.get("message") if saved_record else None
    if isinstance(current, str) and message_sha256(current) == row_sha:
        return None  # the upload went through, but the run stopped before it could record that
    return HoldReason(UNKNOWN_ROW, f"row {row.record_id} holds text this data folder never uploaded")


def held_members(saved_records: Mapping[str, Mapping], rows: Mapping[str, AirtableRow], *,
                 user_ids: Optional[Iterable[str]] = None,
                 recreate_deleted: bool = False) -> dict[str, HoldReason]:
    """Every held member, with the reason.

    Args:
        saved_records: `{user_id: record}` from processed_messages.json.
        rows: `{user_id: AirtableRow}` from `fetch_member_rows`, read for the same members.
        user_ids: The members to classify, i.e. those whose rows were read; default every member in
            `saved_records` or `rows`. A member outside what was read would look deleted.
        recreate_deleted: As in `classify_member`.

    Returns:
        `{user_id: HoldReason}` for the held members only, in the order of `user_ids` (or records, then rows).
    """
    members = list(dict.fromkeys(user_ids if user_ids is not None else [*saved_records, *rows]))
    held = {}
    for user_id in members:
        reason = classify_member(saved_records.get(user_id), rows.get(user_id), recreate_deleted=recreate_deleted)
        if reason is not None:
            held[user_id] = reason
    return held


def hold_counts(held: Mapping[str, HoldReason]) -> dict[str, int]:
    """How many members are held for each kind of reason, every kind listed (for the run's report)."""
    counts = Counter(reason.kind for reason in held.values())
    return {kind: counts.get(kind, 0) for kind in HOLD_KINDS}


def hold_log_lines(held: Mapping[str, HoldReason]) -> list[str]:
    """One line per held member for the log, e.g. "held u7: Send Status is 'Sent'"."""
    return [f"held {user_id}: {reason}" for user_id, reason in held.items()]


def prior_invites_by_event(saved_records: Mapping[str, Mapping], rows: Optional[Mapping[str, AirtableRow]],
                           held: Mapping[str, HoldReason], *,
                           regenerating: Collection[str] = ()) -> dict[str, int]:
    """Invitations already in Airtable that this run leaves in place, per event (for the capacity cap).

    Counted: each held member except deleted rows (the event of the row, else of the record), and
    each other member whose row exists and who is not in `regenerating` (the event of the record,
    which is what is or will be in the row). With `rows` None (Airtable not read, e.g. --no-upload),
    a record marked uploaded counts instead of an existing row.

    Args:
        saved_records: `{user_id: record}` from processed_messages.json.
        rows: `{user_id: AirtableRow}` from `fetch_member_rows`, or None.
        held: From `held_members`.
        regenerating: Members this run generates a new message for; their old invitation is replaced.

    Returns:
        `{event_id: count}`, events with no invitation left out.
    """
    counts: Counter = Counter()
    for user_id, reason in held.items():
        if reason.kind == DELETED_ROW:
            continue
        row = rows.get(user_id) if rows is not None else None
        event_id = (row.event_id if row else None) or (saved_records.get(user_id) or {}).get("event_id")
        if event_id:
            counts[event_id] += 1
    for user_id, record in saved_records.items():
        if user_id in held or user_id in regenerating:
            continue
        in_airtable = user_id in rows if rows is not None else bool(record.get("uploaded"))
        event_id = record.get("event_id")
        if in_airtable and event_id:
            counts[event_id] += 1
    return dict(counts)
