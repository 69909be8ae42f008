"""Per-user spend quota: reserve the worst case before a billed call, settle after.

Real HTTP to the fake OpenAI-compatible server (exact token counts), a real ledger on SQLite and
on Postgres, real threads racing for the same budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from agents.llm.catalog import MODEL_CATALOG
from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.ledger import LedgerRow, get_ledger
from agents.usage.limits import QuotaExceededError, budget_nanousd, worst_case_tokens
from agents.usage.pricing import TokenUsage, cost_nanousd
from tests.fakes.openai_server import FakeServer

PROMPT = "price this call #out=3"
SLOW = "price this call slowly #sleep=2000 #out=3"
MAX_TOKENS = 100


def _settings(make_settings: Callable[..., Settings], fake: FakeServer, **env: object) -> Settings:
    base: dict[str, object] = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "QUANT_GENAI_BASE_URL_BILLED": True,
        "QUANT_GENAI_STREAM_USAGE": True,
        "QUANT_GENAI_MAX_RETRIES": 0,
    }
    return make_settings(**{**base, **env})


def _worst_case(model_id: str, text: str = PROMPT) -> int:
    model = MODEL_CATALOG[model_id]
    prompt, out = worst_case_tokens(model, [HumanMessage(text)], {"max_tokens": MAX_TOKENS})
    return cost_nanousd(model, TokenUsage(input_tokens=prompt, output_tokens=out))


def test_budgets_per_user_and_default(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(QUANT_GENAI_DAILY_BUDGET_USD=2.5, QUANT_GENAI_USER_BUDGETS_USD={"alice": 10})
    assert budget_nanousd("alice", s) == 10_000_000_000
    assert budget_nanousd("bob", s) == 2_500_000_000
    assert budget_nanousd(None, s) is None
    assert budget_nanousd("bob", make_settings()) is None
    with pytest.raises(ValidationError, match="positive USD amounts"):
        make_settings(QUANT_GENAI_USER_BUDGETS_USD={"alice": -1})
    with pytest.raises(ValidationError, match="greater than 0"):
        make_settings(QUANT_GENAI_DAILY_BUDGET_USD=0)


def test_worst_case_covers_the_prompt_and_the_output_cap() -> None:
    model = MODEL_CATALOG["gpt-4o-mini"]
    long = [HumanMessage("word " * 1000)]
    prompt, out = worst_case_tokens(model, long, {"max_tokens": 50})
    assert prompt >= 1000 * 1.25 and out == 50
    _, uncapped = worst_case_tokens(model, long, {})
    assert uncapped == model.max_output_tokens
    with_tools, _ = worst_case_tokens(model, long, {"tools": [{"name": "x" * 400}]})
    assert with_tools > prompt


def test_call_over_budget_is_refused_before_it_is_sent(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    worst = _worst_case("gpt-4o-mini")
    s = _settings(make_settings, fake_openai, QUANT_GENAI_USER_BUDGETS_USD={"q": worst / 2e9})
    chat = create_chat_model("chatops_advanced", user_id="q", settings=s, max_tokens=MAX_TOKENS)
    served = fake_openai.requests_served()
    with pytest.raises(QuotaExceededError) as err:
        chat.invoke(PROMPT)
    assert fake_openai.requests_served() == served  # nothing reached the model
    assert err.value.needed_nanousd == worst and err.value.retry_after_s > 0
    assert "daily budget" in str(err.value) and "00:00 UTC" in str(err.value)
    assert get_ledger(s).rows(user_id="q") == []  # nothing was spent, nothing recorded
    # another user (no per-user budget, no default) is not limited
    other = create_chat_model("chatops_advanced", user_id="r", settings=s, max_tokens=MAX_TOKENS)
    assert other.invoke(PROMPT).content == "w0 w1 w2"


def test_concurrent_calls_cannot_overspend(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, ledger_url: str
) -> None:
    worst = _worst_case("gpt-4o-mini", SLOW)
    budget_usd = 5.5 * worst / 1e9  # room for exactly 5 calls in flight at their worst case
    s = _settings(
        make_settings,
        fake_openai,
        DATABASE_URL=ledger_url,
        QUANT_GENAI_USER_BUDGETS_USD={"racer": budget_usd},
    )
    chat = create_chat_model("chatops_advanced", user_id="racer", settings=s, max_tokens=MAX_TOKENS)
    ok, refused, other = [], [], []
    start = threading.Barrier(16)

    def call() -> None:
        start.wait()
        try:
            ok.append(chat.invoke(SLOW))
        except QuotaExceededError as exc:
            refused.append(exc)
        except Exception as exc:  # pragma: no cover - reported below
            other.append(exc)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other == []
    # every call takes 2 s on the server, so all 16 overlap: only 5 worst cases fit
    assert (len(ok), len(refused)) == (5, 11)
    assert all(e.retry_after_s == 2 for e in refused)  # blocked by calls in flight only
    ledger = get_ledger(s)
    rows = ledger.rows(user_id="racer")
    assert len(rows) == 5 and all(r["error"] is None for r in rows)
    spent = sum(r["cost_nanousd"] for r in rows)
    assert spent <= budget_usd * 1e9 and ledger.held_nanousd("racer") == 0
    # the real calls cost far less than their worst case: the settled budget is free again
    assert chat.invoke(PROMPT).content == "w0 w1 w2"


def test_failed_call_releases_its_reservation(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    worst = _worst_case("gpt-4o-mini")
    s = _settings(make_settings, fake_openai, QUANT_GENAI_USER_BUDGETS_USD={"f": worst * 1.5 / 1e9})
    chat = create_chat_model("chatops_advanced", user_id="f", settings=s, max_tokens=MAX_TOKENS)
    for _ in range(3):  # each failure would otherwise keep holding the only slot
        with pytest.raises(Exception, match="500"):
            chat.invoke(PROMPT + " #status=500")
    assert get_ledger(s).held_nanousd("f") == 0
    assert chat.invoke(PROMPT).content == "w0 w1 w2"


def test_expired_reservation_stops_holding_budget(
    make_settings: Callable[..., Settings],
) -> None:
    ledger = get_ledger(make_settings())
    ledger.reserve(request_id="dead", user_id="z", amount_nanousd=90, budget_nanousd=100, ttl_s=0)
    # the process that made "dead" never settled it; after its TTL it no longer counts
    ledger.reserve(request_id="next", user_id="z", amount_nanousd=90, budget_nanousd=100, ttl_s=60)
    with pytest.raises(QuotaExceededError) as err:
        ledger.reserve(
            request_id="third", user_id="z", amount_nanousd=20, budget_nanousd=100, ttl_s=60
        )
    assert err.value.held_nanousd == 90
    # the call's ledger row replaces its reservation (one transaction)
    ledger.record(
        LedgerRow(
            request_id="next",
            user_id="z",
            service="chatops_advanced",
            model="gpt-4o-mini",
            served_model="gpt-4o-mini",
            route="openai",
            input_tokens=10,
            cached_input_tokens=0,
            output_tokens=2,
            reasoning_tokens=0,
            cost_nanousd=3,
            list_price_nanousd=3,
            latency_ms=1.0,
            cache_hit=False,
            error=None,
        )
    )
    assert ledger.held_nanousd("z") == 0


def test_unbilled_routes_are_not_limited(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = _settings(
        make_settings,
        fake_openai,
        QUANT_GENAI_BASE_URL_BILLED=False,
        QUANT_GENAI_DAILY_BUDGET_USD=1e-9,
    )
    chat = create_chat_model("chatops_advanced", user_id="u", settings=s, max_tokens=MAX_TOKENS)
    assert chat.invoke(PROMPT).content == "w0 w1 w2"
    (row,) = get_ledger(s).rows(user_id="u")
    assert row["cost_nanousd"] == 0 and Decimal(row["list_price_nanousd"]) > 0
