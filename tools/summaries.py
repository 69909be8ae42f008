"""What tool results say: each one in plain sentences, and the check of an answer's numbers.

When a model's reply cannot be shown (JSON, an echoed call, numbers no tool returned), the chat
graph answers with `summarize(tool_name, result)` of the turn's last tool result instead. Every
number there is copied from the result, as written; nothing is computed or invented.

`unsupported_answer_numbers` is the chat graph's number check: numbers about a backtest found
in the tool results go through `agents.quant.narration`'s label-aware check (a Sharpe ratio must
be *a* backtest's Sharpe ratio, a date its period's start or end); every other number must occur
in a tool result with its backtests taken out (counts, scores, market data, dollars) or in the
user's messages (`agents.llm.tool_calls.unsupported_numbers`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from agents.llm.tool_calls import unsupported_numbers
from agents.quant.backtests import HEADLINE
from agents.quant.narration import FactSheet

Summary = Callable[[dict[str, Any]], str]

_KEY_FACTS = ("total return", "CAGR", "Sharpe ratio", "max drawdown", "win rate", "trades")
"""The facts a one-line backtest mentions, in order (the full list is in the tool result)."""


def _fmt(value: Any, digits: int, unit: str, money: bool) -> str:
    if value is None:
        return "n/a"
    if money:
        return f"${float(value):,.{digits}f}"
    if isinstance(value, int) and digits == 0:
        return str(value)
    return f"{float(value):,.{digits}f}{unit}"


def facts_of(item: dict[str, Any]) -> dict[str, str]:
    """Labelled facts of a backtest in a tool result: as given (lists), or rebuilt from a
    `backtest_summary` (field names) with the same formatting as `backtest_facts`."""
    if "total return" in item:
        return {k: str(v) for k, v in item.items()}
    facts = {
        "strategy": str(item.get("strategy", "?")),
        "symbol": str(item.get("symbol", "?")),
        "period": f"{item.get('start')} to {item.get('end')}",
    }
    for m in HEADLINE:
        if m.field in item:
            facts[m.label] = _fmt(item[m.field], m.digits, m.unit, m.money)
    params = item.get("parameters")
    if isinstance(params, dict) and params:
        facts["parameters"] = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return facts


def backtest_line(item: dict[str, Any], facts: tuple[str, ...] = _KEY_FACTS) -> str:
    """`SmaCross on GOOG (2004-08-19 to 2013-03-01): total return 439.4%, ... (id bt-…)`."""
    f = facts_of(item)
    said = ", ".join(f"{k} {f[k]}" for k in facts if k in f and f[k] != "n/a")
    bid = item.get("backtest_id")
    tail = f" (id {bid})" if bid else ""
    head = f"{f.get('strategy', '?')} on {f.get('symbol', '?')} ({f.get('period', '?')})"
    return f"{head}: {said}{tail}"


def _numbered(items: list[dict[str, Any]]) -> str:
    """One backtest a line, numbered at the line's start (list markers are not numbers)."""
    return "".join(f"\n{i}. {backtest_line(it)}." for i, it in enumerate(items, start=1))


def _search(r: dict[str, Any]) -> str:
    hits = r.get("results") or []
    if not hits:
        return "None of your backtests matched that search."
    if any("summary" in h and "total return" not in h for h in hits):
        return "Your matching backtests, best match first:" + "".join(
            f"\n{i}. {h.get('summary', '')} (id {h.get('backtest_id')})"
            for i, h in enumerate(hits, 1)
        )
    return f"I found {len(hits)} of your backtests, best match first: {_numbered(hits)}"


def _top(r: dict[str, Any]) -> str:
    items = r.get("backtests") or []
    where = f" on {r['symbol']}" if r.get("symbol") else ""
    if not items:
        return f"You have no backtests{where} with a {r.get('metric', 'value')} to rank yet."
    return (
        f"Your {'worst' if r.get('ranking') == 'worst' else 'top'} {len(items)} of "
        f"{r.get('of_backtests')} backtests{where} by {r.get('metric')} "
        f"({r.get('order')}): {_numbered(items)}"
    )


def _one(r: dict[str, Any]) -> str:
    all_facts = tuple(m.label for m in HEADLINE if m.label not in ("initial cash",))
    text = f"{backtest_line(r, all_facts)}."
    if r.get("saved") is True:
        text += " It is saved to your backtests."
    elif r.get("saved") is False:
        text += " It could not be saved to your backtests."
    if r.get("assumptions"):
        text += " Assumptions: " + "; ".join(map(str, r["assumptions"])) + "."
    return text


def _compare(r: dict[str, Any]) -> str:
    a, b = r.get("A", {}), r.get("B", {})
    fa, fb = facts_of(a), facts_of(b)
    diffs = r.get("difference_B_minus_A", {})
    parts = [
        f"{label} {fa.get(label, 'n/a')} vs {fb.get(label, 'n/a')} ({diff})"
        for label, diff in diffs.items()
        if label in _KEY_FACTS
    ]
    better = r.get("better", {})
    wins = {w: [k for k, v in better.items() if v == w and k in _KEY_FACTS] for w in ("A", "B")}
    verdict = " ".join(f"{w} is better on {', '.join(ks)}." for w, ks in wins.items() if ks)
    return (
        f"A is {backtest_line(a, ())}; B is {backtest_line(b, ())}. "
        f"A vs B: {'; '.join(parts)}. {verdict}"
    ).strip()


def _metric(r: dict[str, Any]) -> str:
    return f"{r.get('metric')}: {r.get('definition')} {r.get('how_to_read')}"


def _strategies(r: dict[str, Any]) -> str:
    mine = r.get("my_strategies") or []
    runnable = ", ".join(r.get("runnable_named_strategies") or [])
    if not mine:
        return f"You have no saved strategies yet. I can run these named strategies: {runnable}."
    names = ", ".join(
        f"{s.get('strategy_name')}" + (f" ({s['symbol']})" if s.get("symbol") else "") for s in mine
    )
    return f"Your saved strategies: {names}. I can also run these named strategies: {runnable}."


def _market(r: dict[str, Any]) -> str:
    v = r.get("annualized_volatility_pct")
    vol = "too few bars for a volatility" if v is None else f"with an annualised volatility of {v}%"
    return (
        f"{r.get('symbol')} data runs from {r.get('first_date')} to {r.get('last_date')} "
        f"({r.get('bars')} bars). The close went from {r.get('first_close')} to "
        f"{r.get('last_close')}, a return of {r.get('return_pct')}%, {vol}; the high was "
        f"{r.get('high')} and the low {r.get('low')}"
        + (
            f"; the highest close was {r['highest_close']} and the lowest {r['lowest_close']}."
            if "highest_close" in r
            else "."
        )
        + (f" Note: {r['note']}." if r.get("note") else "")
    )


def _usage(r: dict[str, Any]) -> str:
    since = f" since {r['since']}" if r.get("since") else ""
    items = r.get("by_service_model") or []
    if not items:
        return f"You have made no model calls{since}."
    parts = "; ".join(
        f"{i.get('service')} with {i.get('model')}: {i.get('calls')} calls, "
        f"{i.get('input_tokens')} input and {i.get('output_tokens')} output tokens, "
        f"${i.get('cost_usd')}"
        for i in items
    )
    return (
        f"You made {r.get('total_calls')} model calls{since}, costing ${r.get('total_cost_usd')} "
        f"in total: {parts}."
    )


def _spend(r: dict[str, Any]) -> str:
    b = r.get("budget", {})
    text = (
        f"Since {r.get('since')} you made {r.get('calls')} model calls costing "
        f"${r.get('cost_usd')} "
        f"(${r.get('list_price_usd')} at list prices). Today you spent ${b.get('spent_today_usd')}"
        f", and ${b.get('held_by_calls_in_flight_usd')} is held by calls in flight."
    )
    others = "".join(
        f" Budget for {o.get('budget')}: {o.get('remaining')} left of {o.get('limit')}"
        f" until {o.get('resets_at')}."
        for o in r.get("other_budgets") or []
        if isinstance(o, dict)
    )
    if b.get("daily_budget_usd") == "no budget set":
        return text + (
            " You have no daily budget set." + others if others else " You have no budget set."
        )
    return (
        text
        + (
            f" Your daily budget is ${b.get('daily_budget_usd')}, with "
            f"${b.get('remaining_today_usd')} left until {b.get('budget_resets')}."
        )
        + others
    )


SUMMARIES: dict[str, Summary] = {
    "search_my_backtests": _search,
    "top_backtests": _top,
    "get_backtest": _one,
    "run_backtest": _one,
    "run_strategy_spec": _one,
    "compare_backtests": _compare,
    "explain_metric": _metric,
    "list_my_strategies": _strategies,
    "market_data": _market,
    "my_usage": _usage,
    "my_spend": _spend,
}


def _generic(name: str, value: Any) -> str:
    if isinstance(value, dict):
        said = "; ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in value.items() if not isinstance(v, dict | list)
        )
        return f"{name} returned {said}." if said else f"{name} returned no simple values."
    return f"{name} returned {json.dumps(value, default=str)[:500]}."


def summarize(tool_name: str, content: str) -> str:
    """The result of `tool_name` (a ToolMessage's content: JSON or a sentence) as sentences."""
    text = content.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text  # tools answer problems in sentences already
    if isinstance(value, str):
        return value
    fn = SUMMARIES.get(tool_name)
    if fn is not None and isinstance(value, dict):
        try:
            return fn(value)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # an unexpected shape: say what there is, plainly
    return _generic(tool_name, value)


# --------------------------------------------------------------------------------------------
# The number check of an answer
# --------------------------------------------------------------------------------------------

_ID = re.compile(r"\b[a-z]{2,5}-[0-9a-f]{8,}\b")
"""Backtest and strategy ids (`bt-0776cc4f…`): names, not numbers."""
_KEPT = ("backtest_id", "rank", "score")
"""What stays of a backtest in the residual result (the rest is checked by label)."""


def is_backtest(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and "backtest_id" in value
        and ("total return" in value or "total_return_pct" in value)
    )


def split_backtests(value: Any) -> tuple[list[dict[str, Any]], Any]:
    """The backtests inside a decoded tool result, and the result with only their ids left."""
    if is_backtest(value):
        return [value], {k: value[k] for k in _KEPT if k in value}
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        rest: dict[str, Any] = {}
        for k, v in value.items():
            inner, rest[k] = split_backtests(v)
            found += inner
        return found, rest
    if isinstance(value, list):
        items = []
        for v in value:
            inner, left = split_backtests(v)
            found += inner
            items.append(left)
        return found, items
    return found, value


def unsupported_answer_numbers(
    answer: str, results: Iterable[str], user_texts: Iterable[str]
) -> list[str]:
    """The numbers of `answer` no tool result (label-aware for backtests) or user message has."""
    backtests: list[dict[str, Any]] = []
    users = list(user_texts)
    rest: list[str] = list(users)
    for content in results:
        try:
            value = json.loads(content)
        except ValueError:
            rest.append(content)
            continue
        found, residual = split_backtests(value)
        backtests += found
        rest.append(json.dumps(residual, default=str))
    text = _ID.sub(" ", answer)
    if not backtests:
        return unsupported_numbers(text, rest)
    sheets = [FactSheet(facts_of(b), request=" ".join(users)) for b in backtests]
    bad: list[str] = []
    for checks in zip(*(sheet.check(text) for sheet in sheets), strict=True):
        if not any(c.ok for c in checks) and unsupported_numbers(checks[0].text, rest):
            bad.append(checks[0].text)
    return list(dict.fromkeys(bad))
