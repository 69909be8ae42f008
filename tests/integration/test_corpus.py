"""The demo corpus: real backtests, deterministic, spread over strategies, symbols and users."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.quant.backtests import SYMBOLS, BacktestResult
from agents.quant.corpus import (
    STRATEGIES,
    corpus_to_json,
    generate_corpus,
    load_results_json,
)


@pytest.fixture(scope="module")
def corpus() -> list[BacktestResult]:
    return list(generate_corpus(3, seed=7, per_user=8))


def test_corpus_spread(corpus: list[BacktestResult]) -> None:
    assert len(corpus) == 24
    assert {r.user_id for r in corpus} == {"user-000", "user-001", "user-002"}
    assert len({r.strategy_name for r in corpus}) >= 4
    assert {r.strategy_name for r in corpus} <= set(STRATEGIES)
    assert {r.symbol for r in corpus} == set(SYMBOLS)
    for user in ("user-000", "user-001", "user-002"):
        ids = [r.id for r in corpus if r.user_id == user]
        assert len(ids) == len(set(ids)) == 8
    assert any(r.num_trades > 0 for r in corpus)
    for r in corpus:
        assert r.max_drawdown_pct <= 0
        assert r.strategy_code.startswith("class ")
        assert r.equity_curve and r.equity_curve[0].equity == pytest.approx(r.initial_cash)


def test_corpus_deterministic(corpus: list[BacktestResult]) -> None:
    assert list(generate_corpus(3, seed=7, per_user=8)) == corpus
    other = list(generate_corpus(3, seed=8, per_user=8))
    assert [r.id for r in other] != [r.id for r in corpus]


def test_json_round_trip(tmp_path: Path, corpus: list[BacktestResult]) -> None:
    path = corpus_to_json(corpus, tmp_path / "out" / "corpus.json")
    assert load_results_json(path) == corpus


def test_per_user_bounds() -> None:
    with pytest.raises(ValueError, match="per_user must be between 1 and"):
        next(generate_corpus(1, per_user=0))
