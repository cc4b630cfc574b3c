"""Airtable CRUD for the Messages table: credentials from the environment, upserts keyed on the user,
a request rate Airtable accepts, and errors a person can act on.

`python -m utils.airtable_crud --check` runs step 5's pre-flight (`preflight_check`): token, base, table,
every mapped column, and whether the team's "Send Status" column exists. The column mapping itself is
in `utils/airtable_fields.py`.
"""

import argparse
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import requests
from pyairtable import Api
from pyairtable.api.base import Base
from pyairtable.api.table import Table
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from utils.airtable_fields import (
    COLUMN_TYPES,
    EVENT_ID_COLUMN,
    MESSAGE_COLUMN,
    NUMBER_COLUMNS,
    NUMBER_TYPES,
    SEND_STATUS_COLUMN,
    STATUS_COLUMN,
    USER_ID_COLUMN,
    AirtableRow,
    local_names,
    mapped_columns,
    message_record_to_fields,
    team_columns_in,
)
from utils.cli import step_main
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

_BASE_ID = re.compile(r"^app[A-Za-z0-9]{14}$")
_QUOTED = re.compile(r'"([^"]+)"')

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
            ours = local_names(column) if column else []
            named = f'column "{column}"' if column else "a column"
            if ours:
                named += f" (our field{'s' if len(ours) > 1 else ''} {', '.join(ours)})"
            if kind == "UNKNOWN_FIELD_NAME":
                message = (f"the Airtable table {config.table_id} has no {named} ({explained}) while {action}: "
                           f"add the column in Airtable, or fix MESSAGES_FIELD_MAPPING in utils/airtable_fields.py "
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


def _refuse_team_columns(fields: Mapping[str, Any], action: str) -> None:
    """Raise before any request if a field set would write the team's columns (e.g. Send Status)."""
    offending = team_columns_in(fields)
    if offending:
        raise AirtableError(f"refusing to write the team's column{'s' if len(offending) > 1 else ''} "
                            f"{', '.join(repr(c) for c in offending)} while {action}: the pipeline reads "
                            f"{SEND_STATUS_COLUMN!r} and never writes it (docs/api-wrappers.md)",
                            error_type="TEAM_COLUMN", column=offending[0])


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
        AirtableError: The fields would write the team's "Send Status" (before any request).
    """
    log = logger or _module_logger
    fields = message_record_to_fields(message_record)
    if not fields:
        log.error("Airtable: message record has no mapped field to upload; see MESSAGES_FIELD_MAPPING")
        return False, None
    _refuse_team_columns(fields, "creating a message record")
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
        AirtableError: `fields` carries the team's "Send Status" (before any request).
    """
    log = logger or _module_logger
    if not fields:
        log.error("Airtable: no fields given to update record %s", record_id)
        return False
    _refuse_team_columns(fields, f"updating record {record_id}")
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
        AirtableError: A record has no user_id or would write "Send Status" (before any network
            call), or Airtable refused a request after the retries. Batches sent before the failure
            are saved; re-running is safe.
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
        _refuse_team_columns(fields, f"upserting message record {index}")
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


# --------------------------------------------------------------------------- reading the team's rows

# What step 5 reads before an upload: enough to see whose row is in the team's hands, and no more.
MEMBER_ROW_COLUMNS: tuple[str, ...] = (USER_ID_COLUMN, EVENT_ID_COLUMN, MESSAGE_COLUMN, STATUS_COLUMN)
PAGE_SIZE = 100  # Airtable's largest page


def _cell_text(value: Any) -> Optional[str]:
    """A cell as text, or None when empty: a select's name, a multi-select's names, a checked box."""
    if value is None or value is False:
        return None
    if value is True:
        return "checked"
    if isinstance(value, dict):  # a collaborator or an object-shaped select
        value = value.get("name") or value.get("email") or value.get("id") or ""
    if isinstance(value, (list, tuple)):
        value = ", ".join(text for text in (_cell_text(item) for item in value) if text)
    text = str(value).strip()
    return text or None


def _member_row(record: Mapping[str, Any], user_id: str, duplicates: Sequence[str]) -> AirtableRow:
    fields = record.get("fields") or {}
    message = fields.get(MESSAGE_COLUMN)
    return AirtableRow(
        record_id=str(record["id"]),
        user_id=user_id,
        message=message if isinstance(message, str) else _cell_text(message),
        send_status=_cell_text(fields.get(SEND_STATUS_COLUMN)),
        status=_cell_text(fields.get(STATUS_COLUMN)),
        event_id=_cell_text(fields.get(EVENT_ID_COLUMN)),
        duplicate_record_ids=tuple(duplicates),
    )


def fetch_member_rows(user_ids: Optional[Iterable[str]] = None, *, include_send_status: bool = True,
                      logger: Optional[logging.Logger] = None) -> dict[str, AirtableRow]:
    """Read the Messages table's current rows, one per member, before an upload.

    The whole table is read, 100 rows per request, with only `MEMBER_ROW_COLUMNS` and "Send Status".
    Members are matched in Python rather than with an OR(...) filterByFormula: the table holds one row
    per member ever uploaded, so even 10,000 rows are 100 small requests (about 20 s at 5 per second),
    member ids need no formula escaping, and no URL grows past Airtable's length limit.

    Args:
        user_ids: The members about to be touched; None keeps every row.
        include_send_status: False when the table has no "Send Status" column (asking Airtable for a
            column it lacks is a 422); `PreflightReport.send_status_exists` says which.
        logger: Where to log rows without a user id and members with several rows.

    Returns:
        `{user_id: AirtableRow}`. A member with several rows gets the first one listed, with the other
        rows' ids in `duplicate_record_ids` (the upsert cannot tell which to update).

    Raises:
        AirtableConfigError: The settings are missing.
        AirtableError: Airtable refused a request (after the retries).
    """
    log = logger or _module_logger
    wanted = None if user_ids is None else {str(user_id) for user_id in user_ids}
    columns = list(MEMBER_ROW_COLUMNS) + ([SEND_STATUS_COLUMN] if include_send_status else [])
    (_, _, table), config = _client_and_config()
    found: dict[str, list[Mapping[str, Any]]] = {}
    without_id = 0
    try:
        for page in table.iterate(fields=columns, page_size=PAGE_SIZE):
            for record in page:
                user_id = _cell_text((record.get("fields") or {}).get(USER_ID_COLUMN))
                if user_id is None:
                    without_id += 1
                elif wanted is None or user_id in wanted:
                    found.setdefault(user_id, []).append(record)
    except _REQUEST_ERRORS as exc:
        raise _to_airtable_error(exc, config, f"reading the rows of table {config.table_id}") from exc
    if without_id:
        log.warning("Airtable: %d row%s in table %s ha%s no %s; the pipeline leaves them alone", without_id,
                    "s" if without_id > 1 else "", config.table_id, "ve" if without_id > 1 else "s", USER_ID_COLUMN)
    rows = {}
    for user_id, records in found.items():
        rows[user_id] = _member_row(records[0], user_id, [str(r["id"]) for r in records[1:]])
        if len(records) > 1:
            log.warning("Airtable: member %s has %d rows (%s); delete all but one in Airtable", user_id,
                        len(records), ", ".join(str(r["id"]) for r in records))
    return rows


# --------------------------------------------------------------------------- pre-flight and --check

SCHEMA_SCOPE = "schema.bases:read"
ALL_SCOPES_HINT = f"data.records:read, data.records:write and {SCHEMA_SCOPE}"


@dataclass
class PreflightReport:
    """What `preflight_check` found; reaching it means the token, base and table work.

    Attributes:
        table_id: The table's id (or the name given in AIRTABLE_MESSAGES_TABLE_ID).
        table_name: The table's name, or None when the schema could not be read.
        columns_verified: False when the token lacks the schema scope and the columns were not checked.
        send_status_exists: Whether the table has the team's "Send Status" column.
        columns: Every column the table has (empty when not verified).
        warnings: Things a person should know that do not stop a run, one sentence each.
    """

    table_id: str
    table_name: Optional[str]
    columns_verified: bool
    send_status_exists: bool
    columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _no_send_status_warning(table_id: str) -> str:
    return (f'table {table_id} has no "{SEND_STATUS_COLUMN}" column, so the team cannot hold a row by status; '
            f"a row whose Message text was edited is still held. Add a {SEND_STATUS_COLUMN} column "
            f"(e.g. a single select) to use it")


def _missing_columns_error(table_label: str, missing: Sequence[str]) -> AirtableError:
    names = ", ".join(f'"{column}" ({COLUMN_TYPES.get(column, "any type")})' for column in missing)
    plural = len(missing) > 1
    return AirtableError(
        f"the Airtable table {table_label} lacks {len(missing)} column{'s' if plural else ''} the upload writes: "
        f"{names}: add {'them' if plural else 'it'} in Airtable with these names and types "
        f"(docs/api-wrappers.md), or change MESSAGES_FIELD_MAPPING in utils/airtable_fields.py",
        error_type="MISSING_COLUMNS", column=missing[0])


def _preflight_without_schema(table: Table, config: AirtableConfig) -> PreflightReport:
    """The fallback when the token cannot read the schema: one one-row read of the table."""
    action = f"reading one row of table {config.table_id}"
    send_status_exists = True
    try:
        # Asking for "Send Status" only: Airtable answers 422 UNKNOWN_FIELD_NAME when the column is absent.
        table.first(fields=[SEND_STATUS_COLUMN])
    except _REQUEST_ERRORS as exc:
        error = _to_airtable_error(exc, config, action)
        if error.error_type != "UNKNOWN_FIELD_NAME" or error.column != SEND_STATUS_COLUMN:
            raise error from exc
        send_status_exists = False
    warnings = [f"the token in {API_KEY_ENV} lacks the {SCHEMA_SCOPE} scope, so the table's columns could not "
                f"be checked before the run: a missing column shows only when the upload fails. Add the scope "
                f"to the token to check them up front"]
    if not send_status_exists:
        warnings.append(_no_send_status_warning(config.table_id))
    return PreflightReport(config.table_id, None, False, send_status_exists, [], warnings)


def preflight_check(columns: Optional[Sequence[str]] = None) -> PreflightReport:
    """Check the token, base, table and columns before a run pays for anything.

    One schema request (`GET /v0/meta/bases/{base}/tables`). If Airtable refuses it with 403 (a
    token without the schema.bases:read scope, or a base it cannot see), one one-row read of the
    table tells the two apart: it works for a token without the scope (the columns then go
    unchecked, a warning says so), and fails with a clear error for a wrong base.

    Args:
        columns: The columns the run will write; default every mapped column.

    Returns:
        The report, with warnings (no "Send Status" column, columns not verified, a number column
        of another type).

    Raises:
        AirtableConfigError: The settings are missing (before any request).
        AirtableError: A wrong token, base or table, or missing columns (every one named at once).
    """
    wanted = list(mapped_columns() if columns is None else columns)
    (_, base, table), config = _client_and_config()
    try:
        schema = base.schema(force=True)
    except _REQUEST_ERRORS as exc:
        error = _to_airtable_error(exc, config, f"reading the schema of base {config.base_id}",
                                   scope_hint=ALL_SCOPES_HINT)
        if error.status_code != 403:
            raise error from exc
        return _preflight_without_schema(table, config)
    try:
        table_schema = schema.table(config.table_id)
    except KeyError:
        names = ", ".join(f"{t.name} ({t.id})" for t in schema.tables) or "none"
        raise AirtableError(f"table {config.table_id} is not in base {config.base_id}; its tables are: {names}. "
                            f"Check {TABLE_ID_ENV}", status_code=404, error_type="TABLE_NOT_FOUND") from None
    # pyairtable gives the type as a str enum; its value is Airtable's name, e.g. "number".
    types = {f.name: str(getattr(f.type, "value", f.type)) for f in table_schema.fields}
    missing = [column for column in dict.fromkeys(wanted) if column not in types]
    if missing:
        raise _missing_columns_error(f"{table_schema.name} ({table_schema.id})", missing)
    warnings = [f"column {column!r} is of type {types[column]}, expected {COLUMN_TYPES[column]}: numbers sent to "
                f"it will be refused" for column in sorted(NUMBER_COLUMNS)
                if column in wanted and types.get(column) not in NUMBER_TYPES]
    send_status_exists = SEND_STATUS_COLUMN in types
    if not send_status_exists:
        warnings.append(_no_send_status_warning(table_schema.id))
    return PreflightReport(table_schema.id, table_schema.name, True, send_status_exists, list(types), warnings)


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """`python -m utils.airtable_crud --check`: the pre-flight step 5 runs, printed for a person.

    Args:
        argv: Command-line arguments; default sys.argv[1:].

    Returns:
        0 if the token, base, table and every mapped column are fine; 1 (one `Error:` line) otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="python -m utils.airtable_crud",
        description="Check the Airtable Messages table before a run: token, base, table, columns, Send Status.",
        epilog=f"Needs AIRTABLE_API_KEY (scopes {ALL_SCOPES_HINT}), AIRTABLE_BASE_ID and "
               "AIRTABLE_MESSAGES_TABLE_ID, from the environment or .env.",
    )
    parser.add_argument("--check", action="store_true",
                        help="run step 5's pre-flight: one schema request (needs the schema.bases:read scope; "
                             "without it, a one-row read), naming every mapped column the table lacks and "
                             "whether the team's Send Status column exists")
    args = parser.parse_args(argv)
    if not args.check:
        parser.error("nothing to do: pass --check")
    expected = mapped_columns()
    report = preflight_check(expected)
    label = f"{report.table_name} ({report.table_id})" if report.table_name else report.table_id
    if report.columns_verified:
        print(f"Airtable table {label}: all {len(expected)} mapped columns present")
    else:
        print(f"Airtable table {label}: token, base and table work; columns not verified")
    print(f"{SEND_STATUS_COLUMN} column: " + ("present (rows the team marks are held)" if report.send_status_exists
                                            else "absent (edited Message text still holds a row)"))
    for warning in report.warnings:
        print(f"  warning: {warning}")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
