"""Server-sent events of `POST /v1/reports/stream` and `POST /v1/chat/stream`.

Over the real LangGraph server of `test_server.py` (its fixtures, one server for this module):
reports from the template path (no model) and chat turns on the fake OpenAI server (a
structured tool call, then a text answer), compared with the JSON routes; errors before the
stream are plain JSON. `e2e`: both streams on the embedded model. Last, the stream machinery on
the real FastAPI app under uvicorn in this process, with graph runs swapped for ones that fail or
stream slowly: an error after the first event, and a client that goes away.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from agents.rag.store import RetrievalUnavailableError
from agents.registry import reset
from agents.serve import api, streaming
from tests.fakes.openai_server import FakeServer
from tests.integration import test_server
from tests.integration.test_server import ALICE, BILLED_MODEL, CAROL, Server, _error

# Its fixtures, module-scoped: one server of this module's own.
server, http, alice_backtest = test_server.server, test_server.http, test_server.alice_backtest

TOOL_CALL = 'define it #tool=explain_metric:{"name": "sharpe"}'
"""A chat message for which the fake model calls explain_metric, then answers in text."""


@dataclass
class Event:
    name: str
    data: Any
    raw: str
    at: float  # time.monotonic() when it arrived


def read_events(r: httpx.Response) -> list[Event]:
    """Parse a text/event-stream response as it arrives (comments are skipped)."""
    events: list[Event] = []
    name, data = "message", list[str]()
    for line in r.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                raw = "\n".join(data)
                events.append(Event(name, json.loads(raw), raw, time.monotonic()))
            name, data = "message", []
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    return events


def stream(
    client: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx.Response, list[Event]]:
    with client.stream("POST", path, json=body, headers=headers) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r, read_events(r)
        r.read()
        return r, []


def is_sse(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").startswith("text/event-stream")


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def test_report_stream_is_sentences_then_the_json_routes_body(
    http: httpx.Client, alice_backtest: dict[str, Any]
) -> None:
    """The template path (no model): one `sentence` per passage, in report order, then `report`
    equal to what `/v1/reports` returns for the same body."""
    body = {"backtest_id": alice_backtest["id"], "max_attempts": 0}
    r, events = stream(http, "/v1/reports/stream", body, ALICE)
    assert r.status_code == 200 and is_sse(r), r.text
    assert r.headers["cache-control"] == "no-cache"
    names = [e.name for e in events]
    assert names[-1] == "report" and set(names[:-1]) == {"sentence"} and len(names) >= 6
    final = events[-1].data
    sentences = [e.data for e in events[:-1]]
    assert "".join(s["text"] for s in sentences) == final["report"]
    assert {s["source"] for s in sentences} == {"template"}
    sections = [s["section"] for s in sentences]
    assert sections[:2] == ["setup", "benchmark"] and "caveat" in sections
    plain = http.post("/v1/reports", json=body, headers=ALICE)
    assert plain.status_code == 200, plain.text
    assert final == plain.json()
    assert final["backtest_id"] == alice_backtest["id"] and final["faithful"]


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({}, 400, "bad_request"),
        ({"backtest_id": "no-such-id"}, 404, "backtest_not_found"),  # found out in the run
        ({"backtest_id": "x", "model": "gpt-9"}, 400, "unknown_model"),
        ({"backtest_id": "x", "model": "o3"}, 403, "model_not_allowed"),
        ({"backtest_id": "x", "colour": "red"}, 422, "validation_error"),
        ({"backtest_id": "x", "request": "why " * 60000}, 413, "prompt_too_large"),
    ],
)
def test_a_bad_report_request_is_json_not_a_stream(
    http: httpx.Client, body: dict[str, Any], status: int, kind: str
) -> None:
    r, events = stream(http, "/v1/reports/stream", body, ALICE)
    assert not is_sse(r) and events == []
    assert _error(r, status)["type"] == kind


def test_another_users_backtest_is_404_json(
    http: httpx.Client, alice_backtest: dict[str, Any]
) -> None:
    bob = {"x-api-key": "key-bob"}
    r, _ = stream(http, "/v1/reports/stream", {"backtest_id": alice_backtest["id"]}, bob)
    assert not is_sse(r) and _error(r, 404)["type"] == "backtest_not_found"


@pytest.mark.parametrize("path", ["/v1/reports/stream", "/v1/chat/stream"])
@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"Authorization": "Bearer x"}])
def test_streams_need_a_valid_key(http: httpx.Client, path: str, headers: dict[str, str]) -> None:
    body = {"backtest_id": "x"} if "reports" in path else {"message": "hi", "thread_id": "t"}
    r, events = stream(http, path, body, headers)
    assert not is_sse(r) and events == []
    assert _error(r, 401)["type"] == "unauthorized"


# --------------------------------------------------------------------------------------------
# Chat
# --------------------------------------------------------------------------------------------


def test_chat_stream_is_tool_events_then_answer_then_the_json_routes_body(
    http: httpx.Client, fake_openai: FakeServer
) -> None:
    """Call, result, the accepted answer, `done`: each as it happens (the answer waits for a
    slow second model call), `done` equal to `/v1/chat`'s body for the same turn."""
    body = {"message": TOOL_CALL + " #sleep=800", "thread_id": "sse-1", "model": BILLED_MODEL}
    served = fake_openai.requests_served()
    r, events = stream(http, "/v1/chat/stream", body, ALICE)
    assert r.status_code == 200 and is_sse(r), r.text
    assert [e.name for e in events] == ["tool", "tool", "answer", "done"]
    assert fake_openai.requests_served() == served + 2
    call, result, answer, done = (e.data for e in events)
    assert call["phase"] == "call" and call["name"] == "explain_metric"
    assert call["args"] == {"name": "sharpe"} and call["id"]
    assert result["phase"] == "result" and result["id"] == call["id"]
    assert result["status"] == "success" and "Sharpe" in result["summary"]
    assert answer["text"] == done["reply"] and answer["answer_source"] == done["answer_source"]
    assert answer["model_used"] == done["model_used"] and BILLED_MODEL in done["model_used"]
    # delivered as they happen: the answer came with the second model call, 0.8 s later
    assert events[2].at - events[0].at >= 0.6
    assert all('"arguments"' not in e.raw for e in events)
    plain = http.post("/v1/chat", json={**body, "thread_id": "sse-2"}, headers=ALICE)
    assert plain.status_code == 200, plain.text
    assert done == {**plain.json(), "thread_id": "sse-1"}


def test_chat_stream_keeps_the_thread(http: httpx.Client, fake_openai: FakeServer) -> None:
    """A streamed turn is a turn of the thread: the next one (plain JSON) sees it."""
    body = {"message": TOOL_CALL, "thread_id": "sse-memory", "model": BILLED_MODEL}
    r, events = stream(http, "/v1/chat/stream", body, ALICE)
    assert r.status_code == 200 and events[-1].name == "done"
    http.post(
        "/v1/chat",
        json={"message": "and again", "thread_id": "sse-memory", "model": BILLED_MODEL},
        headers=ALICE,
    )
    sent = fake_openai.last_request()["messages"]
    said = [m.get("content") for m in sent if m.get("role") == "user"]
    assert said[-2:] == [TOOL_CALL, "and again"]  # the streamed turn is in the history
    assert any(m.get("role") == "tool" for m in sent)


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"message": "hi"}, 422, "validation_error"),  # no thread_id
        ({"message": "hi", "thread_id": "t", "model": "gpt-9"}, 400, "unknown_model"),
        ({"message": "hi " * 60000, "thread_id": "t"}, 413, "prompt_too_large"),
    ],
)
def test_a_bad_chat_request_is_json_not_a_stream(
    http: httpx.Client, body: dict[str, Any], status: int, kind: str
) -> None:
    r, events = stream(http, "/v1/chat/stream", body, ALICE)
    assert not is_sse(r) and events == []
    assert _error(r, status)["type"] == kind


def test_over_budget_is_429_json_before_the_stream(
    http: httpx.Client, fake_openai: FakeServer
) -> None:
    served = fake_openai.requests_served()
    body = {"message": "hello", "thread_id": "sse-q", "model": BILLED_MODEL}
    r, events = stream(http, "/v1/chat/stream", body, CAROL)
    assert not is_sse(r) and events == []
    assert _error(r, 429)["type"] == "quota_exceeded"
    assert int(r.headers["Retry-After"]) > 0
    assert fake_openai.requests_served() == served


def test_a_client_that_leaves_stops_the_run(
    server: Server, http: httpx.Client, fake_openai: FakeServer
) -> None:
    """Gone during the first (slow) model call: the tool still runs, the second call is never
    made, and the thread takes its next turn."""
    # Warm first (the governance step loads its embedding model on a server's first chat, for
    # longer than the client waits here): the run must be inside its first model call.
    warm = {"message": "hello", "thread_id": "sse-gone-warm", "model": BILLED_MODEL}
    assert http.post("/v1/chat", json=warm, headers=ALICE).status_code == 200
    served = fake_openai.requests_served()
    body = {"message": TOOL_CALL + " #sleep=2000", "thread_id": "sse-gone", "model": BILLED_MODEL}
    with (
        httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=0.5)) as quick,
        pytest.raises(httpx.ReadTimeout),
    ):
        stream(quick, "/v1/chat/stream", body, ALICE)
    time.sleep(4)  # the first call returns at 2 s; a second one would be sent right after
    made = fake_openai.requests_served() - served
    assert made == 1, (made, fake_openai.recent_requests()[-3:], server.log.read_text()[-3000:])
    r = http.post(
        "/v1/chat",
        json={"message": "hello", "thread_id": "sse-gone", "model": BILLED_MODEL},
        headers=ALICE,
    )
    assert r.status_code == 200, r.text


def test_chat_events_never_carry_a_tool_calls_text() -> None:
    """The embedded model writes its calls as JSON text: the event has the parsed name and
    arguments only; a tool error is its first sentence; the answer is the accepted reply."""
    raw = '{"name": "top_backtests", "arguments": {"metric": "sharpe"}}'
    call = AIMessage(
        raw, tool_calls=[{"name": "top_backtests", "args": {"metric": "sharpe"}, "id": "c1"}]
    )
    error = ToolMessage(
        "Error: the call of top_backtests was not run: metric: unknown. Its arguments: "
        "top_backtests(metric: string). Call it again with valid arguments, or answer without it.",
        tool_call_id="c1",
        name="top_backtests",
        status="error",
    )
    answer = AIMessage("Your best backtest is SmaCross.")
    updates: list[dict[str, Any]] = [
        {"govern": {"messages": [HumanMessage("hi")], "answer_source": None}},
        {"call_model": {"messages": [call], "model_used": "m"}},
        {"tools": {"messages": [error]}},
        {"call_model": {"messages": [answer], "model_used": "m", "answer_source": "model"}},
        {"call_model": {"retry_note": "not shown", "model_used": "m"}},  # a rejected reply
    ]
    events = [e for u in updates for e in streaming.chat_update_events(u)]
    assert events == [
        (
            "tool",
            {"phase": "call", "id": "c1", "name": "top_backtests", "args": {"metric": "sharpe"}},
        ),
        (
            "tool",
            {
                "phase": "result",
                "id": "c1",
                "name": "top_backtests",
                "status": "error",
                "summary": "the call of top_backtests was not run: metric: unknown.",
            },
        ),
        (
            "answer",
            {
                "text": "Your best backtest is SmaCross.",
                "model_used": "m",
                "answer_source": "model",
            },
        ),
    ]
    assert all('"arguments"' not in streaming.sse(*e) for e in events)


# --------------------------------------------------------------------------------------------
# The embedded model (e2e)
# --------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_report_stream_on_the_embedded_model(
    http: httpx.Client, alice_backtest: dict[str, Any]
) -> None:
    body = {"backtest_id": alice_backtest["id"], "max_tokens": 160, "max_attempts": 1}
    r, events = stream(http, "/v1/reports/stream", body, ALICE)
    assert r.status_code == 200 and is_sse(r), r.text
    assert [e.name for e in events][-1] == "report"
    assert {e.name for e in events[:-1]} == {"sentence"}
    final = events[-1].data
    assert "".join(e.data["text"] for e in events[:-1]) == final["report"]
    model_sentences = [e.data["text"].strip() for e in events if e.data.get("source") == "model"]
    assert len(model_sentences) == final["model_sentences"]
    assert not set(model_sentences) & set(final["rejected_sentences"])  # never shown
    assert final["faithful"] and final["backtest_id"] == alice_backtest["id"]
    assert events[0].at < events[-1].at


@pytest.mark.e2e
def test_chat_stream_on_the_embedded_model(http: httpx.Client) -> None:
    """The 0.5B writes its tool calls as JSON text: none of it reaches an event."""
    body = {"message": "Explain the Sharpe ratio metric.", "thread_id": "sse-e2e"}
    r, events = stream(http, "/v1/chat/stream", body, ALICE)
    assert r.status_code == 200 and is_sse(r), r.text
    names = [e.name for e in events]
    assert names[-1] == "done" and names.count("answer") == 1, names
    assert set(names[: names.index("answer")]) <= {"tool"}
    done = events[-1].data
    assert events[-2].data["text"] == done["reply"] and done["thread_id"] == "sse-e2e"
    assert set(done) == {"thread_id", "reply", "model_used", "answer_source"}
    for e in events:
        assert '"arguments"' not in e.raw and '{\\"name\\"' not in e.raw, e.raw


# --------------------------------------------------------------------------------------------
# The stream machinery on the app in this process (graph runs swapped)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def app_url(serve_app: Callable[..., str]) -> str:
    """`agents.serve.api.app` under uvicorn on a free port, one key for alice."""
    return serve_app(
        QUANT_GENAI_API_KEYS=json.dumps({"key-alice": "alice"}), QUANT_GENAI_RATE_PER_MIN="0"
    )


def _first_then(fail: BaseException) -> streaming.Produce:
    def produce(config: RunnableConfig) -> Iterator[streaming.Event]:
        yield "sentence", {"text": "First.", "source": "template", "section": "setup"}
        raise fail

    return produce


def _unreachable_model() -> openai.APIConnectionError:
    """What the SDK raises for a model endpoint nobody listens on (a port just closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/secret/path", api_key="k", max_retries=0
    )
    try:
        client.models.list()
    except openai.APIConnectionError as exc:
        return exc
    raise AssertionError("a closed port answered")


@pytest.mark.parametrize(
    ("fail", "status", "kind"),
    [
        (RetrievalUnavailableError("the vector store is down"), 503, "retrieval_unavailable"),
        (RuntimeError("boom at /secret/path"), 500, "internal_error"),
        (_unreachable_model(), 503, "model_unavailable"),  # a killed model server
    ],
)
def test_an_error_after_the_first_event_is_an_error_event(
    app_url: str, monkeypatch: pytest.MonkeyPatch, fail: BaseException, status: int, kind: str
) -> None:
    monkeypatch.setattr(streaming, "report_run", lambda *a, **k: _first_then(fail))
    with httpx.Client(base_url=app_url, timeout=30) as client:
        r, events = stream(client, "/v1/reports/stream", {"backtest_id": "x"}, ALICE)
    assert r.status_code == 200 and [e.name for e in events] == ["sentence", "error"]
    expected = api.api_error(fail).body()
    assert events[1].data == expected and expected["error"]["type"] == kind
    assert api.api_error(fail).status == status
    assert "/secret/path" not in events[1].raw  # a bug's message stays generic


def test_an_error_before_the_first_event_is_the_json_error(
    app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def produce(config: RunnableConfig) -> Iterator[streaming.Event]:
        raise RetrievalUnavailableError("the vector store is down")
        yield  # a generator

    monkeypatch.setattr(streaming, "report_run", lambda *a, **k: produce)
    with httpx.Client(base_url=app_url, timeout=30) as client:
        r, events = stream(client, "/v1/reports/stream", {"backtest_id": "x"}, ALICE)
    assert not is_sse(r) and events == []
    assert _error(r, 503)["type"] == "retrieval_unavailable"


def test_over_the_rate_is_429_json_before_the_stream(
    app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request a minute per (user, service): the second report stream is refused before
    it starts; the chat stream (another service, another window) is not."""
    monkeypatch.setenv("QUANT_GENAI_RATE_PER_MIN", "1")
    monkeypatch.setenv("QUANT_GENAI_RATE_BURST", "1")
    reset()

    def produce(config: RunnableConfig) -> Iterator[streaming.Event]:
        yield "sentence", {"text": "Only.", "source": "template", "section": "setup"}

    monkeypatch.setattr(streaming, "report_run", lambda *a, **k: produce)
    monkeypatch.setattr(streaming, "chat_run", lambda *a, **k: produce)
    with httpx.Client(base_url=app_url, timeout=30) as client:
        r, events = stream(client, "/v1/reports/stream", {"backtest_id": "x"}, ALICE)
        assert is_sse(r) and [e.name for e in events] == ["sentence"]
        refused, events = stream(client, "/v1/reports/stream", {"backtest_id": "x"}, ALICE)
        assert not is_sse(refused) and events == []
        body = {"message": "hi", "thread_id": "t"}
        other, other_events = stream(client, "/v1/chat/stream", body, ALICE)
    error = _error(refused, 429)
    assert error["type"] == "rate_limited" and int(refused.headers["Retry-After"]) > 0
    assert "scope=user key=narrative_report/alice limit=1 requests window=60s" in error["message"]
    assert is_sse(other) and [e.name for e in other_events] == ["sentence"]


def test_a_client_that_leaves_mid_stream_stops_the_model(
    app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first event a model streams slowly; the client leaves after one more event:
    the model's stream is stopped at its next token (`StreamClosed`), long before its end."""
    model = FakeListChatModel(responses=["x" * 200], sleep=0.02)  # 200 tokens, 4 s
    seen: dict[str, Any] = {"tokens": 0}
    done = threading.Event()

    def produce(config: RunnableConfig) -> Iterator[streaming.Event]:
        yield "sentence", {"text": "First.", "source": "template", "section": "setup"}
        try:
            for chunk in model.stream("go", config):
                seen["tokens"] += 1
                yield "token", {"text": chunk.text}
        except streaming.StreamClosed:
            seen["stopped"] = True
            raise
        finally:
            done.set()

    monkeypatch.setattr(streaming, "report_run", lambda *a, **k: produce)
    with (
        httpx.Client(base_url=app_url, timeout=30) as client,
        client.stream("POST", "/v1/reports/stream", json={"backtest_id": "x"}, headers=ALICE) as r,
    ):
        lines = r.iter_lines()
        assert next(lines) == "event: sentence"
        for line in lines:
            if line.startswith("event: token"):
                break
    assert done.wait(3), "the run went on after the client left"
    assert seen.get("stopped") and seen["tokens"] < 100
