"""The two generators of step 5, one object each, so the phases never ask "offline or Claude?".

Both have the same face: `name`, `model`, `settings` (one hash per stage of the static request parts),
`*_inputs` (the member-specific hash per stage), and the three phases `shortlist`, `write`, `check`,
plus `report_rows` for the statistics table. `ClaudeGenerator` builds its requests with the step
script's functions (`ClaudeRequests`), so the prompts stay at the top of the script.
"""

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Callable, Optional

from pipeline.match_message.asking import SHORTLIST_SIZE, AnswerError, ClaudeAsker
from pipeline.match_message.stages import digest
from pipeline.match_message.texts import (
    BOOKING_LINK, ONE_SEGMENT_CHARS, SMS_CHARS_UNDER, booking_link, finalize_message, first_name_of, gate,
    message_tail, sms_footer, text_of,
)
from utils import ai_prompt
from utils.offline_engine import OFFLINE_ENGINE_VERSION, offline_message, offline_shortlist
from utils.sms import sms_encoding, sms_segments

#: What a member's failure in any stage can be; anything else is a bug and is caught separately.
GENERATION_ERRORS = (AnswerError, ai_prompt.ClaudeError)


@dataclass(frozen=True)
class ClaudeRequests:
    """The step script's request builders and, per stage, the static parts those requests are built from."""

    match: Callable[..., dict]      # (user, events, ask, system) -> {"choices": [...]}
    # write, check and rewrite also take the keyword `sms_chars_under` (the --max-segments budget).
    write: Callable[..., dict]      # (user, event, choice, ask, today) -> {"message", "reasoning", "confidence"}
    check: Callable[..., dict]      # (message, user, event, campaign, ask) -> the quality verdict
    rewrite: Callable[..., dict]    # (message, failures, user, event, campaign, ask) -> like write
    system: Callable[[str, str], Any]  # (catalog, today) -> the cached matching system block
    settings_parts: dict[str, list]  # stage -> static parts (template text, temperatures, schema, tones...)


def _with_event_ids(choices: list[dict], events: list[dict]) -> list[dict]:
    return [{**choice, "event_id": events[choice["event_index"]]["id"]} for choice in choices]


def _check_fields(message: str, reasoning: str, failures: list[str], check_ok: Optional[bool],
                  check_reasons: list[str], review: Optional[dict], rewritten: bool,
                  rewrite_error: Optional[str]) -> dict:
    """The finished fields of the check stage, by the status rule (docs/5-match-message.md, "Status")."""
    reasons = list(check_reasons) + [f"compliance: {failure}" for failure in failures]
    if rewrite_error:
        reasons.append(f"compliance rewrite failed: {rewrite_error}")
    approved = not failures and check_ok is not False
    return {
        "message": message,
        "message_reasoning": reasoning,
        "quality_check_response": review,
        "approved_by_quality_check": check_ok,
        "passed_gate": not failures,
        "compliance_rewrite": rewritten,
        **({"rewrite_error": rewrite_error} if rewrite_error else {}),
        "status": "approved" if approved else "needs_review",
        "review_reasons": reasons,
        "compliance_issues": failures,
        "sms_encoding": sms_encoding(message),
        "sms_segments": sms_segments(message),
    }


class ClaudeGenerator:
    """Match, write and check with Claude."""

    name = "claude"

    def __init__(self, model: str, requests: ClaudeRequests, ask: ClaudeAsker, events: list[dict],
                 catalog: str, today: str, chars_under: int = SMS_CHARS_UNDER):
        self.model = model
        self.chars_under = chars_under  # the SMS length budget (--max-segments), in every write/check request
        self.requests = requests
        self.ask = ask
        self.events = events
        self.today = today
        self.system = requests.system(catalog, today)
        parts = requests.settings_parts
        self.settings = {
            "match": digest([self.name, model, catalog, *parts["match"]]),
            "write": digest([self.name, model, BOOKING_LINK, chars_under, *parts["write"]]),
            "check": digest([self.name, model, BOOKING_LINK, chars_under, *parts["check"]]),
        }

    def match_inputs(self, user: dict) -> str:
        """What of the member reaches the matching request."""
        return digest([user["summary"]])

    def write_inputs(self, user: dict, event: dict, choice: dict) -> str:
        """What of the member, event and match reaches the writing request (not the match's reasoning)."""
        return digest([user["summary"], first_name_of(user), event["id"], event["summary"], choice["campaign"]])

    def check_inputs(self, user: dict, event: dict, choice: dict, message: str) -> str:
        """What reaches the quality check and the compliance rewrite."""
        return digest([message, user["summary"], first_name_of(user), event["id"], event["summary"],
                       choice["campaign"]])

    def shortlist(self, user: dict) -> list[dict]:
        """Phase 1: up to SHORTLIST_SIZE ranked choices, each with `event_id` added."""
        answer = self.requests.match(user, self.events, self.ask, self.system)
        return _with_event_ids(answer["choices"], self.events)

    def write(self, user: dict, event: dict, choice: dict) -> dict:
        """Phase 3a: the draft SMS (link attached) with its reasoning and confidence."""
        answer = self.requests.write(user, event, choice, self.ask, self.today, sms_chars_under=self.chars_under)
        return {"message": finalize_message(answer["message"], booking_link(event)),
                "reasoning": answer["reasoning"], "confidence": answer["confidence"]}

    def _review(self, message: str, reasoning: str, user: dict, event: dict, campaign: str):
        """One quality check: (kept text, its reasoning, check approved?, reasons, verdict)."""
        review = self.requests.check(message, user, event, campaign, self.ask, sms_chars_under=self.chars_under)
        if review["approved"]:
            return message, reasoning, True, [], review
        issues = [text_of(issue) for issue in review.get("issues") or [] if text_of(issue)]
        improved = text_of(review.get("improved_message"))
        if improved:
            why = "; ".join(issues) or "no issues listed"
            return (finalize_message(improved, booking_link(event)), f"The quality check's improved version "
                    f"(it fixes: {why}).", True, [], review)
        reasons = [f"quality check: {issue}" for issue in issues] or ["quality check: not approved, no reason given"]
        return message, reasoning, False, reasons, review

    def check(self, user: dict, event: dict, choice: dict, draft: dict) -> dict:
        """Phase 3b: quality check, gate, one compliance rewrite (checked again), and the status."""
        link, campaign = booking_link(event), choice["campaign"]
        message, reasoning, check_ok, reasons, review = self._review(
            draft["message"], draft["reasoning"], user, event, campaign)
        failures = gate(message, user, link, self.chars_under)
        rewritten, rewrite_error = False, None
        if failures:
            rewritten = True
            try:
                rewrite = self.requests.rewrite(message, failures, user, event, campaign, self.ask,
                                                sms_chars_under=self.chars_under)
            except GENERATION_ERRORS as exc:
                # The checked message is still worth a human look: it ends as needs_review, not failed.
                rewrite_error = str(exc)
            else:
                message, reasoning = finalize_message(rewrite["message"], link), rewrite["reasoning"]
                failures = gate(message, user, link, self.chars_under)
                if not failures:
                    # A rewrite is new text: it is approved only if the quality check approves it too.
                    message, reasoning, check_ok, reasons, review = self._review(
                        message, reasoning, user, event, campaign)
                    failures = gate(message, user, link, self.chars_under)
        return _check_fields(message, reasoning, failures, check_ok, reasons, review, rewritten, rewrite_error)

    def calls_by_stage(self) -> Counter:
        """Claude calls made per stage (the compliance rewrite counts under "check")."""
        calls = self.ask.calls_by_purpose
        return Counter({"match": calls["match"], "write": calls["write"],
                        "check": calls["check"] + calls["rewrite"]})

    def report_rows(self) -> list[tuple[str, Any]]:
        """Usage and cost rows for the statistics table."""
        usage = self.ask.usage
        cost = usage.cost_usd(self.model)
        return [
            ("Claude calls", usage.calls),
            ("Claude calls failed (after SDK retries)", self.ask.failed_calls),
            ("input tokens", usage.input_tokens),
            ("output tokens", usage.output_tokens),
            ("cache read tokens", usage.cache_read_input_tokens),
            ("cache write tokens", usage.cache_creation_input_tokens),
            ("estimated Claude cost (USD)", f"{cost:.4f}" if cost is not None else f"n/a (no price for {self.model})"),
        ]


class OfflineGenerator:
    """Match, write and check with the rule-based offline engine (no network). Approval is the gate's alone."""

    name = "offline"

    def __init__(self, events: list[dict], now: datetime, zone: tzinfo, chars_under: int = SMS_CHARS_UNDER):
        self.model = OFFLINE_ENGINE_VERSION
        self.chars_under = chars_under  # the SMS length budget (--max-segments)
        self.events = events
        self.now = now
        self.zone = zone
        events_json = json.dumps(events, sort_keys=True)
        self.settings = {
            "match": digest([self.name, self.model, events_json, SHORTLIST_SIZE]),
            "write": digest([self.name, self.model, BOOKING_LINK, chars_under, str(zone)]
                            + ([sms_footer()] if sms_footer() else [])),
            "check": digest([self.name, self.model, chars_under]),
        }

    def match_inputs(self, user: dict) -> str:
        """The whole profile: the scorer reads its fields."""
        return digest([json.dumps(user, sort_keys=True)])

    def write_inputs(self, user: dict, event: dict, choice: dict) -> str:
        """The profile, the event and the campaign the template is filled from."""
        return digest([json.dumps(user, sort_keys=True), json.dumps(event, sort_keys=True), choice["campaign"]])

    def check_inputs(self, user: dict, event: dict, choice: dict, message: str) -> str:
        """What the gate reads."""
        return digest([message, first_name_of(user), event["id"]])

    def shortlist(self, user: dict) -> list[dict]:
        """Phase 1: the scorer's top choices."""
        return _with_event_ids(offline_shortlist(user, self.events, self.now, k=SHORTLIST_SIZE), self.events)

    def write(self, user: dict, event: dict, choice: dict) -> dict:
        """Phase 3a: the campaign's template filled with the member's name and the event's facts."""
        link = booking_link(event)
        # The footer goes with the link, so the template's length budget counts it too.
        # Sized in segments as the gate counts them (texts.gate): one segment under --max-segments 1.
        one_segment = self.chars_under <= ONE_SEGMENT_CHARS + 1
        text = offline_message(user, event, choice["campaign"], self.now, self.zone, first_name_of(user),
                               message_tail(link), max_chars=self.chars_under - 1,
                               max_segments=1 if one_segment else 3)
        return {"message": finalize_message(text, link),
                "reasoning": "Offline template for the campaign, filled with the member's name and the event's facts.",
                "confidence": choice["confidence"]}

    def check(self, user: dict, event: dict, choice: dict, draft: dict) -> dict:
        """Phase 3b: the gate only (there is no reviewer offline)."""
        failures = gate(draft["message"], user, booking_link(event), self.chars_under)
        return _check_fields(draft["message"], draft["reasoning"], failures, None, [], None, False, None)

    def calls_by_stage(self) -> Optional[Counter]:
        """None: offline makes no calls."""
        return None

    def report_rows(self) -> list[tuple[str, Any]]:
        """Nothing to add: offline costs nothing."""
        return []
