"""Retrieval tools: RAG over the user's own backtests and strategies (per-user Chroma stores)."""

from __future__ import annotations

from typing import Any

from langchain.tools import ToolRuntime, tool

from agents.context import Context
from agents.quant.backtests import BacktestResult
from agents.quant.corpus import STRATEGIES
from agents.rag.store import RetrievalUnavailableError, RetrievedContext, get_retriever
from tools.backtests import MAX_K, SEARCH_UNAVAILABLE, backtest_item, user_of


def _hit(h: RetrievedContext) -> dict[str, Any]:
    """A search hit: its id, similarity and labelled facts (the rendered text if it has none)."""
    raw = h.metadata.get("result_json")
    if not raw:
        return {"backtest_id": h.id, "score": round(h.score, 3), "summary": h.content}
    item = backtest_item(BacktestResult.model_validate_json(str(raw)))
    return {"backtest_id": h.id, "score": round(h.score, 3), **item}


@tool
def search_my_backtests(
    query: str,
    runtime: ToolRuntime[Context, Any],
    k: int = 5,
    symbol: str | None = None,
    min_sharpe: float | None = None,
) -> dict[str, Any] | str:
    """Find the user's past backtests about a strategy, indicator or idea ("find / show my
    momentum backtests"), best match first.

    query: what to look for, e.g. "momentum on GOOG" or "low drawdown trend following".
    k: how many results (1-10). symbol: only this symbol (GOOG, EURUSD, BTCUSD).
    min_sharpe: only backtests with at least this Sharpe ratio.
    Each result has a backtest_id (for get_backtest), a similarity score and the backtest's
    labelled facts (strategy, symbol, period, total return, Sharpe ratio, max drawdown ...).
    """
    user = user_of(runtime)
    k = max(1, min(int(k), MAX_K))
    try:
        hits = get_retriever().search_similar_backtests(
            user,
            query,
            k,
            symbol=symbol.strip().upper() if symbol else None,
            min_sharpe=min_sharpe,
        )
    except RetrievalUnavailableError:
        return SEARCH_UNAVAILABLE
    return {
        "results": [_hit(h) for h in hits],
        "count": len(hits),
    }


@tool
def list_my_strategies(runtime: ToolRuntime[Context, Any]) -> dict[str, Any] | str:
    """Which strategies the user has saved and which named strategies can be run, for "what
    strategies do I have / can I run"."""
    user = user_of(runtime)
    try:
        saved = get_retriever().list_strategies(user)
    except RetrievalUnavailableError:
        return SEARCH_UNAVAILABLE + f" Runnable named strategies: {', '.join(STRATEGIES)}."
    return {
        "my_strategies": [
            {
                k: v
                for k, v in s.items()
                if k in ("strategy_name", "strategy_id", "symbol", "backtest_id")
            }
            for s in saved
        ],
        "runnable_named_strategies": list(STRATEGIES),
    }
