"""The one home of the SMS length limit and the booking-link format, and the helpers built on them."""

import os
from typing import Any, Optional

from utils.people import clean_text
from utils.sms import check_message, normalize_gsm

#: The seed's rule: a finished SMS, link included, has fewer than this many characters (`len(sms) < 180`).
SMS_CHARS_UNDER = 180
BOOKING_LINK = "https://cucu.li/bookings/{event_id}"
#: What one GSM-7 SMS segment holds (`--max-segments 1`): the link and any footer included.
ONE_SEGMENT_CHARS = 160
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


def sms_chars_under(max_segments: Optional[int] = None) -> int:
    """The length budget of a finished SMS: it has fewer than this many characters, link and footer included.

    None or 2 keeps the seed's rule (under 180, i.e. at most 2 GSM-7 segments); `--max-segments 1`
    allows one GSM-7 segment: 160 characters.
    """
    return ONE_SEGMENT_CHARS + 1 if max_segments == 1 else SMS_CHARS_UNDER


def sms_footer() -> str:
    """The SMS_FOOTER setting, spaces collapsed; "" (no footer) by default."""
    return " ".join(os.environ.get(SMS_FOOTER_ENV, "").split())


def message_tail(link: str) -> str:
    """What follows the body of every SMS: the footer (when set) and the booking link."""
    footer = sms_footer()
    return f"{footer} {link}" if footer else link


def body_budget(link: str, chars_under: int = SMS_CHARS_UNDER) -> int:
    """How many characters the text before the footer and link may use (one space before each)."""
    return chars_under - 1 - len(message_tail(link)) - 1


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


def gate(message: str, user: dict, link: str, chars_under: int = SMS_CHARS_UNDER) -> list[str]:
    """The deterministic compliance gate's failures for a finished SMS (empty when it passes).

    Under a one-segment budget (`chars_under` <= 161) the message must also be one segment, so an
    emoji (UCS-2, 70 characters a segment) fails it.
    """
    max_segments = 1 if chars_under <= ONE_SEGMENT_CHARS + 1 else 3
    return check_message(message, first_name=first_name_of(user), link=link, max_chars=chars_under - 1,
                         max_segments=max_segments)
