"""strategy_builder: a request in words → a `backtesting.Strategy` that really ran.

Governance first (only masked text reaches a model), then the user's similar backtests and
strategies as context, one generated class, static validation, a real backtest in the sandboxed
subprocess, and a bounded repair loop that shows the model its own code with the exact error.
A success is indexed into the user's stores, so the next request can retrieve it.

Tokens and cost are summed from *this run's* ledger rows: every model call gets a fresh run id
(the cost callback records it as the row's request id), so concurrent runs of the same user and
service never mix.
"""

from __future__ import annotations

import ast
import inspect
import logging
import operator
import re
import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import TypeAdapter

from agents.context import Context as BaseContext
from agents.governance.gate import blocked_reasons, gate
from agents.llm.catalog import validate_model
from agents.llm.factory import create_chat_model_with_fallback, model_used
from agents.llm.tool_calls import message_text
from agents.quant import corpus
from agents.quant.backtests import BacktestResult, load_ohlcv, load_ohlcv_csv
from agents.quant.sandbox import ALLOWED_IMPORTS, run_in_sandbox, validate_strategy_code
from agents.rag.store import RetrievalUnavailableError, RetrievedContext, get_retriever
from agents.usage.ledger import get_ledger
from agents.usage.limits import QuotaExceededError, count_tokens, keep_within_budget

log = logging.getLogger(__name__)

SERVICE = "strategy_builder"
MAX_ERROR_CHARS = 1500

# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


def _example(*objects: Any) -> str:
    """A corpus strategy as a self-contained module: what good generated code looks like."""
    header = (
        "from typing import Any\n\nimport numpy as np\nimport pandas as pd\n"
        "from backtesting import Strategy\nfrom backtesting.lib import crossover\n"
    )
    return header + "\n\n" + "\n\n".join(inspect.getsource(o) for o in objects)


FEW_SHOT_EXAMPLES: tuple[str, ...] = (
    _example(corpus.sma, corpus.SmaCross),
    _example(corpus.rsi, corpus.RsiMeanReversion),
)

STRATEGY_SYSTEM = (
    "You are a quantitative trading strategy expert who writes Python for the backtesting.py "
    "library. You write exactly ONE class that subclasses `backtesting.Strategy`.\n"
    "Rules:\n"
    "- Imports allowed: " + ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"})) + ". "
    "Start with `from backtesting import Strategy` (and `from backtesting.lib import crossover` "
    "if you need it).\n"
    "- Tunable parameters are class attributes with literal values (e.g. `fast = 10`).\n"
    "- `def init(self):` computes every indicator with `self.I(func, self.data.Close, ...)`, "
    "where `func` is a plain function you define with pandas/numpy returning an array.\n"
    "- `def next(self):` trades with `self.buy()`, `self.sell()` or `self.position.close()`, "
    "reading the latest values as `indicator[-1]` or with `crossover(a, b)`.\n"
    "- Positions are fractional units: use ratios and comparisons between prices and "
    "indicators only, never fixed price levels or share counts.\n"
    "- No file, network or process access, no eval/exec/open, no printing.\n"
    "Reply with the complete code in one ```python block and nothing else."
)
STRATEGY_USER = (
    "Example of a valid strategy:\n```python\n{example}```\n\n"
    "{context}"
    "Write a strategy for this request: {request}"
)
CONTEXT_HEADER = "The user's past work, for reference:\n"
REPAIR_USER = (
    "Request: {request}\n\n"
    "This strategy code failed {stage}:\n```python\n{code}\n```\n\n"
    "Error{where}:\n{error}\n\n"
    "{hint}"
    "Fix the error and reply with the complete corrected code in one ```python block."
)
# The mistakes the embedded 0.5B model repeats (bench/results/services.json), each with the
# concrete fix: measured, the bare error alone made it resend the same code.
REPAIR_HINTS: tuple[tuple[str, str], ...] = (
    (
        "must be a simple literal",
        "Class attributes are tunable parameters and must be plain numbers (`fast = 5`). "
        "Compute indicators inside `def init(self):`, e.g. "
        "`self.ema_fast = self.I(ema, self.data.Close, self.fast)`.",
    ),
    (
        "same length as `data`",
        "The function given to `self.I` must return an array exactly as long as its input: "
        "use pandas rolling windows, e.g. "
        "`return pd.Series(values).rolling(n).max().to_numpy()`, never a single number.",
    ),
    (
        "'Position' object has no attribute",
        "`self.position` only has `size`, `pl`, `pl_pct`, `is_long`, `is_short` and `close()`. "
        "For a stop loss pass it when buying: `self.buy(sl=self.data.Close[-1] * 0.95)`.",
    ),
    (
        "object has no attribute",
        "Every `self.<name>` you read must be a class parameter (`name = 20`) or be assigned "
        "in `init()` before it is used.",
    ),
    (
        "no Python code",
        "Reply with Python code only: one ```python block containing the whole class.",
    ),
)
BLOCKED_NOTE = "blocked by prompt governance: {reasons}"
DEFAULT_RAG_MAX_TOKENS = 500
PROMPT_OVERHEAD_TOKENS = (
    count_tokens(STRATEGY_SYSTEM)
    + count_tokens(STRATEGY_USER)
    + max(count_tokens(e) for e in FEW_SHOT_EXAMPLES)
    + DEFAULT_RAG_MAX_TOKENS
    + 16  # message framing
)
"""Tokens of the fixed prompt around the user's request (REST checks the context window)."""
NO_CODE_ERROR = "the reply contained no Python code defining a backtesting.Strategy subclass"

# --------------------------------------------------------------------------------------------
# Context and state
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Context(BaseContext):
    """Knobs of the strategy builder."""

    symbol: str = field(
        default="GOOG",
        metadata={"description": "Bundled symbol to backtest on (GOOG, EURUSD, BTCUSD)."},
    )
    max_repairs: int = field(
        default=2, metadata={"description": "Repair attempts after the first draft fails."}
    )
    max_tokens: int = field(
        default=600, metadata={"description": "Output token cap for each draft or repair."}
    )
    temperature: float = field(
        default=0.2,
        metadata={"description": "Sampling temperature (ignored by reasoning models)."},
    )
    timeout_s: float = field(
        default=30.0, metadata={"description": "Wall-clock limit of one sandboxed backtest."}
    )
    memory_mb: int = field(
        default=1024, metadata={"description": "Address-space cap of the sandbox process."}
    )
    use_rag: bool = field(
        default=True,
        metadata={"description": "Give the model the user's similar backtests and strategies."},
    )
    rag_k: int = field(default=3, metadata={"description": "Similar backtests to retrieve."})
    rag_max_tokens: int = field(
        default=DEFAULT_RAG_MAX_TOKENS,
        metadata={"description": "Token budget of the retrieved context in the prompt."},
    )


@dataclass(kw_only=True)
class InputState:
    """What to build; optionally on the user's own OHLCV CSV and a date range."""

    request: str = ""
    csv_path: str | None = None
    start: str | None = None
    end: str | None = None


@dataclass(kw_only=True)
class OutputState:
    ok: bool = False
    blocked: bool = False
    code: str = ""
    strategy_class: str | None = None
    metrics: BacktestResult | None = None
    error: str | None = None
    error_line: int | None = None
    failed_stage: Literal["validation", "backtest", "model"] | None = None
    repairs: int = 0
    model_used: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    list_price_usd: float = 0.0
    rag_used: bool = False
    notes: Annotated[list[str], operator.add] = field(default_factory=list)


@dataclass(kw_only=True)
class State(InputState, OutputState):
    masked_request: str = ""
    rag_context: str = ""
    # Run ids of this run's model calls = the request ids of its ledger rows.
    call_ids: Annotated[list[str], operator.add] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without a model)
# --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CODE_START = re.compile(r"^(?:import\s|from\s+\w[\w.]*\s+import\s|class\s|def\s|@)")
_CODE_LINE = re.compile(
    r"^(?:import\s|from\s|class\s|def\s|@|#|if\s|for\s|while\s|try:|with\s|return\b|"
    r"[A-Za-z_][\w.]*\s*(?:=|\(|\[|:|\+=|-=))"
)
_DEFINES_STRATEGY = re.compile(r"^class\s+\w+\s*\([^)]*Strategy[^)]*\)\s*:", re.MULTILINE)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _bare_code(text: str) -> str:
    """Code in a reply without fences: from the first code line to the last, prose dropped."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _CODE_START.match(ln)), None)
    if start is None:
        return ""
    kept: list[str] = []
    for ln in lines[start:]:
        if ln.strip() and not ln[0].isspace() and not _CODE_LINE.match(ln):
            break  # unindented prose after the code ("This strategy buys when ...")
        kept.append(ln)
    return "\n".join(kept).strip("\n")


def extract_code(reply: str) -> str:
    """The strategy code in a model reply: fenced or bare, with the prose around it dropped.

    A 0.5B model wraps code in prose, uses ```python, ```py or bare fences, splits imports and
    class into separate blocks, or runs out of tokens inside a fence; all of these still count.
    """
    text = _THINK.sub("", reply).replace("\r\n", "\n")
    blocks = [
        textwrap.dedent(body).strip("\n")
        for lang, body in _FENCE.findall(text)
        if lang.lower() in ("", "python", "py", "python3", "py3")
    ]
    blocks = [b for b in blocks if b.strip()]
    if blocks:
        with_class = [b for b in blocks if _DEFINES_STRATEGY.search(b)]
        if not with_class:
            code = max(blocks, key=len)
        elif len(blocks) > 1 and not re.search(r"^(?:from|import)\s", with_class[0], re.M):
            # Imports in one block, the class in another: keep them together, in order.
            code = "\n\n".join(b for b in blocks if b is with_class[0] or _parses(b))
        else:
            code = with_class[0]
    else:
        code = _bare_code(textwrap.dedent(text))
    return add_missing_imports(code.strip()) + "\n" if code.strip() else ""


_IMPORT_FIXES: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = (
    (
        re.compile(r"\bStrategy\b"),
        re.compile(
            r"^\s*(?:from\s+backtesting\s+import\s.*\bStrategy\b|import\s+backtesting)", re.M
        ),
        "from backtesting import Strategy",
    ),
    (
        re.compile(r"\bcrossover\("),
        re.compile(
            r"^\s*from\s+backtesting\.lib\s+import\s.*\bcrossover\b|def\s+crossover\(", re.M
        ),
        "from backtesting.lib import crossover",
    ),
    (
        re.compile(r"\bpd\."),
        re.compile(r"^\s*import\s+pandas\s+as\s+pd\b", re.M),
        "import pandas as pd",
    ),
    (
        re.compile(r"\bnp\."),
        re.compile(r"^\s*import\s+numpy\s+as\s+np\b", re.M),
        "import numpy as np",
    ),
)


def add_missing_imports(code: str) -> str:
    """Add the standard imports a small model forgets (`pd.` used, `pandas` never imported).

    Only the allow-listed names the prompt teaches; anything else is left for validation to
    reject with a reason the model can act on.
    """
    missing = [
        imp for used, have, imp in _IMPORT_FIXES if used.search(code) and not have.search(code)
    ]
    return "\n".join(missing) + "\n\n" + code if missing else code


def format_context(
    backtests: list[RetrievedContext], strategies: list[RetrievedContext], max_tokens: int
) -> str:
    """The user's similar backtests (summaries) then strategies (code), best first, in budget."""
    items = [("backtest", c.content) for c in backtests]
    items += [("strategy", f"```python\n{c.content.strip()}\n```") for c in strategies]
    parts = keep_within_budget(
        items,
        lambda n, item: f"[past {item[0]} {n}] {item[1]}\n",
        max_tokens,
        used=count_tokens(CONTEXT_HEADER),
    )
    return CONTEXT_HEADER + "".join(parts) + "\n" if parts else ""


def repair_prompt(request: str, code: str, stage: str, error: str, line: int | None) -> str:
    """What the model sees to fix its code: the code, where it failed and the exact error."""
    where = ""
    if line is not None:
        lines = code.splitlines()
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        where = f" at line {line}" + (f" (`{text}`)" if text else "")
    stage_text = "static validation" if stage == "validation" else "when backtested"
    hint = next((h for marker, h in REPAIR_HINTS if marker in error), "")
    return REPAIR_USER.format(
        request=request,
        stage=stage_text,
        code=code.rstrip() or "# (no code)",
        where=where,
        error=error[:MAX_ERROR_CHARS],
        hint=f"Hint: {hint}\n\n" if hint else "",
    )


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


def govern(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Fail fast on a forbidden model or bad data, then governance: block, or mask."""
    ctx = runtime.context
    validate_model(SERVICE, ctx.model)  # ModelNotAllowedError names the allowed models
    if not state.request.strip():
        raise ValueError("the request is empty: describe the strategy to build")
    # Bad data is the caller's input: reject it before any paid call (the sandbox reloads it).
    if state.csv_path:
        load_ohlcv_csv(state.csv_path)
    else:
        load_ohlcv(ctx.symbol)
    report = gate(state.request)
    if report.verdict == "block":
        error = BLOCKED_NOTE.format(reasons=blocked_reasons(report))
        return {"blocked": True, "error": error, "notes": [error]}
    return {"masked_request": report.masked_text}


def route_after_governance(state: State) -> Literal["retrieve", "finish"]:
    return "finish" if state.blocked else "retrieve"


def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The user's similar backtests and strategies; without Chroma, go on without them."""
    ctx = runtime.context
    if not ctx.use_rag:
        return {"notes": ["RAG switched off for this run"]}
    try:
        retriever = get_retriever()
        backtests = retriever.search_similar_backtests(
            ctx.user_id, state.masked_request, k=ctx.rag_k
        )
        strategies = retriever.search_similar_strategies(ctx.user_id, state.masked_request, k=1)
    except RetrievalUnavailableError as exc:
        log.warning("strategy_builder: retrieval unavailable: %s", exc)
        return {"notes": [f"answered without RAG: {exc}"]}
    context = format_context(backtests, strategies, ctx.rag_max_tokens)
    if not context:
        return {"notes": ["no similar backtests or strategies of this user to use as context"]}
    return {"rag_context": context, "rag_used": True}


def _chat(runtime: Runtime[Context]) -> Any:
    ctx = runtime.context
    return create_chat_model_with_fallback(
        SERVICE,
        ctx.model,
        user_id=ctx.user_id,
        max_tokens=ctx.max_tokens,
        temperature=ctx.temperature,
    )


class _ChatRunIds(BaseCallbackHandler):
    """Collects the run id of every chat-model call made under one invocation."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.ids.append(str(run_id))


def _ask(runtime: Runtime[Context], prompt: str) -> dict[str, Any]:
    """One model call (and its fallback's, if any); their run ids are their ledger rows' ids."""
    chat = _chat(runtime)
    calls = _ChatRunIds()
    messages = [SystemMessage(STRATEGY_SYSTEM), HumanMessage(prompt)]
    requested = validate_model(SERVICE, runtime.context.model).id
    try:
        reply = chat.invoke(messages, config={"callbacks": [calls]})
    except QuotaExceededError:
        raise  # the caller hears 429 with when to retry; nothing was sent
    except Exception as exc:  # endpoint down or timing out after the client's retries
        log.warning("strategy_builder: model call failed: %s", type(exc).__name__)
        return {
            "call_ids": calls.ids,  # a failed call still has its ledger row
            "model_used": requested,
            "error": f"model call failed: {type(exc).__name__}: {exc}",
            "error_line": None,
            "failed_stage": "model",
        }
    return {
        "code": extract_code(message_text(reply.content)),
        "call_ids": calls.ids,
        "model_used": model_used(reply) or requested,
    }


def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The first draft: a few-shot example, the user's context, the (masked) request."""
    example = (
        FEW_SHOT_EXAMPLES[1] if "rsi" in state.masked_request.lower() else FEW_SHOT_EXAMPLES[0]
    )
    prompt = STRATEGY_USER.format(
        example=example, context=state.rag_context, request=state.masked_request
    )
    return _ask(runtime, prompt)


def validate(state: State) -> dict[str, Any]:
    """Static checks (AST, allow-list, contract) before anything runs."""
    if state.failed_stage == "model":
        return {}  # nothing new to validate; the router ends the run
    if not state.code.strip():
        return {"error": NO_CODE_ERROR, "error_line": None, "failed_stage": "validation"}
    report = validate_strategy_code(state.code)
    if not report.ok:
        line = next((e.line for e in report.errors if e.line), None)
        return {"error": report.summary(), "error_line": line, "failed_stage": "validation"}
    return {
        "error": None,
        "error_line": None,
        "failed_stage": None,
        "strategy_class": report.strategy_class,
    }


def _can_repair(state: State, runtime: Runtime[Context]) -> bool:
    return state.repairs < runtime.context.max_repairs


def route_after_validation(
    state: State, runtime: Runtime[Context]
) -> Literal["backtest", "repair", "finish"]:
    if state.failed_stage is None:
        return "backtest"
    if state.failed_stage == "model":
        return "finish"  # the endpoint failed: a repair would call it again
    return "repair" if _can_repair(state, runtime) else "finish"


def backtest(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """A real backtest of the code in the sandboxed subprocess."""
    ctx = runtime.context
    result = run_in_sandbox(
        state.code,
        symbol=ctx.symbol,
        csv_path=state.csv_path,
        user_id=ctx.user_id,
        strategy_name=state.strategy_class,
        timeout_s=ctx.timeout_s,
        memory_mb=ctx.memory_mb,
        start=state.start,
        end=state.end,
    )
    if not result.ok or result.result is None:
        error = f"[{result.error_kind}] {result.error or 'no result'}"
        return {"error": error, "error_line": result.line, "failed_stage": "backtest"}
    notes = []
    if result.result.num_trades == 0:
        notes.append("the strategy ran but made no trades on this data")
    return {"metrics": result.result, "error": None, "failed_stage": None, "notes": notes}


def route_after_backtest(
    state: State, runtime: Runtime[Context]
) -> Literal["index", "repair", "finish"]:
    if state.failed_stage is None:
        return "index"
    return "repair" if _can_repair(state, runtime) else "finish"


def repair(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The model gets its own code and the exact error, and returns the fixed code."""
    prompt = repair_prompt(
        state.masked_request,
        state.code,
        state.failed_stage or "validation",
        state.error or "",
        state.error_line,
    )
    return {**_ask(runtime, prompt), "repairs": state.repairs + 1}


def index(state: State) -> dict[str, Any]:
    """Index the backtest and its code in the user's stores; a down Chroma is only a note."""
    assert state.metrics is not None
    try:
        get_retriever().on_backtest_completed(state.metrics)
    except RetrievalUnavailableError as exc:
        log.warning("strategy_builder: indexing skipped: %s", exc)
        return {"ok": True, "notes": [f"not indexed (retrieval unavailable): {exc}"]}
    return {"ok": True}


def finish(state: State) -> dict[str, Any]:
    """Close the run: its usage, every output field written (LangGraph omits unwritten ones)."""
    update: dict[str, Any] = {
        f.name: getattr(state, f.name) for f in fields(OutputState) if f.name != "notes"
    }
    update.update(asdict(get_ledger().totals(state.call_ids)), notes=[])
    if state.failed_stage is not None:
        update["ok"] = False
        update["notes"] = [f"gave up after {state.repairs} repair(s): {state.failed_stage} failed"]
    return update


# --------------------------------------------------------------------------------------------
# Service function
# --------------------------------------------------------------------------------------------


# The service function returns the graph's own output type, validated (metrics → BacktestResult).
StrategyBuildResult = OutputState
_RESULT: TypeAdapter[OutputState] = TypeAdapter(OutputState)


def build_strategy(
    request: str,
    *,
    user_id: str,
    model: str | None = None,
    symbol: str = "GOOG",
    csv_path: str | None = None,
    start: str | None = None,
    end: str | None = None,
    max_repairs: int = 2,
    max_tokens: int = 600,
    use_rag: bool = True,
) -> StrategyBuildResult:
    """Run the graph for one request; a model the policy forbids raises before any work."""
    validate_model(SERVICE, model)
    ctx = Context(
        user_id=user_id,
        model=model,
        symbol=symbol,
        max_repairs=max_repairs,
        max_tokens=max_tokens,
        use_rag=use_rag,
    )
    inp = InputState(request=request, csv_path=csv_path, start=start, end=end)
    return _RESULT.validate_python(graph.invoke(inp, context=ctx))


# --------------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------------

builder = StateGraph(
    State, context_schema=Context, input_schema=InputState, output_schema=OutputState
)
builder.add_node(govern)
builder.add_node(retrieve)
builder.add_node(generate)
builder.add_node(validate)
builder.add_node(backtest)
builder.add_node(repair)
builder.add_node(index)
builder.add_node(finish)
builder.add_edge(START, "govern")
builder.add_conditional_edges("govern", route_after_governance)
builder.add_edge("retrieve", "generate")
builder.add_edge("generate", "validate")
builder.add_conditional_edges("validate", route_after_validation)
builder.add_conditional_edges("backtest", route_after_backtest)
builder.add_edge("repair", "validate")
builder.add_edge("index", "finish")
builder.add_edge("finish", END)
graph = builder.compile(name="strategy_builder")
