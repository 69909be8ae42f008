"""Market data validation and the backtest runner, on the bundled real data."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant.backtests import (
    EQUITY_POINTS,
    MIN_ROWS,
    SYMBOLS,
    BacktestResult,
    InvalidMarketDataError,
    load_ohlcv,
    load_ohlcv_csv,
    run_backtest,
)

WHEN = datetime(2025, 1, 1, tzinfo=UTC)


def _sma(values: pd.Series, n: int) -> pd.Series:
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):
    n1 = 10
    n2 = 20

    def init(self) -> None:
        self.a = self.I(_sma, self.data.Close, self.n1)
        self.b = self.I(_sma, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.a, self.b):
            self.buy()
        elif crossover(self.b, self.a):
            self.position.close()


def _csv(rows: int = 40, **overrides: str) -> str:
    """A valid CSV of `rows` daily bars; overrides replace whole lines by 0-based row index."""
    lines = ["Date,Open,High,Low,Close,Volume"]
    for i in range(rows):
        day = (pd.Timestamp("2024-01-01") + pd.Timedelta(days=i)).date()
        p = 100 + i
        lines.append(f"{day},{p},{p + 2},{p - 2},{p + 1},1000")
    for key, line in overrides.items():
        lines[int(key.removeprefix("r")) + 1] = line
    return "\n".join(lines) + "\n"


def _load(text: str) -> pd.DataFrame:
    return load_ohlcv_csv(io.StringIO(text))


# ----------------------------------------------------------------------------- data


def test_bundled_symbols_and_unknown_symbol() -> None:
    for symbol in SYMBOLS:
        df = load_ohlcv(symbol)
        assert list(df.columns) == ["Open", "High", "Low", "Close", "Volume"]
        assert df.attrs["symbol"] == symbol
    with pytest.raises(ValueError, match="GOOG, EURUSD, BTCUSD"):
        load_ohlcv("AAPL")


def test_valid_csv_case_insensitive_volume_optional() -> None:
    text = _csv().replace("Date,Open,High,Low,Close,Volume", "date,OPEN,high,Low,close,Volume")
    df = _load(text)
    assert len(df) == 40 and isinstance(df.index, pd.DatetimeIndex)
    no_volume = "\n".join(line.rsplit(",", 1)[0] for line in _csv().splitlines())
    df = _load(no_volume)
    assert df["Volume"].isna().all()
    assert df.attrs["symbol"] == "CUSTOM"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_csv().replace(",High,", ",Hi,"), r"Missing column\(s\) High.*Found: Date, Open, Hi"),
        (_csv().replace("Date,", "When,"), "No date column"),
        (_csv(r3="yesterday,1,2,0.5,1.5,10"), r"'Date', line 5: 'yesterday' is not a date"),
        (_csv(r4="2024-01-04,103,105,101,104,1000"), "Duplicate date 2024-01-04.*line 6"),
        (
            _csv(r2="2024-01-03,,104,100,103,1"),
            r"'Open' has 1 missing value.*line 4 \(2024-01-03\)",
        ),
        (_csv(r2="2024-01-03,abc,104,100,103,1"), "'Open', line 4 .*'abc' is not a number"),
        (_csv(r5="2024-01-06,105,100,107,106,1"), r"line 7 \(2024-01-06\): High must be >= Low"),
        (_csv(r5="2024-01-06,105,105,103,106,1"), r"High must be >= max\(Open, Close\)"),
        (_csv(r5="2024-01-06,105,108,105.5,106,1"), r"Low must be <= min\(Open, Close\)"),
        (_csv(r5="2024-01-06,-1,108,-2,106,1"), "'Open', line 7 .*not a positive price"),
        (_csv(rows=10), f"Only 10 row.*at least {MIN_ROWS}"),
        (
            _csv(r1="2023-12-01,101,103,99,102,1"),
            r"not sorted ascending: line 3 \(2023-12-01\) comes after 2024-01-01",
        ),
        ("", "empty"),
    ],
    ids=[
        "missing-column",
        "no-date-column",
        "unparsable-date",
        "duplicate-date",
        "nan",
        "non-numeric",
        "high-below-low",
        "high-below-body",
        "low-above-body",
        "non-positive",
        "too-few-rows",
        "unsorted",
        "empty",
    ],
)
def test_invalid_csv_messages(text: str, expected: str) -> None:
    with pytest.raises(InvalidMarketDataError, match=expected) as info:
        _load(text)
    assert isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------- backtests


@pytest.fixture(scope="module")
def goog_result() -> BacktestResult:
    return run_backtest(SmaCross, "GOOG", user_id="alice", created_at=WHEN)


def test_goog_sma_cross_is_sane(goog_result: BacktestResult) -> None:
    r = goog_result
    assert (r.symbol, r.strategy_name, r.user_id) == ("GOOG", "SmaCross", "alice")
    assert r.parameters == {"n1": 10, "n2": 20}
    assert "class SmaCross(Strategy)" in r.strategy_code
    assert r.num_trades > 0 and r.win_rate_pct is not None
    assert r.max_drawdown_pct <= 0
    assert 0 < r.exposure_pct <= 100
    assert r.initial_cash == 10_000
    assert r.total_return_pct == pytest.approx((r.final_equity / r.initial_cash - 1) * 100)
    assert r.sharpe is not None and r.cagr_pct is not None and r.buy_and_hold_return_pct
    assert abs(len(r.equity_curve) - EQUITY_POINTS) <= 1
    assert r.equity_curve[0].equity == pytest.approx(r.initial_cash)
    assert r.equity_curve[0].date == r.start and r.equity_curve[-1].date == r.end
    assert r.equity_curve[-1].equity == pytest.approx(r.final_equity, abs=0.01)
    assert r.id.startswith("bt-")


def test_deterministic(goog_result: BacktestResult) -> None:
    again = run_backtest(SmaCross, "GOOG", user_id="alice", created_at=WHEN)
    assert again == goog_result
    other_user = run_backtest(SmaCross, "GOOG", user_id="bob", created_at=WHEN)
    assert other_user.id != goog_result.id
    assert other_user.final_equity == goog_result.final_equity


def test_parameters_period_and_explicit_id() -> None:
    r = run_backtest(
        SmaCross,
        "GOOG",
        user_id="alice",
        parameters={"n2": 40},
        start="2008-01-01",
        end="2010-12-31",
        backtest_id="mine",
        created_at=WHEN,
    )
    assert r.parameters == {"n1": 10, "n2": 40}
    assert str(r.start) >= "2008-01-01" and str(r.end) <= "2010-12-31"
    assert r.id == "mine" and r.created_at == WHEN


def test_fractional_sizing_trades_bitcoin_with_10k() -> None:
    r = run_backtest(SmaCross, "BTCUSD", user_id="alice", created_at=WHEN)
    assert r.num_trades > 0
    assert r.exposure_pct > 0


def test_user_csv_round_trip_matches_bundled(tmp_path: Path, goog_result: BacktestResult) -> None:
    path = tmp_path / "goog.csv"
    load_ohlcv("GOOG").to_csv(path)
    df = load_ohlcv_csv(path)
    assert df.attrs["symbol"] == "GOOG"
    r = run_backtest(SmaCross, df, user_id="alice", created_at=WHEN)
    same = {"id", "strategy_code"}
    assert r.model_dump(exclude=same) == goog_result.model_dump(exclude=same)
    assert r.id == goog_result.id  # same data, same id
