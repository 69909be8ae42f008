"""A second fresh chat-ops question set, written without reading the chat service's prompts,
repairs or readers.

The first fresh set (`bench/chat_cases_fresh.py`) has had its tune half used for fixes and its
held-out half measured several times, so it no longer estimates unseen behaviour well. This set
was written afterwards by someone who read only the tools' signatures and docstrings
(`tools/*.py`, not `tools/summaries.py`, `tools/intent.py` or `tools/grounding.py`), the
benchmark (`bench/chatops.py`, `bench/chat_cases.py`, `bench/chat_cases_fresh.py`) and the data
(`agents.quant.backtests`, `agents.quant.corpus`) — never `graphs/chatops_advanced.py`,
`graphs/prompts.py` or `agents/llm/tool_calls.py` — and it was not run on the service by its
writer. Run it on its own (`python -m bench.chatops --set fresh2`); its results go to
`bench/results/chatops_fresh2.json`.

Same format and judge as the first fresh set (`FreshCase`, follow-ups sent first on the same
thread via `before`, only the last turn judged), with facts computed independently of the
service: the user's seeded corpus records (plain sorting), the bundled market data (pandas),
reference strategies written here from the question's words and run on the engine, the
ledger's raw rows, or keyword sets. p01-p15 are `split="tune"`, p16-p30 `split="heldout"`; the
halves are built pairwise (p01/p16, p02/p17, ...: the same kind of question, tool and
difficulty, different words, symbols, metrics or periods).

New here: "worst" questions (the lowest of a metric, where the ranking tool lists best first),
search by an idea rather than a strategy's name, a follow-up that names no id ("those two"),
a named run re-run with the user's parameters after a run that did nothing, a market-data
follow-up that switches symbol or period, per-service token counts and today's share of the daily
budget.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant.backtests import BacktestResult, load_ohlcv
from agents.quant.corpus import bollinger, sma
from bench.chat_cases import (
    CAGR,
    COMPARE,
    RETURN,
    SHARPE,
    SINCE_ALL,
    Check,
    Expected,
    Fact,
    FactFn,
    Num,
    World,
    _best,
    _named_run,
    _one,
    _runnable,
    _spec_run,
    _words,
    absent_or,
    date_in,
    id_of,
    metric_is,
    one_of,
    pick,
    record_fact,
    spec_mentions,
)
from bench.chat_cases_fresh import (
    FreshCase,
    _named_params,
    _period_return,
    params_are,
    window,
)

# --------------------------------------------------------------------------------------------
# Argument constraints and facts this set adds
# --------------------------------------------------------------------------------------------


def contains_any(*subs: str) -> Check:
    """A string argument containing at least one of `subs` (any case): a search by an idea may
    be worded many ways."""
    return lambda v: isinstance(v, str) and any(s.lower() in v.lower() for s in subs)


def worst(records: tuple[BacktestResult, ...], field_name: str, symbol: str) -> BacktestResult:
    """The symbol's record with the lowest value of a field (pandas, ties by id)."""
    frame = pd.DataFrame(
        [{"id": r.id, "symbol": r.symbol, "v": getattr(r, field_name)} for r in records]
    )
    frame = frame[frame["symbol"] == symbol].dropna(subset=["v"])
    low = frame.sort_values(["v", "id"], ascending=[True, True]).iloc[0]
    return next(r for r in records if r.id == low["id"])


def top_two(records: tuple[BacktestResult, ...], field_name: str, symbol: str) -> list[str]:
    """The ids of the symbol's two records with the highest value of a field (ties by id)."""
    frame = pd.DataFrame(
        [{"id": r.id, "symbol": r.symbol, "v": getattr(r, field_name)} for r in records]
    )
    frame = frame[frame["symbol"] == symbol].dropna(subset=["v"])
    return list(frame.sort_values(["v", "id"], ascending=[False, True])["id"].iloc[:2])


def _worst(symbol: str, field_name: str) -> FactFn:
    return lambda w: record_fact(worst(w.records, field_name, symbol), field_name)


def _any_in(symbol: str, *names: str) -> FactFn:
    """Any one of the symbol's records whose strategy is one of `names`."""

    def fact(w: World) -> Expected:
        hits = [r for r in w.records if r.symbol == symbol and r.strategy_name in names]
        return tuple(f for r in hits for f in record_fact(r, "total_return_pct"))

    return fact


def _pair(a: dict[str, Any], b: dict[str, Any], field_name: str) -> FactFn:
    """Both records' values of a field, or (alternative) the size of their difference."""

    def fact(w: World) -> Expected:
        va = float(getattr(pick(w.records, **a), field_name))
        vb = float(getattr(pick(w.records, **b), field_name))
        return (
            Fact(((Num(va),), (Num(vb),)), f"{field_name} of both"),
            Fact(((Num(abs(va - vb)),),), f"{field_name} difference"),
        )

    return fact


def _last_close(symbol: str, start: str, end: str) -> FactFn:
    """The last close of the window."""

    def fact(_w: World) -> Expected:
        close = float(window(symbol, start, end)["Close"].iloc[-1])
        return (Fact(((Num(close, rel=0.002),),), "last close of the window"),)

    return fact


def _bars_and_close(symbol: str, start: str, end: str) -> FactFn:
    """How many bars the window has and its last close."""

    def fact(_w: World) -> Expected:
        part = window(symbol, start, end)
        close = float(part["Close"].iloc[-1])
        return (Fact(((Num(len(part), rel=0.01),), (Num(close, rel=0.002),)), "bars and close"),)

    return fact


def _year_move(symbol: str, start: str, end: str) -> FactFn:
    """The window's return (from its first close or the close before it), or its first and last
    close (the first being the window's or the one before it)."""

    def fact(w: World) -> Expected:
        frame, part = load_ohlcv(symbol), window(symbol, start, end)
        last = float(part["Close"].iloc[-1])
        first = float(part["Close"].iloc[0])
        before = float(frame.loc[: part.index[0]]["Close"].iloc[-2])
        return (
            *_period_return(symbol, start, end)(w),
            Fact(((Num(first, rel=0.002),), (Num(last, rel=0.002),)), "first and last close"),
            Fact(((Num(before, rel=0.002),), (Num(last, rel=0.002),)), "prior and last close"),
        )

    return fact


def _service_tokens(service: str) -> FactFn:
    """The service's input and output tokens from the ledger's raw rows, or their sum."""

    def fact(w: World) -> Expected:
        rows = [r for r in w.ledger_rows if r["service"] == service]
        tin = sum(int(r.get("input_tokens") or 0) for r in rows)
        tout = sum(int(r.get("output_tokens") or 0) for r in rows)
        return (
            Fact(((Num(tin, rel=0.01),), (Num(tout, rel=0.01),)), f"{service} tokens in and out"),
            Fact(((Num(tin + tout, rel=0.01),),), f"{service} tokens in total"),
        )

    return fact


def _today_usd(w: World) -> Decimal:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    rows = [r for r in w.ledger_rows if r["ts"] >= midnight]
    return sum((Decimal(r["cost_nanousd"] or 0) for r in rows), Decimal(0)) / Decimal(10**9)


def _budget_and_today(w: World) -> Expected:
    """The daily budget set for the user and what today's ledger rows cost."""
    budget = float(w.budget_usd or 0.0)
    return (Fact(((Num(budget),), (Num(float(_today_usd(w)), rel=0.02),)), "budget and today"),)


def _budget_share(w: World) -> Expected:
    """Today's cost as a percentage of the daily budget, or (alternative) both amounts."""
    budget, today = float(w.budget_usd or 0.0), float(_today_usd(w))
    return (
        Fact(((Num(today / budget * 100),),), "share of the budget in %"),
        Fact(((Num(today, rel=0.02),), (Num(budget),)), "today and budget"),
    )


def _names(*names: str) -> FactFn:
    fact = Fact(tuple((n,) for n in names), f"names {names}")
    return lambda _w: (fact,)


# --------------------------------------------------------------------------------------------
# Hand-written references for the spec runs (the question's words, not the compiler's code)
# --------------------------------------------------------------------------------------------


class RefBandTouch(Strategy):
    """Buy while flat when the close is below the lower Bollinger band (n, k); sell while long
    when it is above the upper band. Read as crossings ("falls below", "rises above") it trades
    the same: after an exit above the upper band the next close below the lower one is a cross,
    and so is the first close above the upper band after an entry below the lower one."""

    n = 20
    k = 2.0

    def init(self) -> None:
        self.bands = self.I(bollinger, self.data.Close, self.n, self.k)

    def next(self) -> None:
        close = self.data.Close[-1]
        if close < self.bands[0][-1] and not self.position:
            self.buy()
        elif close > self.bands[2][-1] and self.position:
            self.position.close()


class RefSmaPair(Strategy):
    """Long when the fast SMA crosses above the slow SMA; flat when it crosses back below."""

    fast = 50
    slow = 200

    def init(self) -> None:
        self.f = self.I(sma, self.data.Close, self.fast)
        self.s = self.I(sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.f, self.s) and not self.position:
            self.buy()
        elif crossover(self.s, self.f) and self.position:
            self.position.close()


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

TRADES = ("trades", "num_trades", "trade_count", "number_of_trades")
SORTINO = ("sortino", "sortino_ratio")
BUY_HOLD = (
    "buy_and_hold", "buy_and_hold_return", "buy_hold", "benchmark", "buy_and_hold_return_pct",
    "buy_&_hold", "buy_&_hold_return", "buyandhold",
)  # fmt: skip
SEARCH_BOLL = contains_any("boll", "band", "볼린저", "밴드", "revers", "회귀")
SEARCH_TREND = contains_any("trend", "momentum", "breakout", "donchian", "추세", "모멘텀")
MOM50_BTC = {"strategy_name": "Momentum", "symbol": "BTCUSD", "parameters": {"lookback": 50}}
MOM20_BTC = {"strategy_name": "Momentum", "symbol": "BTCUSD", "parameters": {"lookback": 20}}
MACD_BTC = {"strategy_name": "MacdCross", "symbol": "BTCUSD"}
DONCHIAN_EUR = {"strategy_name": "DonchianBreakout", "symbol": "EURUSD"}
MOM50_GOOG = {"strategy_name": "Momentum", "symbol": "GOOG", "parameters": {"lookback": 50}}
MOM10_GOOG = {"strategy_name": "Momentum", "symbol": "GOOG", "parameters": {"lookback": 10}}

F = FreshCase

FRESH2_CASES: tuple[FreshCase, ...] = (
    # ---- tune ------------------------------------------------------------------------------
    F(
        "p01", "tune", "ko",
        "내 백테스트 중에 매매를 제일 자주 한 건 어떤 거야? 거래 횟수도 같이 알려줘",
        "top_backtests", {"metric": metric_is(*TRADES)}, _best("num_trades", "num_trades"),
    ),
    F(
        "p02", "tune", "en", "which of my EURUSD backtests did the worst? like lost the most money",
        "top_backtests", {"symbol": one_of("EURUSD"), "metric": absent_or(metric_is(*RETURN))},
        _worst("EURUSD", "total_return_pct"), also=("search_my_backtests",),
    ),
    F(
        "p03", "tune", "ko", "GOOG로 볼린저 밴드 전략 돌렸던 거 있었던 것 같은데, 찾아줄래?",
        "search_my_backtests", {"query": SEARCH_BOLL, "symbol": absent_or("GOOG")},
        lambda w: tuple(
            f
            for r in w.records
            if r.strategy_name == "BollingerReversion" and r.symbol == "GOOG"
            for f in record_fact(r, "total_return_pct")
        ),
    ),
    F(
        "p04", "tune", "en",
        "{a} - how long was it actually in the market, and what was its worst drawdown?",
        "get_backtest", {"backtest_id": id_of("a")},
        _one(MOM50_BTC, "exposure_pct", "max_drawdown_pct"), ids={"a": MOM50_BTC},
    ),
    F(
        "p05", "tune", "ko", "그 두 개 비교해줘. 총수익률은 얼마나 차이 나?",
        "compare_backtests", COMPARE, _pair(MACD_BTC, MOM20_BTC, "total_return_pct"),
        ids={"a": MACD_BTC, "b": MOM20_BTC},
        before=("BTCUSD 백테스트 중에 샤프 상위 두 개만 뽑아줘",),
    ),
    F(
        "p06", "tune", "en", "kick off an EmaCross bt on bitcoin, default settings",
        "run_backtest", {"strategy_name": one_of("EmaCross"), "symbol": one_of("BTCUSD")},
        _named_run("EmaCross", "BTCUSD"),
    ),
    F(
        "p07", "tune", "en", "0 trades lol. try again w/ period 10 and k 1.5",
        "run_backtest",
        {
            "strategy_name": one_of("BollingerReversion"),
            "symbol": one_of("BTCUSD"),
            "parameters": params_are(period=10, k=1.5),
        },
        _named_params("BollingerReversion", "BTCUSD", period=10, k=1.5),
        before=("Run BollingerReversion on BTCUSD.",),
    ),
    F(
        "p08", "tune", "ko",
        "GOOG 2008-01-01~2011-12-31 구간으로 테스트해줘. 종가가 볼린저 밴드 하단(20일, 2표준편차) "
        "아래로 떨어지면 매수하고, 상단 위로 올라가면 청산하는 룰이야.",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"bb_lower"', '"bb_upper"', "20"),
            "start": date_in("2008-01-01", "2008-01-31"),
            "end": date_in("2011-12-01", "2011-12-31"),
        },
        _spec_run(RefBandTouch, "GOOG", "2008-01-01", "2011-12-31", n=20, k=2.0),
    ),
    F(
        "p09", "tune", "ko",
        "EURUSD 2017년 4분기(10~12월) 동안 몇 % 올랐는지 아니면 내렸는지 알려줘",
        "market_data",
        {
            "symbol": one_of("EURUSD"),
            "start": date_in("2017-09-29", "2017-10-02"),
            "end": date_in("2017-12-29", "2018-01-01"),
        },
        _period_return("EURUSD", "2017-10-01", "2017-12-31"),
    ),
    F(
        "p10", "tune", "en", "and BTC's?",
        "market_data",
        {"symbol": one_of("BTCUSD"), "end": date_in("2017-09-30", "2017-10-30")},
        _last_close("BTCUSD", "2012-01-01", "2017-09-30"),
        before=("what was EURUSD's close at the end of september 2017?",),
    ),
    F(
        "p11", "tune", "en", "in my results what exactly does 'buy & hold return' measure?",
        "explain_metric", {"name": metric_is(*BUY_HOLD)},
        _words(("buy", "bought", "purchas"), ("first", "start", "beginning"),
               ("last", "end", "until", "through")),
    ),
    F(
        "p12", "tune", "ko", "분산투자가 왜 리스크를 줄여준다는 거야?",
        None, {},
        _words(("여러", "다양", "자산", "종목", "asset"),
               ("상관", "correlat", "동시에", "한꺼번에", "같이", "함께", "상쇄", "offset",
                "서로")),
        also=("explain_metric",),
    ),
    F(
        "p13", "tune", "ko", "내 하루 예산 한도가 얼마로 잡혀 있어? 오늘 벌써 얼마 썼는지도",
        "my_spend", {}, _budget_and_today, budget_usd=3.0,
    ),
    F(
        "p14", "tune", "en", "how many tokens has the strategy builder used so far (in + out)?",
        "my_usage", {"since": SINCE_ALL}, _service_tokens("strategy_builder"),
    ),
    F(
        "p15", "tune", "en",
        "is there an Ichimoku strategy I can run by name? if not what named ones do you have",
        "list_my_strategies", {}, _runnable(3),
    ),
    # ---- held out: never used to tune prompts, descriptions or logic ----------------------
    F(
        "p16", "heldout", "en", "on EURUSD whats my top run by sortino? just the winner",
        "top_backtests", {"metric": metric_is(*SORTINO), "symbol": one_of("EURUSD")},
        _best("sortino", "sortino", symbol="EURUSD"),
    ),
    F(
        "p17", "heldout", "ko", "샤프 기준으로 EURUSD에서 제일 성적 나빴던 백테스트는?",
        "top_backtests", {"symbol": one_of("EURUSD"), "metric": metric_is(*SHARPE)},
        _worst("EURUSD", "sharpe"), also=("search_my_backtests",),
    ),
    F(
        "p18", "heldout", "en", "look thru my runs for trend-following stuff on EURUSD",
        "search_my_backtests", {"query": SEARCH_TREND, "symbol": absent_or("EURUSD")},
        _any_in("EURUSD", "Momentum", "DonchianBreakout", "MacdCross", "SmaCross", "EmaCross"),
    ),
    F(
        "p19", "heldout", "ko", "{a} 최종 자산(final equity)이 얼마로 끝났고 샤프는 몇이었어?",
        "get_backtest", {"backtest_id": id_of("a")},
        _one(DONCHIAN_EUR, "final_equity", "sharpe"), ids={"a": DONCHIAN_EUR},
    ),
    F(
        "p20", "heldout", "en", "ok put it side by side with {b}. which one had the better sharpe?",
        "compare_backtests", COMPARE, _pair(MOM50_GOOG, MOM10_GOOG, "sharpe"),
        ids={"a": MOM50_GOOG, "b": MOM10_GOOG}, before=("what lookback was {a} run with?",),
    ),
    F(
        "p21", "heldout", "en", "pls run SmaCross on btcusd, default params",
        "run_backtest", {"strategy_name": one_of("SmaCross"), "symbol": one_of("BTCUSD")},
        _named_run("SmaCross", "BTCUSD"),
    ),
    F(
        "p22", "heldout", "ko", "이번엔 lookback 30, threshold 2로 바꿔서 다시 돌려봐",
        "run_backtest",
        {
            "strategy_name": one_of("Momentum"),
            "symbol": one_of("GOOG"),
            "parameters": params_are(lookback=30, threshold=2),
        },
        _named_params("Momentum", "GOOG", lookback=30, threshold=2.0),
        before=("GOOG에 Momentum 기본값으로 돌려줘",),
    ),
    F(
        "p23", "heldout", "en",
        "GOOG, 2005-01-01 to 2012-12-31: classic golden cross - buy when the 50-day SMA crosses "
        "above the 200-day SMA, sell on the death cross. what's the return?",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"sma"', "50", "200"),
            "start": date_in("2005-01-01", "2005-01-31"),
            "end": date_in("2012-12-01", "2012-12-31"),
        },
        _spec_run(RefSmaPair, "GOOG", "2005-01-01", "2012-12-31", fast=50, slow=200),
    ),
    F(
        "p24", "heldout", "ko",
        "GOOG 2010년 데이터는 몇 거래일치 있고, 그 해 마지막 종가는 얼마야?",
        "market_data",
        {
            "symbol": one_of("GOOG"),
            "start": date_in("2009-12-31", "2010-01-04"),
            "end": date_in("2010-12-31", "2011-01-02"),
        },
        _bars_and_close("GOOG", "2010-01-01", "2010-12-31"),
    ),
    F(
        "p25", "heldout", "ko", "그럼 최근 1년은?",
        "market_data",
        {
            "symbol": one_of("BTCUSD"),
            "start": date_in("2023-12-01", "2024-01-31"),
            "end": absent_or(date_in("2024-12-01", "2024-12-31")),
        },
        _year_move("BTCUSD", "2024-01-01", "2024-12-31"),
        before=("BTC 2020년에 얼마에서 시작해서 얼마로 끝났어?",),
    ),
    F(
        "p26", "heldout", "ko", "CAGR이랑 총수익률은 뭐가 달라?",
        "explain_metric", {"name": metric_is(*CAGR, *RETURN)},
        _words(("연평균", "연간", "연율", "annual", "yearly", "매년", "per year", "1년", "해마다"),
               ("복리", "복합", "compound", "기하", "geometric", "기간", "period", "길이",
                "length")),
    ),
    F(
        "p27", "heldout", "en",
        "what's the bid-ask spread, and why does it matter for short-term trading?",
        None, {},
        _words(("bid",), ("ask", "offer"),
               ("cost", "pay", "expens", "difference", "gap", "between")),
        also=("explain_metric",),
    ),
    F(
        "p28", "heldout", "en", "today's model calls - what share of my daily cap is that, in %?",
        "my_spend", {}, _budget_share, budget_usd=1.5,
    ),
    F(
        "p29", "heldout", "en",
        "how many tokens did my narrative reports eat so far, input vs output?",
        "my_usage", {"since": SINCE_ALL}, _service_tokens("narrative_report"),
    ),
    F(
        "p30", "heldout", "ko",
        "바로 돌릴 수 있는 전략 중에 평균회귀(mean reversion) 계열은 뭐가 있어?",
        "list_my_strategies", {}, _names("RsiMeanReversion", "BollingerReversion"),
    ),
)  # fmt: skip
"""15 tune and 15 held-out cases, paired by kind: every tool of `tools.TOOLS` in each half
(top_backtests, run_backtest and market_data twice), 7 Korean and 3 follow-ups a half, one
general question a half that needs no tool."""
