"""Asking Claude for one JSON answer, and checking that answer before step 5 uses it.

Holds the answer schemas (sent as structured output), their validators, and `ClaudeAsker`, which adds
a corrective retry, bounded extra rounds for transient failures, adaptive concurrency and the cache
warm-up on top of `utils.ai_prompt.call_claude_with_usage`.
"""

import json
import threading
import time
from collections import Counter
from typing import Any, Callable, Optional

from pipeline.match_message.texts import text_of
from utils import ai_prompt
from utils.claude_usage import UsageTotals
from utils.json_answer import parse_json_response
from utils.people import is_number
from utils.rules import CAMPAIGN_FILL_TABLE, CAMPAIGN_NEWCOMER, CAMPAIGN_RETURN
from utils.throttle import AdaptiveLimiter

CAMPAIGNS = (CAMPAIGN_NEWCOMER, CAMPAIGN_FILL_TABLE, CAMPAIGN_RETURN)
#: How many ranked events a member's shortlist holds at most.
SHORTLIST_SIZE = 3

_CHOICE_SCHEMA = {
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
SHORTLIST_SCHEMA = {
    "type": "object",
    "properties": {"choices": {"type": "array", "items": _CHOICE_SCHEMA}},
    "required": ["choices"],
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

Ask = Callable[..., dict]


class AnswerError(Exception):
    """The model's answer stayed invalid after one corrective retry; the member is marked failed."""



def _validate_confidence(answer: dict) -> list[str]:
    confidence = answer.get("confidence")
    if is_number(confidence) and 0 <= confidence <= 100:
        return []
    return [f"confidence must be a number from 0 to 100, got {confidence!r}"]


def validate_match(answer: Any, event_count: int) -> list[str]:
    """What is wrong with one shortlist choice (empty when it is valid)."""
    if not isinstance(answer, dict):
        return ["the answer must be a JSON object"]
    problems = []
    index = answer.get("event_index")
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < event_count):
        problems.append(f"event_index must be an integer from 0 to {event_count - 1}, got {index!r}")
    if answer.get("campaign") not in CAMPAIGNS:
        problems.append(f"campaign must be one of {', '.join(CAMPAIGNS)}, got {answer.get('campaign')!r}")
    problems += _validate_confidence(answer)
    if not text_of(answer.get("reasoning")):
        problems.append("reasoning must be a non-empty string")
    return problems


def validate_shortlist(answer: Any, event_count: int) -> list[str]:
    """What is wrong with a shortlist answer: 1 to SHORTLIST_SIZE valid choices of distinct events."""
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        return ['the answer must be a JSON object with a "choices" list']
    choices = answer["choices"]
    if not 1 <= len(choices) <= SHORTLIST_SIZE:
        return [f"choices must hold 1 to {SHORTLIST_SIZE} events, got {len(choices)}"]
    problems = []
    for number, choice in enumerate(choices, start=1):
        problems += [f"choice {number}: {problem}" for problem in validate_match(choice, event_count)]
    indexes = [choice.get("event_index") for choice in choices if isinstance(choice, dict)]
    if not problems and len(set(indexes)) != len(indexes):
        problems.append("each choice must name a different event_index")
    return problems


def validate_generation(answer: Any) -> list[str]:
    """What is wrong with a message-generation answer (empty when it is valid)."""
    if not isinstance(answer, dict):
        return ["the answer must be a JSON object"]
    problems = []
    if not text_of(answer.get("message")):
        problems.append("message must be a non-empty string")
    if not text_of(answer.get("reasoning")):
        problems.append("reasoning must be a non-empty string")
    return problems + _validate_confidence(answer)


def validate_quality(answer: Any) -> list[str]:
    """What is wrong with a quality-check answer (empty when it is valid)."""
    if not isinstance(answer, dict):
        return ["the answer must be a JSON object"]
    problems = []
    if not (is_number(answer.get("quality_score")) and 0 <= answer["quality_score"] <= 100):
        problems.append(f"quality_score must be a number from 0 to 100, got {answer.get('quality_score')!r}")
    if not isinstance(answer.get("approved"), bool):
        problems.append(f"approved must be true or false, got {answer.get('approved')!r}")
    if not isinstance(answer.get("issues", []), list):
        problems.append("issues must be a list of strings")
    improved = answer.get("improved_message")
    if improved is not None and not isinstance(improved, str):
        problems.append("improved_message must be a string or null")
    return problems


def is_rate_limited(exc: "ai_prompt.ClaudeError") -> bool:
    """True for a 429 (rate limit) or 529 (overloaded) that outlasted the SDK's retries."""
    return exc.status_code in (429, 529) or exc.error_type in ("rate_limit_error", "overloaded_error")


def is_transient(exc: "ai_prompt.ClaudeError") -> bool:
    """True for failures worth another round: rate limits, 5xx, a garbled answer or a lost connection.

    Never for `ClaudeUnreachableError`: Claude could not be reached several calls in a row, so another
    round would only wait; the run stops instead (step 5 keeps what it finished).
    """
    if isinstance(exc, ai_prompt.ClaudeUnreachableError):
        return False
    return is_rate_limited(exc) or exc.status_code is None or exc.status_code >= 500


class BudgetReached(BaseException):
    """The run's actual Claude spend reached --max-cost: start no more calls, keep what is finished.

    A BaseException, like Ctrl-C, so that no per-member `except Exception` turns it into a failed record.
    """


class ClaudeAsker:
    """Ask Claude for one JSON answer: structured output, validation, one corrective retry.

    Rate-limit and overload errors that outlast the SDK's own retries slow the whole worker pool
    down (fewer calls in flight); they, server errors and garbled answers are tried again up to
    RATE_LIMIT_ROUNDS times in all (docs/5-match-message.md, "Retries", shows how this stacks with the
    SDK's retries). The first call with a cached system block goes alone, so that the calls after it
    read the cache instead of each writing it.
    """

    RATE_LIMIT_ROUNDS = 3

    def __init__(self, model: str, usage: UsageTotals, limiter: AdaptiveLimiter, *, step: str,
                 max_tokens: int, logger=None, pause_seconds: float = 2.0, max_cost_usd: Optional[float] = None):
        self.model = model
        self.max_cost_usd = max_cost_usd  # --max-cost: no call starts once the spend has reached it
        self.usage = usage
        self.limiter = limiter
        self.step = step
        self.max_tokens = max_tokens
        self.logger = logger
        self.pause_seconds = pause_seconds
        self.failed_calls = 0
        self.calls_by_purpose: Counter = Counter()
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
                answer = parse_json_response(text)
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
            spent = self.usage.cost_usd(self.model) if self.max_cost_usd is not None else None
            if spent is not None and spent >= self.max_cost_usd:
                raise BudgetReached(f"the Claude spend ${spent:.4f} reached --max-cost ${self.max_cost_usd:.4f}")
            with self.limiter:
                with self._count_lock:
                    self.calls_by_purpose[purpose] += 1
                try:
                    result = ai_prompt.call_claude_with_usage(
                        prompt, model=self.model, temperature=temperature, max_tokens=self.max_tokens,
                        logger=self.logger, system=system, json_schema=schema, purpose=purpose, step=self.step,
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
                    # A lost connection is tried again at once: a few in a row make ai_prompt raise
                    # ClaudeUnreachableError, which stops the run instead of pausing member after member.
                    pause = 0.0 if ai_prompt.connection_tracker().failures else self.pause_seconds * round_number
                else:
                    self.usage.add(result.usage)
                    return result.text
            time.sleep(pause)
        raise AssertionError("unreachable")
