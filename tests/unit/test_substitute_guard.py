"""The substitute guard (`spec_fixes.unbacked`, used by `graphs.strategy_builder` on specs a
model wrote): a rule, window or join no claim of the request backs is refused with the closest
spec; a spec whose every rule code read is built. Requests are written for these tests (shapes
met on fresh3's tune half, not its words)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.quant.spec import StrategySpec
from agents.quant.spec_fixes import unbacked
from tests.unit.test_strategy_builder import _run_spec

ATR_REQUEST = (
    "If ATR(5) crosses above ATR(20) while the close is above the 50-day SMA, go long; hold 8 "
    "bars at most."
)  # every rule claim is role-less: the check alone would let the same claim back the exit
ATR_ENTRY = {"conditions": [
    {"left": {"kind": "atr", "period": 5}, "op": "crosses_above",
     "right": {"kind": "atr", "period": 20}},
    {"left": {"kind": "close"}, "op": "above", "right": {"kind": "sma", "period": 50}},
]}  # fmt: skip
INVENTED_EXIT = {"conditions": [{"left": {"kind": "close"}, "op": "above",
                                 "right": {"kind": "sma", "period": 50}}]}  # fmt: skip


def spec(**fields: Any) -> StrategySpec:
    return StrategySpec.model_validate({"name": "Guarded", **fields})


def rsi(period: int, op: str, value: float) -> dict[str, Any]:
    return {"left": {"kind": "rsi", "period": period}, "op": op, "value": value}


def test_an_exit_made_from_the_entrys_filter_is_not_backed() -> None:
    """The request's "close above the 50-day SMA" opens the trade; it backs no exit as well."""
    invented = spec(entry=ATR_ENTRY, exit=INVENTED_EXIT, max_bars=8)
    _, _, missing = unbacked(ATR_REQUEST, invented)
    assert missing == ["exit: close above SMA(50) is not a rule read in the request"]
    _, _, missing = unbacked(ATR_REQUEST, spec(entry=ATR_ENTRY, max_bars=8))
    assert missing == []


@pytest.mark.parametrize(
    ("condition", "backed"),
    [
        (rsi(14, "below", 30), True),  # no period stated: the documented default
        (rsi(9, "below", 30), False),  # a window nobody stated
        (rsi(14, "below", 35), False),  # a level nobody stated
    ],
)
def test_an_unstated_window_must_be_the_default(condition: dict[str, Any], backed: bool) -> None:
    request = "Buy when the RSI drops below 30."
    _, _, missing = unbacked(request, spec(entry={"conditions": [condition]}))
    assert (missing == []) is backed, missing


@pytest.mark.parametrize(("value", "backed"), [(30, True), (20, False)])
def test_oversold_is_the_documented_level(value: float, backed: bool) -> None:
    request = "Buy GOOG when RSI(14) is oversold, sell when it is above 60."
    entry = {"conditions": [rsi(14, "below", value)]}
    exit_rule = {"conditions": [rsi(14, "above", 60)]}
    _, _, missing = unbacked(request, spec(entry=entry, exit=exit_rule))
    assert (missing == []) is backed, missing


def test_an_or_the_model_wrote_as_and_is_joined_as_the_request_says() -> None:
    request = (
        "Buy when the close is above the 20-day SMA. Sell when the close falls below the "
        "20-day SMA or RSI(14) is above 75, whichever comes first."
    )
    sma = {"kind": "sma", "period": 20}
    entry = {"conditions": [{"left": {"kind": "close"}, "op": "above", "right": sma}]}
    exits = [{"left": {"kind": "close"}, "op": "below", "right": sma}, rsi(14, "above", 75)]
    fixed, notes, missing = unbacked(request, spec(entry=entry, exit={"conditions": exits}))
    assert missing == [] and fixed.exit is not None and fixed.exit.combine == "any"
    assert notes == ["exit: the request's conditions are joined as any one of them (… or …)"]


def test_a_request_stating_no_rule_leaves_the_rule_to_the_model() -> None:
    bands = {"conditions": [{"left": {"kind": "close"}, "op": "below",
                             "right": {"kind": "bb_lower", "period": 30}}]}  # fmt: skip
    assert unbacked("mean reversion with Bollinger bands", spec(entry=bands))[2] == []


def test_a_rule_on_wording_code_did_not_read_is_not_backed() -> None:
    """ "the prior swing high" is read by no claim: a model's rule for it is not built."""
    request = "Long GOOG on any close above the prior swing high; out on a close below its low."
    entry = {"conditions": [{"left": {"kind": "close"}, "op": "crosses_above",
                             "right": {"kind": "highest_high", "period": 1}}]}  # fmt: skip
    missing = unbacked(request, spec(entry=entry))[2]
    assert missing and missing[0].startswith("entry: close crosses above highest high(1)")


# ------------------------------------------------------------------ through the graph
def test_a_model_spec_with_an_unbacked_rule_is_refused_with_the_closest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invented = {"name": "AtrExpansion", "entry": ATR_ENTRY, "exit": INVENTED_EXIT, "max_bars": 8}
    out, chat = _run_spec(monkeypatch, ATR_REQUEST, [invented] * 3)
    assert len(chat.prompts) == 2  # one repair names the rule; it changed nothing: stopped
    assert "exit: close above SMA(50) is not a rule read in the request" in chat.prompts[1]
    assert not out["ok"] and out["code"] == "" and out["metrics"] is None
    assert out["failed_stage"] == "spec" and out["expressible"]
    assert out["discrepancies"] == ["exit: close above SMA(50) is not a rule read in the request"]
    assert out["answer"].startswith("Not built") and "The closest I can build:" in out["answer"]
    assert out["spec"]["exit"] is not None  # the closest spec, returned as a suggestion


def test_the_repaired_spec_whose_rules_are_all_backed_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invented = {"name": "AtrExpansion", "entry": ATR_ENTRY, "exit": INVENTED_EXIT, "max_bars": 8}
    backed = {"name": "AtrExpansion", "entry": ATR_ENTRY, "max_bars": 8}
    out, chat = _run_spec(monkeypatch, ATR_REQUEST, [invented, backed])
    assert len(chat.prompts) == 2 and out["ok"], out["error"]
    assert out["spec"]["exit"] is None and out["spec"]["max_bars"] == 8
    assert out["discrepancies"] == [] and out["metrics"] is not None
