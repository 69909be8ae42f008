"""The fresh strategy request set: ids are unique and every specific case's reference trades."""

from __future__ import annotations

import pytest

from bench.strategy_cases import Case, reference_trades
from bench.strategy_cases_fresh import FRESH_CASES


def test_ids_are_unique() -> None:
    ids = [c.id for c in FRESH_CASES]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "case", [c for c in FRESH_CASES if c.kind == "specific"], ids=lambda c: c.id
)
def test_every_specific_reference_trades(case: Case) -> None:
    assert case.reference is not None
    assert len(reference_trades(case)) >= 1
