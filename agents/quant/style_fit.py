"""A vague request's textbook rule fitted to the data it will run on (`drafting.style_spec`).

A style is a textbook rule with textbook windows ("RSI(14) below 30"); on few or slow bars it may
never fire: BTCUSD's bundled bars are monthly, and its RSI(14) never went below 30 in them, so
"a mean-reversion strategy on monthly bitcoin" built a strategy with no trade (fresh3's tune
half). Here the entry's signals are counted on the data; a rule with fewer than `MIN_SIGNALS`
has its windows shortened step by step until it has them, and the choice is said.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from agents.quant.backtests import load_ohlcv
from agents.quant.corpus import bollinger, ema, roc, rolling_max, rolling_min, rsi, sma
from agents.quant.faithfulness import show_condition
from agents.quant.spec import DEFAULTS, Condition, Rule, Series, StrategySpec

MIN_SIGNALS = 2
"""Signals the entry needs on the data for a style's windows to be kept as they are."""
SCALES = (0.5, 0.35, 0.25, 0.15)
"""The window scales tried in turn (each window at least 2 bars)."""

_CALC: dict[str, Callable[[pd.DataFrame, Series], Any]] = {
    "close": lambda d, s: d["Close"],
    "open": lambda d, s: d["Open"],
    "high": lambda d, s: d["High"],
    "low": lambda d, s: d["Low"],
    "sma": lambda d, s: sma(d["Close"], s.period or 20),
    "ema": lambda d, s: ema(d["Close"], s.period or 20),
    "rsi": lambda d, s: rsi(d["Close"], s.period or 14),
    "roc": lambda d, s: roc(d["Close"], s.period or 10),
    "highest_high": lambda d, s: rolling_max(d["High"], s.period or 20),
    "lowest_low": lambda d, s: rolling_min(d["Low"], s.period or 20),
    "bb_lower": lambda d, s: bollinger(d["Close"], s.period or 20, s.std_dev or 2.0)[0],
    "bb_middle": lambda d, s: bollinger(d["Close"], s.period or 20, s.std_dev or 2.0)[1],
    "bb_upper": lambda d, s: bollinger(d["Close"], s.period or 20, s.std_dev or 2.0)[2],
}


def _values(data: pd.DataFrame, s: Series) -> np.ndarray | None:
    calc = _CALC.get(s.kind)
    return None if calc is None else np.asarray(calc(data, s), dtype=float)


def signals(data: pd.DataFrame, c: Condition) -> int | None:
    """How often `c` turns true on `data` (a cross: each cross; a state: each time it begins);
    None for a series not computed here."""
    left = _values(data, c.left)
    right = _values(data, c.right) if c.right is not None else np.full(len(data), c.value)
    if left is None or right is None:
        return None
    with np.errstate(invalid="ignore"):
        up = np.nan_to_num(left - right, nan=0.0)
    if c.op in ("crosses_above", "crosses_below"):
        sign = up if c.op == "crosses_above" else -up
        return int(np.sum((sign[1:] > 0) & (sign[:-1] < 0)))
    state = up > 0 if c.op == "above" else up < 0
    return int(state[0]) + int(np.sum(state[1:] & ~state[:-1]))


def _scaled(c: Condition, scale: float) -> Condition:
    def one(s: Series | None) -> Series | None:
        if s is None or s.period is None:
            return s
        return s.model_copy(update={"period": max(2, round(s.period * scale))})

    return c.model_copy(update={"left": one(c.left), "right": one(c.right)})


def fit(spec: StrategySpec, data: pd.DataFrame) -> tuple[StrategySpec, str | None]:
    """`spec` (one entry condition, a style's) with windows that give its entry at least
    `MIN_SIGNALS` signals on `data`, and the change in words (None: kept as it was)."""
    if len(spec.entry.conditions) != 1:
        return spec, None
    c = spec.entry.conditions[0]
    first = signals(data, c)
    if first is None or first >= MIN_SIGNALS:
        return spec, None
    best, best_n = c, first
    for scale in SCALES:
        cand = _scaled(c, scale)
        n = signals(data, cand)
        if n is not None and n > best_n:
            best, best_n = cand, n
        if best_n >= MIN_SIGNALS:
            break
    if best is c:
        return spec, None
    note = (
        f"on this data {show_condition(c)} begins {first} time(s) in {len(data)} bars: its "
        f"windows shortened to {show_condition(best)}, which begins {best_n} times"
    )
    return spec.model_copy(update={"entry": Rule(conditions=[best])}), note


def bundled(symbol: str | None, bars: int) -> pd.DataFrame | None:
    """The bundled data of `symbol` (None: the default one) when it has the `bars` bars the
    caller runs on; else None (another data set: nothing is fitted)."""
    try:
        data = load_ohlcv(symbol or str(DEFAULTS["symbol"]))
    except Exception:
        return None
    return data if len(data) == bars else None
