"""Service benchmark: how often the strategy builder turns words into a strategy that runs.

Run: `python -m bench.services [--limit N] [--max-repairs 2] [--model gpt-4o]` (not in CI).
A fixed set of natural-language requests goes through `build_strategy` on the configured
backend (the embedded 0.5B model when no key is set), one user, a fresh data directory, so the
user's stores grow as requests succeed (RAG as in real use). A success is valid code whose real
backtest ran within the repair budget. Results go to `bench/results/services.json`.
"""

from __future__ import annotations

import argparse
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
RESULTS = Path(__file__).resolve().parent / "results" / "services.json"

STRATEGY_REQUESTS: tuple[str, ...] = (
    "an SMA crossover strategy with fast 10 and slow 30",
    "an EMA crossover with 12 and 26 day averages",
    "buy when the 50-day moving average crosses above the 200-day, sell on the opposite cross",
    "RSI mean reversion: buy below 30, sell above 70, 14-day RSI",
    "buy when RSI(7) drops under 20 and exit when it rises over 60",
    "Bollinger band reversion: buy a close under the lower band (20, 2), exit at the middle band",
    "buy when the close breaks above the upper Bollinger band, exit below the middle band",
    "MACD crossover: long when MACD crosses above its signal line, flat when it crosses below",
    "a Donchian channel breakout: buy a new 20-day high, exit on a new 10-day low",
    "momentum: hold while the 20-day rate of change is positive",
    "buy when the 10-day return is above 5 percent, sell when it turns negative",
    "buy and hold",
    "a trend filter: only hold when the close is above the 100-day SMA",
    "buy when price is 5% below its 20-day average and sell when it gets back to the average",
    "triple moving average: long when the 5-day > 20-day > 60-day SMA, otherwise flat",
    "buy after three consecutive down days, sell after two up days",
    "go long when today's close is the highest close of the last 50 days, exit after a 10% "
    "drop from the entry",
    "a volatility breakout: buy when the close exceeds yesterday's close plus half of the "
    "10-day average true range",
    "mean reversion on z-score of price vs 20-day mean: buy below -2, exit above 0",
    "buy when the 5-day EMA crosses above the 20-day EMA and RSI(14) is below 70",
    "stochastic oscillator: buy when %K(14) crosses above 20, sell when it crosses below 80",
    "sell short when the 10-day SMA crosses below the 30-day SMA, cover on the cross back up",
    "long when the weekly-like 25-day momentum is positive and the close is above the 50-day SMA",
    "a rate of change strategy with a 12-day lookback and a 2 percent threshold",
    "buy dips: enter when the close falls 3% in one day, exit after 5 bars",
    "use a 30-day moving average with a 2% band: buy above the upper band, exit below the "
    "lower band",
    "buy when volume is twice its 20-day average and the close is up on the day",
    "a Keltner channel breakout with a 20-day EMA and 2 times the 10-day average range",
    "go long when the 14-day RSI crosses above 50 and exit when it crosses below 50",
    "dual momentum: hold when both the 60-day and 120-day returns are positive",
    "buy when the close is above the 20-day high of the previous bars, stop out with a 5% "
    "trailing stop",
    "an MACD histogram strategy: buy when the histogram turns positive, sell when it turns "
    "negative",
)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_strategy_builder(
    requests: list[str], *, model: str | None, max_repairs: int, max_tokens: int, user_id: str
) -> dict[str, Any]:
    """Each request once, in order; the summary and every request's outcome."""
    from graphs.strategy_builder import build_strategy

    runs: list[dict[str, Any]] = []
    for i, request in enumerate(requests, 1):
        t0 = time.perf_counter()
        try:
            res = build_strategy(
                request,
                user_id=user_id,
                model=model,
                max_repairs=max_repairs,
                max_tokens=max_tokens,
            )
            run: dict[str, Any] = {
                "ok": res.ok,
                "repairs": res.repairs,
                "failed_stage": res.failed_stage,
                "error": (res.error or "")[:300] or None,
                "input_tokens": res.input_tokens,
                "output_tokens": res.output_tokens,
                "rag_used": res.rag_used,
                "model_used": res.model_used,
                "strategy_class": res.strategy_class,
                "num_trades": res.metrics.num_trades if res.metrics else None,
            }
        except Exception as exc:  # a crash is a failure of the service, recorded not raised
            run = {"ok": False, "repairs": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        run.update(request=request, latency_s=round(time.perf_counter() - t0, 2))
        runs.append(run)
        status = "ok" if run["ok"] else f"FAIL ({run.get('failed_stage') or 'error'})"
        print(f"[{i:2d}/{len(requests)}] {run['latency_s']:6.1f}s  {status:20s} {request[:60]}")
    ok = [r for r in runs if r["ok"]]
    latencies = [float(r["latency_s"]) for r in runs]
    tokens = [r["input_tokens"] + r["output_tokens"] for r in runs if "input_tokens" in r]
    return {
        "requests": len(runs),
        "successes": len(ok),
        "success_rate": round(len(ok) / len(runs), 3) if runs else None,
        "first_try_successes": sum(1 for r in ok if r["repairs"] == 0),
        "with_trades": sum(1 for r in ok if (r.get("num_trades") or 0) > 0),
        "latency_s": {
            "median": statistics.median(latencies) if latencies else None,
            "p90": _pct(latencies, 0.9),
        },
        "tokens_per_request": {
            "median": statistics.median(tokens) if tokens else None,
            "median_output": statistics.median(
                r["output_tokens"] for r in runs if "output_tokens" in r
            )
            if tokens
            else None,
        },
        "runs": runs,
    }


def bench_narrative(n: int, *, user_id: str, max_tokens: int = 200) -> dict[str, Any]:
    """Numeric faithfulness of narrative_report over `n` corpus backtests.

    A draft is faithful when every number in it is (a rounding of) a computed fact and it cites
    enough headline facts; the report falls back to the template otherwise. Measured: how often
    the model's first draft is faithful, how often any draft is, and the fallback rate.
    """
    from agents.quant.corpus import generate_corpus
    from graphs.narrative_report import (
        Context,
        InputState,
        allowed_numbers,
        graph,
        unsupported_numbers,
    )

    backtests = [
        r.model_copy(update={"user_id": user_id}) for r in generate_corpus(max(1, n // 15 + 1))
    ][:n]
    runs = []
    for i, bt in enumerate(backtests, 1):
        t0 = time.perf_counter()
        ctx = Context(user_id=user_id, max_tokens=max_tokens)
        out = graph.invoke(InputState(backtest=bt), context=ctx)
        # checked again here, independently of the graph's own verdict
        unsupported = unsupported_numbers(out["report"], allowed_numbers(out["metrics"]))
        runs.append(
            {
                "backtest_id": bt.id,
                "strategy": bt.strategy_name,
                "symbol": bt.symbol,
                "model_prose": not out["used_fallback"],
                "unsupported_in_final": unsupported,
                "rejected_numbers_last_draft": out["rejected_numbers"],
                "latency_s": round(time.perf_counter() - t0, 2),
            }
        )
        how = "model prose" if runs[-1]["model_prose"] else "template fallback"
        print(f"[{i:2d}/{len(backtests)}] {runs[-1]['latency_s']:6.1f}s  {how}")
    prose = [r for r in runs if r["model_prose"]]
    latencies = [float(r["latency_s"]) for r in runs]
    return {
        "reports": len(runs),
        "max_attempts": Context().max_attempts,
        "model_prose_accepted_rate": round(len(prose) / len(runs), 3) if runs else None,
        "template_fallback_rate": round(1 - len(prose) / len(runs), 3) if runs else None,
        "final_reports_with_unsupported_numbers": sum(1 for r in runs if r["unsupported_in_final"]),
        "latency_s": {"median": statistics.median(latencies) if latencies else None},
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="only the first N requests")
    parser.add_argument("--model", default=None, help="strategy_builder model (policy default)")
    parser.add_argument("--max-repairs", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=600)
    parser.add_argument("--user", default="bench")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a fresh temp dir")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--narrative",
        type=int,
        default=0,
        help="only the narrative faithfulness run, over N corpus backtests",
    )
    args = parser.parse_args(argv)

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="qg-bench-services-"))
    os.environ["QUANT_GENAI_DATA_DIR"] = str(data_dir)
    from agents import registry  # after the data dir is set: settings are read on first use
    from agents.settings import get_settings

    registry.reset()
    settings = get_settings()
    started = datetime.now(UTC)
    if args.narrative:
        narrative = bench_narrative(args.narrative, user_id=args.user)
        out = args.out if args.out != RESULTS else RESULTS.with_name("narrative.json")
        out.write_text(
            json.dumps(
                {
                    "benchmark": "narrative_faithfulness",
                    "started_at": started.isoformat(timespec="seconds"),
                    "backend": settings.backend,
                    "narrative_report": narrative,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        print(json.dumps({k: v for k, v in narrative.items() if k != "runs"}, indent=2))
        return
    requests = list(STRATEGY_REQUESTS[: args.limit] if args.limit else STRATEGY_REQUESTS)
    result = bench_strategy_builder(
        requests,
        model=args.model,
        max_repairs=args.max_repairs,
        max_tokens=args.max_tokens,
        user_id=args.user,
    )
    report = {
        "benchmark": "services",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "backend": settings.backend,
        "max_repairs": args.max_repairs,
        "max_tokens": args.max_tokens,
        "request_set_size": len(STRATEGY_REQUESTS),
        "strategy_builder": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    summary = {k: v for k, v in result.items() if k != "runs"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
