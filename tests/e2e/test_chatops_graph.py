"""chatops_advanced end to end on the embedded model (which writes tool calls as JSON in its
text): a three-turn conversation whose every reply is prose with numbers from tool results,
memory across turns on the default durable checkpointer, PII masked before the model, costs
booked. Calls are few and short: the suite runs on 2 cores."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from agents.context import Context as BaseContext
from agents.llm.tool_calls import message_text, reply_problem, unsupported_numbers
from agents.usage.ledger import get_ledger
from graphs.chatops_advanced import Context, InputState, graph, graph_with_memory, thread_config
from tests.fakes.spies import PromptSpy
from tools import run_backtest

pytestmark = pytest.mark.e2e

TURNS = (
    # (question, max_steps): a tool for turns 1 and 2, memory for turn 3
    ("Which of my backtests has the best Sharpe ratio?", 3),
    ("When does the GOOG market data start and end?", 2),
    ("What was my first question?", 1),
)


def _seed(user: str) -> None:
    rt: ToolRuntime[BaseContext, Any] = ToolRuntime(
        state={},
        context=BaseContext(user_id=user),
        config={},
        stream_writer=lambda _: None,
        tool_call_id="seed",
        store=None,
    )
    for name, symbol in (("SmaCross", "GOOG"), ("Momentum", "BTCUSD")):
        assert run_backtest.invoke({"strategy_name": name, "symbol": symbol, "runtime": rt})


def _assert_prose(text: str) -> None:
    assert text.strip(), "an empty reply"
    assert '{"name"' not in text and '"arguments"' not in text, text
    assert reply_problem(text) is None, text
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        raise AssertionError(f"the reply is JSON: {text!r}")


def _sources(messages: list[BaseMessage]) -> list[str]:
    """What an answer's numbers may come from: tool results, the user, today's date."""
    found = [
        message_text(m.content)
        for m in messages
        if isinstance(m, ToolMessage | HumanMessage) and getattr(m, "status", "") != "error"
    ]
    return [*found, datetime.now(UTC).strftime("%Y-%m-%d")]


@pytest.mark.usefixtures("local_env")
def test_three_turns_of_prose_from_tool_results_with_memory() -> None:
    _seed("alice")
    app = graph_with_memory()  # the durable default: SQLite under this test's data dir
    config = thread_config("alice", "e2e-3")
    spy = PromptSpy()
    out: dict[str, Any] = {}
    for question, steps in TURNS:
        ctx = Context(user_id="alice", max_tokens=64, max_steps=steps, answer_retries=0)
        out = app.invoke(
            InputState(messages=[HumanMessage(question)]),
            {**config, "callbacks": [spy]},
            context=ctx,
        )
        final = out["messages"][-1]
        assert isinstance(final, AIMessage) and not final.tool_calls
        text = message_text(final.content)
        _assert_prose(text)
        assert unsupported_numbers(text, _sources(out["messages"])) == [], text
        assert out["model_used"] and "served by local" in out["model_used"]
        assert out["answer_source"] in ("model", "tool_result_summary", "tool_error", "no_answer",
                                        "step_limit")  # fmt: skip
    msgs = out["messages"]
    assert any(isinstance(m, ToolMessage) for m in msgs), "no tool ran in three turns"
    humans = [m.content for m in msgs if isinstance(m, HumanMessage)]
    assert humans == [q for q, _ in TURNS]  # one thread across the turns
    for m in msgs:  # no raw call text anywhere in the thread a client sees
        if isinstance(m, AIMessage):
            _assert_prose(message_text(m.content)) if not m.tool_calls else None
    assert TURNS[0][0] in spy.prompts[-1]  # memory: turn 1 reached the model in turn 3

    rows = [r for r in get_ledger().rows() if r["service"] == "chatops_advanced"]
    assert len(rows) >= 3 and all(r["user_id"] == "alice" and r["route"] == "local" for r in rows)
    assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 for r in rows)


@pytest.mark.usefixtures("local_env")
def test_pii_is_masked_before_the_local_model() -> None:
    spy = PromptSpy()
    email, card = "jane.doe@example.com", "4111 1111 1111 1111"
    out = graph.invoke(
        InputState(messages=[HumanMessage(f"My email is {email} and card {card}. Say hi.")]),
        RunnableConfig(callbacks=[spy]),
        context=Context(user_id="bob", max_tokens=16, max_steps=1),
    )
    assert spy.prompts, "the model was called"
    assert all(email not in p and card not in p for p in spy.prompts)
    assert email not in str(out["messages"][0].content)
    assert isinstance(out["messages"][-1], AIMessage)
