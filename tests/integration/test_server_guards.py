"""What the REST app checks before a route runs, on the real app under uvicorn in this process:
a refused request costs no rate, rules-only governance is no model call, bodies are bounded,
`/metrics` needs the scraper's token or an admin's key."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import httpx
import pytest

from agents.llm.catalog import MODEL_CATALOG
from tests.fakes.openai_server import FakeServer

ALICE = {"x-api-key": "key-alice"}
ROOT = {"x-api-key": "key-root"}
KEYS = {"key-alice": "alice", "key-root": "root"}


@pytest.fixture
def url(serve_app: Callable[..., str]) -> str:
    return serve_app(
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_ADMIN_USERS='["root"]',
        QUANT_GENAI_METRICS_TOKEN="scrape-me",
        QUANT_GENAI_RATE_PER_MIN="1",
        QUANT_GENAI_RATE_BURST="2",
        QUANT_GENAI_MAX_BODY_BYTES="50000",
    )


def test_refused_requests_and_rules_only_checks_cost_no_rate(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(5):  # bad bodies and unknown models: refused before the rate counts
            assert (
                http.post("/v1/governance/check", json={"txt": "hi"}, headers=ALICE).status_code
                == 422
            )
            bad_model = {"text": "hi", "model": "gpt-9"}
            assert (
                http.post("/v1/governance/check", json=bad_model, headers=ALICE).status_code == 400
            )
            rules_only = {"text": "SMA 10/30 on GOOG", "use_model": False}
            assert (
                http.post("/v1/governance/check", json=rules_only, headers=ALICE).status_code == 200
            )
        counted = {"text": "SMA 10/30 on GOOG"}  # a model may be asked: counted
        assert [
            http.post("/v1/governance/check", json=counted, headers=ALICE).status_code
            for _ in range(3)
        ] == [200, 200, 429]
        r = http.post("/v1/governance/check", json=counted, headers=ALICE)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["type"] == "rate_limited"


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/governance/check", json={"text": "x" * 60_000}, headers=ALICE)
        assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"
        streamed = http.post(
            "/v1/governance/check",
            content=iter([b'{"text": "', b"y" * 30_000, b"y" * 30_000, b'"}']),
            headers={**ALICE, "content-type": "application/json"},
        )
        assert streamed.status_code == 413
        ok = http.post(
            "/v1/governance/check", json={"text": "x" * 40_000, "use_model": False}, headers=ALICE
        )
        assert ok.status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"x-api-key": "wrong"}, 401),
        (ALICE, 403),
        (ROOT, 200),
        ({"Authorization": "Bearer scrape-me"}, 200),
    ],
)
def test_metrics_need_the_scrapers_token_or_an_admins_key(
    url: str, headers: dict[str, str], status: int
) -> None:
    r = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert r.status_code == status, r.text
    if status == 200:
        assert "quant_genai_http_requests" in r.text
    else:
        assert r.json()["error"]["type"] in ("unauthorized", "forbidden")


# Regressions found by the schemathesis run (tests/integration/test_rest_fuzz.py): each was a
# 500, or an answer other than 401 to a caller without a key.


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/strategies", b"q\xff\\"),  # not UTF-8: was FastAPI's 400 "error parsing"
        ("POST", "/v1/chat", b"{not json"),  # was a 422 describing the body
        ("TRACE", "/v1/chat", b""),  # was 405 naming the allowed methods
        ("GET", "/v1/no-such-route", b""),  # was 404
        ("TRACE", "/metrics", b""),  # was 405
    ],
)
def test_without_a_key_anything_under_the_api_is_401_before_its_body_or_route(
    url: str, method: str, path: str, body: bytes
) -> None:
    r = httpx.request(
        method, f"{url}{path}", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"]["type"] == "unauthorized" and r.json()["error"]["message"]
    wrong = httpx.request(method, f"{url}{path}", content=body, headers={"x-api-key": "wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"]


def test_rules_only_governance_with_an_unknown_model_is_400_naming_the_models(url: str) -> None:
    """The route skipped the model check without `use_model`; the graph's own check raised."""
    body = {"text": "hi", "use_model": False, "model": "!}<\x86"}
    r = httpx.post(f"{url}/v1/governance/check", json=body, headers=ALICE, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "unknown_model" and "gpt-4o-mini" in error["allowed"]


@pytest.mark.parametrize("path", ["/v1/reports", "/v1/reports/stream"])
def test_an_empty_backtest_id_is_422_not_a_500_from_the_graph(url: str, path: str) -> None:
    r = httpx.post(f"{url}{path}", json={"backtest_id": ""}, headers=ALICE, timeout=60)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("body.backtest_id: ")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/strategies", {"request": "\u001e"}),  # str.strip() drops it: the graph saw ""
        ("/v1/strategies", {"request": " \t\n"}),
        ("/v1/chat", {"message": "\u001f ", "thread_id": "t1"}),
    ],
)
def test_a_blank_request_is_422_naming_the_field_not_a_500_from_the_graph(
    url: str, path: str, body: dict[str, str]
) -> None:
    r = httpx.post(f"{url}{path}", json=body, headers=ALICE, timeout=60)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    field = next(iter(body))
    assert message.startswith(f"body.{field}: ") and "only whitespace" in message, message


def _backtest(**changes: object) -> dict[str, object]:
    curve = [{"date": "2010-01-04", "equity": 10_000.0}, {"date": "2010-06-30", "equity": 11_000.0}]
    body: dict[str, object] = {
        "id": "bt-1",
        "user_id": "alice",
        "strategy_name": "SmaCross",
        "strategy_code": "",
        "symbol": "GOOG",
        "start": "2010-01-04",
        "end": "2010-06-30",
        "initial_cash": 10_000.0,
        "final_equity": 11_000.0,
        "total_return_pct": 10.0,
        "cagr_pct": None,
        "sharpe": None,
        "sortino": None,
        "max_drawdown_pct": -3.0,
        "num_trades": 2,
        "win_rate_pct": None,
        "exposure_pct": 50.0,
        "equity_curve": curve,
        "created_at": "2010-07-01T00:00:00Z",
    }
    return {**body, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {"equity_curve": [{"date": "0001-01-01", "equity": 1.0}]},  # axis before year 1
        {"equity_curve": [{"date": "9999-12-31", "equity": 1.0}]},  # axis after 9999
        {"initial_cash": 1.7e308},  # ticks overflow
        {"strategy_name": "$\\frac{$"},  # TeX matplotlib cannot parse
    ],
)
def test_a_chart_that_cannot_be_drawn_is_400_before_any_model_call(
    serve_app: Callable[..., str], fake_openai: FakeServer, changes: dict[str, object]
) -> None:
    """The chart is drawn after the narrative: it was a 500 once the model calls were made."""
    route = {"base_url": fake_openai.base_url, "billed": True}
    url = serve_app(
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_BACKEND="local",
        QUANT_GENAI_MODEL_ROUTES=json.dumps({m.id: route for m in MODEL_CATALOG.values()}),
        QUANT_GENAI_MAX_RETRIES="0",
    )
    body = {"backtest": _backtest(**changes), "chart": True}
    before = fake_openai.requests_served()
    for path in ("/v1/reports", "/v1/reports/stream"):
        r = httpx.post(f"{url}{path}", json=body, headers=ALICE, timeout=60)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "chart_unavailable" and "without `chart`" in error["message"]
    assert fake_openai.requests_served() == before
    without = httpx.post(
        f"{url}/v1/reports", json={**body, "chart": False}, headers=ALICE, timeout=60
    )
    assert without.status_code == 200, without.text


def test_a_stored_backtest_whose_chart_cannot_be_drawn_is_400_before_any_model_call(
    serve_app: Callable[..., str], fake_openai: FakeServer
) -> None:
    route = {"base_url": fake_openai.base_url, "billed": True}
    url = serve_app(
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_BACKEND="local",
        QUANT_GENAI_MODEL_ROUTES=json.dumps({m.id: route for m in MODEL_CATALOG.values()}),
        QUANT_GENAI_MAX_RETRIES="0",
    )
    stored = _backtest(id="bt-tex", strategy_name="$\\frac{$")
    r = httpx.post(f"{url}/v1/backtests", json=stored, headers=ALICE, timeout=120)
    assert r.status_code == 201, r.text
    before = fake_openai.requests_served()
    for path in ("/v1/reports", "/v1/reports/stream"):
        r = httpx.post(
            f"{url}{path}", json={"backtest_id": "bt-tex", "chart": True}, headers=ALICE, timeout=60
        )
        assert r.status_code == 400 and r.json()["error"]["type"] == "chart_unavailable", r.text
        missing = {"backtest_id": "bt-none", "chart": True}
        r = httpx.post(f"{url}{path}", json=missing, headers=ALICE, timeout=60)
        assert r.status_code == 404 and r.json()["error"]["type"] == "backtest_not_found", r.text
    assert fake_openai.requests_served() == before


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        # Python's json reads NaN and Infinity: the narrative's number formatting raised, and
        # the backtest store kept a -inf that no reply can carry
        ("/v1/reports", json.dumps({"backtest": _backtest(sharpe=math.nan)}), "NaN is not"),
        ("/v1/backtests", json.dumps(_backtest(initial_cash=-math.inf)), "-Infinity is not"),
        # a lone surrogate escape: UnicodeEncodeError in the governance rules, and a
        # PydanticSerializationError when a backtest was indexed
        ("/v1/governance/check", '{"text": "hi \\ud800"}', "\\ud800 is a lone surrogate"),
        ("/v1/backtests", json.dumps(_backtest(id="\udfff")), "\\udfff is a lone surrogate"),
        ("/v1/chat", b'{"message": "\xff"}', "the body is not UTF-8 text"),
        ("/v1/chat", "[" * 20_000, "the body is nested too deeply"),  # was a vague 400
    ],
)
def test_a_body_that_is_not_strict_json_is_422_naming_why(
    url: str, path: str, body: str | bytes, reason: str
) -> None:
    headers = {**ALICE, "content-type": "application/json"}
    r = httpx.post(f"{url}{path}", content=body, headers=headers, timeout=60)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "validation_error" and reason in error["message"], error
