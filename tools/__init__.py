"""LangChain tools the graphs call (chatops_advanced first).

Every tool that touches a user's data takes the user from the injected `ToolRuntime` context,
never from an argument the model could set. Tools return compact JSON-serialisable results, and
a vector store that is down degrades to a message rather than an exception.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

from tools.backtests import get_backtest, run_backtest
from tools.market_data import market_data
from tools.retrieval import list_my_strategies, search_my_backtests
from tools.usage import my_usage

__all__ = [
    "TOOLS",
    "get_backtest",
    "list_my_strategies",
    "market_data",
    "my_usage",
    "run_backtest",
    "search_my_backtests",
]

TOOLS: list[BaseTool] = [
    search_my_backtests,
    get_backtest,
    run_backtest,
    list_my_strategies,
    market_data,
    my_usage,
]
