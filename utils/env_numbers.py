"""The one reader of numeric settings from the environment (timeouts, retries, rates).

Both API wrappers read their numeric settings through `env_number`, so the same text means the
same thing everywhere: blank is the default; a number must be finite and at least the minimum;
a whole-number setting refuses "2.5" rather than truncating it; anything else is an `Error:` that
names the variable, the value and where to fix it.
"""

import math
import os
from typing import Optional, Union

from utils.errors import PipelineError
from utils.paths import ENV_FILE

Number = Union[int, float]


def env_number(name: str, default: Number, kind: type = float, minimum: Optional[Number] = None, *,
               exclusive: bool = False, unit: str = "", error: type = PipelineError) -> Number:
    """Read a numeric environment variable.

    Args:
        name: The variable, e.g. "ANTHROPIC_TIMEOUT".
        default: Returned when the variable is unset, empty or only spaces (not checked).
        kind: `int` (a whole number, e.g. "3") or `float` (e.g. "0.5", "2", "1e-3").
        minimum: The smallest value allowed; None allows any finite number.
        exclusive: The value must be above `minimum`, not equal to it (e.g. a timeout > 0).
        unit: A word for the message, e.g. "seconds" gives "a number of seconds > 0".
        error: The exception class to raise; a `PipelineError` subclass so main() prints it.

    Returns:
        The value as `kind`.

    Raises:
        PipelineError: (or `error`) The text is not a finite number of that kind, or is below the minimum.
    """
    if kind not in (int, float):
        raise ValueError(f"kind must be int or float, got {kind!r}")
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or _below(value, minimum, exclusive):
        raise error(f"{name} must be {_describe(kind, minimum, exclusive, unit)}, got {text!r}: "
                    f"fix it in the environment or in .env ({ENV_FILE})")
    return value


def _below(value: Number, minimum: Optional[Number], exclusive: bool) -> bool:
    if minimum is None:
        return False
    return value <= minimum if exclusive else value < minimum


def _describe(kind: type, minimum: Optional[Number], exclusive: bool, unit: str) -> str:
    """E.g. "a whole number >= 0" or "a number of seconds > 0"."""
    noun = "a whole number" if kind is int else "a number"
    if unit:
        noun += f" of {unit}"
    if minimum is None:
        return noun
    return f"{noun} {'>' if exclusive else '>='} {minimum:g}"


__all__: list[str] = ["env_number"]
