"""Corrections code makes to a model's spec where the request's claims leave no doubt.

Measured on the fresh sets' tune halves, the 1.5B writes the right facts in the wrong places:
"RSI(14) crossing back above 30" as RSI(14) crosses above RSI(30) (a level written as a series),
"RSI(10) 25 이하 … 매수, 75 이상 … 청산" with the entry and the exit swapped, and an exit that is
just the opposite of the entry written out where the request never states one (then refused as
a rule nobody asked for). Each correction here is made only when `faithfulness.check` finds the
corrected spec strictly closer to the request (fewer problems, none new), and each is told to the
user as an assumption; anything else still goes back to the model by name.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from agents.quant.claims import Claim, fmt
from agents.quant.compiler import opposite
from agents.quant.drafting import _ANY, _compares
from agents.quant.faithfulness import FAMILY_KINDS, check, claims, said_rules, says, show_condition
from agents.quant.findings import FaithfulnessReport
from agents.quant.spec import DEFAULTS, SCALES, Condition, Rule, StrategySpec

__all__ = ["fix_with_claims", "levels_as_values", "own_line_for_itself", "plain_exit"]
__all__ += ["plain_averages", "states_as_stated", "swapped_rules", "unbacked", "unread_unsupported"]


def _same_rule(a: Rule, b: Rule) -> bool:
    """Same conditions, same combination (one condition: all and any are the same rule)."""
    return a.conditions == b.conditions and (a.combine == b.combine or len(a.conditions) == 1)


def plain_exit(spec: StrategySpec) -> tuple[StrategySpec, list[str]]:
    """An exit that is exactly the opposite of the entry is what a null exit means (`compiler`):
    written as null, so no check reads it as a rule the request never states."""
    if spec.exit is None or spec.short_entry is not None:
        return spec, []
    if spec.direction != "both" and spec.max_bars is not None:  # then null means no signal exit
        return spec, []
    if not _same_rule(spec.exit, opposite(spec.entry)):
        return spec, []
    note = "the exit the spec wrote out is the opposite of the entry, the default: left as that"
    return spec.model_copy(update={"exit": None}), [note]


def _levels(found: list[Claim]) -> dict[str, set[float]]:
    """The fixed levels the request states, by the series family they are on."""
    out: dict[str, set[float]] = {}
    for c in found:
        if c.field == "level" and isinstance(c.value, int | float):
            out.setdefault(str(c.series).partition(":")[0], set()).add(float(c.value))
    return out


def levels_as_values(spec: StrategySpec, found: list[Claim]) -> tuple[StrategySpec, list[str]]:
    """`RSI(14) crosses above RSI(30)` where the request states 30 as a level on the RSI and
    never as its period: the 30 is the level (only on series with no price scale: an RSI, ROC,
    ATR or streak compared with another window of itself)."""
    levels, notes = _levels(found), []
    periods = {(c.field.partition(".")[0], float(c.value)) for c in found
               if c.field.endswith(".period") and isinstance(c.value, int | float)}  # fmt: skip

    def fixed(c: Condition) -> Condition:
        r = c.right
        if r is None or r.kind != c.left.kind or SCALES.get(r.kind) or r.period is None:
            return c
        fams = [f for f, kinds in FAMILY_KINDS.items() if r.kind in kinds and f in levels]
        if not any(float(r.period) in levels[f] and (f, float(r.period)) not in periods
                   for f in fams):  # fmt: skip
            return c
        shown = f"{c.left.kind.upper()} {c.op.replace('_', ' ')} {fmt(r.period)}"
        notes.append(f"{r.kind.upper()}({r.period}) read as the level the request states: {shown}")
        return Condition(left=c.left, op=c.op, value=float(r.period))

    update = {}
    for name in ("entry", "exit", "short_entry"):
        rule: Rule | None = getattr(spec, name)
        if rule is not None:
            new = [fixed(c) for c in rule.conditions]
            if new != rule.conditions:
                update[name] = rule.model_copy(update={"conditions": new})
    return (spec.model_copy(update=update), notes) if update else (spec, [])


def swapped_rules(spec: StrategySpec) -> tuple[StrategySpec, list[str]]:
    """The entry and the exit rule exchanged (a long or short spec with both written)."""
    if spec.exit is None or spec.direction == "both":
        return spec, []
    note = "the entry and exit rules were the wrong way round against the request: swapped"
    return spec.model_copy(update={"entry": spec.exit, "exit": spec.entry}), [note]


def _problems(report: FaithfulnessReport) -> list[str]:
    return [d.field for d in report.discrepancies] + [a.field for a in report.violations]


def fix_with_claims(request: str, spec: StrategySpec) -> tuple[StrategySpec, list[str]]:
    """The spec with the corrections above that bring it closer to the request, and each one in
    words (module docstring). A faithful spec comes back as it is."""
    spec, notes = plain_exit(spec)
    before = _problems(check(request, spec))
    if not before:
        return spec, notes
    found = claims(request)
    best, best_notes, best_problems = spec, notes, before
    levels, level_notes = levels_as_values(spec, found)
    for cand, why in (
        (levels, level_notes),
        swapped_rules(spec),
        (swapped_rules(levels)[0], level_notes + swapped_rules(levels)[1]),
    ):
        if not why or cand == spec:
            continue
        cand, more = plain_exit(cand)
        problems = _problems(check(request, cand))
        if len(problems) < len(best_problems) and set(problems) <= set(before):
            best, best_notes, best_problems = cand, [*notes, *why, *more], problems
    return best, best_notes


def _stated_levels(found: list[Claim], kind: str, op: str) -> set[float]:
    """The levels the request states on `kind`'s family with the sense of `op` (above/below)."""
    sense = op.removeprefix("crosses_")
    return {
        float(c.value)
        for c in found
        if c.field == "level"
        and isinstance(c.value, int | float)
        and kind in FAMILY_KINDS.get(str(c.series).partition(":")[0], frozenset())
        and str(c.op).removeprefix("crosses_") == sense
    }


def own_line_for_itself(data: dict[str, Any], request: str) -> tuple[dict[str, Any], list[str]]:
    """A model's spec (JSON, not yet valid) comparing a series with itself: it takes the one
    level the request states on its family with that comparison (RSI 30, the MACD's zero line,
    a close above $600); else a MACD line takes the one other MACD line the request names ("buy
    the bullish signal-line crossover"), with the same windows. Measured on the fresh sets' tune
    halves."""
    found = claims(request)
    named = {str(c.value) for c in found if c.field == "indicator"}
    named |= {str(k).partition(":")[0] for c in found for k in (c.series, c.other) if k}
    notes: list[str] = []

    def fixed(cond: object) -> object:
        if not isinstance(cond, dict) or cond.get("left") != cond.get("right"):
            return cond
        left = cond["left"]
        kind = left.get("kind") if isinstance(left, dict) else None
        if isinstance(kind, str):  # an RSI, a MACD, a close against itself: its stated level
            values = _stated_levels(found, kind, str(cond.get("op", "")))
            if len(values) == 1:
                value = values.pop()
                notes.append(f"a condition compared {kind} with itself: read as the level "
                             f"{fmt(value)} the request states")  # fmt: skip
                return {k: v for k, v in cond.items() if k != "right"} | {"value": value}
        others = sorted(named & {"macd", "macd_signal", "macd_hist"} - {kind})
        if kind not in ("macd", "macd_signal", "macd_hist") or len(others) != 1:
            return cond
        notes.append(f"a condition compared {kind} with itself: the other side read as the "
                     f"{others[0].replace('_', ' ')} the request names")  # fmt: skip
        return {**cond, "right": {**left, "kind": others[0]}}

    out = dict(data)
    for name in ("entry", "exit", "short_entry"):
        rule = out.get(name)
        if isinstance(rule, dict) and isinstance(rule.get("conditions"), list):
            out[name] = {**rule, "conditions": [fixed(c) for c in rule["conditions"]]}
    return (out, notes) if notes else (data, [])


# ------------------------------------------------------------------ the model's `unsupported`
# Measured on the fresh sets' tune halves: the 1.5B lists in `unsupported` what the spec does
# express ("stop 5%", "target 10%", "take_profit_pct", "both ways", a field name, words of its
# prompt), and the request is then refused although nothing in it is missing. An item is kept
# only when some word of it is the request's own and code read no fact there.
_WORD = re.compile(r"[^\W_]+")
_SPEC_WORDS = frozenset(
    """
    the and with for when then that this its his her from into onto also only just each every
    entry enter exit exits stop stops loss losses profit profits take target targets size sizes
    position positions dates date symbol direction period periods ways both short long signal
    percent pct rule rules spec field value level trade trades trading strategy time
    """.split()  # noqa: SIM905 (a word list reads better as words)
)


def unread_unsupported(request: str, spec: StrategySpec) -> tuple[StrategySpec, list[str]]:
    """`spec` with the `unsupported` items dropped that the request does not state outside
    what code read in it (the facts' spans), and a note for each dropped one."""
    if not spec.unsupported:
        return spec, []
    low = request.lower()
    read = bytearray(len(request))
    for c in claims(request):
        read[c.span[0] : c.span[1]] = b"\x01" * (c.span[1] - c.span[0])
    keep, notes = [], []
    for item in spec.unsupported:
        words = {w for w in _WORD.findall(item.lower()) if w not in _SPEC_WORDS}
        words = {w for w in words if len(w) > 2 or not w.isascii()}
        unread = any(
            not all(read[m.start() : m.end()])
            for w in words
            for m in re.finditer(re.escape(w), low)
        )
        if unread:
            keep.append(item)
        else:
            notes.append(f"{item!r} is not unsupported: the spec states what the request says")
    if not notes:
        return spec, []
    return spec.model_copy(update={"unsupported": keep}), notes


def _families(found: list[Claim]) -> set[str]:
    keys = [str(c.value) for c in found if c.field == "indicator"]
    keys += [str(k) for c in found for k in (c.series, c.other) if k]
    keys += [c.field.partition(".")[0] for c in found if "." in c.field]
    return {k.partition(":")[0] for k in keys}


def plain_averages(request: str, spec: StrategySpec) -> tuple[StrategySpec, list[str]]:
    """A request that names only plain moving averages ("20일선", "the 50-day MA") means simple
    ones, as a draft reads them (`drafting`): the model's EMAs become SMAs, said as an
    assumption. A request naming an EMA anywhere is left as the model wrote it."""
    families = _families(claims(request))
    if "ma" not in families or "ema" in families:
        return spec, []
    data = spec.model_dump(mode="json")
    changed: list[int] = []

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("kind") == "ema":
                changed.append(int(node.get("period") or 0))
                return {**node, "kind": "sma"}
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    out = walk(data)
    if not changed:
        return spec, []
    periods = ", ".join(sorted({fmt(p) for p in changed if p}))
    note = f"a plain moving average read as the simple one (the spec had EMA {periods})"
    return StrategySpec.model_validate(out), [note]


def states_as_stated(request: str, spec: StrategySpec) -> tuple[StrategySpec, list[str]]:
    """A cross the model wrote where the request states only a state on that series ("be long
    while RSI(6) is above 60", "the 3-bar SMA is above the 9-bar") becomes that state, said as
    an assumption. On the tune halves' runs every such spec was a silent substitute and no
    success had one."""
    found = [c for c in claims(request) if c.field in ("level", "condition") and c.op]
    said = {(str(c.series).partition(":")[0], str(c.op)) for c in found}
    crossed = {fam for fam, op in said if op.startswith("cross")}

    def stated(kind: str, sense: str) -> bool:
        fams = {fam for fam, fam_kinds in FAMILY_KINDS.items() if kind in fam_kinds}
        return bool(fams & {fam for fam, op in said if op == sense}) and not fams & crossed

    notes: list[str] = []
    rules: dict[str, Rule] = {}
    for name in ("entry", "exit", "short_entry"):
        rule = getattr(spec, name)
        if rule is None:
            continue
        conditions = []
        for c in rule.conditions:
            sense = c.op.removeprefix("crosses_")
            if c.op != sense and stated(c.left.kind, sense):
                c = c.model_copy(update={"op": sense})
                notes.append(f"{c.left.kind} {sense}: the request states a state, not a cross")
            conditions.append(c)
        rules[name] = rule.model_copy(update={"conditions": conditions})
    return (spec.model_copy(update=rules), notes) if notes else (spec, [])


# ------------------------------------------------------------------ the substitute guard
# Measured on fresh3's tune half: of the model's built specs that traded differently from the
# request, each had a rule no claim of the request backs (an exit invented from the entry's
# filter; "A or B" written as A and B; the window of an unstated period chosen freely). A model's
# spec is built only when each of its conditions is a claim code read, in a rule the claim's cue
# allows, with every unstated window the documented default; else the builder refuses, naming it.
_ZONE = {("rsi", "below"): 30.0, ("rsi", "above"): 70.0}


def _allowed(found: list[Claim]) -> dict[tuple[str, str], set[float]]:
    """The windows each (kind, attribute) may take: stated, in a claim's key, or the default."""
    out: dict[tuple[str, str], set[float]] = {}
    for kinds, attr, value in _windows(found):
        for kind in kinds:
            out.setdefault((kind, attr), set()).add(value)
    return out


def _windows(found: list[Claim]) -> list[tuple[frozenset[str], str, float]]:
    out = [(FAMILY_KINDS.get(f.partition(".")[0], frozenset()), f.partition(".")[2], float(v))
           for f, v in DEFAULTS.items() if "." in f and isinstance(v, int | float)]  # fmt: skip
    for c in found:
        fam, _, attr = c.field.partition(".")
        if attr and isinstance(c.value, int | float):
            out.append((FAMILY_KINDS.get(fam, frozenset()), attr, float(c.value)))
        for key in (k for k in (c.series, c.other) if k):
            fam, _, per = key.partition(":")
            kinds = FAMILY_KINDS.get(fam, frozenset())
            if per in ("fast", "slow"):  # an unnumbered golden cross: 50/200, or the stated pair
                out += [(kinds, "period", 50.0), (kinds, "period", 200.0)]
            elif per:
                out.append((kinds, "period", float(per)))
    stated = [v for k, a, v in out if a == "period" and k & FAMILY_KINDS["ma"]]
    out += [(FAMILY_KINDS["ma"], "period", v) for v in stated]  # "20일선" may be either average
    return out


def _roles(rule: str, direction: str) -> tuple[str | None, ...]:
    """The cues whose claims a rule may take: a short spec's entry is the request's short."""
    if rule == "entry":
        return ("entry", "short", None) if direction == "short" else ("entry", None)
    return ("exit", None) if rule == "exit" else ("short", None)


def _backers(c: Condition, roles: tuple[str | None, ...], found: list[Claim]) -> list[int]:
    """The claims (by index) that state `c` with a cue in `roles`."""
    out = []
    for i, x in enumerate(found):
        if x.role not in roles or not says(x, c):
            continue
        if x.field == "level" and x.value is None:  # "oversold": the documented level
            zone = _ZONE.get((c.left.kind, c.op.removeprefix("crosses_")))
            if zone is not None and c.value != zone:
                continue
        out.append(i)
    return out


def _odd_windows(name: str, c: Condition, allowed: dict[tuple[str, str], set[float]]) -> list[str]:
    """The windows of `c` that are neither stated nor the documented default."""
    out = []
    for s in (x for x in (c.left, c.right) if x is not None):
        for attr in ("period", "slow_period", "signal_period", "std_dev"):
            value, ok = getattr(s, attr, None), allowed.get((s.kind, attr))
            if value is not None and ok is not None and float(value) not in ok:
                what = f"{s.kind} {attr.replace('_', ' ')} {fmt(value)}"
                out.append(f"{name}: the {what} is neither stated nor the default")
    return out


def _join(request: str, found: list[Claim], picked: list[int]) -> str:
    """How the request joins the claims of one rule: "… or …" is any, else all."""
    order = sorted(set(picked), key=lambda i: found[i].span)
    gaps = [request[found[a].span[1] : found[b].span[0]] for a, b in pairwise(order)]
    return "any" if any(_ANY.search(g) for g in gaps) else "all"


def unbacked(request: str, spec: StrategySpec) -> tuple[StrategySpec, list[str], list[str]]:
    """The guard (above): `spec` with each rule's `combine` as the request joins its conditions
    ("… or …": any), the corrections made, and each condition or window no claim backs. A
    role-less claim backs the rules that open a position or the exit, not both. A request that
    states no rule at all ("mean reversion with Bollinger bands") leaves the rule to the model."""
    found = [c for c in said_rules(request) if c.field in ("level", "condition")]
    if not found and not _compares(request):  # no rule stated: the rule is the model's choice
        return spec, [], []
    allowed = _allowed(claims(request))
    missing: list[str] = []
    notes: list[str] = []
    opened: set[int] = set()
    rules: dict[str, Rule] = {}
    for name in ("entry", "short_entry", "exit"):  # openings first: they take role-less claims
        rule: Rule | None = getattr(spec, name)
        if rule is None:
            continue
        picked = []
        for c in rule.conditions:
            backers = _backers(c, _roles(name, spec.direction), found)
            if name == "exit":
                backers = [i for i in backers if found[i].role or i not in opened]
            if not backers:
                missing.append(f"{name}: {show_condition(c)} is not a rule read in the request")
            else:
                picked.append(backers[0])
                missing += _odd_windows(name, c, allowed)
        opened |= set(picked) if name != "exit" else set()
        join = _join(request, found, picked)
        if len(set(picked)) == len(rule.conditions) > 1 and rule.combine != join:
            rules[name] = rule.model_copy(update={"combine": join})
            words = "any one of them (… or …)" if join == "any" else "all of them"
            notes.append(f"{name}: the request's conditions are joined as {words}")
    spec = spec.model_copy(update=rules) if rules else spec
    return spec, notes, list(dict.fromkeys(missing))
