"""The typed strategy spec a model fills and code compiles (`agents.quant.compiler`).

Why a spec: a small model asked for code copies its example; asked to fill this schema under
grammar-constrained decoding it can only say *which* indicators, levels, directions and exits —
and code turns that into a `backtesting.Strategy` that is readable, testable and checked against
the request (`agents.quant.faithfulness`). The model fills `ModelSpec`, the same spec with each
series kind given only the fields it takes, so the grammar cannot write a width on a MACD; its
JSON schema goes to OpenAI structured outputs and to llama.cpp's `response_format` alike.

Every optional value has a documented default (`DEFAULTS`); a value the request did not state is
returned to the user as an assumption, never silently. What the spec cannot express goes into
`unsupported`, in the request's own words, and the service says so instead of substituting.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.quant.backtests import SYMBOLS

SeriesKind = Literal[
    "close",
    "open",
    "high",
    "low",
    "volume",
    "sma",
    "ema",
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr",
    "highest_high",
    "lowest_low",
    "roc",
    "volume_sma",
    "up_streak",
    "down_streak",
]
"""What a series can be. Prices and volume need no period; every other kind is computed."""

PRICE_KINDS: frozenset[str] = frozenset({"close", "open", "high", "low", "volume"})
WINDOWED_KINDS: frozenset[str] = frozenset(
    {"sma", "ema", "rsi", "atr", "highest_high", "lowest_low", "roc", "volume_sma"}
    | {"bb_upper", "bb_middle", "bb_lower"}
)
MACD_KINDS: frozenset[str] = frozenset({"macd", "macd_signal", "macd_hist"})
STREAK_KINDS: frozenset[str] = frozenset({"up_streak", "down_streak"})
SCALES: dict[str, str] = {
    **dict.fromkeys(("close", "open", "high", "low", "sma", "ema", "highest_high"), "price"),
    **dict.fromkeys(("lowest_low", "bb_upper", "bb_middle", "bb_lower"), "price"),
    **dict.fromkeys(MACD_KINDS, "macd"),
    **dict.fromkeys(("volume", "volume_sma"), "volume"),
}
"""Series measured on one scale can be compared with each other; any other series (RSI, ATR,
rate of change, streaks) only with itself at another window or with a fixed value."""


def scale_problems(spec: StrategySpec) -> list[str]:
    """Conditions of `spec` that compare series on different scales (`SCALES`), in words.
    A valid spec, but no request means it: measured, "MACD is above its signal" was read as
    MACD above RSI. The builder treats it as unread, never as the request's rule."""
    out = []
    for rule in (spec.entry, spec.exit, spec.short_entry):
        for c in rule.conditions if rule is not None else []:
            a, b = c.left.kind, c.right.kind if c.right is not None else None
            if b is not None and a != b and (SCALES.get(a) is None or SCALES[a] != SCALES.get(b)):
                out.append(f"a condition compares {a} with {b}, which are on different scales")
    return out


Op = Literal["crosses_above", "crosses_below", "above", "below"]
Direction = Literal["long", "short", "both"]

DEFAULTS: dict[str, object] = {
    "rsi.period": 14,
    "sma.period": 20,
    "ema.period": 20,
    "atr.period": 14,
    "roc.period": 10,
    "highest_high.period": 20,
    "lowest_low.period": 20,
    "volume_sma.period": 20,
    "bb.period": 20,
    "bb.std_dev": 2.0,
    "macd.period": 12,
    "macd.slow_period": 26,
    "macd.signal_period": 9,
    "direction": "long",
    "size_pct": 100.0,
    "symbol": "GOOG",
    "exit": "the opposite of the entry signal",
    "atr_stop_period": 14,
}
"""What the compiler uses where the spec leaves a value out; each use is an assumption."""


class Series(BaseModel):
    """One series on the chart: a price, volume, or an indicator with its windows."""

    model_config = ConfigDict(extra="forbid")

    kind: SeriesKind
    period: int | None = Field(
        default=None,
        ge=1,
        le=500,
        description="Window in bars (SMA/EMA/RSI/ATR/ROC/Bollinger/highest/lowest/volume SMA; "
        "the fast EMA of MACD). Null = the default. Prices, volume and streaks take none "
        "(3 up closes in a row = up_streak above 2).",
    )
    slow_period: int | None = Field(
        default=None, ge=1, le=500, description="MACD only: the slow EMA window."
    )
    signal_period: int | None = Field(
        default=None, ge=1, le=500, description="MACD only: the signal-line EMA window."
    )
    std_dev: float | None = Field(
        default=None, gt=0, le=10, description="Bollinger bands only: width in standard deviations."
    )

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> Series:
        wrong = []
        if (self.kind in PRICE_KINDS or self.kind in STREAK_KINDS) and self.period is not None:
            wrong.append("period")
        if self.kind not in MACD_KINDS and (self.slow_period or self.signal_period):
            wrong.append("slow_period/signal_period")
        if not self.kind.startswith("bb_") and self.std_dev is not None:
            wrong.append("std_dev")
        if wrong:
            raise ValueError(f"{self.kind} takes no {', '.join(wrong)}")
        return self


class Condition(BaseModel):
    """`left op right`, where right is another series or a fixed value (e.g. RSI below 30)."""

    model_config = ConfigDict(extra="forbid")

    left: Series
    op: Op
    right: Series | None = Field(default=None, description="Compare with this series, or …")
    value: float | None = Field(
        default=None, allow_inf_nan=False, description="… with this fixed level."
    )

    @model_validator(mode="after")
    def _one_right_side(self) -> Condition:
        if (self.right is None) == (self.value is None):
            raise ValueError("a condition compares with exactly one of `right` or `value`")
        if self.right == self.left:  # "close crosses above close": never true, never trades
            raise ValueError(
                f"a condition compares {self.left.kind} with itself, which is never true: "
                "compare it with another series or a fixed value"
            )
        return self


class Rule(BaseModel):
    """Conditions combined: all must hold, or any one."""

    model_config = ConfigDict(extra="forbid")

    combine: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(min_length=1, max_length=6)


_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{2,40}$")


class StrategySpec(BaseModel):
    """A complete trading strategy for one symbol, as data."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Z][A-Za-z0-9]{2,40}$",  # in the schema: the grammar holds it too
        description="CamelCase class name, e.g. RsiReversal",
    )
    direction: Direction = Field(default="long", description="long, short, or both")
    entry: Rule = Field(description="When to open a position (a short one if direction=short)")
    exit: Rule | None = Field(
        default=None, description="When to close, besides the stops; null = the opposite signal"
    )
    short_entry: Rule | None = Field(
        default=None, description="direction=both only: when to go short (null = the exit rule)"
    )
    max_bars: int | None = Field(default=None, ge=1, le=5000, description="Exit after N bars")
    stop_loss_pct: float | None = Field(default=None, gt=0, lt=100)
    take_profit_pct: float | None = Field(default=None, gt=0, le=1000)
    trailing_stop_pct: float | None = Field(default=None, gt=0, lt=100)
    atr_stop_multiple: float | None = Field(
        default=None, gt=0, le=20, description="Stop at entry ∓ N × ATR(14)"
    )
    size_pct: float | None = Field(
        default=None, gt=0, le=100, description="Percent of equity per trade (null = 100)"
    )
    symbol: str | None = Field(default=None, description="GOOG, EURUSD or BTCUSD (null = GOOG)")
    start: date | None = Field(default=None, description="First date, YYYY-MM-DD (null = all)")
    end: date | None = Field(default=None, description="Last date, YYYY-MM-DD (null = all)")
    unsupported: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Parts of the request this spec cannot express, in the request's words",
    )

    @field_validator("name")
    @classmethod
    def _class_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("name must be a CamelCase identifier of 3-41 letters/digits")
        return v

    @field_validator("symbol")
    @classmethod
    def _known_symbol(cls, v: str | None) -> str | None:
        if v is not None and v not in SYMBOLS:
            raise ValueError(f"unknown symbol {v!r}; bundled symbols: {', '.join(SYMBOLS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> StrategySpec:
        if self.short_entry is not None and self.direction != "both":
            raise ValueError("short_entry is only for direction=both")
        return self

    def series(self) -> list[Series]:
        """Every series the rules use, in order of first use, without repeats."""
        rules = [r for r in (self.entry, self.exit, self.short_entry) if r is not None]
        seen: dict[str, Series] = {}
        for rule in rules:
            for c in rule.conditions:
                for s in (c.left, c.right):
                    if s is not None:
                        seen.setdefault(s.model_dump_json(), s)
        return list(seen.values())


def drop_inapplicable(data: object) -> tuple[object, list[str]]:
    """A model's spec JSON without the series fields its kind takes no value for (a period on a
    price, a slow period on an RSI, a width on an SMA), and what was dropped. The grammar cannot
    say which fields go with which kind; code can, so these need no repair round."""
    dropped: list[str] = []

    def walk(node: object, path: str) -> object:
        if isinstance(node, dict):
            kind = node.get("kind")
            if isinstance(kind, str) and "left" not in node:
                for name, applies in (
                    ("period", kind not in PRICE_KINDS and kind not in STREAK_KINDS),
                    ("slow_period", kind in MACD_KINDS),
                    ("signal_period", kind in MACD_KINDS),
                    ("std_dev", kind.startswith("bb_")),
                ):
                    if not applies and node.get(name) is not None:
                        dropped.append(f"{path}.{name} ({kind} takes none)")
                        node = {k: v for k, v in node.items() if k != name}
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node

    return walk(data, ""), dropped


# ------------------------------------------------------------------------------ the model's schema
# What the model writes under the grammar: the same spec, but a series is one of four shapes by
# kind, so no field its kind takes none of (a width on a MACD, a period on the close) can be
# written at all. A plain union is `anyOf` in the JSON schema: llama.cpp's grammar and OpenAI's
# strict mode both take it. `to_spec` validates the reply into the `StrategySpec` code uses.
_PERIOD = "Window in bars. Null = the default."


class PlainSeries(BaseModel):
    """A price, volume, or a streak of up/down closes: no window."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["close", "open", "high", "low", "volume", "up_streak", "down_streak"]


class WindowSeries(BaseModel):
    """An indicator with one window."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sma", "ema", "rsi", "atr", "highest_high", "lowest_low", "roc", "volume_sma"]
    period: int | None = Field(default=None, ge=1, le=500, description=_PERIOD)


class BandSeries(BaseModel):
    """A Bollinger band: its window and its width in standard deviations."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["bb_upper", "bb_middle", "bb_lower"]
    period: int | None = Field(default=None, ge=1, le=500, description=_PERIOD)
    std_dev: float | None = Field(default=None, gt=0, le=10, description="Width (null = 2).")


class MacdSeries(BaseModel):
    """The MACD line, its signal line or its histogram: fast, slow and signal windows."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["macd", "macd_signal", "macd_hist"]
    period: int | None = Field(default=None, ge=1, le=500, description="Fast EMA (null = 12).")
    slow_period: int | None = Field(default=None, ge=1, le=500, description="Slow (null = 26).")
    signal_period: int | None = Field(default=None, ge=1, le=500, description="Signal (null = 9).")


ModelSeries = PlainSeries | WindowSeries | BandSeries | MacdSeries


class SeriesCondition(BaseModel):
    """`left op right`: one series against another (the fast average crosses the slow one)."""

    model_config = ConfigDict(extra="forbid")
    left: ModelSeries
    op: Op
    right: ModelSeries = Field(description="The series compared with")


class LevelCondition(BaseModel):
    """`left op value`: a series against a fixed level (RSI below 30, MACD above 0)."""

    model_config = ConfigDict(extra="forbid")
    left: ModelSeries
    op: Op
    value: float = Field(allow_inf_nan=False, description="The fixed level")


ModelCondition = SeriesCondition | LevelCondition
"""Two shapes, so the grammar writes exactly one right side (never both, never neither)."""


class ModelRule(BaseModel):
    """Conditions combined: all must hold, or any one."""

    model_config = ConfigDict(extra="forbid")
    combine: Literal["all", "any"] = "all"
    conditions: list[ModelCondition] = Field(min_length=1, max_length=6)


class ModelSpec(StrategySpec):
    """A complete trading strategy for one symbol, as data."""

    entry: ModelRule = Field(  # type: ignore[assignment]
        description="When to open a position (a short one if direction=short)"
    )
    exit: ModelRule | None = Field(  # type: ignore[assignment]
        default=None, description="When to close, besides the stops; null = the opposite signal"
    )
    short_entry: ModelRule | None = Field(  # type: ignore[assignment]
        default=None, description="direction=both only: when to go short (null = the exit rule)"
    )

    def to_spec(self) -> StrategySpec:
        """The spec code uses (its validators run: a condition with both sides is refused)."""
        return StrategySpec.model_validate(self.model_dump(exclude_none=True))
