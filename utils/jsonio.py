"""JSON in and out: MongoDB Extended JSON normalised on load, atomic saves, errors a person can act on."""

import json
import math
import os
import re
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

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


def load_json_list(path: Path, *, what: str = "records") -> list:
    """Load a JSON file whose top level must be a list, normalising Extended JSON on the way.

    Args:
        path: The file to read.
        what: What the file holds, for error messages (e.g. "users").

    Returns:
        The list as parsed. Items that are not objects are returned as they are, so the caller
        can skip and count them.

    Raises:
        PipelineError: The file is missing or unreadable, is not valid JSON (the message gives the
            line and column), or its top level is not a list.
    """
    path = Path(path)
    try:
        with path.open("r", encoding="utf-8") as handle:
            data = json.load(handle, object_hook=_extended_json_hook, parse_constant=_reject_constant)
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
    except OSError as exc:
        raise PipelineError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(data, list):
        raise PipelineError(
            f"{path} must hold a JSON list of {what} objects, but its top level is {type(data).__name__}"
        )
    return data


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
        # mkstemp makes the file private (0600); outputs are ordinary shared files.
        os.chmod(tmp_name, 0o644)
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
