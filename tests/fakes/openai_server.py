"""A fake OpenAI-compatible HTTP server with exact, repeatable token counts.

Used by unit/integration tests and by `bench/model_layer.py` so that requests travel over real
HTTP through `ChatOpenAI` / `openai.AsyncOpenAI` while usage is known in advance.

The last user message may carry directives (space separated, anywhere in the text):
  #in=N         prompt_tokens (default: number of whitespace words over all messages)
  #cached=N     prompt_tokens_details.cached_tokens (default 0)
  #out=N        visible completion tokens (default 3); the reply is N words "w0 w1 ..."
  #reasoning=N  completion_tokens_details.reasoning_tokens, added to completion_tokens
  #status=N     answer with HTTP status N and an OpenAI-style error body
  #sleep=MS     wait MS milliseconds before answering
  #down=MODEL   answer 503 when the request is for MODEL (an endpoint outage of one model, so
                a fallback to another model succeeds); repeatable
  #tool=NAME:{JSON}  answer with a structured tool call NAME(JSON args), `finish_reason`
                "tool_calls" (streamed as OpenAI does) — only while the last message is the
                user's, so once the tool result comes back the model answers in text
  #fault=KIND   malformed: a 200 whose body is not JSON (a stream: a chunk that is not JSON);
                cut: the connection dies mid-answer (a body shorter than its Content-Length; a
                stream: the first chunk, then the connection drops)
  #flaky=K:KEY  the first K requests carrying this KEY get a 429 (with Retry-After: 0), later
                ones are answered: a burst of rate-limit errors that retries get through
  #nousage      report no usage at all: no `usage` in a non-streaming body, no usage chunk in
                a stream even when `stream_options.include_usage` is sent (an endpoint that
                never reports usage; the counts `plan` gives are what it would have reported)
Without `#nousage`, a stream carries usage only when `stream_options.include_usage` is sent.
GET /_last returns the last chat-completions request body (tests check what reached a model);
GET /_recent the role and first 120 characters of the last message of the last 20 requests.
Run: `python -m tests.fakes.openai_server --port 0` prints `READY <port>` once listening;
`--latency-ms MS` (or `run_fake_server(latency_ms=MS)`) makes every answer wait MS first, as a
model's latency (`#sleep=` overrides it per request; `bench/load.py` uses 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_DIRECTIVE = re.compile(r"#(in|cached|out|reasoning|status|sleep)=(\d+)")
_TOOL_DIRECTIVE = re.compile(r"#tool=([A-Za-z_][\w-]*):")
_DOWN_DIRECTIVE = re.compile(r"#down=([\w.-]+)")
_FAULT_DIRECTIVE = re.compile(r"#fault=(malformed|cut)\b")
_FLAKY_DIRECTIVE = re.compile(r"#flaky=(\d+):([\w.-]+)")
FLAKY: dict[str, int] = {}
STATS: dict[str, int] = {"chat_completions": 0}
RECENT: collections.deque[dict[str, str]] = collections.deque(maxlen=20)
LATENCY_MS = [0]  # every answer's default wait (`--latency-ms`)
LAST: dict[str, Any] = {}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def plan(body: dict[str, Any]) -> dict[str, int]:
    """The usage the server will report for a request body (also used by tests)."""
    messages = body.get("messages", [])
    words = sum(len(_text(m.get("content")).split()) for m in messages)
    last_user = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    d = {k: int(v) for k, v in _DIRECTIVE.findall(last_user)}
    if body.get("model") in _DOWN_DIRECTIVE.findall(last_user):
        d["status"] = 503
    return {
        "in": d.get("in", words),
        "cached": d.get("cached", 0),
        "out": d.get("out", 3),
        "reasoning": d.get("reasoning", 0),
        "status": d.get("status", 200),
        "sleep": d.get("sleep", LATENCY_MS[0]),
    }


def planned_tool_call(body: dict[str, Any]) -> tuple[str, str] | None:
    """(name, JSON arguments) when the last message is the user's and asks for a tool call."""
    messages = body.get("messages", [])
    if not messages or messages[-1].get("role") != "user":
        return None
    text = _text(messages[-1].get("content"))
    m = _TOOL_DIRECTIVE.search(text)
    if m is None:
        return None
    try:
        args, _ = json.JSONDecoder().raw_decode(text, m.end())
    except ValueError:
        args = {}
    return m.group(1), json.dumps(args)


def _usage(p: dict[str, int]) -> dict[str, Any]:
    completion = p["out"] + p["reasoning"]
    return {
        "prompt_tokens": p["in"],
        "completion_tokens": completion,
        "total_tokens": p["in"] + completion,
        "prompt_tokens_details": {"cached_tokens": p["cached"], "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": p["reasoning"], "audio_tokens": 0},
    }


async def chat_completions(request: Request) -> Response:
    body = await request.json()
    STATS["chat_completions"] += 1
    LAST.clear()
    LAST.update(body)
    final = (body.get("messages") or [{}])[-1]
    RECENT.append({"role": str(final.get("role")), "text": _text(final.get("content"))[:120]})
    p = plan(body)
    if p["sleep"]:
        await asyncio.sleep(p["sleep"] / 1000)
    last_text = _text((body.get("messages") or [{}])[-1].get("content"))
    flaky = _FLAKY_DIRECTIVE.search(last_text)
    if flaky is not None:
        seen = FLAKY[flaky[2]] = FLAKY.get(flaky[2], 0) + 1
        if seen <= int(flaky[1]):
            return JSONResponse(
                {"error": {"message": "fake rate limit", "type": "requests", "code": None}},
                status_code=429,
                headers={"retry-after": "0"},
            )
    no_usage = "#nousage" in last_text
    fault = _FAULT_DIRECTIVE.search(last_text)
    if fault is not None:
        return _fault(fault[1], bool(body.get("stream")))
    if p["status"] != 200:
        return JSONResponse(
            {"error": {"message": f"fake error {p['status']}", "type": "fake", "code": None}},
            status_code=p["status"],
        )
    model = body.get("model", "fake")
    created = int(time.time())
    cid = f"chatcmpl-fake{STATS['chat_completions']}"
    words = [f"w{i}" for i in range(p["out"])]
    call = planned_tool_call(body)
    if call is not None:
        words = []
    tool_calls = None
    if call is not None:
        function = {"name": call[0], "arguments": call[1]}
        tool_calls = [{"id": f"call_{cid}", "type": "function", "function": function}]
    finish_reason = "tool_calls" if call is not None else "stop"
    if not body.get("stream"):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if call else " ".join(words),
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        completion: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        }
        if not no_usage:
            completion["usage"] = _usage(p)
        return JSONResponse(completion)
    include_usage = not no_usage and bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> str:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            obj["usage"] = usage
        return f"data: {json.dumps(obj)}\n\n"

    async def events() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        for i, w in enumerate(words):
            yield chunk({"content": w if i == 0 else " " + w})
        if tool_calls:
            yield chunk({"tool_calls": [{"index": 0, **tool_calls[0]}]})
        yield chunk({}, finish=finish_reason)
        if include_usage:
            yield chunk({}, usage=_usage(p))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _fault(kind: str, stream: bool) -> Response:
    """A broken answer: not JSON, or a connection that dies before the answer is whole."""
    if kind == "malformed":
        if stream:
            return StreamingResponse(
                iter(["data: {not json\n\n", "data: [DONE]\n\n"]), media_type="text/event-stream"
            )
        return Response('{"id": "chatcmpl-x", "choices": [', media_type="application/json")

    async def dies() -> AsyncIterator[str]:
        yield 'data: {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", '
        yield '"choices": [{"index": 0, "delta": {"content": "w0"}, "finish_reason": null}]}\n\n'
        raise ConnectionResetError("the fake server dropped the connection")

    if stream:
        return StreamingResponse(dies(), media_type="text/event-stream")
    return Response(
        '{"id": "chatcmpl-x"', media_type="application/json", headers={"content-length": "4096"}
    )


async def stats(request: Request) -> Response:
    return JSONResponse(STATS)


async def last(request: Request) -> Response:
    return JSONResponse(LAST)


async def recent(request: Request) -> Response:
    return JSONResponse(list(RECENT))


async def embeddings(request: Request) -> Response:
    """`/v1/embeddings`: a deterministic unit vector per input (from its bytes), `dimensions`
    wide (default 1536); usage is the whitespace word count (the client must not rely on it)."""
    import hashlib
    import math

    body = await request.json()
    inputs = body.get("input", [])
    inputs = [inputs] if isinstance(inputs, str) else inputs
    dims = int(body.get("dimensions") or 1536)
    STATS["embeddings"] = STATS.get("embeddings", 0) + 1
    data = []
    for i, text in enumerate(inputs):
        seed = hashlib.sha256(str(text).encode()).digest()
        raw = [seed[j % 32] - 127.5 for j in range(dims)]
        norm = math.sqrt(sum(v * v for v in raw)) or 1.0
        data.append({"object": "embedding", "index": i, "embedding": [v / norm for v in raw]})
    words = sum(len(str(t).split()) for t in inputs)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake"),
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
    )


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models),
        Route("/_stats", stats),
        Route("/_last", last),
        Route("/_recent", recent),
    ]
)


@dataclass
class FakeServer:
    port: int
    process: subprocess.Popen[str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests_served(self) -> int:
        import httpx

        return int(httpx.get(f"http://127.0.0.1:{self.port}/_stats").json()["chat_completions"])

    def recent_requests(self) -> list[dict[str, str]]:
        """The last message (role, first 120 characters) of each of the last 20 requests."""
        import httpx

        recent: list[dict[str, str]] = httpx.get(f"http://127.0.0.1:{self.port}/_recent").json()
        return recent

    def last_request(self) -> dict[str, Any]:
        import httpx

        body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.port}/_last").json()
        return body


@contextlib.contextmanager
def run_fake_server(latency_ms: int = 0) -> Iterator[FakeServer]:
    """Start the server in a subprocess (so it never shares the client's GIL)."""
    latency = ["--latency-ms", str(latency_ms)] if latency_ms else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", *latency],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"fake OpenAI server did not start: {line!r}")
        yield FakeServer(int(line.split()[1]), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a request still hanging on purpose (#sleep)
            proc.kill()
            proc.wait(timeout=10)


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=int, default=0, help="every answer waits this long")
    args = ap.parse_args()
    LATENCY_MS[0] = args.latency_ms
    sock = socket.socket()
    # Accepted sockets inherit this: without it a response written in two parts waits for the
    # client's delayed ACK (~40 ms on loopback) and the benchmark would measure that stall.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        print(f"READY {port}", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
