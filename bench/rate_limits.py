"""What a rate-limit check costs per REST request and per model call (`agents.usage.rates`).

Per storage: `hit_request` (two moving windows: (user, service), (service, model)) and
`hit_tokens` (two sliding window counters), each timed call by call over `--calls` calls
spread over 50 users (limits high enough never to refuse), after a warm-up. Redis is a private
`redis-server` on loopback started by this script (Debian's package), as `REDIS_URL` would be.
Also: the time to answer while Redis is down (the fallback to memory after a refused connect).

Run: `python -m bench.rate_limits [--calls 5000]`. Writes `bench/results/rate_limits.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.settings import Settings
from agents.usage.rates import RateLimits

HIGH = {"user": {"requests_per_minute": 10**9, "tokens_per_minute": 10**11},
        "model": {"requests_per_minute": 10**9, "tokens_per_minute": 10**11}}  # fmt: skip
OUT = Path(__file__).with_name("results") / "rate_limits.json"


def _timed(fn: Callable[[int], None], calls: int) -> dict[str, float]:
    for i in range(200):  # warm-up: connections, scripts loaded, overrides read
        fn(i)
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return {
        "p50_us": round(statistics.median(samples), 1),
        "p95_us": round(samples[int(len(samples) * 0.95)], 1),
        "mean_us": round(statistics.fmean(samples), 1),
        "max_us": round(samples[-1], 1),
    }


def _measure(limits: RateLimits, calls: int) -> dict[str, Any]:
    def request(i: int) -> None:
        limits.hit_request("chatops_advanced", "gpt-4o-mini", f"user{i % 50}")

    def tokens(i: int) -> None:
        limits.hit_tokens("chatops_advanced", "gpt-4o-mini", f"user{i % 50}", 1500)

    out: dict[str, Any] = {
        "hit_request": _timed(request, calls),
        "hit_tokens": _timed(tokens, calls),
    }
    out["storage"] = limits.storage  # after: a Redis outage shows only once a call met it
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    from tests.redis_server import redis_server

    results: dict[str, Any] = {"calls": args.calls, "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis:
        env = {"QUANT_GENAI_DATA_DIR": tmp, "QUANT_GENAI_RATE_LIMITS": json.dumps(HIGH)}
        memory = RateLimits(Settings(_env_file=None, **env))  # type: ignore[arg-type]
        results["memory"] = _measure(memory, args.calls)
        shared = RateLimits(Settings(_env_file=None, REDIS_URL=redis.url, **env))  # type: ignore[arg-type]
        results["redis"] = _measure(shared, args.calls)
        redis.stop()
        results["redis_down"] = _measure(shared, min(args.calls, 1000))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
