"""The services against parts that go away: the embedded model's server killed (SIGKILL) mid-call
and between calls, the vector store unreachable or corrupt, Redis dying under a running load.

All real: the packaged 0.5B served by `local-model serve --detach` (a process of its own, killed
by the test), a Chroma server (`chroma run`) and the embedded Chroma, a private redis-server.
The other fault suites are listed in docs/faults.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from langchain_core.embeddings import DeterministicFakeEmbedding

from agents import registry
from agents.llm import local as lm
from agents.llm import servers
from agents.llm.factory import create_chat_model
from agents.quant.backtests import run_backtest
from agents.quant.corpus import SmaCross
from agents.rag.store import RetrievalUnavailableError, Retriever
from agents.settings import Settings
from agents.usage import cache_store
from agents.usage.budgets import make_budget, set_budget
from agents.usage.ledger import get_ledger
from agents.usage.schema import quota_reservations
from graphs import strategy_builder
from tests.fakes.openai_server import FakeServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _held(s: Settings) -> int:
    """Reservations still in the ledger (every budget, every unit)."""
    with get_ledger(s).engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(quota_reservations)).one()[0]
        )


# ---- the embedded model's server killed ------------------------------------------------------


@pytest.fixture
def detached_model(
    make_settings: Callable[..., Settings], local_gguf: Path
) -> Iterator[tuple[Settings, int]]:
    """`local-model serve --detach` on a private port: (settings routed to it, its pid)."""
    s = make_settings(
        QUANT_GENAI_LOCAL_MODEL_PATH=str(local_gguf),
        QUANT_GENAI_LOCAL_PORT=_free_port(),
        QUANT_GENAI_LOCAL_HOST="127.0.0.1",
        QUANT_GENAI_LOCAL_CTX=1024,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_CACHE="off",
        QUANT_GENAI_FALLBACK=False,
    )
    try:
        handle = lm.serve_forever(s, detach=True)
        assert handle is not None and not handle.owned
        pid = lm.server_status(s)["pid"]
        assert isinstance(pid, int) and pid != os.getpid()
        yield s, pid
    finally:
        lm.stop_server(s)
        cfg = servers.server_config(s)
        if (mine := servers.registered(cfg)) is not None:
            mine.stop()  # the server this process started again


def test_a_killed_model_server_fails_the_call_and_the_next_call_restarts_it(
    detached_model: tuple[Settings, int],
) -> None:
    s, pid = detached_model
    user = "kill9"
    set_budget(
        get_ledger(s).engine,
        make_budget(scope="user", period="day", unit="tokens", limit=10**6, user_id=user),
    )
    chat = create_chat_model("chatops_advanced", user_id=user, settings=s, max_tokens=48)
    assert chat.invoke("Say hi.").content  # served by the detached process

    stream = chat.stream("Count from 1 to 40, one number per line.")
    next(stream)  # the server is generating: kill it mid-answer
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            pass
    rows = get_ledger(s).rows(user_id=user)
    assert len(rows) == 2 and rows[0]["error"] is None
    assert "ConnectionError" in rows[1]["error"]  # the failed call is a row, with its error
    assert _held(s) == 0  # and holds nothing

    # the next call finds the server gone and starts it again, here
    reply = chat.invoke("Say hi again.")
    assert reply.content
    handle = servers.registered(servers.server_config(s))
    assert handle is not None and handle.owned and handle.is_healthy()
    assert not lm.server_status(s)["pid"]  # the dead process's record is not reported as alive
    rows = get_ledger(s).rows(user_id=user)
    assert len(rows) == 3 and rows[-1]["error"] is None and _held(s) == 0


def test_a_model_server_killed_between_calls_is_restarted_by_the_next_call(
    detached_model: tuple[Settings, int],
) -> None:
    s, pid = detached_model
    chat = create_chat_model("narrative_report", user_id="between", settings=s, max_tokens=8)
    assert chat.invoke("Say hi.").content
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while lm.server_status(s)["healthy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert chat.invoke("Say hi.").content  # nothing failed: the call started it first
    rows = get_ledger(s).rows(user_id="between")
    assert [r["error"] for r in rows] == [None, None]
    assert lm.stop_server(s) is False  # the stale state file is cleared, nothing to stop


# ---- the vector store unreachable ------------------------------------------------------------


@pytest.fixture
def embeddings() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=16)


def _chroma_server(path: Path, port: int) -> subprocess.Popen[bytes]:
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", trust_env=False).is_success:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("chroma run did not answer")


def test_a_chroma_server_dying_mid_run_is_a_clear_error_naming_it(
    make_settings: Callable[..., Settings], tmp_path: Path, embeddings: Any
) -> None:
    port = _free_port()
    proc = _chroma_server(tmp_path / "chroma-srv", port)
    try:
        r = Retriever(make_settings(CHROMA_HOST=f"127.0.0.1:{port}"), embeddings=embeddings)
        bt = run_backtest(SmaCross, "GOOG", user_id="alice")
        r.index_backtest_result("alice", bt)
        assert [c.id for c in r.search_similar_backtests("alice", "sma")] == [bt.id]
        proc.kill()
        proc.wait(timeout=10)
        for user in ("alice", "bob"):  # bob's first use, too: an error, never alice's data
            with pytest.raises(
                RetrievalUnavailableError, match=f"Chroma server at 127.0.0.1:{port}"
            ):
                r.search_similar_backtests(user, "sma")
        proc = _chroma_server(tmp_path / "chroma-srv", port)  # back: the same client answers
        assert [c.id for c in r.search_similar_backtests("alice", "sma")] == [bt.id]
        assert r.search_similar_backtests("bob", "sma") == []
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _corrupt(path: Path) -> None:
    (path / "chroma.sqlite3").write_bytes(b"not a database " * 4096)


def test_a_corrupt_embedded_store_is_an_error_naming_it_not_a_crash(
    make_settings: Callable[..., Settings], tmp_path: Path, embeddings: Any
) -> None:
    path = tmp_path / "chroma"
    r = Retriever(make_settings(CHROMADB_PATH=str(path)), embeddings=embeddings)
    bt = run_backtest(SmaCross, "GOOG", user_id="alice")
    r.index_backtest_result("alice", bt)
    _corrupt(path)  # under the running client
    for op in (
        lambda: r.search_similar_backtests("alice", "sma"),
        lambda: r.search_similar_backtests("bob", "sma"),
        lambda: r.get_backtest("alice", bt.id),
        lambda: r.index_backtest_result("alice", bt),
    ):
        with pytest.raises(RetrievalUnavailableError, match="embedded Chroma store") as err:
            op()
        assert str(path) not in str(err.value)  # a REST caller reads it: no server path
    fresh = Retriever(make_settings(CHROMADB_PATH=str(path)), embeddings=embeddings)
    with pytest.raises(RetrievalUnavailableError, match="embedded Chroma store"):
        fresh.list_backtests("alice")  # corrupt at open, too


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer, tmp_path: Path) -> Path:
    """Process settings (what graphs and the REST app read): the fake model, a Chroma dir."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("QUANT_GENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("CHROMADB_PATH", str(tmp_path / "chroma"))
    registry.reset()
    return tmp_path / "chroma"


def test_the_strategy_builder_answers_without_rag_when_the_store_is_corrupt(
    fake_env: Path,
) -> None:
    from agents.rag.store import get_retriever

    get_retriever().index_backtest_result("sb", run_backtest(SmaCross, "GOOG", user_id="sb"))
    _corrupt(fake_env)
    out = strategy_builder.graph.invoke(
        strategy_builder.InputState(request="an SMA crossover on GOOG #out=5"),
        context=strategy_builder.Context(user_id="sb", max_repairs=0, mode="code"),
    )
    assert not out.get("rag_used") and not out.get("related")
    assert any("answered without RAG" in n and "embedded Chroma" in n for n in out["notes"])


def test_the_rest_app_says_503_naming_the_store(
    serve_app: Callable[..., str], fake_env: Path
) -> None:
    url = serve_app(QUANT_GENAI_API_KEYS='{"key-alice": "alice"}')
    bt = run_backtest(SmaCross, "GOOG", user_id="alice")
    alice = {"Authorization": "Bearer key-alice"}
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
        body = bt.model_dump(mode="json")
        assert http.post("/v1/backtests", json=body, headers=alice).status_code == 201
        _corrupt(fake_env)
        r = http.post("/v1/backtests", json=body, headers=alice)
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["type"] == "retrieval_unavailable" and "embedded Chroma" in error["message"]
        r = http.post(
            "/v1/reports", json={"backtest_id": bt.id, "request": "summary"}, headers=alice
        )
        assert r.status_code == 503 and r.json()["error"]["type"] == "retrieval_unavailable"


# ---- Redis dying under a running load (the response cache) -----------------------------------


@pytest.mark.redis
def test_redis_dying_mid_load_turns_the_cache_into_misses_not_failures(
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    redis_url: str,
    redis_session: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_store, "_BACKOFF_S", 0.0)  # every call tries Redis: the worst case
    s = make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_FALLBACK=False,
        REDIS_URL=redis_url,
    )
    users = ["ann", "ben", "cat", "dan"]
    prompts = [f"repeat {i} #out=2 #sleep=20" for i in range(4)]  # 20 ms per answer
    killed = threading.Event()

    def call(n: int) -> tuple[str, bool]:
        user = users[n % len(users)]
        if n == 120:
            redis_session.stop()  # kill -9, while other calls are in flight
            killed.set()
        chat = create_chat_model("narrative_report", user_id=user, settings=s)
        reply = chat.invoke(prompts[(n // len(users)) % len(prompts)])
        return user, bool(reply.response_metadata.get("cache_hit"))

    before = fake_openai.requests_served()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(240)))
    assert killed.is_set() and len(results) == 240  # every call answered, none raised
    rows = get_ledger(s).rows()
    assert len(rows) == 240 and all(r["error"] is None for r in rows)  # every call a row
    hits = sum(r["cache_hit"] for r in rows)
    assert hits > 0  # Redis served hits before it died
    assert fake_openai.requests_served() - before == 240 - hits  # every miss went to the model
    assert all(r["cost_nanousd"] == 0 for r in rows if r["cache_hit"])
    assert not any(r["cache_hit"] for r in rows[-100:])  # started after the kill: all misses
