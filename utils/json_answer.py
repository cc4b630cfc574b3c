"""Reading the JSON object or array in a Claude answer, whatever prose or fences surround it."""

import json
import logging
import re
from typing import Any, Optional, Union

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n?(.*?)```", re.DOTALL)
_decoder = json.JSONDecoder()


def _is_wanted(value: Any, expect: Optional[type]) -> bool:
    if expect is not None:
        return isinstance(value, expect)
    return isinstance(value, (dict, list))


def _first_balanced(text: str, expect: Optional[type]) -> Any:
    """The first {…} or […] in the text that is valid JSON, or None."""
    for index, char in enumerate(text):
        if char not in "{[":
            continue
        try:
            # raw_decode reads one JSON value from here and ignores what follows; it tracks strings,
            # so braces and brackets inside them cannot end the value early.
            value, _ = _decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            continue
        if _is_wanted(value, expect):
            return value
    return None


def parse_json_response(response_text: str, logger: Optional[logging.Logger] = None, *,
                        expect: Optional[type] = None) -> Union[dict, list]:
    """Read the JSON object or array in a Claude answer.

    Tried in order: the whole text as JSON; each fenced ```json block (then other fenced blocks);
    then the first balanced {…} or […] in the text that parses, found with awareness of
    strings, so braces inside strings do not break it and trailing prose is ignored.

    Args:
        response_text: The answer.
        logger: If given, which strategy worked (DEBUG) or the failure (WARNING) is logged.
        expect: `dict` or `list` to accept only that kind; default either.

    Returns:
        The parsed dict or list.

    Raises:
        json.JSONDecodeError: No JSON object or array could be found.
    """
    text = (response_text or "").strip().lstrip("\ufeff")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        if _is_wanted(value, expect):
            return value

    fences = _FENCE.findall(text)
    ordered = [body for lang, body in fences if lang.lower() == "json"] + \
              [body for lang, body in fences if lang.lower() != "json"]
    for body in ordered:
        try:
            value = json.loads(body.strip())
        except json.JSONDecodeError:
            continue
        if _is_wanted(value, expect):
            if logger is not None:
                logger.debug("parsed JSON from a fenced block")
            return value

    value = _first_balanced(text, expect)
    if value is not None:
        if logger is not None:
            logger.debug("parsed JSON found inside the answer's text")
        return value

    kind = {dict: "object", list: "array"}.get(expect, "object or array")
    if logger is not None:
        preview = text[:200] + ("…" if len(text) > 200 else "")
        logger.warning("no JSON %s found in Claude's answer: %r", kind, preview)
    raise json.JSONDecodeError(f"No valid JSON {kind} found in the response", response_text or "", 0)


__all__: list[str] = ["parse_json_response"]
