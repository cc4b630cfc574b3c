"""pipeline.match_message.planning: what --max-cost compares when part of the estimate is only "up to"."""

import pytest

from pipeline.match_message.costs import StageEstimate
from pipeline.match_message.planning import RunEstimate, check_max_cost
from utils.errors import PipelineError


def _total(usd: float, calls: int = 10) -> StageEstimate:
    return StageEstimate("total", calls, 1000, 0, 0, 100, usd)


def test_max_cost_compares_the_certain_part_only():
    # $0.01 for sure, up to $0.04 more if re-matched members get new events: a $0.02 limit lets it start.
    check_max_cost(RunEstimate([_total(0.01)], possible=_total(0.04, 24)), 0.02)


def test_max_cost_above_the_certain_part_names_the_possible_extra():
    with pytest.raises(PipelineError) as caught:
        check_max_cost(RunEstimate([_total(0.03)], possible=_total(0.04, 24)), 0.02)
    message = str(caught.value)
    assert "estimated Claude cost $0.0300 (and up to $0.0400 more if re-matched members get new events)" in message
    assert "above --max-cost $0.0200" in message and "nothing was started" in message


def test_no_limit_no_price_or_offline_never_refuses():
    check_max_cost(RunEstimate([_total(5.0)]), None)
    check_max_cost(RunEstimate([StageEstimate("total", 10, 1000, 0, 0, 100, None)]), 0.01)
    check_max_cost(None, 0.01)
