"""The per-user response cache: what it saves, and how often the semantic mode is wrong.

1. **Saving.** One workload, run twice in the same process against the same fake OpenAI server
   (exact token counts, `#in=` / `#out=`), priced by the ledger at catalog prices: with the
   cache off, and with the default (exact). Half the requests repeat an earlier request of the
   same user and service; `--other-user-repeats` makes a share of the repeats another user's
   prompt instead (never a hit: the cache is per user). Dollars, tokens and requests sent come
   from the ledger and the server's own counter.
2. **Latency.** Calls interleaved one by one, same run: cache off, a miss (a lookup, then the
   answer queued for the background writer), a hit (no request). What the cache adds to a miss
   is the lookup; on a loaded machine the figures are noisy.
3. **Semantic false hits.** Prompt pairs that differ in what matters (RSI(7) vs RSI(14), GOOG vs
   AAPL, buy vs sell, 2023 vs 2024, Sharpe vs Sortino, ...) and pairs that are paraphrases,
   scored with the cache's own MiniLM (`agents.governance.similarity.embed`) and its salient
   tokens (`agents.usage.cache.salient`): the false-hit rate and the hit rate at several
   thresholds, with and without the salient-token check.

Run: `python -m bench.cache [--requests 400] [--other-user-repeats 0.0] [--latency-calls 300]`
(about a minute).
Writes `bench/results/cache.json`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from agents import registry
from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.ledger import get_ledger
from tests.fakes.openai_server import FakeServer, run_fake_server

RESULTS = Path(__file__).parent / "results"
USERS = ["alice", "bob", "carol", "dave"]
SERVICES = ["narrative_report", "chatops_advanced", "prompt_governance", "strategy_builder"]
THRESHOLDS = [0.80, 0.85, 0.875, 0.90, 0.925, 0.95, 0.975]

# (a, b, what differs): a hit between them would be a wrong answer
DIFFERENT = [
    (
        "Build a strategy that buys AAPL when RSI(7) falls below 30",
        "Build a strategy that buys AAPL when RSI(14) falls below 30",
        "RSI period",
    ),
    (
        "Backtest a 20/50 SMA crossover on GOOG for 2023",
        "Backtest a 20/50 SMA crossover on AAPL for 2023",
        "ticker",
    ),
    (
        "Buy MSFT when the price crosses above the 50-day moving average",
        "Sell MSFT when the price crosses above the 50-day moving average",
        "buy/sell",
    ),
    (
        "Backtest RSI mean reversion on SPY in 2023",
        "Backtest RSI mean reversion on SPY in 2024",
        "year",
    ),
    (
        "What was the Sharpe ratio of my last backtest?",
        "What was the Sortino ratio of my last backtest?",
        "metric",
    ),
    (
        "What was the Sharpe ratio of my last backtest?",
        "What was the max drawdown of my last backtest?",
        "metric",
    ),
    (
        "Go long TSLA when MACD crosses above its signal line",
        "Go short TSLA when MACD crosses above its signal line",
        "long/short",
    ),
    (
        "Use a 5% stop loss on the breakout strategy",
        "Use a 10% stop loss on the breakout strategy",
        "stop size",
    ),
    (
        "Enter when the close is above the upper Bollinger band",
        "Enter when the close is below the lower Bollinger band",
        "above/below",
    ),
    ("Backtest a 10/30 EMA crossover on NVDA", "Backtest a 10/50 EMA crossover on NVDA", "window"),
    (
        "Show the equity curve of my momentum backtest",
        "Show the drawdown chart of my momentum backtest",
        "chart",
    ),
    (
        "Buy QQQ when RSI(14) is below 30 and sell above 70",
        "Buy QQQ when RSI(14) is below 20 and sell above 80",
        "levels",
    ),
    (
        "Backtest the strategy from 2020 to 2022",
        "Backtest the strategy from 2021 to 2023",
        "period",
    ),
    ("Summarise my backtest of AMZN", "Summarise my backtest of AMD", "ticker"),
    ("Explain what the Sharpe ratio means", "Explain what the Calmar ratio means", "term"),
    (
        "Is my strategy profitable after fees?",
        "Is my strategy profitable before fees?",
        "after/before",
    ),
    ("Enter long when volume is high", "Exit long when volume is high", "enter/exit"),
    ("Risk 1% of equity per trade", "Risk 2% of equity per trade", "risk size"),
    ("Backtest with daily bars", "Backtest with hourly bars", "bar size"),
    ("How much did I spend this month?", "How much did I spend this week?", "period"),
]

# (a, b): a hit between them would be right
PARAPHRASES = [
    (
        "Build a strategy that buys AAPL when RSI(14) falls below 30",
        "Create a strategy buying AAPL whenever RSI(14) drops under 30",
    ),
    (
        "Backtest a 20/50 SMA crossover on GOOG for 2023",
        "Run a backtest of the 20/50 SMA crossover on GOOG over 2023",
    ),
    (
        "What was the Sharpe ratio of my last backtest?",
        "What Sharpe ratio did my last backtest have?",
    ),
    (
        "Buy MSFT when the price crosses above the 50-day moving average",
        "Buy MSFT once the price moves above its 50-day moving average",
    ),
    ("Explain what max drawdown means", "What does max drawdown mean?"),
    (
        "Backtest RSI mean reversion on SPY in 2023",
        "Please backtest an RSI mean-reversion strategy on SPY for 2023",
    ),
    ("Use a 5% stop loss on the breakout strategy", "Put a 5% stop-loss on the breakout strategy"),
    ("Show my spending this month", "How much have I spent this month?"),
    (
        "Go long TSLA when MACD crosses above its signal line",
        "Go long TSLA when the MACD line crosses above the signal line",
    ),
    ("Backtest a 10/30 EMA crossover on NVDA", "Can you backtest a 10/30 EMA cross on NVDA?"),
    ("Summarise my backtest of AMZN", "Give me a summary of my AMZN backtest"),
    ("Explain what the Sharpe ratio means", "What is the Sharpe ratio?"),
    ("Is my strategy profitable after fees?", "Does my strategy make money after fees?"),
    ("Risk 1% of equity per trade", "Risk one percent of equity on each trade"),
    (
        "Show the equity curve of my momentum backtest",
        "Plot the equity curve for my momentum backtest",
    ),
    (
        "Buy QQQ when RSI(14) is below 30 and sell above 70",
        "Buy QQQ if RSI(14) is under 30, sell when it is above 70",
    ),
    ("Backtest the strategy from 2020 to 2022", "Run the backtest over 2020 to 2022"),
    ("Enter long when volume is high", "Enter a long position on high volume"),
    ("How much did I spend this month?", "What is my spend for this month?"),
    ("Backtest with daily bars", "Use daily bars for the backtest"),
]


def workload(n: int, other_user_repeats: float, seed: int = 7) -> list[tuple[str, str, str, bool]]:
    """`n` requests (user, service, prompt, repeat?): every other one repeats an earlier
    request — of the same user, or (share `other_user_repeats`) another user's prompt."""
    rng = random.Random(seed)
    done: list[tuple[str, str, str]] = []
    out: list[tuple[str, str, str, bool]] = []
    for i in range(n):
        if i % 2 == 1 and done:
            user, service, prompt = rng.choice(done)
            if rng.random() < other_user_repeats:
                user = rng.choice([u for u in USERS if u != user])
            out.append((user, service, prompt, True))
            continue
        user, service = rng.choice(USERS), rng.choice(SERVICES)
        tokens_in, tokens_out = rng.randint(300, 3000), rng.randint(40, 600)
        prompt = f"request {i} #in={tokens_in} #out={tokens_out}"
        done.append((user, service, prompt))
        out.append((user, service, prompt, False))
    return out


def run(
    server: FakeServer, mode: str, requests: list[tuple[str, str, str, bool]]
) -> dict[str, Any]:
    registry.reset()
    data = tempfile.mkdtemp(prefix=f"bench-cache-{mode}-")
    s = Settings(  # type: ignore[call-arg]
        _env_file=None,
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=server.base_url,
        QUANT_GENAI_DATA_DIR=data,
        QUANT_GENAI_CACHE=mode,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_FALLBACK=False,
    )
    sent = server.requests_served()
    start = time.perf_counter()
    for user, service, prompt, _ in requests:
        create_chat_model(service, user_id=user, settings=s).invoke(prompt)
    elapsed = time.perf_counter() - start
    rows = get_ledger(s).rows()
    cost = sum(int(r["cost_nanousd"] or 0) for r in rows)
    return {
        "mode": mode,
        "calls": len(rows),
        "requests_sent": server.requests_served() - sent,
        "cache_hits": sum(1 for r in rows if r["cache_hit"]),
        "input_tokens": sum(int(r["input_tokens"]) for r in rows),
        "output_tokens": sum(int(r["output_tokens"]) for r in rows),
        "cost_usd": round(cost / 1e9, 6),
        "mean_ms_per_call": round(elapsed * 1000 / len(requests), 3),
    }


def saving(n: int, other_user_repeats: float) -> dict[str, Any]:
    requests = workload(n, other_user_repeats)
    with run_fake_server() as server:
        off, on = run(server, "off", requests), run(server, "exact", requests)
    tokens_off = off["input_tokens"] + off["output_tokens"]
    tokens_on = on["input_tokens"] + on["output_tokens"]
    return {
        "requests": n,
        "repeated_share": round(sum(1 for *_, rep in requests if rep) / n, 3),
        "other_user_repeats": other_user_repeats,
        "off": off,
        "exact": on,
        "dollars_saved_pct": round(100 * (1 - on["cost_usd"] / off["cost_usd"]), 2),
        "tokens_saved_pct": round(100 * (1 - tokens_on / tokens_off), 2),
    }


def latency(calls: int) -> dict[str, Any]:
    import statistics

    def settings(server: FakeServer, mode: str) -> Settings:
        return Settings(  # type: ignore[call-arg]
            _env_file=None,
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=server.base_url,
            QUANT_GENAI_DATA_DIR=tempfile.mkdtemp(prefix=f"bench-cache-lat-{mode}-"),
            QUANT_GENAI_CACHE=mode,
            QUANT_GENAI_MAX_RETRIES=0,
        )

    registry.reset()
    times: dict[str, list[float]] = {"off": [], "miss": [], "hit": []}
    with run_fake_server() as server:
        off = create_chat_model("narrative_report", user_id="u", settings=settings(server, "off"))
        on = create_chat_model("narrative_report", user_id="u", settings=settings(server, "exact"))
        for i in range(30):  # warm connections, imports, prepared statements
            off.invoke(f"warm {i}")
            on.invoke(f"warm {i}")
        for i in range(calls):
            for name, chat in (("off", off), ("miss", on), ("hit", on)):
                start = time.perf_counter()
                chat.invoke(f"call {i} #in=300 #out=20")
                times[name].append((time.perf_counter() - start) * 1000)

    def p(ms: list[float], q: int) -> float:
        return round(statistics.quantiles(ms, n=100, method="inclusive")[q - 1], 3)

    out: dict[str, Any] = {k: {"p50_ms": p(v, 50), "p95_ms": p(v, 95)} for k, v in times.items()}
    out["miss_added_p50_ms"] = round(out["miss"]["p50_ms"] - out["off"]["p50_ms"], 3)
    out["calls"] = calls
    return out


def semantic() -> dict[str, Any]:
    import numpy as np

    from agents.governance.similarity import embed
    from agents.usage.cache import salient

    def scored(pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        a = embed([p[0] for p in pairs])
        b = embed([p[1] for p in pairs])
        sims = (np.asarray(a) * np.asarray(b)).sum(axis=1)
        return [
            (float(x), salient(p[0]) == salient(p[1])) for x, p in zip(sims, pairs, strict=True)
        ]

    diff = scored([(a, b) for a, b, _ in DIFFERENT])
    para = scored(PARAPHRASES)

    def rate(items: list[tuple[float, bool]], t: float, guard: bool) -> float:
        return round(
            sum(1 for sim, same in items if sim >= t and (same or not guard)) / len(items), 3
        )

    table = [
        {
            "threshold": t,
            "false_hit_rate": rate(diff, t, True),
            "hit_rate": rate(para, t, True),
            "false_hit_rate_similarity_only": rate(diff, t, False),
            "hit_rate_similarity_only": rate(para, t, False),
        }
        for t in THRESHOLDS
    ]
    return {
        "different_pairs": len(diff),
        "paraphrase_pairs": len(para),
        "thresholds": table,
        "different": [
            {"what": w, "similarity": round(sim, 3), "same_salient": same}
            for (_, _, w), (sim, same) in zip(DIFFERENT, diff, strict=True)
        ],
        "paraphrases": [
            {"a": a, "similarity": round(sim, 3), "same_salient": same}
            for (a, _), (sim, same) in zip(PARAPHRASES, para, strict=True)
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--other-user-repeats", type=float, default=0.0)
    ap.add_argument("--latency-calls", type=int, default=300)
    ap.add_argument("--out", type=Path, default=RESULTS / "cache.json")
    args = ap.parse_args()
    result = {
        "saving": saving(args.requests, args.other_user_repeats),
        "latency": latency(args.latency_calls),
        "semantic": semantic(),
    }
    sv = result["saving"]
    print(
        f"saving: {sv['requests']} requests, {sv['repeated_share']:.0%} repeated: "
        f"${sv['off']['cost_usd']:.4f} -> ${sv['exact']['cost_usd']:.4f} "
        f"({sv['dollars_saved_pct']}% dollars, {sv['tokens_saved_pct']}% tokens); "
        f"requests sent {sv['off']['requests_sent']} -> {sv['exact']['requests_sent']}"
    )
    lat = result["latency"]
    print(
        f"latency p50: off {lat['off']['p50_ms']} ms, miss {lat['miss']['p50_ms']} ms "
        f"(+{lat['miss_added_p50_ms']}), hit {lat['hit']['p50_ms']} ms"
    )
    print("threshold  false-hit  hit   | similarity only: false-hit  hit")
    for row in result["semantic"]["thresholds"]:
        print(
            f"{row['threshold']:<9}  {row['false_hit_rate']:<9}  {row['hit_rate']:<5} | "
            f"{row['false_hit_rate_similarity_only']:<26} {row['hit_rate_similarity_only']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
