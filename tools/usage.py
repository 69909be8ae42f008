"""Usage tool: the user's own tokens and spend from the cost ledger."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from langchain.tools import ToolRuntime, tool

from agents.context import Context
from agents.usage.ledger import usage_report
from tools.backtests import user_of


@tool
def my_usage(runtime: ToolRuntime[Context, Any], since: str | None = None) -> dict[str, Any] | str:
    """The user's model usage and spend, per service and model: calls, tokens and cost in USD.

    since: optional start date "YYYY-MM-DD". list_price_usd is what the same tokens would
    cost at catalog prices (calls served by the free local model cost $0).
    """
    user = user_of(runtime)
    start: date | None = None
    if since:
        try:
            start = date.fromisoformat(since.strip()[:10])
        except ValueError:
            return f"Could not read since={since!r}; use YYYY-MM-DD."
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
