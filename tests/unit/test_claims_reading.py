"""Phrasings the request reader reads (`agents.quant.claims`, `faithfulness.claims`,
`numerals`): candles, the open, paired exits with one unit, the previous bar's high and low,
negative levels, Korean crosses ("밑으로 하향 돌파", "뚫으면"), a time exit "N일 지나도 …
청산", reversals ("숏 정리하고 롱") and a rule's cue after a comma ("if X, buy")."""

from __future__ import annotations

import pytest

from agents.quant.faithfulness import claims


def keys(text: str) -> list[str]:
    return [c.key for c in claims(text)]


CASES = [
    # two conditions of one clause share the cue after them: "when A and B, go long"
    (
        "when EMA(8) crosses over EMA(21) and volume is above its 30-day average, buy. "
        "sell after 5 bars.",
        ["condition ema:8 crosses_above ema:21@entry", "ema.period=8", "ema.period=21",
         "condition volume above volume_sma:30@entry", "volume_sma.period=30",
         "max_bars=5"],
    ),
    # a green / red candle: the close above / below the open
    (
        "Go long on a bullish candle while RSI(7) is below 40; exit on the first bearish candle.",
        ["direction=long", "condition close above open@entry", "level rsi:7 below 40@entry",
         "rsi.period=7", "condition close below open@exit"],
    ),
    ("양봉이면 매수, 음봉이면 매도", ["condition close above open@entry",
                                 "condition close below open@exit"]),
    # the open is a series: "close above the open" is not the close above the next indicator
    (
        "Buy when the close is above the open and RSI(14) is under 35.",
        ["condition price above open@entry", "level rsi:14 below 35@entry", "rsi.period=14"],
    ),
    ("종가가 시가보다 높으면 매수, 시가보다 낮으면 매도",
     ["condition price above open@entry", "condition price below open@exit"]),
    # two exits, the unit once after both
    ("SL 1.5 / TP 3 (percent)", ["stop_loss_pct=1.5", "take_profit_pct=3"]),
    ("stop 2, target 6 (in percent)", ["stop_loss_pct=2", "take_profit_pct=6"]),
    # the previous bar's high / low: the highest high (lowest low) of the previous 1 bar
    (
        "Buy when the close breaks above yesterday's high, sell when it is below the prior "
        "bar's low.",
        ["condition price crosses_above highest_high:1@entry", "highest_high.period=1",
         "condition price below lowest_low:1@exit", "lowest_low.period=1"],
    ),
    ("buy on a close above the high of the previous bar",
     ["condition price above highest_high:1@entry", "highest_high.period=1"]),
    ("종가가 전날 고가 위로 올라서면 매수",
     ["condition price crosses_above highest_high:1@entry", "highest_high.period=1"]),
    # negative levels
    (
        "Sell short when ROC(12) drops below -3 and cover when it rises above 1.",
        ["direction=short", "level roc:12 below -3@short", "roc.period=12",
         "level roc:12 above 1@exit"],
    ),
    ("MACD 히스토그램이 -0.5 아래로 하향 돌파하면 공매도",
     ["level macd_hist crosses_below -0.5@short", "direction=short"]),
    # Korean crosses: "밑으로 하향 돌파" is one cross; "위로 다시 올라오면" crosses back up
    ("5일 ROC가 -2% 밑으로 하향 돌파하면 매수",
     ["level roc:5 crosses_below -2@entry", "roc.period=5"]),
    ("RSI(14)가 50 위로 다시 올라오면 매수", ["level rsi:14 crosses_above 50@entry",
                                      "rsi.period=14"]),
    # "뚫으면": up through an upper line, down through a lower one
    (
        "종가가 20일 최고가를 뚫으면 매수, 20일 최저가를 뚫으면 매도",
        ["condition price crosses_above highest_high:20@entry", "highest_high.period=20",
         "condition price crosses_below lowest_low:20@exit", "lowest_low.period=20"],
    ),
    ("종가가 볼린저밴드 하단을 뚫으면 매수", ["condition price crosses_below bb_lower@entry"]),
    # a time exit: "N일 지나도 (…) 청산"
    ("10일 지나도 수익이 안 나면 청산", ["max_bars=10"]),
    ("20봉이 지나면 그냥 정리", ["max_bars=20"]),
    # a reversal is the cue of the side it opens
    (
        "RSI(5)가 20 아래면 숏 정리하고 롱, 80 위면 롱 정리하고 숏",
        ["level rsi:5 below 20@entry", "rsi.period=5", "direction=short", "direction=long",
         "level rsi:5 above 80@short", "direction=long", "direction=short"],
    ),
    (
        "When the 10 EMA crosses above the 30 EMA, cover the short and go long; when it "
        "crosses below, sell the long and go short.",
        ["condition ema:10 crosses_above ema:30@entry", "ema.period=10", "ema.period=30",
         "direction=short", "direction=long", "condition ema:10 crosses_below ema:30@short",
         "direction=long", "direction=short"],
    ),
    # a rule's cue after a comma, when none comes before it
    ("If RSI(2) is under 10, buy; if it is over 90, sell.",
     ["level rsi:2 below 10@entry", "rsi.period=2", "level rsi:2 above 90@exit"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_reads(text: str, expected: list[str]) -> None:
    assert keys(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "SL 0.25 / TP 0.5",  # no unit: points or percent is not said
        "Backtest 2010-2012: buy when RSI(14) < 30",  # a range of years, not a negative level
        "RSI 30-70 band: buy when RSI(14) < 30",
    ],
)
def test_no_unit_or_negative_number_is_invented(text: str) -> None:
    found = keys(text)
    assert not any(k.startswith(("stop_loss_pct", "take_profit_pct")) for k in found)
    assert not any("-" in k.partition("@")[0].split()[-1] for k in found if k.startswith("level"))


def test_a_buy_on_a_cue_before_keeps_it() -> None:
    """A cue before the rule governs it: the comma cue is only for a rule with none."""
    assert keys("Buy when RSI(14) < 30, sell when RSI(14) > 70") == [
        "level rsi:14 below 30@entry",
        "rsi.period=14",
        "level rsi:14 above 70@exit",
        "rsi.period=14",
    ]


def test_open_a_position_is_no_open_price() -> None:
    found = keys("Open a long when the close crosses above the 20-day SMA.")
    assert "condition price crosses_above sma:20@entry" in found
    assert not any("open" in k.split("@")[0] for k in found)
