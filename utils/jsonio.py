"""JSON in and out: MongoDB Extended JSON normalised on load, atomic saves, errors a person can act on."""

import json
import math
import os
import re
import sys
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from utils.errors import PipelineError

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _millis_to_iso(millis: int) -> str:
    # Imported here, not at the top: utils.dates imports this module.
    from utils.dates import to_iso

    # timedelta arithmetic, unlike fromtimestamp, also covers dates before 1970 on every platform.
    return to_iso(_EPOCH + timedelta(milliseconds=millis))


def _to_number(text: Any, kind: type) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        return None
    # JSON has no NaN or Infinity, and a later json.dump would write invalid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _extended_json_hook(obj: dict) -> Any:
    """Turn one Extended JSON wrapper ({"$oid": …}, {"$date": …}, …) into its plain value."""
    if len(obj) != 1:
        return obj
    key, value = next(iter(obj.items()))
    if key == "$oid":
        # Anything but a string (null, a number) is not an ObjectId; str() would invent ids like "None".
        return value if isinstance(value, str) else obj
    if key == "$date":
        # Inner wrappers are converted first, so {"$numberLong": "…"} has already become an int.
        if isinstance(value, bool):
            return obj
        if isinstance(value, (int, float)):
            try:
                return _millis_to_iso(int(value))
            except (OverflowError, ValueError):
                # Outside the years 1-9999 (or NaN): not a date we can write, so leave it alone.
                return obj
        return value if isinstance(value, str) else obj
    if key in ("$numberInt", "$numberLong"):
        return _to_number(value, int)
    if key in ("$numberDouble", "$numberDecimal"):
        return _to_number(value, float)
    return obj


def normalize_extended_json(value: Any) -> Any:
    """Replace MongoDB Extended JSON wrappers with plain values, recursively.

    Args:
        value: Any JSON-compatible value.

    Returns:
        The same structure with `$oid` as a string, `$date` as an ISO 8601 string, and
        `$numberInt`/`$numberLong`/`$numberDouble`/`$numberDecimal` as numbers.
    """
    if isinstance(value, list):
        return [normalize_extended_json(item) for item in value]
    if isinstance(value, dict):
        return _extended_json_hook({key: normalize_extended_json(item) for key, item in value.items()})
    return value


class _BareConstantError(ValueError):
    """A bare NaN, Infinity or -Infinity: Python's json accepts them, JSON does not."""


def _reject_constant(name: str) -> Any:
    raise _BareConstantError(name)


# A JSON string (skipped) or a bare constant outside strings (group 1).
_CONSTANT_OUTSIDE_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _constant_error(path: Path, name: str) -> PipelineError:
    """The error for a bare constant, with the line and column of the first one in the file."""
    where = ""
    try:
        text = path.read_text(encoding="utf-8")
        match = next(m for m in _CONSTANT_OUTSIDE_STRINGS.finditer(text) if m.group(1))
        line = text.count("\n", 0, match.start(1)) + 1
        column = match.start(1) - (text.rfind("\n", 0, match.start(1)) + 1) + 1
        where = f", line {line} column {column}"
    except (OSError, StopIteration):
        pass
    return PipelineError(
        f"invalid JSON in {path}{where}: {name} is not valid JSON (use null, or {{\"$numberDouble\": \"{name}\"}})"
    )


# Repairs made while loading, as (key, statistics label); steps show them with `input_repair_rows`.
REPLACED_SURROGATES = "text with a lone surrogate (now U+FFFD)"
NUMBERS_OUT_OF_RANGE = "numbers too large (now null)"
_REPAIRS = (REPLACED_SURROGATES, NUMBERS_OUT_OF_RANGE)

# A "\\uD800"-"\\uDFFF" escape: only such escapes can put a surrogate into a loaded string.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class LoadedList(list):
    """A list loaded by `load_json_list`, with what was repaired on the way in.

    Attributes:
        repairs: Counts keyed by REPLACED_SURROGATES and NUMBERS_OUT_OF_RANGE (values, not records).
        what: What the file holds, e.g. "users" (labels the statistics rows).
    """

    def __init__(self, items=(), repairs: Optional[Counter] = None, what: str = "records"):
        super().__init__(items)
        self.repairs = repairs if repairs is not None else Counter()
        self.what = what


def _parse_float(text: str, repairs: Counter) -> Optional[float]:
    """A JSON number with a fraction or exponent; one that overflows a float (1e400) is None, counted."""
    value = float(text)
    if math.isfinite(value):
        return value
    repairs[NUMBERS_OUT_OF_RANGE] += 1
    return None


def replace_surrogates(text: str) -> str:
    """Make a string valid Unicode text by replacing each lone surrogate with U+FFFD.

    Args:
        text: Any string, e.g. one decoded from a "\\ud83d" escape (half an emoji).

    Returns:
        The string with every code point in U+D800-U+DFFF replaced by U+FFFD (the replacement
        character); unchanged when it has none.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


def _repair_surrogates(value: Any, repairs: Counter) -> Any:
    """The value with every string (keys too) made valid Unicode, counting the strings repaired."""
    # An explicit stack, not recursion: the file may be nested nearly as deep as the recursion limit.
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                container[key] = replace_surrogates(item)
                repairs[REPLACED_SURROGATES] += 1
        elif isinstance(item, list):
            stack.extend((item, index) for index in range(len(item)))
        elif isinstance(item, dict):
            if any(_LONE_SURROGATE.search(name) for name in item):
                repaired = {}
                for name, member in item.items():
                    if _LONE_SURROGATE.search(name):
                        repairs[REPLACED_SURROGATES] += 1
                        name = replace_surrogates(name)
                    repaired[name] = member
                item = container[key] = repaired
            stack.extend((item, name) for name in item)
    return root[0]


def input_repair_rows(items: list, what: Optional[str] = None) -> list[tuple[str, int]]:
    """Statistics rows for what `load_json_list` repaired in a file.

    Args:
        items: A list returned by `load_json_list` (any other list gives zero counts).
        what: What the file holds, e.g. "events"; None uses the name given to `load_json_list`.

    Returns:
        One ("<what> repaired: <repair>", count) row per kind of repair, zeros included, e.g.
        ("events repaired: numbers too large (now null)", 1).
    """
    repairs = getattr(items, "repairs", Counter())
    what = what or getattr(items, "what", "records")
    return [(f"{what} repaired: {label}", repairs[label]) for label in _REPAIRS]


def load_json_list(path: Path, *, what: str = "records") -> LoadedList:
    """Load a JSON file whose top level must be a list, normalising Extended JSON on the way.

    Bad values inside records are repaired so that one record cannot stop a step: a lone
    surrogate (a "\\ud83d" escape, half an emoji) becomes U+FFFD and a number too large for a float
    (1e400) becomes null. Both are counted in the result's `repairs`.

    Args:
        path: The file to read.
        what: What the file holds, for error messages and statistics (e.g. "users").

    Returns:
        The list as parsed, as a `LoadedList` (with `repairs` and `what`). Items that are not
        objects are returned as they are, so the caller can skip and count them.

    Raises:
        PipelineError: The file is missing or unreadable, is not valid JSON (the message gives the
            line and column), is nested too deeply, holds an integer too long to read, or its top
            level is not a list.
    """
    path = Path(path)
    repairs: Counter = Counter()
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text, object_hook=_extended_json_hook, parse_constant=_reject_constant,
                          parse_float=lambda number: _parse_float(number, repairs))
    except FileNotFoundError:
        raise PipelineError(
            f"{what} file not found: {path}. Check --data-dir, or run the step that writes it first."
        ) from None
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"invalid JSON in {path}, line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path} is not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    except _BareConstantError as exc:
        raise _constant_error(path, str(exc)) from None
    except RecursionError:
        raise PipelineError(
            f"cannot read {path}: its JSON is nested deeper than {sys.getrecursionlimit()} levels; "
            "export the records as a flat list of objects"
        ) from None
    except ValueError as exc:
        # int() refuses more than sys.get_int_max_str_digits() digits (4,300 by default).
        raise PipelineError(
            f"cannot read {path}: it holds a number too long to read ({exc}); fix or remove that value"
        ) from None
    except OSError as exc:
        raise PipelineError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(data, list):
        raise PipelineError(
            f"{path} must hold a JSON list of {what} objects, but its top level is {type(data).__name__}"
        )
    if _SURROGATE_ESCAPE.search(text):
        data = _repair_surrogates(data, repairs)
    return LoadedList(data, repairs, what)


def split_objects(items: list) -> tuple[list[dict], int]:
    """Separate the objects of a loaded list from the rest.

    Args:
        items: A list loaded by `load_json_list`.

    Returns:
        The items that are JSON objects, in order, and how many items were not.
    """
    objects = [item for item in items if isinstance(item, dict)]
    return objects, len(items) - len(objects)


def dump_json_text(data: Any) -> str:
    """The project's one JSON format: UTF-8 text, two-space indent, newline at the end.

    Args:
        data: A JSON-serialisable value.

    Returns:
        The text that `save_json_atomic` writes.

    Raises:
        TypeError: A value is not JSON-serialisable.
        ValueError: A float is NaN or infinite (JSON has no such numbers), or a reference is circular.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    # A lone surrogate (e.g. a "\ud83d" escape from a truncated emoji) cannot be encoded as UTF-8;
    # written as an escape it is still valid JSON and loads back to the same string.
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def save_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers only ever see the old file or the complete new one.

    The text goes to a temporary file in the same folder, is flushed to disk, and then
    replaces the target with `os.replace`, which is atomic on one file system.

    Args:
        path: The file to write; its folder is created if missing.
        data: A JSON-serialisable value.

    Raises:
        PipelineError: The folder cannot be written or the data cannot be serialised.
    """
    path = Path(path)
    try:
        text = dump_json_text(data)
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"cannot write {path}: data is not JSON-serialisable ({exc})") from None
    except RecursionError:
        raise PipelineError(f"cannot write {path}: the data is nested too deeply to write as JSON") from None
    write_text_atomic(path, text)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a text file atomically (temp file in the same folder, fsync, `os.replace`).

    Args:
        path: The file to write; its folder is created if missing.
        text: The full new content.

    Raises:
        PipelineError: The folder cannot be written.
    """
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # mkstemp creates the file readable by its owner only (0600), and we keep it so: these files
        # hold people's names, emails and phone numbers.
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise PipelineError(f"cannot write {path}: {exc.strerror or exc}") from None
    except UnicodeEncodeError as exc:
        raise PipelineError(f"cannot write {path}: the text is not valid Unicode ({exc.reason})") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
