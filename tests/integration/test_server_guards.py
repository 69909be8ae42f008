"""What the REST app checks before a route runs, on the real app under uvicorn in this process:
a refused request costs no rate, rules-only governance is no model call, bodies are bounded,
`/metrics` needs the scraper's token or an admin's key."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

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
