"""The real LangGraph server (`langgraph dev`): graphs through the SDK, REST routes over HTTP.

One server per module (start-up is ~10 s): its own data dir, the session's local model, two
users' API keys. Model-calling tests are `e2e`; the rest never reach a model.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from agents.llm.catalog import SERVICES
from agents.quant.backtests import run_backtest
from agents.quant.corpus import SmaCross
from agents.serve import api, metrics
from tests.fakes.openai_server import FakeServer

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).parent / "langgraph"
KEYS = {"key-alice": "alice", "key-bob": "bob", "key-root": "root", "key-carol": "carol"}
CAROL = {"x-api-key": "key-carol"}
BILLED_MODEL = "gpt-4.1-nano"  # the one model routed to the fake OpenAI server, billed
ALICE = {"x-api-key": "key-alice"}
BOB = {"x-api-key": "key-bob"}
ROOT_USER = {"Authorization": "Bearer key-root"}
METRICS_TOKEN = "scrape-token-1234"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
START_TIMEOUT_S = 180


@dataclass
class Server:
    url: str
    log: Path

    def client(self, key: str) -> SyncLangGraphClient:
        return get_sync_client(url=self.url, api_key=key)  # sent as x-api-key

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(
    local_gguf: Path,
    local_port: int,
    fake_openai: FakeServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    import json

    tmp = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        QUANT_GENAI_DATA_DIR=str(tmp / "data"),
        CHROMADB_PATH=str(tmp / "data" / "chroma"),
        # Blank, not unset: the server would otherwise read a developer's .env for them.
        OPENAI_API_KEY="",
        OPENAI_BASE_URL="",
        DATABASE_URL="",
        CHROMA_HOST="",
        QUANT_GENAI_MODEL_ROUTES=json.dumps(
            {BILLED_MODEL: {"base_url": fake_openai.base_url, "billed": True}}
        ),
        QUANT_GENAI_USER_BUDGETS_USD=json.dumps({"carol": 0.000001}),
        QUANT_GENAI_BACKEND="local",
        QUANT_GENAI_LOCAL_MODEL_PATH=str(local_gguf),
        QUANT_GENAI_LOCAL_PORT=str(local_port),
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_ADMIN_USERS='["root"]',
        QUANT_GENAI_METRICS_TOKEN=METRICS_TOKEN,
        QUANT_GENAI_MAX_BODY_BYTES="400000",
        QUANT_GENAI_RATE_PER_MIN="0",
        LANGSMITH_TRACING="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    log = tmp / "server.log"
    args = [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--config", str(ROOT / "langgraph.json")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev not ready in {START_TIMEOUT_S}s:\n{log.read_text()}")
            time.sleep(0.5)
        yield Server(url=url, log=log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its children
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@pytest.fixture(scope="module")
def alice_backtest(http: httpx.Client) -> dict[str, Any]:
    """One of alice's backtests, indexed through the REST hook."""
    result = run_backtest(SmaCross, "GOOG", user_id="alice", start="2010-01-01", end="2011-12-31")
    body = result.model_dump(mode="json")
    r = http.post("/v1/backtests", json=body, headers=ALICE)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": result.id, "user_id": "alice", "indexed": True}
    return body


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] and err["message"]
    return dict(err)


# --------------------------------------------------------------------------------------------
# Graphs through the SDK
# --------------------------------------------------------------------------------------------


def test_assistants_are_the_four_graphs(server: Server) -> None:
    found = server.client("key-alice").assistants.search(limit=20)
    assert {a["graph_id"] for a in found} == {
        "prompt_governance",
        "strategy_builder",
        "narrative_report",
        "chatops_advanced",
    }


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "nope"}, {"Authorization": "Bearer x"}])
def test_graph_routes_need_a_valid_key(http: httpx.Client, headers: dict[str, str]) -> None:
    assert http.post("/assistants/search", json={}, headers=headers).status_code == 401
    assert http.post("/threads", json={}, headers=headers).status_code == 401


def test_studio_header_does_not_bypass_auth(http: httpx.Client) -> None:
    """`langgraph dev` lets `x-auth-scheme: langsmith` in as a studio user unless disabled."""
    r = http.post("/assistants/search", json={}, headers={"x-auth-scheme": "langsmith"})
    assert r.status_code == 401


def test_governance_run_without_a_model(server: Server) -> None:
    client = server.client("key-alice")
    out = client.runs.wait(
        None, "prompt_governance", input={"text": "Mail the GOOG report to jo@example.com"}
    )
    assert isinstance(out, dict)
    assert out["verdict"] == "mask"
    assert "jo@example.com" not in out["masked_text"]


def test_stream_a_run_on_a_thread(server: Server) -> None:
    client = server.client("key-alice")
    thread = client.threads.create()
    assert (thread["metadata"] or {})["owner"] == "alice"
    events = list(
        client.runs.stream(
            thread["thread_id"],
            "prompt_governance",
            input={"text": "Summarise my GOOG backtests"},
            stream_mode="updates",
        )
    )
    nodes = [k for e in events if e.event == "updates" and isinstance(e.data, dict) for k in e.data]
    assert nodes == ["apply_rules", "decide"]
    state = client.threads.get_state(thread["thread_id"])
    assert isinstance(state["values"], dict) and state["values"]["verdict"] == "allow"


def test_the_readme_sdk_snippet_runs_as_written(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's langgraph-sdk example, executed with only the URL and the key swapped."""
    readme = (ROOT / "README.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    snippet = next(b for b in blocks if "get_sync_client" in b)
    assert "http://127.0.0.1:2024" in snippet and "demo-key" in snippet
    code = snippet.replace("http://127.0.0.1:2024", server.url).replace("demo-key", "key-alice")
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "[EMAIL]" in printed and "kim@example.com" not in printed  # masked before it left


def test_threads_are_private(server: Server, http: httpx.Client) -> None:
    alice, bob = server.client("key-alice"), server.client("key-bob")
    thread = alice.threads.create(metadata={"topic": "private"})
    tid = thread["thread_id"]
    assert alice.threads.get(tid)["thread_id"] == tid
    assert http.get(f"/threads/{tid}", headers=BOB).status_code == 404
    assert tid not in {t["thread_id"] for t in bob.threads.search(limit=100)}
    r = http.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "prompt_governance", "input": {"text": "hi"}},
        headers=BOB,
    )
    assert r.status_code == 404
    # an owner spoofed in the metadata is overwritten by the authenticated one
    spoofed = bob.threads.create(metadata={"owner": "alice"})
    assert (spoofed["metadata"] or {})["owner"] == "bob"


def test_run_user_comes_from_auth_not_the_body(
    server: Server, alice_backtest: dict[str, Any]
) -> None:
    """Bob naming alice in the run context still runs as bob: her backtest is not found."""
    bob = server.client("key-bob")
    thread = bob.threads.create()
    run = bob.runs.create(
        thread["thread_id"],
        "narrative_report",
        input={"backtest_id": alice_backtest["id"]},
        context={"user_id": "alice", "max_tokens": 32},
    )
    bob.runs.join(thread["thread_id"], run["run_id"])
    assert bob.runs.get(thread["thread_id"], run["run_id"])["status"] == "error"


@pytest.mark.e2e
def test_stream_report_by_id_runs_as_the_caller(
    server: Server, alice_backtest: dict[str, Any]
) -> None:
    """Alice naming bob in the context still runs as alice: her backtest is found."""
    alice = server.client("key-alice")
    thread = alice.threads.create()
    last: dict[str, Any] = {}
    for event in alice.runs.stream(
        thread["thread_id"],
        "narrative_report",
        input={"backtest_id": alice_backtest["id"]},
        context={"user_id": "bob", "max_tokens": 96, "max_attempts": 1},
        stream_mode="values",
    ):
        if event.event == "values" and isinstance(event.data, dict):
            last = event.data
        assert event.event != "error", event.data
    assert last["backtest_id"] == alice_backtest["id"]
    assert last["report"] and last["faithful"]


# --------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------


def test_models_by_service_and_tier(http: httpx.Client) -> None:
    r = http.get("/v1/models", params={"service": "prompt_governance"}, headers=ALICE)
    assert r.status_code == 200, r.text
    models = r.json()["models"]
    assert models and all(m["tier"] == "mini" for m in models)
    r = http.get(
        "/v1/models", params={"service": "narrative_report", "tier": "standard"}, headers=ALICE
    )
    assert r.status_code == 200
    assert {m["tier"] for m in r.json()["models"]} == {"standard"}
    assert "gpt-4o" in {m["id"] for m in r.json()["models"]}


def test_unknown_service_and_tier_name_the_valid_ones(http: httpx.Client) -> None:
    err = _error(http.get("/v1/models", params={"service": "trading"}, headers=ALICE), 400)
    assert "strategy_builder" in err["allowed"] and "strategy_builder" in err["message"]
    err = _error(
        http.get("/v1/models", params={"service": "narrative_report", "tier": "x"}, headers=ALICE),
        400,
    )
    assert "mini" in err["allowed"]


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"Authorization": "Basic a"}])
def test_rest_needs_a_valid_key(http: httpx.Client, headers: dict[str, str]) -> None:
    err = _error(
        http.get("/v1/models", params={"service": "chatops_advanced"}, headers=headers), 401
    )
    assert err["type"] == "unauthorized"


def test_bearer_token_works(http: httpx.Client) -> None:
    r = http.get("/v1/models", params={"service": "chatops_advanced"}, headers=ROOT_USER)
    assert r.status_code == 200


def test_governance_check(http: httpx.Client) -> None:
    r = http.post(
        "/v1/governance/check",
        json={"text": "Card 4111 1111 1111 1111, backtest my RSI strategy"},
        headers=ALICE,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "mask" and "4111 1111" not in body["masked_text"]


def test_forbidden_model_is_403_naming_the_allowed(http: httpx.Client) -> None:
    r = http.post("/v1/governance/check", json={"text": "hi", "model": "gpt-4o"}, headers=ALICE)
    err = _error(r, 403)
    assert err["type"] == "model_not_allowed"
    assert "gpt-4o-mini" in err["allowed"] and "gpt-4o" not in err["allowed"]
    r = http.post("/v1/strategies", json={"request": "sma", "model": "gpt-4o-mini"}, headers=ALICE)
    assert "gpt-4o" in _error(r, 403)["allowed"]


def test_unknown_model_is_400_naming_the_allowed(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat", json={"message": "hi", "thread_id": "t", "model": "gpt-9"}, headers=ALICE
    )
    err = _error(r, 400)
    assert err["type"] == "unknown_model" and "gpt-4o-mini" in err["allowed"]


def test_index_another_users_backtest_is_403(http: httpx.Client) -> None:
    result = run_backtest(SmaCross, "GOOG", user_id="alice", start="2012-01-01", end="2012-12-31")
    r = http.post("/v1/backtests", json=result.model_dump(mode="json"), headers=BOB)
    assert _error(r, 403)["type"] == "forbidden"


def test_report_of_a_missing_or_foreign_backtest_is_404(
    http: httpx.Client, alice_backtest: dict[str, Any]
) -> None:
    r = http.post("/v1/reports", json={"backtest_id": "no-such-id"}, headers=ALICE)
    assert _error(r, 404)["type"] == "backtest_not_found"
    r = http.post("/v1/reports", json={"backtest_id": alice_backtest["id"]}, headers=BOB)
    assert _error(r, 404)["type"] == "backtest_not_found"


def test_report_needs_exactly_one_backtest(http: httpx.Client) -> None:
    assert _error(http.post("/v1/reports", json={}, headers=ALICE), 400)["type"] == "bad_request"


def test_oversized_prompt_is_413_before_any_model_call(http: httpx.Client) -> None:
    huge = "buy when the fast average crosses the slow one " * 6000
    r = http.post("/v1/strategies", json={"request": huge, "model": "gpt-4o"}, headers=ALICE)
    assert "context window" in _error(r, 413)["message"]
    r = http.post("/v1/chat", json={"message": huge, "thread_id": "t"}, headers=ALICE)
    _error(r, 413)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat", {"message": "hi"}),  # no thread_id
        ("/v1/strategies", {"request": ""}),
        ("/v1/governance/check", {"text": "hi", "colour": "red"}),  # unknown field
        ("/v1/backtests", {"id": "x"}),
    ],
)
def test_malformed_body_is_422(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    err = _error(http.post(path, json=body, headers=ALICE), 422)
    assert err["type"] == "validation_error"


def test_malformed_json_is_422(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat", content=b"{not json", headers={**ALICE, "content-type": "application/json"}
    )
    _error(r, 422)


def test_usage_is_the_callers_and_admins_see_all(http: httpx.Client) -> None:
    r = http.get("/v1/usage", params={"group_by": "service,model"}, headers=ALICE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == "alice" and body["group_by"] == ["service", "model"]
    assert all(row["user"] is None for row in body["rows"])
    assert _error(http.get("/v1/usage", params={"all_users": True}, headers=ALICE), 403)
    r = http.get("/v1/usage", params={"all_users": True, "group_by": "user"}, headers=ROOT_USER)
    assert r.status_code == 200 and r.json()["user_id"] is None
    err = _error(http.get("/v1/usage", params={"group_by": "colour"}, headers=ALICE), 400)
    assert "model" in err["allowed"]
    _error(http.get("/v1/usage", params={"since": "yesterday"}, headers=ALICE), 422)
    r = http.get("/v1/usage", params={"service": "embeddings"}, headers=ALICE)
    assert r.status_code == 200, r.text  # embedding calls are ledger rows of their own service
    err = _error(http.get("/v1/usage", params={"service": "nope"}, headers=ALICE), 400)
    assert "embeddings" in err["allowed"] and "chatops_advanced" in err["allowed"]


def test_over_budget_is_429_with_retry_after_and_nothing_sent(
    http: httpx.Client, fake_openai: FakeServer
) -> None:
    served = fake_openai.requests_served()
    r = http.post(
        "/v1/chat",
        json={"message": "hello", "thread_id": "q1", "model": BILLED_MODEL},
        headers=CAROL,
    )
    err = _error(r, 429)
    assert err["type"] == "quota_exceeded" and "daily budget" in err["message"]
    assert int(r.headers["Retry-After"]) > 0
    assert fake_openai.requests_served() == served
    # alice has no budget set: the same billed model answers her (through the fake server)
    r = http.post(
        "/v1/chat",
        json={"message": "hello", "thread_id": "q1", "model": BILLED_MODEL},
        headers=ALICE,
    )
    assert r.status_code == 200, r.text
    assert fake_openai.requests_served() == served + 1


def test_metrics(http: httpx.Client) -> None:
    http.get("/v1/models", params={"service": "narrative_report"}, headers=ALICE)
    for headers in (SCRAPER, ROOT_USER):
        r = http.get("/metrics", headers=headers)
        assert r.status_code == 200
        want = 'quant_genai_http_requests_total{method="GET",route="/v1/models",status="200"}'
        assert want in r.text
        assert "alice" not in r.text  # totals by service and model only
    for headers, status in (({}, 401), ({"x-api-key": "nope"}, 401), (ALICE, 403)):
        r = http.get("/metrics", headers=headers)
        assert r.status_code == status, r.text
        assert r.json()["error"]["type"] in ("unauthorized", "forbidden")


def test_the_servers_own_meta_routes_are_ours(http: httpx.Client) -> None:
    """`disable_meta`: the LangGraph server's unauthenticated /metrics and its /openapi.json are
    gone; /openapi.json is the REST API's spec, /info still answers for Studio."""
    spec = http.get("/openapi.json").json()
    assert "/v1/strategies" in spec["paths"] and "/threads" not in spec["paths"]
    info = http.get("/info")
    assert info.status_code == 200 and "flags" in info.json()


def test_a_body_over_the_limit_is_413_before_it_is_read(http: httpx.Client) -> None:
    big = "x" * 500_000
    r = http.post("/v1/governance/check", json={"text": big}, headers=ALICE)
    assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(50):
            yield b"y" * 10_000
        yield b'"}'

    r = http.post(
        "/v1/governance/check",
        content=chunks(),
        headers={**ALICE, "content-type": "application/json"},
    )
    assert r.status_code == 413


def test_rules_only_governance_is_not_a_model_call(http: httpx.Client) -> None:
    """No model runs, so no model's context bounds the text (over the 0.5B's window here)."""
    long = "The backtest of SmaCross on GOOG made 12% with 30 trades. " * 3000  # ~36k tokens
    r = http.post(
        "/v1/governance/check", json={"text": long[:190_000], "use_model": False}, headers=ALICE
    )
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "allow"
    r = http.post("/v1/governance/check", json={"text": long[:190_000]}, headers=ALICE)
    assert r.status_code == 413 and r.json()["error"]["type"] == "prompt_too_large"


@pytest.mark.e2e
def test_report_by_id_then_usage_and_metrics(
    http: httpx.Client, alice_backtest: dict[str, Any]
) -> None:
    r = http.post(
        "/v1/reports",
        json={"backtest_id": alice_backtest["id"], "max_tokens": 96, "max_attempts": 1},
        headers=ALICE,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["backtest_id"] == alice_backtest["id"] and out["report"] and out["faithful"]
    rows = http.get("/v1/usage", params={"group_by": "service"}, headers=ALICE).json()["rows"]
    assert any(row["service"] == "narrative_report" and row["calls"] >= 1 for row in rows)
    bob_rows = http.get("/v1/usage", params={"group_by": "service"}, headers=BOB).json()["rows"]
    assert not any(row["service"] == "narrative_report" for row in bob_rows)
    # the server's /metrics serves a ledger snapshot refreshed every 5 s off the event loop
    want = 'quant_genai_llm_calls_total{model="gpt-4o-mini",service="narrative_report"}'
    deadline = time.monotonic() + 20
    while (
        want not in (text := http.get("/metrics", headers=SCRAPER).text)
        and time.monotonic() < deadline
    ):
        time.sleep(1)
    assert want in text
    assert 'quant_genai_llm_tokens_total{kind="output",model="gpt-4o-mini"' in text


# --------------------------------------------------------------------------------------------
# Metrics registration, prompt overheads (no server; the rate limits: tests/unit/test_rates.py)
# --------------------------------------------------------------------------------------------


def test_api_loads_by_path_beside_by_name() -> None:
    """`langgraph dev` loads api.py by path (as `user_router_module`) besides `agents.serve.api`
    by name: the metrics register once, in `agents.serve.metrics`, so the second load works."""
    spec = importlib.util.spec_from_file_location(
        "user_router_module", ROOT / "agents" / "serve" / "api.py"
    )
    assert spec is not None and spec.loader is not None
    by_path = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(by_path)  # a second registration would raise "Duplicated timeseries"
    assert by_path.app is not api.app
    assert by_path.count_request is metrics.count_request


def test_prompt_overhead_comes_from_each_graph() -> None:
    assert set(api.PROMPT_OVERHEAD) == set(SERVICES)
    for service, tokens in api.PROMPT_OVERHEAD.items():
        graph_module = importlib.import_module(f"graphs.{service}")
        assert tokens == graph_module.PROMPT_OVERHEAD_TOKENS > 0
