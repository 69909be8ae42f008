"""The per-user response cache end to end: factory-built `ChatOpenAI` → real HTTP → the fake
OpenAI server, the ledger, and both stores (the ledger's SQLite and the real Redis fixture)."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration

from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage import cache_store as cache_module
from agents.usage.cache import ResponseCache
from agents.usage.cache_store import get_cache_store
from agents.usage.ledger import get_ledger
from tests.fakes.openai_server import FakeServer

USERS = ["alice", "bob", "carol"]
SERVICES = ["narrative_report", "chatops_advanced", "prompt_governance"]  # mini-tier defaults


@pytest.fixture(params=["sqlite", "redis"])
def store_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> Callable[..., Settings]:
    """Settings routed to the fake server, the cache on the ledger's SQLite or on Redis."""

    def make(**env: Any) -> Settings:
        if request.param == "redis":
            env.setdefault("REDIS_URL", request.getfixturevalue("redis_url"))
        return make_settings(
            OPENAI_API_KEY="sk-test-secret-123",
            OPENAI_BASE_URL=fake_openai.base_url,
            QUANT_GENAI_STREAM_USAGE=True,
            QUANT_GENAI_MAX_RETRIES=0,
            QUANT_GENAI_FALLBACK=False,
            **env,
        )

    return make


def _ask(s: Settings, service: str, user: str, prompt: str) -> AIMessage:
    reply = create_chat_model(service, user_id=user, settings=s).invoke(prompt)
    assert isinstance(reply, AIMessage)
    return reply


def test_a_hit_sends_nothing_costs_nothing_and_never_crosses_users(
    store_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = store_settings()
    prompt = "summarise my backtest #in=120 #out=7"
    before = fake_openai.requests_served()
    first = _ask(s, "narrative_report", "alice", prompt)
    again = _ask(s, "narrative_report", "alice", prompt)
    assert fake_openai.requests_served() == before + 1  # the second answer came from the cache
    assert again.content == first.content
    assert again.response_metadata["cache_hit"] and "cache_hit" not in first.response_metadata
    assert again.usage_metadata is not None and again.usage_metadata.get("total_cost") == 0
    _ask(s, "narrative_report", "bob", prompt)  # same prompt, same model, another user
    _ask(s, "chatops_advanced", "alice", prompt)  # same user and model, another service
    assert fake_openai.requests_served() == before + 3
    rows = get_ledger(s).rows()
    assert [(r["user_id"], r["service"], r["cache_hit"]) for r in rows] == [
        ("alice", "narrative_report", False),
        ("alice", "narrative_report", True),
        ("bob", "narrative_report", False),
        ("alice", "chatops_advanced", False),
    ]
    hit = rows[1]
    assert hit["cost_nanousd"] == 0 and hit["list_price_nanousd"] == 0
    assert hit["input_tokens"] == hit["output_tokens"] == 0
    assert rows[0]["cost_nanousd"] == 120 * 150 + 7 * 600  # gpt-4o-mini at catalog prices


def test_streams_are_stored_and_served_like_invokes(
    store_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = store_settings()
    chat = create_chat_model("narrative_report", user_id="alice", settings=s)
    before = fake_openai.requests_served()
    streamed = "".join(str(c.content) for c in chat.stream("a report #out=5"))
    assert streamed == "w0 w1 w2 w3 w4"
    assert chat.invoke("a report #out=5").content == streamed  # stored by stream, hit by invoke
    chunks = list(chat.stream("a report #out=5"))
    assert len(chunks) == 1 and chunks[0].content == streamed  # a hit is one chunk
    chat.invoke("another #out=2")
    assert "".join(str(c.content) for c in chat.stream("another #out=2")) == "w0 w1"
    assert fake_openai.requests_served() == before + 2
    hits = [r["cache_hit"] for r in get_ledger(s).rows()]
    assert hits == [False, True, True, False, True]


def test_tool_calls_are_cached_and_errors_are_not(
    store_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = store_settings()

    def ping(x: int) -> int:
        """Ping."""
        return x

    chat = create_chat_model("chatops_advanced", user_id="alice", settings=s).bind_tools([ping])
    before = fake_openai.requests_served()
    first = chat.invoke('check #tool=ping:{"x": 3}')
    second = chat.invoke('check #tool=ping:{"x": 3}')
    assert isinstance(first, AIMessage) and isinstance(second, AIMessage)
    assert second.tool_calls == first.tool_calls and first.tool_calls[0]["args"] == {"x": 3}
    assert fake_openai.requests_served() == before + 1
    plain = create_chat_model("chatops_advanced", user_id="alice", settings=s)
    plain.invoke('check #tool=ping:{"x": 3}')  # without the tools bound: another key
    assert fake_openai.requests_served() == before + 2
    for _ in range(2):
        with pytest.raises(Exception, match="500"):
            plain.invoke("boom #status=500")
    assert fake_openai.requests_served() == before + 4  # each error was a real request


def test_cache_off_and_calls_without_a_user_always_go_out(
    store_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    off = store_settings(QUANT_GENAI_CACHE="off")
    before = fake_openai.requests_served()
    for _ in range(2):
        _ask(off, "narrative_report", "alice", "hello #out=2")
    anonymous = create_chat_model("narrative_report", settings=store_settings())
    assert anonymous.cache is False  # no user, no scope: never LangChain's global cache either
    for _ in range(2):
        anonymous.invoke("hello #out=2")
    assert fake_openai.requests_served() == before + 4


def test_entries_expire(store_settings: Callable[..., Settings]) -> None:
    s = store_settings(QUANT_GENAI_CACHE_TTL_S=120)
    _ask(s, "narrative_report", "alice", "expiring #out=2")
    store = get_cache_store(s)
    if isinstance(store, cache_module.RedisStore):
        (key,) = list(store.client.scan_iter(match="qg:rc:*"))
        assert 0 < int(store.client.ttl(key)) <= 120  # type: ignore[arg-type]
    else:
        assert isinstance(store, cache_module.SqlStore)
        with store.engine.connect() as conn:
            row = conn.execute(cache_module.response_cache.select()).one()
        assert 119 <= (row.expires_at - row.created_at).total_seconds() <= 120


def test_an_unreadable_entry_is_a_miss(
    store_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = store_settings()
    _ask(s, "narrative_report", "alice", "garbled #out=2")
    store = get_cache_store(s)
    if isinstance(store, cache_module.RedisStore):
        for key in store.client.scan_iter(match="qg:rc:*"):
            store.client.set(key, b"{not json")
    else:
        assert isinstance(store, cache_module.SqlStore)
        with store.engine.begin() as conn:
            conn.execute(cache_module.response_cache.update().values(value='[{"oops": 1}]'))
    before = fake_openai.requests_served()
    with caplog.at_level(logging.WARNING, logger="agents.usage.cache"):
        assert _ask(s, "narrative_report", "alice", "garbled #out=2").content == "w0 w1"
    assert fake_openai.requests_served() == before + 1
    assert any("unreadable entry" in r.getMessage() for r in caplog.records)


def test_the_cache_lives_beside_the_ledger_on_postgres_too(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, ledger_url: str
) -> None:
    s = make_settings(
        OPENAI_API_KEY="sk-test-secret-123",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        DATABASE_URL=ledger_url,
    )
    before = fake_openai.requests_served()
    for user in ("alice", "alice", "bob"):
        _ask(s, "prompt_governance", user, "is this allowed? #out=2")
    assert fake_openai.requests_served() == before + 2
    assert [r["cache_hit"] for r in get_ledger(s).rows()] == [False, True, False]
    store = get_cache_store(s)
    assert store.kind == "sql"
    scope = cache_module.CacheScope(user_id="alice", service="prompt_governance", model="m")
    for value in ("first", "second"):  # two misses of one prompt racing: the newer one stays
        store.put(cache_module.Entry("k" * 64, scope, value), 60)
    assert store.get(scope, "k" * 64) == "second"


# ---- the property: hits come only from the same (user, service, model) ---------------------

_calls = st.lists(
    st.tuples(st.sampled_from(USERS), st.sampled_from(SERVICES), st.integers(0, 3)),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=_calls)
def test_interleaved_calls_hit_exactly_when_the_same_scope_asked_before(
    store_settings: Callable[..., Settings], fake_openai: FakeServer, calls: list[Any]
) -> None:
    s = store_settings()
    run = uuid.uuid4().hex[:8]  # examples share the store: their prompts never meet
    seen: set[tuple[str, str, int]] = set()
    ledger = get_ledger(s)
    for user, service, prompt in calls:
        expect_hit = (user, service, prompt) in seen
        before = fake_openai.requests_served()
        reply = _ask(s, service, user, f"run {run} prompt {prompt} #out={prompt + 2}")
        assert fake_openai.requests_served() == before + (0 if expect_hit else 1)
        assert reply.content == " ".join(f"w{i}" for i in range(prompt + 2))
        seen.add((user, service, prompt))
        last = ledger.rows()[-1]
        assert (last["user_id"], last["service"], last["cache_hit"]) == (user, service, expect_hit)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(
            st.booleans(), st.sampled_from(USERS), st.sampled_from(SERVICES), st.integers(0, 2)
        ),
        min_size=1,
        max_size=25,
    )
)
def test_every_hit_was_stored_by_the_same_user_service_and_model(
    store_settings: Callable[..., Settings], ops: list[Any]
) -> None:
    """The factory's own cache objects, written and read directly with the llm_string every
    user's instance shares: each stored answer names who stored it, so a crossed key would
    show as an answer naming someone else."""
    s = store_settings()
    run = uuid.uuid4().hex[:8]
    stored: dict[tuple[str, str, int], str] = {}
    for write, user, service, prompt in ops:
        chat = create_chat_model(service, user_id=user, settings=s)
        cache = chat.cache
        assert isinstance(cache, ResponseCache)
        llm_string = chat._get_llm_string(stop=None)  # no user in it: the old leak
        key = f"{run}:{prompt}"
        if write:
            answer = f"{user}/{service}/{chat.model_name}/{prompt}/{uuid.uuid4().hex[:6]}"
            cache.update(key, llm_string, [ChatGeneration(message=AIMessage(answer))])
            stored[(user, service, prompt)] = answer
            continue
        hit = cache.lookup(key, llm_string)
        if hit is None:
            assert (user, service, prompt) not in stored
        else:
            (gen,) = hit
            assert gen.text == stored[(user, service, prompt)]


# ---- Redis going away ------------------------------------------------------------------------


def test_redis_down_is_a_miss_and_one_warning(
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    redis_url: str,
    redis_session: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = make_settings(
        OPENAI_API_KEY="sk-test-secret-123",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        REDIS_URL=redis_url,
    )
    _ask(s, "narrative_report", "alice", "warm #out=2")
    monkeypatch.setattr(cache_module, "_BACKOFF_S", 0.0)  # every call tries Redis again
    redis_session.stop()
    before = fake_openai.requests_served()
    with caplog.at_level(logging.WARNING, logger="agents.usage.cache"):
        for _ in range(3):
            assert _ask(s, "narrative_report", "alice", "warm #out=2").content == "w0 w1"
    assert fake_openai.requests_served() == before + 3  # misses, not failures
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "redis" in warnings[0].getMessage()
    assert not any(r["cache_hit"] for r in get_ledger(s).rows())
    redis_session.start()
    with caplog.at_level(logging.WARNING, logger="agents.usage.cache"):
        _ask(s, "narrative_report", "alice", "after #out=2")
        _ask(s, "narrative_report", "alice", "after #out=2")
    assert get_ledger(s).rows()[-1]["cache_hit"]  # back: stored and served again
    assert any("is back" in r.getMessage() for r in caplog.records)


def test_a_cache_that_cannot_be_opened_leaves_the_model_uncached(
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "response_cache.sqlite3").mkdir()  # a directory where the file goes
    s = make_settings(
        OPENAI_API_KEY="sk-test-secret-123",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db' / 'ledger.sqlite3'}",
    )
    with caplog.at_level(logging.WARNING, logger="agents.llm.factory"):
        chat = create_chat_model("narrative_report", user_id="alice", settings=s)
    assert chat.cache is False
    assert any("runs uncached" in r.getMessage() for r in caplog.records)
    before = fake_openai.requests_served()
    chat.invoke("x #out=2")
    chat.invoke("x #out=2")
    assert fake_openai.requests_served() == before + 2


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung Redis."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def test_a_hung_redis_is_a_bounded_miss(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, silent_port: int
) -> None:
    s = make_settings(
        OPENAI_API_KEY="sk-test-secret-123",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        REDIS_URL=f"redis://127.0.0.1:{silent_port}/0",
        QUANT_GENAI_CACHE_TIMEOUT_S=0.2,
    )
    before = fake_openai.requests_served()
    assert _ask(s, "narrative_report", "alice", "hung #out=2").content == "w0 w1"
    assert _ask(s, "narrative_report", "alice", "hung #out=2").content == "w0 w1"
    assert fake_openai.requests_served() == before + 2


# ---- the semantic mode -----------------------------------------------------------------------


def test_semantic_hits_paraphrases_of_the_same_user_only(
    store_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = store_settings(QUANT_GENAI_CACHE="semantic")
    service, model = "strategy_builder", "gpt-4o"
    ask = "Build a strategy that buys AAPL when RSI(14) falls below 30 #out=4"

    def call(user: str, text: str) -> None:
        create_chat_model(service, model, user_id=user, settings=s).invoke(text)

    before = fake_openai.requests_served()
    call("alice", ask)
    call("alice", "Create a strategy buying AAPL whenever RSI(14) drops under 30 #out=4")
    assert fake_openai.requests_served() == before + 1  # the paraphrase was a hit
    call("alice", "Build a strategy that buys AAPL when RSI(7) falls below 30 #out=4")
    call("alice", "Build a strategy that sells AAPL when RSI(14) rises above 70 #out=4")
    call("bob", ask)  # the same words, another user
    assert fake_openai.requests_served() == before + 4
    hits = [r["cache_hit"] for r in get_ledger(s).rows()]
    assert hits == [False, True, False, False, False]


# ---- a whole graph run -----------------------------------------------------------------------


def test_the_same_report_twice_costs_nothing_the_second_time(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer
) -> None:
    """The narrative report streams every section (`model.stream`): the second report of the
    same backtest for the same user is served section by section from the cache; another
    user's report of an equal backtest is not."""
    from agents import registry
    from agents.quant.backtests import run_backtest
    from agents.quant.corpus import SmaCross
    from graphs import narrative_report

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("QUANT_GENAI_STREAM_USAGE", "true")
    monkeypatch.setenv("QUANT_GENAI_MAX_RETRIES", "0")
    registry.reset()

    def report(user: str) -> dict[str, Any]:
        bt = run_backtest(SmaCross, "GOOG", user_id=user)
        out: dict[str, Any] = narrative_report.graph.invoke(
            narrative_report.InputState(backtest=bt, request="a summary #out=6"),
            context=narrative_report.Context(user_id=user, max_attempts=1),
        )
        return out

    first = report("nr1")
    sent = fake_openai.requests_served()
    second = report("nr1")
    assert fake_openai.requests_served() == sent  # every section was a hit
    assert second["report"] == first["report"]
    rows = get_ledger().rows(user_id="nr1")
    assert len(rows) % 2 == 0 and rows
    half = len(rows) // 2
    assert not any(r["cache_hit"] for r in rows[:half])
    assert all(r["cache_hit"] and r["cost_nanousd"] == 0 for r in rows[half:])
    assert sum(r["cost_nanousd"] for r in rows[:half]) > 0
    report("nr2")
    assert fake_openai.requests_served() == sent + half
