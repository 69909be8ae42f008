"""A library of realistic strategies and a deterministic corpus of real backtests.

The RAG stores, the bulk index CLI, benchmarks and notebooks need hundreds of backtests by many
users; running real strategies on the bundled data gives them real, varied numbers for free.
Indicators are plain pandas/numpy (no TA-Lib), so generated code can copy the same patterns.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover
from pydantic import TypeAdapter
from tqdm import tqdm

from agents.quant.backtests import (
    SYMBOLS,
    BacktestResult,
    data_fingerprint,
    load_ohlcv,
    make_backtest_id,
    run_backtest,
)

# --------------------------------------------------------------------------------------------
# Indicators (inputs are the engine's arrays; outputs are numpy arrays of the same length)
# --------------------------------------------------------------------------------------------


def sma(values: Any, n: int) -> np.ndarray:
    """Simple moving average."""
    return pd.Series(values).rolling(n).mean().to_numpy()


def ema(values: Any, n: int) -> np.ndarray:
    """Exponential moving average; the first n-1 bars are NaN so the engine warms up."""
    out = pd.Series(values).ewm(span=n, adjust=False).mean().to_numpy(copy=True)
    out[: n - 1] = np.nan
    return out


def rsi(values: Any, n: int = 14) -> np.ndarray:
    """Wilder's relative strength index, 0..100."""
    delta = pd.Series(values).diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    rs = gain / loss.replace(0, np.nan)
    return (100 - 100 / (1 + rs)).fillna(100.0).where(gain.notna()).to_numpy()


def bollinger(values: Any, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, ...]:
    """Lower band, middle (SMA) and upper band."""
    s = pd.Series(values)
    mid = s.rolling(n).mean()
    std = s.rolling(n).std(ddof=0)
    return (mid - k * std).to_numpy(), mid.to_numpy(), (mid + k * std).to_numpy()


def macd(values: Any, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, ...]:
    """MACD line and its signal line."""
    line = ema(values, fast) - ema(values, slow)
    sig = pd.Series(line).ewm(span=signal, adjust=False).mean().to_numpy()
    return line, sig


def rolling_max(values: Any, n: int) -> np.ndarray:
    """Highest value of the previous n bars (excluding the current one)."""
    return pd.Series(values).rolling(n).max().shift(1).to_numpy()


def rolling_min(values: Any, n: int) -> np.ndarray:
    """Lowest value of the previous n bars (excluding the current one)."""
    return pd.Series(values).rolling(n).min().shift(1).to_numpy()


def roc(values: Any, n: int) -> np.ndarray:
    """Rate of change over n bars, in percent."""
    return (pd.Series(values).pct_change(n) * 100).to_numpy()


# --------------------------------------------------------------------------------------------
# Strategies (long-only; class attributes are the tunable parameters)
# --------------------------------------------------------------------------------------------


class SmaCross(Strategy):
    """Trend following: long while the fast SMA is above the slow one."""

    fast = 10
    slow = 30

    def init(self) -> None:
        self.fast_ma = self.I(sma, self.data.Close, self.fast)
        self.slow_ma = self.I(sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma):
            self.buy()
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()


class EmaCross(Strategy):
    """Like SmaCross with exponential averages: reacts faster, whipsaws more."""

    fast = 12
    slow = 26

    def init(self) -> None:
        self.fast_ma = self.I(ema, self.data.Close, self.fast)
        self.slow_ma = self.I(ema, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma):
            self.buy()
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()


class RsiMeanReversion(Strategy):
    """Buy oversold (RSI below `lower`), sell when overbought (above `upper`)."""

    period = 14
    lower = 30
    upper = 70

    def init(self) -> None:
        self.rsi = self.I(rsi, self.data.Close, self.period)

    def next(self) -> None:
        if not self.position and self.rsi[-1] < self.lower:
            self.buy()
        elif self.position and self.rsi[-1] > self.upper:
            self.position.close()


class BollingerReversion(Strategy):
    """Buy a close below the lower band, exit at the middle band."""

    period = 20
    k = 2.0

    def init(self) -> None:
        self.bands = self.I(bollinger, self.data.Close, self.period, self.k)

    def next(self) -> None:
        lower, mid, _upper = self.bands[0][-1], self.bands[1][-1], self.bands[2][-1]
        price = self.data.Close[-1]
        if not self.position and price < lower:
            self.buy()
        elif self.position and price > mid:
            self.position.close()


class MacdCross(Strategy):
    """Long while the MACD line is above its signal line."""

    fast = 12
    slow = 26
    signal = 9

    def init(self) -> None:
        self.macd = self.I(macd, self.data.Close, self.fast, self.slow, self.signal)

    def next(self) -> None:
        if crossover(self.macd[0], self.macd[1]):
            self.buy()
        elif crossover(self.macd[1], self.macd[0]):
            self.position.close()


class DonchianBreakout(Strategy):
    """Turtle-style: buy a new `entry`-bar high, exit on a new `exit`-bar low."""

    entry = 20
    exit = 10

    def init(self) -> None:
        self.upper = self.I(rolling_max, self.data.High, self.entry)
        self.lower = self.I(rolling_min, self.data.Low, self.exit)

    def next(self) -> None:
        price = self.data.Close[-1]
        if not self.position and price > self.upper[-1]:
            self.buy()
        elif self.position and price < self.lower[-1]:
            self.position.close()


class BuyAndHold(Strategy):
    """The benchmark every other strategy is compared with."""

    def init(self) -> None:
        pass

    def next(self) -> None:
        if not self.position:
            self.buy()


class Momentum(Strategy):
    """Long while the `lookback`-bar rate of change exceeds `threshold` percent."""

    lookback = 20
    threshold = 0.0

    def init(self) -> None:
        self.roc = self.I(roc, self.data.Close, self.lookback)

    def next(self) -> None:
        if not self.position and self.roc[-1] > self.threshold:
            self.buy()
        elif self.position and self.roc[-1] < -self.threshold:
            self.position.close()


STRATEGIES: dict[str, type[Strategy]] = {
    cls.__name__: cls
    for cls in (
        SmaCross,
        EmaCross,
        RsiMeanReversion,
        BollingerReversion,
        MacdCross,
        DonchianBreakout,
        BuyAndHold,
        Momentum,
    )
}

PARAMETER_GRIDS: dict[str, list[dict[str, Any]]] = {
    "SmaCross": [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 30}, {"fast": 20, "slow": 50}],
    "EmaCross": [{"fast": 8, "slow": 21}, {"fast": 12, "slow": 26}, {"fast": 20, "slow": 50}],
    "RsiMeanReversion": [
        {"period": 14, "lower": 30, "upper": 70},
        {"period": 7, "lower": 25, "upper": 75},
        {"period": 21, "lower": 35, "upper": 65},
    ],
    "BollingerReversion": [
        {"period": 20, "k": 2.0},
        {"period": 20, "k": 1.5},
        {"period": 30, "k": 2.5},
    ],
    "MacdCross": [
        {"fast": 12, "slow": 26, "signal": 9},
        {"fast": 8, "slow": 17, "signal": 9},
        {"fast": 5, "slow": 35, "signal": 5},
    ],
    "DonchianBreakout": [
        {"entry": 20, "exit": 10},
        {"entry": 55, "exit": 20},
        {"entry": 10, "exit": 5},
    ],
    "BuyAndHold": [{}],
    "Momentum": [
        {"lookback": 10, "threshold": 0.0},
        {"lookback": 20, "threshold": 1.0},
        {"lookback": 50, "threshold": 3.0},
    ],
}

COMMISSION: dict[str, float] = {"GOOG": 0.001, "EURUSD": 0.0001, "BTCUSD": 0.002}
"""Realistic per-symbol costs: 0.2 % a side would wipe out any hourly FX strategy."""

# Periods as fractions of each symbol's history: full, halves, the last third.
PERIODS: tuple[tuple[float, float], ...] = ((0.0, 1.0), (0.0, 0.5), (0.5, 1.0), (0.67, 1.0))

DEFAULT_PER_USER = 15
CORPUS_EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class CorpusConfig:
    """One backtest of the grid, independent of the user who runs it."""

    strategy: str
    params_index: int
    symbol: str
    period: tuple[float, float]

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(PARAMETER_GRIDS[self.strategy][self.params_index])


def corpus_grid() -> list[CorpusConfig]:
    """Every strategy x parameter set x bundled symbol x period, in a fixed order."""
    return [
        CorpusConfig(name, i, symbol, period)
        for name in STRATEGIES
        for i in range(len(PARAMETER_GRIDS[name]))
        for symbol in SYMBOLS
        for period in PERIODS
    ]


def _period_bounds(symbol: str, period: tuple[float, float]) -> tuple[pd.Timestamp, pd.Timestamp]:
    index = load_ohlcv(symbol).index
    lo = round(period[0] * (len(index) - 1))
    hi = round(period[1] * (len(index) - 1))
    return pd.Timestamp(index[lo]), pd.Timestamp(index[hi])


def generate_corpus(
    n_users: int = 20,
    *,
    seed: int = 0,
    per_user: int | None = None,
    progress: bool = False,
) -> Iterator[BacktestResult]:
    """Yield `n_users * per_user` real backtests for demo users `user-000`, `user-001`, ...

    Each user leans towards a few favourite strategies and symbols (as real users do) and never
    repeats a configuration, so ids are unique per user. Same seed, same results, including
    ids and `created_at`. A configuration shared by several users is run once and re-labelled.
    """
    per_user = DEFAULT_PER_USER if per_user is None else per_user
    grid = corpus_grid()
    if not 0 < per_user <= len(grid):
        raise ValueError(f"per_user must be between 1 and {len(grid)}, got {per_user}")
    rng = random.Random(seed)
    names = list(STRATEGIES)
    plan: list[tuple[str, CorpusConfig, datetime]] = []
    for u in range(n_users):
        favourites = set(rng.sample(names, 3))
        favourite_symbol = rng.choice(SYMBOLS)
        weights = [
            (4.0 if c.strategy in favourites else 1.0)
            * (2.0 if c.symbol == favourite_symbol else 1.0)
            for c in grid
        ]
        chosen = _weighted_sample(rng, grid, weights, per_user)
        when = CORPUS_EPOCH + timedelta(days=u)
        for config in chosen:
            when += timedelta(minutes=rng.randint(5, 3 * 24 * 60))
            plan.append((f"user-{u:03d}", config, when))

    cache: dict[CorpusConfig, BacktestResult] = {}
    fingerprints: dict[CorpusConfig, str] = {}
    bar = None
    if progress:
        bar = tqdm(total=len(plan), desc="backtests", unit="bt")
    try:
        for user_id, config, when in plan:
            base = cache.get(config)
            if base is None:
                start, end = _period_bounds(config.symbol, config.period)
                fingerprints[config] = data_fingerprint(load_ohlcv(config.symbol).loc[start:end])
                base = cache[config] = run_backtest(
                    STRATEGIES[config.strategy],
                    config.symbol,
                    user_id="corpus",
                    parameters=config.parameters,
                    commission=COMMISSION[config.symbol],
                    start=start,
                    end=end,
                    created_at=CORPUS_EPOCH,
                )
            mine = base.model_copy(update={"user_id": user_id, "created_at": when})
            new_id = make_backtest_id(
                mine, commission=COMMISSION[config.symbol], data_fingerprint=fingerprints[config]
            )
            if bar is not None:
                bar.update()
            yield mine.model_copy(update={"id": new_id})
    finally:
        if bar is not None:
            bar.close()


def _weighted_sample(
    rng: random.Random, items: list[CorpusConfig], weights: list[float], k: int
) -> list[CorpusConfig]:
    """k distinct items, each drawn with probability proportional to its weight."""
    pool = list(zip(items, weights, strict=True))
    out: list[CorpusConfig] = []
    for _ in range(k):
        total = sum(w for _, w in pool)
        pick = rng.random() * total
        for i, (item, w) in enumerate(pool):
            pick -= w
            if pick <= 0 or i == len(pool) - 1:
                out.append(item)
                del pool[i]
                break
    return out


# --------------------------------------------------------------------------------------------
# JSON files of results (one input of the bulk index CLI)
# --------------------------------------------------------------------------------------------

_RESULTS = TypeAdapter(list[BacktestResult])


def corpus_to_json(results: Iterable[BacktestResult], path: str | Path) -> Path:
    """Write results as one JSON array; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_RESULTS.dump_json(list(results), indent=1))
    return target


def load_results_json(path: str | Path) -> list[BacktestResult]:
    """Read a JSON array of results (as written by `corpus_to_json`), validated."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    return _RESULTS.validate_python(data)
