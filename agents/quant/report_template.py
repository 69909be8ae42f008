"""The narrative report's text made in code: the template report, what the model is handed for
each section, and the template text a section still lacks after the model's prose.

Every number here is copied from the facts (`backtest_facts` plus `narration.extend_facts`) and
every interpretation (beat or lagged, how deep a drawdown, how good a Sharpe ratio, how many
trades won) is computed here, never by a model. `template_sections` is a full report on its own,
one sentence or two per `narration.SECTIONS`; `brief` is one section's facts, with those
interpretations, and the instruction the model narrates them by; `filler` is what the template
adds to a section the model's prose left partly or wholly uncovered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from agents.quant.narration import (
    EXCESS,
    LENGTH,
    SECTIONS,
    FactSheet,
    extend_facts,
    split_sentences,
)

FEW_TRADES = 10  # below this many trades the template warns of the statistics' small sample
_INF = Decimal("Infinity")
_SEVERITY = ((5, "shallow"), (15, "moderate"), (30, "substantial"), (50, "severe"), (_INF, "huge"))
_QUALITY = ((0, "negative"), (Decimal("0.5"), "weak"), (1, "modest"), (2, "good"), (_INF, "strong"))
_WINS = (
    (45, "most of its trades lost money"),
    (50, "slightly fewer than half of its trades made money"),
    (Decimal("50.01"), "exactly half of its trades made money"),
    (Decimal("55.01"), "slightly more than half of its trades made money"),
    (_INF, "most of its trades made money"),
)
FILLERS = {
    "trades": "Its trade count was {trades}.",
    "win rate": "Its win rate was {win rate}.",
    "exposure": "It was in the market {exposure} of the time.",
    "max drawdown": "Its max drawdown was {max drawdown}.",
    "Sharpe ratio": "Its Sharpe ratio was {Sharpe ratio}.",
}
"""One fact a section still lacks, where the model's prose covered the rest of that section."""
SECTION_FACTS = {
    "risk": ("max drawdown", "Sharpe ratio"),
    "trading": ("trades", "win rate", "exposure"),
}
NARRATIVE_SYSTEM = (
    "You write one part of a short, factual report on a backtest. Use ONLY the facts given: "
    "copy each number exactly as written in the facts, right after its own label, and say what "
    "the facts say it means. Never compute, estimate or invent any other number, date, "
    "comparison, praise or advice. Write full sentences of plain prose about the strategy: no "
    "markdown, lists, headings, 'label: value' lines or greetings."
)
"""The system prompt of every section's draft (graphs/narrative_report.py)."""
TASKS = {
    "setup": "one sentence naming the strategy, its parameters with their values, the symbol and "
    "the period (both dates)",
    "benchmark": "one or two sentences comparing the strategy's total return with the "
    "buy-and-hold return; {verdict}",
    "risk": "one or two sentences on the risk: the max drawdown and the Sharpe ratio, and what "
    "they mean",
    "trading": "one or two sentences on the trading: the number of trades, the win rate and the "
    "exposure (the share of time in the market)",
    "caveat": "one sentence with one caveat about this backtest, such as {caveat}",
}
"""What the model is asked to write for each section (its facts come with it)."""


def _grade(value: Decimal, scale: Iterable[tuple[Any, str]]) -> str:
    return next(word for limit, word in scale if value < limit)


_TONE = {  # words a reader takes as a grade, by level (0 = the mildest / worst of each scale)
    "max drawdown": (
        r"draw[- ]?downs?|peak[- ]to[- ]trough|losses|loss|\brisk\b(?![- ]adjusted)",
        (
            "shallow small minor mild limited low",
            "moderate modest",
            "substantial significant considerable large sizable",
            "severe deep heavy high serious",
            "huge massive extreme extremely enormous catastrophic",
        ),
    ),
    "Sharpe ratio": (
        r"sharpe|sortino|risk[- ]adjusted",
        (
            "negative",
            "weak poor low",
            "modest moderate fair",
            "good solid decent healthy",
            "strong excellent high superior",
        ),
    ),
    "win rate": (
        r"win(?:ning)? rate|won|winners|hit rate",
        ("low poor weak", "average moderate", "high strong good impressive"),
    ),
    "vs buy-and-hold": (
        r"buy[- ]and[- ]hold|benchmark",
        (
            "slightly marginally narrowly somewhat",
            "",
            "far significantly substantially greatly vastly dramatically massively widely",
        ),
    ),
}
_WINNERS = re.compile(
    r"(?<![\d.])(\d+)\s+(?:of (?:its|the|them|\d+) )?(?:trades? )?(?:(?:were|was) )?"
    r"(?:made money|profitable|winners|winning|won|profited|lost money|losers|losing)(?!\s+\d)",
    re.I,
)
_WRONG_SUBJECTS = re.compile(
    r"\b(?:compan(?:y|y's|ies)|investors?|the (?:quantitative )?trader|traders?|quants?\b"
    r"(?: developers?)?|portfolio manager|readers?|we|our|us)\b",
    re.I,
)
_CAVEAT_CLAIMS = re.compile(
    r"\b(?:perform(?:s|ed|ing)?|did)\s+(?:not\s+)?(?:very\s+)?(?:well|poorly|badly|strongly)\b|"
    r"\b(?:good|great|decent|moderate|poor|strong|weak|bad|solid|high|low)\s+"
    r"(?:performance|returns?|results|profits?)\b|"
    r"\b(?:performance|returns?|results)\s+(?:being|was|were|is|are)\s+(?:\w+\s+)?"
    r"(?:low|high|poor|good|weak|strong|bad|great)\b|"
    r"(?<!not )(?<!n't )\b(?:more than enough|enough to|sufficient|plenty)\b|"  # no caveat
    r"\b(?:do|does|did)\s+not\s+rest\s+on\b|\bnot\s+(?:too|very)\s+few\b|"
    r"\bsuccess\w*|\blikel(?:y|ihood)\s+(?:of|to)\s+(?:succe\w+|profit\w*|work\w*)|"
    r"\bcosts?\b[^.]*\b(?:add(?:s|ed)? to|increase|boost|improve)\w*\s+(?:the\s+)?"
    r"(?:potential\s+)?(?:returns?|profits?|gains?)",
    re.I,
)
"""What no caveat says: how the backtest did, that its sample suffices, that costs add returns."""
_INVENTED = re.compile(
    r"\b(?:times|trades?)\s+(?:a|per|each)\s+(?:day|week|month|year)\b|"  # no frequency computed
    r"\b(?:a few|several|a couple of)\s+(?:hours|days|weeks|months)\b",  # nor a short period
    re.I,
)
_UNCOMPUTED = re.compile(
    r"(?:compared (?:to|with)|relative to|versus|\bvs\b|\bthan\b)\s+(?:\w+\s+){0,4}?"
    r"(?:average|daily|monthly|median|volatility|index|inflation|risk[- ]free|peers?|"
    r"competitors?|sector|industry|S&P)\b",
    re.I,
)


def meaning_problems(sentence: str, sheet: FactSheet, section: str | None = None) -> list[str]:
    """What a sentence says that the facts contradict, beyond its numbers: a grade word at odds
    with the grade computed here ("a significant drawdown" of -1.2%, a "high" Sharpe ratio of
    0.49, "slightly below" buy-and-hold by 632.8 points), a count of winning trades that is
    not the trades times the win rate, a subject the backtest has not (a company, investors, a
    trader), and in a caveat a claim about how it performed."""
    out = _tone(sentence, sheet)
    v = sheet.values
    n, win = v["trades"].value, v["win rate"].value
    for m in _WINNERS.finditer(sentence):
        lost = re.search(r"lost|los(?:ers|ing)", m.group(), re.I)
        wins = None if n is None or win is None else round(n * win / 100)
        if wins is None or n is None or int(m[1]) != (n - wins if lost else wins):
            out.append(f"{m.group()!r}: {wins or 0} of its {n} trades made money")
    if bad := _WRONG_SUBJECTS.search(sentence):
        out.append(f"{bad.group()!r}: the backtest has no such subject")
    if section == "caveat" and (claim := _CAVEAT_CLAIMS.search(sentence)):
        out.append(
            f"{claim.group()!r}: a caveat says what the backtest cannot show, not how it did"
        )
    if invented := _INVENTED.search(sentence):
        out.append(f"{invented.group()!r}: no fact says so")
    if section != "caveat" and (other := _UNCOMPUTED.search(sentence)):
        out.append(f"{other.group()!r}: compared with a quantity no fact has")
    if re.search(rf"\b(?:named|called)\W+{re.escape(sheet.symbol)}\b", sentence, re.I):
        out.append(f"{sheet.symbol} is the symbol, not the strategy's name")
    return out


def _tone(sentence: str, sheet: FactSheet) -> list[str]:
    v, out = sheet.values, []
    dd, sharpe, win, excess = (
        v[k].value for k in ("max drawdown", "Sharpe ratio", "win rate", EXCESS)
    )
    gap = None if excess is None else (0 if abs(excess) < 5 else 1 if abs(excess) < 25 else 2)
    levels = {
        "max drawdown": None if dd is None else _levels(_SEVERITY, abs(dd)),
        "Sharpe ratio": None if sharpe is None else _levels(_QUALITY, sharpe),
        "win rate": None if win is None else 0 if win < 45 else 1 if win <= 55 else 2,
        "vs buy-and-hold": gap,
    }
    labels = {k: [m.start() for m in re.finditer(p, sentence, re.I)] for k, (p, _) in _TONE.items()}
    for word in re.finditer(r"[a-z]+", sentence.lower()):
        near = [(abs(word.start() - i), k) for k, at in labels.items() for i in at]
        for _, key in sorted(near)[:1]:
            scale = _TONE[key][1]
            grade = next((i for i, ws in enumerate(scale) if _matches(word[0], ws)), None)
            true = levels[key]
            if grade is not None and true is not None and abs(grade - true) >= 2:
                out.append(
                    f"{word[0]!r}: the {key} is {_TONE[key][1][true].split()[0] or 'medium'}"
                )
    return out


def _matches(word: str, scale_words: str) -> bool:
    """The word, or an inflection of it ("significantly", "higher")."""
    return any(
        word == w or (word.startswith(w) and word[len(w) :] in _ENDINGS)
        for w in scale_words.split()
    )


_ENDINGS = ("ly", "er", "est", "s")


def _levels(scale: Iterable[tuple[Any, str]], value: Decimal) -> int:
    return next(i for i, (limit, _) in enumerate(scale) if value < limit)


def _verdict(v: dict[str, Any]) -> str:
    """The strategy against buy-and-hold, as computed: beat, lagged, matched or "" (n/a)."""
    excess = v[EXCESS].value
    return (
        "" if excess is None else "matched" if excess == 0 else "beat" if excess > 0 else "lagged"
    )


def _benchmark(f: dict[str, str], v: dict[str, Any]) -> str:
    cagr = f" (CAGR {f['CAGR']})" if v["CAGR"].value is not None else ""
    # "was X; it lagged": "Its total return of X lagged buy-and-hold's Y" binds X to the nearer
    # "lagged buy-and-hold's" when there is no CAGR in between (the report's check refuses it)
    ret, excess = f"Its total return was {f['total return']}{cagr}", v[EXCESS].value
    if excess is None:
        return f"{ret}; it could not be compared with buy-and-hold, which was not available."
    if excess == 0:
        return f"{ret}; it matched buy-and-hold's {f['buy-and-hold return']}."
    verb, then = ("beat", "") if excess > 0 else ("lagged", ", so simply holding did better")
    return (
        f"{ret}; it {verb} buy-and-hold's {f['buy-and-hold return']} by {abs(excess):,.1f} "
        f"percentage points{then}."
    )


def _risk_words(v: dict[str, Any]) -> tuple[str, str | None]:
    dd, sharpe = v["max drawdown"].value or Decimal(0), v["Sharpe ratio"].value
    depth = f"a {_grade(abs(dd), _SEVERITY)} peak-to-trough loss" if dd else "no drawdown at all"
    return depth, None if sharpe is None else f"{_grade(sharpe, _QUALITY)} risk-adjusted returns"


def _risk(f: dict[str, str], v: dict[str, Any]) -> str:
    depth, quality = _risk_words(v)
    risk = (
        f"The max drawdown was {f['max drawdown']}, {depth}"
        if v["max drawdown"].value
        else f"There was no drawdown at all (max drawdown {f['max drawdown']})"
    )
    if quality is None:
        return risk + "; the Sharpe and Sortino ratios are n/a, with no returns to measure."
    return (
        f"{risk}, and the Sharpe ratio was {f['Sharpe ratio']} (Sortino ratio "
        f"{f['Sortino ratio']}), {quality}."
    )


def _wins(v: dict[str, Any]) -> str:
    n, win = int(v["trades"].value or 0), v["win rate"].value or Decimal(0)
    if n == 1:
        return "its only trade " + ("made" if win else "lost") + " money"
    if win in (0, 100):
        return ("every" if win else "no") + " trade made money"
    return _grade(win, _WINS)


def _caveat(n: int) -> str:
    general = (
        "This is one backtest of one symbol over one period: past performance does not guarantee"
        " future results, and live trading adds costs such as slippage that a backtest may"
        " understate."
    )
    if n == 0:
        return "As it never traded, this backtest says nothing about its rules. " + general
    if n < FEW_TRADES:
        trades = f"{n} trade{'s' if n > 1 else ''}"
        return f"With only {trades}, the statistics rest on very few outcomes. {general}"
    return general


def template_sections(facts: dict[str, str]) -> dict[str, str]:
    """The template's sentences by section; every number is copied from the facts."""
    f, v = extend_facts(facts), FactSheet(facts).values
    params = f" ({f['parameters']})" if f.get("parameters") else ""
    start, end = f["period"].split(" to ")
    years = v[LENGTH].value if LENGTH in v else None
    length = f" ({f[LENGTH]})" if years is not None and years >= 1 else ""
    setup = (
        f"{f['strategy']}{params} was backtested on {f['symbol']} from {start} to {end}{length}, "
        f"starting with {f['initial cash']} and ending with {f['final equity']}."
    )
    n = int(v["trades"].value or 0)
    if n == 0:
        trading = f"It made 0 trades, so it never entered the market (exposure {f['exposure']})."
    else:
        trades = f"{n} trade{'s' if n > 1 else ''}"
        trading = (
            f"It made {trades} with a win rate of {f['win rate']}, so {_wins(v)}, and was in the "
            f"market {f['exposure']} of the time."
        )
    texts = (setup, _benchmark(f, v), _risk(f, v), trading, _caveat(n))
    return dict(zip(SECTIONS, texts, strict=True))


def template_report(facts: dict[str, str]) -> str:
    """The whole template report: a good answer with no model involved."""
    return " ".join(template_sections(facts).values())


def brief(section: str, facts: dict[str, str]) -> tuple[list[str], str]:
    """One section's facts for the model (`label: value (what it means)`) and its task."""
    f, v = extend_facts(facts), FactSheet(facts).values
    n, verb = int(v["trades"].value or 0), _verdict(v)
    lines: list[str] = []
    task = TASKS[section]
    if section == "setup":
        keys = ["strategy", "parameters", "symbol", "period", LENGTH]
        lines = [f"{k}: {f[k]}" for k in keys if k in f]
        if "parameters" not in f:
            lines.insert(1, "parameters: none (it buys on the first bar and holds)")
    elif section == "benchmark":
        lines = [f"{k}: {f[k]}" for k in ("total return", "CAGR", "buy-and-hold return") if k in f]
        if verb in ("beat", "lagged"):
            lines.append(f"the strategy {verb} buy-and-hold by {f[EXCESS].split(' by ')[-1]}")
            say = f"say that it {verb} buy-and-hold and by how many percentage points"
        else:
            say = "say that it matched buy-and-hold" if verb else "buy-and-hold is not available"
        task = task.format(verdict=say)
    elif section == "risk":
        depth, quality = _risk_words(v)
        lines = [f"max drawdown: {f['max drawdown']} ({depth})"]
        lines.append(f"Sharpe ratio: {f['Sharpe ratio']} ({quality or 'no returns to measure'})")
    elif section == "trading" and n == 0:
        lines = ["trades: 0 (it never entered the market)", f"exposure: {f['exposure']}"]
        task = "one sentence saying that it made 0 trades and was never in the market"
    elif section == "trading":
        lines = [f"trades: {n}", f"win rate: {f['win rate']} ({_wins(v)})"]
        lines.append(f"exposure: {f['exposure']} of the time in the market")
    else:
        few = (
            f" (only {n}, so the statistics rest on very few outcomes)"
            if 0 < n < FEW_TRADES
            else ""
        )
        lines = [f"trades: {n}{few}", f"tested on: one symbol ({f['symbol']}) over one period"]
        hint = (
            "that it never traded, so the backtest says nothing about its rules"
            if n == 0
            else f"that {'a single trade is' if n == 1 else f'{n} trades are'} too few to judge it"
            if few
            else "that past performance does not guarantee future results, or that live trading "
            "adds costs such as slippage"
        )
        task = task.format(caveat=hint)
    return lines, task


def filler(section: str, sheet: FactSheet, report: str) -> str:
    """Template text for what `section` still lacks in `report`: the facts the model's prose
    left out of a partly covered section, else the section's template sentence."""
    cited = {c.fact for c in sheet.check(report) if c.ok}
    f, v, template = sheet.facts, sheet.values, template_sections(sheet.facts)[section]
    facts = SECTION_FACTS.get(section, ())
    lacking = [k for k in facts if k not in cited and v[k].value is not None]
    if 0 < len(lacking) < len(facts):
        return " ".join(FILLERS[k].format(**f) for k in lacking)
    if section == "setup" and f["strategy"].lower() in report.lower():
        return _setup_rest(sheet, report, cited) or template
    if section == "benchmark" and {"total return", EXCESS} & cited:
        return _benchmark_rest(sheet, report, cited) or template
    return template


def _setup_rest(sheet: FactSheet, report: str, cited: set[str | None]) -> str:
    """The symbol, period and parameters prose named the strategy without."""
    f, rest = sheet.facts, ""
    if sheet.symbol.lower() not in report.lower():
        rest += f" on {sheet.symbol}"
    if not {"period:start", "period:end"} <= cited:
        rest += " from {} to {}".format(*f["period"].split(" to "))
    params = [p for p in sheet.params if f"param:{p}" not in cited]
    if params:
        rest += " with " + ", ".join(f"{p}={sheet.params[p]}" for p in params)
    return f"It ran{rest}." if rest else ""


def _benchmark_rest(sheet: FactSheet, report: str, cited: set[str | None]) -> str:
    """What prose about the total return or the excess left out of the comparison."""
    f, verb = sheet.facts, _verdict(sheet.values)
    said = verb in ("beat", "lagged") and any(
        sheet.direction(s) == (verb == "beat") for s in split_sentences(report)
    )
    by = f[EXCESS].split(" by ")[-1] if EXCESS in f else ""
    if verb not in ("beat", "lagged"):
        return ""
    if "total return" not in cited:
        ret, bh = f["total return"], f["buy-and-hold return"]
        if said:
            return f"Its total return was {ret}, against buy-and-hold's {bh}."
        return f"Its total return was {ret}, so it {verb} buy-and-hold's {bh} by {by}."
    if "buy-and-hold return" not in cited:
        if said:
            return f"Buy-and-hold returned {f['buy-and-hold return']}."
        return f"That {verb} buy-and-hold's {f['buy-and-hold return']} by {by}."
    if not said:
        return f"So it {verb} buy-and-hold by {by}."
    return ""
