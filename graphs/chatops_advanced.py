"""chatops_advanced: a conversational agent over the user's backtests, market data and spend.

A ReAct loop (`govern` → `call_model` ⇄ `tools`) in the langchain-ai/react-agent style.
Governance runs first on every human message: a blocked one is answered with the reasons and
replaced by a placeholder, a masked one is replaced by its masked text — so nothing unmasked
ever reaches a model, in this turn or in later turns' history.

Models with native function calling get the tools through `bind_tools`. Models whose catalog
entry says `tool_calling = "json_text"` (the embedded Qwen 0.5B) get the tools described in the
system prompt with a JSON convention, their text parsed by `agents.llm.tool_calls`, and a history in
which earlier tool calls and results are plain text (no `tool_choice="required"`: it looped).

`graph` is exported without a checkpointer (the LangGraph server brings its own); `chat()`
compiles one with memory. Threads are scoped per user (`<user>:<thread>`), so a thread id
guessed by another user opens an empty conversation, not someone else's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from pydantic import Field

from agents.context import Context as BaseContext
from agents.governance.gate import blocked_reasons, gate
from agents.llm.catalog import MODEL_CATALOG, validate_model
from agents.llm.factory import create_chat_model_with_fallback
from agents.llm.tool_calls import message_text, unwrap_json_answer, with_text_tool_calls
from agents.llm.weights import LOCAL_MODEL_ID
from agents.registry import ProcessCache
from agents.usage.limits import count_tokens
from tools import TOOLS

SERVICE = "chatops_advanced"

CHATOPS_SYSTEM = (
    "You are the chat-ops assistant of a quant-trading platform. Tools give you the user's own "
    "data: search their past backtests, get a backtest by id, run a named strategy on GOOG, "
    "EURUSD or BTCUSD, list their strategies, summarise market data, and report their model "
    "usage and spend. Use a tool when the answer depends on the user's data or on market data; "
    "never invent numbers. Answer briefly. Current time: {time}."
)
JSON_TOOLS_PROMPT = (
    "\n\nTools:\n{tools}\n\n"
    "To call a tool, reply with ONLY one JSON object and nothing else:\n"
    '{{"name": "<tool name>", "arguments": {{<arguments>}}}}\n'
    "If no tool is needed, or you already have the tool result, answer in plain text."
)
TOOL_RESULT_NOTE = (
    "Result of {name}:\n{result}\n\nAnswer my question with this result, in plain text."
)
BLOCKED_REPLY = "I can't help with that: the message was blocked by prompt governance ({reasons})."
BLOCKED_PLACEHOLDER = "[message blocked by prompt governance]"
STEP_LIMIT_REPLY = "I could not finish within {n} steps; please ask a narrower question."


@dataclass(kw_only=True)
class Context(BaseContext):
    """Knobs of the chat-ops agent."""

    max_steps: int = field(
        default=6,
        metadata={"description": "Model calls per turn before the agent stops calling tools."},
    )
    max_tokens: int = field(
        default=512, metadata={"description": "Output token cap for each model call."}
    )
    system_prompt: str = field(
        default=CHATOPS_SYSTEM,
        metadata={"description": "The system prompt ({time} is filled in)."},
    )


@dataclass(kw_only=True)
class InputState:
    """The conversation; a turn adds one human message."""

    messages: Annotated[
        list[AnyMessage],
        Field(
            description="The conversation: send one human message per turn; the thread keeps "
            "the earlier turns (tool calls and results included)."
        ),
        add_messages,
    ] = field(default_factory=list)


@dataclass(kw_only=True)
class State(InputState):
    model_calls: int = 0  # in this turn (reset by `govern`)
    blocked: bool = False


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def tool_calling_mode(chat: Any, service: str, model_id: str | None) -> str:
    """How the model that will actually answer calls tools: native, json_text or none."""
    if (getattr(chat, "metadata", None) or {}).get("route") == "local":
        return MODEL_CATALOG[LOCAL_MODEL_ID].tool_calling
    return validate_model(service, model_id).tool_calling


def describe_tools(tools: Sequence[BaseTool]) -> str:
    """One compact line per tool: name, arguments with types, the docstring's first line."""
    lines = []
    for t in tools:
        params = convert_to_openai_tool(t)["function"]["parameters"]
        required = set(params.get("required", []))
        args = []
        for name, spec in params.get("properties", {}).items():
            types = [s.get("type") for s in spec.get("anyOf", [spec]) if s.get("type") != "null"]
            opt = "" if name in required else "?"
            args.append(f"{name}{opt}: {'|'.join(str(x) for x in types) or 'any'}")
        summary = " ".join((t.description or "").strip().split("\n\n")[0].split())
        lines.append(f"- {t.name}({', '.join(args)}): {summary}")
    return "\n".join(lines)


PROMPT_OVERHEAD_TOKENS = (
    count_tokens(CHATOPS_SYSTEM)
    + count_tokens(JSON_TOOLS_PROMPT.format(tools=describe_tools(TOOLS)))
    + 16  # message framing
)
"""Tokens of the fixed prompt around the conversation (REST checks the context window)."""


def as_plain_history(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Tool calls and results as plain text, for models without structured tool calling."""
    out: list[BaseMessage] = []
    for m in messages:
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = [{"name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
            text = json.dumps(calls[0] if len(calls) == 1 else calls)
            out.append(AIMessage(content=text))
        elif isinstance(m, ToolMessage):
            result = message_text(m.content)
            out.append(HumanMessage(TOOL_RESULT_NOTE.format(name=m.name or "tool", result=result)))
        else:
            out.append(m)
    return out


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


def govern(state: State) -> dict[str, Any]:
    """Governance on every human message before any model call: block, or mask in place."""
    updates: list[BaseMessage] = []
    blocked: str | None = None
    humans = [m for m in state.messages if isinstance(m, HumanMessage)]
    for m in humans:
        text = message_text(m.content)
        if text == BLOCKED_PLACEHOLDER:
            continue
        report = gate(text)
        if report.verdict == "block":
            updates.append(HumanMessage(BLOCKED_PLACEHOLDER, id=m.id))
            if m is humans[-1]:
                blocked = blocked_reasons(report)
        elif report.masked_text != text:
            updates.append(HumanMessage(report.masked_text, id=m.id))
    if blocked is not None:
        reply = AIMessage(BLOCKED_REPLY.format(reasons=blocked))
        return {"messages": [*updates, reply], "blocked": True, "model_calls": 0}
    return {"messages": updates, "blocked": False, "model_calls": 0}


def route_after_govern(state: State) -> Literal["call_model", "__end__"]:
    return "__end__" if state.blocked else "call_model"


def call_model(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """One model step: native tool calls, or JSON in text parsed into tool calls."""
    ctx = runtime.context
    overrides: dict[str, Any] = {"max_tokens": ctx.max_tokens, "temperature": 0}
    chat = create_chat_model_with_fallback(SERVICE, ctx.model, user_id=ctx.user_id, **overrides)
    mode = tool_calling_mode(chat, SERVICE, ctx.model)
    system = ctx.system_prompt.format(time=datetime.now(UTC).isoformat(timespec="seconds"))
    history: list[BaseMessage] = list(state.messages)
    names = [t.name for t in TOOLS]
    # A json_text model that has a tool result answers without the tools: measured, the 0.5B
    # model otherwise echoes the result back as another call and never answers.
    answering = mode == "json_text" and bool(history) and isinstance(history[-1], ToolMessage)
    if mode == "native":
        reply = chat.bind_tools(TOOLS).invoke([SystemMessage(system), *history])
    else:
        if mode == "json_text" and not answering:
            system += JSON_TOOLS_PROMPT.format(tools=describe_tools(TOOLS))
        reply = chat.invoke([SystemMessage(system), *as_plain_history(history)])
    assert isinstance(reply, AIMessage)
    if mode == "json_text" and not answering:
        reply = with_text_tool_calls(reply, names)
    if mode == "json_text" and not reply.tool_calls:
        reply = unwrap_json_answer(reply)  # the 0.5B model often answers as {"result": "..."}
    elif mode == "none":
        reply = reply.model_copy(update={"tool_calls": []})
    if reply.tool_calls and state.model_calls + 1 >= ctx.max_steps:
        reply = AIMessage(id=reply.id, content=STEP_LIMIT_REPLY.format(n=ctx.max_steps))
    return {"messages": [reply], "model_calls": state.model_calls + 1}


def route_model_output(state: State) -> Literal["tools", "__end__"]:
    """Run the tools the model asked for; otherwise the turn is over."""
    last = state.messages[-1] if state.messages else None
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return "__end__"


# --------------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------------

builder = StateGraph(State, context_schema=Context, input_schema=InputState)
builder.add_node(govern)
builder.add_node(call_model)
builder.add_node("tools", ToolNode(TOOLS))
builder.add_edge(START, "govern")
builder.add_conditional_edges("govern", route_after_govern)
builder.add_conditional_edges("call_model", route_model_output)
builder.add_edge("tools", "call_model")
graph = builder.compile(name=SERVICE)


# --------------------------------------------------------------------------------------------
# Programmatic entry point (with memory)
# --------------------------------------------------------------------------------------------

_saver = InMemorySaver()
# Keyed by the saver's id; the entry keeps the saver alive, so the id cannot be reused.
_compiled: ProcessCache[
    int, tuple[BaseCheckpointSaver[Any], CompiledStateGraph[Any, Any, Any, Any]]
] = ProcessCache("chatops graphs with memory")


def graph_with_memory(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The chat-ops graph compiled with a checkpointer (default: one in-memory saver)."""
    saver = checkpointer or _saver
    return _compiled.get(
        id(saver), lambda: (saver, builder.compile(checkpointer=saver, name=SERVICE))
    )[1]


def thread_config(user_id: str, thread_id: str) -> RunnableConfig:
    """Checkpoint config of a user's thread; the user is part of the key (no cross-user reads)."""
    return RunnableConfig(configurable={"thread_id": f"{user_id}:{thread_id}"})


def chat(
    message: str,
    *,
    user_id: str,
    thread_id: str,
    model: str | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    max_steps: int | None = None,
    max_tokens: int | None = None,
) -> str:
    """One turn of a conversation that remembers earlier turns of the same thread."""
    ctx = Context(user_id=user_id, model=model)
    if max_steps is not None:
        ctx.max_steps = max_steps
    if max_tokens is not None:
        ctx.max_tokens = max_tokens
    out = graph_with_memory(checkpointer).invoke(
        {"messages": [HumanMessage(message)]},
        config=thread_config(user_id, thread_id),
        context=ctx,
    )
    return message_text(out["messages"][-1].content)


__all__ = [
    "CHATOPS_SYSTEM",
    "Context",
    "InputState",
    "State",
    "chat",
    "graph",
    "graph_with_memory",
    "thread_config",
]
