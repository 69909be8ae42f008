"""The response cache's pure parts: modes, what is stored, how, and what the semantic mode
compares (agents/usage/cache.py). Storage and calls: tests/integration/test_cache.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation

from agents.llm.catalog import SERVICES, get_policy
from agents.settings import Settings
from agents.usage.cache import (
    ResponseCache,
    cache_mode,
    decode,
    encode,
    salient,
    split_prompt,
    storable,
)
from agents.usage.cache_store import CacheScope, SqlStore


def _gen(message: AIMessage, finish: str = "stop") -> ChatGeneration:
    return ChatGeneration(message=message, generation_info={"finish_reason": finish})


def test_catalog_caps_each_service() -> None:
    caps = {s: get_policy(s).cache for s in SERVICES}
    assert caps == {
        "narrative_report": "exact",
        "strategy_builder": "semantic",
        "chatops_advanced": "exact",
        "prompt_governance": "exact",
    }


def test_mode_is_the_setting_up_to_the_service_cap(make_settings: Callable[..., Settings]) -> None:
    semantic = make_settings(QUANT_GENAI_CACHE="semantic")
    assert cache_mode("strategy_builder", semantic) == "semantic"
    assert cache_mode("narrative_report", semantic) == "exact"  # capped by the catalog
    assert cache_mode("prompt_governance", semantic) == "exact"
    off = make_settings(QUANT_GENAI_CACHE="off")
    assert {cache_mode(s, off) for s in SERVICES} == {"off"}
    assert cache_mode("chatops_advanced", make_settings()) == "exact"  # the default


def test_a_bad_mode_names_the_allowed_ones(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="'off', 'exact' or 'semantic'"):
        make_settings(QUANT_GENAI_CACHE="fuzzy")


def test_what_is_stored() -> None:
    assert storable([_gen(AIMessage("an answer"))])
    call = {"name": "run_backtest", "args": {"symbol": "AAPL"}, "id": "c1", "type": "tool_call"}
    assert storable([_gen(AIMessage("", tool_calls=[call]))])  # the tool still runs on a hit
    assert not storable([])
    assert not storable([_gen(AIMessage("   "))])  # an empty reply
    assert not storable([_gen(AIMessage("x"), finish="content_filter")])
    bad = {"name": "run_backtest", "args": "{oops", "id": "c2", "error": "bad json"}
    assert not storable([_gen(AIMessage("", invalid_tool_calls=[bad]))])  # type: ignore[list-item]
    assert not storable([Generation(text="a completion model's text")])


def test_encoding_round_trips_without_the_run_id() -> None:
    call = {"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}
    usage = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    message = AIMessage(
        "text",
        id="lc_run--abc-0",
        tool_calls=[call],
        usage_metadata=usage,  # type: ignore[typeddict-item]
        response_metadata={"finish_reason": "stop", "catalog_model": "gpt-4o-mini"},
    )
    (back,) = decode(encode([_gen(message)]))
    assert isinstance(back, ChatGeneration) and isinstance(back.message, AIMessage)
    assert back.message.id is None  # a hit is a new message (add_messages merges equal ids)
    assert back.message.content == "text" and back.message.tool_calls == [call]
    assert back.message.usage_metadata == usage
    assert back.message.response_metadata["catalog_model"] == "gpt-4o-mini"
    assert back.message.response_metadata["cache_hit"] is True  # what a hit is marked with
    assert back.generation_info == {"finish_reason": "stop"}


def test_salient_tokens_separate_what_similarity_does_not() -> None:
    same = [
        ("Buy AAPL when RSI(14) falls below 30", "buying AAPL once RSI(14) drops under 30"),
        (
            "Backtest the 20/50 SMA crossover on GOOG for 2023",
            "Run a backtest of GOOG's 20/50 SMA crossover over 2023",
        ),
    ]
    differ = [
        ("Buy AAPL when RSI(7) falls below 30", "Buy AAPL when RSI(14) falls below 30"),
        ("SMA crossover on GOOG", "SMA crossover on AAPL"),
        ("Buy MSFT on a breakout", "Sell MSFT on a breakout"),
        ("Backtest SPY in 2023", "Backtest SPY in 2024"),
        ("Enter above the upper band", "Enter below the lower band"),
        ("Go long TSLA", "Go short TSLA"),
        ("매수 삼성전자", "매도 삼성전자"),
    ]
    assert all(salient(a) == salient(b) for a, b in same)
    assert not any(salient(a) == salient(b) for a, b in differ)


def test_only_a_persons_last_words_are_compared_by_meaning() -> None:
    prompt = dumps(
        [SystemMessage("sys"), HumanMessage("first"), AIMessage("a"), HumanMessage("q?")]
    )
    split = split_prompt(prompt)
    assert split is not None
    context, text = split
    assert text == "q?" and "first" in context and "q?" not in context
    after_tool = dumps([HumanMessage("q"), ToolMessage("42", tool_call_id="c1")])
    assert split_prompt(after_tool) is None
    assert split_prompt(dumps([SystemMessage("only a system prompt")])) is None
    assert split_prompt("not json") is None


def test_off_and_semantic_without_embeddings_are_refused(tmp_path: object) -> None:
    import sqlalchemy as sa

    store = SqlStore(sa.create_engine("sqlite://"))
    scope = CacheScope(user_id="alice", service="narrative_report", model="gpt-4o-mini")
    with pytest.raises(ValueError, match="allowed: exact, semantic"):
        ResponseCache(store, scope, mode="off")
    with pytest.raises(ValueError, match="embedding function"):
        ResponseCache(store, scope, mode="semantic")


def test_scopes_differ_by_each_part() -> None:
    base = CacheScope(user_id="alice", service="narrative_report", model="gpt-4o-mini")
    others = [
        CacheScope(user_id="bob", service="narrative_report", model="gpt-4o-mini"),
        CacheScope(user_id="alice", service="chatops_advanced", model="gpt-4o-mini"),
        CacheScope(user_id="alice", service="narrative_report", model="gpt-4o"),
    ]
    assert len({base.id, *(o.id for o in others)}) == 4


def test_a_structured_output_survives_the_cache() -> None:
    """The strategy builder's `with_structured_output(method="json_schema")` reads
    `additional_kwargs["parsed"]`: after a round trip it is a dict, which langchain-openai's
    own parser turns back into the schema."""
    from langchain_openai.chat_models.base import _oai_structured_outputs_parser

    from agents.quant.spec import Condition, Rule, Series, StrategySpec

    spec = StrategySpec(
        name="RsiDip",
        entry=Rule(
            conditions=[Condition(left=Series(kind="rsi", period=14), op="below", value=30)]
        ),
    )
    message = AIMessage(spec.model_dump_json(), additional_kwargs={"parsed": spec})
    (back,) = decode(encode([_gen(message)]))
    assert isinstance(back, ChatGeneration) and isinstance(back.message, AIMessage)
    assert _oai_structured_outputs_parser(back.message, StrategySpec) == spec
