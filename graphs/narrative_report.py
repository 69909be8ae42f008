"""narrative_report: a prose report of one backtest whose every number is computed in code.

The model narrates the report one section at a time (`narration.SECTIONS`: setup, benchmark,
risk, trading, caveat), each from that section's facts with their meaning computed in code
(`agents.quant.report_template.brief`: "beat buy-and-hold by 160.2 percentage points", "a
moderate peak-to-trough loss"). Its tokens go through a `ReportWriter`: each finished sentence
is checked (`FactSheet`: every number next to its own metric, no wrong beat/lagged claim, no
praise or guarantee no fact supports, about its own section) and only then emitted. A section
the model left wholly uncovered is asked once more (`max_attempts`); what is still missing
comes from the template (`report_template.filler`: the facts a section lacks, or its template
sentence), so every report covers every section, in order, whatever the model wrote.

**Streaming: show `stream_mode="custom"`.** The narrate and fallback nodes emit one event per
accepted sentence, `{"text", "source": "model" | "template" | "notice", "section"}`; the final
`report` is exactly the concatenation of the events' `text`. The model's own tokens are not a
user-facing stream: the model runs with LangGraph's `nostream` tag, so `stream_mode="messages"`
does not carry them either (traces still record the raw drafts, and `updates` shows `draft`).
An equity-curve PNG is drawn on request.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, cast

from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langgraph.config import get_stream_writer
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import TypeAdapter

from agents.context import Context as BaseContext
from agents.governance.gate import blocked_reasons, gate
from agents.governance.pii import mask_output
from agents.llm.catalog import validate_model
from agents.llm.factory import create_chat_model_with_fallback, model_used, route_used
from agents.quant.backtests import BacktestResult, backtest_facts
from agents.quant.narration import (
    SECTIONS,
    FactSheet,
    covers,
    cut_sentences,
    extend_facts,
    unsupported_numbers,
)
from agents.quant.report_template import NARRATIVE_SYSTEM, TASKS, brief, template_report
from agents.quant.report_writer import Piece, ReportWriter, is_prose
from agents.rag.store import get_retriever
from agents.usage.limits import count_tokens

__all__ = [
    "PROMPT_OVERHEAD_TOKENS",
    "SERVICE",
    "BacktestNotFoundError",
    "Context",
    "InputState",
    "OutputState",
    "Piece",
    "ReportWriter",
    "allowed_numbers",
    "draft_problems",
    "equity_chart_png",
    "graph",
    "is_prose",
    "template_report",
    "unsupported_numbers",
    "write_report",
]

SERVICE = "narrative_report"

NARRATIVE_USER = "Facts:\n{facts}\n\n{request}Write {task}."
RETRY_NOTE = "\n\nYour last answer was rejected ({problems}). Write it again from the facts."
BLOCKED_REPORT = "This request was blocked by prompt governance: {reasons}."
FACTS_TOKENS = 160
"""Tokens the facts of one section take at most (labels, numbers, parameters, meanings)."""
PROBLEMS_CHARS = 300
"""The retry note names at most this much of the earlier problems (a fixed prompt budget)."""
PROMPT_OVERHEAD_TOKENS = (
    count_tokens(NARRATIVE_SYSTEM)
    + count_tokens(NARRATIVE_USER + RETRY_NOTE)
    + max(count_tokens(t) for t in TASKS.values())
    + FACTS_TOKENS
    + PROBLEMS_CHARS // 2  # at least two characters per token
    + 16  # message framing
)
"""Tokens of the fixed prompt around the user's focus text (REST checks the context window)."""

log = logging.getLogger(__name__)


class BacktestNotFoundError(LookupError):
    """The requested backtest id is not in the user's store."""


@dataclass(kw_only=True)
class Context(BaseContext):
    """Knobs of the narrative report."""

    max_attempts: int = field(
        default=2,
        metadata={
            "description": "Model drafts per section: the first, then a retry for a section its "
            "prose left wholly uncovered; the template fills the rest. 0: template report only, "
            "no model call."
        },
    )
    max_tokens: int = field(
        default=64, metadata={"description": "Output token cap for each section's draft."}
    )


@dataclass(kw_only=True)
class InputState:
    """A backtest (inline) or its id in the user's store, plus an optional focus."""

    backtest: BacktestResult | dict[str, Any] | None = field(
        default=None,
        metadata={"description": "The backtest to report on, inline (or give backtest_id)."},
    )
    backtest_id: str | None = field(
        default=None,
        metadata={"description": "Id of a backtest in the caller's own store (or backtest)."},
    )
    request: str = field(
        default="",
        metadata={"description": "Optional focus for the report; screened by prompt governance."},
    )
    chart: bool = field(
        default=False, metadata={"description": "Also draw the equity curve as a PNG."}
    )


@dataclass(kw_only=True)
class OutputState:
    """The report and how it was made."""

    report: str = field(
        default="",
        metadata={
            "description": "The report: checked model sentences and template sentences; exactly "
            "the concatenation of the custom stream's `text` events."
        },
    )
    faithful: bool = field(
        default=False,
        metadata={"description": "Every sentence passed the number check (false if blocked)."},
    )
    used_fallback: bool = field(
        default=False,
        metadata={"description": "No model sentence survived: the report is the template."},
    )
    blocked: bool = field(
        default=False, metadata={"description": "Prompt governance blocked the request."}
    )
    rejected_numbers: list[str] = field(
        default_factory=list,
        metadata={"description": "Numbers of the model's drafts that the check rejected."},
    )
    rejected_sentences: list[str] = field(
        default_factory=list,
        metadata={"description": "Model sentences that were rejected and never shown."},
    )
    model_sentences: int = field(
        default=0, metadata={"description": "Sentences of the report written by the model."}
    )
    template_sentences: int = field(
        default=0,
        metadata={
            "description": "Template passages in the report: replacements of rejected sentences "
            "and sections the model left out."
        },
    )
    metrics: dict[str, str] = field(
        default_factory=dict,
        metadata={"description": "The facts the report may cite, as formatted (labels: text)."},
    )
    chart_png: str | None = field(
        default=None, metadata={"description": "Base64 PNG of the equity curve, if asked for."}
    )
    chart_error: str | None = field(
        default=None,
        metadata={
            "description": "Why the equity chart asked for could not be drawn (the report "
            "stands without it); None when it was drawn or not asked for."
        },
    )
    model_used: str | None = field(
        default=None, metadata={"description": "Catalog id of the model that answered last."}
    )
    served_by: str | None = field(
        default=None,
        metadata={"description": "What served that model: route and served model name."},
    )
    backtest_id: str | None = field(
        default=None, metadata={"description": "Id of the backtest reported on."}
    )


@dataclass(kw_only=True)
class State(InputState, OutputState):
    masked_request: str = ""
    draft: str = ""
    section: int = 0  # index of the section being written (`SECTIONS`)


# --------------------------------------------------------------------------------------------
# The checks the bench and tests call (the sentence filter: agents.quant.report_writer)
# --------------------------------------------------------------------------------------------


def allowed_numbers(facts: dict[str, str], extra_text: str = "") -> FactSheet:
    """The facts (and the user's request) parsed for `unsupported_numbers(prose, sheet)`."""
    return FactSheet(facts, extra_text)


def draft_problems(
    draft: str, facts: dict[str, str], request: str = "", truncated: bool = False
) -> list[str]:
    """Why a whole draft cannot be the report as it is (empty list: it can)."""
    if not draft.strip():
        return ["the draft is empty"]
    sheet = FactSheet(facts, request)
    done, rest = cut_sentences(draft)
    problems = [p for s in [*done, rest] if s.strip() for p in sheet.sentence_problems(s)[1]]
    if missing := covers(draft, sheet):
        problems.append("it leaves out: " + "; ".join(SECTIONS[s] for s in missing))
    if truncated:
        problems.append("it was cut off at the token limit")
    return problems


def equity_chart_png(r: BacktestResult) -> bytes:
    """The compact equity curve as a PNG (matplotlib, headless)."""
    import matplotlib  # ~0.5 s to import: only when a chart is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    try:
        dates = [datetime(p.date.year, p.date.month, p.date.day) for p in r.equity_curve]
        ax.plot(dates, [p.equity for p in r.equity_curve], color="#1f77b4")  # type: ignore[arg-type]
        ax.axhline(r.initial_cash, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(f"{r.strategy_name} on {r.symbol}: equity")
        ax.set_ylabel("equity ($)")
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


def govern(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Prompt governance first: only masked text reaches the model."""
    report = gate(state.request)
    if report.verdict == "block":
        text = BLOCKED_REPORT.format(reasons=blocked_reasons(report))
        get_stream_writer()(Piece(text, "notice").event())
        return {"blocked": True, "report": text}
    return {"masked_request": report.masked_text}


def route_after_governance(state: State) -> Literal["load", "respond"]:
    return "respond" if state.blocked else "load"


def load(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The backtest, inline or from the user's store (never another user's)."""
    if state.backtest is not None:
        result = BacktestResult.model_validate(state.backtest)
    elif state.backtest_id:
        found = get_retriever().get_backtest(runtime.context.user_id, state.backtest_id)
        if found is None:
            raise BacktestNotFoundError(
                f"no backtest {state.backtest_id!r} for user {runtime.context.user_id!r}"
            )
        result = found
    else:
        raise ValueError("give either `backtest` (a BacktestResult) or `backtest_id`")
    return {
        "backtest": result,
        "backtest_id": result.id,
        "metrics": extend_facts(backtest_facts(result)),
    }


def route_after_load(state: State, runtime: Runtime[Context]) -> Literal["narrate", "fallback"]:
    return "narrate" if runtime.context.max_attempts > 0 else "fallback"


def _prompt(state: State, section: str, problems: list[str]) -> list[SystemMessage | HumanMessage]:
    """One section's facts (with their meaning) and task; a retry names what was rejected."""
    lines, task = brief(section, state.metrics)
    facts = "\n".join(f"- {line}" for line in lines)
    request = f"The reader's focus: {state.masked_request}\n\n" if state.masked_request else ""
    prompt = NARRATIVE_USER.format(facts=facts, request=request, task=task)
    if problems:
        prompt += RETRY_NOTE.format(problems="; ".join(dict.fromkeys(problems))[:PROBLEMS_CHARS])
    return [SystemMessage(NARRATIVE_SYSTEM), HumanMessage(prompt)]


def _served_by(reply: AIMessageChunk | None) -> str | None:
    """`local: qwen2.5-coder-0.5b-instruct`: the route and the name the server answered with."""
    meta = reply.response_metadata if reply is not None else {}
    route, name = route_used(reply) if reply is not None else None, meta.get("model_name")
    return f"{route}: {name}" if route and name else None


def narrate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The current section: model drafts streamed through the sentence filter (only accepted
    sentences reach the custom stream) until it is covered or partly covered, or the drafts run
    out; then the template completes or writes it."""
    ctx = runtime.context
    section = list(SECTIONS)[state.section]
    model = create_chat_model_with_fallback(
        SERVICE, ctx.model, user_id=ctx.user_id, max_tokens=ctx.max_tokens
    )
    writer = ReportWriter(
        FactSheet(state.metrics, state.masked_request, strict=True), section, state.report
    )
    emit = get_stream_writer()
    drafts: list[str] = []
    reply: AIMessageChunk | None = None
    for _ in range(ctx.max_attempts):
        reply = None
        for chunk in model.stream(_prompt(state, section, writer.problems), config=_NOSTREAM):
            reply = cast(AIMessageChunk, chunk if reply is None else reply + chunk)
            for piece in writer.feed(chunk.text):
                emit(_shown(piece))
        meta = reply.response_metadata if reply is not None else {}
        for piece in writer.finish(meta.get("finish_reason") == "length"):
            emit(_shown(piece))
        drafts.append(reply.text if reply is not None else "")
        if writer.covered() or writer.partly():
            break
    for piece in writer.fill():
        emit(_shown(piece))
    model_sentences = state.model_sentences + writer.model_sentences
    return {
        "report": writer.report,
        "faithful": True,
        "draft": "\n\n".join(drafts),
        "section": state.section + 1,
        "model_used": (model_used(reply) if reply is not None else None)
        or state.model_used
        or ctx.model,
        "served_by": _served_by(reply) or state.served_by,
        "rejected_sentences": list(dict.fromkeys(state.rejected_sentences + writer.rejected)),
        "rejected_numbers": state.rejected_numbers + writer.rejected_numbers,
        "model_sentences": model_sentences,
        "template_sentences": state.template_sentences + writer.template_sentences,
        "used_fallback": model_sentences == 0,
    }


_NOSTREAM: Any = {"tags": [TAG_NOSTREAM]}


def route_after_narrate(state: State) -> Literal["chart", "narrate"]:
    return "narrate" if state.section < len(SECTIONS) else "chart"


def fallback(state: State) -> dict[str, Any]:
    """No model drafts: the template report, section by section."""
    sheet = FactSheet(state.metrics, state.masked_request, strict=True)
    emit, report = get_stream_writer(), state.report
    for section in SECTIONS:
        writer = ReportWriter(sheet, section, report)
        for piece in writer.fill():
            emit(_shown(piece))
        report = writer.report
    return {
        "report": report,
        "faithful": True,
        "used_fallback": True,
        "template_sentences": len(SECTIONS),
    }


def chart(state: State) -> dict[str, Any]:
    if not state.chart or state.backtest is None:
        return {}
    result = BacktestResult.model_validate(state.backtest)
    try:
        png = equity_chart_png(result)
    except Exception as exc:  # matplotlib refuses some dates, amounts and TeX in names
        why = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")[:200]
        log.warning("equity chart of %s not drawn: %s: %s", result.id, type(exc).__name__, why)
        return {"chart_error": f"the equity chart cannot be drawn ({type(exc).__name__}: {why})"}
    return {"chart_png": base64.b64encode(png).decode("ascii")}


def _shown(piece: Piece) -> dict[str, Any]:
    """A passage's stream event, its text masked (`mask_output`: a model may echo or invent
    personal data; nothing unmasked leaves the process)."""
    return {**piece.event(), "text": mask_output(piece.text)[0]}


def respond(state: State) -> dict[str, Any]:
    """Every output field, on every path (LangGraph returns only channels that were written),
    the report and the rejected model sentences masked like the stream."""
    out = {f.name: getattr(state, f.name) for f in fields(OutputState)}
    out["report"] = mask_output(state.report)[0]
    out["rejected_sentences"] = [mask_output(s)[0] for s in state.rejected_sentences]
    return out


# --------------------------------------------------------------------------------------------
# Service function
# --------------------------------------------------------------------------------------------

_RESULT: TypeAdapter[OutputState] = TypeAdapter(OutputState)


def write_report(
    backtest: BacktestResult | dict[str, Any] | None = None,
    *,
    user_id: str,
    backtest_id: str | None = None,
    request: str = "",
    chart: bool = False,
    model: str | None = None,
    max_tokens: int = 64,
    max_attempts: int = 2,
) -> OutputState:
    """Run the graph for one backtest (inline, or by id from the user's store)."""
    validate_model(SERVICE, model)  # a model the policy forbids raises before any work
    ctx = Context(user_id=user_id, model=model, max_tokens=max_tokens, max_attempts=max_attempts)
    inp = InputState(backtest=backtest, backtest_id=backtest_id, request=request, chart=chart)
    return _RESULT.validate_python(graph.invoke(inp, context=ctx))


# --------------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------------

builder = StateGraph(
    State, context_schema=Context, input_schema=InputState, output_schema=OutputState
)
builder.add_node(govern)
builder.add_node(load)
builder.add_node(narrate)
builder.add_node(fallback)
builder.add_node(chart)
builder.add_node(respond)
builder.add_edge(START, "govern")
builder.add_conditional_edges("govern", route_after_governance)
builder.add_conditional_edges("load", route_after_load)
builder.add_conditional_edges("narrate", route_after_narrate)
builder.add_edge("fallback", "chart")
builder.add_edge("chart", "respond")
builder.add_edge("respond", END)
graph = builder.compile(name=SERVICE)
