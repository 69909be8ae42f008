"""A response-cache hit counts no tokens against the token rate limit (it buys none).

Real HTTP through `ChatOpenAI` to the fake OpenAI-compatible server, the real ledger and response
cache on SQLite, the `limits` memory storage; the limit is set in the settings as a file would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from agents.llm.catalog import MODEL_CATALOG
from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.budgets import make_budget, set_budget
from agents.usage.ledger import get_ledger
from agents.usage.limits import worst_case_tokens
from agents.usage.rates import RateLimitExceededError
from tests.fakes.openai_server import FakeServer
from tests.integration.test_cache_budget import (
    CACHED,
    CHAT,
    MAX_TOKENS,
    NEW,
    _ask,
    _expiring,
    _settings,
)


def _worst_tokens(text: str) -> int:
    model = MODEL_CATALOG["gpt-4o-mini"]
    prompt, out = worst_case_tokens(model, [HumanMessage(text)], {"max_tokens": MAX_TOKENS})
    return prompt + out


def _limited(make_settings: Callable[..., Settings], fake: FakeServer) -> Settings:
    """Room for one call's worst case and a half: a second miss is refused."""
    room = _worst_tokens(CACHED) + _worst_tokens(NEW) // 2
    limits = {"services": {CHAT: {"user": {"tokens_per_minute": room}}}}
    return _settings(make_settings, fake, QUANT_GENAI_RATE_LIMITS=json.dumps(limits))


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
def test_hits_are_answered_while_a_miss_would_exceed_the_token_limit(
    how: str, make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = _limited(make_settings, fake_openai)
    chat = create_chat_model(CHAT, user_id="erin", settings=s, max_tokens=MAX_TOKENS)
    first = _ask(chat, how, CACHED)  # a miss: counts its worst case
    sent = fake_openai.requests_served()
    for _ in range(3):  # each would count a whole worst case if a hit were counted
        assert _ask(chat, how, CACHED) == first
    with pytest.raises(RateLimitExceededError) as refused:
        _ask(chat, how, NEW)  # a miss still counts, and this one does not fit
    assert refused.value.kind == "tokens" and refused.value.scope == "user"
    assert fake_openai.requests_served() == sent
    hits = [r["cache_hit"] for r in get_ledger(s).rows(user_id="erin")]
    assert hits == [False, True, True, True]


@pytest.mark.parametrize("aio", [False, True])
def test_an_entry_that_expires_after_the_peek_counts_before_it_is_sent(
    aio: bool, make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    """The peek saw a hit, LangChain's own lookup a miss: the tokens are counted right before
    the send, and a refusal there sends nothing, holds no budget and writes no row."""
    s = _limited(make_settings, fake_openai)
    ledger = get_ledger(s)
    user = f"frank-{aio}"
    set_budget(  # a budget applies too: both handlers defer, the rate limit refuses first
        ledger.engine,
        make_budget(scope="user", period="day", unit="usd", limit=5.0, user_id=user),
    )
    chat = create_chat_model(CHAT, user_id=user, settings=s, max_tokens=MAX_TOKENS)
    cache = _expiring(chat)

    def ask(text: str) -> Any:
        return asyncio.run(chat.ainvoke(text)) if aio else chat.invoke(text)

    ask(CACHED)  # a miss: the window now has room for half a call
    sent = fake_openai.requests_served()
    cache.armed = True
    with pytest.raises(RateLimitExceededError):
        ask(CACHED)  # peeked as a hit, expired, counted at the send: does not fit
    assert fake_openai.requests_served() == sent
    assert len(ledger.rows(user_id=user)) == 1 and ledger.held_nanousd(user) == 0
