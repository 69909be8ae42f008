"""Narrative report benchmark: is the report faithful, label by label, and does it cover the job?

Run: `python -m bench.narrative [--split tune|heldout|all] [--model M] [--limit N]` (not in CI).
Each case runs a corpus strategy (`agents/quant/corpus.py`) with its own parameters on a bundled
symbol and period (some beat buy-and-hold, most lag it, some trade rarely or never) and writes the
report through the graph's public `write_report`. Results: `bench/results/narrative.json`.

The judge is **independent of the service** (`check_report` shares no code with narration.py or
the graph): every number of the final report must equal, as rounded where written, the value
computed from the backtest result's own fields of the metric whose label it stands with (the
nearest label of its sentence, a clause break counting as distance; dates, years and points
label themselves). No label, a label of something never computed (a limit, a fee, the
volatility), another metric's value, a wrong sign or a wrong beat/lagged claim fails. Coverage:
buy-and-hold (its return and the right direction), return, risk, trading, every parameter, the
period, a caveat. Prompts are tuned on `tune` only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")
RESULTS = Path(__file__).resolve().parent / "results" / "narrative.json"

# --------------------------------------------------------------------------------------------
# The independent label-aware checker
# --------------------------------------------------------------------------------------------

_BH = r"buy[- ]?(?:and|&|n|-and-)[- ]?hold(?:ing)?(?:'s)?"
# metric key | regex (joined over continuation lines); the longest match wins where labels
# overlap. "param" labels any parameter, "foreign" a quantity no backtest result carries.
_LABEL_TABLE = r"""
bh_return | {bh}(?:\s+(?:strategy|benchmark|approach|baseline|position)(?:'s)?)?(?:\s+(?:would\s+
    have\s+|had\s+|has\s+)?(?:total\s+)?(?:returns?|returned|gained|earned|delivered|made))?
bh_return | (?:returns?|gains?)\s+(?:of|from|for|by)\s+(?:(?:a|the|simply|just|passive)\s+)*{bh}
bh_return | benchmark(?:'s)?(?:\s+return)?|(?:simply\s+|passively\s+)holding
excess | excess(?:\s+return)?|difference|gap|margin|shortfall|(?:out|under)performance
cagr | CAGR|compound(?:ed)?\s+annual(?:\s+growth)?(?:\s+rate)?|annuali[sz]ed(?:\s+returns?)?|
    annual(?:\s+(?:returns?|growth|rate))?|per\s+year|a\s+year|yearly
sharpe | Sharpe(?:\s+ratio)?
sortino | Sortino(?:\s+ratio)?
drawdown | (?:(?:max(?:imum)?|largest|biggest|worst|deepest)\s+)?draw[- ]?downs?|MDD|
    peak[- ]to[- ]trough(?:\s+(?:decline|loss|drop|fall))?
trades | trades?|traded|trade\s+count|round[- ]trips?|transactions?|times
win_rate | win(?:ning)?\s+(?:rate|ratio|percentage)|hit\s+rate|success\s+rate|winners|won|
    winning(?:\s+trades)?|profitable(?:\s+trades)?
exposure | (?:market\s+)?exposure|exposed|time\s+in\s+(?:the\s+)?market|in\s+the\s+market
initial_cash | initial(?:\s+(?:cash|capital|equity|investment|balance))?|
    start(?:ing|ed)\s+(?:with|cash|capital|equity|balance)|capital
final_equity | final(?:\s+(?:equity|value|balance|capital))?|ending\s+(?:equity|value|balance)|
    end(?:ed|ing)\s+(?:up\s+)?(?:with|at)|grew\s+to|finish(?:ed|ing)\s+(?:with|at)
total_return | (?:(?:total|net|overall|cumulative)\s+)?returns?|returned|gain(?:ed|s)?|profits?|
    earned|lost|loss
param | parameters?|settings?|lookbacks?|windows?|periods?|SMAs?|EMAs?|moving\s+averages?|RSI|
    MACD|Bollinger(?:\s+bands?)?|bands?|Donchian(?:\s+channels?)?|channels?|signal(?:\s+line)?|
    thresholds?|oversold|overbought|cross(?:over)?|highs?|lows?|averages?
foreign | volatility|standard\s+deviations?|limits?|targets?|stop[- ]loss(?:es)?|take[- ]profit|
    commissions?|fees?|costs?|slippage|spreads?|inflation|risk[- ]free|beta|alpha|Calmar|
    profit\s+factor|expectancy|average\s+(?:trade|win|loss|gain|return)|median|
    per\s+(?:trade|month|day|week)|leverage|position\s+size|budget|competitors?|peers?|index|S&P
"""
LABELS: tuple[tuple[str, str], ...] = tuple(
    (key.strip(), "".join(x.strip() for x in pat.splitlines()).replace("{bh}", _BH))
    for key, pat in (b.split("|", 1) for b in re.split(r"\n(?=\S)", _LABEL_TABLE.strip()))
)
DIRECTION_BEAT = (
    r"beat(?:s|ing)?|outperform(?:ed|s|ing)?|exceed(?:ed|s|ing)?|surpass(?:ed|es|ing)?|topped|"
    r"outpac(?:ed|es|ing)|ahead\s+of|(?:better|higher|greater|more)\s+than|did\s+better|above|"
    r"(?:was|were|is)\s+(?:\w+ly\s+|much\s+|far\s+)?(?:higher|better|greater|stronger)"
    r"(?![^.;]*\bthan\b)"
)
DIRECTION_LAG = (
    r"lag(?:ged|s|ging)?|trail(?:ed|s|ing)?|underperform(?:ed|s|ing)?|behind|short\s+of|"
    r"fell\s+short|(?:worse|lower|less|smaller)\s+than|did\s+worse|below|"
    r"(?:was|were|is)\s+(?:\w+ly\s+|much\s+|far\s+)?(?:lower|worse|weaker|smaller)"
    r"(?![^.;]*\bthan\b)"
)
CAVEAT = (
    r"past\s+(?:performance|results)|(?:no|not\s+a?)\s*guarantee|future\s+(?:results|returns|"
    r"performance)|in[- ]sample|overfit\w*|hypothetical|slippage|commissions?|costs|fees|"
    r"(?:few|small\s+number\s+of)\s+trades|small\s+sample|few\s+outcomes|"
    r"(?:one|a\s+single|single|only\s+one)\s+(?:symbol|asset|stock|market|instrument|period)|"
    r"never\s+(?:traded|entered)|did\s+not\s+trade|too\s+(?:few|small)|statistical\w*|limited|"
    r"(?:a\s+)?single\s+(?:\w+\s+)?trade|only\s+(?:one|\d+)\s+trades?"
)
_DIFFERENCE = r"\s*(?:more|less|higher|lower|greater|smaller|better|worse)\s+than"
NEGATIVE = r"\b(?:lost|loss|losing|negative|declin\w*|fell|dropped|down|shr[ai]nk\w*)\b"
WINDOW, BREAK, RELATIVE = 8, 3, 0.1
"""A label farther than WINDOW words is none; a comma, semicolon, dash, parenthesis, "which",
"than"... costs BREAK words; a rounding is at most RELATIVE off."""
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−+])?(?P<cur>\$)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?![\d])(?P<scale>\s?(?:k|K|M|B|thousand|million|billion)\b)?"
    r"(?P<unit>\s?(?:%\s?points?|percentage[- ]points?|pp\b|%|percent\b|points?\b)|x\b|"
    r"[- ]?(?:years?|yrs?)\b|[- ]?(?:days?|bars?|periods?|sessions?|hours?|weeks?|months?)\b)?"
)
_MON = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
_DATE = re.compile(
    rf"(?<!\d)(?P<y1>\d{{4}})-(?P<m1>\d\d)-(?P<d1>\d\d)(?!\d)"
    rf"|\b(?P<mon2>{_MON})\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y2>\d{{4}})\b"
    rf"|\b(?P<d3>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<mon3>{_MON})\.?,?\s+(?P<y3>\d{{4}})\b"
    rf"|\b(?P<mon4>{_MON})\.?,?\s+(?P<y4>\d{{4}})\b"
    r"|(?<![\d.,$])(?P<y5>(?:19|20)\d\d)(?![\d%]|[.,]\d|\s?(?:years?|days?|trades?)\b)",
    re.I,
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_BREAKS = re.compile(r"[,;:()]|\s[-–—]\s|—|\b(?:which|while|whereas|but|than|versus|vs)\b", re.I)


@dataclass(frozen=True)
class Metric:
    """A value the report may cite and its kind (how a number must be written to match it)."""

    value: float | None
    kind: str  # pct, ratio, count, money, pp, years, param
    signed: bool = False


_FIELDS = (  # metric key, BacktestResult field, kind, signed
    "total_return total_return_pct pct 1, bh_return buy_and_hold_return_pct pct 1, cagr cagr_pct "
    "pct 1, sharpe sharpe ratio 1, sortino sortino ratio 1, drawdown max_drawdown_pct pct 0, "
    "trades num_trades count 0, win_rate win_rate_pct pct 0, exposure exposure_pct pct 0, "
    "initial_cash initial_cash money 0, final_equity final_equity money 0"
)


@dataclass
class Truth:
    """What the backtest result itself says, field by field (never the graph's facts)."""

    metrics: dict[str, Metric]
    period: tuple[date, date]
    symbol: str
    strategy: str
    params: dict[str, float | None]

    @classmethod
    def of(cls, r: Any) -> Truth:
        bh = r.buy_and_hold_return_pct
        m = {
            key: Metric(None if getattr(r, f) is None else float(getattr(r, f)), kind, sign == "1")
            for key, f, kind, sign in (row.split() for row in _FIELDS.split(","))
        }
        m["excess"] = Metric(None if bh is None else r.total_return_pct - bh, "pp")
        m["length"] = Metric((r.end - r.start).days / 365.25, "years")
        params = {k: v if isinstance(v, int | float) else None for k, v in r.parameters.items()}
        return cls(m, (r.start, r.end), r.symbol, r.strategy_name, params)


@dataclass(frozen=True)
class Verdict:
    """One number of the report as the checker judged it."""

    text: str
    sentence: str
    label: str | None
    ok: bool
    why: str
    value: float | tuple[int, ...] | None = None  # as written; a date as (y, m, d)


@dataclass
class ReportCheck:
    """The checker's answer on one report."""

    numbers: list[Verdict] = field(default_factory=list)
    direction_errors: list[str] = field(default_factory=list)
    covers: dict[str, bool] = field(default_factory=dict)

    @property
    def label_faithful(self) -> bool:  # every number with its own metric, no wrong direction
        return all(v.ok for v in self.numbers) and not self.direction_errors

    @property
    def failures(self) -> list[str]:
        bad = [f"{v.text} ({v.label or 'no label'}): {v.why}" for v in self.numbers if not v.ok]
        return bad + self.direction_errors


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCES.split(text) if s.strip()]


def _label_spans(sentence: str, truth: Truth) -> list[tuple[int, int, str]]:
    """(start, end, key) of every label word, the longest where they overlap."""
    pats = [(k, p) for k, p in LABELS]
    for name in truth.params:
        spelled = re.escape(name).replace("_", "[ _-]?")
        if len(name) <= 2:  # "k": only as "k=2.0" / "k of 2.0"
            spelled += r"(?=\s*(?:=|:|of\b|value\b))"
        pats.insert(0, (f"param:{name}", spelled))
        if name == "k":
            pats.insert(0, ("param:k", r"standard\s+deviations?|std|multiplier|width"))
    if truth.strategy:
        pats.append(("param", re.escape(truth.strategy)))
    hits = [
        (m.start(), m.end(), key)
        for key, pat in pats
        for m in re.finditer(rf"(?<![A-Za-z])(?:{pat})(?![A-Za-z])", sentence, re.I)
    ]
    out: list[tuple[int, int, str]] = []
    for h in sorted(hits, key=lambda h: (h[0] - h[1], h[0])):  # the longest first
        out += [] if any(h[0] < o[1] and o[0] < h[1] for o in out) else [h]
    return sorted(out)


def _dates(sentence: str) -> list[tuple[int, int, tuple[int, ...]]]:
    out = []
    for m in _DATE.finditer(sentence):
        g = {k[:-1] if k[-1].isdigit() else k: v for k, v in m.groupdict().items() if v}
        if mon := g.get("mon"):
            g["m"] = str(_MONTHS.index(mon[:3].lower()) + 1)
        parts = [int(g[k]) for k in ("y", "m", "d") if k in g]
        out.append((m.start(), m.end(), tuple(parts)))
    return out


def _distance(sentence: str, a: int, b: int) -> int:
    gap = sentence[a:b]
    return len(re.findall(r"[\w']+", gap)) + BREAK * len(_BREAKS.findall(gap))


def _nearest(
    sentence: str, start: int, end: int, labels: list[Any], every: Any = None
) -> list[str]:
    """The key(s) of the nearest label left or right of a number (a tie gives both; `every`:
    "X and Y of 25 and 75, respectively", any label within the window)."""
    best: list[tuple[int, str]] = []
    for ls, le, key in labels:
        a, b = (le, start) if le <= start else (end, ls) if ls >= end else (0, -1)
        if b >= 0 and _distance(sentence, a, b) <= WINDOW:
            best.append((_distance(sentence, a, b), key))
    low = min((d for d, _ in best), default=None)
    return list(dict.fromkeys(k for d, k in best if d == low or every))


def _rounds(written: float, decimals: int, true: float | None, magnitude: bool, slack=0.5) -> bool:
    """Within half a unit of the last digit written and `RELATIVE` of the value (`slack=1`: one)."""
    if true is None:
        return False
    t = abs(true) if magnitude else true
    err, rel = abs(written - t), RELATIVE if slack == 0.5 else 1.0
    return err <= slack * 10**-decimals + 1e-9 and (abs(t) < 1e-9 or err <= rel * abs(t) + 1e-9)


def _parse(m: re.Match[str]) -> tuple[float, int, str, str]:
    """(value as written, decimals, unit, sign) of one number."""
    num = m["num"].replace(",", "")
    decimals = len(num.split(".")[1]) if "." in num else 0
    value = float(num)
    scale = (m["scale"] or "").strip().lower()
    if scale:
        factor = {"k": 3, "thousand": 3, "m": 6, "million": 6, "b": 9, "billion": 9}[scale]
        value, decimals = value * 10**factor, decimals - factor
    u = (m["unit"] or "").strip(" -").lower()
    kinds = (("pp", "point" in u or u == "pp"), ("%", u in ("%", "percent")), ("x", u == "x"))
    unit = "$" if m["cur"] else next((k for k, hit in kinds if hit), "")
    if not unit and u:
        unit = "years" if u.startswith(("year", "yr")) else "bars"
    return value, decimals, unit, (m["sign"] or "").replace("−", "-")


def _judge_value(
    key: str, value: float, decimals: int, unit: str, sign: str, sentence: str, t: Truth
) -> tuple[bool, str]:
    if key == "foreign":
        return False, "labelled by a quantity the backtest never computed"
    if key == "param" or key.startswith("param:"):
        pool = list(t.params.values()) if key == "param" else [t.params.get(key[6:])]
        if unit in ("$", "pp", "years", "x"):
            return False, f"a {unit} amount is no parameter"
        ok = any(_rounds(value, decimals, p, False) for p in pool if p is not None)
        return ok, "a parameter" if ok else f"not the {key} value"
    m = t.metrics[key]
    units = {"pct": "%,", "pp": "pp,%,", "ratio": "", "count": "", "money": "$,", "years": "years"}
    if unit not in units[m.kind].split(","):
        return False, f"written as {unit or 'a bare number'}, but {key} is {m.kind}"
    if m.value is None:
        return False, f"{key} was not computed (n/a)"
    if not _rounds(value, decimals, m.value, True, 1.0 if key == "excess" else 0.5):  # 2 roundings
        return False, f"{key} is {m.value:,.4g}"
    if (sign == "+" and m.value < 0) or (sign == "-" and m.value > 0 and key != "drawdown"):
        return False, f"wrong sign: {key} is {m.value:,.4g}"
    if m.signed and m.value < 0 and not sign and not re.search(NEGATIVE, sentence, re.I):
        return False, f"{key} is negative ({m.value:,.4g}) and the sentence says nothing of it"
    return True, key


def _overlap(span: tuple[Any, ...], others: list[Any]) -> bool:
    return any(o[0] < span[1] and span[0] < o[1] for o in others)


def check_sentence(sentence: str, t: Truth) -> list[Verdict]:
    """The verdict on every number of one sentence."""
    out: list[Verdict] = []
    dates = _dates(sentence)
    for s, e, when in dates:
        ok = any(when == (d.year, d.month, d.day)[: len(when)] for d in t.period)
        why = "a date of the period" if ok else "a date that is neither the start nor the end"
        out.append(Verdict(sentence[s:e], sentence, "date", ok, why, when))
    nums = [m for m in _NUMBER.finditer(sentence) if not _overlap(m.span(), dates)]
    labels = [
        lab for lab in _label_spans(sentence, t) if not _overlap(lab, [n.span() for n in nums])
    ]
    for m in nums:
        value, decimals, unit, sign = _parse(m)
        before = sentence[: m.start()]
        if (
            unit == "pp"
            or re.match(_DIFFERENCE, sentence[m.end() :], re.I)  # "55.2% less than": a gap
            or (
                re.search(r"\bby\s+(?:about\s+|roughly\s+|nearly\s+)?$", before)
                and re.search(rf"(?:{DIRECTION_BEAT}|{DIRECTION_LAG})", before, re.I)
            )
        ):
            keys = ["excess"]
        elif unit == "years":
            keys = ["length"]
        elif unit == "x":
            keys = ["foreign"]
        else:
            keys = _nearest(sentence, m.start(), m.end(), labels, "respectively" in sentence)
            if unit == "bars":
                keys = [k for k in keys if k.startswith("param")] or ["param"]
        if not keys:
            out.append(Verdict(m.group().strip(), sentence, None, False, "no label nearby"))
            continue
        judged = [(k, *_judge_value(k, value, decimals, unit, sign, sentence, t)) for k in keys]
        key, ok, why = next((j for j in judged if j[1]), judged[0])
        out.append(Verdict(m.group().strip(), sentence, key, ok, why, value))
    return out


def direction(sentence: str) -> bool | None:
    """What one sentence says of the strategy against buy-and-hold: True beat, False lagged."""
    bh = list(re.finditer(rf"{_BH}|benchmark|simply holding|holding", sentence, re.I))
    if not bh:
        return None
    said: set[bool] = set()
    verbs = rf"(?P<beat>{DIRECTION_BEAT})|(?P<lag>{DIRECTION_LAG})"
    for v in re.finditer(rf"\b(?:{verbs})\b", sentence, re.I):
        claim = v["beat"] is not None
        before = sentence[: v.start()]
        if re.search(r"\b(?:not|n't|never|failed\s+to|unable\s+to)\W+(?:\w+\W+){0,2}$", before):
            claim = not claim
        last_bh = max((b.end() for b in bh if b.end() <= v.start()), default=-1)
        strat = re.finditer(r"\b(?:strategy|it|its)\b", before, re.I)
        last_strategy = max((s.end() for s in strat), default=-1)
        if last_bh > last_strategy and not re.search(r"[,;]", sentence[last_bh : v.start()]):
            claim = not claim  # buy-and-hold is the subject
        if re.match(rf"\s+by\s+(?:the\s+|a\s+)?(?:{_BH}|benchmark)", sentence[v.end() :], re.I):
            claim = not claim  # "outperformed by buy-and-hold"
        if re.match(rf"\s+of\s+(?:the\s+)?(?:{_BH}|benchmark)", sentence[v.end() :], re.I):
            claim = not claim  # "a lag of buy-and-hold": buy-and-hold is the one lagging
        said.add(claim)
    return said.pop() if len(said) == 1 else None


def check_report(report: str, result: Any) -> ReportCheck:
    """Every number of `report` against `result` (a BacktestResult), and what it covers."""
    t = Truth.of(result)
    out = ReportCheck()
    excess = t.metrics["excess"].value
    directions: list[bool] = []
    for s in sentences(report):
        out.numbers += check_sentence(s, t)
        said = direction(s)
        if said is not None and excess is not None and excess != 0:
            directions.append(said)
            if said != (excess > 0):
                out.direction_errors.append(f"says it {'beat' if said else 'lagged'}: {s[:90]}")
    cited = {v.label for v in out.numbers if v.ok}
    right_dir = excess is None or (
        (excess > 0) in directions if excess else bool(re.search(r"match", report, re.I))
    )
    bh_cited = "bh_return" in cited or t.metrics["bh_return"].value is None
    m = t.metrics
    ok = [v for v in out.numbers if v.ok]
    params_ok = all(
        any(v.label in (f"param:{k}", "param") and v.value == p for v in ok)
        for k, p in t.params.items()
    )
    dated = [v.value for v in ok if v.label == "date" and isinstance(v.value, tuple)]
    period = all(any(w == (d.year, d.month, d.day)[: len(w)] for w in dated) for d in t.period)
    out.covers = {
        "buy_and_hold": bh_cited and right_dir and not out.direction_errors,
        "return": "total_return" in cited,
        "risk": "drawdown" in cited
        and (bool({"sharpe", "sortino"} & cited) or m["sharpe"].value is None),
        "trading": "trades" in cited
        and ("win_rate" in cited or m["win_rate"].value is None)
        and "exposure" in cited,
        "parameters": bool(params_ok),
        "period": period,
        "symbol": t.symbol.lower() in report.lower(),
        "caveat": bool(re.search(CAVEAT, report, re.I))
        and not re.search(r"\bno (?:caveats?|risks?)\b", report, re.I),
    }
    return out


# --------------------------------------------------------------------------------------------
# The cases: corpus strategies with their own parameters, symbols and periods
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    split: str  # tune | heldout
    strategy: str
    params: dict[str, Any]
    symbol: str
    period: tuple[float, float]  # fractions of the symbol's bundled history
    request: str = ""


_CASES = """  # id split strategy parameters symbol period (fractions of the history) [focus]
t01 tune SmaCross fast=10,slow=30 GOOG 0-0.5
t02 tune RsiMeanReversion period=14,lower=30,upper=70 GOOG 0-1
t03 tune EmaCross fast=20,slow=50 BTCUSD 0-1
t04 tune MacdCross fast=8,slow=17,signal=9 EURUSD 0-1
t05 tune DonchianBreakout entry=20,exit=10 EURUSD 0.5-1
t06 tune BollingerReversion period=20,k=1.5 GOOG 0-0.5
t07 tune Momentum lookback=20,threshold=1.0 EURUSD 0.5-1
t08 tune BuyAndHold - GOOG 0-1
t09 tune SmaCross fast=5,slow=20 BTCUSD 0-1
t10 tune MacdCross fast=5,slow=35,signal=5 BTCUSD 0.5-1
t11 tune RsiMeanReversion period=7,lower=25,upper=75 EURUSD 0-0.5
t12 tune EmaCross fast=12,slow=26 GOOG 0-0.5 focus on the risk
h01 heldout SmaCross fast=15,slow=40 GOOG 0.5-1
h02 heldout EmaCross fast=10,slow=40 EURUSD 0-0.5
h03 heldout RsiMeanReversion period=10,lower=20,upper=80 GOOG 0-1
h04 heldout BollingerReversion period=25,k=2.0 EURUSD 0.5-1
h05 heldout DonchianBreakout entry=30,exit=15 GOOG 0-0.5
h06 heldout MacdCross fast=12,slow=26,signal=9 BTCUSD 0-0.5
h07 heldout Momentum lookback=30,threshold=2.0 GOOG 0.67-1
h08 heldout BuyAndHold - EURUSD 0-1
h09 heldout DonchianBreakout entry=10,exit=5 BTCUSD 0.5-1
h10 heldout Momentum lookback=50,threshold=3.0 EURUSD 0-1
h11 heldout MacdCross fast=8,slow=17,signal=9 BTCUSD 0.5-1
h12 heldout SmaCross fast=20,slow=50 GOOG 0-0.5 is this worth trading?
"""


def _case(line: str) -> Case:
    cid, split, strategy, params, symbol, period, *request = line.split()
    pairs = [p.split("=") for p in params.split(",") if p != "-"]
    values = {k: float(v) if "." in v else int(v) for k, v in pairs}
    lo, hi = (float(x) for x in period.split("-"))
    return Case(cid, split, strategy, values, symbol, (lo, hi), " ".join(request))


CASES: tuple[Case, ...] = tuple(_case(ln) for ln in _CASES.splitlines()[1:] if ln.strip())


def backtest(case: Case, user_id: str) -> Any:
    """The case's real backtest (the corpus's strategies and per-symbol costs)."""
    from agents.quant.backtests import load_ohlcv, run_backtest
    from agents.quant.corpus import COMMISSION, STRATEGIES

    index = load_ohlcv(case.symbol).index
    lo, hi = (index[round(f * (len(index) - 1))] for f in case.period)
    return run_backtest(
        STRATEGIES[case.strategy],
        case.symbol,
        user_id=user_id,
        parameters=case.params,
        commission=COMMISSION[case.symbol],
        start=lo,
        end=hi,
        created_at=datetime(2025, 1, 6, tzinfo=UTC),
    )


def run_case(case: Case, *, model: str | None, user_id: str) -> dict[str, Any]:
    from graphs.narrative_report import write_report

    bt = backtest(case, user_id)
    bh, ret = bt.buy_and_hold_return_pct, bt.total_return_pct
    run: dict[str, Any] = {"id": case.id, "split": case.split, "strategy": case.strategy}
    run.update(parameters=case.params, symbol=case.symbol, period=f"{bt.start} to {bt.end}")
    run.update(total_return_pct=round(ret, 2), trades=bt.num_trades)
    run.update(buy_and_hold_pct=None if bh is None else round(bh, 2))
    run["beat_buy_and_hold"] = None if bh is None else ret > bh
    run["load_1m"] = round(os.getloadavg()[0], 2)  # the machine is shared: record how busy
    t0 = time.perf_counter()
    try:
        out = write_report(bt, user_id=user_id, model=model, request=case.request)
    except Exception as exc:  # a crash is the service failing: recorded, not raised
        run.update(error=f"{type(exc).__name__}: {exc}"[:300], label_faithful=False, covers={})
        return run | {"latency_s": round(time.perf_counter() - t0, 2)}
    run["latency_s"] = round(time.perf_counter() - t0, 2)
    verdict = check_report(out.report, bt)
    run.update(label_faithful=verdict.label_faithful, failures=verdict.failures)
    run.update(
        covers=verdict.covers, numbers_checked=len(verdict.numbers), used_fallback=out.used_fallback
    )
    run.update(model_sentences=out.model_sentences, template_sentences=out.template_sentences)
    run.update(rejected_sentences=out.rejected_sentences, model_used=out.model_used)
    return run | {"served_by": out.served_by, "report": out.report}


SECTIONS = ("buy_and_hold", "return", "risk", "trading", "parameters", "period", "caveat")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def rate(rs: list[dict[str, Any]], ok: Any) -> float | None:
        return round(sum(1 for r in rs if ok(r)) / len(rs), 3) if rs else None

    def half(rs: list[dict[str, Any]]) -> dict[str, Any]:
        done = [r for r in rs if "error" not in r]
        lat = [float(r["latency_s"]) for r in done]
        model = sum(r["model_sentences"] for r in done)
        passages = model + sum(r["template_sentences"] for r in done)
        return {
            "reports": len(rs),
            "errors": len(rs) - len(done),
            "label_faithful": rate(rs, lambda r: r["label_faithful"]),
            "buy_and_hold_covered": rate(rs, lambda r: r["covers"].get("buy_and_hold")),
            "model_prose_accepted": rate(rs, lambda r: r.get("used_fallback") is False),
            "mostly_model_prose": rate(
                rs, lambda r: r.get("model_sentences", 0) > r.get("template_sentences", 0)
            ),
            "model_share_of_passages": round(model / passages, 3) if passages else None,
            "every_section_covered": rate(rs, lambda r: all(r["covers"].get(s) for s in SECTIONS)),
            "covered": {s: rate(rs, lambda r, s=s: r["covers"].get(s)) for s in SECTIONS},
            "beat_buy_and_hold": sum(1 for r in rs if r.get("beat_buy_and_hold")),
            "few_trades": sum(1 for r in rs if r["trades"] < 10),
            "median_latency_s": statistics.median(lat) if lat else None,
            "median_load_1m": statistics.median(r["load_1m"] for r in rs) if rs else None,
            "models": sorted({str(r.get("served_by") or r.get("model_used")) for r in done}),
        }

    halves = {s: half([r for r in runs if r["split"] == s]) for s in ("tune", "heldout")}
    return halves | {"all": half(runs)}


def _link_models(data_dir: Path) -> None:
    """The fresh data dir shares the repository's assembled GGUFs (hard links, no copy)."""
    src = Path(__file__).resolve().parents[1] / "data" / "models"
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.gguf*") if src.is_dir() else ():  # else assembled on first use
        with contextlib.suppress(OSError):
            os.link(f, data_dir / "models" / f.name)


def _earlier(out: Path, split: str, model: str | None) -> list[dict[str, Any]]:
    """The other half's runs of an earlier run of the same model (one half at a time)."""
    if split == "all" or not out.is_file():
        return []
    old = json.loads(out.read_text("utf-8"))
    return [r for r in old.get("runs", []) if old.get("model") == model and r["split"] != split]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=("tune", "heldout", "all"), default="all")
    parser.add_argument("--model", default=None, help="narrative_report model (policy default)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a fresh temp dir")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="qg-bench-narrative-"))
    _link_models(data_dir)
    os.environ["QUANT_GENAI_DATA_DIR"] = str(data_dir)
    from agents import registry  # after the data dir is set: settings are read on first use
    from agents.settings import get_settings

    registry.reset()
    cases = [c for c in CASES if args.split in ("all", c.split)][: args.limit]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    runs = []
    for i, case in enumerate(cases, 1):
        run = run_case(case, model=args.model, user_id=f"bench-{case.id}")
        runs.append(run | {"started_at": started})
        how = "error" if "error" in run else "template" if run["used_fallback"] else "prose"
        mark = f"faithful={run['label_faithful']} bh={run['covers'].get('buy_and_hold')}"
        print(f"[{i:2d}/{len(cases)}] {run['latency_s']:6.1f}s {mark} {how} {case.id}", flush=True)
    runs = sorted(_earlier(args.out, args.split, args.model) + runs, key=lambda r: r["id"] < "t")
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    report: dict[str, Any] = {"benchmark": "narrative", "backend": get_settings().backend}
    report |= {"machine": machine, "model": args.model, "summary": summarise(runs), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    print(json.dumps(report["summary"], indent=2))
    return report


if __name__ == "__main__":
    main()
