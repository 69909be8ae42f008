"""The rich tables and JSON shapes shared by the CLI (`agents.serve.cli`) and the demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from agents.llm.catalog import SERVICE_MODEL_POLICIES, ModelConfig, get_policy
from agents.usage.ledger import UsageRow


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _rate(value: Decimal | None) -> str:
    return "unpriced" if value is None else f"{value:g}"


def model_json(m: ModelConfig) -> dict[str, Any]:
    d = m.model_dump(mode="json")
    d["capabilities"] = sorted(d["capabilities"])
    for k in ("input", "cached_input", "output"):
        v = getattr(m, k)
        d[k] = None if v is None else float(v)
    return d


def models_json(listing: Mapping[str, Sequence[ModelConfig]]) -> dict[str, Any]:
    """Each service's policy and the models it may use: `{service: {"policy", "models"}}`."""
    return {
        s: {"policy": get_policy(s).model_dump(mode="json"), "models": [model_json(m) for m in ms]}
        for s, ms in listing.items()
    }


def print_models(console: Console, listing: Mapping[str, Sequence[ModelConfig]]) -> None:
    """One table per service: its policy in the title, its models with prices per 1M tokens."""
    for s, ms in listing.items():
        pol = SERVICE_MODEL_POLICIES[s]
        title = (
            f"{s}: tiers {', '.join(sorted(t.value for t in pol.allowed_tiers))}; "
            f"needs {', '.join(sorted(c.value for c in pol.required_capabilities))}; "
            f"default {pol.default_model}"
        )
        t = Table(title=title, title_justify="left")
        for col in ("model", "tier", "in $/1M", "cached $/1M", "out $/1M", "context", "max out"):
            t.add_column(col, justify="left" if col in ("model", "tier") else "right")
        for m in ms:
            star = " *" if m.id == pol.default_model else ""
            t.add_row(
                m.id + star,
                m.tier.value,
                _rate(m.input),
                _rate(m.cached_input_rate),
                _rate(m.output),
                f"{m.context_window:,}",
                f"{m.max_output_tokens:,}",
            )
        console.print(t)


def usage_rows_json(rows: Sequence[UsageRow]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        d = r.model_dump(exclude_none=True)
        d["cost_usd"] = float(r.cost_usd)
        d["list_price_usd"] = float(r.list_price_usd)
        out.append(d)
    return out


def print_usage_table(
    console: Console, rows: Sequence[UsageRow], by: str = "model", title: str = "Usage"
) -> None:
    t = Table(title=title, title_justify="left")
    cols = [by, "calls", "input", "cached in", "output", "reasoning", "cost", "list price"]
    for c in cols:
        t.add_column(c, justify="left" if c == by else "right")
    for r in rows:
        t.add_row(
            str(getattr(r, by)),
            f"{r.calls:,}",
            f"{r.input_tokens:,}",
            f"{r.cached_input_tokens:,}",
            f"{r.output_tokens:,}",
            f"{r.reasoning_tokens:,}",
            _usd(r.cost_usd)
            + (f" (+{r.unpriced_calls} unpriced)" if r.unpriced_calls else "")
            + (f" ({r.estimated_calls} estimated)" if r.estimated_calls else ""),
            _usd(r.list_price_usd),
        )
    if rows:
        t.add_section()
        t.add_row(
            "total",
            f"{sum(r.calls for r in rows):,}",
            f"{sum(r.input_tokens for r in rows):,}",
            f"{sum(r.cached_input_tokens for r in rows):,}",
            f"{sum(r.output_tokens for r in rows):,}",
            f"{sum(r.reasoning_tokens for r in rows):,}",
            _usd(sum((r.cost_usd for r in rows), Decimal(0))),
            _usd(sum((r.list_price_usd for r in rows), Decimal(0))),
        )
    console.print(t)


def _amount(unit: str, value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"${value:.6f}" if unit == "usd" else f"{int(value):,} tokens"


def _whom(d: Mapping[str, Any]) -> str:
    parts = [f"user {d['user_id']}" if d.get("user_id") else "", d.get("service") or ""]
    return " / ".join(p for p in parts if p) or "everyone"


def print_budgets(console: Console, rows: Sequence[Mapping[str, Any]], title: str) -> None:
    """Budgets with their status (`agents.usage.budgets.status`)."""
    t = Table(title=title, title_justify="left")
    for col in ("scope", "whom", "period", "unit", "limit", "spent", "held", "remaining", "from"):
        t.add_column(
            col, justify="right" if col in ("limit", "spent", "held", "remaining") else "left"
        )
    for b in rows:
        u = b["unit"]
        t.add_row(
            b["scope"],
            _whom(b),
            b["period"],
            u,
            *(_amount(u, b.get(k)) for k in ("limit", "spent", "held", "remaining")),
            b.get("source", "stored"),
        )
    console.print(t)


def print_alerts(console: Console, rows: Sequence[Mapping[str, Any]], title: str) -> None:
    """Budget alerts (`agents.usage.alerts.list_alerts`), newest first."""
    t = Table(title=title, title_justify="left")
    for col in ("when (UTC)", "scope", "whom", "budget", "threshold", "spent", "webhook"):
        t.add_column(col)
    for a in rows:
        u = a["unit"]
        t.add_row(
            a["ts"][:19],
            a["scope"],
            _whom(a),
            f"{a['period']} {_amount(u, a['limit'])}",
            f"{a['threshold_pct']:g}%",
            f"{_amount(u, a['spent'])} ({a['percent_used']:g}%)",
            a["webhook_status"],
        )
    console.print(t)


def print_projection(console: Console, p: Mapping[str, Any]) -> None:
    """The month's spend per service and its projection (`MonthProjection.as_json`)."""
    title = (
        f"{p['month']}: {p['days_elapsed']:.2f} of {p['days_in_month']} days elapsed; "
        f"projected {p['method']}"
    )
    t = Table(title=title, title_justify="left")
    for col in ("service", "calls", "tokens", "cost so far", "projected tokens", "projected cost"):
        t.add_column(col, justify="left" if col == "service" else "right")
    for s in p["services"]:
        t.add_row(
            str(s["service"]),
            f"{s['calls']:,}",
            f"{s['tokens']:,}",
            f"${s['cost_usd']:.6f}",
            f"{s['projected_tokens']:,}",
            f"${s['projected_cost_usd']:.6f}",
        )
    t.add_section()
    t.add_row(
        "total", "", "", f"${p['total_cost_usd']:.6f}", "", f"${p['projected_total_usd']:.6f}"
    )
    console.print(t)
