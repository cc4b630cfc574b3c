"""Contact details: comparable emails and phone numbers, and the opt-out list.

Steps 1 and 5 use these to decide who must not be messaged: the message history and the opt-out
list are matched on normalised emails and E.164 phone numbers, so `(212) 555-0100` and
`+1 212.555.0100` are the same phone.
"""

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from utils.errors import PipelineError
from utils.jsonio import load_json_list

# Calling codes of the default countries we can read national numbers for. Every NANP country
# (US, Canada, ...) shares +1 and the same 10-digit plan; add others only with their own rules.
_CALLING_CODES = {"US": "1", "CA": "1"}
_NANP_DIGITS = 10

# Characters people and exports put inside phone numbers; deleted before reading the digits.
_PHONE_PUNCTUATION = str.maketrans("", "", " \t\u00a0\u2009\u202f-\u2010\u2011\u2012\u2013.()/")

# E.164: at most 15 digits after "+". The shortest numbers in use have 7.
_E164_MIN_DIGITS = 7
_E164_MAX_DIGITS = 15

# The kinds `OptOuts.match` returns (and the statistics count by).
MATCH_PHONE = "phone"
MATCH_EMAIL = "email"


def normalize_email_address(value: Any) -> Optional[str]:
    """An email address as a comparable key; None for text not shaped like an address.

    Strict, unlike `utils.people.normalize_email_text` (any non-blank text): an opt-out or a sent
    message must never match a member through a placeholder.

    Args:
        value: The address as typed, e.g. `" Ana@Example.COM "`.

    Returns:
        The trimmed, lower-cased address (`"ana@example.com"`), or None when the value is not text
        or is not shaped like an address (no `@` with text on both sides, or spaces inside), so
        that placeholders such as `"n/a"` never match each other.
    """
    if type(value) is not str:  # noqa: E721 - exactly str: the cache needs a hashable value
        return None
    return _normalized_address(value)


# Cached: step 1 looks up the same member's email for several rules, over 100,000s of members.
@functools.lru_cache(maxsize=1 << 18)
def _normalized_address(value: str) -> Optional[str]:
    """`normalize_email_address` for text."""
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    # isprintable is False for tabs, newlines and other control characters; spaces are checked apart.
    if not (at and local and domain) or " " in email or not email.isprintable():
        return None
    return email


def _nanp_national_ok(digits: str) -> bool:
    """True for a 10-digit North American number whose area code and exchange do not start with 0 or 1."""
    return len(digits) == _NANP_DIGITS and digits[0] not in "01" and digits[3] not in "01"


def normalize_phone(value: Any, default_country: str = "US") -> Optional[str]:
    """A phone number in E.164 form, the comparable key for phones.

    `(212) 555-0100`, `212.555.0100`, `1-212-555-0100` and `+1 212 555 0100` all give
    `+12125550100`. Spaces, dots, dashes, slashes and parentheses are ignored, and so is a
    bracketed trunk zero after a country code (`+44 (0)20 7946 0000`).

    Args:
        value: The number as typed (text, or a whole number such as `2125550100`).
        default_country: The country of numbers written without `+`: "US" (or "CA").

    Returns:
        `"+"` and the digits, or None when the value is not a usable number: other characters
        (letters, an extension), too few or too many digits, or a North American number that is
        not 10 digits with an area code and exchange starting 2-9.

    Raises:
        ValueError: `default_country` is not one this function can read.
    """
    if type(value) is not str:  # noqa: E721 - the common case first: this runs for every member
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        value = str(value)
    return _normalized_phone_text(value, default_country)


@functools.lru_cache(maxsize=1 << 18)
def _normalized_phone_text(value: str, default_country: str) -> Optional[str]:
    """`normalize_phone` for text."""
    code = _CALLING_CODES.get(default_country)
    if code is None:
        raise ValueError(f"unsupported default_country {default_country!r}; use one of {sorted(_CALLING_CODES)}")
    text = value.strip()
    if code == "1" and len(text) == 12 and text[:2] == "+1" and text.isascii() and text[1:].isdigit():
        # Already E.164 North American, as most exports hold it: only the plan's rules to check.
        return text if _nanp_national_ok(text[2:]) else None
    plain = text.isascii() and (text.isdigit() or (text[:1] == "+" and text[1:].isdigit()))
    if not plain:  # only digits, with or without "+": nothing to clean up
        if text.startswith("+"):
            # "+44 (0)20 …": the bracketed 0 is only dialled inside the country.
            text = text.replace("(0)", "")
        text = text.translate(_PHONE_PUNCTUATION)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("011"):  # the US international prefix, e.g. 011 44 20 7946 0000
        digits = text[3:]
    elif len(text) == _NANP_DIGITS + 1 and text.startswith(code):  # 1-212-555-0100
        digits = text
    else:
        digits = code + text
    # isascii: str.isdigit is also true for other scripts' digits, which no phone system dials.
    if not (digits.isascii() and digits.isdigit()):
        return None
    if digits.startswith("1"):
        return f"+{digits}" if _nanp_national_ok(digits[1:]) else None
    if not _E164_MIN_DIGITS <= len(digits) <= _E164_MAX_DIGITS or digits.startswith("0"):
        return None
    return f"+{digits}"


@dataclass(frozen=True)
class OptOuts:
    """The people who asked not to be messaged, as normalised phones and emails.

    Attributes:
        phones: E.164 phone numbers.
        emails: Lower-cased, trimmed email addresses.
        file_found: False when there was no opt-out file (so nobody has opted out).
        entries: How many entries the file held.
        skipped: One line per entry that held no usable phone or email, e.g. "entry 3: ...".
    """

    phones: frozenset = frozenset()
    emails: frozenset = frozenset()
    file_found: bool = False
    entries: int = 0
    skipped: tuple = field(default_factory=tuple)

    def match_contact(self, phone: Optional[str], email: Optional[str]) -> Optional[str]:
        """The kind of opt-out that normalised contact details match.

        Args:
            phone: An E.164 phone (from `normalize_phone`) or None.
            email: A normalised email (from `normalize_email_address`) or None.

        Returns:
            `MATCH_PHONE` when the phone opted out (checked first: texts go to phones), else
            `MATCH_EMAIL` when the email did, else None.
        """
        if phone is not None and phone in self.phones:
            return MATCH_PHONE
        if email is not None and email in self.emails:
            return MATCH_EMAIL
        return None

    def match(self, person: dict) -> Optional[str]:
        """The kind of opt-out a member (raw or enriched record) matches on their `phone` or `email`.

        Args:
            person: A record with `phone` and/or `email` fields, as typed.

        Returns:
            `MATCH_PHONE`, `MATCH_EMAIL` or None (see `match_contact`).
        """
        return self.match_contact(normalize_phone(person.get("phone")), normalize_email_address(person.get("email")))


def _opt_out_contacts(entry: Any) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """The (phone, email) of one opt-out entry, and why it is unusable (None when usable)."""
    if isinstance(entry, str):
        if "@" in entry:
            email = normalize_email_address(entry)
            return None, email, None if email else f"{entry!r} is not an email address"
        phone = normalize_phone(entry)
        return phone, None, None if phone else f"{entry!r} is not a phone number"
    if isinstance(entry, int) and not isinstance(entry, bool):
        phone = normalize_phone(entry)
        return phone, None, None if phone else f"{entry!r} is not a phone number"
    if isinstance(entry, dict):
        phone, email = normalize_phone(entry.get("phone")), normalize_email_address(entry.get("email"))
        if phone is None and email is None:
            shown = json.dumps(entry, ensure_ascii=False)[:80]
            return None, None, f"{shown} has no usable \"phone\" or \"email\""
        return phone, email, None
    return None, None, f"a {type(entry).__name__} is neither a phone, an email nor an object"


def read_opt_outs(entries: list) -> OptOuts:
    """Build the opt-out list from the parsed entries of an opt-out file.

    Args:
        entries: The file's JSON array: phone or email strings, or objects with `phone` and/or
            `email`. An entry with neither a usable phone nor email is skipped and listed.

    Returns:
        The opt-outs (with `file_found` True).
    """
    phones: set[str] = set()
    emails: set[str] = set()
    skipped: list[str] = []
    for position, entry in enumerate(entries, start=1):
        phone, email, problem = _opt_out_contacts(entry)
        if problem is not None:
            skipped.append(f"entry {position}: {problem}")
            continue
        if phone is not None:
            phones.add(phone)
        if email is not None:
            emails.add(email)
    return OptOuts(phones=frozenset(phones), emails=frozenset(emails), file_found=True,
                   entries=len(entries), skipped=tuple(skipped))


def load_opt_outs(path: Path) -> OptOuts:
    """Load the optional opt-out file (`data/raw/opt_outs.json`).

    Args:
        path: The file. It may be absent: that means nobody has opted out.

    Returns:
        The opt-outs; `file_found` says whether the file existed.

    Raises:
        PipelineError: The file exists but is unreadable, not valid JSON, or not a JSON array.
    """
    path = Path(path)
    if not path.exists():
        return OptOuts()
    try:
        entries = load_json_list(path, what="opt-outs")
    except PipelineError as exc:
        raise PipelineError(f"{exc}. Fix the opt-out file: a JSON array of phone or email strings "
                            f"or {{\"phone\": …, \"email\": …}} objects (docs/1-user-selection.md)") from None
    return read_opt_outs(entries)
