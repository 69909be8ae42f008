"""REST routes of budgets, alerts and the month's projection (`agents.usage.budgets`).

`GET/PUT/DELETE /v1/admin/budgets` (admins only, 403 otherwise) list, set and remove the
budgets stored in the ledger database; `GET /v1/budgets` is the caller's applicable budgets with
what each period spent, what calls in flight hold and what remains; `GET /v1/alerts` the
caller's alerts (admins: `all_users=true` for everyone's); `GET /v1/usage/projection` the
month-to-date spend per service and its linear projection (the caller's; admins
`all_users=true`). Mounted by `agents.serve.api` (`app.include_router(router)`); `ApiError` and
`current_user` are imported from there when a route runs, since api.py imports this module.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from agents.serve.auth import is_admin
from agents.serve.errors import ApiError, User
from agents.serve.strict_json import StrictJsonRoute
from agents.settings import get_settings
from agents.usage import budgets
from agents.usage.alerts import list_alerts
from agents.usage.ledger import get_ledger
from agents.usage.limits import budget_nanousd
from agents.usage.projection import project_month

router = APIRouter(route_class=StrictJsonRoute, tags=["budgets"])


def _error(status: int, type_: str, message: str, allowed: list[str] | None = None) -> ApiError:
    return ApiError(status, type_, message, allowed=allowed)


Caller = User


def _admin(user: str) -> None:
    if not is_admin(user):
        raise _error(
            403, "forbidden", "only admin users (QUANT_GENAI_ADMIN_USERS) may read or set budgets"
        )


def _everyone(user: str, all_users: bool, what: str) -> str | None:
    """None (everyone) for an admin asking for all users; the caller otherwise."""
    if all_users and not is_admin(user):
        raise _error(403, "forbidden", f"only admin users may read every user's {what}")
    return None if all_users else user


def _naive_utc(since: date | datetime | None) -> datetime | None:
    if since is None or not isinstance(since, datetime):
        return None if since is None else datetime(since.year, since.month, since.day)
    if since.tzinfo is None:
        return since
    try:
        return since.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is before year 1 in UTC
        return datetime.min


def _json(data: Any) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data))


def _budget(**fields: Any) -> budgets.Budget:
    try:
        return budgets.make_budget(**fields)
    except budgets.BudgetError as exc:
        raise _error(400, "invalid_budget", str(exc), exc.allowed) from exc


class BudgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = Field(description="user, service, user_service or global")
    period: str = Field(description="day or month (UTC)")
    unit: str = Field(description="usd (billed cost) or tokens (input + output, every route)")
    limit: float = Field(description="USD for unit usd, a whole number of tokens for tokens")
    user_id: str | None = Field(default=None, description="For scopes user and user_service")
    service: str | None = Field(default=None, description="For scopes service and user_service")


@router.get("/v1/admin/budgets")
def admin_list_budgets(
    user: Caller, user_id: str | None = None, service: str | None = None
) -> JSONResponse:
    """Every stored budget (optionally only those naming a user or a service), with status."""
    _admin(user)
    try:
        user_id = budgets.check_name("user id", user_id)
        service = budgets.check_name("service", service)
    except budgets.BudgetError as exc:
        raise _error(400, "invalid_budget", str(exc)) from exc
    engine = get_ledger().engine
    found = budgets.list_budgets(engine, user_id=user_id, service=service)
    s = get_settings()
    return _json(
        {
            "budgets": budgets.status(engine, found),
            "environment_defaults": {
                "daily_budget_usd": s.daily_budget_usd,
                "user_budgets_usd": s.user_budgets_usd,
                "note": "per-user daily USD budgets; a stored user/day/usd budget overrides",
            },
        }
    )


@router.put("/v1/admin/budgets")
def admin_set_budget(body: BudgetBody, user: Caller) -> JSONResponse:
    """Create or replace the budget of that scope, user, service, period and unit."""
    _admin(user)
    budget = _budget(**body.model_dump())
    engine = get_ledger().engine
    stored = budgets.set_budget(engine, budget, by=user)
    return _json({"budget": budgets.status(engine, [stored])[0]})


@router.delete("/v1/admin/budgets")
def admin_delete_budget(
    user: Caller,
    scope: str,
    period: str,
    unit: str,
    user_id: str | None = None,
    service: str | None = None,
) -> JSONResponse:
    """Remove a stored budget (404 when there is none; environment defaults stay)."""
    _admin(user)
    fields = {"scope": scope, "period": period, "unit": unit, "user_id": user_id}
    budget = _budget(**fields, service=service, limit=0)
    if not budgets.delete_budget(get_ledger().engine, budget):
        raise _error(404, "budget_not_found", f"no stored {scope} {period} {unit} budget there")
    return _json({"deleted": budget.as_json() | {"limit": None}})


@router.get("/v1/budgets")
def my_budgets(user: Caller) -> JSONResponse:
    """The budgets the caller's calls count against, with spent, held and remaining."""
    engine = get_ledger().engine
    found = budgets.budgets_of_user(engine, user, budget_nanousd(user, get_settings()))
    return _json({"user_id": user, "budgets": budgets.status(engine, found)})


@router.get("/v1/alerts")
def alerts(
    user: Caller,
    since: Annotated[date | datetime | None, Query(description="ISO date or datetime")] = None,
    all_users: Annotated[bool, Query(description="Every user's alerts (admins only)")] = False,
) -> JSONResponse:
    """Budget alerts, newest first: the caller's (their user budgets), or everyone's."""
    who = _everyone(user, all_users, "alerts")
    found = list_alerts(get_ledger().engine, user_id=who, since=_naive_utc(since))
    return _json({"user_id": who, "alerts": found})


@router.get("/v1/usage/projection")
def projection(
    user: Caller,
    all_users: Annotated[bool, Query(description="Every user's usage (admins only)")] = False,
) -> JSONResponse:
    """This month's spend and tokens per service and the month's linear projection."""
    who = _everyone(user, all_users, "usage")
    out = project_month(get_ledger(), user_id=who).as_json()
    return _json({"user_id": who, **out})
