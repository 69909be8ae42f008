"""Market-data tool: a compact summary of the bundled OHLCV data, never the raw series."""

from __future__ import annotations

import calendar
import math
import re
from typing import Any

import pandas as pd
from langchain.tools import tool
from langchain_core.tools import ToolException

from agents.quant.backtests import load_ohlcv
from tools.backtests import valid_symbol

RECENT_BARS = 5


def _day(ts: Any) -> str:
    t = pd.Timestamp(ts)
    return t.isoformat() if (t.hour or t.minute) else t.date().isoformat()


def summarize_ohlcv(frame: pd.DataFrame, symbol: str, recent: int = RECENT_BARS) -> dict[str, Any]:
    """First/last date, first and last close, return and volatility, the high and low (of the
    bars' highs and lows) and the highest and lowest close, plus the last few bars.

    Volatility is annualised with the data's own bar rate (bars per year over the span), so it
    means the same for daily GOOG, hourly EURUSD and monthly BTCUSD.
    """
    close = frame["Close"].astype(float)
    first, last = frame.index[0], frame.index[-1]
    years = max((pd.Timestamp(last) - pd.Timestamp(first)).days / 365.25, 1e-9)
    rets = close.pct_change().dropna()
    per_bar = float(rets.std()) if len(rets) > 1 else 0.0
    bars_per_year = len(frame) / years
    vol = per_bar * math.sqrt(bars_per_year) * 100
    tail = frame.tail(recent)
    return {
        "symbol": symbol,
        "first_date": _day(first),
        "last_date": _day(last),
        "bars": len(frame),
        "first_close": round(float(close.iloc[0]), 4),
        "last_close": round(float(close.iloc[-1]), 4),
        "return_pct": round((float(close.iloc[-1]) / float(close.iloc[0]) - 1) * 100, 2),
        "annualized_volatility_pct": round(vol, 2) if len(rets) > 1 else None,  # one return
        "high": round(float(frame["High"].max()), 4),
        "low": round(float(frame["Low"].min()), 4),
        "highest_close": round(float(close.max()), 4),
        "lowest_close": round(float(close.min()), 4),
        "recent_bars": [
            {
                "date": _day(ts),
                **{c.lower(): round(float(row[c]), 4) for c in ("Open", "High", "Low", "Close")},
            }
            for ts, row in tail.iterrows()
        ],
    }


_ISO_DAY = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})\s*")


def _day_in_month(value: str | None, notes: list[str]) -> str | None:
    """A date whose day is past its month's end ("2017-11-31", "2018-02-30") as that month's
    last day, with a note saying so: a month-end written wrong, not an unreadable date (measured
    on the third fresh chat set's tune half: the 0.5B wrote 2017-11-31 for November)."""
    m = _ISO_DAY.fullmatch(value or "")
    if value is None or m is None:
        return value
    year, month, day = map(int, m.groups())
    if not 1 <= month <= 12 or not 28 < day <= 31:
        return value
    last = calendar.monthrange(year, month)[1]
    if day <= last:
        return value
    fixed = f"{year:04d}-{month:02d}-{last:02d}"
    notes.append(f"{value.strip()} does not exist, so {fixed} (the month's last day) was used")
    return fixed


@tool
def market_data(
    symbol: str, start: str | None = None, end: str | None = None
) -> dict[str, Any] | str:
    """The bundled price data of a symbol, GOOG (daily 2004-2013), EURUSD (hourly 2017-2018)
    or BTCUSD (monthly 2012-2024): when it starts and ends, first and last close, return,
    volatility, high and low.

    start / end: optional dates "YYYY-MM-DD" (inclusive). Returns first/last date, number of
    bars, first and last close, return %, annualised volatility %, high and low (intrabar),
    highest and lowest close, and recent bars.
    A window holding one bar (a month of monthly BTCUSD) is measured from the close before it.
    """
    sym = valid_symbol(symbol)
    frame = load_ohlcv(sym)
    notes: list[str] = []
    start, end = _day_in_month(start, notes), _day_in_month(end, notes)
    try:
        lo = pd.Timestamp(start) if start else None
        hi = pd.Timestamp(end) if end else None
    except (ValueError, TypeError):
        raise ToolException(
            f"Could not read the dates start={start!r} end={end!r}; use YYYY-MM-DD."
        ) from None
    if hi is not None and end and len(end.strip()) <= 10:
        hi = hi + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)  # whole end day
    window = frame.loc[lo:hi]
    first = int(frame.index.searchsorted(lo)) if lo is not None else 0
    if len(window) == 1 and first > 0:  # one monthly bar: from the close before the window
        window = frame.iloc[first - 1 : first + 1]
        notes.append(
            f"one {sym} bar falls between {start} and {end}, so the return is measured from "
            f"the close before it ({_day(window.index[0])})"
        )
    if len(window) < 2:
        raise ToolException(
            f"Not enough {sym} data between {start} and {end}; available: "
            f"{_day(frame.index[0])} to {_day(frame.index[-1])}."
        )
    out = summarize_ohlcv(window, sym)
    return {**out, "note": "; ".join(notes)} if notes else out
