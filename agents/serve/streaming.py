"""Server-sent events for the REST routes `POST /v1/reports/stream` and `POST /v1/chat/stream`.

A graph run streams in a thread of its own (LangGraph's sync `stream`, so the event loop never
waits on a model), its events handed to the loop through a queue. The response starts only once
the run has produced its first event: an error before that (a missing backtest, the daily
budget, a bug) is the same JSON error the non-streaming route gives, with its status. After the
first event an error is an `error` event carrying that same body, and the stream ends.

Events (`event: <name>`, `data: <one line of JSON>`):

* reports — `sentence` for each passage as the report accepts it (`{"text", "source": "model" |
  "template" | "notice", "section"}`: the graph's custom stream, rejected sentences are never
  in it), then `report`: exactly the body of `POST /v1/reports`.
* chat — `tool` when the model calls a tool (`{"phase": "call", "id", "name", "args"}`) and when
  its result is in (`{"phase": "result", "id", "name", "status", "summary"}`, the result in
  sentences computed in code), `answer` once the graph has accepted the reply (`{"text",
  "model_used", "answer_source"}`; the graph judges a reply whole, so there is one `answer` and
  no token events: a draft that is later rejected or replaced is never sent, nor the text of a
  tool call), then `done`: exactly the body of `POST /v1/chat`.

A comment line (`: keep-alive`) goes out after `KEEPALIVE_S` without an event. When the client
goes away, the run stops at its next model call or model token (`StreamClosed`, raised by a
callback): a tool call the model already made still gets its result, so the chat thread stays
valid for the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.encoders import jsonable_encoder
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agents.llm.tool_calls import message_text
from graphs import chatops_advanced, narrative_report
from graphs.chatops_advanced import ChatReply
from tools import summarize

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
"""Seconds without an event after which a `: keep-alive` comment is sent (idle proxies)."""
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Event = tuple[str, Any]
"""(event name, JSON-serialisable data)."""
Produce = Callable[[RunnableConfig], Iterator[Event]]
"""A graph run as events; it runs in a thread and passes the config to the graph."""
ToError = Callable[[BaseException], Any]
"""The API's mapping of an exception to its error (`agents.serve.api.api_error`)."""


class StreamClosed(Exception):
    """The client closed the stream: the run stops at its next model call or token."""


class _StopWhenClosed(BaseCallbackHandler):
    """Raises `StreamClosed` in the run once the stream is closed (before a model call is sent,
    or at the next streamed token, which closes the model's HTTP stream)."""

    raise_error = True
    run_inline = True

    def __init__(self, closed: threading.Event) -> None:
        self.closed = closed

    def _check(self) -> None:
        if self.closed.is_set():
            raise StreamClosed("the client closed the stream")

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        self._check()


def sse(event: str, data: Any) -> str:
    """One server-sent event; the data is one line of JSON."""
    payload = json.dumps(jsonable_encoder(data), ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n"


_END = object()
_IDLE = object()
_GONE = object()


@dataclass
class _Run:
    """One graph run in its own thread; the event loop reads its events from `queue`."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    closed: threading.Event = field(default_factory=threading.Event)

    def start(self, produce: Produce, name: str) -> None:
        config = RunnableConfig(callbacks=[_StopWhenClosed(self.closed)])
        ctx = contextvars.copy_context()
        threading.Thread(
            target=ctx.run, args=(self._pump, produce, config), name=name, daemon=True
        ).start()

    def _put(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (server shutdown)
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _pump(self, produce: Produce, config: RunnableConfig) -> None:
        """Runs the graph to its end: after a close the callback stops it at the next model
        call, so tool calls already made keep their results (a valid chat thread)."""
        try:
            for item in produce(config):
                if not self.closed.is_set():
                    self._put(item)
        except StreamClosed:
            log.info("stream closed by the client: the run stopped")
        except Exception as exc:  # handed to the loop, mapped to the API's error there
            if self.closed.is_set():
                log.info("run failed after the client left: %s", type(exc).__name__)
            else:
                self._put(exc)
        finally:
            self._put(_END)

    async def get(self, timeout: float) -> Any:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return _IDLE

    async def watch(self, request: Request) -> None:
        """Waits on the request's `receive` until the client leaves, then closes the run.

        A real wait, not `Request.is_disconnected()`: that polls `receive` inside an already
        cancelled scope, and behind a `BaseHTTPMiddleware` (langgraph dev's private-network
        middleware) it never saw the client leave, so a run went on to its next model call
        whenever it reached it before the first event's write failed."""
        try:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        except Exception as exc:  # a middleware's receive refused: the writes will tell
            log.warning("cannot watch the stream's client: %s", exc)
            return
        self.closed.set()
        self.queue.put_nowait(_GONE)

    async def first(self) -> Any:
        """The first event, end or error; `_GONE` if the client left while waiting."""
        item = await self.queue.get()
        while item is _IDLE:
            item = await self.queue.get()
        return item

    async def body(
        self, item: Any, to_error: ToError, watcher: asyncio.Task[None]
    ) -> AsyncIterator[str]:
        try:
            while item is not _END and item is not _GONE:
                if isinstance(item, BaseException):
                    yield sse("error", to_error(item).body())
                    return
                yield ": keep-alive\n\n" if item is _IDLE else sse(*item)
                item = await self.get(KEEPALIVE_S)
        finally:  # the end, an error, or the client left (this generator was cancelled)
            self.closed.set()
            watcher.cancel()


async def event_stream(request: Request, produce: Produce, to_error: ToError) -> Response:
    """`text/event-stream` of a graph run, started at its first event; an error before that is
    the API's JSON error response (`to_error(exc).response()`)."""
    run = _Run(asyncio.get_running_loop())
    watcher = asyncio.create_task(run.watch(request))
    run.start(produce, name=f"sse {request.url.path}")
    try:
        first = await run.first()
    except BaseException:
        run.closed.set()
        watcher.cancel()
        raise
    if first is _GONE:  # the client left before anything was sent
        return Response(status_code=499)
    if isinstance(first, BaseException):
        run.closed.set()
        watcher.cancel()
        response: JSONResponse = to_error(first).response()
        return response
    return StreamingResponse(
        run.body(first, to_error, watcher), media_type="text/event-stream", headers=SSE_HEADERS
    )


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

_REPORT: TypeAdapter[narrative_report.OutputState] = TypeAdapter(narrative_report.OutputState)


def report_json(out: narrative_report.OutputState) -> Any:
    """The body of `POST /v1/reports` (and of the stream's `report` event)."""
    return jsonable_encoder(out)


def report_run(
    backtest: Any,
    *,
    user_id: str,
    backtest_id: str | None,
    request: str,
    chart: bool,
    model: str | None,
    max_tokens: int,
    max_attempts: int,
) -> Produce:
    """`narrative_report.write_report` as events: its custom stream, then the output."""
    ctx = narrative_report.Context(
        user_id=user_id, model=model, max_tokens=max_tokens, max_attempts=max_attempts
    )
    inp = narrative_report.InputState(
        backtest=backtest, backtest_id=backtest_id, request=request, chart=chart
    )

    def produce(config: RunnableConfig) -> Iterator[Event]:
        final: Any = None
        for mode, chunk in narrative_report.graph.stream(
            inp, config, context=ctx, stream_mode=["custom", "values"]
        ):
            if mode == "custom":
                yield "sentence", chunk
            else:
                final = chunk
        yield "report", report_json(_REPORT.validate_python(final))

    return produce


# --------------------------------------------------------------------------------------------
# Chat
# --------------------------------------------------------------------------------------------


def chat_json(thread_id: str, reply: ChatReply) -> dict[str, Any]:
    """The body of `POST /v1/chat` (and of the stream's `done` event)."""
    return {
        "thread_id": thread_id,
        "reply": reply.text,
        "model_used": reply.model_used,
        "answer_source": reply.answer_source,
    }


def _error_summary(text: str) -> str:
    """The first sentence of a tool error, without the argument list the model gets."""
    text = re.sub(r"^Error:\s*", "", text.strip())
    return re.split(r"\s(?:Its arguments:|Call it again|Please fix)", text)[0].strip()


def chat_update_events(update: dict[str, Any]) -> Iterator[Event]:
    """Events of one `updates` chunk of the chat graph. A tool call's text is never sent (the
    embedded model writes its calls as JSON text): only its name and parsed arguments. An
    AI message reaches the thread only as an executed call or an accepted answer."""
    for node_update in update.values():
        if not isinstance(node_update, dict):
            continue
        messages = node_update.get("messages") or []
        for m in messages:
            if isinstance(m, AIMessage) and m.tool_calls:
                for call in m.tool_calls:
                    data = {"id": call.get("id"), "name": call["name"], "args": call["args"]}
                    yield "tool", {"phase": "call", **data}
            elif isinstance(m, ToolMessage):
                text = message_text(m.content)
                ok = m.status != "error"
                summary = summarize(m.name or "", text) if ok else _error_summary(text)
                data = {"id": m.tool_call_id, "name": m.name, "status": m.status}
                yield "tool", {"phase": "result", **data, "summary": summary}
        if node_update.get("answer_source") is not None:
            answers = [m for m in messages if isinstance(m, AIMessage) and not m.tool_calls]
            if answers:
                text = message_text(answers[-1].content)
                source, model = node_update["answer_source"], node_update.get("model_used")
                yield "answer", {"text": text, "model_used": model, "answer_source": source}


def chat_run(
    message: str, *, user_id: str, thread_id: str, model: str | None, max_tokens: int
) -> Produce:
    """`chatops_advanced.chat_turn` as events: tool calls and results, the answer, the body."""
    ctx = chatops_advanced.Context(user_id=user_id, model=model, max_tokens=max_tokens)

    def produce(config: RunnableConfig) -> Iterator[Event]:
        graph = chatops_advanced.graph_with_memory()
        thread = chatops_advanced.thread_config(user_id, thread_id)
        final: Any = None
        for mode, chunk in graph.stream(
            {"messages": [HumanMessage(message)]},
            RunnableConfig(**thread, **config),
            context=ctx,
            stream_mode=["updates", "values"],
        ):
            if mode == "values":
                final = chunk
            elif isinstance(chunk, dict):
                yield from chat_update_events(chunk)
        text = message_text(final["messages"][-1].content)
        reply = ChatReply(text, final.get("model_used"), final.get("answer_source"))
        yield "done", chat_json(thread_id, reply)

    return produce
