"""Backtest tools: fetch, rank and compare the user's backtests, or run a named strategy.

The user always comes from the injected runtime context, never from an argument: a model cannot
read or write another user's store by naming them. Lists of backtests are their labelled facts
(`backtest_facts`: "total return": "439.4%"), one backtest by id its `backtest_summary`; every
number, differences included, is computed here.
"""

from __future__ import annotations

from typing import Any

from langchain.tools import ToolRuntime, tool
from langchain_core.tools import ToolException

from agents.context import Context
from agents.quant.backtests import (
    HEADLINE,
    SYMBOLS,
    BacktestResult,
    Metric,
    backtest_facts,
    backtest_summary,
    strategy_parameters,
)
from agents.quant.backtests import run_backtest as _run_backtest
from agents.quant.corpus import COMMISSION, STRATEGIES
from agents.rag.store import RetrievalUnavailableError, get_retriever, validate_user_id
from tools.metrics import find_metric, metric_names

SEARCH_UNAVAILABLE = "Search over your backtests is unavailable right now (vector store down)."
MAX_K = 10
MAX_SCANNED = 5000
"""top_backtests ranks at most this many of the user's newest backtests."""


def valid_symbol(symbol: str) -> str:
    """The bundled symbol a model named (any case), or a `ToolException` listing them."""
    sym = symbol.strip().upper()
    if sym not in SYMBOLS:
        *most, last = SYMBOLS
        raise ToolException(
            f"{symbol.strip()[:40]!r} is not available: the bundled market data only covers "
            f"{', '.join(most)} and {last}."
        )
    return sym


def user_of(runtime: ToolRuntime[Context, Any]) -> str:
    """The validated user id of the run (the graph's context, set by the caller or auth)."""
    ctx = runtime.context
    if ctx is None:
        raise ValueError("this tool needs a run context with a user_id")
    return validate_user_id(ctx.user_id)


def backtest_item(r: BacktestResult) -> dict[str, Any]:
    """One backtest in a list: its id and its labelled facts."""
    return {"backtest_id": r.id, **backtest_facts(r)}


@tool
def get_backtest(backtest_id: str, runtime: ToolRuntime[Context, Any]) -> dict[str, Any] | str:
    """Details of one of the user's backtests by its id ("bt-..."): strategy, parameters,
    symbol, period and every metric.

    Returns its strategy, parameters, symbol, period and metrics (return, CAGR, Sharpe,
    Sortino, max drawdown, trades, win rate, buy-and-hold return).
    """
    user = user_of(runtime)
    try:
        found = get_retriever().get_backtest(user, backtest_id.strip())
    except RetrievalUnavailableError:
        return SEARCH_UNAVAILABLE
    if found is None:
        raise ToolException(f"No backtest with id {backtest_id!r} in your backtests.")
    return backtest_summary(found)


@tool
def run_backtest(
    strategy_name: str,
    symbol: str,
    runtime: ToolRuntime[Context, Any],
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any] | str:
    """Run a named strategy (SmaCross, EmaCross, RsiMeanReversion, BollingerReversion,
    MacdCross, DonchianBreakout, BuyAndHold, Momentum) on GOOG, EURUSD or BTCUSD and save the
    result; leave parameters out unless the user gives values.

    strategy_name: one of the names above. symbol: GOOG, EURUSD or BTCUSD.
    parameters: only values the user stated, e.g. {"fast": 10, "slow": 30} for SmaCross.
    """
    user = user_of(runtime)
    by_lower = {name.lower(): name for name in STRATEGIES}
    name = by_lower.get(strategy_name.strip().lower())
    if name is None:
        valid = ", ".join(STRATEGIES)
        raise ToolException(f"Unknown strategy {strategy_name!r}; valid strategies are: {valid}.")
    sym = valid_symbol(symbol)
    strategy = STRATEGIES[name]
    params = parameter_values(name, dict(parameters or {}), strategy_parameters(strategy))
    try:
        result = _run_backtest(
            strategy, sym, user_id=user, parameters=params, commission=COMMISSION[sym]
        )
    except (ValueError, TypeError, RuntimeError) as exc:  # the engine's indicators raise these
        raise ToolException(f"The backtest failed with parameters {params}: {exc}") from exc
    summary = backtest_summary(result)
    try:
        get_retriever().on_backtest_completed(result)
        summary["saved"] = True
    except RetrievalUnavailableError:
        summary["saved"] = False
        summary["note"] = "Could not save it to your backtests: the vector store is unavailable."
    return summary


@tool
def top_backtests(
    runtime: ToolRuntime[Context, Any],
    metric: str = "total_return",
    k: int = 5,
    symbol: str | None = None,
    order: str = "best",
) -> dict[str, Any] | str:
    """The user's best backtests by a metric, for "best", "top" or "highest" questions:
    total_return, cagr, sharpe, sortino, max_drawdown (smallest first), win_rate or trades;
    order="worst" for "worst", "lowest" or "lost the most" questions.

    k: how many (1-10). symbol: only this symbol (GOOG, EURUSD, BTCUSD). order: best or worst.
    """
    user = user_of(runtime)
    m = find_metric(metric)
    if m is None or not m.rankable:
        valid = ", ".join(metric_names(rankable_only=True))
        raise ToolException(f"Unknown metric {metric!r} for ranking; valid metrics are: {valid}.")
    if order not in ("best", "worst"):
        raise ToolException(f"Unknown order {order!r}; use best or worst.")
    sign = -1.0 if order == "best" else 1.0
    sym = valid_symbol(symbol) if symbol else None
    try:
        mine = get_retriever().list_backtests(user, limit=MAX_SCANNED)
    except RetrievalUnavailableError:
        return SEARCH_UNAVAILABLE
    pool = [r for r in mine if sym is None or r.symbol == sym]
    ranked = sorted(
        (r for r in pool if getattr(r, m.field) is not None),
        key=lambda r: (sign * float(getattr(r, m.field)), r.id),
    )[: max(1, min(int(k), MAX_K))]
    return {
        "metric": m.label,
        "ranking": order,
        "order": m.order if order == "best" else m.worst_order,
        "symbol": sym,
        "ranked": len(ranked),
        "of_backtests": len(pool),
        "backtests": [{"rank": i, **backtest_item(r)} for i, r in enumerate(ranked, start=1)],
    }


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def parameter_values(name: str, given: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the strategy takes them: a number written as text ("10") is read as
    one, and a whole number given for a whole-number default (a window) is an int. Measured on
    the fresh chat set's tune half: the 0.5B sent `{"exit": "10"}`, and the engine's indicator
    crashed the turn on a window of "10". Text that is no number is a `ToolException`."""
    unknown = [p for p in given if p not in known]
    if unknown:
        valid = ", ".join(known) or "none"
        raise ToolException(
            f"Unknown parameters {unknown} for {name}; its parameters are: {valid}."
        )
    out: dict[str, Any] = {}
    for key, value in given.items():
        default = known[key]
        if isinstance(default, bool) or not isinstance(default, int | float):
            out[key] = value
            continue
        number = _number(value) if isinstance(value, str) else value
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise ToolException(
                f"Parameter {key} of {name} must be a number (its default is {default}); "
                f"got {value!r}."
            )
        whole = isinstance(default, int) and float(number).is_integer()
        out[key] = int(number) if whole else float(number)
    return out


_NEUTRAL = {"initial_cash", "num_trades", "exposure_pct"}
"""Metrics where neither direction is better (compare_backtests names no winner)."""


def _difference(m: Metric, delta: float) -> str:
    """B minus A in the metric's own format; percentages as percentage points."""
    sign = "+" if delta > 0 else "-" if delta < 0 else ""
    size = f"{abs(delta):,.{m.digits}f}"
    if m.money:
        return f"{sign}${size}"
    return f"{sign}{size} percentage points" if m.unit == "%" else f"{sign}{size}"


@tool
def compare_backtests(
    id_a: str, id_b: str, runtime: ToolRuntime[Context, Any]
) -> dict[str, Any] | str:
    """Compare two of the user's backtests side by side, with the differences (B minus A) and
    which one is better on each metric.

    id_a, id_b: backtest ids (from search_my_backtests or top_backtests).
    """
    user = user_of(runtime)
    a_id, b_id = id_a.strip(), id_b.strip()
    if a_id == b_id:
        raise ToolException("Give two different backtest ids to compare.")
    try:
        a, b = (get_retriever().get_backtest(user, i) for i in (a_id, b_id))
    except RetrievalUnavailableError:
        return SEARCH_UNAVAILABLE
    missing = [i for i, r in ((a_id, a), (b_id, b)) if r is None]
    if missing or a is None or b is None:
        raise ToolException(
            f"No backtest with id {', '.join(map(repr, missing))} in your backtests."
        )
    differences: dict[str, str] = {}
    better: dict[str, str] = {}
    for m in HEADLINE:
        va, vb = getattr(a, m.field), getattr(b, m.field)
        if m.field == "initial_cash" or va is None or vb is None:
            continue
        delta = round(float(vb) - float(va), m.digits)
        differences[m.label] = _difference(m, delta)
        if m.field not in _NEUTRAL and delta != 0:
            better[m.label] = "B" if delta > 0 else "A"
    return {
        "A": backtest_item(a),
        "B": backtest_item(b),
        "difference_B_minus_A": differences,
        "better": better,
    }
