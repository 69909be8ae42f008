"""The strategy benchmark's own parts: its references trade and its judge can tell them apart."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from types import SimpleNamespace

import pytest

from agents.quant.corpus import EmaCross, SmaCross
from bench.strategy_cases import CASES, behaviour_matches, reference_trades, trades_of


def test_the_set_has_the_shape_the_issue_asks_for() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert sum(c.lang == "ko" for c in CASES) >= 10
    assert sum(c.kind != "specific" for c in CASES) >= 5
    splits = Counter(c.split for c in CASES)
    assert splits["heldout"] >= 20 and splits["tune"] >= 20
    for c in CASES:  # a specific request has a reference; the others must not pretend to
        assert (c.reference is not None) == (c.kind == "specific"), c.id


@pytest.mark.parametrize("case", [c for c in CASES if c.reference is not None], ids=lambda c: c.id)
def test_every_reference_trades_and_matches_itself(case: object) -> None:
    trades = reference_trades(case)  # type: ignore[arg-type]
    assert len(trades) >= 1
    assert behaviour_matches(trades, trades)


def test_the_judge_agrees_with_an_independent_hand_written_strategy() -> None:
    """The corpus's SmaCross / EmaCross were written separately from the bench references."""
    by_id = {c.id: c for c in CASES}
    ref_ema = reference_trades(by_id["t03"])  # EMA 12/26, long, exit on the opposite cross
    assert behaviour_matches(trades_of(EmaCross, "GOOG", fast=12, slow=26), ref_ema)
    ref_sma = reference_trades(by_id["t12"])  # SMA 5/20
    assert behaviour_matches(trades_of(SmaCross, "GOOG", fast=5, slow=20), ref_sma)


def test_the_judge_refuses_different_behaviour() -> None:
    by_id = {c.id: c for c in CASES}
    sma_50_200 = reference_trades(by_id["t01"])
    assert not behaviour_matches(trades_of(SmaCross, "GOOG", fast=10, slow=30), sma_50_200)
    long_only = reference_trades(replace(by_id["h13"], params={"fast": 10, "slow": 30}))
    short_only = reference_trades(by_id["h13"])  # same crosses, the other side
    assert not behaviour_matches(long_only, short_only)
    assert not behaviour_matches(sma_50_200.iloc[:0], sma_50_200)  # no trades vs some


def _result(**kw: object) -> SimpleNamespace:
    base: dict[str, object] = dict(
        ok=True,
        expressible=True,
        discrepancies=[],
        assumptions=[],
        metrics=None,
        code="",
        strategy_class=None,
    )
    return SimpleNamespace(**{**base, **kw})


def test_the_verdicts_follow_what_the_user_wanted() -> None:
    from agents.quant.compiler import compile_spec
    from agents.quant.spec import StrategySpec
    from bench.strategies import judge

    by_id = {c.id: c for c in CASES}
    cross = {
        "left": {"kind": "sma", "period": 50},
        "op": "crosses_above",
        "right": {"kind": "sma", "period": 200},
    }
    right = compile_spec(
        StrategySpec.model_validate({"name": "Golden", "entry": {"conditions": [cross]}})
    )
    wrong = compile_spec(
        StrategySpec.model_validate(
            {
                "name": "Golden",
                "entry": {"conditions": [{**cross, "right": {"kind": "sma", "period": 100}}]},
            }
        )
    )
    case = by_id["t01"]
    assert judge(case, _result(code=right.code, strategy_class=right.class_name)) == "success"
    assert judge(case, _result(code=wrong.code, strategy_class=wrong.class_name)) == "substitute"
    assert judge(case, _result(ok=False, discrepancies=["x"])) == "refused"
    gap = by_id["t19"]
    assert judge(gap, _result(ok=False, expressible=False)) == "success"
    assert judge(gap, _result(code=right.code, strategy_class=right.class_name)) == "substitute"
