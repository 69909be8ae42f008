"""The fourth fresh chat-ops question set (bench/chat_cases_fresh4.py): its shape, its halves and
pairs, its newness against the earlier sets, its templates and its facts, computed here from the
seeded world without a model — and the runner's `--set fresh4` selection."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant.backtests import BacktestResult, engine_stats, load_ohlcv
from agents.quant.corpus import COMMISSION, STRATEGIES, generate_corpus, rsi
from bench.chat_cases import (
    CASES,
    SPEC_COMMISSION,
    USAGE_HISTORY,
    Num,
    RefRsiBand,
    World,
    named_run_return,
    reference_return,
    seeded_ledger_rows,
)
from bench.chat_cases_fresh import FRESH_CASES, window
from bench.chat_cases_fresh2 import FRESH2_CASES
from bench.chat_cases_fresh3 import FRESH3_CASES, two_best
from bench.chat_cases_fresh4 import (
    BOLL_EUR,
    DONCHIAN_EUR,
    DONCHIAN_GOOG,
    FRESH4_CASES,
    GHOST_C,
    GHOST_D,
    MOM10_GOOG,
    NOT_THERE,
    PAIRS,
)
from bench.chatops import (
    RESULTS,
    RESULTS_FRESH,
    RESULTS_FRESH2,
    RESULTS_FRESH3,
    RESULTS_FRESH4,
    SETS,
    args_match,
    fact_in_answer,
)
from tests.unit.chat_sets import assert_case_well_formed, assert_new_against

HANGUL = re.compile(r"[\uac00-\ud7a3]")
EARLIER = (*CASES, *FRESH_CASES, *FRESH2_CASES, *FRESH3_CASES)
BY_ID = {c.id: c for c in FRESH4_CASES}


@pytest.fixture(scope="module")
def records() -> tuple[BacktestResult, ...]:
    """The records the runner seeds for every case user (bench.chatops._seed)."""
    return tuple(generate_corpus(1, per_user=15))


def _world(records: tuple[BacktestResult, ...], cid: str) -> World:
    return World("u", records, seeded_ledger_rows(), BY_ID[cid].budget_usd)


def _nums(cid: str, records: tuple[BacktestResult, ...]) -> list[list[float]]:
    """Each alternative fact's numbers, in order."""
    facts = BY_ID[cid].fact(_world(records, cid))
    return [[t.value for g in f.groups for t in g if isinstance(t, Num)] for f in facts]


def _judged(cid: str, records: tuple[BacktestResult, ...], answer: str) -> bool:
    return fact_in_answer(BY_ID[cid].fact(_world(records, cid)), answer) is not None


# ---- shape ---------------------------------------------------------------------------------


def test_ids_are_unique_numbered_and_apart_from_the_earlier_sets() -> None:
    ids = [c.id for c in FRESH4_CASES]
    assert len(set(ids)) == len(ids) == 30
    assert ids == [f"r{i:02d}" for i in range(1, 31)]
    assert not set(ids) & {c.id for c in EARLIER}  # the runner's users and threads stay apart


def test_splits_are_the_first_and_second_half() -> None:
    assert [c.split for c in FRESH4_CASES] == ["tune"] * 15 + ["heldout"] * 15


def test_pairs_share_a_kind() -> None:
    expected = tuple((f"r{i:02d}", f"r{i + 15:02d}") for i in range(1, 16))
    assert expected == PAIRS
    for a_id, b_id in PAIRS:
        a, b = BY_ID[a_id], BY_ID[b_id]
        assert a.tool == b.tool, (a.id, b.id)
        assert a.also == b.also, (a.id, b.id)
        assert set(a.args) == set(b.args), (a.id, b.id)
        assert bool(a.before) == bool(b.before), (a.id, b.id)
        assert bool(a.ids) == bool(b.ids), (a.id, b.id)
        assert (a.budget_usd is None) == (b.budget_usd is None), (a.id, b.id)
        assert (a.id in NOT_THERE) == (b.id in NOT_THERE), (a.id, b.id)
        assert a.question != b.question


def test_language_matches_the_text() -> None:
    for c in FRESH4_CASES:
        for text in (c.question, *c.before):
            assert bool(HANGUL.search(text)) == (c.lang == "ko"), c.id
    korean = [c for c in FRESH4_CASES if c.lang == "ko"]
    assert len(korean) == 15
    assert sum(c.split == "tune" for c in korean) == 7  # both halves have plenty


def test_follow_ups_and_not_there_cases() -> None:
    follow = [c.id for c in FRESH4_CASES if c.before]
    assert follow == ["r03", "r08", "r18", "r23"]
    assert all(len(BY_ID[cid].before) == 1 for cid in follow)
    assert len(NOT_THERE) == 4 and set(NOT_THERE) <= set(BY_ID)


def test_every_expected_tool_exists_and_every_tool_is_expected() -> None:
    from tools import TOOLS

    names = {t.name for t in TOOLS}
    for c in FRESH4_CASES:
        assert {c.tool, *c.also} - {None} <= names, c.id
    for split in ("tune", "heldout"):
        expected = {c.tool for c in FRESH4_CASES if c.split == split} - {None}
        assert expected == names, split
    concepts = [c.id for c in FRESH4_CASES if c.tool is None and c.id not in NOT_THERE]
    assert concepts == ["r13", "r28"]


def test_questions_are_new_against_the_earlier_sets() -> None:
    assert_new_against(EARLIER, FRESH4_CASES, most_alike=0.75)


# ---- templates and facts -------------------------------------------------------------------


@pytest.mark.parametrize("case", FRESH4_CASES, ids=lambda c: c.id)
def test_templates_resolve_and_facts_compute(
    case: Any, records: tuple[BacktestResult, ...]
) -> None:
    assert_case_well_formed(case, records, _world(records, case.id))


def test_made_up_ids_are_not_seeded(records: tuple[BacktestResult, ...]) -> None:
    ids = {r.id for r in records}
    assert GHOST_C not in ids and GHOST_D not in ids
    for ghost in (GHOST_C, GHOST_D):
        assert re.fullmatch(r"bt-[0-9a-f]{20}", ghost)
    assert all(r.id.startswith("bt-") and len(r.id) == len(GHOST_C) for r in records)
    assert BY_ID["r05"].checks(records)["backtest_id"](GHOST_C)
    assert BY_ID["r20"].checks(records)["backtest_id"](GHOST_D)
    assert not BY_ID["r20"].checks(records)["backtest_id"](GHOST_C)


def test_not_there_is_judged_by_saying_so(records: tuple[BacktestResult, ...]) -> None:
    assert _judged("r05", records, f"{GHOST_C} 백테스트를 찾을 수 없어요.")
    assert not _judged("r05", records, f"{GHOST_C}: 샤프 0.91, MDD -12.3%.")
    assert _judged("r20", records, f"I couldn't find a backtest with id {GHOST_D}.")
    assert not _judged("r20", records, f"{GHOST_D}: fast=10, slow=30, exposure 48.2%.")
    assert _judged("r11", records, "MSFT is not bundled; I only have GOOG, EURUSD and BTCUSD.")
    assert not _judged("r11", records, "MSFT closed at 23.01 on 2010-06-30.")
    assert _judged("r26", records, "GOOG 데이터는 2013년 3월까지만 있어서 2015년은 볼 수 없어요.")
    assert _judged("r26", records, "The GOOG data only goes to 2013-03-01, so not 2015.")
    assert not _judged("r26", records, "GOOG는 2015년에 44.6% 올랐어요.")


def test_not_there_really_is_not_there() -> None:
    with pytest.raises(ValueError):
        load_ohlcv("MSFT")
    goog = load_ohlcv("GOOG")
    assert goog.index[-1].year == 2013 and len(window("GOOG", "2015-01-01", "2015-12-31")) == 0


class RefRsiCross(Strategy):
    """The same rule read as crossings: buy when RSI(n) crosses below `low`, sell when it
    crosses above `high` (a compiled spec may use either reading)."""

    n = 14
    low = 30.0
    high = 70.0

    def init(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def next(self) -> None:
        low, high = np.full(len(self.r), self.low), np.full(len(self.r), self.high)
        if crossover(low, self.r) and not self.position:
            self.buy()
        elif crossover(self.r, high) and self.position:
            self.position.close()


@pytest.mark.parametrize(
    ("cid", "symbol", "start", "end", "params"),
    [
        ("r09", "EURUSD", "2017-06-01", "2017-12-31", {"n": 10, "low": 25, "high": 75}),
        ("r24", "GOOG", "2006-01-01", "2010-12-31", {"n": 5, "low": 20, "high": 80}),
    ],
)
def test_every_spec_reference_trades_and_either_reading_agrees(
    cid: str,
    symbol: str,
    start: str,
    end: str,
    params: dict[str, Any],
    records: tuple[BacktestResult, ...],
) -> None:
    part = window(symbol, start, end)
    stats = engine_stats(RefRsiBand, part, 10_000, SPEC_COMMISSION, params)
    assert int(stats["# Trades"]) >= 1
    crossing = engine_stats(RefRsiCross, part, 10_000, SPEC_COMMISSION, params)
    assert float(crossing["Return [%]"]) == pytest.approx(float(stats["Return [%]"]))
    expected = reference_return(RefRsiBand, symbol, start, end, **params)
    assert _nums(cid, records) == [[pytest.approx(expected)]]  # the case runs this reference


def test_named_runs_trade_and_follow_the_engine(records: tuple[BacktestResult, ...]) -> None:
    for cid, name, symbol in (
        ("r07", "RsiMeanReversion", "GOOG"),
        ("r22", "BollingerReversion", "EURUSD"),
    ):
        stats = engine_stats(STRATEGIES[name], load_ohlcv(symbol), 10_000, COMMISSION[symbol], {})
        assert int(stats["# Trades"]) >= 1
        assert _nums(cid, records) == [[pytest.approx(named_run_return(name, symbol))]]
    for cid, name, symbol, params in (
        ("r08", "SmaCross", "GOOG", {"fast": 20, "slow": 100}),
        ("r23", "Momentum", "BTCUSD", {"lookback": 6, "threshold": 5.0}),
    ):
        frame = load_ohlcv(symbol)
        stats = engine_stats(STRATEGIES[name], frame, 10_000, COMMISSION[symbol], params)
        assert int(stats["# Trades"]) >= 1
        assert _nums(cid, records) == [[pytest.approx(float(stats["Return [%]"]))]]
        default = engine_stats(STRATEGIES[name], frame, 10_000, COMMISSION[symbol], {})
        assert float(default["Return [%]"]) != pytest.approx(float(stats["Return [%]"]))


def test_those_two_are_the_previous_turns_top_two(records: tuple[BacktestResult, ...]) -> None:
    for cid, ranked_by, symbol, a, b in (
        ("r03", "sharpe", "GOOG", MOM10_GOOG, DONCHIAN_GOOG),
        ("r18", "total_return_pct", "EURUSD", BOLL_EUR, DONCHIAN_EUR),
    ):
        case = BY_ID[cid]
        top = two_best(records, ranked_by, symbol)
        assert len(top) == 2
        assert set(case.filled(records).values()) == top, cid
        assert {a["symbol"], b["symbol"]} == {symbol}
        # the ranking is a strict one: the third is below both
        values = {r.id: getattr(r, ranked_by) for r in records if r.symbol == symbol}
        rest = [v for i, v in values.items() if i not in top and v is not None]
        assert max(rest) < min(values[i] for i in top)
    cagr = _nums("r03", records)
    assert cagr[1] == [pytest.approx(abs(cagr[0][0] - cagr[0][1]))] and cagr[1][0] > 1


def test_ranking_facts_follow_the_records(records: tuple[BacktestResult, ...]) -> None:
    def on(symbol: str) -> list[BacktestResult]:
        return [r for r in records if r.symbol == symbol]

    sortinos = [r for r in on("BTCUSD") if r.sortino is not None]
    top = max(sortinos, key=lambda r: r.sortino or 0.0)
    assert BY_ID["r01"].fact(_world(records, "r01"))[0].groups == ((top.id,),)
    assert _nums("r01", records) == [[], [pytest.approx(top.sortino)]]
    low = min((r for r in on("GOOG") if r.sharpe is not None), key=lambda r: r.sharpe or 0.0)
    assert _nums("r02", records) == [[], [pytest.approx(low.sharpe)]]
    rates = [r.win_rate_pct for r in on("GOOG") if r.win_rate_pct is not None]
    assert _nums("r16", records) == [[], [pytest.approx(max(rates))]]
    assert sorted(rates)[-1] > sorted(rates)[-2]  # one winner
    fewest = min(on("EURUSD"), key=lambda r: r.num_trades)
    assert _nums("r17", records) == [[], [fewest.num_trades]]
    assert sum(r.num_trades == fewest.num_trades for r in on("EURUSD")) == 1
    for cid, strategy, symbol in (
        ("r06", "DonchianBreakout", "GOOG"),
        ("r21", "MacdCross", "BTCUSD"),
    ):
        hits = [r for r in records if r.symbol == symbol and r.strategy_name == strategy]
        assert len(hits) == 1
        assert BY_ID[cid].fact(_world(records, cid))[0].groups == ((hits[0].id,),)


def test_ledger_facts_come_from_the_ledger_rows(records: tuple[BacktestResult, ...]) -> None:
    for cid, service in (("r15", "narrative_report"), ("r30", "strategy_builder")):
        rows = [row for row in USAGE_HISTORY if row[1] == service]
        assert rows
        assert _nums(cid, records) == [[len(rows), pytest.approx(sum(r[5] for r in rows) / 1e9)]]
    for cid in ("r04", "r19"):
        budget = BY_ID[cid].budget_usd
        assert budget is not None
        assert _nums(cid, records) == [[budget]]
        assert _judged(cid, records, f"Your daily budget is ${budget:.2f}; it resets at 00:00 UTC.")
        assert not _judged(cid, records, f"Your daily budget is ${budget:.2f}.")
    assert BY_ID["r04"].budget_usd != BY_ID["r19"].budget_usd


def test_market_facts_come_from_the_bundled_data(records: tuple[BacktestResult, ...]) -> None:
    for cid, symbol, start, end in (
        ("r10", "GOOG", "2008-07-01", "2008-09-30"),
        ("r25", "EURUSD", "2017-09-01", "2017-09-30"),
    ):
        frame = load_ohlcv(symbol)
        part = frame.loc[start : f"{end} 23:59:59"]
        assert len(part) > 20
        last = float(part["Close"].iloc[-1])
        inside = (last / float(part["Close"].iloc[0]) - 1) * 100
        before = float(frame.loc[: part.index[0]]["Close"].iloc[-2])
        assert _nums(cid, records) == [
            [pytest.approx(inside)],
            [pytest.approx((last / before - 1) * 100)],
        ]


def test_definitions_are_judged_by_their_words(records: tuple[BacktestResult, ...]) -> None:
    assert _judged("r12", records, "Exposure는 전체 봉 중에서 포지션을 보유한 비율이에요.")
    assert not _judged("r12", records, "Exposure는 수익률이에요.")
    assert _judged("r27", records, "Win rate is the share of closed trades that made a profit.")
    assert _judged("r13", records, "Delisted firms drop out, so results look better than reality.")
    assert _judged("r28", records, "백테스트 시점에 아직 알 수 없던 미래 정보를 쓰는 오류예요.")
    assert _judged("r14", records, "Yes: RsiMeanReversion.")
    assert _judged("r29", records, "DonchianBreakout이 돌파 전략이에요.")


def test_argument_constraints(records: tuple[BacktestResult, ...]) -> None:
    worst = BY_ID["r02"].checks(records)
    assert args_match(worst, {"symbol": "GOOG", "metric": "sharpe", "order": "worst"})
    assert not args_match(worst, {"symbol": "GOOG", "metric": "sharpe"})  # best first: wrong
    fewest = BY_ID["r17"].checks(records)
    assert args_match(fewest, {"symbol": "EURUSD", "metric": "trades", "order": "worst"})
    assert not args_match(fewest, {"symbol": "EURUSD", "metric": "win_rate", "order": "worst"})
    spec = {
        "name": "RsiDip",
        "entry": {"conditions": [{"left": {"kind": "rsi", "period": 10}, "op": "below",
                                  "value": 25}]},
        "exit": {"conditions": [{"left": {"kind": "rsi", "period": 10}, "op": "above",
                                 "value": 75}]},
    }  # fmt: skip
    checks = BY_ID["r09"].checks(records)
    good = {"symbol": "EURUSD", "spec": spec, "start": "2017-06-01", "end": "2017-12-31"}
    assert args_match(checks, good)
    assert not args_match(checks, {**good, "start": "2017-04-19"})
    assert not args_match(checks, {**good, "symbol": "GOOG"})
    rerun = BY_ID["r23"].checks(records)
    call = {"strategy_name": "Momentum", "symbol": "BTCUSD"}
    assert args_match(rerun, {**call, "parameters": {"lookback": 6, "threshold": 5}})
    assert not args_match(rerun, {**call, "parameters": {"lookback": 6}})
    compare = BY_ID["r18"].checks(records)
    a, b = BY_ID["r18"].filled(records).values()
    assert args_match(compare, {"id_a": a, "id_b": b})
    assert not args_match(compare, {"id_a": a, "id_b": a})


# ---- the runner ----------------------------------------------------------------------------


def test_the_runner_has_the_set_with_its_own_results() -> None:
    assert SETS["fresh4"] is FRESH4_CASES
    assert SETS["fresh3"] is FRESH3_CASES and SETS["fresh2"] is FRESH2_CASES
    assert next(iter(SETS)) == "main"
    assert len({RESULTS, RESULTS_FRESH, RESULTS_FRESH2, RESULTS_FRESH3, RESULTS_FRESH4}) == 5
    assert RESULTS_FRESH4.name == "chatops_fresh4.json"
