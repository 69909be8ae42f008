"""Real calls to the embedded models through the factory, with no key and no network.

Most tests serve one GGUF (the 0.5B, QUANT_GENAI_LOCAL_MODEL_PATH) for every tier, as the rest of
the suite does; the tier tests serve both packaged models (mini → 0.5B, standard+ → 1.5B) and
make one short structured-output call each (the 1.5B generates ~20 tokens/s on 2 cores).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from langchain_core.messages import AIMessage

from agents.llm.catalog import MODEL_CATALOG
from agents.llm.factory import create_chat_model, model_used, resolve_route
from agents.llm.weights import LARGE_MODEL_ID, LOCAL_MODEL_ID
from agents.quant.spec import StrategySpec
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


@pytest.fixture
def tiered_settings(
    make_settings: Callable[..., Settings], local_models_env: dict[str, str]
) -> Settings:
    return make_settings(**local_models_env, QUANT_GENAI_LOCAL_CTX=4096)


def test_one_configured_gguf_serves_every_model(local_settings: Settings) -> None:
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
    make_settings: Callable[..., Settings], local_gguf: Path, local_port: int
) -> None:
    local_settings = make_settings(  # the cache off: the same prompt twice, both sent
        QUANT_GENAI_LOCAL_MODEL_PATH=str(local_gguf),
        QUANT_GENAI_LOCAL_PORT=local_port,
        QUANT_GENAI_LOCAL_CTX=4096,
        QUANT_GENAI_CACHE="off",
    )
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


# ---- both packaged models, by tier -------------------------------------------------------------


def test_no_key_routes_mini_to_the_0_5b_and_standard_up_to_the_1_5b(
    tiered_settings: Settings,
) -> None:
    assert not tiered_settings.uses_openai
    served = {
        mid: resolve_route(MODEL_CATALOG[mid], tiered_settings)
        for mid in ("gpt-4o-mini", "gpt-5-nano", "gpt-4o", "o4-mini", "gpt-5")
    }
    assert {m: r.served_model for m, r in served.items()} == {
        "gpt-4o-mini": LOCAL_MODEL_ID,
        "gpt-5-nano": LOCAL_MODEL_ID,
        "gpt-4o": LARGE_MODEL_ID,
        "o4-mini": LARGE_MODEL_ID,
        "gpt-5": LARGE_MODEL_ID,
    }
    assert served["gpt-4o-mini"].base_url != served["gpt-4o"].base_url
    assert {r.kind for r in served.values()} == {"local"}


SPEC_SYSTEM = (
    "Fill a StrategySpec as JSON. name: CamelCase, e.g. RsiReversal. A condition is "
    '{"left": series, "op": ..., "value": level} or {"left": ..., "op": ..., "right": series}; '
    'a series is {"kind": "rsi", "period": 14}. Leave out every field the request does not state.'
)


@pytest.mark.parametrize(
    ("service", "model", "served"),
    [
        ("narrative_report", "gpt-4o-mini", LOCAL_MODEL_ID),
        ("strategy_builder", "gpt-4o", LARGE_MODEL_ID),
    ],
)
def test_structured_output_from_each_embedded_model(
    tiered_settings: Settings, service: str, model: str, served: str
) -> None:
    chat = create_chat_model(
        service, model, user_id="e2e", settings=tiered_settings, max_tokens=300, temperature=0
    )
    structured = chat.with_structured_output(StrategySpec, method="json_schema", include_raw=True)
    # The name is given: its CamelCase rule is a pydantic validator, not part of the JSON schema,
    # so the grammar cannot hold the 0.5B to it (with `pattern` in the schema it would).
    request = "Buy when the 14-day RSI falls below 30. Call it RsiDip."
    out = structured.invoke([("system", SPEC_SYSTEM), ("user", request)])
    raw = out["raw"]
    assert isinstance(raw, AIMessage)
    # grammar-constrained decoding: JSON of the spec's schema, whatever the model
    jsonschema.validate(json.loads(str(raw.content)), StrategySpec.model_json_schema())
    assert out["parsing_error"] is None, out["parsing_error"]
    spec = out["parsed"]
    assert isinstance(spec, StrategySpec)
    assert [s.kind for s in spec.series()][:1] == ["rsi"]
    # what served the call is recorded next to the catalog model it stood in for
    assert (model_used(raw), raw.response_metadata["model_name"]) == (model, served)
    (row,) = get_ledger(tiered_settings).rows()
    assert (row["model"], row["served_model"], row["route"]) == (model, served, "local")
    assert row["cost_nanousd"] == 0 and 0 < row["output_tokens"] <= 300
