"""Whole strategies drafted in code from the readings of `test_claims_reading` (candles,
paired exits, the previous bar's high, negative ROC levels with a time exit, reversals, Korean
"뚫으면"), and a vague request's style fitted to few bars (`agents.quant.style_fit`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.quant import style_fit
from agents.quant.drafting import draft_spec, style_spec
from agents.quant.spec import Condition, Rule, StrategySpec


def _conds(rule: Rule | None) -> list[tuple[str, int | None, str, object]]:
    assert rule is not None
    out: list[tuple[str, int | None, str, object]] = []
    for c in rule.conditions:
        right = (c.right.kind, c.right.period) if c.right is not None else c.value
        out.append((c.left.kind, c.left.period, c.op, right))
    return out


def test_candles_and_an_rsi_either_exit() -> None:
    d = draft_spec("Buy a bullish candle when RSI(9) is below 40; sell on a bearish candle or "
                   "when RSI(9) is above 60.")  # fmt: skip
    assert d.spec is not None, d.open
    assert _conds(d.spec.entry) == [("close", None, "above", ("open", None)),
                                    ("rsi", 9, "below", 40.0)]  # fmt: skip
    assert d.spec.exit is not None and d.spec.exit.combine == "any"
    assert _conds(d.spec.exit) == [("close", None, "below", ("open", None)),
                                   ("rsi", 9, "above", 60.0)]  # fmt: skip


def test_paired_exits_with_one_unit() -> None:
    d = draft_spec("Short EURUSD when RSI(14) < 40. Cover once RSI(14) is over 60. "
                   "SL 0.3 / TP 0.9 (percent).")  # fmt: skip
    assert d.spec is not None, d.open
    assert (d.spec.stop_loss_pct, d.spec.take_profit_pct) == (0.3, 0.9)
    assert d.spec.direction == "short"


def test_the_previous_bars_high_and_low() -> None:
    d = draft_spec("Buy when the close is above yesterday's high; sell when the close is "
                   "below yesterday's low.")  # fmt: skip
    assert d.spec is not None, d.open
    assert _conds(d.spec.entry) == [("close", None, "above", ("highest_high", 1))]
    assert _conds(d.spec.exit) == [("close", None, "below", ("lowest_low", 1))]


def test_a_negative_roc_short_with_a_time_exit() -> None:
    d = draft_spec("20일 ROC가 -8% 밑으로 하향 돌파하면 공매도, 0 위로 다시 올라오면 환매. "
                   "10거래일 지나도 안 되면 청산, 손절 3%")  # fmt: skip
    assert d.spec is not None, d.open
    assert d.spec.direction == "short"
    assert _conds(d.spec.entry) == [("roc", 20, "crosses_below", -8.0)]
    assert _conds(d.spec.exit) == [("roc", 20, "crosses_above", 0.0)]
    assert (d.spec.max_bars, d.spec.stop_loss_pct) == (10, 3)


def test_a_stop_and_reverse_in_korean() -> None:
    d = draft_spec(
        "롱숏 양방향. 종가가 20 SMA 상향 돌파 → 숏 정리하고 롱, 하향 이탈 → 롱 정리하고 숏"
    )
    assert d.spec is not None, d.open
    assert d.spec.direction == "both"
    assert _conds(d.spec.entry) == [("close", None, "crosses_above", ("sma", 20))]
    assert _conds(d.spec.short_entry) == [("close", None, "crosses_below", ("sma", 20))]


def test_breaking_through_a_band_in_korean() -> None:
    d = draft_spec("종가가 볼린저밴드(30, 2.5) 상단을 뚫으면 매수, 중간선 아래로 내려가면 매도")
    assert d.spec is not None, d.open
    assert _conds(d.spec.entry) == [("close", None, "crosses_above", ("bb_upper", 30))]
    assert d.spec.entry.conditions[0].right is not None
    assert d.spec.entry.conditions[0].right.std_dev == 2.5
    assert _conds(d.spec.exit) == [("close", None, "below", ("bb_middle", 30))]


# ------------------------------------------------------------------ a style fitted to the data
def _bars(n: int, seed: int = 0) -> pd.DataFrame:
    """A steady climb with small noise: RSI(14) never gets near 30, a short RSI dips often."""
    rng = np.random.default_rng(seed)
    close = 100 * np.cumprod(1 + 0.02 + rng.normal(0, 0.03, n))
    idx = pd.date_range("2000-01-31", periods=n, freq="ME")
    return pd.DataFrame({"Open": close, "High": close * 1.01, "Low": close * 0.99,
                         "Close": close, "Volume": 1.0}, index=idx)  # fmt: skip


def _rsi_spec(period: int, level: float = 30) -> StrategySpec:
    c = Condition.model_validate({"left": {"kind": "rsi", "period": period}, "op": "below",
                                  "value": level})  # fmt: skip
    return StrategySpec(name="MeanReversion", entry=Rule(conditions=[c]))


def test_signals_count_where_a_state_begins_and_each_cross() -> None:
    data = pd.DataFrame({"Close": [1.0, 3, 1, 3, 3, 1]})
    below = Condition.model_validate({"left": {"kind": "close"}, "op": "below", "value": 2})
    cross = Condition.model_validate({"left": {"kind": "close"}, "op": "crosses_above", "value": 2})
    assert style_fit.signals(data, below) == 3  # bars 0, 2, 5 begin a run below 2
    assert style_fit.signals(data, cross) == 2  # bars 1 and 3


def test_a_style_that_never_fires_has_its_windows_shortened() -> None:
    data = _bars(150)
    spec = _rsi_spec(14)
    assert style_fit.signals(data, spec.entry.conditions[0]) == 0
    fitted, note = style_fit.fit(spec, data)
    c = fitted.entry.conditions[0]
    assert c.left.period is not None and c.left.period < 14 and c.value == 30
    assert (style_fit.signals(data, c) or 0) >= style_fit.MIN_SIGNALS
    assert note is not None and "RSI(14) below 30" in note


def test_a_style_that_fires_is_kept() -> None:
    data = _bars(150)
    spec = _rsi_spec(14, level=90)  # RSI(14) is under 90 from the start
    assert style_fit.fit(spec, data) == (spec, None)


def test_a_vague_request_on_monthly_bitcoin_trades() -> None:
    """BTCUSD's bundled bars are monthly: RSI(14) never went below 30 in them."""
    request = "비트코인 월봉에서 쓸 만한 평균회귀 전략 하나 부탁해요. 숫자는 알아서"
    data = style_fit.load_ohlcv("BTCUSD")
    spec, notes = style_spec(request, "mean_reversion", lambda _symbol: len(data))
    assert spec.symbol == "BTCUSD"
    assert (style_fit.signals(data, spec.entry.conditions[0]) or 0) >= style_fit.MIN_SIGNALS
    assert len(notes) == 1 and "shortened" in notes[0]
