"""strategy_builder: a request in words → a typed spec the model fills → code compiled from it
→ a real, sandboxed backtest.

Spec mode (the default): governance first (only masked text reaches a model); the model fills a
`StrategySpec` through structured output (OpenAI structured outputs; grammar-constrained decoding
on llama.cpp); code then checks it against the request (`agents.quant.faithfulness`): what the
request states and the spec lacks or contradicts is fixed in code where the request gives the
value (a 5% stop, a direction, a size), else sent back to the model by name; what the spec adds
that nobody asked for is dropped; a repair that changes nothing ends the loop. What no spec can
express is answered honestly ("cannot express X; closest: ..."), never substituted. A
deterministic compiler turns the spec into readable `backtesting.Strategy` source that is
validated and backtested in the sandbox, and indexed as a whole module. The user's similar past
backtests are retrieved and cited by id in the answer — they inform it; they are not shown to the
model to copy.

Code mode (`Context.mode="code"`): free-form code for capable models, through the same
validation and sandbox, with a bounded repair loop that shows the model its own code and error.

Tokens and cost are summed from this run's ledger rows (the run ids of its model calls).
"""

from __future__ import annotations

import inspect
import json
import logging
import operator
import re
import textwrap
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from agents.context import Context as BaseContext
from agents.governance.gate import blocked_reasons, gate
from agents.governance.pii import mask_output
from agents.llm.catalog import validate_model
from agents.llm.factory import create_chat_model_with_fallback, model_used, route_used
from agents.llm.tool_calls import message_text
from agents.quant import corpus
from agents.quant.backtests import BacktestResult, backtest_facts, load_ohlcv, load_ohlcv_csv
from agents.quant.compiler import compile_spec
from agents.quant.datasets import dataset_path, register_dataset
from agents.quant.drafting import (
    STYLES,
    StyleChoice,
    apply_stated,
    draft_spec,
    style_spec,
    unused_numbers,
)
from agents.quant.faithfulness import check, unexpressible
from agents.quant.model_facts import stated_facts
from agents.quant.sandbox import (
    ALLOWED_IMPORTS,
    parse_module,
    run_in_sandbox,
    validate_strategy_code,
)
from agents.quant.spec import ModelSpec, StrategySpec, drop_inapplicable, scale_problems
from agents.quant.spec_fixes import (
    fix_with_claims,
    own_line_for_itself,
    plain_averages,
    states_as_stated,
    unbacked,
    unread_unsupported,
)
from agents.rag.store import RetrievalUnavailableError, RetrievedContext, get_retriever
from agents.usage.ledger import get_ledger
from agents.usage.limits import QuotaExceededError, count_tokens, keep_within_budget
from agents.usage.rates import RateLimitExceededError
from graphs import prompts as P

log = logging.getLogger(__name__)

SERVICE = "strategy_builder"
MAX_ERROR_CHARS = 1500
DEFAULT_RAG_MAX_TOKENS = 500


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
    "library. You write exactly ONE class that subclasses `backtesting.Strategy`.\nRules:\n"
    "- Imports allowed: " + ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"})) + ".\n"
) + P.CODE_SYSTEM_RULES
STRATEGY_USER = "Example of a valid strategy:\n```python\n{example}```\n\n{context}" + P.CODE_USER
CONTEXT_HEADER = "The user's past work, for reference:\n"
NO_CODE_ERROR = P.NO_CODE_ERROR
PROMPT_OVERHEAD_TOKENS = 16 + max(
    count_tokens(P.SPEC_SYSTEM) + count_tokens(P.SPEC_REPAIR_USER) + 900,  # + the spec itself
    count_tokens(STRATEGY_SYSTEM)
    + count_tokens(STRATEGY_USER)
    + max(count_tokens(e) for e in FEW_SHOT_EXAMPLES)
    + DEFAULT_RAG_MAX_TOKENS,
)
"""Tokens of the fixed prompt around the user's request (REST checks the context window)."""

# --------------------------------------------------------------------------------------------
# Context and state
# --------------------------------------------------------------------------------------------


def _d(text: str) -> Any:
    return Field(description=text)


@dataclass(kw_only=True)
class Context(BaseContext):
    """Knobs of the strategy builder."""

    mode: Literal["spec", "code"] = field(
        default="spec",
        metadata={
            "description": "spec: the model fills a typed spec that code compiles (default); "
            "code: free-form code for capable models, through the sandbox."
        },
    )
    draft_in_code: bool = field(
        default=True,
        metadata={
            "description": "Spec mode: when the request states a whole strategy, build the spec "
            "from its stated facts in code and call no model; false: the model always fills it."
        },
    )
    symbol: str = field(
        default="GOOG",
        metadata={"description": "Bundled symbol when the request names none."},
    )
    max_repairs: int = field(
        default=2, metadata={"description": "Repairs after the first spec or draft fails."}
    )
    max_tokens: int = field(
        default=600, metadata={"description": "Output token cap for each model call."}
    )
    temperature: float = field(
        default=0.0,
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
        metadata={"description": "Look up the user's similar past backtests to cite."},
    )
    rag_k: int = field(default=3, metadata={"description": "Similar backtests to retrieve."})
    rag_max_tokens: int = field(
        default=DEFAULT_RAG_MAX_TOKENS,
        metadata={"description": "Code mode: token budget of the past work in the prompt."},
    )


@dataclass(kw_only=True)
class InputState:
    """What to build; optionally on the user's own OHLCV CSV and a date range."""

    request: Annotated[str, _d("The strategy in words (English or Korean).")] = ""
    dataset_id: Annotated[
        str | None,
        _d(
            "One of your uploaded OHLCV datasets (ds-…, from POST /v1/datasets or "
            "agents.quant.datasets.register_dataset); default: the bundled symbol's data."
        ),
    ] = None
    start: Annotated[str | None, _d("First date of the backtest, YYYY-MM-DD.")] = None
    end: Annotated[str | None, _d("Last date of the backtest, YYYY-MM-DD.")] = None


@dataclass(kw_only=True)
class OutputState:
    ok: Annotated[bool, _d("A strategy was built as asked and its backtest ran.")] = False
    blocked: Annotated[bool, _d("Prompt governance refused the request.")] = False
    answer: Annotated[str, _d("The answer in words: what was built and assumed, or why not.")] = ""
    expressible: Annotated[bool, _d("False: the request asks for what no spec can say.")] = True
    unsupported: Annotated[list[str], _d("What the request asks that cannot be expressed.")] = (
        field(default_factory=list)
    )
    spec: Annotated[dict[str, Any] | None, _d("The filled StrategySpec (spec mode).")] = None
    code: Annotated[str, _d("The strategy's Python source: a whole, runnable module.")] = ""
    strategy_class: Annotated[str | None, _d("The Strategy subclass in `code`.")] = None
    assumptions: Annotated[list[str], _d("Every value the request did not state.")] = field(
        default_factory=list
    )
    discrepancies: Annotated[list[str], _d("Where the spec still differs from the request.")] = (
        field(default_factory=list)
    )
    metrics: Annotated[BacktestResult | None, _d("The real backtest's result.")] = None
    related: Annotated[list[dict[str, Any]], _d("The user's similar past backtests, cited.")] = (
        field(default_factory=list)
    )
    error: Annotated[str | None, _d("What failed, in words.")] = None
    error_line: Annotated[int | None, _d("Code mode: the failing line.")] = None
    failed_stage: Annotated[
        Literal["validation", "backtest", "model", "spec"] | None, _d("Where it failed.")
    ] = None
    repairs: Annotated[int, _d("Repair rounds used.")] = 0
    model_used: Annotated[str | None, _d("The catalog model that answered.")] = None
    served_by: Annotated[str | None, _d("What served it (route: served model).")] = None
    input_tokens: Annotated[int, _d("Input tokens of this run's model calls.")] = 0
    output_tokens: Annotated[int, _d("Output tokens of this run's model calls.")] = 0
    cost_usd: Annotated[float, _d("What this run's model calls cost.")] = 0.0
    list_price_usd: Annotated[float, _d("The catalog list price of the same tokens.")] = 0.0
    rag_used: Annotated[bool, _d("Similar past backtests were found and cited.")] = False
    notes: Annotated[list[str], operator.add] = field(default_factory=list)


@dataclass(kw_only=True)
class State(InputState, OutputState):
    masked_request: str = ""
    rag_context: str = ""
    spec_error: str | None = None  # the last reply that was no valid spec
    previous_spec: dict[str, Any] | None = None
    readings: list[str] = field(default_factory=list)  # what code read into a drafted spec
    vague: bool = False  # the request states no rule: the model only chooses a style
    source: Literal["", "code", "style", "model"] = ""  # who wrote the spec: the guard's scope
    unbacked: list[str] = field(default_factory=list)  # a model's rules no claim backs
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
        parse_module(code)
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
    """The strategy code in a model reply: fenced or bare, with the prose around it dropped."""
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
    """Add the standard imports a small model forgets (`pd.` used, `pandas` never imported)."""
    missing = [
        imp for used, have, imp in _IMPORT_FIXES if used.search(code) and not have.search(code)
    ]
    return "\n".join(missing) + "\n\n" + code if missing else code


def format_context(
    backtests: list[RetrievedContext], strategies: list[RetrievedContext], max_tokens: int
) -> str:
    """Code mode: the user's similar backtests then strategies, best first, in budget."""
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
    """Code mode: the model's code, where it failed and the exact error (plus a known fix)."""
    where = ""
    if line is not None:
        lines = code.splitlines()
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        where = f" at line {line}" + (f" (`{text}`)" if text else "")
    stage_text = "static validation" if stage == "validation" else "when backtested"
    hint = next((h for marker, h in P.CODE_REPAIR_HINTS if marker in error), "")
    return P.CODE_REPAIR_USER.format(
        request=request,
        stage=stage_text,
        code=code.rstrip() or "# (no code)",
        where=where,
        error=error[:MAX_ERROR_CHARS],
        hint=f"Hint: {hint}\n\n" if hint else "",
    )


def spec_answer(state: State, ctx: Context) -> str:
    """The user's answer in words, from the compiled strategy, its backtest and past work."""
    parts: list[str] = []
    m = state.metrics
    if m is not None:
        facts = backtest_facts(m)
        hold = facts.get("buy-and-hold return")
        parts.append(
            f"Built {state.strategy_class} for {m.symbol}, {facts['period']}: total return "
            f"{facts['total return']}"
            + (f" (buy and hold: {hold})" if hold else "")
            + f", Sharpe ratio {facts['Sharpe ratio']}, max drawdown {facts['max drawdown']}, "
            f"{facts['trades']} trades."
        )
    if state.assumptions:
        parts.append("Assumed (not in the request): " + "; ".join(state.assumptions) + ".")
    if state.related:
        cites = ", ".join(
            f"{r['backtest_id']} ({r.get('cite') or textwrap.shorten(r['summary'], 100)})"
            for r in state.related[: ctx.rag_k]
        )
        parts.append("Your similar past backtests: " + cites + ".")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Nodes: governance and retrieval (both modes)
# --------------------------------------------------------------------------------------------


def govern(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Fail fast on a forbidden model or bad data, then governance: block, or mask."""
    ctx = runtime.context
    validate_model(SERVICE, ctx.model)  # ModelNotAllowedError names the allowed models
    if not state.request.strip():
        raise ValueError("the request is empty: describe the strategy to build")
    # Bad data is the caller's input: reject it before any paid call (the sandbox reloads it).
    if state.dataset_id:  # only the caller's own datasets resolve; never a path
        load_ohlcv_csv(dataset_path(ctx.user_id, state.dataset_id))
    else:
        load_ohlcv(ctx.symbol)
    report = gate(state.request)
    if report.verdict == "block":
        error = P.BLOCKED_NOTE.format(reasons=blocked_reasons(report))
        return {"blocked": True, "error": error, "answer": error, "notes": [error]}
    return {"masked_request": report.masked_text}


def route_after_governance(state: State) -> Literal["retrieve", "finish"]:
    return "finish" if state.blocked else "retrieve"


def _how_it_did(found: RetrievedContext) -> str:
    """A similar backtest as the answer cites it: strategy, symbol, period and how it did (the
    stored result's own facts); the start of its stored text if the result cannot be read."""
    try:
        r = BacktestResult.model_validate_json(str(found.metadata["result_json"]))
    except (KeyError, ValidationError):
        return textwrap.shorten(found.content, 100, placeholder=" …")
    f = backtest_facts(r)
    return (
        f"{r.strategy_name} on {r.symbol}, {f['period']}: total return {f['total return']}, "
        f"Sharpe ratio {f['Sharpe ratio']}, max drawdown {f['max drawdown']}, {f['trades']} trades"
    )


def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The user's similar backtests (cited by id); in code mode also their strategies."""
    ctx = runtime.context
    if not ctx.use_rag:
        return {"notes": ["RAG switched off for this run"]}
    try:
        retriever = get_retriever()
        backtests = retriever.search_similar_backtests(
            ctx.user_id, state.masked_request, k=ctx.rag_k
        )
        strategies = (
            retriever.search_similar_strategies(ctx.user_id, state.masked_request, k=1)
            if ctx.mode == "code"
            else []
        )
    except RetrievalUnavailableError as exc:
        log.warning("strategy_builder: retrieval unavailable: %s", exc)
        return {"notes": [f"answered without RAG: {exc}"]}
    related = [
        {
            "backtest_id": c.id,
            "summary": c.content,
            "cite": _how_it_did(c),
            "score": round(c.score, 3),
        }
        for c in backtests
    ]
    context = format_context(backtests, strategies, ctx.rag_max_tokens)
    return {"rag_context": context, "related": related, "rag_used": bool(related)}


def route_mode(
    state: State, runtime: Runtime[Context]
) -> Literal["draft", "fill_spec", "generate"]:
    if runtime.context.mode == "code":
        return "generate"
    return "draft" if runtime.context.draft_in_code else "fill_spec"


# --------------------------------------------------------------------------------------------
# Model calls
# --------------------------------------------------------------------------------------------


def _chat(runtime: Runtime[Context]) -> Any:
    ctx = runtime.context
    overrides: dict[str, Any] = {"max_tokens": ctx.max_tokens, "temperature": ctx.temperature}
    return create_chat_model_with_fallback(SERVICE, ctx.model, user_id=ctx.user_id, **overrides)


class _ChatRunIds(BaseCallbackHandler):
    """Collects the run id of every chat-model call made under one invocation."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.ids.append(str(run_id))


def _who(reply: Any, requested: str) -> dict[str, Any]:
    """The catalog model that answered and what served it."""
    if not isinstance(reply, AIMessage):
        return {"model_used": requested}
    served = reply.response_metadata.get("model_name") or reply.response_metadata.get("model")
    route = route_used(reply)
    return {
        "model_used": model_used(reply) or requested,
        "served_by": f"{route}: {served}" if route and served else None,
    }


def _failed_call(calls: _ChatRunIds, requested: str, exc: Exception) -> dict[str, Any]:
    log.warning("strategy_builder: model call failed: %s", type(exc).__name__)
    return {
        "call_ids": calls.ids,  # a failed call still has its ledger row
        "model_used": requested,
        "error": f"model call failed: {type(exc).__name__}: {exc}",
        "error_line": None,
        "failed_stage": "model",
    }


def _lenient(raw: Any) -> tuple[StrategySpec | None, list[str]]:
    """A reply the schema's validators refused only for fields its series kinds take no value
    for is accepted without them (and says so); anything else stays refused."""
    if not isinstance(raw, AIMessage):
        return None, []
    try:
        data = json.loads(message_text(raw.content))
    except ValueError:
        return None, []
    cleaned, dropped = drop_inapplicable(data)
    if not dropped:
        return None, []
    try:
        return StrategySpec.model_validate(cleaned), dropped
    except ValidationError:
        return None, []


def _structured(
    runtime: Runtime[Context], schema: type[BaseModel], messages: list[Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One structured-output call (`schema` as JSON schema: OpenAI structured outputs, grammar
    on llama.cpp): the state update (its ledger run ids, who answered) and the raw/parsed
    reply, or the failed call's update and None."""
    calls = _ChatRunIds()
    requested = validate_model(SERVICE, runtime.context.model).id
    chain = _chat(runtime).with_structured_output(schema, method="json_schema", include_raw=True)
    try:
        out = chain.invoke(messages, config={"callbacks": [calls]})
    except (QuotaExceededError, RateLimitExceededError):
        raise  # the caller hears 429 with when to retry; nothing was sent
    except Exception as exc:  # endpoint down or timing out after the client's retries
        return _failed_call(calls, requested, exc), None
    return {"call_ids": calls.ids, **_who(out.get("raw"), requested)}, out


def _ask_spec(runtime: Runtime[Context], prompt: str, request: str) -> dict[str, Any]:
    """The model fills a StrategySpec (or says why it could not). Its schema is `ModelSpec`:
    each series kind with only the fields it takes, so the grammar cannot write a width on a
    MACD; the reply is then validated into the `StrategySpec` code uses."""
    messages = [SystemMessage(P.SPEC_SYSTEM), HumanMessage(prompt)]
    update, out = _structured(runtime, ModelSpec, messages)
    if out is None:
        return update
    parsed, error = out.get("parsed"), out.get("parsing_error")
    spec: StrategySpec | None = None
    if isinstance(parsed, ModelSpec):
        data, fixed = own_line_for_itself(parsed.model_dump(exclude_none=True), request)
        try:
            spec = StrategySpec.model_validate(data)
            if fixed:  # told to the user as assumptions (check_spec adds its own)
                update["notes"] = [f"fixed in code from the request: {f}" for f in fixed]
                update["readings"] = fixed
        except ValidationError as exc:
            error = exc
    else:  # a reply off the schema (no grammar on this route): fields its kinds take none of
        spec, dropped = _lenient(out.get("raw"))
        update["notes"] = [f"ignored a field the series takes no value for: {d}" for d in dropped]
    if spec is not None:
        return {
            **update,
            "spec": spec.model_dump(mode="json"),
            "spec_error": None,
            "source": "model",
        }
    error_text = str(error or "no spec in the reply")[:MAX_ERROR_CHARS]
    return {**update, "spec_error": error_text}


def _ask_code(runtime: Runtime[Context], prompt: str) -> dict[str, Any]:
    """Code mode: one model call (and its fallback's, if any)."""
    calls = _ChatRunIds()
    requested = validate_model(SERVICE, runtime.context.model).id
    messages = [SystemMessage(STRATEGY_SYSTEM), HumanMessage(prompt)]
    try:
        reply = _chat(runtime).invoke(messages, config={"callbacks": [calls]})
    except (QuotaExceededError, RateLimitExceededError):
        raise
    except Exception as exc:
        return _failed_call(calls, requested, exc)
    return {
        "code": extract_code(message_text(reply.content)),
        "call_ids": calls.ids,
        **_who(reply, requested),
    }


# --------------------------------------------------------------------------------------------
# Nodes: spec mode
# --------------------------------------------------------------------------------------------


def draft(state: State) -> dict[str, Any]:
    """The spec the request states, built in code when its facts make a whole strategy
    (`agents.quant.drafting`); otherwise the model fills it, and we say what was open."""
    drafted = draft_spec(state.masked_request)
    if drafted.spec is None:
        note = "for the model to decide: " + (
            "a style" if drafted.vague else "; ".join(drafted.open)
        )
        return {"notes": [note], "vague": drafted.vague}
    return {
        "spec": drafted.spec.model_dump(mode="json"),
        "readings": drafted.assumptions,
        "served_by": "code: every value is stated in the request (no model call)",
        "source": "code",
        "notes": ["spec built in code from the request's stated facts"],
    }


def route_after_draft(state: State) -> Literal["check_spec", "choose_style", "fill_spec"]:
    if state.spec is not None:
        return "check_spec"
    return "choose_style" if state.vague else "fill_spec"


def choose_style(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """A request that states no rule: the model chooses only the style (an enum, under the
    grammar); code builds that style's textbook rule and says so. If the call fails, the model
    fills the whole spec instead."""
    styles = ", ".join(f"{k} ({v[0]})" for k, v in STYLES.items())
    messages = [
        SystemMessage(P.STYLE_SYSTEM.format(styles=styles)),
        HumanMessage(state.masked_request),
    ]
    update, out = _structured(runtime, StyleChoice, messages)
    if out is None:
        return update
    choice = out.get("parsed")
    if not isinstance(choice, StyleChoice):
        return {**update, "vague": False, "notes": ["no style chosen: the model fills the spec"]}
    default = runtime.context.symbol

    def bars_of(symbol: str | None) -> int:  # windows that fit the data it will run on
        return len(load_ohlcv(symbol or default))

    spec, readings = style_spec(state.masked_request, choice.style, bars_of)
    return {**update, "spec": spec.model_dump(mode="json"), "readings": readings, "source": "style"}


def route_after_style(state: State) -> Literal["check_spec", "fill_spec", "finish"]:
    if state.failed_stage == "model":
        return "finish"
    return "check_spec" if state.spec is not None else "fill_spec"


def fill_spec(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The model fills the spec from the (masked) request and the facts code read in it."""
    request = state.masked_request
    facts = stated_facts(request)
    prompt = (
        P.SPEC_FACTS_USER.format(request=request, facts="\n".join(facts))
        if facts
        else P.SPEC_USER.format(request=request)
    )
    return _ask_spec(runtime, prompt, request)


def check_spec(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Faithfulness in code: fix what the request states, drop what it never asked for, and
    list what still differs; stop on a repair that changed nothing."""
    if state.failed_stage == "model" or state.spec is None:
        return {}
    spec, changes = apply_stated(state.masked_request, StrategySpec.model_validate(state.spec))
    spec, corrected = fix_with_claims(state.masked_request, spec)  # each told to the user
    spec, expressed = unread_unsupported(state.masked_request, spec)
    spec, simple = plain_averages(state.masked_request, spec)
    spec, states = states_as_stated(state.masked_request, spec)
    joined: list[str] = []
    missing: list[str] = []
    if state.source == "model":  # the substitute guard: build only what code read
        spec, joined, missing = unbacked(state.masked_request, spec)
    report = check(state.masked_request, spec)
    readings = [*state.readings, *corrected, *simple, *states, *joined]
    readings += [a.message for a in report.assumptions]
    update: dict[str, Any] = {
        "spec": spec.model_dump(mode="json"),
        "discrepancies": [d.message for d in report.discrepancies]
        + [a.message for a in report.violations]
        + scale_problems(spec)
        + unused_numbers(state.masked_request, spec),
        "assumptions": list(dict.fromkeys(readings)),
        "notes": [f"fixed in code from the request: {c}" for c in [*changes, *corrected]]
        + expressed
        + [f"not backed by the request: {m}" for m in missing],
        "unbacked": missing,
    }
    if state.previous_spec is not None and state.previous_spec == update["spec"]:
        update["notes"] = [*update["notes"], "the repair changed nothing: stopped repairing"]
        update["repairs"] = runtime.context.max_repairs  # no further round
    return update


def route_after_spec(
    state: State, runtime: Runtime[Context]
) -> Literal["repair_spec", "refuse", "compile", "finish"]:
    if state.failed_stage == "model":
        return "finish"
    can_repair = state.repairs < runtime.context.max_repairs
    if unexpressible(state.masked_request):  # refused with the closest spec, if there is one
        return "refuse"
    if state.spec is None:
        return "repair_spec" if can_repair else "finish"
    if state.spec.get("unsupported"):
        return "refuse"
    if state.discrepancies:
        return "repair_spec" if can_repair else "finish"  # never build what was not asked
    if state.unbacked:  # a rule the model wrote that code did not read: never built unseen
        return "repair_spec" if can_repair else "refuse"
    return "compile"


def repair_spec(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Back to the model, every problem named (or the reason its reply was no spec)."""
    request = state.masked_request
    if state.spec is None:
        prompt = P.SPEC_INVALID_USER.format(request=request, error=state.spec_error)
    else:
        spec = StrategySpec.model_validate(state.spec)
        instructions = check(request, spec).repair_instructions()
        scales = [f"- {p}. Fix: compare it with a fixed value." for p in scale_problems(spec)]
        numbers = [f"- {p}. Fix: put it in the field it belongs to." for p in
                   unused_numbers(request, spec)]  # fmt: skip
        unread = [f"- {m}. Fix: {P.UNBACKED_FIX}" for m in state.unbacked]
        head = instructions or "Fix every problem below:"
        instructions = "\n".join([head, *scales, *numbers, *unread])
        prompt = P.SPEC_REPAIR_USER.format(
            request=request, spec=spec.model_dump_json(exclude_none=True), instructions=instructions
        )
    update = _ask_spec(runtime, prompt, request)
    return {**update, "previous_spec": state.spec, "repairs": state.repairs + 1}


def refuse(state: State) -> dict[str, Any]:
    """What the spec cannot express, said plainly, with the closest expressible strategy."""
    what = unexpressible(state.masked_request) + list((state.spec or {}).get("unsupported") or [])
    what = list(dict.fromkeys(what))
    guarded = not what and bool(state.unbacked)  # expressible, perhaps; not read, surely
    answer = (
        P.NOT_BACKED.format(what="; ".join(state.unbacked))
        if guarded
        else P.CANNOT_EXPRESS.format(what=", ".join(what))
    )
    spec = state.spec
    if spec is not None:
        closest = StrategySpec.model_validate({**spec, "unsupported": []})
        answer += P.CLOSEST.format(description=compile_spec(closest).description)
    if guarded:  # the closest spec is a suggestion: nothing is built or run
        return {"discrepancies": state.unbacked, "answer": answer, "ok": False}
    return {"expressible": False, "unsupported": what, "answer": answer, "ok": False}


def compile_node(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The deterministic compiler: spec → a whole, readable module (validated before running)."""
    assert state.spec is not None
    spec = StrategySpec.model_validate(state.spec)
    if spec.symbol is None and runtime.context.symbol != "GOOG":
        spec = spec.model_copy(update={"symbol": runtime.context.symbol})
    compiled = compile_spec(spec)
    report = validate_strategy_code(compiled.code)
    if not report.ok:  # our compiler's bug, not the user's: say so
        error = f"compiled code failed validation: {report.summary()}"
        return {"error": error, "failed_stage": "validation"}
    assumed = [a.reason for a in compiled.assumptions]
    return {
        "code": compiled.code,
        "strategy_class": compiled.class_name,
        "assumptions": list(dict.fromkeys([*state.assumptions, *assumed])),
        "failed_stage": None,
        "error": None,
        "spec": spec.model_dump(mode="json"),
    }


def route_after_compile(state: State) -> Literal["backtest", "finish"]:
    return "finish" if state.failed_stage else "backtest"


# --------------------------------------------------------------------------------------------
# Nodes: code mode
# --------------------------------------------------------------------------------------------


def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Code mode's first draft: a few-shot example, the user's context, the (masked) request."""
    example = (
        FEW_SHOT_EXAMPLES[1] if "rsi" in state.masked_request.lower() else FEW_SHOT_EXAMPLES[0]
    )
    prompt = STRATEGY_USER.format(
        example=example, context=state.rag_context, request=state.masked_request
    )
    return _ask_code(runtime, prompt)


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
    return runtime.context.mode == "code" and state.repairs < runtime.context.max_repairs


def route_after_validation(
    state: State, runtime: Runtime[Context]
) -> Literal["backtest", "repair", "finish"]:
    if state.failed_stage is None:
        return "backtest"
    if state.failed_stage == "model":
        return "finish"  # the endpoint failed: a repair would call it again
    return "repair" if _can_repair(state, runtime) else "finish"


def repair(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Code mode: the model gets its own code and the exact error, and returns the fix."""
    prompt = repair_prompt(
        state.masked_request,
        state.code,
        state.failed_stage or "validation",
        state.error or "",
        state.error_line,
    )
    return {**_ask_code(runtime, prompt), "repairs": state.repairs + 1}


# --------------------------------------------------------------------------------------------
# Nodes: both modes
# --------------------------------------------------------------------------------------------


def backtest(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """A real backtest of the code in the sandboxed subprocess."""
    ctx = runtime.context
    symbol = (state.spec or {}).get("symbol") or ctx.symbol
    start = state.start or (state.spec or {}).get("start")
    end = state.end or (state.spec or {}).get("end")
    result = run_in_sandbox(
        state.code,
        symbol=symbol,
        csv_path=str(dataset_path(ctx.user_id, state.dataset_id)) if state.dataset_id else None,
        user_id=ctx.user_id,
        strategy_name=state.strategy_class,
        timeout_s=ctx.timeout_s,
        memory_mb=ctx.memory_mb,
        start=start,
        end=end,
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


def index(state: State) -> dict[str, Any]:
    """Index the backtest and its code in the user's stores; a down Chroma is only a note."""
    assert state.metrics is not None
    try:
        get_retriever().on_backtest_completed(state.metrics)
    except RetrievalUnavailableError as exc:
        log.warning("strategy_builder: indexing skipped: %s", exc)
        return {"ok": True, "notes": [f"not indexed (retrieval unavailable): {exc}"]}
    return {"ok": True}


def finish(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Close the run: the answer, its usage, every output field (LangGraph omits unwritten)."""
    update: dict[str, Any] = {
        f.name: getattr(state, f.name) for f in fields(OutputState) if f.name != "notes"
    }
    update.update(asdict(get_ledger().totals(state.call_ids)), notes=[])
    if state.ok and not state.answer:
        update["answer"] = spec_answer(state, runtime.context)
    if state.failed_stage is not None:
        update["ok"] = False
        update["notes"] = [f"gave up after {state.repairs} repair(s): {state.failed_stage} failed"]
        if not state.answer:
            update["answer"] = f"Could not build it: {state.error}"
    elif runtime.context.mode == "spec" and not (state.ok or state.blocked) and state.expressible:
        if state.unbacked and state.answer:  # refused by the guard, with the closest spec
            update.update(failed_stage="spec", error=state.answer)
            return _masked(update)
        if state.spec is None:
            error = f"no valid spec after {state.repairs} repair(s): {state.spec_error}"
        else:
            error = "the spec still differs from the request: " + "; ".join(state.discrepancies)
        update.update(failed_stage="spec", error=error, answer=f"Could not build it: {error}")
    return _masked(update)


_WORDS_OUT = ("answer", "error", "assumptions", "discrepancies", "unsupported", "notes")


def _masked(update: dict[str, Any]) -> dict[str, Any]:
    """The run's words masked before they leave (`mask_output`: an explanation may repeat
    personal data from the request or the model); the code already ran and stays as it is."""
    for key in _WORDS_OUT:
        value = update.get(key)
        if isinstance(value, str):
            update[key] = mask_output(value)[0]
        elif isinstance(value, list):
            update[key] = [mask_output(v)[0] if isinstance(v, str) else v for v in value]
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
    mode: Literal["spec", "code"] = "spec",
    symbol: str = "GOOG",
    dataset_id: str | None = None,
    csv_path: str | Path | None = None,
    start: str | None = None,
    end: str | None = None,
    max_repairs: int = 2,
    max_tokens: int = 600,
    use_rag: bool = True,
    draft_in_code: bool = True,
) -> StrategyBuildResult:
    """Run the graph for one request; a model the policy forbids raises before any work.
    `csv_path` is for code running in its own process (a notebook): the file is read there and
    registered as one of the user's datasets; graph inputs and REST take a `dataset_id` only."""
    validate_model(SERVICE, model)
    if csv_path is not None:
        dataset_id = register_dataset(user_id, Path(csv_path).read_bytes(), name="csv").id
    ctx = Context(
        user_id=user_id,
        model=model,
        mode=mode,
        symbol=symbol,
        max_repairs=max_repairs,
        max_tokens=max_tokens,
        use_rag=use_rag,
        draft_in_code=draft_in_code,
    )
    inp = InputState(request=request, dataset_id=dataset_id, start=start, end=end)
    return _RESULT.validate_python(graph.invoke(inp, context=ctx))


# --------------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------------

builder = StateGraph(
    State, context_schema=Context, input_schema=InputState, output_schema=OutputState
)
builder.add_node(govern)
builder.add_node(retrieve)
builder.add_node(draft)
builder.add_node(choose_style)
builder.add_node(fill_spec)
builder.add_node(check_spec)
builder.add_node(repair_spec)
builder.add_node(refuse)
builder.add_node("compile", compile_node)
builder.add_node(generate)
builder.add_node(validate)
builder.add_node(repair)
builder.add_node(backtest)
builder.add_node(index)
builder.add_node(finish)
builder.add_edge(START, "govern")
builder.add_conditional_edges("govern", route_after_governance)
builder.add_conditional_edges("retrieve", route_mode)
builder.add_conditional_edges("draft", route_after_draft)
builder.add_conditional_edges("choose_style", route_after_style)
builder.add_edge("fill_spec", "check_spec")
builder.add_conditional_edges("check_spec", route_after_spec)
builder.add_edge("repair_spec", "check_spec")
builder.add_edge("refuse", "finish")
builder.add_conditional_edges("compile", route_after_compile)
builder.add_edge("generate", "validate")
builder.add_conditional_edges("validate", route_after_validation)
builder.add_edge("repair", "validate")
builder.add_conditional_edges("backtest", route_after_backtest)
builder.add_edge("index", "finish")
builder.add_edge("finish", END)
graph = builder.compile(name=SERVICE)
