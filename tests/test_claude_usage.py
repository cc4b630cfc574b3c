"""utils.claude_usage: one call's cost, totals over many calls, and the price table."""

import threading

import pytest

from utils.claude_usage import PRICES, CallUsage, UsageTotals, price_for


def test_usage_totals_and_cost():
    totals = UsageTotals()
    totals.add(CallUsage(input_tokens=1_000_000, output_tokens=100_000, cache_creation_input_tokens=0,
                         cache_read_input_tokens=0, duration_ms=10, model="claude-sonnet-5-5"))
    totals.add(CallUsage(input_tokens=0, output_tokens=0, cache_creation_input_tokens=1_000_000,
                         cache_read_input_tokens=1_000_000, duration_ms=5, model="claude-sonnet-5-5"))
    # $2 input + $1 output + $2.50 cache write + $0.10 cache read
    assert totals.cost_usd() == pytest.approx(5.60)
    assert totals.cost_usd("claude-haiku-4-5") == pytest.approx(1.0 + 0.5 + 1.25 + 0.10)
    assert totals.as_dict() == {"calls": 2, "duration_ms": 15, "input_tokens": 1_000_000, "output_tokens": 100_000,
                                "cache_creation_input_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000}
    assert totals.cost_usd("claude-unknown") is None
    assert price_for("claude-haiku-4-5-20251001") == PRICES["claude-haiku-4-5"]


def test_call_cost_uses_the_answering_model_unless_told_otherwise():
    usage = CallUsage(input_tokens=500_000, output_tokens=200_000, model="claude-haiku-4-5-20251001")
    assert usage.cost_usd() == pytest.approx(0.5 * 1.00 + 0.2 * 5.00)
    assert usage.cost_usd("claude-sonnet-4-6") == pytest.approx(0.5 * 3.00 + 0.2 * 15.00)
    assert CallUsage(input_tokens=1, model="gpt-unknown").cost_usd() is None
    assert price_for("") is None


def test_totals_from_many_threads_add_up_exactly():
    totals = UsageTotals()
    one = CallUsage(input_tokens=3, output_tokens=5, cache_read_input_tokens=7, duration_ms=1, model="claude-sonnet-5")

    def add_many():
        for _ in range(500):
            totals.add(one)

    workers = [threading.Thread(target=add_many) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    snapshot = totals.as_dict()
    assert snapshot["calls"] == 4000
    assert (snapshot["input_tokens"], snapshot["output_tokens"], snapshot["cache_read_input_tokens"]) == \
        (12_000, 20_000, 28_000)
    assert totals.cost_usd() == pytest.approx(4000 * one.cost_usd())
