"""The JSON-in-text tool-call parser: every shape the local model writes, and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage

from agents.llm.tool_calls import parse_text_tool_calls, with_text_tool_calls

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
        # left alone: not only JSON, several keys, not an answer key, not a string
        ('Here: {"result": "x"}', 'Here: {"result": "x"}'),
        ('{"result": "a", "score": 1}', "result: a\nscore: 1"),
        ('{"symbol": "GOOG"}', "symbol: GOOG"),
        ('{"result": 42}', "result: 42"),
        (
            '[{"name": "SmaCross", "symbol": "GOOG"}, {"name": "Rsi"}]',
            "- name: SmaCross\n  symbol: GOOG\n- name: Rsi",
        ),
        ('{"strategies": ["A", "B"]}', "strategies:\n  - A\n  - B"),
        ("{}", "{}"),
        ('{"result": "unterminated', '{"result": "unterminated'),
    ],
)
def test_unwrap_json_answer(text: str, expected: str) -> None:
    from langchain_core.messages import AIMessage

    from agents.llm.tool_calls import unwrap_json_answer

    assert unwrap_json_answer(AIMessage(content=text)).content == expected
