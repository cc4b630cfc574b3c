"""Airtable CRUD for the Messages table: credentials from the environment, upserts keyed on the user,
a request rate Airtable accepts, and errors a person can act on.

`python -m utils.airtable_crud --check` compares the table's columns with `MESSAGES_FIELD_MAPPING`.
"""

import argparse
import json
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import requests
from pyairtable import Api
from pyairtable.api.base import Base
from pyairtable.api.table import Table
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from utils.env_numbers import env_number
from utils.errors import PipelineError
from utils.throttle import MinInterval
from utils.paths import ENV_FILE

API_KEY_ENV = "AIRTABLE_API_KEY"
BASE_ID_ENV = "AIRTABLE_BASE_ID"
TABLE_ID_ENV = "AIRTABLE_MESSAGES_TABLE_ID"
ENDPOINT_URL_ENV = "AIRTABLE_ENDPOINT_URL"
MAX_RETRIES_ENV = "AIRTABLE_MAX_RETRIES"
RETRY_BACKOFF_ENV = "AIRTABLE_RETRY_BACKOFF"
MAX_RPS_ENV = "AIRTABLE_MAX_RPS"

DEFAULT_ENDPOINT_URL = "https://api.airtable.com"
# urllib3 waits 0, 2b, 4b, 8b … seconds between tries (b = backoff): with 6 retries and b = 0.5 the
# waits add up to about 31 s, the pause Airtable asks for after a 429.
DEFAULT_MAX_RETRIES = 6
DEFAULT_RETRY_BACKOFF = 0.5
# Airtable allows 5 requests per second per base; the client keeps under it by itself.
DEFAULT_MAX_RPS = 5.0
TIMEOUT = (10, 60)  # connect, read (seconds); pyairtable's default is no timeout at all
# Strict: a value of the wrong type is a clear 422 rather than a silently converted cell or a new
# select option nobody asked for.
TYPECAST = False

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
    "sms_encoding": "SMS Encoding",
    "sms_segments": "SMS Segments",
    "compliance_issues": "Compliance Issues",
    "generator": "Generator",
    "fingerprint": "Fingerprint",
}

# The upsert key: one row per user, updated on every re-upload.
USER_ID_COLUMN = MESSAGES_FIELD_MAPPING["user_id"]

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
    "SMS Encoding": "singleLineText",
    "SMS Segments": "number",
    "Compliance Issues": "multilineText",
    "Generator": "singleLineText",
    "Fingerprint": "singleLineText",
}
NUMBER_COLUMNS = frozenset(column for column, kind in COLUMN_TYPES.items() if kind == "number")
_NUMBER_TYPES = frozenset({"number", "percent", "currency", "rating"})

_BASE_ID = re.compile(r"^app[A-Za-z0-9]{14}$")
_QUOTED = re.compile(r'"([^"]+)"')
_DEBUG_ENV = "PIPELINE_DEBUG"  # as in utils/cli.py: re-raise instead of printing `Error: …`

_module_logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors and config


class AirtableError(PipelineError):
    """An Airtable request failed; the message says what happened and what to check.

    Attributes:
        status_code: The HTTP status, or None (no answer, or a local check failed).
        error_type: Airtable's error type, e.g. "UNKNOWN_FIELD_NAME".
        column: The Airtable column a 422 names, if any.
    """

    def __init__(self, message: str, *, status_code: Optional[int] = None,
                 error_type: Optional[str] = None, column: Optional[str] = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.column = column


class AirtableConfigError(AirtableError):
    """A setting is missing or malformed; raised before any network call."""


@dataclass(frozen=True)
class AirtableConfig:
    """The Airtable settings, all from the environment."""

    api_key: str = field(repr=False)
    base_id: str
    table_id: str
    endpoint_url: str = DEFAULT_ENDPOINT_URL
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    max_rps: float = DEFAULT_MAX_RPS


def _env_number(name: str, default: float, kind: type) -> Any:
    """A numeric setting >= 0 (read by utils.env_numbers), failing as an AirtableConfigError."""
    return env_number(name, default, kind, 0, error=AirtableConfigError)


def check_airtable_config() -> AirtableConfig:
    """Read and check the Airtable settings; no network call (step 5 calls this at start-up).

    Returns:
        The settings.

    Raises:
        AirtableConfigError: A required variable is missing (the message names every one) or malformed.
    """
    values = {name: os.environ.get(name, "").strip() for name in (API_KEY_ENV, BASE_ID_ENV, TABLE_ID_ENV)}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise AirtableConfigError(
            f"missing Airtable setting{'s' if len(missing) > 1 else ''} {', '.join(missing)}: set "
            f"{'them' if len(missing) > 1 else 'it'} in the environment or in .env ({ENV_FILE}); "
            f"see docs/api-wrappers.md")
    if not _BASE_ID.match(values[BASE_ID_ENV]):
        raise AirtableConfigError(
            f"{BASE_ID_ENV}={values[BASE_ID_ENV]!r} is not a base id (app followed by 14 letters or digits): "
            f"copy it from the base's URL, airtable.com/appXXXXXXXXXXXXXX/…")
    return AirtableConfig(
        api_key=values[API_KEY_ENV],
        base_id=values[BASE_ID_ENV],
        table_id=values[TABLE_ID_ENV],
        endpoint_url=os.environ.get(ENDPOINT_URL_ENV, "").strip().rstrip("/") or DEFAULT_ENDPOINT_URL,
        max_retries=int(_env_number(MAX_RETRIES_ENV, DEFAULT_MAX_RETRIES, int)),
        retry_backoff=float(_env_number(RETRY_BACKOFF_ENV, DEFAULT_RETRY_BACKOFF, float)),
        max_rps=float(_env_number(MAX_RPS_ENV, DEFAULT_MAX_RPS, float)),
    )


# --------------------------------------------------------------------------- client


class _AirtableRetry(Retry):
    """urllib3's Retry, except that a 429 is retried for every method.

    A 429 means Airtable did nothing, so even a POST (create) may be sent again. 5xx answers and
    read errors are retried only for `allowed_methods` (the idempotent ones): a POST that failed
    half-way might have created the record, and sending it again would duplicate it.
    """

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return True
        return super().is_retry(method, status_code, has_retry_after)


# PATCH/PUT are idempotent here: an update sets the same values again, and an upsert
# (PATCH with performUpsert) matches on the user-id column, so repeating it cannot add a row.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PATCH", "PUT", "DELETE"})


def build_retry(max_retries: int = DEFAULT_MAX_RETRIES, backoff: float = DEFAULT_RETRY_BACKOFF) -> Retry:
    """The retry policy of the Airtable client.

    Args:
        max_retries: Retries after the first try.
        backoff: urllib3's backoff factor.

    Returns:
        A Retry that retries 429 for every method and 500/502/503/504 for idempotent methods, and
        hands the last answer back (instead of raising) so the error names its status.
    """
    return _AirtableRetry(
        total=max_retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=IDEMPOTENT_METHODS,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


# 5 % slack so that network jitter cannot squeeze six requests into Airtable's one-second window.
THROTTLE_SLACK = 1.05


class _ThrottledAdapter(HTTPAdapter):
    """A requests adapter that waits for the throttle before each request it sends."""

    def __init__(self, throttle: Optional[MinInterval], **kwargs: Any) -> None:
        self._throttle = throttle
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        # urllib3's own retries happen below this point; they are spaced by the backoff instead.
        if self._throttle is not None:
            self._throttle.wait()
        return super().send(request, **kwargs)


_client_lock = threading.Lock()
_client: Optional[tuple[Api, Base, Table]] = None
_client_config: Optional[AirtableConfig] = None
# One pacer per base (Airtable's limit is per base), rebuilt when the rate changes; None = no throttle.
_throttles: dict[str, tuple[float, Optional[MinInterval]]] = {}


def _throttle_for(base_id: str, rate: float) -> Optional[MinInterval]:
    entry = _throttles.get(base_id)
    if entry is None or entry[0] != rate:
        entry = _throttles[base_id] = (rate, MinInterval(THROTTLE_SLACK / rate) if rate > 0 else None)
    return entry[1]


def _client_and_config() -> tuple[tuple[Api, Base, Table], AirtableConfig]:
    global _client, _client_config
    config = check_airtable_config()
    with _client_lock:
        if _client is None or _client_config != config:
            retry = build_retry(config.max_retries, config.retry_backoff)
            api = Api(config.api_key, timeout=TIMEOUT, retry_strategy=retry, endpoint_url=config.endpoint_url)
            adapter = _ThrottledAdapter(_throttle_for(config.base_id, config.max_rps), max_retries=retry)
            api.session.mount("https://", adapter)
            api.session.mount("http://", adapter)
            base = api.base(config.base_id)
            if _client is not None:
                _client[0].session.close()
            _client = (api, base, base.table(config.table_id))
            _client_config = config
        return _client, config


def init_airtable_client() -> tuple[Api, Base, Table]:
    """The process's Airtable client for the Messages table, built on first use.

    Credentials come only from the environment: AIRTABLE_API_KEY, AIRTABLE_BASE_ID,
    AIRTABLE_MESSAGES_TABLE_ID and the optional AIRTABLE_ENDPOINT_URL.

    Returns:
        `(api, base, messages_table)`.

    Raises:
        AirtableConfigError: A variable is missing or malformed (before any network call).
    """
    return _client_and_config()[0]


def reset_airtable_client() -> None:
    """Forget the shared client and the request throttle (for tests)."""
    global _client, _client_config
    with _client_lock:
        if _client is not None:
            _client[0].session.close()
        _client = None
        _client_config = None
        _throttles.clear()


# --------------------------------------------------------------------------- field mapping


def _text_cell(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, indent=2)
    if isinstance(value, (list, tuple)):
        return "\n".join(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
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
    check response) becomes JSON text, a list (e.g. compliance issues) one line per item, and
    numeric text in a number column a number. `reasoning`, `match_reasoning` and
    `message_reasoning` all go to "Reasoning"; when there are several, each is kept, labelled.

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


def _local_names(column: str) -> list[str]:
    return [name for name, mapped in MESSAGES_FIELD_MAPPING.items() if mapped == column]


# --------------------------------------------------------------------------- errors from responses


def _error_details(response: requests.Response) -> tuple[str, str]:
    """Airtable's error type and message, from either of its error shapes."""
    try:
        body = response.json()
    except ValueError:
        return "", (response.text or "").strip()[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("type") or ""), str(error.get("message") or "")
    if isinstance(error, str):
        return error, ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("error") or ""), str(errors[0].get("message") or "")
    return "", ""


def _to_airtable_error(exc: BaseException, config: AirtableConfig, action: str,
                       scope_hint: str = "data.records:read and data.records:write") -> AirtableError:
    ids = f"{BASE_ID_ENV}={config.base_id} and {TABLE_ID_ENV}={config.table_id}"
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None:
        status = response.status_code
        kind, detail = _error_details(response)
        label = f"{status} {kind}".strip()
        explained = f"{label}: {detail}" if detail else label
        method = (exc.request.method if exc.request is not None else "") or ""
        if status == 401:
            message = (f"Airtable rejected the token in {API_KEY_ENV} ({explained}) while {action}: check the "
                       f"token; it must be a personal access token (pat…) with the {scope_hint} scopes")
        elif status == 403:
            message = (f"Airtable refused access ({label}) while {action}: check that the token in {API_KEY_ENV} "
                       f"has the {scope_hint} scopes and access to base {config.base_id}, and that {ids} are right")
        elif status == 404:
            message = (f"Airtable found nothing at that address ({explained}) while {action}: "
                       f"check the base and table ids, {ids}")
        elif status == 422 and kind in ("UNKNOWN_FIELD_NAME", "INVALID_VALUE_FOR_COLUMN"):
            quoted = _QUOTED.search(detail)
            column = quoted.group(1) if quoted else None
            ours = _local_names(column) if column else []
            named = f'column "{column}"' if column else "a column"
            if ours:
                named += f" (our field{'s' if len(ours) > 1 else ''} {', '.join(ours)})"
            if kind == "UNKNOWN_FIELD_NAME":
                message = (f"the Airtable table {config.table_id} has no {named} ({explained}) while {action}: "
                           f"add the column in Airtable, or fix MESSAGES_FIELD_MAPPING in utils/airtable_crud.py "
                           f"(see docs/api-wrappers.md); `python -m utils.airtable_crud --check` lists every "
                           f"missing column")
            else:
                expected = COLUMN_TYPES.get(column or "")
                hint = f"; it should be of type {expected}" if expected else ""
                message = (f"the Airtable {named} rejected the value sent for it ({explained}) while {action}: "
                           f"check the column's type against the mapping in docs/api-wrappers.md{hint}")
            return AirtableError(message, status_code=status, error_type=kind, column=column)
        elif status == 422:
            message = f"Airtable rejected the request ({explained}) while {action}"
        elif status == 429:
            message = (f"Airtable kept answering 429 (rate limit: 5 requests per second per base) after "
                       f"{config.max_retries} retries while {action}: lower {MAX_RPS_ENV}, wait 30 seconds and "
                       f"re-run (uploads are upserts, so re-running is safe)")
        elif status >= 500:
            retried = (f"after {config.max_retries} retries" if method.upper() in IDEMPOTENT_METHODS
                       else "not retried, since sending a create twice could duplicate the record")
            message = f"Airtable failed with a server error ({explained}; {retried}) while {action}: try again later"
        else:
            message = f"Airtable answered {explained} while {action}"
        return AirtableError(message, status_code=status, error_type=kind or None)
    if isinstance(exc, requests.Timeout):
        return AirtableError(f"Airtable at {config.endpoint_url} did not answer within {TIMEOUT[1]} s while "
                             f"{action}: try again later")
    if isinstance(exc, requests.ConnectionError):
        return AirtableError(f"could not reach Airtable at {config.endpoint_url} while {action}: "
                             f"{type(exc).__name__}. Check the network and {ENDPOINT_URL_ENV}")
    return AirtableError(f"Airtable request failed while {action}: {exc}")


# Exceptions a pyairtable call raises for a failed or garbled answer (pydantic's are ValueErrors).
_REQUEST_ERRORS = (requests.RequestException, ValueError)


# --------------------------------------------------------------------------- the spec's functions


def create_message_record(message_record: Mapping[str, Any],
                          logger: Optional[logging.Logger] = None) -> tuple[bool, Optional[str]]:
    """Create one row in the Messages table.

    Args:
        message_record: One of our message records; mapped by `message_record_to_fields`.
        logger: Where to log the outcome; default this module's logger.

    Returns:
        `(True, record_id)`, or `(False, None)` if Airtable refused (the reason is logged as an error).

    Raises:
        AirtableConfigError: The Airtable settings are missing (a run should not go on without them).
    """
    log = logger or _module_logger
    fields = message_record_to_fields(message_record)
    if not fields:
        log.error("Airtable: message record has no mapped field to upload; see MESSAGES_FIELD_MAPPING")
        return False, None
    (_, _, table), config = _client_and_config()
    try:
        record = table.create(fields, typecast=TYPECAST)
    except _REQUEST_ERRORS as exc:
        log.error("Error: %s", _to_airtable_error(exc, config, "creating a message record"))
        return False, None
    log.debug("Airtable: created record %s", record["id"])
    return True, record["id"]


def get_message_record(record_id: str, logger: Optional[logging.Logger] = None) -> Optional[dict]:
    """Read one row of the Messages table.

    Args:
        record_id: The Airtable record id ("rec…").
        logger: Where to log failures; default this module's logger.

    Returns:
        The record `{"id", "createdTime", "fields"}`, or None if there is none with that id or the
        read failed (a failure other than "no such record" is logged as an error).

    Raises:
        AirtableConfigError: The Airtable settings are missing.
    """
    log = logger or _module_logger
    (_, _, table), config = _client_and_config()
    try:
        return dict(table.get(record_id))
    except _REQUEST_ERRORS as exc:
        error = _to_airtable_error(exc, config, f"reading record {record_id}")
        if error.status_code == 404 and error.error_type in ("NOT_FOUND", "MODEL_ID_NOT_FOUND"):
            log.info("Airtable: no record %s in table %s", record_id, config.table_id)
        else:
            log.error("Error: %s", error)
        return None


def update_message_record(record_id: str, fields: Mapping[str, Any],
                          logger: Optional[logging.Logger] = None) -> bool:
    """Change some columns of one row.

    Args:
        record_id: The Airtable record id.
        fields: `{Airtable column name: value}` (Airtable names, not ours).
        logger: Where to log failures; default this module's logger.

    Returns:
        True if Airtable saved the change, else False (the reason is logged as an error).

    Raises:
        AirtableConfigError: The Airtable settings are missing.
    """
    log = logger or _module_logger
    if not fields:
        log.error("Airtable: no fields given to update record %s", record_id)
        return False
    (_, _, table), config = _client_and_config()
    try:
        table.update(record_id, dict(fields), typecast=TYPECAST)
    except _REQUEST_ERRORS as exc:
        log.error("Error: %s", _to_airtable_error(exc, config, f"updating record {record_id}"))
        return False
    return True


def delete_message_record(record_id: str, logger: Optional[logging.Logger] = None) -> bool:
    """Delete one row.

    Args:
        record_id: The Airtable record id.
        logger: Where to log failures; default this module's logger.

    Returns:
        True if the row was deleted, else False (the reason is logged as an error).

    Raises:
        AirtableConfigError: The Airtable settings are missing.
    """
    log = logger or _module_logger
    (_, _, table), config = _client_and_config()
    try:
        table.delete(record_id)
    except _REQUEST_ERRORS as exc:
        log.error("Error: %s", _to_airtable_error(exc, config, f"deleting record {record_id}"))
        return False
    return True


def upsert_message_records(records: Sequence[Mapping[str, Any]],
                           logger: Optional[logging.Logger] = None) -> list[str]:
    """Create or update rows, one per user, keyed on the "User ID" column, 10 per request.

    Re-uploading a user updates that user's row and never adds a second one. If the same user
    appears twice in `records`, the later record wins and both positions get the same id.

    Args:
        records: Our message records; each needs a `user_id`.
        logger: Where to log the outcome; default this module's logger.

    Returns:
        The Airtable record ids, in the order of `records`.

    Raises:
        AirtableConfigError: The settings are missing (before any network call).
        AirtableError: A record has no user_id (before any network call), or Airtable refused a
            request after the retries. Batches sent before the failure are saved; re-running is safe.
    """
    log = logger or _module_logger
    if not records:
        return []
    keys: list[str] = []
    latest: dict[str, dict] = {}
    for index, record in enumerate(records):
        fields = message_record_to_fields(record)
        key = fields.get(USER_ID_COLUMN)
        if not key:
            raise AirtableError(f"message record {index} has no user_id: the upload matches rows on the "
                                f"{USER_ID_COLUMN!r} column, so every record needs one")
        if key in latest:
            log.warning("Airtable: user %s appears more than once in this upload; the last record wins", key)
        keys.append(key)
        latest[key] = fields
    (_, _, table), config = _client_and_config()
    unique = list(latest)
    try:
        result = table.batch_upsert([{"fields": latest[key]} for key in unique], key_fields=[USER_ID_COLUMN],
                                    typecast=TYPECAST)
    except _REQUEST_ERRORS as exc:
        raise _to_airtable_error(exc, config, f"upserting {len(unique)} message records") from exc
    # Airtable answers each batch's records in the order they were sent.
    ids = {key: record["id"] for key, record in zip(unique, result["records"])}
    log.info("Airtable: %d rows created, %d updated in table %s",
             len(result["createdRecords"]), len(result["updatedRecords"]), config.table_id)
    return [ids[key] for key in keys]


# --------------------------------------------------------------------------- --check


@dataclass
class ColumnReport:
    """What `check_table_columns` found.

    Attributes:
        table_name: The table's name in Airtable.
        table_id: The table's id.
        missing: Mapped columns the table lacks, in mapping order.
        wrong_type: `(column, its type, expected type)` for number columns that are not numbers.
        columns: Every column the table has.
    """

    table_name: str
    table_id: str
    missing: list[str]
    wrong_type: list[tuple[str, str, str]]
    columns: list[str]


def mapped_columns() -> list[str]:
    """The Airtable columns `MESSAGES_FIELD_MAPPING` writes, each once, in mapping order."""
    return list(dict.fromkeys(MESSAGES_FIELD_MAPPING.values()))


def check_table_columns() -> ColumnReport:
    """Read the Messages table's schema (metadata API) and compare it with the mapping.

    The token needs the schema.bases:read scope for this.

    Returns:
        The report.

    Raises:
        AirtableConfigError: The settings are missing.
        AirtableError: The schema could not be read, or the table is not in the base.
    """
    (_, base, table), config = _client_and_config()
    action = f"reading the schema of base {config.base_id}"
    try:
        schema = base.schema(force=True)
    except _REQUEST_ERRORS as exc:
        raise _to_airtable_error(exc, config, action, scope_hint="schema.bases:read") from exc
    try:
        table_schema = schema.table(config.table_id)
    except KeyError:
        names = ", ".join(f"{t.name} ({t.id})" for t in schema.tables) or "none"
        raise AirtableError(f"table {config.table_id} is not in base {config.base_id}; its tables are: {names}. "
                            f"Check {TABLE_ID_ENV}") from None
    # pyairtable gives the type as a str enum; its value is Airtable's name, e.g. "number".
    types = {f.name: str(getattr(f.type, "value", f.type)) for f in table_schema.fields}
    missing = [column for column in mapped_columns() if column not in types]
    wrong = [(column, types[column], COLUMN_TYPES[column]) for column in NUMBER_COLUMNS
             if column in types and types[column] not in _NUMBER_TYPES]
    return ColumnReport(table_schema.name, table_schema.id, missing, sorted(wrong), list(types))


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m utils.airtable_crud --check`: report mapped columns the Messages table lacks.

    Args:
        argv: Command-line arguments; default sys.argv[1:].

    Returns:
        0 if every mapped column exists, 1 if some are missing or the check failed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m utils.airtable_crud",
        description="Check the Airtable Messages table against MESSAGES_FIELD_MAPPING.",
        epilog="Needs AIRTABLE_API_KEY (with the schema.bases:read scope), AIRTABLE_BASE_ID and "
               "AIRTABLE_MESSAGES_TABLE_ID, from the environment or .env.",
    )
    parser.add_argument("--check", action="store_true",
                        help="read the table schema (metadata API, needs the schema.bases:read scope) and "
                             "report every mapped column the table lacks")
    args = parser.parse_args(argv)
    if not args.check:
        parser.error("nothing to do: pass --check")
    try:
        report = check_table_columns()
    except PipelineError as exc:
        if os.environ.get(_DEBUG_ENV) == "1":
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    expected = mapped_columns()
    print(f"Airtable table {report.table_name} ({report.table_id}): "
          f"{len(expected) - len(report.missing)} of {len(expected)} mapped columns present")
    for column, actual, wanted in report.wrong_type:
        print(f"  warning: column {column!r} is of type {actual}, expected {wanted}")
    if not report.missing:
        print("OK: every column in MESSAGES_FIELD_MAPPING exists")
        return 0
    print("Missing columns:")
    for column in report.missing:
        print(f"  - {column}  (from {', '.join(_local_names(column))}; type {COLUMN_TYPES.get(column, '?')})")
    print(f"Error: {len(report.missing)} mapped column{'s are' if len(report.missing) > 1 else ' is'} missing "
          f"from table {report.table_id}: add {'them' if len(report.missing) > 1 else 'it'} in Airtable, or change "
          f"MESSAGES_FIELD_MAPPING in utils/airtable_crud.py", file=sys.stderr)
    return 1


if __name__ == "__main__":
    from dotenv import load_dotenv

    load_dotenv(ENV_FILE, override=False)
    sys.exit(main())
