"""The retrieval stores on a real Chroma (tmp dir) with the real offline MiniLM embeddings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import Embeddings

from agents.quant.backtests import BacktestResult
from agents.rag.embeddings import get_embeddings
from agents.rag.store import (
    RetrievalUnavailableError,
    Retriever,
    chunk_code,
    collection_name,
    validate_user_id,
)
from agents.settings import Settings
from agents.usage.limits import count_tokens

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]

ADVERSARIAL_IDS = [
    "u1",
    "U1",
    "u2",
    '{"$ne": "x"}',
    "$or",
    "$ne",
    "$in",
    "user_id",
    "a'b\"c",
    "'; DROP TABLE users; --",
    "../../etc/passwd",
    "사용자",
    "u1\u200b",
    "*",
]


@pytest.fixture(scope="session")
def embeddings() -> Embeddings:
    """One model per session: loading MiniLM costs seconds, embedding a doc ~10 ms."""
    return get_embeddings(Settings(_env_file=None, QUANT_GENAI_BACKEND="local"))  # type: ignore[call-arg]


@pytest.fixture
def retriever(make_settings: Callable[..., Settings], embeddings: Embeddings) -> Retriever:
    return Retriever(make_settings(), embeddings=embeddings)


def make_bt(
    backtest_id: str,
    user_id: str,
    *,
    symbol: str = "GOOG",
    strategy_name: str = "SmaCross",
    sharpe: float | None = 1.2,
    start: date = date(2010, 1, 1),
    end: date = date(2012, 1, 1),
    total_return_pct: float = 20.0,
    code: str = "class SmaCross(Strategy):\n    pass\n",
) -> BacktestResult:
    return BacktestResult(
        id=backtest_id,
        user_id=user_id,
        strategy_name=strategy_name,
        strategy_code=code,
        symbol=symbol,
        start=start,
        end=end,
        initial_cash=10_000,
        final_equity=10_000 * (1 + total_return_pct / 100),
        total_return_pct=total_return_pct,
        cagr_pct=9.5,
        sharpe=sharpe,
        sortino=1.5,
        max_drawdown_pct=-12.0,
        num_trades=30,
        win_rate_pct=55.0,
        exposure_pct=80.0,
        created_at=datetime(2026, 1, 1),
    )


# ---- user ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        (None, "required"),
        ("", "empty"),
        ("   ", "whitespace-only"),
        ("\t\n", "whitespace-only"),
        (" u1", "leading or trailing"),
        ("u1 ", "leading or trailing"),
        (42, "string"),
    ],
)
def test_missing_or_blank_user_is_a_clear_error(retriever: Retriever, bad: Any, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        validate_user_id(bad)
    with pytest.raises(ValueError, match=rule):
        retriever.search_similar_backtests(bad, "anything")
    with pytest.raises(ValueError, match=rule):
        retriever.index_strategy(bad, "S", "pass\n")
    with pytest.raises(ValueError, match=rule):
        retriever.build_rag_prompt(bad, "anything")


@given(st.text(min_size=1, max_size=300))
def test_collection_names_are_valid_for_any_user(user_id: str) -> None:
    name = collection_name("backtests", "text-embedding-3-large", user_id)
    assert 3 <= len(name) <= 512
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


def test_result_of_another_user_is_refused(retriever: Retriever) -> None:
    with pytest.raises(ValueError, match="does not match"):
        retriever.index_backtest_result("u2", make_bt("b1", "u1"))


# ---- isolation (property) ---------------------------------------------------------------------

user_ids = st.one_of(
    st.sampled_from(ADVERSARIAL_IDS),
    st.text(min_size=1, max_size=12).filter(lambda s: s.strip() == s and s.strip() != ""),
)
writes = st.lists(
    st.tuples(user_ids, st.sampled_from(["b1", "b2", "b3"]), st.sampled_from(["GOOG", "BTCUSD"])),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(writes=writes, query=st.text(max_size=40), probe=user_ids)
def test_isolation_never_returns_another_users_document(
    retriever: Retriever, writes: list[tuple[str, str, str]], query: str, probe: str
) -> None:
    # The retriever (one tmp dir) is shared by all examples: state accumulates, which makes
    # the property stronger (many users, reused backtest ids across users).
    owned: dict[str, dict[str, str]] = getattr(retriever, "_test_owned", {})
    retriever._test_owned = owned  # type: ignore[attr-defined]
    for uid, bid, symbol in writes:
        retriever.index_backtest_result(uid, make_bt(bid, uid, symbol=symbol))
        owned.setdefault(uid, {})[bid] = symbol
    earlier = sorted(owned)[:3]  # a few users from earlier examples, not all (time)
    for uid in {*(w[0] for w in writes), probe, *earlier}:
        for sym in (None, "GOOG", '{"$ne": "x"}'):
            hits = retriever.search_similar_backtests(uid, query or "backtest", k=10, symbol=sym)
            assert all(h.metadata["user_id"] == uid for h in hits)
            assert {h.id for h in hits} <= set(owned.get(uid, {}))
            mine = owned.get(uid, {})
            for h in hits:  # the record is this user's own, not another's with the same id
                assert h.metadata["symbol"] == mine[h.id]
        assert len(retriever.search_similar_backtests(uid, "x", k=10)) == len(owned.get(uid, {}))
        prompt = retriever.build_rag_prompt(uid, query or "q", k=10, max_context_tokens=100_000)
        assert prompt.count("[ref ") == len(owned.get(uid, {}))


def test_reused_backtest_id_does_not_overwrite_another_user(retriever: Retriever) -> None:
    retriever.index_backtest_result("A", make_bt("bt-1", "A", symbol="GOOG"))
    retriever.index_backtest_result("B", make_bt("bt-1", "B", symbol="BTCUSD"))
    (a,) = retriever.search_similar_backtests("A", "backtest")
    (b,) = retriever.search_similar_backtests("B", "backtest")
    assert (a.metadata["symbol"], b.metadata["symbol"]) == ("GOOG", "BTCUSD")
    assert retriever.search_similar_backtests("a", "backtest") == []  # case-sensitive


# ---- behaviour ---------------------------------------------------------------------------------


def test_indexing_twice_is_one_record_updated(retriever: Retriever) -> None:
    retriever.index_backtest_result("u1", make_bt("b1", "u1", total_return_pct=5.0))
    retriever.index_backtest_result("u1", make_bt("b1", "u1", total_return_pct=42.0))
    hits = retriever.search_similar_backtests("u1", "total return", k=10)
    assert len(hits) == 1 and retriever.count("u1") == 1
    assert hits[0].metadata["total_return_pct"] == 42.0
    assert "total return 42.0%" in hits[0].content  # the one rendering (render_backtest)


def test_scores_are_similarities_in_unit_interval_and_ordered(retriever: Retriever) -> None:
    docs = [
        make_bt("b1", "u1", symbol="GOOG", strategy_name="SmaCross"),
        make_bt("b2", "u1", symbol="BTCUSD", strategy_name="RsiMeanReversion"),
        make_bt("b3", "u1", symbol="EURUSD", strategy_name="BollingerBreakout"),
    ]
    for d in docs:
        retriever.index_backtest_result("u1", d)
    hits = retriever.search_similar_backtests("u1", "Strategy RsiMeanReversion on BTCUSD", k=3)
    scores = [h.score for h in hits]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert hits[0].id == "b2"
    # identical text scores ~1 (cosine 1 -> similarity 1), not ~0 as a distance would
    same = retriever.search_similar_backtests("u1", hits[0].content, k=1)[0]
    assert same.score > 0.99


def test_filters(retriever: Retriever) -> None:
    rows = [
        make_bt(
            "g1",
            "u1",
            symbol="GOOG",
            strategy_name="SmaCross",
            sharpe=1.5,
            start=date(2005, 1, 1),
            end=date(2008, 1, 1),
        ),
        make_bt(
            "g2",
            "u1",
            symbol="GOOG",
            strategy_name="Rsi",
            sharpe=0.2,
            start=date(2009, 1, 1),
            end=date(2012, 1, 1),
        ),
        make_bt(
            "b1",
            "u1",
            symbol="BTCUSD",
            strategy_name="SmaCross",
            sharpe=None,
            start=date(2015, 1, 1),
            end=date(2018, 1, 1),
        ),
        make_bt(
            "e1",
            "u1",
            symbol="EURUSD",
            strategy_name="Rsi",
            sharpe=2.5,
            start=date(2011, 6, 1),
            end=date(2013, 1, 1),
        ),
    ]
    for r in rows:
        retriever.index_backtest_result("u1", r)

    def ids(**kw: Any) -> set[str]:
        return {h.id for h in retriever.search_similar_backtests("u1", "strategy", k=10, **kw)}

    assert ids(symbol="GOOG") == {"g1", "g2"}
    assert ids(strategy_name="SmaCross") == {"g1", "b1"}
    assert ids(min_sharpe=1.0) == {"g1", "e1"}  # undefined Sharpe never passes a minimum
    assert ids(start_after=date(2009, 1, 1)) == {"g2", "b1", "e1"}
    assert ids(end_before=date(2012, 1, 1)) == {"g1", "g2"}
    assert ids(start_after=datetime(2009, 1, 1), end_before=date(2013, 1, 1)) == {"g2", "e1"}
    assert ids(symbol="GOOG", min_sharpe=1.0) == {"g1"}
    assert ids(symbol="AAPL") == set()


def test_rag_prompt_budget_and_bare_query(retriever: Retriever) -> None:
    assert retriever.build_rag_prompt("nobody", "write me a strategy") == "write me a strategy"
    for i in range(6):
        retriever.index_backtest_result("u1", make_bt(f"b{i}", "u1", total_return_pct=i * 3.0))
    full = retriever.build_rag_prompt("u1", "improve it", k=6, max_context_tokens=10_000)
    assert full.startswith("Here are the user's past backtest results:")
    assert "[ref 6]" in full and "User request: improve it" in full
    assert full.endswith("Answer with reference to the past data above.")
    longest = max(len(h.content) for h in retriever.search_similar_backtests("u1", "x", k=6))
    ref_tokens = max(
        count_tokens(f"\n[ref 9] {h.content}")
        for h in retriever.search_similar_backtests("u1", "x", k=6)
        if len(h.content) == longest
    )
    budget = count_tokens("Here are the user's past backtest results:\n") + 2 * ref_tokens + 2
    small = retriever.build_rag_prompt("u1", "improve it", k=6, max_context_tokens=budget)
    assert "[ref 2]" in small and "[ref 3]" not in small
    context = small.split("\n\nUser request:")[0]
    assert count_tokens(context) <= budget
    assert retriever.build_rag_prompt("u1", "improve it", k=6, max_context_tokens=5) == "improve it"


def test_long_strategy_is_chunked_and_returned_whole(retriever: Retriever) -> None:
    methods = "".join(
        f"    def indicator_{i}(self, data):\n"
        f"        # compute moving average number {i} over the close prices\n"
        f"        return data.Close.rolling({i + 5}).mean() * {i}\n\n"
        for i in range(40)
    )
    code = "from backtesting import Strategy\n\n\nclass ManyIndicators(Strategy):\n" + methods
    assert len(chunk_code(code)) > 3 and "".join(chunk_code(code)) == code
    sid = retriever.index_strategy("u1", "ManyIndicators", code)
    retriever.index_strategy("u1", "ManyIndicators", code)  # idempotent
    retriever.index_strategy("u1", "Tiny", "class Tiny(Strategy):\n    pass\n", strategy_id="t")
    retriever.index_strategy("u2", "Other", code, strategy_id=sid)
    hits = retriever.search_similar_strategies("u1", "moving average indicator 17", k=3)
    assert [h.id for h in hits].count(sid) == 1
    top = next(h for h in hits if h.id == sid)
    assert top.content == code and top.metadata["user_id"] == "u1"
    assert all(0 <= h.score <= 1 for h in hits)
    # re-indexing shorter code under the same id leaves no stale chunks behind
    retriever.index_strategy(
        "u1", "ManyIndicators", "class Short(Strategy):\n    pass\n", strategy_id=sid
    )
    again = {h.id: h for h in retriever.search_similar_strategies("u1", "Short", k=3)}
    assert again[sid].content == "class Short(Strategy):\n    pass\n"


def test_on_backtest_completed_indexes_result_and_strategy(retriever: Retriever) -> None:
    retriever.on_backtest_completed(make_bt("b9", "u7", code="class Sma(Strategy):\n    n = 10\n"))
    assert [h.id for h in retriever.search_similar_backtests("u7", "sma")] == ["b9"]
    (strat,) = retriever.search_similar_strategies("u7", "sma")
    assert strat.content == "class Sma(Strategy):\n    n = 10\n"
    assert strat.metadata["backtest_id"] == "b9"


def test_bulk_index_batches_and_reports(retriever: Retriever) -> None:
    results = [make_bt(f"b{i}", f"user{i % 4}", total_return_pct=i) for i in range(40)]
    stats = retriever.bulk_index(results, batch_size=16)
    assert stats.docs == 40 and stats.docs_per_s > 0 and 0 < stats.embed_share <= 1
    assert [retriever.count(f"user{u}") for u in range(4)] == [10, 10, 10, 10]
    stats = retriever.bulk_index(results, batch_size=16)  # idempotent
    assert retriever.count("user0") == 10


def _chroma_log_rows(retriever: Retriever) -> int:
    import sqlite3

    db = retriever.settings.resolved_chromadb_path / "chroma.sqlite3"
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM embeddings_queue").fetchone()[0])


def test_writes_persist_the_index_so_chromas_log_is_purged(retriever: Retriever) -> None:
    # With Chroma's default sync_threshold (1,000) every record stayed in the shared log and the
    # first query of each collection scanned it whole; HNSW_CONFIG persists on every write.
    for i in range(30):
        retriever.index_backtest_result(f"log{i % 3}", make_bt(f"b{i}", f"log{i % 3}"))
    assert retriever.count("log0") == 10
    assert _chroma_log_rows(retriever) <= 3 * 2  # at most the last write per collection


def test_collection_with_default_sync_settings_is_updated_when_opened(
    retriever: Retriever,
) -> None:
    name = collection_name("backtests", retriever.model_id, "legacy")
    retriever.client.create_collection(name, configuration={"hnsw": {"space": "cosine"}})
    assert retriever.client.get_collection(name).configuration["hnsw"]["sync_threshold"] == 1000
    for i in range(12):
        retriever.index_backtest_result("legacy", make_bt(f"b{i}", "legacy"))
    assert retriever.client.get_collection(name).configuration["hnsw"]["sync_threshold"] == 1
    assert _chroma_log_rows(retriever) <= 2


def test_persists_across_process_restart(
    make_settings: Callable[..., Settings], embeddings: Embeddings, tmp_path: Path
) -> None:
    data_dir = tmp_path / "persist"
    script = f"""
import json, sys
from datetime import date, datetime
from agents.settings import Settings
from agents.quant.backtests import BacktestResult
from agents.rag.store import Retriever
r = Retriever(Settings(_env_file=None, QUANT_GENAI_DATA_DIR={str(data_dir)!r}))
r.index_backtest_result("p1", BacktestResult.model_validate_json(sys.stdin.read()))
print(json.dumps("ok"))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=make_bt("kept", "p1", symbol="BTCUSD").model_dump_json(),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == "ok"
    fresh = Retriever(make_settings(QUANT_GENAI_DATA_DIR=str(data_dir)), embeddings=embeddings)
    (hit,) = fresh.search_similar_backtests("p1", "BTCUSD backtest")
    assert hit.id == "kept" and hit.metadata["symbol"] == "BTCUSD"


def test_unreachable_chroma_is_retrieval_unavailable(
    make_settings: Callable[..., Settings], embeddings: Embeddings
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = Retriever(make_settings(CHROMA_HOST=f"127.0.0.1:{port}"), embeddings=embeddings)
    with pytest.raises(RetrievalUnavailableError, match="unavailable"):
        r.search_similar_backtests("u1", "anything")
    with pytest.raises(RetrievalUnavailableError):
        r.index_backtest_result("u1", make_bt("b1", "u1"))
    with pytest.raises(ValueError):  # the user check still comes first
        r.search_similar_backtests(" ", "anything")


def test_dates_are_ordinal_range_filterable() -> None:
    from agents.rag.store import backtest_metadata

    meta = backtest_metadata(make_bt("b", "u", start=date(2009, 3, 1)), "u")
    assert meta["start"] == "2009-03-01" and meta["start_ord"] == date(2009, 3, 1).toordinal()
    assert meta["end_ord"] == date(2012, 1, 1).toordinal() and "sharpe" in meta
    assert "sharpe" not in backtest_metadata(make_bt("b", "u", sharpe=None), "u")


# ---- reads by id and listings -----------------------------------------------------------------


def test_get_and_list_are_scoped_to_the_user(retriever: Retriever) -> None:
    a = make_bt("bt-shared-id", "alice", total_return_pct=11.0)
    b = make_bt("bt-shared-id", "bob", total_return_pct=-7.0, symbol="BTCUSD")
    retriever.on_backtest_completed(a)
    retriever.on_backtest_completed(b)
    assert retriever.get_backtest("alice", "bt-shared-id") == a
    assert retriever.get_backtest("bob", "bt-shared-id") == b
    assert retriever.get_backtest("carol", "bt-shared-id") is None
    assert retriever.get_backtest("alice", "bt-nope") is None
    older = make_bt("bt-old", "alice")
    retriever.index_backtest_result(
        "alice", older.model_copy(update={"created_at": datetime(2025, 1, 1)})
    )
    assert [r.id for r in retriever.list_backtests("alice")] == ["bt-shared-id", "bt-old"]
    assert [r.id for r in retriever.list_backtests("alice", limit=1)] == ["bt-shared-id"]
    assert [r.user_id for r in retriever.list_backtests("bob")] == ["bob"]
    strategies = retriever.list_strategies("alice")
    assert [s["strategy_name"] for s in strategies] == ["SmaCross"]
    assert retriever.list_strategies("carol") == []
    with pytest.raises(ValueError):
        retriever.get_backtest(" alice", "bt-shared-id")
