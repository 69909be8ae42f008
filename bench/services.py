"""The service benchmarks together: each measures its service's job, this only runs them.

Run: `python -m bench.services [--only strategies,chatops,narrative] [--split tune|heldout|all]
[--limit N]` (not in CI; hours on 2 cores), or `--summarise` to rebuild the table from the
results already written. Each benchmark keeps its own cases, its held-out half and its
independent judge, and writes its own results (`bench/results/<name>.json`):

- `bench.strategies` — the built strategy's trades match a hand-written reference, honest
  refusals for what no spec can express, silent substitutes counted;
- `bench.chatops` — the right tool with the right arguments, the expected fact in the answer,
  no raw tool-call text;
- `bench.narrative` — every number stands with its own metric (an independent label-aware
  checker), buy-and-hold covered, the model's prose accepted.

A benchmark module that is absent is skipped with a message; one that crashes is recorded as
failed. The combined table (both halves, each goal of the issue and whether it is met) goes to
`bench/results/services.json`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS = RESULTS_DIR / "services.json"
BENCHES = ("strategies", "chatops", "narrative")
HEADLINES: dict[str, tuple[str, ...]] = {
    "strategies": ("requests", "success_rate", "substitute", "korean_success", "median_latency_s"),
    "chatops": ("questions", "success_rate", "raw_tool_call_replies", "median_latency_s"),
    "narrative": (
        "reports",
        "label_faithful",
        "buy_and_hold_covered",
        "model_prose_accepted",
        "model_share_of_passages",
        "median_latency_s",
    ),
}
"""The figures of each benchmark's summary that go into the table."""
GOALS: dict[tuple[str, str], tuple[str, float]] = {
    ("strategies", "success_rate"): (">=", 0.8),
    ("strategies", "substitute"): ("<=", 1),
    ("strategies", "median_latency_s"): ("<=", 30),
    ("chatops", "success_rate"): (">=", 0.9),
    ("chatops", "raw_tool_call_replies"): ("<=", 0),
    ("narrative", "label_faithful"): (">=", 1.0),
    ("narrative", "buy_and_hold_covered"): (">=", 1.0),
    ("narrative", "model_prose_accepted"): (">=", 0.7),
}
"""The issue's goals on the embedded default, judged on the held-out half."""


def run_bench(name: str, argv: list[str]) -> dict[str, Any]:
    """Run one benchmark's `main(argv)`, imported by name when it is asked for."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except ImportError as exc:
        if getattr(exc, "name", None) == f"bench.{name}":
            print(f"[services] bench/{name}.py is not there: skipped", flush=True)
            return {"status": "skipped", "reason": f"bench/{name}.py does not exist"}
        print(f"[services] bench.{name} cannot be imported ({exc}): failed", flush=True)
        return {"status": "failed", "error": f"ImportError: {exc}"[:300]}
    print(f"[services] python -m bench.{name} {' '.join(argv)}", flush=True)
    try:
        module.main(argv)
    except Exception as exc:  # one benchmark failing must not lose the others' figures
        traceback.print_exc()
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ran"}


def summary_of(name: str) -> dict[str, Any] | None:
    """The benchmark's own summary, from the results it wrote."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text("utf-8"))
    summary = data.get("summary")
    return summary if isinstance(summary, dict) else None


def _met(name: str, key: str, value: Any) -> bool | None:
    goal = GOALS.get((name, key))
    if goal is None or not isinstance(value, int | float):
        return None
    op, bound = goal
    return value >= bound if op == ">=" else value <= bound


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def table(summaries: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per benchmark figure: both halves, the goal, and whether held-out meets it."""
    rows = []
    for name, found in summaries.items():
        summary = found or {}
        for key in HEADLINES.get(name, ()) if summary else ():
            tune, held = (_round(summary.get(h, {}).get(key)) for h in ("tune", "heldout"))
            goal = GOALS.get((name, key))
            rows.append(
                {
                    "bench": name,
                    "figure": key,
                    "tune": tune,
                    "heldout": held,
                    "goal": f"{goal[0]} {goal[1]}" if goal else None,
                    "heldout_meets_goal": _met(name, key, held),
                }
            )
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    cols = ("bench", "figure", "tune", "heldout", "goal", "heldout_meets_goal")
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols] if rows else []
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    parser.add_argument("--split", choices=("tune", "heldout", "all"), default="all")
    parser.add_argument("--limit", type=int, default=None, help="first N cases of each")
    parser.add_argument(
        "--summarise", action="store_true", help="only rebuild the table from existing results"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    sub = ["--split", args.split, *(["--limit", str(args.limit)] if args.limit else [])]
    runs = {n: {"status": "summarised"} if args.summarise else run_bench(n, sub) for n in names}
    summaries = {n: summary_of(n) for n in names if runs[n]["status"] != "skipped"}
    for n, found in summaries.items():
        if found is None:  # e.g. results written by an older version of that benchmark
            runs[n]["note"] = f"bench/results/{n}.json has no `summary` with tune/heldout halves"
            print(f"[services] {runs[n]['note']}", flush=True)
    rows = table(summaries)
    report = {
        "benchmark": "services",
        "started_at": started,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "split": args.split,
        "benches": {
            n: {**runs[n], "results": f"bench/results/{n}.json", "summary": summaries.get(n)}
            for n in names
        },
        "table": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    _print(rows)
    return report


if __name__ == "__main__":
    main()
