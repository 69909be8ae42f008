"""The third fresh strategy request set: ids, the mix of kinds and languages in each half, and
every specific case's reference trading on its data in the direction the request asks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.strategy_cases import CASES, Case, reference_trades
from bench.strategy_cases_fresh import FRESH_CASES
from bench.strategy_cases_fresh2 import FRESH2_CASES
from bench.strategy_cases_fresh3 import FRESH3_CASES


def test_ids_are_k01_to_k40_and_unique() -> None:
    ids = [c.id for c in FRESH3_CASES]
    assert ids == [f"k{i:02d}" for i in range(1, 41)]
    assert not set(ids) & {c.id for c in (*CASES, *FRESH_CASES, *FRESH2_CASES)}


def test_the_mix_of_kinds_and_languages() -> None:
    kinds = Counter(c.kind for c in FRESH3_CASES)
    assert kinds["specific"] >= 24
    assert kinds["vague"] >= 5
    assert kinds["inexpressible"] >= 5
    assert sum(c.lang == "ko" for c in FRESH3_CASES) >= 12
    assert all(c.split == "fresh3" for c in FRESH3_CASES)


def test_the_halves_have_the_same_mix() -> None:
    def mix(cases: tuple[Case, ...]) -> Counter[tuple[str, str]]:
        return Counter((c.kind, c.lang) for c in cases)

    assert mix(FRESH3_CASES[:20]) == mix(FRESH3_CASES[20:])


def test_requests_are_new() -> None:
    earlier = {c.request.strip().lower() for c in (*CASES, *FRESH_CASES, *FRESH2_CASES)}
    requests = [c.request.strip().lower() for c in FRESH3_CASES]
    assert len(set(requests)) == len(requests)
    assert not set(requests) & earlier


def test_only_specific_cases_have_a_reference() -> None:
    for c in FRESH3_CASES:
        assert (c.reference is not None) == (c.kind == "specific"), c.id
        assert c.symbol in ("GOOG", "EURUSD", "BTCUSD"), c.id


@pytest.mark.parametrize(
    "case", [c for c in FRESH3_CASES if c.kind == "specific"], ids=lambda c: c.id
)
def test_every_specific_reference_trades_its_way(case: Case) -> None:
    trades = reference_trades(case)
    assert len(trades) >= 3
    signs = set(np.sign(trades["Size"]).astype(int))
    side = case.params.get("side", getattr(case.reference, "side", "long"))
    assert signs == {"long": {1}, "short": {-1}, "both": {1, -1}}[side]
