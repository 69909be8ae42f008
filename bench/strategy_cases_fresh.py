"""A fresh request set for the strategy builder, written without reading its request reader.

Written after the service, by someone who read only the spec (`agents.quant.spec`), the
compiler's semantics (`agents.quant.compiler`'s module docstring) and `bench/strategy_cases.py`
— never the code that reads requests, its prompts or its claim checks — to estimate how the
service generalises to requests nobody tuned it on. Report it on its own (`--set fresh`); never
use it to tune prompts, examples or rules.

The cases use the main set's `Case` and `_c`; `Split` has no "fresh", so they are written as
`split="heldout"` with ids starting with "f" (the runner relabels them "fresh"). Each specific
case's reference implements the request's words under the compiler's semantics: values the
request leaves out take `agents.quant.spec.DEFAULTS`; crosses are `backtesting.lib.crossover`;
highest high / lowest low are of the *previous* n bars; stops are set from the signal bar's close
and guard a position on top of its signal exit; orders fill at the next open.

Data: GOOG is daily (2004-2013), EURUSD hourly (5000 bars), BTCUSD monthly (156 bars), so the
EURUSD and BTCUSD requests speak of bars / hours / months. Dates in a request do not change
the judge: generated and reference strategies both run on the symbol's full data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant.corpus import bollinger, ema, macd, roc, rolling_max, rolling_min, rsi, sma
from bench.strategy_cases import (
    Case,
    RefMaCross,
    RefPriceVsMa,
    RefTrendRsi,
    Split,
    _c,
    _ma,
    _streak,
)


def _atr(high: Any, low: Any, close: Any, n: int) -> np.ndarray:
    """Average true range, Wilder-smoothed."""
    h, lo, prev = pd.Series(high), pd.Series(low), pd.Series(close).shift(1)
    true_range = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    return true_range.ewm(alpha=1 / n, adjust=False, min_periods=n).mean().to_numpy()


class _Managed(Strategy):
    """One side (long or short): `enter()` opens when flat; `leave()`, max bars or a trailing stop
    closes; stop loss / ATR stop / take profit / size go on the order."""

    side = "long"
    sl_pct = 0.0
    tp_pct = 0.0
    atr_mult = 0.0
    trail_pct = 0.0
    hold_bars = 0
    size = 0.0

    def init(self) -> None:
        if self.atr_mult:
            self.atr = self.I(_atr, self.data.High, self.data.Low, self.data.Close, 14)
        self.setup()

    def setup(self) -> None:
        raise NotImplementedError

    def enter(self) -> bool:
        raise NotImplementedError

    def leave(self) -> bool:
        return False

    def _open(self, long: bool) -> None:
        price = self.data.Close[-1]
        kw: dict[str, float] = {}
        if self.size:
            kw["size"] = self.size
        stops = []
        if self.sl_pct:
            stops.append(price * (1 - self.sl_pct / 100 if long else 1 + self.sl_pct / 100))
        if self.atr_mult:
            stops.append(price - self.atr_mult * self.atr[-1] * (1 if long else -1))
        if stops:
            kw["sl"] = max(stops) if long else min(stops)
        if self.tp_pct:
            kw["tp"] = price * (1 + self.tp_pct / 100 if long else 1 - self.tp_pct / 100)
        (self.buy if long else self.sell)(**kw)

    def _held(self) -> int:
        return len(self.data) - 1 - self.trades[-1].entry_bar

    def _trailed(self) -> bool:
        """The close has fallen trail_pct from the best close since the signal bar (a short: risen
        from the lowest)."""
        if not self.trail_pct:
            return False
        trade = self.trades[-1]
        closes = self.data.Close[trade.entry_bar - 1 :]
        pct = self.trail_pct / 100
        if trade.is_long:
            return bool(self.data.Close[-1] <= closes.max() * (1 - pct))
        return bool(self.data.Close[-1] >= closes.min() * (1 + pct))

    def next(self) -> None:
        if not self.position:
            if self.enter():
                self._open(self.side == "long")
        elif self.leave() or (self.hold_bars and self._held() >= self.hold_bars) or self._trailed():
            self.position.close()


class RefRsiDip(_Managed):
    """RSI below `low` buys; RSI crossing back above `exit_level` sells."""

    n = 14
    low = 30.0
    exit_level = 50.0

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def enter(self) -> bool:
        return bool(self.r[-1] < self.low)

    def leave(self) -> bool:
        return crossover(self.r, self.exit_level)


class RefMacdSignal(_Managed):
    """MACD line crossing above its signal line buys; the cross back down sells (if
    `cross_exit`, else only max bars and stops close)."""

    fast = 12
    slow = 26
    signal = 9
    cross_exit = True

    def setup(self) -> None:
        self.m = self.I(macd, self.data.Close, self.fast, self.slow, self.signal)

    def enter(self) -> bool:
        return crossover(self.m[0], self.m[1])

    def leave(self) -> bool:
        return bool(self.cross_exit and crossover(self.m[1], self.m[0]))


class RefMacdAboveZero(_Managed):
    """MACD line above zero buys (a state, not a cross), below zero sells."""

    fast = 12
    slow = 26
    signal = 9

    def setup(self) -> None:
        self.m = self.I(macd, self.data.Close, self.fast, self.slow, self.signal)

    def enter(self) -> bool:
        return bool(self.m[0][-1] > 0)

    def leave(self) -> bool:
        return bool(self.m[0][-1] < 0)


class RefBandBreakout(_Managed):
    """The close crossing above the upper band buys; a close below the middle band sells."""

    n = 20
    k = 2.0

    def setup(self) -> None:
        self.b = self.I(bollinger, self.data.Close, self.n, self.k)

    def enter(self) -> bool:
        return crossover(self.data.Close, self.b[2])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.b[1][-1])


class RefChannelBreakout(_Managed):
    """The close crossing above the previous n bars' highest high buys; a close below the
    previous m bars' lowest low sells."""

    n = 20
    m = 10

    def setup(self) -> None:
        self.hi = self.I(rolling_max, self.data.High, self.n)
        self.lo = self.I(rolling_min, self.data.Low, self.m)

    def enter(self) -> bool:
        return crossover(self.data.Close, self.hi)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.lo[-1])


class RefBandShort(_Managed):
    """Short a close above the upper band; cover on a close below the middle band."""

    side = "short"
    n = 20
    k = 2.0

    def setup(self) -> None:
        self.b = self.I(bollinger, self.data.Close, self.n, self.k)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] > self.b[2][-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.b[1][-1])


class RefLowReversion(_Managed):
    """A close below the previous n bars' lowest low buys; a close above SMA(m) sells."""

    n = 10
    m = 5

    def setup(self) -> None:
        self.lo = self.I(rolling_min, self.data.Low, self.n)
        self.avg = self.I(sma, self.data.Close, self.m)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] < self.lo[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] > self.avg[-1])


class RefStreakHold(_Managed):
    """`n` consecutive up (or down) closes buy; the position is held `hold_bars` bars."""

    n = 3
    up = True
    hold_bars = 5

    def setup(self) -> None:
        self.streak = self.I(_streak, self.data.Close, self.up)

    def enter(self) -> bool:
        return bool(self.streak[-1] >= self.n)


class RefPriceLevel(_Managed):
    """A close above a fixed price buys, a close below another sells (levels in dollars)."""

    enter_level = 600.0
    exit_level = 550.0
    price_unit = 1.0  # set by the engine: prices inside the strategy are in its trading unit

    def setup(self) -> None:
        pass

    def enter(self) -> bool:
        return bool(self.data.Close[-1] > self.enter_level * self.price_unit)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.exit_level * self.price_unit)


class RefTrendDip(_Managed):
    """Close above SMA(n) and RSI below `level` buys; close below the SMA or RSI above sells."""

    n = 100
    rsi_n = 14
    level = 45.0

    def setup(self) -> None:
        self.avg = self.I(sma, self.data.Close, self.n)
        self.r = self.I(rsi, self.data.Close, self.rsi_n)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] > self.avg[-1] and self.r[-1] < self.level)

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.avg[-1] or self.r[-1] > self.level)


class RefAboveMa(_Managed):
    """The close above a moving average buys (a state: again after a stop), below it sells."""

    ma = "sma"
    n = 20

    def setup(self) -> None:
        self.avg = self.I(_ma, self.ma, self.data.Close, self.n)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] > self.avg[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.avg[-1])


class RefSmaState(_Managed):
    """SMA(fast) above SMA(slow) buys (a state: again after a stop), below it sells."""

    fast = 10
    slow = 30

    def setup(self) -> None:
        self.f = self.I(sma, self.data.Close, self.fast)
        self.s = self.I(sma, self.data.Close, self.slow)

    def enter(self) -> bool:
        return bool(self.f[-1] > self.s[-1])

    def leave(self) -> bool:
        return bool(self.f[-1] < self.s[-1])


class RefBreakoutTimed(_Managed):
    """The close crossing above the previous n bars' highest high buys; no signal exit."""

    n = 20

    def setup(self) -> None:
        self.hi = self.I(rolling_max, self.data.High, self.n)

    def enter(self) -> bool:
        return crossover(self.data.Close, self.hi)


class RefMaStateFilter(_Managed):
    """EMA(fast) above EMA(slow) and the close above SMA(trend) buys; EMA(fast) below sells."""

    fast = 5
    slow = 15
    trend = 200

    def setup(self) -> None:
        self.f = self.I(ema, self.data.Close, self.fast)
        self.s = self.I(ema, self.data.Close, self.slow)
        self.t = self.I(sma, self.data.Close, self.trend)

    def enter(self) -> bool:
        return bool(self.f[-1] > self.s[-1] and self.data.Close[-1] > self.t[-1])

    def leave(self) -> bool:
        return bool(self.f[-1] < self.s[-1])


class RefBreakdownShort(_Managed):
    """Short a close below the previous n bars' lowest low; cover above the previous m's high."""

    side = "short"
    n = 20
    m = 10

    def setup(self) -> None:
        self.lo = self.I(rolling_min, self.data.Low, self.n)
        self.hi = self.I(rolling_max, self.data.High, self.m)

    def enter(self) -> bool:
        return bool(self.data.Close[-1] < self.lo[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] > self.hi[-1])


class RefVolumeBreakout(_Managed):
    """Volume above its average and the close crossing the prior n-bar high buy; a close below
    the prior m-bar low sells."""

    n = 10
    m = 10
    vol_n = 20

    def setup(self) -> None:
        self.hi = self.I(rolling_max, self.data.High, self.n)
        self.lo = self.I(rolling_min, self.data.Low, self.m)
        self.vma = self.I(sma, self.data.Volume, self.vol_n)

    def enter(self) -> bool:
        return bool(crossover(self.data.Close, self.hi) and self.data.Volume[-1] > self.vma[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.lo[-1])


class RefRsiCrossTrend(_Managed):
    """RSI crossing above `level` with the close above SMA(n) buys; a close below the SMA sells."""

    rsi_n = 14
    level = 50.0
    n = 50

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.rsi_n)
        self.avg = self.I(sma, self.data.Close, self.n)

    def enter(self) -> bool:
        return bool(crossover(self.r, self.level) and self.data.Close[-1] > self.avg[-1])

    def leave(self) -> bool:
        return bool(self.data.Close[-1] < self.avg[-1])


class RefRsiBand(_Managed):
    """RSI below `low` opens (long, or short: above `high`), the other level closes."""

    n = 14
    low = 30.0
    high = 70.0

    def setup(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def enter(self) -> bool:
        return bool(self.r[-1] < self.low if self.side == "long" else self.r[-1] > self.high)

    def leave(self) -> bool:
        return bool(self.r[-1] > self.high if self.side == "long" else self.r[-1] < self.low)


class RefRocBand(_Managed):
    """Rate of change above `high` buys, below `low` sells."""

    n = 10
    high = 5.0
    low = -5.0

    def setup(self) -> None:
        self.r = self.I(roc, self.data.Close, self.n)

    def enter(self) -> bool:
        return bool(self.r[-1] > self.high)

    def leave(self) -> bool:
        return bool(self.r[-1] < self.low)


class RefRsiFlip(Strategy):
    """Always in: RSI crossing up through `long_level` goes long, crossing down through
    `short_level` goes short, each reversing the other."""

    n = 14
    long_level = 40.0
    short_level = 60.0

    def init(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def next(self) -> None:
        up, down = crossover(self.r, self.long_level), crossover(self.short_level, self.r)
        if self.position.is_long:
            if down:
                self.position.close()
                self.sell()
        elif self.position.is_short:
            if up:
                self.position.close()
                self.buy()
        elif up:
            self.buy()
        elif down:
            self.sell()


class RefRegimeFlip(Strategy):
    """Long while the close is above SMA(n), short while below, each reversing the other."""

    n = 100

    def init(self) -> None:
        self.avg = self.I(sma, self.data.Close, self.n)

    def next(self) -> None:
        above = self.data.Close[-1] > self.avg[-1]
        below = self.data.Close[-1] < self.avg[-1]
        if self.position.is_long:
            if below:
                self.position.close()
                self.sell()
        elif self.position.is_short:
            if above:
                self.position.close()
                self.buy()
        elif above:
            self.buy()
        elif below:
            self.sell()


_H: Split = (
    "heldout"  # `Split` has no "fresh": the runner relabels these cases (ids start with "f")
)

FRESH_CASES: tuple[Case, ...] = (
    # ---- specific, English -------------------------------------------------------------------
    # "RSI14" shorthand, a level entry, a crossing exit at a different level.
    _c(
        "f01",
        _H,
        "en",
        "RSI14 < 30 -> buy. Exit once RSI crosses back above 50.",
        RefRsiDip,
        n=14,
        low=30.0,
        exit_level=50.0,
    ),
    # non-standard MACD windows; a time exit with a trailing stop and no signal exit.
    _c(
        "f02",
        _H,
        "en",
        "MACD(8,21,5): go long when the MACD line crosses its signal line from below. Exit after "
        "10 bars, or earlier if a 2% trailing stop gets hit.",
        RefMacdSignal,
        fast=8,
        slow=21,
        signal=5,
        cross_exit=False,
        hold_bars=10,
        trail_pct=2.0,
    ),
    # Bollinger with non-default width: cross above the upper band, exit on a close under mid.
    _c(
        "f03",
        _H,
        "en",
        "Ticket: BB(10, 1.5) breakout. Enter long when the close crosses above the upper band; "
        "exit when it closes back under the middle band.",
        RefBandBreakout,
        n=10,
        k=1.5,
    ),
    # lowest low of the previous bars as an entry, a different series (SMA 5) as the exit.
    _c(
        "f04",
        _H,
        "en",
        "Buy when GOOG closes below the lowest low of the prior 10 sessions, sell when the close "
        "gets back above the 5-day SMA.",
        RefLowReversion,
        n=10,
        m=5,
    ),
    # a down streak in words, a time exit instead of a signal exit, and a stop loss.
    _c(
        "f05",
        _H,
        "en",
        "After four straight down closes, go long and hold for five sessions. 3% stop loss.",
        RefStreakHold,
        n=4,
        up=False,
        hold_bars=5,
        sl_pct=3.0,
    ),
    # BTCUSD monthly bars, an SMA-over-SMA state (re-entered after a stop), a stop in words.
    _c(
        "f06",
        _H,
        "en",
        "BTCUSD on the monthly bars: be long while the 3-bar SMA is above the 9-bar SMA, flat "
        "when it's below; cut the trade if it is 20% under water.",
        RefSmaState,
        symbol="BTCUSD",
        fast=3,
        slow=9,
        sl_pct=20.0,
    ),
    # EURUSD hourly channel breakout with a different exit channel, a small stop and target.
    _c(
        "f07",
        _H,
        "en",
        "EURUSD 1h - buy on a close crossing above the prior 24-bar high, sell on a close below "
        "the prior 12-bar low. SL 0.3% / TP 0.6%.",
        RefChannelBreakout,
        symbol="EURUSD",
        n=24,
        m=12,
        sl_pct=0.3,
        tp_pct=0.6,
    ),
    # fixed dollar price levels on the close (price_unit scaling).
    _c(
        "f08",
        _H,
        "en",
        "Buy GOOG when it closes above $600 and get out if it closes under $550.",
        RefPriceLevel,
        enter_level=600.0,
        exit_level=550.0,
    ),
    # direction both with two different crossing rules; always in the market, EURUSD.
    _c(
        "f09",
        _H,
        "en",
        "EURUSD 1h, always in the market: go long when RSI(14) crosses up through 40, flip "
        "short when it crosses down through 60.",
        RefRsiFlip,
        symbol="EURUSD",
        n=14,
        long_level=40.0,
        short_level=60.0,
    ),
    # an "all" entry and an explicit "any" exit (either condition failing).
    _c(
        "f10",
        _H,
        "en",
        "Long GOOG when it's above the 100-day SMA and RSI(14) is under 45 (both must hold); "
        "exit as soon as either one fails, i.e. close below the SMA or RSI over 45.",
        RefTrendDip,
        n=100,
        rsi_n=14,
        level=45.0,
    ),
    # numbers in words; long while above an EMA (re-entered after a stop), TP and SL.
    _c(
        "f11",
        _H,
        "en",
        "Stay long while price is above the fifty-day EMA and go flat when it closes below it. "
        "Take profit at fifteen percent, stop out at five percent.",
        RefAboveMa,
        ma="ema",
        n=50,
        sl_pct=5.0,
        tp_pct=15.0,
    ),
    # breakout with no signal exit: max bars and an ATR-multiple stop only.
    _c(
        "f12",
        _H,
        "en",
        "When the close crosses above the prior 50-day high, buy. No signal exit: hold at most "
        "20 bars, with a protective stop at 2.5x ATR.",
        RefBreakoutTimed,
        n=50,
        hold_bars=20,
        atr_mult=2.5,
    ),
    # short on an RSI level with a trailing stop (trails from the lowest close) and dates.
    _c(
        "f13",
        _H,
        "en",
        "Short GOOG when RSI(14) is above 75 and cover once it's back under 50, with a 6% "
        "trailing stop. Test window 2008-01-01 to 2012-12-31.",
        RefRsiBand,
        side="short",
        n=14,
        low=50.0,
        high=75.0,
        trail_pct=6.0,
    ),
    # "above" as a state (not a cross), a trend filter, partial sizing stated as a fraction.
    _c(
        "f14",
        _H,
        "en",
        "Put a quarter of equity in each trade. if EMA(5) > EMA(15) and close > SMA(200) then go "
        "long; exit when EMA(5) < EMA(15).",
        RefMaStateFilter,
        fast=5,
        slow=15,
        trend=200,
        size=0.25,
    ),
    # ---- specific, Korean --------------------------------------------------------------------
    # colloquial RSI levels plus a trend filter on entry only.
    _c(
        "f15",
        _H,
        "ko",
        "RSI(9)가 25 밑으로 떨어지면 사고 75 넘으면 팔아. 단, 종가가 200일선 위에 있을 때만 진입",
        RefTrendRsi,
        n=200,
        rsi_n=9,
        low=25.0,
        high=75.0,
    ),
    # golden/dead cross slang, a trailing stop as "8% off the highest close" (the judge, which
    # compares entries, cannot see this stop: a new entry needs a new golden cross anyway).
    _c(
        "f16",
        _H,
        "ko",
        "20일선이 60일선을 골든크로스하면 사고 데드크로스 나면 파는데, 매수 후 최고 종가 대비 8% "
        "빠지면 바로 청산",
        RefMaCross,
        fast=20,
        slow=60,
        trail_pct=8.0,
    ),
    # short on a break of the prior 20-day low, cover above the prior 10-day high.
    _c(
        "f17",
        _H,
        "ko",
        "종가가 직전 20일 최저가 아래로 내려가면 공매도, 직전 10일 최고가 위로 올라가면 숏 청산",
        RefBreakdownShort,
        n=20,
        m=10,
    ),
    # MACD line above the zero line as a state (re-entered after a stop), a date range.
    _c(
        "f18",
        _H,
        "ko",
        "2007년부터 2012년까지 구간에서 MACD선이 0선 위에 있으면 매수, 0선 아래로 내려가면 "
        "매도. 손절 3%",
        RefMacdAboveZero,
        sl_pct=3.0,
    ),
    # short mean reversion on a wide band, Korean trading slang (숏 진입 / 환매).
    _c(
        "f19",
        _H,
        "ko",
        "볼린저밴드(20, 2.5) 상단 위에서 마감하면 숏 진입, 중심선 아래로 내려오면 환매",
        RefBandShort,
        n=20,
        k=2.5,
    ),
    # up streak, a time exit and a take profit, no signal exit.
    _c(
        "f20",
        _H,
        "ko",
        "종가 기준 3일 연속 상승 마감하면 따라 사고, 7거래일 뒤에 판다. 익절은 4%",
        RefStreakHold,
        n=3,
        up=True,
        hold_bars=7,
        tp_pct=4.0,
    ),
    # BTCUSD monthly bars: price vs a 6-month SMA, crossing both ways.
    _c(
        "f21",
        _H,
        "ko",
        "비트코인 월봉 기준으로 종가가 6개월 이동평균선을 상향 돌파하면 매수, 하향 돌파하면 매도",
        RefPriceVsMa,
        symbol="BTCUSD",
        n=6,
    ),
    # volume filter AND a breakout cross; exit on the prior 10-day low.
    _c(
        "f22",
        _H,
        "ko",
        "거래량이 20일 평균보다 많은 날 종가가 직전 10일 고점을 돌파하면 매수하고, 직전 10일 저점 "
        "밑으로 내려가면 매도",
        RefVolumeBreakout,
        n=10,
        m=10,
        vol_n=20,
    ),
    # RSI midline cross with a trend filter, an exit on another series, a trailing stop.
    _c(
        "f23",
        _H,
        "ko",
        "RSI(14)가 50을 상향 돌파하고 종가가 50일 이동평균 위에 있으면 매수, 종가가 50일선 "
        "아래로 내려가면 매도. 트레일링 스탑 5%",
        RefRsiCrossTrend,
        rsi_n=14,
        level=50.0,
        n=50,
        trail_pct=5.0,
    ),
    # rate-of-change thresholds (one negative) and a position size in percent of equity.
    _c(
        "f24",
        _H,
        "ko",
        "12일 ROC가 5%를 넘으면 매수, -5% 밑으로 내려가면 매도. 비중은 자본의 30%",
        RefRocBand,
        n=12,
        high=5.0,
        low=-5.0,
        size=0.3,
    ),
    # direction both on a state (above / below the 100-day SMA), always reversing.
    _c(
        "f25",
        _H,
        "ko",
        "롱숏 양방향으로: 종가가 100일 이동평균 위면 롱, 아래면 숏으로 스위칭",
        RefRegimeFlip,
        n=100,
    ),
    # RSI(21) levels with an ATR-multiple stop (ATR period: the default 14).
    _c(
        "f26",
        _H,
        "ko",
        "RSI(21)이 40 아래면 매수하고 60 위로 올라가면 청산. 손절은 ATR 2배로",
        RefRsiBand,
        n=21,
        low=40.0,
        high=60.0,
        atr_mult=2.0,
    ),
    # ---- vague: a strategy that runs, every chosen value stated as an assumption -------------
    # EURUSD, a style but no indicator or number.
    _c(
        "f27",
        _H,
        "en",
        "need a momentum strat for EURUSD, nothing fancy",
        symbol="EURUSD",
        kind="vague",
    ),
    # a style and "a tight stop" with no numbers.
    _c(
        "f28",
        _H,
        "en",
        "Can you put together a mean-reversion setup on GOOG with a tight stop? Pick whatever "
        "parameters make sense.",
        kind="vague",
    ),
    # an indicator named, its levels left to the service.
    _c(
        "f29",
        _H,
        "en",
        "Short-term RSI thing, you choose the levels.",
        kind="vague",
    ),
    # Korean, BTCUSD, a style and a trading-frequency wish.
    _c(
        "f30",
        _H,
        "ko",
        "비트코인으로 너무 자주 매매하지 않는 모멘텀 전략 하나 짜줘",
        symbol="BTCUSD",
        kind="vague",
    ),
    # Korean, a breakout style and a stop "as appropriate".
    _c(
        "f31",
        _H,
        "ko",
        "구글 돌파 매매 전략 하나 추천해줘. 손절은 적당히",
        kind="vague",
    ),
    # ---- inexpressible: must be refused honestly, not substituted ----------------------------
    # intraday bars and time of day.
    _c(
        "f32",
        _H,
        "en",
        "Buy GOOG 15 minutes after the open if the first 5-minute bar is green; be flat by 3:55pm.",
        kind="inexpressible",
    ),
    # a second instrument (the VIX) as a condition.
    _c(
        "f33",
        _H,
        "en",
        "Go long GOOG when the VIX closes above 30 and GOOG is below its 50-day SMA.",
        kind="inexpressible",
    ),
    # options.
    _c(
        "f34",
        _H,
        "en",
        "Sell a 30-delta covered call on GOOG every month and roll it at expiry.",
        kind="inexpressible",
    ),
    # an expressible crossover with a calendar filter the spec cannot say.
    _c(
        "f35",
        _H,
        "en",
        "20/50 SMA crossover, but skip any entry signal that lands on a Friday.",
        kind="inexpressible",
    ),
    # an order type (limit order with a cancel).
    _c(
        "f36",
        _H,
        "en",
        "Place a buy limit 1% below yesterday's low and cancel it if it isn't filled by the close.",
        kind="inexpressible",
    ),
    # several symbols and rebalancing.
    _c(
        "f37",
        _H,
        "en",
        "Hold GOOG and BTCUSD 50/50 and rebalance on the first trading day of every month.",
        kind="inexpressible",
    ),
    # fundamentals, Korean.
    _c(
        "f38",
        _H,
        "ko",
        "영업이익이 전년 대비 20% 이상 늘어난 분기에만 매수",
        kind="inexpressible",
    ),
    # calendar timing and open/close fills, Korean.
    _c(
        "f39",
        _H,
        "ko",
        "매월 첫 거래일 시가에 사서 그 달 마지막 거래일 종가에 팔아",
        kind="inexpressible",
    ),
    # news sentiment, Korean.
    _c(
        "f40",
        _H,
        "ko",
        "구글 관련 뉴스 감성 점수가 플러스로 돌아서면 매수하고 마이너스가 되면 매도",
        kind="inexpressible",
    ),
)
