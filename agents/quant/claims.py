"""Vocabulary and tokens of strategy requests in English and Korean, for `claims` (the grammar
over the tokens is `agents.quant.faithfulness`, where `claims` lives; it is re-exported here).

Bounded regular expressions read any text (empty, megabytes, 40-digit numbers) in linear time.
`phrases` are whole facts whose text is then used up (stops, exits, sizing, direction, symbol,
dates, streaks: "5% stop loss", "10일 후 청산", "롱/숏"); `tokens` are what is left: series
("RSI(7)", "5일선"), comparators ("crosses above", "<", "상향 돌파", "golden cross") and numbers,
read into levels and conditions by `faithfulness`.
`roles` gives each level and condition the role (entry, exit, short) of the cue governing it: the
nearest before it ("buy when …") or right after it ("…이하이면 매수"); "<30 / >70": opposite roles.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agents.quant.phrase_table import CUES as _CUES
from agents.quant.phrase_table import PHASE1 as _PHASE1
from agents.quant.unexpressible import TABLE as _UNEXPRESSIBLE

ClaimOp = Literal["crosses_above", "crosses_below", "above", "below", "crosses"]
Role = Literal["entry", "exit", "short"]
Number = int | float
MA_FAMILIES, MACD_FAMILIES = frozenset({"sma", "ema", "ma"}), frozenset({"macd", "macd_signal"})
MACD_FAMILIES |= {"macd_hist"}
BAND_FAMILIES = frozenset({"bb", "bb_lower", "bb_upper", "bb_middle"})
_EXIT_FIELDS = {"stop_loss_pct", "take_profit_pct", "trailing_stop_pct", "atr_stop_multiple"}


def fmt(value: object) -> str:
    """A number as a person writes it (5, not 5.0); anything else as text."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


class Claim(BaseModel):
    """A fact a request states: a spec field path (`rsi.period`, `stop_loss_pct`, `direction`, …)
    or a concept (`indicator`, `level`, `condition`) with its value and request span. Series keys:
    `family` or `family:N`; `ma` is either average, `price` any price, `ma:fast`/`ma:slow` those of
    an unnumbered golden cross."""

    model_config = ConfigDict(frozen=True)

    field: str
    value: int | float | str | None = None
    series: str | None = None
    op: ClaimOp | None = None
    other: str | None = None
    role: Role | None = None
    span: tuple[int, int]
    text: str

    @property
    def key(self) -> str:
        """The claim without its span: `rsi.period=7`, `level rsi below 30@entry`."""
        role = f"@{self.role}" if self.role else ""
        if self.field == "level":
            value = "?" if self.value is None else fmt(self.value)
            return f"level {self.series} {self.op} {value}{role}"
        if self.field == "condition":
            return f"condition {self.series} {self.op} {self.other}{role}"
        return f"{self.field}={fmt(self.value)}"


# -------------------------------------------------------------------------------- vocabulary
# Tables: one row per line, `name pattern` (name " = the name above); an indented line continues
# the pattern above; <MACROS> expand from _MACROS (nested); patterns contain no literal space.
_N = r"\d{1,12}(?:\.\d{1,6})?"
_WORDS: dict[str, Number] = {w: i + 1 for i, w in enumerate(["one", "two", "three", "four"])}
_WORDS |= {"five": 5, "ten": 10, "twenty": 20, "half": 50, "a quarter": 25, "절반": 50, "반": 50}
_MACROS = r"""
B       (?<![a-z])
E       (?![a-z])
N       (?<![\d.])\d{1,12}(?:\.\d{1,6})?(?!\.?\d)
V       (?P<v><N>|<B>(?:a\s{1,2}quarter|twenty|three|four|five|half|one|two|ten)<E>)
P       (?:-\s{0,2})?<V><PCT>
ATRP    (?:\s{0,2}\(\s{0,2}(?P<p><N>)\s{0,2}\))?
BARS    (?:trading\s{1,2})?(?:days?|bars?|sessions?|candles?|periods?)<E>
DATE    (?<![\d.])(?:19|20)\d\d(?:[-/.]\d{1,2}(?:[-/.]\d{1,2})?|\s{0,2}년(?:\s{0,2}\d{1,2}\s{0,2}월
        (?:\s{0,2}\d{1,2}\s{0,2}일)?)?)?(?!\d)
STOP    (?:stop[\s-]{0,2}(?:loss(?:es)?|out)|stops?|sl|loss\s{1,2}limit|max(?:imum)?\s{1,2}loss)
TP      (?:take[\s-]{0,2}profits?|profit[\s-]{0,2}(?:target|taking)|target|tp)
TRAIL   (?:trail+ing|trail)[\s-]{0,2}(?:stop(?:[\s-]{0,2}loss)?|sl)?
ATR     (?:the\s{1,2})?(?:atrs?|average\s{1,2}true\s{1,2}range)<ATRP>
X       \s{0,2}(?:x|×|times|배)?\s{0,2}
SEP     \s{0,3}(?:of|at|=|:|is|to|을|를|은|는|이)?\s{0,3}
KSTOP   (?:손절(?:매|선|라인)?|손실(?:률|이)?|스탑\s{0,2}로스)
KTP     (?:익절|이익\s{0,2}실현|수익\s{0,2}실현|목표\s{0,2}수익(?:률)?)
KTRAIL  (?:트레일링|추적)\s{0,2}(?:스탑|스톱|손절(?:매)?)
HOLD    (?:max(?:imum)?\s{1,2}(?:holding|hold)(?:\s{1,2}(?:period|time))?|holding\s{1,2}period
        |time[\s-]{0,2}stop)
EQ      (?:equity|capital|cash|portfolio|account|balance|funds|bankroll|money)<E>
KCAP    (?:자본(?:금)?|자산|자금|투자금|계좌|원금|예수금)\s{0,2}(?:의)?\s{0,2}
ND      (?![\s-]{0,2}(?:-?term|mas?\b|moving|windows?|periods?|smas?\b|emas?\b|averages?|lookbacks?
        |lines?\b|length|run\b|time|history|squeeze|interest|lived|span|\d|=|:|\())
UP      (?:up|higher|rising|positive|green|bullish|advancing)
DN      (?:down|lower|falling|negative|red|bearish|declining)
STREAK  <V>\s{0,2}(?:consecutive|straight|successive)\s{1,2}
ROW     [\s-]{0,2}(?:closes|days|bars|candles|sessions)\s{1,2}in\s{1,2}a\s{1,2}row
KD      \s{0,2}(?:거래일|일|봉)\s{0,2}
UNIT    (?:(?:trading[\s-]{1,2})?(?:days?|bars?|periods?|sessions?|candles?)<E>|(?<=\d)d<E>|거래일
        |일|봉|주기)
JOIN    \s{0,2}(?:and|&|/|or|과|와|및)\s{0,2}
KLEVEL  \s{0,2}(?:을|를|에서|에|이|가)?\s{0,2}(?:이하|미만|이상|초과|아래|위|상향|하향|돌파|이탈|밑
        |넘|웃|하회|상회|%|％|퍼센트)
FAST    (?:fast(?:er)?|short(?:er)?(?:[\s-]{0,2}term)?)
SLOW    (?:slow(?:er)?|long(?:er)?(?:[\s-]{0,2}term)?)
FSW     (?:\s{1,2}(?:period|smas?|emas?|mas?|length|window|line|average
        |moving\s{1,2}average))?\s{0,2}(?:=|:|of|at|is)?\s{0,2}
FSJ     (?:[\s-]{0,2}(?:day|bar|period)s?)?\s{0,3}(?:,|and|&|/|;)?\s{0,3}
KMA     \s{0,2}(?:이평선?|이동\s{0,2}평균(?:선)?)?\s{0,2}
PCT     \s{0,2}(?:%|％|percent|pct|퍼센트|프로)
PU      (?:[\s-]{0,2}(?:<UNIT>|(?:std|stdev|sd|sigma|standard\s{1,2}dev(?:iation)?)s?<E>|σ
        |표준\s{0,2}편차|시그마|배))?
KBAND   (?:상단|하단|중간선|중심선)(?:\s{0,2}(?:밴드|선))?
BANDW   (?:<KBAND>|중단|<B>(?:upper|lower|middle|mid|top|bottom)(?:\s{1,2}bands?)?<E>)
CROSS   cros{1,2}(?:e?s{0,2}|ed|ing)
KTHEN   \s{0,2}(?:을|를|은|는)?\s{0,2}(?:정리|청산|커버|환매(?:수)?|매도|종료)\s{0,2}(?:하고|하며
        |하면서|후|한\s{0,2}(?:뒤|후|다음)|하자마자)?\s{0,2}(?:바로\s{0,2}|곧바로\s{0,2}|즉시\s{0,2})?
ETHEN   \s{0,2}(?:,|and|&|then|;)\s{1,3}(?:then\s{1,2}|immediately\s{1,2})?
ANY     (?:the\s{1,2}|any\s{1,2}|a\s{1,2}|your\s{1,2}|my\s{1,2})?
FLIP    (?:flip(?:s|ped|ping)?|revers(?:e|es|ed|ing)|switch(?:es|ed|ing)?)\s{1,2}
        (?:(?:in)?to\s{1,2})?(?:a\s{1,2})?
TICKER  (?!(?-i:RSI|SMA|EMA|MAS?|MACD|ATR|ROC|BB|USD|KRW|JPY|ETF|AI|ML|PE|PER|PBR|EPS|ROE|SL|TP|OK
        |US|UK|EU|IF|AND|OR|THE|ALL|DAY|BARS?|OHLCV?|VWAP|ADX|CCI|OBV|MFI|SAR|GDP|CPI|FOMC|IV|EOD
        |API|CSV|LONG|SHORT|BUY|SELL|EXIT|STOP|RISK|NOTE)(?![a-z0-9]))(?P<v>(?-i:[A-Z]{2,5}))
        (?![a-z0-9])
"""
# Series: `family term`; `family/unit term` is a term only after a number and unit ("20-day high").
_FAMILIES = r"""
macd_hist macd[\s-]{0,2}(?:histogram|hist)|macd\s{0,2}히스토그램
macd_signal (?:macd[\s-]{0,2})?signal[\s-]{0,2}line|macd[\s-]{0,2}signal|its\s{1,2}signal
    |(?:macd\s{0,2})?시그널(?:\s{0,2}선)?
macd macd
bb_lower lower\s{1,2}(?:bollinger\s{1,2})?band|(?:bollinger|볼린저)\s{0,2}(?:bands?|밴드)?\s{0,2}
    (?:lower\s{1,2}band|하단(?:\s{0,2}(?:밴드|선))?)|하단\s{0,2}밴드|밴드\s{0,2}하단
bb_upper upper\s{1,2}(?:bollinger\s{1,2})?band|(?:bollinger|볼린저)\s{0,2}(?:bands?|밴드)?\s{0,2}
    (?:upper\s{1,2}band|상단(?:\s{0,2}(?:밴드|선))?)|상단\s{0,2}밴드|밴드\s{0,2}상단
bb_middle middle\s{1,2}(?:bollinger\s{1,2})?band|(?:bollinger|볼린저)\s{0,2}(?:bands?|밴드)?\s{0,2}
    (?:middle\s{1,2}band|중심선|중간선)|중심선
bb  bollinger(?:\s{1,2}bands?)?|bb|볼린저\s{0,2}(?:밴드)?
donchian donchian(?:\s{1,2}channels?)?|돈치안(?:\s{0,2}채널)?
volume_sma (?:average|avg\.?|mean)\s{1,2}volume|volume\s{0,2}(?:smas?|mas?|moving\s{1,2}average
    |average)|평균\s{0,2}거래량|거래량\s{0,2}(?:이동\s{0,2})?평균(?:선)?
volume volume|거래량
rsi rsi|relative\s{1,2}strength(?:\s{1,2}index)?|상대\s{0,2}강도(?:\s{0,2}지수)?
atr atr|average\s{1,2}true\s{1,2}range|평균\s{0,2}진폭
roc roc|rate[\s-]{1,2}of[\s-]{1,2}change|변화율
highest_high highest\s{1,2}(?:high|close|price)|최고가|신고가
highest_high/unit highs?|고가|고점
lowest_low lowest\s{1,2}(?:low|close|price)|최저가|신저가
lowest_low/unit lows?|저가|저점
sma smas?|simple\s{1,2}(?:moving\s{1,2}averages?|mas?)|단순\s{0,2}이동\s{0,2}평균(?:\s{0,2}선)?
ema emas?|exponential\s{1,2}(?:(?:moving\s{1,2})?averages?|mas?)|지수\s?이동\s{0,2}평균(?:\s?선)?
ma  moving\s{1,2}averages?|mas?|이동\s{0,2}평균(?:\s{0,2}선)?|이평(?:\s{0,2}선)?
ma/unit averages?|선|평균(?:\s{0,2}선)?
open open(?:ing)?\s{1,2}prices?|(?:(?<=the\s)|(?<=its\s)|(?<=s\s)|(?<=[<>]\s)|(?<=[<>]))open
    (?!\s{1,2}(?:an?|the|long|short|positions?|trades?|interest|orders?)<E>)|시가(?!\s{0,2}총액)
price closing\s{1,2}prices?|close(?!\s{1,2}(?:the|a|out|position|trade|it|long|short)<E>)|closes
    |prices?|종가|주가|가격
"""
_SERIES = r"""
series  (?:(?P<pre><N>(?:\s{0,2}<UNIT>)?-?(?:<JOIN><N>)?)[\s-]{0,2}(?P<unit><UNIT>)?[\s-]{0,2})?
        (?:<B>(?P<qual>fast(?:er)?|short(?:er)?(?:[\s-]{0,2}term)?|단기|slow(?:er)?|long(?:er)?
        (?:[\s-]{0,2}term)?|장기)[\s-]{0,2})?<B>(?:<TERMS>|(?(unit)(?:<UTERMS>)|(?!)))<E>
        (?:\s{0,2}\(\s{0,2}(?:(?:standard|default|classic|usual|settings?)\s{1,2})?(?P<par><N><PU>
        (?:\s{0,2}[,/;]\s{0,2}<N><PU>){0,3})\s{0,2}\)(?P<band>\s{0,2}<BANDW>)?|[\s-]{0,2}
        (?:(?:with\s{1,2})?(?:an?\s{1,2}|the\s{1,2})?(?:period|length|window|lookback
        |setting)s?\s{0,2}(?:of|=|:|is)?\s{0,2}|기간\s{0,2})?(?P<post><N>(?:<JOIN><N>){0,2})(?!<KLEVEL>)
        |\s{1,2}(?:of|over|in|for|during)\s{1,2}(?:the\s{1,2})?(?:last|past|previous|prior
        |recent)\s{1,2}(?P<last><N>)(?:[\s-]{0,2}<UNIT>)?)?
"""
# Comparators and other tokens; a `k_` comparator is Korean (it follows its operands).
_TOKENS = r"""
fs  <B><FAST><FSW><N><FSJ><SLOW><FSW><N>
"   <B><SLOW><FSW><N><FSJ><FAST><FSW><N>
"   단기<KMA><N>\s{0,2}일?선?\s{0,2}(?:,|과|와|및|/)?\s{0,2}장기<KMA><N>
brk <N>[\s-]{0,2}(?:day|bar|session)s?[\s-]{0,2}(?:(?:high|price|channel
    |donchian)\s{1,2})?break[\s-]?outs?<E>
candle_up <B>(?:green|bullish|white)[\s-]{1,2}(?:candle(?:stick)?|bar)s?<E>|양봉
candle_down <B>(?:red|bearish|black)[\s-]{1,2}(?:candle(?:stick)?|bar)s?<E>|음봉
golden <B>golden[\s-]{0,2}cross(?:es|ing|over)?<E>|골든\s{0,2}크로스
dead <B>(?:death|dead)[\s-]{0,2}cross(?:es|ing|over)?<E>|(?:데드|데스)\s{0,2}크로스
oversold <B>over[\s-]?sold<E>|과매도(?:\s{0,2}(?:구간|권|영역|상태))?
overbought <B>over[\s-]?bought<E>|과매수(?:\s{0,2}(?:구간|권|영역|상태))?
crosses_above <B>(?:(?:<CROSS>|break(?:s|ing)?|broken?|broke)\s{1,2}(?:out\s{1,2}
    |up\s{1,2}|back\s{1,2})?(?:above|over|through|past)|break(?:s|ing)?\s{1,2}out|<CROSS>\s{1,2}up
    (?:ward)?|(?:upward|bullish)\s{1,2}cross(?:over)?|crossover\s{1,2}above)<E>
crosses_below <B>(?:(?:<CROSS>|break(?:s|ing)?|broken?|broke)\s{1,2}
    (?:(?:(?:down|back)\s{1,2})?(?:below|under|beneath)|down\s{1,2}through)
    |(?:drop|fall|dip|sink)(?:s|p?ing|ped)?\s{1,2}through
    |break(?:s|ing)?\s{1,2}down|<CROSS>\s{1,2}down(?:ward)?
    |(?:downward|bearish)\s{1,2}cross(?:over)?|cross-?under)<E>
crosses <B>(?:cross(?:-?overs?|es|ed|ing)?|intersect(?:s|ion)?)<E>
above <B>(?:above|over(?!\s{1,2}(?:the\s{1,2})?(?:last|past|previous|next|prior|recent|time)<E>
    |\s{1,2}\d{1,12}[\s-]{0,2}(?:days?|bars?|periods?|sessions?|weeks?|months?|years?)<E>)
    |greater\s{1,2}than|higher\s{1,2}than|(?:exceed|beat)(?:s|ing|ed)?
    |(?<!the\s)past(?!\s{1,2}(?:the\s{1,2})?(?:last|few|several|\d{1,12}[\s-]{0,2}(?:days?|bars?
    |sessions?|weeks?|months?|years?)<E>)))<E>|>=?|≥|=>
    |<B>(?:(?:is|are|was|stays?)\s{1,2}not|isn['’]?t|aren['’]?t|not|never|no\s{1,2}longer)\s{1,2}
    (?:below|under|beneath|less\s{1,2}than|lower\s{1,2}than)<E>
below <B>(?:below|under|beneath|less\s{1,2}than|lower\s{1,2}than|smaller\s{1,2}than)<E>|<=?|≤|=<
    |<B>(?:(?:is|are|was|stays?)\s{1,2}not|isn['’]?t|aren['’]?t|not|never|no\s{1,2}longer)\s{1,2}
    (?:above|over|greater\s{1,2}than|higher\s{1,2}than)<E>
k_crosses_above 상향\s{0,2}(?:돌파|교차)|위로\s{0,2}(?:상향\s{0,2})?(?:돌파|교차|뚫|올라서)
    |위로\s{0,2}다시\s{0,2}(?:상향\s{0,2})?(?:돌파|교차|뚫|올라(?:서|오|와|가|갈|올))|돌파
    |뚫고\s{0,2}(?:올라|상승)|회복
k_crosses_below 하향\s{0,2}(?:돌파|교차|이탈)|(?:아래|밑)(?:으)?로\s{0,2}(?:하향\s{0,2})?
    (?:돌파|교차|이탈|뚫|빠지|빠져)|(?:아래|밑)(?:으)?로\s{0,2}다시\s{0,2}(?:하향\s{0,2})?
    (?:돌파|교차|이탈|뚫|빠지|빠져|떨어지|떨어져|떨어질|내려(?:가|오|와|갈|올|서))|이탈|붕괴
    |뚫고\s{0,2}(?:내려|하락)|깨(?:면|지면|고|질|진)
k_crosses 교차
k_breaks 뚫(?!고\s{0,2}(?:내려|하락))
k_above 보다\s{0,2}(?:높|크|위)|이상|초과|위(?:에서|에|로)?(?![가-힣])|위(?=일|이면|면|할|하|인)
    |넘(?:으면|을|어서|어|는|으|길)|웃돌|상회
k_below 보다\s{0,2}(?:낮|작|아래|밑)|이하|미만|아래(?:에서|에|로)?(?![가-힣])
    |아래(?=일|이면|면|할|하|인)|밑(?:에서|에|으로)?
    (?![가-힣])|밑(?=일|이면|면|돌)|하회
"""
_SYMBOL_OF = {"GOOGL": "GOOG", "EUR": "EURUSD", "BTC": "BTCUSD", "XBT": "BTCUSD", "ETH": "ETHUSD"}
_OPPOSITE = {"entry": "exit", "exit": "entry", "short": "exit"}


def table(text: str, expand: bool = True) -> list[tuple[str, str]]:
    """Rows `(name, pattern)` of a vocabulary table (format above), macros expanded."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line[:1].isspace() and line.strip():
            rows[-1][1] += line.strip()
        elif line.strip():  # a row named " repeats the name above
            name, pattern = line.split(None, 1)
            rows.append([rows[-1][0] if name == '"' else name, pattern])
    return [(name, _expand(pattern) if expand else pattern) for name, pattern in rows]


def _expand(pattern: str) -> str:
    for _ in range(6):
        pattern = re.sub(r"<([A-Z]+)>", lambda m: _MACRO[m[1]], pattern)
    return pattern


def gate(pattern: str) -> str:
    """`pattern` behind a look-ahead on its first character (a digit, sign, word start or one of
    its Hangul syllables), so `re` fails fast where no match can start."""
    hangul = "".join(sorted(set(re.findall(r"[가-힣]", pattern.replace("가-힣", "")))))
    first = rf"\d|[-+$<>=≥≤(]|(?<![a-z])[a-z]{'|[' + hangul + ']' if hangul else ''}"
    return f"(?={first})(?:{pattern})"


class Scanner:
    """A table's rows, found fast: a finder runs over ASCII-lower-cased text with no case folding,
    gated, number-led rows sharing their number; where it hits, the first row matching there wins,
    as in one alternation of all rows (`test_scanning_changes_no_match`)."""

    def __init__(self, text: str) -> None:
        rows, numbered, other = table(text, expand=False), [], []
        self.names = [name for name, _ in rows]
        self.rows = [re.compile(_expand(p), re.I) for _, p in rows]
        for _, p in rows:
            lead = next((x for x in (r"(?:\+\s{0,2})?<P>", "<P>", "<V>") if p.startswith(x)), "")
            if lead:
                numbered.append(("<PCT>" if "P" in lead else "") + p[len(lead) :])
            else:
                other.append(p.removeprefix("<B>"))
        if numbered:
            other.insert(0, r"(?:[+-]\s{0,2}){0,2}<V>(?:" + "|".join(numbered) + ")")
        body = re.sub(r"\(\?P<(?!unit>)\w+>", "(?:", _expand("|".join(f"(?:{p})" for p in other)))
        self.finder = re.compile(gate(body.replace("(?-i:[A-Z]{2,5})", "[a-z]{2,5}")))

    def scan(self, text: str, low: str) -> Iterator[tuple[str, re.Match[str]]]:
        pos = 0
        while (hit := self.finder.search(low, pos)) is not None:
            at, pos = hit.start(), hit.start() + 1
            for name, row in zip(self.names, self.rows, strict=True):
                if m := row.match(text, at):
                    pos = max(m.end(), pos)
                    yield name, m
                    break


LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MACRO = dict(table(_MACROS, expand=False))
_PHASE1_SCAN, _TOKEN_SCAN, _CUE_SCAN = Scanner(_PHASE1), Scanner(_TOKENS), Scanner(_CUES)
_FAMILY_ROWS = table(_FAMILIES)
for _m, _unit in (("TERMS", False), ("UTERMS", True)):
    _rows = [(i, p) for i, (n, p) in enumerate(_FAMILY_ROWS) if ("/" in n) == _unit]
    _MACRO[_m] = "|".join(f"(?P<t{i}>{p})" for i, p in _rows)
_SER_SCAN = Scanner(_SERIES)
UNEXPRESSIBLE: tuple[tuple[str, str], ...] = tuple(table(_UNEXPRESSIBLE))
"""(kind, the request's phrasing) of what no spec can express: data (the table above)."""
_NUM_RE = re.compile(_expand(r"(?P<n>(?:(?<![\w.)\-−])[-−])?<N>)|<B>zero(?:\s{1,2}line)?<E>"), re.I)
"""A number; a minus right before it, not after a word or number, is its sign ("ROC < -5")."""
_NUMS = re.compile(_N)
_BOUND_RE, _PUNCT_RE = re.compile(r"[;\n!?。]|\.(?!\d)"), re.compile(r"[,;\n!?。]|\.(?!\d)")
_LEADS = re.compile(r"(?:when|if|once|on)$", re.I)
_COMMA_CUE = re.compile(r"\s{0,2}[,:;]\s{0,3}(?:then\s{1,2})?(?:(?:we|i|you)\s{1,2})?", re.I)
"""A rule's own cue after a comma, when none comes before it: "if X, go long"."""
_CONJ_GAP = re.compile(
    r"\s{0,2},?\s{0,2}(?:and|&|그리고|이고|이며|하고)\s{1,2}(?:(?:the|if|when)\s{1,2})?", re.I
)
"""Two conditions of one clause: "when A and B, go long" — both are the entry's."""
_NOUN_GAP = re.compile(  # "RSI below 30 for the entry", "… under 10: buy", "… -> long"
    r"\s{0,3}(?:[:=→]\s{0,3}|[-=]>\s{0,3})?(?:(?:as|for|on|the|an?|is)\s{1,3}){0,2}", re.I
)


# -------------------------------------------------------------------------------- reading
@dataclass
class Draft:
    """A claim in the making; `follows`: an earlier level on its series of the opposite sense."""

    field: str
    value: int | float | str | None
    start: int
    end: int
    series: str | None = None
    op: str | None = None
    other: str | None = None
    role: str | None = None
    follows: Draft | None = None
    anchor: int = 0  # where its comparator is: the cue before it governs it


@dataclass
class Token:
    """A series (`ser`), number, comparator (`post`: Korean, after its operands), `_TOKENS` row."""

    kind: str
    start: int
    end: int
    family: str = ""
    nums: tuple[Number, ...] = ()
    qual: str = ""
    post: bool = False
    used: bool = False
    derived: bool = False  # its period comes from "fast 10 and slow 30"

    @property
    def value(self) -> Number:
        return self.nums[0] if self.nums else 0


def _number(text: str) -> Number:
    if (word := " ".join(text.lower().split())) in _WORDS:
        return _WORDS[word]
    text = text.replace("−", "-")
    return int(value) if (value := float(text)).is_integer() and "." not in text else value


def _date(text: str) -> str:
    y, m, d = ([int(p) for p in re.findall(r"\d{1,4}", text)] + [0, 0])[:3]
    day = f"-{d:02d}" if 1 <= d <= 31 else ""
    return f"{y:04d}" + (f"-{m:02d}{day}" if 1 <= m <= 12 else "")


def phrases(text: str, low: str, mask: bytearray) -> list[Draft]:
    """Whole-phrase facts (`_PHASE1`); their text is marked used in `mask`."""
    drafts: list[Draft] = []
    for row, m in _PHASE1_SCAN.scan(text, low):
        (s, e), (name, _, fixed) = m.span(), row.partition("=")
        mask[s:e] = b"\x01" * (e - s)
        group = {k: m[k] for k in "vpsey" if k in m.re.groupindex and m[k]}
        if name == "dates":
            fields = {"s": ("start",), "e": ("end",), "y": ("start", "end")}
            drafts += [Draft(f, _date(v), s, e) for k, v in group.items() for f in fields[k]]
        elif fixed or name == "symbol":
            drafts.append(Draft(name, _SYMBOL_OF.get(v := fixed or group["v"].upper(), v), s, e))
        elif name.endswith("_streak"):  # "3 up closes in a row" is `up_streak above 2`
            drafts.append(Draft("level", _number(group["v"]) - 1, s, e, name, "above", anchor=s))
        else:
            drafts.append(Draft(name, _number(group["v"]), s, e))
            if "p" in group:
                drafts.append(Draft("atr_stop_period", _number(group["p"]), s, e))
    return drafts


def _series(m: re.Match[str]) -> Token:
    family = next(f.partition("/")[0] for i, (f, _) in enumerate(_FAMILY_ROWS) if m[f"t{i}"])
    groups = (m[g] or "" for g in ("pre", "par", "post", "last"))
    nums = tuple(_number(n) for g in groups for n in _NUMS.findall(g))
    qual = (m["qual"] or "").lower()
    qual = "" if not qual else "fast" if qual[0] in "fs단" and qual[:2] != "sl" else "slow"
    family = "volume_sma" if family == "volume" and nums else family
    end = m.end() if family == "bb" or not m["band"] else m.start("band")
    if family == "bb" and m["band"]:  # "볼린저밴드(20,2) 상단", "Bollinger (20, 2) lower band"
        family = _band(m["band"])
    return Token("ser", m.start(), end, family, () if family == "price" else nums, qual)


_BARE_BAND = re.compile(_expand(r"<KBAND>|<B>(?:top|bottom)\s{1,2}bands?<E>"), re.I)


def _band(word: str) -> str:
    w = word.strip().lower()[:1]
    return "bb_upper" if w in "상ut" else "bb_lower" if w in "하lb" else "bb_middle"


def tokens(text: str, low: str, mask: bytearray) -> list[Token]:
    """Series, other tokens and numbers outside used text; leftmost-longest wins an overlap, and
    a series overlapping used text is read again outside it ("ATR 14, 2x ATR stop")."""
    found = [_series(m) for _, m in _SER_SCAN.scan(text, low)]
    for name, m in _TOKEN_SCAN.scan(text, low):
        nums, got, fam = tuple(_number(n) for n in _NUMS.findall(m.group())), m.group().lower(), ""
        if name == "fs":
            fam = "sma" if "sma" in got else "ema" if "ema" in got else ""
            nums = nums[:2] if got[:1] in "fs단" and got[:2] != "sl" else nums[1::-1]
        kind, post = name.removeprefix("k_"), name.startswith("k_")
        found.append(Token(kind, *m.span(), fam, nums, post=post))
    for m in _NUM_RE.finditer(text):
        found.append(Token("num", *m.span(), nums=(_number(m["n"]) if m["n"] else 0,)))
    if any(it.kind == "ser" and it.family in BAND_FAMILIES for it in found):  # "…, 상단 위로"
        found += [Token("ser", *m.span(), _band(m[0])) for m in _BARE_BAND.finditer(text)]
    kept = []
    for it in sorted(found, key=lambda it: (it.start, it.start - it.end)):
        cut = mask.find(1, it.start, it.end)
        if it.kind == "ser" and cut != -1:
            free = mask.find(0, it.start, it.end) if cut == it.start else it.start
            again = _SER_SCAN.rows[0].search(text, free, cut if cut > it.start else it.end)
            if free != -1 and again is not None:
                it = _series(again)
                cut = mask.find(1, it.start, it.end)
        if it.end > it.start and cut == -1:
            mask[it.start : it.end] = b"\x01" * (it.end - it.start)
            kept.append(it)
    return kept


def roles(text: str, drafts: list[Draft]) -> None:
    """Each level and condition takes the role of the cue governing it (module docstring)."""
    exits = sorted((d.start, d.end) for d in drafts if d.field in {*_EXIT_FIELDS, "max_bars"})
    cues = []
    for role, m in _CUE_SCAN.scan(text, text.translate(LOWER)):
        j = bisect.bisect_right(exits, (m.start(), len(text))) - 1
        if j < 0 or exits[j][1] <= m.start():  # "exit after 10 days" is no exit rule's cue
            cues.append((m.start(), m.end(), role, bool(re.search("[가-힣]", m.group()))))
    starts, ends, gap = [c[0] for c in cues], [c[1] for c in cues], _NOUN_GAP.fullmatch
    bounds, puncts = ([m.start() for m in r.finditer(text)] for r in (_BOUND_RE, _PUNCT_RE))
    rules = sorted((d for d in drafts if d.field in ("level", "condition")), key=lambda d: d.start)
    trailing: set[int] = set()  # cues that follow a rule: that rule's, not the next one's
    for k, d in enumerate(rules):
        p = bisect.bisect_left(puncts, d.end)
        stop = min(d.end + 16, puncts[p] if p < len(puncts) else len(text))
        if k + 1 < len(rules) and rules[k + 1].start > d.end:
            stop = min(stop, rules[k + 1].start)
        after = cues[bisect.bisect_left(starts, d.end) : bisect.bisect_left(starts, stop)]
        after = [c for c in after if c[3] or (c[2] != "short" and gap(text, d.end, c[0]))]
        after = [c for c in after if not _LEADS.search(text, c[0], c[1])]  # "…: long when …"
        j, b = bisect.bisect_right(ends, d.anchor) - 1, bisect.bisect_left(bounds, d.anchor) - 1
        cue = cues[j] if j >= 0 and cues[j][0] > (bounds[b] if b >= 0 else -1) else None
        cue = None if cue is not None and cue[0] in trailing else cue  # "X means long, Y …"
        flip = d.follows is not None and (cue is None or cue[0] < d.follows.anchor)
        opposite = _OPPOSITE.get(str(d.follows and d.follows.role))
        if not after and cue is None and not flip:  # "when RSI(14) drops below 30, buy"
            nxt = cues[bisect.bisect_left(starts, d.end) : bisect.bisect_left(starts, d.end) + 1]
            after = [c for c in nxt if _COMMA_CUE.fullmatch(text, d.end, c[0])]
            after = [c for c in after if not _LEADS.search(text, c[0], c[1])]
        d.role = after[-1][2] if after else opposite if flip else cue[2] if cue else None
        trailing |= {c[0] for c in after}
    for one, then in zip(rules[::-1][1:], rules[::-1], strict=False):  # right to left: "A and B, X"
        if (
            one.role is None
            and then.role is not None
            and _CONJ_GAP.fullmatch(text, one.end, then.start)
        ):
            one.role = then.role


def _ma(it: Token | None) -> bool:
    return it is not None and it.kind == "ser" and it.family in MA_FAMILIES


def absorb(text: str, items: list[Token]) -> list[Token]:
    """ "SMA crossover with fast 10 and slow 30": the pair takes the SMA's family and the SMA
    goes; "the fast MA" takes the pair's period."""
    pair: dict[str, Number] = {}
    drop: set[int] = set()
    for i, it in (p for p in enumerate(items) if p[1].kind == "fs"):
        pair = {"fast": it.nums[0], "slow": it.nums[1]}
        for j in (*range(i - 1, max(i - 4, -1), -1), i + 1):  # "SMA … fast 10", "… 30 EMA"
            near = items[j] if j < len(items) else it
            a, b = (near, it) if j < i else (it, near)
            bare, close = _ma(near) and not (near.nums or near.qual), b.start - a.end <= 60
            if bare and close and "\n" not in text[a.end : b.start]:
                it.family = it.family or near.family
                drop.add(j)
                break
        it.kind, it.family = "ser", it.family or "ma"
    for it in (it for it in items if _ma(it) and it.qual and not it.nums and pair):
        it.nums, it.derived = (pair[it.qual],), True
    return [it for j, it in enumerate(items) if j not in drop]


_THE_BEFORE = re.compile(r"(?<![a-z])the\s{1,2}$", re.I)
_UNIT_AFTER = re.compile(r"\s{0,2}(?:%|％|[-\s]{0,2}(?:days?|bars?|periods?|percent|pct)(?![a-z]))")


def elliptic(text: str, items: list[Token]) -> list[Token]:
    """ "the 30/90-day SMA crossover: the 30 crossing above the 90": a bare number after "the"
    that is the period of an average the request names is that average."""
    periods: dict[float, str] = {}
    for it in (it for it in items if _ma(it)):
        for n in it.nums:
            periods.setdefault(float(n), it.family)
    out = []
    for it in items:
        fam = periods.get(float(it.value)) if it.kind == "num" else None
        before = text[max(0, it.start - 6) : it.start]
        if fam and _THE_BEFORE.search(before) and not _UNIT_AFTER.match(text, it.end):
            it = Token("ser", it.start, it.end, fam, (it.value,))
        out.append(it)
    return out


def series_drafts(items: list[Token]) -> list[Draft]:
    """Each series' stated numbers as field claims; an unnumbered, unused one as `indicator`."""
    out = []
    for it in (it for it in items if it.kind == "ser" and it.family != "price" and not it.derived):
        fields = [f"{it.family}.period"] * len(it.nums)
        if it.family in MACD_FAMILIES:
            fields = ["macd.period", "macd.slow_period", "macd.signal_period"]
        elif it.family in BAND_FAMILIES:
            fields = ["bb.period", "bb.std_dev"]
        out += [Draft(f, n, it.start, it.end) for f, n in zip(fields, it.nums, strict=False)]
        if not it.nums and not it.used:
            out.append(Draft("indicator", it.family, it.start, it.end))
    return out


def finish(text: str, drafts: list[Draft]) -> list[Claim]:
    """The claims, in request order, a fact restated over an overlapping span once."""
    out: list[Claim] = []
    last_end: dict[str, int] = {}
    for _, d in sorted(enumerate(drafts), key=lambda p: (p[1].start, -p[1].end, p[0])):
        values = {k: getattr(d, k) for k in ("field", "value", "series", "op", "other", "role")}
        claim = Claim(**values, span=(d.start, d.end), text=text[d.start : d.end])
        if last_end.get(claim.key, -1) <= d.start:
            last_end[claim.key] = d.end
            out.append(claim)
    return out


def claims(request: str) -> list[Claim]:
    """`faithfulness.claims`: every fact `request` states (imported late: it imports this)."""
    from agents.quant.faithfulness import claims as read

    return read(request)
