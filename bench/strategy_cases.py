"""The strategy builder's request set: requests quants write, each with a hand-written reference.

Success is judged by behaviour, independently of the service: the generated strategy is run on
the same data as the case's reference `Strategy` (written here by hand, from the request's words,
not from the compiler) and their trades are compared (`behaviour_matches`). Requests the spec
cannot express must be answered honestly (`kind="inexpressible"`); vague requests must come back
as a strategy that runs with every chosen value stated as an assumption (`kind="vague"`).

`split="heldout"` cases are never used to tune prompts, examples or rules: report both halves.
Indicator arithmetic comes from `agents.quant.corpus` (the project's definitions of SMA, EMA,
Wilder's RSI, Bollinger, MACD, rolling highs and lows); the trading logic of each reference is
its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant.backtests import engine_stats, load_ohlcv
from agents.quant.corpus import (
    COMMISSION,
    bollinger,
    ema,
    macd,
    roc,
    rolling_max,
    rolling_min,
    rsi,
    sma,
)

Kind = Literal["specific", "vague", "inexpressible"]
Split = Literal["tune", "heldout", "fresh", "fresh2", "fresh3"]  # the fresh{,2,3} sets


def _ma(kind: str, values: Any, n: int) -> np.ndarray:
    return sma(values, n) if kind == "sma" else ema(values, n)


def _streak(values: Any, up: bool) -> np.ndarray:
    """Consecutive up (or down) closes ending at each bar."""
    diff = np.diff(np.asarray(values, dtype=float), prepend=np.nan)
    hit = diff > 0 if up else diff < 0
    out = np.zeros(len(hit))
    for i in range(1, len(hit)):
        out[i] = out[i - 1] + 1 if hit[i] else 0
    return out


class RefMaCross(Strategy):
    """Long (or short, or both) on a moving-average cross; out on the opposite cross."""

    ma = "sma"
    fast = 10
    slow = 30
    side = "long"
    sl_pct = 0.0
    tp_pct = 0.0
    trail_pct = 0.0
    size = 0.0

    def init(self) -> None:
        self.f = self.I(_ma, self.ma, self.data.Close, self.fast)
        self.s = self.I(_ma, self.ma, self.data.Close, self.slow)
        self.best = 0.0

    def _open(self, long: bool) -> None:
        price = self.data.Close[-1]
        kw: dict[str, float] = {}
        if self.size:
            kw["size"] = self.size
        if self.sl_pct:
            kw["sl"] = price * (1 - self.sl_pct / 100) if long else price * (1 + self.sl_pct / 100)
        if self.tp_pct:
            kw["tp"] = price * (1 + self.tp_pct / 100) if long else price * (1 - self.tp_pct / 100)
        (self.buy if long else self.sell)(**kw)
        self.best = price

    def next(self) -> None:
        up, down = crossover(self.f, self.s), crossover(self.s, self.f)
        if self.trail_pct and self.position.is_long:
            self.best = max(self.best, self.data.Close[-1])
            if self.data.Close[-1] <= self.best * (1 - self.trail_pct / 100):
                self.position.close()
                return
        if self.side == "long":
            if up and not self.position:
                self._open(True)
            elif down and self.position:
                self.position.close()
        elif self.side == "short":
            if down and not self.position:
                self._open(False)
            elif up and self.position:
                self.position.close()
        else:
            if up and not self.position.is_long:
                self.position.close()
                self._open(True)
            elif down and not self.position.is_short:
                self.position.close()
                self._open(False)


class RefPriceVsMa(Strategy):
    """Close crosses (or is) above/below a moving average: long or short on it."""

    ma = "sma"
    n = 20
    side = "long"

    def init(self) -> None:
        self.avg = self.I(_ma, self.ma, self.data.Close, self.n)

    def next(self) -> None:
        up, down = crossover(self.data.Close, self.avg), crossover(self.avg, self.data.Close)
        if self.side == "long":
            if up and not self.position:
                self.buy()
            elif down and self.position:
                self.position.close()
        elif down and not self.position:
            self.sell()
        elif up and self.position:
            self.position.close()


class RefRsiLevels(Strategy):
    """RSI below `low` (or crossing above it) buys; above `high` (or crossing below) sells."""

    n = 14
    low = 30.0
    high = 70.0
    crossing = False
    sl_pct = 0.0

    def init(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def next(self) -> None:
        if self.crossing:
            enter, leave = crossover(self.r, self.low), crossover(self.high, self.r)
        else:
            enter, leave = self.r[-1] < self.low, self.r[-1] > self.high
        if enter and not self.position:
            if self.sl_pct:
                self.buy(sl=self.data.Close[-1] * (1 - self.sl_pct / 100))
            else:
                self.buy()
        elif leave and self.position:
            self.position.close()


class RefMacd(Strategy):
    """MACD line vs signal (or histogram vs 0) crosses; optional exit after N bars."""

    fast = 12
    slow = 26
    signal = 9
    hold_bars = 0

    def init(self) -> None:
        self.m = self.I(macd, self.data.Close, self.fast, self.slow, self.signal)

    def next(self) -> None:
        line, sig = self.m[0], self.m[1]
        if self.hold_bars and self.position:
            if len(self.data) - 1 - self.trades[-1].entry_bar >= self.hold_bars:
                self.position.close()
            return
        if crossover(line, sig) and not self.position:
            self.buy()
        elif crossover(sig, line) and self.position and not self.hold_bars:
            self.position.close()


class RefBollinger(Strategy):
    """Lower-band reversion to the middle, or an upper-band breakout held N bars."""

    n = 20
    k = 2.0
    mode = "reversion"  # or "breakout"
    hold_bars = 0
    crossing = False

    def init(self) -> None:
        self.b = self.I(bollinger, self.data.Close, self.n, self.k)

    def next(self) -> None:
        lower, mid, upper = self.b[0], self.b[1], self.b[2]
        close = self.data.Close
        if self.mode == "reversion":
            enter = crossover(lower, close) if self.crossing else close[-1] < lower[-1]
            leave = crossover(close, mid) if self.crossing else close[-1] > mid[-1]
            if enter and not self.position:
                self.buy()
            elif leave and self.position:
                self.position.close()
            return
        if self.position:
            if len(self.data) - 1 - self.trades[-1].entry_bar >= self.hold_bars:
                self.position.close()
        elif close[-1] > upper[-1]:
            self.buy()


class RefBreakout(Strategy):
    """Close breaks the prior N-bar high; out after `hold_bars`, on a prior-M-bar low, or a stop."""

    n = 20
    exit_low = 0
    hold_bars = 0
    sl_pct = 0.0

    def init(self) -> None:
        self.hi = self.I(rolling_max, self.data.High, self.n)
        self.lo = self.I(rolling_min, self.data.Low, self.exit_low or 1)

    def next(self) -> None:
        close = self.data.Close
        if self.position:
            held = len(self.data) - 1 - self.trades[-1].entry_bar
            if (self.hold_bars and held >= self.hold_bars) or (
                self.exit_low and close[-1] < self.lo[-1]
            ):
                self.position.close()
            return
        if crossover(close, self.hi):
            if self.sl_pct:
                self.buy(sl=close[-1] * (1 - self.sl_pct / 100))
            else:
                self.buy()


class RefStreaks(Strategy):
    """Buy after `buy_n` consecutive up (or down) closes, sell after `sell_n` the other way."""

    buy_n = 3
    sell_n = 2
    buy_on_up = True

    def init(self) -> None:
        self.up = self.I(_streak, self.data.Close, True)
        self.down = self.I(_streak, self.data.Close, False)

    def next(self) -> None:
        enter = (self.up if self.buy_on_up else self.down)[-1] >= self.buy_n
        leave = (self.down if self.buy_on_up else self.up)[-1] >= self.sell_n
        if enter and not self.position:
            self.buy()
        elif leave and self.position:
            self.position.close()


class RefRocZero(Strategy):
    """Rate of change crossing zero: long above, flat below."""

    n = 5

    def init(self) -> None:
        self.r = self.I(roc, self.data.Close, self.n)

    def next(self) -> None:
        if crossover(self.r, 0.0) and not self.position:
            self.buy()
        elif crossover(0.0, self.r) and self.position:
            self.position.close()


class RefTrendRsi(Strategy):
    """Long when the close is above the N-day SMA and RSI is below `low`; out above `high`."""

    n = 200
    rsi_n = 14
    low = 40.0
    high = 65.0

    def init(self) -> None:
        self.ma = self.I(sma, self.data.Close, self.n)
        self.r = self.I(rsi, self.data.Close, self.rsi_n)

    def next(self) -> None:
        if not self.position and self.data.Close[-1] > self.ma[-1] and self.r[-1] < self.low:
            self.buy()
        elif self.position and self.r[-1] > self.high:
            self.position.close()


class RefVolumeTrend(Strategy):
    """Volume above its N-day average and the close above the M-day SMA buys; below M sells."""

    vol_n = 20
    n = 50

    def init(self) -> None:
        self.vma = self.I(sma, self.data.Volume, self.vol_n)
        self.ma = self.I(sma, self.data.Close, self.n)

    def next(self) -> None:
        close = self.data.Close[-1]
        if not self.position and self.data.Volume[-1] > self.vma[-1] and close > self.ma[-1]:
            self.buy()
        elif self.position and close < self.ma[-1]:
            self.position.close()


class RefBuyAndHold(Strategy):
    def init(self) -> None:
        pass

    def next(self) -> None:
        if not self.position:
            self.buy()


@dataclass(frozen=True)
class Case:
    id: str
    request: str
    split: Split
    lang: Literal["en", "ko"]
    kind: Kind = "specific"
    reference: type[Strategy] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    symbol: str = "GOOG"


def _c(
    cid: str,
    split: Split,
    lang: Literal["en", "ko"],
    request: str,
    ref: Any = None,
    symbol: str = "GOOG",
    kind: Kind = "specific",
    **params: Any,
) -> Case:
    return Case(cid, request, split, lang, kind, ref, params, symbol)


CASES: tuple[Case, ...] = (
    # ---- tune ------------------------------------------------------------------------------
    _c(
        "t01",
        "tune",
        "en",
        "Buy when the 50-day SMA crosses above the 200-day SMA and sell when "
        "it crosses back below.",
        RefMaCross,
        fast=50,
        slow=200,
    ),
    _c(
        "t02",
        "tune",
        "en",
        "RSI(7) mean reversion: buy when RSI drops below 25, exit when it rises above 60.",
        RefRsiLevels,
        n=7,
        low=25,
        high=60,
    ),
    _c(
        "t03",
        "tune",
        "en",
        "EMA 12/26 crossover, long only, exit on the opposite cross.",
        RefMaCross,
        ma="ema",
        fast=12,
        slow=26,
    ),
    _c(
        "t04",
        "tune",
        "en",
        "Go short when the close crosses below the 20-day SMA and cover when "
        "it crosses back above.",
        RefPriceVsMa,
        n=20,
        side="short",
    ),
    _c(
        "t05",
        "tune",
        "en",
        "Buy when the MACD (12,26,9) line crosses above its signal line; sell "
        "on the opposite cross.",
        RefMacd,
    ),
    _c(
        "t06",
        "tune",
        "en",
        "Buy when the close is below the lower Bollinger band (20, 2) and sell "
        "when it closes above the middle band.",
        RefBollinger,
    ),
    _c(
        "t07",
        "tune",
        "en",
        "Breakout: buy when the close breaks above the 20-day high, exit after 10 bars.",
        RefBreakout,
        n=20,
        hold_bars=10,
    ),
    _c(
        "t08",
        "tune",
        "en",
        "SMA 10/30 crossover with a 5% stop loss and a 10% take profit.",
        RefMaCross,
        fast=10,
        slow=30,
        sl_pct=5.0,
        tp_pct=10.0,
    ),
    _c(
        "t09",
        "tune",
        "en",
        "Buy after 3 consecutive up closes, sell after 2 consecutive down closes.",
        RefStreaks,
        buy_n=3,
        sell_n=2,
    ),
    _c(
        "t10",
        "tune",
        "en",
        "Trade both directions on the 20/50 EMA cross: long when the 20 crosses "
        "above the 50, short when it crosses below.",
        RefMaCross,
        ma="ema",
        fast=20,
        slow=50,
        side="both",
    ),
    _c("t11", "tune", "en", "Buy and hold GOOG.", RefBuyAndHold),
    _c(
        "t12",
        "tune",
        "ko",
        "5일 이동평균이 20일 이동평균을 상향 돌파하면 매수, 하향 돌파하면 매도",
        RefMaCross,
        fast=5,
        slow=20,
    ),
    _c(
        "t13",
        "tune",
        "ko",
        "RSI(14)가 30 아래로 내려가면 매수하고 70 위로 올라가면 청산",
        RefRsiLevels,
        n=14,
        low=30,
        high=70,
    ),
    _c(
        "t14",
        "tune",
        "ko",
        "종가가 20일 지수이동평균을 상향 돌파하면 매수, 하향 돌파하면 매도",
        RefPriceVsMa,
        ma="ema",
        n=20,
    ),
    _c(
        "t15",
        "tune",
        "ko",
        "볼린저밴드(20, 2) 하단을 하향 돌파하면 매수, 중간선을 상향 돌파하면 청산",
        RefBollinger,
        crossing=True,
    ),
    _c(
        "t16",
        "tune",
        "ko",
        "종가가 20일 최고가를 돌파하면 매수하고 10일 후 청산, 5% 손절",
        RefBreakout,
        n=20,
        hold_bars=10,
        sl_pct=5.0,
    ),
    _c(
        "t17", "tune", "ko", "MACD 히스토그램이 0을 상향 돌파하면 매수, 하향 돌파하면 매도", RefMacd
    ),
    _c(
        "t18",
        "tune",
        "en",
        "Give me a decent trend-following strategy for bitcoin.",
        symbol="BTCUSD",
        kind="vague",
    ),
    _c(
        "t19",
        "tune",
        "en",
        "Buy at the open when the stock gaps up more than 2% and sell at the "
        "close of the same day.",
        kind="inexpressible",
    ),
    _c(
        "t20", "tune", "en", "Buy GOOG whenever its P/E ratio falls below 20.", kind="inexpressible"
    ),
    # ---- held out: never used to tune prompts, examples or rules --------------------------
    _c(
        "h01",
        "heldout",
        "en",
        "When the 20-day moving average crosses over the 100-day, go long; "
        "exit on the cross back under.",
        RefMaCross,
        fast=20,
        slow=100,
    ),
    _c(
        "h02",
        "heldout",
        "en",
        "Buy when RSI(10) crosses above 30; sell when RSI(10) crosses below 70.",
        RefRsiLevels,
        n=10,
        low=30,
        high=70,
        crossing=True,
    ),
    _c(
        "h03",
        "heldout",
        "en",
        "Short EURUSD when the 10-period EMA crosses under the 40-period "
        "EMA; close the short when it crosses back over.",
        RefMaCross,
        ma="ema",
        fast=10,
        slow=40,
        side="short",
        symbol="EURUSD",
    ),
    _c(
        "h04",
        "heldout",
        "en",
        "Go long when the close is above the 200-day SMA and RSI(14) is "
        "below 40; exit when RSI(14) goes above 65.",
        RefTrendRsi,
    ),
    _c(
        "h05",
        "heldout",
        "en",
        "Buy on a 55-day Donchian breakout (close above the prior 55-day "
        "high); sell when the close falls below the prior 20-day low.",
        RefBreakout,
        n=55,
        exit_low=20,
    ),
    _c(
        "h06",
        "heldout",
        "en",
        "Buy when the 5-day rate of change crosses above zero and sell when it crosses below zero.",
        RefRocZero,
        n=5,
    ),
    _c(
        "h07",
        "heldout",
        "en",
        "Trade the 10/50 SMA cross with a 3% trailing stop.",
        RefMaCross,
        fast=10,
        slow=50,
        trail_pct=3.0,
    ),
    _c(
        "h08",
        "heldout",
        "en",
        "Buy when the close is above the upper Bollinger band (20, 2) and exit after 5 bars.",
        RefBollinger,
        mode="breakout",
        hold_bars=5,
    ),
    _c(
        "h09",
        "heldout",
        "en",
        "Buy when volume is above its 20-day average and the close is above "
        "the 50-day SMA; sell when the close drops below the 50-day SMA.",
        RefVolumeTrend,
    ),
    _c(
        "h10",
        "heldout",
        "en",
        "Use 50% of equity per trade: buy when EMA 8 crosses above EMA 21, "
        "sell on the reverse cross.",
        RefMaCross,
        ma="ema",
        fast=8,
        slow=21,
        size=0.5,
    ),
    _c(
        "h11",
        "heldout",
        "ko",
        "골든크로스(50일선이 200일선을 상향 돌파) 때 매수하고 데드크로스 때 매도",
        RefMaCross,
        fast=50,
        slow=200,
    ),
    _c(
        "h12",
        "heldout",
        "ko",
        "RSI(7)이 20 아래면 매수, 80 위면 청산, 3% 손절",
        RefRsiLevels,
        n=7,
        low=20,
        high=80,
        sl_pct=3.0,
    ),
    _c(
        "h13",
        "heldout",
        "ko",
        "구글에서 10일 이동평균이 30일 이동평균을 하향 돌파하면 공매도하고 상향 돌파하면 청산",
        RefMaCross,
        fast=10,
        slow=30,
        side="short",
    ),
    _c(
        "h14",
        "heldout",
        "ko",
        "MACD(12,26,9) 선이 시그널선을 상향 돌파하면 매수, 10일 후 청산",
        RefMacd,
        hold_bars=10,
    ),
    _c(
        "h15",
        "heldout",
        "ko",
        "3일 연속 하락하면 매수하고 2일 연속 상승하면 매도",
        RefStreaks,
        buy_n=3,
        sell_n=2,
        buy_on_up=False,
    ),
    _c(
        "h16",
        "heldout",
        "ko",
        "20일 지수이동평균과 50일 지수이동평균 교차로 롱숏 양방향 매매",
        RefMaCross,
        ma="ema",
        fast=20,
        slow=50,
        side="both",
    ),
    _c("h17", "heldout", "en", "Something that buys dips in Google.", kind="vague"),
    _c("h18", "heldout", "ko", "좋은 전략 하나 만들어줘", kind="vague"),
    _c(
        "h19",
        "heldout",
        "en",
        "Buy AAPL and short MSFT when their price spread widens beyond two standard deviations.",
        kind="inexpressible",
    ),
    _c(
        "h20",
        "heldout",
        "en",
        "Sell before each earnings announcement and buy back the day after.",
        kind="inexpressible",
    ),
    _c(
        "h21",
        "heldout",
        "en",
        "Only buy between 10am and 11am when momentum is strong.",
        kind="inexpressible",
    ),
    _c("h22", "heldout", "ko", "장 시작 때 3% 이상 갭 상승하면 매수", kind="inexpressible"),
)


# ---- the judge ------------------------------------------------------------------------------


def trades_of(strategy: type[Strategy], symbol: str, **params: Any) -> pd.DataFrame:
    """The engine's trade list for a strategy on a bundled symbol (the project's sizing)."""
    stats = engine_stats(strategy, load_ohlcv(symbol), 10_000, COMMISSION[symbol], params)
    return stats["_trades"]


def behaviour_matches(got: pd.DataFrame, want: pd.DataFrame, *, tolerance_bars: int = 1) -> bool:
    """Same behaviour: trade counts within 10% (at least one trade apart allowed) and at least
    90% of each side's entry bars found on the other within `tolerance_bars`, same direction."""
    n_got, n_want = len(got), len(want)
    if n_want == 0 or n_got == 0:
        return n_got == n_want
    if abs(n_got - n_want) > max(1, round(0.1 * n_want)):
        return False

    def covered(a: pd.DataFrame, b: pd.DataFrame) -> float:
        b_bars = list(zip(b["EntryBar"], np.sign(b["Size"]), strict=True))
        hits = sum(
            any(abs(int(x) - int(y)) <= tolerance_bars and sx == sy for y, sy in b_bars)
            for x, sx in zip(a["EntryBar"], np.sign(a["Size"]), strict=True)
        )
        return hits / len(a)

    return covered(got, want) >= 0.9 and covered(want, got) >= 0.9


def reference_trades(case: Case) -> pd.DataFrame:
    assert case.reference is not None
    return trades_of(case.reference, case.symbol, **case.params)
