"""The budget, alert and projection routes (`agents.serve.admin_budgets`) under uvicorn."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from agents.usage.budgets import seconds_to_reset
from agents.usage.ledger import LedgerRow, get_ledger
from tests.fakes.openai_server import FakeServer

ADMIN = {"x-api-key": "k-root"}
ALICE = {"x-api-key": "k-alice"}
CHAT = "chatops_advanced"


@pytest.fixture
def url(serve_app: Callable[..., str], fake_openai: FakeServer) -> str:
    return serve_app(
        QUANT_GENAI_API_KEYS=json.dumps({"k-root": "root", "k-alice": "alice"}),
        QUANT_GENAI_ADMIN_USERS='["root"]',
        QUANT_GENAI_USER_BUDGETS_USD='{"alice": 3.0}',
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_BASE_URL_BILLED="true",
        QUANT_GENAI_STREAM_USAGE="true",
        QUANT_GENAI_MAX_RETRIES="0",
        QUANT_GENAI_CACHE="off",
    )


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert set(error) <= {"type", "message", "allowed"}
    return error


def test_admins_set_show_and_delete_budgets(url: str) -> None:
    body = {
        "scope": "user_service",
        "period": "month",
        "unit": "tokens",
        "limit": 5000,
        "user_id": "alice",
        "service": CHAT,
    }
    e = _error(httpx.put(f"{url}/v1/admin/budgets", json=body, headers=ALICE), 403)
    assert "admin" in e["message"]
    _error(httpx.get(f"{url}/v1/admin/budgets", headers=ALICE), 403)
    r = httpx.put(f"{url}/v1/admin/budgets", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    got = r.json()["budget"]
    assert (got["limit"], got["spent"], got["remaining"], got["source"]) == (
        5000,
        0,
        5000,
        "stored",
    )
    listed = httpx.get(f"{url}/v1/admin/budgets", headers=ADMIN).json()
    assert [b["scope"] for b in listed["budgets"]] == ["user_service"]
    assert listed["environment_defaults"]["user_budgets_usd"] == {"alice": 3.0}
    mine = httpx.get(f"{url}/v1/budgets", headers=ALICE).json()
    assert {(b["scope"], b["source"]) for b in mine["budgets"]} == {
        ("user_service", "stored"),
        ("user", "environment"),  # the environment's daily default for alice
    }
    query = {
        "scope": "user_service",
        "period": "month",
        "unit": "tokens",
        "user_id": "alice",
        "service": CHAT,
    }
    assert httpx.delete(f"{url}/v1/admin/budgets", params=query, headers=ADMIN).status_code == 200
    e = _error(httpx.delete(f"{url}/v1/admin/budgets", params=query, headers=ADMIN), 404)
    assert e["type"] == "budget_not_found"


@pytest.mark.parametrize(
    ("change", "status", "message", "allowed"),
    [
        (
            {"scope": "team"},
            400,
            "unknown scope 'team'",
            ["user", "service", "user_service", "global"],
        ),
        ({"period": "week"}, 400, "unknown period 'week'", ["day", "month"]),
        ({"unit": "eur"}, 400, "unknown unit 'eur'", ["usd", "tokens"]),
        ({"limit": -5}, 400, "zero or more", None),
        ({"service": "trading"}, 400, "unknown service 'trading'", None),
        ({"colour": "red"}, 422, "body.colour: Extra inputs are not permitted", None),
        ({"limit": "lots"}, 422, "body.limit", None),
    ],
)
def test_bad_budgets_are_refused_naming_what_is_allowed(
    url: str, change: dict[str, Any], status: int, message: str, allowed: list[str] | None
) -> None:
    body = {"scope": "service", "period": "day", "unit": "usd", "limit": 1, "service": CHAT}
    e = _error(httpx.put(f"{url}/v1/admin/budgets", json={**body, **change}, headers=ADMIN), status)
    assert message in e["message"]
    if allowed is not None:
        assert e["allowed"] == allowed


def test_over_budget_is_429_naming_the_budget(url: str, fake_openai: FakeServer) -> None:
    body = {"scope": "global", "period": "month", "unit": "tokens", "limit": 0}
    assert httpx.put(f"{url}/v1/admin/budgets", json=body, headers=ADMIN).status_code == 200
    served = fake_openai.requests_served()
    r = httpx.post(
        f"{url}/v1/chat",
        json={"message": "What is a Sharpe ratio?", "thread_id": "t1"},
        headers=ALICE,
        timeout=60,
    )
    e = _error(r, 429)
    assert e["type"] == "quota_exceeded" and "monthly token budget of everyone" in e["message"]
    assert int(r.headers["Retry-After"]) == pytest.approx(seconds_to_reset("month"), abs=10)
    assert fake_openai.requests_served() == served


def test_alerts_and_projection_are_the_callers_unless_an_admin_asks(url: str) -> None:
    ledger = get_ledger()
    for user, cost in (("alice", 2_000_000_000), ("bob", 1_000_000)):
        ledger.record(
            LedgerRow(
                request_id=f"r-{user}",
                user_id=user,
                service=CHAT,
                model="gpt-4o-mini",
                served_model="gpt-4o-mini",
                route="openai",
                cost_nanousd=cost,
                list_price_nanousd=cost,
                input_tokens=10,
                output_tokens=5,
            )
        )
    alice = ledger.applicable_budgets("alice", CHAT, 3_000_000_000)  # her $3 daily default
    from agents.usage.alerts import get_alerter

    assert [a["threshold_pct"] for a in get_alerter().evaluate(ledger.engine, alice)] == [50.0]
    mine = httpx.get(f"{url}/v1/alerts", headers=ALICE).json()
    assert [a["threshold_pct"] for a in mine["alerts"]] == [50.0]
    assert mine["alerts"][0]["user_id"] == "alice"
    _error(httpx.get(f"{url}/v1/alerts", params={"all_users": True}, headers=ALICE), 403)
    assert (
        len(
            httpx.get(f"{url}/v1/alerts", params={"all_users": True}, headers=ADMIN).json()[
                "alerts"
            ]
        )
        == 1
    )
    assert (
        httpx.get(f"{url}/v1/alerts", params={"since": "2999-01-01"}, headers=ALICE).json()[
            "alerts"
        ]
        == []
    )
    p = httpx.get(f"{url}/v1/usage/projection", headers=ALICE).json()
    assert p["user_id"] == "alice" and [s["service"] for s in p["services"]] == [CHAT]
    assert p["total_cost_usd"] == 2.0 and p["projected_total_usd"] >= 2.0
    assert p["method"].startswith("linear")
    _error(httpx.get(f"{url}/v1/usage/projection", params={"all_users": True}, headers=ALICE), 403)
    everyone = httpx.get(f"{url}/v1/usage/projection", params={"all_users": True}, headers=ADMIN)
    assert everyone.json()["total_cost_usd"] == pytest.approx(2.001)
