"""The REST API's one error shape and its caller check, shared by `api.py` and the routers it
includes (`admin_limits`, `admin_budgets`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from agents.serve.auth import is_admin, key_from_headers, user_for_key
from agents.serve.guards import INVALID_KEY, MISSING_KEY


class ApiError(Exception):
    """An error with its HTTP status; `response()` renders the one JSON error shape."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        allowed: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type_, message
        self.allowed, self.headers = allowed, headers

    def body(self) -> dict[str, Any]:
        """The JSON error body (also the data of a stream's `error` event)."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.allowed is not None:
            error["allowed"] = self.allowed
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


async def current_user(request: Request) -> str:
    """The caller's user id from `x-api-key` or `Authorization: Bearer` (same keys as graphs).
    Async: a header lookup and a constant-time compare, no I/O (a sync dependency would cost a
    threadpool hop per request)."""
    key = key_from_headers(request.headers)
    if key is None:  # `KeyRequired` answered already; kept for a route mounted elsewhere
        raise ApiError(401, "unauthorized", MISSING_KEY)
    user = user_for_key(key)
    if user is None:
        raise ApiError(401, "unauthorized", INVALID_KEY)
    request.state.user_id = user
    return user


async def current_admin(request: Request) -> str:
    """`current_user`, and 403 unless they are an admin (`QUANT_GENAI_ADMIN_USERS`)."""
    user = await current_user(request)
    if not is_admin(user):
        raise ApiError(403, "forbidden", f"only admin users may use {request.url.path}")
    return user


User = Annotated[str, Depends(current_user)]
Admin = Annotated[str, Depends(current_admin)]
