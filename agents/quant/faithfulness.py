"""Is a `StrategySpec` faithful to its request? Checked in code, against `claims(request)`.

`claims(request)` reads what a request *states*, deterministically (no model), from English and
Korean: the phrases and tokens of `agents.quant.claims`, neighbouring tokens read as levels ("RSI
below 30", "RSI가 30 이하") and conditions ("the 10-day SMA crosses above the 30-day SMA", "5일선이
20일선을 상향 돌파"). An English comparator takes operands from both sides, a Korean one from before
it; with no left operand it compares the price ("breaks above the 20-day high") or, before a
number, the indicator named last ("… above 70").

`check(request, spec)` reports **discrepancies** (the request states something the spec
contradicts or leaves out: "the request says RSI period 7; the spec has 14", "…a 5% stop loss; the
spec has none", "…SMA; the spec uses EMA", "…short; the spec is long") and **additions** (values
the spec has that the request never states). The rule: an addition is a **violation** when it
changes the strategy from what the request and the documented defaults (`spec.DEFAULTS`) say, in a
field a request has to state: an exit rule or `short_entry`, `max_bars`, `stop_loss_pct`,
`take_profit_pct`, `trailing_stop_pct`, `atr_stop_multiple`, `size_pct`, `start`/`end`, a direction
other than long, a symbol other than GOOG, or a condition on an indicator the request never names
(when it names any); the repair sets it to null or drops it. It is an **assumption**, kept and
shown to the user, when it fills in what the request left open on something it asked for: the
period, slow/signal period or width of a named indicator, a level or condition form on one, the
level behind "oversold", the averages behind "golden cross", any indicator when the request names
none ("a mean-reversion strategy"), or a field's default value (direction long, GOOG, size 100%).
`unexpressible(request)` names what no spec can express (`UNEXPRESSIBLE`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TypeGuard

from agents.quant import claims as vocab
from agents.quant.claims import UNEXPRESSIBLE, Claim, Draft, Token, fmt
from agents.quant.findings import Addition, Discrepancy, FaithfulnessReport
from agents.quant.numerals import in_digits
from agents.quant.spec import DEFAULTS, MACD_KINDS, PRICE_KINDS, Condition, Series, StrategySpec
from agents.quant.unexpressible import BUNDLED_BARS

__all__ = ["UNEXPRESSIBLE", "Addition", "Claim", "Discrepancy", "FaithfulnessReport", "check"]
__all__ += ["claims", "said_rules", "says", "show_condition", "unexpressible"]

_MA, _BANDS, _MACDS = vocab.MA_FAMILIES, vocab.BAND_FAMILIES, vocab.MACD_FAMILIES
_BB = _BANDS - {"bb"}
_SUBJECTS = frozenset({"rsi", "roc", "macd", "macd_hist", "atr", "volume", "price"})
_VS_PRICE = _MA | _BANDS | {"highest_high", "lowest_low", "donchian", "open"}
_ONE = "rsi atr roc highest_high lowest_low sma ema up_streak down_streak volume_sma macd_signal"
FAMILY_KINDS = {k: frozenset({k}) for k in (_ONE + " macd_hist close open high low").split()}
FAMILY_KINDS |= {k: frozenset({k}) for k in _BB} | {"macd": MACD_KINDS, "bb": _BB}
FAMILY_KINDS |= {"ma": frozenset({"sma", "ema"}), "volume": frozenset({"volume", "volume_sma"})}
FAMILY_KINDS |= {"donchian": frozenset({"highest_high", "lowest_low"})}
FAMILY_KINDS["price"] = frozenset({"close", "open", "high", "low"})
"""The spec kinds each family a request names may be."""
_KEY_KINDS = FAMILY_KINDS | {"macd": frozenset({"macd"}), "volume": frozenset({"volume"})}
_GROUPS = [FAMILY_KINDS[f] for f in ("ma", "bb", "donchian", "macd", "volume")]
_GROUPS.append(frozenset({"up_streak", "down_streak"}))
_NAMES = "sma=SMA ema=EMA ma=moving_average rsi=RSI macd=MACD macd_signal=MACD_signal_line atr=ATR"
_NAMES += " macd_hist=MACD_histogram bb=Bollinger_bands bb_lower=lower_Bollinger_band roc=rate_of"
_NAMES += "_change bb_upper=upper_Bollinger_band bb_middle=middle_Bollinger_band volume=volume"
_NAMES += " highest_high=highest_high lowest_low=lowest_low donchian=Donchian_channel price=price"
_NAMES += " volume_sma=average_volume close=close open=open high=high low=low up_streak=up_streak"
_NAMES += " down_streak=down_streak"
NAMES = {k: v.replace("_", " ") for k, _, v in (p.partition("=") for p in _NAMES.split())}
_OPS = {o: o.replace("_", " ") for o in ("above", "below", "crosses_above", "crosses_below")}
_OPS["crosses"] = "crosses"
_FLIP = {"above": "below", "below": "above", "crosses_above": "crosses_below", "crosses": "crosses"}
_FLIP["crosses_below"] = "crosses_above"
_COMPAT = {"below": {"below", "crosses_below"}, "above": {"above", "crosses_above"}}
_COMPAT |= {o: {o} for o in _OPS if "_" in o} | {"crosses": {"crosses_above", "crosses_below"}}
_ROLE_WORDS = {"entry": "to enter when ", "exit": "to exit when ", "short": "to go short when "}
_SCALARS = {"stop_loss_pct": "a {}% stop loss", "take_profit_pct": "a {}% take profit"}
_SCALARS |= {"trailing_stop_pct": "a {}% trailing stop", "atr_stop_multiple": "a {}× ATR stop"}
_SCALARS |= {"max_bars": "an exit after {} bars", "size_pct": "{}% of equity per trade"}
_PARAMS = {"period": "period", "slow_period": "slow period", "signal_period": "signal period"}
_PARAMS["std_dev"] = "width"
_AND = re.compile(r"(?<![a-z])(?:and|or|but|while)(?![a-z])|그리고|이고|이며|하고", re.I)
_NUM_GAP = re.compile(r"[\s:=(+$]{0,3}(?:(?:the|a|level|of)\s{1,2}){0,2}", re.I)
_DAYS = re.compile(r"[\s-]{0,2}(?:days?|bars?|periods?|sessions?)(?![a-z])", re.I)
_KNUM_GAP = re.compile(
    r"\s{0,2}(?:%|％|퍼센트|프로)?\s{0,2}(?:을|를|에서|에|선을|선|으로|로|가|이)?\s{0,2}"
)
_LOWER = frozenset({"bb_lower", "lowest_low"})
_K_OBJ, _K_SUBJ = re.compile(r"선?(?:을|를)\s"), re.compile(r"선?(?:이|가|은|는)\s")
_UNEXPRESSIBLE_RE = re.compile(vocab.gate("|".join(f"(?:{p})" for _, p in UNEXPRESSIBLE)), re.I)


# ------------------------------------------------------------------------------ claims
def _is(
    it: Token | None, kind: str = "ser", among: frozenset[str] | None = None
) -> TypeGuard[Token]:
    return it is not None and it.kind == kind and (among is None or it.family in among)


def _pair(it: Token | None) -> TypeGuard[Token]:
    return _is(it, "ser", _MA) and len(it.nums) == 2


def _key(it: Token) -> str:
    if it.qual and not it.nums:
        return f"{it.family}:{it.qual}"
    one = it.nums and (len(it.nums) == 1 or it.family in _BANDS)
    return f"{it.family}:{fmt(it.nums[0])}" if one else it.family


def _speed(it: Token) -> tuple[float, int]:
    """Sorts the faster average first: by period, else by its "fast"/"slow" qualifier."""
    return (float(it.nums[0]) if it.nums else 0.0, 1 if it.qual == "slow" else 0)


class _Grammar:
    """Levels and conditions from neighbouring tokens (see the module docstring)."""

    def __init__(self, text: str, items: list[Token]) -> None:
        self.text, self.items, self.drafts = text, items, list[Draft]()
        self.subject: Token | None = None
        self.levels: dict[str, Draft] = {}
        self.last: Draft | None = None
        self.at = 0

    def run(self) -> list[Draft]:
        its, text = self.items, self.text
        gaps = [text[a.end : b.start][:31] for a, b in pairwise(its)]
        link = [False, *(len(g) <= 30 and not any(c in g for c in ",;.\n!?") for g in gaps), False]
        for i, it in enumerate(its):
            prv, nxt = its[i - 1] if link[i] else None, its[i + 1] if link[i + 1] else None
            before, self.at = its[i - 2] if link[i] and link[i - 1] else None, it.start
            if it.kind == "breaks":  # "상단을 뚫으면" up; "하단을 뚫으면" down
                it.kind = "crosses_below" if _is(prv, "ser", _LOWER) else "crosses_above"
            if _is(it, "ser", _SUBJECTS):
                self.subject = it
            elif it.kind in ("candle_up", "candle_down"):  # a green candle: close above open
                op = "above" if it.kind == "candle_up" else "below"
                self._keys("close", op, "open", it.start, it.end)
            elif it.kind in _OPS:
                done = (self._korean if it.post else self._english)(it, prv, before, nxt)
                last = self.last
                if not done and "crosses_" in it.kind and last and it.start - last.end <= 80:
                    self._keys(str(last.series), it.kind, str(last.other), it.start, it.end)
            elif it.kind in ("golden", "dead"):
                self._golden(it, prv, before, nxt)
            elif it.kind in ("oversold", "overbought"):
                self._zone(it, next((x for x in (prv, nxt) if _is(x, "ser", _SUBJECTS)), None))
            elif it.kind == "brk":  # "a 20-day breakout"
                self.drafts.append(Draft("highest_high.period", it.value, it.start, it.end))
                high = f"highest_high:{fmt(it.value)}"
                self._keys("price", "crosses_above", high, it.start, it.end)
        return self.drafts

    def _zone(self, it: Token, near: Token | None) -> None:
        """ "oversold": a level the request leaves open, on the indicator named with it."""
        subject, op = near or self._recent(it), "below" if it.kind == "oversold" else "above"
        span = (min(it.start, near.start), max(it.end, near.end)) if near else (it.start, it.end)
        prior = self.levels.get(_key(subject)) if subject is not None else None
        same = prior and prior.op in _COMPAT[op] and prior.value is not None
        if prior and same and 0 <= it.start - prior.end <= 8:  # "25 이하 과매도 구간": one fact
            prior.end = it.end
            return
        if subject is not None:
            self._level(subject, op, None, *span)

    def _recent(self, it: Token) -> Token | None:
        s = self.subject
        return s if s is not None and it.start - s.end <= 120 else None

    def _level(self, subject: Token, op: str, value: float | None, start: int, end: int) -> bool:
        subject.used, key = True, _key(subject)
        draft = Draft("level", value, start, end, series=key, op=op, anchor=self.at)
        prior = self.levels.get(key)
        if prior is not None and "crosses" not in (op, prior.op):
            below = ("below", "crosses_below")
            draft.follows = prior if (prior.op in below) != (op in below) else None
        self.levels[key] = draft
        self.drafts.append(draft)
        return True

    def _keys(self, left: str, op: str, right: str, start: int, end: int) -> bool:
        self.last = Draft("condition", None, start, end, left, op, right, anchor=self.at)
        self.drafts.append(self.last)
        return True

    def _cond(
        self, a: Token | None, op: str, b: Token, start: int, end: int, left: str = ""
    ) -> bool:
        if a is not None and a.family == "volume" and b.family in _MA:
            b.family = "volume_sma"  # "volume above its 20-day average"
        for x in (a, b):
            if x is not None:
                x.used = True
        return self._keys(_key(a) if a else left or "price", op, _key(b), start, end)

    def _pair(self, it: Token, op: str, start: int, end: int) -> bool:
        it.used = True
        fast, slow = sorted(it.nums[:2])
        return self._keys(f"{it.family}:{fmt(fast)}", op, f"{it.family}:{fmt(slow)}", start, end)

    def _english(self, it: Token, prv: Token | None, _: Token | None, nxt: Token | None) -> bool:
        op, left, last = it.kind, prv if _is(prv) else None, self.last
        if op == "crosses" and _pair(prv) and not prv.used:  # "the 30/90 SMA crossover: …"
            return self._pair(prv, op, prv.start, it.end)
        if _is(nxt):
            if _pair(nxt) and (left is None or op == "crosses"):
                return self._pair(nxt, op, (left or it).start, nxt.end)
            again = left is not None and left.used and last and last.end == left.end
            if again and last and left and _AND.search(self.text, left.end, it.start):  # "…and Y"
                return self._cond(None, op, nxt, it.start, nxt.end, str(last.series))
            if left is not None:
                return self._cond(left, op, nxt, left.start, nxt.end)
            return nxt.family in _VS_PRICE and self._cond(None, op, nxt, it.start, nxt.end)
        if _is(nxt, "num") and _NUM_GAP.fullmatch(self.text, it.end, nxt.start):
            subject, end = left or self._recent(it), _DAYS.match(self.text, nxt.end)
            if end and subject is not None and subject.family in _MA | {"price"}:  # "the 100-day"
                fam = subject.family.replace("price", "ma")  # the close vs "the 50-day": an MA
                ma = Token("ser", nxt.start, end.end(), fam, (nxt.value,))
                self.drafts.append(Draft(f"{ma.family}.period", nxt.value, ma.start, ma.end))
                return self._cond(subject, op, ma, subject.start, end.end())
            return not subject or self._level(subject, op, nxt.value, (left or it).start, nxt.end)
        if "cross" in op and _pair(prv) and not prv.used:
            return self._pair(prv, op, prv.start, it.end)
        return False

    def _korean(self, it: Token, p1: Token | None, p2: Token | None, _: Token | None) -> bool:
        op, ser2 = it.kind, p2 if _is(p2) else None
        if _is(p1, "num") and _KNUM_GAP.fullmatch(self.text, p1.end, it.start):
            subject = ser2 or self._recent(it)
            return subject is None or self._level(subject, op, p1.value, (ser2 or p1).start, it.end)
        if not _is(p1):
            return False
        if ser2 is not None:  # "20일선을 종가가 상향 돌파": the object comes first
            swap = _K_OBJ.match(self.text, ser2.end) and _K_SUBJ.match(self.text, p1.end)
            return self._cond(*((p1, op, ser2) if swap else (ser2, op, p1)), ser2.start, it.end)
        if _pair(p1) and "cross" in op:
            return self._pair(p1, op, p1.start, it.end)
        return p1.family in _VS_PRICE and self._cond(None, op, p1, p1.start, it.end)

    def _golden(
        self, it: Token, prv: Token | None, before: Token | None, nxt: Token | None
    ) -> None:
        op = "crosses_above" if it.kind == "golden" else "crosses_below"
        if _is(prv, "ser", _MA) and prv.used:
            return  # "… crosses above the 200-day SMA (golden cross)": said already
        if _pair(prv):
            self._pair(prv, op, prv.start, it.end)
        elif _is(prv, "ser", _MA) and _is(before, "ser", _MA) and prv.nums:
            a, b = sorted((before, prv), key=_speed)
            self._cond(a, op, b, before.start, it.end)
        elif _pair(nxt):
            self._pair(nxt, op, it.start, nxt.end)
        else:
            near = next((x for x in (prv, nxt) if _is(x, "ser", _MA) and not x.nums), None)
            if near is not None:
                near.used = True
            family = near.family if near is not None else "ma"
            self._keys(f"{family}:fast", op, f"{family}:slow", it.start, it.end)


def claims(request: str) -> list[Claim]:
    """Every fact `request` states, in the order it states them (see the module docstring)."""
    original = request if isinstance(request, str) else ""
    text, back = in_digits(original)  # "the fifteen-day SMA" is read as "the 15-day SMA"
    low, mask = text.translate(vocab.LOWER), bytearray(len(text))
    drafts = vocab.phrases(text, low, mask)
    items = vocab.elliptic(text, vocab.absorb(text, vocab.tokens(text, low, mask)))
    drafts += _Grammar(text, items).run() + vocab.series_drafts(items)
    vocab.roles(text, drafts)
    found = vocab.finish(text, drafts)
    if text == original:
        return found
    spans = [back(c.span) for c in found]
    return [c.model_copy(update={"span": sp, "text": original[sp[0] : sp[1]]})
            for c, sp in zip(found, spans, strict=True)]  # fmt: skip


# ------------------------------------------------------------------------------ checking
def _family(kind: str) -> str:
    return "bb" if kind in _BB else "macd" if kind in MACD_KINDS else kind


def _eff(s: Series, attr: str = "period") -> float | None:
    """The value the compiler uses: the spec's, else the documented default."""
    value = getattr(s, attr, None)
    value = DEFAULTS.get(f"{_family(s.kind)}.{attr}") if value is None else value
    return float(value) if isinstance(value, int | float) else None


def _same(a: float | None, b: object) -> bool:
    return a is not None and isinstance(b, int | float) and abs(a - b) <= 1e-9 * max(1, abs(b))


def _show(s: Series | None) -> str:
    params = [fmt(v) for a in _PARAMS if s and (v := _eff(s, a)) is not None]
    if s is None or s.kind in PRICE_KINDS or not params:
        return NAMES[s.kind] if s else ""
    many = ", ".join(params) if s.kind in _BB else ",".join(params)
    return f"{NAMES[s.kind]}({many if s.kind in _BB | MACD_KINDS else params[0]})"


def _show_cond(c: Condition) -> str:
    return f"{_show(c.left)} {_OPS[c.op]} {_show(c.right) if c.right else fmt(c.value)}"


show_condition = _show_cond


def _key_match(key: str, s: Series, relax: frozenset[str]) -> bool:
    fam, _, per = key.partition(":")
    kinds = _KEY_KINDS.get(fam, frozenset({fam}))
    kinds = kinds.union(*(g for g in _GROUPS if g & kinds)) if fam in relax else kinds
    free = not per or per in ("fast", "slow") or fam in relax
    return s.kind in kinds and (free or _same(_eff(s), float(per)))


def _pair_ok(lk: str, left: Series, rk: str, right: Series) -> bool:
    """`ma:fast` crosses `ma:slow`: the left average must be the faster (shorter) one."""
    lp, rp, le, re_ = lk.partition(":")[2], rk.partition(":")[2], _eff(left), _eff(right)
    if not {lp, rp} & {"fast", "slow"}:
        return True
    faster = lp == "fast" or rp == "slow"
    return le is not None and re_ is not None and (le < re_ if faster else le > re_)


def _hits(c: Claim, cond: Condition, relax: frozenset[str]) -> bool:
    op = str(c.op)
    if c.field == "level":
        if cond.right is not None or not _key_match(str(c.series), cond.left, relax):
            return False
        return cond.op in _COMPAT[op] and (c.value is None or _same(cond.value, c.value))
    if cond.right is None:
        return False
    lk, rk = str(c.series), str(c.other)  # `a below b` is `b above a`: one orientation
    lk, op, rk = (rk, _FLIP[op], lk) if "below" in op else (lk, op, rk)
    sop, left, right = str(cond.op), cond.left, cond.right
    sop, left, right = (_FLIP[sop], right, left) if "below" in sop else (sop, left, right)
    pairs = [(left, right), (right, left)] if op == "crosses" else [(left, right)]
    return sop in _COMPAT["crosses_above" if op == "crosses" else op] and any(
        _key_match(lk, a, relax) and _key_match(rk, b, relax) and _pair_ok(lk, a, rk, b)
        for a, b in pairs
    )


def _describe(c: Claim) -> str:
    def key(k: str | None) -> str:
        fam, _, per = str(k).partition(":")
        name = NAMES.get(fam, fam)
        return f"the {per} {name}" if per in ("fast", "slow") else f"{name}({per})" if per else name

    level = "a level" if c.value is None else fmt(c.value)
    return f"{key(c.series)} {_OPS[str(c.op)]} {key(c.other) if c.other else level}"


def _families(c: Claim) -> list[str]:
    """The indicator families a claim names (a price is none)."""
    keys = [c.value] if c.field == "indicator" else [c.series, c.other] if c.series else [c.field]
    fams = [str(x).partition(":")[0].partition(".")[0] for x in keys if x]
    return [f for f in fams if f in FAMILY_KINDS and f != "price"]


@dataclass
class _Check:
    spec: StrategySpec
    found: list[Claim]
    rules: dict[str, list[Condition]] = field(default_factory=dict)
    matched: set[tuple[str, int]] = field(default_factory=set)
    explained: set[tuple[str, int]] = field(default_factory=set)  # in a discrepancy already
    reported: set[str] = field(default_factory=set)  # families with a discrepancy of their own
    out: list[Discrepancy] = field(default_factory=list)
    adds: list[Addition] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.spec
        self.rules["entry"] = list(s.entry.conditions)
        flip = [c.model_copy(update={"op": _FLIP[c.op]}) for c in s.entry.conditions]
        self.rules["exit"] = list(s.exit.conditions) if s.exit else flip  # null: the opposite
        if s.short_entry is not None:
            self.rules["short_entry"] = list(s.short_entry.conditions)
        self.series = list({x.model_dump_json(): x for x in s.series()}.values())
        self.named = frozenset().union(*(FAMILY_KINDS[f] for c in self.found for f in _families(c)))

    def say(self, name: str, message: str, fix: str) -> None:
        self.out.append(Discrepancy(field=name, message=f"{name}: {message}", fix=fix))

    def add(self, name: str, value: object, bad: bool, message: str, fix: str = "") -> None:
        entry = Addition(field=name, value=fmt(value), violation=bad, message=message, fix=fix)
        self.adds.append(entry.model_copy(update={"message": f"{name}: {message}"}))

    def said(self, name: str) -> list[Claim]:
        return [c for c in self.found if c.field == name]

    def has(self, fam: str) -> bool:
        return any(s.kind in FAMILY_KINDS[fam] for s in self.series)

    def targets(self, role: str | None) -> list[str]:
        d, short = self.spec.direction, "short_entry" in self.rules
        if role == "entry" or (role == "short" and d == "short"):
            return ["entry"]
        if role == "exit" or (role == "short" and d == "both"):
            return ["short_entry" if role == "short" and short else "exit"]
        return [n for n in self.rules if n != "exit" or self.spec.exit]

    def find(self, c: Claim, names: list[str], relax: frozenset[str]) -> list[tuple[str, int]]:
        return [(n, i) for n in names for i, x in enumerate(self.rules[n]) if _hits(c, x, relax)]


def _scalars(k: _Check) -> None:
    """Stops, exits, sizing, direction, symbol and dates the request states."""
    spec = k.spec
    for name, phrase in _SCALARS.items():
        said, have = sorted({float(str(c.value)) for c in k.said(name)}), getattr(spec, name)
        if said and not any(_same(have, v) for v in said):
            ours = phrase.format(fmt(have)) if have else "none"
            theirs = " or ".join(phrase.format(fmt(v)) for v in said)
            message = f"the request says {theirs}; the spec has {ours}"
            k.say(name, message, f"set {name} to {fmt(said[0])}")
    if ways := {str(c.value) for c in k.said("direction")}:
        want = "both" if "both" in ways or {"long", "short"} <= ways else ways.pop()
        if spec.direction != want:
            message = f"the request says {want}; the spec is {spec.direction}"
            k.say("direction", message, f"set direction to {want}")
    symbols = list(dict.fromkeys(str(c.value) for c in k.said("symbol")))
    if symbols and (spec.symbol or DEFAULTS["symbol"]) not in symbols:
        ok, first, ours = symbols[0] in ("GOOG", "EURUSD", "BTCUSD"), symbols[0], spec.symbol or ""
        note = "" if ok else f" ({first} has no bundled data: GOOG, EURUSD or BTCUSD)"
        theirs = " or ".join(symbols) + note
        fix = f"set symbol to {first}" if ok else f"name {first} in unsupported"
        k.say("symbol", f"the request says {theirs}; the spec has {ours or 'none (GOOG)'}", fix)
    for name in ("start", "end"):
        dates, have_date = [str(c.value) for c in k.said(name)], getattr(spec, name)
        ours = have_date.isoformat() if have_date else ""
        if dates and not any(ours.startswith(d) for d in dates):
            theirs = f"the request says {name} {dates[0]}"
            k.say(name, f"{theirs}; the spec has {ours or 'none'}", f"set {name} within {dates[0]}")
    for c in (c for c in k.said("atr_stop_period") if not _same(14.0, c.value)):
        theirs = f"the request says an ATR({fmt(c.value)}) stop"
        message = f"{theirs}; the spec's ATR stop always uses ATR(14)"
        k.say("atr_stop_multiple", message, "name the ATR period in unsupported")


def _indicators(k: _Check) -> None:
    """Each named family is in the spec, with each stated period; each period the spec sets is
    stated or an assumption."""
    absent: dict[str, Claim] = {}
    for x, fam in [(y, f) for y in k.found for f in _families(y) if not k.has(f)]:
        said = absent.setdefault(fam, x)  # "RSI period 7" says more than "RSI"
        absent[fam] = x if x.field.endswith(".period") and "." not in said.field else said
    for fam, c in absent.items():
        kinds, name, attr = FAMILY_KINDS[fam], NAMES[fam], c.field.partition(".")[2]
        near = {s.kind for s in k.series} & frozenset().union(*(g for g in _GROUPS if g & kinds))
        used, k.reported = ", ".join(NAMES[x] for x in sorted(near)), k.reported | {fam}
        stated = f"{name} {_PARAMS[attr]} {fmt(c.value)}" if attr in _PARAMS else name
        if near:
            k.say(fam, f"the request says {name}; the spec uses {used}", f"use {name}, not {used}")
        else:
            k.say(fam, f"the request says {stated}; the spec has no {name}", f"add {name}")
    params = [c for c in k.found if c.field.partition(".")[2] in _PARAMS]
    for c in params:
        fam, _, attr = c.field.partition(".")
        values = {v for s in k.series if s.kind in FAMILY_KINDS[fam] and (v := _eff(s, attr))}
        if fam not in k.reported and not any(_same(v, c.value) for v in values):
            name, what, ours = NAMES[fam], _PARAMS[attr], ", ".join(fmt(v) for v in sorted(values))
            k.reported.add(fam)
            message = f"the request says {name} {what} {fmt(c.value)}; the spec has {ours or 0}"
            k.say(c.field, message, f"set the {name} {what} to {fmt(c.value)}")
    for s, attr in ((s, a) for s in k.series for a in _PARAMS if _eff(s, a) is not None):
        fam, value, what = _family(s.kind), _eff(s, attr), _PARAMS[attr]
        given = [x.value for x in params if x.field.endswith("." + attr) and s.kind in FAMILY_KINDS[
            x.field.partition(".")[0]]]  # fmt: skip
        if given and not any(_same(value, g) for g in given) and fam not in k.reported:
            theirs, k.reported = " or ".join(map(fmt, given)), k.reported | {fam}
            message = (
                f"the request says {NAMES[fam]} {what} {theirs}; the spec also uses {fmt(value)}"
            )
            k.say(f"{fam}.{attr}", message, f"use {theirs} only")
        elif not given and getattr(s, attr) is not None and (s.kind in k.named or not k.named):
            text = f"{NAMES[fam]} {what} {fmt(value)} is an assumption (not stated)"
            k.add(f"{fam}.{attr}", value, False, text)


def _rule_claims(k: _Check) -> None:
    """Each stated level and condition is in the rule its cue names, the right way round."""
    real = [n for n in k.rules if n != "exit" or k.spec.exit]
    for c in (c for c in k.found if c.field in ("level", "condition")):
        targets, fams = k.targets(c.role), _families(c)
        if hits := k.find(c, targets, frozenset()):
            k.matched |= set(hits)
            for n, i in hits if c.field == "level" and c.value is None else []:
                shown = _show_cond(k.rules[n][i])
                k.add(n, shown, False, f"the level in {shown} is an assumption ({c.text.strip()})")
            continue
        relax = frozenset(k.reported.intersection(fams))
        if (relax and k.find(c, real, relax)) or not all(map(k.has, fams)):
            continue  # the family's own discrepancy says what is wrong
        name = targets[0] if len(targets) == 1 else "rules"
        name = name + " (null: the opposite of the entry)" * (name == "exit" and not k.spec.exit)
        keys, places = [f.partition(":")[0] for f in (c.series, c.other) if f], real + targets
        near = [
            (n, i)
            for n in dict.fromkeys(places)
            for i, x in enumerate(k.rules[n])
            if any(_key_match(f, s, frozenset()) for f in keys for s in (x.left, x.right) if s)
        ]
        where = [f"{_show_cond(k.rules[n][i])}{f' (in {n})' * (n not in targets)}" for n, i in near]
        theirs = "; ".join(where)
        desc = f"{_ROLE_WORDS.get(str(c.role), '')}{_describe(c)}"
        message = f"the request says {desc}; the spec has {theirs or 'no such condition'}"
        k.say(name, message, f"use {_describe(c)} in {targets[0]}")
        k.explained |= set(near)


def _additions(k: _Check) -> None:
    """What the spec has that the request never states, each a violation or an assumption."""
    spec, stated = k.spec, {c.field for c in k.found}
    fields: list[tuple[str, object, object]] = [(n, getattr(spec, n), None) for n in _SCALARS]
    fields[-1] = ("size_pct", spec.size_pct, 100.0)
    fields += [("symbol", spec.symbol, "GOOG"), ("start", spec.start, None)]
    fields += [("end", spec.end, None), ("direction", spec.direction, "long")]
    for name, value, default in (f for f in fields if f[1] is not None and f[0] not in stated):
        shown = _SCALARS[name].format(fmt(value)) if name in _SCALARS else str(value)
        fix = "set direction to long" if name == "direction" else f"set {name} to null"
        note, bad = (" (the default)", False) if value == default else ("", True)
        text = f"the spec has {shown}, which the request never states{note}"
        k.add(name, value, bad, text, fix * bad)
    roles_said = {c.role for c in k.found if c.field in ("level", "condition")}
    for name, role in (("exit", "exit"), ("short_entry", "short")):
        rule, used = getattr(spec, name), any(n == name for n, _ in k.matched)
        if rule and role not in roles_said and not used:
            shown = " and ".join(_show_cond(c) for c in rule.conditions)
            k.explained |= {(name, i) for i in range(len(rule.conditions))}
            text = f"the spec has a rule ({shown}) the request never states"
            k.add(name, shown, True, text, f"set {name} to null")
    for name, conds in k.rules.items():
        for i, x in enumerate(conds if name != "exit" or spec.exit else []):
            if (name, i) in k.matched | k.explained:
                continue
            shown, kinds = _show_cond(x), {x.left.kind, x.right.kind if x.right else "close"}
            invented = ", ".join(NAMES[f] for f in sorted(kinds - PRICE_KINDS - k.named))
            if invented and k.named:
                text = f"the spec adds {shown}, on {invented}, which the request never names"
                k.add(name, shown, True, text, f"remove {shown} from {name}")
            else:
                k.add(name, shown, False, f"{shown} is an assumption (not stated in the request)")


def _one_rsi(found: list[Claim]) -> list[Claim]:
    """ "RSI(7) …: buy when RSI drops below 25": a bare RSI is the RSI of its one stated period."""
    periods: dict[str, set[object]] = {}
    for c in (c for c in found if c.field.endswith(".period")):
        periods.setdefault(c.field.partition(".")[0], set()).add(c.value)

    def own(key: str | None) -> str | None:
        one = key and ":" not in key and len(periods.get(key, ())) == 1
        return f"{key}:{fmt(next(iter(periods[str(key)])))}" if one else key

    rules = ("level", "condition")
    return [
        c.model_copy(update={"series": own(c.series), "other": own(c.other)})
        if c.field in rules
        else c
        for c in found
    ]


def said_rules(request: str) -> list[Claim]:
    """The claims `check` compares with: each fact once, a bare RSI the one stated RSI."""
    return _one_rsi(list({c.key: c for c in reversed(claims(request))}.values())[::-1])


def says(c: Claim, cond: Condition) -> bool:
    """`cond` is what the level or condition claim `c` states, the right way round."""
    return _hits(c, cond, frozenset())


def check(request: str, spec: StrategySpec) -> FaithfulnessReport:
    """Compare `spec` with what `request` states (see the module docstring for the rules)."""
    k = _Check(spec, said_rules(request))
    for step in (_scalars, _indicators, _rule_claims, _additions):
        step(k)
    unique = {d.message: d for d in k.out}
    return FaithfulnessReport(discrepancies=list(unique.values()), additions=k.adds)


def unexpressible(request: str) -> list[str]:
    """The request's own phrases for what no spec can express, first mention first."""
    text = request if isinstance(request, str) else ""
    found = [" ".join(m.group().split()) for m in _UNEXPRESSIBLE_RE.finditer(text)]
    symbols = list(dict.fromkeys(str(c.value) for c in claims(text) if c.field == "symbol"))
    bars = [BUNDLED_BARS[s] for s in symbols if s in BUNDLED_BARS]  # "비트코인 월봉": its data
    found = [p for p in found if not any(re.search(b, p, re.I) for b in bars)]
    found += [f"several symbols ({', '.join(symbols)})"] if len(symbols) > 1 else []
    return list({p.casefold(): p for p in reversed(found)}.values())[::-1]
