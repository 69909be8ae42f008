"""Strategy builder benchmark: does the built strategy *behave* as the request asked?

Run: `python -m bench.strategies [--split tune|heldout|all] [--set main|fresh|fresh2]
[--ids g01-g20] [--model M] [--limit N]` (a fresh set's halves are reported apart; not in CI;
~20–60 s a request on the embedded models, 2 cores). Each case of `bench/strategy_cases.py`
goes through `build_strategy` on the configured backend, as its own user whose store holds only
the demo corpus (never the benchmark's own outputs). The judge is independent of the service:

- specific request: success = the service built a strategy and its trades on the case's data
  match the hand-written reference (`behaviour_matches`); a strategy that runs but behaves
  differently is a **silent substitute** unless the service flagged it (then a refusal);
- not expressible: success = an honest refusal (`expressible=False`); a built strategy is a
  silent substitute;
- vague: success = a strategy that trades, with its choices returned as assumptions.

Both halves are reported; prompts and rules are tuned on `tune` only. Results go to
`bench/results/strategies.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")
RESULTS = Path(__file__).resolve().parent / "results" / "strategies.json"


def _generated_trades(code: str, class_name: str, symbol: str) -> Any:
    """The built strategy's trades on the case's data (the code is validated before it runs)."""
    from agents.quant.sandbox import validate_strategy_code
    from bench.strategy_cases import trades_of

    report = validate_strategy_code(code)
    if not report.ok:
        raise ValueError(report.summary())
    namespace: dict[str, Any] = {}
    exec(compile(code, "<strategy>", "exec"), namespace)
    return trades_of(namespace[class_name], symbol)


def judge(case: Any, res: Any) -> str:
    """success / substitute / refused / failed, by what the user wanted."""
    from bench.strategy_cases import behaviour_matches, reference_trades

    if case.kind == "inexpressible":
        if not res.expressible:
            return "success"
        return "substitute" if res.ok else "failed"
    if not res.ok:
        return "refused" if (not res.expressible or res.discrepancies) else "failed"
    if case.kind == "vague":
        trades = res.metrics.num_trades if res.metrics else 0
        return "success" if trades > 0 and res.assumptions else "failed"
    got = _generated_trades(res.code, res.strategy_class, case.symbol)
    return "success" if behaviour_matches(got, reference_trades(case)) else "substitute"


def _seed(user: str) -> None:
    """The user's store holds the demo corpus (someone's real past work), nothing else."""
    from agents.quant.corpus import generate_corpus
    from agents.rag.store import get_retriever

    mine = [r.model_copy(update={"user_id": user}) for r in generate_corpus(1, per_user=15)]
    get_retriever().bulk_index(mine)


def run_case(
    case: Any, *, model: str | None, max_repairs: int, draft_in_code: bool = True
) -> dict[str, Any]:
    from graphs.strategy_builder import build_strategy

    user = f"bench-{case.id}"
    _seed(user)
    t0 = time.perf_counter()
    try:
        res = build_strategy(
            case.request,
            user_id=user,
            model=model,
            max_repairs=max_repairs,
            symbol=case.symbol,
            draft_in_code=draft_in_code,
        )
        verdict = judge(case, res)
        out: dict[str, Any] = {
            "verdict": verdict,
            "ok": res.ok,
            "expressible": res.expressible,
            "failed_stage": res.failed_stage,
            "error": (res.error or "")[:300] or None,
            "repairs": res.repairs,
            "spec": res.spec,
            "assumptions": res.assumptions,
            "discrepancies": res.discrepancies,
            "num_trades": res.metrics.num_trades if res.metrics else None,
            "model_used": res.model_used,
            "served_by": res.served_by,
            "drafted_in_code": (res.served_by or "").startswith("code:"),
            "tokens": res.input_tokens + res.output_tokens,
        }
    except Exception as exc:  # a crash is the service failing: recorded, not raised
        out = {"verdict": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
    out.update(
        id=case.id,
        split=case.split,
        lang=case.lang,
        kind=case.kind,
        request=case.request,
        latency_s=round(time.perf_counter() - t0, 2),
    )
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def half(rs: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(rs)
        verdicts = ("success", "substitute", "refused", "failed")
        count = {v: sum(r["verdict"] == v for r in rs) for v in verdicts}
        lat = [float(r["latency_s"]) for r in rs]
        return {
            "requests": n,
            **count,
            "success_rate": round(count["success"] / n, 3) if n else None,
            "korean_success": f"{sum(r['verdict'] == 'success' for r in rs if r['lang'] == 'ko')}"
            f"/{sum(r['lang'] == 'ko' for r in rs)}",
            "median_latency_s": statistics.median(lat) if lat else None,
            "drafted_in_code": sum(bool(r.get("drafted_in_code")) for r in rs),
        }

    splits = dict.fromkeys(r["split"] for r in runs)
    return {split: half([r for r in runs if r["split"] == split]) for split in splits} | {
        "all": half(runs)
    }


def _half(name: str, case_id: str) -> str:
    """A fresh set's halves: its first 20 were used to find bugs, the last 20 kept unseen."""
    return f"{name} tune" if int(case_id[1:]) <= 20 else f"{name} unseen"


def _split(name: str, case: Any) -> str:
    """The half a case is reported in: its own `split` in the main set, `_half` in a fresh one."""
    return str(case.split).replace("heldout", "unseen") if name == "main" else _half(name, case.id)


def _ids(spec: str) -> set[str]:
    """'g01-g20,f03' -> {'g01', ..., 'g20', 'f03'} (a range keeps its prefix and width)."""
    out: set[str] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, _, hi = part.partition("-")
        if not hi:
            out.add(lo)
            continue
        prefix = lo.rstrip("0123456789")
        width = len(lo) - len(prefix)
        start, stop = int(lo[len(prefix) :]), int(hi[len(prefix) :])
        out.update(f"{prefix}{n:0{width}d}" for n in range(start, stop + 1))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=("tune", "heldout", "all"), default="all")
    parser.add_argument("--model", default=None, help="strategy_builder model (policy default)")
    parser.add_argument("--max-repairs", type=int, default=2)
    parser.add_argument(
        "--no-draft", action="store_true", help="the model fills every spec (no code draft)"
    )
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--ids",
        default=None,
        help="only these case ids, e.g. 'g01-g20' (a tune half) or 'f03,f07'",
    )
    parser.add_argument(
        "--set",
        choices=("main", "fresh", "fresh2", "fresh3"),
        default="main",
        help="main: bench/strategy_cases.py; fresh: bench/strategy_cases_fresh.py, written "
        "after the service by someone who did not read its request reader (report only); "
        "fresh2: bench/strategy_cases_fresh2.py, a second such set (fresh has been tuned on); "
        "fresh3: bench/strategy_cases_fresh3.py, a third (fresh2's first half was tuned on)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a fresh temp dir")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ["QUANT_GENAI_DATA_DIR"] = str(
        args.data_dir or Path(tempfile.mkdtemp(prefix="qg-bench-strategies-"))
    )
    from agents import registry  # after the data dir is set: settings are read on first use
    from agents.settings import get_settings
    from bench.strategy_cases import CASES

    registry.reset()
    if args.set == "fresh":
        from bench.strategy_cases_fresh import FRESH_CASES

        cases = [dataclasses.replace(c, split="fresh") for c in FRESH_CASES]
    elif args.set == "fresh2":
        from bench.strategy_cases_fresh2 import FRESH2_CASES

        cases = list(FRESH2_CASES)  # already split "fresh2"
    elif args.set == "fresh3":
        from bench.strategy_cases_fresh3 import FRESH3_CASES

        cases = list(FRESH3_CASES)  # already split "fresh3"
    else:
        cases = list(CASES)
    if args.split != "all":  # a fresh set's halves are by id (`_half`): tune, unseen
        half = {"tune": "tune", "heldout": "unseen"}[args.split]
        cases = [c for c in cases if _split(args.set, c).endswith(half)]
    cases = cases[: args.limit]
    if args.ids:
        wanted = _ids(args.ids)
        cases = [c for c in cases if c.id in wanted]
    started = datetime.now(UTC)
    runs = []
    for i, case in enumerate(cases, 1):
        run = run_case(
            case, model=args.model, max_repairs=args.max_repairs, draft_in_code=not args.no_draft
        )
        if args.set != "main":  # each half reported on its own
            run["split"] = _half(args.set, case.id)
        runs.append(run)
        head = f"[{i:2d}/{len(cases)}] {run['latency_s']:6.1f}s {run['verdict']:10s}"
        print(f"{head} {case.id} {case.request[:60]}", flush=True)
    report = {
        "benchmark": "strategies",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "backend": get_settings().backend,
        "model": args.model,
        "draft_in_code": not args.no_draft,
        "set": args.set,
        "local_model_path": os.environ.get("QUANT_GENAI_LOCAL_MODEL_PATH"),
        "summary": summarise(runs),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
