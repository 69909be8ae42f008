"""Numbers written in words, read as numerals before a request is read (`faithfulness.claims`).

"the fifteen-day SMA crossing over the forty-five-day", "Two-period RSI. Sinks under ten",
"forty percent of equity": `in_digits` gives the text with each such number as digits ("the
15-day SMA crossing over the 45-day") and a map back to the original's positions, so every claim
still names its span in the request as written. "one" alone is left as it is ("the bearish one",
"either one"); "zero", "half" and "a quarter" the reader knows already.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_UNITS = ("two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS: tuple[str, ...] = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen")
_TEENS += ("sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
VALUES: dict[str, int] = {w: i + 2 for i, w in enumerate(_UNITS)} | {"one": 1}
VALUES |= {w: i + 10 for i, w in enumerate(_TEENS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_U, _T = "|".join(["one", *_UNITS]), "|".join(_TENS)
_WORD = re.compile(
    rf"(?<![a-z])(?:(?:(?P<h>{_U}|a)[\s-]{{1,2}})?(?P<hundred>hundred)(?:[\s-]{{1,2}}(?:and[\s-]"
    rf"{{1,2}})?(?P<rest>(?:{_T})(?:[\s-]{{1,2}}(?:{_U}))?|{'|'.join(_TEENS)}|{_U}))?"
    rf"|(?P<tens>{_T})(?:[\s-]{{1,2}}(?P<unit>{_U}))?|(?P<word>{'|'.join(_TEENS)}|{'|'.join(_UNITS)}))"
    r"(?![a-z])",
    re.IGNORECASE,
)


def _value(m: re.Match[str]) -> int:
    if m["hundred"]:
        head = (m["h"] or "a").lower()
        rest = m["rest"]
        tail = sum(VALUES[w.lower()] for w in re.split(r"[\s-]+", rest)) if rest else 0
        return (1 if head == "a" else VALUES[head]) * 100 + tail
    if m["tens"]:
        return VALUES[m["tens"].lower()] + (VALUES[m["unit"].lower()] if m["unit"] else 0)
    return VALUES[m["word"].lower()]


def number_words(text: str) -> list[tuple[int, int, int]]:
    """(start, end, value) of each number in words in `text` ("forty-five" is one: 45)."""
    return [(m.start(), m.end(), _value(m)) for m in _WORD.finditer(text)]


_PAIR_NAME = r"(?:stop[\s-]{0,2}loss|stop|sl|take[\s-]{0,2}profit|target|tp|trailing[\s-]{0,2}stop)"
_PAIR_NUM = r"\d{1,12}(?:\.\d{1,6})?\s{0,2}%?"
_PAIRED = re.compile(
    rf"(?<![a-z])(?P<a>{_PAIR_NAME})\s{{0,2}}/\s{{0,2}}(?P<b>{_PAIR_NAME})(?:\s{{0,2}}(?:of|at|=|:))?"
    rf"\s{{0,2}}(?P<x>{_PAIR_NUM})\s{{0,2}}/\s{{0,2}}(?P<y>{_PAIR_NUM})(?!\d|\.\d)",
    re.IGNORECASE,
)
"""Two exits named, then their two values: "TP/SL 10%/4%" is "TP 10%, SL 4%"."""


_UNIT_PAIR = re.compile(
    rf"(?<![a-z])(?P<a>{_PAIR_NAME})\s{{0,2}}(?:of|at|=|:)?\s{{0,2}}(?P<x>\d{{1,12}}(?:\.\d{{1,6}})?)"
    rf"\s{{0,2}}(?:/|,|;|&|and)\s{{0,2}}(?P<b>{_PAIR_NAME})\s{{0,2}}(?:of|at|=|:)?\s{{0,2}}"
    r"(?P<y>\d{1,12}(?:\.\d{1,6})?)\s{0,2}(?P<u>\(\s{0,2}(?:in\s{1,2})?(?:percent|pct|%)\s{0,2}\)"
    r"|(?:in\s{1,2})?(?:percent|pct)(?![a-z]))",
    re.IGNORECASE,
)
"""Two exits and their values, the unit said once after both: "SL 0.25 / TP 0.5 (percent)"."""

_PREV = r"(?:previous|prior|preceding|last)\s{1,2}(?:day|bar|session|candle|period)"
_PREV_BAR = re.compile(
    rf"(?<![a-z])(?:(?:the\s{{1,2}})?{_PREV}['’]?s?\s{{1,2}}|yesterday['’]?s?\s{{1,2}})(?P<en>high|low)"
    rf"(?![a-z])|(?<![a-z])(?:the\s{{1,2}})?(?P<en2>high|low)\s{{1,2}}of\s{{1,2}}(?:the\s{{1,2}})?"
    rf"(?:{_PREV}|day\s{{1,2}}before)(?![a-z])|(?:전일|전날|어제|전봉|직전\s{{0,2}}(?:봉|캔들|거래일)"
    r"|이전\s{0,2}(?:봉|캔들))\s{0,2}(?:의\s{0,2})?(?P<ko>고가|저가|고점|저점)",
    re.IGNORECASE,
)
"""The previous bar's high or low: the highest high (lowest low) of the previous 1 bar, as the
spec has it ("the previous day's high" is read as "the 1-bar high"; 전일 고가: "1봉 고가")."""


def _prev_bar(m: re.Match[str]) -> str:
    if m["ko"]:
        return f"1봉 {m['ko']}"
    return f"1-bar {(m['en'] or m['en2']).lower()}"


_SIGN = re.compile(
    r"(?<![a-z])(?:turn|flip|go|swing)(?:s|ed|ing|es)?\s{1,2}(?P<en>positive|negative)(?![a-z])"
    r"|(?P<ko>양|음|플러스|마이너스|양수로|음수로)\s{0,2}전환",
    re.IGNORECASE,
)
"""A sign change is a cross of zero: "turns positive" is "crosses above 0" (양전환: 상향 돌파)."""


def _sign(m: re.Match[str]) -> str:
    if m["en"]:
        return "crosses above 0" if m["en"].lower() == "positive" else "crosses below 0"
    return "0 상향 돌파" if m["ko"] in ("양", "플러스", "양수로") else "0 하향 돌파"


def _pct(value: str) -> str:
    return value if value.rstrip().endswith("%") else value.rstrip() + "%"


def rewrites(text: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of what `in_digits` rewrites, in order, none overlapping."""
    found = [(m.start(), m.end(), f"{m['a']} {_pct(m['x'])}, {m['b']} {_pct(m['y'])}")
             for m in _PAIRED.finditer(text)]  # fmt: skip
    found += [(m.start(), m.end(), f"{m['a']} {m['x']}%, {m['b']} {m['y']}%")
              for m in _UNIT_PAIR.finditer(text)]  # fmt: skip
    found += [(m.start(), m.end(), _sign(m)) for m in _SIGN.finditer(text)]
    found += [(m.start(), m.end(), _prev_bar(m)) for m in _PREV_BAR.finditer(text)]
    taken = bytearray(len(text))
    for s, e, _ in found:
        taken[s:e] = b"\x01" * (e - s)
    found += [(s, e, str(v)) for s, e, v in number_words(text) if 1 not in taken[s:e]]
    return sorted(found)


def in_digits(text: str) -> tuple[str, Callable[[tuple[int, int]], tuple[int, int]]]:
    """`text` with its numbers in words as digits (paired exits split, sign changes as crosses
    of zero), and the map of a
    span of that text back to the span of `text` it covers (a span ending inside a rewritten
    part ends after it)."""
    found = rewrites(text)
    if not found:
        return text, lambda span: span
    parts: list[str] = []
    starts: list[int] = []  # for each boundary of the new text: the original boundary
    ends: list[int] = []  # the same, for a span ending there
    at = 0
    for s, e, new in found:
        parts += [text[at:s], new]
        starts += [*range(at, s), s] + [s] * (len(new) - 1)
        ends += [*range(at, s), s] + [e] * (len(new) - 1)
        at = e
    parts.append(text[at:])
    starts += range(at, len(text) + 1)
    ends += range(at, len(text) + 1)
    return "".join(parts), lambda span: (starts[span[0]], ends[span[1]])
