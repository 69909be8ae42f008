"""The rate-limit routes (`agents.usage.rates`), included in the REST app by `api.py`.

- `GET /v1/limits`: the caller's (user, service) limits on every service and what is left of
  them in the current windows (any user).
- `GET /v1/admin/limits`: the effective limits (every service's defaults, user overrides and
  per-model limits), the static layers, the runtime overrides and their version (admins).
- `PUT /v1/admin/limits`: `{"mode": "patch" | "replace", "overrides": {...}}` — the runtime
  overrides, in the keys of `agents/usage/rate_limits.toml`; `patch` (the default) merges
  (RFC 7396, `null` deletes), `replace` swaps them whole. Stored in the ledger database, so
  every worker and server applies them within `agents.usage.rates.REFRESH_S` (admins).

Errors have the API's one shape `{"error": {"type", "message", "allowed"?}}`: 403 for a
non-admin, 400 `invalid_rate_limits` naming the key path and the allowed names, 422 a body
that fails its schema (the app's handler). Plain `def`s: FastAPI runs them in its threadpool,
so the database and Redis calls never block the event loop.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from agents.serve.errors import Admin, ApiError, User
from agents.serve.strict_json import StrictJsonRoute
from agents.usage.rate_config import RateLimitConfigError
from agents.usage.rates import REFRESH_S, RateLimits, rate_limits

router = APIRouter(route_class=StrictJsonRoute)


class LimitsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["patch", "replace"] = Field(
        default="patch",
        description="patch: merge into the current overrides (null deletes a key); replace: "
        "the overrides become exactly `overrides`",
    )
    overrides: dict[str, Any] = Field(
        description="Keys of rate_limits.toml: user, model, users.<id>, models.<id>, "
        "services.<service>.{user, model, users, models}; each limit has requests_per_minute, "
        "request_burst, tokens_per_minute (0 = no limit)"
    )


def _admin_view(limits: RateLimits) -> dict[str, Any]:
    effective = limits.effective()
    return {
        "enabled": limits.enabled,
        "storage": limits.storage,
        "refresh_s": REFRESH_S,
        "runtime": limits.overrides().as_json(),
        "static": limits.static,
        "effective": effective.doc,
        "limits": effective.table(),
    }


@router.get("/v1/limits")
def my_limits(user: User) -> JSONResponse:
    """The caller's request and token limits per service and what is left of each window."""
    limits = rate_limits()
    body = {
        "user_id": user,
        "enabled": limits.enabled,
        "storage": limits.storage,
        "services": limits.usage(user),
    }
    return JSONResponse(jsonable_encoder(body))


@router.get("/v1/admin/limits")
def admin_limits(user: Admin) -> JSONResponse:
    """Effective limits, their static layers and the runtime overrides (admins only)."""
    return JSONResponse(jsonable_encoder(_admin_view(rate_limits())))


@router.put("/v1/admin/limits")
def set_admin_limits(body: LimitsUpdate, user: Admin) -> JSONResponse:
    """Patch or replace the runtime overrides; every process applies them within ~2 s."""
    limits = rate_limits()
    try:
        limits.set_overrides(body.overrides, replace=body.mode == "replace", by=user)
    except RateLimitConfigError as exc:
        raise ApiError(400, "invalid_rate_limits", str(exc), allowed=exc.allowed) from exc
    return JSONResponse(jsonable_encoder(_admin_view(limits)))
