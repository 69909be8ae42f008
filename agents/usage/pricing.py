"""Pricing: token counts of one call, and their exact cost at catalog prices (pure functions).

Money is exact: catalog rates have at most 3 decimals per 1M tokens, i.e. a whole number of
nano-dollars per token, so every cost is an integer number of nano-dollars (stored as such; SQL
sums stay exact) and surfaced as `Decimal`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from agents.llm.catalog import ModelConfig, get_model_config

NANO = Decimal("1e-9")


class UnpricedModelError(ValueError):
    """The model is in the catalog but has no price, so its cost cannot be computed."""


class TokenUsage(BaseModel):
    """Token counts of one call, normalised from LangChain's `usage_metadata`."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_usage_metadata(cls, usage: Mapping[str, Any], *, check: bool = True) -> TokenUsage:
        inp = usage.get("input_token_details") or {}
        out = usage.get("output_token_details") or {}
        u = cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            cached_input_tokens=int(inp.get("cache_read") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            reasoning_tokens=int(out.get("reasoning") or 0),
        )
        if check:
            u.check()
        return u

    def check(self) -> None:
        """Reject usage that cannot be priced consistently (details are subsets of totals)."""
        counts = (
            self.input_tokens,
            self.cached_input_tokens,
            self.output_tokens,
            self.reasoning_tokens,
        )
        if min(counts) < 0:
            raise ValueError(f"negative token count in usage: {self}")
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError("cached input tokens exceed input tokens (they are a subset)")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning tokens exceed output tokens (they are a subset)")


def _nano_rate(rate: Decimal) -> int:
    return int(rate * 1000)  # USD per 1M tokens -> nano-USD per token (exact, see catalog)


def cost_nanousd(model: ModelConfig, usage: TokenUsage) -> int:
    """Exact cost in nano-dollars. Reasoning tokens are inside output tokens: counted once."""
    if model.input is None or model.output is None:
        raise UnpricedModelError(f"model {model.id!r} has no price in the catalog")
    cached_rate = model.cached_input_rate
    assert cached_rate is not None
    uncached = usage.input_tokens - usage.cached_input_tokens
    return (
        uncached * _nano_rate(model.input)
        + usage.cached_input_tokens * _nano_rate(cached_rate)
        + usage.output_tokens * _nano_rate(model.output)
    )


def cost_parts_nanousd(model: ModelConfig, usage: TokenUsage) -> tuple[int, int, int]:
    """(input, of which cached input, output) nano-dollars; they sum to `cost_nanousd`."""
    if model.input is None or model.output is None:
        raise UnpricedModelError(f"model {model.id!r} has no price in the catalog")
    cached_rate = model.cached_input_rate
    assert cached_rate is not None
    cached = usage.cached_input_tokens * _nano_rate(cached_rate)
    uncached = (usage.input_tokens - usage.cached_input_tokens) * _nano_rate(model.input)
    return uncached + cached, cached, usage.output_tokens * _nano_rate(model.output)


def price_usage(model_id: str, usage_metadata: Mapping[str, Any] | TokenUsage) -> Decimal:
    """USD cost of one call's usage at catalog prices (cached input at the cached rate).

    Raises `UnknownModelError` for a model not in the catalog and `UnpricedModelError` for one
    without a price: never a silent $0.
    """
    usage = (
        usage_metadata
        if isinstance(usage_metadata, TokenUsage)
        else TokenUsage.from_usage_metadata(usage_metadata)
    )
    return cost_nanousd(get_model_config(model_id), usage) * NANO
