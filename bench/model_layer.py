"""What the model layer adds per call over a bare `openai.AsyncOpenAI` call.

Both sides call the same fake OpenAI-compatible server (a separate process, so it never shares
the client's GIL) in the same process run, interleaved call by call so drift hits both equally:

* baseline: `AsyncOpenAI.chat.completions.create(...)`
* ours: `create_chat_model(...)` → `ChatOpenAI.ainvoke` with the rate-limit callback (token
  windows counted, limits set high enough never to refuse) and the cost callback writing one
  SQLite ledger row per call (committed before the call returns); the response cache off, so
  every call reaches the server (a cache hit would skip it and flatter the figures).

Also: the share of the ledger write alone, and throughput with 200 calls in flight (bursts
alternated ABBA), with the client's CPU per call on each side: on a shared machine
`throughput.cpu_ratio` (bare CPU / ours) is the steadier figure. docs/performance.md has the
figures and how to compare against an older tree.
Run: `python -m bench.model_layer [--calls 2000] [--concurrency 200]`.
Writes `bench/results/model_layer.json`; README's table is made from it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI

from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.ledger import Ledger, LedgerRow, get_ledger
from tests.fakes.openai_server import run_fake_server

RESULTS = Path(__file__).parent / "results"
PROMPT = "Summarise the backtest in one line. #in=200 #cached=64 #out=20"
MESSAGES = [{"role": "user", "content": PROMPT}]
# Rate limits stay on (every call is counted against its token windows) but high enough that
# the bench's ~10k calls a minute at a 16k worst case each never hit them.
RATE_LIMITS = json.dumps(
    {"user": {"tokens_per_minute": 10**12}, "model": {"tokens_per_minute": 10**12}}
)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(ms, 50), 3),
        "p95_ms": round(pct(ms, 95), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


async def sequential(base_url: str, settings: Settings, calls: int) -> dict[str, Any]:
    bare = AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    plain = ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key="sk-bench", max_retries=0)
    chat = create_chat_model("narrative_report", user_id="bench", settings=settings)
    for _ in range(50):  # warm every path: connections, imports, prepared statements
        await bare.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        await plain.ainvoke(PROMPT)
        await chat.ainvoke(PROMPT)
    base_ms: list[float] = []
    plain_ms: list[float] = []
    ours_ms: list[float] = []
    calls_of = {
        "bare": lambda: bare.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),  # type: ignore[arg-type]
        "plain": lambda: plain.ainvoke(PROMPT),
        "ours": lambda: chat.ainvoke(PROMPT),
    }
    ms: dict[str, list[float]] = {"bare": base_ms, "plain": plain_ms, "ours": ours_ms}
    orders = list(itertools.permutations(calls_of))
    for i in range(calls):  # every order in turn: no side always first after a switch
        for name in orders[i % len(orders)]:
            t0 = time.perf_counter()
            await calls_of[name]()
            ms[name].append((time.perf_counter() - t0) * 1000)
    await bare.close()
    added = [o - b for o, b in zip(ours_ms, base_ms, strict=True)]
    b, p, o = summary(base_ms), summary(plain_ms), summary(ours_ms)
    return {
        "calls": calls,
        "baseline_openai_sdk": b,
        "plain_chatopenai_no_callbacks": p,
        "model_layer": o,
        "langchain_share_p50_ms": round(p["p50_ms"] - b["p50_ms"], 3),
        "ours_over_plain_chatopenai_p50_ms": round(o["p50_ms"] - p["p50_ms"], 3),
        "added_p50_ms": round(o["p50_ms"] - b["p50_ms"], 3),
        "added_p95_ms": round(o["p95_ms"] - b["p95_ms"], 3),
        "added_paired_median_ms": round(statistics.median(added), 3),
        "ratio_p50": round(o["p50_ms"] / b["p50_ms"], 3),
    }


async def throughput(
    base_url: str, settings: Settings, concurrency: int, rounds: int
) -> dict[str, Any]:
    bare = AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    chat = create_chat_model("chatops_advanced", user_id="bench-load", settings=settings)

    async def burst_bare() -> None:
        await asyncio.gather(
            *(
                bare.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
                for _ in range(concurrency)
            )
        )

    async def burst_ours() -> None:
        await asyncio.gather(*(chat.ainvoke(PROMPT) for _ in range(concurrency)))

    await burst_bare()
    await burst_ours()
    totals = {"baseline_openai_sdk": 0.0, "model_layer": 0.0}
    cpu = dict.fromkeys(totals, 0.0)
    sides = [("baseline_openai_sdk", burst_bare), ("model_layer", burst_ours)]
    for r in range(rounds):
        for name, fn in sides if r % 2 == 0 else sides[::-1]:  # ABBA: neither always first
            c0, t0 = time.process_time(), time.perf_counter()
            await fn()
            totals[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    await bare.close()
    n = concurrency * rounds
    out = {
        k: {"calls_per_s": round(n / v, 1), "client_cpu_ms_per_call": round(cpu[k] / n * 1000, 3)}
        for k, v in totals.items()
    }
    return {
        "concurrency": concurrency,
        "calls": n,
        **out,
        "ratio": round(
            out["model_layer"]["calls_per_s"] / out["baseline_openai_sdk"]["calls_per_s"], 3
        ),
        # The client's CPU per call does not depend on what else runs on the machine: on a
        # shared machine this ratio (bare CPU / ours) is the steadier throughput figure.
        "cpu_ratio": round(cpu["baseline_openai_sdk"] / cpu["model_layer"], 3),
    }


def ledger_write(path: Path, n: int) -> dict[str, float]:
    ledger = Ledger(f"sqlite:///{path}")
    ms = []
    for i in range(n):
        row = LedgerRow(
            request_id=f"bench-{i}",
            user_id="u",
            service="narrative_report",
            model="gpt-4o-mini",
            served_model="gpt-4o-mini",
            route="openai",
            input_tokens=200,
            cached_input_tokens=64,
            output_tokens=20,
            reasoning_tokens=0,
            cost_nanousd=3000,
            list_price_nanousd=3000,
            latency_ms=1.0,
            cache_hit=False,
            error=None,
        )
        t0 = time.perf_counter()
        ledger.record(row)
        ms.append((time.perf_counter() - t0) * 1000)
    ledger.dispose()
    return summary(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "model_layer.json")
    args = ap.parse_args()
    with run_fake_server() as server, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            QUANT_GENAI_DATA_DIR=tmp,  # type: ignore[call-arg]
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=server.base_url,
            QUANT_GENAI_MAX_RETRIES=0,
            QUANT_GENAI_CACHE="off",  # every call reaches the server (a hit would skip it)
            QUANT_GENAI_RATE_LIMITS=RATE_LIMITS,
        )
        seq = asyncio.run(sequential(server.base_url, settings, args.calls))
        thr = asyncio.run(throughput(server.base_url, settings, args.concurrency, args.rounds))
        rows = len(get_ledger(settings).rows())
        write = ledger_write(Path(tmp) / "write.sqlite3", 2000)
    result = {
        "benchmark": "model_layer",
        "goal": "added p50 <= 0.5 ms per call over a bare AsyncOpenAI call, and >= 0.9x its "
        "throughput at 200 in flight (issue 11)",
        "goal_met": seq["added_p50_ms"] <= 0.5 and thr["ratio"] >= 0.9,
        "sequential": seq,
        "throughput": thr,
        "ledger_write_sqlite": write,
        "ledger_rows_written": rows,
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "langchain_core": version("langchain-core"),
            "langchain_openai": version("langchain-openai"),
            "openai": version("openai"),
            "sqlalchemy": version("sqlalchemy"),
        },
        "reproduce": "python -m bench.model_layer",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
