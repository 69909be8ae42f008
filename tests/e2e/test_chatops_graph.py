"""chatops_advanced end to end on the embedded model: the JSON-in-text fallback really calls a
tool and answers, memory holds across turns, PII is masked before the model, costs are booked."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from agents.usage.ledger import get_ledger
from graphs.chatops_advanced import Context, InputState, graph, graph_with_memory, thread_config
from tests.fakes.spies import PromptSpy

pytestmark = pytest.mark.e2e


@pytest.mark.usefixtures("local_env")
def test_json_fallback_calls_a_tool_answers_and_remembers() -> None:
    app = graph_with_memory(InMemorySaver())
    config = thread_config("alice", "e2e-1")
    ctx = Context(user_id="alice", max_tokens=64, max_steps=3)
    out = app.invoke(
        InputState(messages=[HumanMessage("List my strategies.")]), config, context=ctx
    )
    msgs = out["messages"]
    asked = [m for m in msgs if isinstance(m, AIMessage) and m.tool_calls]
    assert asked and asked[0].tool_calls[0]["name"] == "list_my_strategies"
    results = [m for m in msgs if isinstance(m, ToolMessage)]
    assert results and "runnable_named_strategies" in str(results[0].content)
    final = msgs[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls and str(final.content).strip()

    spy = PromptSpy()
    second: RunnableConfig = {**config, "callbacks": [spy]}
    ctx2 = Context(user_id="alice", max_tokens=32, max_steps=1)
    out = app.invoke(
        InputState(messages=[HumanMessage("What was my first question?")]), second, context=ctx2
    )
    assert spy.prompts and "List my strategies." in spy.prompts[0]  # memory reached the model
    humans = [m.content for m in out["messages"] if isinstance(m, HumanMessage)]
    assert humans == ["List my strategies.", "What was my first question?"]

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
