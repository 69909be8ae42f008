"""The cost callback end to end: ChatOpenAI → real HTTP → fake OpenAI server → SQLite ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache

from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.ledger import get_ledger, usage_report
from agents.usage.pricing import price_usage
from tests.fakes.openai_server import FakeServer

PROMPT = "four words here #in=120 #cached=40 #out=7 #reasoning=5"
# 120 in (40 cached), 12 out (5 of them reasoning)
EXPECTED = {
    "input_tokens": 120,
    "cached_input_tokens": 40,
    "output_tokens": 12,
    "reasoning_tokens": 5,
}


@pytest.fixture
def uncached(make_settings: Callable[..., Settings], fake_openai: FakeServer) -> Settings:
    """`fake_settings` with the response cache off: tests that send one prompt twice to
    compare the two calls' rows (with the cache the second is a $0 hit, tests/.../test_cache)."""
    return make_settings(
        OPENAI_API_KEY="sk-test-secret-123",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_STREAM_USAGE=True,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_CACHE="off",
    )


def _rows(settings: Settings) -> list[dict[str, Any]]:
    return get_ledger(settings).rows()


def _assert_row(row: dict[str, Any], model: str = "gpt-4o-mini") -> None:
    for k, v in EXPECTED.items():
        assert row[k] == v, (k, row)
    expected_cost = price_usage(
        model,
        {
            "input_tokens": 120,
            "output_tokens": 12,
            "input_token_details": {"cache_read": 40},
            "output_token_details": {"reasoning": 5},
        },
    )
    assert Decimal(row["cost_nanousd"]) * Decimal("1e-9") == expected_cost
    assert row["list_price_nanousd"] == row["cost_nanousd"]
    assert row["service"] == "narrative_report"
    assert row["user_id"] == "alice"
    assert row["model"] == model
    assert row["route"] == "compatible"
    assert not row["cache_hit"] and row["error"] is None
    assert row["latency_ms"] is not None and row["latency_ms"] > 0


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream", "batch", "abatch"])
def test_every_call_style_records_the_same_exact_row(uncached: Settings, mode: str) -> None:
    fake_settings = uncached  # batches send PROMPT twice at once: no hit may race in
    chat = create_chat_model("narrative_report", user_id="alice", settings=fake_settings)

    async def run_async() -> None:
        if mode == "ainvoke":
            await chat.ainvoke(PROMPT)
        elif mode == "astream":
            async for _ in chat.astream(PROMPT):
                pass
        else:
            await chat.abatch([PROMPT, PROMPT])

    if mode == "invoke":
        chat.invoke(PROMPT)
    elif mode == "stream":
        text = "".join(str(c.content) for c in chat.stream(PROMPT))
        assert text == "w0 w1 w2 w3 w4 w5 w6"
    elif mode == "batch":
        chat.batch([PROMPT, PROMPT])
    else:
        asyncio.run(run_async())
    rows = _rows(fake_settings)
    assert len(rows) == (2 if "batch" in mode else 1)
    for row in rows:
        _assert_row(row)
    assert len({r["request_id"] for r in rows}) == len(rows)


def test_streaming_and_non_streaming_totals_agree(uncached: Settings) -> None:
    fake_settings = uncached  # the same prompt twice, both sent
    chat = create_chat_model("narrative_report", user_id="alice", settings=fake_settings)
    chat.invoke(PROMPT)
    for _ in chat.stream(PROMPT):
        pass
    a, b = _rows(fake_settings)
    for k in (
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_nanousd",
    ):
        assert a[k] == b[k]


def test_reasoning_model_bills_reasoning_once(fake_settings: Settings) -> None:
    chat = create_chat_model("strategy_builder", "o3", user_id="bob", settings=fake_settings)
    msg = chat.invoke("x #in=100 #out=20 #reasoning=480")
    assert msg.usage_metadata and msg.usage_metadata["output_tokens"] == 500
    (row,) = _rows(fake_settings)
    assert row["output_tokens"] == 500 and row["reasoning_tokens"] == 480
    assert row["cost_nanousd"] == 100 * 2000 + 500 * 8000  # o3: $2 in, $8 out per 1M


def test_cache_hit_costs_nothing_and_does_not_recount(
    fake_settings: Settings, fake_openai: FakeServer
) -> None:
    set_llm_cache(InMemoryCache())
    try:
        chat = create_chat_model("narrative_report", user_id="alice", settings=fake_settings)
        before = fake_openai.requests_served()
        first = chat.invoke(PROMPT)
        second = chat.invoke(PROMPT)
        assert second.content == first.content
        assert fake_openai.requests_served() == before + 1  # second answer came from cache
    finally:
        set_llm_cache(None)
    paid, cached = _rows(fake_settings)
    _assert_row(paid)
    assert cached["cache_hit"]
    assert cached["cost_nanousd"] == 0 and cached["list_price_nanousd"] == 0
    assert cached["input_tokens"] == cached["output_tokens"] == 0
    (total,) = usage_report(settings=fake_settings)
    assert total.calls == 2 and total.cache_hits == 1
    assert total.input_tokens == 120
    assert total.cost_usd == Decimal(paid["cost_nanousd"]) * Decimal("1e-9")


def test_endpoint_error_is_recorded(fake_settings: Settings) -> None:
    chat = create_chat_model("narrative_report", user_id="alice", settings=fake_settings)
    with pytest.raises(Exception, match="500"):
        chat.invoke("boom #status=500")
    (row,) = _rows(fake_settings)
    assert row["error"] and "500" in row["error"]
    assert "sk-test-secret-123" not in row["error"]
    assert row["cost_nanousd"] == 0
    (rep,) = usage_report(settings=fake_settings)
    assert rep.errors == 1


def test_no_usage_reported_is_estimated_not_unpriced_nor_free(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = make_settings(
        OPENAI_API_KEY="sk-x", OPENAI_BASE_URL=fake_openai.base_url, QUANT_GENAI_STREAM_USAGE=False
    )
    chat = create_chat_model("narrative_report", user_id="alice", settings=s)
    for _ in chat.stream("hello"):
        pass
    (row,) = get_ledger(s).rows()  # counted locally (tests/integration/test_estimated_usage.py)
    assert row["estimated"] and not row["unpriced"] and row["cost_nanousd"] > 0
    (rep,) = usage_report(settings=s)
    assert rep.estimated_calls == 1 and rep.unpriced_calls == 0


def test_self_hosted_route_records_zero_cost_and_list_price(
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes = json.dumps(
        {
            "gpt-4o-mini": {
                "base_url": fake_openai.base_url,
                "served_model": "llama3",
                "stream_usage": True,
            }
        }
    )
    monkeypatch.setenv("QUANT_GENAI_MODEL_ROUTES", routes)  # JSON, as a user would write it
    s = make_settings(OPENAI_API_KEY="sk-x")
    chat = create_chat_model("narrative_report", user_id="alice", settings=s)
    assert chat.model_name == "llama3"
    chat.invoke(PROMPT)
    (row,) = get_ledger(s).rows()
    assert row["served_model"] == "llama3" and row["model"] == "gpt-4o-mini"
    assert row["cost_nanousd"] == 0
    assert row["list_price_nanousd"] == (80 * 150 + 40 * 75 + 12 * 600)
    (rep,) = usage_report(settings=s)
    assert rep.cost_usd == 0 and rep.list_price_usd > 0


def test_report_groupings(fake_settings: Settings) -> None:
    create_chat_model("narrative_report", user_id="alice", settings=fake_settings).invoke(PROMPT)
    create_chat_model("chatops_advanced", user_id="bob", settings=fake_settings).invoke(PROMPT)
    create_chat_model("chatops_advanced", "gpt-4o", user_id="bob", settings=fake_settings).invoke(
        PROMPT
    )
    by_user = {r.user: r for r in usage_report(group_by="user", settings=fake_settings)}
    assert by_user["alice"].calls == 1 and by_user["bob"].calls == 2
    by_service = {
        r.service: r.calls for r in usage_report(group_by="service", settings=fake_settings)
    }
    assert by_service == {"narrative_report": 1, "chatops_advanced": 2}
    by_day = usage_report(group_by="day", settings=fake_settings)
    assert len(by_day) == 1 and by_day[0].calls == 3 and by_day[0].day
    only_bob = usage_report(user_id="bob", group_by="model", settings=fake_settings)
    assert {r.model for r in only_bob} == {"gpt-4o-mini", "gpt-4o"}
    # most expensive first
    assert [r.model for r in only_bob] == ["gpt-4o", "gpt-4o-mini"]
    with pytest.raises(ValueError, match="cannot group by"):
        usage_report(group_by="color", settings=fake_settings)  # type: ignore[arg-type]


def test_inconsistent_usage_is_kept_and_flagged(fake_settings: Settings) -> None:
    chat = create_chat_model("narrative_report", user_id="alice", settings=fake_settings)
    chat.invoke("x #in=5 #cached=9")  # an endpoint reporting more cached than total input
    (row,) = _rows(fake_settings)
    assert row["unpriced"] and row["cost_nanousd"] is None
    assert row["input_tokens"] == 5 and row["cached_input_tokens"] == 9
    assert "cached input tokens exceed" in row["error"]
