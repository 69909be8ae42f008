"""A fourth fresh chat-ops question set, written without reading the chat service's prompts,
repairs or readers.

The first three fresh sets (`bench/chat_cases_fresh.py`, `bench/chat_cases_fresh2.py`,
`bench/chat_cases_fresh3.py`) have been used for fixes and measured, so they no longer estimate
unseen behaviour well. This set was written afterwards by someone who read only the tools'
signatures and docstrings (`tools/*.py`, not `tools/summaries.py`, `tools/intent.py` or
`tools/grounding.py`), the benchmark (`bench/chatops.py` and the earlier case files for their
format and helpers) and the data and engine (`agents.quant.backtests`, `agents.quant.corpus`,
`agents.quant.spec`) — never `graphs/chatops_advanced.py`, `graphs/prompts.py`,
`agents/llm/tool_calls.py` or `agents/quant/glossary.py` — and it was not run on the service by
its writer. Run it on its own (`python -m bench.chatops --set fresh4`); its results go to
`bench/results/chatops_fresh4.json`.

Same format and judge as the earlier fresh sets (`FreshCase`, follow-ups sent first on the same
thread via `before`, only the last turn judged), with facts computed independently of the
service: the user's seeded corpus records (plain sorting), the bundled market data (pandas),
reference strategies written here from the question's words and run on the engine, the
ledger's raw rows, or keyword sets. r01-r15 are `split="tune"`, r16-r30 `split="heldout"`; the
halves are built pairwise (r01/r16, r02/r17, ...: the same kind of question, tool and
difficulty, different words, symbols, metrics or periods).

New here: every tool is some pair's expected tool (get_backtest only through ids the user does
not have); "worst" questions must ask the ranking for `order="worst"`; a "those two" follow-up
whose two are the top two by another metric than the one compared; a named run re-run with the
user's parameters; RSI-level rules with a stated period; a quarter and a month of market data;
a period outside the bundled data (besides a symbol that is not bundled and made-up ids);
the daily budget with its reset time; per-service calls and cost; a runnable strategy picked
by what it trades on. The judge only looks for what an answer states, so for the "not there"
cases it cannot also check that no number was invented; a reader of the results should.
"""

from __future__ import annotations

from decimal import Decimal

from bench.chat_cases import (
    COMPARE,
    SINCE_ALL,
    Expected,
    Fact,
    FactFn,
    Num,
    RefRsiBand,
    World,
    _named_run,
    _spec_run,
    _words,
    absent_or,
    date_in,
    metric_is,
    one_of,
    spec_mentions,
)
from bench.chat_cases_fresh import (
    BOLL_EUR,
    EXPOSURE,
    FreshCase,
    _named_params,
    _period_return,
    params_are,
)
from bench.chat_cases_fresh2 import SORTINO, _any_in, _names, _pair, _worst, contains_any
from bench.chat_cases_fresh3 import (
    ABSENT,
    DONCHIAN_EUR,
    DONCHIAN_GOOG,
    MOM10_GOOG,
    TRADES,
    WIN_RATE,
    _absent,
    _best_of,
)

# --------------------------------------------------------------------------------------------
# Facts this set adds
# --------------------------------------------------------------------------------------------

OUTSIDE = (
    *ABSENT, "only go", "only run", "only through", "ends on", "ends in", "ends at", "outside",
    "beyond", "까지만", "범위",
)  # fmt: skip
"""Ways an answer says a period is not in the data (`ABSENT` and "only goes to ...")."""


def _outside(*subject: str) -> FactFn:
    """The answer says the period is not covered (`OUTSIDE`) and names it (any of `subject`)."""
    fact = Fact((OUTSIDE, subject), f"says {subject[0]} is not in the data")
    return lambda _w: (fact,)


RESET = ("00:00", "midnight", "자정", "0시", "오전 9시", "09:00", "9시")
"""Ways to say the daily budget resets at 00:00 UTC (09:00 in Korea)."""


def _budget_and_reset(w: World) -> Expected:
    """The daily budget set for the user and when it resets (00:00 UTC, per `my_spend`)."""
    budget = float(w.budget_usd or 0.0)
    return (Fact(((Num(budget),), RESET), "budget and reset time"),)


def _service_calls_cost(service: str) -> FactFn:
    """The service's number of calls and their cost in USD, from the ledger's raw rows."""

    def fact(w: World) -> Expected:
        rows = [r for r in w.ledger_rows if r["service"] == service]
        nano = sum((Decimal(r["cost_nanousd"] or 0) for r in rows), Decimal(0))
        usd = float(nano / Decimal(10**9))
        return (
            Fact(((Num(len(rows), rel=0.0),), (Num(usd, rel=0.02),)), f"{service} calls, cost"),
        )

    return fact


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

SHARPE = ("sharpe", "sharpe_ratio")
WORST = one_of("worst")
SEARCH_BREAKOUT = contains_any("breakout", "break out", "donchian", "channel", "turtle", "돌파")
SEARCH_MACD = contains_any("macd")
GHOST_C = "bt-7f3e9a0c1d2b4e5f6a7b"
GHOST_D = "bt-31415926535897932384"
"""Backtest ids no seeded user has (corpus ids are hashes; the unit test checks these)."""
NOT_THERE = ("r05", "r11", "r20", "r26")
"""The cases whose answer must say the thing asked about is not there."""

F = FreshCase

FRESH4_CASES: tuple[FreshCase, ...] = (
    # ---- tune ------------------------------------------------------------------------------
    F(
        "r01", "tune", "ko", "btc 쪽 백테스트 중에 sortino 젤 높은 거 뭐야? 수치도 같이",
        "top_backtests", {"symbol": one_of("BTCUSD"), "metric": metric_is(*SORTINO)},
        _best_of("sortino", "BTCUSD"),
    ),
    F(
        "r02", "tune", "en", "lowest sharpe out of my goog runs?? want the id",
        "top_backtests",
        {"symbol": one_of("GOOG"), "metric": metric_is(*SHARPE), "order": WORST},
        _worst("GOOG", "sharpe"), also=("search_my_backtests",),
    ),
    F(
        "r03", "tune", "ko", "그 둘 비교하면 CAGR 몇 %p 차이남?",
        "compare_backtests",
        COMPARE,
        _pair(MOM10_GOOG, DONCHIAN_GOOG, "cagr_pct"),
        ids={"a": MOM10_GOOG, "b": DONCHIAN_GOOG},
        before=("GOOG 백테스트 샤프 기준으로 top 2만 보여줘",),
    ),
    F(
        "r04", "tune", "en", "whats my daily $ cap right now + when does it reset?",
        "my_spend", {}, _budget_and_reset, budget_usd=4.0,
    ),
    F(
        "r05", "tune", "ko", f"{GHOST_C} 이 백테스트 샤프랑 MDD 다시 보여줘",
        "get_backtest", {"backtest_id": one_of(GHOST_C)},
        _absent(GHOST_C, "backtest", "백테스트", "that id", "this id", "해당"),
        also=("search_my_backtests",),
    ),
    F(
        "r06", "tune", "en", "dig up my breakout-style runs on goog",
        "search_my_backtests", {"query": SEARCH_BREAKOUT, "symbol": absent_or("GOOG")},
        _any_in("GOOG", "DonchianBreakout"),
    ),
    F(
        "r07", "tune", "ko", "GOOG에 RsiMeanReversion 기본 파라미터로 돌려줘",
        "run_backtest",
        {"strategy_name": one_of("RsiMeanReversion"), "symbol": one_of("GOOG")},
        _named_run("RsiMeanReversion", "GOOG"),
    ),
    F(
        "r08", "tune", "en", "ok now fast 20 / slow 100, same ticker",
        "run_backtest",
        {
            "strategy_name": one_of("SmaCross"),
            "symbol": one_of("GOOG"),
            "parameters": params_are(fast=20, slow=100),
        },
        _named_params("SmaCross", "GOOG", fast=20, slow=100),
        before=("throw SmaCross at GOOG real quick",),
    ),
    F(
        "r09", "tune", "ko",
        "EURUSD 2017-06-01~2017-12-31 기간으로 백테스트: RSI(10)이 25 아래로 떨어지면 매수, "
        "75 넘어가면 매도. 총수익률 얼마?",
        "run_strategy_spec",
        {
            "symbol": one_of("EURUSD"),
            "spec": spec_mentions('"rsi"', "25", "75"),
            "start": date_in("2017-06-01", "2017-06-30"),
            "end": date_in("2017-12-01", "2017-12-31"),
        },
        _spec_run(RefRsiBand, "EURUSD", "2017-06-01", "2017-12-31", n=10, low=25, high=75),
    ),
    F(
        "r10", "tune", "en", "GOOG % change over Q3 2008 (jul-sep)?",
        "market_data",
        {
            "symbol": one_of("GOOG"),
            "start": date_in("2008-06-30", "2008-07-01"),
            "end": date_in("2008-09-30", "2008-10-01"),
        },
        _period_return("GOOG", "2008-07-01", "2008-09-30"),
    ),
    F(
        "r11", "tune", "en", "msft close on 2010-06-30?",
        None, {}, _absent("MSFT", "Microsoft"), also=("market_data",),
    ),
    F(
        "r12", "tune", "ko", "백테스트 결과에 나오는 exposure %는 뭘 뜻하는 거야?",
        "explain_metric", {"name": metric_is(*EXPOSURE)},
        _words(("bar", "time", "기간", "시간", "봉", "동안"),
               ("position", "held", "holding", "in the market", "invested", "포지션", "보유",
                "들고")),
    ),
    F(
        "r13", "tune", "en",
        "survivorship bias - what is it, why does it mess w/ backtests? short pls",
        None, {},
        _words(("delist", "bankrupt", "went bust", "failed", "dead", "died", "disappear",
                "dropped out", "removed", "no longer", "went under", "상장폐지", "망한", "사라진"),
               ("overstat", "inflat", "optimistic", "overestimat", "too good", "better than",
                "rosier", "upward", "higher", "과대", "부풀", "좋게")),
        also=("explain_metric",),
    ),
    F(
        "r14", "tune", "en", "any named strat i can run that trades off RSI?",
        "list_my_strategies", {}, _names("RsiMeanReversion"),
    ),
    F(
        "r15", "tune", "ko", "narrative report 기능 지금까지 몇 번 호출됐고 비용은 얼마 나왔어?",
        "my_usage", {"since": SINCE_ALL}, _service_calls_cost("narrative_report"),
        also=("my_spend",),
    ),
    # ---- held out: never used to tune prompts, descriptions or logic ----------------------
    F(
        "r16", "heldout", "en", "GOOG - which bt has the best win rate? id + the %",
        "top_backtests", {"symbol": one_of("GOOG"), "metric": metric_is(*WIN_RATE)},
        _best_of("win_rate_pct", "GOOG"),
    ),
    F(
        "r17", "heldout", "ko",
        "EURUSD에서 매매 횟수가 제일 적었던 백테스트 뭐임? 몇 번 거래했는지도",
        "top_backtests",
        {"symbol": one_of("EURUSD"), "metric": metric_is(*TRADES), "order": WORST},
        _worst("EURUSD", "num_trades"), also=("search_my_backtests",),
    ),
    F(
        "r18", "heldout", "en", "put those head to head - whose win rate's better, by how much",
        "compare_backtests",
        COMPARE,
        _pair(BOLL_EUR, DONCHIAN_EUR, "win_rate_pct"),
        ids={"a": BOLL_EUR, "b": DONCHIAN_EUR},
        before=("EURUSD - my 2 most profitable bts?",),
    ),
    F(
        "r19", "heldout", "ko", "내 일일 예산 한도 얼마로 걸려있어? 리셋은 몇 시에 돼?",
        "my_spend", {}, _budget_and_reset, budget_usd=7.5,
    ),
    F(
        "r20", "heldout", "en", f"params + exposure for {GHOST_D}?",
        "get_backtest", {"backtest_id": one_of(GHOST_D)},
        _absent(GHOST_D, "backtest", "백테스트", "that id", "this id", "해당"),
        also=("search_my_backtests",),
    ),
    F(
        "r21", "heldout", "ko", "BTC로 MACD 크로스 돌려본 적 있었나? 찾아봐줘",
        "search_my_backtests", {"query": SEARCH_MACD, "symbol": absent_or("BTCUSD")},
        _any_in("BTCUSD", "MacdCross"),
    ),
    F(
        "r22", "heldout", "en", "BollingerReversion on EURUSD pls, stock settings",
        "run_backtest",
        {"strategy_name": one_of("BollingerReversion"), "symbol": one_of("EURUSD")},
        _named_run("BollingerReversion", "EURUSD"),
    ),
    F(
        "r23", "heldout", "ko", "파라미터 lookback=6, threshold=5 넣고 재실행해봐",
        "run_backtest",
        {
            "strategy_name": one_of("Momentum"),
            "symbol": one_of("BTCUSD"),
            "parameters": params_are(lookback=6, threshold=5),
        },
        _named_params("Momentum", "BTCUSD", lookback=6, threshold=5.0),
        before=("BTCUSD에 Momentum 한번 돌려봐",),
    ),
    F(
        "r24", "heldout", "en",
        "goog 2006-01-01 to 2010-12-31, rule: buy when 5-period RSI dips under 20, sell when it "
        "pops above 80. what return does that give",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"rsi"', "20", "80"),
            "start": date_in("2006-01-01", "2006-01-31"),
            "end": date_in("2010-12-01", "2010-12-31"),
        },
        _spec_run(RefRsiBand, "GOOG", "2006-01-01", "2010-12-31", n=5, low=20, high=80),
    ),
    F(
        "r25", "heldout", "ko", "EURUSD 2017년 9월 한 달 동안 몇 % 움직였어?",
        "market_data",
        {
            "symbol": one_of("EURUSD"),
            "start": date_in("2017-08-31", "2017-09-01"),
            "end": date_in("2017-09-30", "2017-10-01"),
        },
        _period_return("EURUSD", "2017-09-01", "2017-09-30"),
    ),
    F(
        "r26", "heldout", "ko", "GOOG 2015년 한 해 수익률 몇 %였어?",
        None, {}, _outside("2015", "2013"), also=("market_data",),
    ),
    F(
        "r27", "heldout", "en", "win rate in my bt stats - wins out of what exactly?",
        "explain_metric", {"name": metric_is(*WIN_RATE)},
        _words(("trade", "거래", "매매"),
               ("profit", "winning", "made money", "positive", "gain", "수익", "이익")),
    ),
    F(
        "r28", "heldout", "ko", "룩어헤드 바이어스(look-ahead bias)가 뭐고 백테스트에서 왜 문제야?",
        None, {},
        _words(("미래", "future", "아직", "나중", "not yet", "later", "알 수 없", "몰랐"),
               ("정보", "데이터", "information", "data", "가격", "price", "값")),
        also=("explain_metric",),
    ),
    F(
        "r29", "heldout", "ko", "breakout 전략 중에 이름만 대면 돌릴 수 있는 거 뭐 있음?",
        "list_my_strategies", {}, _names("DonchianBreakout"),
    ),
    F(
        "r30", "heldout", "en",
        "strategy builder - how many calls so far and what did they cost me?",
        "my_usage", {"since": SINCE_ALL}, _service_calls_cost("strategy_builder"),
        also=("my_spend",),
    ),
)  # fmt: skip
"""15 tune and 15 held-out cases, paired by kind (r01/r16 ... r15/r30): best and worst by a
metric, a "those two" comparison, the daily budget and its reset, a backtest id that does not
exist, a search by an idea, a named run with defaults and one re-run with the user's
parameters, an RSI spec run over a stated period, a quarter's or a month's return, data that
is not there (a symbol, a period), a metric's definition, a concept, a runnable strategy picked
by what it trades on, and one service's calls and cost. 15 Korean, 4 follow-ups, 4 "not
there"; every tool of `tools.TOOLS` is the expected tool of one pair."""

PAIRS: tuple[tuple[str, str], ...] = tuple(
    (FRESH4_CASES[i].id, FRESH4_CASES[i + 15].id) for i in range(15)
)
