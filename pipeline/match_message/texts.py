"""The one home of the SMS length limit and the booking-link format, and the helpers built on them."""

from typing import Any

from utils.people import clean_text
from utils.sms import check_message, normalize_gsm

#: The seed's rule: a finished SMS, link included, has fewer than this many characters (`len(sms) < 180`).
SMS_CHARS_UNDER = 180
BOOKING_LINK = "https://cucu.li/bookings/{event_id}"


def text_of(value: Any) -> str:
    """Cleaned text, or "" for anything that is not usable text."""
    return clean_text(value) or ""


def first_name_of(user: dict) -> str:
    """The first name used to greet the member (inner spaces collapsed, as in the sent message)."""
    return " ".join(text_of(user.get("first_name")).split()) or (text_of(user.get("name")).split() or [""])[0]


def booking_link(event: dict) -> str:
    """The event's booking URL."""
    return BOOKING_LINK.format(event_id=event["id"])


def body_budget(link: str) -> int:
    """How many characters the text before the link may use (one space separates them)."""
    return SMS_CHARS_UNDER - 1 - len(link) - 1


def attach_link(text: str, link: str) -> str:
    """The message with the booking link once, at the end."""
    body = text.replace(link, " ").strip()
    return f"{' '.join(body.split())} {link}"


def finalize_message(text: str, link: str) -> str:
    """Attach the link and replace typographic characters with their GSM equivalents."""
    return normalize_gsm(attach_link(normalize_gsm(text), link))


def gate(message: str, user: dict, link: str) -> list[str]:
    """The deterministic compliance gate's failures for a finished SMS (empty when it passes)."""
    return check_message(message, first_name=first_name_of(user), link=link, max_chars=SMS_CHARS_UNDER - 1)
