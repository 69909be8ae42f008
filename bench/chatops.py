"""Chat-ops benchmark: does the chat answer from the right tool, with the right fact, in prose?

Run: `python -m bench.chatops [--set main|fresh|fresh2|fresh3|fresh4] [--split tune|heldout|all]
[--model M] [--limit N]` (not in CI; ~10–60 s a question on the embedded models, 2 cores). `--set
fresh` runs `bench/chat_cases_fresh.py` (written without reading the chat's prompts; its follow-ups
send their earlier turns first on the same thread, only the last turn is judged) into
`bench/results/chatops_fresh.json`; `--set fresh2` runs the second such set,
`bench/chat_cases_fresh2.py`, into `bench/results/chatops_fresh2.json`; `--set fresh3` the third,
`bench/chat_cases_fresh3.py`, into `bench/results/chatops_fresh3.json`; `--set fresh4` the
fourth, `bench/chat_cases_fresh4.py`, into `bench/results/chatops_fresh4.json`. Each case of
`bench/chat_cases.py` is one turn of `graphs.chatops_advanced.chat_turn` on the configured backend,
in a fresh data dir, as its own user whose store holds only the demo corpus (`generate_corpus` +
`bulk_index`, never the benchmark's outputs) and whose ledger holds a few billed calls
(`USAGE_HISTORY`). The turn's messages are read back from the thread's checkpoint to see which tools
ran with which arguments. The judge is this module's own, independent of the service:

- right_tool: the case's tool (or one of its `also` tools) was called; for a concept question,
  no tool (or only an `also` tool);
- right_args: one such call satisfies the case's argument constraints;
- fact_in_answer: the final reply states the fact computed from the records, market data,
  reference strategies or ledger rows (`fact_in_answer`: numbers as roundings, names and
  keywords case- and spacing-insensitive);
- raw_tool_call_reply: the reply looks like a tool call written as text or is bare JSON
  (`raw_tool_call`, written here, not `agents.llm.tool_calls`).

Success = right tool and the fact in the answer. Both halves are reported; prompts and tool
descriptions are tuned on `tune` only. Results go to `bench/results/chatops.json`.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import platform
import re
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bench.chat_cases import (
    CASES,
    MISSING,
    USAGE_HISTORY,
    ChatCase,
    Check,
    Expected,
    Fact,
    Num,
    Term,
    World,
)
from bench.chat_cases_fresh import FRESH_CASES, FreshCase
from bench.chat_cases_fresh2 import FRESH2_CASES
from bench.chat_cases_fresh3 import FRESH3_CASES
from bench.chat_cases_fresh4 import FRESH4_CASES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")
RESULTS = Path(__file__).resolve().parent / "results" / "chatops.json"
RESULTS_FRESH = RESULTS.with_name("chatops_fresh.json")
RESULTS_FRESH2 = RESULTS.with_name("chatops_fresh2.json")
RESULTS_FRESH3 = RESULTS.with_name("chatops_fresh3.json")
RESULTS_FRESH4 = RESULTS.with_name("chatops_fresh4.json")
SETS: dict[str, tuple[ChatCase, ...]] = {
    "main": CASES,
    "fresh": FRESH_CASES,
    "fresh2": FRESH2_CASES,
    "fresh3": FRESH3_CASES,
    "fresh4": FRESH4_CASES,
}

TOOL_NAMES: tuple[str, ...] = (
    "search_my_backtests",
    "top_backtests",
    "get_backtest",
    "compare_backtests",
    "run_backtest",
    "run_strategy_spec",
    "list_my_strategies",
    "market_data",
    "explain_metric",
    "my_usage",
    "my_spend",
)
"""The chat graph's tools by name (tests/unit/test_bench_chatops.py checks it against TOOLS)."""

# --------------------------------------------------------------------------------------------
# The raw tool-call detector (the bench's own)
# --------------------------------------------------------------------------------------------

_FENCED = re.compile(r"^```[\w-]*\s*(.*?)\s*```$", re.DOTALL)
_NAME_AND_ARGS = (
    re.compile(r"""["']?(?:name|tool|tool_name|function)["']?\s*:\s*["']?[A-Za-z_]\w*"""),
    re.compile(r"""["'](?:arguments|args|parameters|params|input)["']\s*:"""),
)
_MARKERS = re.compile(r"""<tool_call>|</tool_call>|["'](?:tool_calls|function_call)["']\s*:""")
_YAML_ARGS = re.compile(r"^\s*[-*]?\s*(?:arguments|args|parameters)\s*:\s*(?:\{.*)?$", re.M)


def _literal(body: str) -> Any:
    """`body` decoded as JSON or a Python literal, else None."""
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return ast.literal_eval(body)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def raw_tool_call(text: str, tool_names: Iterable[str] = TOOL_NAMES) -> str | None:
    """Why `text` is a raw tool call or raw JSON rather than an answer, or None.

    Raw: a bare JSON object or list (fenced or not, also cut off: it starts with `{"`); a
    `"name": …` beside an `"arguments": …` anywhere; `<tool_call>` tags or `"tool_calls":`;
    a YAML-style echo (a line `name: <tool>` or `tool: <tool>`, or a line `arguments:`);
    a Python-style call `top_backtests(metric="sharpe")`; a JSON key that is a tool name.
    Prose that mentions a tool by name, or has `label: value` phrases, is not raw.
    """
    s = text.strip()
    if not s:
        return None
    names = "|".join(re.escape(n) for n in tool_names)
    fenced = _FENCED.match(s)
    body = fenced.group(1) if fenced else s
    if body[:1] in "{[" and (
        isinstance(_literal(body), dict | list) or re.match(r"""^[\[{]\s*["'{\[]""", body)
    ):
        return "bare JSON"
    if all(p.search(s) for p in _NAME_AND_ARGS):
        return "name and arguments"
    if _MARKERS.search(s):
        return "tool-call markers"
    if names and re.search(
        rf"""^\s*[-*]?\s*["']?(?:name|tool)["']?\s*:\s*[`"']?(?:{names})\b""", s, re.M
    ):
        return "a `name: <tool>` line"
    if _YAML_ARGS.search(s):
        return "an `arguments:` line"
    if names and re.search(rf"""\b(?:{names})\s*\(\s*(?:\w+\s*=|["'{{\[)])""", s):
        return "a Python-style call"
    if names and re.search(rf"""["'](?:{names})["']\s*:\s*\{{""", s):
        return "a tool name as a JSON key"
    return None


# --------------------------------------------------------------------------------------------
# The fact matcher
# --------------------------------------------------------------------------------------------

_ID = re.compile(r"\b[a-z]{2,5}-[0-9a-f]{8,}\b")
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\$?\d[\d,]*(?:\.\d+)?")
_STRIP = re.compile(r"[\s\-_,.·'’`*]+")


def numbers_of(text: str) -> list[tuple[Decimal, int]]:
    """Every number written in `text` (ids left out) with its count of decimals."""
    out = []
    for token in _NUMBER.findall(_ID.sub(" ", text)):
        t = token.replace("$", "").replace(",", "").replace("−", "-").lstrip("+")
        try:
            d = Decimal(t)
        except InvalidOperation:
            continue
        exp = d.as_tuple().exponent
        out.append((d, -exp if isinstance(exp, int) and exp < 0 else 0))
    return out


def number_stated(num: Num, text: str) -> bool:
    """A number in `text` is a rounding of `num.value` (to the digits written) within `rel`."""
    want = Decimal(str(num.value))
    for got, decimals in numbers_of(text):
        a, b = (abs(got), abs(want)) if num.signless else (got, want)
        if not num.signless and got.is_signed() != want.is_signed() and a != 0:
            continue
        places = -decimals
        if decimals == 0 and got != 0:  # "1580" may be a rounding to tens
            digits = str(abs(int(got)))
            places = len(digits) - len(digits.rstrip("0"))
        half_unit = Decimal(5) * Decimal(10) ** (places - 1)
        if abs(a - b) > half_unit + Decimal("1e-12"):
            continue
        if b == 0 or abs(a - b) / abs(b) <= Decimal(str(num.rel)):
            return True
    return False


def squash(text: str) -> str:
    """Lower case without spaces, hyphens, underscores, commas, dots or quotes."""
    return _STRIP.sub("", text.lower())


def term_in(term: Term, text: str) -> bool:
    if isinstance(term, Num):
        return number_stated(term, text)
    return squash(term) in squash(text)


def fact_matches(fact: Fact, text: str) -> bool:
    hits = sum(any(term_in(t, text) for t in group) for group in fact.groups)
    need = len(fact.groups) if fact.need is None else fact.need
    return hits >= need


def fact_in_answer(expected: Expected, text: str) -> str | None:
    """The label of the first expected fact `text` states, or None."""
    for fact in expected:
        if fact_matches(fact, text):
            return fact.label or "fact"
    return None


# --------------------------------------------------------------------------------------------
# Argument matching and the turn's calls
# --------------------------------------------------------------------------------------------


def args_match(checks: Mapping[str, Check], args: Mapping[str, Any]) -> bool:
    """Every constraint holds: per argument (MISSING when not passed), "*" on the whole call."""
    for name, check in checks.items():
        value = dict(args) if name == "*" else args.get(name, MISSING)
        try:
            if not check(value):
                return False
        except Exception:  # a predicate that cannot read the value: the value is wrong
            return False
    return True


@dataclass(frozen=True)
class Call:
    name: str
    args: dict[str, Any]
    ok: bool | None  # None: no result (the turn ended first)


def turn_of(messages: Sequence[Any]) -> list[Any]:
    """The messages of the last turn: from the latest human message on."""
    from langchain_core.messages import HumanMessage

    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    return list(messages[starts[-1] :]) if starts else list(messages)


def calls_of(turn: Sequence[Any]) -> list[Call]:
    """The tool calls of a turn, each with whether its result was a success."""
    from langchain_core.messages import AIMessage, ToolMessage

    status = {m.tool_call_id: m.status != "error" for m in turn if isinstance(m, ToolMessage)}
    return [
        Call(c["name"], dict(c.get("args") or {}), status.get(c.get("id") or ""))
        for m in turn
        if isinstance(m, AIMessage)
        for c in m.tool_calls
    ]


def visible_texts(turn: Sequence[Any]) -> list[str]:
    """What a client reading the thread sees of the turn's model messages."""
    from langchain_core.messages import AIMessage

    out = []
    for m in turn:
        if isinstance(m, AIMessage):
            text = m.content if isinstance(m.content, str) else json.dumps(m.content)
            if text.strip():
                out.append(text)
    return out


def judge(case: ChatCase, world: World, answer: str, turn: Sequence[Any]) -> dict[str, Any]:
    """The verdicts of one turn (see the module docstring)."""
    calls = calls_of(turn)
    right = {case.tool, *case.also} - {None}
    names = [c.name for c in calls]
    if case.tool is None:
        right_tool = all(n in right for n in names)
    else:
        right_tool = any(n in right for n in names)
    checks = case.checks(world.records)
    candidates = [c for c in calls if c.name in right]
    right_args = (case.tool is None and not calls) or any(
        args_match(checks, c.args) for c in candidates
    )
    expected = case.fact(world)
    fact = fact_in_answer(expected, answer)
    raw_in_thread = [r for r in (raw_tool_call(t) for t in visible_texts(turn)) if r]
    return {
        "right_tool": right_tool,
        "right_args": right_args,
        "fact_in_answer": fact is not None,
        "fact_matched": fact,
        "success": right_tool and fact is not None,
        "raw_tool_call_reply": raw_tool_call(answer),
        "raw_in_thread": raw_in_thread,
        "calls": [{"name": c.name, "args": c.args, "ok": c.ok} for c in calls],
        "tool_errors": sum(c.ok is False for c in calls),
        "expected": [_describe(f) for f in expected],
    }


def _describe(fact: Fact) -> str:
    def term(t: Term) -> str:
        return f"{t.value:g}" if isinstance(t, Num) else t

    groups = " & ".join("(" + " | ".join(term(t) for t in g) + ")" for g in fact.groups)
    need = f" [{fact.need} of]" if fact.need is not None else ""
    return f"{fact.label}{need}: {groups}"


# --------------------------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------------------------


def _seed(user: str) -> tuple[Any, ...]:
    """The user's store holds the demo corpus; the ledger a few billed calls (USAGE_HISTORY)."""
    from agents.quant.corpus import generate_corpus
    from agents.rag.store import get_retriever
    from agents.usage.ledger import LedgerRow, get_ledger

    mine = tuple(r.model_copy(update={"user_id": user}) for r in generate_corpus(1, per_user=15))
    get_retriever().bulk_index(mine)
    now = datetime.now(UTC)
    for days, service, model, tokens_in, tokens_out, cost in USAGE_HISTORY:
        get_ledger().record(
            LedgerRow(
                request_id=f"bench-seed-{uuid.uuid4().hex}",
                user_id=user,
                service=service,
                model=model,
                served_model=model,
                route="openai",
                cost_nanousd=cost,
                list_price_nanousd=cost,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                ts=now - timedelta(days=days),
            )
        )
    return mine


def user_of(case: ChatCase) -> str:
    return f"bench-chat-{case.id}"


class _Notes(logging.Handler):
    """The chat graph's log lines of one turn (replies it did not show, and why)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage()[:400])


def run_case(case: ChatCase, *, model: str | None, **knobs: Any) -> dict[str, Any]:
    """One case on a fresh thread; `knobs` are `chat_turn`'s (read_calls)."""
    from agents.usage.ledger import get_ledger
    from graphs.chatops_advanced import chat_turn, graph_with_memory, thread_config

    user = user_of(case)
    records = _seed(user)
    question = case.text(records)
    before = case.prior(records) if isinstance(case, FreshCase) else ()
    out: dict[str, Any] = {"id": case.id, "split": case.split, "lang": case.lang}
    out.update(question=question, expected_tool=case.tool)
    if before:
        out["before"] = list(before)
    notes = _Notes()
    graph_log = logging.getLogger("graphs.chatops_advanced")
    graph_log.addHandler(notes)
    graph_log.setLevel(logging.INFO)
    t0 = time.perf_counter()
    try:
        for earlier in before:  # a follow-up's earlier turns, same thread, not judged
            chat_turn(earlier, user_id=user, thread_id=case.id, model=model, **knobs)
        t0 = time.perf_counter()
        reply = chat_turn(question, user_id=user, thread_id=case.id, model=model, **knobs)
        latency = time.perf_counter() - t0
        state = graph_with_memory().get_state(thread_config(user, case.id)).values
        turn = turn_of(state["messages"])
        world = World(user, records, tuple(get_ledger().rows(user_id=user)), case.budget_usd)
        out.update(judge(case, world, reply.text, turn))
        out.update(
            answer=reply.text,
            answer_source=reply.answer_source,
            model_used=reply.model_used,
        )
    except Exception as exc:  # a crash is the service failing: recorded, not raised
        latency = time.perf_counter() - t0
        out.update(success=False, right_tool=False, right_args=False, fact_in_answer=False)
        out.update(raw_tool_call_reply=None, error=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        graph_log.removeHandler(notes)
    out["latency_s"] = round(latency, 2)
    out["not_shown"] = notes.lines
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def half(rs: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(rs)

        def count(key: str) -> int:
            return sum(bool(r.get(key)) for r in rs)

        ko = [r for r in rs if r["lang"] == "ko"]
        lat = [float(r["latency_s"]) for r in rs]
        return {
            "questions": n,
            "success": count("success"),
            "success_rate": round(count("success") / n, 3) if n else None,
            "right_tool": count("right_tool"),
            "right_args": count("right_args"),
            "fact_in_answer": count("fact_in_answer"),
            "raw_tool_call_replies": count("raw_tool_call_reply"),
            "raw_in_thread": sum(bool(r.get("raw_in_thread")) for r in rs),
            "tool_errors": sum(int(r.get("tool_errors") or 0) for r in rs),
            "crashes": count("error"),
            "korean_success": f"{sum(bool(r.get('success')) for r in ko)}/{len(ko)}",
            "answer_sources": dict(Counter(str(r.get("answer_source")) for r in rs)),
            "models_used": sorted({str(r.get("model_used")) for r in rs}),
            "median_latency_s": round(statistics.median(lat), 2) if lat else None,
        }

    return {
        split: half([r for r in runs if r["split"] == split]) for split in ("tune", "heldout")
    } | {"all": half(runs)}


def _budgets(cases: Iterable[ChatCase]) -> None:
    """The budget cases' users get their daily budget (read with the settings, so set first)."""
    budgets = {user_of(c): c.budget_usd for c in cases if c.budget_usd is not None}
    if budgets:
        os.environ["QUANT_GENAI_USER_BUDGETS_USD"] = json.dumps(budgets)


def merged_report(
    path: Path,
    split: str,
    this: dict[str, Any],
    runs: list[dict[str, Any]],
    cases: Sequence[ChatCase] = CASES,
) -> dict[str, Any]:
    """The results file with this run merged in: one report per backend and model, where this
    run's cases replace the same cases of earlier runs (so the tune half, then the held-out
    half, end up in one report), and a headline of every report's halves."""
    earlier: dict[str, Any] = {}
    if path.exists():
        try:
            earlier = json.loads(path.read_text("utf-8"))
        except ValueError:
            earlier = {}
    reports: dict[str, Any] = dict(earlier.get("reports") or {})
    key = f"{this['backend']}: {this['model'] or 'policy default'}"
    old = reports.get(key) or {}
    kept = [r for r in old.get("runs", []) if r["id"] not in set(this["cases"])]
    order = {c.id: i for i, c in enumerate(cases)}
    all_runs = sorted([*kept, *runs], key=lambda r: order.get(r["id"], len(order)))
    summary = summarise(all_runs)
    reports[key] = {
        "backend": this["backend"],
        "model": this["model"],
        "sessions": [*old.get("sessions", []), {"split": split, **this}],
        "summary": summary,
        "runs": all_runs,
    }
    headline = {
        k: {
            half: {
                f: r["summary"][half][f]
                for f in ("questions", "success_rate", "raw_tool_call_replies", "median_latency_s")
            }
            | {"served_by": r["summary"][half]["models_used"]}
            for half in ("tune", "heldout")
        }
        for k, r in reports.items()
    }
    return {
        "benchmark": "chatops",
        "goal": "right tool + right fact >= 90%, 0 raw tool-call replies (issue 9)",
        "headline": headline,
        "reports": reports,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--set",
        choices=tuple(SETS),
        default="main",
        help="main: bench/chat_cases.py; fresh: bench/chat_cases_fresh.py, written without "
        "reading the chat's prompts (results in bench/results/chatops_fresh.json); fresh2: "
        "bench/chat_cases_fresh2.py, a second such set (bench/results/chatops_fresh2.json); "
        "fresh3: bench/chat_cases_fresh3.py, a third (bench/results/chatops_fresh3.json); fresh4: "
        "bench/chat_cases_fresh4.py, a fourth (bench/results/chatops_fresh4.json)",
    )
    parser.add_argument("--split", choices=("tune", "heldout", "all"), default="all")
    parser.add_argument("--model", default=None, help="chatops_advanced model (policy default)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--only", default=None, help="comma-separated case ids")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a fresh temp dir")
    parser.add_argument("--out", type=Path, default=None, help="default: by --set")
    parser.add_argument(
        "--no-reader",
        action="store_true",
        help="the model chooses every call (no call read from the message in code): its own "
        "tool choice, measured",
    )
    args = parser.parse_args(argv)
    knobs: dict[str, Any] = {}
    if args.no_reader:
        knobs["read_calls"] = False
    os.environ["QUANT_GENAI_DATA_DIR"] = str(
        args.data_dir or Path(tempfile.mkdtemp(prefix="qg-bench-chatops-"))
    )
    by_set = {
        "fresh": RESULTS_FRESH,
        "fresh2": RESULTS_FRESH2,
        "fresh3": RESULTS_FRESH3,
        "fresh4": RESULTS_FRESH4,
    }
    out = args.out or by_set.get(args.set, RESULTS)
    cases = [c for c in SETS[args.set] if args.split in ("all", c.split)]
    if args.only:
        cases = [c for c in cases if c.id in args.only.split(",")]
    cases = cases[: args.limit]
    _budgets(cases)
    from agents import registry  # after the environment is set: settings are read on first use
    from agents.settings import get_settings

    registry.reset()
    started = datetime.now(UTC)
    runs = []
    for i, case in enumerate(cases, 1):
        run = run_case(case, model=args.model, **knobs)
        runs.append(run)
        verdict = "success" if run["success"] else "FAIL"
        flags = "".join(
            f
            for f, k in (("T", "right_tool"), ("A", "right_args"), ("F", "fact_in_answer"))
            if run.get(k)
        )
        raw = " RAW" if run.get("raw_tool_call_reply") else ""
        head = f"[{i:2d}/{len(cases)}] {run['latency_s']:6.1f}s {verdict:7s} {flags:3s}{raw}"
        print(f"{head} {case.id} {run['question'][:60]}", flush=True)
    this = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "backend": get_settings().backend,
        "model": args.model,
        "set": args.set,
        "knobs": knobs,
        "cases": [r["id"] for r in runs],
    }
    report = merged_report(out, args.split, this, runs, SETS[args.set])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    print(json.dumps(report["headline"], indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
