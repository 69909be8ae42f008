"""The chat-ops benchmark's judge (bench/chatops.py): the raw tool-call detector, the fact
matcher and argument matching, on hand-made replies and calls — and the case set's shape."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from bench.chat_cases import (
    CASES,
    MISSING,
    ChatCase,
    Fact,
    Num,
    World,
    absent_or,
    contains,
    date_in,
    date_terms,
    distinct,
    id_of,
    metric_is,
    one_of,
    spec_mentions,
)
from bench.chatops import (
    TOOL_NAMES,
    args_match,
    calls_of,
    fact_in_answer,
    judge,
    number_stated,
    raw_tool_call,
    term_in,
    turn_of,
)

# ---- the raw tool-call detector -------------------------------------------------------------

RAW = [
    '{"name": "search_my_backtests", "arguments": {"query": "momentum"}}',
    'Sure! {"name": "top_backtests", "arguments": {"metric": "sharpe"}} is what I will call.',
    "name: search_my_backtests\narguments:\n  query: momentum on GOOG",
    "tool: top_backtests\nmetric: sharpe",
    '```json\n{"name": "market_data", "arguments": {"symbol": "GOOG"}}\n```',
    '{"result": "Your best backtest is BollingerReversion."}',
    '[{"backtest_id": "bt-1", "sharpe": 1.14}]',
    '{"name": "top_backtests", "argum',  # cut off by the token limit
    '<tool_call>{"name": "my_spend", "arguments": {}}</tool_call>',
    'I will run top_backtests(metric="sharpe", k=3) now.',
    'Calling {"top_backtests": {"metric": "sharpe"}}',
    "{'name': 'my_usage', 'args': {}}",
    '{"tool_calls": [{"function": {"name": "my_spend"}}]}',
]

PROSE = [
    "Your best backtest by Sharpe ratio is BollingerReversion on EURUSD (Sharpe 1.14).",
    "I used top_backtests to rank your 15 backtests; the best is bt-fbce0741f8b63beda12d.",
    "Sharpe ratio: 1.14, total return: 3.8%, max drawdown: -2.7%.",
    "Your top 3 backtests:\n1. MacdCross on BTCUSD: total return 1579.2%.\n"
    "2. Momentum on BTCUSD: total return 1301.7%.",
    "GOOG 데이터는 2004-08-19부터 2013-03-01까지 있습니다.",
    "The Sharpe ratio is return divided by volatility (see {the platform's definition}).",
    "Name: the metric you asked about is the Sortino ratio, which uses downside deviation.",
]


@pytest.mark.parametrize("text", RAW)
def test_raw_tool_calls_and_json_are_caught(text: str) -> None:
    assert raw_tool_call(text) is not None, text


@pytest.mark.parametrize("text", PROSE)
def test_prose_is_not_a_raw_call(text: str) -> None:
    assert raw_tool_call(text) is None, text


def test_a_yaml_name_line_counts_only_for_a_tool_name() -> None:
    assert raw_tool_call("name: top_backtests") is not None
    assert raw_tool_call("name: Alice") is None
    assert raw_tool_call("") is None


def test_the_bench_knows_every_tool_of_the_chat_graph() -> None:
    from tools import TOOLS

    assert set(TOOL_NAMES) == {t.name for t in TOOLS}


# ---- the fact matcher ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text", "ok"),
    [
        (1.1427, "Sharpe 1.14", True),
        (1.1427, "Sharpe 1.1", False),  # 3.7% off: not a fact-preserving rounding
        (1.1427, "Sharpe 1.15", False),
        (1.1427, "Sharpe 1.143", True),
        (-2.7, "a drawdown of 2.7%", True),  # sign-free by default
        (0.012735, "you spent $0.0127 today", True),
        (0.012735, "you spent $0.01 today", False),
        (0.012735, "you spent $0.012735", True),
        (1579.2, "a return of 1,579.2%", True),
        (1579.2, "a return of 1580%", True),
        (439.39, "439%", True),
        (1.14, "backtest bt-1140aa22bb33cc44dd00", False),  # ids are not numbers
        (0.0, "0 trades", True),
        (36, "36 trades", True),
        (36, "37 trades", False),
    ],
)
def test_numbers_are_roundings_of_the_fact(value: float, text: str, ok: bool) -> None:
    assert number_stated(Num(value), text) is ok


def test_signed_numbers_when_asked() -> None:
    assert number_stated(Num(-2.7, signless=False), "max drawdown -2.7%")
    assert not number_stated(Num(-2.7, signless=False), "max drawdown 2.7%")


def test_strings_ignore_case_spacing_and_hyphens() -> None:
    assert term_in("BollingerReversion", "the Bollinger Reversion strategy")
    assert term_in("bt-fbce0741f8b63beda12d", "id BT-FBCE0741F8B63BEDA12D")
    assert term_in("stop-loss", "a stop loss order")
    assert not term_in("BollingerReversion", "a Bollinger band")


def test_dates_in_several_spellings() -> None:
    terms = date_terms("2004-08-19")
    for text in ("from 2004-08-19", "since August 19, 2004", "2004년 8월 19일부터"):
        assert any(term_in(t, text) for t in terms), text
    assert not any(term_in(t, "since 2004") for t in terms)


def test_facts_need_every_group_or_their_count() -> None:
    both = (Fact((("Momentum",), (Num(137.6),)), "both"),)
    assert fact_in_answer(both, "Momentum returned 137.6%") == "both"
    assert fact_in_answer(both, "Momentum returned 154.5%") is None
    assert fact_in_answer(both, "It returned 137.6%") is None
    some = (Fact((("SmaCross",), ("EmaCross",), ("Momentum",)), "two", need=2),)
    assert fact_in_answer(some, "You can run SmaCross and Momentum.") == "two"
    assert fact_in_answer(some, "You can run SmaCross.") is None
    either = (Fact((("bt-1",),), "id"), Fact((("Momentum",),), "name"))
    assert fact_in_answer(either, "the Momentum one") == "name"


# ---- argument matching ---------------------------------------------------------------------


def test_metric_names_and_values() -> None:
    sharpe = metric_is("sharpe", "sharpe_ratio")
    assert args_match({"metric": sharpe}, {"metric": "Sharpe Ratio"})
    assert args_match({"metric": sharpe}, {"metric": "sharpe-ratio"})
    assert not args_match({"metric": sharpe}, {"metric": "sortino"})
    assert not args_match({"metric": sharpe}, {})
    assert args_match({"k": one_of(3)}, {"k": "3"})
    assert args_match({"k": one_of(3)}, {"k": 3.0})
    assert not args_match({"k": one_of(3)}, {"k": 5})
    assert args_match({"symbol": one_of("GOOG")}, {"symbol": " goog "})


def test_optional_arguments_and_whole_calls() -> None:
    opt = {"symbol": absent_or(one_of("BTCUSD"))}
    assert args_match(opt, {})
    assert args_match(opt, {"symbol": None})
    assert args_match(opt, {"symbol": "btcusd"})
    assert not args_match(opt, {"symbol": "GOOG"})
    pair = {"*": distinct("id_a", "id_b")}
    assert args_match(pair, {"id_a": "bt-1", "id_b": "bt-2"})
    assert not args_match(pair, {"id_a": "bt-1", "id_b": "bt-1"})
    assert not args_match(pair, {"id_a": "bt-1"})


def test_dates_substrings_and_specs() -> None:
    assert args_match({"start": date_in("2015-01-01", "2015-01-31")}, {"start": "2015-01-01"})
    assert not args_match({"start": date_in("2015-01-01", "2015-01-31")}, {"start": "2016-01-01"})
    assert not args_match({"start": date_in("2015-01-01", "2015-01-31")}, {"start": "soon"})
    assert args_match({"query": contains("momentum")}, {"query": "Momentum on BTCUSD"})
    assert not args_match({"query": contains("momentum")}, {"query": "trend"})
    spec = spec_mentions('"rsi"', "30")
    rsi = {"entry": {"conditions": [{"left": {"kind": "rsi"}, "op": "below", "value": 30}]}}
    assert args_match({"spec": spec}, {"spec": rsi})
    assert args_match({"spec": spec}, {"spec": '{"kind": "rsi", "value": 30}'})
    assert not args_match({"spec": spec}, {"spec": {"kind": "sma", "value": 30}})
    assert not args_match({"spec": spec}, {"spec": "not json"})


def test_a_predicate_that_raises_is_a_mismatch() -> None:
    def boom(_v: Any) -> bool:
        raise TypeError("cannot read")

    assert not args_match({"x": boom}, {"x": 1})
    assert boom is not MISSING


# ---- judging a turn ------------------------------------------------------------------------


def _case(tool: str | None, **kw: Any) -> ChatCase:
    return ChatCase(
        "x1",
        "tune",
        "en",
        kw.pop("question", "Compare {a} and {b}"),
        tool,
        kw.pop("args", {}),
        kw.pop("fact", lambda _w: (Fact(((Num(137.6),),), "return"),)),
        **kw,
    )


def _turn(calls: list[tuple[str, dict[str, Any], str]], answer: str) -> list[Any]:
    msgs: list[Any] = [AIMessage("earlier"), HumanMessage("question")]
    for i, (name, args, status) in enumerate(calls):
        msgs.append(AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"c{i}"}]))
        msgs.append(ToolMessage("{}", tool_call_id=f"c{i}", name=name, status=status))
    msgs.append(AIMessage(answer))
    return turn_of(msgs)


def test_judge_a_right_call_with_the_fact() -> None:
    case = _case("compare_backtests", args={"id_b": contains("bt")})
    turn = _turn([("compare_backtests", {"id_a": "bt-1"}, "success")], "B returned 137.6%.")
    v = judge(case, World("u", ()), "B returned 137.6%.", turn)
    assert v["right_tool"] and v["fact_in_answer"] and v["success"]
    assert not v["right_args"]  # id_b was not passed
    assert v["raw_tool_call_reply"] is None and v["tool_errors"] == 0
    assert v["calls"] == [{"name": "compare_backtests", "args": {"id_a": "bt-1"}, "ok": True}]


def test_template_ids_become_constraints() -> None:
    from agents.quant.corpus import generate_corpus

    records = tuple(generate_corpus(1, per_user=15))
    sel = {"strategy_name": "MacdCross", "symbol": "GOOG"}
    case = _case("get_backtest", args={"backtest_id": id_of("a")}, ids={"a": sel})
    want = next(r.id for r in records if r.strategy_name == "MacdCross" and r.symbol == "GOOG")
    checks = case.checks(records)
    assert args_match(checks, {"backtest_id": want})
    assert not args_match(checks, {"backtest_id": records[0].id if records[0].id != want else ""})


def test_judge_wrong_tool_raw_reply_and_errors() -> None:
    case = _case("top_backtests")
    turn = _turn([("search_my_backtests", {"query": "x"}, "error")], '{"name": "top_backtests"}')
    v = judge(case, World("u", ()), '{"name": "top_backtests", "arguments": {}}', turn)
    assert not v["right_tool"] and not v["success"]
    assert v["raw_tool_call_reply"] is not None
    assert v["tool_errors"] == 1 and v["raw_in_thread"]


def test_judge_a_concept_question() -> None:
    words = (Fact((("return",), ("volatility", "risk")), "definition"),)
    case = _case(None, fact=lambda _w: words, also=("explain_metric",), question="Sharpe?")
    answer = "It is the return per unit of volatility."
    assert judge(case, World("u", ()), answer, _turn([], answer))["success"]
    with_tool = _turn([("explain_metric", {"name": "sharpe"}, "success")], answer)
    assert judge(case, World("u", ()), answer, with_tool)["right_tool"]
    wrong = _turn([("market_data", {"symbol": "GOOG"}, "success")], answer)
    assert not judge(case, World("u", ()), answer, wrong)["right_tool"]
    assert not judge(case, World("u", ()), "It is a ratio.", _turn([], "x"))["fact_in_answer"]


def test_calls_without_results_are_unknown() -> None:
    msgs = [
        HumanMessage("q"),
        AIMessage("", tool_calls=[{"name": "my_spend", "args": {}, "id": "a"}]),
    ]
    (call,) = calls_of(turn_of(msgs))
    assert call.name == "my_spend" and call.ok is None


# ---- the case set --------------------------------------------------------------------------


def test_the_case_set_has_the_required_shape() -> None:
    assert len(CASES) >= 24
    assert len({c.id for c in CASES}) == len(CASES)
    splits = Counter(c.split for c in CASES)
    assert splits["tune"] == splits["heldout"]
    assert sum(c.lang == "ko" for c in CASES) >= 6
    assert sum(c.tool is None for c in CASES) >= 3
    for split in ("tune", "heldout"):
        covered = {c.tool for c in CASES if c.split == split} - {None}
        assert covered == set(TOOL_NAMES), f"{split} misses {set(TOOL_NAMES) - covered}"


def test_templates_resolve_against_the_corpus() -> None:
    from agents.quant.corpus import generate_corpus

    records = tuple(generate_corpus(1, per_user=15))
    for case in CASES:
        text = case.text(records)
        assert "{" not in text, case.id
        assert case.checks(records) is not None
        assert case.fact(World("u", records, (), case.budget_usd)), case.id
    assert date.fromisoformat(date_terms("2013-03-01")[0]) == date(2013, 3, 1)


# ---- the chat graph's repairs this bench measured (pure functions, no model) ---------------


def _parsed(text: str) -> AIMessage:
    from agents.llm.tool_calls import with_text_tool_calls
    from graphs.chatops_advanced import repair_text_calls

    return repair_text_calls(with_text_tool_calls(AIMessage(text), TOOL_NAMES), text)


def test_text_calls_with_flat_or_misnamed_arguments_are_repaired() -> None:
    flat = _parsed('{"name": "market_data", "symbol": "GOOG", "start": "2010-01-01"}')
    assert [(c["name"], c["args"]) for c in flat.tool_calls] == [
        ("market_data", {"symbol": "GOOG", "start": "2010-01-01"})
    ]
    misnamed = (
        '{"name": "run_strategy", "arguments": {"strategy_name": "SmaCross", "symbol": "GOOG"}}'
    )
    (call,) = _parsed(misnamed).tool_calls
    assert call["name"] == "run_backtest" and call["args"]["strategy_name"] == "SmaCross"
    assert _parsed(misnamed).content == ""


def test_ambiguous_or_unknown_calls_are_left_alone() -> None:
    for text in (
        '{"name": "best_backtests", "arguments": {"k": 3}}',  # fits several tools
        '{"name": "run_strategy", "arguments": {"name": "SmaCross"}}',  # fits none
        '{"result": "fine"}',
        "Your best backtest is SmaCross.",
    ):
        assert _parsed(text).tool_calls == [], text
    wrong = _parsed('{"name": "market_data", "arguments": {"symbol": "GOOG", "bogus": 1}}')
    assert wrong.tool_calls[0]["args"] == {"symbol": "GOOG", "bogus": 1}  # the tool says why


def test_answers_that_ignore_the_tool_result_are_ungrounded() -> None:
    from graphs.chatops_advanced import ungrounded

    result = ToolMessage(
        '{"A": {"backtest_id": "bt-7cee868675be29fc929a", "period": "2004-08-19 to 2013-03-01",'
        ' "total return": "154.5%"}}',
        tool_call_id="c",
        name="compare_backtests",
    )
    users = ["Compare bt-7cee868675be29fc929a with the other one"]
    assert ungrounded("A (2004-08-19 to 2013-03-01) is better.", [result], users)
    assert ungrounded("I'm sorry, but I can't assist with that.", [result], users)
    assert ungrounded("A returned 154.5%.", [result], users) is None
    definition = ToolMessage('{"definition": "risk-free rate 0"}', tool_call_id="d")
    definition.name = "explain_metric"
    assert ungrounded("It is return over volatility.", [definition], []) is None


def test_a_spec_that_contradicts_the_request_is_sent_back() -> None:
    from graphs.chatops_advanced import State, unfaithful_spec

    request = "Buy GOOG when the close crosses above the 20-day SMA."
    state = State(messages=[HumanMessage(request)])

    def spec_call(kind: str) -> AIMessage:
        right = {"kind": kind, "period": 20}
        cond = {"left": {"kind": "close"}, "op": "crosses_above", "right": right}
        spec = {"name": "UpCross", "entry": {"conditions": [cond]}}
        args = {"spec": spec, "symbol": "GOOG"}
        return AIMessage("", tool_calls=[{"name": "run_strategy_spec", "args": args, "id": "s"}])

    (error,) = unfaithful_spec(spec_call("ema"), state)
    assert error.status == "error" and "SMA" in str(error.content) and error.tool_call_id == "s"
    assert unfaithful_spec(spec_call("sma"), state) == []


def test_advice_to_use_a_tool_is_not_an_answer_before_a_tool_ran() -> None:
    from graphs.chatops_advanced import State, answer_problem

    advice = "You can use the `top_backtests` tool with the metric set to sharpe."
    fresh = State(messages=[HumanMessage("Which backtest has the best Sharpe?")])
    assert answer_problem(advice, fresh, "system") == (
        "format",
        "it tells me to use a tool instead of calling it",
    )
    assert answer_problem("A Sharpe ratio is return per unit of risk.", fresh, "system") is None


def test_a_bare_tool_name_is_a_call_without_arguments() -> None:
    (call,) = _parsed('"market_data"').tool_calls
    assert call["name"] == "market_data" and call["args"] == {}
    assert _parsed("market data").tool_calls == []
