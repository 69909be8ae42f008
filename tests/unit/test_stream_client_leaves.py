"""A stream's run is closed as soon as its client leaves, before any event was sent, also behind
a `BaseHTTPMiddleware` (langgraph dev mounts our app under one: its private-network
middleware). Driven at the ASGI level: the client's leaving is the `http.disconnect` message."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from fastapi import FastAPI
from langchain_core.runnables import RunnableConfig
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

from agents.serve import streaming

WAIT_S = 5.0


def _app(stopped: dict[str, Any], *, behind_middleware: bool) -> FastAPI:
    app = FastAPI()

    def produce(config: RunnableConfig) -> Iterator[streaming.Event]:
        """A model call in flight for up to WAIT_S: it asks the run's callbacks every 20 ms, as
        LangChain does at each streamed token; no event before it ends."""
        handlers = config["callbacks"]
        assert isinstance(handlers, list)
        started = time.monotonic()
        try:
            while time.monotonic() - started < WAIT_S:
                for handler in handlers:
                    handler.on_llm_new_token("x", run_id=uuid.uuid4())
                time.sleep(0.02)
        except streaming.StreamClosed:
            stopped["after_s"] = time.monotonic() - started
            raise
        yield "sentence", {"text": "too late", "source": "model", "section": "setup"}

    @app.post("/stream")
    async def stream(request: Request) -> Response:
        await request.body()
        return await streaming.event_stream(request, produce, lambda e: None)

    if behind_middleware:

        class Passthrough(BaseHTTPMiddleware):
            async def dispatch(self, request: Request, call_next: Any) -> Response:
                response: Response = await call_next(request)
                return response

        app.add_middleware(Passthrough)
    return app


async def _call_and_leave(app: FastAPI, leave_after_s: float) -> list[MutableMapping[str, Any]]:
    """POST /stream; the client leaves after `leave_after_s`; the messages the app sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    sent: list[MutableMapping[str, Any]] = []
    body_read = False
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal body_read
        if not body_read:
            body_read = True
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def leave() -> None:
        await asyncio.sleep(leave_after_s)
        gone.set()

    leaving = asyncio.create_task(leave())
    await app(scope, receive, send)
    await leaving
    return sent


@pytest.mark.parametrize("behind_middleware", [False, True], ids=["bare", "base-http-middleware"])
def test_the_run_stops_when_the_client_leaves_before_the_first_event(
    behind_middleware: bool,
) -> None:
    stopped: dict[str, Any] = {}
    app = _app(stopped, behind_middleware=behind_middleware)
    sent = asyncio.run(_call_and_leave(app, leave_after_s=0.3))
    deadline = time.monotonic() + WAIT_S
    while "after_s" not in stopped and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "after_s" in stopped, "the run went on after the client left"
    assert stopped["after_s"] < 1.5, stopped  # left at 0.3 s; WAIT_S if never noticed
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert not [m for m in sent if b"too late" in m.get("body", b"")]
