"""A `StrategySpec` drafted in code from what a request states, before any model is asked.

"Code computes, the model decides only what it must": `claims(request)` already reads every
number, indicator, comparison, direction, exit and symbol a request states (English and Korean).
When those facts make a whole strategy — an entry rule, every number in the request accounted
for, every named indicator used, and `faithfulness.check` finds nothing to object to — the spec is
built from them directly and no model is called. Otherwise `draft_spec` says what is still open
("no entry rule is stated", "the request's 2.5 is not read", "which Bollinger band is not said")
and the model fills the spec as before; a vague request ("a good trend strategy") is exactly
what the model is for.

Readings code makes that the request leaves open are returned as assumptions, like the
compiler's defaults: a plain "moving average" is the simple one; "oversold"/"overbought" on an
RSI are 30/70; an unnumbered golden cross is the 50/200-day averages; "buy and hold" is a rule
that is always true and never exits.

`apply_stated` is the other half: the scalar facts a request states (stops, exits after N bars,
size, direction, symbol, dates) written into a spec, and scalars nobody asked for dropped — used
on drafts and on model-filled specs alike.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import Any, get_args

from pydantic import BaseModel, Field, ValidationError, field_validator

from agents.quant import claims as vocab
from agents.quant import style_fit
from agents.quant.claims import Claim, fmt
from agents.quant.faithfulness import check, claims, unexpressible
from agents.quant.numerals import number_words
from agents.quant.spec import Condition, Rule, Series, SeriesKind, StrategySpec, scale_problems

__all__ = [
    "STYLES",
    "Drafted",
    "StyleChoice",
    "apply_stated",
    "draft_spec",
    "style_spec",
    "unused_numbers",
]

_STATED_SCALARS = frozenset(
    {"stop_loss_pct", "take_profit_pct", "trailing_stop_pct", "atr_stop_multiple"}
    | {"max_bars", "size_pct", "direction", "symbol", "start", "end"}
)
_DROPPABLE = _STATED_SCALARS | {"short_entry"}
_DIRECT = frozenset(get_args(SeriesKind))  # a family named as a spec kind is that kind
_BAND_WORDS = (
    ("bb_lower", re.compile(r"lower|bottom|하단|아래\s{0,2}밴드", re.I)),
    ("bb_upper", re.compile(r"upper|top|상단|위\s{0,2}밴드", re.I)),
    ("bb_middle", re.compile(r"middle|mid|center|centre|basis|중간|중심", re.I)),
)
_ZONES = {("rsi", "below"): 30.0, ("rsi", "above"): 70.0}
_GOLDEN = {"fast": 50, "slow": 200}
_HOLD = re.compile(
    r"(?<![a-z])buy[\s-]{1,3}(?:and|&|n)[\s-]{1,3}hold(?![a-z])|매수\s{0,2}후\s{0,2}(?:계속\s{0,2})?"
    r"보유|바이\s{0,2}앤\s{0,2}홀드",
    re.I,
)
_JOINED = re.compile(
    r"[\s,&]{0,4}(?:(?:and|or|with|while|plus|그리고|또는|이고|하고|이며)[\s,]{0,3})?(?:is|the|its|when|if)?\s{0,3}",
    re.I,
)
_ANY = re.compile(r"(?<![a-z])(?:or|either)(?![a-z])|또는|혹은|이거나|거나", re.I)
_NUMBER = re.compile(r"(?<![\d.])\d{1,12}(?:\.\d{1,6})?(?!\.?\d)")
_KIND_WORDS = {"sma": "Sma", "ema": "Ema", "rsi": "Rsi", "macd": "Macd", "atr": "Atr"}
_KIND_WORDS |= {"macd_signal": "MacdSignal", "macd_hist": "MacdHist", "roc": "Roc"}
_KIND_WORDS |= {"bb_lower": "LowerBand", "bb_upper": "UpperBand", "bb_middle": "MidBand"}
_KIND_WORDS |= {"highest_high": "High", "lowest_low": "Low", "volume_sma": "AvgVolume"}
_KIND_WORDS |= {"up_streak": "UpStreak", "down_streak": "DownStreak"}


@dataclass
class Drafted:
    """`spec`: the whole strategy the request states (None when something is open); `open`:
    what a model must still decide, in words; `assumptions`: readings code made; `vague`: the
    request states no rule at all ("a good trend strategy"): only a style is left to choose."""

    spec: StrategySpec | None
    open: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    vague: bool = False


# ------------------------------------------------------------------------------ vague requests
# A request that states no rule leaves one decision, the style; each style is a textbook rule
# (entry only: the exit is its opposite, so nothing is added that a request has to state).
STYLES: dict[str, tuple[str, dict[str, Any]]] = {
    "trend_following": (
        "the 50-day SMA crossing above the 200-day SMA",
        {"left": {"kind": "sma", "period": 50}, "op": "crosses_above",
         "right": {"kind": "sma", "period": 200}},
    ),
    "short_term_trend": (
        "the 12-day EMA crossing above the 26-day EMA",
        {"left": {"kind": "ema", "period": 12}, "op": "crosses_above",
         "right": {"kind": "ema", "period": 26}},
    ),
    "mean_reversion": (
        "RSI(14) below 30",
        {"left": {"kind": "rsi", "period": 14}, "op": "below", "value": 30},
    ),
    "dip_buying": (
        "a close below the lower Bollinger band (20, 2)",
        {"left": {"kind": "close"}, "op": "below",
         "right": {"kind": "bb_lower", "period": 20, "std_dev": 2}},
    ),
    "breakout": (
        "the close breaking above the prior 20-day high",
        {"left": {"kind": "close"}, "op": "crosses_above",
         "right": {"kind": "highest_high", "period": 20}},
    ),
    "momentum": (
        "the 10-day rate of change above 0",
        {"left": {"kind": "roc", "period": 10}, "op": "above", "value": 0},
    ),
}  # fmt: skip


class StyleChoice(BaseModel):
    """What a model decides for a request that states no rule: the style that fits its words."""

    style: str = Field(
        description="One of: " + ", ".join(STYLES),
        json_schema_extra={"enum": list(STYLES)},
    )

    @field_validator("style")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in STYLES:
            raise ValueError(f"unknown style {v!r}; styles: {', '.join(STYLES)}")
        return v


def style_spec(
    request: str, style: str, bars_of: Callable[[str | None], int] | None = None
) -> tuple[StrategySpec, list[str]]:
    """The spec of a style for a vague request, the request's stated scalars written in, and
    the choice as an assumption. With `bars_of` (the length of the data of a symbol, None = the
    default one), windows longer than a fifth of the data shrink in proportion (BTCUSD's bundled
    bars are monthly: a 200-bar average would never cross)."""
    words, condition = STYLES[style]
    name = "".join(w.title() for w in style.split("_"))
    spec = StrategySpec(name=name, entry=Rule(conditions=[Condition.model_validate(condition)]))
    spec, _ = apply_stated(request, spec)
    why = f"the request states no rule: chose a {style.replace('_', ' ')} rule, entering on {words}"
    sides = [x for x in (condition["left"], condition.get("right") or {}) if "period" in x]
    longest = max((int(x["period"]) for x in sides), default=0)
    bars = bars_of(spec.symbol) if bars_of is not None and longest else 0
    if bars and bars / 5 < longest:
        scale = bars / 5 / longest
        scaled = {
            k: {**v, "period": max(2, round(v["period"] * scale))}
            if isinstance(v, dict) and "period" in v
            else v
            for k, v in condition.items()
        }
        c = Condition.model_validate(scaled)
        spec = spec.model_copy(update={"entry": Rule(conditions=[c])})
        shown = ", ".join(
            f"{x.kind.upper()}({x.period})" for x in (c.left, c.right) if x and x.period
        )
        why = f"{why}; its windows shortened to fit {bars} bars of data: {shown}"
    data = style_fit.bundled(spec.symbol, bars) if bars else None
    fitted, note = style_fit.fit(spec, data) if data is not None else (spec, None)
    return fitted, [f"{why}; {note}" if note else why]


# ------------------------------------------------------------------------------ stated scalars
def _date_of(prefix: str, *, end: bool) -> str | None:
    """A date from a prefix, the first (or last) day it covers: 2010 → 2010-01-01."""
    parts = [int(x) for x in re.findall(r"\d+", prefix)][:3]
    if not parts:
        return None
    year, month, day = [*parts, 0, 0][:3]
    month = month or (12 if end else 1)
    if not day:
        day = calendar.monthrange(year, month)[1] if end else 1
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _stated(found: list[Claim]) -> dict[str, Any]:
    """The scalar values a request states, direction and dates resolved."""
    scalars = [c for c in found if c.field in _STATED_SCALARS]
    stated: dict[str, Any] = {c.field: c.value for c in scalars}
    directions = {c.value for c in scalars if c.field == "direction"}
    if "both" in directions or {"long", "short"} <= directions:
        stated["direction"] = "both"
    for bound in ("start", "end"):  # claims give date prefixes: 2010, 2010-06, 2010-06-30
        if bound in stated:
            stated[bound] = _date_of(str(stated[bound]), end=bound == "end")
    return stated


def apply_stated(request: str, spec: StrategySpec) -> tuple[StrategySpec, list[str]]:
    """Repairs code can make by name, with no model: a value the request states for a scalar
    field is written in (a 5% stop, short, 50% of equity, a symbol, dates); a scalar the spec
    invented is dropped. Returns the spec and what was changed."""
    stated = _stated(claims(request))
    report = check(request, spec)
    dropped = {a.field for a in report.violations if a.field in _DROPPABLE} - set(stated)
    update: dict[str, Any] = {f: None for f in dropped}
    update |= {f: v for f, v in stated.items() if str(getattr(spec, f)) != str(v)}
    if not update:
        return spec, []
    try:
        fixed = StrategySpec.model_validate({**spec.model_dump(), **update})
    except ValidationError:
        return spec, []
    changes = [f"{f}: {getattr(spec, f)!r} → {v!r}" for f, v in update.items()]
    return fixed, changes


# ------------------------------------------------------------------------------ series
class _Reader:
    """Claims → series, conditions and rules; every gap is written to `open`."""

    def __init__(self, request: str, found: list[Claim]) -> None:
        self.request, self.found = request, found
        self.open: list[str] = []
        self.assumed: list[str] = []
        self.periods: dict[str, list[object]] = {}
        for c in found:
            if c.field.endswith((".period", ".slow_period", ".signal_period", ".std_dev")):
                self.periods.setdefault(c.field, []).append(c.value)

    def one(self, name: str) -> object | None:
        """The one value stated for `name` (`rsi.period`), else None (the default)."""
        values = list(dict.fromkeys(self.periods.get(name, [])))
        return values[0] if len(values) == 1 else None

    def crossed_pair(self) -> tuple[str, int, int] | None:
        """The one numbered cross of two averages the request states ("EMA 12/26 골든크로스"):
        an unnumbered golden/death cross elsewhere in it is of the same pair."""
        pairs = set()
        for c in self.found:
            fams = [str(k).partition(":") for k in (c.series, c.other) if k]
            if (
                c.field == "condition"
                and len(fams) == 2
                and all(f in ("ma", "sma", "ema") and n.isdigit() for f, _, n in fams)
            ):
                kinds = {f for f, _, _ in fams} - {"ma"}
                periods = sorted(int(n) for _, _, n in fams)
                pairs.add((kinds.pop() if len(kinds) == 1 else "ma", periods[0], periods[1]))
        return pairs.pop() if len(pairs) == 1 else None

    def series(self, key: str, op: str, near: str) -> Series | None:
        fam, _, per = key.partition(":")
        pair = self.crossed_pair() if per in _GOLDEN else None
        if pair is not None:  # the unnumbered cross restates the numbered one
            fam, per = pair[0], str(pair[1] if per == "fast" else pair[2])
        kind = self._kind(fam, op, near)
        if kind is None:
            return None
        args: dict[str, Any] = {"kind": kind}
        if kind in ("close", "open", "high", "low", "volume", "up_streak", "down_streak"):
            return Series(**args)
        family = "bb" if kind.startswith("bb_") else "macd" if kind.startswith("macd") else kind
        stated = sorted({float(str(v)) for f in ("ma", "sma", "ema") for v in self.periods.get(
            f"{f}.period", [])})  # fmt: skip
        if per in _GOLDEN and len(stated) >= 2:  # "20일선 … 60일선 … 데드크로스": the pair stated
            args["period"] = int(stated[0] if per == "fast" else stated[-1])
        elif per in _GOLDEN:
            args["period"] = _GOLDEN[per]
            self.assumed.append(
                f"the golden/death cross read as the {_GOLDEN['fast']}- and "
                f"{_GOLDEN['slow']}-bar averages"
            )
        elif per:
            args["period"] = int(float(per))
        elif (one := self.one(f"{family}.period")) is not None:
            args["period"] = int(float(str(one)))
        if family == "macd":
            args["slow_period"] = self.one("macd.slow_period")
            args["signal_period"] = self.one("macd.signal_period")
        if family == "bb":
            args["std_dev"] = self.one("bb.std_dev")
        return Series(**{k: v for k, v in args.items() if v is not None})

    def _kind(self, fam: str, op: str, near: str) -> str | None:
        if fam in _DIRECT:
            return fam
        if fam == "price":
            return "close"
        if fam == "ma":
            self.assumed.append("a plain moving average read as the simple one (SMA)")
            return "sma"
        if fam == "donchian":
            return "highest_high" if "above" in op else "lowest_low"
        if fam == "bb":  # the band word said last before (or in) the claim
            hits = [(m.start(), kind) for kind, w in _BAND_WORDS for m in w.finditer(near)]
            if hits:
                return max(hits)[1]
            self.open.append(f"which Bollinger band ({near.strip()!r}) is not said")
            return None
        self.open.append(f"{fam} is not a series the spec has")
        return None


# ------------------------------------------------------------------------------ rules
def _near(request: str, c: Claim, found: list[Claim]) -> str:
    """The claim's text with what precedes it back to the end of the previous claim (band
    words live there: "…, 중간선을 상향 돌파")."""
    before = max((o.span[1] for o in found if o.span[1] <= c.span[0]), default=0)
    return request[before : c.span[1]]


def _condition(r: _Reader, c: Claim, role: str, direction: str, near: str) -> Condition | None:
    op = str(c.op)
    if op == "crosses":
        if role == "exit":
            r.open.append(f"whether the exit cross in {c.text!r} is upward or downward")
            return None
        op = "crosses_below" if role == "short" else "crosses_above"
    keys = [str(c.series), str(c.other)]
    fams = {k.partition(":")[0] for k in keys}
    if c.field != "level" and len(fams) == 2 and "ma" in fams and fams <= {"ma", "sma", "ema"}:
        named = (fams - {"ma"}).pop()  # "EMA 8일선이 34일선 위로": one family of averages
        keys = [named + k[2:] if k.partition(":")[0] == "ma" else k for k in keys]
    left = r.series(keys[0], op, near)
    if left is None:
        return None
    if c.field == "level":
        value = c.value
        if value is None:
            value = _ZONES.get((left.kind, op.removeprefix("crosses_")))
            if value is None:
                r.open.append(f"the level of {c.text!r} is not stated")
                return None
            r.assumed.append(f"{c.text!r} read as {left.kind.upper()} {op} {fmt(value)}")
        return Condition(left=left, op=op, value=float(value))  # type: ignore[arg-type]
    right = r.series(keys[1], op, near)
    return None if right is None else Condition(left=left, op=op, right=right)  # type: ignore[arg-type]


def _roles(rules: list[Claim], direction: str) -> dict[str, list[Claim]]:
    """Claims by the rule they belong to; an unassigned one opens the position."""
    first = "short" if direction == "short" else "entry"
    out: dict[str, list[Claim]] = {"entry": [], "exit": [], "short": []}
    for c in rules:
        role = c.role or first
        if direction == "short" and role == "entry":
            role = "short"
        if direction == "long" and role == "short":
            role = "entry"
        out[role].append(c)
    if direction == "short":
        out["entry"], out["short"] = out["short"], []
    # a rule and its mirror cannot both open the position ("… crossing above the 90 means long,
    # crossing below means short"): the mirror stated later, with no cue of its own, closes it
    # (or opens the short, both ways)
    other = "short" if direction == "both" else "exit"
    for late in [c for c in out["entry"] if c.role is None or direction == "both"]:
        mirror = any(_mirrors(e, late) for e in out["entry"] if e.span < late.span)
        if mirror and not out[other] and late.role in (None, "entry"):
            out["entry"].remove(late)
            out[other].append(late)
    return out


def _said_with_a_direction(c: Claim, rules: list[Claim]) -> bool:
    """ "the 30/90 SMA crossover: the 30 crossing above the 90": the cross is named, then said."""
    pair = {c.series, c.other}
    return c.op == "crosses" and any(
        o.op in ("crosses_above", "crosses_below") and {o.series, o.other} == pair for o in rules
    )


_MIRROR = {"above": "below", "below": "above", "crosses_above": "crosses_below"}
_MIRROR["crosses_below"] = "crosses_above"


def _mirrors(a: Claim, b: Claim) -> bool:
    """`b` is `a` with the opposite comparison, on the same series (either way round)."""
    if a.field != b.field or _MIRROR.get(str(a.op)) != b.op:
        return False
    return (a.series, a.other, a.value) == (b.series, b.other, b.value)


def _rule(r: _Reader, group: list[Claim], role: str, direction: str) -> Rule | None:
    conditions = []
    for c in group:
        cond = _condition(r, c, role, direction, _near(r.request, c, r.found))
        if cond is not None:
            conditions.append(cond)
    if not conditions or len(conditions) != len(group):
        return None
    conditions = list({c.model_dump_json(): c for c in conditions}.values())  # said twice
    if len(conditions) > 6:
        return None
    gaps = [r.request[a.span[1] : b.span[0]] for a, b in pairwise(group)]
    combine = "any" if any(_ANY.search(g) for g in gaps) else "all"
    if combine == "all" and _contradicts(conditions):
        r.open.append(f"the {role} conditions contradict each other as read")
        return None
    return Rule(combine=combine, conditions=conditions)


def _contradicts(conditions: list[Condition]) -> bool:
    """Two conditions that cannot hold together: the same comparison both ways ("close above
    the SMA" and "close below the SMA"), or levels on one series that leave no room."""
    sides: dict[str, set[str]] = {}
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for c in conditions:
        up = c.op in ("above", "crosses_above")
        if c.right is not None:
            pair = c.left.model_dump_json() + c.right.model_dump_json()
            sides.setdefault(pair, set()).add("up" if up else "down")
        elif c.value is not None:
            key = c.left.model_dump_json()
            if up:
                low[key] = max(low.get(key, c.value), c.value)
            else:
                high[key] = min(high.get(key, c.value), c.value)
    return any(len(v) > 1 for v in sides.values()) or any(
        k in high and low[k] >= high[k] for k in low
    )


def _name(entry: Rule) -> str:
    words = []
    for c in entry.conditions:
        for s in (c.left, c.right):
            if s is not None and s.kind in _KIND_WORDS:
                words.append(_KIND_WORDS[s.kind] + (str(s.period) if s.period else ""))
    op = entry.conditions[0].op
    tail = "Cross" if op.startswith("crosses") else "Above" if op == "above" else "Below"
    name = "".join(dict.fromkeys(words)) + tail
    return (name if len(name) >= 3 else "Drafted" + name)[:41]


_FEATURES = [
    (re.compile(r"\btrail|트레일링|추적\s?손절", re.I), "trailing_stop_pct", "a trailing stop"),
    (re.compile(r"\batrs?\b", re.I), "atr_stop_multiple", "an ATR stop"),
]
"""Words that name a feature: when no claim reads it, the draft stays open (measured on fresh2's
tune half: "trail the short with a 0.5% stop" was read as a fixed stop)."""
_TIMEFRAME = re.compile(
    r"(?<![\d.])1[\s-]?(?:h|hr|hour|d|day|w|week|m|min|minute|month)s?\b(?![\s-]*(?:sma|ema|ma|"
    r"rsi|high|low|average|moving|return|roc|change|atr|stop|exit|hold|after|later))"
    r"|(?<![\d.])1\s?(?:시간|분|일|주|개월)봉",
    re.IGNORECASE,
)
"""A bar size, not a parameter: a request that says what data it means adds no number."""


def _unread_numbers(request: str, found: list[Claim]) -> list[str]:
    """Numbers outside every claim, except one restating a period already read ("the 20/50
    EMA cross: long when the 20 crosses above the 50")."""
    covered = bytearray(len(request))
    for c in found:
        covered[c.span[0] : c.span[1]] = b"\x01" * (c.span[1] - c.span[0])
    periods = {fmt(c.value) for c in found if c.field.endswith("period")}
    for m in _TIMEFRAME.finditer(request):  # "1h bars", "EURUSD 1-hour", "1시간봉": the data
        covered[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    unread = [m.group() for m in _NUMBER.finditer(request) if not covered[m.start()]]
    unread = [n for n in unread if fmt(float(n)) not in periods]
    # a number in words is read when some claim holds its value ("ten percent stop" → 10), not
    # merely when a claim's text covers it ("the thirty-day SMA" read as an SMA of no period)
    held = {n for c in found for n in re.findall(r"\d+(?:\.\d+)?", c.key)}
    held |= {fmt(c.value + 1) for c in found if "streak" in str(c.series)  # "four down closes"
             and isinstance(c.value, int | float)}  # fmt: skip
    words = [(request[s:e], value) for s, e, value in number_words(request)]
    return unread + [w for w, value in words if fmt(value) not in held]


def _unused_indicators(found: list[Claim]) -> list[str]:
    used = {
        str(k).partition(":")[0]
        for c in found
        if c.field in ("level", "condition")
        for k in (c.series, c.other)
        if k
    }
    named = [str(c.value) for c in found if c.field == "indicator"]
    return [n for n in named if n not in used and not (n == "ma" and used & {"sma", "ema"})]


def _compares(request: str) -> bool:
    """A comparison no claim reads ("a close above the previous day's high") still states a rule:
    such a request is not vague (fresh3's tune half: it was given a textbook style instead)."""
    names = [n for n, _ in vocab._TOKEN_SCAN.scan(request, request.translate(vocab.LOWER))]
    return any(n.removeprefix("k_") in ("above", "below", "crosses_above", "crosses_below")
               for n in names)  # fmt: skip


# ------------------------------------------------------------------------------ the draft
def draft_spec(request: str) -> Drafted:
    """The spec the request states, or what is still open (module docstring). Values no spec
    takes ("RSI(0)", a series against itself) leave the draft open with the reason: the model,
    and then the check, see the request as it is."""
    try:
        return _draft(request)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "spec"
        return Drafted(None, [f"the request's values make no valid spec ({where}: {first['msg']})"])


def _draft(request: str) -> Drafted:
    found = claims(request)
    if unexpressible(request):
        return Drafted(None, ["the request asks for what no spec can express"])
    r = _Reader(request, found)
    stated = _stated(found)
    direction = str(stated.get("direction", "long"))
    rules = [c for c in found if c.field in ("level", "condition")]
    rules = [c for c in rules if not _said_with_a_direction(c, rules)]
    if not rules and _HOLD.search(request):
        r.assumed.append("buy and hold read as: enter on the first bar, never exit")
        entry: Rule | None = Rule(
            conditions=[Condition(left=Series(kind="close"), op="above", value=0)]
        )
        exit_rule = short = None
    else:
        loose = [c for c in rules if c.role is None]  # one "… and …" group, or roles unclear
        if any(not _JOINED.fullmatch(request[a.span[1] : b.span[0]]) for a, b in pairwise(loose)):
            r.open.append("which rule enters and which exits is not clear")
        rules_by = _roles(rules, direction)
        entry = _rule(r, rules_by["entry"], "entry", direction) if rules_by["entry"] else None
        exit_rule = _rule(r, rules_by["exit"], "exit", direction) if rules_by["exit"] else None
        short = _rule(r, rules_by["short"], "short", direction) if rules_by["short"] else None
        if entry is None and not r.open and not rules:
            r.open.append("no entry rule is stated")
        elif entry is None and not r.open:
            r.open.append("the entry rule could not be read")
        if rules_by["exit"] and exit_rule is None and not r.open:
            r.open.append("the exit rule could not be read")
    r.open += [f"the request's {n} is not read" for n in _unread_numbers(request, found)]
    r.open += [f"{n} is named but no rule on it is read" for n in _unused_indicators(found)]
    fields = {c.field for c in found}
    r.open += [f"{w} is named but not read" for p, f, w in _FEATURES if p.search(request)
               and f not in fields]  # fmt: skip
    if r.open or entry is None:
        vague = r.open == ["no entry rule is stated"]
        vague &= not any(c.field == "indicator" for c in found) and not _compares(request)
        return Drafted(None, list(dict.fromkeys(r.open)), r.assumed, vague=vague)
    spec = StrategySpec(
        name=_name(entry),
        direction=direction,  # type: ignore[arg-type]
        entry=entry,
        exit=exit_rule,
        short_entry=short if direction == "both" else None,
    )
    spec, _ = apply_stated(request, spec)
    report = check(request, spec)
    if not report.faithful or scale_problems(spec):
        problems = [d.message for d in report.discrepancies] + [
            a.message for a in report.violations
        ]
        return Drafted(None, problems + scale_problems(spec), r.assumed)
    return Drafted(spec, [], list(dict.fromkeys(r.assumed)))


def unused_numbers(request: str, spec: StrategySpec) -> list[str]:
    """The request's numbers no claim reads and the spec holds nowhere, as problems for the
    model by name ("SL 0.25 / TP 0.5 (percent)" left out of a spec was a silent substitute)."""
    held: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            held.add(fmt(float(node)))

    walk(spec.model_dump(mode="json"))
    unread = [n for n in _unread_numbers(request, claims(request)) if _NUMBER.fullmatch(n)]
    return [f"the request states {n}, which the spec does not use" for n in unread
            if fmt(float(n)) not in held]  # fmt: skip
