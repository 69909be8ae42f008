"""What the REST app checks before a route runs: the caller's key, the body size, and who may
read `/metrics`.

`KeyRequired` is a pure ASGI middleware: a request to the REST API (`/v1/...`) without a valid
key, or to `/metrics` without the metrics token or any valid key, is 401 before anything else
happens to it: before its body is read or parsed (a body that is not JSON, or not UTF-8, would
otherwise be a 400 or 422 to anyone) and before routing (an unknown path or method would be a
404 or 405 naming what exists).

`BodyLimit` is a pure ASGI middleware too: a body over the limit is refused with 413 before it
is read (by its `Content-Length`) or as soon as the bytes received pass the limit (chunked
uploads), so a 5 MB body costs no parsing. Dataset uploads have their own, larger limit.

`/metrics` holds only totals by service and model (no user label), but cost and volume are
still the platform's business: it takes the scraper's token (`QUANT_GENAI_METRICS_TOKEN`, as a
Bearer token or `x-api-key`) or an admin user's API key.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers

from agents.serve.auth import is_admin, key_from_headers, user_for_key
from agents.settings import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DATASET_PATHS = ("/v1/datasets",)
API_PREFIX = "/v1/"  # the REST API; the LangGraph server's own routes have their own auth
METRICS_PATH = "/metrics"
MISSING_KEY = "missing API key: send 'x-api-key' or a Bearer token"
INVALID_KEY = "invalid API key"
METRICS_KEY = "send the metrics token or an admin's API key"


def body_limit(path: str) -> int:
    """The largest body `path` accepts, in bytes (settings: max_body_bytes, max_dataset_bytes)."""
    s = get_settings()
    return s.max_dataset_bytes if path.startswith(DATASET_PATHS) else s.max_body_bytes


def _error(status: int, type_: str, message: str) -> bytes:
    return json.dumps({"error": {"type": type_, "message": message}}).encode()


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_big(limit: int) -> bytes:
    return _error(413, "body_too_large", f"the request body is over {limit} bytes")


def _content_length(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return bytes(value)
    return None


class BodyLimit:
    """413 for a body over `body_limit(path)`, before the route reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await _respond(send, 413, _too_big(limit))
                return
            # The server frames the body by its Content-Length (h11 and httptools refuse more
            # bytes than declared), so a declared size within the limit needs no counting.
            await self.app(scope, receive, send)
            return
        too_big = _too_big(limit)
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > limit:  # answered here; the app sees the client leave
                    refused = True
                    if not started:
                        await _respond(send, 413, too_big)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the response
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, tracked)


def key_problem(headers: Any) -> str | None:
    """Why `headers` carry no valid API key (the 401's message), or None."""
    key = key_from_headers(headers)
    if key is None:
        return MISSING_KEY
    return INVALID_KEY if user_for_key(key) is None else None


class KeyRequired:
    """401 for a `/v1/...` request without a valid key (and a `/metrics` one without the
    metrics token or any valid key), before its body is read or it is routed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path.startswith(API_PREFIX) or path == METRICS_PATH):
            headers = Headers(scope=scope)
            if path == METRICS_PATH:  # 403 for a user who is no admin is the route's
                problem = METRICS_KEY if metrics_access(headers) == "unauthorized" else None
            else:
                problem = key_problem(headers)
            if problem is not None:
                await _respond(send, 401, _error(401, "unauthorized", problem))
                return
        await self.app(scope, receive, send)


def metrics_access(headers: Any) -> str | None:
    """Why the caller may not read `/metrics` ("unauthorized" / "forbidden"), or None."""
    key = key_from_headers(headers)
    if key is None:
        return "unauthorized"
    token = get_settings().metrics_token
    if token is not None and hmac.compare_digest(key.encode(), token.get_secret_value().encode()):
        return None
    user = user_for_key(key)
    if user is None:
        return "unauthorized"
    return None if is_admin(user) else "forbidden"


__all__ = ["BodyLimit", "KeyRequired", "body_limit", "key_problem", "metrics_access"]
