"""The parent's side of the result channel: check the child's trades, compute the result itself.

User code runs in the same process as the child's reporter, so nothing the child says can be
trusted: whatever the reporter can write, user code can write (with the AST layer bypassed it can
reach the result pipe's descriptor, or patch the engine). So the child reports only its closed
trades and the indicator warm-up; this module, in the parent, with the parent's own copy of the
bars,

* refuses a report that no run of the engine could produce: malformed rows, bars outside the
  data or exiting before they enter, fills outside the bar's low..high range, sizes that are not
  whole multiples of the traded unit, more trades than the data can hold;
* rebuilds the equity curve bar by bar exactly as backtesting.py's broker books it (cash minus
  entry commissions, plus realized P/L at exit net of exit commission, plus open positions marked
  at the close; all zero from the first bar equity reaches zero), and computes every statistic
  with backtesting.py's own `compute_stats`;
* takes identity from the request, never from the child: user, strategy name, code, parameters,
  symbol, dates, cash, commission, the data fingerprint and the id.

What is left: a forged report of *plausible* trades is indistinguishable from a strategy that
traded so — e.g. an "oracle" buying every low and selling every high. That changes nothing but
that user's own numbers, which their code decides anyway (docs/sandbox.md).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from backtesting._stats import compute_stats

from agents.quant.backtests import (
    BacktestResult,
    _compact_curve,
    _fractional_unit,
    _metrics,
    _to_date,
    data_fingerprint,
    make_backtest_id,
)

MAX_TRADES_PER_BAR = 20
_PRICE_TOLERANCE = 1e-9
_UNIT_TOLERANCE = 1e-6


class ForgedResultError(ValueError):
    """The child's report cannot come from a run of the engine on this data."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            if math.isfinite(value):
                return float(value)
    raise ForgedResultError(f"{what} is not a finite number: {str(value)[:40]}")


def _bar(value: Any, n: int, what: str) -> int:
    f = _number(value, what)
    if f != int(f) or not 0 <= int(f) < n:
        raise ForgedResultError(f"{what} {value!r} is not a bar of the data (0..{n - 1})")
    return int(f)


def check_trades(frame: pd.DataFrame, rows: Any, cash: float) -> np.ndarray:
    """The trades as an (n, 5) float array, or ForgedResultError naming the first impossibility."""
    n = len(frame)
    if not isinstance(rows, list):
        raise ForgedResultError("trades are not a list")
    if len(rows) > MAX_TRADES_PER_BAR * n:
        raise ForgedResultError(f"{len(rows)} trades on {n} bars")
    low = frame["Low"].to_numpy(dtype=float)
    high = frame["High"].to_numpy(dtype=float)
    unit = _fractional_unit(frame, cash)
    out = np.zeros((len(rows), 5))
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 5:
            raise ForgedResultError(f"trade {i} is not [size, entry bar, exit bar, prices]")
        size = _number(row[0], f"trade {i} size")
        entry, exit_ = _bar(row[1], n, f"trade {i} entry"), _bar(row[2], n, f"trade {i} exit")
        if size == 0 or exit_ < entry or entry < 1:
            raise ForgedResultError(f"trade {i}: size {size}, bars {entry}..{exit_}")
        units = abs(size) / unit
        if abs(units - round(units)) > _UNIT_TOLERANCE * max(1.0, units):
            raise ForgedResultError(f"trade {i}: size {size} is not a multiple of {unit:g}")
        prices = []
        for bar, value, what in ((entry, row[3], "entry"), (exit_, row[4], "exit")):
            price = _number(value, f"trade {i} {what} price")
            lo, hi = low[bar] * (1 - _PRICE_TOLERANCE), high[bar] * (1 + _PRICE_TOLERANCE)
            if not lo <= price <= hi:
                raise ForgedResultError(
                    f"trade {i}: {what} price {price:g} outside bar {bar}'s range "
                    f"{low[bar]:g}..{high[bar]:g}"
                )
            prices.append(price)
        out[i] = (size, entry, exit_, *prices)
    return out


def equity_curve(frame: pd.DataFrame, trades: np.ndarray, cash: float, commission: float) -> Any:
    """backtesting.py's equity, bar by bar, from the closed trades (see the module docstring)."""
    n = len(frame)
    close = frame["Close"].to_numpy(dtype=float)
    size, entry, exit_ = trades[:, 0], trades[:, 1].astype(int), trades[:, 2].astype(int)
    entry_price, exit_price = trades[:, 3], trades[:, 4]
    booked = np.zeros(n + 1)  # cash changes, as differences at the bar they happen
    np.add.at(booked, entry, -commission * np.abs(size) * entry_price)
    realized = size * (exit_price - entry_price) - commission * np.abs(size) * exit_price
    np.add.at(booked, exit_, realized)
    held = np.zeros(n + 1)  # open size and its cost, entry bar inclusive, exit bar exclusive
    cost = np.zeros(n + 1)
    np.add.at(held, entry, size)
    np.add.at(held, exit_, -size)
    np.add.at(cost, entry, size * entry_price)
    np.add.at(cost, exit_, -size * entry_price)
    equity = cash + np.cumsum(booked)[:n] + np.cumsum(held)[:n] * close - np.cumsum(cost)[:n]
    broke = np.flatnonzero(equity <= 0)
    if len(broke):
        equity[broke[0] :] = 0.0
    return equity


def stats_from_trades(
    frame: pd.DataFrame, trades: np.ndarray, warmup: int, cash: float, commission: float
) -> pd.Series:
    """backtesting.py's statistics of these trades on this data."""
    size, entry, exit_ = trades[:, 0], trades[:, 1].astype(int), trades[:, 2].astype(int)
    entry_price, exit_price = trades[:, 3], trades[:, 4]
    paid = commission * np.abs(size) * (entry_price + exit_price)
    index = frame.index
    table = pd.DataFrame(
        {
            "Size": size,
            "EntryBar": entry,
            "ExitBar": exit_,
            "EntryPrice": entry_price,
            "ExitPrice": exit_price,
            "PnL": size * (exit_price - entry_price) - paid,
            "ReturnPct": np.sign(size) * (exit_price / entry_price - 1)
            - paid / (np.abs(size) * entry_price),
            "EntryTime": index[entry],
            "ExitTime": index[exit_],
        }
    )
    table["Duration"] = table["ExitTime"] - table["EntryTime"]
    equity = equity_curve(frame, trades, cash, commission)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        stats = compute_stats(table, equity, frame, None, 0.0)
    close = frame["Close"].to_numpy(dtype=float)
    first = min(max(int(warmup), 0), len(frame) - 1)  # the child's word: only moves buy & hold
    stats["Buy & Hold Return [%]"] = (close[-1] - close[first]) / close[first] * 100
    return stats


def result_from_report(
    frame: pd.DataFrame,
    report: dict[str, Any],
    *,
    user_id: str,
    strategy_name: str,
    strategy_code: str,
    parameters: dict[str, Any],
    cash: float,
    commission: float,
) -> BacktestResult:
    """The BacktestResult of a child's report, or ForgedResultError."""
    warmup = report.get("warmup", 0)
    if not isinstance(warmup, int) or isinstance(warmup, bool):
        raise ForgedResultError(f"warm-up {warmup!r} is not a bar count")
    trades = check_trades(frame, report.get("trades"), cash)
    stats = stats_from_trades(frame, trades, warmup, cash, commission)
    result = BacktestResult(
        id="",
        user_id=user_id,
        strategy_name=strategy_name,
        strategy_code=strategy_code,
        parameters=parameters,
        symbol=str(frame.attrs.get("symbol") or "CUSTOM"),
        start=_to_date(frame.index[0]),
        end=_to_date(frame.index[-1]),
        initial_cash=float(cash),
        equity_curve=_compact_curve(stats["_equity_curve"]["Equity"]),
        created_at=datetime.now(UTC),
        **_metrics(stats),
    )
    rid = make_backtest_id(result, commission=commission, data_fingerprint=data_fingerprint(frame))
    return result.model_copy(update={"id": rid})
