"""The factory: validation, instance reuse, one HTTP pool, routing, request shape, secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableWithFallbacks
from langchain_core.tools import tool

from agents.llm.catalog import (
    MODEL_CATALOG,
    ModelNotAllowedError,
    UnknownModelError,
    available_models,
)
from agents.llm.factory import (
    QuantChatOpenAI,
    create_chat_model,
    create_chat_model_with_fallback,
    fallback_model,
    model_used,
    resolve_route,
    shared_http_clients,
)
from agents.settings import Settings
from agents.usage.ledger import get_ledger
from tests.fakes.openai_server import FakeServer


def test_same_arguments_same_instance(fake_settings: Settings) -> None:
    a = create_chat_model("narrative_report", user_id="u1", settings=fake_settings)
    assert create_chat_model("narrative_report", None, user_id="u1", settings=fake_settings) is a
    assert create_chat_model("narrative_report", user_id="u2", settings=fake_settings) is not a
    assert create_chat_model("chatops_advanced", user_id="u1", settings=fake_settings) is not a
    b = create_chat_model("narrative_report", user_id="u1", settings=fake_settings, max_tokens=50)
    assert b is not a
    assert (
        create_chat_model("narrative_report", user_id="u1", settings=fake_settings, max_tokens=50)
        is b
    )


def test_all_instances_share_one_http_pool(fake_settings: Settings) -> None:
    sync_client, async_client = shared_http_clients()
    models = [
        create_chat_model("narrative_report", user_id="u1", settings=fake_settings),
        create_chat_model("strategy_builder", "o3", user_id="u2", settings=fake_settings),
        create_chat_model("chatops_advanced", "gpt-4o", settings=fake_settings),
    ]
    for m in models:
        assert m.root_client is not None and m.root_client._client is sync_client
        assert m.root_async_client is not None
        assert m.root_async_client._client is async_client


def test_async_calls_survive_successive_event_loops(
    fake_settings: Settings, fake_openai: FakeServer
) -> None:
    """langchain#35783: a cached client reused on a new loop fails and the SDK re-sends."""
    chat = create_chat_model("narrative_report", user_id="u1", settings=fake_settings)
    before = fake_openai.requests_served()
    for i in range(3):
        asyncio.run(chat.ainvoke(f"hello {i}"))  # distinct prompts: no cache hit
    assert fake_openai.requests_served() == before + 3  # no silent re-sends
    assert len(get_ledger(fake_settings).rows()) == 3


def test_policy_is_enforced_before_anything_is_built(fake_settings: Settings) -> None:
    with pytest.raises(ModelNotAllowedError, match=r"allowed: .*gpt-4o-mini"):
        create_chat_model("prompt_governance", "gpt-4o", settings=fake_settings)
    with pytest.raises(UnknownModelError, match="gpt-4o"):
        create_chat_model("strategy_builder", "gpt-99", settings=fake_settings)


def test_metadata_and_tags_for_langsmith(fake_settings: Settings) -> None:
    m = create_chat_model("strategy_builder", "gpt-4.1", user_id="carol", settings=fake_settings)
    assert m.metadata is not None
    assert m.metadata["service"] == "strategy_builder"
    assert m.metadata["model"] == "gpt-4.1"
    assert m.metadata["user_id"] == "carol"
    assert m.tags is not None
    assert {"service:strategy_builder", "model:gpt-4.1", "user:carol"} <= set(m.tags)
    assert m.stream_usage is True


def test_overrides_are_adapted_to_the_model(fake_settings: Settings) -> None:
    """Callers pass the same knobs whatever model answers; the factory adapts them."""
    o3 = create_chat_model("strategy_builder", "o3", settings=fake_settings, temperature=0.2)
    assert o3.temperature is None  # a reasoning model takes no temperature
    capped = create_chat_model("narrative_report", settings=fake_settings, max_tokens=20000)
    assert capped.max_tokens == 16384  # gpt-4o-mini's output limit
    with pytest.raises(ValueError, match=r"max_tokens=0 must be at least 1 \(up to 16384"):
        create_chat_model("narrative_report", settings=fake_settings, max_tokens=0)
    with pytest.raises(ValueError, match="set by the factory"):
        create_chat_model("narrative_report", settings=fake_settings, base_url="http://x")
    m = create_chat_model("narrative_report", settings=fake_settings, temperature=0.1)
    assert m.temperature == 0.1


def _roles(model: object) -> list[str]:
    payload = model._get_request_payload(  # type: ignore[attr-defined]
        [SystemMessage("rules"), HumanMessage("hi")]
    )
    return [m["role"] for m in payload["messages"]]


def test_system_prompt_sent_in_the_role_each_model_accepts(fake_settings: Settings) -> None:
    assert _roles(create_chat_model("narrative_report", settings=fake_settings)) == [
        "system",
        "user",
    ]
    assert _roles(create_chat_model("strategy_builder", "o3", settings=fake_settings)) == [
        "developer",
        "user",
    ]
    assert _roles(create_chat_model("strategy_builder", "gpt-5", settings=fake_settings)) == [
        "developer",
        "user",
    ]
    assert _roles(create_chat_model("narrative_report", "gpt-5-mini", settings=fake_settings)) == [
        "developer",
        "user",
    ]


def test_o1_preview_gets_no_system_or_developer_message(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    # o1-preview is allowed by no seed policy; check the request shape on the class directly.
    from agents.llm.factory import QuantChatOpenAI

    m = QuantChatOpenAI(
        model="o1-preview",
        api_key="sk-x",
        base_url=fake_openai.base_url,
        system_role=MODEL_CATALOG["o1-preview"].system_role,
    )
    assert _roles(m) == ["user", "user"]


def test_routing(make_settings: Callable[..., Settings]) -> None:
    gpt4o = MODEL_CATALOG["gpt-4o"]
    r = resolve_route(gpt4o, make_settings(OPENAI_API_KEY="sk-a"))
    assert (r.kind, r.base_url, r.served_model, r.stream_usage, r.billed) == (
        "openai",
        None,
        "gpt-4o",
        True,
        True,
    )
    r = resolve_route(
        gpt4o, make_settings(OPENAI_API_KEY="sk-a", OPENAI_BASE_URL="http://127.0.0.1:4000/v1")
    )
    assert (r.kind, r.stream_usage, r.billed) == ("compatible", False, True)
    r = resolve_route(
        gpt4o,
        make_settings(
            OPENAI_API_KEY="sk-a",
            OPENAI_BASE_URL="http://127.0.0.1:8000/v1",
            QUANT_GENAI_BASE_URL_BILLED=False,
            QUANT_GENAI_STREAM_USAGE=True,
        ),
    )
    assert (r.kind, r.stream_usage, r.billed) == ("compatible", True, False)
    r = resolve_route(
        gpt4o, make_settings(OPENAI_API_KEY="sk-a", OPENAI_BASE_URL="https://api.openai.com/v1")
    )
    assert r.kind == "openai"


def test_blank_key_means_no_key(make_settings: Callable[..., Settings]) -> None:
    assert not make_settings(OPENAI_API_KEY="  ").uses_openai
    assert make_settings(OPENAI_API_KEY="sk-1").uses_openai
    assert not make_settings(OPENAI_API_KEY="sk-1", QUANT_GENAI_BACKEND="local").uses_openai


def test_secrets_never_in_repr_logs_or_ledger(
    fake_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-secret-123"
    caplog.set_level(logging.DEBUG)
    m = create_chat_model("narrative_report", user_id="u1", settings=fake_settings)
    m.invoke("hello")
    with pytest.raises(Exception, match="500"):
        m.invoke("x #status=500")
    assert secret not in repr(fake_settings)
    assert secret not in fake_settings.model_dump_json()
    assert secret not in repr(m)
    assert secret not in caplog.text
    assert all(secret not in str(r) for r in get_ledger(fake_settings).rows())


def test_timeouts_per_route(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(
        OPENAI_API_KEY="sk-a", QUANT_GENAI_TIMEOUT_S=12, QUANT_GENAI_LOCAL_TIMEOUT_S=345
    )
    assert resolve_route(MODEL_CATALOG["gpt-4o"], s).timeout_s == 12
    m = create_chat_model("narrative_report", settings=s)
    assert m.request_timeout == 12


# ---- fallback after endpoint errors ------------------------------------------------------


def test_fallback_is_another_allowed_model_served_elsewhere(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = make_settings(OPENAI_API_KEY="sk-a", OPENAI_BASE_URL=fake_openai.base_url)
    backup = fallback_model("strategy_builder", "gpt-4o", settings=s)
    assert backup is not None and backup.id != "gpt-4o"
    assert backup.id in {m.id for m in available_models("strategy_builder")}
    # the service default comes first when it is not the failing model
    assert fallback_model("strategy_builder", "gpt-4.1", settings=s) == MODEL_CATALOG["gpt-4o"]
    assert fallback_model("prompt_governance", "gpt-4o-mini", settings=s) is not None
    off = make_settings(
        OPENAI_API_KEY="sk-a", OPENAI_BASE_URL=fake_openai.base_url, QUANT_GENAI_FALLBACK=False
    )
    assert fallback_model("strategy_builder", "gpt-4o", settings=off) is None
    # every allowed model routed to one served model: falling back would repeat the failure
    same = {
        m.id: {"base_url": fake_openai.base_url, "served_model": "one"}
        for m in MODEL_CATALOG.values()
    }
    routed = make_settings(OPENAI_API_KEY="sk-a", QUANT_GENAI_MODEL_ROUTES=same)
    assert fallback_model("narrative_report", "gpt-4o-mini", settings=routed) is None


def test_endpoint_outage_falls_back_and_the_ledger_has_both_calls(
    fake_settings: Settings,
) -> None:
    chat = create_chat_model_with_fallback(
        "narrative_report", "gpt-4o-mini", user_id="fb", settings=fake_settings, temperature=0
    )
    same = create_chat_model_with_fallback(
        "narrative_report", "gpt-4o-mini", user_id="fb", settings=fake_settings, temperature=0
    )
    assert same is chat  # the fallback is chosen once, not on every call
    reply = chat.invoke("hello #down=gpt-4o-mini #out=4")
    backup = fallback_model("narrative_report", "gpt-4o-mini", settings=fake_settings)
    assert backup is not None
    assert model_used(reply) == backup.id
    assert reply.content == "w0 w1 w2 w3"
    rows = get_ledger(fake_settings).rows(user_id="fb")
    assert [(r["model"], r["error"] is None) for r in rows] == [
        ("gpt-4o-mini", False),
        (backup.id, True),
    ]
    assert (
        "503" in rows[0]["error"] and rows[1]["output_tokens"] == 4 and rows[1]["cost_nanousd"] > 0
    )


def test_streaming_and_tools_survive_the_fallback(fake_settings: Settings) -> None:
    @tool
    def ping(x: int) -> int:
        """Echo x."""
        return x

    chat = create_chat_model_with_fallback("chatops_advanced", "gpt-4o", settings=fake_settings)
    chunks = [c for c in chat.stream("hi #down=gpt-4o #out=3") if isinstance(c, AIMessageChunk)]
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.content == "w0 w1 w2"
    assert model_used(merged) == "gpt-4o-mini"  # the service default
    reply = chat.bind_tools([ping]).invoke('go #down=gpt-4o #tool=ping:{"x": 7}')
    assert reply.tool_calls[0]["args"] == {"x": 7} and model_used(reply) == "gpt-4o-mini"


def test_request_errors_do_not_fall_back(fake_settings: Settings) -> None:
    chat = create_chat_model_with_fallback(
        "narrative_report", "gpt-4o-mini", user_id="bad", settings=fake_settings
    )
    with pytest.raises(openai.BadRequestError, match="400"):
        chat.invoke("x #status=400")
    assert len(get_ledger(fake_settings).rows(user_id="bad")) == 1


def test_overrides_are_adapted_to_the_fallback(make_settings: Callable[..., Settings]) -> None:
    routes = {"gpt-4o": {"base_url": "http://127.0.0.1:9/v1"}}
    s = make_settings(OPENAI_API_KEY="sk-a", QUANT_GENAI_MODEL_ROUTES=routes)
    chat = create_chat_model_with_fallback(
        "strategy_builder", "gpt-4o", settings=s, temperature=0.2, max_tokens=16000
    )
    assert isinstance(chat, RunnableWithFallbacks)
    primary, (second,) = chat.runnable, chat.fallbacks
    assert isinstance(primary, QuantChatOpenAI) and isinstance(second, QuantChatOpenAI)
    assert second.catalog_model is not None
    assert primary.max_tokens == 16000 and primary.temperature == 0.2
    backup = MODEL_CATALOG[second.catalog_model]
    assert second.max_tokens is not None and second.max_tokens <= backup.max_output_tokens
    if not backup.supports_temperature:
        assert second.temperature is None


def test_async_reply_is_langchain_openais_without_the_thread_hop(
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`QuantChatOpenAI._agenerate` builds the reply on the loop (no `run_in_executor`), and
    the reply is the one langchain-openai's own `_agenerate` builds from the same answer.
    (The response cache is off: LangChain's `BaseCache.alookup` has a thread hop of its own.)"""
    s = make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_CACHE="off",
    )
    chat = create_chat_model("narrative_report", user_id="u1", settings=s)
    assert isinstance(chat, QuantChatOpenAI)
    prompt: list[BaseMessage] = [HumanMessage("hello #in=20 #cached=4 #out=3")]

    async def both() -> tuple[Any, Any]:
        ours = await chat._agenerate(prompt)
        theirs = await super(QuantChatOpenAI, chat)._agenerate(prompt)
        return ours, theirs

    ours, theirs = asyncio.run(both())
    a, b = ours.generations[0], theirs.generations[0]
    assert a.message.content == b.message.content == "w0 w1 w2"
    assert a.message.usage_metadata == b.message.usage_metadata
    assert a.generation_info == b.generation_info
    drop = {"id", "created"}
    assert {k: v for k, v in a.message.response_metadata.items() if k not in drop} == {
        k: v for k, v in b.message.response_metadata.items() if k not in drop
    }
    assert (a.generation_info or {}).get("catalog_model") == "gpt-4o-mini"
    assert {k: v for k, v in (ours.llm_output or {}).items() if k not in drop} == {
        k: v for k, v in (theirs.llm_output or {}).items() if k not in drop
    }

    def no_hop(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the reply went through the thread pool")

    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", no_hop)
    assert asyncio.run(chat.ainvoke("again #out=1")).content == "w0"


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
def test_endpoint_failures_keep_their_exception_classes(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, mode: str
) -> None:
    """What callers catch (fallbacks, the REST error mapping) whatever HTTP library the pool
    uses: a cut connection is `openai.APIConnectionError`, a hung one `APITimeoutError`, a
    body that is not JSON a `ValueError`, a refused one `RateLimitError`."""
    s = make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_STREAM_USAGE=True,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_TIMEOUT_S=0.5,
    )
    chat = create_chat_model("chatops_advanced", user_id="u1", settings=s, max_tokens=20)

    def call(text: str) -> None:
        if mode == "invoke":
            chat.invoke(text)
        elif mode == "stream":
            list(chat.stream(text))
        elif mode == "ainvoke":
            asyncio.run(chat.ainvoke(text))
        else:

            async def drain() -> None:
                async for _ in chat.astream(text):
                    pass

            asyncio.run(drain())

    cases: list[tuple[str, type[BaseException]]] = [
        ("#fault=cut", openai.APIConnectionError),
        ("#sleep=3000", openai.APITimeoutError),
        ("#fault=malformed", ValueError),
        (f"#flaky=3:{mode}", openai.RateLimitError),
    ]
    for tag, expected in cases:
        with pytest.raises(expected) as err:
            call(f"hello {tag}")
        assert not isinstance(err.value, AssertionError), tag
    assert len(get_ledger(s).rows()) == len(cases)  # one row per failed call
