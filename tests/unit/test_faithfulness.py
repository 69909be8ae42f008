"""The spec is checked against the request in code: what requests state, what specs add.

Tables of request phrasings (English and Korean) with the exact claims they state; `check` cases
for each kind of discrepancy and addition; what no spec can express; and properties: any text is
read without raising, in linear time, and a spec built from a request's claims is faithful to it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.quant import claims as reading
from agents.quant.claims import fmt
from agents.quant.faithfulness import (
    UNEXPRESSIBLE,
    Claim,
    FaithfulnessReport,
    check,
    claims,
    unexpressible,
)
from agents.quant.spec import SYMBOLS, Condition, Rule, Series, StrategySpec

# ------------------------------------------------------------------------------- claims: English
ENGLISH: list[tuple[str, list[str]]] = [
    ("RSI(7)", ["rsi.period=7"]),
    ("7-period RSI", ["rsi.period=7"]),
    ("RSI 7", ["rsi.period=7"]),
    ("RSI with a period of 7", ["rsi.period=7"]),
    ("RSI below 30 / above 70", ["level rsi below 30", "level rsi above 70"]),
    (
        "Buy when RSI(7) drops below 30, sell when it rises above 70",
        ["level rsi:7 below 30@entry", "rsi.period=7", "level rsi:7 above 70@exit"],
    ),
    ("RSI: buy below 30 / above 70", ["level rsi below 30@entry", "level rsi above 70@exit"]),
    ("RSI(2) < 10", ["level rsi:2 below 10", "rsi.period=2"]),
    ("14-day RSI crosses above 30", ["level rsi:14 crosses_above 30", "rsi.period=14"]),
    ("50-day SMA", ["sma.period=50"]),
    (
        "price above the 200-day simple moving average",
        ["condition price above sma:200", "sma.period=200"],
    ),
    (
        "50/200 moving average crossover",
        ["condition ma:50 crosses ma:200", "ma.period=50", "ma.period=200"],
    ),
    (
        "SMA crossover with fast 10 and slow 30",
        ["condition sma:10 crosses sma:30", "sma.period=10", "sma.period=30"],
    ),
    (
        "fast=10, slow=30 EMA crossover",
        ["condition ema:10 crosses ema:30", "ema.period=10", "ema.period=30"],
    ),
    ("EMA 12 and 26", ["ema.period=12", "ema.period=26"]),
    (
        "12/26 EMA crossover",
        ["condition ema:12 crosses ema:26", "ema.period=12", "ema.period=26"],
    ),
    ("MACD (12,26,9)", ["macd.period=12", "macd.slow_period=26", "macd.signal_period=9"]),
    ("MACD crosses above its signal line", ["condition macd crosses_above macd_signal"]),
    ("MACD histogram crosses zero", ["level macd_hist crosses 0"]),
    ("MACD crosses below zero", ["level macd crosses_below 0"]),
    ("Bollinger bands (20, 2)", ["bb.period=20", "bb.std_dev=2"]),
    ("20-day Bollinger bands", ["bb.period=20"]),
    ("buy when the close is below the lower band", ["condition price below bb_lower@entry"]),
    ("price breaks above the upper Bollinger band", ["condition price crosses_above bb_upper"]),
    ("ATR 14", ["atr.period=14"]),
    ("2x ATR stop", ["atr_stop_multiple=2"]),
    ("stop at 2 ATR", ["atr_stop_multiple=2"]),
    ("ATR 14, 2x ATR stop", ["atr.period=14", "atr_stop_multiple=2"]),
    ("a 3x ATR(20) stop", ["atr_stop_multiple=3", "atr_stop_period=20"]),
    ("20-day high", ["highest_high.period=20"]),
    (
        "breaks above the 20-day high",
        ["condition price crosses_above highest_high:20", "highest_high.period=20"],
    ),
    ("highest high of the last 20 days", ["highest_high.period=20"]),
    ("close below the 10-day low", ["condition price below lowest_low:10", "lowest_low.period=10"]),
    ("Donchian 55", ["donchian.period=55"]),
    ("rate of change 10", ["roc.period=10"]),
    ("10-day ROC above 5", ["level roc:10 above 5", "roc.period=10"]),
    ("3 consecutive up closes", ["level up_streak above 2"]),
    ("buy after three consecutive down days", ["level down_streak above 2@entry"]),
    (
        "volume above its 20-day average",
        ["condition volume above volume_sma:20", "volume_sma.period=20"],
    ),
    ("go short when RSI is above 70", ["direction=short", "level rsi above 70@short"]),
    ("sell short GOOG", ["direction=short", "symbol=GOOG"]),
    ("short only", ["direction=short"]),
    ("long and short", ["direction=both"]),
    ("trade both directions", ["direction=both"]),
    ("long only", ["direction=long"]),
    ("a long-term moving average", ["indicator=ma"]),
    ("5% stop loss", ["stop_loss_pct=5"]),
    ("stop at 2%", ["stop_loss_pct=2"]),
    ("stop-loss of 3.5%", ["stop_loss_pct=3.5"]),
    ("take profit 10%", ["take_profit_pct=10"]),
    ("10% profit target", ["take_profit_pct=10"]),
    ("trailing stop 3%", ["trailing_stop_pct=3"]),
    ("3% trailing stop", ["trailing_stop_pct=3"]),
    ("exit after 10 bars", ["max_bars=10"]),
    ("exit after 10 days", ["max_bars=10"]),
    ("hold for 5 days", ["max_bars=5"]),
    ("sell after 7 trading days", ["max_bars=7"]),
    ("50% of equity", ["size_pct=50"]),
    ("half the capital", ["size_pct=50"]),
    ("invest 25% of capital per trade", ["size_pct=25"]),
    ("GOOG", ["symbol=GOOG"]),
    ("EURUSD", ["symbol=EURUSD"]),
    ("BTCUSD", ["symbol=BTCUSD"]),
    ("bitcoin", ["symbol=BTCUSD"]),
    ("euro dollar", ["symbol=EURUSD"]),
    ("trade AAPL", ["symbol=AAPL"]),
    ("from 2010 to 2012", ["start=2010", "end=2012"]),
    ("since 2015", ["start=2015"]),
    ("in 2011", ["start=2011", "end=2011"]),
    ("between 2008-01-01 and 2009-06-30", ["start=2008-01-01", "end=2009-06-30"]),
    (
        "Buy when the 10-day SMA crosses above the 30-day SMA",
        ["condition sma:10 crosses_above sma:30@entry", "sma.period=10", "sma.period=30"],
    ),
    (
        "the 10-day EMA crosses over the 30-day EMA",
        ["condition ema:10 crosses_above ema:30", "ema.period=10", "ema.period=30"],
    ),
    (
        "buy when the 10 SMA crosses above the 30 SMA and sell when it crosses below",
        [
            "condition sma:10 crosses_above sma:30@entry",
            "sma.period=10",
            "sma.period=30",
            "condition sma:10 crosses_below sma:30@exit",
        ],
    ),
    ("golden cross", ["condition ma:fast crosses_above ma:slow"]),
    ("death cross", ["condition ma:fast crosses_below ma:slow"]),
    (
        "a golden cross of the 50 and 200-day SMA",
        ["condition sma:50 crosses_above sma:200", "sma.period=50", "sma.period=200"],
    ),
    (
        "golden cross entry, death cross exit",
        [
            "condition ma:fast crosses_above ma:slow@entry",
            "condition ma:fast crosses_below ma:slow@exit",
        ],
    ),
    (
        "Go long on a golden cross and short on a death cross",
        [
            "direction=long",
            "condition ma:fast crosses_above ma:slow@entry",
            "direction=short",
            "condition ma:fast crosses_below ma:slow@short",
        ],
    ),
    ("the fast MA crosses above the slow MA", ["condition ma:fast crosses_above ma:slow"]),
    (
        "Buy when the fast MA crosses above the slow MA, fast 10 and slow 30",
        ["condition ma:10 crosses_above ma:30@entry", "ma.period=10", "ma.period=30"],
    ),
    ("RSI oversold", ["level rsi below ?"]),
    (
        "RSI strategy: buy oversold, sell overbought",
        ["level rsi below ?@entry", "level rsi above ?@exit"],
    ),
    (
        "buy a 20-day breakout",
        ["highest_high.period=20", "condition price crosses_above highest_high:20@entry"],
    ),
    (
        "Price above the 50 day SMA and below the 10-day EMA",
        [
            "condition price above sma:50",
            "sma.period=50",
            "condition price below ema:10",
            "ema.period=10",
        ],
    ),
    (
        "Short GOOG when RSI(14) > 70, cover when RSI < 30",
        [
            "direction=short",
            "symbol=GOOG",
            "level rsi:14 above 70@short",
            "rsi.period=14",
            "level rsi below 30@exit",
        ],
    ),
    (
        "Buy GOOG when RSI(7) drops below 30. 5% stop loss, take profit at 10%.",
        [
            "symbol=GOOG",
            "level rsi:7 below 30@entry",
            "rsi.period=7",
            "stop_loss_pct=5",
            "take_profit_pct=10",
        ],
    ),
    (
        "RSI(99999) below 150, stop loss 150%",
        ["level rsi:99999 below 150", "rsi.period=99999", "stop_loss_pct=150"],
    ),
    ("RSI(123456789012345678901234567890)", ["indicator=rsi"]),
    ("", []),
    ("take profit, volume and a breakout", ["indicator=volume"]),
]

# ------------------------------------------------------------------------------- claims: Korean
KOREAN: list[tuple[str, list[str]]] = [
    ("RSI(7)", ["rsi.period=7"]),
    ("RSI가 30 이하이면 매수", ["level rsi below 30@entry"]),
    ("RSI(14)가 70 이상이면 매도", ["level rsi:14 above 70@exit", "rsi.period=14"]),
    (
        "RSI(7)이 30 이하이면 매수, 70 이상이면 매도",
        ["level rsi:7 below 30@entry", "rsi.period=7", "level rsi:7 above 70@exit"],
    ),
    ("RSI가 30을 상향 돌파하면 매수", ["level rsi crosses_above 30@entry"]),
    ("20일 이동평균", ["ma.period=20"]),
    ("20일 이평선", ["ma.period=20"]),
    (
        "5일선이 20일선을 상향 돌파",
        ["condition ma:5 crosses_above ma:20", "ma.period=5", "ma.period=20"],
    ),
    (
        "5일선이 20일선을 하향 돌파하면 매도",
        ["condition ma:5 crosses_below ma:20@exit", "ma.period=5", "ma.period=20"],
    ),
    (
        "5일선이 20일선을 상향 돌파하면 매수, 하향 돌파하면 매도",
        [
            "condition ma:5 crosses_above ma:20@entry",
            "ma.period=5",
            "ma.period=20",
            "condition ma:5 crosses_below ma:20@exit",
        ],
    ),
    ("골든크로스", ["condition ma:fast crosses_above ma:slow"]),
    ("데드크로스", ["condition ma:fast crosses_below ma:slow"]),
    (
        "골든크로스 매수 데드크로스 매도",
        [
            "condition ma:fast crosses_above ma:slow@entry",
            "condition ma:fast crosses_below ma:slow@exit",
        ],
    ),
    (
        "5일선과 20일선의 골든크로스",
        ["condition ma:5 crosses_above ma:20", "ma.period=5", "ma.period=20"],
    ),
    (
        "단기 5일 장기 20일 이동평균 골든크로스",
        ["condition ma:5 crosses_above ma:20", "ma.period=5", "ma.period=20"],
    ),
    ("지수이동평균", ["indicator=ema"]),
    ("12일 지수이동평균", ["ema.period=12"]),
    ("단순이동평균 50일", ["sma.period=50"]),
    ("볼린저밴드 하단", ["indicator=bb_lower"]),
    ("종가가 볼린저밴드 하단 아래로 내려가면 매수", ["condition price below bb_lower@entry"]),
    ("볼린저밴드(20, 2)", ["bb.period=20", "bb.std_dev=2"]),
    ("5% 손절", ["stop_loss_pct=5"]),
    ("손절 5%", ["stop_loss_pct=5"]),
    ("10% 익절", ["take_profit_pct=10"]),
    ("익절은 10%", ["take_profit_pct=10"]),
    ("트레일링 스탑 3%", ["trailing_stop_pct=3"]),
    ("ATR 2배 손절", ["atr_stop_multiple=2"]),
    ("공매도", ["direction=short"]),
    ("매도 포지션", ["direction=short"]),
    ("롱/숏", ["direction=both"]),
    ("롱숏 전략", ["direction=both"]),
    ("양방향", ["direction=both"]),
    ("10일 후 청산", ["max_bars=10"]),
    ("5일 보유", ["max_bars=5"]),
    ("거래량", ["indicator=volume"]),
    ("거래량이 20일 평균 이상", ["condition volume above volume_sma:20", "volume_sma.period=20"]),
    ("3일 연속 상승", ["level up_streak above 2"]),
    ("3일 연속 하락하면 매수", ["level down_streak above 2@entry"]),
    (
        "20일 신고가 돌파 시 매수",
        ["condition price crosses_above highest_high:20@entry", "highest_high.period=20"],
    ),
    ("구글", ["symbol=GOOG"]),
    ("비트코인", ["symbol=BTCUSD"]),
    ("유로달러", ["symbol=EURUSD"]),
    ("2015년부터", ["start=2015"]),
    ("2010년부터 2012년까지", ["start=2010", "end=2012"]),
    ("자본의 50%", ["size_pct=50"]),
    ("자본의 절반", ["size_pct=50"]),
    ("MACD가 시그널선을 상향 돌파하면 매수", ["condition macd crosses_above macd_signal@entry"]),
    ("RSI 14를 사용해 과매도 구간에서 매수", ["level rsi:14 below ?@entry", "rsi.period=14"]),
    (
        "비트코인을 2018년부터 2020년까지, 자본의 절반만 투자",
        ["symbol=BTCUSD", "start=2018", "end=2020", "size_pct=50"],
    ),
]


def keys(text: str) -> list[str]:
    return [c.key for c in claims(text)]


@pytest.mark.parametrize(("text", "expected"), ENGLISH)
def test_english_claims(text: str, expected: list[str]) -> None:
    assert keys(text) == expected


@pytest.mark.parametrize(("text", "expected"), KOREAN)
def test_korean_claims(text: str, expected: list[str]) -> None:
    assert keys(text) == expected


def test_the_tables_are_big_enough() -> None:
    assert len(ENGLISH) + len(KOREAN) >= 60
    assert len(KOREAN) >= 20


def test_a_claim_names_the_span_it_came_from() -> None:
    text = "Buy GOOG when RSI(7) drops below 30; 5% 손절"
    found = {c.key: c for c in claims(text)}
    assert found["rsi.period=7"].text == "RSI(7)"
    assert found["stop_loss_pct=5"].text == "5% 손절"
    assert found["symbol=GOOG"].span == (4, 8)
    assert all(text[c.span[0] : c.span[1]] == c.text for c in found.values())
    with pytest.raises(Exception):  # noqa: B017 - frozen
        found["symbol=GOOG"].value = "BTCUSD"  # type: ignore[misc]


# ------------------------------------------------------------------------------- check()
def series(key: str) -> dict[str, Any]:
    kind, _, period = key.partition(":")
    return {"kind": kind, **({"period": int(period)} if period else {})}


def cond(left: str, op: str, right: str | float) -> dict[str, Any]:
    other = {"right": series(right)} if isinstance(right, str) else {"value": right}
    return {"left": series(left), "op": op, **other}


def spec(entry: list[dict[str, Any]], **fields: Any) -> StrategySpec:
    for name in ("exit", "short_entry"):
        if isinstance(fields.get(name), list):
            fields[name] = {"conditions": fields[name]}
    return StrategySpec.model_validate({"name": "Test", "entry": {"conditions": entry}, **fields})


RSI_REQUEST = "Buy when RSI(7) drops below 30, sell when it rises above 70"
RSI_SPEC = spec([cond("rsi:7", "below", 30)], exit=[cond("rsi:7", "above", 70)])
CROSS_REQUEST = "Buy when the 10-day SMA crosses above the 30-day SMA"


def messages(report: FaithfulnessReport) -> str:
    return "\n".join(d.message for d in report.discrepancies)


def violations(report: FaithfulnessReport) -> str:
    return "\n".join(a.message for a in report.violations)


def test_the_faithful_spec_passes() -> None:
    report = check(RSI_REQUEST, RSI_SPEC)
    assert report.faithful, report.repair_instructions()
    assert report.discrepancies == [] and report.violations == []
    assert report.repair_instructions() == ""
    assert [a.field for a in report.assumptions] == ["direction"]  # long, the default


def test_sma_for_ema_is_caught() -> None:
    report = check(CROSS_REQUEST, spec([cond("ema:10", "crosses_above", "ema:30")]))
    assert not report.faithful
    assert "the request says SMA; the spec uses EMA" in messages(report)
    assert len(report.discrepancies) == 1  # not once more for the crossover itself


def test_period_7_for_14_is_caught() -> None:
    report = check(
        RSI_REQUEST, spec([cond("rsi:14", "below", 30)], exit=[cond("rsi:14", "above", 70)])
    )
    assert "rsi.period: the request says RSI period 7; the spec has 14" in messages(report)
    assert len(report.discrepancies) == 1


def test_an_invented_stop_loss_is_a_violation() -> None:
    report = check(RSI_REQUEST, RSI_SPEC.model_copy(update={"stop_loss_pct": 2.0}))
    assert not report.faithful and report.discrepancies == []
    (added,) = report.violations
    assert added.field == "stop_loss_pct" and added.value == "2"
    assert "2% stop loss" in added.message and "set stop_loss_pct to null" in added.fix
    assert "stop_loss_pct" in report.repair_instructions()


def test_a_default_period_for_a_bare_rsi_is_an_assumption() -> None:
    report = check("Buy when RSI is below 30", spec([cond("rsi:14", "below", 30)]))
    assert report.faithful
    assert "rsi.period" in [a.field for a in report.assumptions]
    assert report.violations == []


def test_direction_short_is_caught() -> None:
    report = check("Go short when RSI(7) is above 70", spec([cond("rsi:7", "above", 70)]))
    assert "direction: the request says short; the spec is long" in messages(report)
    assert check(
        "공매도: RSI(7) 70 이상", spec([cond("rsi:7", "above", 70)], direction="short")
    ).faithful


def test_both_directions() -> None:
    request = "Go long on a golden cross and short on a death cross"
    golden = [cond("sma:50", "crosses_above", "sma:200")]
    assert "the request says both; the spec is long" in messages(check(request, spec(golden)))
    assert check(request, spec(golden, direction="both")).faithful


def test_a_reversed_crossover_is_caught() -> None:
    report = check(CROSS_REQUEST, spec([cond("sma:10", "crosses_below", "sma:30")]))
    assert (
        "entry: the request says to enter when SMA(10) crosses above SMA(30); "
        "the spec has SMA(10) crosses below SMA(30)" in messages(report)
    )
    same = spec([cond("sma:30", "crosses_below", "sma:10")])  # the same event, written backwards
    assert check(CROSS_REQUEST, same).faithful


def test_golden_cross_needs_the_fast_average_above() -> None:
    assert check("golden cross", spec([cond("sma:50", "crosses_above", "sma:200")])).faithful
    report = check("golden cross", spec([cond("sma:200", "crosses_above", "sma:50")]))
    assert "the fast moving average crosses above the slow moving average" in messages(report)


def test_korean_stop_loss_missing_is_caught() -> None:
    report = check("RSI(7)이 30 이하이면 매수, 5% 손절", spec([cond("rsi:7", "below", 30)]))
    assert "stop_loss_pct: the request says a 5% stop loss; the spec has none" in messages(report)
    ok = spec([cond("rsi:7", "below", 30)], stop_loss_pct=5)
    assert check("RSI(7)이 30 이하이면 매수, 5% 손절", ok).faithful


@pytest.mark.parametrize(
    ("request_text", "fields", "expected"),
    [
        (
            "take profit 10%",
            {"take_profit_pct": 5},
            "the request says a 10% take profit; the spec has a 5% take profit",
        ),
        (
            "trailing stop 3%",
            {},
            "trailing_stop_pct: the request says a 3% trailing stop; the spec has none",
        ),
        ("2x ATR stop", {}, "atr_stop_multiple: the request says a 2× ATR stop; the spec has none"),
        (
            "exit after 10 bars",
            {"max_bars": 5},
            "max_bars: the request says an exit after 10 bars; the spec has an exit after 5 bars",
        ),
        (
            "half the capital",
            {},
            "size_pct: the request says 50% of equity per trade; the spec has none",
        ),
        ("on bitcoin", {"symbol": "GOOG"}, "symbol: the request says BTCUSD; the spec has GOOG"),
        ("on AAPL", {}, "symbol: the request says AAPL (AAPL has no bundled data"),
        (
            "from 2010 to 2012",
            {"start": "2010-01-01"},
            "end: the request says end 2012; the spec has none",
        ),
        (
            "since 2015",
            {"start": "2010-01-01"},
            "start: the request says start 2015; the spec has 2010-01-01",
        ),
        (
            "a 3x ATR(20) stop",
            {"atr_stop_multiple": 3},
            "the request says an ATR(20) stop; the spec's ATR stop always uses ATR(14)",
        ),
    ],
)
def test_each_stated_value_is_checked(
    request_text: str, fields: dict[str, Any], expected: str
) -> None:
    report = check(
        request_text + ". Buy when RSI(7) is below 30", spec([cond("rsi:7", "below", 30)], **fields)
    )
    assert expected in messages(report), messages(report)


def test_indicator_discrepancies() -> None:
    rsi = spec([cond("rsi:7", "below", 30)])
    report = check("MACD crosses above zero, RSI(7) < 30", rsi)
    assert messages(report) == "macd: the request says MACD; the spec has no MACD"
    assert "the request says MACD; the spec has no MACD" in messages(
        check("MACD, RSI(7) < 30", rsi)
    )
    bands = spec([cond("close", "below", "bb_upper")])
    assert "the request says lower Bollinger band; the spec uses upper Bollinger band" in messages(
        check("buy when the close is below the lower band", bands)
    )
    report = check(
        "MACD (12,26,9) crosses above its signal line",
        spec(
            [
                {
                    "left": {"kind": "macd", "period": 12, "slow_period": 30, "signal_period": 9},
                    "op": "crosses_above",
                    "right": {
                        "kind": "macd_signal",
                        "period": 12,
                        "slow_period": 30,
                        "signal_period": 9,
                    },
                }
            ]
        ),
    )
    assert "macd.slow_period: the request says MACD slow period 26; the spec has 30" in messages(
        report
    )
    also = spec(
        [cond("rsi:7", "below", 30), cond("rsi:14", "below", 50)], exit=[cond("rsi:7", "above", 70)]
    )
    report = check(RSI_REQUEST, also)  # a second RSI, of a period the request never states
    assert messages(report) == "rsi.period: the request says RSI period 7; the spec also uses 14"
    later = "RSI(7) mean reversion: buy when RSI drops below 25, exit when it rises above 60"
    one = spec([cond("rsi:14", "below", 25)], exit=[cond("rsi:7", "above", 60)])  # the later RSI
    assert messages(check(later, one)) == (
        "rsi.period: the request says RSI period 7; the spec also uses 14"
    )


def test_level_and_rule_discrepancies() -> None:
    report = check(
        RSI_REQUEST, spec([cond("rsi:7", "below", 25)], exit=[cond("rsi:7", "above", 70)])
    )
    assert (
        "the request says to enter when RSI(7) below 30; the spec has RSI(7) below 25"
        in messages(report)
    )
    swapped = spec([cond("rsi:7", "above", 70)], exit=[cond("rsi:7", "below", 30)])
    assert (
        "entry: the request says to enter when RSI(7) below 30; the spec has RSI(7) above 70; "
        "RSI(7) below 30 (in exit)" in messages(check(RSI_REQUEST, swapped))
    )
    default_exit = check(RSI_REQUEST, spec([cond("rsi:7", "below", 30)]))  # exit null: RSI above 30
    assert (
        "exit (null: the opposite of the entry): the request says to exit when RSI(7) above 70"
        in messages(default_exit)
    )
    crossing = check(
        CROSS_REQUEST + ", exit when the close is above 150",
        spec([cond("sma:10", "crosses_above", "sma:30")]),
    )
    assert "the request says to exit when price above 150; the spec has no such condition" in (
        messages(crossing)
    )
    golden_only = spec([cond("sma:50", "crosses_above", "sma:200")])
    assert "rsi: the request says RSI period 7; the spec has no RSI" in messages(
        check("RSI(7) below 30", golden_only)
    )
    near = check("RSI(7) above 80", RSI_SPEC)
    assert (
        "the request says RSI(7) above 80; the spec has RSI(7) below 30; RSI(7) above 70"
        in messages(near)
    )
    other = spec([cond("rsi:7", "below", 30)], exit=[cond("close", "above", "ema:20")])
    report = check("Buy when RSI(7) is below 30, exit when RSI(7) is above 70", other)
    assert (
        "exit: the request says to exit when RSI(7) above 70; "
        "the spec has RSI(7) below 30 (in entry)" in messages(report)
    )


@pytest.mark.parametrize(
    ("fields", "field", "violation"),
    [
        ({"stop_loss_pct": 2}, "stop_loss_pct", True),
        ({"take_profit_pct": 10}, "take_profit_pct", True),
        ({"trailing_stop_pct": 3}, "trailing_stop_pct", True),
        ({"atr_stop_multiple": 2}, "atr_stop_multiple", True),
        ({"max_bars": 10}, "max_bars", True),
        ({"size_pct": 50}, "size_pct", True),
        ({"size_pct": 100}, "size_pct", False),
        ({"symbol": "BTCUSD"}, "symbol", True),
        ({"symbol": "GOOG"}, "symbol", False),
        ({"start": "2010-01-01"}, "start", True),
        ({"end": "2012-12-31"}, "end", True),
        ({"direction": "both"}, "direction", True),
        ({"direction": "long"}, "direction", False),
        ({"exit": [cond("rsi:7", "above", 70)]}, "exit", True),
        ({"direction": "both", "short_entry": [cond("rsi:7", "above", 80)]}, "short_entry", True),
    ],
)
def test_each_addition_kind(fields: dict[str, Any], field: str, violation: bool) -> None:
    report = check("Buy when RSI(7) drops below 30", spec([cond("rsi:7", "below", 30)], **fields))
    added = [a for a in report.additions if a.field == field]
    assert [a.violation for a in added] == [violation], report.additions
    assert report.faithful is not violation
    if violation:
        assert field in report.repair_instructions()


def test_conditions_the_request_never_states() -> None:
    invented = spec([cond("rsi:7", "below", 30), cond("close", "above", "sma:200")])
    report = check("Buy when RSI(7) drops below 30", invented)
    assert "the spec adds close above SMA(200), on SMA" in violations(report)
    assert "sma.period" not in [a.field for a in report.additions]  # the violation says it all
    bands = spec([cond("close", "below", "bb_lower:20")])
    report = check("Bollinger band strategy on GOOG", bands)
    assert report.faithful
    assert any(
        "close below lower Bollinger band(20, 2) is an assumption" in a.message
        for a in report.additions
    )
    vague = check("a mean-reversion strategy", spec([cond("rsi:14", "below", 30)]))
    assert vague.faithful and vague.assumptions


def test_oversold_and_golden_cross_leave_levels_and_periods_open() -> None:
    report = check("buy when RSI is oversold", spec([cond("rsi:14", "below", 30)]))
    assert report.faithful
    assert any(
        "the level in RSI(14) below 30 is an assumption" in a.message for a in report.assumptions
    )
    golden = check("golden cross", spec([cond("sma:50", "crosses_above", "sma:200")]))
    assert golden.faithful and {a.value for a in golden.assumptions} >= {"50", "200"}


def test_repair_instructions_name_every_problem() -> None:
    bad = spec([cond("ema:7", "below", 30)], stop_loss_pct=2, take_profit_pct=8, direction="short")
    report = check("Buy when RSI(7) drops below 30. Use a 5% stop loss.", bad)
    text = report.repair_instructions()
    for name in ("rsi", "stop_loss_pct", "take_profit_pct", "direction"):
        assert name in text
    assert text.count("\n- ") == len(report.discrepancies) + len(report.violations)


# ------------------------------------------------------------------------------- unexpressible
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("buy at the open if it gaps up", ["at the open", "gaps up"]),
        ("갭 상승 시 매수", ["갭 상승"]),
        ("sell before earnings or on bad news", ["earnings", "news"]),
        ("only stocks with a P/E under 15", ["P/E"]),
        ("buy call options when RSI < 30", ["call options"]),
        ("pairs trading GOOG vs BTCUSD", ["pairs trading", "several symbols (GOOG, BTCUSD)"]),
        ("rebalance the portfolio monthly", ["rebalance"]),
        ("use machine learning to predict the close", ["machine learning", "predict"]),
        ("trade the first 30 minutes after 9:30 am", ["first 30 minutes", "9:30 am"]),
        ("뉴스 감성 분석으로 예측", ["뉴스", "감성", "예측"]),
        ("stochastic RSI and VWAP", ["stochastic RSI", "VWAP"]),
        ("every Monday", ["Monday"]),
        ("risk 1% per trade with pyramiding", ["risk 1% per trade", "pyramiding"]),
    ],
)
def test_unexpressible(text: str, expected: list[str]) -> None:
    assert unexpressible(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "take profit 10% and a 5% stop loss",
        "buy on a volume breakout above the 20-day high",
        "close the position when the close crosses below the 50-day SMA",
        "50% of the portfolio per trade, long and short",
        "RSI(7) below 30 on GOOG from 2010 to 2012, exit after 10 days",
        "5일선이 20일선을 상향 돌파하면 매수, 거래량 증가, 10% 익절",
        "",
    ],
)
def test_benign_phrasing_is_expressible(text: str) -> None:
    assert unexpressible(text) == []


def test_the_unexpressible_table_is_data() -> None:
    assert len(UNEXPRESSIBLE) >= 8
    assert all(re.compile(pattern) for _, pattern in UNEXPRESSIBLE)


# ------------------------------------------------------------------------------- hostile input
_WORDS = "RSI ( 7 ) , / - day SMA EMA above below crosses golden cross 5% stop loss 2010"
_WORDS += " 년 일 선 이하 상향 돌파 골든크로스 손절 익절 매수 매도 short long both"
VOCABULARY = [*_WORDS.split(" "), "take profit", "\x00", "\n", "．", "1.5", "９", "99999999999999"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400) | st.lists(st.sampled_from(VOCABULARY), max_size=80).map(" ".join))
def test_any_text_is_read_without_raising(text: str) -> None:
    found = claims(text)
    assert all(text[c.span[0] : c.span[1]] == c.text for c in found)
    unexpressible(text)
    report = check(text, RSI_SPEC)
    assert isinstance(report.repair_instructions(), str)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1" * 1_000_000,
        " " * 1_000_000,
        "가" * 1_000_000,
        "".join(chr(i % 0x3000) for i in range(1_000_000)),
        "RSI(" * 250_000,
        (
            "RSI(7) below 30 crosses above the 50-day SMA golden cross 5% stop loss "
            "5일선이 20일선을 상향 "
            "돌파 "
        )
        * 12_000,
    ],
    ids=["empty", "digits", "spaces", "hangul", "unicode", "rsi-parens", "dense"],
)
def test_a_megabyte_is_read_in_bounded_time(text: str) -> None:
    start = time.perf_counter()
    claims(text)
    unexpressible(text)
    assert time.perf_counter() - start < 60


def test_reading_time_is_linear() -> None:
    unit = "Buy when RSI(7) drops below 30 and the 5일선이 20일선을 상향 돌파, 5% 손절, from 2010. "

    def seconds(n: int) -> float:
        text = unit * n
        start = time.perf_counter()
        claims(text)
        return time.perf_counter() - start

    seconds(50)
    small, large = seconds(500), seconds(4000)
    assert large < 8 * small * 2.5  # 8x the text, well under quadratic


def test_scanning_changes_no_match() -> None:
    """The scanners' fast finders (gated, case-folded by hand, number-led rows merged) find
    exactly what one plain alternation of each table's rows finds."""
    corpus = "\n".join(t for t, _ in ENGLISH + KOREAN) + "\n" + " ".join(VOCABULARY) * 3
    for scanner in (
        reading._PHASE1_SCAN,
        reading._TOKEN_SCAN,
        reading._CUE_SCAN,
        reading._SER_SCAN,
    ):
        bare = [re.sub(r"\(\?P<(?!unit>)\w+>", "(?:", r.pattern) for r in scanner.rows]
        plain = re.compile("|".join(f"(?:{p})" for p in bare), re.I)
        expected = []
        for m in plain.finditer(corpus):
            row = next(i for i, r in enumerate(scanner.rows) if r.match(corpus, m.start()))
            expected.append((scanner.names[row], m.span()))
        low = corpus.translate(reading.LOWER)
        assert [(name, m.span()) for name, m in scanner.scan(corpus, low)] == expected


# ------------------------------------------------------------------------------- faithful specs
FRAGMENTS = [
    "Buy when RSI(7) drops below 30",
    "sell when RSI(7) rises above 70",
    "use a 5% stop loss",
    "take profit 10%",
    "trailing stop 3%",
    "exit after 10 bars",
    "50% of equity",
    "on bitcoin",
    "trade EURUSD",
    "from 2010 to 2012",
    "go short",
    "long and short",
    "buy when the 10-day SMA crosses above the 30-day SMA",
    "golden cross",
    "MACD (12,26,9) crosses above its signal line",
    "buy when the close is below the lower Bollinger band (20, 2)",
    "volume above its 20-day average",
    "3 consecutive up closes",
    "RSI가 30 이하이면 매수",
    "5일선이 20일선을 상향 돌파하면 매수",
    "5% 손절",
    "10일 후 청산",
    "공매도",
    "2x ATR stop",
    "Donchian 55",
    "price above the 200-day EMA",
    "buy oversold",
    "breaks above the 20-day high",
]


def build(found: list[Claim]) -> StrategySpec | None:
    """The spec that does exactly what the claims say (None when they contradict each other)."""
    fields: dict[str, Any] = {}
    periods: dict[str, list[float]] = {}
    for c in found:
        family, _, attr = c.field.partition(".")
        if attr:
            periods.setdefault(c.field, []).append(float(str(c.value)))
        elif c.field in {
            "stop_loss_pct",
            "take_profit_pct",
            "trailing_stop_pct",
            "atr_stop_multiple",
            "max_bars",
            "size_pct",
            "symbol",
        }:
            if fields.setdefault(c.field, c.value) != c.value:
                return None
        elif c.field in ("start", "end"):
            fields[c.field] = str(c.value) + ("-01-01" if c.field == "start" else "-12-31")
    if fields.get("symbol") not in (None, *SYMBOLS):
        return None
    said = {str(c.value) for c in found if c.field == "direction"}
    fields["direction"] = (
        "both" if "both" in said or {"long", "short"} <= said else (said or {"long"}).pop()
    )

    def make(key: str) -> Series:
        fam, _, per = key.partition(":")
        kind = {"ma": "sma", "price": "close", "donchian": "highest_high", "bb": "bb_lower"}.get(
            fam, fam
        )
        if per in ("fast", "slow"):
            # the stated periods of the averages of this kind (an EMA's 200 is no SMA's)
            stated = sorted(v for f in ("ma", kind) for v in periods.get(f + ".period", []))
            per = fmt(stated[0] if per == "fast" else stated[-1]) if len(stated) > 1 else "10"
            per = "30" if per == "10" and key.endswith("slow") else per
        values: dict[str, Any] = {}
        prefix = "macd" if kind.startswith("macd") else "bb" if kind.startswith("bb") else fam
        for attr in ("period", "slow_period", "signal_period", "std_dev"):
            if (got := periods.get(f"{prefix}.{attr}")) and kind != "close":
                values[attr] = got[0]
        if per:
            values["period"] = float(per)
        if (
            kind in ("sma", "ema")
            and not per
            and (got := periods.get(f"{kind}.period") or periods.get("ma.period"))
        ):
            values["period"] = got[0]
        values = {k: int(v) if k != "std_dev" else v for k, v in values.items()}
        return Series(kind=kind, **values)  # type: ignore[arg-type]

    rules: dict[str, list[Condition]] = {"entry": [], "exit": [], "short_entry": []}
    for c in found:
        if c.field not in ("level", "condition"):
            continue
        op = "crosses_above" if c.op == "crosses" else c.op
        if c.field == "level":
            value = c.value if c.value is not None else (30 if op == "below" else 70)
            made = Condition(left=make(str(c.series)), op=op, value=value)  # type: ignore[arg-type]
        else:
            made = Condition(left=make(str(c.series)), op=op, right=make(str(c.other)))  # type: ignore[arg-type]
        role = {
            "exit": "exit",
            "short": "short_entry" if fields["direction"] == "both" else "entry",
        }
        rules[role.get(str(c.role), "entry")].append(made)
    used = [s for r in rules.values() for x in r for s in (x.left, x.right) if s]
    for c in found:  # every named indicator is used somewhere, with each stated period
        family = str(c.value) if c.field == "indicator" else c.field.partition(".")[0]
        if c.field != "indicator" and not c.field.endswith(".period"):
            continue
        kinds = {"ma": {"sma", "ema"}, "donchian": {"highest_high", "lowest_low"}}.get(family)
        s = make(family if c.field == "indicator" else f"{family}:{fmt(c.value)}")
        if not any(
            u.kind in (kinds or {s.kind})
            and (
                c.field == "indicator" or u.period == s.period or u.kind.startswith(("macd", "bb"))
            )
            for u in used
        ):
            rules["entry"].append(Condition(left=s, op="above", value=0))
            used.append(s)
    if not rules["entry"]:
        rules["entry"].append(Condition(left=Series(kind="close"), op="above", value=0))
    if any(len(r) > 6 for r in rules.values()):
        return None
    return StrategySpec(
        name="Built",
        entry=Rule(conditions=rules["entry"]),
        exit=Rule(conditions=rules["exit"]) if rules["exit"] else None,
        short_entry=Rule(conditions=rules["short_entry"]) if rules["short_entry"] else None,
        **fields,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=3, unique=True).map(". ".join))
def test_a_spec_built_from_the_claims_is_faithful(request_text: str) -> None:
    built = build(claims(request_text))
    if built is None:
        return
    report = check(request_text, built)
    assert report.faithful, (
        request_text,
        report.repair_instructions(),
        built.model_dump(exclude_none=True),
    )
