"""A fresh chat-ops question set, written without reading the chat service's prompts or repairs.

Written after the service by someone who read only the tools' signatures and docstrings
(`tools/*.py`, not `tools/summaries.py`), the benchmark (`bench/chatops.py`,
`bench/chat_cases.py`) and the data (`agents.quant.backtests`, `agents.quant.corpus`) — never
`graphs/chatops_advanced.py`, `graphs/prompts.py` or `tools/summaries.py` — to measure how the
chat generalises to questions nobody tuned it on. Run it on its own
(`python -m bench.chatops --set fresh`); its results go to `bench/results/chatops_fresh.json`.

Same format and judge as the main set (`bench.chat_cases.ChatCase`): the tool a good assistant
calls, constraints on its arguments, and a fact computed independently of the service — from
the user's seeded corpus records (plain sorting), the bundled market data (pandas), reference
strategies written here from the question's words and run on the engine, the ledger's raw rows,
or keyword sets. n01-n15 are `split="tune"`, n16-n30 `split="heldout"`.

New here: follow-ups. A `FreshCase` may name earlier turns (`before`) that are sent first on
the same thread; only the last turn is judged, so a follow-up ("same on GOOG?", "그럼 GOOG는?")
must be understood from the conversation and still needs its own tool call.

Data: GOOG is daily (2004-08-19 to 2013-03-01), EURUSD hourly (2017-04-19 to 2018-02-07),
BTCUSD monthly (2012-01-31 to 2024-12-31); spec runs pay `SPEC_COMMISSION`, named runs the
corpus's per-symbol commission, both on the engine (`engine_stats`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant.backtests import BacktestResult, engine_stats, load_ohlcv
from agents.quant.corpus import COMMISSION, STRATEGIES, ema, macd, rolling_max, rolling_min, sma
from bench.chat_cases import (
    CAGR,
    COMPARE,
    DRAWDOWN,
    SINCE_ALL,
    ChatCase,
    Check,
    Expected,
    Fact,
    FactFn,
    Num,
    World,
    _best,
    _both,
    _market,
    _named_run,
    _one,
    _runnable,
    _spec_run,
    _spend,
    _words,
    best,
    contains,
    date_in,
    id_of,
    metric_is,
    one_of,
    record_fact,
    spec_mentions,
)

# --------------------------------------------------------------------------------------------
# Follow-ups: earlier turns on the same thread
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreshCase(ChatCase):
    before: tuple[str, ...] = ()
    """User turns sent first on the case's thread (templates like `question`); not judged."""

    def prior(self, records: tuple[BacktestResult, ...]) -> tuple[str, ...]:
        """The earlier turns with their template ids filled."""
        ids = self.filled(records)
        return tuple(t.format(**ids) if ids else t for t in self.before)


# --------------------------------------------------------------------------------------------
# Argument constraints and facts this set adds
# --------------------------------------------------------------------------------------------


def params_are(**want: float) -> Check:
    """A parameters argument (a dict or its JSON) holding exactly these numeric values."""

    def check(v: Any) -> bool:
        if isinstance(v, str):
            v = json.loads(v)
        if not isinstance(v, dict) or set(v) != set(want):
            return False
        return all(float(v[k]) == float(x) for k, x in want.items())

    return check


def _named_params(name: str, symbol: str, **params: Any) -> FactFn:
    """A named strategy with the user's parameters on the whole bundled series."""

    def fact(_w: World) -> Expected:
        frame = load_ohlcv(symbol)
        stats = engine_stats(STRATEGIES[name], frame, 10_000, COMMISSION[symbol], params)
        return (Fact(((Num(float(stats["Return [%]"])),),), f"total return of {name} {params}"),)

    return fact


def window(symbol: str, start: str, end: str) -> pd.DataFrame:
    """The bundled bars from `start` to the whole `end` day."""
    frame = load_ohlcv(symbol)
    hi = pd.Timestamp(end) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return frame.loc[pd.Timestamp(start) : hi]


def _period_return(symbol: str, start: str, end: str) -> FactFn:
    """The close-to-close return over the window: from its first close, or (alternative) from
    the last close before it."""

    def fact(_w: World) -> Expected:
        frame, part = load_ohlcv(symbol), window(symbol, start, end)
        last = float(part["Close"].iloc[-1])
        inside = (last / float(part["Close"].iloc[0]) - 1) * 100
        before = frame.loc[: part.index[0]]["Close"].iloc[-2]
        prior = (last / float(before) - 1) * 100
        return (
            Fact(((Num(inside),),), "return from the window's first close"),
            Fact(((Num(prior),),), "return from the close before the window"),
        )

    return fact


def _high_low(symbol: str, start: str, end: str) -> FactFn:
    """Highest high and lowest low of the window, or (alternative) highest and lowest close."""

    def fact(_w: World) -> Expected:
        part = window(symbol, start, end)
        hi, lo = float(part["High"].max()), float(part["Low"].min())
        chi, clo = float(part["Close"].max()), float(part["Close"].min())
        return (
            Fact(((Num(hi, rel=0.005),), (Num(lo, rel=0.005),)), "high and low"),
            Fact(((Num(chi, rel=0.005),), (Num(clo, rel=0.005),)), "highest and lowest close"),
        )

    return fact


def _highest(symbol: str) -> FactFn:
    """The highest high of the whole series, or (alternative) its highest close."""

    def fact(_w: World) -> Expected:
        frame = load_ohlcv(symbol)
        hi, chi = float(frame["High"].max()), float(frame["Close"].max())
        return (
            Fact(((Num(hi, rel=0.005),),), "highest high"),
            Fact(((Num(chi, rel=0.005),),), "highest close"),
        )

    return fact


def _any_of(**where: Any) -> FactFn:
    """Any one of the records matching `where`, named by id or by strategy and total return."""

    def fact(w: World) -> Expected:
        hits = [r for r in w.records if all(getattr(r, k) == v for k, v in where.items())]
        return tuple(f for r in hits for f in record_fact(r, "total_return_pct"))

    return fact


def _model_cost(model: str) -> FactFn:
    """The model's name and its total cost in USD from the ledger's raw rows."""

    def fact(w: World) -> Expected:
        rows = [r for r in w.ledger_rows if r["model"] == model]
        nano = sum((Decimal(r["cost_nanousd"] or 0) for r in rows), Decimal(0))
        usd = float(nano / Decimal(10**9))
        return (Fact(((model,), (Num(usd, rel=0.02),)), f"{model} cost in USD"),)

    return fact


def _saved_strategies(at_least: int) -> FactFn:
    """At least `at_least` of the strategy names in the user's own records."""

    def fact(w: World) -> Expected:
        names = sorted({r.strategy_name for r in w.records})
        return (Fact(tuple((n,) for n in names), f"{at_least} of {names}", at_least),)

    return fact


def _best_dd(symbol: str) -> FactFn:
    """The shallowest max drawdown (closest to zero) of the symbol's backtests."""
    return lambda w: record_fact(best(w.records, "max_drawdown_pct", symbol), "max_drawdown_pct")


# --------------------------------------------------------------------------------------------
# Hand-written references for the spec runs (the question's words, not the compiler's code)
# --------------------------------------------------------------------------------------------


class RefEmaCross(Strategy):
    """Long when the fast EMA crosses above the slow one; flat when it crosses back below."""

    fast = 12
    slow = 26

    def init(self) -> None:
        self.f = self.I(ema, self.data.Close, self.fast)
        self.s = self.I(ema, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.f, self.s) and not self.position:
            self.buy()
        elif crossover(self.s, self.f) and self.position:
            self.position.close()


class RefCloseAboveSma(Strategy):
    """Buy while the close is above its n-bar SMA (when flat); sell once it is below."""

    n = 50

    def init(self) -> None:
        self.ma = self.I(sma, self.data.Close, self.n)

    def next(self) -> None:
        close, ma = self.data.Close[-1], self.ma[-1]
        if close > ma and not self.position:
            self.buy()
        elif close < ma and self.position:
            self.position.close()


class RefChannel(Strategy):
    """Buy a close above the previous n bars' highest high; sell a close below the previous
    m bars' lowest low."""

    n = 6
    m = 6

    def init(self) -> None:
        self.hh = self.I(rolling_max, self.data.High, self.n)
        self.ll = self.I(rolling_min, self.data.Low, self.m)

    def next(self) -> None:
        close = self.data.Close[-1]
        if close > self.hh[-1] and not self.position:
            self.buy()
        elif close < self.ll[-1] and self.position:
            self.position.close()


class RefMacdSignal(Strategy):
    """Buy when the MACD line crosses above its signal line; sell when it crosses below."""

    fast = 12
    slow = 26
    signal = 9

    def init(self) -> None:
        self.m = self.I(macd, self.data.Close, self.fast, self.slow, self.signal)

    def next(self) -> None:
        if crossover(self.m[0], self.m[1]) and not self.position:
            self.buy()
        elif crossover(self.m[1], self.m[0]) and self.position:
            self.position.close()


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

SORTINO = ("sortino", "sortino_ratio")
WIN_RATE = ("win_rate", "winrate", "hit_rate", "win_pct", "win_rate_pct")
MDD = (*DRAWDOWN, "max_drawdown_pct")
EXPOSURE = ("exposure", "exposure_pct", "exposure_time", "time_in_market")
MOM10_GOOG = {"strategy_name": "Momentum", "symbol": "GOOG", "parameters": {"lookback": 10}}
MOM20_BTC = {"strategy_name": "Momentum", "symbol": "BTCUSD", "parameters": {"lookback": 20}}
BOLL_EUR = {"strategy_name": "BollingerReversion", "symbol": "EURUSD", "start": date(2017, 4, 19)}
DONCHIAN_EUR = {"strategy_name": "DonchianBreakout", "symbol": "EURUSD"}
DONCHIAN_GOOG = {"strategy_name": "DonchianBreakout", "symbol": "GOOG"}

F = FreshCase

FRESH_CASES: tuple[FreshCase, ...] = (
    # ---- tune ------------------------------------------------------------------------------
    F(
        "n01", "tune", "en", "top 3 of my backtests by sortino pls",
        "top_backtests", {"metric": metric_is(*SORTINO), "k": one_of(3)},
        _best("sortino", "sortino"),
    ),
    F(
        "n02", "tune", "ko", "EURUSD 쪽 백테스트 중에 max drawdown 제일 얕은 게 어떤 거야?",
        "top_backtests", {"metric": metric_is(*MDD), "symbol": one_of("EURUSD")},
        _best_dd("EURUSD"),
    ),
    F(
        "n03", "tune", "en", "did I ever backtest a donchian breakout? dig those runs up",
        "search_my_backtests", {"query": contains("donchian")},
        _any_of(strategy_name="DonchianBreakout"),
    ),
    F(
        "n04", "tune", "en", "Pull up {a} - how many trades did it take, and what's its Sharpe?",
        "get_backtest", {"backtest_id": id_of("a")}, _one(MOM10_GOOG, "num_trades", "sharpe"),
        ids={"a": MOM10_GOOG},
    ),
    F(
        "n05", "tune", "ko", "{a}랑 {b} 비교해서 수익률은 어느 쪽이 더 높은지 알려줘",
        "compare_backtests", COMPARE, _both(BOLL_EUR, DONCHIAN_EUR, "total_return_pct"),
        ids={"a": BOLL_EUR, "b": DONCHIAN_EUR},
    ),
    F(
        "n06", "tune", "en", "nice. now the same strategy on GOOG?",
        "run_backtest", {"strategy_name": one_of("MacdCross"), "symbol": one_of("GOOG")},
        _named_run("MacdCross", "GOOG"), before=("Run MacdCross on EURUSD.",),
    ),
    F(
        "n07", "tune", "en",
        "Can you test a 12/26 EMA crossover on GOOG from 2006-01-01 through 2010-12-31? Go long "
        "when EMA12 crosses over EMA26, go flat when it crosses back under.",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"ema"', "12", "26"),
            "start": date_in("2006-01-01", "2006-01-31"),
            "end": date_in("2010-12-01", "2010-12-31"),
        },
        _spec_run(RefEmaCross, "GOOG", "2006-01-01", "2010-12-31", fast=12, slow=26),
    ),
    F(
        "n08", "tune", "ko",
        "GOOG로 2005-01-01부터 2009-12-31까지, 종가가 50일 SMA 위에 있으면 매수하고 아래로 "
        "내려가면 청산하는 룰로 backtest 돌려줘.",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"sma"', "50"),
            "start": date_in("2005-01-01", "2005-01-31"),
            "end": date_in("2009-12-01", "2009-12-31"),
        },
        _spec_run(RefCloseAboveSma, "GOOG", "2005-01-01", "2009-12-31", n=50),
    ),
    F(
        "n09", "tune", "en", "what's BTC's latest monthly close in the data you have?",
        "market_data", {"symbol": one_of("BTCUSD")}, _market("BTCUSD", "last_close"),
    ),
    F(
        "n10", "tune", "ko", "2009년 한 해 동안 GOOG 수익률이 얼마였어?",
        "market_data",
        {
            "symbol": one_of("GOOG"),
            "start": date_in("2008-12-31", "2009-01-05"),
            "end": date_in("2009-12-24", "2009-12-31"),
        },
        _period_return("GOOG", "2009-01-01", "2009-12-31"),
    ),
    F(
        "n11", "tune", "en", "got it. and exposure, what's that one measuring?",
        "explain_metric", {"name": metric_is(*EXPOSURE)},
        _words(("position", "invested", "in the market", "held", "holding"),
               ("bar", "time", "period", "percent", "%")),
        before=("What does CAGR mean in my backtest results?",),
    ),
    F(
        "n12", "tune", "en", "ELI5: what is slippage?",
        None, {},
        _words(("price",), ("expect", "intended", "quoted", "planned", "assumed", "wanted"),
               ("execut", "fill", "trade", "order")),
    ),
    F(
        "n13", "tune", "ko", "오늘 LLM 비용 얼마나 나왔어?",
        "my_spend", {}, _spend("today"), also=("my_usage",),
    ),
    F(
        "n14", "tune", "en", "What's my all-time model bill? Calls and $ please.",
        "my_usage", {"since": SINCE_ALL}, _spend("all"), also=("my_spend",),
    ),
    F(
        "n15", "tune", "en", "which named strats can I backtest right now? need the exact names",
        "list_my_strategies", {}, _runnable(3),
    ),
    # ---- held out: never used to tune prompts, descriptions or logic ----------------------
    F(
        "n16", "heldout", "ko", "GOOG만 놓고 CAGR 기준 상위 5개 뽑아줘",
        "top_backtests",
        {"metric": metric_is(*CAGR), "k": one_of(5), "symbol": one_of("GOOG")},
        _best("cagr_pct", "cagr_pct", symbol="GOOG"),
    ),
    F(
        "n17", "heldout", "en", "What strategies have I got saved in my workspace?",
        "list_my_strategies", {}, _saved_strategies(3),
    ),
    F(
        "n18", "heldout", "ko", "예전에 돌렸던 MACD 백테스트들 좀 찾아줄래?",
        "search_my_backtests", {"query": contains("macd")},
        _any_of(strategy_name="MacdCross"),
    ),
    F(
        "n19", "heldout", "en", "Did {a} actually beat buy & hold over its period?",
        "get_backtest", {"backtest_id": id_of("a")},
        _one(MOM20_BTC, "total_return_pct", "buy_and_hold_return_pct"),
        ids={"a": MOM20_BTC},
    ),
    F(
        "n20", "heldout", "en", "How does it stack up against {b}? Which one had the smaller DD?",
        "compare_backtests", COMPARE, _both(DONCHIAN_GOOG, MOM10_GOOG, "max_drawdown_pct"),
        ids={"a": DONCHIAN_GOOG, "b": MOM10_GOOG}, before=("Show me backtest {a}.",),
    ),
    F(
        "n21", "heldout", "ko", "DonchianBreakout을 BTCUSD에 entry 10, exit 5로 돌려줘",
        "run_backtest",
        {
            "strategy_name": one_of("DonchianBreakout"),
            "symbol": one_of("BTCUSD"),
            "parameters": params_are(entry=10, exit=5),
        },
        _named_params("DonchianBreakout", "BTCUSD", entry=10, exit=5),
    ),
    F(
        "n22", "heldout", "en",
        "On BTCUSD, 2013-01-01 to 2023-12-31: buy when a bar closes above the highest high of "
        "the previous 6 bars, exit when it closes below the lowest low of the previous 6 bars. "
        "What's the return?",
        "run_strategy_spec",
        {
            "symbol": one_of("BTCUSD"),
            "spec": spec_mentions('"highest_high"', '"lowest_low"', "6"),
            "start": date_in("2013-01-01", "2013-01-31"),
            "end": date_in("2023-12-01", "2023-12-31"),
        },
        _spec_run(RefChannel, "BTCUSD", "2013-01-01", "2023-12-31", n=6, m=6),
    ),
    F(
        "n23", "heldout", "ko",
        "GOOG 2007-01-01 ~ 2012-12-31 구간에서 MACD선이 signal선을 상향 돌파하면 매수, 하향 "
        "돌파하면 매도하는 전략 성과 좀 보여줘",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"macd'),
            "start": date_in("2007-01-01", "2007-01-31"),
            "end": date_in("2012-12-01", "2012-12-31"),
        },
        _spec_run(RefMacdSignal, "GOOG", "2007-01-01", "2012-12-31"),
    ),
    F(
        "n24", "heldout", "en", "What were GOOG's high and low during 2008?",
        "market_data",
        {
            "symbol": one_of("GOOG"),
            "start": date_in("2008-01-01", "2008-01-03"),
            "end": date_in("2008-12-24", "2008-12-31"),
        },
        _high_low("GOOG", "2008-01-01", "2008-12-31"),
    ),
    F(
        "n25", "heldout", "ko", "그럼 GOOG는 얼마야?",
        "market_data", {"symbol": one_of("GOOG")}, _market("GOOG", "last_close"),
        before=("EURUSD 마지막 종가 알려줘.",),
    ),
    F(
        "n26", "heldout", "ko", "승률(win rate)은 어떻게 계산돼?",
        "explain_metric", {"name": metric_is(*WIN_RATE)},
        _words(("거래", "trade", "매매"), ("수익", "이익", "profit", "winning", "이긴"),
               ("비율", "percent", "퍼센트", "%")),
    ),
    F(
        "n27", "heldout", "ko", "백테스트에서 오버피팅이 왜 문제야?",
        None, {},
        _words(("과거", "historical", "past", "in-sample", "학습", "기존"),
               ("새로운", "미래", "future", "out-of-sample", "실전", "live", "unseen", "실제")),
    ),
    F(
        "n28", "heldout", "en", "quick q: market order vs limit order?",
        None, {},
        _words(("immediately", "right away", "current", "best available", "instantly", "at once"),
               ("specified", "set price", "limit price", "specific price", "or better",
                "price you set", "price you specify", "chosen price", "certain price")),
    ),
    F(
        "n29", "heldout", "en", "am I anywhere near my daily spending cap? how much headroom left?",
        "my_spend", {}, _spend("left"), budget_usd=2.0,
    ),
    F(
        "n30", "heldout", "en",
        "Which model eats most of my spend? What has gpt-4o cost me overall?",
        "my_usage", {"since": SINCE_ALL}, _model_cost("gpt-4o"),
    ),
)  # fmt: skip
"""15 tune and 15 held-out cases: every tool of `tools.TOOLS` in each half, 12 Korean, 3
concept questions, 4 follow-ups (n06, n11, n20, n25)."""
