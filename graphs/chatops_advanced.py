"""chatops_advanced: a conversational agent over the user's backtests, market data and spend.

A ReAct loop (`govern` → `call_model` ⇄ `tools`) in the langchain-ai/react-agent style.
Governance runs first on every human message: a blocked one is answered with the reasons and
replaced by a placeholder, a masked one is replaced by its masked text — so nothing unmasked
ever reaches a model, in this turn or in later turns' history.

Models with native function calling get the tools through `bind_tools`. Models whose catalog
entry says `tool_calling = "json_text"` (the embedded Qwen models) get the tools described in
the system prompt with a JSON convention, their text parsed by `agents.llm.tool_calls`, and a
history in which earlier tool calls are JSON text and results their sentences
(`tools.summarize`; no `tool_choice="required"`: it looped). Two slips of small models are
repaired when unambiguous (`repair_text_calls`: arguments beside the name; an unknown tool name
whose arguments fit one tool). Prompts and repairs were tuned on the tune half of
bench/chatops.py only.

**Every reply is an executed tool call or an answer in sentences.** A call with missing or
invalid arguments is validated against the tool's schema by the tool node and answered with a
ToolMessage error naming the argument (`agents.llm.tool_calls.argument_errors`), so the model
can retry within `max_steps`; a `run_strategy_spec` call whose spec contradicts the user's
message is answered with the discrepancies before it runs (`unfaithful_spec`,
`agents.quant.faithfulness`), and the same failing call made again ends the turn
(`repeats_a_failed_call`). A reply without a call is shown only if it is prose
(`reply_problem`: no echoed call, no JSON, no `key: value` dump) whose every number a tool
result or the user gave (`tools.summaries.unsupported_answer_numbers`, label-aware for
backtests). Otherwise it is not added to the thread: the model is asked once more (`retry_note`,
within `max_steps` and `answer_retries`), and then the graph answers in code from the turn's last
tool result (`tools.summarize`). An answer with unsupported numbers after a tool result is
replaced by that summary at once, and so is one that states nothing from this turn's data
results (`ungrounded`: a refusal, or none of their ids or numbers); before any tool ran, a reply
that tells the user to use a tool goes back to the model. Each final reply carries
`model_used` (the catalog model and what served it) and `answer_source` in its
`response_metadata` and in the graph's output.

Long threads are trimmed (`fit_history`, LangChain's `trim_messages`) to the model's context and
to `history_tokens` of earlier turns (default `HISTORY_TOKENS`): the current turn whole, earlier
turns newest first, each from a human message on, so a tool call never loses its result; the
system prompt then lists the user's questions from the turns left out (`earlier_note`).
`graph` is exported without a checkpointer (the LangGraph server brings its own);
`graph_with_memory()` and `chat()` use a durable one (`durable_checkpointer`: SQLite under the
data dir, Postgres when `DATABASE_URL` is Postgres). Threads are scoped per user
(`<user>:<thread>`), so a thread id guessed by another user opens an empty conversation.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from difflib import SequenceMatcher
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    trim_messages,
)
from langchain_core.messages.tool import tool_call
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolInvocationError
from langgraph.runtime import Runtime
from pydantic import Field, ValidationError

from agents.context import Context as BaseContext
from agents.governance.gate import blocked_reasons, gate
from agents.governance.pii import mask_output
from agents.llm.catalog import MODEL_CATALOG, SERVICES, validate_model
from agents.llm.factory import context_window, create_chat_model_with_fallback, local_server
from agents.llm.tool_calls import (
    argument_errors,
    invalid_call_message,
    message_text,
    numbers_in,
    reply_problem,
    unwrap_json_answer,
    with_text_tool_calls,
)
from agents.quant.faithfulness import Addition, Discrepancy
from agents.quant.faithfulness import check as check_spec
from agents.quant.glossary import answer as glossary_answer
from agents.quant.glossary import (
    asks_meaning,
    compared_terms,
    definition_question,
    question_language,
)
from agents.quant.spec import StrategySpec
from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.limits import MESSAGE_OVERHEAD_TOKENS, count_tokens
from tools import TOOLS, summarize
from tools.grounding import ground_calls
from tools.intent import metrics_named, read_call, read_follow_up, read_pair
from tools.summaries import unsupported_answer_numbers

SERVICE = "chatops_advanced"
log = logging.getLogger(__name__)

CHATOPS_SYSTEM = (
    "You are the chat-ops assistant of a quant-trading platform. Tools give you the user's own "
    "data: search, rank and compare their past backtests, get a backtest by id, run a named "
    "strategy or a strategy spec on GOOG, EURUSD or BTCUSD, list the strategies they can run, "
    "summarise market data, give the platform's definitions of backtest metrics, and report "
    "their model usage, spend and budget. Use a tool when the answer depends on the user's "
    "data, on market data or on a metric's definition; never invent numbers. A general "
    "trading idea that is not a metric (what a stop-loss or a moving average is) needs no tool: "
    "define it in one to three sentences. Answer briefly, in plain sentences (never JSON). "
    "Today is {time}."
)
JSON_TOOLS_PROMPT = (
    "\n\nTools:\n{tools}\n\n"
    "To call a tool, reply with ONLY one JSON object and nothing else:\n"
    '{{"name": "<tool name>", "arguments": {{<arguments>}}}}\n'
    "Examples:\n"
    '"my best backtests by win rate" -> '
    '{{"name": "top_backtests", "arguments": {{"metric": "win_rate"}}}}\n'
    '"find my RSI backtests on EURUSD" -> '
    '{{"name": "search_my_backtests", "arguments": {{"query": "RSI", "symbol": "EURUSD"}}}}\n'
    '"what does CAGR mean?" -> {{"name": "explain_metric", "arguments": {{"name": "cagr"}}}}\n'
    '"how did BTCUSD trade in 2020?" -> {{"name": "market_data", "arguments": '
    '{{"symbol": "BTCUSD", "start": "2020-01-01", "end": "2020-12-31"}}}}\n'
    '"my model usage" -> {{"name": "my_usage", "arguments": {{}}}}\n'
    '"what is diversification?" or "분산 투자가 뭐야?" -> no tool: answer in plain sentences.\n'
    "If no tool is needed, or you already have the tool result, answer in plain text."
)
TOOL_RESULT_NOTE = (
    "Result of {name}:\n{result}\n\nAnswer my question with this result, in plain sentences "
    "that quote the numbers answering it."
)
TOOL_ERROR_NOTE = "Result of {name}:\n{result}"
RETRY_NOTE = "Your previous reply was not shown to me: {problem}. {ask}"
ASK_ANSWER = (
    "Answer my question in one to three plain sentences using the tool result above; no JSON, "
    "no `key: value` lines."
)
ASK_CALL_OR_ANSWER = (
    "Reply with ONLY one JSON tool call from the tool list, or answer in plain sentences."
)
ASK_FOR_DATA = (
    "Numbers must come from a tool: reply with ONLY one JSON tool call that gets them, or "
    "answer without those numbers."
)
BLOCKED_REPLY = "I can't help with that: the message was blocked by prompt governance ({reasons})."
BLOCKED_PLACEHOLDER = "[message blocked by prompt governance]"
STEP_LIMIT_REPLY = "I could not finish within {n} steps; please ask a narrower question."
NO_ANSWER_REPLY = (
    "I could not answer that from your data. I can search, rank and compare your backtests, run "
    "a strategy, summarise market data for GOOG, EURUSD or BTCUSD, explain a backtest metric, "
    "or report your model usage, spend and budget."
)
TOOL_FAILED_REPLY = "I could not complete that: {error}"
READ_FROM_MESSAGE = "read_from_message"
"""Marks (in `response_metadata`) a turn's first step whose call code read from the message."""

AnswerSource = Literal[
    "model",
    "tool_result_summary",
    "tool_error",
    "no_answer",
    "step_limit",
    "governance",
    "glossary",
]


HISTORY_TOKENS = 1500
"""The default budget of earlier turns in a prompt: measured in bench/trimming.py (tokens saved
on long threads) and on the chat benchmark (answers), README "Prompt trimming"."""
EARLIER_NOTE = "Earlier in this conversation (not shown), the user asked: "
EARLIER_NOTE_TOKENS = 200
"""At most this many tokens of the user's left-out questions are listed (newest first)."""


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
    answer_retries: int = field(
        default=1,
        metadata={
            "description": "Times a reply that is not a valid answer (JSON, an echoed call, "
            "unsupported numbers) goes back to the model before the agent answers in code."
        },
    )
    history_tokens: int = field(
        default=HISTORY_TOKENS,
        metadata={
            "description": "Tokens of the conversation before the current turn kept in each "
            "prompt (0 = as many as the model's window allows). Older turns are left out whole, "
            "and the system prompt lists the user's questions from them."
        },
    )
    read_calls: bool = field(
        default=True,
        metadata={
            "description": "For models that write calls as text: a call code reads for certain "
            "from the message (a ranking, ids, a period, spend) is made without the model. Off: "
            "the model chooses every call (the chat benchmark's --no-reader)."
        },
    )
    system_prompt: str = field(
        default=CHATOPS_SYSTEM,
        metadata={
            "description": "The system prompt ({time} is filled in with today's UTC date: a "
            "prompt that changes once a day keeps the local server's prompt cache warm)."
        },
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


_MODEL_USED = (
    "Who wrote the last reply: the catalog model and what served it, e.g. "
    "'gpt-4o-mini (served by local: qwen2.5-coder-0.5b-instruct)'."
)
_ANSWER_SOURCE = (
    "Where the last reply comes from: model (checked prose), tool_result_summary (written in "
    "code from the last tool result), glossary (the platform's definition of a trading term), "
    "tool_error, no_answer, step_limit or governance."
)


@dataclass(kw_only=True)
class OutputState(InputState):
    """The conversation, and who answered the last turn."""

    model_used: Annotated[str | None, Field(description=_MODEL_USED)] = None
    answer_source: Annotated[AnswerSource | None, Field(description=_ANSWER_SOURCE)] = None


@dataclass(kw_only=True)
class State(OutputState):
    model_calls: int = 0  # in this turn (reset by `govern`)
    answer_retries: int = 0  # in this turn
    retry_note: str | None = None  # why the last reply was not shown; sent with the next call
    blocked: bool = False


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

_TOOLS_BY_NAME: dict[str, BaseTool] = {t.name: t for t in TOOLS}


def tool_calling_mode(chat: Any, service: str, model_id: str | None) -> str:
    """How the model that will actually answer calls tools: native, json_text or none."""
    if (getattr(chat, "metadata", None) or {}).get("route") == "local":
        return local_server(validate_model(service, model_id))[1].tool_calling
    return validate_model(service, model_id).tool_calling


def tool_signature(t: BaseTool) -> str:
    """`name(arg: type, optional?: type)` from the tool's schema (the model-visible arguments)."""
    params = convert_to_openai_tool(t)["function"]["parameters"]
    required = set(params.get("required", []))
    args = []
    for name, spec in params.get("properties", {}).items():
        types = [s.get("type") for s in spec.get("anyOf", [spec]) if s.get("type") != "null"]
        opt = "" if name in required else "?"
        args.append(f"{name}{opt}: {'|'.join(str(x) for x in types) or 'any'}")
    return f"{t.name}({', '.join(args)})"


def describe_tools(tools: Sequence[BaseTool]) -> str:
    """One compact line per tool: name, arguments with types, the docstring's first line."""
    lines = []
    for t in tools:
        summary = " ".join((t.description or "").strip().split("\n\n")[0].split())
        lines.append(f"- {tool_signature(t)}: {summary}")
    return "\n".join(lines)


PROMPT_OVERHEAD_TOKENS = (
    count_tokens(CHATOPS_SYSTEM)
    + count_tokens(JSON_TOOLS_PROMPT.format(tools=describe_tools(TOOLS)))
    + 16  # message framing
)
"""Tokens of the fixed prompt around the conversation (REST checks the context window).
Computed from the tool descriptions, so it grows with them."""


# --------------------------------------------------------------------------------------------
# Two slips of small models in JSON-text calls, repaired when the reading is unambiguous
# --------------------------------------------------------------------------------------------

_CALL_NAME_KEYS = ("name", "tool", "tool_name", "function")


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects written in `text` (fenced, in lists or alone), outermost first."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    i = text.find("{")
    while i != -1:
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            end = i + 1
        else:
            if isinstance(value, dict):
                found.append(value)
        i = text.find("{", end)
    return found


def _flat_call(obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, arguments) of a call-shaped object: the arguments under "arguments"/"args", or
    else every other key beside the name."""
    key = next((k for k in _CALL_NAME_KEYS if isinstance(obj.get(k), str)), None)
    if key is None:
        return None
    nested = next((obj[k] for k in ("arguments", "args") if isinstance(obj.get(k), dict)), None)
    args = nested if nested is not None else {k: v for k, v in obj.items() if k != key}
    return str(obj[key]).strip(), args


def _fits(t: BaseTool, args: dict[str, Any], *, strictly: bool = False) -> bool:
    """The arguments are all the tool's, its required ones included (`strictly`: and it has
    some, so the arguments say which tool they are for)."""
    params = convert_to_openai_tool(t)["function"]["parameters"]
    required = set(params.get("required", []))
    if strictly and not required:
        return False
    return required <= set(args) <= set(params.get("properties", {}))


def _refit(call: ToolCall, flat: Sequence[tuple[str, dict[str, Any]]]) -> ToolCall:
    t = _TOOLS_BY_NAME[call["name"]]
    if _fits(t, call["args"]):
        return call
    better = next((a for n, a in flat if n == call["name"] and a and _fits(t, a)), None)
    return call if better is None else {**call, "args": better}


def repair_text_calls(reply: AIMessage, text: str) -> AIMessage:
    """A call whose arguments sit beside its name (`{"name": "market_data", "symbol":
    "GOOG"}`) gets them; a call of an unknown tool whose arguments fit exactly one tool's schema
    (`{"name": "run_strategy", "arguments": {"strategy_name": "SmaCross", "symbol": "GOOG"}}`,
    measured on the 0.5B) becomes that tool's call — only when the names share a word and the
    arguments include the required ones of a tool that has some; a reply that is only a tool's
    name calls it without arguments (the tool node then names what is missing). Anything else
    is left as it is (an unknown tool is answered with the tool list)."""
    flat = [c for c in map(_flat_call, _json_objects(text)) if c is not None]
    if reply.tool_calls:
        return reply.model_copy(update={"tool_calls": [_refit(c, flat) for c in reply.tool_calls]})
    made: list[ToolCall] = []
    bare = text.strip().strip("`'\" ")
    if bare in _TOOLS_BY_NAME:  # measured on the 0.5B: '"market_data"', alone
        made.append(tool_call(name=bare, args={}, id=_call_id()))
    for name, args in flat:
        known = _TOOLS_BY_NAME.get(name)
        words = set(name.lower().split("_"))
        fits = (
            [known]
            if known is not None
            else [
                t for t in TOOLS if words & set(t.name.split("_")) and _fits(t, args, strictly=True)
            ]
        )
        if len(fits) == 1 and fits[0] is not None and _fits(fits[0], args):
            made.append(tool_call(name=fits[0].name, args=args, id=_call_id()))
    if not made:
        return reply
    log.info("chatops_advanced: repaired a text call: %.300r", text)
    return reply.model_copy(update={"content": "", "tool_calls": made, "invalid_tool_calls": []})


SPEC_TOOL = "run_strategy_spec"
UNFAITHFUL_SPEC = (
    "Error: the strategy was not run because its spec differs from the request: {problems}. "
    "Call it again with the whole corrected spec: {fixes}"
)


def unfaithful_spec(reply: AIMessage, state: State) -> list[ToolMessage]:
    """The error result of a lone `run_strategy_spec` call whose spec does not say what the
    user's message says (`agents.quant.faithfulness.check`: "the request says SMA; the spec
    uses EMA"), so the model fixes it before anything runs; [] when it does, or when the spec
    is not a valid one (the tool itself says why). Measured on the 0.5B: it copied the tool
    description's example spec instead of the request's rule."""
    if len(reply.tool_calls) != 1 or reply.tool_calls[0]["name"] != SPEC_TOOL:
        return []
    call = reply.tool_calls[0]
    args, request = call["args"], message_text(state.messages[turn_start(state.messages)].content)
    spec = args.get("spec")
    if not isinstance(spec, dict):
        return []
    given = {k: str(args[k]).strip() for k in ("symbol", "start", "end") if args.get(k)}
    if "symbol" in given:
        given["symbol"] = given["symbol"].upper()
    try:
        report = check_spec(request, StrategySpec.model_validate({**spec, **given}))
    except ValidationError:
        return []
    if report.faithful:
        return []
    found: list[Discrepancy | Addition] = [*report.discrepancies, *report.violations]
    problems = "; ".join(p.message.split(": ", 1)[-1] for p in found)
    fixes = " ".join(f"{p.fix}." for p in found if p.fix)
    text = UNFAITHFUL_SPEC.format(problems=problems, fixes=fixes)
    return [ToolMessage(text, tool_call_id=call["id"] or "", name=SPEC_TOOL, status="error")]


def grounded(reply: AIMessage, state: State) -> tuple[AIMessage, list[ToolMessage]]:
    """The reply's calls with what the user said applied (`tools.grounding`: invented dates
    dropped, one backtest compared with itself fetched, a spec the message states drafted in
    code), and the error results of a lone call that cannot run as written (an invented id, a
    spec for a message that states no rule)."""
    humans = [message_text(m.content) for m in state.messages if isinstance(m, HumanMessage)]
    seen = [message_text(m.content) for m in state.messages if isinstance(m, ToolMessage)]
    turn = message_text(state.messages[turn_start(state.messages)].content)
    fixed = ground_calls(reply.tool_calls, turn, "\n".join(humans), "\n".join(seen))
    if fixed.changes:
        log.info("chatops_advanced: calls grounded: %s", "; ".join(fixed.changes))
        reply = reply.model_copy(update={"tool_calls": fixed.calls})
    if len(fixed.calls) != 1 or not fixed.refused:
        return reply, []
    call = fixed.calls[0]
    why = fixed.refused[str(call["id"])]
    log.info("chatops_advanced: call answered before it ran: %s", why)
    return reply, [
        ToolMessage(why, tool_call_id=call["id"] or "", name=call["name"], status="error")
    ]


def repeats_a_failed_call(reply: AIMessage, state: State) -> bool:
    """Every call of the reply was made before in this turn, with the same arguments, and
    failed: the model is not fixing it (measured: the 0.5B sent one unfaithful spec 5 times)."""
    turn = state.messages[turn_start(state.messages) :]
    failed = {m.tool_call_id for m in turn if _is_error(m) and isinstance(m, ToolMessage)}
    before = [
        (c["name"], json.dumps(c["args"], sort_keys=True, default=str))
        for m in turn
        if isinstance(m, AIMessage)
        for c in m.tool_calls
        if c["id"] in failed
    ]
    now = [
        (c["name"], json.dumps(c["args"], sort_keys=True, default=str)) for c in reply.tool_calls
    ]
    return bool(now) and all(c in before for c in now)


def tool_error(e: ToolInvocationError) -> str:
    """The ToolMessage of a call whose arguments fail the tool's schema: names each argument."""
    errors = e.filtered_errors if e.filtered_errors is not None else e.source.errors()
    t = _TOOLS_BY_NAME.get(e.tool_name)
    signature = tool_signature(t) if t is not None else ""
    return invalid_call_message(e.tool_name, argument_errors(errors), signature)


def _is_error(m: BaseMessage) -> bool:
    return isinstance(m, ToolMessage) and m.status == "error"


def as_plain_history(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Tool calls and results as plain text, for models without structured tool calling.

    A successful result is given as its sentences (`tools.summarize`: every number copied from
    it), not its JSON: measured on the tune half of bench/chatops.py, the 0.5B model shown the
    JSON mostly answered "I'm sorry, but I can't assist with that." or echoed it."""
    out: list[BaseMessage] = []
    for m in messages:
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = [{"name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
            text = json.dumps(calls[0] if len(calls) == 1 else calls)
            out.append(AIMessage(content=text))
        elif isinstance(m, ToolMessage):
            name = m.name or "tool"
            if _is_error(m):
                text = TOOL_ERROR_NOTE.format(name=name, result=message_text(m.content))
            else:
                result = summarize(name, message_text(m.content))
                text = TOOL_RESULT_NOTE.format(name=name, result=result)
            out.append(HumanMessage(text))
        else:
            out.append(m)
    return out


def served_by(reply: BaseMessage) -> str | None:
    """`gpt-4o-mini (served by local: qwen2.5-coder-0.5b-instruct)`: the catalog model asked
    for and what answered (the route and the served model's name), from the reply's metadata."""
    meta = reply.response_metadata or {}
    catalog, route, name = meta.get("catalog_model"), meta.get("route"), meta.get("model_name")
    if not (catalog or name):
        return None
    if route or name:
        how = ": ".join(str(x) for x in (route, name) if x)
        return f"{catalog or name} (served by {how})"
    return str(catalog)


def turn_start(messages: Sequence[BaseMessage]) -> int:
    """Index of the latest human message (where the current turn starts; 0 if none)."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return 0


# --------------------------------------------------------------------------------------------
# Fitting a long thread into the model's context
# --------------------------------------------------------------------------------------------

_TOOL_NOTE_TOKENS = count_tokens(TOOL_RESULT_NOTE.format(name="search_my_backtests", result=""))


def message_tokens(messages: Sequence[BaseMessage]) -> int:
    """Prompt tokens of messages as sent: text, tool calls, the tool-result note, framing."""
    total = 0
    for m in messages:
        total += MESSAGE_OVERHEAD_TOKENS + count_tokens(message_text(m.content))
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = [{"name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
            total += count_tokens(json.dumps(calls))
        elif isinstance(m, ToolMessage):
            total += _TOOL_NOTE_TOKENS
    return total


def fit_history(messages: Sequence[BaseMessage], budget: int) -> list[BaseMessage]:
    """The thread as it fits `budget` tokens (the system prompt is not part of it).

    The current turn (from the latest human message on) is kept whole, or, if it alone is over
    the budget, its human message and its latest tool call with the results. Earlier messages
    are kept newest first with `trim_messages`, starting on a human message, so a kept tool call
    always has its result and a kept result its call.
    """
    start = turn_start(messages)
    current = list(messages[start:])
    if message_tokens(current) > budget:
        calls = [i for i, m in enumerate(current) if isinstance(m, AIMessage) and m.tool_calls]
        current = [current[0], *current[calls[-1] :]] if calls else current[:1]
    room = budget - message_tokens(current)
    if start == 0 or room <= 0:
        return current
    earlier = trim_messages(
        list(messages[:start]),
        max_tokens=room,
        token_counter=message_tokens,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    return [*earlier, *current]


def history_budget(ctx: Context, system: str, messages: Sequence[BaseMessage] = ()) -> int:
    """Tokens the thread may take: the model's window where it is served, minus the output cap
    and the system prompt (with the tool descriptions when they are in it); and at most the
    current turn plus `ctx.history_tokens` of earlier ones."""
    model = validate_model(SERVICE, ctx.model)
    out_cap = min(ctx.max_tokens, model.max_output_tokens)
    window = context_window(model) - out_cap - count_tokens(system) - 16 - EARLIER_NOTE_TOKENS
    if ctx.history_tokens <= 0:
        return window
    current = message_tokens(messages[turn_start(messages) :])
    return min(window, current + ctx.history_tokens)


def earlier_note(messages: Sequence[BaseMessage], kept: Sequence[BaseMessage]) -> str:
    """What the prompt says of the turns `fit_history` left out: the user's own questions from
    them (each cut to 150 characters) within `EARLIER_NOTE_TOKENS` — the first one, then the
    newest — in the order asked, so "what did I ask first?" still has its answer; "" when
    nothing was left out."""
    shown = {id(m) for m in kept}
    asked = [
        json.dumps(" ".join(message_text(m.content).split())[:150], ensure_ascii=False)
        for m in messages
        if isinstance(m, HumanMessage) and id(m) not in shown
    ]
    chosen: set[int] = set()
    used = count_tokens(EARLIER_NOTE)
    for i in [0, *range(len(asked) - 1, 0, -1)][: len(asked)]:
        cost = count_tokens(asked[i]) + 1
        if used + cost <= EARLIER_NOTE_TOKENS:
            chosen.add(i)
            used += cost
    if not chosen:
        return ""
    return "\n\n" + EARLIER_NOTE + "; ".join(asked[i] for i in sorted(chosen)) + "."


# --------------------------------------------------------------------------------------------
# Final replies
# --------------------------------------------------------------------------------------------


def _final(
    text_or_reply: str | AIMessage, source: AnswerSource, model: str | None
) -> dict[str, Any]:
    """The state update of a turn's last reply, stamped with who answered and how, its text
    masked (`mask_output`: a model or a tool result may carry personal data; nothing unmasked
    leaves the process or enters the thread)."""
    stamp = {"model_used": model, "answer_source": source}
    if isinstance(text_or_reply, AIMessage):
        meta = {**text_or_reply.response_metadata, **stamp}
        text = mask_output(message_text(text_or_reply.content))[0]
        reply = text_or_reply.model_copy(update={"response_metadata": meta, "content": text})
    else:
        reply = AIMessage(content=mask_output(text_or_reply)[0], response_metadata=stamp)
    return {"messages": [reply], "retry_note": None, **stamp}


def _first_sentence(error: str) -> str:
    text = re.sub(r"^Error:\s*", "", error.strip())
    text = re.split(r"\s(?:Its arguments:|Call it again|Please fix)", text)[0].strip()
    return text if text.endswith(".") else text + "."


def fallback_answer(
    state: State, model: str | None, *, step_limit: int | None = None
) -> dict[str, Any]:
    """The answer in code: the turn's last tool result in sentences, or why there is none."""
    turn = state.messages[turn_start(state.messages) :]
    results = [m for m in turn if isinstance(m, ToolMessage)]
    good = [m for m in results if not _is_error(m)]
    if good:
        last = good[-1]
        return _final(
            summarize(last.name or "", message_text(last.content)), "tool_result_summary", model
        )
    if results:
        error = _first_sentence(message_text(results[-1].content))
        return _final(TOOL_FAILED_REPLY.format(error=error), "tool_error", model)
    if step_limit is not None:
        return _final(STEP_LIMIT_REPLY.format(n=step_limit), "step_limit", model)
    return _final(NO_ANSWER_REPLY, "no_answer", model)


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_DANGLING = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])?\s*$|:\s*$")
"""A last line that says nothing alone: a bare list marker, or an intro ending in a colon."""


def complete_part(reply: AIMessage) -> AIMessage:
    """A reply cut off at the token limit, up to its last complete sentence, without a
    dangling list marker or list intro (empty if nothing complete is left)."""
    if (reply.response_metadata or {}).get("finish_reason") != "length":
        return reply
    text = message_text(reply.content).rstrip()
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    lines = text[: ends[-1]].splitlines() if ends else []
    while lines and _DANGLING.search(lines[-1]):
        lines.pop()
    return reply.model_copy(update={"content": "\n".join(lines).strip()})


_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)
_REFUSAL = re.compile(
    r"\b(?:I'?m sorry|I am sorry|I apologi[sz]e|I (?:can(?:'|no)?t|cannot|am unable to|'m "
    r"unable to) (?:assist|help|answer|provide))",
    re.IGNORECASE,
)
_ID = re.compile(r"\b[a-z]{2,5}-[0-9a-f]{8,}\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+)?\b")
_TOOL_NAMED = re.compile(r"\b(?:" + "|".join(map(re.escape, _TOOLS_BY_NAME)) + r")\b")
"""A reply naming a tool before any tool ran advises a call instead of making it (measured on
the 1.5B: "you can use the `top_backtests` tool with the `metric` parameter set to ..."); after
a result it speaks of the machinery, not the answer (measured on the fresh chat sets' tune
halves, the 0.5B: 'The tool call "top_backtests" returned the worst 4 backtests on EURUSD', "The
total cost of my_usage is $0.047735.")."""
_WORD_RESULTS = frozenset({"explain_metric", "list_my_strategies"})
"""Tools whose results are words (a definition, names): an answer may paraphrase them."""
_DATED_RESULTS = frozenset({"market_data"})
"""Tools whose dates are the answer; elsewhere a date is a backtest's period, not a fact."""


def _grounds(text: str, dates: bool) -> tuple[set[str], set[Any]]:
    """The ids and the numbers (without dates unless `dates`) a text states."""
    rest = _ID.sub(" ", text)
    return set(_ID.findall(text)), numbers_in(rest if dates else _DATE.sub(" ", rest))


def ungrounded(text: str, results: Sequence[ToolMessage], users: Sequence[str]) -> str | None:
    """Why an answer after this turn's tool results states nothing from them, or None: a
    refusal, or — after a data result — none of its ids and none of its numbers that the user
    did not write (measured: the 0.5B answered "The tool call run_backtest was used to run the
    SmaCross strategy on GOOG." to a backtest it had run)."""
    if _REFUSAL.search(text):
        return "it refuses although the tool answered"
    data = [m for m in results if m.name not in _WORD_RESULTS]
    if not data:
        return None
    dates = any(m.name in _DATED_RESULTS for m in data)
    ids, numbers = _grounds(" ".join(message_text(m.content) for m in data), dates)
    user_ids, user_numbers = _grounds(" ".join(users), dates)
    ids, numbers = ids - user_ids, numbers - user_numbers
    if not ids and not numbers:
        return None
    said_ids, said_numbers = _grounds(_LIST_MARKER.sub(" ", text), dates)
    if ids & said_ids or numbers & said_numbers:
        return None
    return "it states nothing the tool returned"


OUR_NOTES = (
    TOOL_RESULT_NOTE.format(name="", result=""),
    RETRY_NOTE.format(problem="", ask=""),
    ASK_ANSWER,
    ASK_CALL_OR_ANSWER,
    ASK_FOR_DATA,
)
"""What the graph itself tells the model (measured on the tune half of bench/chatops.py: the
0.5B answered with the tool result's sentences followed by "Answer my question with this
result, in plain sentences that quote the numbers answering it.")."""
_WORDS = re.compile(r"\w+")
ECHO_WORDS = 6
"""A reply that repeats this many consecutive words of the instructions copies them (measured on
the held-out half of bench/chatops.py: the 0.5B answered "공매도가 뭐야?" with the prompt's
"no tool: answer in plain sentences.")."""


def echoes_question(text: str, question: str) -> bool:
    """The reply is the user's question said back: its words, at least three, all in a row in
    the question, or the question's words (three or more) in a row making up most of a short
    reply — also with the spaces taken out (the second fresh set's tune half: "분산투자가 왜
    …" came back as "분산 투자가 …"). Measured in one long thread (bench/trimming.py): the 0.5B
    answered "내가 실행할 수 있는 전략 목록을 보여줘." with that sentence."""
    said, asked = _WORDS.findall(text.lower()), _WORDS.findall(question.lower())
    if len(said) < 3 or not asked:
        return False
    squashed, whole = "".join(said), "".join(asked)  # Korean spacing varies: "분산투자가"
    if squashed in whole or (len(squashed) <= len(whole) + 6 and whole in squashed):
        return True
    if len(squashed) <= len(whole) + 6 and SequenceMatcher(None, squashed, whole).ratio() >= 0.9:
        return True  # the question with a word left out or changed ("왜" dropped)

    def within(part: list[str], whole: list[str]) -> bool:
        n = len(part)
        return any(whole[i : i + n] == part for i in range(len(whole) - n + 1))

    return within(said, asked) or (
        len(asked) >= 3 and len(said) <= len(asked) + 3 and within(asked, said)
    )


def only_question_words(text: str, question: str, most: int = 4) -> bool:
    """A short reply made only of the question's own words says nothing (measured on the
    fourth fresh chat set's tune half: "what does exposure % mean?" answered "exposure")."""
    words = _WORDS.findall(text.lower())
    return 0 < len(words) <= most and set(words) <= set(_WORDS.findall(question.lower()))


def echoes_prompt(text: str, *prompts: str) -> bool:
    """The reply is a piece of the instructions: all of it, or `ECHO_WORDS` words in a row."""
    words = _WORDS.findall(text.lower())
    if not words:
        return False
    said = [_WORDS.findall(p.lower()) for p in prompts]
    n = min(ECHO_WORDS, len(words))
    grams = {tuple(w[i : i + n]) for w in said for i in range(len(w) - n + 1)}
    return any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1))


def answer_problem(text: str, state: State, system: str) -> tuple[str, str] | None:
    """Why `text` cannot be the answer — ("format", why), ("numbers", which) or
    ("ungrounded", why) — or None."""
    problem = reply_problem(text, _TOOLS_BY_NAME)
    if problem is not None:
        return "format", problem
    if echoes_prompt(text, system, JSON_TOOLS_PROMPT, *OUR_NOTES):
        return "format", "it repeats my instructions instead of answering"
    users = [message_text(m.content) for m in state.messages if isinstance(m, HumanMessage)]
    if users and echoes_question(text, users[-1]):  # earlier ones may be quoted ("I asked …")
        return "format", "it repeats the user's question instead of answering it"
    if users and only_question_words(text, users[-1]):
        return "format", "it only repeats words of the question"
    results = [
        message_text(m.content)
        for m in state.messages
        if isinstance(m, ToolMessage) and not _is_error(m)
    ]
    bad = unsupported_answer_numbers(text, results, [*users, system])
    if bad:
        return "numbers", "it has numbers that no tool returned: " + ", ".join(bad[:8])
    turn = state.messages[turn_start(state.messages) :]
    now = [m for m in turn if isinstance(m, ToolMessage) and not _is_error(m)]
    if not now and _TOOL_NAMED.search(text):
        return "format", "it tells me to use a tool instead of calling it"
    if now and _TOOL_NAMED.search(text) and not _TOOL_NAMED.search(users[-1]):
        return "ungrounded", "it speaks of the tool instead of giving its result"
    why = (ungrounded(text, now, users) or leaves_out_asked(text, users[-1], now)) if now else None
    return ("ungrounded", why) if why else None


_TOKENS = re.compile(r"(?<![a-z])tokens?(?![a-z])|토큰", re.IGNORECASE)
_ASKS_ID = re.compile(
    r"(?<![a-z])ids?(?![a-z])|which (?:\w+ ){0,2}(?:backtests?|bts?|runs?|one)(?![a-z])|아이디",
    re.IGNORECASE,
)
_BACKTEST_ID = re.compile(r"bt-[0-9a-f]{8,}")
_SERVICE_NAME = re.compile(
    r"(?<![a-z])("
    + "|".join(re.escape(s).replace("_", r"[\s_-]?") for s in sorted(SERVICES, key=len)[::-1])
    + r")(?![a-z])",
    re.IGNORECASE,
)
_MODEL_NAME = re.compile(
    r"(?<![\w.-])("
    + "|".join(sorted(map(re.escape, MODEL_CATALOG), key=len, reverse=True))
    + r")(?![\w.-])",
    re.IGNORECASE,
)


def leaves_out_asked(text: str, question: str, results: Sequence[ToolMessage]) -> str | None:
    """Why an answer leaves out what the question asks for and this turn's results have (a
    metric by any of its names, tokens, a backtest id, the figures of a model it names), or
    None. Measured on the second fresh chat set's tune half: "how many tokens has the strategy
    builder used?" was answered with its calls and cost only; on the third's, "which GOOG bt
    had the nastiest drawdown? id + how deep" without an id, and "what has gpt-4o cost me?"
    with the total of all models. The answer in code (the result's summary) has them all."""
    had = " ".join(message_text(m.content) for m in results if m.name not in _WORD_RESULTS)
    if not had:
        return None
    if _TOKENS.search(question) and _TOKENS.search(had) and not _TOKENS.search(text):
        return "it does not give the tokens the question asks for"
    asked = [m for m in metrics_named(question) if m in metrics_named(had)]
    missing = [m for m in asked if m not in metrics_named(text)]
    if missing:
        return "it does not give the " + ", ".join(missing) + " the question asks for"
    said = numbers_in(text)
    for m in asked:  # named is not given: "Sortino ratio is the highest return for the top 3"
        values = _metric_values([r for r in results if r.name not in _WORD_RESULTS], m)
        if values and not any(_rounds_to(a, v) for a in said for v in values):
            return f"it names the {m} but gives none of its values"
    ids = set(_BACKTEST_ID.findall(had))
    if _ASKS_ID.search(question) and ids and not ids & set(_BACKTEST_ID.findall(text)):
        return "it does not give the backtest id the question asks for"
    for pattern in (_MODEL_NAME, _SERVICE_NAME):  # "what has gpt-4o cost me", "narrative 기능"
        named = {_squashed(m) for m in pattern.findall(question)}
        named &= {_squashed(m) for m in pattern.findall(had)}
        if named - {_squashed(m) for m in pattern.findall(text)}:
            return "it does not give the figures of " + ", ".join(sorted(named)) + " it asks for"
    return None


def _squashed(name: str) -> str:
    return re.sub(r"[\s_]+", "_", name.lower())


def _metric_values(results: Sequence[ToolMessage], metric: str) -> set[Decimal]:
    """The values this turn's results give `metric`, under any of its names as a key."""
    found: set[Decimal] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict | list):
                    walk(value)
                elif metrics_named(str(key)) == [metric]:
                    found.update(numbers_in(str(value)))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for m in results:
        try:
            walk(json.loads(message_text(m.content)))
        except ValueError:
            continue
    return found


def _rounds_to(written: Decimal, value: Decimal) -> bool:
    """`written` is `value` as rounded in the text (signs aside: "a 17.5% drawdown"), and
    within 5% of it (the "3" of "the top 3" is not a Sortino of 2.63)."""
    exponent = written.as_tuple().exponent
    if not isinstance(exponent, int):
        return False
    value, written = abs(value), abs(written)
    close = abs(written - value) <= Decimal("0.05") * max(value, Decimal(1))
    return close and value.quantize(Decimal(1).scaleb(exponent)) == written


def retry_note(kind: str, problem: str, answering: bool) -> str:
    """What the model is told with its next call about the reply that was not shown."""
    if kind == "numbers":
        ask = ASK_FOR_DATA
    else:
        ask = ASK_ANSWER if answering else ASK_CALL_OR_ANSWER
        if "unknown tools" in problem:
            ask += " The tools are: " + ", ".join(_TOOLS_BY_NAME) + "."
    return RETRY_NOTE.format(problem=problem, ask=ask)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


_TURN_RESET = {
    "model_calls": 0,
    "answer_retries": 0,
    "retry_note": None,
    "model_used": None,
    "answer_source": None,
}


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
        reply = _final(BLOCKED_REPLY.format(reasons=blocked), "governance", None)
        return {**_TURN_RESET, **reply, "messages": [*updates, *reply["messages"]], "blocked": True}
    return {**_TURN_RESET, "messages": updates, "blocked": False}


def route_after_govern(state: State) -> Literal["call_model", "__end__"]:
    return "__end__" if state.blocked else "call_model"


def definition_turn(state: State) -> dict[str, Any] | None:
    """A turn that only asks what a term means is answered from the platform's definitions,
    not by the model (`agents.quant.glossary`; measured on bench/chatops.py, the 0.5B defined a
    stop-loss as stopping "the execution of a strategy"): a backtest metric through
    `explain_metric`, called here, any other term with the glossary's definition in the
    question's language; a turn that asks how two terms differ ("sharpe vs sortino?") gets both
    definitions (measured on the third fresh chat set's tune half: the 0.5B explained one). None
    when the turn asks anything else."""
    last = state.messages[-1] if state.messages else None
    if state.model_calls or not isinstance(last, HumanMessage):
        return None
    text = message_text(last.content)
    pair = compared_terms(text)
    one = definition_question(text) if pair is None else None
    terms = pair or ((one,) if one is not None else ())
    if not terms:
        return None
    earlier = state.messages[: turn_start(state.messages)]
    data = any(isinstance(m, ToolMessage) and m.name not in _WORD_RESULTS for m in earlier)
    if data and any(t.metric for t in terms) and not asks_meaning(text):
        return None  # "what is the max drawdown?" after a backtest may ask for its number
    if len(terms) == 2:  # "sharpe vs sortino?": both definitions, in code
        lang = question_language(text)
        return _final(
            "\n\n".join(f"{t.name}: {glossary_answer(t, lang)}" for t in terms), "glossary", None
        )
    term = terms[0]
    if term.metric is not None:
        call = tool_call(name="explain_metric", args={"name": term.metric}, id=_call_id())
        return {"messages": [AIMessage(content="", tool_calls=[call])]}
    return _final(glossary_answer(term, question_language(text)), "glossary", None)


def last_good_call(messages: Sequence[BaseMessage]) -> tuple[str, dict[str, Any]] | None:
    """The latest tool call in `messages` whose result was not an error: (name, arguments)."""
    good = {m.tool_call_id for m in messages if isinstance(m, ToolMessage) and not _is_error(m)}
    for m in reversed(messages):
        if isinstance(m, AIMessage):
            for c in reversed(m.tool_calls):
                if c["id"] in good:
                    return c["name"], dict(c["args"])
    return None


def last_good_result(messages: Sequence[BaseMessage]) -> str:
    """The text of the latest tool result in `messages` that was not an error ("" if none)."""
    for m in reversed(messages):
        if isinstance(m, ToolMessage) and not _is_error(m):
            return message_text(m.content)
    return ""


def read_turn(state: State) -> dict[str, Any] | None:
    """The first step of a turn whose tool call code reads for certain from the message
    (`tools.intent.read_call`: a ranking, a search, ids, spend, market data, a named strategy,
    a rule stated whole; `read_follow_up`: the previous call on another symbol or period;
    `read_pair`:
    "compare those two" after a result listing two backtests), made without
    the model; None otherwise. Only for models that write calls as text: measured on the tune
    halves of bench/chatops.py, the 0.5B compared two invented ids for "which EURUSD backtest
    has the shallowest drawdown?"."""
    last = state.messages[-1] if state.messages else None
    if state.model_calls or not isinstance(last, HumanMessage):
        return None
    start = turn_start(state.messages)
    earlier = [
        message_text(m.content) for m in state.messages[:start] if isinstance(m, HumanMessage)
    ]
    turn = message_text(last.content)
    shown = last_good_result(state.messages[:start])
    read = (
        (read_pair(turn, shown) if earlier else None)
        or read_call(turn, "\n".join(earlier))
        or read_follow_up(turn, last_good_call(state.messages[:start]))
    )
    if read is None:
        return None
    log.info(
        "chatops_advanced: call read from the message (%s): %s %s", read.why, read.name, read.args
    )
    call = tool_call(name=read.name, args=read.args, id=_call_id())
    made = AIMessage(content="", tool_calls=[call], response_metadata={READ_FROM_MESSAGE: True})
    return {"messages": [made]}


def read_call_failed(state: State) -> dict[str, Any] | None:
    """The answer to a turn whose call code read from the message failed: the tool's reason
    (an id the user has no backtest for, a symbol or period with no data), not a call the
    model makes instead. The arguments were the user's own, so another call could only answer
    another question (measured on the third fresh chat set's tune half: for a backtest id that
    does not exist, the 0.5B listed the top five by Sharpe)."""
    turn = state.messages[turn_start(state.messages) :]
    if len(turn) < 3 or not _is_error(turn[-1]):
        return None
    made = turn[-2]
    if not isinstance(made, AIMessage) or not made.response_metadata.get(READ_FROM_MESSAGE):
        return None
    return fallback_answer(state, state.model_used)


def call_model(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """One model step: native tool calls, or JSON in text parsed into tool calls; then the
    reply is judged (`judge_reply`). A turn that only asks for a definition gets it in code
    (`definition_turn`)."""
    defined = definition_turn(state) or read_call_failed(state)
    if defined is not None:
        return defined
    ctx = runtime.context
    overrides: dict[str, Any] = {"max_tokens": ctx.max_tokens, "temperature": 0}
    chat = create_chat_model_with_fallback(SERVICE, ctx.model, user_id=ctx.user_id, **overrides)
    mode = tool_calling_mode(chat, SERVICE, ctx.model)
    read = read_turn(state) if mode == "json_text" and ctx.read_calls else None
    if read is not None:
        return read
    base_system = ctx.system_prompt.format(time=datetime.now(UTC).strftime("%Y-%m-%d (UTC)"))
    last = state.messages[-1] if state.messages else None
    # A json_text model that has a tool result answers without the tools: measured, the 0.5B
    # model otherwise echoes the result back as another call and never answers.
    answering = mode == "json_text" and isinstance(last, ToolMessage) and not _is_error(last)
    system = base_system
    if mode == "json_text" and not answering:
        system += JSON_TOOLS_PROMPT.format(tools=describe_tools(TOOLS))
    budget = history_budget(ctx, system, state.messages)
    if state.retry_note and mode != "native":
        # A retry of a text-mode model sees only the current turn: in one long thread the 0.5B
        # repeated a question or answered an earlier one (bench/trimming.py).
        budget = min(budget, message_tokens(state.messages[turn_start(state.messages) :]))
    history = fit_history(state.messages, budget)
    system += earlier_note(state.messages, history)
    if mode != "native":
        history = as_plain_history(history)
    if state.retry_note:
        history.append(HumanMessage(state.retry_note))
    prompt = [SystemMessage(system), *history]
    reply = chat.bind_tools(TOOLS).invoke(prompt) if mode == "native" else chat.invoke(prompt)
    assert isinstance(reply, AIMessage)
    if mode == "json_text" and not answering:
        text = message_text(reply.content)
        reply = repair_text_calls(with_text_tool_calls(reply, list(_TOOLS_BY_NAME)), text)
    elif mode != "native":
        reply = reply.model_copy(update={"tool_calls": []})
    return judge_reply(state, ctx, reply, base_system, answering)


def judge_reply(
    state: State, ctx: Context, reply: AIMessage, system: str, answering: bool
) -> dict[str, Any]:
    """Run the reply's tool calls, show it as the answer, send it back, or answer in code."""
    steps = state.model_calls + 1
    model = served_by(reply) or state.model_used
    base: dict[str, Any] = {"model_calls": steps, "model_used": model, "retry_note": None}
    if reply.tool_calls:
        reply, refused = grounded(reply, state)
        if repeats_a_failed_call(reply, state):
            log.info("chatops_advanced: a failed call repeated: %.300r", reply.tool_calls)
            return {**base, **fallback_answer(state, model)}
        if steps < ctx.max_steps:
            return {**base, "messages": [reply, *(refused or unfaithful_spec(reply, state))]}
        return {**base, **fallback_answer(state, model, step_limit=ctx.max_steps)}
    reply = complete_part(unwrap_json_answer(reply))  # the 0.5B often answers {"result": "..."}
    text = message_text(reply.content)
    verdict = answer_problem(text, state, system)
    if verdict is None:
        return {**base, **_final(reply, "model", model)}
    kind, problem = verdict
    log.info("chatops_advanced: reply not shown (%s): %.300r", problem, text)
    turn = state.messages[turn_start(state.messages) :]
    has_result = any(isinstance(m, ToolMessage) and not _is_error(m) for m in turn)
    can_retry = steps < ctx.max_steps and state.answer_retries < ctx.answer_retries
    if has_result and (not text.strip() or echoes_prompt(text, *OUR_NOTES)):
        can_retry = False  # measured: asked again, the 0.5B answered with our note, quoted
    if can_retry and not (kind in ("numbers", "ungrounded") and has_result):
        note = retry_note(kind, problem, answering)
        return {**base, "retry_note": note, "answer_retries": state.answer_retries + 1}
    return {**base, **fallback_answer(state, model)}


def route_model_output(state: State) -> Literal["tools", "call_model", "__end__"]:
    """Run the tools the model asked for; ask again after a reply that was not shown; else the
    turn is over."""
    if state.retry_note:
        return "call_model"
    last = state.messages[-1] if state.messages else None
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    if isinstance(last, ToolMessage):  # a call answered before it ran (`unfaithful_spec`)
        return "call_model"
    return "__end__"


# --------------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------------

builder = StateGraph(
    State, context_schema=Context, input_schema=InputState, output_schema=OutputState
)
builder.add_node(govern)
builder.add_node(call_model)
builder.add_node("tools", ToolNode(TOOLS, handle_tool_errors=tool_error))
builder.add_edge(START, "govern")
builder.add_conditional_edges("govern", route_after_govern)
builder.add_conditional_edges("call_model", route_model_output)
builder.add_edge("tools", "call_model")
graph = builder.compile(name=SERVICE)


# --------------------------------------------------------------------------------------------
# Memory: a durable checkpointer, and the entry point with memory
# --------------------------------------------------------------------------------------------

MEMORY_FILE = "chat_memory.sqlite3"


def memory_location(settings: Settings | None = None) -> str:
    """Where threads persist: `DATABASE_URL` when it is Postgres (as a libpq URL), else a
    SQLite file under the data dir."""
    s = settings or get_settings()
    url = s.database_url or ""
    if re.match(r"^postgres(?:ql)?(?:\+\w+)?://", url):
        return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)
    return str(s.resolved_data_dir / MEMORY_FILE)


def _open_saver(where: str) -> BaseCheckpointSaver[Any]:
    saver: BaseCheckpointSaver[Any]
    if where.startswith("postgresql://"):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # the `postgres` extra is not installed
            raise RuntimeError(
                "DATABASE_URL is Postgres, so chat memory is kept there: install "
                "quant-genai[postgres] (langgraph-checkpoint-postgres, psycopg, psycopg-pool)"
            ) from exc

        pool: ConnectionPool[Any] = ConnectionPool(
            where,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            min_size=1,
            max_size=4,
            open=True,
        )
        saver = PostgresSaver(pool)
        _setup_racing_other_workers(saver)
        return saver
    Path(where).parent.mkdir(parents=True, exist_ok=True)
    # One connection shared by threads (SqliteSaver serialises them with its lock); other
    # processes wait for the write lock up to `timeout` seconds (WAL: readers never wait).
    saver = SqliteSaver(sqlite3.connect(where, check_same_thread=False, timeout=30))
    saver.setup()
    return saver


def _setup_racing_other_workers(saver: Any, attempts: int = 6) -> None:
    """`PostgresSaver.setup()`, retried: every worker's first chat sets the tables up, and two
    at once on a fresh database collide in Postgres' catalog (`CREATE ... IF NOT EXISTS` is not
    atomic: UniqueViolation on pg_type) or on the migrations table. Each retry resumes from the
    migrations the other finished. (An advisory lock around it deadlocks: the migrations'
    `CREATE INDEX CONCURRENTLY` waits for the waiting session.)"""
    import time

    from psycopg import errors

    for attempt in range(attempts):
        try:
            saver.setup()
            return
        except (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateObject):
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def _close_saver(saver: BaseCheckpointSaver[Any]) -> None:
    conn = getattr(saver, "conn", None)
    close = getattr(conn, "close", None)
    if callable(close):
        close()


_savers: ProcessCache[str, BaseCheckpointSaver[Any]] = ProcessCache(
    "chat memory checkpointers", on_evict=_close_saver
)


def durable_checkpointer(settings: Settings | None = None) -> BaseCheckpointSaver[Any]:
    """The process's checkpointer for chat threads at `memory_location` (one per location).
    Synchronous savers: use `graph_with_memory(<an async saver>)` for `ainvoke`/`astream`."""
    where = memory_location(settings)
    return _savers.get(where, lambda: _open_saver(where))


# Keyed by the saver's id; the entry keeps the saver alive, so the id cannot be reused.
_compiled: ProcessCache[
    int, tuple[BaseCheckpointSaver[Any], CompiledStateGraph[Any, Any, Any, Any]]
] = ProcessCache("chatops graphs with memory")


def graph_with_memory(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The chat-ops graph compiled with a checkpointer (default: `durable_checkpointer()`)."""
    saver = checkpointer or durable_checkpointer()
    return _compiled.get(
        id(saver), lambda: (saver, builder.compile(checkpointer=saver, name=SERVICE))
    )[1]


def thread_config(user_id: str, thread_id: str) -> RunnableConfig:
    """Checkpoint config of a user's thread; the user is part of the key (no cross-user reads)."""
    return RunnableConfig(configurable={"thread_id": f"{user_id}:{thread_id}"})


@dataclass(frozen=True)
class ChatReply:
    """One turn's answer and who gave it."""

    text: str
    model_used: str | None
    answer_source: str | None


def chat_turn(
    message: str,
    *,
    user_id: str,
    thread_id: str,
    model: str | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    max_steps: int | None = None,
    max_tokens: int | None = None,
    history_tokens: int | None = None,
    read_calls: bool | None = None,
) -> ChatReply:
    """One turn of a conversation that remembers earlier turns of the same thread; a knob left
    None keeps its `Context` default."""
    knobs: dict[str, Any] = {
        "max_steps": max_steps,
        "max_tokens": max_tokens,
        "history_tokens": history_tokens,
        "read_calls": read_calls,
    }
    ctx = Context(user_id=user_id, model=model, **{k: v for k, v in knobs.items() if v is not None})
    out = graph_with_memory(checkpointer).invoke(
        {"messages": [HumanMessage(message)]},
        config=thread_config(user_id, thread_id),
        context=ctx,
    )
    text = message_text(out["messages"][-1].content)
    return ChatReply(text, out.get("model_used"), out.get("answer_source"))


def chat(message: str, **kwargs: Any) -> str:
    """One turn of a conversation that remembers earlier turns of the same thread: the text
    (the keyword arguments are `chat_turn`'s)."""
    return chat_turn(message, **kwargs).text


__all__ = [
    "CHATOPS_SYSTEM",
    "ChatReply",
    "Context",
    "InputState",
    "OutputState",
    "State",
    "chat",
    "chat_turn",
    "durable_checkpointer",
    "fit_history",
    "graph",
    "graph_with_memory",
    "memory_location",
    "thread_config",
]
