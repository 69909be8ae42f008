"""A third fresh chat-ops question set, written without reading the chat service's prompts,
repairs or readers.

The first two fresh sets (`bench/chat_cases_fresh.py`, `bench/chat_cases_fresh2.py`) have been
used for fixes and measured, so they no longer estimate unseen behaviour well. This set was
written afterwards by someone who read only the tools' signatures and docstrings (`tools/*.py`,
not `tools/summaries.py`, `tools/intent.py` or `tools/grounding.py`), the benchmark and the data
(`agents.quant.backtests`, `agents.quant.corpus`) — never `graphs/chatops_advanced.py`,
`graphs/prompts.py` or `agents/llm/tool_calls.py` — and it was not run on the service by its
writer. Run it on its own (`python -m bench.chatops --set fresh3`); its results go to
`bench/results/chatops_fresh3.json`.

Same format and judge as the earlier fresh sets (`FreshCase`, follow-ups sent first on the same
thread via `before`, only the last turn judged), with facts computed independently of the
service: the user's seeded corpus records (plain sorting), the bundled market data (pandas),
reference strategies written here from the question's words and run on the engine, the
ledger's raw rows, or keyword sets. q01-q15 are `split="tune"`, q16-q30 `split="heldout"`; the
halves are built pairwise (q01/q16, q02/q17, ...: the same kind of question and difficulty,
different words, symbols, metrics or periods).

New here: requests that must be answered "no such backtest" or "no such data" (an id the user
does not have, a symbol that is not bundled): the fact is that the answer says so (`_absent`).
The judge only looks for what an answer states, so it cannot also check that no number was
invented; a reader of the results should.
"""

from __future__ import annotations

from decimal import Decimal

from agents.quant.backtests import BacktestResult
from bench.chat_cases import (
    CAGR,
    COMPARE,
    DRAWDOWN,
    SINCE_ALL,
    Expected,
    Fact,
    FactFn,
    Num,
    RefCloseCrossSma,
    World,
    _dollars_today,
    _named_run,
    _spec_run,
    absent_or,
    best,
    date_in,
    metric_is,
    one_of,
    record_fact,
    spec_mentions,
)
from bench.chat_cases_fresh import (
    FreshCase,
    RefEmaCross,
    _model_cost,
    _period_return,
    window,
)
from bench.chat_cases_fresh2 import _pair, _worst, top_two

# --------------------------------------------------------------------------------------------
# Facts this set adds
# --------------------------------------------------------------------------------------------

ABSENT = (
    "not found", "couldn't find", "could not find", "can't find", "cannot find", "unable to find",
    "no backtest", "doesn't exist", "does not exist", "no such", "not available",
    "isn't available", "unavailable", "not bundled", "don't have", "do not have", "no data",
    "only have", "only covers", "only bundle", "not supported", "unsupported", "not one of",
    "없", "존재하지", "지원하지", "지원되지", "찾을 수", "못 찾", "못찾",
)  # fmt: skip
"""Ways an answer says the thing asked about is not there."""


def _absent(*subject: str) -> FactFn:
    """The answer says it is not there (`ABSENT`) and names what (any of `subject`)."""
    fact = Fact((ABSENT, subject), f"says {subject[0]} is not there")
    return lambda _w: (fact,)


def _highest_close(symbol: str, start: str, end: str) -> FactFn:
    """The window's highest close, or (alternative) its highest high."""

    def fact(_w: World) -> Expected:
        part = window(symbol, start, end)
        chi, hi = float(part["Close"].max()), float(part["High"].max())
        return (
            Fact(((Num(chi, rel=0.003),),), "highest close of the window"),
            Fact(((Num(hi, rel=0.003),),), "highest high of the window"),
        )

    return fact


def _budget_and_left(w: World) -> Expected:
    """The daily budget and what is left of it today (budget minus today's ledger rows)."""
    budget = Decimal(str(w.budget_usd or 0.0))
    left = float(budget - _dollars_today(w))
    return (Fact(((Num(float(budget)),), (Num(left, rel=0.02),)), "budget and left"),)


def _concept(*groups: tuple[str, ...]) -> FactFn:
    fact = Fact(tuple(groups), "definition")
    return lambda _w: (fact,)


def _best_of(field_name: str, symbol: str) -> FactFn:
    return lambda w: record_fact(best(w.records, field_name, symbol), field_name)


def two_best(records: tuple[BacktestResult, ...], field_name: str, symbol: str) -> set[str]:
    """The ids a "top two by X on SYMBOL" turn names (for the "those two" follow-ups)."""
    return set(top_two(records, field_name, symbol))


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

TRADES = ("trades", "num_trades", "trade_count", "number_of_trades")
WIN_RATE = ("win_rate", "win_rate_pct", "winrate", "hit_rate")
MOM10_GOOG = {"strategy_name": "Momentum", "symbol": "GOOG", "parameters": {"lookback": 10}}
MOM50_GOOG = {"strategy_name": "Momentum", "symbol": "GOOG", "parameters": {"lookback": 50}}
MOM50_BTC = {"strategy_name": "Momentum", "symbol": "BTCUSD", "parameters": {"lookback": 50}}
MOM_EUR = {"strategy_name": "Momentum", "symbol": "EURUSD"}
MACD_GOOG = {"strategy_name": "MacdCross", "symbol": "GOOG"}
MACD_BTC = {"strategy_name": "MacdCross", "symbol": "BTCUSD"}
DONCHIAN_GOOG = {"strategy_name": "DonchianBreakout", "symbol": "GOOG"}
DONCHIAN_EUR = {"strategy_name": "DonchianBreakout", "symbol": "EURUSD"}
GHOST_A = "bt-0000deadbeef0000aaaa"
GHOST_B = "bt-ffff1234abcd5678bbbb"
"""Backtest ids no seeded user has (corpus ids are hashes; the unit test checks these)."""

F = FreshCase

FRESH3_CASES: tuple[FreshCase, ...] = (
    # ---- tune ------------------------------------------------------------------------------
    F(
        "q01", "tune", "en", "which GOOG bt had the nastiest drawdown? id + how deep",
        "top_backtests", {"symbol": one_of("GOOG"), "metric": metric_is(*DRAWDOWN)},
        _worst("GOOG", "max_drawdown_pct"), also=("search_my_backtests",),
    ),
    F(
        "q02", "tune", "ko", "GOOG 백테스트 중에 거래를 제일 많이 한 게 뭐야? 몇 번이었어?",
        "top_backtests", {"symbol": absent_or("GOOG"), "metric": metric_is(*TRADES)},
        _best_of("num_trades", "GOOG"),
    ),
    F(
        "q03", "tune", "en", "{a} vs {b} - which one held up better on max dd?",
        "compare_backtests", COMPARE, _pair(MOM10_GOOG, DONCHIAN_GOOG, "max_drawdown_pct"),
        ids={"a": MOM10_GOOG, "b": DONCHIAN_GOOG},
    ),
    F(
        "q04", "tune", "en", "ok compare those two. how far apart are their sharpes?",
        "compare_backtests", COMPARE, _pair(MACD_GOOG, MOM50_GOOG, "sharpe"),
        ids={"a": MACD_GOOG, "b": MOM50_GOOG},
        before=("top 2 GOOG backtests by total return?",),
    ),
    F(
        "q05", "tune", "en", "fire off DonchianBreakout on EURUSD, stock params",
        "run_backtest", {"strategy_name": one_of("DonchianBreakout"), "symbol": one_of("EURUSD")},
        _named_run("DonchianBreakout", "EURUSD"),
    ),
    F(
        "q06", "tune", "en", f"pull up {GHOST_A} for me, what was its sharpe?",
        "get_backtest", {"backtest_id": one_of(GHOST_A)},
        _absent(GHOST_A, "backtest", "that id", "this id"), also=("search_my_backtests",),
    ),
    F(
        "q07", "tune", "en",
        "test on GOOG 2006-01-01 thru 2009-12-31: go long when the 10 EMA crosses over the "
        "30 EMA, get out when it crosses back under. total return?",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"ema"', "10", "30"),
            "start": date_in("2006-01-01", "2006-01-31"),
            "end": date_in("2009-12-01", "2009-12-31"),
        },
        _spec_run(RefEmaCross, "GOOG", "2006-01-01", "2009-12-31", fast=10, slow=30),
    ),
    F(
        "q08", "tune", "en", "how much did GOOG gain over calendar 2009, in %?",
        "market_data",
        {
            "symbol": one_of("GOOG"),
            "start": date_in("2008-12-31", "2009-01-02"),
            "end": date_in("2009-12-31", "2010-01-01"),
        },
        _period_return("GOOG", "2009-01-01", "2009-12-31"),
    ),
    F(
        "q09", "tune", "en", "GOOG's highest close during 2007?",
        "market_data",
        {
            "symbol": one_of("GOOG"),
            "start": date_in("2006-12-29", "2007-01-02"),
            "end": date_in("2007-12-31", "2008-01-01"),
        },
        _highest_close("GOOG", "2007-01-01", "2007-12-31"),
    ),
    F(
        "q10", "tune", "ko", "그럼 11월 한 달만 보면?",
        "market_data",
        {
            "symbol": one_of("EURUSD"),
            "start": date_in("2017-10-31", "2017-11-01"),
            "end": date_in("2017-11-30", "2017-12-01"),
        },
        _period_return("EURUSD", "2017-11-01", "2017-11-30"),
        before=("EURUSD 2017-06-01부터 2017-08-31까지 수익률 몇 %야?",),
    ),
    F(
        "q11", "tune", "en", "same thing on EURUSD",
        "run_backtest", {"strategy_name": one_of("MacdCross"), "symbol": one_of("EURUSD")},
        _named_run("MacdCross", "EURUSD"), before=("run MacdCross on GOOG, defaults",),
    ),
    F(
        "q12", "tune", "en", "sharpe vs sortino, whats the actual difference? quick version",
        None, {},
        _concept(("downside", "negative", "losing", "bad"),
                 ("volatility", "deviation", "std", "risk")),
        also=("explain_metric",),
    ),
    F(
        "q13", "tune", "en", "what has gpt-4o cost me so far, in $?",
        "my_usage", {"since": SINCE_ALL}, _model_cost("gpt-4o"), also=("my_spend",),
    ),
    F(
        "q14", "tune", "ko", "하루 한도가 얼마로 되어 있고, 오늘 쓸 수 있는 돈이 얼마나 남았어?",
        "my_spend", {}, _budget_and_left, budget_usd=2.5,
    ),
    F(
        "q15", "tune", "en", "what did AAPL return in 2012? just the %",
        None, {}, _absent("AAPL", "Apple"), also=("market_data",),
    ),
    # ---- held out: never used to tune prompts, descriptions or logic ----------------------
    F(
        "q16", "heldout", "ko", "EURUSD에서 승률이 제일 낮았던 백테스트는? 승률 몇 %였어?",
        "top_backtests", {"symbol": one_of("EURUSD"), "metric": metric_is(*WIN_RATE)},
        _worst("EURUSD", "win_rate_pct"), also=("search_my_backtests",),
    ),
    F(
        "q17", "heldout", "en", "best EURUSD run by cagr? only need #1",
        "top_backtests", {"symbol": absent_or("EURUSD"), "metric": metric_is(*CAGR)},
        _best_of("cagr_pct", "EURUSD"),
    ),
    F(
        "q18", "heldout", "en", "{a} or {b}: whose win rate is higher, and by how much?",
        "compare_backtests", COMPARE, _pair(DONCHIAN_EUR, MOM_EUR, "win_rate_pct"),
        ids={"a": DONCHIAN_EUR, "b": MOM_EUR},
    ),
    F(
        "q19", "heldout", "ko", "그 두 개 나란히 비교해줘. CAGR 차이가 몇 %p야?",
        "compare_backtests", COMPARE, _pair(MACD_BTC, MOM50_BTC, "cagr_pct"),
        ids={"a": MACD_BTC, "b": MOM50_BTC},
        before=("BTCUSD에서 총수익률 상위 2개 백테스트 알려줘",),
    ),
    F(
        "q20", "heldout", "en", "can u run BuyAndHold on BTCUSD? no tweaks",
        "run_backtest", {"strategy_name": one_of("BuyAndHold"), "symbol": one_of("BTCUSD")},
        _named_run("BuyAndHold", "BTCUSD"),
    ),
    F(
        "q21", "heldout", "en", f"{GHOST_B} - total return + num trades?",
        "get_backtest", {"backtest_id": one_of(GHOST_B)},
        _absent(GHOST_B, "backtest", "that id", "this id"), also=("search_my_backtests",),
    ),
    F(
        "q22", "heldout", "ko",
        "BTCUSD 2014-01-01부터 2020-12-31까지, 종가가 12개월 이동평균선을 상향 돌파하면 사고 "
        "하향 돌파하면 파는 전략 백테스트해줘. 수익률 얼마 나와?",
        "run_strategy_spec",
        {
            "symbol": one_of("BTCUSD"),
            "spec": spec_mentions('"sma"', "12"),
            "start": date_in("2014-01-01", "2014-01-31"),
            "end": date_in("2020-12-01", "2020-12-31"),
        },
        _spec_run(RefCloseCrossSma, "BTCUSD", "2014-01-01", "2020-12-31", n=12),
    ),
    F(
        "q23", "heldout", "en", "BTC % change in H1 2021 (jan-jun)?",
        "market_data",
        {
            "symbol": one_of("BTCUSD"),
            "start": date_in("2020-12-31", "2021-01-31"),
            "end": date_in("2021-06-30", "2021-07-01"),
        },
        _period_return("BTCUSD", "2021-01-01", "2021-06-30"),
    ),
    F(
        "q24", "heldout", "en", "peak EURUSD close in dec 2017?",
        "market_data",
        {
            "symbol": one_of("EURUSD"),
            "start": date_in("2017-11-30", "2017-12-01"),
            "end": date_in("2017-12-31", "2018-01-01"),
        },
        _highest_close("EURUSD", "2017-12-01", "2017-12-31"),
    ),
    F(
        "q25", "heldout", "en", "and 2012?",
        "market_data",
        {
            "symbol": one_of("GOOG"),
            "start": date_in("2011-12-30", "2012-01-03"),
            "end": date_in("2012-12-31", "2013-01-01"),
        },
        _period_return("GOOG", "2012-01-01", "2012-12-31"),
        before=("GOOG return for 2011, start to end of year?",),
    ),
    F(
        "q26", "heldout", "en", "now the same on GOOG pls",
        "run_backtest", {"strategy_name": one_of("EmaCross"), "symbol": one_of("GOOG")},
        _named_run("EmaCross", "GOOG"), before=("Run EmaCross on BTCUSD with the defaults.",),
    ),
    F(
        "q27", "heldout", "en", "calmar ratio - what is it and why do ppl use it over sharpe?",
        None, {},
        _concept(("drawdown",), ("annual", "cagr", "yearly", "return")),
        also=("explain_metric",),
    ),
    F(
        "q28", "heldout", "en", "spend on gpt-4o-mini to date? dollars",
        "my_usage", {"since": SINCE_ALL}, _model_cost("gpt-4o-mini"), also=("my_spend",),
    ),
    F(
        "q29", "heldout", "en", "what's my daily limit set to, and whats left of it for today?",
        "my_spend", {}, _budget_and_left, budget_usd=6.0,
    ),
    F(
        "q30", "heldout", "ko", "TSLA 2020년 최고가가 얼마였는지 알려줘",
        None, {}, _absent("TSLA", "Tesla", "테슬라"), also=("market_data",),
    ),
)  # fmt: skip
"""15 tune and 15 held-out cases, paired by kind (q01/q16 ... q15/q30): worst and best by a
metric, two comparisons (by ids and "those two"), a named run, a backtest id that does not
exist, a spec run, a period return, a highest close, a market follow-up changing the period, a
run follow-up changing the symbol, a concept question, a model's cost, the daily budget and
what is left, and a symbol that is not bundled. 7 Korean, 4 follow-ups."""

PAIRS: tuple[tuple[str, str], ...] = tuple(
    (FRESH3_CASES[i].id, FRESH3_CASES[i + 15].id) for i in range(15)
)
