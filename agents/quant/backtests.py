"""Backtests on real market data: the result type every graph, tool and store shares.

The engine is backtesting.py; its OHLCV data for GOOG, EURUSD and BTCUSD ships with the package
(`backtesting.test`), so backtests are real and offline. Users may bring their own OHLCV CSV.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import warnings
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import backtesting.backtesting as _engine
import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import FractionalBacktest
from pydantic import BaseModel, ConfigDict, Field


class EquityPoint(BaseModel):
    """One point of the compact equity curve (the curve is down-sampled, not the full series)."""

    model_config = ConfigDict(frozen=True)

    date: date
    equity: float


class BacktestResult(BaseModel):
    """One finished backtest. Every number comes from the engine's stats, never from a model.

    Percentages are in percent (12.5 means 12.5 %), as backtesting.py reports them;
    `max_drawdown_pct` is negative or zero. Ratios are NaN-free: undefined values are None.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Backtest id, unique per user (stores scope it by user)")
    user_id: str
    strategy_name: str
    strategy_code: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    symbol: str
    start: date
    end: date
    initial_cash: float
    final_equity: float
    total_return_pct: float
    cagr_pct: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown_pct: float
    num_trades: int
    win_rate_pct: float | None
    exposure_pct: float
    buy_and_hold_return_pct: float | None = None
    equity_curve: list[EquityPoint] = Field(default_factory=list)
    created_at: datetime


# --------------------------------------------------------------------------------------------
# What a backtest says: one table of its headline metrics, every rendering derived from it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One headline metric: its field, the label people and models read, how it is written."""

    field: str
    label: str
    digits: int = 2
    unit: str = ""
    money: bool = False


HEADLINE: tuple[Metric, ...] = (
    Metric("initial_cash", "initial cash", 0, money=True),
    Metric("final_equity", "final equity", 0, money=True),
    Metric("total_return_pct", "total return", 1, "%"),
    Metric("buy_and_hold_return_pct", "buy-and-hold return", 1, "%"),
    Metric("cagr_pct", "CAGR", 1, "%"),
    Metric("sharpe", "Sharpe ratio", 2),
    Metric("sortino", "Sortino ratio", 2),
    Metric("max_drawdown_pct", "max drawdown", 1, "%"),
    Metric("num_trades", "trades", 0),
    Metric("win_rate_pct", "win rate", 1, "%"),
    Metric("exposure_pct", "exposure", 1, "%"),
)
"""The metrics every rendering of a backtest shows, in order."""


def _text(m: Metric, value: Any) -> str:
    if value is None:
        return "n/a"
    if m.money:
        return f"${value:,.{m.digits}f}"
    if isinstance(value, int) and m.digits == 0:
        return str(value)
    return f"{value:,.{m.digits}f}{m.unit}"


def backtest_facts(r: BacktestResult) -> dict[str, str]:
    """The labelled, formatted facts of a backtest: what models may cite and reports show.
    Buy-and-hold is left out when the engine could not compute it."""
    facts = {
        "strategy": r.strategy_name,
        "symbol": r.symbol,
        "period": f"{r.start.isoformat()} to {r.end.isoformat()}",
    }
    for m in HEADLINE:
        value = getattr(r, m.field)
        if value is None and m.field == "buy_and_hold_return_pct":
            continue
        facts[m.label] = _text(m, value)
    if r.parameters:
        facts["parameters"] = ", ".join(f"{k}={v}" for k, v in sorted(r.parameters.items()))
    return facts


def render_backtest(r: BacktestResult) -> str:
    """The one text rendering of a backtest (embedded in the stores, shown in RAG prompts)."""
    return "; ".join(f"{k} {v}" for k, v in backtest_facts(r).items()) + "."


def backtest_summary(r: BacktestResult) -> dict[str, Any]:
    """The same metrics as data (tool results): field names, values rounded as written."""
    out: dict[str, Any] = {
        "backtest_id": r.id,
        "strategy": r.strategy_name,
        "parameters": r.parameters,
        "symbol": r.symbol,
        "start": r.start.isoformat(),
        "end": r.end.isoformat(),
    }
    for m in HEADLINE:
        value = getattr(r, m.field)
        out[m.field] = value if value is None or isinstance(value, int) else round(value, 2)
    return out


# --------------------------------------------------------------------------------------------
# Market data
# --------------------------------------------------------------------------------------------

SYMBOLS: tuple[str, ...] = ("GOOG", "EURUSD", "BTCUSD")
"""Bundled symbols (backtesting.test): GOOG daily 2004-2013, EURUSD hourly 2017-2018,
BTCUSD monthly 2012-2024."""

MIN_ROWS = 30
"""Fewer bars than this cannot warm up even a short indicator; reject such data early."""

OHLC = ("Open", "High", "Low", "Close")
_DATE_NAMES = ("date", "datetime", "timestamp", "time", "day")


class InvalidMarketDataError(ValueError):
    """A user's OHLCV data failed validation; the message says what and what is allowed."""


def load_ohlcv(symbol: str) -> pd.DataFrame:
    """A copy of a bundled OHLCV frame (copies, so callers cannot corrupt the shared data)."""
    key = symbol.strip().upper()
    if key not in SYMBOLS:
        raise ValueError(f"Unknown symbol {symbol!r}; bundled symbols are: {', '.join(SYMBOLS)}")
    df = _bundled(key).copy()
    df.attrs["symbol"] = key
    return df


@functools.cache
def _bundled(symbol: str) -> pd.DataFrame:
    import backtesting.test as bundled  # reads every bundled CSV at import: only on use

    df: pd.DataFrame = getattr(bundled, symbol)
    return df.astype(float)


def _fail(message: str) -> NoReturn:
    raise InvalidMarketDataError(message)


def _where(df: pd.DataFrame, pos: int) -> str:
    """A user-facing position: the CSV line (header is line 1) and the row's date if known."""
    label = df.index[pos]
    when = label.date().isoformat() if isinstance(label, pd.Timestamp) else str(label)
    return f"line {int(df['__line__'].iloc[pos])} ({when})"


def load_ohlcv_csv(
    path_or_buffer: str | Path | IO[str] | IO[bytes], *, symbol: str | None = None
) -> pd.DataFrame:
    """Read and validate a user's OHLCV CSV into the frame the engine expects.

    Validation is strict because a silently-wrong bar produces a plausible but false backtest.
    Expects a date column (named Date/Datetime/Timestamp/Time/Day, or the first, unnamed column
    as written by `DataFrame.to_csv`), Open/High/Low/Close (any case), optional Volume; at least
    `MIN_ROWS` rows. `symbol` (default: the file's stem, else "CUSTOM") is kept in `df.attrs`.
    """
    try:
        raw = pd.read_csv(path_or_buffer, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        _fail("The CSV is empty; expected a header row with Date, Open, High, Low, Close.")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        _fail(f"The CSV could not be parsed ({exc}); expected comma-separated OHLCV rows.")
    if symbol is None and isinstance(path_or_buffer, str | Path):
        symbol = Path(path_or_buffer).stem.upper()
    by_lower, date_col = _csv_columns(raw)
    out = _csv_numbers(raw, by_lower, _csv_dates(raw, date_col))
    _check_bars(out)
    out = out.drop(columns="__line__")
    out.attrs["symbol"] = symbol or "CUSTOM"
    return out


def _csv_columns(raw: pd.DataFrame) -> tuple[dict[str, str], str]:
    """Columns by lower-cased name, and the date column; missing or doubled ones fail."""
    by_lower: dict[str, str] = {}
    for col in raw.columns:
        name = str(col).strip().lower()
        if name in by_lower:
            _fail(f"Column {col!r} appears twice (names are case-insensitive).")
        by_lower[name] = str(col)
    allowed = "Date, Open, High, Low, Close and optional Volume (any letter case)"
    date_col = next((by_lower[n] for n in _DATE_NAMES if n in by_lower), None)
    if date_col is None and len(raw.columns) and str(raw.columns[0]).startswith("Unnamed"):
        date_col = str(raw.columns[0])
    if date_col is None:
        _fail(
            "No date column: name one Date, Datetime, Timestamp, Time or Day (or leave the first "
            f"column unnamed). Found columns: {', '.join(map(str, raw.columns))}."
        )
    missing = [c for c in OHLC if c.lower() not in by_lower]
    if missing:
        _fail(
            f"Missing column(s) {', '.join(missing)}; expected {allowed}. "
            f"Found: {', '.join(map(str, raw.columns))}."
        )
    return by_lower, date_col


def _csv_dates(raw: pd.DataFrame, date_col: str) -> pd.DataFrame:
    """An empty frame indexed by the parsed dates (naive UTC), with each row's CSV line."""
    dates = pd.to_datetime(raw[date_col], errors="coerce")
    bad = dates.isna().to_numpy().nonzero()[0]
    if len(bad):
        i = int(bad[0])
        _fail(
            f"Column {date_col!r}, line {i + 2}: {raw[date_col].iloc[i]!r} is not a date; "
            f"expected dates in one consistent format such as 2024-01-31 "
            f"({len(bad)} unparsable value(s))."
        )
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    out = pd.DataFrame(index=pd.DatetimeIndex(dates.to_numpy()))
    out["__line__"] = pd.Series(range(2, len(raw) + 2)).to_numpy()
    return out


def _csv_numbers(raw: pd.DataFrame, by_lower: dict[str, str], out: pd.DataFrame) -> pd.DataFrame:
    """OHLC(V) as floats; text that is not a number fails with its line."""
    present = [c for c in (*OHLC, "Volume") if c.lower() in by_lower]
    for col in present:
        text = raw[by_lower[col.lower()]]
        values = pd.to_numeric(text, errors="coerce")
        junk = (values.isna() & text.notna()).to_numpy().nonzero()[0]
        if len(junk):
            i = int(junk[0])
            _fail(
                f"Column {col!r}, {_where(out, i)}: {text.iloc[i]!r} is not a number; "
                "prices and volume must be numeric."
            )
        out[col] = values.to_numpy(dtype=float)
    if "Volume" not in out:
        out["Volume"] = np.nan
    return out


def _check_bars(out: pd.DataFrame) -> None:
    """Every bar complete, dates unique and ascending, prices positive and consistent."""
    for col in OHLC:
        nan = out[col].isna().to_numpy().nonzero()[0]
        if len(nan):
            _fail(
                f"Column {col!r} has {len(nan)} missing value(s), first at "
                f"{_where(out, int(nan[0]))}; every bar needs Open, High, Low and Close."
            )
    dup = out.index.duplicated().nonzero()[0]
    if len(dup):
        _fail(
            f"Duplicate date {out.index[int(dup[0])]} at {_where(out, int(dup[0]))}; "
            "each date may appear only once."
        )
    back = (np.diff(out.index.asi8) < 0).nonzero()[0]
    if len(back):
        i = int(back[0]) + 1
        _fail(
            f"Dates are not sorted ascending: {_where(out, i)} comes after "
            f"{out.index[i - 1].date()}; sort the rows oldest first."
        )
    for col in OHLC:
        neg = (out[col] <= 0).to_numpy().nonzero()[0]
        if len(neg):
            i = int(neg[0])
            _fail(f"Column {col!r}, {_where(out, i)}: {out[col].iloc[i]} is not a positive price.")
    _check_consistency(out)
    if len(out) < MIN_ROWS:
        _fail(f"Only {len(out)} row(s) of data; at least {MIN_ROWS} bars are required.")


def _check_consistency(out: pd.DataFrame) -> None:
    body_hi = out[["Open", "Close"]].max(axis=1)
    body_lo = out[["Open", "Close"]].min(axis=1)
    tol = 1e-9 * body_hi
    for mask, rule in (
        (out["High"] < out["Low"] - tol, "High must be >= Low"),
        (out["High"] < body_hi - tol, "High must be >= max(Open, Close)"),
        (out["Low"] > body_lo + tol, "Low must be <= min(Open, Close)"),
    ):
        hit = mask.to_numpy().nonzero()[0]
        if len(hit):
            i = int(hit[0])
            o, h, low, c = (out[k].iloc[i] for k in OHLC)
            _fail(
                f"Inconsistent bar at {_where(out, i)}: {rule} "
                f"(Open={o}, High={h}, Low={low}, Close={c}); {len(hit)} bar(s) affected."
            )


# --------------------------------------------------------------------------------------------
# Running backtests
# --------------------------------------------------------------------------------------------

EQUITY_POINTS = 24
"""Points kept of the equity curve: enough for a chart or a narrative, small enough to index."""

# backtesting.py draws a tqdm bar on stderr for every run; in a server or CLI that is noise.
# Replaced once, globally (patching per run would race between threads).
_engine._tqdm = lambda seq, **_: seq


def _fractional_unit(data: pd.DataFrame, cash: float) -> float:
    """Smallest power-of-ten unit such that the account can hold >= ~100 units at the max price.

    1.0 (plain whole units) when the data already allows it, e.g. EURUSD; 0.1 share for GOOG;
    1e-4 BTC for BTCUSD with $10k.
    """
    top = float(data["Close"].max())
    unit = 1.0
    while top * unit > cash / 100 and unit > 1e-12:
        unit /= 10
    return unit


def strategy_parameters(strategy: type[Strategy]) -> dict[str, Any]:
    """The class-level parameters of a strategy (public, non-callable attributes)."""
    params: dict[str, Any] = {}
    for klass in reversed(strategy.__mro__):
        if klass is Strategy or not issubclass(klass, Strategy):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or callable(value) or isinstance(value, property):
                continue
            if isinstance(value, (classmethod, staticmethod)):
                continue
            params[name] = value
    return params


def make_backtest_id(result: BacktestResult, *, commission: float, data_fingerprint: str) -> str:
    """A deterministic id: re-running the same backtest for the same user gives the same id,
    so re-indexing is idempotent; code, data and costs are part of it so edits do not collide."""
    payload = json.dumps(
        {
            "user": result.user_id,
            "strategy": result.strategy_name,
            "code": hashlib.sha256(result.strategy_code.encode()).hexdigest(),
            "params": result.parameters,
            "symbol": result.symbol,
            "start": result.start.isoformat(),
            "end": result.end.isoformat(),
            "cash": result.initial_cash,
            "commission": commission,
            "data": data_fingerprint,
        },
        sort_keys=True,
        default=str,
    )
    return "bt-" + hashlib.sha256(payload.encode()).hexdigest()[:20]


def data_fingerprint(data: pd.DataFrame) -> str:
    """A short hash of the OHLC bars (and dates): part of the id, so other data, other id."""
    hashed = pd.util.hash_pandas_object(data[list(OHLC)], index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _to_date(value: Any) -> date:
    if value is None:
        raise ValueError("missing date")
    ts = pd.Timestamp(value)
    return ts.date()


def _compact_curve(equity: pd.Series, points: int = EQUITY_POINTS) -> list[EquityPoint]:
    n = len(equity)
    if n == 0:
        return []
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
    out: list[EquityPoint] = []
    for i in idx:
        label = equity.index[i]
        when = label.date() if isinstance(label, pd.Timestamp) else date.fromordinal(1 + int(i))
        out.append(EquityPoint(date=when, equity=round(float(equity.iloc[i]), 2)))
    return out


_SOURCES: weakref.WeakKeyDictionary[type[Strategy], str] = weakref.WeakKeyDictionary()


def _source(strategy: type[Strategy]) -> str:
    """The class's source (cached: getsource costs ~15 ms), or "" for classes built by `exec`."""
    if strategy not in _SOURCES:
        try:
            _SOURCES[strategy] = inspect.getsource(strategy)
        except (OSError, TypeError):
            _SOURCES[strategy] = ""
    return _SOURCES[strategy]


def run_backtest(
    strategy: type[Strategy],
    data: pd.DataFrame | str,
    *,
    user_id: str,
    strategy_name: str | None = None,
    strategy_code: str | None = None,
    parameters: dict[str, Any] | None = None,
    cash: float = 10_000,
    commission: float = 0.002,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    backtest_id: str | None = None,
    created_at: datetime | None = None,
    symbol: str | None = None,
) -> BacktestResult:
    """Run one backtest and return the shared result; every number is the engine's.

    Sizing: backtesting.py trades whole units, so $10k cannot buy one BTC and buys GOOG in
    coarse lumps. We run `backtesting.lib.FractionalBacktest` with a power-of-ten unit chosen so
    the account can hold ~100+ units (0.1 share of GOOG, 1e-4 BTC; EURUSD needs none). Inside the
    strategy, prices are then divided by that unit: ratio-based logic (moving averages, RSI,
    bands, `sl=price * 0.95`) is unaffected, absolute price constants and `size=<units>` are not;
    a strategy with a `price_unit` parameter is given the unit (compiled specs scale by it).
    Reported equity, returns and ratios are in dollars / percent and unaffected.

    Open trades are closed on the last bar (`finalize_trades=True`) so buy-and-hold and late
    entries count in `num_trades` and win rate. `parameters` override the strategy's class-level
    parameters; the result stores the effective set. `id` is deterministic (see
    `make_backtest_id`); pass `created_at` for a fully reproducible result.
    """
    frame, symbol = _bars(data, symbol, start, end)

    effective = {**strategy_parameters(strategy), **(parameters or {})}
    name = strategy_name or strategy.__name__
    if strategy_code is None:
        strategy_code = _source(strategy)

    stats = engine_stats(strategy, frame, cash, commission, parameters or {})

    result = BacktestResult(
        id=backtest_id or "",
        user_id=user_id,
        strategy_name=name,
        strategy_code=strategy_code,
        parameters=effective,
        symbol=symbol,
        start=_to_date(frame.index[0]),
        end=_to_date(frame.index[-1]),
        initial_cash=float(cash),
        equity_curve=_compact_curve(stats["_equity_curve"]["Equity"]),
        created_at=created_at or datetime.now(UTC),
        **_metrics(stats),
    )
    if backtest_id:
        return result
    rid = make_backtest_id(result, commission=commission, data_fingerprint=data_fingerprint(frame))
    return result.model_copy(update={"id": rid})


def _metrics(stats: pd.Series) -> dict[str, Any]:
    """The engine's stats as BacktestResult fields (NaN → None)."""
    trades = int(stats["# Trades"])
    return dict(
        final_equity=_num(stats["Equity Final [$]"]) or 0.0,
        total_return_pct=_num(stats["Return [%]"]) or 0.0,
        cagr_pct=_num(stats["Return (Ann.) [%]"]),
        sharpe=_num(stats["Sharpe Ratio"]),
        sortino=_num(stats["Sortino Ratio"]),
        max_drawdown_pct=min(_num(stats["Max. Drawdown [%]"]) or 0.0, 0.0),
        num_trades=trades,
        win_rate_pct=_num(stats["Win Rate [%]"]) if trades else None,
        exposure_pct=_num(stats["Exposure Time [%]"]) or 0.0,
        buy_and_hold_return_pct=_num(stats["Buy & Hold Return [%]"]),
    )


def _bars(
    data: pd.DataFrame | str, symbol: str | None, start: Any, end: Any
) -> tuple[pd.DataFrame, str]:
    """The bars to run on (a bundled symbol or a frame, cut to [start, end]) and their symbol."""
    if isinstance(data, str):
        frame = load_ohlcv(data)
        symbol = symbol or frame.attrs["symbol"]
    else:
        frame = data
        symbol = symbol or str(frame.attrs.get("symbol") or "CUSTOM")
    if start is not None or end is not None:
        lo = pd.Timestamp(start) if start is not None else None
        hi = pd.Timestamp(end) if end is not None else None
        frame = frame.loc[lo:hi]
    if len(frame) < 2:
        raise ValueError(f"Not enough bars to backtest {symbol} between {start} and {end}.")
    return frame, symbol


def engine_stats(
    strategy: type[Strategy],
    frame: pd.DataFrame,
    cash: float,
    commission: float,
    parameters: dict[str, Any],
) -> pd.Series:
    """backtesting.py's stats (with `_trades`), fractional units where whole ones are too coarse."""
    unit = _fractional_unit(frame, cash)
    if "price_unit" in strategy_parameters(strategy):  # fixed price levels, in the engine's units
        parameters = {**parameters, "price_unit": unit}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine: Backtest
        if unit < 1:
            engine = FractionalBacktest(
                frame,
                strategy,
                cash=cash,
                commission=commission,
                finalize_trades=True,
                fractional_unit=unit,
            )
        else:
            engine = Backtest(
                frame, strategy, cash=cash, commission=commission, finalize_trades=True
            )
        return engine.run(**parameters)
