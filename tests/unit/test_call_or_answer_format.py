"""The grammar of an embedded model's step (`call_or_answer_format`): one call of a listed tool
with arguments that tool takes, or an answer — nothing else validates."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from langchain_core.messages import AIMessage

from agents.llm.tool_calls import call_or_answer_format, unwrap_json_answer, with_text_tool_calls
from tools import TOOLS

SCHEMA = call_or_answer_format(TOOLS)["json_schema"]["schema"]


def valid(reply: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(reply, SCHEMA)
    except jsonschema.ValidationError:
        return False
    return True


def test_the_format_is_a_json_schema_response_format() -> None:
    fmt = call_or_answer_format(TOOLS)
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "call_or_answer"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    "reply",
    [
        {"name": "top_backtests", "arguments": {"metric": "sharpe", "symbol": "GOOG"}},
        {"name": "my_usage", "arguments": {}},
        {"name": "compare_backtests", "arguments": {"id_a": "bt-1", "id_b": "bt-2"}},
        {"answer": "Diversification spreads risk across assets."},
    ],
)
def test_a_call_of_a_listed_tool_or_an_answer_is_allowed(reply: dict[str, Any]) -> None:
    assert valid(reply)


@pytest.mark.parametrize(
    "reply",
    [
        {"name": "rank_my_backtests", "arguments": {}},  # no such tool
        {"name": "survivorship bias", "arguments": {"query": "x"}},
        {"name": "top_backtests", "arguments": {"metric": "sharpe", "bogus": 1}},  # no such arg
        {"name": "compare_backtests", "arguments": {"id_a": "bt-1"}},  # id_b is required
        {"name": "top_backtests"},  # no arguments
        {"answer": ""},
        {"answer": "x", "name": "my_usage"},
        {"result": "an answer under another key"},
    ],
)
def test_anything_else_is_refused(reply: dict[str, Any]) -> None:
    assert not valid(reply)


def test_every_tool_has_exactly_one_branch_with_its_own_arguments() -> None:
    names = [b["properties"]["name"]["const"] for b in SCHEMA["anyOf"] if "name" in b["properties"]]
    assert sorted(names) == sorted(t.name for t in TOOLS)


def test_what_the_grammar_allows_reads_back_as_a_call_or_the_answer_text() -> None:
    call = AIMessage('{"name": "top_backtests", "arguments": {"metric": "sharpe"}}')
    (made,) = with_text_tool_calls(call, [t.name for t in TOOLS]).tool_calls
    assert (made["name"], made["args"]) == ("top_backtests", {"metric": "sharpe"})
    answer = unwrap_json_answer(AIMessage('{"answer": "Sharpe is return per unit of risk."}'))
    assert answer.content == "Sharpe is return per unit of risk." and not answer.tool_calls
