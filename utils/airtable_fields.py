"""The Airtable Messages table's columns and how our message records map onto them.

Pure: no network and no settings. `utils/airtable_crud.py` sends what `message_record_to_fields`
builds; `pipeline/match_message/team_loop.py` reads the columns named here.
"""

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from utils.people import is_number

# Our record field -> Airtable column. Several of our names may feed one column (see REASONING_*).
MESSAGES_FIELD_MAPPING: dict[str, str] = {
    "user_id": "User ID",
    "user_name": "User Name",
    "user_email": "User Email",
    "user_phone": "User Phone",
    "event_id": "Event ID",
    "event_name": "Event Name",
    "user_summary": "User Summary",
    "event_summary": "Event Summary",
    "message": "Message",
    "reasoning": "Reasoning",
    "match_reasoning": "Reasoning",
    "message_reasoning": "Reasoning",
    "confidence_percentage": "Confidence",
    "campaign": "Campaign",
    "quality_check_response": "Quality Check",
    "status": "Status",
    "review_reasons": "Review Reasons",
    "sms_encoding": "SMS Encoding",
    "sms_segments": "SMS Segments",
    "compliance_issues": "Compliance Issues",
    "generator": "Generator",
    "fingerprint": "Fingerprint",
}

# The upsert key: one row per user, updated on every re-upload.
USER_ID_COLUMN = MESSAGES_FIELD_MAPPING["user_id"]
EVENT_ID_COLUMN = MESSAGES_FIELD_MAPPING["event_id"]
MESSAGE_COLUMN = MESSAGES_FIELD_MAPPING["message"]
STATUS_COLUMN = MESSAGES_FIELD_MAPPING["status"]

# The team's column: the pipeline reads it and never writes it (docs/api-wrappers.md). Any value in it
# (Approved, Scheduled, Sent, Do not send, …) means the row is in the team's hands.
SEND_STATUS_COLUMN = "Send Status"
TEAM_COLUMNS = frozenset({SEND_STATUS_COLUMN})

# The spec maps both reasonings to one column; when a record has both, each is kept, labelled.
REASONING_COLUMN = "Reasoning"
REASONING_SOURCES: tuple[tuple[str, str], ...] = (
    ("reasoning", "Reasoning"),
    ("match_reasoning", "Match"),
    ("message_reasoning", "Message"),
)

# The column type each mapped column should have in Airtable (docs/api-wrappers.md; --check).
COLUMN_TYPES: dict[str, str] = {
    "User ID": "singleLineText",
    "User Name": "singleLineText",
    "User Email": "email",
    "User Phone": "phoneNumber",
    "Event ID": "singleLineText",
    "Event Name": "singleLineText",
    "User Summary": "multilineText",
    "Event Summary": "multilineText",
    "Message": "multilineText",
    "Reasoning": "multilineText",
    "Confidence": "number",
    "Campaign": "singleLineText",
    "Quality Check": "multilineText",
    "Status": "singleLineText",
    "Review Reasons": "multilineText",
    "SMS Encoding": "singleLineText",
    "SMS Segments": "number",
    "Compliance Issues": "multilineText",
    "Generator": "singleLineText",
    "Fingerprint": "singleLineText",
}
NUMBER_COLUMNS = frozenset(column for column, kind in COLUMN_TYPES.items() if kind == "number")
NUMBER_TYPES = frozenset({"number", "percent", "currency", "rating"})

if TEAM_COLUMNS & set(MESSAGES_FIELD_MAPPING.values()):  # a guard against a future edit of the mapping
    raise RuntimeError(f"MESSAGES_FIELD_MAPPING must not write the team's columns {sorted(TEAM_COLUMNS)}")


@dataclass(frozen=True)
class AirtableRow:
    """A member's current row in the Messages table, as read before an upload.

    Attributes:
        record_id: Airtable's record id ("rec…").
        user_id: The "User ID" cell.
        message: The "Message" cell, as the team left it; None when empty.
        send_status: The team's "Send Status" cell as text; None when empty or the column is absent.
        status: The pipeline's "Status" cell; None when empty.
        event_id: The "Event ID" cell; None when empty.
        duplicate_record_ids: Ids of further rows with the same user id (normally none).
    """

    record_id: str
    user_id: str
    message: Optional[str] = None
    send_status: Optional[str] = None
    status: Optional[str] = None
    event_id: Optional[str] = None
    duplicate_record_ids: tuple[str, ...] = ()


def mapped_columns() -> list[str]:
    """The Airtable columns `MESSAGES_FIELD_MAPPING` writes, each once, in mapping order."""
    return list(dict.fromkeys(MESSAGES_FIELD_MAPPING.values()))


def local_names(column: str) -> list[str]:
    """Our record fields that feed an Airtable column, e.g. ["user_phone"] for "User Phone".

    Args:
        column: An Airtable column name.

    Returns:
        The field names, in mapping order; empty for a column the mapping does not write.
    """
    return [name for name, mapped in MESSAGES_FIELD_MAPPING.items() if mapped == column]


def team_columns_in(fields: Mapping[str, Any]) -> list[str]:
    """The team's columns (e.g. "Send Status") among the keys of an Airtable field set.

    Args:
        fields: `{Airtable column: value}` about to be written.

    Returns:
        The offending column names, sorted; empty when the field set is safe to write.
    """
    return sorted(column for column in fields if column in TEAM_COLUMNS)


def _text_cell(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, indent=2)
    if isinstance(value, (list, tuple)):
        return "\n".join(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in value)
    if is_number(value):
        return str(value)
    return value


def _number_cell(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        try:
            number = float(text)
        except ValueError:
            return value  # Airtable's 422 then names the column
        return int(number) if number.is_integer() else number
    return value


def message_record_to_fields(message_record: Mapping[str, Any]) -> dict[str, Any]:
    """Turn one of our message records into Airtable fields, by `MESSAGES_FIELD_MAPPING`.

    None values and fields the mapping does not know are left out. A dict (e.g. the quality
    check response) becomes JSON text, a list (e.g. compliance issues, review reasons) one line per
    item, and numeric text in a number column a number. `reasoning`, `match_reasoning` and
    `message_reasoning` all go to "Reasoning"; when there are several, each is kept, labelled.
    The team's "Send Status" is never among the result's columns.

    Args:
        message_record: A record as step 5 writes it to processed_messages.json.

    Returns:
        `{Airtable column: value}`.
    """
    fields: dict[str, Any] = {}
    for name, value in message_record.items():
        column = MESSAGES_FIELD_MAPPING.get(name)
        if column is None or value is None or column == REASONING_COLUMN:
            continue
        fields[column] = _number_cell(value) if column in NUMBER_COLUMNS else _text_cell(value)
    reasons = [(label, str(_text_cell(message_record[name])).strip())
               for name, label in REASONING_SOURCES if message_record.get(name) is not None]
    reasons = [(label, text) for label, text in reasons if text]
    if len(reasons) == 1:
        fields[REASONING_COLUMN] = reasons[0][1]
    elif reasons:
        fields[REASONING_COLUMN] = "\n\n".join(f"{label}: {text}" for label, text in reasons)
    return fields
