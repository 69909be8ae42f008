"""The second fresh chat-ops question set (bench/chat_cases_fresh2.py): its shape, its halves,
its newness against the earlier sets, its templates and its facts, computed here from the seeded
world without a model — and the runner's `--set fresh2` selection."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agents.quant.backtests import BacktestResult, engine_stats, load_ohlcv
from bench.chat_cases import (
    CASES,
    SPEC_COMMISSION,
    USAGE_HISTORY,
    Num,
    World,
    pick,
    seeded_ledger_rows,
)
from bench.chat_cases_fresh import FRESH_CASES
from bench.chat_cases_fresh2 import (
    FRESH2_CASES,
    MACD_BTC,
    MOM20_BTC,
    RefBandTouch,
    RefSmaPair,
    contains_any,
    top_two,
    window,
    worst,
)
from bench.chatops import (
    RESULTS,
    RESULTS_FRESH,
    RESULTS_FRESH2,
    SETS,
    args_match,
    fact_in_answer,
    judge,
    turn_of,
)
from tests.unit.chat_sets import assert_case_well_formed, assert_new_against

HANGUL = re.compile(r"[\uac00-\ud7a3]")
EARLIER = (*CASES, *FRESH_CASES)
BY_ID = {c.id: c for c in FRESH2_CASES}


@pytest.fixture(scope="module")
def records() -> tuple[BacktestResult, ...]:
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
    ids = [c.id for c in FRESH2_CASES]
    assert len(set(ids)) == len(ids) == 30
    assert ids == [f"p{i:02d}" for i in range(1, 31)]
    assert not set(ids) & {c.id for c in EARLIER}  # the runner's users and threads stay apart


def test_splits_are_the_first_and_second_half() -> None:
    assert all(c.split == "tune" for c in FRESH2_CASES[:15])
    assert all(c.split == "heldout" for c in FRESH2_CASES[15:])


def test_at_least_40_percent_korean_written_in_korean() -> None:
    korean = [c for c in FRESH2_CASES if c.lang == "ko"]
    assert len(korean) >= 0.4 * len(FRESH2_CASES)
    for c in FRESH2_CASES:
        for text in (c.question, *c.before):
            assert bool(HANGUL.search(text)) == (c.lang == "ko"), c.id


def test_every_expected_tool_exists_and_each_half_covers_them_all() -> None:
    from tools import TOOLS

    names = {t.name for t in TOOLS}
    for c in FRESH2_CASES:
        assert {c.tool, *c.also} - {None} <= names, c.id
    for split in ("tune", "heldout"):
        covered = {c.tool for c in FRESH2_CASES if c.split == split} - {None}
        assert covered == names, f"{split} misses {names - covered}"
    assert sum(c.tool is None for c in FRESH2_CASES) >= 2
    assert sum(bool(c.before) for c in FRESH2_CASES) >= 4


def test_the_halves_are_alike_in_mix() -> None:
    tune, held = FRESH2_CASES[:15], FRESH2_CASES[15:]

    def mix(cases: tuple[Any, ...]) -> tuple[Any, ...]:
        return (
            Counter(c.tool for c in cases),
            sum(c.lang == "ko" for c in cases),
            sum(bool(c.before) for c in cases),
            sum(bool(c.ids) for c in cases),
            sum(c.budget_usd is not None for c in cases),
        )

    assert mix(tune) == mix(held)
    for a, b in zip(tune, held, strict=True):  # built pairwise: the same kind of question
        assert a.tool == b.tool, (a.id, b.id)


def test_questions_are_new_against_the_earlier_sets() -> None:
    assert_new_against(EARLIER, FRESH2_CASES, most_alike=0.7)


# ---- templates and facts -------------------------------------------------------------------


@pytest.mark.parametrize("case", FRESH2_CASES, ids=lambda c: c.id)
def test_templates_resolve_and_facts_compute(
    case: Any, records: tuple[BacktestResult, ...]
) -> None:
    assert_case_well_formed(case, records, _world(records, case.id))


def test_ledger_facts_come_from_the_ledger_rows(records: tuple[BacktestResult, ...]) -> None:
    today = sum(cost for d, *_, cost in USAGE_HISTORY if d == 0) / 1e9
    assert _nums("p13", records) == [[3.0, pytest.approx(today)]]
    share = today / 1.5 * 100
    assert _nums("p28", records) == [[pytest.approx(share)], [pytest.approx(today), 1.5]]
    for cid, service in (("p14", "strategy_builder"), ("p29", "narrative_report")):
        tin = sum(row[3] for row in USAGE_HISTORY if row[1] == service)
        tout = sum(row[4] for row in USAGE_HISTORY if row[1] == service)
        assert _nums(cid, records) == [[tin, tout], [tin + tout]]


def test_ranking_facts_follow_the_records(records: tuple[BacktestResult, ...]) -> None:
    eur = [r for r in records if r.symbol == "EURUSD"]
    assert worst(records, "total_return_pct", "EURUSD").total_return_pct == min(
        r.total_return_pct for r in eur
    )
    assert worst(records, "sharpe", "EURUSD").sharpe == min(
        r.sharpe for r in eur if r.sharpe is not None
    )
    assert len(eur) <= 5  # a "worst" among them is in top_backtests' default k of 5
    # p05's follow-up names "those two": the earlier turn's top two BTCUSD backtests by Sharpe
    expected = {pick(records, **MACD_BTC).id, pick(records, **MOM20_BTC).id}
    assert set(top_two(records, "sharpe", "BTCUSD")) == expected
    assert set(BY_ID["p05"].filled(records).values()) == expected


def test_a_wrong_backtest_is_not_the_fact(records: tuple[BacktestResult, ...]) -> None:
    case = BY_ID["p02"]
    facts = case.fact(_world(records, "p02"))
    bad = max(
        (r for r in records if r.symbol == "EURUSD"), key=lambda r: r.total_return_pct
    )  # the best EURUSD run, not the worst
    text = f"Your worst EURUSD run is {bad.id}: {bad.strategy_name}, {bad.total_return_pct:.2f}%."
    assert fact_in_answer(facts, text) is None
    low = worst(records, "total_return_pct", "EURUSD")
    text = f"The worst is {low.strategy_name} at {low.total_return_pct:.2f}%."
    assert fact_in_answer(facts, text)


@pytest.mark.parametrize(
    ("ref", "symbol", "start", "end", "params"),
    [
        (RefBandTouch, "GOOG", "2008-01-01", "2011-12-31", {"n": 20, "k": 2.0}),
        (RefSmaPair, "GOOG", "2005-01-01", "2012-12-31", {"fast": 50, "slow": 200}),
    ],
)
def test_every_spec_reference_trades(
    ref: Any, symbol: str, start: str, end: str, params: dict[str, Any]
) -> None:
    stats = engine_stats(ref, window(symbol, start, end), 10_000, SPEC_COMMISSION, params)
    assert int(stats["# Trades"]) >= 3


def test_market_windows_hold_bars(records: tuple[BacktestResult, ...]) -> None:
    assert len(window("GOOG", "2010-01-01", "2010-12-31")) == _nums("p24", records)[0][0]
    btc = load_ohlcv("BTCUSD")
    sept = float(btc.loc["2017-09-30", "Close"])
    assert _nums("p10", records) == [[pytest.approx(sept)]]
    last = float(btc["Close"].iloc[-1])
    assert all(nums[-1] == pytest.approx(last) for nums in _nums("p25", records)[2:])


def test_argument_constraints() -> None:
    check = {"query": contains_any("boll", "볼린저")}
    assert args_match(check, {"query": "Bollinger GOOG"})
    assert args_match(check, {"query": "GOOG 볼린저 밴드"})
    assert not args_match(check, {"query": "momentum"})
    assert not args_match(check, {})


# ---- the runner ----------------------------------------------------------------------------


def test_the_runner_has_the_set_with_its_own_results() -> None:
    assert SETS["fresh2"] is FRESH2_CASES
    assert SETS["main"] is CASES and SETS["fresh"] is FRESH_CASES
    assert next(iter(SETS)) == "main"
    assert len({RESULTS, RESULTS_FRESH, RESULTS_FRESH2}) == 3
    assert RESULTS_FRESH2.name == "chatops_fresh2.json"


def test_a_follow_up_is_judged_on_its_last_turn_only(records: tuple[BacktestResult, ...]) -> None:
    case = BY_ID["p07"]
    first = "BollingerReversion on BTCUSD made 0 trades: 0.0%."
    earlier = [
        HumanMessage(case.before[0]),
        AIMessage("", tool_calls=[{"name": "run_backtest", "id": "a", "args": {}}]),
        ToolMessage("{}", tool_call_id="a", name="run_backtest"),
        AIMessage(first),
    ]
    world = _world(records, "p07")
    ((value,),) = _nums("p07", records)
    answer = f"With period 10 and k 1.5 it returned {value:.1f}%."
    args = {
        "strategy_name": "BollingerReversion",
        "symbol": "BTCUSD",
        "parameters": {"period": 10, "k": 1.5},
    }
    last = [
        HumanMessage(case.question),
        AIMessage("", tool_calls=[{"name": "run_backtest", "id": "b", "args": args}]),
        ToolMessage("{}", tool_call_id="b", name="run_backtest"),
        AIMessage(answer),
    ]
    v = judge(case, world, answer, turn_of([*earlier, *last]))
    assert v["success"] and v["right_args"]
    wrong = {**args, "parameters": {"period": 10}}
    last[1] = AIMessage("", tool_calls=[{"name": "run_backtest", "id": "b", "args": wrong}])
    assert judge(case, world, answer, turn_of([*earlier, *last]))["right_args"] is False
    assert judge(case, world, first, turn_of(earlier))["success"] is False
