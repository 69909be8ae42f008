"""Backtest tools: fetch one of the user's backtests, or run a named strategy on bundled data.

The user always comes from the injected runtime context, never from an argument: a model cannot
read or write another user's store by naming them.
"""

from __future__ import annotations

from typing import Any

from langchain.tools import ToolRuntime, tool

from agents.context import Context
from agents.quant.backtests import SYMBOLS, backtest_summary, strategy_parameters
from agents.quant.backtests import run_backtest as _run_backtest
from agents.quant.corpus import COMMISSION, STRATEGIES
from agents.rag.store import RetrievalUnavailableError, get_retriever, validate_user_id

SEARCH_UNAVAILABLE = "Search over your backtests is unavailable right now (vector store down)."


def user_of(runtime: ToolRuntime[Context, Any]) -> str:
    """The validated user id of the run (the graph's context, set by the caller or auth)."""
    ctx = runtime.context
    if ctx is None:
        raise ValueError("this tool needs a run context with a user_id")
    return validate_user_id(ctx.user_id)


@tool
def get_backtest(backtest_id: str, runtime: ToolRuntime[Context, Any]) -> dict[str, Any] | str:
    """Get one of the user's past backtests by its id (as returned by search_my_backtests).

    Returns its strategy, parameters, symbol, period and metrics (return, CAGR, Sharpe,
    Sortino, max drawdown, trades, win rate, buy-and-hold return).
    """
    user = user_of(runtime)
    try:
        found = get_retriever().get_backtest(user, backtest_id.strip())
    except RetrievalUnavailableError:
        return SEARCH_UNAVAILABLE
    if found is None:
        return f"No backtest with id {backtest_id!r} in your backtests."
    return backtest_summary(found)


@tool
def run_backtest(
    strategy_name: str,
    symbol: str,
    runtime: ToolRuntime[Context, Any],
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any] | str:
    """Run a named strategy on bundled market data and save the result to the user's backtests.

    strategy_name: one of SmaCross, EmaCross, RsiMeanReversion, BollingerReversion, MacdCross,
    DonchianBreakout, BuyAndHold, Momentum. symbol: GOOG, EURUSD or BTCUSD.
    parameters: optional overrides of the strategy's parameters, e.g. {"fast": 10, "slow": 30}.
    """
    user = user_of(runtime)
    by_lower = {name.lower(): name for name in STRATEGIES}
    name = by_lower.get(strategy_name.strip().lower())
    if name is None:
        return f"Unknown strategy {strategy_name!r}; valid strategies are: {', '.join(STRATEGIES)}."
    sym = symbol.strip().upper()
    if sym not in SYMBOLS:
        return f"Unknown symbol {symbol!r}; valid symbols are: {', '.join(SYMBOLS)}."
    strategy = STRATEGIES[name]
    params = dict(parameters or {})
    known = strategy_parameters(strategy)
    unknown = [p for p in params if p not in known]
    if unknown:
        valid = ", ".join(known) or "none"
        return f"Unknown parameters {unknown} for {name}; its parameters are: {valid}."
    try:
        result = _run_backtest(
            strategy, sym, user_id=user, parameters=params, commission=COMMISSION[sym]
        )
    except (ValueError, TypeError) as exc:  # e.g. bad parameter values
        return f"The backtest failed: {exc}"
    summary = backtest_summary(result)
    try:
        get_retriever().on_backtest_completed(result)
        summary["saved"] = True
    except RetrievalUnavailableError:
        summary["saved"] = False
        summary["note"] = "Could not save it to your backtests: the vector store is unavailable."
    return summary
