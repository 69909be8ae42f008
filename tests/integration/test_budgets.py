"""Budgets stored in the ledger database: one reservation covering every budget of a call.

Real HTTP to the fake OpenAI-compatible server through ChatOpenAI (exact token counts), real
ledgers on SQLite and Postgres, real threads and real processes racing for the same budgets.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from agents.llm.catalog import MODEL_CATALOG
from agents.llm.factory import create_chat_model
from agents.serve.cli import app
from agents.settings import Settings
from agents.usage.budgets import (
    delete_budget,
    list_budgets,
    make_budget,
    seconds_to_reset,
    set_budget,
)
from agents.usage.ledger import Ledger, LedgerRow, get_ledger
from agents.usage.limits import QuotaExceededError, worst_case_tokens
from agents.usage.pricing import TokenUsage, cost_nanousd
from agents.usage.projection import project_month
from tests.fakes.openai_server import FakeServer
from tests.integration.budget_racer import AMOUNT_TOKENS, AMOUNT_USD, WORKERS, racer

PROMPT = "price this call #out=3"  # the fake server bills 4 input + 3 output tokens
SLOW = "price this call slowly #sleep=2000 #out=3"
MAX_TOKENS = 100
CHAT = "chatops_advanced"


def _settings(make_settings: Callable[..., Settings], fake: FakeServer, **env: object) -> Settings:
    base: dict[str, object] = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "QUANT_GENAI_BASE_URL_BILLED": True,
        "QUANT_GENAI_STREAM_USAGE": True,
        "QUANT_GENAI_MAX_RETRIES": 0,
        "QUANT_GENAI_CACHE": "off",  # every call reaches the server (a cache hit is 0 tokens)
    }
    return make_settings(**{**base, **env})


def _worst(text: str = PROMPT) -> tuple[int, int]:
    """(nano-USD, tokens) a gpt-4o-mini call of `text` reserves."""
    model = MODEL_CATALOG["gpt-4o-mini"]
    prompt, out = worst_case_tokens(model, [HumanMessage(text)], {"max_tokens": MAX_TOKENS})
    return cost_nanousd(model, TokenUsage(input_tokens=prompt, output_tokens=out)), prompt + out


def _set(ledger: Ledger, **fields: Any) -> None:
    set_budget(ledger.engine, make_budget(**fields), by="test")


def test_stored_budgets_apply_by_scope_and_override_the_environment(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    _set(ledger, scope="global", period="month", unit="usd", limit=100)
    _set(ledger, scope="user", period="day", unit="usd", limit=1, user_id="alice")
    _set(ledger, scope="user", period="day", unit="usd", limit=2, user_id="alice")  # replaces
    _set(ledger, scope="service", period="day", unit="tokens", limit=500, service=CHAT)
    _set(
        ledger,
        scope="user_service",
        period="month",
        unit="tokens",
        limit=9,
        user_id="bob",
        service=CHAT,
    )
    assert len(list_budgets(ledger.engine)) == 4
    alice = ledger.applicable_budgets("alice", CHAT, env_limit_nanousd=5)
    bob = ledger.applicable_budgets("bob", CHAT, env_limit_nanousd=5)
    bob_elsewhere = ledger.applicable_budgets("bob", "narrative_report")
    # alice's stored daily USD budget overrides the environment's default for her
    assert sorted((b.scope, b.unit, b.limit, b.source) for b in alice) == [
        ("global", "usd", 100 * 10**9, "stored"),
        ("service", "tokens", 500, "stored"),
        ("user", "usd", 2 * 10**9, "stored"),
    ]
    assert ("user", 5, "environment") in {(b.scope, b.limit, b.source) for b in bob}
    assert {b.scope for b in bob} == {"global", "service", "user_service", "user"}
    assert {b.scope for b in bob_elsewhere} == {"global"}
    gone = make_budget(scope="global", period="month", unit="usd", limit=0)
    assert delete_budget(ledger.engine, gone) and not delete_budget(ledger.engine, gone)


def test_token_budget_limits_unbilled_routes_and_names_itself(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = _settings(make_settings, fake_openai, QUANT_GENAI_BASE_URL_BILLED=False)
    _, worst_tokens = _worst()
    _set(
        get_ledger(s),
        scope="user_service",
        period="day",
        unit="tokens",
        limit=worst_tokens + 10,
        user_id="t",
        service=CHAT,
    )
    chat = create_chat_model(CHAT, user_id="t", settings=s, max_tokens=MAX_TOKENS)
    for _ in range(2):  # 7 tokens each: the worst case fits twice
        assert chat.invoke(PROMPT).content == "w0 w1 w2"
    served = fake_openai.requests_served()
    with pytest.raises(QuotaExceededError) as err:
        chat.invoke(PROMPT)
    assert fake_openai.requests_served() == served  # nothing was sent
    e = err.value
    assert (e.scope, e.period, e.unit, e.service, e.user_id) == (
        "user_service",
        "day",
        "tokens",
        CHAT,
        "t",
    )
    assert (e.spent_nanousd, e.held_nanousd, e.needed_nanousd) == (14, 0, worst_tokens)
    assert e.retry_after_s == pytest.approx(seconds_to_reset("day"), abs=5)
    assert f"daily token budget of user 't' on service '{CHAT}'" in str(e)
    assert f"limit {worst_tokens + 10:,} tokens" in str(e)
    # the unbilled calls cost $0, and a USD budget does not limit them
    rows = get_ledger(s).rows(user_id="t")
    assert [r["cost_nanousd"] for r in rows] == [0, 0]
    other = create_chat_model(CHAT, user_id="u", settings=s, max_tokens=MAX_TOKENS)
    assert other.invoke(PROMPT).content == "w0 w1 w2"


def test_monthly_service_budget_and_the_environment_default(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    worst_usd, _ = _worst()
    s = _settings(make_settings, fake_openai, QUANT_GENAI_USER_BUDGETS_USD={"m": worst_usd / 2e9})
    ledger = get_ledger(s)
    chat = create_chat_model(CHAT, user_id="m", settings=s, max_tokens=MAX_TOKENS)
    with pytest.raises(QuotaExceededError, match="daily budget of user 'm'") as err:
        chat.invoke(PROMPT)  # the environment's daily default
    assert err.value.scope == "user" and "00:00 UTC" in str(err.value)
    _set(ledger, scope="user", period="day", unit="usd", limit=1.0, user_id="m")
    assert chat.invoke(PROMPT).content == "w0 w1 w2"  # the stored budget overrides it
    _set(ledger, scope="service", period="month", unit="usd", limit=worst_usd / 2e9, service=CHAT)
    with pytest.raises(QuotaExceededError, match=f"monthly budget of service '{CHAT}'") as err:
        chat.invoke(PROMPT)
    assert err.value.retry_after_s == pytest.approx(seconds_to_reset("month"), abs=5)
    assert "1st of next month" in str(err.value)
    assert ledger.held_nanousd("m") == 0


def test_concurrent_calls_cannot_overspend_any_budget(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, ledger_url: str
) -> None:
    worst_usd, worst_tokens = _worst(SLOW)
    s = _settings(make_settings, fake_openai, DATABASE_URL=ledger_url)
    ledger = get_ledger(s)
    # room for 5 worst cases in USD on the service, 3 in tokens for the racer on it
    _set(
        ledger, scope="service", period="day", unit="usd", limit=5.5 * worst_usd / 1e9, service=CHAT
    )
    _set(
        ledger,
        scope="user_service",
        period="month",
        unit="tokens",
        limit=int(3.5 * worst_tokens),
        user_id="racer",
        service=CHAT,
    )
    chat = create_chat_model(CHAT, user_id="racer", settings=s, max_tokens=MAX_TOKENS)
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
    assert (len(ok), len(refused)) == (3, 13)  # all overlap (2 s each): 3 token worst cases
    assert all(e.retry_after_s == 2 and e.unit == "tokens" for e in refused)
    rows = ledger.rows(user_id="racer")
    assert len(rows) == 3 and ledger.held_nanousd("racer") == 0
    assert sum(r["input_tokens"] + r["output_tokens"] for r in rows) <= 3.5 * worst_tokens
    # another user on the service shares its USD budget (2 worst cases of room are left)
    assert create_chat_model(CHAT, user_id="x", settings=s, max_tokens=MAX_TOKENS).invoke(PROMPT)


def test_processes_cannot_overspend_any_budget(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    # 25 calls fit the global token budget, 30 the user's USD budget: 25 in all, not one more
    _set(ledger, scope="global", period="day", unit="tokens", limit=25 * AMOUNT_TOKENS)
    _set(
        ledger, scope="user", period="month", unit="usd", limit=30 * AMOUNT_USD / 1e9, user_id="mp"
    )
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=racer, args=(ledger_url, w, barrier, out)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(results) == 25
    rows = ledger.rows(user_id="mp")
    assert len(rows) == 25 and sum(r["input_tokens"] + r["output_tokens"] for r in rows) == 2500
    assert ledger.held_nanousd("mp") == 0


def test_month_projection_is_linear_on_the_elapsed_fraction(
    make_settings: Callable[..., Settings],
) -> None:
    ledger = get_ledger(make_settings())
    now = datetime(2026, 12, 11)  # 10 of December's 31 days elapsed
    calls = [
        (datetime(2026, 12, 1, 9), CHAT, 3_000_000, 100, 20),
        (datetime(2026, 12, 10, 23), CHAT, 1_000_000, 50, 30),
        (datetime(2026, 12, 5), "narrative_report", 2_000_000, 10, 10),
        (datetime(2026, 11, 30, 23, 59), CHAT, 999_000_000, 1000, 1000),  # last month
    ]
    for i, (ts, service, cost, inp, out) in enumerate(calls):
        ledger.record(
            LedgerRow(
                request_id=f"p{i}",
                user_id="pro",
                service=service,
                model="gpt-4o-mini",
                served_model="gpt-4o-mini",
                route="openai",
                cost_nanousd=cost,
                list_price_nanousd=cost,
                input_tokens=inp,
                output_tokens=out,
                ts=ts,
            )
        )
    p = project_month(ledger, user_id="pro", now=now)
    assert (p.month, p.days_in_month, p.days_elapsed) == ("2026-12", 31, 10.0)
    by = {s.service: s for s in p.services}
    assert by[CHAT].cost_usd == Decimal("0.004") and by[CHAT].tokens == 200
    assert by[CHAT].projected_cost_usd == Decimal("0.012400000")  # 0.004 × 31 / 10
    assert by[CHAT].projected_tokens == 620
    assert by["narrative_report"].projected_cost_usd == Decimal("0.006200000")
    assert p.projected_cost_usd == Decimal("0.0186")
    early = project_month(ledger, user_id="pro", now=datetime(2026, 12, 1, 0, 1))
    assert early.elapsed_fraction == pytest.approx(1 / (31 * 24))  # at least one hour
    assert project_month(ledger, user_id="nobody", now=now).services == []
    assert project_month(ledger, now=now + timedelta(days=30)).month == "2027-01"


def test_cli_sets_shows_and_deletes_budgets() -> None:
    run = CliRunner().invoke
    res = run(
        app,
        [
            "budget",
            "set",
            "--scope",
            "user_service",
            "--user",
            "c",
            "--service",
            CHAT,
            "--unit",
            "tokens",
            "--period",
            "month",
            "--limit",
            "900",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["remaining"] == 900
    shown = json.loads(run(app, ["budget", "show", "--user", "c", "--json"]).output)
    assert [(b["scope"], b["limit"]) for b in shown] == [("user_service", 900)]
    assert "user c / chatops_advanced" in run(app, ["budget", "show"]).output
    bad = run(app, ["budget", "set", "--scope", "team", "--limit", "1"])
    assert bad.exit_code == 2 and "scopes: user, service, user_service, global" in bad.output
    neg = run(app, ["budget", "set", "--scope", "global", "--limit", "-3"])
    assert neg.exit_code == 2 and "zero or more" in neg.output
    args = [
        "budget",
        "delete",
        "--scope",
        "user_service",
        "--user",
        "c",
        "--service",
        CHAT,
        "--unit",
        "tokens",
        "--period",
        "month",
    ]
    assert run(app, args).exit_code == 0
    again = run(app, args)
    assert again.exit_code == 2 and "no stored user_service month tokens budget" in again.output
    projection = json.loads(run(app, ["projection", "--json"]).output)
    assert projection["services"] == [] and projection["method"].startswith("linear")
