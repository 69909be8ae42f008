"""narrative_report: a prose report of one backtest whose every number is computed in code.

The model only narrates facts it is handed; `check_numbers` rejects prose containing a number
that is not (a rounding of) one of those facts, retries with the offending numbers named, and
falls back to a template report when the model keeps inventing. Tokens stream through LangGraph's
`messages` stream mode; an equity-curve PNG is drawn on request.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import TypeAdapter

from agents.context import Context as BaseContext
from agents.governance.gate import blocked_reasons, gate
from agents.llm.catalog import validate_model
from agents.llm.factory import create_chat_model_with_fallback, model_used
from agents.quant.backtests import BacktestResult, backtest_facts
from agents.rag.store import get_retriever
from agents.usage.limits import count_tokens

SERVICE = "narrative_report"

NARRATIVE_SYSTEM = (
    "You write short, factual reports on trading backtests for quant developers. "
    "Use ONLY the numbers given in the facts, written exactly as given. "
    "Never compute, estimate or invent any other number. Write 3 to 5 sentences of plain prose."
)
NARRATIVE_USER = "Facts:\n{facts}\n\n{request}Write the report."
RETRY_NOTE = (
    "\n\nYour previous draft was rejected: {problems}. Rewrite it in at most 4 sentences, "
    "citing the total return, Sharpe ratio and max drawdown exactly as given in the facts."
)
# A report must cite at least this many of these facts (a draft with no numbers says nothing).
HEADLINE_FACTS = ("total return", "Sharpe ratio", "max drawdown", "trades")
MIN_CITED_FACTS = 2
BLOCKED_REPORT = "This request was blocked by prompt governance: {reasons}."
FACTS_TOKENS = 300
"""Tokens the formatted facts of one backtest take at most (labels, numbers, parameters)."""
PROMPT_OVERHEAD_TOKENS = (
    count_tokens(NARRATIVE_SYSTEM)
    + count_tokens(NARRATIVE_USER + RETRY_NOTE)
    + FACTS_TOKENS
    + 16  # message framing
)
"""Tokens of the fixed prompt around the user's focus text (REST checks the context window)."""


class BacktestNotFoundError(LookupError):
    """The requested backtest id is not in the user's store."""


@dataclass(kw_only=True)
class Context(BaseContext):
    """Knobs of the narrative report."""

    max_attempts: int = field(
        default=2,
        metadata={"description": "Model drafts before falling back to the template report."},
    )
    max_tokens: int = field(
        default=256, metadata={"description": "Output token cap for each draft."}
    )


@dataclass(kw_only=True)
class InputState:
    """A backtest (inline) or its id in the user's store, plus an optional focus."""

    backtest: BacktestResult | dict[str, Any] | None = None
    backtest_id: str | None = None
    request: str = ""
    chart: bool = False


@dataclass(kw_only=True)
class OutputState:
    report: str = ""
    faithful: bool = False
    used_fallback: bool = False
    blocked: bool = False
    rejected_numbers: list[str] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)
    chart_png: str | None = None
    model_used: str | None = None
    backtest_id: str | None = None


@dataclass(kw_only=True)
class State(InputState, OutputState):
    masked_request: str = ""
    draft: str = ""
    draft_truncated: bool = False
    problems: list[str] = field(default_factory=list)
    attempts: int = 0


# --------------------------------------------------------------------------------------------
# Facts and the number check (pure functions; also used by bench/services.py)
# --------------------------------------------------------------------------------------------


_NUMBER = re.compile(r"(?<![\w.])[-+−]?\$?\d[\d,]*(?:\.\d+)?")
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)


def _parse(token: str) -> Decimal | None:
    t = token.replace("−", "-").replace("$", "").replace(",", "").rstrip(".")
    try:
        return Decimal(t)
    except ArithmeticError:
        return None


def _exponent(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return exp if isinstance(exp, int) else 0


def allowed_numbers(facts: dict[str, str], extra_text: str = "") -> set[Decimal]:
    """Every number in the facts (and the user's own request), sign-free."""
    allowed: set[Decimal] = set()
    for text in [*facts.values(), extra_text]:
        for tok in _NUMBER.findall(text.replace("-", " ")):
            d = _parse(tok)
            if d is not None:
                allowed.add(abs(d))
    return allowed


def unsupported_numbers(prose: str, allowed: set[Decimal]) -> list[str]:
    """Numbers in `prose` that are not a rounding of an allowed number.

    "58%" is supported by 58.23; "58.3" is not. Signs are ignored (a drawdown of -24.5% may be
    written as 24.5%); list markers such as "1." at the start of a line are not numbers.
    """
    text = _LIST_MARKER.sub(" ", prose)
    bad = []
    for tok in _NUMBER.findall(text.replace("-", " ").replace("–", " ")):
        d = _parse(tok)
        if d is None:
            continue
        d = abs(d)
        half_ulp = Decimal(5) * Decimal(10) ** (_exponent(d) - 1)
        if not any(abs(a - d) <= half_ulp for a in allowed):
            bad.append(tok.rstrip(".,"))
    return bad


def cited_facts(prose: str, facts: dict[str, str]) -> list[str]:
    """Which headline facts the prose states (as the fact's number, or a rounding of it)."""
    text = _LIST_MARKER.sub(" ", prose).replace("-", " ").replace("–", " ")
    said = [abs(d) for d in (_parse(t) for t in _NUMBER.findall(text)) if d is not None]
    cited = []
    for key in HEADLINE_FACTS:
        values = allowed_numbers({key: facts.get(key, "")})
        if any(
            abs(v - d) <= Decimal(5) * Decimal(10) ** (_exponent(d) - 1)
            for v in values
            for d in said
        ):
            cited.append(key)
    return cited


def draft_problems(
    draft: str, facts: dict[str, str], request: str = "", truncated: bool = False
) -> list[str]:
    """Why a draft cannot be the report (empty list: it can)."""
    if not draft.strip():
        return ["the draft is empty"]
    problems = []
    bad = unsupported_numbers(draft, allowed_numbers(facts, request))
    if bad:
        problems.append("numbers not in the facts: " + ", ".join(bad))
    if len(cited_facts(draft, facts)) < MIN_CITED_FACTS:
        problems.append(f"it cites fewer than {MIN_CITED_FACTS} of: " + ", ".join(HEADLINE_FACTS))
    if truncated:
        problems.append("it was cut off at the token limit")
    return problems


def template_report(facts: dict[str, str]) -> str:
    """The fallback: every number straight from the facts, no model involved."""
    return (
        f"{facts['strategy']} on {facts['symbol']} from {facts['period']} turned "
        f"{facts['initial cash']} into {facts['final equity']}, a total return of "
        f"{facts['total return']} (CAGR {facts['CAGR']}). It made {facts['trades']} trades with "
        f"a win rate of {facts['win rate']} and was in the market {facts['exposure']} of the "
        f"time. Risk: Sharpe ratio {facts['Sharpe ratio']}, Sortino ratio "
        f"{facts['Sortino ratio']}, maximum drawdown {facts['max drawdown']}."
    )


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
        return {"blocked": True, "report": BLOCKED_REPORT.format(reasons=blocked_reasons(report))}
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
        "metrics": backtest_facts(result),
    }


def narrate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """One model draft from the facts (streams through the `messages` stream mode)."""
    ctx = runtime.context
    model = create_chat_model_with_fallback(
        SERVICE, ctx.model, user_id=ctx.user_id, max_tokens=ctx.max_tokens
    )
    facts = "\n".join(f"- {k}: {v}" for k, v in state.metrics.items())
    request = f"Focus: {state.masked_request}\n\n" if state.masked_request.strip() else ""
    prompt = NARRATIVE_USER.format(facts=facts, request=request)
    if state.problems:
        prompt += RETRY_NOTE.format(problems="; ".join(state.problems))
    reply = model.invoke([SystemMessage(NARRATIVE_SYSTEM), HumanMessage(prompt)])
    return {
        "draft": str(reply.content).strip(),
        "draft_truncated": reply.response_metadata.get("finish_reason") == "length",
        "attempts": state.attempts + 1,
        "model_used": model_used(reply) or ctx.model,
    }


def check_numbers(state: State) -> dict[str, Any]:
    """Reject a draft with a number not in the facts, too few facts cited, or cut off."""
    problems = draft_problems(
        state.draft, state.metrics, state.masked_request, state.draft_truncated
    )
    if not problems:
        return {"report": state.draft, "faithful": True, "rejected_numbers": [], "problems": []}
    bad = unsupported_numbers(state.draft, allowed_numbers(state.metrics, state.masked_request))
    return {"rejected_numbers": bad, "problems": problems}


def route_after_check(
    state: State, runtime: Runtime[Context]
) -> Literal["chart", "narrate", "fallback"]:
    if state.faithful:
        return "chart"
    return "narrate" if state.attempts < runtime.context.max_attempts else "fallback"


def fallback(state: State) -> dict[str, Any]:
    """The model kept inventing numbers: report from the template instead."""
    return {"report": template_report(state.metrics), "faithful": True, "used_fallback": True}


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
builder.add_node(check_numbers)
builder.add_node(fallback)
builder.add_node(chart)
builder.add_node(respond)
builder.add_edge(START, "govern")
builder.add_conditional_edges("govern", route_after_governance)
builder.add_edge("load", "narrate")
builder.add_edge("narrate", "check_numbers")
builder.add_conditional_edges("check_numbers", route_after_check)
builder.add_edge("fallback", "chart")
builder.add_edge("chart", "respond")
builder.add_edge("respond", END)
graph = builder.compile(name=SERVICE)
