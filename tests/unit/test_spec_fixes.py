"""Corrections code makes to a model's spec guided by the request's claims (`spec_fixes`), each
one only when the check finds the spec closer to the request; and the reader's widenings that
let such requests be drafted in code. The model specs are the 1.5B's, from fresh2's tune half."""

from __future__ import annotations

from typing import Any

import pytest

from agents.quant.drafting import draft_spec
from agents.quant.faithfulness import check, claims
from agents.quant.model_facts import stated_facts
from agents.quant.spec import StrategySpec
from agents.quant.spec_fixes import (
    fix_with_claims,
    levels_as_values,
    own_line_for_itself,
    plain_averages,
    plain_exit,
    states_as_stated,
    swapped_rules,
    unread_unsupported,
)


def rsi(period: int, op: str, value: float | None = None, other: int | None = None) -> Any:
    right = {"right": {"kind": "rsi", "period": other}} if other else {"value": value}
    return {"left": {"kind": "rsi", "period": period}, "op": op, **right}


def spec(entry: list[Any], exit_: list[Any] | None = None, **fields: Any) -> StrategySpec:
    data = {"name": "Model", "entry": {"conditions": entry}, **fields}
    if exit_ is not None:
        data["exit"] = {"conditions": exit_}
    return StrategySpec.model_validate(data)


def test_a_level_written_as_a_series_is_read_as_the_stated_level() -> None:
    request = (
        "RSI(14) crossing back above 30 from below is the buy; "
        "RSI crossing down through 70 is the sell."
    )
    model = spec([rsi(14, "crosses_above", other=30)], [rsi(14, "crosses_below", 70)])
    assert not check(request, model).faithful
    fixed, notes = fix_with_claims(request, model)
    assert fixed == spec([rsi(14, "crosses_above", 30)], [rsi(14, "crosses_below", 70)])
    assert check(request, fixed).faithful and "RSI(30) read as the level" in notes[0]


def test_a_stated_period_is_never_turned_into_a_level() -> None:
    request = "Buy when RSI(5) crosses above RSI(14) and RSI(14) is below 14."  # 14 is a period too
    model = spec([rsi(5, "crosses_above", other=14), rsi(14, "below", 14)])
    assert levels_as_values(model, claims(request)) == (model, [])


def test_a_level_on_a_price_series_is_not_touched() -> None:
    request = "Buy when the close crosses above the 50-day SMA, sell below 50."
    close = {
        "left": {"kind": "close"},
        "op": "crosses_above",
        "right": {"kind": "sma", "period": 50},
    }
    model = spec([close])
    assert levels_as_values(model, claims(request)) == (model, [])


def test_swapped_entry_and_exit_are_swapped_back() -> None:
    request = "RSI(10) 25 이하 과매도 구간에서 매수하고, 75 이상 과매수 구간에 들어가면 청산해줘"
    model = spec([rsi(10, "above", 75)], [rsi(10, "below", 25)])
    fixed, notes = fix_with_claims(request, model)
    assert fixed == spec([rsi(10, "below", 25)], [rsi(10, "above", 75)])
    assert check(request, fixed).faithful and "wrong way round" in notes[0]
    assert swapped_rules(spec([rsi(10, "below", 25)], direction="both"))[1] == []  # both: no


def test_a_swap_that_does_not_bring_the_spec_closer_is_not_made() -> None:
    request = "Buy when RSI(7) is below 30; sell when RSI(7) is above 70."
    wrong = spec([rsi(7, "below", 20)], [rsi(7, "above", 80)])  # wrong levels, right places
    fixed, notes = fix_with_claims(request, wrong)
    assert fixed == wrong and notes == []


def test_an_exit_written_as_the_opposite_of_the_entry_is_the_default() -> None:
    """fresh2 g15/g12: the spec wrote out the reverse cross; the check read it as a rule nobody
    asked for and refused an otherwise right spec."""
    cross = {"left": {"kind": "sma", "period": 30}, "op": "crosses_above",
             "right": {"kind": "sma", "period": 90}}  # fmt: skip
    back = {**cross, "op": "crosses_below"}
    request = "Buy on the 30/90-day SMA crossover."
    model = spec([cross], [back])
    assert not check(request, model).faithful
    fixed, notes = fix_with_claims(request, model)
    assert fixed.exit is None and check(request, fixed).faithful and "opposite" in notes[0]
    timed = spec([cross], [back], max_bars=10)  # with a time exit, null means no signal exit
    assert plain_exit(timed) == (timed, [])
    assert plain_exit(spec([cross], [cross | {"op": "crosses_above"}]))[1] == []


def test_a_faithful_spec_comes_back_unchanged() -> None:
    request = "Buy when RSI(7) is below 30; sell when RSI(7) is above 70."
    right = spec([rsi(7, "below", 30)], [rsi(7, "above", 70)])
    assert fix_with_claims(request, right) == (right, [])


def _conds(rule: Any) -> list[tuple[Any, ...]]:
    out = []
    for c in rule.conditions:
        other = (c.right.kind, c.right.period) if c.right else c.value
        out.append((c.left.kind, c.left.period, c.op, other))
    return out


@pytest.mark.parametrize(
    ("request_", "entry", "exit_", "fields"),
    [
        (  # a zone word beside its level is the same fact: each level keeps its own cue
            "RSI(10) 25 이하 과매도 구간에서 매수하고, 75 이상 과매수 구간에 들어가면 청산해줘",
            [("rsi", 10, "below", 25.0)],
            [("rsi", 10, "above", 75.0)],
            {},
        ),
        (  # "(standard 12/26/9)" are the MACD's windows
            "Short-only. When the MACD histogram (standard 12/26/9) flips below zero, sell short; "
            "buy to cover once it flips back above zero.",
            [("macd_hist", 12, "below", 0.0)],
            [("macd_hist", 12, "above", 0.0)],
            {"direction": "short"},
        ),
        (  # "+8%" is a level; "crossing up through"
            "20-day rate of change crossing up through +8% -> long. Out when ROC(20) dips below "
            "zero.",
            [("roc", 20, "crosses_above", 8.0)],
            [("roc", 20, "below", 0.0)],
            {},
        ),
        (  # "TP/SL 10%/4%": two exits, then their values; "crossing down through"
            "RSI(14) crossing back above 30 from below is the buy; RSI crossing down through 70 "
            "is the sell. TP/SL 10%/4%.",
            [("rsi", 14, "crosses_above", 30.0)],
            [("rsi", 14, "crosses_below", 70.0)],
            {"take_profit_pct": 10.0, "stop_loss_pct": 4.0},
        ),
        (  # "gets me in / gets me out"; numbers in words
            "long-only MA xover: the fifteen-day SMA crossing over the forty-five-day gets me in, "
            "the cross back under gets me out",
            [("sma", 15, "crosses_above", ("sma", 45))],
            [("sma", 15, "crosses_below", ("sma", 45))],
            {},
        ),
        (  # "of the prior twelve": bars
            "Monthly BTCUSD bars. Get long the month the close crosses above the highest high of "
            "the prior twelve. Exit: a close under the lowest low of the prior six.",
            [("close", None, "crosses_above", ("highest_high", 12))],
            [("close", None, "below", ("lowest_low", 6))],
            {"symbol": "BTCUSD"},
        ),
        (  # "trail the short with a 0.5% stop" is a trailing stop, not a fixed one
            "EURUSD, 1h bars. Short on the 12 EMA crossing under the 48 EMA, cover on the cross "
            "back over, and trail the short with a 0.5% stop.",
            [("ema", 12, "crosses_below", ("ema", 48))],
            [("ema", 12, "crosses_above", ("ema", 48))],
            {"trailing_stop_pct": 0.5, "stop_loss_pct": None, "direction": "short"},
        ),
        (  # "Climbs past seventy: sell." — "past" compares, a role after a colon is its role
            "Two-period RSI. Sinks under ten: buy. Climbs past seventy: sell.",
            [("rsi", 2, "below", 10.0)],
            [("rsi", 2, "above", 70.0)],
            {},
        ),
        (  # "Cover at +7%" is the short's target; "dropping through"; "that same EMA"
            "Cover at +7%, or when GOOG closes back above its 30-day EMA. The entry is on the "
            "short side: the close dropping through that same EMA.",
            [("close", None, "crosses_below", ("ema", 30))],
            [("close", None, "above", ("ema", 30))],
            {"take_profit_pct": 7.0, "direction": "short"},
        ),
        (  # a price level in dollars
            "Buy GOOG when it closes above $600 and get out if it closes under $550.",
            [("close", None, "above", 600.0)],
            [("close", None, "below", 550.0)],
            {},
        ),
        (  # a Korean trailing stop: "8% below the highest close since the entry"
            "20일선이 60일선을 골든크로스하면 사고 데드크로스 나면 파는데, "
            "매수 후 최고 종가 대비 8% 빠지면 바로 청산",
            [("sma", 20, "crosses_above", ("sma", 60))],
            [("sma", 20, "crosses_below", ("sma", 60))],
            {"trailing_stop_pct": 8.0, "stop_loss_pct": None},
        ),
    ],
)
def test_the_reader_drafts_what_the_model_misread(
    request_: str, entry: list[Any], exit_: list[Any], fields: dict[str, Any]
) -> None:
    d = draft_spec(request_)
    assert d.spec is not None, d.open
    assert _conds(d.spec.entry) == entry
    assert d.spec.exit is not None and _conds(d.spec.exit) == exit_
    for name, value in fields.items():
        assert getattr(d.spec, name) == value, name


def test_the_named_average_after_the_is_that_average_and_a_mirror_closes_or_reverses() -> None:
    both = draft_spec(
        "Always in the market, long or short, switching on the 30/90-day SMA crossover: the 30 "
        "crossing above the 90 means long, crossing below means short. Each position gets forty "
        "percent of equity."
    )
    assert both.spec is not None and both.spec.short_entry is not None, both.open
    assert both.spec.direction == "both" and both.spec.size_pct == 40
    assert _conds(both.spec.entry) == [("sma", 30, "crosses_above", ("sma", 90))]
    assert _conds(both.spec.short_entry) == [("sma", 30, "crosses_below", ("sma", 90))]
    found = {c.key for c in claims("Buy when the 20 crosses above the 50 and RSI(14) is over 20.")}
    assert "level rsi:14 above 20@entry" in found  # no average is named: 20 stays a number
    assert not any("sma" in k or "ema" in k for k in found)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("cut the trade if it is 20% under water", "stop_loss_pct", 20),
        ("take profit at fifteen percent, stop out at five percent", "stop_loss_pct", 5),
        ("bank it early if it's up 12%", "take_profit_pct", 12),
        ("get out if the trade is down 3%", "stop_loss_pct", 3),
    ],
)
def test_exits_in_trader_words(text: str, field: str, value: float) -> None:
    assert f"{field}={value}" in {c.key for c in claims(text)}


def test_a_macd_compared_with_itself_takes_the_line_the_request_names() -> None:
    from agents.quant.spec_fixes import own_line_for_itself

    request = "MACD on 5, 35, 5. Buy the bullish signal-line crossover, dump it on the bearish one."
    macd = {"kind": "macd", "period": 5, "slow_period": 35, "signal_period": 5}
    data = {"name": "Model", "entry": {"conditions": [
        {"left": macd, "op": "crosses_above", "right": macd}]}}  # fmt: skip
    with pytest.raises(ValueError, match="with itself"):
        StrategySpec.model_validate(data)
    fixed, notes = own_line_for_itself(data, request)
    right = StrategySpec.model_validate(fixed).entry.conditions[0].right
    assert right is not None and right.kind == "macd_signal" and right.slow_period == 35
    assert "signal" in notes[0]
    # no other MACD line named (or two of them): nothing to choose, nothing changed
    assert own_line_for_itself(data, "Buy on the MACD.") == (data, [])
    both = "Buy when the MACD crosses its signal line or the MACD histogram is above 0."
    assert own_line_for_itself(data, both) == (data, [])


def test_an_rsi_compared_with_itself_takes_the_level_stated_with_that_comparison() -> None:
    from agents.quant.spec_fixes import own_line_for_itself

    request = (
        "Long when RSI(14) is under 45 and the close is above the 100-day SMA; "
        "exit when RSI is over 60."
    )
    data = {"name": "Model", "entry": {"conditions": [rsi(14, "below", other=14)]}}
    fixed, notes = own_line_for_itself(data, request)
    cond = StrategySpec.model_validate(fixed).entry.conditions[0]
    assert cond.right is None and cond.value == 45 and "level 45" in notes[0]
    two = "Long when RSI(14) is under 45 or under 30."  # two levels that way: no choice
    assert own_line_for_itself(data, two) == (data, [])


@pytest.mark.parametrize(
    ("request_", "entry", "exit_"),
    [
        (  # Korean crossing verbs: 뚫고 올라가/내려가
            "5일선이 20일선을 뚫고 올라가면 사고, 다시 뚫고 내려가면 팔아",
            [("sma", 5, "crosses_above", ("sma", 20))],
            [("sma", 5, "crosses_below", ("sma", 20))],
        ),
        (  # 회복하면 / 아래로 빠지면
            "종가가 20일선을 회복하면 매수, 20일선 아래로 빠지면 매도",
            [("close", None, "crosses_above", ("sma", 20))],
            [("close", None, "crosses_below", ("sma", 20))],
        ),
        (  # 깨면: a break down
            "20일 신고가를 돌파하면 매수하고 10일 신저가를 깨면 매도",
            [("close", None, "crosses_above", ("highest_high", 20))],
            [("close", None, "crosses_below", ("lowest_low", 10))],
        ),
        (  # a sign change is a cross of zero
            "MACD 히스토그램이 양전환하면 매수, 음전환하면 매도",
            [("macd_hist", None, "crosses_above", 0.0)],
            [("macd_hist", None, "crosses_below", 0.0)],
        ),
        (
            "Go long when the 10-day rate of change flips positive; exit when it goes negative.",
            [("roc", 10, "crosses_above", 0.0)],
            [("roc", 10, "crosses_below", 0.0)],
        ),
    ],
)
def test_crossing_words_and_sign_changes(request_: str, entry: list[Any], exit_: list[Any]) -> None:
    d = draft_spec(request_)
    assert d.spec is not None and d.spec.exit is not None, d.open
    assert (_conds(d.spec.entry), _conds(d.spec.exit)) == (entry, exit_)


# ------------------------------------------------------------------ the model's `unsupported`
SHORT_BREAKDOWN = (
    "Short the breakdown: a close under the prior 15-day low sells short. Target 10%, stop 5%, "
    "and also cover if price closes above the 15-day SMA."
)


@pytest.mark.parametrize(
    "listed",
    [
        ["target 10%", "stop 5%"],  # what the spec states, as the request says it
        ["take_profit_pct", "symbol", "direction"],  # field names: not the request's words
        ["to enter", "both ways"],  # words of the prompt
    ],
)
def test_unsupported_items_the_spec_states_are_dropped(listed: list[str]) -> None:
    model = spec([{"left": {"kind": "close"}, "op": "below", "right": {"kind": "lowest_low",
                  "period": 15}}], direction="short", unsupported=listed)  # fmt: skip
    kept, notes = unread_unsupported(SHORT_BREAKDOWN, model)
    assert kept.unsupported == [] and len(notes) == len(listed)
    assert kept.model_copy(update={"unsupported": listed}) == model  # nothing else changed


@pytest.mark.parametrize(
    ("request_", "listed"),
    [
        ("Buy GOOG whenever its P/E ratio falls below 20 and RSI(14) is under 40.", ["P/E ratio"]),
        ("RSI(14) 30 이하에서 매수, 뉴스 심리가 부정적이면 진입하지 마", ["뉴스 심리"]),
        ("Go long on an SMA(20) cross over SMA(50), but only before 11am.", ["before 11am"]),
    ],
)
def test_unsupported_items_in_the_requests_own_unread_words_are_kept(
    request_: str, listed: list[str]
) -> None:
    model = spec([rsi(14, "below", 30)], unsupported=listed)
    kept, notes = unread_unsupported(request_, model)
    assert kept.unsupported == listed and notes == []


def test_the_facts_a_model_is_given_are_the_claims_with_their_roles() -> None:
    request = "RSI(7) mean reversion: buy when RSI drops below 25, exit when it rises above 60."
    facts = stated_facts(request)
    assert '- "RSI(7)": rsi period = 7' in facts
    assert any("rsi below 25 (entry rule)" in f for f in facts)
    assert any("rsi above 60 (exit rule)" in f for f in facts)
    assert stated_facts("Give me something good.") == []


def ema_cross(fast: int, slow: int, kind: str = "ema") -> Any:
    return {"left": {"kind": kind, "period": fast}, "op": "crosses_above",
            "right": {"kind": kind, "period": slow}}  # fmt: skip


def test_plain_moving_averages_are_the_simple_ones() -> None:
    request = "20일선이 60일선을 골든크로스하면 사고 데드크로스 나면 파는데, 8% 빠지면 청산"
    fixed, notes = plain_averages(request, spec([ema_cross(20, 60)]))
    assert fixed == spec([ema_cross(20, 60, "sma")])
    assert notes == ["a plain moving average read as the simple one (the spec had EMA 20, 60)"]


@pytest.mark.parametrize(
    "request_",
    ["EMA 8일선이 34일선 위로 올라서면 매수", "Buy when the 12-day EMA crosses the 26-day MA"],
)
def test_a_request_naming_an_ema_keeps_the_models_emas(request_: str) -> None:
    model = spec([ema_cross(8, 34)])
    assert plain_averages(request_, model) == (model, [])


@pytest.mark.parametrize(
    ("request_", "series", "value"),
    [
        ("Buy GOOG when it closes above $600 and get out if it closes under $550.",
         {"kind": "close"}, 600.0),
        ("2007년부터 2012년까지 MACD선이 0선 위에 있으면 매수, 0선 아래로 내려가면 매도",
         {"kind": "macd", "period": 12}, 0.0),
    ],
)  # fmt: skip
def test_a_priced_series_against_itself_takes_its_stated_level(
    request_: str, series: dict[str, Any], value: float
) -> None:
    data = {"name": "Model", "entry": {"conditions": [{"left": series, "op": "above",
                                                       "right": series}]}}  # fmt: skip
    fixed, notes = own_line_for_itself(data, request_)
    assert fixed["entry"]["conditions"] == [{"left": series, "op": "above", "value": value}]
    assert "read as the level" in notes[0]


def test_a_cross_where_the_request_states_a_state_becomes_the_state() -> None:
    request = (
        "BTCUSD monthly, long or short: be long while RSI(6) is above 60, short while below 40"
    )
    model = spec([rsi(6, "crosses_above", 60)], [rsi(6, "crosses_below", 40)], direction="both")
    fixed, notes = states_as_stated(request, model)
    assert fixed == spec([rsi(6, "above", 60)], [rsi(6, "below", 40)], direction="both")
    assert len(notes) == 2 and "states a state, not a cross" in notes[0]


def test_a_cross_the_request_states_stays_a_cross() -> None:
    request = "Buy when RSI(14) crosses above 30 and is above 20"
    model = spec([rsi(14, "crosses_above", 30)])
    assert states_as_stated(request, model) == (model, [])
