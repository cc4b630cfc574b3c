"""The one home of the SMS length limit and the booking-link format, and the helpers built on them."""

import os
from typing import Any

from utils.people import clean_text
from utils.sms import check_message, normalize_gsm

#: The seed's rule: a finished SMS, link included, has fewer than this many characters (`len(sms) < 180`).
SMS_CHARS_UNDER = 180
BOOKING_LINK = "https://cucu.li/bookings/{event_id}"
#: An optional line every SMS carries before the link, e.g. "Reply STOP to opt out" (docs/sms-compliance.md).
SMS_FOOTER_ENV = "SMS_FOOTER"


def text_of(value: Any) -> str:
    """Cleaned text, or "" for anything that is not usable text."""
    return clean_text(value) or ""


def first_name_of(user: dict) -> str:
    """The first name used to greet the member (inner spaces collapsed, as in the sent message)."""
    return " ".join(text_of(user.get("first_name")).split()) or (text_of(user.get("name")).split() or [""])[0]


def booking_link(event: dict) -> str:
    """The event's booking URL."""
    return BOOKING_LINK.format(event_id=event["id"])


def sms_footer() -> str:
    """The SMS_FOOTER setting, spaces collapsed; "" (no footer) by default."""
    return " ".join(os.environ.get(SMS_FOOTER_ENV, "").split())


def message_tail(link: str) -> str:
    """What follows the body of every SMS: the footer (when set) and the booking link."""
    footer = sms_footer()
    return f"{footer} {link}" if footer else link


def body_budget(link: str) -> int:
    """How many characters the text before the footer and link may use (one space before each)."""
    return SMS_CHARS_UNDER - 1 - len(message_tail(link)) - 1


def attach_link(text: str, link: str) -> str:
    """The message with the footer (when set) and the booking link once, at the end."""
    body = " ".join(text.replace(link, " ").split())
    footer = sms_footer()
    if footer and body.endswith(footer):  # e.g. a reviewer's improved text that kept the footer
        body = body[:-len(footer)].rstrip()
    return f"{body} {message_tail(link)}"


def finalize_message(text: str, link: str) -> str:
    """Attach the footer and link, and replace typographic characters with their GSM equivalents."""
    return normalize_gsm(attach_link(normalize_gsm(text), link))


def gate(message: str, user: dict, link: str) -> list[str]:
    """The deterministic compliance gate's failures for a finished SMS (empty when it passes)."""
    return check_message(message, first_name=first_name_of(user), link=link, max_chars=SMS_CHARS_UNDER - 1)
