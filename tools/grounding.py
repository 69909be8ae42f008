"""A model's tool call checked against what the user said, before it runs.

Small models fill arguments the user never gave: measured on the tune half of
bench/chatops.py, the 0.5B sent `since="2026-12-02"` to "my usage so far" (today's date from the
system prompt), `start="2020-01-01"` to "the last close of EURUSD" (the prompt example's year),
a spec of EMA 6/26 for "the close crosses above its 6-bar SMA", and the same id twice to
`compare_backtests` for a question about one backtest. Code corrects what it can read for
certain, and leaves the rest to the tools' own validation:

- a date argument (`start`, `end`, `since`) is kept only when the user's messages state its
  year or speak of a relative time ("today", "this month", "지난 달"); otherwise it is dropped
  and the tool takes its default (all the data, everything so far);
- `compare_backtests` with one id twice is `get_backtest` of that id;
- `run_backtest` arguments that are the strategy's parameters go into `parameters`;
- `run_strategy_spec` gets the spec code drafts from the user's message when that message
  states a whole strategy (`agents.quant.drafting.draft_spec`, the strategy builder's reader),
  so the model's spec is used only for what code cannot read;
- `run_strategy_spec` for a message that names one of the runnable strategies and states no
  rule is `run_backtest` of that strategy;
- `run_strategy_spec` and `market_data` without dates get the period the message states (a
  date range, a quarter, a half, months or a year), so a model that leaves them out still
  runs what was asked; a stated window finer than years replaces the model's own dates;
- a call with a `symbol` gets the one symbol the message names ("GOOG", "bitcoin", "구글"),
  when the model left it out or wrote another.

Two calls are answered with an error before they run, so the model can call again: a backtest
id that neither the user nor a tool result gave, and a spec for a message that states no rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from langchain_core.messages.tool import ToolCall

from agents.quant.backtests import SYMBOLS, strategy_parameters
from agents.quant.corpus import STRATEGIES
from agents.quant.drafting import draft_spec

DATE_ARGS = ("start", "end", "since")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
RELATIVE = re.compile(
    r"\b(?:today|yesterday|this (?:week|month|quarter|year)|last (?:\d+ )?(?:days?|weeks?|"
    r"months?|quarters?|years?)|past (?:\d+ )?(?:days?|weeks?|months?|years?)|recent(?:ly)?|"
    r"since (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|"
    r"march|april|may|june|july|august|september|october|november|december))\b"
    r"|오늘|어제|이번\s*(?:주|달|월|분기|해)|지난\s*(?:주|달|월|분기|해)|최근|올해|작년|금년",
    re.IGNORECASE,
)


_ISO = re.compile(r"(?<!\d)((?:19|20)\d\d)-(\d\d)-(\d\d)(?!\d)")
_LONE_YEAR = re.compile(r"(?<![\d-])((?:19|20)\d\d)(?![\d-])")
_YEAR_RANGE = re.compile(
    r"(?<!\d)((?:19|20)\d\d)\s*(?:년)?\s*(?:-|–|~|to|through|until|and|부터|에서)\s*"
    r"((?:19|20)\d\d)(?!\d)"
)


_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        (
            "january jan",
            "february feb",
            "march mar",
            "april apr",
            "may",
            "june jun",
            "july jul",
            "august aug",
            "september sept sep",
            "october oct",
            "november nov",
            "december dec",
        )
    )
    for m in names.split()
}
_MONTH = r"(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_Y = r"((?:19|20)\d\d)"
_ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "last": 4,
}
_QUARTERS = (  # (pattern, group of the year, group of the quarter)
    (re.compile(rf"(?<![\w])q([1-4])\s*(?:of\s*)?'?{_Y}(?!\d)"), 2, 1),
    (re.compile(rf"(?<!\d){_Y}\s*(?:년\s*)?(?:q([1-4])|([1-4])\s*분기)(?!\w)"), 1, 2),
    (
        re.compile(r"(?<![\w])(" + "|".join(_ORDINALS) + rf")\s+quarter\s+(?:of\s+)?{_Y}(?!\d)"),
        2,
        1,
    ),
)
_HALVES = (
    (re.compile(rf"(?<![\w])h([12])\s*(?:of\s*)?{_Y}(?!\d)"), 2, 1),
    (re.compile(rf"(?<!\d){_Y}\s*(?:년\s*)?(?:h([12])(?!\w)|(상|하)\s*반기)"), 1, 2),
)
_MONTH_SPAN_EN = re.compile(
    rf"(?<![a-z]){_MONTH}\s*(?:{_Y}\s*)?(?:-|–|~|to|through|until|thru)\s*{_MONTH}\s*,?\s*{_Y}"
    r"(?!\d)"
)
_MONTH_SPAN_KO = re.compile(
    rf"(?<!\d){_Y}\s*년?\s*(?:[^\d]{{0,12}}?)\(?\s*(1[0-2]|0?[1-9])\s*월?\s*(?:-|–|~|부터|에서)"
    r"\s*(1[0-2]|0?[1-9])\s*월"
)
_MONTH_EN = re.compile(rf"(?<![a-z]){_MONTH}\s*(?:of\s*)?,?\s*{_Y}(?!\d)")
_MONTH_KO = re.compile(rf"(?<!\d){_Y}\s*년\s*(1[0-2]|0?[1-9])\s*월")
_ISO_MONTH = re.compile(r"(?<![\d-])((?:19|20)\d\d)-(0[1-9]|1[0-2])(?![\d-])")


def _month_window(year: int, first: int, last: int) -> dict[str, str]:
    """From the first day of month `first` to the last day of month `last` of `year`."""
    end = date(year + (last == 12), last % 12 + 1, 1) - timedelta(days=1)
    return {"start": date(year, first, 1).isoformat(), "end": end.isoformat()}


def _months(text: str) -> dict[str, str]:
    """A window of months the message states: a quarter ("Q4 2017", "2017년 4분기"), a half
    ("H1 2018", "2018년 상반기"), a span of months ("October to December 2017", "2017년
    10~12월") or one month ("September 2017", "2017년 9월", "2017-09")."""
    for pattern, y, q in _QUARTERS:
        if (m := pattern.search(text)) is not None:
            raw = str(m.group(q) or m.group(q + 1))
            n = _ORDINALS.get(raw) or int(raw)
            return _month_window(int(m.group(y)), 3 * n - 2, 3 * n)
    for pattern, y, h in _HALVES:
        if (m := pattern.search(text)) is not None:
            raw = m.group(h) or m.group(h + 1)
            first = 1 if raw in ("1", "상") else 7
            return _month_window(int(m.group(y)), first, first + 5)
    if (m := _MONTH_SPAN_EN.search(text)) is not None:
        a, b = _MONTHS[m.group(1)], _MONTHS[m.group(3)]
        if a <= b:
            return _month_window(int(m.group(4)), a, b)
    if (m := _MONTH_SPAN_KO.search(text)) is not None:
        a, b = int(m.group(2)), int(m.group(3))
        if a <= b:
            return _month_window(int(m.group(1)), a, b)
    for pattern in (_MONTH_EN, _MONTH_KO):
        if (m := pattern.search(text)) is not None:
            year, mo = (m.group(2), m.group(1)) if pattern is _MONTH_EN else m.groups()
            month = _MONTHS[mo] if pattern is _MONTH_EN else int(mo)
            return _month_window(int(year), month, month)
    isos = _ISO_MONTH.findall(text)
    if len(isos) == 1:
        return _month_window(int(isos[0][0]), int(isos[0][1]), int(isos[0][1]))
    return {}


def stated_window(text: str) -> dict[str, str]:
    """A period finer than whole years the message states: ISO dates or a window of months."""
    lowered = " ".join(text.lower().split())
    isos = [f"{y}-{m}-{d}" for y, m, d in _ISO.findall(lowered)]
    if len(isos) >= 2:
        return {"start": isos[0], "end": isos[1]}
    if len(isos) == 1:
        return {"start": isos[0]}
    return _months(lowered)


def period(text: str) -> dict[str, str]:
    """`start`/`end` the message states: two ISO dates, one ISO date (a start), a window of
    months (`_months`: a quarter, a half, a span of months, one month), a year range ("from
    2008 to 2010", "2008년부터 2010년까지") or one year ("in 2009", "2009년")."""
    window = stated_window(text)
    if window:
        return window
    span = _YEAR_RANGE.search(text)
    if span is not None:
        return {"start": f"{span.group(1)}-01-01", "end": f"{span.group(2)}-12-31"}
    years = sorted(set(_LONE_YEAR.findall(text)))
    if len(years) == 1:
        return {"start": f"{years[0]}-01-01", "end": f"{years[0]}-12-31"}
    return {}


_LONE_MONTH_KO = re.compile(r"(?<![\d년])\s*(1[0-2]|0?[1-9])\s*월(?!\s*\d)")
_LONE_MONTH_EN = re.compile(
    r"(?<![a-z])(?:("
    + "|".join(sorted((m for m in _MONTHS if m != "may"), key=len, reverse=True))
    + r")\.?|(?<=in |of |or |st |ly )(may))(?![a-z])"
)


def window_in_year_of(text: str, earlier: dict[str, Any]) -> dict[str, str]:
    """The period a follow-up states, where a month without its year takes the year of the
    call it follows ("그럼 11월 한 달만 보면?" after a call on 2017-06-01..2017-08-31 is
    2017-11-01..2017-11-30). {} when it states none, or a lone month follows a call without
    dates."""
    lowered = " ".join(text.lower().split())
    stated = period(lowered)
    if set(stated) == {"start", "end"}:
        return stated
    year = _YEAR.search(str(earlier.get("start") or earlier.get("end") or ""))
    months = [int(m) for m in _LONE_MONTH_KO.findall(lowered)] + [
        _MONTHS[a or b] for a, b in _LONE_MONTH_EN.findall(lowered)
    ]
    if year is None or len(set(months)) != 1:
        return {}
    return _month_window(int(year.group(1)), months[0], months[0])


_SYMBOL_NAMES = {
    **{s.lower(): s for s in SYMBOLS},
    "google": "GOOG",
    "구글": "GOOG",
    "eur/usd": "EURUSD",
    "eur usd": "EURUSD",
    "유로달러": "EURUSD",
    "유로/달러": "EURUSD",
    "btc": "BTCUSD",
    "bitcoin": "BTCUSD",
    "btc/usd": "BTCUSD",
    "비트코인": "BTCUSD",
}
_SYMBOL = re.compile(
    r"(?<![a-z])(?:"
    + "|".join(sorted(map(re.escape, _SYMBOL_NAMES), key=len, reverse=True))
    + r")(?![a-z])"
)


def symbols_named(text: str) -> list[str]:
    """The bundled symbols a message names (GOOG, EURUSD, BTCUSD, also "bitcoin", "구글")."""
    found: list[str] = []
    for m in _SYMBOL.finditer(" ".join(text.lower().split())):
        s = _SYMBOL_NAMES[m.group(0)]
        if s not in found:
            found.append(s)
    return found


SYMBOL_TOOLS = (
    "search_my_backtests",
    "top_backtests",
    "run_backtest",
    "run_strategy_spec",
    "market_data",
)


def _stated_symbol(call: ToolCall, turn: str, changes: list[str]) -> ToolCall:
    """The one symbol the message names, for a call that left it out or named another
    (measured on the fresh chat set's tune half: the 0.5B ran "a 12/26 EMA crossover on GOOG"
    with no symbol). A message naming none or several leaves the call as it is."""
    if call["name"] not in SYMBOL_TOOLS:
        return call
    named = symbols_named(turn)
    given = str(call["args"].get("symbol") or "").strip().upper()
    if len(named) != 1 or given == named[0]:
        return call
    changes.append(f"{call['name']}: symbol {named[0]} as the message says (was {given or 'none'})")
    return {**call, "args": {**call["args"], "symbol": named[0]}}


PERIOD_TOOLS = ("run_strategy_spec", "market_data")
"""Tools whose `start`/`end` a stated period fills when the model left both out."""


def _stated_period(call: ToolCall, turn: str, changes: list[str]) -> ToolCall:
    """A period the message states ("from 2006-01-01 through 2010-12-31", "2009년") given to
    a call that has neither date (measured on the fresh chat set's tune half: the 1.5B ran
    "a 12/26 EMA crossover on GOOG from 2006-01-01 through 2010-12-31" without dates); a
    window finer than years (dates, a quarter, months) replaces the model's other dates
    (measured on the second fresh set's tune half: "2017년 4분기(10~12월)" ran on all 2017)."""
    args = call["args"]
    if call["name"] not in PERIOD_TOOLS:
        return call
    stated = period(turn)
    if args.get("start") or args.get("end"):
        stated = stated_window(turn)  # finer than years: it wins over the model's dates
        given = {k: str(args.get(k) or "")[:10] for k in ("start", "end")}
        if set(stated) != {"start", "end"} or given == stated:
            return call
    if set(stated) != {"start", "end"}:
        return call
    changes.append(f"{call['name']}: the stated period {stated['start']} to {stated['end']}")
    return {**call, "args": {**args, **stated}}


ID_ARGS = ("backtest_id", "id_a", "id_b")
NO_SUCH_ID = (
    "Error: {ids} is not a backtest id from this conversation, so nothing was run. Backtest "
    "ids come from the user's message or from a tool: find them with search_my_backtests "
    "(query, symbol) or top_backtests (metric), then call again."
)
NO_RULE = (
    "Error: the user's message states no trading rule, so no strategy spec was run. To run one "
    "of the user's named strategies use run_backtest; to list them use list_my_strategies; "
    "otherwise answer without running anything."
)


@dataclass
class Grounded:
    """The calls as they will run, what was changed (for the log), and the calls answered
    with an error before they run (by call id: why)."""

    calls: list[ToolCall]
    changes: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def date_is_stated(value: Any, said: str) -> bool:
    """The user's messages state this date: its year, or a relative time the model resolved."""
    text = str(value or "")
    years = _YEAR.findall(text)
    if years and all(y in _YEAR.findall(said) for y in years):
        return True
    return bool(RELATIVE.search(said))


def _ground_dates(call: ToolCall, said: str, changes: list[str]) -> ToolCall:
    args = dict(call["args"])
    dropped = [k for k in DATE_ARGS if args.get(k) and not date_is_stated(args[k], said)]
    if not dropped:
        return call
    changes.append(
        f"{call['name']}: dropped {', '.join(f'{k}={args[k]!r}' for k in dropped)} "
        "(no such date in the user's messages)"
    )
    return {**call, "args": {k: v for k, v in args.items() if k not in dropped}}


def _one_backtest(call: ToolCall, changes: list[str]) -> ToolCall:
    args = call["args"]
    a, b = str(args.get("id_a", "")).strip(), str(args.get("id_b", "")).strip()
    if call["name"] != "compare_backtests" or not a or a != b:
        return call
    changes.append(f"compare_backtests of {a} with itself -> get_backtest")
    return {**call, "name": "get_backtest", "args": {"backtest_id": a}}


def _loose_parameters(call: ToolCall, changes: list[str]) -> ToolCall:
    """`run_backtest` arguments that are the strategy's own parameters, written beside
    `parameters` instead of in it, moved into it (measured on the second fresh chat set's tune
    half: the 0.5B sent `{"strategy_name": "BollingerReversion", ..., "period": 10, "k": 1.5}`,
    and the tool ran the defaults again)."""
    args = call["args"]
    strategy = STRATEGIES.get(str(args.get("strategy_name", "")))
    if call["name"] != "run_backtest" or strategy is None:
        return call
    loose = {k: v for k, v in args.items() if k in strategy_parameters(strategy)}
    if not loose:
        return call
    given = args.get("parameters")
    given = given if isinstance(given, dict) else {}
    changes.append(f"run_backtest: {sorted(loose)} moved into parameters")
    rest = {k: v for k, v in args.items() if k not in loose}
    return {**call, "args": {**rest, "parameters": {**loose, **given}}}


def named_strategy(turn: str) -> str | None:
    """The one runnable strategy the message names as a word ("run RsiMeanReversion"), or None.
    A name that is also an English word ("Momentum") counts only as written, capitalised."""

    def names(n: str) -> bool:
        flags = re.IGNORECASE if len(re.findall(r"[A-Z]", n)) > 1 else 0
        # ASCII bounds: a Korean particle may follow the name ("SmaCross를 GOOG에 돌려줘")
        return bool(re.search(rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])", turn, flags))

    named = [n for n in STRATEGIES if names(n)]
    return named[0] if len(named) == 1 else None


def _spec_from_request(call: ToolCall, turn: str, changes: list[str]) -> ToolCall:
    if call["name"] != "run_strategy_spec":
        return call
    args = dict(call["args"])
    drafted = draft_spec(turn)
    if drafted.spec is not None:
        spec = drafted.spec
        args["spec"] = spec.model_dump(mode="json", exclude_none=True)
        args["symbol"] = spec.symbol or args.get("symbol") or "GOOG"
        for k in ("start", "end"):
            stated = getattr(spec, k)
            if stated is not None:
                args[k] = stated.isoformat()
        changes.append("run_strategy_spec: the spec drafted in code from the user's message")
        return {**call, "args": args}
    name = named_strategy(turn)
    if name is not None:
        changes.append(f"run_strategy_spec for the named strategy {name} -> run_backtest")
        symbol = args.get("symbol") or "GOOG"
        return {**call, "name": "run_backtest", "args": {"strategy_name": name, "symbol": symbol}}
    return call


def _refusal(call: ToolCall, turn: str, said: str, seen: str) -> str | None:
    """Why a call cannot run as the model wrote it: an id nobody gave (measured on the tune
    half of the fresh chat set: `compare_backtests("bt-2020-01-01", "bt-2020-01-02")`), or a
    spec for a message that states no rule (the tool description's example spec, copied)."""
    invented = [
        str(call["args"][k])
        for k in ID_ARGS
        if call["args"].get(k) and str(call["args"][k]).strip() not in f"{said}\n{seen}"
    ]
    if invented:
        return NO_SUCH_ID.format(ids=" and ".join(map(repr, invented)))
    if call["name"] == "run_strategy_spec" and draft_spec(turn).vague:
        return NO_RULE
    return None


def ground_calls(calls: Sequence[ToolCall], turn: str, said: str, seen: str = "") -> Grounded:
    """The calls with what the user said applied (module docstring). `turn` is the current
    human message, `said` every human message of the thread, `seen` the thread's tool
    results (where ids come from)."""
    out = Grounded([])
    for call in calls:
        call = _loose_parameters(call, out.changes)
        call = _spec_from_request(_one_backtest(call, out.changes), turn, out.changes)
        call = _stated_period(_ground_dates(call, said, out.changes), turn, out.changes)
        call = _stated_symbol(call, turn, out.changes)
        why = _refusal(call, turn, said, seen)
        if why is not None and call.get("id"):
            out.refused[str(call["id"])] = why
        out.calls.append(call)
    return out


__all__ = [
    "DATE_ARGS",
    "ID_ARGS",
    "RELATIVE",
    "Grounded",
    "date_is_stated",
    "ground_calls",
    "named_strategy",
    "period",
    "stated_window",
    "symbols_named",
]
