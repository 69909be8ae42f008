"""Rate limits on real parts: the token callback on `ChatOpenAI` against the fake OpenAI server,
the REST routes under uvicorn (429s, one service never blocking another, the admin routes),
runtime overrides through SQLite and Postgres seen by another process, and Redis: two processes
sharing one limit, Redis killed mid-run and restarted, a Redis that accepts and never answers."""

from __future__ import annotations

import json
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_openai import ChatOpenAI

from agents.settings import Settings
from agents.usage import rates
from agents.usage.rate_config import Window
from agents.usage.rates import (
    FALLBACKS,
    RateLimitCallbackHandler,
    RateLimitExceededError,
    RateLimits,
    rate_limit_handler,
)
from tests.fakes.openai_server import FakeServer

MINI = "gpt-4o-mini"
GOV, CHAT, STRAT = "prompt_governance", "chatops_advanced", "strategy_builder"
KEYS = {"key-alice": "alice", "key-bob": "bob", "key-root": "root"}
ALICE, BOB, ROOT = ({"x-api-key": k} for k in KEYS)
SURE = {"text": "SMA 10/30 crossover on GOOG"}  # the rules are sure: no model call


class _Spy(BaseCallbackHandler):
    """Stands where the cost callback stands: after the rate-limit handler."""

    raise_error = True

    def __init__(self) -> None:
        self.starts = 0

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, **kw: Any
    ) -> None:
        self.starts += 1


def _chat(fake: FakeServer, callbacks: list[Any]) -> ChatOpenAI:
    return ChatOpenAI(
        model=MINI, base_url=fake.base_url, api_key="sk-test", max_tokens=100,  # type: ignore[arg-type]
        max_retries=0, callbacks=callbacks,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The token callback on a real chat model
# --------------------------------------------------------------------------------------------


def test_the_token_handler_refuses_before_anything_is_sent(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = make_settings(QUANT_GENAI_RATE_LIMITS=json.dumps({"user": {"tokens_per_minute": 400}}))
    handler = rate_limit_handler(CHAT, MINI, "alice", s)
    assert isinstance(handler, RateLimitCallbackHandler)
    spy = _Spy()
    chat = _chat(fake_openai, [handler, spy])
    served = fake_openai.requests_served()
    for _ in range(3):  # ~15 prompt tokens x 1.25 + 100 output: three fit in 400
        assert chat.invoke("hello there #out=3").content == "w0 w1 w2"
    assert fake_openai.requests_served() == served + 3
    with pytest.raises(RateLimitExceededError) as caught:
        chat.invoke("hello there #out=3")
    err = caught.value
    assert (err.scope, err.kind, err.service, err.name, err.limit) == (
        "user",
        "tokens",
        CHAT,
        "alice",
        400,
    )
    assert 100 < err.cost < 130 and err.retry_after_s >= 1
    assert fake_openai.requests_served() == served + 3  # nothing reached the model
    assert spy.starts == 3  # the cost callback after it never saw the refused call
    other = _chat(fake_openai, [rate_limit_handler(GOV, MINI, "alice", s)])
    assert other.invoke("hello #out=1").content == "w0"  # another service: its own window


def test_the_model_window_counts_every_user_and_graph_calls_without_one(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = make_settings(QUANT_GENAI_RATE_LIMITS=json.dumps({"model": {"tokens_per_minute": 300}}))
    for user in ("alice", "bob"):
        _chat(fake_openai, [rate_limit_handler(CHAT, MINI, user, s)]).invoke("hi #out=1")
    with pytest.raises(RateLimitExceededError) as caught:
        _chat(fake_openai, [rate_limit_handler(CHAT, MINI, None, s)]).invoke("hi #out=1")
    assert caught.value.scope == "model" and "across all users" in str(caught.value)


@pytest.mark.usefixtures("fake_openai")
def test_the_factory_attaches_the_handler_and_the_chat_route_answers_429(
    serve_app: Callable[..., str], fake_openai: FakeServer
) -> None:
    """The factory attaches the rate-limit handler, so a REST chat turn over the user's token
    limit is a 429 naming it, and nothing reaches the model."""
    from agents.llm.factory import create_chat_model

    url = serve_app(
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES="0",
        QUANT_GENAI_RATE_LIMITS=json.dumps(
            {"services": {CHAT: {"user": {"tokens_per_minute": 50}}}}
        ),
    )
    callbacks = create_chat_model(CHAT).callbacks
    assert isinstance(callbacks, list) and any(
        isinstance(c, RateLimitCallbackHandler) for c in callbacks
    ), callbacks
    served = fake_openai.requests_served()
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/chat", json={"message": "hello", "thread_id": "t1"}, headers=ALICE)
    assert r.status_code == 429, r.text
    assert (
        r.json()["error"]["type"] == "rate_limited"
        and "scope=user key=chatops_advanced/alice" in r.text
    )
    assert r.headers["X-RateLimit-Scope"] == "user-tokens" and int(r.headers["Retry-After"]) >= 1
    assert fake_openai.requests_served() == served


# --------------------------------------------------------------------------------------------
# REST: 429s per service, the admin routes
# --------------------------------------------------------------------------------------------


@pytest.fixture
def app(serve_app: Callable[..., str], fake_openai: FakeServer) -> Iterator[httpx.Client]:
    url = serve_app(
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_ADMIN_USERS='["root"]',
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES="0",
        QUANT_GENAI_FALLBACK="false",
        QUANT_GENAI_RATE_LIMITS=json.dumps(
            {"services": {GOV: {"user": {"requests_per_minute": 2}}}}
        ),
    )
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client


def test_a_burst_on_governance_is_429_and_never_blocks_another_service(app: httpx.Client) -> None:
    codes = [
        app.post("/v1/governance/check", json=SURE, headers=ALICE).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    r = app.post("/v1/governance/check", json=SURE, headers=ALICE)
    error = r.json()["error"]
    assert r.status_code == 429 and error["type"] == "rate_limited"
    assert "scope=user key=prompt_governance/alice limit=2 requests window=60s" in error["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Window"]) == ("2", "60")
    assert app.post("/v1/governance/check", json=SURE, headers=BOB).status_code == 200  # per user
    chat = app.post("/v1/chat", json={"message": "hi there", "thread_id": "t"}, headers=ALICE)
    assert chat.status_code == 200, chat.text
    strategy = {"request": "SMA crossover 10/30 on GOOG", "max_repairs": 0, "use_rag": False}
    built = app.post("/v1/strategies", json=strategy, headers=ALICE)
    assert built.status_code == 200, built.text
    mine = app.get("/v1/limits", headers=ALICE).json()
    assert mine["user_id"] == "alice" and mine["storage"] == "memory"
    assert mine["services"][GOV]["requests"] == {"limit": 2, "window_s": 60, "remaining": 0}
    assert mine["services"][CHAT]["requests"]["remaining"] == 9  # 10 per 10 s, one used


def test_admins_change_limits_at_runtime(app: httpx.Client) -> None:
    assert app.get("/v1/admin/limits", headers=ALICE).status_code == 403
    put = {"overrides": {"services": {CHAT: {"users": {"alice": {"requests_per_minute": 1}}}}}}
    refused = app.put("/v1/admin/limits", json=put, headers=ALICE)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "forbidden"
    view = app.get("/v1/admin/limits", headers=ROOT).json()
    assert view["runtime"]["version"] == 0 and view["limits"][GOV]["user"]["requests"]["limit"] == 2
    r = app.put("/v1/admin/limits", json=put, headers=ROOT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["runtime"]["version"] == 1 and body["runtime"]["updated_by"] == "root"
    assert body["limits"][CHAT]["users"]["alice"]["requests"] == {"limit": 1, "window_s": 60}
    turn = {"message": "hi there", "thread_id": "t"}
    assert app.post("/v1/chat", json=turn, headers=ALICE).status_code == 200
    assert app.post("/v1/chat", json=turn, headers=ALICE).status_code == 429
    assert app.post("/v1/chat", json=turn, headers=BOB).status_code == 200
    cleared = app.put("/v1/admin/limits", json={"mode": "replace", "overrides": {}}, headers=ROOT)
    assert cleared.json()["runtime"] == {**cleared.json()["runtime"], "version": 2, "overrides": {}}


@pytest.mark.parametrize(
    ("body", "status", "says", "allowed"),
    [
        ({"overrides": {"services": {"chat": {}}}}, 400, "unknown service 'chat'", GOV),
        ({"overrides": {"models": {"gpt-9": {}}}}, 400, "unknown model 'gpt-9'", MINI),
        ({"overrides": {"user": {"rpm": 3}}}, 400, "user.rpm: unknown limit", "tokens_per_minute"),
        ({"overrides": {"enabled": False}}, 400, "enabled: unknown key", "users"),
        ({"overrides": {"user": {"tokens_per_minute": -5}}}, 400, "between 0 and 1e12", None),
        ({"mode": "merge", "overrides": {}}, 422, "body.mode", None),
        ({}, 422, "body.overrides: Field required", None),
    ],
)
def test_bad_admin_changes_say_what_is_wrong(
    app: httpx.Client, body: dict[str, Any], status: int, says: str, allowed: str | None
) -> None:
    r = app.put("/v1/admin/limits", json=body, headers=ROOT)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert says in error["message"]
    if allowed is not None:
        assert allowed in error["allowed"]
    assert app.get("/v1/admin/limits", headers=ROOT).json()["runtime"]["version"] == 0


# --------------------------------------------------------------------------------------------
# Runtime overrides reach another process (SQLite and Postgres)
# --------------------------------------------------------------------------------------------


def _child_limits(env: dict[str, str], service: str, user: str, out: Any) -> None:
    s = Settings(_env_file=None, **env)  # type: ignore[arg-type]
    out.put(rates.rate_limits(s).effective().limits("user", service, user).requests)


def test_overrides_reach_another_process_and_a_running_one(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"DATABASE_URL": ledger_url, "QUANT_GENAI_DATA_DIR": str(tmp_path / "data")}
    s = Settings(_env_file=None, **env)  # type: ignore[arg-type]
    running, admin = RateLimits(s), RateLimits(s)
    assert running.effective().limits("user", STRAT, "alice").requests == Window(10, 10)
    admin.set_overrides({"users": {"alice": {"requests_per_minute": 3}}}, replace=False, by="root")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_child_limits, args=(env, STRAT, "alice", out))
    child.start()
    assert out.get(timeout=120) == Window(3, 60)
    child.join(timeout=30)
    monkeypatch.setattr(rates, "REFRESH_S", 0.0)  # instead of waiting out the 2 s
    assert running.effective().limits("user", STRAT, "alice").requests == Window(3, 60)


# --------------------------------------------------------------------------------------------
# Redis: shared across processes, going away, hung
# --------------------------------------------------------------------------------------------


def _hits(limits: RateLimits, kind: str, n: int) -> int:
    allowed = 0
    for _ in range(n):
        try:
            if kind == "requests":
                limits.hit_request(GOV, MINI, "alice")
            else:
                limits.hit_tokens(GOV, MINI, "alice", 7)
            allowed += 1
        except RateLimitExceededError:
            pass
    return allowed


def _child_hits(envs: dict[str, dict[str, str]], barrier: Any, out: Any) -> None:
    """One worker: 40 requests and 100 x 7 tokens through Redis, then 40 requests without it,
    each phase started together with the other worker."""
    shared = RateLimits(Settings(_env_file=None, **envs["redis"]))  # type: ignore[arg-type]
    alone = RateLimits(Settings(_env_file=None, **envs["memory"]))  # type: ignore[arg-type]
    shared.effective(), alone.effective()  # read the overrides before the race
    counts: dict[str, Any] = {}
    for phase, limits, kind, n in (
        ("redis requests", shared, "requests", 40),
        ("redis tokens", shared, "tokens", 100),
        ("memory requests", alone, "requests", 40),
    ):
        barrier.wait(timeout=120)
        counts[phase] = _hits(limits, kind, n)
    out.put((counts, shared.storage, alone.storage))


def test_two_processes_share_one_limit_through_redis_and_not_without(
    redis_url: str, tmp_path: Path
) -> None:
    doc = {"user": {"requests_per_minute": 30, "tokens_per_minute": 1000}}
    memory = {
        "QUANT_GENAI_DATA_DIR": str(tmp_path / "data"),
        "QUANT_GENAI_RATE_LIMITS": json.dumps(doc),
    }
    envs = {"redis": {**memory, "REDIS_URL": redis_url}, "memory": memory}
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_child_hits, args=(envs, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [r[1:] for r in results] == [("redis", "memory")] * 2
    total = {phase: sum(r[0][phase] for r in results) for phase in results[0][0]}
    assert total["redis requests"] == 30  # exactly the limit between the two
    assert total["redis tokens"] == 142  # 1000 // 7 hits of 7 tokens
    assert [r[0]["memory requests"] for r in results] == [30, 30]  # documented: each alone


def _bounded(fn: Callable[[], Any], limit_s: float = 10.0) -> Any:
    """Run `fn` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"no answer within {limit_s} s: a Redis outage hung a request"
    return box[0]


def _allowed(limits: RateLimits, n: int) -> int:
    return _hits(limits, "requests", n)


def test_redis_going_away_falls_back_to_memory_loudly_and_comes_back(
    redis_session: Any,
    redis_url: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(rates, "REDIS_RETRY_S", 0.0)  # try Redis on every call: the worst case
    s = make_settings(
        REDIS_URL=redis_url,
        QUANT_GENAI_RATE_LIMITS=json.dumps({"user": {"requests_per_minute": 5}}),
    )
    limits = RateLimits(s)
    assert _allowed(limits, 2) == 2 and limits.storage == "redis"
    before = FALLBACKS._value.get()
    redis_session.stop()
    with caplog.at_level("WARNING", logger="agents.usage.rates"):
        assert _bounded(lambda: _allowed(limits, 8)) == 5  # this process's memory: a fresh 5
    assert limits.storage == "memory (Redis unreachable)"
    assert FALLBACKS._value.get() - before >= 8
    assert "RATE LIMITS: Redis does not answer" in caplog.text
    assert caplog.text.count("does not answer") == 1  # once per outage, not per request
    assert rates.REDIS_UP._value.get() == 0
    redis_session.start()  # empty: the test's server keeps nothing on disk
    deadline = time.monotonic() + 10
    while limits.storage != "redis" and time.monotonic() < deadline:
        limits.usage("probe")
        time.sleep(0.05)
    assert limits.storage == "redis" and rates.REDIS_UP._value.get() == 1
    assert "Redis answers again" in caplog.text
    assert _allowed(limits, 8) == 5  # Redis's window again (memory's is used up)


def test_a_redis_that_never_answers_costs_a_bounded_wait(
    make_settings: Callable[..., Settings],
) -> None:
    with socket.socket() as hung:  # accepts connections (the backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        port = hung.getsockname()[1]
        s = make_settings(
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            QUANT_GENAI_RATE_LIMITS=json.dumps({"user": {"requests_per_minute": 3}}),
        )
        limits = RateLimits(s)
        assert _bounded(lambda: _allowed(limits, 5), limit_s=5) == 3
        assert limits.storage == "memory (Redis unreachable)"


def test_the_rest_path_keeps_answering_while_redis_is_down(
    serve_app: Callable[..., str], redis_session: Any, redis_url: str
) -> None:
    url = serve_app(
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_ADMIN_USERS='["root"]',
        REDIS_URL=redis_url,
    )
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/v1/governance/check", json=SURE, headers=ALICE).status_code == 200
        redis_session.stop()
        r = _bounded(lambda: http.post("/v1/governance/check", json=SURE, headers=ALICE))
        assert r.status_code == 200
        assert "memory (Redis unreachable)" in http.get("/v1/limits", headers=ALICE).text
        metrics = http.get("/metrics", headers=ROOT).text
    assert "quant_genai_rate_limit_redis_up 0.0" in metrics
    fallbacks = next(
        line
        for line in metrics.splitlines()
        if line.startswith("quant_genai_rate_limit_fallbacks_total ")
    )
    assert float(fallbacks.split()[1]) >= 1
