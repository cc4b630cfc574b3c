"""pipeline.match_message.costs: token and USD estimates, cache savings, SMS cost and segment mix.

Prices used (utils.ai_prompt.PRICES, USD per million tokens): claude-sonnet-4-6 is $3 input, $15 output,
cache writes 1.25x input ($3.75), cache reads 0.1x input ($0.30). Every expected figure is worked out
by hand in the comment next to it.
"""

import json

import pytest

from pipeline.match_message import costs
from pipeline.match_message.costs import (
    SegmentMix, cache_savings_usd, chars_per_token_from_log, estimate_stage, latest_call_log, load_call_log,
    output_tokens_from_log, segment_mix, sms_cost_usd, sms_price_per_segment, tokens_for, total_estimate,
)
from utils.claude_usage import CallUsage, UsageTotals
from utils.errors import PipelineError

MODEL = "claude-sonnet-4-6"


def test_tokens_for_rounds_up_at_the_documented_ratio():
    assert costs.DEFAULT_CHARS_PER_TOKEN == 3.5
    assert tokens_for(700) == 200  # 700 / 3.5
    assert tokens_for(701) == 201  # 200.3 rounded up
    assert tokens_for(0) == 0
    assert tokens_for(400, chars_per_token=4.0) == 100


def test_estimate_stage_with_a_cached_catalog():
    # 10 calls; 700 chars of prompt = 200 tokens each; 14,000 chars of catalog = 4,000 tokens,
    # written once and read 9 times; 120 output tokens each (the match default).
    estimate = estimate_stage("match", 10, prompt_chars=700, cached_chars=14_000, model=MODEL)
    assert (estimate.input_tokens, estimate.cache_write_tokens, estimate.cache_read_tokens,
            estimate.output_tokens) == (2_000, 4_000, 36_000, 1_200)
    # 2,000 x 3 + 4,000 x 3.75 + 36,000 x 0.30 + 1,200 x 15 = 6,000 + 15,000 + 10,800 + 18,000 = 49,800 per M
    assert estimate.usd == pytest.approx(0.0498)


def test_a_prefix_too_short_to_cache_is_billed_as_input_on_every_call():
    # 350 chars = 100 tokens < 1024: each call sends 200 + 100 = 300 input tokens.
    estimate = estimate_stage("match", 10, prompt_chars=700, cached_chars=350, model=MODEL, output_tokens=0)
    assert (estimate.input_tokens, estimate.cache_write_tokens, estimate.cache_read_tokens) == (3_000, 0, 0)
    assert estimate.usd == pytest.approx(3_000 * 3 / 1e6)


def test_estimate_stage_uses_the_given_ratio_and_output_average():
    # 4 calls x 1,000 chars / 4.0 = 250 tokens -> 1,000 input; 2.5 x 4 = 10 output tokens.
    estimate = estimate_stage("write", 4, prompt_chars=1_000, model=MODEL, output_tokens=2.5, chars_per_token=4.0)
    assert (estimate.input_tokens, estimate.output_tokens) == (1_000, 10)
    assert estimate.usd == pytest.approx((1_000 * 3 + 10 * 15) / 1e6)


def test_no_calls_cost_nothing_and_an_unknown_model_has_no_price():
    assert estimate_stage("check", 0, prompt_chars=900, model=MODEL).usd == 0.0
    assert estimate_stage("check", 3, prompt_chars=900, model="claude-unknown-9").usd is None


def test_total_estimate_adds_stages_up():
    match = costs.StageEstimate("match", 2, 10, 20, 30, 40, 0.5)
    write = costs.StageEstimate("write", 3, 1, 2, 3, 4, 0.25)
    assert total_estimate([match, write]) == costs.StageEstimate("total", 5, 11, 22, 33, 44, 0.75)
    unpriced = costs.StageEstimate("check", 1, 1, 1, 1, 1, None)
    assert total_estimate([match, unpriced]).usd is None


def _entry(purpose, *, system=None, prompt="", **usage):
    counts = dict.fromkeys(("input_tokens", "output_tokens", "cache_creation_input_tokens",
                            "cache_read_input_tokens"), 0)
    counts.update(usage)
    return {"purpose": purpose, "model": MODEL, "system": system, "prompt": prompt, "usage": counts}


def _write_log(path, lines):
    path.write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines),
                    encoding="utf-8")


def test_load_call_log_keeps_successful_calls_and_skips_broken_lines(tmp_path):
    log = tmp_path / "claude_calls_20261125_120000.jsonl"
    ok = _entry("match", prompt="x", input_tokens=5)
    failed = {"purpose": "write", "usage": None, "error": "overloaded"}
    _write_log(log, [ok, failed, "{not json\n", "[1, 2]\n", _entry("write", prompt="y", output_tokens=3)])
    entries = load_call_log(log)
    assert [entry["purpose"] for entry in entries] == ["match", "write"]


def test_latest_call_log_picks_the_newest_stamp(tmp_path):
    assert latest_call_log(tmp_path) is None
    for name in ("claude_calls_20261125_090000.jsonl", "claude_calls_20261101_235959.jsonl",
                 "match_message_20261130_000000.log"):
        (tmp_path / name).write_text("", encoding="utf-8")
    assert latest_call_log(tmp_path).name == "claude_calls_20261125_090000.jsonl"


def test_ratio_and_output_averages_from_a_call_log():
    entries = [
        # 3,000 + 1,000 chars for 100 + 900 billed input tokens (cache read counts as input)
        _entry("match", system="s" * 3_000, prompt="p" * 1_000, input_tokens=100, cache_read_input_tokens=900,
               output_tokens=100),
        # 600 chars for 200 tokens
        _entry("match", prompt="p" * 600, input_tokens=200, output_tokens=140),
        _entry("write", prompt="", output_tokens=150),  # no input billed: ignored by the ratio
    ]
    # (4,000 + 600) chars / (1,000 + 200) tokens
    assert chars_per_token_from_log(entries) == pytest.approx(4_600 / 1_200)
    assert output_tokens_from_log(entries) == {"match": 120.0, "write": 150.0}
    assert chars_per_token_from_log([]) is None


def test_cache_savings_from_usage_totals():
    totals = UsageTotals()
    totals.add(CallUsage(input_tokens=500, output_tokens=50, cache_creation_input_tokens=1_000, model=MODEL))
    totals.add(CallUsage(input_tokens=500, output_tokens=50, cache_read_input_tokens=9_000, model=MODEL))
    # Uncached: 10,000 x $3 = $0.03. Cached: 1,000 x 3.75 + 9,000 x 0.30 = 3,750 + 2,700 -> $0.00645.
    assert cache_savings_usd(totals, MODEL) == pytest.approx(0.03 - 0.00645)
    # Sonnet 5.5 reads at 0.05x of $2: uncached 10,000 x 2 = $0.02; cached 1,000 x 2.5 + 9,000 x 0.1 -> $0.0034.
    assert cache_savings_usd(totals, "claude-sonnet-5-5") == pytest.approx(0.02 - 0.0034)


def test_cache_savings_are_negative_when_the_cache_was_only_written():
    # 1,000 tokens written: $0.00375 instead of $0.003.
    usage = {"cache_creation_input_tokens": 1_000, "cache_read_input_tokens": 0}
    assert cache_savings_usd(usage, MODEL) == pytest.approx(-0.00075)
    assert cache_savings_usd(usage, "claude-unknown-9") is None


def test_sms_price_defaults_and_env_override():
    assert sms_price_per_segment({}) == 0.0083
    assert sms_price_per_segment({"SMS_PRICE_PER_SEGMENT_USD": " 0.01 "}) == 0.01
    assert sms_price_per_segment({"SMS_PRICE_PER_SEGMENT_USD": "0"}) == 0.0


@pytest.mark.parametrize("bad", ["abc", "-0.01", "nan", "inf", "$0.01"])
def test_sms_price_refuses_a_bad_value_with_the_variable_name(bad):
    with pytest.raises(PipelineError, match="SMS_PRICE_PER_SEGMENT_USD must be a price"):
        sms_price_per_segment({"SMS_PRICE_PER_SEGMENT_USD": bad})


def test_sms_cost_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SMS_PRICE_PER_SEGMENT_USD", "0.02")
    assert sms_cost_usd(10) == pytest.approx(0.2)
    assert sms_cost_usd(10, 0.0083) == pytest.approx(0.083)


def test_segment_mix_by_segments_and_encoding(monkeypatch):
    monkeypatch.delenv("SMS_PRICE_PER_SEGMENT_USD", raising=False)
    messages = [
        "a" * 160,  # GSM-7, 1 segment (160 fit in one)
        "a" * 161,  # GSM-7, 2 segments (153 per part)
        "a" * 307,  # GSM-7, 3 segments (306 fit in two parts)
        "ж" * 70,  # UCS-2, 1 segment
        "ж" * 71,  # UCS-2, 2 segments (67 per part)
        None, "",  # no message (failed, no_event): not counted
    ]
    mix = segment_mix(messages)
    assert mix == SegmentMix(messages=5, by_segments={"1": 2, "2": 2, "3+": 1},
                             by_encoding={"GSM-7": 3, "UCS-2": 2}, segments=1 + 2 + 3 + 1 + 2)
    assert mix.cost_usd() == pytest.approx(9 * 0.0083)
    assert segment_mix([]).segments == 0


def test_call_log_averages_of_the_newest_log_or_defaults(tmp_path):
    empty = costs.call_log_averages(tmp_path)
    assert (empty.path, empty.calls, empty.chars_per_token, empty.output_tokens) == (None, 0, 3.5, {})
    _write_log(tmp_path / "claude_calls_20261101_000000.jsonl", [_entry("match", prompt="p" * 100, input_tokens=50)])
    _write_log(tmp_path / "claude_calls_20261102_000000.jsonl",
               [_entry("write", prompt="p" * 500, input_tokens=100, output_tokens=40)])
    newest = costs.call_log_averages(tmp_path)
    assert newest.path.name == "claude_calls_20261102_000000.jsonl"
    assert (newest.calls, newest.chars_per_token, newest.output_tokens) == (1, 5.0, {"write": 40.0})


def test_estimate_from_a_calibrating_log_matches_the_actual_usage_at_the_fake(anthropic_fake, tmp_path):
    """Estimate 6 match calls from the log of 4 earlier ones, then make them and compare with the bill."""
    from utils import ai_prompt

    catalog = "[0] Friday Supper Club at Casa Mezcal, 5 of 10 seats taken. " * 100  # ~6,000 chars, cached
    system = [{"type": "text", "text": catalog, "cache_control": {"type": "ephemeral"}}]
    anthropic_fake.responder = lambda body: {"event_index": 0, "campaign": "Fill the Table",
                                             "reasoning": "Likes tacos and the table is half empty.",
                                             "confidence": 80}

    def run(prompts, system, usage):
        for prompt in prompts:
            ai_prompt.call_claude_with_usage(prompt, MODEL, system=system, purpose="match", usage=usage)

    run([f"Member profile: member {n} likes jazz, hiking and Mexican food. " * 6 for n in range(4)], system,
        UsageTotals())
    averages = costs.call_log_averages(tmp_path / "logs")
    assert averages.calls == 4

    prompts = [f"Member profile: member {n} is new and loves cooking classes. " * 7 for n in range(6)]
    # Next week's catalog: same size, not in the cache yet.
    system = [dict(system[0], text=catalog.replace("Friday", "Sunday"))]
    estimate = estimate_stage("match", len(prompts), prompt_chars=sum(map(len, prompts)) / len(prompts),
                              cached_chars=len(catalog), model=MODEL, output_tokens=averages.output_tokens["match"],
                              chars_per_token=averages.chars_per_token)
    actual = UsageTotals()
    run(prompts, system, actual)

    assert estimate.cache_write_tokens == pytest.approx(actual.cache_creation_input_tokens, rel=0.02)
    assert estimate.cache_read_tokens == pytest.approx(actual.cache_read_input_tokens, rel=0.02)
    assert estimate.input_tokens == pytest.approx(actual.input_tokens, rel=0.05)
    assert estimate.output_tokens == pytest.approx(actual.output_tokens, rel=0.02)
    assert estimate.usd == pytest.approx(actual.cost_usd(MODEL), rel=0.03)
