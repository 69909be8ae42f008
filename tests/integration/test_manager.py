"""The seed-compatible `OpenAIClientManager`: the seed's strategy builder over real HTTP.

The service below is the seed's (SEED.md §5) as it sketches it, with only the imports ours; it
runs against the fake OpenAI server, whose token counts are exact, and its usage must land in the
durable ledger at catalog prices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings

from agents.llm.catalog import (
    MODEL_CATALOG,
    ModelNotAllowedError,
    UnknownModelError,
    UnknownServiceError,
    available_models,
)
from agents.llm.factory import create_chat_model, shared_http_clients
from agents.llm.manager import LEDGER_ROUTE, OpenAIClientManager
from agents.quant.backtests import BacktestResult, run_backtest
from agents.quant.corpus import BuyAndHold, SmaCross
from agents.rag.embeddings import EMBEDDINGS_SERVICE, get_embeddings
from agents.rag.store import Retriever, get_retriever
from agents.settings import Settings
from agents.usage.ledger import get_ledger
from tests.fakes.openai_server import FakeServer

# ---- the seed's StrategyBuilderService, re-typed as SEED.md §5 sketches it ------------------

SYSTEM_PROMPT = (
    "You are a quant trading strategy expert; use the user's past backtest results to write "
    "the best strategy code"
)


class StrategyBuilderService:
    def __init__(
        self,
        client_manager: OpenAIClientManager | None = None,
        rag_service: Retriever | None = None,
    ) -> None:
        self.client_manager = client_manager or OpenAIClientManager()
        self.rag_service = rag_service or get_retriever()
        self.service_name = "strategy_builder"

    async def generate_strategy_with_rag(
        self, user_id: str, request: str, model_preference: str | None = None
    ) -> dict[str, Any]:
        model = model_preference or self.client_manager.get_default_model(self.service_name)
        if not self.client_manager.validate_model_for_service(self.service_name, model):
            raise ValueError(f"Model {model} is not allowed for {self.service_name}")

        rag_prompt = self.rag_service.build_rag_prompt(user_id, request, k=3)

        client = self.client_manager.get_client()
        response = await client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": rag_prompt},
            ],
        )
        self.client_manager.track_usage(
            model,
            response.usage.prompt_tokens,  # type: ignore[union-attr]
            response.usage.completion_tokens,  # type: ignore[union-attr]
        )
        return {"code": response.choices[0].message.content, "model_used": model}


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embeddings() -> Embeddings:
    """The offline MiniLM (the fake server has no embeddings endpoint)."""
    return get_embeddings(Settings(_env_file=None, QUANT_GENAI_BACKEND="local"))  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def backtests() -> list[BacktestResult]:
    """Real backtests: two of alice's, one of bob's."""
    return [
        run_backtest(SmaCross, "GOOG", user_id="alice"),
        run_backtest(BuyAndHold, "BTCUSD", user_id="alice"),
        run_backtest(SmaCross, "EURUSD", user_id="bob"),
    ]


@pytest.fixture
def retriever(
    make_settings: Callable[..., Settings], embeddings: Embeddings, backtests: list[BacktestResult]
) -> Retriever:
    """The backtests indexed in a real Chroma under the test's data dir, as the engine does."""
    r = Retriever(make_settings(), embeddings=embeddings)
    for result in backtests:
        r.on_backtest_completed(result)
    return r


def nano(model_id: str, input_tokens: int, output_tokens: int, cached: int = 0) -> int:
    """The catalog price, computed here independently of agents.usage.pricing."""
    m = MODEL_CATALOG[model_id]
    assert m.input is not None and m.output is not None and m.cached_input_rate is not None
    usd = (
        (input_tokens - cached) * m.input + cached * m.cached_input_rate + output_tokens * m.output
    ) / Decimal(1_000_000)
    return int(usd / Decimal("1e-9"))


# ---- the seed's service end to end ------------------------------------------------------------


def _model_rows(settings: Settings) -> list[dict[str, Any]]:
    """The ledger's chat-model rows (the retriever's embedding calls are rows too)."""
    return [r for r in get_ledger(settings).rows() if r["service"] != EMBEDDINGS_SERVICE]


def test_seed_strategy_builder_records_exact_usage_in_the_ledger(
    fake_settings: Settings, fake_openai: FakeServer, retriever: Retriever
) -> None:
    manager = OpenAIClientManager(fake_settings)
    service = StrategyBuilderService(manager, retriever)

    request = "an SMA crossover on GOOG #in=1234 #out=56"
    out = asyncio.run(service.generate_strategy_with_rag("alice", request))
    assert out == {"code": " ".join(f"w{i}" for i in range(56)), "model_used": "gpt-4o"}

    sent = fake_openai.last_request()
    assert sent["model"] == "gpt-4o"
    system, user = sent["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["content"].startswith("Here are the user's past backtest results:")
    assert "[ref 1]" in user["content"] and "[ref 2]" in user["content"]
    alices = retriever.search_similar_backtests("alice", request, k=3)
    assert len(alices) == 2 and all(c.content in user["content"] for c in alices)
    assert "GOOG" in user["content"] and "BTCUSD" in user["content"]
    assert "EURUSD" not in user["content"]  # bob's backtest never reaches alice's prompt
    assert user["content"].endswith("Answer with reference to the past data above.")

    (row,) = _model_rows(fake_settings)
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("gpt-4o", 1234, 56)
    assert row["cost_nanousd"] == row["list_price_nanousd"] == nano("gpt-4o", 1234, 56)
    assert row["cost_nanousd"] == 1234 * 2_500 + 56 * 10_000  # $2.50 / $10 per 1M
    assert row["route"] == LEDGER_ROUTE and row["served_model"] == "gpt-4o"

    # a second event loop (a second request in a sync caller): the shared client still works
    out = asyncio.run(
        service.generate_strategy_with_rag("alice", "a breakout #in=10 #out=2", "gpt-4-turbo")
    )
    assert out["model_used"] == "gpt-4-turbo"
    report = manager.get_usage_report()
    embedded = report.pop("all-minilm-l6-v2")  # the retriever's embedding calls: rows at $0
    assert embedded["input_tokens"] > 0 and embedded["total_cost_usd"] == 0
    assert report == {
        "gpt-4o": {"input_tokens": 1234, "output_tokens": 56, "total_cost_usd": 0.003645},
        "gpt-4-turbo": {
            "input_tokens": 10,
            "output_tokens": 2,
            "total_cost_usd": nano("gpt-4-turbo", 10, 2) / 1e9,
        },
    }


@pytest.mark.parametrize("model", ["gpt-4o-mini", "o1-preview", "gpt-9"])
def test_seed_strategy_builder_rejects_a_model_the_policy_does_not_allow(
    fake_settings: Settings, fake_openai: FakeServer, retriever: Retriever, model: str
) -> None:
    service = StrategyBuilderService(OpenAIClientManager(fake_settings), retriever)
    before = fake_openai.requests_served()
    with pytest.raises(ValueError, match=f"Model {model} is not allowed for strategy_builder"):
        asyncio.run(service.generate_strategy_with_rag("alice", "anything", model))
    assert fake_openai.requests_served() == before
    assert _model_rows(fake_settings) == []


# ---- each method --------------------------------------------------------------------------------


def test_get_client_is_one_client_on_the_factory_pool(
    fake_settings: Settings, fake_openai: FakeServer
) -> None:
    manager = OpenAIClientManager(fake_settings)
    client = manager.get_client()
    assert manager.get_client() is client
    assert OpenAIClientManager(fake_settings).get_client() is client  # no duplicate clients
    assert str(client.base_url).rstrip("/") == fake_openai.base_url
    assert client.api_key == "sk-test-secret-123"
    assert client._client is shared_http_clients()[1]
    asyncio.run(client.close())  # a seed service closing "its" client
    assert not shared_http_clients()[1].is_closed
    create_chat_model("narrative_report", settings=fake_settings).invoke("still fine #out=1")


def test_get_client_on_embedded_defaults_points_at_the_local_server(
    make_settings: Callable[..., Settings], local_gguf: Path, local_port: int
) -> None:
    from agents.llm.local import ensure_server
    from agents.llm.weights import LOCAL_MODEL_ID

    s = make_settings(
        QUANT_GENAI_LOCAL_MODEL_PATH=str(local_gguf), QUANT_GENAI_LOCAL_PORT=local_port
    )
    manager = OpenAIClientManager(s)
    client = manager.get_client()
    assert str(client.base_url).rstrip("/") == ensure_server(s).base_url
    assert client._client is shared_http_clients()[1]

    async def call() -> Any:
        return await client.chat.completions.create(
            model="gpt-4o",  # the catalog id; the local server answers with its one model
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=4,
        )

    response = asyncio.run(call())
    assert response.model == LOCAL_MODEL_ID and response.usage is not None
    usage = response.usage
    cost = manager.track_usage("gpt-4o", usage.prompt_tokens, usage.completion_tokens)
    assert cost == 0
    (row,) = get_ledger(s).rows()
    assert row["served_model"] == LOCAL_MODEL_ID and row["cost_nanousd"] == 0
    assert row["list_price_nanousd"] == nano("gpt-4o", usage.prompt_tokens, usage.completion_tokens)


def test_get_model_config_and_the_seed_field_names(fake_settings: Settings) -> None:
    manager = OpenAIClientManager(fake_settings)
    cfg = manager.get_model_config("gpt-4o-mini")
    assert cfg is MODEL_CATALOG["gpt-4o-mini"]
    assert manager.get_model_config("gpt-4o-mini-2024-07-18") is cfg  # snapshot names resolve
    assert cfg.model_id == "gpt-4o-mini"
    assert cfg.input_price_per_1m == 0.15 and cfg.output_price_per_1m == 0.60
    for name in ("model_id", "input_price_per_1m", "output_price_per_1m"):
        with pytest.raises((AttributeError, ValueError)):
            setattr(cfg, name, 0)
    with pytest.raises(UnknownModelError, match=r"known models: .*gpt-4o-mini"):
        manager.get_model_config("gpt-9")


def test_get_available_models_and_user_preference(fake_settings: Settings) -> None:
    manager = OpenAIClientManager(fake_settings)
    ids = [m.id for m in manager.get_available_models("strategy_builder")]
    assert ids == [m.id for m in available_models("strategy_builder")]
    prices = [MODEL_CATALOG[i].input for i in ids]
    assert prices == sorted(prices)  # type: ignore[type-var]
    assert {"gpt-4o", "gpt-4-turbo"} <= set(ids) and "gpt-4o-mini" not in ids

    advanced = manager.get_available_models("strategy_builder", "advanced")
    assert advanced and {m.tier.value for m in advanced} == {"advanced"}
    assert [m.id for m in advanced] == [i for i in ids if MODEL_CATALOG[i].tier == "advanced"]

    preferred = manager.get_available_models("strategy_builder", "gpt-4-turbo")
    assert [m.id for m in preferred] == ["gpt-4-turbo", *(i for i in ids if i != "gpt-4-turbo")]

    with pytest.raises(
        ValueError, match=r"tier 'mini' is not allowed.*advanced, premium, standard"
    ):
        manager.get_available_models("strategy_builder", "mini")
    with pytest.raises(
        ModelNotAllowedError, match=r"'gpt-4o-mini' is not allowed.*allowed: .*gpt-4o"
    ):
        manager.get_available_models("strategy_builder", "gpt-4o-mini")
    with pytest.raises(UnknownModelError, match=r"neither a tier nor a known model.*gpt-4-turbo"):
        manager.get_available_models("strategy_builder", "gpt-9")
    with pytest.raises(UnknownServiceError, match="services: narrative_report"):
        manager.get_available_models("strategy_bilder")


def test_default_model_and_validation(fake_settings: Settings) -> None:
    manager = OpenAIClientManager(fake_settings)
    assert manager.get_default_model("strategy_builder") == "gpt-4o"
    assert manager.get_default_model("narrative_report") == "gpt-4o-mini"
    assert manager.validate_model_for_service("strategy_builder", "gpt-4o") is True
    assert manager.validate_model_for_service("strategy_builder", "gpt-4o-mini") is False  # tier
    assert manager.validate_model_for_service("strategy_builder", "o1-preview") is False  # tools
    assert manager.validate_model_for_service("narrative_report", "gpt-9") is False
    with pytest.raises(UnknownServiceError, match=r"services: .*strategy_builder"):
        manager.validate_model_for_service("nope", "gpt-4o")
    with pytest.raises(UnknownServiceError):
        manager.get_default_model("nope")


def test_track_usage_writes_one_priced_row(fake_settings: Settings) -> None:
    manager = OpenAIClientManager(fake_settings)
    cost = manager.track_usage(
        "gpt-4o-mini", 1000, 200, service="narrative_report", user_id="u1", cached_input_tokens=400
    )
    assert isinstance(cost, Decimal)
    assert cost == Decimal(nano("gpt-4o-mini", 1000, 200, cached=400)) * Decimal("1e-9")
    manager.track_usage("gpt-4o-mini", 1, 1)
    first, second = get_ledger(fake_settings).rows()
    assert (first["service"], first["user_id"], first["cached_input_tokens"]) == (
        "narrative_report",
        "u1",
        400,
    )
    assert first["request_id"] != second["request_id"] and len(first["request_id"]) == 32
    assert (second["service"], second["user_id"]) == (None, None)
    for bad, error in [
        (lambda: manager.track_usage("gpt-9", 1, 1), UnknownModelError),
        (lambda: manager.track_usage("gpt-4o", -1, 1), ValueError),
        (lambda: manager.track_usage("gpt-4o", 5, 1, cached_input_tokens=9), ValueError),
        (lambda: manager.track_usage("gpt-4o", 5, 1, service="nope"), UnknownServiceError),
    ]:
        with pytest.raises(error):
            bad()
    assert len(get_ledger(fake_settings).rows()) == 2  # nothing recorded for a bad call


def test_track_usage_on_embedded_defaults_costs_nothing_and_keeps_the_list_price(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    assert OpenAIClientManager(s).track_usage("gpt-4o", 100, 10) == 0
    (row,) = get_ledger(s).rows()
    assert row["cost_nanousd"] == 0 and row["list_price_nanousd"] == nano("gpt-4o", 100, 10)


def test_get_usage_report_after_two_calls(fake_settings: Settings) -> None:
    manager = OpenAIClientManager(fake_settings)
    assert manager.get_usage_report() == {}
    manager.track_usage("gpt-4o-mini", 1_000_000, 200_000)
    manager.track_usage("gpt-4o", 3000, 700)
    report = manager.get_usage_report()
    assert report == {
        "gpt-4o-mini": {
            "input_tokens": 1_000_000,
            "output_tokens": 200_000,
            "total_cost_usd": 0.27,
        },
        "gpt-4o": {"input_tokens": 3000, "output_tokens": 700, "total_cost_usd": 0.0145},
    }
    assert list(report) == ["gpt-4o-mini", "gpt-4o"]  # most expensive first
    manager.track_usage("gpt-4o", 1000, 300)  # the same model again: summed
    assert manager.get_usage_report()["gpt-4o"] == {
        "input_tokens": 4000,
        "output_tokens": 1000,
        "total_cost_usd": 0.02,
    }
