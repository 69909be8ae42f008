"""narrative_report: a prose report of one backtest whose every number is computed in code.

The model narrates facts it is handed (`backtest_facts` plus the excess over buy-and-hold and
the period's length, `agents.quant.narration`). Its tokens go through a `ReportWriter`: each
finished sentence is checked (`FactSheet`: every number next to its own metric, no wrong
beat/lagged claim) and only then emitted; a rejected sentence is replaced by the template
sentence of its section, while that section is uncovered. A draft that leaves sections out is
retried for those sections only (`max_attempts`), then the template fills what is still missing
(`agents.quant.narration.template_report`: a full report on its own).

**Streaming: show `stream_mode="custom"`.** The narrate and fallback nodes emit one event per
accepted sentence, `{"text", "source": "model" | "template" | "notice", "section"}`; the final
`report` is exactly the concatenation of the events' `text`. The model's own tokens are not a
user-facing stream: the model runs with LangGraph's `nostream` tag, so `stream_mode="messages"`
does not carry them either (traces still record the raw draft, and `updates` shows `draft`).
An equity-curve PNG is drawn on request.
"""

from __future__ import annotations

import base64
import io
import re
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
from agents.llm.catalog import validate_model
from agents.llm.factory import create_chat_model_with_fallback, model_used
from agents.quant.backtests import BacktestResult, backtest_facts
from agents.quant.narration import (
    SECTIONS,
    FactSheet,
    covers,
    cut_sentences,
    extend_facts,
    template_report,
    template_sections,
    unsupported_numbers,
)
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

NARRATIVE_SYSTEM = (
    "You write short, factual reports on trading backtests for quant developers. "
    "Use ONLY the numbers given in the facts, copied exactly as written, each right next to "
    "its own label (for example 'a Sharpe ratio of 0.79' or 'a max drawdown of -30.5%'). "
    "Never compute, estimate or invent any other number, date or comparison. "
    "Write one paragraph of full sentences in plain prose: no markdown, lists, headings, "
    "formulas, 'label: value' lines or greetings."
)
NARRATIVE_USER = (
    "Facts:\n{facts}\n\n{request}Write {count} sentences covering, in this order:\n{parts}"
)
RETRY_NOTE = (
    "\n\nThe report so far covers everything else. {problems}Write only these sentences now."
)
SECTION_PROMPTS: dict[str, str] = {
    "setup": "the strategy, its parameters, the symbol and the period",
    "benchmark": "the total return against the buy-and-hold return: say whether it beat or "
    "lagged buy-and-hold and by how many percentage points",
    "risk": "the max drawdown and the Sharpe ratio",
    "trading": "the number of trades, the win rate and the exposure",
    "caveat": "one caveat: past performance, trading costs, a single symbol or few trades",
}
"""What the model is asked to write for each of `narration.SECTIONS`."""
BLOCKED_REPORT = "This request was blocked by prompt governance: {reasons}."
FACTS_TOKENS = 320
"""Tokens the formatted facts of one backtest take at most (labels, numbers, parameters)."""
PROBLEMS_CHARS = 400
"""The retry note names at most this much of the earlier problems (a fixed prompt budget)."""
PROMPT_OVERHEAD_TOKENS = (
    count_tokens(NARRATIVE_SYSTEM)
    + count_tokens(NARRATIVE_USER + RETRY_NOTE)
    + count_tokens("\n".join(SECTION_PROMPTS.values()))
    + FACTS_TOKENS
    + PROBLEMS_CHARS // 2  # at least two characters per token
    + 16  # message framing
)
"""Tokens of the fixed prompt around the user's focus text (REST checks the context window)."""
_CHATTER = re.compile(
    r"^(?:(?:sure|certainly|of course|okay)\b[^:]*:|(?:here(?:'s| is| are)|below is)[^:]*:)\s*",
    re.I,
)
_NOT_PROSE = re.compile(r"^(?:sure|certainly|okay|i hope|let me know|feel free)\b|:$", re.I)
_LABEL_LINE = re.compile(r"^[\w\s'&/()-]{1,40}:\s|[\\|{}]")  # "Total return: 154.5%", LaTeX
FILLERS = {
    "trades": "Its trade count was {trades}.",
    "win rate": "Its win rate was {win rate}.",
    "exposure": "It was in the market {exposure} of the time.",
    "max drawdown": "Its max drawdown was {max drawdown}.",
    "Sharpe ratio": "Its Sharpe ratio was {Sharpe ratio}.",
}
"""One fact a section still lacks, where the model's prose covered the rest of that section."""
_SECTION_FACTS = {
    "risk": ("max drawdown", "Sharpe ratio"),
    "trading": ("trades", "win rate", "exposure"),
}


class BacktestNotFoundError(LookupError):
    """The requested backtest id is not in the user's store."""


@dataclass(kw_only=True)
class Context(BaseContext):
    """Knobs of the narrative report."""

    max_attempts: int = field(
        default=2,
        metadata={
            "description": "Model drafts: the first, then retries for sections still missing; "
            "the template fills the rest. 0: template report only, no model call."
        },
    )
    max_tokens: int = field(
        default=256, metadata={"description": "Output token cap for each draft."}
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
    model_used: str | None = field(
        default=None, metadata={"description": "Catalog id of the model that answered last."}
    )
    backtest_id: str | None = field(
        default=None, metadata={"description": "Id of the backtest reported on."}
    )


@dataclass(kw_only=True)
class State(InputState, OutputState):
    masked_request: str = ""
    draft: str = ""
    draft_truncated: bool = False
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    template_used: list[str] = field(default_factory=list)
    attempts: int = 0


# --------------------------------------------------------------------------------------------
# The sentence filter, the checks the bench and tests call
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One emitted passage; `text` carries its leading separator."""

    text: str
    source: Literal["model", "template", "notice"]
    section: str | None = None

    def event(self) -> dict[str, Any]:
        """The custom-stream event of this passage."""
        return {"text": self.text, "source": self.source, "section": self.section}


@dataclass
class ReportWriter:
    """Model tokens in, accepted sentences out. `feed` emits each finished sentence that passes
    the check; a rejected one is replaced by its section's template sentence (once, and only
    while the section is uncovered); chatter and repeats are dropped; `fill` adds the template
    sentences of every section still missing. `report` may start non-empty: a retry continues
    the report already shown."""

    sheet: FactSheet
    report: str = ""
    template_used: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    rejected_numbers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    model_sentences: int = 0
    wanted: list[str] | None = None
    """On a retry: the sections asked for; prose about the others is dropped as repetition."""
    _rest: str = ""

    def __post_init__(self) -> None:
        self._template = template_sections(self.sheet.facts)

    def missing(self) -> list[str]:
        return covers(self.report, self.sheet)

    def feed(self, chunk: str) -> list[Piece]:
        done, self._rest = cut_sentences(self._rest + chunk)
        return [piece for sentence in done for piece in self._take(sentence)]

    def finish(self, truncated: bool = False) -> list[Piece]:
        """The last sentence: checked, or rejected when the draft was cut off mid-sentence."""
        rest, self._rest = self._rest.strip(), ""
        if rest and truncated:
            return self._reject(rest, ["it was cut off at the token limit"], [])
        return self._take(rest) if rest else []

    def fill(self) -> list[Piece]:
        """Template text for every section still missing, in section order: the facts a
        section lacks where prose covered part of it, else its template sentence."""
        out = [self._emit(self._replacement(s), "template", s) for s in self._lacking()]
        return out + [self._emit(self._template[s], "template", s) for s in self._lacking()]

    def _lacking(self) -> list[str]:
        return [s for s in SECTIONS if s in self.missing()]

    def _replacement(self, section: str) -> str:
        cited = {c.fact for c in self.sheet.check(self.report) if c.ok}
        facts = _SECTION_FACTS.get(section, ())
        lacking = [k for k in facts if k not in cited and self.sheet.values[k].value is not None]
        if 0 < len(lacking) < len(facts):
            return " ".join(FILLERS[k].format(**self.sheet.facts) for k in lacking)
        return self._template[section]

    def _take(self, raw: str) -> list[Piece]:
        sentence = re.sub(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+|[*#`]+", "", raw).strip()
        sentence = _CHATTER.sub("", sentence).strip()
        if not sentence or _NOT_PROSE.search(sentence) or sentence in self.report:
            return []
        if not is_prose(sentence) or _echoes_instructions(sentence):
            return self._reject(sentence, [f"{sentence[:40]!r} is not a sentence of prose"], [])
        checks, problems = self.sheet.sentence_problems(sentence)
        if problems:
            return self._reject(sentence, problems, [c.text for c in checks if not c.ok])
        section = self.sheet.section_of(sentence)
        if self.wanted is not None and section not in self.wanted:
            return []
        self.model_sentences += 1
        return [self._emit(sentence, "model", section)]

    def _reject(self, sentence: str, problems: list[str], numbers: list[str]) -> list[Piece]:
        self.rejected.append(sentence)
        self.rejected_numbers += numbers
        self.problems += problems
        section = self.sheet.section_of(sentence)
        if section and section not in self.template_used and section in self.missing():
            return [self._emit(self._replacement(section), "template", section)]
        return []

    def _emit(self, text: str, source: Literal["model", "template"], section: str | None) -> Piece:
        if source == "template" and section:
            self.template_used.append(section)
        piece = Piece((" " if self.report else "") + text, source, section)
        self.report += piece.text
        return piece


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z가-힣]+", text.lower()))


_INSTRUCTIONS = _words(" ".join([NARRATIVE_SYSTEM, *SECTION_PROMPTS.values()]))


def _echoes_instructions(sentence: str) -> bool:
    """Five words or more copied from the instructions are no report."""
    words = _words(sentence)
    return len(words.split()) >= 5 and words in _INSTRUCTIONS


def is_prose(sentence: str) -> bool:
    """A sentence, not a heading, "label: value" line or formula: it ends with . ! or ? and has
    at least three words."""
    words = re.findall(r"[A-Za-z가-힣]+", sentence)
    return (
        sentence[-1:] in (".", "!", "?", "。")
        and len(words) >= 3
        and not _LABEL_LINE.search(sentence)
    )


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


def _prompt(state: State) -> list[SystemMessage | HumanMessage]:
    """The first draft asks for every section; a retry only for those still missing."""
    facts = "\n".join(f"- {k}: {v}" for k, v in state.metrics.items())
    request = f"Focus: {state.masked_request}\n\n" if state.masked_request.strip() else ""
    wanted = state.missing if state.attempts else list(SECTIONS)
    parts = "\n".join(f"{i}. {SECTION_PROMPTS[s]}." for i, s in enumerate(wanted, 1))
    count = f"{len(wanted)} to {len(wanted) + 2}" if state.attempts else "5 to 7"
    prompt = NARRATIVE_USER.format(facts=facts, request=request, count=count, parts=parts)
    if state.attempts:
        said = "; ".join(dict.fromkeys(state.problems))[:PROBLEMS_CHARS]
        problems = f"Earlier sentences were rejected ({said}). " if said else ""
        prompt += RETRY_NOTE.format(problems=problems)
    return [SystemMessage(NARRATIVE_SYSTEM), HumanMessage(prompt)]


def narrate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """One model draft, streamed through the sentence filter: only accepted sentences (and the
    template sentences replacing rejected ones) reach the custom stream."""
    ctx = runtime.context
    model = create_chat_model_with_fallback(
        SERVICE, ctx.model, user_id=ctx.user_id, max_tokens=ctx.max_tokens
    )
    sheet = FactSheet(state.metrics, state.masked_request)
    writer = ReportWriter(
        sheet,
        report=state.report,
        template_used=list(state.template_used),
        wanted=state.missing if state.attempts else None,
    )
    emit = get_stream_writer()
    reply: AIMessageChunk | None = None
    for chunk in model.stream(_prompt(state), config={"tags": [TAG_NOSTREAM]}):
        reply = cast(AIMessageChunk, chunk if reply is None else reply + chunk)
        for piece in writer.feed(chunk.text):
            emit(piece.event())
    meta = reply.response_metadata if reply is not None else {}
    truncated = meta.get("finish_reason") == "length"
    for piece in writer.finish(truncated):
        emit(piece.event())
    return {
        "report": writer.report,
        "faithful": True,
        "draft": reply.text if reply is not None else "",
        "draft_truncated": truncated,
        "attempts": state.attempts + 1,
        "model_used": (model_used(reply) if reply is not None else None) or ctx.model,
        "missing": writer.missing(),
        "problems": writer.problems,
        "rejected_sentences": list(dict.fromkeys(state.rejected_sentences + writer.rejected)),
        "rejected_numbers": state.rejected_numbers + writer.rejected_numbers,
        "model_sentences": state.model_sentences + writer.model_sentences,
        "template_sentences": state.template_sentences
        + len(writer.template_used)
        - len(state.template_used),
        "template_used": writer.template_used,
        "used_fallback": state.model_sentences + writer.model_sentences == 0,
    }


def route_after_narrate(
    state: State, runtime: Runtime[Context]
) -> Literal["chart", "narrate", "fallback"]:
    if not state.missing:
        return "chart"
    return "narrate" if state.attempts < runtime.context.max_attempts else "fallback"


def fallback(state: State) -> dict[str, Any]:
    """The template fills every section the model's prose left out (all, with no prose)."""
    sheet = FactSheet(state.metrics, state.masked_request)
    writer = ReportWriter(sheet, report=state.report, template_used=list(state.template_used))
    emit = get_stream_writer()
    pieces = writer.fill()
    for piece in pieces:
        emit(piece.event())
    return {
        "report": writer.report,
        "faithful": True,
        "used_fallback": state.model_sentences == 0,
        "template_sentences": state.template_sentences + len(pieces),
        "template_used": writer.template_used,
        "missing": [],
    }


def chart(state: State) -> dict[str, Any]:
    if not state.chart or state.backtest is None:
        return {}
    result = BacktestResult.model_validate(state.backtest)
    return {"chart_png": base64.b64encode(equity_chart_png(result)).decode("ascii")}


def respond(state: State) -> dict[str, Any]:
    """Every output field, on every path (LangGraph returns only channels that were written)."""
    return {f.name: getattr(state, f.name) for f in fields(OutputState)}


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
    max_tokens: int = 256,
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
