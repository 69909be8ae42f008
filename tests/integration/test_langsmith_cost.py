"""Our exact cost reaches LangSmith: a fake LangSmith endpoint (real HTTP, started here) receives
the traced LLM run, whose `extra.metadata.usage_metadata` carries the ledger's cost in USD."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langsmith import Client

from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.callback import _core_cache_mark
from agents.usage.ledger import get_ledger
from tests.fakes.openai_server import FakeServer

PROMPT = "four words here #in=120 #cached=40 #out=7"


class _Runs:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, runs: list[dict[str, Any]]) -> None:
        with self.lock:
            self.posted.extend(runs)

    def llm_runs(self) -> list[dict[str, Any]]:
        """Every post and patch of an LLM run, merged per run id (a patch completes a post)."""
        merged: dict[str, dict[str, Any]] = {}
        with self.lock:
            for r in self.posted:
                merged.setdefault(str(r.get("id")), {}).update(
                    {k: v for k, v in r.items() if v is not None}
                )
        return [r for r in merged.values() if r.get("run_type") == "llm"]


@pytest.fixture
def langsmith(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Runs]:
    runs = _Runs()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def _body(self) -> Any:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.headers.get("content-encoding") == "gzip":
                raw = gzip.decompress(raw)
            return json.loads(raw or b"{}")

        def _ok(self, body: Any = None) -> None:
            data = json.dumps(body or {}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # /info: no multipart, no compression, plain JSON batches
            self._ok({"version": "0.0.0", "batch_ingest_config": {"use_multipart_endpoint": False}})

        def do_POST(self) -> None:
            body = self._body()
            if self.path.endswith("/runs/batch"):
                runs.add(list(body.get("post") or []) + list(body.get("patch") or []))
            elif self.path.endswith("/runs"):
                runs.add([body])
            self._ok()

        def do_PATCH(self) -> None:
            body = self._body()
            body.setdefault("id", self.path.rsplit("/", 1)[-1])
            runs.add([body])
            self._ok()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import langsmith.run_trees as rt
    import langsmith.utils as ls_utils

    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("LANGSMITH_API_KEY", "test")
    monkeypatch.setenv("LANGSMITH_PROJECT", "quant-genai-test")
    ls_utils.get_env_var.cache_clear()  # type: ignore[attr-defined]
    # a client for this endpoint (not a cached one), posting each run synchronously
    client = Client(
        api_url=f"http://127.0.0.1:{server.server_port}", api_key="test", auto_batch_tracing=False
    )
    monkeypatch.setattr(rt, "_CLIENT", client)
    try:
        yield runs
    finally:
        ls_utils.get_env_var.cache_clear()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


def _flush() -> None:
    import langsmith.run_trees as rt

    assert rt._CLIENT is not None, "no LangSmith client was made: tracing is off"
    rt._CLIENT.flush(timeout=10)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake_openai: FakeServer) -> Settings:
    return make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_STREAM_USAGE=True,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_CACHE="off",
    )


def _usage_sent(run: dict[str, Any]) -> dict[str, Any]:
    usage: dict[str, Any] = run["extra"]["metadata"]["usage_metadata"]
    return usage


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_langsmith_receives_the_ledger_cost(
    langsmith: _Runs, settings: Settings, mode: str
) -> None:
    chat = create_chat_model("narrative_report", user_id="alice", settings=settings)
    if mode == "invoke":
        chat.invoke(PROMPT)
    else:
        for _ in chat.stream(PROMPT):
            pass
    _flush()
    (row,) = get_ledger(settings).rows()
    (run,) = langsmith.llm_runs()
    usage = _usage_sent(run)
    assert usage["input_tokens"] == 120 and usage["output_tokens"] == 7
    # gpt-4o-mini: 80 uncached × $0.15/1M + 40 cached × $0.075/1M; 7 out × $0.60/1M
    assert usage["input_cost"] == pytest.approx((80 * 150 + 40 * 75) / 1e9, rel=1e-12)
    assert usage["input_cost_details"]["cache_read"] == pytest.approx(40 * 75 / 1e9, rel=1e-12)
    assert usage["output_cost"] == pytest.approx(7 * 600 / 1e9, rel=1e-12)
    assert usage["total_cost"] == pytest.approx(row["cost_nanousd"] / 1e9, rel=1e-12)
    assert row["cost_nanousd"] == 80 * 150 + 40 * 75 + 7 * 600


def test_an_estimated_call_sends_its_counted_tokens_and_cost(
    langsmith: _Runs, settings: Settings
) -> None:
    create_chat_model("narrative_report", user_id="alice", settings=settings).invoke(
        "a few words here #nousage"
    )
    _flush()
    (row,) = get_ledger(settings).rows()
    (run,) = langsmith.llm_runs()
    usage = _usage_sent(run)
    assert row["estimated"]
    assert usage["input_tokens"] == row["input_tokens"]
    assert usage["output_tokens"] == row["output_tokens"]
    assert usage["total_cost"] == pytest.approx(row["cost_nanousd"] / 1e9, rel=1e-12)


def test_an_unbilled_call_sends_zero_and_is_not_read_as_a_cache_hit(
    langsmith: _Runs,
    make_settings: Callable[..., Settings],
    fake_openai: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes = {"gpt-4o-mini": {"base_url": fake_openai.base_url, "served_model": "llama3"}}
    monkeypatch.setenv("QUANT_GENAI_MODEL_ROUTES", json.dumps(routes))
    s = make_settings(OPENAI_API_KEY="sk-x", QUANT_GENAI_CACHE="off")
    chat = create_chat_model("narrative_report", user_id="alice", settings=s)
    reply = chat.invoke(PROMPT)
    _flush()
    (row,) = get_ledger(s).rows()
    assert row["cost_nanousd"] == 0 and not row["cache_hit"]
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["total_cost"] == 0  # type: ignore[typeddict-item]
    # a later reader of this message (a cache, a replay) must not take it for a hit
    assert not _core_cache_mark(reply.usage_metadata)
    assert _core_cache_mark({**reply.usage_metadata, "total_cost": 0})  # langchain-core's mark
    (run,) = langsmith.llm_runs()
    assert _usage_sent(run)["total_cost"] == 0 and _usage_sent(run)["input_cost"] == 0


def test_inside_a_traced_parent_a_non_streamed_call_carries_the_cost(
    langsmith: _Runs, settings: Settings
) -> None:
    """Inside a traced parent (a graph node) the inherited tracer reads the reply before the
    model's own callbacks; the factory stamps the cost onto the reply when it is built, so
    LangSmith still gets the exact ledger cost."""
    from langchain_core.runnables import RunnableLambda

    chat = create_chat_model("narrative_report", user_id="alice", settings=settings)
    parent: RunnableLambda[str, Any] = RunnableLambda(lambda x: chat.invoke(x))
    parent.invoke(PROMPT)
    _flush()
    (row,) = get_ledger(settings).rows()
    assert row["cost_nanousd"] == 80 * 150 + 40 * 75 + 7 * 600
    (run,) = langsmith.llm_runs()
    usage = _usage_sent(run)
    assert usage["input_tokens"] == 120
    assert usage["total_cost"] == pytest.approx(row["cost_nanousd"] / 1e9, rel=1e-12)
    assert usage["output_cost"] == pytest.approx(7 * 600 / 1e9, rel=1e-12)


@pytest.mark.parametrize("mode", ["stream", "astream", "invoke_streaming"])
def test_inside_a_traced_parent_a_streamed_call_carries_the_cost(
    langsmith: _Runs, settings: Settings, mode: str
) -> None:
    """A streamed reply inside a traced parent is merged by the model right before
    `on_llm_end`, and the inherited tracer copies it there, ahead of the model's own callbacks:
    the cost stamp (`CostStamp`) runs first, so LangSmith gets the exact ledger cost — for
    `stream`, `astream`, and `invoke` streamed for a parent that listens to tokens (LangGraph's
    `stream_mode="messages"`)."""
    import asyncio

    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.runnables import RunnableConfig, RunnableLambda
    from langchain_core.tracers._streaming import _StreamingCallbackHandler

    chat = create_chat_model("narrative_report", user_id="alice", settings=settings)

    class Tokens(BaseCallbackHandler, _StreamingCallbackHandler):  # makes invoke stream
        def tap_output_iter(self, run_id: Any, output: Any) -> Any:
            return output

        def tap_output_aiter(self, run_id: Any, output: Any) -> Any:
            return output

    async def collect(x: str) -> list[Any]:
        return [c async for c in chat.astream(x)]

    def node(x: str, config: RunnableConfig) -> Any:
        if mode == "stream":
            return list(chat.stream(x))
        if mode == "astream":
            return asyncio.run(collect(x))
        return chat.invoke(x, config)

    RunnableLambda(node).invoke(PROMPT, {"callbacks": [Tokens()]} if "invoke" in mode else None)
    _flush()
    (row,) = get_ledger(settings).rows()
    assert row["cost_nanousd"] == 80 * 150 + 40 * 75 + 7 * 600
    (run,) = langsmith.llm_runs()
    usage = _usage_sent(run)
    assert usage["input_tokens"] == 120 and usage["output_tokens"] == 7
    assert usage["total_cost"] == pytest.approx(row["cost_nanousd"] / 1e9, rel=1e-12)
    assert usage["input_cost_details"]["cache_read"] == pytest.approx(40 * 75 / 1e9, rel=1e-12)


def test_a_streamed_call_with_locally_counted_tokens_is_priced_by_langsmith_in_a_parent(
    langsmith: _Runs, settings: Settings
) -> None:
    """What is left (docs/decisions.md): a stream with no usage from the endpoint is counted
    at the cost handler's `on_llm_end`, after an inherited tracer; LangSmith gets no cost of
    ours then. The ledger row is exact and marked estimated either way."""
    from langchain_core.runnables import RunnableLambda

    chat = create_chat_model("narrative_report", user_id="alice", settings=settings)
    parent: RunnableLambda[str, Any] = RunnableLambda(lambda x: list(chat.stream(x)))
    parent.invoke("a few words here #nousage")
    _flush()
    (row,) = get_ledger(settings).rows()
    assert row["estimated"] and row["cost_nanousd"] > 0
    (run,) = langsmith.llm_runs()
    assert "total_cost" not in (run["extra"]["metadata"].get("usage_metadata") or {})


def test_a_cache_hit_carries_no_price_of_the_call_it_repeats(
    langsmith: _Runs, make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    """The cost is stamped on the reply before the response cache stores it; the stored reply
    keeps its tokens, not that price, so a hit reaches LangSmith (and any reader) at $0."""
    from langchain_core.runnables import RunnableLambda

    s = make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_CACHE="exact",
    )
    chat = create_chat_model("narrative_report", user_id="alice", settings=s)
    parent: RunnableLambda[str, Any] = RunnableLambda(lambda x: chat.invoke(x))
    parent.invoke(PROMPT)
    hit = parent.invoke(PROMPT)
    _flush()
    first, second = get_ledger(s).rows()
    assert first["cost_nanousd"] > 0 and not first["cache_hit"]
    assert second["cache_hit"] and second["cost_nanousd"] == 0
    assert hit.usage_metadata["input_tokens"] == 120
    assert not any(hit.usage_metadata.get(k) for k in ("input_cost", "output_cost", "total_cost"))
    runs = langsmith.llm_runs()
    assert len(runs) == 2
    assert _usage_sent(runs[0])["total_cost"] == pytest.approx(first["cost_nanousd"] / 1e9)
    assert not any(_usage_sent(runs[1]).get(k) for k in ("input_cost", "output_cost", "total_cost"))
