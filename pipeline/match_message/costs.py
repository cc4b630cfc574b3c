"""What step 5 will cost before it runs, what the cache saved after, and what the SMS will cost.

Claude tokens are estimated from prompt sizes: characters / `chars_per_token`. The ratio is
`DEFAULT_CHARS_PER_TOKEN` (3.5, Anthropic's rule of thumb for English; our prompts hold names,
dates and numbers, which take more tokens per character than prose, so the lower figure errs on the
side of a higher estimate) unless the last call log shows the real one: `chars_per_token_from_log`
divides the characters each logged call sent by the input tokens it was billed for. Output tokens
come from the log's average per stage, else from `DEFAULT_OUTPUT_TOKENS`.

Prices come from the one price table in `utils.ai_prompt` (`CallUsage.cost_usd`); nothing here
repeats a price.
"""

import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from utils.claude_usage import CallUsage
from utils.errors import PipelineError
from utils.sms import GSM7, UCS2, sms_encoding, sms_segments

DEFAULT_CHARS_PER_TOKEN = 3.5
# Anthropic does not cache a prefix shorter than this (Sonnet and Opus; Haiku needs 2048): such a
# prefix is billed as plain input on every call.
MIN_CACHEABLE_TOKENS = 1024
# Output tokens per call when there is no call log: a JSON answer of one or two sentences plus an SMS.
DEFAULT_OUTPUT_TOKENS = {"match": 120, "write": 150, "check": 220, "rewrite": 150}
FALLBACK_OUTPUT_TOKENS = 200

SMS_PRICE_ENV = "SMS_PRICE_PER_SEGMENT_USD"
# USD per SMS segment sent in the US: Twilio's list price for long codes, before carrier fees.
DEFAULT_SMS_PRICE_PER_SEGMENT_USD = 0.0083

CALL_LOG_GLOB = "claude_calls_*.jsonl"
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


# --------------------------------------------------------------------------- call log


def latest_call_log(log_dir: Path) -> Optional[Path]:
    """The newest `claude_calls_YYYYMMDD_HHMMSS.jsonl` in a folder (the stamp sorts by time), or None."""
    logs = sorted(Path(log_dir).glob(CALL_LOG_GLOB))
    return logs[-1] if logs else None


def load_call_log(path: Path) -> list[dict]:
    """The successful calls of a call log: entries with a usage, skipping lines that are not JSON objects."""
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash; the others are still good averages
            if isinstance(entry, dict) and isinstance(entry.get("usage"), dict):
                entries.append(entry)
    return entries


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and value >= 0 else 0


def _billed_input(usage: Mapping[str, Any]) -> int:
    return sum(_count(usage, name) for name in ("input_tokens", "cache_creation_input_tokens",
                                                "cache_read_input_tokens"))


def chars_per_token_from_log(entries: Iterable[dict]) -> Optional[float]:
    """The measured characters per input token over logged calls (system + prompt text), or None."""
    chars = tokens = 0
    for entry in entries:
        billed = _billed_input(entry["usage"])
        if billed:
            chars += len(entry.get("system") or "") + len(entry.get("prompt") or "")
            tokens += billed
    return chars / tokens if tokens else None


def output_tokens_from_log(entries: Iterable[dict]) -> dict[str, float]:
    """The average output tokens per call of each stage ("purpose") in the log."""
    totals: Counter = Counter()
    calls: Counter = Counter()
    for entry in entries:
        stage = entry.get("purpose")
        if stage:
            totals[stage] += _count(entry["usage"], "output_tokens")
            calls[stage] += 1
    return {stage: totals[stage] / calls[stage] for stage in calls}


@dataclass(frozen=True)
class CallLogAverages:
    """What the last call log says about token counts.

    Attributes:
        path: The call log read, or None when there is none.
        calls: Successful calls in it.
        chars_per_token: The measured ratio, else `DEFAULT_CHARS_PER_TOKEN`.
        output_tokens: Average output tokens per call of each stage seen.
    """

    path: Optional[Path]
    calls: int
    chars_per_token: float
    output_tokens: dict


def call_log_averages(log_dir: Path) -> CallLogAverages:
    """The ratio and output averages of the newest call log in `log_dir` (defaults when there is none)."""
    path = latest_call_log(log_dir)
    entries = load_call_log(path) if path is not None else []
    return CallLogAverages(path, len(entries), chars_per_token_from_log(entries) or DEFAULT_CHARS_PER_TOKEN,
                           output_tokens_from_log(entries))


# --------------------------------------------------------------------------- Claude estimate


@dataclass(frozen=True)
class StageEstimate:
    """Estimated tokens and cost of one stage (match, write, check or rewrite) of a run.

    Attributes:
        stage: The call log's purpose for the stage.
        calls: Number of calls.
        input_tokens, cache_write_tokens, cache_read_tokens, output_tokens: Totals over the calls.
        usd: List-price cost, or None when the model has no price.
    """

    stage: str
    calls: int
    input_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    usd: Optional[float]


def tokens_for(chars: float, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> int:
    """The estimated tokens of a text of `chars` characters (rounded up)."""
    return math.ceil(chars / chars_per_token) if chars > 0 else 0


def estimate_stage(stage: str, calls: int, *, prompt_chars: float, model: str, cached_chars: float = 0,
                   output_tokens: Optional[float] = None,
                   chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> StageEstimate:
    """Estimate one stage from its prompt sizes.

    The cached prefix (the matching stage's event catalog) is written to the cache by the first call
    and read by every other one; a prefix under `MIN_CACHEABLE_TOKENS` is not cached and counts as input.

    Args:
        stage: "match", "write", "check" or "rewrite".
        calls: How many calls the stage will make.
        prompt_chars: Average characters per call sent uncached (the filled prompt).
        model: The model id, for the price.
        cached_chars: Characters of the cached system prefix shared by every call (0 for none).
        output_tokens: Average output tokens per call; default `DEFAULT_OUTPUT_TOKENS[stage]`.
        chars_per_token: The ratio (see the module docstring).

    Returns:
        The estimate.
    """
    if calls <= 0:
        return StageEstimate(stage, 0, 0, 0, 0, 0, 0.0)
    per_call_input = tokens_for(prompt_chars, chars_per_token)
    cached = tokens_for(cached_chars, chars_per_token)
    if cached < MIN_CACHEABLE_TOKENS:
        per_call_input += cached
        cached = 0
    per_call_output = DEFAULT_OUTPUT_TOKENS.get(stage, FALLBACK_OUTPUT_TOKENS) if output_tokens is None \
        else output_tokens
    usage = CallUsage(
        input_tokens=per_call_input * calls,
        output_tokens=math.ceil(per_call_output * calls),
        cache_creation_input_tokens=cached,
        cache_read_input_tokens=cached * (calls - 1),
    )
    return StageEstimate(stage, calls, usage.input_tokens, usage.cache_creation_input_tokens,
                         usage.cache_read_input_tokens, usage.output_tokens, usage.cost_usd(model))


def format_usd(usd: Optional[float]) -> str:
    """A dollar amount for the console, e.g. "$0.0123"; "n/a (no price)" for a model without a price."""
    return "n/a (no price)" if usd is None else f"${usd:.4f}"


def total_estimate(stages: Iterable[StageEstimate]) -> StageEstimate:
    """The stages added up, as one estimate named "total" (usd None if any stage has no price)."""
    stages = list(stages)
    costs = [stage.usd for stage in stages]
    return StageEstimate(
        "total", sum(s.calls for s in stages), sum(s.input_tokens for s in stages),
        sum(s.cache_write_tokens for s in stages), sum(s.cache_read_tokens for s in stages),
        sum(s.output_tokens for s in stages), None if None in costs else sum(costs),
    )


# --------------------------------------------------------------------------- cache savings


def cache_savings_usd(usage: Any, model: str) -> Optional[float]:
    """What the cache saved: the cached tokens' price as plain input, minus what they cost.

    Cache writes cost more than plain input, so a run that only wrote the cache saved a negative amount.

    Args:
        usage: A `UsageTotals`, a `CallUsage` or a mapping with `cache_creation_input_tokens` and
            `cache_read_input_tokens`.
        model: The model the tokens are priced as.

    Returns:
        USD (negative when writes outweigh reads), or None when the model has no price.
    """
    counts = usage.as_dict() if hasattr(usage, "as_dict") else usage
    written = _count(counts, "cache_creation_input_tokens")
    read = _count(counts, "cache_read_input_tokens")
    uncached = CallUsage(input_tokens=written + read).cost_usd(model)
    actual = CallUsage(cache_creation_input_tokens=written, cache_read_input_tokens=read).cost_usd(model)
    if uncached is None or actual is None:
        return None
    return uncached - actual


# --------------------------------------------------------------------------- SMS


def sms_price_per_segment(environ: Optional[Mapping[str, str]] = None) -> float:
    """The USD price of one SMS segment: $SMS_PRICE_PER_SEGMENT_USD, else `DEFAULT_SMS_PRICE_PER_SEGMENT_USD`.

    Raises:
        PipelineError: The variable is set but is not a number >= 0.
    """
    text = (os.environ if environ is None else environ).get(SMS_PRICE_ENV, "").strip()
    if not text:
        return DEFAULT_SMS_PRICE_PER_SEGMENT_USD
    try:
        price = float(text)
    except ValueError:
        price = -1.0
    if not math.isfinite(price) or price < 0:
        raise PipelineError(f"{SMS_PRICE_ENV} must be a price in USD per segment >= 0 (e.g. 0.0083), "
                            f"got {text!r}: fix it in the environment or .env")
    return price


def sms_cost_usd(segments: int, price_per_segment: Optional[float] = None) -> float:
    """The cost of sending `segments` SMS segments (default price: `sms_price_per_segment()`)."""
    price = sms_price_per_segment() if price_per_segment is None else price_per_segment
    return segments * price


@dataclass(frozen=True)
class SegmentMix:
    """How many segments a set of SMS take.

    Attributes:
        messages: Messages counted (empty or missing ones are left out).
        by_segments: Messages of 1, 2 and 3-or-more segments, keyed "1", "2" and "3+".
        by_encoding: Messages per encoding ("GSM-7", "UCS-2").
        segments: Total segments, i.e. what is billed.
    """

    messages: int
    by_segments: dict
    by_encoding: dict
    segments: int

    def cost_usd(self, price_per_segment: Optional[float] = None) -> float:
        """The SMS cost of sending all the messages once."""
        return sms_cost_usd(self.segments, price_per_segment)


def segment_mix(messages: Iterable[Optional[str]]) -> SegmentMix:
    """The segment mix of a list of SMS (full text as sent, link included); None or "" is skipped."""
    by_segments = {"1": 0, "2": 0, "3+": 0}
    by_encoding = {GSM7: 0, UCS2: 0}
    count = total = 0
    for message in messages:
        if not isinstance(message, str) or not message:
            continue
        segments = sms_segments(message)
        count += 1
        total += segments
        by_segments["3+" if segments >= 3 else str(segments)] += 1
        by_encoding[sms_encoding(message)] += 1
    return SegmentMix(count, by_segments, by_encoding, total)
