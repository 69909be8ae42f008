"""Pricing is exact: cached input at the cached rate, reasoning inside output, never silent $0."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agents.llm.catalog import ModelConfig, UnknownModelError
from agents.usage.pricing import TokenUsage, UnpricedModelError, cost_nanousd, price_usage


def usage(inp: int, out: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "input_token_details": {"cache_read": cached},
        "output_token_details": {"reasoning": reasoning},
    }


def test_plain_input_and_output() -> None:
    # gpt-4o-mini: 0.15 in / 0.60 out per 1M
    assert price_usage("gpt-4o-mini", usage(1_000_000, 1_000_000)) == Decimal("0.75")
    assert price_usage("gpt-4o", usage(1000, 500)) == Decimal("0.0075")


def test_cached_input_at_the_cached_rate() -> None:
    # gpt-4.1: 2.00 in, 0.50 cached, 8.00 out. 1000 in of which 600 cached, 100 out
    expected = (Decimal(400) * 2 + Decimal(600) * Decimal("0.5") + Decimal(100) * 8) / 10**6
    assert price_usage("gpt-4.1", usage(1000, 100, cached=600)) == expected
    assert expected == Decimal("0.0019")


def test_no_cache_discount_bills_cached_at_input_rate() -> None:
    assert price_usage("gpt-4-turbo", usage(1000, 0, cached=1000)) == price_usage(
        "gpt-4-turbo", usage(1000, 0)
    )


def test_reasoning_tokens_are_counted_once() -> None:
    with_reasoning = price_usage("o3", usage(100, 500, reasoning=400))
    assert with_reasoning == price_usage("o3", usage(100, 500))
    assert with_reasoning == (Decimal(100) * 2 + Decimal(500) * 8) / 10**6


def test_tiny_rates_stay_exact() -> None:
    # gpt-5-nano cached input 0.005 per 1M = 5 nano-dollars per token
    assert price_usage("gpt-5-nano", usage(3, 0, cached=3)) == Decimal("0.000000015")
    total = sum((price_usage("gpt-5-nano", usage(7, 3, cached=2)) for _ in range(1000)), Decimal(0))
    assert total == 1000 * price_usage("gpt-5-nano", usage(7, 3, cached=2))


def test_local_model_is_free() -> None:
    assert price_usage("qwen2.5-coder-0.5b-instruct", usage(10_000, 10_000)) == 0


def test_unknown_model_raises() -> None:
    with pytest.raises(UnknownModelError, match="gpt-4o-mini"):
        price_usage("gpt-42", usage(1, 1))


def test_unpriced_model_raises() -> None:
    m = ModelConfig.model_validate(
        {
            "id": "mystery",
            "tier": "mini",
            "capabilities": ["chat"],
            "input": None,
            "output": None,
            "context_window": 1000,
            "max_output_tokens": 10,
            "priced_at": "2026-01-01",
        }
    )
    with pytest.raises(UnpricedModelError):
        cost_nanousd(m, TokenUsage(input_tokens=1))


@pytest.mark.parametrize(
    "bad",
    [usage(10, 1, cached=11), usage(10, 1, reasoning=2), usage(-1, 1)],
)
def test_inconsistent_usage_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        price_usage("gpt-4o", bad)


def test_snapshot_name_is_priced_as_its_family() -> None:
    assert price_usage("gpt-4o-2024-08-06", usage(10, 10)) == price_usage("gpt-4o", usage(10, 10))
