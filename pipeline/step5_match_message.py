"""Step 5: match each member to one event, write the invitation, check it, save it and upload it.

Reads data/processed/enriched_users.json, data/processed/enriched_events.json and data/raw/users.json;
writes data/processed/processed_messages.json and upserts one Airtable row per member.

Re-running is safe and cheap: members whose record is already complete for the same prompts, model,
profile and event catalog are skipped; everything else is (re)generated. Edit the prompts below and
re-run to regenerate everyone.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Prompts first, so that editing them needs no scrolling. Placeholders are in {braces}; literal
# braces in the JSON examples are doubled ({{ }}) because the prompts are filled with str.format.

MATCHING_PROMPT = """You match members of a social-dining community in New York to ONE upcoming event \
each, for an SMS invitation campaign. Today is {today}.

# Campaign types (choose exactly one per match)
1. "Seat The Newcomer"
   - When: the member has attended 2 events or fewer (event_count <= 2).
   - Objective: convert a newcomer into a first (or second) attendance.
   - Event strategy: prefer events 50-80% full (proof of quality without feeling exclusive),
     beginner-friendly events with welcoming descriptions, in or near the member's neighborhood.
   - Tone: warm, welcoming, encouraging, excited about their first event.
2. "Fill the Table"
   - When: the chosen event has low occupancy (marked "low occupancy" in the catalog).
   - Objective: drive RSVPs to fill an under-booked event.
   - Event strategy: low-participation events, events starting soon (urgency); interest alignment
     is still critical.
   - Tone: urgent, scarcity-driven, spots left and time pressure, social proof.
3. "Return to Table"
   - When: the member's last event was 31 or more days ago, or they have not attended in 60 days.
   - Objective: re-engage a dormant member and drive an RSVP.
   - Event strategy: prefer events 50-100% full, similar to what they attended before, in or near
     their neighborhood, happening soon.
   - Tone: warm, nostalgic, friend-like; acknowledges the time away without being pushy.

# Matching criteria, in order of importance
1. Interest alignment (critical): the member's interests must fit the event's categories/features.
2. Dietary compatibility: the event's food must not conflict with the member's dietary restrictions.
3. Location proximity: prefer events in or near the member's home or work neighborhood.
4. Event quality: for "Return to Table" and "Seat The Newcomer", prefer good participation (50-80% full).
5. Event urgency: for "Fill the Table", prioritise events with low occupancy.
6. Event timing: prefer events happening soon.

# Event catalog
Events are numbered from 0. Use the number in brackets as event_index.

{event_catalog}

# Answer
Reply with JSON only, exactly this shape:
{{"event_index": <integer index from the catalog>, "campaign": "Seat The Newcomer" | "Fill the Table" | \
"Return to Table", "reasoning": "<one or two sentences: why this event and campaign>", \
"confidence": <number 0-100>}}"""

MATCHING_USER_PROMPT = """Member profile:
{user_summary}

Choose the single best event from the catalog for this member and answer with the JSON described."""

MESSAGE_GENERATION_PROMPT = """Write one SMS invitation from our social-dining community to a member. \
Today is {today}.

Member profile:
{user_summary}

Event:
{event_summary}

Campaign: {campaign}
Campaign tone: {campaign_tone}
Why we matched them: {match_reasoning}

Make it funny, witty and interesting, and personal to this member.
Structure: [Greeting + first name] [Hook tied to their interests or history] [Event details + urgency \
+ social proof] [Call to action].

SMS rules:
- Address the member by first name: {first_name}.
- At most {max_body_chars} characters: the booking link (added after your text, with a space) brings \
the whole SMS to under 180 characters.
- Do not write any link or URL yourself; the booking link is appended automatically.
- Plain characters only: straight quotes and apostrophes, no typographic dashes.
- At most one emoji.
- Twilio compliance: no ALL-CAPS words, no "!!!", no "$$$", no "act now", "winner", "100% free", \
"click here"; never promote alcohol, tobacco, cannabis, drugs, firearms, sex or hate (a menu may \
mention wine, but the pitch is the dinner and the people).
- Only facts from the event description: never invent prices, names or details.

Reply with JSON only, exactly this shape:
{{"message": "<the SMS text without the link>", "reasoning": "<why this message will work>", \
"confidence": <number 0-100>}}"""

QUALITY_CHECK_PROMPT = """You review an SMS invitation before it is sent to a member of our \
social-dining community.

Message (including the booking link):
{message}

Member first name: {first_name}
Member profile:
{user_summary}

Event:
{event_summary}

Campaign: {campaign}

Check each criterion:
1. Length: fewer than 180 characters including the link.
2. Tone: fits the campaign ("Seat The Newcomer": warm and welcoming; "Fill the Table": urgent, \
scarcity, social proof; "Return to Table": warm, nostalgic, not pushy) and SMS best practice.
3. Accuracy: every detail (event name, day, time, place, spots) matches the event.
4. Personalization: uses the first name and something true about the member.
5. Clarity: one idea, easy to read on a phone.
6. Call to action: clear, ends with the booking link.
7. Twilio compliance: no spam triggers (ALL-CAPS words, "!!!", "$$$", "act now", "winner", \
"100% free", "click here"), at most one emoji, no promotion of alcohol, tobacco, cannabis, drugs, \
firearms, sex or hate, and no link other than the booking link.
8. Engagement: would this member want to reply or tap the link?

If the message is not good enough, write an improved version that fixes every issue and still ends \
with the booking link {link}.

Reply with JSON only, exactly this shape:
{{"quality_score": <number 0-100>, "approved": true | false, "issues": ["<issue>", ...], \
"improved_message": "<the improved SMS including the link>" | null}}"""

COMPLIANCE_REWRITE_PROMPT = """This SMS invitation failed our automatic compliance checks:

{message}

Failures:
{failures}

Rewrite it so that it passes every check. Keep the facts, the first name ({first_name}) and the \
tone of the "{campaign}" campaign. Do not write any link: the booking link is appended after your \
text. At most {max_body_chars} characters.

Reply with JSON only, exactly this shape:
{{"message": "<the SMS text without the link>", "reasoning": "<what you changed>", \
"confidence": <number 0-100>}}"""

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ThreadPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, tzinfo  # noqa: E402
from typing import Any, Callable, Optional  # noqa: E402

from utils import ai_prompt, airtable_crud  # noqa: E402
from utils.cli import build_arg_parser, start_step, step_main  # noqa: E402
from utils.errors import PipelineError  # noqa: E402
from utils.jsonio import load_json_list, split_objects  # noqa: E402
from utils.log import log_stats_table  # noqa: E402
from utils.message_store import MessageStore  # noqa: E402
from utils.offline_engine import OFFLINE_ENGINE_VERSION, offline_match, offline_message  # noqa: E402
from utils.paths import (  # noqa: E402
    ENRICHED_EVENTS_FILE, ENRICHED_USERS_FILE, PROCESSED_MESSAGES_FILE, USERS_FILE,
    processed_path, raw_path,
)
from utils.people import clean_text, format_day, load_all_users, normalize_email, weekday_name  # noqa: E402
from utils.progress import ProgressLine  # noqa: E402
from utils.rules import CAMPAIGN_FILL_TABLE, CAMPAIGN_NEWCOMER, CAMPAIGN_RETURN  # noqa: E402
from utils.throttle import AdaptiveLimiter  # noqa: E402
from utils.sms import check_message, normalize_gsm, rule_of, sms_encoding, sms_segments  # noqa: E402

STEP_NAME = "match_message"
BOOKING_LINK = "https://cucu.li/bookings/{event_id}"
CAMPAIGNS = (CAMPAIGN_NEWCOMER, CAMPAIGN_FILL_TABLE, CAMPAIGN_RETURN)
CAMPAIGN_TONES = {
    CAMPAIGN_NEWCOMER: "warm, welcoming, encouraging, excited about their first event",
    CAMPAIGN_FILL_TABLE: "urgent, scarcity-driven, spots left and time pressure, social proof",
    CAMPAIGN_RETURN: "warm, nostalgic, friend-like, acknowledges time away without being pushy",
}
MAX_SMS_CHARS = 180
MATCH_TEMPERATURE = 0.7
WRITE_TEMPERATURE = 0.9
CHECK_TEMPERATURE = 0.7
ANSWER_MAX_TOKENS = 1024
DEFAULT_WORKERS = 8
# USD per SMS segment sent in the US (Twilio's list price for long codes, before carrier fees).
SMS_PRICE_PER_SEGMENT_USD = 0.0083

MATCH_SCHEMA = {
    "type": "object",
    "properties": {
        "event_index": {"type": "integer"},
        "campaign": {"type": "string", "enum": list(CAMPAIGNS)},
        "reasoning": {"type": "string"},
        "confidence": {"type": "number"},
    },
    "required": ["event_index", "campaign", "reasoning", "confidence"],
    "additionalProperties": False,
}
MESSAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "reasoning": {"type": "string"},
        "confidence": {"type": "number"},
    },
    "required": ["message", "reasoning", "confidence"],
    "additionalProperties": False,
}
QUALITY_SCHEMA = {
    "type": "object",
    "properties": {
        "quality_score": {"type": "number"},
        "approved": {"type": "boolean"},
        "issues": {"type": "array", "items": {"type": "string"}},
        "improved_message": {"type": ["string", "null"]},
    },
    "required": ["quality_score", "approved", "issues", "improved_message"],
    "additionalProperties": False,
}


class AnswerError(Exception):
    """The model's answer stayed invalid after one corrective retry; the member is marked failed."""


# --- Loading and lookups -------------------------------------------------------------------------

def load_enriched_users(path: Path) -> list:
    """Load step 3's output."""
    return load_json_list(path, what="enriched users")


def load_enriched_events(path: Path) -> list:
    """Load step 4's output."""
    return load_json_list(path, what="enriched events")


def load_raw_users(path: Path) -> list:
    """Load the raw users export (for phone numbers)."""
    return load_all_users(path)


def create_phone_lookup(raw_users: list) -> dict[str, str]:
    """Map each normalised email to the first non-blank phone number found for it."""
    lookup: dict[str, str] = {}
    for user in raw_users:
        if not isinstance(user, dict):
            continue
        email = normalize_email(user.get("email"))
        phone = user.get("phone")
        if email and isinstance(phone, str) and phone.strip() and email not in lookup:
            lookup[email] = phone.strip()
    return lookup


def with_id_and_summary(records: list[dict]) -> tuple[list[dict], int]:
    """Members or events with an id and a summary (what matching needs); also how many were skipped."""
    kept = [record for record in records if _text(record.get("id")) and _text(record.get("summary"))]
    return kept, len(records) - len(kept)


def select_users(users: list[dict], user_ids: Optional[list[str]], limit: Optional[int]) -> list[dict]:
    """Apply --user-id (keep only those, in input order) and then --limit (the first N)."""
    if user_ids:
        wanted = set(user_ids)
        users = [user for user in users if user["id"] in wanted]
    if limit is not None:
        users = users[:limit]
    return users


def _text(value: Any) -> str:
    return clean_text(value) or ""


def first_name_of(user: dict) -> str:
    """The first name used to greet the member (inner spaces collapsed, as in the sent message)."""
    return " ".join(_text(user.get("first_name")).split()) or (_text(user.get("name")).split() or [""])[0]


def booking_link(event: dict) -> str:
    """The event's booking URL."""
    return BOOKING_LINK.format(event_id=event["id"])


# --- Prompt building -------------------------------------------------------------------------------

def build_event_catalog(events: list[dict]) -> str:
    """The numbered event summaries that every matching call shares (and Anthropic caches)."""
    lines = []
    for index, event in enumerate(events):
        flag = " (low occupancy)" if event.get("has_low_occupancy") is True else ""
        lines.append(f"[{index}]{flag} {event['summary']}")
    return "\n".join(lines)


def today_text(now: datetime, zone: tzinfo) -> str:
    """Today's date as the prompts show it, e.g. "Wednesday, November 25, 2026"."""
    return f"{weekday_name(now, zone)}, {format_day(now, zone)}"


def matching_system_blocks(catalog: str, today: str) -> list[dict]:
    """The matching instructions and catalog as one cached system block."""
    return [{
        "type": "text",
        "text": MATCHING_PROMPT.format(event_catalog=catalog, today=today),
        "cache_control": {"type": "ephemeral"},
    }]


def body_budget(link: str) -> int:
    """How many characters the text before the link may use (one space separates them)."""
    return MAX_SMS_CHARS - 1 - len(link) - 1


def attach_link(text: str, link: str) -> str:
    """The message with the booking link once, at the end."""
    body = text.replace(link, " ").strip()
    return f"{' '.join(body.split())} {link}"


# --- Validating model answers ----------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_match(answer: Any, event_count: int) -> list[str]:
    """What is wrong with a matching answer (empty when it is valid)."""
    if not isinstance(answer, dict):
        return ["the answer must be a JSON object"]
    problems = []
    index = answer.get("event_index")
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < event_count):
        problems.append(f"event_index must be an integer from 0 to {event_count - 1}, got {index!r}")
    if answer.get("campaign") not in CAMPAIGNS:
        problems.append(f"campaign must be one of {', '.join(CAMPAIGNS)}, got {answer.get('campaign')!r}")
    problems += _validate_confidence(answer)
    if not _text(answer.get("reasoning")):
        problems.append("reasoning must be a non-empty string")
    return problems


def validate_generation(answer: Any) -> list[str]:
    """What is wrong with a message-generation answer (empty when it is valid)."""
    if not isinstance(answer, dict):
        return ["the answer must be a JSON object"]
    problems = []
    if not _text(answer.get("message")):
        problems.append("message must be a non-empty string")
    if not _text(answer.get("reasoning")):
        problems.append("reasoning must be a non-empty string")
    return problems + _validate_confidence(answer)


def validate_quality(answer: Any) -> list[str]:
    """What is wrong with a quality-check answer (empty when it is valid)."""
    if not isinstance(answer, dict):
        return ["the answer must be a JSON object"]
    problems = []
    if not (_is_number(answer.get("quality_score")) and 0 <= answer["quality_score"] <= 100):
        problems.append(f"quality_score must be a number from 0 to 100, got {answer.get('quality_score')!r}")
    if not isinstance(answer.get("approved"), bool):
        problems.append(f"approved must be true or false, got {answer.get('approved')!r}")
    if not isinstance(answer.get("issues", []), list):
        problems.append("issues must be a list of strings")
    improved = answer.get("improved_message")
    if improved is not None and not isinstance(improved, str):
        problems.append("improved_message must be a string or null")
    return problems


def _validate_confidence(answer: dict) -> list[str]:
    confidence = answer.get("confidence")
    if _is_number(confidence) and 0 <= confidence <= 100:
        return []
    return [f"confidence must be a number from 0 to 100, got {confidence!r}"]


# --- Asking Claude ---------------------------------------------------------------------------------

Ask = Callable[..., dict]


def is_rate_limited(exc: "ai_prompt.ClaudeError") -> bool:
    """True for a 429 (rate limit) or 529 (overloaded) that outlasted the SDK's retries."""
    return exc.status_code in (429, 529) or exc.error_type in ("rate_limit_error", "overloaded_error")


def is_transient(exc: "ai_prompt.ClaudeError") -> bool:
    """True for failures worth another round: rate limits, 5xx, a garbled answer or a lost connection."""
    return is_rate_limited(exc) or exc.status_code is None or exc.status_code >= 500


class ClaudeAsker:
    """Ask Claude for one JSON answer: structured output, validation, one corrective retry.

    Rate-limit and overload errors that outlast the SDK's own retries slow the whole worker pool
    down (fewer calls in flight); they, server errors and garbled answers are tried again a bounded
    number of times. The first call with a cached system block goes alone, so that the calls after
    it read the cache instead of each writing it.
    """

    RATE_LIMIT_ROUNDS = 3

    def __init__(self, model: str, usage: "ai_prompt.UsageTotals", limiter: "AdaptiveLimiter",
                 logger=None, pause_seconds: float = 2.0):
        self.model = model
        self.usage = usage
        self.limiter = limiter
        self.logger = logger
        self.pause_seconds = pause_seconds
        self.failed_calls = 0
        self._count_lock = threading.Lock()
        self._cache_warm = threading.Event()
        self._warm_lock = threading.Lock()

    def __call__(self, purpose: str, prompt: str, *, temperature: float, schema: dict,
                 validate: Callable[[Any], list[str]], system: Any = None) -> dict:
        if system is not None and not self._cache_warm.is_set():
            with self._warm_lock:
                if not self._cache_warm.is_set():
                    try:
                        return self._ask(purpose, prompt, temperature, schema, validate, system)
                    finally:
                        self._cache_warm.set()
        return self._ask(purpose, prompt, temperature, schema, validate, system)

    def _ask(self, purpose: str, prompt: str, temperature: float, schema: dict,
             validate: Callable[[Any], list[str]], system: Any) -> dict:
        correction = ""
        for _attempt in range(2):
            text = self._call(purpose, prompt + correction, temperature, schema, system)
            try:
                answer = ai_prompt.parse_json_response(text)
            except json.JSONDecodeError:
                problems = ["the answer was not valid JSON"]
            else:
                problems = validate(answer)
            if not problems:
                return answer
            correction = ("\n\nYour previous answer was invalid: " + "; ".join(problems)
                          + ". Answer again with JSON only, exactly in the shape described.")
        raise AnswerError(f"{purpose}: the answer was still invalid after one retry: {'; '.join(problems)}")

    def _call(self, purpose: str, prompt: str, temperature: float, schema: dict, system: Any) -> str:
        for round_number in range(1, self.RATE_LIMIT_ROUNDS + 1):
            with self.limiter:
                try:
                    result = ai_prompt.call_claude_with_usage(
                        prompt, model=self.model, temperature=temperature, max_tokens=ANSWER_MAX_TOKENS,
                        logger=self.logger, system=system, json_schema=schema, purpose=purpose, step=STEP_NAME,
                    )
                except ai_prompt.ClaudeError as exc:
                    with self._count_lock:
                        self.failed_calls += 1
                    if not is_transient(exc) or round_number == self.RATE_LIMIT_ROUNDS:
                        raise
                    if is_rate_limited(exc):
                        self.limiter.slow_down()
                    if self.logger:
                        self.logger.warning("%s call failed after the SDK's retries (%s); trying again, "
                                            "in-flight limit %d", purpose, exc, self.limiter.limit)
                else:
                    self.usage.add(result.usage)
                    return result.text
            time.sleep(self.pause_seconds * round_number)
        raise AssertionError("unreachable")


# --- The three model steps (spec names) ------------------------------------------------------------

def match_user_to_event(user: dict, events: list[dict], ask: Ask, catalog_system: Any) -> dict:
    """Ask which event (0-based index into `events`) and campaign suit the member."""
    return ask(
        "match", MATCHING_USER_PROMPT.format(user_summary=user["summary"]),
        system=catalog_system, temperature=MATCH_TEMPERATURE, schema=MATCH_SCHEMA,
        validate=lambda answer: validate_match(answer, len(events)),
    )


def generate_message(user: dict, event: dict, match: dict, ask: Ask, today: str) -> dict:
    """Ask for the SMS text (without the link), its reasoning and a confidence."""
    campaign = match["campaign"]
    prompt = MESSAGE_GENERATION_PROMPT.format(
        user_summary=user["summary"], event_summary=event["summary"], campaign=campaign,
        campaign_tone=CAMPAIGN_TONES[campaign], match_reasoning=match["reasoning"],
        first_name=first_name_of(user), max_body_chars=body_budget(booking_link(event)), today=today,
    )
    return ask("write", prompt, temperature=WRITE_TEMPERATURE, schema=MESSAGE_SCHEMA, validate=validate_generation)


def quality_check_message(message: str, user: dict, event: dict, campaign: str, ask: Ask) -> dict:
    """Ask for a quality verdict on the full SMS, and an improved version when it falls short."""
    prompt = QUALITY_CHECK_PROMPT.format(
        message=message, first_name=first_name_of(user), user_summary=user["summary"],
        event_summary=event["summary"], campaign=campaign, link=booking_link(event),
    )
    return ask("check", prompt, temperature=CHECK_TEMPERATURE, schema=QUALITY_SCHEMA, validate=validate_quality)


def rewrite_for_compliance(message: str, failures: list[str], user: dict, event: dict, campaign: str,
                           ask: Ask) -> dict:
    """Ask for one rewrite that fixes the quoted compliance failures."""
    prompt = COMPLIANCE_REWRITE_PROMPT.format(
        message=message, failures="\n".join(f"- {failure}" for failure in failures),
        first_name=first_name_of(user), campaign=campaign, max_body_chars=body_budget(booking_link(event)),
    )
    return ask("rewrite", prompt, temperature=WRITE_TEMPERATURE, schema=MESSAGE_SCHEMA, validate=validate_generation)


# --- One member, start to finish -------------------------------------------------------------------

@dataclass
class RunContext:
    """What every member's processing shares during one run."""

    events: list[dict]
    catalog_system: Any
    phone_lookup: dict[str, str]
    fingerprint_base: str
    generator: str  # "claude" or "offline"
    model: str
    now: datetime
    zone: tzinfo
    today: str
    ask: Optional[Ask] = None


def finalize_message(text: str, link: str) -> str:
    """Attach the link and replace typographic characters with their GSM equivalents."""
    return normalize_gsm(attach_link(normalize_gsm(text), link))


def process_user(user: dict, ctx: RunContext) -> dict:
    """Match, write, check and gate one member; return the message record (never raises AnswerError)."""
    base = base_record(user, ctx)
    try:
        if ctx.generator == "offline":
            fields = offline_fields(user, ctx)
        else:
            fields = claude_fields(user, ctx)
    except (AnswerError, ai_prompt.ClaudeError) as exc:
        return {**base, "status": "failed", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug or an odd record must cost one member, not the run
        logging.getLogger(f"pipeline.{STEP_NAME}").debug("member %s: unexpected error", user["id"], exc_info=True)
        return {**base, "status": "failed", "error": f"unexpected {type(exc).__name__}: {exc}"}
    return {**base, **fields}


def claude_fields(user: dict, ctx: RunContext) -> dict:
    """The record fields produced by Claude: match, message, quality check, compliance gate."""
    match = match_user_to_event(user, ctx.events, ctx.ask, ctx.catalog_system)
    event = ctx.events[match["event_index"]]
    link = booking_link(event)
    generation = generate_message(user, event, match, ctx.ask, ctx.today)
    message = finalize_message(generation["message"], link)
    quality = quality_check_message(message, user, event, match["campaign"], ctx.ask)
    if not quality["approved"] and _text(quality.get("improved_message")):
        message = finalize_message(quality["improved_message"], link)
    failures = check_message(message, first_name=first_name_of(user), link=link)
    rewritten, rewrite_error = False, None
    if failures:
        rewritten = True
        try:
            rewrite = rewrite_for_compliance(message, failures, user, event, match["campaign"], ctx.ask)
        except (AnswerError, ai_prompt.ClaudeError) as exc:
            # The checked message is still worth a human look: it ends as needs_review, not failed.
            rewrite_error = str(exc)
        else:
            message = finalize_message(rewrite["message"], link)
            failures = check_message(message, first_name=first_name_of(user), link=link)
    return {
        **event_fields(event),
        "message": message,
        "match_reasoning": match["reasoning"],
        "message_reasoning": generation["reasoning"],
        "confidence_percentage": round(match["confidence"]),
        "campaign": match["campaign"],
        "quality_check_response": quality,
        "compliance_rewrite": rewritten,
        **({"rewrite_error": rewrite_error} if rewrite_error else {}),
        **gate_fields(message, failures),
    }


def offline_fields(user: dict, ctx: RunContext) -> dict:
    """The record fields produced by the rule-based offline engine (no network)."""
    match = offline_match(user, ctx.events, ctx.now)
    event = ctx.events[match["event_index"]]
    link = booking_link(event)
    text = offline_message(user, event, match["campaign"], ctx.now, ctx.zone, first_name_of(user), link)
    message = finalize_message(text, link)
    failures = check_message(message, first_name=first_name_of(user), link=link)
    return {
        **event_fields(event),
        "message": message,
        "match_reasoning": match["reasoning"],
        "message_reasoning": "Offline template for the campaign, filled with the member's name and the event's facts.",
        "confidence_percentage": round(match["confidence"]),
        "campaign": match["campaign"],
        "quality_check_response": None,
        "compliance_rewrite": False,
        **gate_fields(message, failures),
    }


def base_record(user: dict, ctx: RunContext) -> dict:
    """The member's part of the record, plus the run metadata."""
    email = _text(user.get("email"))
    return {
        "user_id": user["id"],
        "user_name": _text(user.get("name")),
        "user_email": email,
        "user_phone": ctx.phone_lookup.get(normalize_email(email) or "", ""),
        "user_summary": user["summary"],
        "generator": ctx.generator,
        "model": ctx.model,
        "fingerprint": user_fingerprint(ctx.fingerprint_base, user),
        "airtable_id": None,
        "uploaded": False,
    }


def event_fields(event: dict) -> dict:
    """The event's part of the record."""
    return {"event_id": event["id"], "event_name": _text(event.get("name")), "event_summary": event["summary"]}


def gate_fields(message: str, failures: list[str]) -> dict:
    """Status and SMS facts from the deterministic compliance gate."""
    return {
        "status": "needs_review" if failures else "approved",
        "compliance_issues": failures,
        "sms_encoding": sms_encoding(message),
        "sms_segments": sms_segments(message),
    }


# --- Fingerprints: what makes a record up to date ---------------------------------------------------

def run_fingerprint_base(generator: str, model: str, catalog: str, zone_name: str, today: str) -> str:
    """Hash of everything shared by all members: the prompts (or offline engine), the model, the catalog, the date.

    The date is in because "soon", "this Friday" and "tonight" change with it.
    """
    if generator == "offline":
        parts = ["offline", OFFLINE_ENGINE_VERSION, zone_name, today, catalog]
    else:
        parts = ["claude", model, MATCHING_PROMPT, MATCHING_USER_PROMPT, MESSAGE_GENERATION_PROMPT,
                 QUALITY_CHECK_PROMPT, COMPLIANCE_REWRITE_PROMPT, today, catalog]
    return _sha256(parts)


def user_fingerprint(base: str, user: dict) -> str:
    """The record's fingerprint: the run's base hash plus the member's summary."""
    return _sha256([base, user["summary"]])


def _sha256(parts: list[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


COMPLETE_STATUSES = ("approved", "needs_review")


def is_complete(record: Optional[dict], fingerprint: str) -> bool:
    """True when the saved record needs no new generation: same fingerprint and not failed."""
    return bool(record) and record.get("fingerprint") == fingerprint and record.get("status") in COMPLETE_STATUSES


def plan_run(users: list[dict], saved: dict[str, dict], base: str, *, fresh: bool, upload: bool,
             generator: str = "claude") -> tuple[list[dict], list[dict], list[dict]]:
    """Split members into (to generate, to upload only, up to date).

    An offline run never replaces a finished Claude record (they cost money); only --fresh does.
    """
    generate, upload_only, up_to_date = [], [], []
    for user in users:
        record = saved.get(user["id"])
        keep_claude = (generator == "offline" and record is not None and record.get("generator") == "claude"
                       and record.get("status") in COMPLETE_STATUSES)
        if not fresh and keep_claude:
            up_to_date.append(record)
        elif fresh or not is_complete(record, user_fingerprint(base, user)):
            generate.append(user)
        elif upload and not record.get("uploaded"):
            upload_only.append(record)
        else:
            up_to_date.append(record)
    return generate, upload_only, up_to_date


# --- Upload ------------------------------------------------------------------------------------------

class Uploader:
    """A background thread that upserts finished records to Airtable in batches of up to 10.

    Upserts are keyed on the user id, so a record sent twice (a retry, a re-run, a kill between
    upload and save) updates the member's one row instead of adding another.
    """

    BATCH_SIZE = 10

    def __init__(self, store: MessageStore, logger, max_wait_seconds: float = 1.0):
        self.store = store
        self.logger = logger
        self.max_wait_seconds = max_wait_seconds
        self.uploaded = 0
        self.failed = 0
        self._pending: list[dict] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="airtable-uploader", daemon=True)
        self._thread.start()

    def submit(self, record: dict) -> None:
        """Queue one record for upload."""
        with self._cond:
            self._pending.append(record)
            self._cond.notify_all()

    def close(self) -> None:
        """Upload what is queued and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    def _next_batch(self) -> list[dict]:
        with self._cond:
            deadline = time.monotonic() + self.max_wait_seconds
            while len(self._pending) < self.BATCH_SIZE and not self._closing:
                remaining = deadline - time.monotonic()
                if self._pending and remaining <= 0:
                    break
                self._cond.wait(timeout=remaining if self._pending else None)
            batch, self._pending = self._pending[:self.BATCH_SIZE], self._pending[self.BATCH_SIZE:]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            self._upload(batch)

    def _upload(self, batch: list[dict]) -> None:
        try:
            airtable_ids = airtable_crud.upsert_message_records(batch, logger=self.logger)
        except airtable_crud.AirtableError as exc:
            if exc.status_code == 422 and len(batch) > 1:
                # Airtable refuses the whole batch for one bad record: find it, upload the others.
                for record in batch:
                    self._upload([record])
                return
            self._mark_failed(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the records stay "not uploaded"; a re-run retries them
            self._mark_failed(batch, exc)
            return
        self.uploaded += len(batch)
        for record, airtable_id in zip(batch, airtable_ids):
            updated = {**record, "airtable_id": airtable_id, "uploaded": True}
            updated.pop("upload_error", None)
            self.store.put(updated)

    def _mark_failed(self, batch: list[dict], exc: Exception) -> None:
        self.failed += len(batch)
        self.logger.error("upload of %d records failed: %s", len(batch), exc)
        for record in batch:
            self.store.put({**record, "uploaded": False, "upload_error": str(exc)})


# --- The run -----------------------------------------------------------------------------------------

def run_users(users: list[dict], ctx: RunContext, store: MessageStore, workers: int,
              on_done: Callable[[dict], None]) -> list[dict]:
    """Process members on a bounded pool; each worker saves its record the moment it is done.

    Returns:
        The new records, in the members' order.
    """
    def work(user: dict) -> dict:
        outcome = process_user(user, ctx)
        prior = store.get(user["id"])
        if outcome["status"] == "failed" and prior and prior.get("status") in COMPLETE_STATUSES:
            # Keep the last good message (and its Airtable row) rather than a record without one; its
            # stale fingerprint makes the next run try again.
            store.put({**prior, "regeneration_error": outcome["error"]})
        else:
            store.put(outcome)
        on_done(outcome)
        return outcome

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="step5")
    try:
        futures = [pool.submit(work, user) for user in users]
        results = {record["user_id"]: record for record in (future.result() for future in as_completed(futures))}
    except BaseException:
        # Ctrl-C: members not started are dropped, those in flight finish and are saved.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [results[user["id"]] for user in users]


def report_rows(counts: dict, records: list[dict], usage, model: str, wall_seconds: float,
                uploader: Optional[Uploader]) -> list[tuple[str, Any]]:
    """The end-of-run statistics table."""
    made = [record for record in records if record.get("status") != "failed"]
    approved = sum(1 for record in made if record["status"] == "approved")
    rows: list[tuple[str, Any]] = [
        ("members in enriched_users.json", counts["loaded"]),
        ("skipped: not an object, no id or no summary", counts["unusable"]),
        ("selected (--user-id, --limit)", counts["selected"]),
        ("skipped: up to date", counts["up_to_date"]),
        ("uploaded only (generated before)", counts["upload_only"]),
        ("processed", len(records)),
        ("failed", len(records) - len(made)),
    ]
    campaigns = Counter(record["campaign"] for record in made)
    rows += [(f"  campaign: {name}", campaigns[name]) for name in CAMPAIGNS]
    rows += [
        ("approved", approved),
        ("needs review", len(made) - approved),
        ("approval rate", f"{approved / len(made):.0%}" if made else "n/a"),
    ]
    reviewed = [record["quality_check_response"] for record in made if record.get("quality_check_response")]
    if reviewed:
        rows.append(("quality check approved (Claude)", sum(1 for review in reviewed if review.get("approved"))))
    if uploader is not None:
        rows += [("uploaded to Airtable", uploader.uploaded), ("upload failures", uploader.failed)]
    if usage is not None:
        cost = usage.cost_usd(model)
        rows += [
            ("Claude calls", usage.calls),
            ("Claude calls failed (after SDK retries)", counts.get("failed_calls", 0)),
            ("input tokens", usage.input_tokens),
            ("output tokens", usage.output_tokens),
            ("cache read tokens", usage.cache_read_input_tokens),
            ("cache write tokens", usage.cache_creation_input_tokens),
            ("estimated Claude cost (USD)", f"{cost:.4f}" if cost is not None else f"n/a (no price for {model})"),
        ]
    segments = Counter(record["sms_segments"] for record in made)
    rows += [(f"  SMS of {count} segment{'s' if count > 1 else ''}", segments[count]) for count in sorted(segments)]
    total_segments = sum(count * number for count, number in segments.items())
    rows.append(("estimated SMS cost (USD)", f"{total_segments * SMS_PRICE_PER_SEGMENT_USD:.2f}"))
    # Messages per failed rule (a message with two spam findings counts once under "spam").
    by_rule = Counter(rule for record in made for rule in {rule_of(failure) for failure in record["compliance_issues"]})
    rows += [(f"  compliance failures: {rule}", number) for rule, number in sorted(by_rule.items())]
    rows.append(("wall time (s)", f"{wall_seconds:.1f}"))
    return rows


def sample_messages(records: list[dict], count: int = 3) -> list[str]:
    """A few finished messages to show on the console."""
    made = [record for record in records if record.get("status") != "failed"]
    return [f"{record['user_name']} -> {record['event_name']} [{record['campaign']}]: {record['message']}"
            for record in made[:count]]


def build_parser() -> argparse.ArgumentParser:
    """The step's command line: the common flags plus step 5's own."""
    parser = build_arg_parser(__doc__)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                        help=f"members processed in parallel (default {DEFAULT_WORKERS})")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="process at most the first N selected members")
    parser.add_argument("--user-id", action="append", default=None, metavar="ID",
                        help="process only this member (repeatable)")
    parser.add_argument("--no-upload", action="store_true",
                        help="do not upload to Airtable (records stay marked not uploaded)")
    parser.add_argument("--fresh", action="store_true",
                        help="regenerate every selected member, even those up to date")
    ai_prompt.add_model_argument(parser)
    parser.add_argument("--offline", action="store_true",
                        help="rule-based matching and template messages: no network, no keys, no upload")
    return parser


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 5 from the command line."""
    args = build_parser().parse_args(argv)
    if args.workers < 1 or (args.limit is not None and args.limit < 0):
        raise PipelineError("--workers must be at least 1 and --limit at least 0")
    run = start_step(STEP_NAME, args)
    started = time.monotonic()
    upload = not (args.no_upload or args.offline)
    generator = "offline" if args.offline else "claude"
    model = OFFLINE_ENGINE_VERSION if args.offline else ai_prompt.resolve_model(args.model)
    # Fail fast, before any Claude call, on anything that would stop the run half-way.
    if not args.offline:
        ai_prompt.get_client()  # raises on a missing key or bad settings, before any work
        ai_prompt.configure_call_log(run.log_dir, run.stamp)
    if upload:
        try:
            airtable_crud.check_airtable_config()
        except airtable_crud.AirtableConfigError as exc:
            raise PipelineError(f"{exc}; or run with --no-upload to skip Airtable") from None

    all_users, bad_users = split_objects(load_enriched_users(processed_path(run.data_dir, ENRICHED_USERS_FILE)))
    users, unusable_users = with_id_and_summary(all_users)
    events, bad_events = split_objects(load_enriched_events(processed_path(run.data_dir, ENRICHED_EVENTS_FILE)))
    events, unusable_events = with_id_and_summary(events)
    if bad_events or unusable_events:
        run.logger.warning("skipped %d events without an id or summary", bad_events + unusable_events)
    if not events:
        raise PipelineError("no usable events in enriched_events.json: run steps 2 and 4 first")
    phone_lookup = create_phone_lookup(load_raw_users(raw_path(run.data_dir, USERS_FILE)))
    selected = select_users(users, args.user_id, args.limit)
    missing_ids = sorted(set(args.user_id or ()) - {user["id"] for user in users})
    if missing_ids:
        run.logger.warning("--user-id not found in enriched users: %s", ", ".join(missing_ids))

    catalog = build_event_catalog(events)
    today = today_text(run.now, run.zone)
    base = run_fingerprint_base(generator, model, catalog, str(run.zone), today)
    store = MessageStore(processed_path(run.data_dir, PROCESSED_MESSAGES_FILE), order=[u["id"] for u in users])
    if store.recovered:
        run.logger.info("recovered %d records from the journal of an interrupted run", store.recovered)
    to_generate, upload_only, up_to_date = plan_run(selected, store.records, base, fresh=args.fresh, upload=upload,
                                                    generator=generator)
    run.logger.info("%d members selected: %d to generate, %d to upload only, %d up to date (model %s)",
                    len(selected), len(to_generate), len(upload_only), len(up_to_date), model)

    usage = None if args.offline else ai_prompt.UsageTotals()
    ctx = RunContext(events=events, catalog_system=matching_system_blocks(catalog, today), phone_lookup=phone_lookup,
                     fingerprint_base=base, generator=generator, model=model, now=run.now, zone=run.zone,
                     today=today)
    if usage is not None:
        ctx.ask = ClaudeAsker(model, usage, AdaptiveLimiter(args.workers), logger=run.logger)
    uploader = Uploader(store, run.logger) if upload else None
    progress = ProgressLine(len(to_generate))

    def on_done(record: dict) -> None:
        progress.advance(failed=record["status"] == "failed")
        if record["status"] == "failed":
            run.logger.warning("member %s failed: %s", record["user_id"], record["error"])
        elif uploader is not None:
            uploader.submit(record)

    try:
        for record in upload_only:
            uploader.submit(record)
        records = run_users(to_generate, ctx, store, args.workers, on_done)
    finally:
        if uploader is not None:
            uploader.close()
        store.close()

    counts = {"loaded": len(all_users) + bad_users, "unusable": bad_users + unusable_users,
              "selected": len(selected), "up_to_date": len(up_to_date), "upload_only": len(upload_only),
              "failed_calls": ctx.ask.failed_calls if ctx.ask is not None else 0}
    log_stats_table(run.logger, "Step 5: match and message",
                    report_rows(counts, records, usage, model, time.monotonic() - started, uploader))
    # Show what the selected members will receive, even when this run had nothing new to make.
    shown = records or [store.records[user["id"]] for user in selected if user["id"] in store.records]
    for line in sample_messages(shown):
        run.logger.info("sample: %s", line)
    run.logger.info("wrote %s", processed_path(run.data_dir, PROCESSED_MESSAGES_FILE))
    if records and all(record["status"] == "failed" for record in records):
        run.logger.error("every member failed: see the reasons above and in %s", run.log_path)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
