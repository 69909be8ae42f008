"""Compiled specs trade exactly like hand-written strategies, on real GOOG backtests.

Each case is a spec (what a model should fill for a request) and a reference `Strategy` written
by hand from the same words, independently of the compiler: the corpus's strategies where the
corpus expresses the request, else a class below with its own trading logic (indicator
arithmetic from `agents.quant.corpus` or computed here). Both run on the same engine
(`engine_stats`, the sizing and costs of `run_backtest`); they must make the same trades (entry
and exit bars, sizes, prices, stops and P&L from the engine's `_trades`) and `run_backtest` must
report the same numbers. A few compiled strategies also run through `run_in_sandbox`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant import corpus
from agents.quant.backtests import BacktestResult, engine_stats, load_ohlcv, run_backtest
from agents.quant.compiler import CompiledStrategy, compile_spec
from agents.quant.sandbox import run_in_sandbox
from agents.quant.spec import StrategySpec

GOOG = load_ohlcv("GOOG")
WHEN = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = ["Size", "EntryBar", "ExitBar", "EntryPrice", "ExitPrice", "SL", "TP", "PnL"]


# ---- specs, as plain JSON ---------------------------------------------------------------------


def s(kind: str, period: int | None = None, **windows: Any) -> dict[str, Any]:
    return {"kind": kind, **({"period": period} if period else {}), **windows}


def c(left: dict[str, Any], op: str, right: dict[str, Any] | float) -> dict[str, Any]:
    side = {"right": right} if isinstance(right, dict) else {"value": right}
    return {"left": left, "op": op, **side}


def rule(*conditions: dict[str, Any], combine: str = "all") -> dict[str, Any]:
    return {"combine": combine, "conditions": list(conditions)}


def cross(kind: str, fast: int, slow: int, op: str = "crosses_above") -> dict[str, Any]:
    return rule(c(s(kind, fast), op, s(kind, slow)))


def compiled(
    fields: dict[str, Any], name: str = "Compiled"
) -> tuple[type[Strategy], CompiledStrategy]:
    """The compiled module, exec'd: its strategy class and the compiler's output."""
    out = compile_spec(StrategySpec.model_validate({"name": name, **fields}))
    namespace: dict[str, Any] = {}
    exec(compile(out.code, "<strategy>", "exec"), namespace)
    return namespace[out.class_name], out


def trades(cls: type[Strategy], **params: Any) -> pd.DataFrame:
    stats = engine_stats(cls, GOOG, 10_000, 0.002, params)  # run_backtest's cash and commission
    return stats["_trades"][COLUMNS].reset_index(drop=True)


def backtest(cls: type[Strategy], code: str = "", **params: Any) -> BacktestResult:
    return run_backtest(
        cls, "GOOG", user_id="t", strategy_code=code, parameters=params or None, created_at=WHEN
    )


def same_numbers(a: BacktestResult, b: BacktestResult) -> dict[str, tuple[Any, Any]]:
    """The headline numbers that differ (floats beyond 1e-9 relative: an ATR summed in
    another order moves a stop by 1e-13)."""
    fields = ["num_trades", "total_return_pct", "final_equity", "win_rate_pct", "sharpe"]
    fields += ["max_drawdown_pct", "exposure_pct"]
    pairs = {f: (getattr(a, f), getattr(b, f)) for f in fields}
    return {
        f: (x, y) for f, (x, y) in pairs.items() if x != y and not math.isclose(x, y, rel_tol=1e-9)
    }


# ---- hand-written references ------------------------------------------------------------------


def previous_high(high: Any, n: int) -> np.ndarray:
    """The highest high of the n bars before each bar."""
    return pd.Series(high).shift(1).rolling(n).max().to_numpy()


def wilder_atr(high: Any, low: Any, close: Any, n: int) -> np.ndarray:
    """Average true range by Wilder's recursion, seeded with the first bar's range."""
    high, low, close = (np.asarray(x, dtype=float) for x in (high, low, close))
    out = np.full(len(close), np.nan)
    avg = high[0] - low[0]
    for i in range(1, len(close)):
        true_range = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        avg += (true_range - avg) / n
        if i >= n - 1:
            out[i] = avg
    return out


def macd_histogram(close: Any) -> np.ndarray:
    line, signal = corpus.macd(close, 12, 26, 9)
    return line - signal


class RefShortCross(Strategy):
    """Short when SMA(10) crosses under SMA(30); cover when it crosses back over."""

    def init(self) -> None:
        self.fast = self.I(corpus.sma, self.data.Close, 10)
        self.slow = self.I(corpus.sma, self.data.Close, 30)

    def next(self) -> None:
        if not self.position and crossover(self.slow, self.fast):
            self.sell()
        elif self.position and crossover(self.fast, self.slow):
            self.position.close()


class RefReversal(Strategy):
    """Always in the market on the EMA 20/50 cross: long above, short below."""

    def init(self) -> None:
        self.fast = self.I(corpus.ema, self.data.Close, 20)
        self.slow = self.I(corpus.ema, self.data.Close, 50)

    def next(self) -> None:
        if crossover(self.fast, self.slow) and not self.position.is_long:
            self.position.close()
            self.buy()
        elif crossover(self.slow, self.fast) and not self.position.is_short:
            self.position.close()
            self.sell()


class RefHoldFiveBars(Strategy):
    """Buy when RSI(14) is under 35; sell five bars after the entry bar, whatever happens."""

    def init(self) -> None:
        self.rsi = self.I(corpus.rsi, self.data.Close, 14)
        self.entry_bar = 0

    def next(self) -> None:
        today = len(self.data) - 1
        if not self.position:
            if self.rsi[-1] < 35:
                self.buy()
                self.entry_bar = today + 1  # market orders fill at the next open
        elif today - self.entry_bar >= 5:
            self.position.close()


class RefCrossWithStops(Strategy):
    """SMA 10/30 cross with a 5% stop and a 10% target, out on the cross back too."""

    def init(self) -> None:
        self.fast = self.I(corpus.sma, self.data.Close, 10)
        self.slow = self.I(corpus.sma, self.data.Close, 30)

    def next(self) -> None:
        if not self.position and crossover(self.fast, self.slow):
            close = self.data.Close[-1]
            self.buy(sl=close * (1 - 5 / 100), tp=close * (1 + 10 / 100))
        elif self.position and crossover(self.slow, self.fast):
            self.position.close()


class RefTrailing(Strategy):
    """SMA 10/50 cross; out on the cross back or a close 3% under the best close so far."""

    def init(self) -> None:
        self.fast = self.I(corpus.sma, self.data.Close, 10)
        self.slow = self.I(corpus.sma, self.data.Close, 50)
        self.best = 0.0

    def next(self) -> None:
        close = self.data.Close[-1]
        if not self.position:
            if crossover(self.fast, self.slow):
                self.buy()
                self.best = close
            return
        self.best = max(self.best, close)
        if crossover(self.slow, self.fast) or close <= self.best * (1 - 3 / 100):
            self.position.close()


class RefAtrStop(Strategy):
    """EMA 12/26 cross with a stop two ATRs under the close; out on the cross back."""

    def init(self) -> None:
        self.fast = self.I(corpus.ema, self.data.Close, 12)
        self.slow = self.I(corpus.ema, self.data.Close, 26)
        self.atr = self.I(wilder_atr, self.data.High, self.data.Low, self.data.Close, 14)

    def next(self) -> None:
        if not self.position and crossover(self.fast, self.slow):
            self.buy(sl=self.data.Close[-1] - 2 * self.atr[-1])
        elif self.position and crossover(self.slow, self.fast):
            self.position.close()


class RefBreakout(Strategy):
    """Buy when the close crosses above the prior 20-bar high; sell when it crosses back under."""

    def init(self) -> None:
        self.high = self.I(previous_high, self.data.High, 20)

    def next(self) -> None:
        close, high = self.data.Close, self.high
        if not self.position and close[-2] < high[-2] and close[-1] > high[-1]:
            self.buy()
        elif self.position and close[-2] > high[-2] and close[-1] < high[-1]:
            self.position.close()


class RefMacdHistogram(Strategy):
    """Long while the MACD histogram turns positive, flat when it turns negative."""

    def init(self) -> None:
        self.hist = self.I(macd_histogram, self.data.Close)

    def next(self) -> None:
        if not self.position and self.hist[-2] < 0 < self.hist[-1]:
            self.buy()
        elif self.position and self.hist[-2] > 0 > self.hist[-1]:
            self.position.close()


class RefBandCross(Strategy):
    """Buy a close crossing under the lower band (20, 2.5); sell one crossing over the middle."""

    def init(self) -> None:
        self.bands = self.I(corpus.bollinger, self.data.Close, 20, 2.5)

    def next(self) -> None:
        close, lower, middle = self.data.Close, self.bands[0], self.bands[1]
        if not self.position and close[-2] > lower[-2] and close[-1] < lower[-1]:
            self.buy()
        elif self.position and close[-2] < middle[-2] and close[-1] > middle[-1]:
            self.position.close()


class RefStreaks(Strategy):
    """Buy after three up closes in a row; sell after two down closes in a row."""

    def init(self) -> None:
        self.ups = self.downs = 0

    def next(self) -> None:
        close = self.data.Close
        self.ups = self.ups + 1 if close[-1] > close[-2] else 0
        self.downs = self.downs + 1 if close[-1] < close[-2] else 0
        if not self.position and self.ups >= 3:
            self.buy()
        elif self.position and self.downs >= 2:
            self.position.close()


class RefHalfSize(Strategy):
    """EMA 8/21 cross with half the equity per trade."""

    def init(self) -> None:
        self.fast = self.I(corpus.ema, self.data.Close, 8)
        self.slow = self.I(corpus.ema, self.data.Close, 21)

    def next(self) -> None:
        if not self.position and crossover(self.fast, self.slow):
            self.buy(size=0.5)
        elif self.position and crossover(self.slow, self.fast):
            self.position.close()


class RefAnyAll(Strategy):
    """Buy when RSI(14) < 30 or the close is under the lower band; sell when RSI > 50 and the
    close is over the middle band."""

    def init(self) -> None:
        self.rsi = self.I(corpus.rsi, self.data.Close, 14)
        self.bands = self.I(corpus.bollinger, self.data.Close, 20, 2.0)

    def next(self) -> None:
        close, rsi = self.data.Close[-1], self.rsi[-1]
        lower, middle = self.bands[0][-1], self.bands[1][-1]
        if not self.position and (rsi < 30 or close < lower):
            self.buy()
        elif self.position and rsi > 50 and close > middle:
            self.position.close()


class RefVolumeTrend(Strategy):
    """Volume over its 20-day average with the close over the 50-day SMA buys; under it sells."""

    def init(self) -> None:
        self.volume = self.I(corpus.sma, self.data.Volume, 20)
        self.trend = self.I(corpus.sma, self.data.Close, 50)

    def next(self) -> None:
        close = self.data.Close[-1]
        if not self.position and self.data.Volume[-1] > self.volume[-1] and close > self.trend[-1]:
            self.buy()
        elif self.position and close < self.trend[-1]:
            self.position.close()


class RefShortTimed(Strategy):
    """Short when the close crosses under SMA(20), 3% stop, covered ten bars after entry."""

    def init(self) -> None:
        self.ma = self.I(corpus.sma, self.data.Close, 20)
        self.entry_bar = 0

    def next(self) -> None:
        today = len(self.data) - 1
        if not self.position:
            if crossover(self.ma, self.data.Close):
                self.sell(sl=self.data.Close[-1] * (1 + 3 / 100))
                self.entry_bar = today + 1
        elif today - self.entry_bar >= 10:
            self.position.close()


class RefFourRules(Strategy):
    """Long under RSI 30, short over 70 (reversing); a long closes over 50, a short under 50."""

    def init(self) -> None:
        self.rsi = self.I(corpus.rsi, self.data.Close, 14)

    def next(self) -> None:
        rsi = self.rsi[-1]
        if self.position.is_long and rsi > 70:
            self.position.close()
            self.sell()
        elif self.position.is_long and rsi > 50:
            self.position.close()
        elif self.position.is_short and rsi < 30:
            self.position.close()
            self.buy()
        elif self.position.is_short and rsi < 50:
            self.position.close()
        elif not self.position and rsi < 30:
            self.buy()
        elif not self.position and rsi > 70:
            self.sell()


RSI = s("rsi", 14)
BANDS = s("bb_lower", 20, std_dev=2.0)
MIDDLE = s("bb_middle", 20)

CASES: dict[str, tuple[dict[str, Any], type[Strategy], dict[str, Any], int]] = {
    # name: (spec fields, reference, its parameters, trades it must at least make)
    "corpus SmaCross": (
        {"entry": cross("sma", 10, 30)},
        corpus.SmaCross,
        {"fast": 10, "slow": 30},
        10,
    ),
    "corpus EmaCross": ({"entry": cross("ema", 12, 26)}, corpus.EmaCross, {}, 10),
    "corpus RsiMeanReversion": (
        {"entry": rule(c(RSI, "below", 30)), "exit": rule(c(RSI, "above", 70))},
        corpus.RsiMeanReversion,
        {},
        5,
    ),
    "corpus BollingerReversion": (
        {
            "entry": rule(c(s("close"), "below", BANDS)),
            "exit": rule(c(s("close"), "above", MIDDLE)),
        },
        corpus.BollingerReversion,
        {},
        10,
    ),
    "corpus MacdCross": (
        {"entry": rule(c(s("macd"), "crosses_above", s("macd_signal")))},
        corpus.MacdCross,
        {},
        10,
    ),
    "corpus DonchianBreakout": (
        {
            "entry": rule(c(s("close"), "above", s("highest_high", 20))),
            "exit": rule(c(s("close"), "below", s("lowest_low", 10))),
        },
        corpus.DonchianBreakout,
        {},
        10,
    ),
    "corpus Momentum": (
        {
            "entry": rule(c(s("roc", 20), "above", 1.0)),
            "exit": rule(c(s("roc", 20), "below", -1.0)),
        },
        corpus.Momentum,
        {"lookback": 20, "threshold": 1.0},
        10,
    ),
    # "buy and hold" has no condition of its own; "close above 0" always holds, its opposite never
    "corpus BuyAndHold": ({"entry": rule(c(s("close"), "above", 0))}, corpus.BuyAndHold, {}, 1),
    "short only": (
        {"direction": "short", "entry": cross("sma", 10, 30, "crosses_below")},
        RefShortCross,
        {},
        10,
    ),
    "both directions": (
        {"direction": "both", "entry": cross("ema", 20, 50)},
        RefReversal,
        {},
        10,
    ),
    "max_bars time exit": (
        {"entry": rule(c(RSI, "below", 35)), "max_bars": 5},
        RefHoldFiveBars,
        {},
        10,
    ),
    "stop loss and take profit": (
        {"entry": cross("sma", 10, 30), "stop_loss_pct": 5, "take_profit_pct": 10},
        RefCrossWithStops,
        {},
        10,
    ),
    "trailing stop": (
        {"entry": cross("sma", 10, 50), "trailing_stop_pct": 3},
        RefTrailing,
        {},
        10,
    ),
    "ATR stop": (
        {"entry": cross("ema", 12, 26), "atr_stop_multiple": 2},
        RefAtrStop,
        {},
        10,
    ),
    "Donchian breakout (crossing)": (
        {"entry": rule(c(s("close"), "crosses_above", s("highest_high", 20)))},
        RefBreakout,
        {},
        10,
    ),
    "MACD histogram crosses 0": (
        {"entry": rule(c(s("macd_hist"), "crosses_above", 0))},
        RefMacdHistogram,
        {},
        10,
    ),
    "Bollinger lower-band reversion (crossing)": (
        {
            "entry": rule(c(s("close"), "crosses_below", s("bb_lower", 20, std_dev=2.5))),
            "exit": rule(c(s("close"), "crosses_above", MIDDLE)),
        },
        RefBandCross,
        {},
        5,
    ),
    "up and down streaks": (
        {
            "entry": rule(c(s("up_streak"), "above", 2)),
            "exit": rule(c(s("down_streak"), "above", 1)),
        },
        RefStreaks,
        {},
        20,
    ),
    "half the equity": (
        {"entry": cross("ema", 8, 21), "size_pct": 50},
        RefHalfSize,
        {},
        10,
    ),
    "any entry, all exit": (
        {
            "entry": rule(c(RSI, "below", 30), c(s("close"), "below", BANDS), combine="any"),
            "exit": rule(c(RSI, "above", 50), c(s("close"), "above", MIDDLE)),
        },
        RefAnyAll,
        {},
        10,
    ),
    "volume and trend": (
        {
            "entry": rule(
                c(s("volume"), "above", s("volume_sma", 20)), c(s("close"), "above", s("sma", 50))
            ),
            "exit": rule(c(s("close"), "below", s("sma", 50))),
        },
        RefVolumeTrend,
        {},
        10,
    ),
    "short with a stop, timed exit": (
        {
            "direction": "short",
            "entry": rule(c(s("close"), "crosses_below", s("sma", 20))),
            "stop_loss_pct": 3,
            "max_bars": 10,
        },
        RefShortTimed,
        {},
        10,
    ),
    "both with four rules": (
        {
            "direction": "both",
            "entry": rule(c(RSI, "below", 30)),
            "short_entry": rule(c(RSI, "above", 70)),
            "exit": rule(c(RSI, "above", 50)),
        },
        RefFourRules,
        {},
        10,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_spec_makes_the_reference_trades(case: str) -> None:
    fields, reference, params, at_least = CASES[case]
    cls, out = compiled(fields)
    want = trades(reference, **params)
    assert len(want) >= at_least, f"the reference trades too little to prove anything: {want}"
    pd.testing.assert_frame_equal(trades(cls), want)
    got_result, want_result = backtest(cls, out.code), backtest(reference, **params)
    assert same_numbers(got_result, want_result) == {}
    assert got_result.parameters == out.parameters


def test_a_different_spec_is_told_apart() -> None:
    """The comparison can fail: SMA 10/20 is not the corpus's SmaCross 10/30."""
    other, _ = compiled({"entry": cross("sma", 10, 20)})
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(trades(other), trades(corpus.SmaCross, fast=10, slow=30))
    # and exiting on the stops alone is not the cross with stops (the opposite signal matters)
    stops_only, _ = compiled({"entry": cross("sma", 10, 30), "max_bars": 1000, "stop_loss_pct": 5})
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(trades(stops_only), trades(RefCrossWithStops))


def test_parameters_are_live_class_attributes() -> None:
    """Overriding a compiled strategy's parameters changes its behaviour like the corpus's."""
    cls, out = compiled({"entry": rule(c(RSI, "below", 30)), "exit": rule(c(RSI, "above", 70))})
    assert out.parameters == {"rsi_period": 14, "oversold": 30, "overbought": 70}
    mine = {"rsi_period": 7, "oversold": 25, "overbought": 75}
    theirs = {"period": 7, "lower": 25, "upper": 75}
    pd.testing.assert_frame_equal(trades(cls, **mine), trades(corpus.RsiMeanReversion, **theirs))
    assert not trades(cls, **mine).equals(trades(cls))
    assert backtest(cls, out.code, **mine).parameters == mine


def test_the_sandbox_runs_compiled_strategies_to_the_same_result() -> None:
    names = ["corpus MacdCross", "both with four rules", "stop loss and take profit"]
    names += ["trailing stop"]
    jobs = []
    for name in names:
        jobs.append(compiled(CASES[name][0]))
    override = jobs[0][1].parameters | {"macd_fast_period": 8, "macd_slow_period": 17}

    def sandboxed(job: tuple[Any, CompiledStrategy], params: dict[str, Any] | None = None) -> Any:
        return run_in_sandbox(job[1].code, user_id="t", parameters=params, timeout_s=60)

    with ThreadPoolExecutor(max_workers=5) as pool:
        runs = list(pool.map(sandboxed, jobs))
        tuned = pool.submit(sandboxed, jobs[0], override).result()
    for (cls, out), run in zip(jobs, runs, strict=True):
        assert run.ok, run.error
        assert run.result is not None
        assert same_numbers(run.result, backtest(cls, out.code)) == {}
        assert run.result.strategy_code == out.code
        assert run.result.num_trades >= 10
    assert tuned.ok and tuned.result is not None
    direct = backtest(jobs[0][0], jobs[0][1].code, **override)
    assert same_numbers(tuned.result, direct) == {}
    want = trades(corpus.MacdCross, fast=8, slow=17, signal=9)
    assert tuned.result.num_trades == len(want)
