"""Step 5: shortlist events for each member, assign them within every event's cap, write, check, save, upload.

Reads data/processed/enriched_users.json, data/processed/enriched_events.json and data/raw/users.json;
writes data/processed/processed_messages.json and upserts one Airtable row per invited member.

Three phases: Match (a ranked shortlist of up to 3 events per member), Assign (one event per member,
invitations per event capped by its free seats), Write and check (the SMS, its quality check and the
compliance gate). Re-running is safe and cheap: each phase's results are saved per member, and only
the stages whose prompts, settings or inputs changed run again. Edit the prompts below and re-run.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Prompts first, so that editing them needs no scrolling. Placeholders are {name} in braces (the
# table of them is in docs/5-match-message.md, "Editing the prompts"); every other brace is text, so a
# JSON example can be pasted as it is. A placeholder step 5 does not fill stops the run at start-up.
# The campaign thresholds ({newcomer_max_events}, ...) are filled from utils/rules.py.

MATCHING_PROMPT = """You match members of a social-dining community in New York to upcoming events \
for an SMS invitation campaign: for each member, a ranked shortlist of up to {shortlist_size} events, \
best first. Seats are limited, so a member may get their second or third choice. Today is {today}.

# Which campaign: the first rule that applies wins (the member decides it, not the event)
1. "Return to Table": the member has attended at least one event, and the last one was \
{return_min_days} or more days ago, or they have not attended in {dormant_days} days. A lapsed member \
who came only once or twice is not a newcomer.
2. "Seat The Newcomer": {newcomer_max_events} events or fewer (event_count <= {newcomer_max_events}; \
a missing count is 0), and not lapsed.
3. "Fill the Table": everyone else, the active regulars; prefer events marked "low occupancy" for them.

# Campaign types (the same campaign for every event on the member's shortlist)
1. "Seat The Newcomer"
   - When: rule 2 above.
   - Objective: convert a newcomer into a first (or second) attendance.
   - Event strategy: prefer events {newcomer_fill} full (proof of quality without feeling exclusive),
     beginner-friendly events with welcoming descriptions, in or near the member's neighborhood.
   - Tone: warm, welcoming, encouraging, excited about their first event.
2. "Fill the Table"
   - When: rule 3 above (active regulars), who help fill events marked "low occupancy".
   - Objective: drive RSVPs to fill an under-booked event.
   - Event strategy: low-participation events, events starting soon (urgency); interest alignment
     is still critical.
   - Tone: urgent, scarcity-driven, spots left and time pressure, social proof.
3. "Return to Table"
   - When: rule 1 above.
   - Objective: re-engage a dormant member and drive an RSVP.
   - Event strategy: prefer events {return_fill} full, similar to what they attended before, in or near
     their neighborhood, happening soon.
   - Tone: warm, nostalgic, friend-like; acknowledges the time away without being pushy.

# Matching criteria, in order of importance
1. Interest alignment (critical): the member's interests must fit the event's categories/features.
2. Dietary compatibility: the event's food must not conflict with the member's dietary restrictions.
3. Location proximity: prefer events in or near the member's home or work neighborhood.
4. Event quality: for "Return to Table" and "Seat The Newcomer", prefer good participation \
({newcomer_fill} full).
5. Event urgency: for "Fill the Table", prioritise events with low occupancy.
6. Event timing: prefer events happening soon.

# Event catalog
Events are numbered from 0. Use the number in brackets as event_index.

{event_catalog}

# Answer
Reply with JSON only, exactly this shape, with 1 to {shortlist_size} different events, best first:
{"choices": [{"event_index": <integer index from the catalog>, "campaign": "Seat The Newcomer" | \
"Fill the Table" | "Return to Table", "reasoning": "<one or two sentences: why this event and campaign>", \
"confidence": <number 0-100>}, ...]}"""

MATCHING_USER_PROMPT = """Member profile:
{user_summary}

Rank up to {shortlist_size} events from the catalog for this member, best first, and answer with the \
JSON described."""

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
the whole SMS to under {sms_chars_under} characters.
- Do not write any link or URL yourself; the booking link is appended automatically.
- Plain characters only: straight quotes and apostrophes, no typographic dashes.
- At most one emoji.
- Twilio compliance: no ALL-CAPS words, no "!!!", no "$$$", no "act now", "winner", "100% free", \
"click here"; never promote alcohol, tobacco, cannabis, drugs, firearms, sex or hate (a menu may \
mention wine, but the pitch is the dinner and the people).
- Only facts from the event description: never invent prices, names or details.

Reply with JSON only, exactly this shape:
{"message": "<the SMS text without the link>", "reasoning": "<why this message will work>", \
"confidence": <number 0-100>}"""

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
1. Length: fewer than {sms_chars_under} characters including the link.
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
{"quality_score": <number 0-100>, "approved": true | false, "issues": ["<issue>", ...], \
"improved_message": "<the improved SMS including the link>" | null}"""

COMPLIANCE_REWRITE_PROMPT = """This SMS invitation failed our automatic compliance checks:

{message}

Failures:
{failures}

Rewrite it so that it passes every check. Keep the facts, the first name ({first_name}) and the \
tone of the "{campaign}" campaign. Do not write any link: the booking link is appended after your \
text. At most {max_body_chars} characters.

Reply with JSON only, exactly this shape:
{"message": "<the SMS text without the link>", "reasoning": "<what you changed>", \
"confidence": <number 0-100>}"""


import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any, Optional  # noqa: E402

from pipeline.match_message.asking import (  # noqa: E402
    MESSAGE_SCHEMA, QUALITY_SCHEMA, SHORTLIST_SCHEMA, SHORTLIST_SIZE, Ask, ClaudeAsker, validate_generation,
    validate_quality, validate_shortlist,
)
from pipeline.match_message.assignment import DEFAULT_INVITES_PER_SEAT, finite_non_negative  # noqa: E402
from pipeline.match_message.backtest import add_backtest_arguments  # noqa: E402
from pipeline.match_message.backtest_command import MatchBuilders, backtest_main  # noqa: E402
from pipeline.match_message.generators import ClaudeGenerator, ClaudeRequests, OfflineGenerator  # noqa: E402
from pipeline.match_message.session import Session, dry_run, live_run, preview  # noqa: E402
from pipeline.match_message.stages import digest  # noqa: E402
from pipeline.match_message.texts import (  # noqa: E402
    SMS_CHARS_UNDER, body_budget, booking_link, first_name_of, sms_chars_under, sms_footer, text_of,
)
from utils import ai_prompt, airtable_crud  # noqa: E402
from utils.claude_usage import UsageTotals  # noqa: E402
from utils.cli import build_arg_parser, start_step, step_main  # noqa: E402
from utils.errors import PipelineError  # noqa: E402
from utils.prompt_template import check_prompt, fill_prompt  # noqa: E402
from utils.jsonio import input_repair_rows, load_json_list, split_objects  # noqa: E402
from utils.paths import ENRICHED_EVENTS_FILE, ENRICHED_USERS_FILE, USERS_FILE, processed_path, raw_path  # noqa: E402
from utils.people import format_day, load_all_users, normalize_email_text, weekday_name  # noqa: E402
from utils.rules import (  # noqa: E402
    CAMPAIGN_FILL_TABLE, CAMPAIGN_NEWCOMER, CAMPAIGN_RETURN, DORMANT_AFTER_DAYS, NEWCOMER_MAX_EVENTS,
    NEWCOMER_PREFERRED_FILL, RETURN_MIN_DAYS, RETURN_PREFERRED_FILL,
)
from utils.throttle import AdaptiveLimiter  # noqa: E402

STEP_NAME = "match_message"
CAMPAIGN_TONES = {
    CAMPAIGN_NEWCOMER: "warm, welcoming, encouraging, excited about their first event",
    CAMPAIGN_FILL_TABLE: "urgent, scarcity-driven, spots left and time pressure, social proof",
    CAMPAIGN_RETURN: "warm, nostalgic, friend-like, acknowledges time away without being pushy",
}
MATCH_TEMPERATURE = 0.7
WRITE_TEMPERATURE = 0.9
CHECK_TEMPERATURE = 0.7
ANSWER_MAX_TOKENS = 1024
DEFAULT_WORKERS = 8


def _fill_range(low_high: tuple[float, float]) -> str:
    return f"{low_high[0]:.0%}-{low_high[1]:.0%}".replace("%-", "-")


def prompt_rules() -> dict[str, Any]:
    """The thresholds the matching prompt quotes, from utils/rules.py."""
    return {
        "newcomer_max_events": NEWCOMER_MAX_EVENTS, "return_min_days": RETURN_MIN_DAYS,
        "dormant_days": DORMANT_AFTER_DAYS, "newcomer_fill": _fill_range(NEWCOMER_PREFERRED_FILL),
        "return_fill": _fill_range(RETURN_PREFERRED_FILL), "shortlist_size": SHORTLIST_SIZE,
    }


# --- Loading and lookups (spec names) ------------------------------------------------------------

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
        email = normalize_email_text(user.get("email"))
        phone = user.get("phone")
        if email and isinstance(phone, str) and phone.strip() and email not in lookup:
            lookup[email] = phone.strip()
    return lookup


def with_id_and_summary(records: list[dict]) -> tuple[list[dict], int]:
    """Members or events with an id and a summary (what matching needs); also how many were skipped.

    Names and summaries lose invisible characters here: a hand-edited enriched file bypasses steps 3
    and 4, and this text goes into the prompts and templates.
    """
    kept = [_visible_text(record) for record in records
            if text_of(record.get("id")) and text_of(record.get("summary"))]
    return kept, len(records) - len(kept)


def _visible_text(record: dict) -> dict:
    """The record with its name, first name and summary cleaned (`clean_text`), when they are text."""
    cleaned = {key: clean for key in ("name", "first_name", "summary")
               if isinstance(record.get(key), str) and (clean := text_of(record[key])) != record[key]}
    return {**record, **cleaned} if cleaned else record


def select_users(users: list[dict], user_ids: Optional[list[str]], limit: Optional[int],
                 emails: Optional[list[str]] = None) -> list[dict]:
    """Apply --user-id and --email (keep only those, in input order) and then --limit (the first N)."""
    if user_ids or emails:
        wanted = set(user_ids or ())
        wanted_emails = {normalize_email_text(email) for email in emails or ()} - {None}
        users = [user for user in users
                 if user["id"] in wanted or normalize_email_text(text_of(user.get("email"))) in wanted_emails]
    if limit is not None:
        users = users[:limit]
    return users


def base_record(user: dict, phone_lookup: dict[str, str], generator: str, model: str) -> dict:
    """The member's part of the record, plus who made it."""
    email = text_of(user.get("email"))
    return {
        "user_id": user["id"], "user_name": text_of(user.get("name")), "user_email": email,
        "user_phone": phone_lookup.get(normalize_email_text(email) or "", ""), "user_summary": user["summary"],
        "generator": generator, "model": model,
    }


# --- Building the requests (spec names) ----------------------------------------------------------

def build_event_catalog(events: list[dict]) -> str:
    """The numbered event summaries that every matching call shares (and Anthropic caches)."""
    lines = []
    for index, event in enumerate(events):
        flag = " (low occupancy)" if event.get("has_low_occupancy") is True else ""
        lines.append(f"[{index}]{flag} {event['summary']}")
    return "\n".join(lines)


def today_text(now, zone) -> str:
    """Today's date as the prompts show it, e.g. "Wednesday, November 25, 2026"."""
    return f"{weekday_name(now, zone)}, {format_day(now, zone)}"


#: The placeholders step 5 fills, per prompt (docs/5-match-message.md lists them; a test keeps both true).
RULE_PLACEHOLDERS = tuple(prompt_rules())
PROMPT_PLACEHOLDERS = {
    "MATCHING_PROMPT": ("event_catalog", "today", *RULE_PLACEHOLDERS),
    "MATCHING_USER_PROMPT": ("user_summary", "shortlist_size"),
    "MESSAGE_GENERATION_PROMPT": ("first_name", "user_summary", "event_summary", "campaign", "campaign_tone",
                                  "match_reasoning", "max_body_chars", "sms_chars_under", "today"),
    "QUALITY_CHECK_PROMPT": ("message", "first_name", "user_summary", "event_summary", "campaign", "link",
                             "sms_chars_under"),
    "COMPLIANCE_REWRITE_PROMPT": ("message", "failures", "first_name", "campaign", "max_body_chars"),
}


def prompt_texts() -> dict[str, str]:
    """The five prompts by constant name, as they are now (read at call time, so tests may edit them)."""
    return {name: globals()[name] for name in PROMPT_PLACEHOLDERS}


def check_prompts() -> None:
    """Refuse, before any paid call, a prompt that uses a placeholder step 5 does not fill."""
    for name, template in prompt_texts().items():
        check_prompt(name, template, PROMPT_PLACEHOLDERS[name])


def matching_system_blocks(catalog: str, today: str) -> list[dict]:
    """The matching instructions and catalog as one cached system block."""
    text = fill_prompt(MATCHING_PROMPT, {"event_catalog": catalog, "today": today, **prompt_rules()})
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


def match_user_to_event(user: dict, events: list[dict], ask: Ask, catalog_system: Any) -> dict:
    """Ask for the member's ranked shortlist: {"choices": [{event_index, campaign, reasoning, confidence}]}."""
    prompt = fill_prompt(MATCHING_USER_PROMPT, {"user_summary": user["summary"], "shortlist_size": SHORTLIST_SIZE})
    return ask(
        "match", prompt, system=catalog_system, temperature=MATCH_TEMPERATURE, schema=SHORTLIST_SCHEMA,
        validate=lambda answer: validate_shortlist(answer, len(events)),
    )


def generate_message(user: dict, event: dict, match: dict, ask: Ask, today: str, *,
                     sms_chars_under: int = SMS_CHARS_UNDER) -> dict:
    """Ask for the SMS text (without the link), its reasoning and a confidence."""
    campaign = match["campaign"]
    prompt = fill_prompt(MESSAGE_GENERATION_PROMPT, {
        "user_summary": user["summary"], "event_summary": event["summary"], "campaign": campaign,
        "campaign_tone": CAMPAIGN_TONES[campaign], "match_reasoning": match["reasoning"],
        "first_name": first_name_of(user), "max_body_chars": body_budget(booking_link(event), sms_chars_under),
        "today": today, "sms_chars_under": sms_chars_under,
    })
    return ask("write", prompt, temperature=WRITE_TEMPERATURE, schema=MESSAGE_SCHEMA, validate=validate_generation)


def quality_check_message(message: str, user: dict, event: dict, campaign: str, ask: Ask, *,
                          sms_chars_under: int = SMS_CHARS_UNDER) -> dict:
    """Ask for a quality verdict on the full SMS, and an improved version when it falls short."""
    prompt = fill_prompt(QUALITY_CHECK_PROMPT, {
        "message": message, "first_name": first_name_of(user), "user_summary": user["summary"],
        "event_summary": event["summary"], "campaign": campaign, "link": booking_link(event),
        "sms_chars_under": sms_chars_under,
    })
    return ask("check", prompt, temperature=CHECK_TEMPERATURE, schema=QUALITY_SCHEMA, validate=validate_quality)


def rewrite_for_compliance(message: str, failures: list[str], user: dict, event: dict, campaign: str,
                           ask: Ask, *, sms_chars_under: int = SMS_CHARS_UNDER) -> dict:
    """Ask for one rewrite that fixes the quoted compliance failures."""
    prompt = fill_prompt(COMPLIANCE_REWRITE_PROMPT, {
        "message": message, "failures": "\n".join(f"- {failure}" for failure in failures),
        "first_name": first_name_of(user), "campaign": campaign,
        "max_body_chars": body_budget(booking_link(event), sms_chars_under),
    })
    return ask("rewrite", prompt, temperature=WRITE_TEMPERATURE, schema=MESSAGE_SCHEMA, validate=validate_generation)


def stage_settings_parts() -> dict[str, list]:
    """Per stage, the static parts of the requests it builds: what its fingerprint covers (never the date)."""
    schema = partial(json.dumps, sort_keys=True)
    return {
        "match": [MATCHING_PROMPT, MATCHING_USER_PROMPT, schema(prompt_rules()), MATCH_TEMPERATURE,
                  ANSWER_MAX_TOKENS, schema(SHORTLIST_SCHEMA)],
        "write": [MESSAGE_GENERATION_PROMPT, schema(CAMPAIGN_TONES), WRITE_TEMPERATURE, ANSWER_MAX_TOKENS,
                  schema(MESSAGE_SCHEMA)] + ([sms_footer()] if sms_footer() else []),
        "check": [QUALITY_CHECK_PROMPT, COMPLIANCE_REWRITE_PROMPT, CHECK_TEMPERATURE, WRITE_TEMPERATURE,
                  ANSWER_MAX_TOKENS, schema(QUALITY_SCHEMA), schema(MESSAGE_SCHEMA)],
    }


def claude_requests() -> ClaudeRequests:
    """This script's request builders for the Claude generator (read when the run starts)."""
    return ClaudeRequests(match=match_user_to_event, write=generate_message, check=quality_check_message,
                          rewrite=rewrite_for_compliance, system=matching_system_blocks,
                          settings_parts=stage_settings_parts())


# --- The command line ----------------------------------------------------------------------------

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
                        help="run every stage again for every selected member, even those up to date")
    parser.add_argument("--recreate-deleted", action="store_true",
                        help="upload again the rows the team deleted in Airtable (by default they stay deleted)")
    parser.add_argument("--invites-per-seat", type=finite_non_negative, default=DEFAULT_INVITES_PER_SEAT, metavar="X",
                        help="invitations per free seat of an event, at most (default 3; 0 = no cap)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan per stage and the estimated Claude and SMS cost; 0 calls, writes nothing")
    parser.add_argument("--max-cost", type=finite_non_negative, default=None, metavar="USD",
                        help="stop before starting when the estimated Claude cost is above USD, and stop cleanly "
                             "when the actual spend reaches it")
    parser.add_argument("--preview", type=int, default=None, metavar="N",
                        help="try the current prompts on N members (sampled across campaigns and events); writes "
                             "only preview_messages.json and review.html")
    parser.add_argument("--email", action="append", default=None, metavar="EMAIL",
                        help="process only the member with this email (repeatable; like --user-id)")
    parser.add_argument("--max-segments", type=int, choices=(1, 2), default=None, metavar="N",
                        help="1: fit every SMS into one GSM-7 segment (160 characters, link included); "
                             "default: the seed's rule, under 180 characters")
    ai_prompt.add_model_argument(parser)
    parser.add_argument("--offline", action="store_true",
                        help="rule-based matching and template messages: no network, no keys, no upload")
    add_backtest_arguments(parser)
    return parser


def load_inputs(run) -> tuple[list[dict], list[dict], dict[str, str], dict[str, int]]:
    """The usable members and events, the phone lookup, and the input counts for the report."""
    loaded_users = load_enriched_users(processed_path(run.data_dir, ENRICHED_USERS_FILE))
    all_users, bad_users = split_objects(loaded_users)
    users, unusable_users = with_id_and_summary(all_users)
    loaded_events = load_enriched_events(processed_path(run.data_dir, ENRICHED_EVENTS_FILE))
    events, bad_events = split_objects(loaded_events)
    events, unusable_events = with_id_and_summary(events)
    if bad_events or unusable_events:
        run.logger.warning("skipped %d events without an id or summary", bad_events + unusable_events)
    if not events:
        raise PipelineError("no usable events in enriched_events.json: run steps 2 and 4 first")
    phones = create_phone_lookup(load_raw_users(raw_path(run.data_dir, USERS_FILE)))
    repairs = input_repair_rows(loaded_users, "members") + input_repair_rows(loaded_events, "events")
    return users, events, phones, {"loaded": len(all_users) + bad_users, "unusable": bad_users + unusable_users,
                                   "repairs": repairs}


def make_generator(args, run, events: list[dict], *, connect: bool = True):
    """The offline or the Claude generator; checks the Claude and Airtable settings before any work.

    Args:
        connect: False for --dry-run: no key or Airtable check (nothing is called).
    """
    chars_under = sms_chars_under(args.max_segments)
    if args.offline:
        return OfflineGenerator(events, run.now, run.zone, chars_under)
    model = ai_prompt.resolve_model(args.model)
    if connect:
        ai_prompt.get_client()  # raises on a missing key or bad settings, before any work
        ai_prompt.configure_call_log(run.log_dir, run.stamp)
    if connect and not (args.no_upload or args.preview is not None):
        try:
            airtable_crud.check_airtable_config()
        except airtable_crud.AirtableConfigError as exc:
            raise PipelineError(f"{exc}; or run with --no-upload to skip Airtable") from None
    ask = ClaudeAsker(model, UsageTotals(), AdaptiveLimiter(args.workers), step=STEP_NAME,
                      max_tokens=ANSWER_MAX_TOKENS, logger=run.logger, max_cost_usd=args.max_cost)
    return ClaudeGenerator(model, claude_requests(), ask, events, build_event_catalog(events),
                           today_text(run.now, run.zone), chars_under)


def prompts_fingerprint() -> str:
    """A hash of the five prompts: the preview's sample changes only when it changes."""
    return digest(prompt_texts().values())


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 5 from the command line."""
    args = build_parser().parse_args(argv)
    if args.backtest:
        return backtest_main(args, MatchBuilders(claude_requests(), build_event_catalog, today_text, ANSWER_MAX_TOKENS))
    if args.workers < 1 or (args.limit is not None and args.limit < 0) or (args.preview is not None and args.preview < 1):
        raise PipelineError("--workers and --preview must be at least 1, --limit at least 0")
    check_prompts()  # a placeholder step 5 cannot fill stops the run here, before any paid call
    run = start_step(STEP_NAME, args)
    started = time.monotonic()
    users, events, phones, counts = load_inputs(run)
    generator = make_generator(args, run, events, connect=not args.dry_run)
    selected = select_users(users, args.user_id, args.limit, args.email)
    missing_ids = sorted(set(args.user_id or ()) - {user["id"] for user in users})
    if missing_ids:
        run.logger.warning("--user-id not found in enriched users: %s", ", ".join(missing_ids))
    base = partial(base_record, phone_lookup=phones, generator=generator.name, model=generator.model)
    session = Session(args, run, events, generator, base, started)
    if args.dry_run:
        return dry_run(session, selected)
    if args.preview is not None:
        return preview(session, selected, prompts_fingerprint())
    return live_run(session, users, selected, phones, counts)


if __name__ == "__main__":
    sys.exit(main())
