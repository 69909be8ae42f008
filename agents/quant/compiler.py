"""Compile a `StrategySpec` into readable, self-contained `backtesting.Strategy` source.

Deterministic (same spec, byte-identical code). The module holds its imports, the indicator
helpers it uses (plain pandas/numpy) and one class: its docstring is `describe_spec(spec)`, its
parameters named after what they are (`rsi_period`, `oversold`, `stop_loss_pct`), one indicator
per distinct series, a plain `next()`. Each default taken, each reading, is an `Assumption`.

Semantics (tests, the sandbox and bench/strategy_cases.py's references rely on them):

* Series: close/open/high/low/volume are the data columns; sma; ema (span n, adjust=False, NaN
  for n-1 bars); rsi (Wilder's, as `corpus.rsi`); macd = EMA(period) - EMA(slow_period),
  macd_signal = its EMA(signal_period), macd_hist = line - signal; bb_* = SMA(period) ± std_dev
  population deviations (as `corpus.bollinger`); atr = Wilder's average of the true range (max
  of high-low, |high-prev close|, |low-prev close|); highest_high / lowest_low: of the *previous*
  n bars (so "close breaks the 20-day high" can happen); roc: % change over n bars; volume_sma;
  up_streak / down_streak: consecutive closes, up to this bar, above / below the one before ("3
  up closes in a row" is `up_streak above 2`; a `period` on a streak is ignored, and said so).
* Conditions: crosses_above is `crossover(left, right)` (strictly below on the previous bar,
  strictly above on this one), crosses_below `crossover(right, left)`; above / below compare the
  latest values strictly. A fixed `value` is a parameter (RSI: `oversold` under 50, `overbought`
  over). A fixed level on a price series is `level * price_unit` (volume: `/`): `run_backtest`
  sets `price_unit` to the unit it trades in (0.1 share of GOOG), so 1000 means $1000.
* Rules: all / any. `opposite(rule)` mirrors each op (crosses_above↔crosses_below, above↔below)
  and swaps all↔any (De Morgan): a mirror, not a negation (neither fires on equal values).
* Directions: long: `entry` opens a long when flat, the exits close it; short: the same, short;
  both: `entry` goes long, `short_entry` (None: the `exit` rule, else the opposite of `entry`)
  short, each reversing the other (close, then open; if both fire when flat, long). In `both`,
  `exit` beside a `short_entry` closes a long, and its opposite a short.
* Exits: `exit` None is the opposite of the entry signal unless `max_bars` is given; stops guard
  a position on top of the signal exit, never replace it. max_bars: close ordered once max_bars
  bars have passed since the entry bar. stop_loss_pct / take_profit_pct: `sl` / `tp` on the order,
  from the last close; atr_stop_multiple: `sl` at the last close ∓ N × ATR(14) (beside a stop
  loss, the tighter); trailing_stop_pct: close when the close is that far below the best close
  since the signal bar (short: above the lowest). Orders fill at the next open; what is still
  open is closed on the last bar. size_pct under 100: `size=size_pct / 100`; else all equity.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict

from agents.quant.spec import (
    DEFAULTS,
    MACD_KINDS,
    PRICE_KINDS,
    STREAK_KINDS,
    WINDOWED_KINDS,
    Condition,
    Rule,
    Series,
    SeriesKind,
    StrategySpec,
)

__all__ = ["Assumption", "CompiledStrategy", "compile_spec", "describe_spec", "opposite"]

Number = int | float
Key = tuple[str, tuple[Number, ...]]
"""A series resolved: its kind and the values of the windows it uses, defaults filled in."""


class Assumption(BaseModel):
    """A value the spec left out and the compiler chose, or a reading of the spec it made."""

    model_config = ConfigDict(frozen=True)

    field: str
    value: int | float | str | None
    reason: str


class CompiledStrategy(BaseModel):
    """The compiled module, its class and parameters, and what was assumed."""

    model_config = ConfigDict(frozen=True)

    code: str
    class_name: str
    parameters: dict[str, int | float]
    assumptions: list[Assumption]
    symbol: str
    description: str


# ---- series and rules ----------------------------------------------------------------------

# fmt: off
_FIELDS: dict[str, tuple[str, ...]] = {k: ("period",) for k in sorted(WINDOWED_KINDS)}
_FIELDS |= {"bb_upper": ("period", "std_dev"), "bb_lower": ("period", "std_dev")}
_FIELDS |= {"macd": ("period", "slow_period")}
_FIELDS |= {k: ("period", "slow_period", "signal_period") for k in ("macd_signal", "macd_hist")}
_FAMILY = dict.fromkeys(("bb_upper", "bb_middle", "bb_lower"), "bb")  # whose defaults apply
_FAMILY |= dict.fromkeys(MACD_KINDS, "macd")
_LABEL = {"roc": "rate of change", "macd": "MACD line", "macd_signal": "MACD signal line",
          "macd_hist": "MACD histogram", "bb_upper": "upper Bollinger band",
          "bb_middle": "middle Bollinger band", "bb_lower": "lower Bollinger band",
          "volume_sma": "volume SMA"}  # else SMA, EMA, RSI, ATR; highest high, up streak, ...
_ATTR = {"macd": "macd_line", "bb_upper": "upper_band", "bb_middle": "middle_band",
         "bb_lower": "lower_band"}  # an indicator attribute is else named after its kind
_HELPER = {"macd": "macd_line", "macd_hist": "macd_histogram", "bb_upper": "bollinger_band",
           "bb_lower": "bollinger_band", "bb_middle": "sma", "volume_sma": "sma"}  # else the kind
_INPUTS = {"atr": "High, Low, Close", "highest_high": "High", "lowest_low": "Low",
           "volume_sma": "Volume"}
_TEXT = {  # how a series reads where the default wording ("SMA(20)", "the close") does not fit
    "highest_high": "the highest high of the previous {0} bars",
    "lowest_low": "the lowest low of the previous {0} bars", "volume": "volume",
    "roc": "the {0}-bar rate of change (%)", "volume_sma": "the {0}-bar average volume",
    "up_streak": "the up streak (consecutive up closes)",
    "down_streak": "the down streak (consecutive down closes)",
}
_D: dict[str, Any] = DEFAULTS
_MIRROR: dict[str, Any] = {"crosses_above": "crosses_below", "crosses_below": "crosses_above",
                           "above": "below", "below": "above"}
_PAIRS = {k: ("fast", "slow") for k in ("sma", "ema", "volume_sma")} | {
    k: ("short", "long") for k in ("rsi", "atr", "roc", "highest_high", "lowest_low")}
_NEEDS = {"macd_line": ("ema",), "macd_signal": ("macd_line",),
          "macd_histogram": ("macd_line", "macd_signal")}
_EXIT_PARAMS = ("stop_loss_pct", "take_profit_pct", "trailing_stop_pct", "atr_stop_multiple",
                "max_bars")
# fmt: on
_HELPERS: dict[str, str] = {
    "sma": '''def sma(values, n):
    """Simple moving average of the last n bars."""
    return pd.Series(values).rolling(n).mean().to_numpy()''',
    "ema": '''def ema(values, n):
    """Exponential moving average (span n, not adjusted); NaN for the first n - 1 bars."""
    out = pd.Series(values).ewm(span=n, adjust=False).mean().to_numpy(copy=True)
    out[: n - 1] = np.nan
    return out''',
    "rsi": '''def rsi(values, n):
    """Wilder's relative strength index, 0..100 (gains and losses smoothed with alpha 1/n)."""
    delta = pd.Series(values).diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    rs = gain / loss.replace(0, np.nan)
    return (100 - 100 / (1 + rs)).fillna(100.0).where(gain.notna()).to_numpy()''',
    "macd_line": '''def macd_line(values, fast, slow):
    """MACD line: the fast EMA minus the slow EMA."""
    return ema(values, fast) - ema(values, slow)''',
    "macd_signal": '''def macd_signal(values, fast, slow, signal):
    """MACD signal line: the EMA (span `signal`) of the MACD line."""
    line = macd_line(values, fast, slow)
    return pd.Series(line).ewm(span=signal, adjust=False).mean().to_numpy()''',
    "macd_histogram": '''def macd_histogram(values, fast, slow, signal):
    """MACD histogram: the MACD line minus its signal line."""
    return macd_line(values, fast, slow) - macd_signal(values, fast, slow, signal)''',
    "bollinger_band": '''def bollinger_band(values, n, k):
    """SMA(n) plus k population standard deviations: the upper band, or with -k the lower."""
    s = pd.Series(values)
    return (s.rolling(n).mean() + k * s.rolling(n).std(ddof=0)).to_numpy()''',
    "atr": '''def atr(high, low, close, n):
    """Average true range, Wilder-smoothed (alpha 1/n)."""
    high, low, prev = pd.Series(high), pd.Series(low), pd.Series(close).shift(1)
    ranges = [high - low, (high - prev).abs(), (low - prev).abs()]
    true_range = pd.concat(ranges, axis=1).max(axis=1)
    return true_range.ewm(alpha=1 / n, adjust=False, min_periods=n).mean().to_numpy()''',
    "highest_high": '''def highest_high(high, n):
    """Highest high of the previous n bars (the current bar excluded, so a close can break it)."""
    return pd.Series(high).rolling(n).max().shift(1).to_numpy()''',
    "lowest_low": '''def lowest_low(low, n):
    """Lowest low of the previous n bars (the current bar excluded, so a close can break it)."""
    return pd.Series(low).rolling(n).min().shift(1).to_numpy()''',
    "roc": '''def roc(values, n):
    """Rate of change over n bars, in percent."""
    return (pd.Series(values).pct_change(n) * 100).to_numpy()''',
    "up_streak": '''def up_streak(close):
    """Consecutive closes above the previous close, ending at each bar (0 after a non-up one)."""
    up = pd.Series(close).diff() > 0
    return up.astype(float).groupby((~up).cumsum()).cumsum().to_numpy()''',
    "down_streak": '''def down_streak(close):
    """Consecutive closes below the previous close, ending at each bar (0 after a non-down one)."""
    down = pd.Series(close).diff() < 0
    return down.astype(float).groupby((~down).cumsum()).cumsum().to_numpy()''',
}
"""Indicator helpers in dependency order (each calls only helpers above it; `_NEEDS` says which)."""
_ATR_STOP: Key = ("atr", (_D["atr_stop_period"],))


def _resolve(s: Series) -> Key:
    fields = _FIELDS.get(s.kind, ())
    default = [_D[f"{_FAMILY.get(s.kind, s.kind)}.{f}"] for f in fields]
    given = [getattr(s, f) for f in fields]
    return s.kind, tuple(d if v is None else v for v, d in zip(given, default, strict=True))


def _label(kind: str) -> str:
    return _LABEL.get(kind, kind.upper() if len(kind) == 3 else kind.replace("_", " "))


def _fmt(v: object) -> str:
    """A number as people write it: 30, 2.5, 0.001 (the exact repr when %g would round)."""
    text = format(v, "g") if isinstance(v, float) else str(v)
    return text if not isinstance(v, float) or float(text) == v else repr(v)


def _series_text(key: Key) -> str:
    kind, w = key[0], [_fmt(x) for x in key[1]]
    if kind in _TEXT or kind in PRICE_KINDS:
        return _TEXT.get(kind, f"the {kind}").format(*w)
    label = _label(kind)
    if kind in MACD_KINDS:
        return f"the {label} ({'/'.join(w)})"
    if kind.startswith("bb_"):
        return f"the {label} ({', '.join([w[0], *(f'{x} std devs' for x in w[1:])])})"
    return f"{label}({w[0]})"


def opposite(rule: Rule) -> Rule:
    """The mirrored rule: each op mirrored, all↔any swapped (De Morgan); an involution."""
    mirrored = [c.model_copy(update={"op": _MIRROR[c.op]}) for c in rule.conditions]
    return Rule(combine="any" if rule.combine == "all" else "all", conditions=mirrored)


@dataclass
class _Plan:
    """What the strategy does: its rules by role (derived ones noted), the series they use."""

    spec: StrategySpec
    rules: dict[str, Rule] = field(default_factory=dict)
    derived: dict[str, str] = field(default_factory=dict)
    series: list[Key] = field(default_factory=list)

    def closers(self, side: str) -> list[str]:
        """What closes a position on `side`, as code."""
        role = "short_exit" if side == "short" and self.spec.direction == "both" else "exit"
        out = [f"self.{role}_signal()"] * (role in self.rules)
        out += ["self.bars_in_trade() >= self.max_bars"] * (self.spec.max_bars is not None)
        return out + ["self.trailing_stop_hit()"] * (self.spec.trailing_stop_pct is not None)


def _plan(spec: StrategySpec) -> _Plan:
    plan = _Plan(spec, rules={"entry": spec.entry})

    def derive(role: str, rule: Rule, how: str) -> None:
        plan.rules[role] = rule
        plan.derived[role] = how

    if spec.direction != "both":
        if spec.exit is not None:
            plan.rules["exit"] = spec.exit
        elif spec.max_bars is None:
            derive("exit", opposite(spec.entry), "the opposite of the entry signal")
    elif spec.short_entry is None and spec.exit is not None:
        derive("short_entry", spec.exit, "the exit rule")
    elif spec.short_entry is None:
        derive("short_entry", opposite(spec.entry), "the opposite of the entry signal")
    else:
        plan.rules["short_entry"] = spec.short_entry
        if spec.exit is not None:
            plan.rules["exit"] = spec.exit
            derive("short_exit", opposite(spec.exit), "the opposite of the exit rule")
    used = [s for r in plan.rules.values() for c in r.conditions for s in (c.left, c.right) if s]
    stop = [_ATR_STOP] * (spec.atr_stop_multiple is not None)  # first use, without repeats:
    plan.series = list(dict.fromkeys([*(_resolve(s) for s in used), *stop]))
    return plan


# ---- names: indicator attributes and class-level parameters --------------------------------


def _ranked(values: list[Any], base: str, pair: tuple[str, str] | None) -> dict[Any, str]:
    """Names for the distinct values of one thing: `base` alone, a pair, or numbered."""
    ordered = sorted(set(values))
    if len(ordered) == 1:
        return {ordered[0]: base}
    if len(ordered) == 2 and pair is not None:
        return {ordered[0]: f"{pair[0]}_{base}", ordered[1]: f"{pair[1]}_{base}"}
    return {v: f"{base}_{i}" for i, v in enumerate(ordered, 1)}


def _level(value: float | None) -> Number:
    if not math.isfinite(v := float(value or 0)):  # would be no literal: refuse, don't emit
        raise ValueError(f"a condition's value must be a finite number, not {value}")
    return int(v) if v.is_integer() and abs(v) < 1e15 else v


@dataclass
class _Names:
    """Attributes and parameters by what they name; `params` in class-body order."""

    attrs: dict[Key, str] = field(default_factory=dict)
    args: dict[Key, list[str]] = field(default_factory=dict)
    levels: dict[tuple[str, Number], str] = field(default_factory=dict)
    params: dict[str, Number] = field(default_factory=dict)

    def ref(self, key: Key) -> str:
        """The series as an expression: a data column or an indicator attribute."""
        if key[0] in PRICE_KINDS:
            return f"self.data.{key[0].capitalize()}"
        return f"self.{self.attrs[key]}"

    def level_base(self, key: Key, value: float) -> str:
        if key[0] == "rsi":
            return "oversold" if value < 50 else "overbought" if value > 50 else "rsi_midline"
        return f"{key[0] if key[0] in PRICE_KINDS else self.attrs[key]}_level"

    def condition(self, c: Condition) -> str:
        """The condition as a boolean expression."""
        left, value = self.ref(_resolve(c.left)), _level(c.value)
        if c.right is not None:
            right = self.ref(_resolve(c.right))
        else:  # in the engine's units (module docstring)
            right = f"self.{self.levels[self.level_base(_resolve(c.left), value), value]}"
            right += _SCALE.get(_resolve(c.left)[0], "")  # run_backtest sets price_unit
        if c.op.startswith("crosses"):
            pair = (left, right) if c.op == "crosses_above" else (right, left)
            return f"crossover({', '.join(pair)})"
        latest = right if c.right is None else f"{right}[-1]"
        return f"{left}[-1] {'>' if c.op == 'above' else '<'} {latest}"


def _names(plan: _Plan) -> _Names:
    """One attribute per distinct series; one parameter per distinct window value and level."""
    names = _Names()
    computed = [k for k in plan.series if k[0] not in PRICE_KINDS]
    for kind in dict.fromkeys(k[0] for k in computed):
        same = [k for k in computed if k[0] == kind]
        pair = _PAIRS.get(kind) if len({k[1][:1] for k in same}) == len(same) else None
        names.attrs.update(_ranked(same, _ATTR.get(kind, kind), pair))
    names.attrs = {k: names.attrs[k] for k in computed}
    windows: dict[tuple[str, str], list[Number]] = {}
    for kind, window in computed:
        for f, v in zip(_FIELDS.get(kind, ()), window, strict=True):
            windows.setdefault((_FAMILY.get(kind, kind), f), []).append(v)
    param_of: dict[tuple[str, str, Number], str] = {}
    for (family, f), values in windows.items():
        label = "fast_period" if (family, f) == ("macd", "period") else f
        alone = len(windows) == 1 and family in ("sma", "ema") and len(set(values)) == 2
        base, pair = "period" if alone else f"{family}_{label}", _PAIRS.get(family)
        for v, pname in sorted(_ranked(values, base, pair if f == "period" else None).items()):
            param_of[family, f, v] = pname
            names.params[pname] = v
    for kind, window in computed:
        family, fields = _FAMILY.get(kind, kind), zip(_FIELDS.get(kind, ()), window, strict=True)
        data = [f"self.data.{col}" for col in _INPUTS.get(kind, "Close").split(", ")]
        args = [f"self.{param_of[family, *fv]}" for fv in fields]
        sign = ["", "-" * (kind == "bb_lower")]  # the lower band is SMA - k deviations
        names.args[kind, window] = data + [sign[i > 0] + a for i, a in enumerate(args)]
    levels: dict[str, list[Number]] = {}
    for c in [c for rule in plan.rules.values() for c in rule.conditions if c.value is not None]:
        v = _level(c.value)
        levels.setdefault(names.level_base(_resolve(c.left), v), []).append(v)
        names.params |= {"price_unit": 1.0} if _resolve(c.left)[0] in _SCALE else {}
    for base, values in levels.items():
        for v, pname in sorted(_ranked(values, base, ("lower", "upper")).items()):
            names.levels[base, v] = pname
            names.params[pname] = v
    names.params |= {p: getattr(plan.spec, p) for p in _EXIT_PARAMS if getattr(plan.spec, p)}
    if plan.spec.size_pct is not None and plan.spec.size_pct < 100:
        names.params["size_pct"] = plan.spec.size_pct
    if set(names.params) & set(names.attrs.values()):
        raise ValueError(f"internal naming clash in {sorted(names.params)}")
    return names


# ---- words: describe_spec (the class docstring, what the service shows), assumptions -------

# fmt: off
_OP_TEXT = {"crosses_above": "crosses above", "crosses_below": "crosses below",
            "above": "is above", "below": "is below"}
_ROLES = {("long", "entry"): "buy", ("long", "exit"): "sell", ("short", "entry"): "sell short",
          ("short", "exit"): "cover", ("both", "entry"): "go long (reversing a short)",
          ("both", "short_entry"): "go short (reversing a long)",
          ("both", "exit"): "close a long", ("both", "short_exit"): "close a short"}
_WORSE = {"long": "below", "short": "above", "both": "below (a short: above)"}
_BETTER = {"long": "above", "short": "below", "both": "above (a short: below)"}
_FIELD_TEXT = {"slow_period": "slow period", "signal_period": "signal period",
               "std_dev": "width in standard deviations"}
_SCALE = {k: " / self.price_unit" if "volume" in k else " * self.price_unit"
          for k in get_args(SeriesKind) if k not in ("rsi", "roc", "up_streak", "down_streak")}
# fmt: on


def _rule_text(rule: Rule) -> str:
    parts = []
    for c in rule.conditions:
        right = _series_text(_resolve(c.right)) if c.right is not None else _fmt(c.value)
        parts.append(f"{_series_text(_resolve(c.left))} {_OP_TEXT[c.op]} {right}")
    return (" and " if rule.combine == "all" else " or ").join(parts)


def _describe(plan: _Plan) -> Iterator[str]:
    spec, worse, entry = plan.spec, _WORSE[plan.spec.direction], "the last close at entry"
    what = {"long": "Long only", "short": "Short only", "both": "Long and short"}[spec.direction]
    span = [f"from {spec.start}"] * bool(spec.start) + [f"to {spec.end}"] * bool(spec.end)
    yield f"{what} on {spec.symbol or _D['symbol']}, {' '.join(span) or 'all bars'}."
    for role, rule in plan.rules.items():
        note = f" ({plan.derived[role]})" if role in plan.derived else ""
        yield f"{_ROLES[spec.direction, role].capitalize()} when {_rule_text(rule)}{note}."
    if spec.max_bars is not None:
        yield f"Close once {spec.max_bars} bars have passed since the entry bar."
    if spec.stop_loss_pct is not None:
        yield f"Stop loss {_fmt(spec.stop_loss_pct)}% {worse} {entry}."
    if spec.take_profit_pct is not None:
        yield f"Take profit {_fmt(spec.take_profit_pct)}% {_BETTER[spec.direction]} {entry}."
    if spec.atr_stop_multiple is not None:
        atr = f"{_fmt(spec.atr_stop_multiple)} × ATR({_ATR_STOP[1][0]})"
        tighter = ", or the stop loss if tighter" * (spec.stop_loss_pct is not None)
        yield f"Stop {atr} {worse} {entry}{tighter}."
    if spec.trailing_stop_pct is not None:
        pct, best = _fmt(spec.trailing_stop_pct), "the best close since the signal bar"
        yield f"Trailing stop: close when the close is {pct}% {worse} {best}."
    yield f"Size: {_fmt(spec.size_pct or _D['size_pct'])}% of equity per trade."


def describe_spec(spec: StrategySpec) -> str:
    """The strategy in words, a sentence a line; every number of the spec is in it."""
    return "\n".join(_describe(_plan(spec)))


def _assumptions(spec: StrategySpec, plan: _Plan) -> list[Assumption]:
    out: list[Assumption] = []
    rules = {"entry": spec.entry, "exit": spec.exit, "short_entry": spec.short_entry}
    used = [
        (f"{role}.conditions[{i}].{side}", s)
        for role, rule in rules.items()
        for i, c in enumerate(rule.conditions if rule is not None else [])
        for side, s in (("left", c.left), ("right", c.right))
        if s is not None
    ]
    for path, s in used:
        if s.kind in STREAK_KINDS and s.period is not None:
            why = f"a streak takes no period: {s.period} ignored (its count is compared with"
            out.append(Assumption(field=f"{path}.period", value=None, reason=f"{why} `value`)"))
        for f in [f for f in _FIELDS.get(s.kind, ()) if getattr(s, f) is None]:
            v = _D[f"{_FAMILY.get(s.kind, s.kind)}.{f}"]
            what = "fast period" if s.kind in MACD_KINDS and f == "period" else f
            why = f"{_label(s.kind)} {_FIELD_TEXT.get(f, what)} not given: the default"
            out.append(Assumption(field=f"{path}.{f}", value=v, reason=f"{why} {_fmt(v)}"))
    found: list[tuple[str, Any, str]] = []
    if "direction" not in spec.model_fields_set:
        found.append(("direction", _D["direction"], f"direction not given: {_D['direction']}"))
    why, derived = "no exit rule: ", plan.derived
    if spec.direction != "both" and spec.exit is None and spec.max_bars is None:
        found.append(("exit", derived["exit"], why + "exits on the opposite of the entry signal"))
    elif spec.direction != "both" and spec.exit is None:
        found.append(("exit", None, why + f"closes after max_bars ({spec.max_bars}), no signal"))
    if "short_entry" in derived:
        v = derived["short_entry"]
        found.append(("short_entry", v, f"no short entry rule: goes short on {v}"))
    if spec.direction == "both" and spec.exit is None:
        reason = why + "the opposite entry reverses a position (or max_bars, stops)"
        found.append(("exit", None, reason))
    if "short_exit" in derived:
        v = derived["short_exit"]
        found.append(("short_exit", v, f"the spec has no short exit: a short closes on {v}"))
    n, size, symbol = _ATR_STOP[1][0], _D["size_pct"], _D["symbol"]
    if spec.atr_stop_multiple is not None:
        found.append(("atr_stop_period", n, f"ATR stop period (not in the spec): the default {n}"))
    for name, value, reason in (
        ("size_pct", size, f"size not given: {_fmt(size)}% of equity"),
        ("symbol", symbol, f"symbol not given: {symbol}"),
        ("start", None, "start not given: from the first bar of the data"),
        ("end", None, "end not given: to the last bar of the data"),
    ):
        if getattr(spec, name) is None:
            found.append((name, value, reason))
    return out + [Assumption(field=f, value=v, reason=r) for f, v, r in found]


# ---- code ----------------------------------------------------------------------------------

_WIDTH = 100
_BARS = '''    def bars_in_trade(self) -> int:
        """Bars passed since the entry bar of the open trade."""
        return len(self.data) - 1 - self.trades[-1].entry_bar'''
_TRAILING = '''    def trailing_stop_hit(self) -> bool:
        """The close is trailing_stop_pct {} the best close since the signal bar."""
        trade = self.trades[-1]
        closes = self.data.Close[trade.entry_bar - 1 :]
        pct = self.trailing_stop_pct / 100
        {}'''
_LONG_HIT = "return self.data.Close[-1] <= closes.max() * (1 - pct)"
_SHORT_HIT = "return self.data.Close[-1] >= closes.min() * (1 + pct)"
_HIT = {"long": ("below", _LONG_HIT), "short": ("above", _SHORT_HIT)}
_HIT["both"] = ("worse than", f"if trade.is_long:\n            {_LONG_HIT}\n        {_SHORT_HIT}")


def _joined(head: str, parts: list[str], joiner: str, indent: str, tail: str = "") -> list[str]:
    """`head` + parts joined + `tail` on one line if it fits, else one part a line."""
    one = f"{indent}{head}{joiner.join(parts)}{tail}"
    if len(one) <= _WIDTH:
        return [one]
    inner = indent + "    "
    if joiner == ", ":  # a call: `head` ends with its "(" and `tail` starts with its ")"
        return [f"{indent}{head}", *(f"{inner}{p}," for p in parts), f"{indent}{tail}"]
    rest = [f"{inner}{joiner.strip()} {p}" for p in parts[1:]]
    return [f"{indent}{head}(", inner + parts[0], *rest, f"{indent}){tail}"]


def _order(plan: _Plan, names: _Names, side: str, indent: str) -> list[str]:
    """The statements that open a position on `side`, size and stops included."""
    spec = plan.spec
    sign, tighter = ("-", "max") if side == "long" else ("+", "min")
    stops = [f"price * (1 {sign} self.stop_loss_pct / 100)"] * (spec.stop_loss_pct is not None)
    if spec.atr_stop_multiple is not None:
        stops.append(f"price {sign} self.atr_stop_multiple * self.{names.attrs[_ATR_STOP]}[-1]")
    lines = [f"{indent}price = self.data.Close[-1]"] * bool(stops or spec.take_profit_pct)
    args = ["size=self.size_pct / 100"] * ("size_pct" in names.params)
    if len(stops) == 1:
        args.append(f"sl={stops[0]}")
    elif stops:
        lines += _joined(f"stop = {tighter}(", stops, ", ", indent, ")")
        args.append("sl=stop")
    if spec.take_profit_pct is not None:
        args.append(f"tp=price * (1 {'+' if side == 'long' else '-'} self.take_profit_pct / 100)")
    call = "self.buy(" if side == "long" else "self.sell("
    return lines + _joined(call, args, ", ", indent, ")")


def _next_method(plan: _Plan, names: _Names) -> list[str]:
    ind, ind2, ind3 = " " * 8, " " * 12, " " * 16
    lines = ["    def next(self) -> None:"]
    if plan.spec.direction != "both":
        lines += [f"{ind}if not self.position:", f"{ind2}if self.entry_signal():"]
        lines += _order(plan, names, plan.spec.direction, ind3)
        lines += _joined("elif ", plan.closers(plan.spec.direction), " or ", ind, ":")
        return [*lines, f"{ind2}self.position.close()"]
    reverse = (("if", "long", "short_entry", "short"), ("elif", "short", "entry", "long"))
    for kw, side, signal, other in reverse:
        lines += [f"{ind}{kw} self.position.is_{side}:", f"{ind2}if self.{signal}_signal():"]
        lines += [f"{ind3}self.position.close()", *_order(plan, names, other, ind3)]
        if plan.closers(side):
            lines += _joined("elif ", plan.closers(side), " or ", ind2, ":")
            lines += [f"{ind3}self.position.close()"]
    for signal, side in (("entry", "long"), ("short_entry", "short")):
        lines += [f"{ind}elif self.{signal}_signal():", *_order(plan, names, side, ind2)]
    return lines


def _docstring(text: str, indent: str) -> list[str]:
    """A docstring of `text` (quotes and backslashes escaped), wrapped to the line width."""
    safe = text.replace("\\", "\\\\").replace('"', '\\"')
    paras = [textwrap.wrap(p, _WIDTH - len(indent) - 8) for p in safe.splitlines()]
    lines = [f'{indent}"""{paras[0][0]}', *(indent + s for s in paras[0][1:])]
    rest = [indent + line for p in paras[1:] for line in p]
    return [*lines, *([""] * bool(rest)), *rest, f'{indent}"""']


def _class(plan: _Plan, names: _Names, description: str) -> str:
    spec = plan.spec
    lines = [f"class {spec.name}(Strategy):", *_docstring(description, "    "), ""]
    if names.params:
        lines += [f"    {k} = {v!r}" for k, v in names.params.items()] + [""]
    init = ["    def init(self) -> None:"] + ["        pass"] * (not names.attrs)
    for key, attr in names.attrs.items():
        args = [_HELPER.get(key[0], key[0]), *names.args[key]]
        init += _joined(f"self.{attr} = self.I(", args, ", ", " " * 8, ")")
    methods = [init]
    for role, rule in plan.rules.items():
        doc, joiner = _ROLES[spec.direction, role], " and " if rule.combine == "all" else " or "
        parts = [names.condition(c) for c in rule.conditions]
        methods.append([f"    def {role}_signal(self) -> bool:", f'        """When to {doc}."""'])
        methods[-1] += _joined("return ", parts, joiner, " " * 8)
    if spec.max_bars is not None:
        methods.append(_BARS.splitlines())
    if spec.trailing_stop_pct is not None:
        methods.append(_TRAILING.format(*_HIT[spec.direction]).splitlines())
    methods.append(_next_method(plan, names))
    return "\n".join(lines + [line for m in methods for line in [*m, ""]][:-1])


def _module(plan: _Plan, names: _Names, description: str) -> str:
    name, needed = plan.spec.name, set[str]()
    todo = [_HELPER.get(k[0], k[0]) for k in plan.series if k[0] not in PRICE_KINDS]
    while todo:  # the helpers the indicators call, and the helpers those call
        if (helper := todo.pop()) not in needed:
            needed.add(helper)
            todo += _NEEDS.get(helper, ())
    helpers = [h for h in _HELPERS if h in needed]
    header = f'"""{name}: compiled from a strategy spec (agents.quant.compiler).\n\n' + (
        "Self-contained and editable: the indicators are the plain pandas/numpy functions below,\n"
        f'the tunable values are class attributes (`Backtest(data, {name}).run(**values)`).\n"""'
    )
    imports = ["import numpy as np"] * bool({"ema", "rsi"} & needed)
    imports += ["import pandas as pd"] * bool(helpers) + ["from backtesting import Strategy"]
    if any(c.op.startswith("crosses") for r in plan.rules.values() for c in r.conditions):
        imports.append("from backtesting.lib import crossover")
    parts = ["\n".join(imports), *(_HELPERS[h] for h in helpers), _class(plan, names, description)]
    return header + "\n\n" + "\n\n\n".join(parts) + "\n"


def compile_spec(spec: StrategySpec) -> CompiledStrategy:
    """The spec as one readable module (the module docstring gives the semantics)."""
    plan = _plan(spec)
    names, description = _names(plan), "\n".join(_describe(plan))
    return CompiledStrategy(
        code=_module(plan, names, description),
        class_name=spec.name,
        parameters=dict(names.params),
        assumptions=_assumptions(spec, plan),
        symbol=spec.symbol or str(_D["symbol"]),
        description=description,
    )
