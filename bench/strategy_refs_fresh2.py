"""Hand-written reference strategies for the second fresh request set (`strategy_cases_fresh2`).

Each reference implements a request's words under the compiler's documented semantics (module
docstring of `agents.quant.compiler`), written without reading the code that reads requests:
crosses are `backtesting.lib.crossover`; highest high / lowest low are of the *previous* n bars;
above / below compare strictly; one position at a time; a stop loss, ATR stop (ATR 14) and take
profit are set on the order from the signal bar's close; a trailing stop closes when the close is
that far from the best close since the signal bar; a time exit closes once `hold_bars` bars have
passed since the entry bar; `both` reverses (close, then open) and, if both fire when flat, goes
long. Orders fill at the next open.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from backtesting.lib import crossover

from agents.quant.corpus import bollinger, macd, roc, rolling_max, rolling_min, rsi, sma
from bench.strategy_cases import _ma, _streak
from bench.strategy_cases_fresh import _Managed


def _hist(values: Any, fast: int, slow: int, signal: int) -> np.ndarray:
    """MACD histogram: the line minus its signal line."""
    line, sig = macd(values, fast, slow, signal)
    return np.asarray(line - sig)


class _Rules(_Managed):
    """`side` long / short: `enter()` opens when flat (a short if short); `leave()`, the time exit
    or the trailing stop closes. `side` both: `enter()` goes long, `enter_short()` short, each
    reversing the other; `leave()` / `leave_short()` (default never) close without reversing.
    Stops, target and size go on the order."""

    def enter_short(self) -> bool:
        return False

    def leave_short(self) -> bool:
        return False

    def _guards(self) -> bool:
        """The time exit or the trailing stop says close."""
        return bool(self.hold_bars and self._held() >= self.hold_bars) or self._trailed()

    def next(self) -> None:
        if self.side != "both":
            if not self.position:
                if self.enter():
                    self._open(self.side == "long")
            elif self.leave() or self._guards():
                self.position.close()
            return
        if self.position.is_long:
            if self.enter_short():
                self.position.close()
                self._open(False)
            elif self.leave() or self._guards():
                self.position.close()
        elif self.position.is_short:
            if self.enter():
                self.position.close()
                self._open(True)
            elif self.leave_short() or self._guards():
                self.position.close()
        elif self.enter():
            self._open(True)
        elif self.enter_short():
            self._open(False)


class RefXover(_Rules):
    """Fast MA crossing above the slow one is the long signal, crossing below the short one;
    a long closes on the cross down, a short on the cross up (both: they reverse)."""

    ma = "sma"
    fast = 10
    slow = 30

    def setup(self) -> None:
        self.f = self.I(_ma, self.ma, self.data.Close, self.fast)
        self.s = self.I(_ma, self.ma, self.data.Close, self.slow)

    def _up(self) -> bool:
        return crossover(self.f, self.s)

    def _down(self) -> bool:
        return crossover(self.s, self.f)

    def enter(self) -> bool:
        return self._down() if self.side == "short" else self._up()

    def leave(self) -> bool:
        return self._up() if self.side == "short" else self._down()

    def enter_short(self) -> bool:
        return self._down()


class RefCloseVsMa(_Rules):
    """The close crossing above a moving average opens a long (short: crossing below); the
    cross back the other way closes it."""

    ma = "ema"
    n = 20

    def setup(self) -> None:
        self.avg = self.I(_ma, self.ma, self.data.Close, self.n)

    def enter(self) -> bool:
        if self.side == "short":
            return crossover(self.avg, self.data.Close)
        return crossover(self.data.Close, self.avg)

    def leave(self) -> bool:
        if self.side == "short":
            return crossover(self.data.Close, self.avg)
        return crossover(self.avg, self.data.Close)


class RefRsiZone(_Rules):
    """RSI below `low` buys (`crossing`: RSI crossing up through it); RSI above `high` sells
    (`crossing`: crossing down through it). `signal_exit=False`: only the time exit and stops."""

    n = 14
    low = 30.0
    high = 70.0
    crossing = False
    signal_exit = True

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def enter(self) -> bool:
        return crossover(self.r, self.low) if self.crossing else bool(self.r[-1] < self.low)

    def leave(self) -> bool:
        if not self.signal_exit:
            return False
        return crossover(self.high, self.r) if self.crossing else bool(self.r[-1] > self.high)


class RefMacdTurn(_Rules):
    """The MACD histogram crossing above zero (= the line crossing above its signal) buys, the
    cross below sells; short side: the other way round. Optional trend filter on entry (the
    close above SMA(trend)); `signal_exit=False`: only the time exit and stops close."""

    fast = 12
    slow = 26
    signal = 9
    trend = 0
    signal_exit = True

    def setup(self) -> None:
        self.h = self.I(_hist, self.data.Close, self.fast, self.slow, self.signal)
        if self.trend:
            self.t = self.I(sma, self.data.Close, self.trend)

    def _up(self) -> bool:
        return crossover(self.h, 0.0)

    def _down(self) -> bool:
        return crossover(0.0, self.h)

    def enter(self) -> bool:
        if self.side == "short":
            return self._down()
        return self._up() and (not self.trend or bool(self.data.Close[-1] > self.t[-1]))

    def leave(self) -> bool:
        if not self.signal_exit:
            return False
        return self._up() if self.side == "short" else self._down()


class RefMacdRsiState(_Rules):
    """MACD line above its signal and RSI above `enter_rsi` (both) buys; MACD below its signal
    or RSI below `exit_rsi` (either) sells."""

    rsi_n = 14
    enter_rsi = 50.0
    exit_rsi = 40.0

    def setup(self) -> None:
        self.h = self.I(_hist, self.data.Close, 12, 26, 9)
        self.r = self.I(rsi, self.data.Close, self.rsi_n)

    def enter(self) -> bool:
        return bool(self.h[-1] > 0 and self.r[-1] > self.enter_rsi)

    def leave(self) -> bool:
        return bool(self.h[-1] < 0 or self.r[-1] < self.exit_rsi)


class RefBandRevert(_Rules):
    """Lower-band mean reversion: a close below the lower band buys (`cross_in`: the close
    crossing back above the lower band); a close above the `exit_at` band sells."""

    n = 20
    k = 2.0
    cross_in = False
    exit_at = "middle"  # or "upper"

    def setup(self) -> None:
        self.b = self.I(bollinger, self.data.Close, self.n, self.k)

    def enter(self) -> bool:
        lower = self.b[0]
        if self.cross_in:
            return crossover(self.data.Close, lower)
        return bool(self.data.Close[-1] < lower[-1])

    def leave(self) -> bool:
        band = self.b[2] if self.exit_at == "upper" else self.b[1]
        return bool(self.data.Close[-1] > band[-1])


class RefChannel(_Rules):
    """The close crossing above the previous n bars' highest high buys; a close below the
    previous m bars' lowest low sells (m = 0: no signal exit, the time exit and stops only)."""

    n = 20
    m = 0

    def setup(self) -> None:
        self.hi = self.I(rolling_max, self.data.High, self.n)
        self.lo = self.I(rolling_min, self.data.Low, self.m or 1)

    def enter(self) -> bool:
        return crossover(self.data.Close, self.hi)

    def leave(self) -> bool:
        return bool(self.m and self.data.Close[-1] < self.lo[-1])


class RefChannelFlip(_Rules):
    """Always in after the first signal: the close crossing above the previous n bars' highest
    high goes long, crossing below their lowest low goes short, each reversing the other."""

    side = "both"
    n = 20

    def setup(self) -> None:
        self.hi = self.I(rolling_max, self.data.High, self.n)
        self.lo = self.I(rolling_min, self.data.Low, self.n)

    def enter(self) -> bool:
        return crossover(self.data.Close, self.hi)

    def enter_short(self) -> bool:
        return crossover(self.lo, self.data.Close)


class RefBreakdownShort(_Rules):
    """Short a close below the previous n bars' lowest low; cover on a close above SMA(m)."""

    side = "short"
    n = 15
    m = 15

    def setup(self) -> None:
        self.lo = self.I(rolling_min, self.data.Low, self.n)
        self.avg = self.I(sma, self.data.Close, self.m)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] < self.lo[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] > self.avg[-1])


class RefRocCross(_Rules):
    """Rate of change crossing up through `up` buys; crossing down through `down` sells."""

    n = 10
    up = 0.0
    down = 0.0

    def setup(self) -> None:
        self.r = self.I(roc, self.data.Close, self.n)

    def enter(self) -> bool:
        return crossover(self.r, self.up)

    def leave(self) -> bool:
        return crossover(self.down, self.r)


class RefStreakRun(_Rules):
    """`enter_n` consecutive up (`enter_up`) or down closes open; `exit_n` consecutive closes the
    other way close (0: no signal exit, the time exit and stops only)."""

    enter_n = 3
    enter_up = True
    exit_n = 0

    def setup(self) -> None:
        self.up = self.I(_streak, self.data.Close, True)
        self.down = self.I(_streak, self.data.Close, False)

    def enter(self) -> bool:
        return bool((self.up if self.enter_up else self.down)[-1] >= self.enter_n)

    def leave(self) -> bool:
        other = self.down if self.enter_up else self.up
        return bool(self.exit_n and other[-1] >= self.exit_n)


class RefVolumeAboveEma(_Rules):
    """The close above EMA(n) and volume above its `vol_n`-bar average (both, a state) buys; a
    close below the EMA sells."""

    n = 10
    vol_n = 50

    def setup(self) -> None:
        self.avg = self.I(_ma, "ema", self.data.Close, self.n)
        self.vma = self.I(sma, self.data.Volume, self.vol_n)

    def enter(self) -> bool:
        close = self.data.Close[-1]
        return bool(close > self.avg[-1] and self.data.Volume[-1] > self.vma[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.avg[-1])


class RefVolumeCrossShort(_Rules):
    """Short when the close crosses below SMA(n) on volume above its `vol_n`-bar average; cover
    on a close above the SMA."""

    side = "short"
    n = 5
    vol_n = 20

    def setup(self) -> None:
        self.avg = self.I(sma, self.data.Close, self.n)
        self.vma = self.I(sma, self.data.Volume, self.vol_n)

    def enter(self) -> bool:
        loud = bool(self.data.Volume[-1] > self.vma[-1])
        return loud and crossover(self.avg, self.data.Close)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] > self.avg[-1])
