"""A third fresh request set for the strategy builder (ids k01-k40), written without reading
its request reader.

The second fresh set (`bench/strategy_cases_fresh2.py`) has been used for tuning (g01-g20), so
this one replaces it as the estimate of how the service generalises. Written from the spec
(`agents.quant.spec`), the compiler's semantics (`agents.quant.compiler`'s module docstring)
and the bench's case files only — never the code that reads requests, its prompts or its claim
checks — and none of its requests copies or paraphrases one of the three earlier sets. Report
it on its own (`python -m bench.strategies --set fresh3`); never use it to tune prompts,
examples or rules.

Unlike fresh2 (whose first half was nearly all English specific requests), both halves have the
same mix: k01-k20 (the tune half) and k21-k40 (the unseen half) each hold 14 specific requests
(8 English, 6 Korean), 3 vague and 3 inexpressible ones, 8 Korean in all, and spread alike over
shorts and both-ways, stops, targets, trailing and ATR stops, time exits, sizing, date ranges,
all / any rules and the three symbols.

Each specific case's reference (`bench/strategy_refs_fresh3.py`) implements the request's words
under the compiler's semantics: values the request leaves out take `agents.quant.spec.DEFAULTS`
(e.g. ATR 14 for an ATR stop, MACD 12/26/9, Bollinger width 2); "closes above X" / "while" /
"이면" is a state, "crosses" / "breaks" / "돌파" / "이탈" / "골든크로스" an event; a time exit
with no other exit stated has no signal exit; "N일선" is a simple moving average.

Ids k01-k40: no earlier set uses the letter k (`bench.strategies --set fresh3 --ids k01-k20`
runs the tune half).

Data: GOOG is daily (2004-2013), EURUSD hourly (5000 bars), BTCUSD monthly (156 bars). Dates
in a request do not change the judge: generated and reference strategies both run on the
symbol's full data.
"""

from __future__ import annotations

from bench.strategy_cases import Case, Split, _c
from bench.strategy_refs_fresh2 import RefMacdTurn, RefXover
from bench.strategy_refs_fresh3 import (
    RefAtrExpansion,
    RefBandBreakShort,
    RefBandPierce,
    RefBandRide,
    RefCandleRsi,
    RefCloseFlip,
    RefDualRoc,
    RefEitherMomentum,
    RefFilteredCross,
    RefLevelRsi,
    RefMacdFlip,
    RefMacdZero,
    RefMaRsiShort,
    RefMaStack,
    RefPrevBar,
    RefPullback,
    RefQuietPullback,
    RefRocFlip,
    RefRocShort,
    RefRsiPair,
    RefRsiStateFlip,
    RefStreakTrend,
    RefTrendDipExit,
    RefTrendDipTimed,
    RefVolumeBreakdown,
    RefVolumeSurge,
)

_S: Split = "fresh3"

FRESH3_CASES: tuple[Case, ...] = (
    # ==== k01-k20: the tune half ================================================================
    # ---- specific, English -------------------------------------------------------------------
    # ATR compared with ATR at another window, a trend filter, a time exit as the only exit.
    _c(
        "k01",
        _S,
        "en",
        "vol expansion idea: when ATR(5) crosses above ATR(20) and the close is over the 50d SMA, "
        "go long. get out 8 bars later whatever happens.",
        RefAtrExpansion,
        fast=5,
        slow=20,
        trend=50,
        hold_bars=8,
    ),
    # a candle's colour (close vs open), levels in words, an "any" exit.
    _c(
        "k02",
        _S,
        "en",
        "Buy a green candle (close above the open) when RSI(14) is under thirty-five. Sell on the "
        "first red candle or once RSI is above fifty-five, whichever comes first.",
        RefCandleRsi,
        n=14,
        low=35.0,
        high=55.0,
    ),
    # EURUSD hourly, a short on two states (an EMA under an SMA, two kinds; RSI under a level),
    # covered on another RSI level; stop and target shorthand. States: after a stop or target
    # the short is opened again while both still hold.
    _c(
        "k03",
        _S,
        "en",
        "EURUSD 1h: go short when ema9 < sma30 and RSI(14) < 45, both true. Cover once RSI is "
        "back over 55. SL 0.25 / TP 0.5 (percent).",
        RefMaRsiShort,
        symbol="EURUSD",
        fast=9,
        slow=30,
        rsi_n=14,
        low=45.0,
        high=55.0,
        sl_pct=0.25,
        tp_pct=0.5,
    ),
    # the MACD line (not the signal) crossing zero, non-default windows, typos, a trailing stop.
    # The signal window (9) plays no part in the MACD line.
    _c(
        "k04",
        _S,
        "en",
        "MACD 10/30/9 - buy when the MACD line crosess above the zero line, sell when it crosses "
        "back under zero. Also a 4% trailling stop.",
        RefMacdZero,
        fast=10,
        slow=30,
        trail_pct=4.0,
    ),
    # the previous day's high / low (highest high / lowest low of the previous 1 bar), states;
    # an ATR stop (ATR period: the default 14).
    _c(
        "k05",
        _S,
        "en",
        "Long GOOG on any close above the previous day's high; out on a close below the previous "
        "day's low. Stop 1.5x ATR under the entry.",
        RefPrevBar,
        atr_mult=1.5,
    ),
    # BTCUSD monthly, both directions on RSI states; between 40 and 60 the position is kept.
    _c(
        "k06",
        _S,
        "en",
        "BTCUSD monthly, long or short: be long while RSI(6) is above 60, short while it's below "
        "40, flip between the two.",
        RefRsiStateFlip,
        symbol="BTCUSD",
        n=6,
        low=40.0,
        high=60.0,
    ),
    # EURUSD fixed price levels on the hourly close (states) with an RSI cap on entry ("isn't
    # above 70": below 70, the equal value negligible), half the equity per trade.
    _c(
        "k07",
        _S,
        "en",
        "EURUSD hourly level trade: long once an hourly candle closes above 1.2000, as long as "
        "RSI(14) isn't above 70 at that point; flat on a close below 1.1900. Only half my equity "
        "per position.",
        RefLevelRsi,
        symbol="EURUSD",
        enter_level=1.2,
        exit_level=1.19,
        rsi_n=14,
        rsi_cap=70.0,
        size=0.5,
    ),
    # three series in two conditions, "->" shorthand, a date range (the judge runs all data).
    _c(
        "k08",
        _S,
        "en",
        "Connors-style: RSI(2) < 10 while price is above the 200 SMA -> buy; exit on a close over "
        "the 5 SMA. Backtest 2005-01-01 to 2012-12-31.",
        RefTrendDipExit,
        n=2,
        low=10.0,
        trend=200,
        m=5,
    ),
    # ---- specific, Korean --------------------------------------------------------------------
    # 정배열 (three SMAs in order, a state), an exit of the shortest under the middle one (the
    # same trades as its cross: the position is only open while it is above), an ATR stop.
    _c(
        "k09",
        _S,
        "ko",
        "정배열 매매: 5일선 > 20일선 > 60일선이면 매수, 5일선이 20일선 밑으로 내려가면 매도. "
        "손절은 ATR 2배",
        RefMaStack,
        a=5,
        b=20,
        c=60,
        atr_mult=2.0,
    ),
    # a short on ROC crossing a negative level, the zero line back up, a time exit beside the
    # signal exit, a stop loss.
    _c(
        "k10",
        _S,
        "ko",
        "10일 ROC가 -5% 밑으로 하향 돌파하면 공매도, 0 위로 다시 올라오면 환매. 15거래일 지나도 "
        "안 풀리면 그냥 청산, 손절 4%",
        RefRocShort,
        n=10,
        down=-5.0,
        up=0.0,
        hold_bars=15,
        sl_pct=4.0,
    ),
    # average volume over 5 days crossing the 50-day average volume, a trend state, an "any"
    # exit ("75 이상": the equal value is negligible, read as above).
    _c(
        "k11",
        _S,
        "ko",
        "5일 평균 거래량이 50일 평균 거래량을 상향 돌파하고 종가가 20일 이동평균 위에 있으면 매수. "
        "종가가 20일선 밑으로 마감하거나 RSI(14)가 75 이상이면 (둘 중 하나라도) 매도",
        RefVolumeSurge,
        vol_fast=5,
        vol_slow=50,
        n=20,
        rsi_n=14,
        high=75.0,
    ),
    # EURUSD hourly, both ways on the close crossing an EMA, a trailing stop (closes a position
    # without reversing it; the next cross opens again).
    _c(
        "k12",
        _S,
        "ko",
        "유로달러 1시간봉에서 롱숏 다 합니다. 종가가 50 EMA 상향 돌파 → 숏 정리하고 롱, 하향 이탈 "
        "→ 롱 정리하고 숏. 트레일링 스탑 0.3%",
        RefCloseFlip,
        symbol="EURUSD",
        ma="ema",
        n=50,
        trail_pct=0.3,
    ),
    # a Bollinger upper-band breakout held to a cross below the lower band, a take profit, a
    # date range.
    _c(
        "k13",
        _S,
        "ko",
        "2010년~2012년 구간만. 종가가 볼린저밴드(20,2) 상단을 뚫으면 매수, 하단 밑으로 떨어지면 "
        "매도, 15% 수익이면 익절",
        RefBandRide,
        n=20,
        k=2.0,
        tp_pct=15.0,
    ),
    # an EMA golden cross with an EMA trend filter on entry, the dead cross out, stop and size.
    _c(
        "k14",
        _S,
        "ko",
        "EMA 12/26 골든크로스인데 종가가 200일 EMA 위에 있을 때만 매수, 데드크로스에 매도. "
        "손절 2%, 비중 30%",
        RefFilteredCross,
        ma="ema",
        fast=12,
        slow=26,
        trend=200,
        sl_pct=2.0,
        size=0.3,
    ),
    # ---- vague: a strategy that runs, every chosen value stated as an assumption -------------
    _c(
        "k15",
        _S,
        "en",
        "Need a low-maintenance system for EURUSD on the hourly chart, don't care which "
        "indicator. Nothing that trades every other bar pls",
        symbol="EURUSD",
        kind="vague",
    ),
    _c(
        "k16",
        _S,
        "en",
        "I'd like to short GOOG when it gets overheated. Figure out the details yourself.",
        kind="vague",
    ),
    _c(
        "k17",
        _S,
        "ko",
        "비트코인 월봉에서 쓸 만한 평균회귀 전략 있으면 하나 부탁해요. 숫자는 알아서",
        symbol="BTCUSD",
        kind="vague",
    ),
    # ---- inexpressible: must be refused honestly, not substituted ----------------------------
    # a time of day on daily bars (and a slope, "rising").
    _c(
        "k18",
        _S,
        "en",
        "Buy GOOG at 10:30am whenever the 50-day SMA is rising, and always be out before the "
        "closing auction.",
        kind="inexpressible",
    ),
    # order-book depth.
    _c(
        "k19",
        _S,
        "en",
        "Go long BTCUSD when the bid size over the top 10 levels of the order book is more than "
        "double the ask size.",
        symbol="BTCUSD",
        kind="inexpressible",
    ),
    # an indicator the spec has no series for (the stochastic oscillator), Korean.
    _c(
        "k20",
        _S,
        "ko",
        "스토캐스틱 슬로우(14,3,3) %K가 20 아래에서 %D를 골든크로스하면 매수, 80 위에서 "
        "데드크로스하면 매도",
        kind="inexpressible",
    ),
    # ==== k21-k40: the unseen half ==============================================================
    # ---- specific, English -------------------------------------------------------------------
    # the low against a band while the close is back above it (all), an exit state, a stop.
    _c(
        "k21",
        _S,
        "en",
        "Stop-hunt reversal: the low pokes under the lower BB (20,2) but the bar closes back "
        "above that band -> buy. Exit when price closes above the middle band. 3% SL.",
        RefBandPierce,
        n=20,
        k=2.0,
        sl_pct=3.0,
    ),
    # two ROC windows, an "all" entry and an "any" exit ("turns negative": below zero; the same
    # trades as its cross, the position being open only while both are positive).
    _c(
        "k22",
        _S,
        "en",
        "Long GOOG only while a 20-day and a 120-day ROC are both positive; go flat the moment "
        "either one turns negative.",
        RefDualRoc,
        a=20,
        b=120,
    ),
    # a short on a breakdown with a volume filter, a time exit as the only exit, an ATR stop.
    _c(
        "k23",
        _S,
        "en",
        "Short-side breakdown on volume: close crosses under the prior 20-day low with volume "
        "above its 50-day average -> sell short. Cover 5 bars later; protective stop at 2xATR "
        "above entry.",
        RefVolumeBreakdown,
        n=20,
        vol_n=50,
        hold_bars=5,
        atr_mult=2.0,
    ),
    # stop-and-reverse on the default MACD's signal-line crosses, a stop on every position.
    _c(
        "k24",
        _S,
        "en",
        "Stop-and-reverse on the standard MACD: bullish signal-line cross = go long (closing any "
        "short), bearish cross = go short (closing any long). 5% stop on every position.",
        RefMacdFlip,
        sl_pct=5.0,
    ),
    # EURUSD hourly, an RSI state entry with a trend state, a time exit in words and a stop, no
    # signal exit.
    _c(
        "k25",
        _S,
        "en",
        "EURUSD 1h: with the close above the 100-bar SMA, buy when RSI(3) dips below 10; out six "
        "bars later no matter what, stop loss 0.4%.",
        RefTrendDipTimed,
        symbol="EURUSD",
        n=3,
        low=10.0,
        trend=100,
        hold_bars=6,
        sl_pct=0.4,
    ),
    # BTCUSD monthly, both ways on two ROC levels, each reversing the other.
    _c(
        "k26",
        _S,
        "en",
        "BTCUSD, monthly bars, both directions: long when the 3-month ROC crosses above +10%, "
        "short when it crosses below -10%; each signal reverses the open position.",
        RefRocFlip,
        symbol="BTCUSD",
        n=3,
        up=10.0,
        down=-10.0,
    ),
    # an EMA trend state and the close crossing the fast EMA (all), an exit on the slow EMA,
    # size in words, a date range.
    _c(
        "k27",
        _S,
        "en",
        "Buy-the-pullback: while the 20 EMA is above the 50 EMA, go long when the close crosses "
        "back above the 20 EMA. Exit on a close below the 50 EMA. Forty percent of equity per "
        "trade, test it on 2007-2012 only.",
        RefPullback,
        fast=20,
        slow=50,
        size=0.4,
    ),
    # an "any" entry of two crosses and an "all" exit of two states, a typo ("singal").
    _c(
        "k28",
        _S,
        "en",
        "Enter long if RSI(14) crosses up through 50 OR the MACD line crosses above its singal "
        "line (12/26/9), either one is enough. Only sell when RSI is under 45 and MACD is below "
        "the signal at the same time.",
        RefEitherMomentum,
        rsi_n=14,
        cross_level=50.0,
        exit_level=45.0,
    ),
    # ---- specific, Korean --------------------------------------------------------------------
    # RSI crossing RSI at another window both ways, a take profit.
    _c(
        "k29",
        _S,
        "ko",
        "RSI(5)가 RSI(20)을 상향 돌파하면 매수, 다시 하향 돌파하면 매도. 익절 6%",
        RefRsiPair,
        fast=5,
        slow=20,
        tp_pct=6.0,
    ),
    # 눌림목: three states at once (trend, below the EMA, quiet volume), a cross out, an ATR stop.
    _c(
        "k30",
        _S,
        "ko",
        "눌림목 매수: 종가가 100일선 위에 있고, 20일 EMA 아래로 내려와 있고, 거래량이 20일 "
        "평균보다 적을 때 매수. 종가가 20일 EMA를 다시 상향 돌파하면 매도. 손절은 ATR 1.5배",
        RefQuietPullback,
        trend=100,
        n=20,
        vol_n=20,
        atr_mult=1.5,
    ),
    # BTCUSD monthly EMA golden / dead cross, a trailing stop ("고점 대비": the spec trails from
    # the best close since the signal bar).
    _c(
        "k31",
        _S,
        "ko",
        "비트코인 월봉: 4개월 EMA가 12개월 EMA를 골든크로스하면 매수, 데드크로스에 매도. 고점 "
        "대비 25% 하락하면 트레일링 스탑으로 청산",
        RefXover,
        symbol="BTCUSD",
        ma="ema",
        fast=4,
        slow=12,
        trail_pct=25.0,
    ),
    # a short on the close crossing below the lower band, covered back above the middle band
    # ("회복하면": a state or its cross, the same trades here).
    _c(
        "k32",
        _S,
        "ko",
        "볼린저밴드(20, 2) 하단을 종가가 하향 이탈하면 공매도, 종가가 중심선 위로 회복하면 숏 청산",
        RefBandBreakShort,
        n=20,
        k=2.0,
    ),
    # EURUSD hourly MACD signal-line golden / dead cross, stop and target.
    _c(
        "k33",
        _S,
        "ko",
        "유로달러 1시간봉, MACD(12,26,9) 골든크로스 매수 / 데드크로스 매도. 손절 0.2%, 익절 0.5%",
        RefMacdTurn,
        symbol="EURUSD",
        sl_pct=0.2,
        tp_pct=0.5,
    ),
    # a down streak with a trend state, an exit on a cross of a short SMA, a date range.
    _c(
        "k34",
        _S,
        "ko",
        "2006년 1월부터 2012년 말까지 테스트. 종가가 200일 이평선 위에 있는 동안 3일 연속 하락 "
        "마감이 나오면 매수, 종가가 10일선을 상향 돌파하면 매도",
        RefStreakTrend,
        n=3,
        trend=200,
        m=10,
    ),
    # ---- vague: a strategy that runs, every chosen value stated as an assumption -------------
    _c(
        "k35",
        _S,
        "en",
        "Build me a volatility-breakout style strategy for BTC, your call on all the parameters.",
        symbol="BTCUSD",
        kind="vague",
    ),
    _c(
        "k36",
        _S,
        "en",
        "GOOG chops sideways a lot - what would you run on it? Pick the rules yourself.",
        kind="vague",
    ),
    _c(
        "k37",
        _S,
        "ko",
        "유로달러 1시간봉으로 추세 따라가는 전략 하나 만들어줘, 세부 설정은 맡길게",
        symbol="EURUSD",
        kind="vague",
    ),
    # ---- inexpressible: must be refused honestly, not substituted ----------------------------
    # a partial exit (half the position at a target).
    _c(
        "k38",
        _S,
        "en",
        "RSI(14) under 30 buys; take half off at +5% and let the other half run until RSI gets "
        "above 70.",
        kind="inexpressible",
    ),
    # derivatives data (funding rate, open interest).
    _c(
        "k39",
        _S,
        "en",
        "Short BTCUSD perps whenever the 8h funding rate prints above 0.05% and open interest "
        "is at a 30-day high.",
        symbol="BTCUSD",
        kind="inexpressible",
    ),
    # an indicator the spec has no series for (Ichimoku), Korean.
    _c(
        "k40",
        _S,
        "ko",
        "일목균형표 전환선이 기준선을 상향 돌파하고 주가가 구름대 위에 있으면 매수, 전환선이 "
        "기준선 아래로 내려가면 매도",
        kind="inexpressible",
    ),
)
