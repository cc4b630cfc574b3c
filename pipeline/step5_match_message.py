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

# Prompts first, so that editing them needs no scrolling. Placeholders are in {braces}; literal
# braces in the JSON examples are doubled ({{ }}) because the prompts are filled with str.format.
# The campaign thresholds ({newcomer_max_events}, ...) are filled from utils/rules.py.

MATCHING_PROMPT = """You match members of a social-dining community in New York to upcoming events \
for an SMS invitation campaign: for each member, a ranked shortlist of up to {shortlist_size} events, \
best first. Seats are limited, so a member may get their second or third choice. Today is {today}.

# Campaign types (choose exactly one per event on the shortlist)
1. "Seat The Newcomer"
   - When: the member has attended {newcomer_max_events} events or fewer \
(event_count <= {newcomer_max_events}).
   - Objective: convert a newcomer into a first (or second) attendance.
   - Event strategy: prefer events {newcomer_fill} full (proof of quality without feeling exclusive),
     beginner-friendly events with welcoming descriptions, in or near the member's neighborhood.
   - Tone: warm, welcoming, encouraging, excited about their first event.
2. "Fill the Table"
   - When: the chosen event has low occupancy (marked "low occupancy" in the catalog).
   - Objective: drive RSVPs to fill an under-booked event.
   - Event strategy: low-participation events, events starting soon (urgency); interest alignment
     is still critical.
   - Tone: urgent, scarcity-driven, spots left and time pressure, social proof.
3. "Return to Table"
   - When: the member's last event was {return_min_days} or more days ago, or they have not attended \
in {dormant_days} days.
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
{{"choices": [{{"event_index": <integer index from the catalog>, "campaign": "Seat The Newcomer" | \
"Fill the Table" | "Return to Table", "reasoning": "<one or two sentences: why this event and campaign>", \
"confidence": <number 0-100>}}, ...]}}"""

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
import json  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any, Optional  # noqa: E402

from pipeline.match_message.asking import (  # noqa: E402
    MESSAGE_SCHEMA, QUALITY_SCHEMA, SHORTLIST_SCHEMA, SHORTLIST_SIZE, Ask, ClaudeAsker,
    validate_generation, validate_quality, validate_shortlist,
)
from pipeline.match_message.assignment import DEFAULT_INVITES_PER_SEAT  # noqa: E402
from pipeline.match_message.generators import ClaudeGenerator, ClaudeRequests, OfflineGenerator  # noqa: E402
from pipeline.match_message.phases import Phases, RunOptions  # noqa: E402
from pipeline.match_message.report import (  # noqa: E402
    invitation_rows, over_cap_events, report_rows, sample_messages,
)
from pipeline.match_message.team_loop import hold_log_lines  # noqa: E402
from pipeline.match_message.team_rows import (  # noqa: E402
    TeamRows, check_airtable, opted_out_members, read_team_rows, unfinished_line, unfinished_members,
)
from pipeline.match_message.texts import (  # noqa: E402
    SMS_CHARS_UNDER, body_budget, booking_link, first_name_of, sms_footer, text_of,
)
from pipeline.match_message.upload import Uploader  # noqa: E402
from utils import ai_prompt, airtable_crud  # noqa: E402
from utils.claude_usage import UsageTotals  # noqa: E402
from utils.cli import build_arg_parser, start_step, step_main  # noqa: E402
from utils.contacts import load_opt_outs  # noqa: E402
from utils.errors import PipelineError  # noqa: E402
from utils.jsonio import input_repair_rows, load_json_list, split_objects  # noqa: E402
from utils.log import log_stats_table  # noqa: E402
from utils.message_store import MessageStore  # noqa: E402
from utils.paths import (  # noqa: E402
    ENRICHED_EVENTS_FILE, ENRICHED_USERS_FILE, OPT_OUTS_FILE, PROCESSED_MESSAGES_FILE, USERS_FILE, processed_path,
    raw_path,
)
from utils.people import format_day, load_all_users, normalize_email, weekday_name  # noqa: E402
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
        email = normalize_email(user.get("email"))
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
    cleaned = {key: text_of(record[key]) for key in ("name", "first_name", "summary")
               if isinstance(record.get(key), str) and text_of(record[key]) != record[key]}
    return {**record, **cleaned} if cleaned else record


def select_users(users: list[dict], user_ids: Optional[list[str]], limit: Optional[int]) -> list[dict]:
    """Apply --user-id (keep only those, in input order) and then --limit (the first N)."""
    if user_ids:
        wanted = set(user_ids)
        users = [user for user in users if user["id"] in wanted]
    if limit is not None:
        users = users[:limit]
    return users


def base_record(user: dict, phone_lookup: dict[str, str], generator: str, model: str) -> dict:
    """The member's part of the record, plus who made it."""
    email = text_of(user.get("email"))
    return {
        "user_id": user["id"], "user_name": text_of(user.get("name")), "user_email": email,
        "user_phone": phone_lookup.get(normalize_email(email) or "", ""), "user_summary": user["summary"],
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


def matching_system_blocks(catalog: str, today: str) -> list[dict]:
    """The matching instructions and catalog as one cached system block."""
    text = MATCHING_PROMPT.format(event_catalog=catalog, today=today, **prompt_rules())
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


def match_user_to_event(user: dict, events: list[dict], ask: Ask, catalog_system: Any) -> dict:
    """Ask for the member's ranked shortlist: {"choices": [{event_index, campaign, reasoning, confidence}]}."""
    return ask(
        "match", MATCHING_USER_PROMPT.format(user_summary=user["summary"], shortlist_size=SHORTLIST_SIZE),
        system=catalog_system, temperature=MATCH_TEMPERATURE, schema=SHORTLIST_SCHEMA,
        validate=lambda answer: validate_shortlist(answer, len(events)),
    )


def generate_message(user: dict, event: dict, match: dict, ask: Ask, today: str) -> dict:
    """Ask for the SMS text (without the link), its reasoning and a confidence."""
    campaign = match["campaign"]
    prompt = MESSAGE_GENERATION_PROMPT.format(
        user_summary=user["summary"], event_summary=event["summary"], campaign=campaign,
        campaign_tone=CAMPAIGN_TONES[campaign], match_reasoning=match["reasoning"], first_name=first_name_of(user),
        max_body_chars=body_budget(booking_link(event)), today=today, sms_chars_under=SMS_CHARS_UNDER,
    )
    return ask("write", prompt, temperature=WRITE_TEMPERATURE, schema=MESSAGE_SCHEMA, validate=validate_generation)


def quality_check_message(message: str, user: dict, event: dict, campaign: str, ask: Ask) -> dict:
    """Ask for a quality verdict on the full SMS, and an improved version when it falls short."""
    prompt = QUALITY_CHECK_PROMPT.format(
        message=message, first_name=first_name_of(user), user_summary=user["summary"],
        event_summary=event["summary"], campaign=campaign, link=booking_link(event), sms_chars_under=SMS_CHARS_UNDER,
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
    parser.add_argument("--invites-per-seat", type=float, default=DEFAULT_INVITES_PER_SEAT, metavar="X",
                        help="invitations per free seat of an event, at most (default 3; 0 = no cap)")
    ai_prompt.add_model_argument(parser)
    parser.add_argument("--offline", action="store_true",
                        help="rule-based matching and template messages: no network, no keys, no upload")
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


def make_generator(args, run, events: list[dict]):
    """The offline or the Claude generator; checks the Claude and Airtable settings before any work."""
    if args.offline:
        return OfflineGenerator(events, run.now, run.zone)
    model = ai_prompt.resolve_model(args.model)
    ai_prompt.get_client()  # raises on a missing key or bad settings, before any work
    ai_prompt.configure_call_log(run.log_dir, run.stamp)
    if not args.no_upload:
        try:
            airtable_crud.check_airtable_config()
        except airtable_crud.AirtableConfigError as exc:
            raise PipelineError(f"{exc}; or run with --no-upload to skip Airtable") from None
    ask = ClaudeAsker(model, UsageTotals(), AdaptiveLimiter(args.workers), step=STEP_NAME,
                      max_tokens=ANSWER_MAX_TOKENS, logger=run.logger)
    return ClaudeGenerator(model, claude_requests(), ask, events, build_event_catalog(events),
                           today_text(run.now, run.zone))


def log_report(run, counts: dict, outcome, generator, uploader, events: list[dict], seconds: float) -> None:
    """The statistics table, invitations per event, members with no event, and sample messages."""
    log_stats_table(run.logger, "Step 5: match and message", report_rows(counts, outcome, generator, uploader, seconds))
    for line in ["Invitations per event:"] + invitation_rows(outcome, events):
        run.logger.info(line)
    no_event = [user_id for user_id, choice in outcome.assignment.items() if choice is None]
    if no_event:
        more = f" and {len(no_event) - 20} more (all in {run.log_path})" if len(no_event) > 20 else ""
        run.logger.info("no event (every shortlisted event is full): %s%s", ", ".join(no_event[:20]), more)
        run.logger.debug("no event, all: %s", ", ".join(no_event))
    for line in hold_log_lines(outcome.held):
        run.logger.info("%s", line)
    for user_id, kind in outcome.opted_out.items():
        run.logger.info("opted out (matched by %s), no message: %s", kind, user_id)
    for line in sample_messages([outcome.records[u["id"]] for u in outcome.selected if u["id"] in outcome.records]):
        run.logger.info("sample: %s", line)
    run.logger.info("wrote %s", processed_path(run.data_dir, PROCESSED_MESSAGES_FILE))


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Run step 5 from the command line."""
    args = build_parser().parse_args(argv)
    if args.workers < 1 or (args.limit is not None and args.limit < 0) or args.invites_per_seat < 0:
        raise PipelineError("--workers must be at least 1, --limit and --invites-per-seat at least 0")
    run = start_step(STEP_NAME, args)
    started = time.monotonic()
    upload = not (args.no_upload or args.offline)
    users, events, phones, counts = load_inputs(run)
    generator = make_generator(args, run, events)
    # Before the first Claude call: a wrong token, base, table or a missing column costs nothing.
    preflight = check_airtable(run.logger) if upload else None
    selected = select_users(users, args.user_id, args.limit)
    missing_ids = sorted(set(args.user_id or ()) - {user["id"] for user in users})
    if missing_ids:
        run.logger.warning("--user-id not found in enriched users: %s", ", ".join(missing_ids))
    # Checked again here, so that an opt-out added after step 1 still stops the message.
    opted_out = opted_out_members(selected, phones, load_opt_outs(raw_path(run.data_dir, OPT_OUTS_FILE)))
    store = MessageStore(processed_path(run.data_dir, PROCESSED_MESSAGES_FILE), order=[u["id"] for u in users])
    if store.recovered:
        run.logger.info("recovered %d records from the journal of an interrupted run", store.recovered)
    try:
        team = TeamRows()
        if preflight is not None:
            team = read_team_rows([user["id"] for user in selected], store.snapshot(),
                                  send_status_exists=preflight.send_status_exists,
                                  recreate_deleted=args.recreate_deleted, logger=run.logger)
    except BaseException:
        store.close()
        raise
    run.logger.info("%d members selected (generator %s, model %s)", len(selected), generator.name, generator.model)
    options = RunOptions(workers=args.workers, fresh=args.fresh, upload=upload, invites_per_seat=args.invites_per_seat,
                         today=run.now.astimezone(run.zone).date().isoformat(), held=team.held,
                         held_invites=team.held_invites, opted_out=opted_out)
    uploader = Uploader(store, run.logger) if upload else None
    base = partial(base_record, phone_lookup=phones, generator=generator.name, model=generator.model)
    try:
        outcome = Phases(generator, events, store, options, base, run.logger, uploader).run(selected)
    finally:
        try:
            if uploader is not None:
                uploader.close()
        finally:
            store.close()
    outcome.records = {user["id"]: store.get(user["id"]) for user in selected if store.get(user["id"]) is not None}
    log_report(run, counts, outcome, generator, uploader, events, time.monotonic() - started)
    if over_cap_events(outcome):
        raise PipelineError(f"events over their invitation cap: {', '.join(over_cap_events(outcome))} (a bug)")
    unfinished = unfinished_members(selected, outcome.records, outcome.held, outcome.kept_claude, upload=upload)
    last_line = unfinished_line(unfinished, outcome.stopped)
    if last_line is None:
        return 0
    if outcome.stopped is not None:
        raise PipelineError(last_line)
    run.logger.error("%s", last_line)
    return 1


if __name__ == "__main__":
    sys.exit(main())
