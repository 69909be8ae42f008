"""Narrating a backtest: a label-aware number check and report coverage (the narrative report's
sentence filter, `report_writer`, and template, `report_template`, build on them; the chat graph
reuses the check).

**The check** (`FactSheet.check`) reads each sentence's numbers (sign, `$`, unit, `k`/`M`) and
labels (`_VOCABULARY`): each fact's name and synonyms (EN, and KO: 수익률, 샤프, 최대 낙폭,
승률, 거래 횟수, 매수 후 보유), parameter names, indicator words (SMA, lookback, the strategy's
name: they label parameters) and *foreign* labels, naming quantities the facts lack (limit,
target, volatility, fees, per trade). A number passes if:

1. a date or lone year (2004-08-19, Aug 19, 2004, 2004년 8월) is the period's start or end, to
   the precision written ("the 2008 crash" fails);
2. a unit naming its quantity matches it: points (pp, %p) the excess over buy-and-hold, years the
   period's length, days/bars/periods a parameter; `x` nothing (no multiple is computed);
3. else it rounds the value of the nearest label *group* of its sentence (left or right, not
   behind another number, at most `WINDOW` words away; labels joined by spaces, and, or, / or a
   comma form a group; a comma, semicolon, dash, parenthesis or "which", "than", "versus" in
   between costs `BREAK` words; a tie takes both; "by 82.7%" after beat/lagged means the excess;
   a $ amount skips labels of no money), in a compatible unit (% a percentage or points);
4. with no label nearby, exactly one value among the facts of its unit rounds to it (bare:
   ratios, counts, parameters): two facts of different value make it ambiguous, and it fails;
   a `strict` sheet (the narrative report's) has no such rule: an unlabelled number fails, and
   a sentence must also pass the lenient reading (both bindings of a parameter name agree);
5. or it is one of the user's own request numbers, unlabelled, by a foreign label, or by a
   metric label the request gave it too.

A rounding is within half a unit of the last digit written and `MAX_RELATIVE_ERROR` of the value
(405% for 404.99, 0.8 for 0.76 pass, 1 for 0.76 fails; unlabelled `UNLABELLED_RELATIVE_ERROR`: no
bare "3" for a Sortino of 2.63); an explicit sign must agree (+30.5% is no drawdown of -30.5%).
A sentence naming buy-and-hold must not claim the wrong direction (a negation, buy-and-hold as
subject, "outperformed by" or "a lag of buy-and-hold" flip the verb; a bare comparative is read
too: "buy-and-hold was lower" says the strategy beat it); nor a loss the facts lack ("resulted in
a loss" for a positive return, or of trades when every trade won). Word numbers are not
checked. `covers` names the `SECTIONS` a report leaves out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

SECTIONS: dict[str, str] = {  # every report covers these; the template in this order
    "setup": "the strategy, its parameters, the symbol and the period",
    "benchmark": "the total return against buy-and-hold: beat or lagged, by how many points",
    "risk": "the risk: max drawdown and the Sharpe or Sortino ratio",
    "trading": "the trading: number of trades, win rate and exposure",
    "caveat": "one caveat (past performance, costs, one symbol, few trades)",
}
EXCESS, LENGTH, FOREIGN = "vs buy-and-hold", "length", "foreign"
"""Facts derived here (the excess return in points, the period in years); the foreign label."""
_NO_PARAMS, _MONEY = frozenset(["param:*"]), frozenset(["initial cash", "final equity", FOREIGN])
WINDOW, BREAK = 8, 3
MAX_RELATIVE_ERROR, UNLABELLED_RELATIVE_ERROR = Decimal("0.2"), Decimal("0.05")

# name | section | unit | its regex alternatives, separated by ";" (longest first); a leading
# ">" marks a label of the number after it only, "<" of the number before it only.
# Units: % percent, $ money, "" ratio or count, pp points, - not a fact (word lists).
_VOCABULARY = r"""
bh | - | - | buy[- ]?(?:and|&|n)[- ]?hold(?:ing)?(?:'s)?
beat | - | - | beat(?:s|ing|en)?; outperform(?:ed|s|ing)?; ahead of; exceed(?:ed|s|ing)?; topped;
    surpass(?:ed|es|ing)?; outpac(?:ed|es|ing)?; better than; more effective; superior to;
    (?:higher|greater|bigger|larger) than; (?:did|do|does|perform(?:s|ed)?) better; above;
    앞섰; 앞서; 상회; 보다 높;
    (?:was|is|were) (?:\w+ly |much |far )?(?:higher|better|greater|stronger)(?= *[,.:!?)\x3b]| *$)
lag | - | - | lag(?:ged|s|ging)?; trail(?:ed|s|ing)?; underperform(?:ed|s|ing)?; behind; short of;
    fell short; shortfall; worse than; less effective; inferior to; (?:lower|smaller) than;
    (?:did|do|does|perform(?:s|ed)?) worse; below; 뒤처; 하회; 못 미; 보다 낮;
    (?:was|is|were) (?:\w+ly |much |far )?(?:lower|worse|weaker|smaller)(?= *[,.:!?)\x3b]| *$)
total return | benchmark | % | (?:total |net |overall )?returns?; returned; returning; strategy's;
    gain(?:ed|s)?; profit; earned; lost; loss; 총 ?수익률; 수익률; 수익
buy-and-hold return | benchmark | % | returns? (?:of|from) (?:a |the |simply |just )?{bh};
    {bh}(?: (?:benchmark|strategy|baseline|approach)(?:'s)?)?(?: (?:total )?returns?)?; benchmark;
    passive(?: holding)?; the market; 매수 ?후 ?보유(?: 수익률)?; 바이 ?앤 ?홀드
CAGR | benchmark | % | CAGR; compound(?:ed)? annual(?: growth)?(?: rate)?;
    annuali[sz]ed(?: returns?)?; annual(?: returns?| growth)?; <per year; <a year; yearly;
    연평균(?: 수익률)?; 연환산(?: 수익률)?
Sharpe ratio | risk | | Sharpe(?: ratio)?; 샤프(?: 지수| 비율)?
Sortino ratio | risk | | Sortino(?: ratio)?; 소르티노(?: 지수| 비율)?
max drawdown | risk | % | (?:max(?:imum)?|largest|biggest|worst|deepest) draw[- ]?downs?;
    draw[- ]?downs?; peak[- ]to[- ]trough(?: (?:decline|loss|drop|fall))?;
    loss from (?:the |its )?peak; 최대 ?낙폭; 낙폭; MDD
trades | trading | | trades; trade count; trade; round[- ]trips?; transactions; <times;
    거래 ?횟수; 거래; (?<=\d)\s?(?:회|번|건)
win rate | trading | % | win(?:ning)? (?:rate|ratio|percentage); hit rate; success rate;
    winning(?: trades)?; winners; profitable(?: trades)?; won; wins; 승률
exposure | trading | % | (?:market )?exposure; exposed(?: to the market)?; time in (?:the )?market;
    (?:invested )?in the market; invested; held (?:a )?positions?; 노출(?:도)?; 시장 참여(?:율)?
initial cash | setup | $ | initial (?:cash|capital|equity|investment);
    starting (?:cash|capital|equity|balance); >start(?:ed|ing)? with; initial; capital; 초기 자본;
    초기 자금; 원금
final equity | setup | $ | final (?:equity|value|balance|capital); ending (?:equity|value|balance);
    >end(?:ed|ing)? (?:with|at); >grew to; >into; final; 최종 자산; 최종
vs buy-and-hold | benchmark | pp | percentage points?; points?; difference; gap; shortfall;
    excess(?: return)?; 차이; beat(?:s|ing)?; outperform(?:ed|s|ing)?; lag(?:ged|s|ging)?;
    trail(?:ed|s|ing)?; underperform(?:ed|s|ing)?; 앞섰; 뒤처
indicators | - | - | parameters?; settings?; lookbacks?; windows?; cross(?:over|ing)?; SMAs?;
    EMAs?; MAs?; moving averages?; RSI; MACD; Bollinger(?: bands?)?; bands?; Donchian; channels?;
    signal(?: line)?; thresholds?; entry; exit; oversold; overbought; 이동평균; 파라미터; 매개변수
foreign | - | - | limits?; targets?; stop[- ]loss(?:es)?; take[- ]profit; commissions?; fees?;
    costs?; slippage; inflation; risk[- ]free; volatility; beta; alpha; Calmar; profit factor;
    expectancy; average (?:trade|win|loss|gain); median; per trade; leverage; position size;
    budget; 손절; 목표; 수수료; 변동성
caveat | - | - | past (?:performance|results); no(?:t a)? guarantee;
    future (?:results|performance); in[- ]sample; overfit\w*; hypothetical; slippage;
    commissions?; costs; fees; (?:very |too )?few (?:trades|outcomes|data points); too few;
    (?:a single|one|only one|only 1) trade; extrapolat\w*; small (?:sample|number of trades);
    sample size; limited (?:number|sample|data);
    (?:not|less|un)[- ]?reliable; statistically; not indicative; live trading;
    (?:one|a single|single|only one) (?:symbol|asset|stock|market|instrument|period);
    never (?:traded|entered); did not trade; no trades; 과거; 보장; 수수료; 슬리피지
breaks | - | - | which; while; whereas; but; although; though; versus; vs; against; compared; than
"""


def _vocabulary() -> dict[str, tuple[str, str, dict[str, str]]]:
    """name -> (section, unit, {side: regex alternation}); {bh} {beat} {lag} filled in."""
    out: dict[str, tuple[str, str, dict[str, str]]] = {}
    for block in re.split(r"\n(?=\S)", _VOCABULARY.strip()):
        name, section, unit, first = (p.strip() for p in block.split("|", 3))
        lines = [first]
        for key, (_, _, alts) in out.items():
            lines = [line.replace("{" + key + "}", alts[""]) for line in lines]
        sides: dict[str, list[str]] = {}
        for word in filter(None, (w.strip() for w in " ".join(lines).split(";"))):
            side = word[0] if word[0] in "<>" else ""
            sides.setdefault(side, []).append(word.lstrip("<>"))
        out[name] = (section, unit, {side: "|".join(words) for side, words in sides.items()})
    return out


def _words(alternation: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z])(?:{alternation})(?![A-Za-z])", re.I)


_VOCAB = _vocabulary()
_METRICS = {k: (s, u) for k, (s, u, _) in _VOCAB.items() if s != "-"}
_METRIC_RES = [(_words(a), frozenset([k]), d) for k in _METRICS for d, a in _VOCAB[k][2].items()]
_FOREIGN_RE, _CAVEAT = _words(_VOCAB["foreign"][2][""]), _words(_VOCAB["caveat"][2][""])
_BH = _VOCAB["bh"][2][""]
_BH_RE = _words(_BH + "|benchmark|(?<!in )the market|매수 ?후 ?보유")
_CLAIMS = _words(
    r"best|impressive|excellent|exceptional|outstanding|remarkabl[ey]|superb|stellar|spectacular|"
    r"competitors?|competition|peers|industry|exponential(?:ly)?|(?<!not )(?<!no )"
    r"guarantee[sd]?|always|proven|reliabl[ey]|consistent(?:ly)?|safe|success(?:ful(?:ly)?)?|"
    r"advanced|sophisticated|valuable|most (?:profitable|successful|effective|valuable)|"
    r"(?:highly|very|extremely|hugely) (?:profitable|lucrative)"
)
"""Claims no fact supports (praise, guarantees, rivals): a sentence making one is rejected."""
_DIRECTION = _words(f"(?P<b>{_VOCAB['beat'][2]['']})|{_VOCAB['lag'][2]['']}")
_BREAKS = re.compile(rf"[,;)]|\s[-–—]\s|[—–]|\b(?:{_VOCAB['breaks'][2]['']})\b", re.I)
_NEGATION = re.compile(r"(?:\bnot|n't|never|failed to|unable to|못|않)\W*(?:\w+\W+){0,2}$", re.I)
_LOSS_CLAIM = re.compile(
    r"\b(?:resulted in|ended (?:in|with)|made|produced|posted|was|had) (?:a |an )?"
    r"(?:overall |net )?loss(?:es)?\b|\blost (?:money|\w+ (?:money|capital))|"
    r"손실(?:을|로|이었|이 났)",
    re.I,
)
"""A sentence saying the strategy as a whole lost money (not a drawdown's "peak-to-trough loss")."""
_DIFFERENCE = re.compile(r"\s*(?:more|less|higher|lower|greater|smaller|better|worse)\s+than", re.I)
_CONNECTOR = re.compile(r"\s*(?:,|/|&|and|or|및|과|와)?\s*(?:which|that)?\s*", re.I)
_WORD = re.compile(r"[A-Za-z가-힣0-9]+")
_MONTHS = {m: i for i, m in enumerate(re.findall("...", "janfebmaraprmayjunjulaugsepoctnovdec"), 1)}
_MON = rf"(?P<mon>{'|'.join(_MONTHS)})[a-z]*\.?"
_DATES = [
    re.compile(p, re.I)
    for p in (
        r"(?<!\d)(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})(?!\d)",
        rf"\b{_MON}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b",
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MON},?\s+(?P<y>\d{{4}})\b",
        rf"\b{_MON},?\s+(?P<y>\d{{4}})\b",
        r"(?P<y>\d{4})년\s*(?P<m>\d{1,2})월(?:\s*(?P<d>\d{1,2})일)?",
    )
]
_NUM = re.compile(
    r"(?<![A-Za-z0-9_.])(?P<sign>[-−+])?(?P<cur>\$)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?!\d)"
    r"(?P<scale>[kKM](?![A-Za-z])|\s(?:million|thousand)\b)?"
    r"(?P<unit>\s?(?:%p|%\s?(?:포인트|points?)|pp\b|percentage[- ]points?|퍼센트 ?포인트|%|"
    r"percent\b|퍼센트|dollars?\b|USD\b|달러)|x\b|배|[- ]?(?:years?|yrs?)\b|년|"
    r"[- ]?(?:days?|bars?|periods?|sessions?|weeks?|months?|hours?|candles?|minutes?)\b|일)?"
)
_SENTENCE_END = re.compile(r"(?<=[.!?。])[\"')\]]*\s+|\n+")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|vs|etc|approx|incl|no|fig|inc)|\b[A-Z])\.$", re.I)


@dataclass(frozen=True)
class Fact:
    """A number prose may cite: key, value (None: n/a), unit."""

    key: str
    value: Decimal | None
    unit: str  # "%", "$", "" (ratio, count), "pp" (points), "y" (years), "param"


@dataclass(frozen=True)
class NumberCheck:
    """The verdict on one number of the prose."""

    text: str
    ok: bool
    fact: str | None  # the fact it matched ("period:start" for a date), or None
    why: str  # how it was judged, or why it was rejected


@dataclass(frozen=True)
class _Span:
    """A number, or (with `keys`) a label, found in a sentence."""

    start: int
    end: int
    text: str = ""
    value: Decimal | None = None
    sign: str = ""
    unit: str = ""
    when: tuple[int, ...] | None = None  # a date or a year: (y,), (y, m), (y, m, d)
    keys: frozenset[str] = frozenset()  # a label's facts (never empty); a number has none
    side: str = ""  # ">": labels only a number after it, "<": only one before it


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(re.sub(r"[$,%\s]", "", text))
    except InvalidOperation:
        return None


def _period(facts: dict[str, str]) -> list[date]:
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)", facts.get("period", ""))
    return [date.fromisoformat(d) for d in m.groups()] if m else []


def derived_facts(facts: dict[str, str]) -> dict[str, tuple[str, Decimal]]:
    """(text, value) of the excess over buy-and-hold (of the rounded returns) and the length."""
    out: dict[str, tuple[str, Decimal]] = {}
    ret, bh = (_decimal(facts.get(k, "")) for k in ("total return", "buy-and-hold return"))
    if ret is not None and bh is not None:
        d = ret - bh
        verb = "beat it by" if d > 0 else "lagged it by" if d < 0 else "matched it,"
        out[EXCESS] = (f"{verb} {abs(d):,.1f} percentage points", d)
    if period := _period(facts):
        years = (Decimal((period[1] - period[0]).days) / Decimal("365.25")).quantize(Decimal("0.1"))
        out[LENGTH] = (f"{years} years", years)
    return out


def extend_facts(facts: dict[str, str]) -> dict[str, str]:
    """`backtest_facts` plus the derived facts, which models may cite too."""
    return {**facts, **{k: text for k, (text, _) in derived_facts(facts).items()}}


def _unit(raw: str | None, cur: bool) -> str:
    u = (raw or "").strip(" -").lower()
    if cur or u in ("dollar", "dollars", "usd", "달러"):
        return "$"
    if u in ("%", "percent", "퍼센트", "x", "배"):
        return "x" if u in ("x", "배") else "%"
    if u.startswith(("%", "pp", "percentage", "퍼센트")):
        return "pp"
    return "y" if u.startswith(("year", "yr", "년")) else "w" if u else ""


def _numbers(text: str) -> list[_Span]:
    """Dates first (their digits are no other number), then every other number."""
    out: list[_Span] = []
    for pat in _DATES:
        for m in pat.finditer(text):
            if not any(n.start < m.end() and m.start() < n.end for n in out):
                g = m.groupdict()
                month = int(g.get("m") or 0) or _MONTHS.get((g.get("mon") or "")[:3].lower(), 0)
                day = int(g.get("d") or 0) if month else 0
                when = (int(g["y"]), month, day)[: 1 + bool(month) + bool(day)]
                out.append(_Span(m.start(), m.end(), m.group(), None, when=when))
    dates = list(out)
    for m in _NUM.finditer(text):
        if any(n.start < m.end() and m.start() < n.end for n in dates):
            continue
        value = Decimal(("0" if m["num"][0] == "." else "") + m["num"].replace(",", ""))
        if scale := (m["scale"] or "").strip().lower():
            value = value.scaleb(3 if scale in ("k", "thousand") else 6)
        unit, sign = _unit(m["unit"], bool(m["cur"])), (m["sign"] or "").replace("−", "-")
        year = m["num"].isdigit() and not (sign or m["cur"] or scale) and 1900 <= value <= 2100
        if year and unit in ("", "w", "y"):  # "2013", "2013년", "the 2004-2013 period"
            out.append(_Span(m.start(), m.end(), m.group(), value, when=(int(value),)))
        else:
            out.append(_Span(m.start(), m.end(), m.group().strip(), value, sign, unit))
    return sorted(out, key=lambda n: n.start)


def cut_sentences(text: str) -> tuple[list[str], str]:
    """Finished sentences (and lines) and the unfinished rest: "0.76", "e.g.", "2. " end none."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        piece = text[start : m.start()]
        if re.fullmatch(r"\s*\d{1,2}\.", piece) and "\n" not in m.group():
            continue  # "2. " opens a list item
        if "\n" in m.group() or not _ABBREVIATION.search(piece):
            out.append(text[start : m.start()].strip())
            start = m.end()
    return [s for s in out if s], text[start:]


def split_sentences(text: str) -> list[str]:
    done, rest = cut_sentences(text)
    return [*done, rest.strip()] if rest.strip() else done


def _rounds_to(n: _Span, f: Fact, tolerance: Decimal = MAX_RELATIVE_ERROR) -> bool:
    """Is `n` as written a rounding of the fact's value, with an agreeing explicit sign?"""
    if f.value is None or n.value is None:
        return False
    if (n.sign == "-" and f.value > 0) or (n.sign == "+" and f.value < 0):
        return False
    exp = n.value.as_tuple().exponent
    half = Decimal(5).scaleb((exp if isinstance(exp, int) else 0) - 1)
    err, fv = abs(abs(f.value) - n.value), abs(f.value)
    return err <= half and (fv == 0 or err <= tolerance * fv)


def _compatible(unit: str, fact: str, labelled: bool) -> bool:
    if unit == "%":
        return fact in ("%", "pp") or (labelled and fact == "param")
    if unit in ("$", "pp", "y"):
        return fact == unit
    if unit in ("w", "x"):
        return unit == "w" and fact == "param"
    return labelled or fact in ("", "param")


class FactSheet:
    """The facts of one backtest (and the user's request numbers), parsed for checking prose."""

    def __init__(self, facts: dict[str, str], request: str = "", *, strict: bool = False) -> None:
        self.facts, self.strict = extend_facts(facts), strict  # strict: no rule 4 (unlabelled)
        self.strategy, self.symbol = facts.get("strategy", ""), facts.get("symbol", "")
        derived = derived_facts(facts)
        self.values: dict[str, Fact] = {}
        for key, (_, unit) in _METRICS.items():
            value = derived[key][1] if key in derived else _decimal(facts.get(key, "n/a"))
            self.values[key] = Fact(key, value, unit)
        if LENGTH in derived:
            self.values[LENGTH] = Fact(LENGTH, derived[LENGTH][1], "y")
        found = re.findall(r"([^=,]+)=([^,]*)", facts.get("parameters", ""))
        self.params: dict[str, str] = {k.strip(): v.strip() for k, v in found}
        for name, text in self.params.items():
            self.values[f"param:{name}"] = Fact(f"param:{name}", _decimal(text), "param")
        self.period = _period(facts)
        self._label_res = self._compile_labels()
        bound = [b for s in split_sentences(request) for b in self._bound(s)]
        self._request = [(n.value, keys) for n, keys in bound if n.value is not None]
        self._lenient = FactSheet(facts, request) if strict else self

    def _compile_labels(self) -> list[tuple[re.Pattern[str], frozenset[str], str]]:
        params = frozenset(f"param:{p}" for p in self.params)
        out = [*_METRIC_RES, (_FOREIGN_RE, frozenset([FOREIGN]), "")]
        for p in self.params:
            name = re.escape(p).replace("_", "[ _-]?")
            pattern = name if len(p) > 2 else rf"{name}(?=\s*[=:])"
            out.append((_words(pattern), frozenset([f"param:{p}"]), ""))
        names = f"|{re.escape(self.strategy)}" if self.strategy else ""
        out.append((_words(_VOCAB["indicators"][2][""] + names), params or _NO_PARAMS, ""))
        return out

    def _labels(self, text: str, numbers: list[_Span]) -> list[_Span]:
        """Label hits, the longest where they overlap; on one span the more specific keys."""
        res = self._label_res
        hits = [
            _Span(m.start(), m.end(), keys=k, side=d) for r, k, d in res for m in r.finditer(text)
        ]
        hits.sort(key=lambda h: (h.start, h.start - h.end))
        out: list[_Span] = []
        for h in hits:
            if any(n.start < h.end and h.start < n.end for n in numbers):
                continue
            if out and h.start < out[-1].end:
                if (h.start, h.end) == (out[-1].start, out[-1].end) and h.keys < out[-1].keys:
                    out[-1] = h
                continue
            out.append(h)
        return out

    def _bound(self, sentence: str) -> list[tuple[_Span, frozenset[str] | None]]:
        """Each number of one sentence with the label group binding it (None: unlabelled)."""
        nums = _numbers(sentence)
        items = sorted([*nums, *self._labels(sentence, nums)], key=lambda i: i.start)
        out: list[tuple[_Span, frozenset[str] | None]] = []
        last: tuple[int, frozenset[str]] | None = None  # the previous number's binding
        for i, item in enumerate(items):
            if not item.keys:
                left = _side(sentence, items, i, -1, self.strict)
                right = _side(sentence, items, i, 1, self.strict)
                before = sentence[: item.start]
                if re.search(r"\bby\s*$", before) and _DIRECTION.search(before):
                    left = (0, frozenset([EXCESS]))
                elif _DIFFERENCE.match(sentence, item.end):  # "55.2% less than": a difference
                    left, right = (0, frozenset([EXCESS])), None
                elif left is None and i and not items[i - 1].keys and last:  # "of 0.76 and 1.49"
                    left = last if _CONNECTOR.fullmatch(before[items[i - 1].end :]) else None
                sides = [s for s in (left, right) if s is not None]
                best = min((d for d, _ in sides), default=None)
                keys = frozenset().union(*(k for d, k in sides if d == best)) if sides else None
                last = (best, keys) if best is not None and keys else None
                out.append((item, keys))
        return out

    def _judge(self, n: _Span, keys: frozenset[str] | None) -> NumberCheck:
        if n.when is not None:
            for name, day in zip(("start", "end"), self.period, strict=False):
                if n.when == (day.year, day.month, day.day)[: len(n.when)]:
                    return NumberCheck(n.text, True, f"period:{name}", "a date of the period")
            if n.value is None:
                return NumberCheck(n.text, False, None, "a date that is not the period's")
        labelled = keys is not None and n.unit not in ("pp", "y", "w", "x")
        pool = [f for k, f in self.values.items() if k in (keys or ())] if labelled else None
        hits = [
            f
            for f in (self.values.values() if pool is None else pool)
            if _compatible(n.unit, f.unit, labelled)
            and _rounds_to(n, f, MAX_RELATIVE_ERROR if labelled else UNLABELLED_RELATIVE_ERROR)
        ]
        by_unit = n.unit in ("pp", "y", "w")  # "117.1 points", "8.5 years", "20 days": labelled
        unique = (by_unit or not self.strict) and len({abs(f.value or 0) for f in hits}) == 1
        if hits and (labelled or unique):
            return NumberCheck(n.text, True, hits[0].key, "labelled" if labelled else "unique")
        metric = (keys or frozenset()) - {FOREIGN}
        for value, asked in self._request:
            if value == n.value and (not labelled or not metric or (asked or set()) & metric):
                return NumberCheck(n.text, True, None, "the user's own number")
        if n.when is not None:
            why = "a year that is not the period's start or end"
        elif hits:
            why = "no label nearby" + ("" if self.strict else " and several facts match")
        elif labelled and metric:
            why = "not the " + " or ".join(sorted(metric))
        else:
            why = "labelled by a quantity the facts do not have" if labelled else "not a fact"
        return NumberCheck(n.text, False, None, why)

    def direction(self, sentence: str) -> bool | None:
        """What a sentence says of the strategy vs buy-and-hold: True beat, False lagged, None."""
        said = self.directions(sentence)
        return next(iter(said)) if len(said) == 1 else None

    def directions(self, sentence: str) -> set[bool]:
        """Every claim a sentence makes of the strategy vs buy-and-hold (True: it beat)."""
        said = set()
        for m in _DIRECTION.finditer(sentence) if _BH_RE.search(sentence) else ():
            before, after = sentence[: m.start()], sentence[m.end() :]
            subject = re.search(
                rf"(?:^|[,;:])\W*(?:so |and )?(?:the )?"
                rf"(?:{_BH}|benchmark|(?:simply |just )?holding)(?:[^\w,;:]+[\w.%]+){{0,3}}\W*$",
                before,
                re.I,
            )
            passive = re.match(r"\s+by\s+(?:a\s+|the\s+)?(?:buy|benchmark)", after, re.I)
            passive = passive or re.match(rf"\s+of\s+(?:the\s+)?(?:{_BH}|benchmark)", after, re.I)
            negated = _NEGATION.search(before)
            said.add((m["b"] is not None) ^ bool(negated) ^ bool(subject) ^ bool(passive))
        return said

    def sentence_problems(self, sentence: str) -> tuple[list[NumberCheck], list[str]]:
        """The verdicts on a sentence's numbers and why it cannot stand (empty: it can)."""
        sentence = re.sub(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+", "", sentence)  # a list item's marker
        checks = [self._judge(n, k) for n, k in self._bound(sentence)]
        problems = [f"{c.text}: {c.why}" for c in checks if not c.ok]
        if self.strict:  # what passes strictly passes the lenient reading too
            lenient = self._lenient.sentence_problems(sentence)[1]
            problems += [p for p in lenient if p not in problems]
            return checks, problems
        excess, said = self.values[EXCESS].value, self.direction(sentence)
        if said is not None and excess and said != (excess > 0):
            problems.append(f"it says the strategy {'beat' if said else 'lagged'} buy-and-hold")
        elif len(self.directions(sentence)) > 1:
            problems.append("it says both that the strategy beat and that it lagged buy-and-hold")
        if (loss := self._wrong_loss(sentence)) is not None:
            problems.append(loss)
        if (claim := _CLAIMS.search(sentence)) and not re.search(
            r"\b(?:not|un)\W*$", sentence[: claim.start()]
        ):
            problems.append(f"{claim.group()!r}: a claim no fact supports")
        return checks, problems

    def _wrong_loss(self, sentence: str) -> str | None:
        """Why a sentence's loss is not the facts' ("resulted in a loss" for a +618.9% return,
        or for a single trade that won), or None. Losing trades are no loss of the strategy:
        a loss said of trades is wrong only when every trade won."""
        loss = _LOSS_CLAIM.search(sentence)
        if loss is None or _NEGATION.search(sentence[: loss.start()]):
            return None
        if re.search(r"\btrades?\b|\bof them\b|거래", sentence[: loss.start()][-60:], re.I):
            won = self.values["win rate"].value
            return f"{loss.group()!r}: every trade won" if won == 100 else None
        gained = self.values["total return"].value
        if gained is not None and gained > 0:
            return f"{loss.group()!r}: the total return is +{gained}%, not a loss"
        return None

    def is_caveat(self, sentence: str) -> bool:
        """Does the sentence state a caveat (past performance, costs, few trades, one symbol)?"""
        return bool(_CAVEAT.search(sentence))

    def check(self, text: str) -> list[NumberCheck]:
        """The verdict on every number of `text`."""
        return [c for s in split_sentences(text) for c in self.sentence_problems(s)[0]]

    def section_of(self, sentence: str) -> str | None:
        """The section a sentence is mostly about, or None: the facts its numbers cite count
        3, a label word without a number 1, a caveat phrase 3."""
        score = dict.fromkeys(SECTIONS, 0)
        for c in self.sentence_problems(sentence)[0]:
            if c.ok and c.fact:
                setup = c.fact.startswith(("param:", "period:")) or c.fact == LENGTH
                section = "setup" if setup else _METRICS.get(c.fact, ("",))[0]
                score[section] += 3 if section in score else 0
        for label in self._labels(sentence, _numbers(sentence)):
            for key in label.keys:
                section = "setup" if key.startswith("param:") else _METRICS.get(key, ("",))[0]
                if section in score:
                    score[section] += 1
        score["setup"] += self.symbol in sentence
        score["caveat"] += 3 * len(_CAVEAT.findall(sentence))
        best = max(score, key=lambda s: score[s])
        return best if score[best] else None


def _side(
    text: str, items: list[_Span], i: int, step: int, alone: bool = False
) -> tuple[int, frozenset[str]] | None:
    """The nearest label group on one side of items[i] (a number) and its distance in words;
    a label of the wrong side, or (for a $ amount) of no money fact, is passed over. `alone`
    (strict sheets): a parameter's own name binds by itself ("a lower period (25)": the period)."""
    num, wrong = items[i], ">" if step > 0 else "<"

    def usable(it: _Span) -> bool:
        return bool(it.keys) and it.side != wrong and (num.unit != "$" or bool(it.keys & _MONEY))

    j = i + step
    while 0 <= j < len(items) and items[j].keys and not usable(items[j]):
        j += step
    if not 0 <= j < len(items) or not items[j].keys:
        return None
    near = items[j]
    gap = text[near.end : num.start] if step < 0 else text[num.end : near.start]
    breaks = len(_BREAKS.findall(gap)) + (step > 0 and "(" in gap)
    dist = len(_WORD.findall(gap)) + BREAK * breaks
    if dist > WINDOW:
        return None
    keys, prev, j = set(near.keys), near, j + step
    if alone and len(near.keys) == 1 and next(iter(near.keys)).startswith("param:"):
        return dist, near.keys
    while 0 <= j < len(items) and usable(items[j]):
        between = text[items[j].end : prev.start] if step < 0 else text[prev.end : items[j].start]
        if not _CONNECTOR.fullmatch(between):
            break
        keys |= items[j].keys
        prev, j = items[j], j + step
    return dist, frozenset(keys)


def unsupported_numbers(text: str, sheet: FactSheet) -> list[str]:
    """The numbers of `text` the label-aware check rejects, as written."""
    return [c.text for c in sheet.check(text) if not c.ok]


def covers(report: str, facts: dict[str, str] | FactSheet) -> list[str]:
    """The `SECTIONS` a report leaves out (empty: it covers them all)."""
    sheet = facts if isinstance(facts, FactSheet) else FactSheet(facts)
    lenient = covers(report, sheet._lenient) if sheet.strict else []  # both readings cover it
    low, v = report.lower(), sheet.values
    cited = {c.fact for c in sheet.check(report) if c.ok} | {k for k in v if v[k].value is None}
    params = all(
        f"param:{p}" in cited if v[f"param:{p}"].value is not None else t.lower() in low
        for p, t in sheet.params.items()
    )
    period = all(f"period:{p}" in cited for p in ("start", "end")[: len(sheet.period)])
    named = sheet.strategy.lower() in low and sheet.symbol.lower() in low
    excess = v[EXCESS].value
    said = {sheet.direction(s) for s in split_sentences(report)}
    direction = (excess > 0) in said if excess else bool(re.search(r"match|in line|same", low))
    compared = excess is None or (direction and "buy-and-hold return" in cited)
    done = {
        "setup": named and params and period,
        "benchmark": "total return" in cited and compared,
        "risk": "max drawdown" in cited and bool({"Sharpe ratio", "Sortino ratio"} & cited),
        "trading": {"trades", "win rate", "exposure"} <= cited,
        "caveat": bool(_CAVEAT.search(report)),
    }
    return [s for s in SECTIONS if not done[s] or s in lenient]
