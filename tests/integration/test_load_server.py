"""Load and `kill -9` through the real server: uvicorn (2 workers) serving the REST app, the fake
OpenAI server as the model, the ledger on SQLite under the data dir and on a real Postgres.

Every chat prompt carries the fake server's `#in=N #out=M` directives with a pair (N, M) unique
to that prompt and realistic (N under the prompt's real token count, M under `max_tokens`, so a
call never costs more than its reservation): the reply must be M words, and the call's ledger
row has exactly those tokens, which ties each reply to its row and each row to its user. Some
prompts are shared by every user word for word (the cache key then differs only by the user):
each user who got one answered must have made their own model call for it, or the cache served
them another user's answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agents.llm.catalog import get_model_config
from agents.quant.backtests import run_backtest
from agents.quant.corpus import SmaCross
from agents.usage.pricing import TokenUsage, cost_nanousd
from agents.usage.schema import llm_calls, quota_reservations
from tests.fakes.openai_server import FakeServer, run_fake_server

ROOT = Path(__file__).resolve().parents[2]
USERS = [f"u{i}" for i in range(10)]
KEYS = {f"key-{u}": u for u in [*USERS, "warm", "root", "k0", "k1", "k2"]}
ADMIN = {"x-api-key": "key-root"}
CHAT, REPORT = "chatops_advanced", "narrative_report"
MODEL = "gpt-4o-mini"  # both services' default
MAX_TOKENS = 64
REPORT_CALLS = 5  # model calls of one report (one per section, max_attempts 1)
REQUESTS = 500
CHATS_PER_USER, REPORTS_PER_USER = 40, 10
TIMEOUT_S = 20.0  # the model timeout (no retries): a reservation then lives 20 + 30 s, long
# enough for a restart on a loaded 2-core machine (at 8 + 30 s they once expired before it)
# Budgets that some users reach during the load (set at runtime by an admin, or by env). A
# chat call reserves ~$0.00045 (its prompt with the tools, +25%, and 64 output tokens) and costs
# ~$0.00002, so each of these lets a handful of calls through before refusing.
STORED_BUDGETS: list[dict[str, Any]] = [
    {"scope": "user", "user_id": "u0", "period": "day", "unit": "usd", "limit": 0.0006},
    {"scope": "user", "user_id": "u1", "period": "day", "unit": "usd", "limit": 0.00065},
    {
        "scope": "user_service",
        "user_id": "u2",
        "service": CHAT,
        "period": "month",
        "unit": "usd",
        "limit": 0.00055,
    },
    {"scope": "user", "user_id": "u4", "period": "day", "unit": "tokens", "limit": 4000},
]
ENV_BUDGETS = {"u3": 0.0007}  # QUANT_GENAI_USER_BUDGETS_USD: per-user daily USD
RATE_LIMITED = "u9"  # 10 chat requests a minute (per worker: memory storage)
LIMITED = {"u0", "u1", "u2", "u3", "u4", RATE_LIMITED}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(
    data_dir: Path, model_url: str, database_url: str | None, timeout_s: float = 30.0
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUANT_GENAI_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_"))
        and k not in ("DATABASE_URL", "REDIS_URL", "CHROMADB_PATH", "CHROMA_HOST")
    }
    env.update(
        QUANT_GENAI_DATA_DIR=str(data_dir),
        CHROMADB_PATH=str(data_dir / "chroma"),
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_ADMIN_USERS='["root"]',
        QUANT_GENAI_USER_BUDGETS_USD=json.dumps(ENV_BUDGETS),
        OPENAI_API_KEY="sk-load",
        OPENAI_BASE_URL=model_url,
        QUANT_GENAI_BASE_URL_BILLED="true",
        QUANT_GENAI_STREAM_USAGE="true",
        QUANT_GENAI_MAX_RETRIES="0",
        QUANT_GENAI_TIMEOUT_S=str(timeout_s),
        QUANT_GENAI_FALLBACK="false",
        QUANT_GENAI_CACHE="exact",
        QUANT_GENAI_RATE_PER_MIN="1000000",
        QUANT_GENAI_RATE_BURST="1000000",
        QUANT_GENAI_RATE_LIMITS=json.dumps(
            {"services": {CHAT: {"users": {RATE_LIMITED: {"requests_per_minute": 10}}}}}
        ),
        LANGSMITH_TRACING="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL to the server's process group: uvicorn's parent and its workers."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Starts `uvicorn agents.serve.api:app --workers 2` in its own process group."""
    started: list[Served] = []

    def start(env: dict[str, str], workers: int = 2) -> Served:
        port = _free_port()
        log = tmp_path / f"server-{port}.log"
        cmd = [sys.executable, "-m", "uvicorn", "agents.serve.api:app", "--port", str(port)]
        cmd += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        # Idle keep-alive connections outlive the test: with uvicorn's 5 s a pooled connection
        # the server closed as the client reused it was an httpx.ReadError once under load.
        cmd += ["--timeout-keep-alive", "300"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        served = Served(f"http://127.0.0.1:{port}", proc, log)
        started.append(served)
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"server exited: {log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{served.url}/info", timeout=2).status_code == 200:
                    return served
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start in 120 s"
            time.sleep(0.2)

    yield start
    for s in started:
        if s.proc.poll() is None:
            os.killpg(s.proc.pid, signal.SIGTERM)
            try:
                s.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                s.kill()


@pytest.fixture
def model() -> Iterator[FakeServer]:
    """This module's own fake model (its `/_stats` counts only these tests' calls)."""
    with run_fake_server(latency_ms=20) as server:
        yield server


# --------------------------------------------------------------------------------------------
# The workload
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    user: str
    service: str
    body: dict[str, Any]
    tokens: tuple[int, int] = (0, 0)  # a chat prompt's (#in, #out); (0, 0) for a report
    prompt: str = ""  # the chat prompt or the report's backtest label


@dataclass
class Answer:
    req: Req
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


SHARED = ["What is a Sharpe ratio?", "Explain max drawdown.", "What is CAGR?", "Define alpha."]
OWN = ["my RSI idea", "my momentum idea", "my carry idea", "my pairs idea", "my breakout idea"]


def _chat(user: str, text: str, tokens: tuple[int, int]) -> Req:
    message = f"{text} #in={tokens[0]} #out={tokens[1]}"
    body = {"message": message, "thread_id": uuid.uuid4().hex, "max_tokens": MAX_TOKENS}
    return Req(user, CHAT, body, tokens, message)


def workload(backtests: dict[str, dict[str, Any]]) -> list[Req]:
    """10 users x (40 chat turns + 10 reports), shuffled: shared prompts (same text for every
    user), the user's own prompts, both repeated; reports of two shared backtests."""
    rng = random.Random(11)
    reqs: list[Req] = []
    for i, user in enumerate(USERS):
        pool = [(t, (60 + j, 2)) for j, t in enumerate(SHARED)]
        pool += [(t, (70 + i, 3 + k)) for k, t in enumerate(OWN)]
        reqs += [_chat(user, *rng.choice(pool)) for _ in range(CHATS_PER_USER)]
        for _ in range(REPORTS_PER_USER):
            label = rng.choice(sorted(backtests))
            body = {"backtest": backtests[label], "max_attempts": 1}
            reqs.append(Req(user, REPORT, body, prompt=label))
    rng.shuffle(reqs)
    assert len(reqs) == REQUESTS
    return reqs


def _backtests() -> dict[str, dict[str, Any]]:
    def one(start: str, end: str) -> dict[str, Any]:
        bt = run_backtest(SmaCross, "GOOG", user_id="shared", start=start, end=end)
        return bt.model_dump(mode="json")

    return {"bt2010": one("2010-01-01", "2011-12-31"), "bt2012": one("2012-01-01", "2013-12-31")}


IN_FLIGHT_RETRIES = 40


async def _fire(url: str, reqs: list[Req]) -> list[Answer]:
    """Every request at once (one connection each); a refusal for what calls in flight hold
    is retried (as its Retry-After says, sooner), so budgets are spent up to their limits."""
    limits = httpx.Limits(max_connections=len(reqs), max_keepalive_connections=len(reqs))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(req: Req) -> Answer:
            path = "/v1/chat" if req.service == CHAT else "/v1/reports"
            for _ in range(IN_FLIGHT_RETRIES):
                r = await client.post(path, json=req.body, headers={"x-api-key": f"key-{req.user}"})
                if r.status_code != 429 or "calls in flight settle" not in r.text:
                    break
                await asyncio.sleep(0.25)  # refused for what calls in flight hold: they settle
            return Answer(req, r.status_code, r.json(), dict(r.headers))

        return list(await asyncio.gather(*(one(r) for r in reqs)))


def _warm(url: str, backtest: dict[str, Any]) -> None:
    """MiniLM and the graphs loaded in both workers (user `warm`, no budget)."""
    warm = [_chat("warm", f"warm-up {k}", (50, 2)) for k in range(8)]
    warm += [Req("warm", REPORT, {"backtest": backtest, "max_attempts": 1})] * 2
    answers = asyncio.run(_fire(url, warm))
    assert [a.status for a in answers] == [200] * len(warm), [a.body for a in answers]


def _rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(llm_calls))]


def _held(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(quota_reservations))]


def _one_call_worst(rows: list[dict[str, Any]]) -> int:
    """A generous bound on one call's reservation: the largest prompt seen with the 25% margin
    the reservation takes, and the whole output cap."""
    prompt = math.ceil(max((r["input_tokens"] for r in rows), default=0) * 1.25) + 50
    return cost_nanousd(
        get_model_config(MODEL), TokenUsage(input_tokens=prompt, output_tokens=MAX_TOKENS)
    )


def _budgets() -> list[tuple[str, str | None, str, int]]:
    """(user, service or None, unit, limit in nano-USD or tokens) of every budget in force."""
    out = [
        (str(b["user_id"]), b.get("service"), str(b["unit"]), int(b["limit"]))
        if b["unit"] == "tokens"
        else (str(b["user_id"]), b.get("service"), "usd", round(float(b["limit"]) * 1e9))
        for b in STORED_BUDGETS
    ]
    return out + [(u, None, "usd", round(usd * 1e9)) for u, usd in ENV_BUDGETS.items()]


def _refusal_names_its_limit(a: Answer) -> None:
    err = a.body["error"]
    assert a.status == 429, (a.status, err)
    assert int(a.headers["retry-after"]) >= 1
    if err["type"] == "rate_limited":
        assert a.req.user == RATE_LIMITED and a.req.service == CHAT
        assert f"(user {RATE_LIMITED!r}, service {CHAT})" in err["message"]
        assert "10 requests per 60 s" in err["message"]
        return
    assert err["type"] == "quota_exceeded", err
    user = a.req.user
    named = [f"budget of user {user!r} (scope user,"]
    named.append(f"budget of user {user!r} on service {CHAT!r} (scope user_service,")
    assert any(n in err["message"] for n in named), err["message"]
    assert "limit " in err["message"]


# --------------------------------------------------------------------------------------------
# 500 requests at once
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_500_concurrent_requests_lose_no_row_overspend_nothing_and_never_cross_users(
    backend: str, serve: Any, model: FakeServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    db_url = f"sqlite:///{data / 'ledger.sqlite3'}"
    if backend == "postgres":
        from tests.pg import fresh_database

        db_url = fresh_database(request.getfixturevalue("postgres_admin_url"))
    server = serve(_env(data, model.base_url, db_url if backend == "postgres" else None))
    for b in STORED_BUDGETS:
        r = httpx.put(f"{server.url}/v1/admin/budgets", json=b, headers=ADMIN)
        assert r.status_code == 200, r.text
    backtests = _backtests()
    _warm(server.url, backtests["bt2010"])
    reqs = workload(backtests)
    t0 = time.perf_counter()
    try:
        answers = asyncio.run(_fire(server.url, reqs))
    except httpx.TransportError as exc:  # the server's side of it, not only the client's
        pytest.fail(f"{exc!r}; server log: {server.log.read_text()[-3000:]}")
    wall = time.perf_counter() - t0
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        rows, held = _rows(engine), _held(engine)
    finally:
        engine.dispose()

    # Every answer is a 200 or a refusal naming its limit; no 5xx, nothing else.
    for a in answers:
        if a.status != 200:
            _refusal_names_its_limit(a)
    refused = Counter(a.req.user for a in answers if a.status != 200)
    assert set(refused) <= LIMITED, refused
    assert all(refused[u] for u in LIMITED), f"every limited user meets a limit: {refused}"

    # No lost (or invented) row: each call the fake model answered has its row, nothing held.
    misses = [r for r in rows if not r["cache_hit"]]
    assert len(misses) == model.requests_served()
    assert not [r for r in rows if r["error"]]
    assert held == [], "every reservation settled"

    mine: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        mine.setdefault((row["user_id"], row["service"]), []).append(row)
    for user in USERS:
        ok = [a for a in answers if a.req.user == user and a.status == 200]
        chats = [a for a in ok if a.req.service == CHAT]
        chat_rows = mine.get((user, CHAT), [])
        # Each chat reply is the answer to its own prompt (M words for #out=M) ...
        for a in chats:
            assert a.body["reply"] == " ".join(f"w{k}" for k in range(a.req.tokens[1])), a
        # ... each 200 has its row (one call per turn), a refusal none ...
        assert len(chat_rows) == len(chats), user
        # ... and each prompt the user got answered was sent to the model for THEM at least
        # once: the cache never served them another user's answer.
        own_calls = {
            (r["input_tokens"], r["output_tokens"]) for r in chat_rows if not r["cache_hit"]
        }
        assert {a.req.tokens for a in chats} <= own_calls, user
        assert own_calls <= {a.req.tokens for a in answers if a.req.user == user}, user
        reports = [a for a in ok if a.req.service == REPORT]
        report_rows = mine.get((user, REPORT), [])
        assert all(a.body["report"] for a in reports)
        assert len(report_rows) >= REPORT_CALLS * len(reports), user
        own_reports = sum(not r["cache_hit"] for r in report_rows)
        assert own_reports >= REPORT_CALLS * len({a.req.prompt for a in reports}), user

    # No budget overspent by more than one reserved call.
    worst_usd, overspend = _one_call_worst(rows), {}
    for user, service, unit, limit in _budgets():
        spent_rows = [
            r for r in rows if r["user_id"] == user and (service is None or r["service"] == service)
        ]
        if unit == "usd":
            spent, slack = sum(r["cost_nanousd"] for r in spent_rows), worst_usd
        else:
            spent = sum(r["input_tokens"] + r["output_tokens"] for r in spent_rows)
            slack = math.ceil(max(r["input_tokens"] for r in rows) * 1.25) + 50 + MAX_TOKENS
        overspend[user] = round((spent - limit) / limit, 4)
        assert spent <= limit + slack, (user, spent, limit)

    hits = sum(r["cache_hit"] for r in rows)
    assert hits > 0
    print(
        json.dumps(
            {
                "backend": backend,
                "requests": len(answers),
                "wall_s": round(wall, 2),
                "ok": sum(a.status == 200 for a in answers),
                "refused": dict(
                    Counter(a.body["error"]["type"] for a in answers if a.status != 200)
                ),
                "ledger_rows": len(rows),
                "model_calls": len(misses),
                "cache_hits": hits,
                "overspend_fraction_of_limit": overspend,
                "at": datetime.now(UTC).isoformat(),
            }
        )
    )


# --------------------------------------------------------------------------------------------
# kill -9 mid-load
# --------------------------------------------------------------------------------------------


def test_kill_9_mid_load_loses_nothing_acknowledged_and_held_reservations_expire(
    serve: Any, model: FakeServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = _env(data, model.base_url, None, TIMEOUT_S)
    server = serve(env)
    budget = {"scope": "user", "user_id": "k0", "period": "day", "unit": "usd", "limit": 1.0}
    assert httpx.put(f"{server.url}/v1/admin/budgets", json=budget, headers=ADMIN).is_success
    _warm(server.url, _backtests()["bt2010"])
    # k0's four calls hang at the model (held when the server dies); k1, k2 answer in 20 ms.
    stuck = [_chat("k0", f"slow {k} #sleep=60000", (40, 2 + k)) for k in range(4)]
    fast = [
        _chat(u, f"fast {u} {k}", (41 + k % 20, 2 + k // 20))
        for u in ("k1", "k2")
        for k in range(60)
    ]
    acked: list[Req] = []

    async def load() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

            async def one(req: Req) -> None:
                try:
                    r = await client.post(
                        "/v1/chat", json=req.body, headers={"x-api-key": f"key-{req.user}"}
                    )
                except httpx.HTTPError:
                    return  # the server died under it: not acknowledged
                if r.status_code == 200:
                    acked.append(req)

            tasks = [asyncio.create_task(one(r)) for r in stuck]
            while len(_held(engine)) < len(stuck):  # all four reserved and at the model
                await asyncio.sleep(0.05)
            tasks += [asyncio.create_task(one(r)) for r in fast]
            while len(acked) < 20:
                await asyncio.sleep(0.005)
            server.kill()
            await asyncio.gather(*tasks)

    engine = sa.create_engine(f"sqlite:///{data / 'ledger.sqlite3'}")
    try:
        asyncio.run(load())
        assert 20 <= len(acked) < len(fast), "killed mid-load"
        rows = _rows(engine)
        calls = {(r["user_id"], r["input_tokens"], r["output_tokens"]) for r in rows}
        lost = [a for a in acked if (a.user, *a.tokens) not in calls]
        assert lost == [], "every acknowledged reply has its ledger row"
        assert sum(not r["cache_hit"] for r in rows) <= model.requests_served()
        left = _held(engine)
        assert {r["user_id"] for r in left} == {"k0"} and len(left) == 4
        ttl = TIMEOUT_S * 1 + 30
        killed_at = datetime.now(UTC).replace(tzinfo=None)
        assert all((r["expires_at"] - killed_at).total_seconds() <= ttl for r in left)

        # The restarted server counts what the dead one held (k0's budget now fits one more
        # call beside them only once they expire) and lets k0 in again when they have.
        restarted = serve(env)
        one = max(r["amount_nanousd"] for r in left)
        budget["limit"] = 4.5 * one / 1e9
        assert httpx.put(f"{restarted.url}/v1/admin/budgets", json=budget, headers=ADMIN).is_success
        again = _chat("k0", "after restart", (45, 3))
        live_s = min(r["expires_at"] for r in left) - datetime.now(UTC).replace(tzinfo=None)
        assert live_s.total_seconds() > 1, "the restart took longer than the reservations live"
        r = httpx.post(
            f"{restarted.url}/v1/chat", json=again.body, headers={"x-api-key": "key-k0"}, timeout=60
        )
        assert r.status_code == 429, r.text
        assert "held by calls in flight" in r.json()["error"]["message"]
        assert r.headers["retry-after"] == "2"
        other = _chat("k1", "after restart", (46, 3))
        r = httpx.post(
            f"{restarted.url}/v1/chat", json=other.body, headers={"x-api-key": "key-k1"}, timeout=60
        )
        assert r.status_code == 200, r.text
        wait = max(
            (r["expires_at"] - datetime.now(UTC).replace(tzinfo=None)).total_seconds() for r in left
        )
        time.sleep(max(wait, 0) + 0.5)
        r = httpx.post(
            f"{restarted.url}/v1/chat", json=again.body, headers={"x-api-key": "key-k0"}, timeout=60
        )
        assert r.status_code == 200, r.text
        assert _held(engine) == [], "the expired reservations are gone"
        assert len(_rows(engine)) == len(rows) + 2
        print(
            json.dumps(
                {
                    "sent": len(stuck) + len(fast),
                    "acknowledged": len(acked),
                    "rows_at_kill": len(rows),
                    "model_calls_at_kill": model.requests_served(),
                    "held_by_the_dead_server": len(left),
                    "blocked_after_restart_s": round(wait, 1),
                }
            )
        )
    finally:
        engine.dispose()
