"""The fresh chat-ops question set (bench/chat_cases_fresh.py): its shape, its templates and its
facts, computed here without a model — and the runner's `--set fresh` selection."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agents.quant.backtests import BacktestResult, engine_stats
from bench.chat_cases import (
    CASES,
    SPEC_COMMISSION,
    USAGE_HISTORY,
    Num,
    World,
    seeded_ledger_rows,
)
from bench.chat_cases_fresh import (
    FRESH_CASES,
    FreshCase,
    RefChannel,
    RefCloseAboveSma,
    RefEmaCross,
    RefMacdSignal,
    params_are,
    window,
)
from bench.chatops import RESULTS, RESULTS_FRESH, SETS, args_match, judge, turn_of
from tests.unit.chat_sets import assert_case_well_formed

HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(scope="module")
def records() -> tuple[BacktestResult, ...]:
    from agents.quant.corpus import generate_corpus

    return tuple(generate_corpus(1, per_user=15))


# ---- shape ---------------------------------------------------------------------------------


def test_ids_are_unique_and_numbered() -> None:
    ids = [c.id for c in FRESH_CASES]
    assert len(set(ids)) == len(ids) == 30
    assert ids == [f"n{i:02d}" for i in range(1, 31)]
    assert not set(ids) & {c.id for c in CASES}  # the runner's users and threads stay apart


def test_splits_are_the_first_and_second_half() -> None:
    assert all(c.split == "tune" for c in FRESH_CASES[:15])
    assert all(c.split == "heldout" for c in FRESH_CASES[15:])


def test_at_least_ten_korean_questions_written_in_korean() -> None:
    korean = [c for c in FRESH_CASES if c.lang == "ko"]
    assert len(korean) >= 10
    for c in FRESH_CASES:
        assert bool(HANGUL.search(c.question)) == (c.lang == "ko"), c.id


def test_every_expected_tool_exists_and_each_half_covers_them_all() -> None:
    from tools import TOOLS

    names = {t.name for t in TOOLS}
    for c in FRESH_CASES:
        assert {c.tool, *c.also} - {None} <= names, c.id
    for split in ("tune", "heldout"):
        covered = {c.tool for c in FRESH_CASES if c.split == split} - {None}
        assert covered == names, f"{split} misses {names - covered}"
    assert sum(c.tool is None for c in FRESH_CASES) >= 3
    assert sum(bool(c.before) for c in FRESH_CASES) >= 4


def test_questions_are_new() -> None:
    def squash(s: str) -> str:
        return re.sub(r"\W+", "", s.lower())

    main = {squash(c.question) for c in CASES}
    assert not main & {squash(c.question) for c in FRESH_CASES}


# ---- templates and facts -------------------------------------------------------------------


@pytest.mark.parametrize("case", FRESH_CASES, ids=lambda c: c.id)
def test_templates_resolve_and_facts_compute(
    case: FreshCase, records: tuple[BacktestResult, ...]
) -> None:
    world = World("u", records, seeded_ledger_rows(), case.budget_usd)
    assert_case_well_formed(case, records, world)


def test_spend_facts_come_from_the_ledger(records: tuple[BacktestResult, ...]) -> None:
    by_id = {c.id: c for c in FRESH_CASES}

    def value(cid: str) -> float:
        c = by_id[cid]
        (fact,) = c.fact(World("u", records, seeded_ledger_rows(), c.budget_usd))
        num = next(t for g in fact.groups for t in g if isinstance(t, Num))
        return num.value

    today = sum(cost for d, *_, cost in USAGE_HISTORY if d == 0) / 1e9
    assert value("n13") == pytest.approx(today)
    assert value("n14") == pytest.approx(sum(row[-1] for row in USAGE_HISTORY) / 1e9)
    assert value("n29") == pytest.approx(2.0 - today)
    gpt4o = sum(row[-1] for row in USAGE_HISTORY if row[2] == "gpt-4o") / 1e9
    assert value("n30") == pytest.approx(gpt4o)


@pytest.mark.parametrize(
    ("ref", "symbol", "start", "end"),
    [
        (RefEmaCross, "GOOG", "2006-01-01", "2010-12-31"),
        (RefCloseAboveSma, "GOOG", "2005-01-01", "2009-12-31"),
        (RefChannel, "BTCUSD", "2013-01-01", "2023-12-31"),
        (RefMacdSignal, "GOOG", "2007-01-01", "2012-12-31"),
    ],
)
def test_every_spec_reference_trades(ref: Any, symbol: str, start: str, end: str) -> None:
    stats = engine_stats(ref, window(symbol, start, end), 10_000, SPEC_COMMISSION, {})
    assert int(stats["# Trades"]) >= 3


def test_parameter_constraints() -> None:
    check = {"parameters": params_are(entry=10, exit=5)}
    assert args_match(check, {"parameters": {"entry": 10, "exit": 5}})
    assert args_match(check, {"parameters": '{"entry": 10.0, "exit": "5"}'})
    assert not args_match(check, {"parameters": {"entry": 10}})
    assert not args_match(check, {"parameters": {"entry": 10, "exit": 5, "x": 1}})
    assert not args_match(check, {})


# ---- the runner ----------------------------------------------------------------------------


def test_the_runner_has_both_sets_with_their_own_results() -> None:
    assert SETS["main"] is CASES and SETS["fresh"] is FRESH_CASES
    assert next(iter(SETS)) == "main"
    assert RESULTS_FRESH != RESULTS


def test_a_follow_up_is_judged_on_its_last_turn_only(records: tuple[BacktestResult, ...]) -> None:
    case = next(c for c in FRESH_CASES if c.id == "n06")
    earlier = [
        HumanMessage(case.before[0]),
        AIMessage("", tool_calls=[{"name": "run_backtest", "id": "a", "args": {}}]),
        ToolMessage("{}", tool_call_id="a", name="run_backtest"),
        AIMessage("Done."),
    ]
    world = World("u", records)
    (fact,) = case.fact(world)
    (num,) = fact.groups[0]
    assert isinstance(num, Num)
    answer = f"MacdCross on GOOG returned {num.value:.1f}%."
    args = {"strategy_name": "MacdCross", "symbol": "GOOG"}
    last = [
        HumanMessage(case.question),
        AIMessage("", tool_calls=[{"name": "run_backtest", "id": "b", "args": args}]),
        ToolMessage("{}", tool_call_id="b", name="run_backtest"),
        AIMessage(answer),
    ]
    v = judge(case, world, answer, turn_of([*earlier, *last]))
    assert v["success"] and v["right_args"]
    assert judge(case, world, "Done.", turn_of(earlier))["success"] is False
