"""A loopback fake of the Airtable Web API: the record endpoints pyairtable 3.5 uses, and the schema.

Implemented, with Airtable's request and response shapes:

- `GET /v0/{base}/{table}` list, with `pageSize` and `offset` pagination (and `maxRecords`, `fields[]`;
  with a schema, an unknown name in `fields[]` gets 422 UNKNOWN_FIELD_NAME, as Airtable answers).
  `filterByFormula`, `sort` and `view` are not implemented, so they get 422.
- `POST /v0/{base}/{table}` create one (`{"fields": …}`) or a batch (`{"records": […]}`)
- `GET|PATCH|PUT|DELETE /v0/{base}/{table}/{recordId}`
- `PATCH|PUT /v0/{base}/{table}` batch update, or upsert with `performUpsert.fieldsToMergeOn`
- `DELETE /v0/{base}/{table}?records[]=…` batch delete
- `GET /v0/meta/bases/{base}/tables` the base schema (needs the schema.bases:read scope; the only
  query it accepts is pyairtable's `include=visibleFieldIds`)

It enforces 10 records per request and, per base, `rate_limit` requests per `rate_window` seconds
(429 beyond that). A wrong token gets 401; an unknown base 403; an unknown table 404; with a schema
(`set_schema`), an unknown column gets 422 UNKNOWN_FIELD_NAME and a value of the wrong type 422
INVALID_VALUE_FOR_COLUMN. Anything else is 404 NOT_FOUND. Dropping "schema.bases:read" from
`scopes` (`deny_schema_scope()`) makes the schema endpoint answer 403, as for a token without it.

Test helpers act as the team working in the Airtable UI on the Messages table, by "User ID":
`team_set_send_status`, `team_edit_message`, `team_delete_row`; `row_for` and `snapshot` read.
"""

import collections
import copy
import itertools
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional, Union

from tests.fakes import FakeRequest, FakeResponse, LoopbackServer

FAKE_AIRTABLE_TOKEN = "patFAKEtoken00000.0123456789abcdef-DO-NOT-LOG"
FAKE_BASE_ID = "appTESTBASE000001"
FAKE_TABLE_ID = "tblMESSAGES000001"
FAKE_TABLE_NAME = "Messages"
# The Messages table's columns the team helpers use; spelled here, not imported, so the fake pins them.
USER_ID_COLUMN = "User ID"
MESSAGE_COLUMN = "Message"
SEND_STATUS_COLUMN = "Send Status"

MAX_RECORDS_PER_REQUEST = 10
MAX_PAGE_SIZE = 100
# The query pyairtable's Base.schema() sends; anything else on the schema endpoint is a 422.
SCHEMA_QUERY_KNOWN = frozenset({("include", ("visibleFieldIds",)), ("include[]", ("visibleFieldIds",))})
ALL_SCOPES = frozenset({"data.records:read", "data.records:write", "schema.bases:read"})

TEXT_TYPES = frozenset({"singleLineText", "multilineText", "richText", "email", "phoneNumber", "url", "singleSelect"})
NUMBER_TYPES = frozenset({"number", "percent", "currency", "rating", "duration"})


def _error(status: int, kind: str, message: Optional[str] = None) -> FakeResponse:
    if message is None:
        return FakeResponse(status, {"error": kind})
    return FakeResponse(status, {"error": {"type": kind, "message": message}})


@dataclass
class FakeTable:
    """One table: its records (id -> record, in creation order) and, optionally, its columns."""

    id: str
    name: str
    records: dict[str, dict] = field(default_factory=dict)
    columns: Optional[dict[str, str]] = None  # column name -> Airtable field type

    def rows(self) -> list[dict]:
        return [record["fields"] for record in self.records.values()]


class FakeAirtable(LoopbackServer):
    """The fake Airtable API.

    Attributes:
        token: The only personal access token it accepts (401 otherwise).
        scopes: The token's scopes; drop "schema.bases:read" to see --check fail with 403.
        rate_limit, rate_window: At most `rate_limit` requests per `rate_window` seconds per base.
        rejected_429: How many requests were refused for the rate limit.
        tables: {base id: {table id: FakeTable}}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.token = FAKE_AIRTABLE_TOKEN
        self.scopes: set[str] = set(ALL_SCOPES)
        self.rate_limit = 5
        self.rate_window = 1.0
        self.rejected_429 = 0
        self.tables: dict[str, dict[str, FakeTable]] = {
            FAKE_BASE_ID: {FAKE_TABLE_ID: FakeTable(FAKE_TABLE_ID, FAKE_TABLE_NAME)},
        }
        self._sent: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._failures: collections.deque = collections.deque()
        self._ids = itertools.count(1)
        self._offsets: dict[str, tuple[str, int]] = {}

    # -- test helpers

    @property
    def table(self) -> FakeTable:
        """The default Messages table."""
        return self.tables[FAKE_BASE_ID][FAKE_TABLE_ID]

    def rows(self) -> list[dict]:
        """The default table's rows (their fields), in creation order."""
        with self.lock:
            return [dict(fields) for fields in self.table.rows()]

    def set_schema(self, columns: Union[Mapping[str, str], Iterable[str]], table: Optional[FakeTable] = None) -> None:
        """Give a table columns; then unknown names and wrongly typed values get 422.

        Args:
            columns: {name: Airtable type}, or names (typed as long text).
            table: Default the Messages table.
        """
        if not isinstance(columns, Mapping):
            columns = {name: "multilineText" for name in columns}
        with self.lock:
            (table or self.table).columns = dict(columns)

    def fail_next(self, status: int, times: int = 1, *, methods: Optional[Iterable[str]] = None) -> None:
        """Answer the next `times` requests (of the given methods, default any) with `status`."""
        wanted = frozenset(m.upper() for m in methods) if methods else None
        with self.lock:
            for _ in range(times):
                self._failures.append((status, wanted))

    def add_row(self, fields: Mapping[str, Any]) -> str:
        """Put a row straight into the Messages table; returns its record id."""
        with self.lock:
            record = self._new_record(dict(fields))
            self.table.records[record["id"]] = record
            return record["id"]

    def deny_schema_scope(self) -> None:
        """Act as a token without schema.bases:read: the schema endpoint then answers 403."""
        with self.lock:
            self.scopes.discard("schema.bases:read")

    def row_for(self, user_id: str) -> Optional[dict]:
        """A copy of the Messages table's record (`{"id", "createdTime", "fields"}`) for a user, or None."""
        with self.lock:
            matches = [r for r in self.table.records.values() if r["fields"].get(USER_ID_COLUMN) == user_id]
            if len(matches) > 1:
                raise AssertionError(f"fake: {len(matches)} rows for user {user_id}")
            return copy.deepcopy(matches[0]) if matches else None

    def snapshot(self) -> dict[str, dict]:
        """A deep copy of every record of the Messages table, by record id (compare before and after)."""
        with self.lock:
            return copy.deepcopy(self.table.records)

    def _team_row(self, user_id: str) -> dict:
        matches = [r for r in self.table.records.values() if r["fields"].get(USER_ID_COLUMN) == user_id]
        if len(matches) != 1:
            raise AssertionError(f"fake: expected one row for user {user_id}, found {len(matches)}")
        return matches[0]

    def team_set_send_status(self, user_id: str, value: Optional[str]) -> None:
        """Set (or with None, clear) the team's Send Status of a user's row, as a person would."""
        with self.lock:
            fields = self._team_row(user_id)["fields"]
            if value is None:
                fields.pop(SEND_STATUS_COLUMN, None)
            else:
                fields[SEND_STATUS_COLUMN] = value

    def team_edit_message(self, user_id: str, text: Optional[str]) -> None:
        """Replace (or with None, clear) the Message text of a user's row, as a person would."""
        with self.lock:
            fields = self._team_row(user_id)["fields"]
            if text is None:
                fields.pop(MESSAGE_COLUMN, None)  # Airtable leaves empty cells out of its answers
            else:
                fields[MESSAGE_COLUMN] = text

    def team_delete_row(self, user_id: str) -> str:
        """Delete a user's row, as a person would; returns its record id."""
        with self.lock:
            record_id = self._team_row(user_id)["id"]
            del self.table.records[record_id]
            return record_id

    def requests_to(self, method: str, path_suffix: str = "") -> list[FakeRequest]:
        """Recorded requests with this method whose path ends with `path_suffix`."""
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # -- plumbing

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):014d}"

    def _new_record(self, fields: dict) -> dict:
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {"id": self._new_id("rec"), "createdTime": created, "fields": fields}

    def _rate_limited(self, base_id: str, now: float) -> bool:
        with self.lock:
            sent = self._sent[base_id]
            while sent and now - sent[0] >= self.rate_window:
                sent.popleft()
            if len(sent) >= self.rate_limit:
                self.rejected_429 += 1
                return True
            sent.append(now)
            return False

    def _injected_failure(self, method: str) -> Optional[FakeResponse]:
        with self.lock:
            for index, (status, methods) in enumerate(self._failures):
                if methods is None or method in methods:
                    del self._failures[index]
                    return _error(status, "SERVER_ERROR" if status >= 500 else "FAKE_INJECTED",
                                  f"fake: injected {status}")
        return None

    def _find_table(self, base_id: str, name: str) -> Optional[FakeTable]:
        for table in self.tables.get(base_id, {}).values():
            if name in (table.id, table.name):
                return table
        return None

    # -- serving

    def handle(self, request: FakeRequest) -> FakeResponse:
        parts = [urllib.parse.unquote(p) for p in request.path.split("/") if p]
        if not parts or parts[0] != "v0":
            return _error(404, "NOT_FOUND")
        if request.token != self.token:
            return _error(401, "AUTHENTICATION_REQUIRED", "Authentication required")
        parts = parts[1:]
        is_meta = parts[:2] == ["meta", "bases"]
        base_id = parts[2] if is_meta and len(parts) > 2 else (parts[0] if parts else "")
        if self._rate_limited(base_id, request.time):
            return FakeResponse(429, {"errors": [{"error": "RATE_LIMIT_REACHED",
                                                  "message": "Rate limit exceeded. Please try again later"}]})
        failure = self._injected_failure(request.method)
        if failure is not None:
            return failure
        if base_id not in self.tables:
            return self._forbidden()

        if is_meta:
            if len(parts) == 4 and parts[3] == "tables" and request.method == "GET":
                if "schema.bases:read" not in self.scopes:
                    return self._forbidden()
                unknown = {k: v for k, v in request.query.items() if (k, tuple(v)) not in SCHEMA_QUERY_KNOWN}
                if unknown:
                    return _error(422, "INVALID_REQUEST_UNKNOWN",
                                  f"fake: schema parameters {unknown} are not supported")
                return self._schema(base_id)
            return _error(404, "NOT_FOUND")

        if len(parts) not in (2, 3):
            return _error(404, "NOT_FOUND")
        with self.lock:
            table = self._find_table(base_id, parts[1])
        if table is None:
            return _error(404, "TABLE_NOT_FOUND", f"Could not find table {parts[1]} in application {base_id}")
        needed = "data.records:read" if request.method == "GET" else "data.records:write"
        if needed not in self.scopes:
            return self._forbidden()
        with self.lock:
            if len(parts) == 3:
                return self._one_record(request, table, parts[2])
            return self._many_records(request, table)

    @staticmethod
    def _forbidden() -> FakeResponse:
        return _error(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                      "Invalid permissions, or the requested model was not found. Check that both your user "
                      "and your token have the required permissions, and that the model names and/or ids "
                      "are correct.")

    def _schema(self, base_id: str) -> FakeResponse:
        tables = []
        with self.lock:
            for table in self.tables[base_id].values():
                if table.columns is None:
                    return _error(418, "FAKE_NO_SCHEMA", f"fake: table {table.id} has no schema; call set_schema()")
                fields = [{"id": f"fld{index:014d}", "name": name, "type": kind}
                          for index, (name, kind) in enumerate(table.columns.items(), start=1)]
                tables.append({
                    "id": table.id,
                    "name": table.name,
                    "primaryFieldId": fields[0]["id"] if fields else "fld00000000000000",
                    "fields": fields,
                    "views": [{"id": "viw00000000000001", "name": "Grid view", "type": "grid"}],
                })
        return FakeResponse(200, {"tables": tables})

    # -- records

    def _check_fields(self, table: FakeTable, fields: Any) -> Optional[FakeResponse]:
        if not isinstance(fields, dict):
            return _error(422, "INVALID_REQUEST_BODY", "fields must be an object")
        if table.columns is None:
            return None
        for name, value in fields.items():
            kind = table.columns.get(name)
            if kind is None:
                return _error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')
            if value is None:
                continue
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if (kind in NUMBER_TYPES and not numeric) or (kind in TEXT_TYPES and not isinstance(value, str)) \
                    or (kind == "checkbox" and not isinstance(value, bool)):
                return _error(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept the provided value')
        return None

    def _batch(self, body: Any) -> tuple[Optional[list], Optional[FakeResponse]]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return None, _error(422, "INVALID_REQUEST_MISSING_FIELDS",
                                'Could not find field "records" in the request body')
        unknown = set(body) - {"records", "typecast", "returnFieldsByFieldId", "performUpsert"}
        if unknown:
            return None, _error(422, "INVALID_REQUEST_UNKNOWN", f"Invalid request: parameter validation failed. "
                                                               f"Unknown parameter {sorted(unknown)[0]!r}")
        records = body["records"]
        if not records or len(records) > MAX_RECORDS_PER_REQUEST:
            return None, _error(422, "INVALID_RECORDS",
                                f"fake: a request takes 1 to {MAX_RECORDS_PER_REQUEST} records, got {len(records)}")
        if body.get("returnFieldsByFieldId"):
            return None, _error(422, "INVALID_REQUEST_UNKNOWN", "fake: returnFieldsByFieldId is not supported")
        return records, None

    def _one_record(self, request: FakeRequest, table: FakeTable, record_id: str) -> FakeResponse:
        record = table.records.get(record_id)
        if record is None:
            return _error(404, "NOT_FOUND")
        if request.method == "GET":
            return FakeResponse(200, record)
        if request.method in ("PATCH", "PUT"):
            body = request.json if isinstance(request.json, dict) else {}
            problem = self._check_fields(table, body.get("fields"))
            if problem:
                return problem
            replaced = dict(body["fields"])
            record["fields"] = replaced if request.method == "PUT" else {**record["fields"], **replaced}
            return FakeResponse(200, record)
        if request.method == "DELETE":
            del table.records[record_id]
            return FakeResponse(200, {"id": record_id, "deleted": True})
        return _error(404, "NOT_FOUND")

    def _many_records(self, request: FakeRequest, table: FakeTable) -> FakeResponse:
        if request.method == "GET":
            return self._list(request, table)
        if request.method == "POST":
            return self._create(request.json, table)
        if request.method in ("PATCH", "PUT"):
            return self._update(request.json, table, replace=request.method == "PUT")
        if request.method == "DELETE":
            ids = request.query.get("records[]", [])
            if not ids or len(ids) > MAX_RECORDS_PER_REQUEST:
                return _error(422, "INVALID_RECORDS", f"fake: delete takes 1 to {MAX_RECORDS_PER_REQUEST} records")
            missing = [rid for rid in ids if rid not in table.records]
            if missing:
                return _error(404, "NOT_FOUND")
            for rid in ids:
                del table.records[rid]
            return FakeResponse(200, {"records": [{"id": rid, "deleted": True} for rid in ids]})
        return _error(404, "NOT_FOUND")

    def _list(self, request: FakeRequest, table: FakeTable) -> FakeResponse:
        allowed = {"pageSize", "offset", "maxRecords", "fields[]", "fields", "cellFormat", "returnFieldsByFieldId"}
        unknown = sorted(set(request.query) - allowed)
        if unknown:
            return _error(422, "INVALID_REQUEST_UNKNOWN", f"fake: list parameter {unknown[0]!r} is not supported")
        try:
            page_size = int(request.query.get("pageSize", [MAX_PAGE_SIZE])[0])
            max_records = int(request.query.get("maxRecords", [0])[0]) or None
        except ValueError:
            return _error(422, "INVALID_REQUEST_UNKNOWN", "pageSize and maxRecords must be integers")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            return _error(422, "INVALID_PAGE_SIZE", f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
        wanted = request.query.get("fields[]", []) + request.query.get("fields", [])
        unknown_fields = [name for name in wanted if table.columns is not None and name not in table.columns]
        if unknown_fields:
            return _error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{unknown_fields[0]}"')
        start = 0
        if "offset" in request.query:
            token = request.query["offset"][0]
            if token not in self._offsets or self._offsets[token][0] != table.id:
                return _error(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "The offset is not valid")
            start = self._offsets.pop(token)[1]
        records = list(table.records.values())
        if max_records is not None:
            records = records[:max_records]
        page = records[start:start + page_size]
        if wanted:
            page = [{**r, "fields": {k: v for k, v in r["fields"].items() if k in wanted}} for r in page]
        body: dict[str, Any] = {"records": page}
        if start + page_size < len(records):
            token = f"itr{next(self._ids):014d}/rec{start + page_size:014d}"
            self._offsets[token] = (table.id, start + page_size)
            body["offset"] = token
        return FakeResponse(200, body)

    def _create(self, body: Any, table: FakeTable) -> FakeResponse:
        if isinstance(body, dict) and "fields" in body and "records" not in body:
            problem = self._check_fields(table, body["fields"])
            if problem:
                return problem
            record = self._new_record(dict(body["fields"]))
            table.records[record["id"]] = record
            return FakeResponse(200, record)
        records, problem = self._batch(body)
        if problem:
            return problem
        for item in records:
            problem = self._check_fields(table, item.get("fields") if isinstance(item, dict) else None)
            if problem:
                return problem
        created = [self._new_record(dict(item["fields"])) for item in records]
        for record in created:
            table.records[record["id"]] = record
        return FakeResponse(200, {"records": created})

    def _update(self, body: Any, table: FakeTable, *, replace: bool) -> FakeResponse:
        records, problem = self._batch(body)
        if problem:
            return problem
        upsert = body.get("performUpsert")
        keys = (upsert or {}).get("fieldsToMergeOn") if upsert is not None else None
        if upsert is not None and (not isinstance(keys, list) or not keys):
            return _error(422, "INVALID_REQUEST_UNKNOWN", "performUpsert.fieldsToMergeOn must be a non-empty list")
        if keys and table.columns is not None:
            for key in keys:
                if key not in table.columns:
                    return _error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{key}"')
        for item in records:
            if not isinstance(item, dict):
                return _error(422, "INVALID_RECORDS", "each record must be an object")
            problem = self._check_fields(table, item.get("fields"))
            if problem:
                return problem
            if "id" not in item and keys is None:
                return _error(422, "INVALID_RECORDS", "each record to update needs an id")
            if "id" in item and item["id"] not in table.records:
                return _error(404, "NOT_FOUND")
            if "id" not in item and any(item["fields"].get(k) is None for k in keys):
                return _error(422, "INVALID_RECORDS", f"every record must have a value for {keys}")
        if keys:
            seen = [tuple(item["fields"][k] for k in keys) for item in records if "id" not in item]
            if len(seen) != len(set(seen)):
                return _error(422, "INVALID_RECORDS", "fake: two records in one request share the merge key")

        # Find every target first, so a refused request changes nothing.
        plan = []
        for item in records:
            target = table.records.get(item["id"]) if "id" in item else None
            if target is None and keys:
                key = tuple(item["fields"][k] for k in keys)
                matches = [r for r in table.records.values() if tuple(r["fields"].get(k) for k in keys) == key]
                if len(matches) > 1:
                    return _error(422, "INVALID_RECORDS", f"more than one record matches {dict(zip(keys, key))}")
                target = matches[0] if matches else None
            plan.append((item, target))
        result, created_ids, updated_ids = [], [], []
        for item, target in plan:
            if target is None:
                target = self._new_record(dict(item["fields"]))
                table.records[target["id"]] = target
                created_ids.append(target["id"])
            else:
                target["fields"] = dict(item["fields"]) if replace else {**target["fields"], **item["fields"]}
                updated_ids.append(target["id"])
            result.append(target)
        answer: dict[str, Any] = {"records": result}
        if keys:
            answer.update(createdRecords=created_ids, updatedRecords=updated_ids)
        return FakeResponse(200, answer)
