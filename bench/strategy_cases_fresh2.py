"""A second fresh request set for the strategy builder (ids g01-g40), written without reading
its request reader.

The first fresh set (`bench/strategy_cases_fresh.py`) has been used for tuning (f01-f20), so
this one replaces it as the estimate of how the service generalises. Written from the spec
(`agents.quant.spec`), the compiler's semantics (`agents.quant.compiler`'s module docstring)
and `bench/strategy_cases.py` only — never the code that reads requests, its prompts or its
claim checks — and none of its requests copies or paraphrases one of the two earlier sets.
Report it on its own (`python -m bench.strategies --set fresh2`); never use it to tune prompts,
examples or rules.

Each specific case's reference (`bench/strategy_refs_fresh2.py`) implements the request's words
under the compiler's semantics: values the request leaves out take `agents.quant.spec.DEFAULTS`
(e.g. ATR 14 for an ATR stop, MACD 12/26/9); "a close under X" is a state, "crosses" / "breaks"
/ "flips" an event; a time exit with no other exit stated has no signal exit.

Data: GOOG is daily (2004-2013), EURUSD hourly (5000 bars), BTCUSD monthly (156 bars).
"""

from __future__ import annotations

from bench.strategy_cases import Case, Split, _c
from bench.strategy_refs_fresh2 import (
    RefBandRevert,
    RefBreakdownShort,
    RefChannel,
    RefChannelFlip,
    RefCloseVsMa,
    RefMacdRsiState,
    RefMacdTurn,
    RefRocCross,
    RefRsiZone,
    RefStreakRun,
    RefVolumeAboveEma,
    RefVolumeCrossShort,
    RefXover,
)

_S: Split = "fresh2"

FRESH2_CASES: tuple[Case, ...] = (
    # ---- specific, English -------------------------------------------------------------------
    # "MA xover" shorthand, periods in words, golden / death cross as the exits.
    _c(
        "g01",
        _S,
        "en",
        "long-only MA xover: the fifteen-day SMA crossing over the forty-five-day gets me in, "
        "the cross back under gets me out",
        RefXover,
        fast=15,
        slow=45,
    ),
    # exit stated before the entry; a short on the close vs an EMA, a take profit.
    _c(
        "g02",
        _S,
        "en",
        "Cover at +7%, or when GOOG closes back above its 30-day EMA. The entry is on the short "
        "side: the close dropping through that same EMA.",
        RefCloseVsMa,
        side="short",
        ma="ema",
        n=30,
        tp_pct=7.0,
    ),
    # a two-period RSI with its levels in words, rules split into fragments.
    _c(
        "g03",
        _S,
        "en",
        "Two-period RSI. Sinks under ten: buy. Climbs past seventy: sell.",
        RefRsiZone,
        n=2,
        low=10.0,
        high=70.0,
    ),
    # non-standard MACD windows, signal-line crosses both ways, a take profit in slang.
    _c(
        "g04",
        _S,
        "en",
        "MACD on 5, 35, 5. Buy the bullish signal-line crossover, dump it on the bearish one, "
        "and bank it early if it's up 12%.",
        RefMacdTurn,
        fast=5,
        slow=35,
        signal=5,
        tp_pct=12.0,
    ),
    # short only on the MACD histogram's zero line.
    _c(
        "g05",
        _S,
        "en",
        "Short-only. When the MACD histogram (standard 12/26/9) flips below zero, sell short; "
        "buy to cover once it flips back above zero.",
        RefMacdTurn,
        side="short",
    ),
    # Bollinger mean reversion to the far band (not the middle), a 30-bar window.
    _c(
        "g06",
        _S,
        "en",
        "BB(30, 2) reversion on Google: long on a close beneath the lower band, out on a close "
        "above the upper band — not the middle one.",
        RefBandRevert,
        n=30,
        k=2.0,
        exit_at="upper",
    ),
    # a price / SMA cross with an ATR-multiple stop (ATR period left to the default 14).
    _c(
        "g07",
        _S,
        "en",
        "Trend entry: go long when the close crosses over the 50-day simple MA, with a "
        "protective stop 3 ATRs below entry. Otherwise exit when the close crosses back below "
        "the 50-day.",
        RefCloseVsMa,
        ma="sma",
        n=50,
        atr_mult=3.0,
    ),
    # BTCUSD monthly channel: a cross of the 12-bar high in, a close under the 6-bar low out.
    _c(
        "g08",
        _S,
        "en",
        "Monthly BTCUSD bars. Get long the month the close crosses above the highest high of the "
        "prior twelve. Exit: a close under the lowest low of the prior six.",
        RefChannel,
        symbol="BTCUSD",
        n=12,
        m=6,
    ),
    # rate-of-change thresholds: a positive level in, the zero line out.
    _c(
        "g09",
        _S,
        "en",
        "20-day rate of change crossing up through +8% -> long. Out when ROC(20) dips below zero.",
        RefRocCross,
        n=20,
        up=8.0,
        down=0.0,
    ),
    # a short on an up streak, covered on a down streak.
    _c(
        "g10",
        _S,
        "en",
        "Fade strength: four up closes in a row, short GOOG. Cover after two consecutive down "
        "closes.",
        RefStreakRun,
        side="short",
        enter_n=4,
        enter_up=True,
        exit_n=2,
    ),
    # a volume filter and a price / EMA state ("whenever ... be long").
    _c(
        "g11",
        _S,
        "en",
        "Whenever GOOG is above its 10-day EMA and today's volume beats the 50-day average "
        "volume, be long. A close under the 10-day EMA ends it.",
        RefVolumeAboveEma,
        n=10,
        vol_n=50,
    ),
    # EURUSD hourly: an EMA cross short with a trailing stop (trails from the lowest close).
    _c(
        "g12",
        _S,
        "en",
        "EURUSD, 1h bars. Short on the 12 EMA crossing under the 48 EMA, cover on the cross back "
        "over, and trail the short with a 0.5% stop.",
        RefXover,
        symbol="EURUSD",
        side="short",
        ma="ema",
        fast=12,
        slow=48,
        trail_pct=0.5,
    ),
    # RSI crossing events at both levels and "TP/SL" shorthand.
    _c(
        "g13",
        _S,
        "en",
        "RSI(14) crossing back above 30 from below is the buy; RSI crossing down through 70 is "
        "the sell. TP/SL 10%/4%.",
        RefRsiZone,
        n=14,
        low=30.0,
        high=70.0,
        crossing=True,
        tp_pct=10.0,
        sl_pct=4.0,
    ),
    # a time exit as the only exit besides a hard stop.
    _c(
        "g14",
        _S,
        "en",
        "Buy signal = RSI(5) under 20. Hold three bars, then out regardless. Hard stop at 2%.",
        RefRsiZone,
        n=5,
        low=20.0,
        signal_exit=False,
        hold_bars=3,
        sl_pct=2.0,
    ),
    # both directions on an SMA cross, size in words.
    _c(
        "g15",
        _S,
        "en",
        "Always in the market, long or short, switching on the 30/90-day SMA crossover: the 30 "
        "crossing above the 90 means long, crossing below means short. Each position gets forty "
        "percent of equity.",
        RefXover,
        side="both",
        ma="sma",
        fast=30,
        slow=90,
        size=0.4,
    ),
    # EURUSD hourly breakout: no signal exit, a time exit and an ATR stop.
    _c(
        "g16",
        _S,
        "en",
        "EURUSD 1-hour. Long when the close breaks above the highest high of the last 48 bars. "
        "Stop at 2 ATR below. No signal exit, just a time exit after 24 bars.",
        RefChannel,
        symbol="EURUSD",
        n=48,
        hold_bars=24,
        atr_mult=2.0,
    ),
    # a short on a close under the prior low, target and stop, a cover on an SMA.
    _c(
        "g17",
        _S,
        "en",
        "Short the breakdown: a close under the prior 15-day low sells short. Target 10%, stop "
        "5%, and also cover if price closes above the 15-day SMA.",
        RefBreakdownShort,
        n=15,
        m=15,
        tp_pct=10.0,
        sl_pct=5.0,
    ),
    # exit first, an "any" exit and an "all" entry on MACD vs signal and RSI.
    _c(
        "g18",
        _S,
        "en",
        "Exit if either MACD drops below its signal line or RSI(14) falls under 40. Get in when "
        "MACD is above its signal and RSI(14) is over 50, both at once.",
        RefMacdRsiState,
        rsi_n=14,
        enter_rsi=50.0,
        exit_rsi=40.0,
    ),
    # ---- specific, Korean --------------------------------------------------------------------
    # EMA cross in colloquial Korean ("올라서면", "꺾여 내려가면").
    _c(
        "g19",
        _S,
        "ko",
        "EMA 8일선이 34일선 위로 올라서면 매수, 다시 아래로 꺾여 내려가면 전량 매도",
        RefXover,
        ma="ema",
        fast=8,
        slow=34,
    ),
    # RSI oversold / overbought zones ("이하" / "이상": the equal value is negligible).
    _c(
        "g20",
        _S,
        "ko",
        "RSI(10) 25 이하 과매도 구간에서 매수하고, 75 이상 과매수 구간에 들어가면 청산해줘",
        RefRsiZone,
        n=10,
        low=25.0,
        high=75.0,
    ),
    # the close re-entering the band from below; exit on a close above the middle band.
    _c(
        "g21",
        _S,
        "ko",
        "종가가 볼린저밴드(20, 2) 하단을 아래에서 위로 뚫고 밴드 안으로 들어오면 매수, 중심선 "
        "위에서 마감하면 청산",
        RefBandRevert,
        n=20,
        k=2.0,
        cross_in=True,
        exit_at="middle",
    ),
    # close vs a 60-day EMA, an ATR stop and half the capital per trade.
    _c(
        "g22",
        _S,
        "ko",
        "60일 EMA를 종가가 뚫고 올라가면 사고 다시 깨지면 판다. 손절은 ATR 1.5배, 한 번에 "
        "자금의 절반만 투입",
        RefCloseVsMa,
        ma="ema",
        n=60,
        atr_mult=1.5,
        size=0.5,
    ),
    # MACD histogram turning positive ("양전환"), a time exit and a take profit.
    _c(
        "g23",
        _S,
        "ko",
        "MACD 히스토그램 양전환 시 매수 → 15거래일 보유 후 매도. 중간에 8% 수익 나면 익절",
        RefMacdTurn,
        signal_exit=False,
        hold_bars=15,
        tp_pct=8.0,
    ),
    # a down streak against the previous close, stop / target / time exit.
    _c(
        "g24",
        _S,
        "ko",
        "종가가 4일 연속 전일보다 낮게 끝나면 매수. 손절 4%, 익절 6%, 둘 다 안 걸리면 10일 뒤 정리",
        RefStreakRun,
        enter_n=4,
        enter_up=False,
        hold_bars=10,
        sl_pct=4.0,
        tp_pct=6.0,
    ),
    # EURUSD hourly, both directions on a 100-bar channel (turtle-style reversal).
    _c(
        "g25",
        _S,
        "ko",
        "유로달러 1시간봉, 터틀식 양방향: 종가가 직전 100봉 최고가를 돌파하면 롱, 직전 100봉 "
        "최저가를 하향 이탈하면 숏으로 스위칭",
        RefChannelFlip,
        symbol="EURUSD",
        n=100,
    ),
    # BTCUSD monthly, a 6-bar ROC crossing a level in, the zero line out.
    _c(
        "g26",
        _S,
        "ko",
        "비트코인 월봉 기준 6개월 ROC가 20%를 상향 돌파하면 매수, 마이너스로 돌아서면 매도",
        RefRocCross,
        symbol="BTCUSD",
        n=6,
        up=20.0,
        down=0.0,
    ),
    # a short on a volume-confirmed cross below the 5-day SMA ("환매" = cover).
    _c(
        "g27",
        _S,
        "ko",
        "거래량이 20일 평균을 웃도는 날 종가가 5일 이동평균을 하향 돌파하면 공매도 진입, 종가가 "
        "5일선 위로 올라오면 환매",
        RefVolumeCrossShort,
        n=5,
        vol_n=20,
    ),
    # MACD golden cross with a trend filter on entry; the dead cross or a trailing stop out.
    _c(
        "g28",
        _S,
        "ko",
        "MACD가 시그널선을 골든크로스하고 종가가 120일선 위일 때만 매수. 청산은 MACD 데드크로스, "
        "또는 고점 대비 6% 하락하면 트레일링 스탑으로",
        RefMacdTurn,
        trend=120,
        trail_pct=6.0,
    ),
    # ---- vague: a strategy that runs, every chosen value stated as an assumption -------------
    _c(
        "g29",
        _S,
        "en",
        "Something for BTC that rides the big swings without getting whipsawed every month.",
        symbol="BTCUSD",
        kind="vague",
    ),
    _c(
        "g30",
        _S,
        "en",
        "swing-trade GOOG for me, you pick the indicator and the numbers",
        kind="vague",
    ),
    _c(
        "g31",
        _S,
        "en",
        "What's a reasonable breakout approach on EURUSD hourly? Keep the risk per trade small.",
        symbol="EURUSD",
        kind="vague",
    ),
    _c(
        "g32",
        _S,
        "en",
        "Do something with Bollinger bands on Google. Surprise me.",
        kind="vague",
    ),
    _c(
        "g33",
        _S,
        "ko",
        "구글로 중장기 추세추종 전략 하나 만들어줘. 파라미터는 알아서 정해줘",
        kind="vague",
    ),
    _c(
        "g34",
        _S,
        "ko",
        "짧게 먹고 빠지는 역추세 전략 부탁드려요. 손절은 꼭 넣어주세요",
        kind="vague",
    ),
    # ---- inexpressible: must be refused honestly, not substituted ----------------------------
    # pyramiding (adding to an open position).
    _c(
        "g35",
        _S,
        "en",
        "Scale in: half size on a 20-day high breakout, then add the other half if it's up "
        "another 5% from the first fill.",
        kind="inexpressible",
    ),
    # another instrument (an index) as a filter.
    _c(
        "g36",
        _S,
        "en",
        "Only go long GOOG while the S&P 500 sits above its 200-day MA, and then only when "
        "GOOG's RSI(14) is below 40.",
        kind="inexpressible",
    ),
    # calendar dates.
    _c(
        "g37",
        _S,
        "en",
        "January effect: buy GOOG at the close on the last trading day of December, sell on the "
        "third trading day of January.",
        kind="inexpressible",
    ),
    # options.
    _c(
        "g38",
        _S,
        "en",
        "Whenever RSI(14) on GOOG goes over 80, buy a 3-month at-the-money put.",
        kind="inexpressible",
    ),
    # investor-flow data, Korean.
    _c(
        "g39",
        _S,
        "ko",
        "외국인이 5일 연속 순매수하면 따라서 매수하고, 순매도로 돌아서면 매도",
        kind="inexpressible",
    ),
    # rotation across several symbols, rebalanced monthly, Korean.
    _c(
        "g40",
        _S,
        "ko",
        "구글, 비트코인, 유로달러 중 최근 3개월 수익률이 가장 높은 종목 하나만 매달 골라서 보유",
        kind="inexpressible",
    ),
)
