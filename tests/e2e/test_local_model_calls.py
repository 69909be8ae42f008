"""Real calls to the embedded model through the factory, with no key and no network."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from agents.llm.catalog import MODEL_CATALOG
from agents.llm.factory import create_chat_model, resolve_route
from agents.llm.weights import LOCAL_MODEL_ID
from agents.settings import Settings
from agents.usage.ledger import get_ledger, usage_report
from agents.usage.pricing import price_usage

pytestmark = pytest.mark.e2e


@pytest.fixture
def local_settings(
    make_settings: Callable[..., Settings], local_gguf: Path, local_port: int
) -> Settings:
    return make_settings(
        QUANT_GENAI_LOCAL_MODEL_PATH=str(local_gguf),
        QUANT_GENAI_LOCAL_PORT=local_port,
        QUANT_GENAI_LOCAL_CTX=4096,
    )


def test_no_key_routes_every_model_to_the_local_model(local_settings: Settings) -> None:
    assert not local_settings.uses_openai
    for mid in ("gpt-4o-mini", "gpt-4o", "o3", "gpt-5"):
        route = resolve_route(MODEL_CATALOG[mid], local_settings)
        assert (route.kind, route.served_model, route.billed) == ("local", LOCAL_MODEL_ID, False)
        assert route.timeout_s == local_settings.local_timeout_s == 300


def test_real_call_records_zero_cost_and_the_list_price(local_settings: Settings) -> None:
    chat = create_chat_model(
        "narrative_report", user_id="e2e", settings=local_settings, max_tokens=40, temperature=0
    )
    reply = chat.invoke(
        [("system", "Answer in one short sentence."), ("user", "What is a moving average?")]
    )
    assert isinstance(reply.content, str) and len(reply.content.split()) >= 3
    usage = reply.usage_metadata
    assert usage and usage["input_tokens"] > 5 and 0 < usage["output_tokens"] <= 40
    (row,) = get_ledger(local_settings).rows()
    assert row["route"] == "local" and row["served_model"] == LOCAL_MODEL_ID
    assert row["model"] == "gpt-4o-mini" and row["service"] == "narrative_report"
    assert row["input_tokens"] == usage["input_tokens"]
    assert row["output_tokens"] == usage["output_tokens"]
    assert row["cost_nanousd"] == 0
    assert Decimal(row["list_price_nanousd"]) * Decimal("1e-9") == price_usage("gpt-4o-mini", usage)
    assert row["list_price_nanousd"] > 0


def test_streaming_from_the_local_model_is_accounted_like_invoke(
    local_settings: Settings,
) -> None:
    chat = create_chat_model(
        "chatops_advanced", user_id="e2e", settings=local_settings, max_tokens=24, temperature=0
    )
    messages = [("user", "Name three technical indicators, comma separated.")]

    async def run() -> str:
        parts = [str(c.content) async for c in chat.astream(messages)]
        return "".join(parts)

    streamed = asyncio.run(run())
    invoked = chat.invoke(messages)
    assert streamed.strip() and invoked.content
    a, b = get_ledger(local_settings).rows()
    # same prompt → same prompt tokens; the second may be served partly from llama.cpp's cache
    assert a["input_tokens"] == b["input_tokens"] > 0
    assert a["output_tokens"] > 0 and b["output_tokens"] > 0
    (rep,) = usage_report(settings=local_settings)
    assert rep.calls == 2 and rep.cost_usd == 0 and rep.list_price_usd > 0
