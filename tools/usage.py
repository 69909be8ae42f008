"""Usage tools: the user's own tokens, spend and daily budget, from the cost ledger."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from langchain.tools import ToolRuntime, tool
from langchain_core.tools import ToolException

from agents.context import Context
from agents.settings import get_settings
from agents.usage import budgets
from agents.usage.ledger import get_ledger, usage_report
from agents.usage.limits import amount_text, budget_nanousd, window_start
from tools.backtests import user_of

NO_BUDGET = "no budget set"


def _since(since: str | None) -> date | None:
    """The date a `since` argument names (a `ToolException` if it names none)."""
    if not since:
        return None
    try:
        return date.fromisoformat(since.strip()[:10])
    except ValueError:
        raise ToolException(f"Could not read since={since!r}; use YYYY-MM-DD.") from None


def _dollars(nanousd: int) -> Decimal:
    return Decimal(nanousd) / Decimal(10**9)


@tool
def my_usage(runtime: ToolRuntime[Context, Any], since: str | None = None) -> dict[str, Any] | str:
    """The user's model usage and cost in USD since their first call (or since a date the
    user names): calls, tokens and cost per service and model.

    since: optional start date "YYYY-MM-DD" (leave it out for "so far" or "in total").
    list_price_usd is what the same tokens would cost at catalog prices (calls served by the
    free local model cost $0).
    """
    user = user_of(runtime)
    start = _since(since)
    rows = usage_report(user_id=user, since=start, group_by=("service", "model"))
    items = [
        {
            "service": r.service,
            "model": r.model,
            "calls": r.calls,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cost_usd": f"{r.cost_usd:.6f}",
            "list_price_usd": f"{r.list_price_usd:.6f}",
        }
        for r in rows
    ]
    total = sum((r.cost_usd for r in rows), Decimal(0))
    return {
        "since": start.isoformat() if start else None,
        "by_service_model": items,
        "total_calls": sum(r.calls for r in rows),
        "total_cost_usd": f"{total:.6f}",
    }


@tool
def my_spend(runtime: ToolRuntime[Context, Any], since: str | None = None) -> dict[str, Any] | str:
    """What the user spent today (UTC) and their budgets: the daily budget, what is left of it
    and what calls in flight hold ("no budget set" when there is none), and every other budget
    their calls count against (monthly, per service, tokens) with what is left of each.

    since: optional start date "YYYY-MM-DD" for the total (default: today, UTC).
    """
    user = user_of(runtime)
    start = _since(since)
    today = window_start()
    rows = usage_report(user_id=user, since=start or today)
    today_rows = rows if start is None else usage_report(user_id=user, since=today)
    spent_today = sum((r.cost_usd for r in today_rows), Decimal(0))
    held = _dollars(get_ledger().held_nanousd(user))
    engine = get_ledger().engine
    found = budgets.budgets_of_user(engine, user, budget_nanousd(user, get_settings()))
    daily = next((b for b in found if b.key == f"user|{user}||day|usd"), None)
    status: dict[str, Any] = {
        "spent_today_usd": f"{spent_today:.6f}",
        "held_by_calls_in_flight_usd": f"{held:.6f}",
        "daily_budget_usd": NO_BUDGET if daily is None else f"{_dollars(daily.limit):.6f}",
    }
    if daily is not None:
        left = max(_dollars(daily.limit) - spent_today - held, Decimal(0))
        status["remaining_today_usd"] = f"{left:.6f}"
        status["budget_resets"] = "00:00 UTC"
    others = [b for b in found if b is not daily]
    return {
        "since": (start or today.date()).isoformat(),
        "calls": sum(r.calls for r in rows),
        "cost_usd": f"{sum((r.cost_usd for r in rows), Decimal(0)):.6f}",
        "list_price_usd": f"{sum((r.list_price_usd for r in rows), Decimal(0)):.6f}",
        "budget": status,
        "other_budgets": [
            _other(b, st) for b, st in zip(others, budgets.status(engine, others), strict=True)
        ],
    }


def _other(b: budgets.Budget, st: dict[str, Any]) -> dict[str, str]:
    """One more budget the user's calls count against, its amounts as text in its unit."""
    remaining = round(st["remaining"] * 1e9) if b.unit == "usd" else st["remaining"]
    return {
        "budget": f"{b.label}, per {b.period}, in {'USD' if b.unit == 'usd' else 'tokens'}",
        "limit": amount_text(b.unit, b.limit),
        "remaining": amount_text(b.unit, remaining),
        "resets_at": st["resets_at"][:10],
    }
