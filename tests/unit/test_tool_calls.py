"""Tool calls of local models and the chat graph's control flow around them: the JSON-in-text
parser (every shape the local model writes, and garbage), the no-raw-JSON guard, the number
check, argument validation, trimming, and scripted replies through the chat-ops graph."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from agents.llm.tool_calls import (
    argument_errors,
    invalid_call_message,
    parse_text_tool_calls,
    reply_problem,
    unsupported_numbers,
    unwrap_json_answer,
    with_text_tool_calls,
)
from graphs.chatops_advanced import NO_ANSWER_REPLY

NAMES = {"search_my_backtests", "list_my_strategies", "get_backtest", "market_data"}
SEARCH = ("search_my_backtests", {"query": "GOOG momentum", "k": 3})


def calls(text: str) -> list[tuple[str, dict[str, object]]]:
    return [(c["name"], c["args"]) for c in parse_text_tool_calls(text, NAMES)]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "search_my_backtests", "arguments": {"query": "GOOG momentum", "k": 3}}',
        '{"tool": "search_my_backtests", "args": {"query": "GOOG momentum", "k": 3}}',
        '{"tool_name": "search_my_backtests", "parameters": {"query": "GOOG momentum", "k": 3}}',
        '{"function": {"name": "search_my_backtests", '
        '"arguments": "{\\"query\\": \\"GOOG momentum\\", \\"k\\": 3}"}}',
        '{"type": "function", "function": {"name": "search_my_backtests", '
        '"arguments": {"query": "GOOG momentum", "k": 3}}}',
        '{"name": "search_my_backtests", "arguments": "{\\"query\\": \\"GOOG momentum\\", '
        '\\"k\\": 3}"}',
        '{"search_my_backtests": {"query": "GOOG momentum", "k": 3}}',
        '```json\n{"name": "search_my_backtests", "arguments": {"query": "GOOG momentum", '
        '"k": 3}}\n```',
        '```\n{"name": "search_my_backtests", "arguments": {"query": "GOOG momentum", "k": 3}}```',
        '<tool_call>\n{"name": "search_my_backtests", "arguments": {"query": "GOOG momentum", '
        '"k": 3}}\n</tool_call>',
        '<tool_call>{"name": "search_my_backtests", "arguments": {"query": "GOOG momentum", '
        '"k": 3}}',  # unclosed tag (generation stopped)
        'Sure! I will search.\n{"name": "search_my_backtests", "arguments": {"query": '
        '"GOOG momentum", "k": 3}}\nThis finds your backtests.',
        "{'name': 'search_my_backtests', 'arguments': {'query': 'GOOG momentum', 'k': 3}}",
        '{"name": "search_my_backtests", "arguments": {"query": "GOOG momentum", "k": 3,},}',
        '{"tool_calls": [{"function": {"name": "search_my_backtests", '
        '"arguments": {"query": "GOOG momentum", "k": 3}}}]}',
    ],
)
def test_one_call_in_every_shape(text: str) -> None:
    assert calls(text) == [SEARCH]


def test_lists_and_several_blocks_keep_order_and_drop_unknown_tools() -> None:
    text = (
        '[{"name": "list_my_strategies", "arguments": {}}, '
        '{"name": "rm_rf", "arguments": {"path": "/"}}, '
        '{"name": "market_data", "arguments": {"symbol": "GOOG"}}]'
    )
    assert calls(text) == [("list_my_strategies", {}), ("market_data", {"symbol": "GOOG"})]
    fenced = (
        '```json\n{"name": "get_backtest", "arguments": {"backtest_id": "b1"}}\n```\nthen\n'
        '```json\n{"name": "market_data", "arguments": {"symbol": "BTCUSD"}}\n```'
    )
    assert calls(fenced) == [
        ("get_backtest", {"backtest_id": "b1"}),
        ("market_data", {"symbol": "BTCUSD"}),
    ]


def test_missing_arguments_mean_none_and_ids_are_unique() -> None:
    parsed = parse_text_tool_calls(
        '{"name": "list_my_strategies"} {"name": "list_my_strategies"}', NAMES
    )
    assert [c["args"] for c in parsed] == [{}, {}]
    assert len({c["id"] for c in parsed}) == 2 and all(c["type"] == "tool_call" for c in parsed)


def test_braces_inside_strings_do_not_confuse_the_scanner() -> None:
    text = '{"name": "search_my_backtests", "arguments": {"query": "a } b { c", "k": 1}}'
    assert calls(text) == [("search_my_backtests", {"query": "a } b { c", "k": 1})]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Your best backtest was SmaCross on GOOG with a Sharpe of 1.2.",
        '{"name": "list_my_',  # cut off by max_tokens
        '{"name": "unknown_tool", "arguments": {}}',
        '{"name": "search_my_backtests", "arguments": "not json at all"}',
        '{"name": "search_my_backtests", "arguments": [1, 2]}',
        '{"name": 42, "arguments": {}}',
        '{"result": "You have no strategies."}',
        "{{{{[[[[",
        "}]" * 1000,
        "[" * 5000,
        '{"a": ' * 2000,
        "```json\nnot json\n```",
        "<tool_call>garbage</tool_call>",
        "{__import__('os').system('echo pwned')}",
    ],
)
def test_no_call_and_no_exception(text: str) -> None:
    assert calls(text) == []


@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    for c in parse_text_tool_calls(text, NAMES):
        assert c["name"] in NAMES and isinstance(c["args"], dict)


def test_non_string_input_is_no_call() -> None:
    assert parse_text_tool_calls(None, NAMES) == []  # type: ignore[arg-type]


def test_message_helper_moves_calls_out_of_the_content() -> None:
    msg = AIMessage(
        'I will look.\n```json\n{"name": "list_my_strategies", "arguments": {}}\n```',
        id="run-1",
        usage_metadata={"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
        response_metadata={"model_name": "qwen"},
    )
    out = with_text_tool_calls(msg, NAMES)
    assert out.content == "I will look."
    assert [(c["name"], c["args"]) for c in out.tool_calls] == [("list_my_strategies", {})]
    assert out.id == "run-1" and out.usage_metadata == msg.usage_metadata
    assert out.response_metadata == {"model_name": "qwen"}
    assert msg.tool_calls == []  # the original is untouched


def test_message_helper_leaves_answers_and_native_calls_alone() -> None:
    answer = AIMessage("You have 3 strategies.")
    assert with_text_tool_calls(answer, NAMES) is answer
    native = AIMessage(
        "", tool_calls=[{"name": "market_data", "args": {"symbol": "GOOG"}, "id": "c1"}]
    )
    assert with_text_tool_calls(native, NAMES) is native
    blocks = AIMessage(
        [{"type": "text", "text": '{"name": "market_data", "arguments": {"symbol": "EURUSD"}}'}]
    )
    assert with_text_tool_calls(blocks, NAMES).tool_calls[0]["args"] == {"symbol": "EURUSD"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"result": "You have no strategies yet."}', "You have no strategies yet."),
        ('```json\n{"answer": "GOOG closed at 757.23."}\n```', "GOOG closed at 757.23."),
        ('{"Response": " ok "}', "ok"),
        # left alone (and then rejected by reply_problem): not only JSON, several keys, not an
        # answer key, not a string, a list — no JSON dump is turned into "readable" lines
        ('Here: {"result": "x"}', 'Here: {"result": "x"}'),
        ('{"result": "a", "score": 1}', '{"result": "a", "score": 1}'),
        ('{"symbol": "GOOG"}', '{"symbol": "GOOG"}'),
        ('{"result": 42}', '{"result": 42}'),
        ('[{"name": "SmaCross"}]', '[{"name": "SmaCross"}]'),
        ("{}", "{}"),
        ('{"result": "unterminated', '{"result": "unterminated'),
    ],
)
def test_unwrap_json_answer_only_unwraps_a_wrapped_sentence(text: str, expected: str) -> None:
    assert unwrap_json_answer(AIMessage(content=text)).content == expected


# --------------------------------------------------------------------------------------------
# The no-raw-JSON guard
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        '{"name": "search_my_backtests", "arguments": {"k": 3}}',  # an invalid call, echoed
        'I will call {"name": "get_best_backtests", "arguments": {}} now.',  # unknown tool
        "name: search_my_backtests\narguments:\n  query: best",  # the YAML echo of a call
        '{"best_backtests": [{"backtest_id": "bt-e1a502afc04ccc639ef2", "score": 0.594',  # cut off
        '```json\n{"symbol": "GOOG", "start": "2004-08-19"}\n```',
        '[{"strategy": "SmaCross"}, {"strategy": "Momentum"}]',
        "start: 2004-08-19\nend: 2013-03-01",  # a key: value dump
        "strategy: SmaCross\nsymbol: GOOG\nsharpe: 0.79\ntrades: 33",
        '<tool_call>{"name": "market_data"}</tool_call>',
        '{\n  "symbol": "GOOG",\n  "bars": 2148\n}',
    ],
)
def test_data_and_echoed_calls_are_not_answers(text: str) -> None:
    assert reply_problem(text, NAMES) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Your best backtest is SmaCross on GOOG: total return 439.4%, Sharpe ratio 0.79.",
        "Here are your backtests:\n- SmaCross on GOOG: total return 439.4%, Sharpe 0.79.\n"
        "- Momentum on BTCUSD: total return 12.0%, Sharpe 0.41.",
        'Try parameters like {"fast": 10, "slow": 30} for a faster SmaCross on GOOG next time.',
        "The GOOG data starts on 2004-08-19 and ends on 2013-03-01.",
        "Symbol: GOOG",  # one short line is not a dump
        "w0 w1 w2",
    ],
)
def test_prose_is_an_answer(text: str) -> None:
    assert reply_problem(text, NAMES) is None


def test_unknown_tools_are_named() -> None:
    why = reply_problem('{"name": "best_backtests", "arguments": {}}', NAMES)
    assert why is not None and "best_backtests" in why


# --------------------------------------------------------------------------------------------
# Numbers in answers
# --------------------------------------------------------------------------------------------

RESULT = '{"total_return_pct": 439.35, "sharpe": 0.79, "start": "2004-08-19", "count": 3}'


@pytest.mark.parametrize(
    ("answer", "bad"),
    [
        ("Total return 439%, Sharpe 0.8, from 2004-08-19; 3 backtests.", []),
        ("1. SmaCross\n2. Momentum with 439.4%", []),  # list markers are not numbers
        ("A drawdown of -439.35% (sign-free)", []),
        ("You asked about the top 5.", []),  # the user's number
        ("Sharpe 0.95 over 2008-01-01.", ["0.95", "2008", "01"]),
        ("Total return 440%", ["440"]),  # 439.35 does not round to 440
    ],
)
def test_unsupported_numbers(answer: str, bad: list[str]) -> None:
    assert unsupported_numbers(answer, [RESULT, "show me the top 5"]) == bad


# --------------------------------------------------------------------------------------------
# Argument validation against a tool's schema
# --------------------------------------------------------------------------------------------


def test_argument_errors_name_missing_and_invalid_arguments() -> None:
    from pydantic import ValidationError

    from tools import market_data, search_my_backtests

    schema = search_my_backtests.tool_call_schema
    with pytest.raises(ValidationError) as missing:
        schema.model_validate({"k": 3})  # type: ignore[union-attr]
    assert argument_errors(missing.value.errors()) == ["missing required argument `query`"]
    with pytest.raises(ValidationError) as wrong:
        schema.model_validate({"query": "x", "k": "five"})  # type: ignore[union-attr]
    (problem,) = argument_errors(wrong.value.errors())
    assert problem.startswith("invalid argument `k`") and '"five"' in problem
    text = invalid_call_message("market_data", ["missing required argument `symbol`"], "sig()")
    assert "market_data" in text and "`symbol`" in text and "sig()" in text
    assert market_data.name == "market_data"


# --------------------------------------------------------------------------------------------
# The chat graph's control flow, with a scripted chat model
# --------------------------------------------------------------------------------------------

META = {"catalog_model": "gpt-4o-mini", "route": "local", "model_name": "qwen-0.5b"}
SERVED = "gpt-4o-mini (served by local: qwen-0.5b)"


class Scripted(BaseChatModel):
    """Replies with the scripted texts (or messages) in order; records every prompt."""

    script: list[Any] = Field(default_factory=list)
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        self.prompts.append(list(messages))
        nxt = self.script.pop(0)
        msg = nxt if isinstance(nxt, AIMessage) else AIMessage(content=nxt)
        msg = msg.model_copy(update={"response_metadata": {**META, **msg.response_metadata}})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def bind_tools(self, tools: Any, **kwargs: Any) -> Scripted:  # type: ignore[override]
        return self


def run_graph(
    monkeypatch: pytest.MonkeyPatch,
    script: list[Any],
    question: str = "Tell me about GOOG.",
    mode: str = "json_text",
    read_calls: bool = False,
    **ctx: Any,
) -> tuple[dict[str, Any], Scripted]:
    """The graph on a scripted model; `read_calls=False` leaves every call to the model (these
    tests are about what happens to its replies), True reads plain questions' calls in code."""
    from graphs import chatops_advanced as chatops

    model = Scripted(script=list(script))
    monkeypatch.setattr(chatops, "create_chat_model_with_fallback", lambda *a, **k: model)
    monkeypatch.setattr(chatops, "tool_calling_mode", lambda *a: mode)
    out = chatops.graph.invoke(
        chatops.InputState(messages=[HumanMessage(question)]),
        context=chatops.Context(user_id="alice", read_calls=read_calls, **ctx),
    )
    assert model.script == [], "every scripted reply was used"
    return out, model


def call(tool: str, **args: Any) -> str:
    return json.dumps({"name": tool, "arguments": args})


def test_a_call_with_a_missing_argument_is_a_tool_error_the_model_can_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = "The GOOG data starts on 2004-08-19 and ends on 2013-03-01."
    out, model = run_graph(
        monkeypatch,
        [call("market_data"), call("market_data", symbol="GOOG"), answer],
        "When does the bundled price data start?",  # no symbol named: the model must give one
    )
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == [
        "HumanMessage", "AIMessage", "ToolMessage", "AIMessage", "ToolMessage", "AIMessage",
    ]  # fmt: skip
    error = out["messages"][2]
    assert error.status == "error" and "missing required argument `symbol`" in error.content
    assert "market_data(symbol: string" in error.content  # the tool's arguments, to retry
    assert "missing required argument `symbol`" in model.prompts[1][-1].content  # it saw it
    assert out["messages"][-1].content == answer
    assert out["answer_source"] == "model" and out["model_used"] == SERVED
    assert out["messages"][-1].response_metadata["model_used"] == SERVED


def test_native_calls_are_validated_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = AIMessage("", tool_calls=[{"name": "explain_metric", "args": {}, "id": "c1"}])
    out, _ = run_graph(monkeypatch, [bad, "Sorry."], mode="native")
    assert "missing required argument `name`" in out["messages"][2].content
    assert out["messages"][-1].content == "Sorry."


def test_json_and_echoes_are_never_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import summarize

    script = [
        call("explain_metric", name="sharpe"),
        '{"metric": "Sharpe ratio", "definition": "return over risk"}',  # the result, echoed
        "name: explain_metric\narguments:\n  name: sharpe",  # the call, as YAML
    ]
    question = "Which ratio of return to risk does the platform use, and how?"
    out, model = run_graph(monkeypatch, script, question, max_steps=4)
    msgs = out["messages"]
    assert [type(m).__name__ for m in msgs] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]  # fmt: skip  (the two bad replies never entered the thread)
    assert msgs[-1].content == summarize("explain_metric", str(msgs[2].content))
    assert msgs[-1].content.startswith("Sharpe ratio: The annualised return divided by")
    assert out["answer_source"] == "tool_result_summary" and out["model_used"] == SERVED
    retry = model.prompts[2][-1].content
    assert "not shown" in retry and "JSON" in retry  # the model was told why, once
    assert reply_problem(msgs[-1].content) is None


def test_numbers_no_tool_returned_are_replaced_by_the_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = [call("market_data", symbol="GOOG"), "GOOG rose 999.9% between 2004 and 2013."]
    out, model = run_graph(monkeypatch, script, "How did GOOG do?")
    final = out["messages"][-1].content
    result = json.loads(out["messages"][2].content)
    assert "999.9" not in final and f"{result['return_pct']}%" in final
    assert result["first_date"] in final and out["answer_source"] == "tool_result_summary"
    assert len(model.prompts) == 2  # replaced at once: the facts are there


def test_invented_numbers_without_a_tool_send_the_model_to_a_tool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = [
        "Your best Sharpe ratio was 1.87.",
        call("explain_metric", name="sharpe"),
        "The Sharpe ratio is return divided by volatility.",
    ]
    out, model = run_graph(monkeypatch, script, "What is my best Sharpe?")
    assert "Numbers must come from a tool" in model.prompts[1][-1].content
    assert "1.87" in model.prompts[1][-1].content
    assert out["messages"][-1].content == script[-1] and out["answer_source"] == "model"


def test_no_answer_and_no_tool_result_ends_in_prose(monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = run_graph(monkeypatch, ['{"a": 1}', '{"b": 2}'], "hm?")
    assert out["messages"][-1].content == NO_ANSWER_REPLY
    assert out["answer_source"] == "no_answer"
    assert [type(m).__name__ for m in out["messages"]] == ["HumanMessage", "AIMessage"]


def test_unknown_tools_get_the_tool_list(monkeypatch: pytest.MonkeyPatch) -> None:
    script = [call("best_backtests", k=3), call("explain_metric", name="win rate"), "Fine."]
    out, model = run_graph(monkeypatch, script, "how do you count the win rate of a strategy?")
    note = model.prompts[1][-1].content
    assert "best_backtests" in note and "top_backtests" in note
    assert out["messages"][-1].content == "Fine."


def test_a_plain_question_gets_its_call_from_code_and_the_model_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = "GOOG's bundled data runs from 2004-08-19 to 2013-03-01."
    out, model = run_graph(
        monkeypatch, [answer], "GOOG 시장 데이터는 언제부터 언제까지 있어?", read_calls=True
    )
    msgs = out["messages"]
    assert [type(m).__name__ for m in msgs] == [
        "HumanMessage", "AIMessage", "ToolMessage", "AIMessage",
    ]  # fmt: skip
    assert msgs[1].tool_calls[0]["name"] == "market_data"
    assert msgs[1].tool_calls[0]["args"] == {"symbol": "GOOG"}
    assert len(model.prompts) == 1  # the model only answered, from the result
    assert "Result of market_data" in model.prompts[0][-1].content
    assert msgs[-1].content == answer and out["answer_source"] == "model"


def test_calls_are_read_in_code_only_for_models_that_write_them_as_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = AIMessage("", tool_calls=[{"name": "list_my_strategies", "args": {}, "id": "c1"}])
    out, model = run_graph(
        monkeypatch, [bad, "You can run SmaCross."], "GOOG 시장 데이터는 언제부터 언제까지 있어?",
        mode="native", read_calls=True,
    )  # fmt: skip
    assert out["messages"][1].tool_calls[0]["name"] == "list_my_strategies"
    assert len(model.prompts) == 2


def test_a_follow_up_is_left_to_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphs import chatops_advanced as chatops

    model = Scripted(script=[call("run_backtest", strategy_name="MacdCross", symbol="GOOG"), "Ok."])
    monkeypatch.setattr(chatops, "create_chat_model_with_fallback", lambda *a, **k: model)
    monkeypatch.setattr(chatops, "tool_calling_mode", lambda *a: "json_text")
    earlier: list[AnyMessage] = [
        HumanMessage("Run MacdCross on EURUSD."),
        AIMessage("It returned 3.1%."),
    ]
    out = chatops.graph.invoke(
        chatops.InputState(messages=[*earlier, HumanMessage("now the same strategy on GOOG?")]),
        context=chatops.Context(user_id="alice"),
    )
    assert out["messages"][3].tool_calls[0]["args"]["symbol"] == "GOOG"
    assert len(model.prompts) == 2  # the model chose the call: "the same" is in the thread


def test_a_follow_up_on_another_symbol_repeats_the_last_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphs import chatops_advanced as chatops

    model = Scripted(script=["Done."])
    monkeypatch.setattr(chatops, "create_chat_model_with_fallback", lambda *a, **k: model)
    monkeypatch.setattr(chatops, "tool_calling_mode", lambda *a: "json_text")
    first = {"name": "market_data", "args": {"symbol": "EURUSD"}, "id": "c1"}
    failed = {"name": "market_data", "args": {"symbol": "EURUSD", "start": "x"}, "id": "c2"}
    earlier: list[AnyMessage] = [
        HumanMessage("How did EURUSD trade?"),
        AIMessage("", tool_calls=[first]),
        ToolMessage("{}", tool_call_id="c1", name="market_data"),
        AIMessage("", tool_calls=[failed]),
        ToolMessage("Error: bad date", tool_call_id="c2", name="market_data", status="error"),
        AIMessage("EURUSD fell."),
    ]
    out = chatops.graph.invoke(
        chatops.InputState(messages=[*earlier, HumanMessage("and the same for GOOG?")]),
        context=chatops.Context(user_id="alice"),
    )
    assert out["messages"][7].tool_calls[0]["args"] == {"symbol": "GOOG"}  # the good call's
    assert len(model.prompts) == 1  # the model only answered


def test_a_reply_that_copies_our_note_or_is_empty_is_answered_in_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools import summarize

    question = "How did GOOG trade?"
    echo = (
        "GOOG traded from 2004-08-19.\n\nAnswer my question with this result, in plain "
        "sentences that quote the numbers answering it."
    )
    for reply in (echo, ""):
        out, model = run_graph(monkeypatch, [call("market_data", symbol="GOOG"), reply], question)
        assert out["answer_source"] == "tool_result_summary"
        assert out["messages"][-1].content == summarize("market_data", out["messages"][2].content)
        assert len(model.prompts) == 2  # no retry: the result is in hand


def test_the_step_budget_ends_with_the_last_result(monkeypatch: pytest.MonkeyPatch) -> None:
    script = [call("explain_metric", name="cagr"), call("explain_metric", name="cagr")]
    out, _ = run_graph(monkeypatch, script, "cagr?", mode="json_text", max_steps=2)
    # the second call came at the budget: not run, the first result answers
    assert out["messages"][-1].content.startswith("CAGR: Compound annual growth rate")
    assert [type(m).__name__ for m in out["messages"]].count("ToolMessage") == 1


# --------------------------------------------------------------------------------------------
# Long threads fit the model's context
# --------------------------------------------------------------------------------------------


def _turn(i: int, words: int = 200) -> list[BaseMessage]:
    cid = f"c{i}"
    return [
        HumanMessage(f"question {i} " + "GOOG " * words),  # a long, plain market question
        AIMessage("", tool_calls=[{"name": "market_data", "args": {"symbol": "GOOG"}, "id": cid}]),
        ToolMessage("result " * words, tool_call_id=cid, name="market_data"),
        AIMessage(f"answer {i}"),
    ]


def test_fit_history_keeps_the_latest_turn_and_whole_exchanges() -> None:
    from graphs.chatops_advanced import fit_history, message_tokens

    thread = [m for i in range(6) for m in _turn(i)] + [HumanMessage("latest question")]
    assert fit_history(thread, 10**6) == thread  # everything fits
    two_turns = message_tokens(thread[-9:])
    kept = fit_history(thread, two_turns + 5)
    assert kept == thread[-9:]  # the last two turns, newest first, from a human message
    assert isinstance(kept[0], HumanMessage) and kept[-1].content == "latest question"
    for budget in range(0, two_turns + 50, 37):
        kept = fit_history(thread, budget)
        assert kept[-1] is thread[-1]  # the latest human message always
        ids = {m.tool_call_id for m in kept if isinstance(m, ToolMessage)}
        calls = {c["id"] for m in kept if isinstance(m, AIMessage) for c in m.tool_calls}
        assert ids == calls  # no call without its result, no result without its call
        assert message_tokens(kept) <= max(budget, message_tokens(thread[-1:]))


def test_an_oversized_current_turn_keeps_its_question_and_last_exchange() -> None:
    from graphs.chatops_advanced import fit_history

    turn = _turn(0)[:3] + _turn(1)[1:3]  # one question, two tool exchanges
    kept = fit_history(turn, 300)
    assert kept == [turn[0], turn[3], turn[4]]


def test_the_model_gets_a_trimmed_thread_with_the_system_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphs import chatops_advanced as chatops

    monkeypatch.setattr(chatops, "context_window", lambda *a, **k: 2600)
    model = Scripted(script=["Fine."])
    monkeypatch.setattr(chatops, "create_chat_model_with_fallback", lambda *a, **k: model)
    monkeypatch.setattr(chatops, "tool_calling_mode", lambda *a: "native")
    old = [m for i in range(8) for m in _turn(i)]
    chatops.graph.invoke(
        chatops.InputState(messages=[*old, HumanMessage("and now?")]),  # type: ignore[list-item]
        context=chatops.Context(user_id="alice", max_tokens=100),
    )
    (prompt,) = model.prompts
    assert isinstance(prompt[0], SystemMessage) and prompt[-1].content == "and now?"
    assert 1 < len(prompt) < len(old) and isinstance(prompt[1], HumanMessage)
    assert "question 0" not in str(prompt[1:]) and "question 7" in str(prompt[1:])
    assert "question 0" in str(prompt[0].content)  # the left-out question is listed


@pytest.mark.parametrize("budget", [0, 300, 1500])
def test_earlier_turns_are_kept_within_the_history_budget_and_their_questions_listed(
    monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    from graphs import chatops_advanced as chatops

    model = Scripted(script=["Fine."])
    monkeypatch.setattr(chatops, "create_chat_model_with_fallback", lambda *a, **k: model)
    monkeypatch.setattr(chatops, "tool_calling_mode", lambda *a: "native")
    old = [m for i in range(8) for m in _turn(i)]  # ~400 tokens a turn
    chatops.graph.invoke(
        chatops.InputState(messages=[*old, HumanMessage("and now?")]),  # type: ignore[list-item]
        context=chatops.Context(user_id="alice", max_tokens=100, history_tokens=budget),
    )
    (prompt,) = model.prompts
    system, thread = prompt[0].content, prompt[1:]
    earlier = chatops.message_tokens(thread[:-1])
    if budget == 0:  # the model's window is the only limit: all of it, no note
        assert len(thread) == len(old) + 1 and chatops.EARLIER_NOTE not in system
        return
    assert earlier <= budget and (earlier == 0 or isinstance(thread[0], HumanMessage))
    assert (earlier > 0) == (budget == 1500)  # a turn is ~480 tokens: 300 keeps none
    dropped = [m for m in old if isinstance(m, HumanMessage) and m not in thread]
    assert dropped and chatops.EARLIER_NOTE in system
    assert "question 0 GOOG" in system  # the user's first question is still on record
    assert str(dropped[-1].content)[:20] in system  # and the newest left out


def test_a_tool_refusal_is_an_error_the_model_retries_with_the_tools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = [call("explain_metric", name="vibes"), call("explain_metric", name="sortino"), "Ok."]
    out, model = run_graph(monkeypatch, script, "how are vibes measured on this platform?")
    refusal = out["messages"][2]
    assert refusal.status == "error" and "valid metrics are" in refusal.content
    assert "Tools:" in model.prompts[1][0].content  # not in answer-only mode: it may call again
    assert "Tools:" not in model.prompts[2][0].content  # after a real result it answers
    assert out["messages"][-1].content == "Ok."


def test_a_reply_cut_off_at_the_token_limit_keeps_its_complete_sentences(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cut = AIMessage(
        "Sortino is like Sharpe. It counts only the downside and",
        response_metadata={"finish_reason": "length"},
    )
    out, _ = run_graph(monkeypatch, [call("explain_metric", name="sortino"), cut], "sortino?")
    assert out["messages"][-1].content == "Sortino is like Sharpe."
    assert out["answer_source"] == "model"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("One. Two is cut", "One."),
        ("A ratio of 0.79 and", ""),  # a decimal point ends no sentence
        ("Your backtests by total return (highest first): \n1.", ""),  # a dangling list
        ("Two lines.\nHere they are:\n1. SmaCross on", "Two lines."),
        ('He said "done." Then', 'He said "done."'),
    ],
)
def test_complete_part(text: str, kept: str) -> None:
    from graphs.chatops_advanced import complete_part

    cut = AIMessage(text, response_metadata={"finish_reason": "length"})
    assert complete_part(cut).content == kept
    assert complete_part(AIMessage(text)).content == text  # only cut-off replies are cut


def test_a_definition_question_is_answered_from_the_glossary_without_a_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agents.quant.glossary import answer, definition_question

    out, model = run_graph(monkeypatch, [], "공매도가 뭐야?")
    term = definition_question("공매도가 뭐야?")
    assert term is not None and term.metric is None
    assert out["messages"][-1].content == answer(term, "ko")
    assert out["answer_source"] == "glossary" and model.prompts == []


def test_the_difference_of_two_terms_is_both_definitions_without_a_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agents.quant.glossary import answer, find_term

    out, model = run_graph(monkeypatch, [], "sharpe vs sortino - what's the difference?")
    sharpe, sortino = find_term("sharpe ratio"), find_term("sortino ratio")
    assert sharpe is not None and sortino is not None
    assert out["messages"][-1].content == (
        f"Sharpe ratio: {answer(sharpe, 'en')}\n\nSortino ratio: {answer(sortino, 'en')}"
    )
    assert out["answer_source"] == "glossary" and model.prompts == []


def test_a_metric_definition_calls_explain_metric_in_code_then_the_model_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reply = "최대 낙폭은 고점에서 이후 저점까지 자산이 가장 크게 떨어진 비율입니다."
    out, model = run_graph(monkeypatch, [reply], "최대 낙폭(MDD)이 무슨 뜻이야?")
    msgs = out["messages"]
    assert [type(m).__name__ for m in msgs] == [
        "HumanMessage", "AIMessage", "ToolMessage", "AIMessage",
    ]  # fmt: skip
    assert msgs[1].tool_calls[0]["name"] == "explain_metric"
    assert msgs[1].tool_calls[0]["args"] == {"name": "max_drawdown"}
    assert "peak" in str(msgs[2].content)
    assert len(model.prompts) == 1 and msgs[-1].content == reply


def test_a_definition_after_a_data_result_is_left_to_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphs import chatops_advanced as chatops

    earlier: list[AnyMessage] = [
        HumanMessage("Show me bt-1234abcd."),
        AIMessage("", tool_calls=[{"name": "get_backtest", "args": {}, "id": "c0"}]),
        ToolMessage('{"max drawdown": "-12.0%"}', tool_call_id="c0", name="get_backtest"),
        AIMessage("It lost 12.0% at worst."),
        HumanMessage("What is the max drawdown?"),
    ]
    assert chatops.definition_turn(chatops.State(messages=earlier)) is None
    assert chatops.definition_turn(chatops.State(messages=earlier[-1:])) is not None


@pytest.mark.parametrize(
    "question",
    [
        "What does max drawdown mean?",
        "최대 낙폭(max drawdown)이 무슨 뜻이야?",
        "What is a Sharpe ratio?",
        "Explain the Sortino ratio as the platform defines it.",
        "What is a stop-loss order?",  # not a metric: no number to ask for
        "공매도가 뭐야?",
    ],
)
def test_a_question_for_a_meaning_is_defined_even_after_data_results(question: str) -> None:
    """Measured (bench/trimming.py): in one long thread the 0.5B answered "최대 낙폭(max
    drawdown)이 무슨 뜻이야?" with "1.4%" once the thread held a backtest."""
    from graphs import chatops_advanced as chatops

    earlier: list[AnyMessage] = [
        HumanMessage("Show me bt-1234abcd."),
        AIMessage("", tool_calls=[{"name": "get_backtest", "args": {}, "id": "c0"}]),
        ToolMessage('{"max drawdown": "-12.0%"}', tool_call_id="c0", name="get_backtest"),
        AIMessage("It lost 12.0% at worst."),
        HumanMessage(question),
    ]
    assert chatops.definition_turn(chatops.State(messages=earlier)) is not None


def test_a_reply_that_repeats_the_question_is_not_an_answer() -> None:
    from graphs import chatops_advanced as chatops

    q = "내가 실행할 수 있는 전략 목록을 보여줘."
    assert chatops.echoes_question("내가 실행할 수 있는 전략 목록을 보여줘.", q)
    assert chatops.echoes_question(
        "Please run RsiMeanReversion on EURUSD for me.",
        "Please run RsiMeanReversion on EURUSD for me",
    )
    assert chatops.echoes_question(
        "RsiMeanReversion on EURUSD", "Please run RsiMeanReversion on EURUSD"
    )
    assert not chatops.echoes_question(
        "Your strategies: SmaCross, EmaCross and RsiMeanReversion.", q
    )
    why = "분산투자가 왜 리스크를 줄여준다는 거야?"  # the 0.5B said it back with other spacing
    assert chatops.echoes_question("분산 투자가 리스크를 줄여준다는 거야?", why)
    assert not chatops.echoes_question("여러 자산에 나누면 손실이 서로 상쇄됩니다.", why)
    assert not chatops.echoes_question(
        "You asked first: show me my top 5 backtests by Sharpe, and then for the worst one.",
        "show me my top 5 backtests by Sharpe",
    )
    state = chatops.State(messages=[HumanMessage("Show me my saved strategies please")])
    kind, why = chatops.answer_problem("Show me my saved strategies please.", state, "system") or (
        "",
        "",
    )
    assert kind == "format" and "repeats the user's question" in why
    quoting = chatops.State(
        messages=[
            HumanMessage("Show me my saved strategies please"),
            AIMessage("None yet."),
            HumanMessage("What did I ask before?"),
        ]
    )
    assert chatops.answer_problem("Show me my saved strategies please", quoting, "system") is None


def test_an_answer_that_leaves_out_what_was_asked_is_not_shown() -> None:
    from graphs import chatops_advanced as chatops

    usage = ToolMessage(
        '{"by_service_model": [{"service": "strategy_builder", "calls": 1, '
        '"input_tokens": 2100, "output_tokens": 700, "cost_usd": "0.000735"}]}',
        tool_call_id="c0",
        name="my_usage",
    )
    q = "how many tokens has the strategy builder used so far (in + out)?"
    calls_only = "The strategy builder used 1 model call, costing $0.000735 in total."
    assert "tokens" in (chatops.leaves_out_asked(calls_only, q, [usage]) or "")
    both = "The strategy builder used 2100 input and 700 output tokens."
    assert chatops.leaves_out_asked(both, q, [usage]) is None
    bt = ToolMessage(
        '{"total_return_pct": 12.5, "max_drawdown_pct": -8.1}',
        tool_call_id="c1",
        name="get_backtest",
    )
    q2 = "what was its worst drawdown?"
    assert "max_drawdown" in (chatops.leaves_out_asked("It returned 12.5%.", q2, [bt]) or "")
    assert chatops.leaves_out_asked("Its max drawdown was -8.1%.", q2, [bt]) is None
    assert chatops.leaves_out_asked("최대 낙폭은 -8.1%였습니다.", "최대 낙폭은?", [bt]) is None


def test_an_answer_must_give_the_id_and_the_model_the_question_asks_for() -> None:
    from graphs import chatops_advanced as chatops

    ranked = ToolMessage(
        '{"backtests": [{"backtest_id": "bt-0123456789abcdef0123", "max_drawdown_pct": -41.2}]}',
        tool_call_id="c0",
        name="top_backtests",
    )
    bare = "The deepest drawdown was -41.2%."
    for q in ("which EURUSD backtest fell the most? give me its id", "which one was worst?"):
        assert "backtest id" in (chatops.leaves_out_asked(bare, q, [ranked]) or ""), q
    with_id = bare + " (id bt-0123456789abcdef0123)"
    assert chatops.leaves_out_asked(with_id, "which one was worst? id?", [ranked]) is None
    assert chatops.leaves_out_asked(bare, "how deep was the worst drawdown?", [ranked]) is None
    usage = ToolMessage(
        '{"by_service_model": [{"model": "gpt-4o", "cost_usd": "0.047000"}, '
        '{"model": "gpt-4o-mini", "cost_usd": "0.000735"}], "total_cost_usd": "0.047735"}',
        tool_call_id="c1",
        name="my_usage",
    )
    q = "what did gpt-4o cost me?"
    total = "Your calls cost $0.047735, gpt-4o-mini included."
    assert "gpt-4o" in (chatops.leaves_out_asked(total, q, [usage]) or "")
    assert chatops.leaves_out_asked("gpt-4o cost you $0.047.", q, [usage]) is None
    assert chatops.leaves_out_asked(total, "what did o3 cost me?", [usage]) is None  # not had
    service = ToolMessage(
        '{"by_service_model": [{"service": "narrative_report", "cost_usd": "0.047000"}, '
        '{"service": "strategy_builder", "cost_usd": "0.000735"}]}',
        tool_call_id="c2",
        name="my_usage",
    )
    q = "narrative report 기능 비용은 얼마 나왔어?"
    assert "narrative" in (chatops.leaves_out_asked("총 $0.047735입니다.", q, [service]) or "")
    assert chatops.leaves_out_asked("narrative_report: $0.047000입니다.", q, [service]) is None


def test_an_answer_must_give_a_value_of_the_metric_it_names() -> None:
    from graphs import chatops_advanced as chatops

    ranked = ToolMessage(
        '{"backtests": [{"backtest_id": "bt-0123456789abcdef0123", "Sortino ratio": "2.63", '
        '"total return": "154.5%"}]}',
        tool_call_id="c0",
        name="top_backtests",
    )
    q = "btc 쪽 백테스트 중에 sortino 젤 높은 거 뭐야? 수치도 같이"
    named = "Sortino ratio is the highest return for the top 3 backtests."
    assert "gives none of its values" in (chatops.leaves_out_asked(named, q, [ranked]) or "")
    for reply in ("Its Sortino ratio is 2.63.", "Sortino ratio 2.6 (bt-0123456789abcdef0123)"):
        assert chatops.leaves_out_asked(reply, q, [ranked]) is None, reply


def test_a_reply_of_the_questions_own_words_is_not_an_answer() -> None:
    from graphs import chatops_advanced as chatops

    q = "백테스트 결과에 나오는 exposure %는 뭘 뜻하는 거야?"
    assert chatops.only_question_words("exposure", q)
    assert chatops.only_question_words('"Exposure %"', q)
    assert not chatops.only_question_words("exposure is the share of bars in a position", q)
    assert not chatops.only_question_words("", q)


def test_a_call_read_from_the_message_that_fails_is_answered_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user's own arguments failed (no GOOG data in 2020): the answer says why, and the
    model gets no chance to answer another question instead."""
    out, model = run_graph(monkeypatch, [], "GOOG price in 2020?", read_calls=True)
    msgs = out["messages"]
    assert msgs[1].tool_calls[0]["args"] == {
        "symbol": "GOOG", "start": "2020-01-01", "end": "2020-12-31",
    }  # fmt: skip
    assert msgs[2].status == "error"
    assert out["answer_source"] == "tool_error" and model.prompts == []
    assert "Not enough GOOG data between 2020-01-01 and 2020-12-31" in msgs[-1].content


def test_an_answer_that_speaks_of_the_tool_is_replaced_by_the_results_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reply = 'The tool call "market_data" returned the GOOG data, 2148 bars.'  # grounded
    out, model = run_graph(monkeypatch, [call("market_data", symbol="GOOG"), reply])
    assert out["answer_source"] == "tool_result_summary" and len(model.prompts) == 2
    assert out["messages"][-1].content.startswith("GOOG data runs from 2004-08-19")
    assert "market_data" not in out["messages"][-1].content
