"""The third fresh chat-ops question set (bench/chat_cases_fresh3.py): its shape, its halves and
pairs, its newness against the earlier sets, its templates and its facts, computed here from the
seeded world without a model — and the runner's `--set fresh3` selection."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agents.quant.backtests import BacktestResult, engine_stats, load_ohlcv
from bench.chat_cases import (
    CASES,
    SPEC_COMMISSION,
    USAGE_HISTORY,
    Num,
    RefCloseCrossSma,
    World,
    reference_return,
    seeded_ledger_rows,
)
from bench.chat_cases_fresh import FRESH_CASES, RefEmaCross, window
from bench.chat_cases_fresh2 import FRESH2_CASES, worst
from bench.chat_cases_fresh3 import (
    FRESH3_CASES,
    GHOST_A,
    GHOST_B,
    MACD_BTC,
    MACD_GOOG,
    MOM50_BTC,
    MOM50_GOOG,
    PAIRS,
    two_best,
)
from bench.chatops import (
    RESULTS,
    RESULTS_FRESH,
    RESULTS_FRESH2,
    RESULTS_FRESH3,
    SETS,
    args_match,
    fact_in_answer,
)
from tests.unit.chat_sets import assert_case_well_formed, assert_new_against

HANGUL = re.compile(r"[\uac00-\ud7a3]")
EARLIER = (*CASES, *FRESH_CASES, *FRESH2_CASES)
BY_ID = {c.id: c for c in FRESH3_CASES}


@pytest.fixture(scope="module")
def records() -> tuple[BacktestResult, ...]:
    """The records the runner seeds for every case user (bench.chatops._seed)."""
    from agents.quant.corpus import generate_corpus

    return tuple(generate_corpus(1, per_user=15))


def _world(records: tuple[BacktestResult, ...], cid: str) -> World:
    return World("u", records, seeded_ledger_rows(), BY_ID[cid].budget_usd)


def _nums(cid: str, records: tuple[BacktestResult, ...]) -> list[list[float]]:
    """Each alternative fact's numbers, in order."""
    facts = BY_ID[cid].fact(_world(records, cid))
    return [[t.value for g in f.groups for t in g if isinstance(t, Num)] for f in facts]


# ---- shape ---------------------------------------------------------------------------------


def test_ids_are_unique_numbered_and_apart_from_the_earlier_sets() -> None:
    ids = [c.id for c in FRESH3_CASES]
    assert len(set(ids)) == len(ids) == 30
    assert ids == [f"q{i:02d}" for i in range(1, 31)]
    assert not set(ids) & {c.id for c in EARLIER}  # the runner's users and threads stay apart


def test_splits_are_the_first_and_second_half() -> None:
    assert [c.split for c in FRESH3_CASES] == ["tune"] * 15 + ["heldout"] * 15


def test_pairs_share_a_kind() -> None:
    expected = tuple((f"q{i:02d}", f"q{i + 15:02d}") for i in range(1, 16))
    assert expected == PAIRS
    for a_id, b_id in PAIRS:
        a, b = BY_ID[a_id], BY_ID[b_id]
        assert a.tool == b.tool, (a.id, b.id)
        assert a.also == b.also, (a.id, b.id)
        assert bool(a.before) == bool(b.before), (a.id, b.id)
        assert bool(a.ids) == bool(b.ids), (a.id, b.id)
        assert (a.budget_usd is None) == (b.budget_usd is None), (a.id, b.id)


def test_language_matches_the_text() -> None:
    for c in FRESH3_CASES:
        for text in (c.question, *c.before):
            assert bool(HANGUL.search(text)) == (c.lang == "ko"), c.id
    assert sum(c.lang == "ko" for c in FRESH3_CASES) == 7


def test_every_expected_tool_exists() -> None:
    from tools import TOOLS

    names = {t.name for t in TOOLS}
    for c in FRESH3_CASES:
        assert {c.tool, *c.also} - {None} <= names, c.id


def test_questions_are_new_against_the_earlier_sets() -> None:
    assert_new_against(EARLIER, FRESH3_CASES, most_alike=0.75)


# ---- templates and facts -------------------------------------------------------------------


@pytest.mark.parametrize("case", FRESH3_CASES, ids=lambda c: c.id)
def test_templates_resolve_and_facts_compute(
    case: Any, records: tuple[BacktestResult, ...]
) -> None:
    assert_case_well_formed(case, records, _world(records, case.id))


def test_made_up_ids_are_not_seeded(records: tuple[BacktestResult, ...]) -> None:
    ids = {r.id for r in records}
    assert GHOST_A not in ids and GHOST_B not in ids
    assert all(r.id.startswith("bt-") and len(r.id) == len(GHOST_A) for r in records)
    assert BY_ID["q06"].checks(records)["backtest_id"](GHOST_A)
    assert BY_ID["q21"].checks(records)["backtest_id"](GHOST_B)


def test_a_missing_backtest_is_judged_by_saying_so(records: tuple[BacktestResult, ...]) -> None:
    facts = BY_ID["q06"].fact(_world(records, "q06"))
    assert fact_in_answer(facts, f"I couldn't find a backtest with id {GHOST_A}.")
    assert fact_in_answer(facts, f"Backtest {GHOST_A} has a Sharpe of 1.12.") is None
    facts = BY_ID["q15"].fact(_world(records, "q15"))
    assert fact_in_answer(facts, "AAPL is not bundled; I only have GOOG, BTCUSD and EURUSD.")
    assert fact_in_answer(facts, "AAPL returned 31.2% in 2012.") is None


@pytest.mark.parametrize(
    ("cid", "ref", "symbol", "start", "end", "params"),
    [
        ("q07", RefEmaCross, "GOOG", "2006-01-01", "2009-12-31", {"fast": 10, "slow": 30}),
        ("q22", RefCloseCrossSma, "BTCUSD", "2014-01-01", "2020-12-31", {"n": 12}),
    ],
)
def test_every_spec_reference_trades(
    cid: str,
    ref: Any,
    symbol: str,
    start: str,
    end: str,
    params: dict[str, Any],
    records: tuple[BacktestResult, ...],
) -> None:
    stats = engine_stats(ref, window(symbol, start, end), 10_000, SPEC_COMMISSION, params)
    assert int(stats["# Trades"]) >= 1
    expected = reference_return(ref, symbol, start, end, **params)
    assert _nums(cid, records) == [[pytest.approx(expected)]]  # the case runs this reference


def test_those_two_are_the_previous_turns_top_two(records: tuple[BacktestResult, ...]) -> None:
    for cid, symbol, a, b in (
        ("q04", "GOOG", MACD_GOOG, MOM50_GOOG),
        ("q19", "BTCUSD", MACD_BTC, MOM50_BTC),
    ):
        case = BY_ID[cid]
        assert len(case.before) == 1
        top = two_best(records, "total_return_pct", symbol)
        assert len(top) == 2
        assert set(case.filled(records).values()) == top, cid
        assert {a["symbol"], b["symbol"]} == {symbol}
        # the ranking is a strict one: the third is below both
        rest = [r.total_return_pct for r in records if r.symbol == symbol and r.id not in top]
        assert max(rest) < min(r.total_return_pct for r in records if r.id in top)


def test_ranking_facts_follow_the_records(records: tuple[BacktestResult, ...]) -> None:
    def on(symbol: str) -> list[BacktestResult]:
        return [r for r in records if r.symbol == symbol]

    deepest = min(on("GOOG"), key=lambda r: r.max_drawdown_pct)
    assert worst(records, "max_drawdown_pct", "GOOG") is deepest
    assert BY_ID["q01"].fact(_world(records, "q01"))[0].groups == ((deepest.id,),)
    busiest = max(on("GOOG"), key=lambda r: r.num_trades)
    assert _nums("q02", records) == [[], [busiest.num_trades]]
    rates = [r.win_rate_pct for r in on("EURUSD") if r.win_rate_pct is not None]
    assert _nums("q16", records) == [[], [pytest.approx(min(rates))]]
    cagrs = [r.cagr_pct for r in on("EURUSD") if r.cagr_pct is not None]
    assert _nums("q17", records) == [[], [pytest.approx(max(cagrs))]]


def test_ledger_facts_come_from_the_ledger_rows(records: tuple[BacktestResult, ...]) -> None:
    def cost(model: str) -> float:
        return sum(row[5] for row in USAGE_HISTORY if row[2] == model) / 1e9

    assert _nums("q13", records) == [[pytest.approx(cost("gpt-4o"))]]
    assert _nums("q28", records) == [[pytest.approx(cost("gpt-4o-mini"))]]
    today = sum(row[5] for row in USAGE_HISTORY if row[0] == 0) / 1e9
    for cid in ("q14", "q29"):
        budget = BY_ID[cid].budget_usd
        assert budget is not None and budget > today
        assert _nums(cid, records) == [[budget, pytest.approx(budget - today)]]


def test_market_facts_come_from_the_bundled_data(records: tuple[BacktestResult, ...]) -> None:
    part = load_ohlcv("GOOG").loc["2007-01-01":"2007-12-31"]
    assert _nums("q09", records) == [
        [pytest.approx(float(part["Close"].max()))],
        [pytest.approx(float(part["High"].max()))],
    ]
    assert len(window("EURUSD", "2017-12-01", "2017-12-31")) > 0
    for symbol in ("AAPL", "TSLA"):  # the not-bundled symbols really are not there
        with pytest.raises(Exception):  # noqa: B017 - any refusal to load will do
            load_ohlcv(symbol)


def test_argument_constraints(records: tuple[BacktestResult, ...]) -> None:
    checks = BY_ID["q07"].checks(records)
    spec = {"indicators": [{"kind": "ema", "n": 10}, {"kind": "ema", "n": 30}]}
    assert args_match(
        checks,
        {"symbol": "GOOG", "spec": spec, "start": "2006-01-01", "end": "2009-12-31"},
    )
    assert not args_match(
        checks,
        {"symbol": "GOOG", "spec": spec, "start": "2004-08-19", "end": "2009-12-31"},
    )
    assert not args_match(checks, {"symbol": "BTCUSD", "spec": spec})


# ---- the runner ----------------------------------------------------------------------------


def test_the_runner_has_the_set_with_its_own_results() -> None:
    assert SETS["fresh3"] is FRESH3_CASES
    assert SETS["fresh2"] is FRESH2_CASES and SETS["fresh"] is FRESH_CASES
    assert next(iter(SETS)) == "main"
    assert len({RESULTS, RESULTS_FRESH, RESULTS_FRESH2, RESULTS_FRESH3}) == 4
    assert RESULTS_FRESH3.name == "chatops_fresh3.json"
