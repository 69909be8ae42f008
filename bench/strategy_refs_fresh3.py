"""Hand-written reference strategies for the third fresh request set (`strategy_cases_fresh3`).

Each reference implements a request's words under the compiler's documented semantics (module
docstring of `agents.quant.compiler`), written without reading the code that reads requests.
They build on `bench.strategy_refs_fresh2._Rules` (one position at a time; `side` long / short /
both; stops, ATR stop (ATR 14), take profit and size on the order from the signal bar's close;
a trailing stop from the best close since the signal bar; a time exit once `hold_bars` bars
have passed since the entry bar; `both` reverses, close then open, and goes long if both fire
when flat). Crosses are `backtesting.lib.crossover`; above / below compare strictly; highest
high / lowest low are of the *previous* n bars (so the previous day's high is n = 1). Orders
fill at the next open.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from backtesting.lib import crossover

from agents.quant.corpus import bollinger, macd, roc, rolling_max, rolling_min, rsi, sma
from bench.strategy_cases import _ma, _streak
from bench.strategy_cases_fresh import _atr
from bench.strategy_refs_fresh2 import _hist, _Rules


def _macd_line(values: Any, fast: int, slow: int) -> np.ndarray:
    """The MACD line: EMA(fast) - EMA(slow) (its signal window plays no part)."""
    return np.asarray(macd(values, fast, slow, 9)[0])


class RefAtrExpansion(_Rules):
    """ATR(fast) crossing above ATR(slow) with the close above SMA(trend) buys; no signal exit
    (the time exit and stops close)."""

    fast = 5
    slow = 20
    trend = 50

    def setup(self) -> None:
        d = self.data
        self.af = self.I(_atr, d.High, d.Low, d.Close, self.fast)
        self.as_ = self.I(_atr, d.High, d.Low, d.Close, self.slow)
        self.t = self.I(sma, d.Close, self.trend)

    def enter(self) -> bool:
        return crossover(self.af, self.as_) and bool(self.data.Close[-1] > self.t[-1])


class RefCandleRsi(_Rules):
    """A green bar (close above open) with RSI below `low` buys; a red bar (close below open)
    or RSI above `high`, either one, sells."""

    n = 14
    low = 35.0
    high = 55.0

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] > self.data.Open[-1] and self.r[-1] < self.low)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.data.Open[-1] or self.r[-1] > self.high)


class RefMaRsiShort(_Rules):
    """Short while EMA(fast) is below SMA(slow) and RSI is below `low` (both, states); cover
    on RSI above `high`."""

    side = "short"
    fast = 9
    slow = 30
    rsi_n = 14
    low = 45.0
    high = 55.0

    def setup(self) -> None:
        self.f = self.I(_ma, "ema", self.data.Close, self.fast)
        self.s = self.I(sma, self.data.Close, self.slow)
        self.r = self.I(rsi, self.data.Close, self.rsi_n)

    def enter(self) -> bool:
        return bool(self.f[-1] < self.s[-1] and self.r[-1] < self.low)

    def leave(self) -> bool:
        return bool(self.r[-1] > self.high)


class RefLevelRsi(_Rules):
    """A close above a fixed price with RSI below `rsi_cap` buys; a close below another fixed
    price sells (levels in the quote's units, times the engine's `price_unit`)."""

    enter_level = 1.2
    exit_level = 1.19
    rsi_n = 14
    rsi_cap = 70.0
    price_unit = 1.0  # set by the engine: prices inside the strategy are in its trading unit

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.rsi_n)

    def enter(self) -> bool:
        above = self.data.Close[-1] > self.enter_level * self.price_unit
        return bool(above and self.r[-1] < self.rsi_cap)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.exit_level * self.price_unit)


class RefMacdZero(_Rules):
    """The MACD line crossing above zero buys, crossing below zero sells."""

    fast = 12
    slow = 26

    def setup(self) -> None:
        self.m = self.I(_macd_line, self.data.Close, self.fast, self.slow)

    def enter(self) -> bool:
        return crossover(self.m, 0.0)

    def leave(self) -> bool:
        return crossover(0.0, self.m)


class RefPrevBar(_Rules):
    """A close above the previous bar's high buys; a close below the previous bar's low sells
    (the highest high / lowest low of the previous 1 bar)."""

    def setup(self) -> None:
        self.hi = self.I(rolling_max, self.data.High, 1)
        self.lo = self.I(rolling_min, self.data.Low, 1)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] > self.hi[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.lo[-1])


class RefRsiStateFlip(_Rules):
    """Both ways on states: RSI above `high` goes long, below `low` goes short, each reversing
    the other; in between the position is kept."""

    side = "both"
    n = 6
    low = 40.0
    high = 60.0

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def enter(self) -> bool:
        return bool(self.r[-1] > self.high)

    def enter_short(self) -> bool:
        return bool(self.r[-1] < self.low)


class RefTrendDipExit(_Rules):
    """RSI(n) below `low` with the close above SMA(trend) buys; a close above SMA(m) sells."""

    n = 2
    low = 10.0
    trend = 200
    m = 5

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)
        self.t = self.I(sma, self.data.Close, self.trend)
        self.x = self.I(sma, self.data.Close, self.m)

    def enter(self) -> bool:
        return bool(self.r[-1] < self.low and self.data.Close[-1] > self.t[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] > self.x[-1])


class RefTrendDipTimed(_Rules):
    """RSI(n) below `low` with the close above SMA(trend) buys; no signal exit (the time exit
    and stops close)."""

    n = 3
    low = 10.0
    trend = 100

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)
        self.t = self.I(sma, self.data.Close, self.trend)

    def enter(self) -> bool:
        return bool(self.r[-1] < self.low and self.data.Close[-1] > self.t[-1])


class RefMaStack(_Rules):
    """SMA(a) above SMA(b) and SMA(b) above SMA(c) buys; SMA(a) below SMA(b) sells."""

    a = 5
    b = 20
    c = 60

    def setup(self) -> None:
        self.sa = self.I(sma, self.data.Close, self.a)
        self.sb = self.I(sma, self.data.Close, self.b)
        self.sc = self.I(sma, self.data.Close, self.c)

    def enter(self) -> bool:
        return bool(self.sa[-1] > self.sb[-1] and self.sb[-1] > self.sc[-1])

    def leave(self) -> bool:
        return bool(self.sa[-1] < self.sb[-1])


class RefRocShort(_Rules):
    """Short when ROC(n) crosses below `down`; cover when it crosses back above `up`."""

    side = "short"
    n = 10
    down = -5.0
    up = 0.0

    def setup(self) -> None:
        self.r = self.I(roc, self.data.Close, self.n)

    def enter(self) -> bool:
        return crossover(self.down, self.r)

    def leave(self) -> bool:
        return crossover(self.r, self.up)


class RefVolumeSurge(_Rules):
    """The `vol_fast`-bar average volume crossing above the `vol_slow`-bar one, with the close
    above SMA(n), buys; a close below the SMA or RSI above `high` (either) sells."""

    vol_fast = 5
    vol_slow = 50
    n = 20
    rsi_n = 14
    high = 75.0

    def setup(self) -> None:
        self.vf = self.I(sma, self.data.Volume, self.vol_fast)
        self.vs = self.I(sma, self.data.Volume, self.vol_slow)
        self.avg = self.I(sma, self.data.Close, self.n)
        self.r = self.I(rsi, self.data.Close, self.rsi_n)

    def enter(self) -> bool:
        return crossover(self.vf, self.vs) and bool(self.data.Close[-1] > self.avg[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.avg[-1] or self.r[-1] > self.high)


class RefCloseFlip(_Rules):
    """Both ways: the close crossing above a moving average goes long, crossing below goes
    short, each reversing the other (a trailing stop closes without reversing)."""

    side = "both"
    ma = "ema"
    n = 50

    def setup(self) -> None:
        self.avg = self.I(_ma, self.ma, self.data.Close, self.n)

    def enter(self) -> bool:
        return crossover(self.data.Close, self.avg)

    def enter_short(self) -> bool:
        return crossover(self.avg, self.data.Close)


class RefBandRide(_Rules):
    """The close crossing above the upper band buys; the close crossing below the lower band
    sells."""

    n = 20
    k = 2.0

    def setup(self) -> None:
        self.b = self.I(bollinger, self.data.Close, self.n, self.k)

    def enter(self) -> bool:
        return crossover(self.data.Close, self.b[2])

    def leave(self) -> bool:
        return crossover(self.b[0], self.data.Close)


class RefFilteredCross(_Rules):
    """MA(fast) crossing above MA(slow) with the close above MA(trend) buys; the cross back down
    sells (all three of kind `ma`)."""

    ma = "ema"
    fast = 12
    slow = 26
    trend = 200

    def setup(self) -> None:
        self.f = self.I(_ma, self.ma, self.data.Close, self.fast)
        self.s = self.I(_ma, self.ma, self.data.Close, self.slow)
        self.t = self.I(_ma, self.ma, self.data.Close, self.trend)

    def enter(self) -> bool:
        return crossover(self.f, self.s) and bool(self.data.Close[-1] > self.t[-1])

    def leave(self) -> bool:
        return crossover(self.s, self.f)


class RefBandPierce(_Rules):
    """The low below the lower band while the close is above it buys; a close above the middle
    band sells."""

    n = 20
    k = 2.0

    def setup(self) -> None:
        self.b = self.I(bollinger, self.data.Close, self.n, self.k)

    def enter(self) -> bool:
        lower = self.b[0][-1]
        return bool(self.data.Low[-1] < lower and self.data.Close[-1] > lower)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] > self.b[1][-1])


class RefDualRoc(_Rules):
    """ROC(a) and ROC(b) both above zero buys; either below zero sells."""

    a = 20
    b = 120

    def setup(self) -> None:
        self.ra = self.I(roc, self.data.Close, self.a)
        self.rb = self.I(roc, self.data.Close, self.b)

    def enter(self) -> bool:
        return bool(self.ra[-1] > 0 and self.rb[-1] > 0)

    def leave(self) -> bool:
        return bool(self.ra[-1] < 0 or self.rb[-1] < 0)


class RefVolumeBreakdown(_Rules):
    """Short when the close crosses below the previous n bars' lowest low on volume above its
    `vol_n`-bar average; no signal exit (the time exit and stops cover)."""

    side = "short"
    n = 20
    vol_n = 50

    def setup(self) -> None:
        self.lo = self.I(rolling_min, self.data.Low, self.n)
        self.vma = self.I(sma, self.data.Volume, self.vol_n)

    def enter(self) -> bool:
        loud = bool(self.data.Volume[-1] > self.vma[-1])
        return loud and crossover(self.lo, self.data.Close)


class RefMacdFlip(_Rules):
    """Both ways: the MACD line crossing above its signal (the histogram above zero) goes long,
    crossing below goes short, each reversing the other."""

    side = "both"
    fast = 12
    slow = 26
    signal = 9

    def setup(self) -> None:
        self.h = self.I(_hist, self.data.Close, self.fast, self.slow, self.signal)

    def enter(self) -> bool:
        return crossover(self.h, 0.0)

    def enter_short(self) -> bool:
        return crossover(0.0, self.h)


class RefRocFlip(_Rules):
    """Both ways: ROC(n) crossing above `up` goes long, crossing below `down` goes short, each
    reversing the other."""

    side = "both"
    n = 3
    up = 10.0
    down = -10.0

    def setup(self) -> None:
        self.r = self.I(roc, self.data.Close, self.n)

    def enter(self) -> bool:
        return crossover(self.r, self.up)

    def enter_short(self) -> bool:
        return crossover(self.down, self.r)


class RefPullback(_Rules):
    """With EMA(fast) above EMA(slow), the close crossing above EMA(fast) buys; a close below
    EMA(slow) sells."""

    fast = 20
    slow = 50

    def setup(self) -> None:
        self.f = self.I(_ma, "ema", self.data.Close, self.fast)
        self.s = self.I(_ma, "ema", self.data.Close, self.slow)

    def enter(self) -> bool:
        trend = bool(self.f[-1] > self.s[-1])
        return trend and crossover(self.data.Close, self.f)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.s[-1])


class RefEitherMomentum(_Rules):
    """RSI crossing above `cross_level` or the MACD line crossing above its signal (either)
    buys; RSI below `exit_level` and the MACD line below its signal (both) sells."""

    rsi_n = 14
    cross_level = 50.0
    exit_level = 45.0

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.rsi_n)
        self.h = self.I(_hist, self.data.Close, 12, 26, 9)

    def enter(self) -> bool:
        return crossover(self.r, self.cross_level) or crossover(self.h, 0.0)

    def leave(self) -> bool:
        return bool(self.r[-1] < self.exit_level and self.h[-1] < 0)


class RefRsiPair(_Rules):
    """RSI(fast) crossing above RSI(slow) buys; the cross back below sells."""

    fast = 5
    slow = 20

    def setup(self) -> None:
        self.f = self.I(rsi, self.data.Close, self.fast)
        self.s = self.I(rsi, self.data.Close, self.slow)

    def enter(self) -> bool:
        return crossover(self.f, self.s)

    def leave(self) -> bool:
        return crossover(self.s, self.f)


class RefQuietPullback(_Rules):
    """The close above SMA(trend) and below EMA(n), with volume under its `vol_n`-bar average
    (all three), buys; the close crossing above EMA(n) sells."""

    trend = 100
    n = 20
    vol_n = 20

    def setup(self) -> None:
        self.t = self.I(sma, self.data.Close, self.trend)
        self.e = self.I(_ma, "ema", self.data.Close, self.n)
        self.vma = self.I(sma, self.data.Volume, self.vol_n)

    def enter(self) -> bool:
        c = self.data.Close[-1]
        quiet = self.data.Volume[-1] < self.vma[-1]
        return bool(c > self.t[-1] and c < self.e[-1] and quiet)

    def leave(self) -> bool:
        return crossover(self.data.Close, self.e)


class RefBandBreakShort(_Rules):
    """Short when the close crosses below the lower band; cover on a close above the middle."""

    side = "short"
    n = 20
    k = 2.0

    def setup(self) -> None:
        self.b = self.I(bollinger, self.data.Close, self.n, self.k)

    def enter(self) -> bool:
        return crossover(self.b[0], self.data.Close)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] > self.b[1][-1])


class RefStreakTrend(_Rules):
    """`n` consecutive down closes with the close above SMA(trend) buys; the close crossing
    above SMA(m) sells."""

    n = 3
    trend = 200
    m = 10

    def setup(self) -> None:
        self.down = self.I(_streak, self.data.Close, False)
        self.t = self.I(sma, self.data.Close, self.trend)
        self.x = self.I(sma, self.data.Close, self.m)

    def enter(self) -> bool:
        return bool(self.down[-1] >= self.n and self.data.Close[-1] > self.t[-1])

    def leave(self) -> bool:
        return crossover(self.data.Close, self.x)
