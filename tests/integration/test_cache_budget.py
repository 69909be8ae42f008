"""A response-cache hit reserves no budget: a user at a limit still gets an answer cached for them.

Real HTTP through `ChatOpenAI` to the fake OpenAI-compatible server, the real ledger on SQLite,
the real response cache (its SQLite file, or Redis), stored budgets set as an admin would.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agents.llm.catalog import MODEL_CATALOG
from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.budgets import make_budget, set_budget
from agents.usage.cache import ResponseCache
from agents.usage.ledger import Ledger, get_ledger
from agents.usage.limits import QuotaExceededError, worst_case_tokens
from agents.usage.pricing import TokenUsage, cost_nanousd
from tests.fakes.openai_server import FakeServer

CHAT = "chatops_advanced"  # gpt-4o-mini, cache capped at exact
CACHED = "what did my backtest earn #out=3"
NEW = "what did my other backtest earn #out=3"
MAX_TOKENS = 100


def _settings(make_settings: Callable[..., Settings], fake: FakeServer, **env: Any) -> Settings:
    return make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake.base_url,
        QUANT_GENAI_BASE_URL_BILLED=True,
        QUANT_GENAI_STREAM_USAGE=True,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_FALLBACK=False,
        **env,
    )


def _exhaust(ledger: Ledger, user: str) -> None:
    """Give `user` a daily USD budget of exactly what they spent today: nothing is left."""
    spent = sum(r["cost_nanousd"] or 0 for r in ledger.rows(user_id=user))
    set_budget(
        ledger.engine,
        make_budget(scope="user", period="day", unit="usd", limit=spent / 1e9, user_id=user),
    )


def _worst(text: str) -> int:
    model = MODEL_CATALOG["gpt-4o-mini"]
    prompt, out = worst_case_tokens(model, [HumanMessage(text)], {"max_tokens": MAX_TOKENS})
    return cost_nanousd(model, TokenUsage(input_tokens=prompt, output_tokens=out))


def _ask(chat: Any, how: str, text: str) -> str:
    """One call of `text` through `how`; its text (a stream's chunks joined)."""
    if how == "invoke":
        return str(chat.invoke(text).content)
    if how == "ainvoke":
        return str(asyncio.run(chat.ainvoke(text)).content)
    if how == "stream":
        return "".join(str(c.content) for c in chat.stream(text))
    if how == "batch":
        (reply,) = chat.batch([text])
        return str(reply.content)

    async def astream() -> str:
        return "".join([str(c.content) async for c in chat.astream(text)])

    return asyncio.run(astream())


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream", "batch"])
@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_an_exhausted_budget_still_gets_its_own_cached_answer(
    how: str,
    store: str,
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    request: pytest.FixtureRequest,
) -> None:
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if store == "redis" else {}
    s = _settings(make_settings, fake_openai, **env)
    ledger = get_ledger(s)
    alice = create_chat_model(CHAT, user_id="alice", settings=s, max_tokens=MAX_TOKENS)
    first = _ask(alice, how, CACHED)  # a miss: paid, stored for alice
    assert first == "w0 w1 w2"
    _exhaust(ledger, "alice")
    _exhaust(ledger, "bob")  # bob spent nothing: a budget of $0
    sent = fake_openai.requests_served()

    with pytest.raises(QuotaExceededError):
        _ask(alice, how, NEW)  # not in the cache: refused, as before
    assert _ask(alice, how, CACHED) == first  # in alice's cache: answered, at $0
    bob = create_chat_model(CHAT, user_id="bob", settings=s, max_tokens=MAX_TOKENS)
    with pytest.raises(QuotaExceededError):
        _ask(bob, how, CACHED)  # the same prompt is not in bob's cache: refused

    assert fake_openai.requests_served() == sent  # nothing reached the model
    rows = ledger.rows()
    assert [(r["user_id"], r["cache_hit"], r["cost_nanousd"]) for r in rows] == [
        ("alice", False, rows[0]["cost_nanousd"]),
        ("alice", True, 0),
    ]
    assert rows[0]["cost_nanousd"] > 0 and rows[1]["error"] is None
    assert ledger.held_nanousd("alice") == ledger.held_nanousd("bob") == 0


def test_a_hit_is_served_while_misses_hold_the_whole_budget(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    """A miss in flight holds its worst case (another miss is refused for it, retry in 2 s);
    a hit needs no room, so it is answered meanwhile."""
    slow = "a slow question #sleep=1500 #out=3"
    s = _settings(make_settings, fake_openai)
    ledger = get_ledger(s)
    chat = create_chat_model(CHAT, user_id="carol", settings=s, max_tokens=MAX_TOKENS)
    chat.invoke(CACHED)
    spent = ledger.rows(user_id="carol")[0]["cost_nanousd"]
    room = spent + _worst(slow) + _worst(NEW) // 2  # the slow miss fits, a second miss does not
    set_budget(
        ledger.engine,
        make_budget(scope="user", period="day", unit="usd", limit=room / 1e9, user_id="carol"),
    )
    done: list[BaseMessage] = []
    flight = threading.Thread(target=lambda: done.append(chat.invoke(slow)))
    flight.start()
    deadline = time.monotonic() + 5
    while ledger.held_nanousd("carol") == 0:  # the miss reserved before it was sent
        assert time.monotonic() < deadline and flight.is_alive()
        time.sleep(0.01)
    assert ledger.held_nanousd("carol") == _worst(slow)
    with pytest.raises(QuotaExceededError) as refused:
        chat.invoke(NEW)
    assert refused.value.retry_after_s == 2  # blocked by the call in flight only
    hit = chat.invoke(CACHED)
    assert isinstance(hit, AIMessage) and hit.response_metadata["cache_hit"] is True
    assert ledger.held_nanousd("carol") == _worst(slow)  # the hit held nothing
    flight.join()
    assert len(done) == 1 and ledger.held_nanousd("carol") == 0
    assert [r["cache_hit"] for r in ledger.rows(user_id="carol")] == [False, True, False]


class _ExpiresAfterPeek(ResponseCache):
    """The real cache, but an armed entry is gone right after the next lookup that finds it:
    the model's peek sees it, LangChain's own lookup a moment later does not (it expired)."""

    armed = False

    def lookup(self, prompt: str, llm_string: str) -> Any:
        found = super().lookup(prompt, llm_string)
        if found is not None and self.armed:
            self.armed = False
            self.clear()
        return found


def _expiring(chat: Any) -> _ExpiresAfterPeek:
    real = chat.cache
    assert isinstance(real, ResponseCache)
    cache = _ExpiresAfterPeek(real.store, real.scope, mode=real.mode, ttl_s=real.ttl_s)
    chat.cache = cache
    return cache


@pytest.mark.parametrize("aio", [False, True])
def test_an_entry_that_expires_after_the_peek_is_reserved_before_it_is_sent(
    aio: bool,
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = _settings(make_settings, fake_openai)
    ledger = get_ledger(s)
    user = f"dave-{aio}"
    chat = create_chat_model(CHAT, user_id=user, settings=s, max_tokens=MAX_TOKENS)
    cache = _expiring(chat)

    def ask() -> str:
        return _ask(chat, "ainvoke" if aio else "invoke", CACHED)

    ask()
    _exhaust(ledger, user)
    sent = fake_openai.requests_served()
    cache.armed = True
    with pytest.raises(QuotaExceededError):
        ask()  # the peek hit, the entry expired, the reservation at the send refused it
    assert fake_openai.requests_served() == sent  # nothing was sent
    assert len(ledger.rows(user_id=user)) == 1  # a refusal writes no row, as at the start
    # with room again, the same race is reserved, sent, billed and settled
    set_budget(
        ledger.engine,
        make_budget(scope="user", period="day", unit="usd", limit=1.0, user_id=user),
    )
    ask()  # stores the answer again (a miss)
    cache.armed = True
    with caplog.at_level(logging.WARNING, logger="agents.usage.callback"):
        assert ask() == "w0 w1 w2"
    assert "sent unreserved" not in caplog.text  # it was reserved right before the send
    assert fake_openai.requests_served() == sent + 2
    rows = ledger.rows(user_id=user)
    assert [r["cache_hit"] for r in rows] == [False, False, False]
    assert all(r["cost_nanousd"] > 0 for r in rows) and ledger.held_nanousd(user) == 0


def test_a_semantic_hit_reserves_nothing_either(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = _settings(make_settings, fake_openai, QUANT_GENAI_CACHE="semantic")
    ledger = get_ledger(s)
    chat = create_chat_model("strategy_builder", "gpt-4o", user_id="erin", settings=s)
    chat.invoke("Build a strategy that buys AAPL when RSI(14) falls below 30 #out=4")
    _exhaust(ledger, "erin")
    sent = fake_openai.requests_served()
    reply = chat.invoke("Create a strategy buying AAPL whenever RSI(14) drops under 30 #out=4")
    assert reply.response_metadata["cache_hit"] is True
    with pytest.raises(QuotaExceededError):
        chat.invoke("Build a strategy that sells AAPL when RSI(14) rises above 70 #out=4")
    assert fake_openai.requests_served() == sent
    assert [r["cache_hit"] for r in ledger.rows(user_id="erin")] == [False, True]
