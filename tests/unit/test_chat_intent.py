"""The tool call a plain question asks for, read in code (`tools.intent.read_call`), and the
questions it must leave to the model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tools.grounding import named_strategy
from tools.intent import (
    metrics_named,
    period,
    read_call,
    read_follow_up,
    read_pair,
    symbols_named,
)

A, B = "bt-0123456789abcdef0123", "bt-fedcba9876543210fedc"


@pytest.mark.parametrize(
    ("question", "name", "args"),
    [
        # rankings: a metric, a superlative, optional k and symbol
        ("Which of my backtests has the best Sharpe ratio?", "top_backtests", {"metric": "sharpe"}),
        ("top 3 of my backtests by sortino pls", "top_backtests", {"metric": "sortino", "k": 3}),
        (
            "Show my five best backtests by CAGR on bitcoin",
            "top_backtests",
            {"metric": "cagr", "k": 5, "symbol": "BTCUSD"},
        ),
        ("Which backtest of mine had the most trades?", "top_backtests", {"metric": "trades"}),
        (
            "내 백테스트 중에서 총수익률이 가장 높은 3개를 보여줘.",
            "top_backtests",
            {"metric": "total_return", "k": 3},
        ),
        ("내 백테스트 중 승률 제일 높은 거", "top_backtests", {"metric": "win_rate"}),
        (
            "EURUSD 쪽 백테스트 중에 max drawdown 제일 얕은 게 어떤 거야?",
            "top_backtests",
            {"metric": "max_drawdown", "symbol": "EURUSD"},
        ),
        ("my backtest with the smallest MDD", "top_backtests", {"metric": "max_drawdown"}),
        # searches: a search verb and what it is about
        (
            "did I ever backtest a donchian breakout? dig those runs up",
            "search_my_backtests",
            {"query": "donchian breakout"},
        ),
        (
            "Search my backtests for RSI strategies on EURUSD",
            "search_my_backtests",
            {"query": "rsi", "symbol": "EURUSD"},
        ),
        ("볼린저 백테스트 찾아줘", "search_my_backtests", {"query": "볼린저"}),
        # ids: one is fetched, two are compared (a Korean particle may follow an id)
        (f"Pull up {A} - how many trades did it take?", "get_backtest", {"backtest_id": A}),
        (f"{A}랑 {B} 비교해서 알려줘", "compare_backtests", {"id_a": A, "id_b": B}),
        # spend and usage
        ("How much have I spent on models today?", "my_spend", {}),
        ("오늘 LLM 비용 얼마나 나왔어?", "my_spend", {}),
        ("What is my budget left?", "my_spend", {}),
        ("What's my all-time model bill? Calls and $ please.", "my_usage", {}),
        ("지금까지 내 모델 사용량과 비용을 알려줘.", "my_usage", {}),
        # strategies
        ("Which strategies can I run?", "list_my_strategies", {}),
        ("내 전략 목록 보여줘", "list_my_strategies", {}),
        # market data, with the period stated
        (
            "what's BTC's latest monthly close in the data you have?",
            "market_data",
            {"symbol": "BTCUSD"},
        ),
        (
            "2009년 한 해 동안 GOOG 수익률이 얼마였어?",
            "market_data",
            {"symbol": "GOOG", "start": "2009-01-01", "end": "2009-12-31"},
        ),
        (
            "How volatile was bitcoin between 2017 and 2019?",
            "market_data",
            {"symbol": "BTCUSD", "start": "2017-01-01", "end": "2019-12-31"},
        ),
        # named strategies, with the parameters the user gives
        (
            "Run the SmaCross strategy on GOOG.",
            "run_backtest",
            {"strategy_name": "SmaCross", "symbol": "GOOG"},
        ),
        (
            "SmaCross를 GOOG에 돌려줘",
            "run_backtest",
            {"strategy_name": "SmaCross", "symbol": "GOOG"},
        ),
        (
            "Run RsiMeanReversion on EURUSD with period 10",
            "run_backtest",
            {"strategy_name": "RsiMeanReversion", "symbol": "EURUSD", "parameters": {"period": 10}},
        ),
    ],
)
def test_plain_questions_are_read(question: str, name: str, args: dict[str, Any]) -> None:
    read = read_call(question)
    assert read is not None, question
    assert (read.name, read.args) == (name, args)


def test_a_rule_stated_whole_is_run_as_its_drafted_spec() -> None:
    read = read_call(
        "Backtest this on BTCUSD from 2015-01-01 to 2021-12-31: buy when the close crosses "
        "above its 6-bar SMA and sell when it crosses back below."
    )
    assert read is not None and read.name == "run_strategy_spec"
    assert (read.args["symbol"], read.args["start"], read.args["end"]) == (
        "BTCUSD",
        "2015-01-01",
        "2021-12-31",
    )
    cond = read.args["spec"]["entry"]["conditions"][0]
    assert cond["right"] == {"kind": "sma", "period": 6}


def test_a_relative_month_is_a_since_date() -> None:
    read = read_call("How many tokens have I used this month?")
    first = datetime.now(UTC).date().replace(day=1).isoformat()
    assert read is not None and (read.name, read.args) == ("my_usage", {"since": first})


@pytest.mark.parametrize(
    ("question", "args"),
    [
        ("What's my worst drawdown backtest?", {"metric": "max_drawdown", "order": "worst"}),
        ("lowest sharpe among my backtests", {"metric": "sharpe", "order": "worst"}),
        ("가장 큰 낙폭을 기록한 내 백테스트는?", {"metric": "max_drawdown", "order": "worst"}),
        ("내 백테스트 중 샤프가 가장 낮은 거", {"metric": "sharpe", "order": "worst"}),
        ("which of my backtests made the fewest trades?", {"metric": "trades", "order": "worst"}),
        ("which of my backtests has the shallowest drawdown?", {"metric": "max_drawdown"}),
        ("my best performing backtest", {"metric": "total_return"}),
        (
            "BTCUSD 백테스트 중에 샤프 상위 두 개만 뽑아줘",
            {"metric": "sharpe", "k": 2, "symbol": "BTCUSD"},
        ),
        ("내 전략 중에 제일 못한 거 뭐야?", {"metric": "total_return", "order": "worst"}),
        (
            "which of my EURUSD backtests did the worst? like lost the most money",
            {"metric": "total_return", "order": "worst", "symbol": "EURUSD"},
        ),
    ],
)
def test_worst_and_best_rankings_are_read(question: str, args: dict[str, Any]) -> None:
    read = read_call(question)
    assert read is not None and (read.name, read.args) == ("top_backtests", args)


def test_a_run_kicked_off_by_name_is_read() -> None:
    read = read_call("kick off an EmaCross bt on bitcoin, default settings")
    assert read is not None and (read.name, read.args) == (
        "run_backtest",
        {"strategy_name": "EmaCross", "symbol": "BTCUSD"},
    )


@pytest.mark.parametrize(
    ("question", "window"),
    [
        ("EURUSD 2017년 4분기(10~12월) 동안 몇 % 올랐어?", ("2017-10-01", "2017-12-31")),
        ("the fourth quarter of 2017", ("2017-10-01", "2017-12-31")),
        ("Q1 2016", ("2016-01-01", "2016-03-31")),
        ("2018년 상반기", ("2018-01-01", "2018-06-30")),
        ("H2 2016", ("2016-07-01", "2016-12-31")),
        ("October to December 2017", ("2017-10-01", "2017-12-31")),
        ("2017년 10월부터 12월까지", ("2017-10-01", "2017-12-31")),
        ("close at the end of september 2017", ("2017-09-01", "2017-09-30")),
        ("2016년 2월", ("2016-02-01", "2016-02-29")),
        ("2017-09", ("2017-09-01", "2017-09-30")),
    ],
)
def test_windows_of_months_are_read(question: str, window: tuple[str, str]) -> None:
    assert period(question) == {"start": window[0], "end": window[1]}


def test_compare_those_two_takes_the_two_ids_just_listed() -> None:
    shown = '{"backtests": [{"id": "bt-aaaaaaaaaaaa"}, {"id": "bt-bbbbbbbbbbbb"}]}'
    read = read_pair("그 두 개 비교해줘. 총수익률은 얼마나 차이 나?", shown)
    assert read is not None and read.name == "compare_backtests"
    assert read.args == {"id_a": "bt-aaaaaaaaaaaa", "id_b": "bt-bbbbbbbbbbbb"}
    three = shown.replace("]}", ', {"id": "bt-cccccccccccc"}]}')
    assert read_pair("compare those two", three) is None  # which two: the model's
    assert read_pair("what about those two?", shown) is None  # no comparison asked


@pytest.mark.parametrize(
    "question",
    [
        "Run SmaCross on GOOG with 10/30",  # numbers code cannot place
        "How did my SmaCross backtest on GOOG do?",  # a stored run, not a new one
        "How much does gpt-4o cost?",  # a price, not the user's bill
        "지난 달 모델 비용 얼마야?",  # a relative month the model words as `since`
        "What does commission cost in a backtest?",
        "What strategy is best for trending markets?",
        "Is GOOG a good buy?",
        "What's a good strategy for BTCUSD?",
        "How did the market do?",
        "Compare SmaCross and EmaCross on GOOG",  # two strategies, no ids: the model decides
        "Tell me a joke",
        "hello",
        "What is a stop-loss order?",
    ],
)
def test_what_code_cannot_read_for_certain_is_left_to_the_model(question: str) -> None:
    assert read_call(question) is None


def test_follow_ups_pointing_back_are_left_to_the_model() -> None:
    assert read_call("now the same strategy on GOOG?", "Run MacdCross on EURUSD.") is None
    assert read_call("그럼 그거 BTCUSD로 돌려줘", "SmaCross를 GOOG에 돌려줘") is None
    # a self-contained message in a thread is still read
    read = read_call("Which strategies can I run?", "What does CAGR mean?")
    assert read is not None and read.name == "list_my_strategies"


def test_the_vocabulary_is_the_platforms() -> None:
    assert metrics_named("샤프 비율이랑 최대 낙폭, 그리고 win-rate") == [
        "sharpe",
        "max_drawdown",
        "win_rate",
    ]
    assert metrics_named("the riskiest one") == []  # "risk" is too loose to name a metric
    assert symbols_named("구글이랑 BTC/USD, eurusd") == ["GOOG", "BTCUSD", "EURUSD"]
    assert period("from 2008 to 2010") == {"start": "2008-01-01", "end": "2010-12-31"}
    assert period("2008년부터 2010년까지") == {"start": "2008-01-01", "end": "2010-12-31"}
    assert period("2006-01-01 through 2010-12-31") == {"start": "2006-01-01", "end": "2010-12-31"}
    assert period("lately") == {}


def test_a_named_strategy_may_take_a_korean_particle() -> None:
    assert named_strategy("DonchianBreakout을 돌려줘") == "DonchianBreakout"
    assert named_strategy("SmaCrosser") is None


def test_a_follow_up_naming_only_another_symbol_repeats_the_previous_call() -> None:
    run = ("run_backtest", {"strategy_name": "MacdCross", "symbol": "EURUSD"})
    read = read_follow_up("nice. now the same strategy on GOOG?", run)
    assert read is not None
    assert (read.name, read.args) == (
        "run_backtest",
        {"strategy_name": "MacdCross", "symbol": "GOOG"},
    )
    market = ("market_data", {"symbol": "BTCUSD", "start": "2020-01-01", "end": "2020-12-31"})
    read = read_follow_up("그럼 구글은?", market)
    assert read is not None and read.args == {**market[1], "symbol": "GOOG"}
    spec = ("run_strategy_spec", {"spec": {"name": "X", "symbol": "GOOG"}, "symbol": "GOOG"})
    read = read_follow_up("and on BTCUSD?", spec)
    assert read is not None and read.args["spec"]["symbol"] == read.args["symbol"] == "BTCUSD"
    # anything more than a symbol is the model's to read
    assert read_follow_up("now the same on GOOG but with its Sharpe?", run) is None
    assert read_follow_up("now run SmaCross on GOOG instead", run) is None
    assert read_follow_up("and on EURUSD?", run) is None  # the same symbol
    assert read_follow_up("now the same on GOOG?", ("my_usage", {})) is None
    assert read_follow_up("now the same on GOOG?", None) is None


def test_a_follow_up_naming_only_a_period_repeats_the_call_in_the_previous_year() -> None:
    market = ("market_data", {"symbol": "EURUSD", "start": "2017-06-01", "end": "2017-08-31"})
    for turn, window in [
        ("그럼 9월만?", ("2017-09-01", "2017-09-30")),
        ("what about just october?", ("2017-10-01", "2017-10-31")),
        ("and in may?", ("2017-05-01", "2017-05-31")),
        ("now Q1 2018", ("2018-01-01", "2018-03-31")),  # a period with its year is its own
    ]:
        read = read_follow_up(turn, market)
        assert read is not None, turn
        assert read.args == {"symbol": "EURUSD", "start": window[0], "end": window[1]}, turn
    spec = ("run_strategy_spec", {"spec": {"name": "X"}, "symbol": "GOOG", "start": "2008-01-01"})
    read = read_follow_up("그럼 2010년만 보면?", spec)
    assert read is not None
    assert (read.args["start"], read.args["end"]) == ("2010-01-01", "2010-12-31")
    read = read_follow_up("and on BTCUSD in 2019?", spec)
    assert read is not None and read.args["symbol"] == "BTCUSD" and read.args["end"] == "2019-12-31"
    # no year to take, a tool without dates, the same window, or more than a period: the model's
    assert read_follow_up("그럼 11월은?", ("market_data", {"symbol": "GOOG"})) is None
    assert read_follow_up("what about 2010?", ("run_backtest", {"symbol": "GOOG"})) is None
    assert read_follow_up("and just june to august 2017?", market) is None
    assert read_follow_up("may I see its sharpe in june?", market) is None


@pytest.mark.parametrize(
    ("question", "name", "args"),
    [
        ("which EURUSD bt had the ugliest drawdown?", "top_backtests",
         {"metric": "max_drawdown", "order": "worst", "symbol": "EURUSD"}),
        ("my steepest drawdown among the GOOG backtests?", "top_backtests",
         {"metric": "max_drawdown", "order": "worst", "symbol": "GOOG"}),
        ("what have the AI models cost me so far?", "my_usage", {}),
        ("how much have the LLM calls charged us in total?", "my_usage", {}),
    ],
)  # fmt: skip
def test_more_readings(question: str, name: str, args: dict[str, Any]) -> None:
    read = read_call(question)
    assert read is not None and (read.name, read.args) == (name, args), read


def test_a_price_question_is_not_the_users_bill() -> None:
    assert read_call("how much does gpt-4o cost per million tokens?") is None


def test_a_priced_ticker_that_is_not_bundled_is_read_for_its_not_available_answer() -> None:
    for question, symbol in [("msft close on 2010-06-30?", "MSFT"), ("price of eth in 2021", "ETH"),
                             ("tsla stock 2019", "TSLA")]:  # fmt: skip
        read = read_call(question)
        assert read is not None and read.name == "market_data", question
        assert read.args["symbol"] == symbol
    for question in ("show me the close", "what is the sma return", "the close of my backtest",
                     "GOOG's close and the daily close of it"):  # fmt: skip
        read = read_call(question)
        assert read is None or read.args.get("symbol") in (None, "GOOG"), question


def test_a_list_question_may_say_i_can_run_and_trades_as_a_verb() -> None:
    read = read_call("any named strat i can run that trades off RSI?")
    assert read is not None and read.name == "list_my_strategies"
    read = read_call("which strategies can I run with the most trades?")
    assert read is not None and read.name == "top_backtests"  # "most trades": the metric


def test_throw_and_apply_run_a_named_strategy() -> None:
    for question in ("chuck DonchianBreakout at BTCUSD", "apply MacdCross to EURUSD pls"):
        read = read_call(question)
        assert read is not None and read.name == "run_backtest", question


def test_a_follow_up_with_only_parameters_reruns_the_named_strategy() -> None:
    run = ("run_backtest", {"strategy_name": "SmaCross", "symbol": "GOOG"})
    read = read_follow_up("ok now fast 20 / slow 100, same ticker", run)
    assert read is not None
    assert read.args == {"strategy_name": "SmaCross", "symbol": "GOOG",
                         "parameters": {"fast": 20, "slow": 100}}  # fmt: skip
    again = ("run_backtest", {**run[1], "parameters": {"fast": 20, "slow": 100}})
    read = read_follow_up("and now slow=50 on EURUSD", again)
    assert read is not None
    assert read.args["parameters"] == {"fast": 20, "slow": 50} and read.args["symbol"] == "EURUSD"
    assert read_follow_up("now with 3 more bars", run) is None  # a number that is no parameter
