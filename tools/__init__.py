"""LangChain tools the graphs call (chatops_advanced first).

Every tool that touches a user's data takes the user from the injected `ToolRuntime` context,
never from an argument the model could set. Tools return compact JSON-serialisable results with
labelled numbers. What the model can fix (an unknown name, symbol, metric or id, a bad date or
spec) raises `ToolException`, which every tool here turns into an *error* result
(`handle_tool_error`, status "error") saying what is valid, so the chat graph lets the model
call again; a vector store that is down degrades to a plain message (nothing to fix).
`summarize` turns any tool's result into sentences in code (the chat graph's answer when a
model's reply cannot be shown).
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

from tools.backtests import compare_backtests, get_backtest, run_backtest, top_backtests
from tools.market_data import market_data
from tools.metrics import explain_metric
from tools.retrieval import list_my_strategies, search_my_backtests
from tools.strategy_spec import run_strategy_spec
from tools.summaries import summarize
from tools.usage import my_spend, my_usage

__all__ = [
    "TOOLS",
    "compare_backtests",
    "explain_metric",
    "get_backtest",
    "list_my_strategies",
    "market_data",
    "my_spend",
    "my_usage",
    "run_backtest",
    "run_strategy_spec",
    "search_my_backtests",
    "summarize",
    "top_backtests",
]

TOOLS: list[BaseTool] = [
    search_my_backtests,
    top_backtests,
    get_backtest,
    compare_backtests,
    run_backtest,
    run_strategy_spec,
    list_my_strategies,
    market_data,
    explain_metric,
    my_usage,
    my_spend,
]

for _t in TOOLS:
    _t.handle_tool_error = True  # ToolException -> an error result the model can act on
