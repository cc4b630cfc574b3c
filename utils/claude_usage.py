"""Tokens, prices and cost of Claude calls: one call's usage, thread-safe totals, and the price table.

Kept apart from `utils.ai_prompt` (which sends the calls) so reports and benchmarks can price usage
without touching the client.
"""

import re
import threading
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ModelPrice:
    """List price of one model in USD per million tokens.

    Cache writes (5-minute TTL) and cache reads are priced as multiples of the input price.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_write_multiplier: float = 1.25
    cache_read_multiplier: float = 0.10


# The one price table (USD per million tokens, Claude API list prices, checked 2026-11).
# Sonnet 5.5 reads its cache at $0.10/MTok, half the usual 0.1x of input.
PRICES: dict[str, ModelPrice] = {
    "claude-sonnet-5-5": ModelPrice(2.00, 10.00, cache_read_multiplier=0.05),
    "claude-sonnet-5": ModelPrice(2.00, 10.00),
    "claude-sonnet-4-6": ModelPrice(3.00, 15.00),
    "claude-haiku-4-5": ModelPrice(1.00, 5.00),
}

_DATE_SUFFIX = re.compile(r"-\d{8}$")


def price_for(model: str) -> Optional[ModelPrice]:
    """The price of a model, also for a dated id such as "claude-haiku-4-5-20251001".

    Args:
        model: A model id.

    Returns:
        Its price, or None if the model is not in `PRICES`.
    """
    if model in PRICES:
        return PRICES[model]
    return PRICES.get(_DATE_SUFFIX.sub("", model or ""))


def _cost(price: ModelPrice, input_tokens: int, output_tokens: int,
          cache_creation: int, cache_read: int) -> float:
    dollars = (input_tokens * price.input_per_mtok
               + cache_creation * price.input_per_mtok * price.cache_write_multiplier
               + cache_read * price.input_per_mtok * price.cache_read_multiplier
               + output_tokens * price.output_per_mtok)
    return dollars / 1_000_000


@dataclass(frozen=True)
class CallUsage:
    """The tokens and time of one Claude call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    duration_ms: int = 0
    model: Optional[str] = None

    def cost_usd(self, model: Optional[str] = None) -> Optional[float]:
        """The list-price cost of this call.

        Args:
            model: Price as this model; default the model that answered.

        Returns:
            USD, or None if the model has no price in `PRICES`.
        """
        price = price_for(model or self.model or "")
        if price is None:
            return None
        return _cost(price, self.input_tokens, self.output_tokens,
                     self.cache_creation_input_tokens, self.cache_read_input_tokens)

    def as_dict(self) -> dict:
        """The token counts and duration as a plain dict (for JSON)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "duration_ms": self.duration_ms,
        }


_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class UsageTotals:
    """Usage added up over many calls; safe to share between worker threads.

    Attributes:
        calls: Number of calls added.
        input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens: Sums.
        duration_ms: Sum of the calls' durations (wall time spent in calls, across threads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_creation_input_tokens = 0
        self.cache_read_input_tokens = 0
        self.duration_ms = 0
        self._by_model: dict[Optional[str], dict[str, int]] = {}

    def add(self, usage: CallUsage) -> None:
        """Add one call's usage.

        Args:
            usage: What `call_claude_with_usage` returned in `ClaudeResult.usage`.
        """
        with self._lock:
            self.calls += 1
            self.duration_ms += usage.duration_ms
            per_model = self._by_model.setdefault(usage.model, dict.fromkeys(_TOKEN_FIELDS, 0))
            for name in _TOKEN_FIELDS:
                value = getattr(usage, name)
                setattr(self, name, getattr(self, name) + value)
                per_model[name] += value

    def cost_usd(self, model: Optional[str] = None) -> Optional[float]:
        """The list-price cost of everything added.

        Args:
            model: Price every token as this model; default each call's own model.

        Returns:
            USD, or None if a model involved has no price in `PRICES`.
        """
        with self._lock:
            if model is not None:
                price = price_for(model)
                if price is None:
                    return None
                return _cost(price, self.input_tokens, self.output_tokens,
                             self.cache_creation_input_tokens, self.cache_read_input_tokens)
            total = 0.0
            for name, counts in self._by_model.items():
                price = price_for(name or "")
                if price is None:
                    return None
                total += _cost(price, counts["input_tokens"], counts["output_tokens"],
                               counts["cache_creation_input_tokens"], counts["cache_read_input_tokens"])
            return total

    def as_dict(self) -> dict:
        """A consistent snapshot of the sums (for a stats table or JSON)."""
        with self._lock:
            snapshot = {"calls": self.calls, "duration_ms": self.duration_ms}
            snapshot.update({name: getattr(self, name) for name in _TOKEN_FIELDS})
            return snapshot


__all__: list[str] = ["PRICES", "ModelPrice", "price_for", "CallUsage", "UsageTotals"]
