"""What the REST app checks before a route runs: the body size, and who may read `/metrics`.

`BodyLimit` is a pure ASGI middleware: a body over the limit is refused with 413 before it is
read (by its `Content-Length`) or as soon as the bytes received pass the limit (chunked
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

from agents.serve.auth import is_admin, key_from_headers, user_for_key
from agents.settings import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DATASET_PATHS = ("/v1/datasets",)


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


class BodyLimit:
    """413 for a body over `body_limit(path)`, before the route reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(str(scope.get("path", "")))
        too_big = _error(413, "body_too_large", f"the request body is over {limit} bytes")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _respond(send, 413, too_big)
            return
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


__all__ = ["BodyLimit", "body_limit", "metrics_access"]
