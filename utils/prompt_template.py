"""Prompt templates that are safe to edit: only `{name}` placeholders are filled, every other brace is text.

The rules, for whoever edits a prompt:

- `{first_name}` (letters, digits and underscores, not starting with a digit) is a placeholder. The
  step fills it, and refuses at start-up a placeholder it does not know (`check_prompt`).
- Every other brace is literal text: `{"message": "..."}`, `{ }` and `}}` are sent as written, so a
  JSON example can be pasted as-is. Nothing needs doubling.
- `{{first_name}}` writes a literal `{first_name}` (for the rare prompt that must show a placeholder).
- Doubled braces anywhere else are NOT halved: `{{"a": 1}}` stays `{{"a": 1}}`. Prompts written for
  `str.format` (which doubled every literal brace) must be migrated once by halving `{{` and `}}`.
  We chose this over keeping `str.format`'s doubling because a pasted nested JSON example ends in
  `}}`, which doubling rules would silently turn into `}`.
- Values are filled in one pass: a `{x}` inside a member's summary or an event description is never
  filled again, so untrusted text cannot pull other values into the prompt.
"""

import difflib
import re
from typing import Any, Iterable, Mapping

from utils.errors import PipelineError
from utils.people import join_words

# `{{name}}` (an escaped placeholder, group 1) is tried before `{name}` (a placeholder, group 2).
_PLACEHOLDER_RE = re.compile(r"\{\{([A-Za-z_]\w*)\}\}|\{([A-Za-z_]\w*)\}")


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses.

    Args:
        template: The prompt text.

    Returns:
        Each `{name}` once, in order of first appearance; escaped `{{name}}` is not a placeholder.
    """
    names = (match.group(2) for match in _PLACEHOLDER_RE.finditer(template) if match.group(2))
    return list(dict.fromkeys(names))


def fill_prompt(template: str, values: Mapping[str, Any]) -> str:
    """Fill a template's `{name}` placeholders, leaving every other brace as written.

    Args:
        template: The prompt text.
        values: The value of each placeholder (turned into text with `str`); names the template does
            not use are ignored.

    Returns:
        The prompt. Text inside the values is never scanned for placeholders.

    Raises:
        PipelineError: The template uses a placeholder that `values` lacks (call `check_prompt`
            at start-up to catch this before any paid call).
    """
    missing = [name for name in placeholders_in(template) if name not in values]
    if missing:
        raise PipelineError(
            f"the prompt uses {_braced(missing)} but no value was given for it: "
            "check the prompt with check_prompt() at start-up"
        )

    def replace(match: re.Match) -> str:
        if match.group(1):
            return "{" + match.group(1) + "}"
        return str(values[match.group(2)])

    return _PLACEHOLDER_RE.sub(replace, template)


def check_prompt(prompt_name: str, template: str, known: Iterable[str], *, filler: str = "step 5") -> None:
    """Refuse a prompt that uses a placeholder its step cannot fill.

    Args:
        prompt_name: The prompt's constant name, e.g. "MESSAGE_GENERATION_PROMPT", for the message.
        template: The prompt text.
        known: The placeholder names the step fills for this prompt.
        filler: Who fills it, for the message.

    Raises:
        PipelineError: One line naming the unknown placeholders, what the step fills, and a near
            spelling when there is one, e.g. "MESSAGE_GENERATION_PROMPT uses {neighbourhood}, which
            step 5 does not fill; it fills {first_name}, {user_summary}".
    """
    known_names = list(dict.fromkeys(known))
    unknown = [name for name in placeholders_in(template) if name not in known_names]
    if not unknown:
        return
    guesses = {name: difflib.get_close_matches(name, known_names, n=1) for name in unknown}
    hints = [f"{{{name}}} may be {{{guess[0]}}}" for name, guess in guesses.items() if guess]
    fills = _braced(known_names) if known_names else "no placeholders"
    message = (
        f"{prompt_name} uses {_braced(unknown)}, which {filler} does not fill; it fills {fills}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f". Fix the name in {prompt_name}, or write {{{{{unknown[0]}}}}} to keep {{{unknown[0]}}} as text"
    )
    raise PipelineError(message)


def _braced(names: list[str]) -> str:
    """The names as `{a}, {b} and {c}`."""
    return join_words(f"{{{name}}}" for name in names)
