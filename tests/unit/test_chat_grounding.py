"""A model's tool calls checked against what the user said (`tools.grounding`), and replies that
copy the instructions (`graphs.chatops_advanced.echoes_prompt`)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages.tool import ToolCall, tool_call

from graphs.chatops_advanced import CHATOPS_SYSTEM, JSON_TOOLS_PROMPT, echoes_prompt
from tools.grounding import date_is_stated, ground_calls, named_strategy


def _call(name: str, **args: Any) -> ToolCall:
    return tool_call(name=name, args=args, id="call_1")


def _one(call: ToolCall, turn: str, said: str | None = None) -> ToolCall:
    out = ground_calls([call], turn, said if said is not None else turn)
    assert len(out.calls) == 1
    return out.calls[0]


@pytest.mark.parametrize(
    ("turn", "call", "kept"),
    [
        ("What have my model calls cost me so far?", _call("my_usage", since="2026-12-02"), {}),
        (
            "What is the last close of EURUSD?",
            _call("market_data", symbol="EURUSD", start="2020-01-01", end="2020-12-31"),
            {"symbol": "EURUSD"},
        ),
        (
            "How did BTCUSD do in 2020?",
            _call("market_data", symbol="BTCUSD", start="2020-01-01", end="2020-12-31"),
            {"symbol": "BTCUSD", "start": "2020-01-01", "end": "2020-12-31"},
        ),
        (
            "GOOG 2008년부터 2010년까지 시세 알려줘",
            _call("market_data", symbol="GOOG", start="2008-01-01", end="2012-12-31"),
            {"symbol": "GOOG", "start": "2008-01-01"},  # 2012 was never said
        ),
        ("What did I spend today?", _call("my_spend", since="2026-12-02"), {"since": "2026-12-02"}),
        ("오늘 사용량 알려줘", _call("my_usage", since="2026-12-02"), {"since": "2026-12-02"}),
    ],
)
def test_a_date_the_user_never_gave_is_dropped(turn: str, call: ToolCall, kept: dict) -> None:
    assert _one(call, turn)["args"] == kept


def test_a_date_stated_in_an_earlier_turn_counts() -> None:
    said = "How did GOOG trade in 2009?\nAnd the last month of it?"
    assert date_is_stated("2009-12-01", said)
    assert not date_is_stated("2010-01-01", "How did GOOG trade in 2009?")


def test_one_backtest_compared_with_itself_is_fetched() -> None:
    turn = "Win rate and trades of bt-38c8ab6be758b0a51e58?"
    out = _one(
        _call("compare_backtests", id_a="bt-38c8ab6be758b0a51e58", id_b="bt-38c8ab6be758b0a51e58"),
        turn,
    )
    assert out["name"] == "get_backtest"
    assert out["args"] == {"backtest_id": "bt-38c8ab6be758b0a51e58"}
    two = _call("compare_backtests", id_a="bt-aaaaaaaaaa", id_b="bt-bbbbbbbbbb")
    assert _one(two, "compare bt-aaaaaaaaaa and bt-bbbbbbbbbb") == two


def test_a_spec_the_message_states_is_drafted_in_code() -> None:
    turn = (
        "Backtest this on BTCUSD from 2015-01-01 to 2021-12-31: buy when the close crosses "
        "above its 6-bar SMA and sell when it crosses back below."
    )
    wrong = {"name": "EmaUp", "entry": {"conditions": [{"left": {"kind": "ema", "period": 6},
             "op": "crosses_above", "right": {"kind": "ema", "period": 26}}]}}  # fmt: skip
    out = _one(_call("run_strategy_spec", spec=wrong, symbol="GOOG"), turn)
    assert out["name"] == "run_strategy_spec"
    cond = out["args"]["spec"]["entry"]["conditions"][0]
    assert (cond["left"]["kind"], cond["op"], cond["right"]) == (
        "close",
        "crosses_above",
        {"kind": "sma", "period": 6},
    )
    assert (out["args"]["symbol"], out["args"]["start"], out["args"]["end"]) == (
        "BTCUSD",
        "2015-01-01",
        "2021-12-31",
    )


def test_what_code_cannot_draft_keeps_the_models_spec() -> None:
    spec = {
        "name": "X",
        "entry": {"conditions": [{"left": {"kind": "rsi"}, "op": "below", "value": 30}]},
    }
    call = _call("run_strategy_spec", spec=spec, symbol="GOOG")
    assert _one(call, "Try something clever with momentum on GOOG") == call


def test_a_named_strategy_runs_as_itself() -> None:
    assert named_strategy("Please run RsiMeanReversion on EURUSD for me.") == "RsiMeanReversion"
    assert named_strategy("run a strategy") is None
    cross = {"left": {"kind": "ema", "period": 12}, "op": "crosses_above", "right": {"kind": "ema"}}
    spec = {"name": "RsiMeanReversion", "entry": {"conditions": [cross]}}
    out = _one(
        _call("run_strategy_spec", spec=spec, symbol="EURUSD"),
        "Please run RsiMeanReversion on EURUSD for me.",
    )
    assert out["name"] == "run_backtest"
    assert out["args"] == {"strategy_name": "RsiMeanReversion", "symbol": "EURUSD"}


@pytest.mark.parametrize(
    ("reply", "echo"),
    [
        ("no tool: answer in plain sentences.", True),
        ("Answer briefly, in plain sentences (never JSON).", True),
        ("Short selling is borrowing shares and selling them to buy back lower.", False),
        ("Your best backtest by Sharpe is bt-1234abcd with 1.2.", False),
        ("", False),
    ],
)
def test_a_reply_that_repeats_the_instructions_is_not_an_answer(reply: str, echo: bool) -> None:
    assert echoes_prompt(reply, CHATOPS_SYSTEM, JSON_TOOLS_PROMPT) is echo


def test_an_id_nobody_gave_is_answered_with_an_error_before_it_runs() -> None:
    invented = _call("compare_backtests", id_a="bt-2020-01-01", id_b="bt-2020-01-02")
    out = ground_calls([invented], "which EURUSD backtest had the shallowest drawdown?", "x")
    assert "'bt-2020-01-01' and 'bt-2020-01-02' is not a backtest id" in out.refused["call_1"]
    assert "search_my_backtests" in out.refused["call_1"]
    seen = '{"backtest_id": "bt-1234567890abcdef1234"}'
    known = _call("get_backtest", backtest_id="bt-1234567890abcdef1234")
    assert ground_calls([known], "the first one?", "x", seen).refused == {}
    said = _call("get_backtest", backtest_id="bt-aaaabbbbccccddddeeee")
    assert (
        ground_calls([said], "show bt-aaaabbbbccccddddeeee", "show bt-aaaabbbbccccddddeeee").refused
        == {}
    )


def test_a_spec_for_a_message_with_no_rule_is_not_run() -> None:
    example = {"name": "EmaUp", "entry": {"conditions": [{"left": {"kind": "ema"}, "op": "above",
               "right": {"kind": "close"}}]}}  # fmt: skip
    out = ground_calls([_call("run_strategy_spec", spec=example, symbol="GOOG")],
                       "which named strats can I backtest right now?", "x")  # fmt: skip
    assert "states no trading rule" in out.refused["call_1"]


def test_explain_metric_defines_a_glossary_term_and_still_refuses_nonsense() -> None:
    from tools import explain_metric  # handle_tool_error is on: an error comes back as text

    out = explain_metric.invoke({"name": "slippage"})
    assert out["metric"] == "slippage" and "expected" in out["definition"]
    assert "valid metrics are" in explain_metric.invoke({"name": "flux capacitor"})


def test_a_stated_period_fills_a_call_that_left_both_dates_out() -> None:
    turn = "Can you test a 12/26 EMA crossover on GOOG from 2006-01-01 through 2010-12-31?"
    spec = {"name": "EmaUp", "entry": {"conditions": [{"left": {"kind": "ema", "period": 12},
            "op": "crosses_above", "right": {"kind": "ema", "period": 26}}]}}  # fmt: skip
    out = _one(_call("run_strategy_spec", spec=spec, symbol="GOOG"), turn)
    assert (out["args"]["start"], out["args"]["end"]) == ("2006-01-01", "2010-12-31")
    out = _one(_call("market_data", symbol="GOOG"), "2009년 한 해 동안 GOOG 수익률이 얼마였어?")
    assert out["args"] == {"symbol": "GOOG", "start": "2009-01-01", "end": "2009-12-31"}
    # a date the model gave is kept; no period, or another tool, changes nothing
    kept = _call("market_data", symbol="GOOG", start="2009-06-01")
    assert _one(kept, "GOOG in 2009 from June?")["args"] == kept["args"]
    assert _one(_call("market_data", symbol="GOOG"), "GOOG's last close?")["args"] == {
        "symbol": "GOOG"
    }
    assert _one(_call("my_usage"), "my usage in 2026")["args"] == {}


def test_the_one_symbol_the_message_names_is_the_calls() -> None:
    turn = "Can you test a 12/26 EMA crossover on GOOG?"
    spec = {"name": "X", "entry": {"conditions": [{"left": {"kind": "rsi"}, "op": "below",
            "value": 30}]}}  # fmt: skip
    assert _one(_call("run_strategy_spec", spec=spec), turn)["args"]["symbol"] == "GOOG"
    out = _one(_call("market_data", symbol="BTCUSD"), "비트코인 마지막 종가 알려줘")
    assert out["args"] == {"symbol": "BTCUSD"}
    assert _one(_call("market_data", symbol="GOOG"), "구글 시세는?")["args"] == {"symbol": "GOOG"}
    wrong = _call("top_backtests", metric="sharpe", symbol="GOOG")
    assert _one(wrong, "best Sharpe on EURUSD?")["args"]["symbol"] == "EURUSD"
    # none or two symbols named, or a tool without one: as the model wrote it
    two = _call("market_data", symbol="GOOG")
    assert _one(two, "GOOG or BTCUSD, which rose more?") == two
    assert _one(_call("my_usage"), "my usage on GOOG")["args"] == {}


def test_a_stated_window_of_months_replaces_the_models_dates() -> None:
    turn = "EURUSD 2017년 4분기(10~12월) 동안 몇 % 올랐는지 알려줘"
    whole_year = _call("market_data", symbol="EURUSD", start="2017-01-01", end="2017-12-31")
    out = _one(whole_year, turn)
    assert out["args"] == {"symbol": "EURUSD", "start": "2017-10-01", "end": "2017-12-31"}
    same = _call("market_data", symbol="EURUSD", start="2017-10-01", end="2017-12-31")
    assert _one(same, turn) == same
    # a year alone is no finer than the model's own dates in it
    assert _one(whole_year, "EURUSD in 2017?")["args"]["start"] == "2017-01-01"


def test_a_strategys_parameters_written_beside_parameters_move_into_it() -> None:
    loose = _call(
        "run_backtest", strategy_name="BollingerReversion", symbol="BTCUSD", period=10, k=1.5
    )
    out = _one(loose, "0 trades lol. try again w/ period 10 and k 1.5")
    assert out["args"] == {
        "strategy_name": "BollingerReversion",
        "symbol": "BTCUSD",
        "parameters": {"period": 10, "k": 1.5},
    }
    inside = _call("run_backtest", strategy_name="SmaCross", symbol="GOOG", parameters={"fast": 5})
    assert _one(inside, "run SmaCross on GOOG with fast 5") == inside
