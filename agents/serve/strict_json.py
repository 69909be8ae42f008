"""Request bodies read as JSON has it (RFC 8259), for every REST route: `StrictJsonRoute`.

Python's `json` reads `NaN`, `Infinity` and lone surrogate escapes, which no reply or store can
write back (found by the fuzz suite: 500s in governance, indexing and the report's numbers), and
a body nested too deeply raises `RecursionError`. Here each of them is a `json.JSONDecodeError`,
which FastAPI answers with a 422 naming the spot.

orjson reads RFC 8259 strictly (no NaN, Infinity, out-of-range numbers or lone surrogates, depth
at most 1024) and is several times faster, so a body it accepts is taken as it reads it; only
a body it refuses goes through the checks below, which name the problem (and accept what they
accepted before, such as `1e999` or a depth past orjson's limit, so no answer changes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_json(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number", name)


class _NotJson(ValueError):
    def __init__(self, message: str, token: str) -> None:
        super().__init__(message)
        self.message, self.token = message, token


def strict_json(body: bytes) -> Any:
    """A request body as JSON has it (RFC 8259): UTF-8, no `NaN` or `Infinity` (Python's json
    reads them, but no reply or store can write them back), no lone surrogate escape such as
    `"\\ud800"` (no character: whatever encodes it later fails). Anything else is a
    `json.JSONDecodeError`, which FastAPI answers with a 422 naming the spot."""
    try:
        return orjson.loads(body)  # strict already: what it accepts, the checks below accept
    except orjson.JSONDecodeError:
        pass  # the checks below name the problem
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("the body is not UTF-8 text", "", exc.start) from exc
    try:
        value = json.loads(text, parse_constant=_not_json)
    except _NotJson as exc:
        raise json.JSONDecodeError(exc.message, text, max(text.find(exc.token), 0)) from exc
    except RecursionError as exc:
        raise json.JSONDecodeError("the body is nested too deeply", text, 0) from exc
    stack = [value]
    while stack:  # no recursion: as deep as the parser went, whatever the body
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (bad := _LONE_SURROGATE.search(item)):
            escape = f"\\u{ord(bad.group()):04x}"
            raise json.JSONDecodeError(
                f"{escape} is a lone surrogate, not a character",
                text,
                max(text.lower().find(escape), 0),
            )
    return value


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Every route reads its JSON body with `strict_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict


__all__ = ["StrictJsonRoute", "strict_json"]
