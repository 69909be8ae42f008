"""Run a strategy written as a `StrategySpec`: compiled to code, backtested in the sandbox.

The model says *what* (the spec's JSON); `agents.quant.compiler.compile_spec` writes the code,
`agents.quant.sandbox.run_in_sandbox` runs it confined, and the result is saved to the user's
backtests like `run_backtest`'s. Every default the compiler took is returned as an assumption,
and what the spec could not express is named, never silently dropped.
"""

from __future__ import annotations

from typing import Any

from langchain.tools import ToolRuntime, tool
from langchain_core.tools import ToolException
from pydantic import ValidationError

from agents.context import Context
from agents.quant.backtests import InvalidMarketDataError, backtest_summary
from agents.quant.compiler import compile_spec
from agents.quant.sandbox import run_in_sandbox
from agents.quant.spec import StrategySpec
from agents.rag.store import RetrievalUnavailableError, get_retriever
from tools.backtests import user_of, valid_symbol

SPEC_EXAMPLE = (
    '{"name": "RsiDip", "entry": {"conditions": [{"left": {"kind": "rsi", "period": 14}, '
    '"op": "below", "value": 30}]}, "exit": {"conditions": [{"left": {"kind": "rsi"}, '
    '"op": "above", "value": 70}]}}'
)


def _spec_errors(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:6]:
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


@tool
def run_strategy_spec(
    spec: dict[str, Any],
    symbol: str,
    runtime: ToolRuntime[Context, Any],
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any] | str:
    """Backtest a custom rule-based strategy on GOOG, EURUSD or BTCUSD, optionally from start
    to end ("YYYY-MM-DD"), and save it. spec: {"name": "EmaUp", "entry": {"conditions":
    [{"left": {"kind": "ema", "period": 12}, "op": "crosses_above", "right": {"kind": "ema",
    "period": 26}}]}}; kind: close, sma, ema, rsi, macd, bb_upper, bb_lower, highest_high or
    lowest_low; op: crosses_above, crosses_below, above or below; a fixed level is "value":
    30 instead of "right"; without "exit" it exits on the opposite of the entry.

    spec: a StrategySpec object, e.g. {"name": "RsiDip", "entry": {"conditions": [{"left":
    {"kind": "rsi", "period": 14}, "op": "below", "value": 30}]}}; stops are stop_loss_pct,
    take_profit_pct, trailing_stop_pct. start / end: optional dates "YYYY-MM-DD".
    """
    user = user_of(runtime)
    sym = valid_symbol(symbol)
    try:
        parsed = StrategySpec.model_validate({**spec, "symbol": sym})
    except ValidationError as exc:
        raise ToolException(
            f"Invalid strategy spec: {_spec_errors(exc)}. Example spec: {SPEC_EXAMPLE}"
        ) from None
    try:
        compiled = compile_spec(parsed)
    except ValueError as exc:
        raise ToolException(f"The spec could not be compiled: {exc}") from exc
    try:
        run = run_in_sandbox(
            compiled.code,
            symbol=sym,
            user_id=user,
            strategy_name=compiled.class_name,
            class_name=compiled.class_name,
            parameters=dict(compiled.parameters),
            start=start or parsed.start,
            end=end or parsed.end,
        )
    except (InvalidMarketDataError, ValueError) as exc:
        raise ToolException(f"The backtest could not run on that data: {exc}") from exc
    if not run.ok or run.result is None:
        raise ToolException(
            f"The compiled strategy failed in the sandbox ({run.error_kind}): {run.error}"
        )
    summary = backtest_summary(run.result)
    summary["assumptions"] = [f"{a.field} = {a.value}: {a.reason}" for a in compiled.assumptions]
    if parsed.unsupported:
        summary["not_expressed"] = list(parsed.unsupported)
    try:
        get_retriever().on_backtest_completed(run.result)
        summary["saved"] = True
    except RetrievalUnavailableError:
        summary["saved"] = False
        summary["note"] = "Could not save it to your backtests: the vector store is unavailable."
    return summary
