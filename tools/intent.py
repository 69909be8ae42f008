"""The tool call a message asks for, read in code when the reading is certain.

Measured on the tune halves of bench/chatops.py: the embedded 0.5B picks the wrong tool for
plain questions — `compare_backtests` with invented ids for "EURUSD 쪽 백테스트 중에 max drawdown
제일 얕은 게 어떤 거야?", `run_backtest` for "did I ever backtest a donchian breakout?" — while
the words that decide the tool are few and fixed: a metric and a superlative ("top 3 … by
sortino", "샤프 비율이 가장 높은"), a search verb ("find", "dig up", "찾아줘"), a backtest id,
spend and budget words, a symbol with price words, a runnable strategy's name with a run verb,
a rule the strategy builder's reader drafts whole. `read_call` returns that call, or None when
no tool or more than one is read, or when a follow-up points back at the conversation ("same
strategy", "that one", "그거"): then the model decides, as before. The vocabulary is the
platform's own (metric names and their English and Korean aliases from `tools.metrics` and
`agents.quant.glossary`, the symbols, the runnable strategies), not any benchmark question's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.quant.backtests import strategy_parameters
from agents.quant.corpus import STRATEGIES
from agents.quant.drafting import draft_spec
from agents.quant.glossary import TERMS
from tools.grounding import (
    PERIOD_TOOLS,
    RELATIVE,
    named_strategy,
    period,
    symbols_named,
    window_in_year_of,
)
from tools.metrics import METRICS


@dataclass(frozen=True)
class Read:
    """A call read from the message, and why (for the log)."""

    name: str
    args: dict[str, Any]
    why: str


# ---------------------------------------------------------------------------- vocabulary


def _alternation(words: list[str]) -> str:
    return "|".join(sorted({re.escape(w) for w in words}, key=len, reverse=True))


def _words(english: str, korean: str = "") -> re.Pattern[str]:
    """English words as whole words (a Korean particle may follow: "GOOG는", "LLM비용"), or
    Korean pieces anywhere (they take particles and endings)."""
    pattern = rf"(?<![a-z0-9])(?:{english})(?![a-z0-9])"
    return re.compile(f"{pattern}|{korean}" if korean else pattern)


def _squash(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.lower())


def _metric_aliases() -> dict[str, str]:
    """Every name of a backtest metric (squashed: no spaces, "_" or "-") -> its canonical name."""
    out: dict[str, str] = {}
    for m in METRICS.values():
        for a in (m.name, m.label, *m.aliases):
            out[_squash(a)] = m.name
    for t in TERMS:
        if t.metric is not None:
            for a in t.aliases:
                out[_squash(a)] = t.metric
    for vague in ("risk", "performance", "profit", "benchmark"):  # too loose to read a metric
        out.pop(vague, None)
    out.update(
        {"dd": "max_drawdown", "수익": "total_return", "샤프": "sharpe", "낙폭": "max_drawdown"}
    )
    return out


_METRIC_NAMES = _metric_aliases()
_ALIAS_PATTERNS = ["[\\s_\\-]*".join(map(re.escape, a)) for a in _METRIC_NAMES]
_METRIC = re.compile(
    "(?<![a-z])(?:" + "|".join(sorted(_ALIAS_PATTERNS, key=len, reverse=True)) + ")(?![a-z])"
)
_ID = re.compile(r"(?<![a-z0-9])bt-[0-9a-f]{8,}(?![0-9a-f])")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")

_BACKTESTS = _words(
    r"backtest(?:s|ed|ing)?|back-?tests?|bts?(?!-)|runs|results|strateg(?:y|ies)|strats?",
    "백테스트|백테스팅|결과|전략|돌린|돌렸던",
)
_MINE = re.compile(
    _words("my|mine|i|i've|i'd|i'm").pattern + r"|(?:^|\s)(?:내|나의|제|저의|우리)(?=\s|$|가|는)"
)
_TOP = _words(
    "top|best|highest|greatest|biggest|largest|most|strongest|leading|number one",
    "상위|최고|베스트|1등|1위|가장|제일|높은|큰|좋은|많은",
)
_LOW = _words(
    "lowest|smallest|least|fewest|shallowest|mildest|tiniest", "최저|낮은|작은|얕은|적은|최소"
)
_DEEP = _words(
    "deepest|worst|largest|biggest|highest|steepest|heaviest|most severe", "깊은|큰|최악|높은"
)
_BEST = _words("top|best", "상위|최고|베스트")
_WORST = _words(
    r"worst|poorest|weakest|bottom|nastiest|ugliest|harshest|most painful|"
    r"lost (?:the )?most(?: money)?|(?:biggest|largest) loss(?:es)?|"
    r"(?:lost|losing) the most|(?:biggest )?losers?|laggards?|underperform(?:ed|ing|ers?)?",
    r"최악|꼴찌|최하위|하위|(?:제일|가장)\s*(?:나쁜|못한|안\s*좋은|부진한)|"
    r"손실이\s*(?:제일|가장)\s*큰|(?:제일|가장)\s*많이\s*(?:잃|손해)",
)
_PERFORMED = _words(
    r"best[- ]performing|performed (?:the )?best|did (?:the )?best|most profitable|"
    r"made the most(?: money)?",
    r"(?:제일|가장)\s*(?:잘\s*된|잘한|좋았던|많이\s*번)",
)
_SEARCH = _words(
    r"find|search|look(?:ing)? (?:for|up)|dig(?:ging)? (?:up|out)|"
    r"did i (?:ever )?(?:back-?test|test|run|try)|"
    r"have i (?:ever )?(?:back-?tested|tested|run|tried)|"
    r"any of my|show me my|pull up my|bring up my",
    r"찾아|검색|찾기|돌렸던|돌려\s*봤|해\s*봤|했던",
)
_RUN = _words(
    r"run|rerun|re-run|backtest|back-test|bt(?!-)|test|try|simulate|kick(?:ing)? off|fire off|"
    r"launch|throw|chuck|apply",
    "돌려|돌리|실행|테스트|백테스트",
)
_ABOUT_PAST = re.compile(
    _words("my|mine|did|was|were|how did|have i|had").pattern + r"|(?:^|\s)(?:내|제)(?=\s|$|가)"
)
_STRATEGY_WORD = _words("strat(?:egy|egies|s)?", "전략")
_LIST = _words(
    r"(?:can|could|may) i (?:run|use|backtest|test|try)|i can (?:run|use|backtest|test|try)|"
    r"available|runnable|do i have|"
    r"have i got|(?:i have|i've got) saved|saved|list|names?",
    r"목록|리스트|실행할\s*수|돌릴\s*수|쓸\s*수|가능한|저장된|있는\s*전략|뭐가\s*있|어떤\s*게\s*있"
    r"|뭐\s*있",
)
_SPEND = _words(
    "spend|spent|spending|bill|billed|bills|charges?|charged|paid|pay",
    r"비용|지출|요금|청구|썼|쓴\s*돈|돈",
)
_COST = re.compile(_words("costs?").pattern + r"|\$")
_COST_ME = _words(r"(?:cost|costs|charged|billed|set) (?:me|us)(?: back)?|we|our|us")
"""The user in a question about the bill that leaves out "my": "what has gpt-4o cost me"."""
_USAGE = _words("usage|tokens?|calls|requests", "사용량|토큰|호출")
_MODELS = _words(r"models?|llms?|ai|api|gpt[\w.-]*|openai", "모델|엘엘엠")
_BUDGET = _words(
    "budget|cap|limit|headroom|allowance|quota", r"예산|한도|남은\s*(?:돈|금액)|얼마\s*남"
)
_TODAY = _words("today|today's", "오늘|금일")
_THIS_MONTH = _words("this month", r"이번\s*달|이번\s*월|이달")
_LAST_DAYS = re.compile(_words(r"(?:last|past) (\d{1,3}) days").pattern + r"|최근\s*(\d{1,3})\s*일")
_MARKET = _words(
    r"price|prices|priced|close|closes|closing|open|high|highs|low|lows|volatility|volatile|"
    r"trade[ds]?|trading|data|bars?|candles?|market|chart|quote|range|return|returns|"
    r"performance|perform|did|do|doing",
    "시세|가격|주가|종가|시가|고가|저가|최고가|최저가|변동성|데이터|수익률|올랐|떨어|움직",
)
_FOLLOW_UP = _words(
    "it|its|it's|that|those|these|them|they|same|again|instead|this one|that one|the other|"
    "previous|above|last one",
    r"그거|그것|이거|이것|저거|저것|같은|그럼|그러면|그건|거기|아까|방금|위에|이전|그\s*전략",
)
_SUBJECT = _words(
    r"donchian(?: breakout)?|turtle|breakouts?|momentum|mean[- ]reversion|"
    r"bollinger(?: bands?)?|macd|rsi|sma|ema|moving averages?|(?:golden|death) cross|"
    r"crossovers?|trend(?: following)?|buy[- ]and[- ]hold|"
    + "|".join(n.lower() for n in STRATEGIES),
    r"모멘텀|돌파|평균\s*회귀|볼린저|이동\s*평균|추세|골든\s*크로스",
)
_NUMBER_WORDS = {
    w: i + 1
    for i, w in enumerate(
        ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
_N = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + ")"
_KOREAN_COUNTS = {
    w: i + 1
    for i, w in enumerate(("한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉", "열"))
}
_K = re.compile(
    _words(rf"(?:top|best|first)[\s-]*{_N}|{_N}\s+(?:best|top|highest)").pattern
    + r"|(?:상위|top)\s*(\d{1,2})|(\d{1,2})\s*(?:개|건|위)"
    + r"|(?<![가-힣])("
    + "|".join(_KOREAN_COUNTS)
    + r")\s*(?:개|건|가지)"
)


def _lower(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split())


def metrics_named(text: str) -> list[str]:
    """The canonical metrics a message names, in order, each once."""
    found: list[str] = []
    for m in _METRIC.finditer(_lower(text)):
        name = _METRIC_NAMES.get(_squash(m.group(0)))
        if name is not None and name not in found:
            found.append(name)
    return found


def _k(text: str) -> int | None:
    m = _K.search(text)
    if m is None:
        return None
    raw = next(g for g in m.groups() if g)
    k = _NUMBER_WORDS.get(raw) or _KOREAN_COUNTS.get(raw) or int(raw)
    return k if 1 <= k <= 10 else None


# ---------------------------------------------------------------------------- the readings


def _order(metric: str, text: str) -> str | None:
    """ "best" or "worst" first, as the message ranks `metric`; None when it does not say."""
    top, low, worst = bool(_TOP.search(text)), bool(_LOW.search(text)), bool(_WORST.search(text))
    if metric == "max_drawdown":  # ranked closest to zero first: "smallest" is best
        if low or (_BEST.search(text) and not _DEEP.search(text)):
            return "best"
        return "worst" if _DEEP.search(text) or worst else None
    if worst or low:  # "가장 낮은 샤프": "가장" (most) goes with "낮은" (low)
        return "worst"
    return "best" if top else None


def _rank(text: str) -> Read | None:
    metrics = metrics_named(text)
    if not metrics and (_WORST.search(text) or _PERFORMED.search(text)):
        metrics = ["total_return"]  # "which did the worst?", "my best performing backtest"
    if len(metrics) != 1 or not (_BACKTESTS.search(text) or _MINE.search(text)):
        return None
    metric = metrics[0]
    order = _order(metric, text)
    if order is None or metric in ("exposure", "buy_and_hold"):
        return None
    args: dict[str, Any] = {"metric": metric}
    if order == "worst":
        args["order"] = "worst"
    if (k := _k(text)) is not None:
        args["k"] = k
    symbols = symbols_named(text)
    if len(symbols) == 1:
        args["symbol"] = symbols[0]
    return Read("top_backtests", args, f"a ranking by {metric}")


def _subject(text: str) -> str | None:
    """What a search is about: the strategies and indicators the message names."""
    found = [m.group(0) for m in _SUBJECT.finditer(text)]
    return " ".join(dict.fromkeys(found)) or None


def _search(text: str) -> Read | None:
    if not _SEARCH.search(text):
        return None
    subject = _subject(text)
    symbols = symbols_named(text)
    if subject is None and len(symbols) != 1:
        return None
    args: dict[str, Any] = {"query": subject or symbols[0]}
    if len(symbols) == 1:
        args["symbol"] = symbols[0]
    return Read("search_my_backtests", args, "a search of the user's backtests")


def _spend(text: str) -> Read | None:
    budget, usage = bool(_BUDGET.search(text)), bool(_USAGE.search(text))
    spend = bool(_SPEND.search(text)) or bool(_COST.search(text) and _MODELS.search(text))
    mine = _MINE.search(text) or _COST_ME.search(text) or _HANGUL.search(text)  # "내" left out
    if not (budget or usage or spend) or not mine:
        return None  # "how much does gpt-4o cost?" asks a price, not the user's bill
    if _BACKTESTS.search(text):
        return None  # a backtest's commission costs, not the model bill
    if budget or _TODAY.search(text):
        return Read("my_spend", {}, "today's spend and budget")
    if _THIS_MONTH.search(text):
        first = datetime.now(UTC).date().replace(day=1)
        return Read("my_usage", {"since": first.isoformat()}, "this month's usage")
    days = _LAST_DAYS.search(text)
    if days is not None:
        since = datetime.now(UTC).date() - timedelta(days=int(days.group(1) or days.group(2)))
        return Read("my_usage", {"since": since.isoformat()}, "usage over the last days")
    if period(text) or RELATIVE.search(text):
        return None  # "since March", "지난 달": for the model to word as `since`
    return Read("my_usage", {}, "usage and cost so far")


_TRADES_ON = re.compile(r"(?<![a-z])trad(?:es|ing) (?:off|on|using|with|based on|around)(?![a-z])")
""""trades" as a verb ("a strategy that trades off RSI"), not the metric."""


def _list(text: str) -> Read | None:
    if not _STRATEGY_WORD.search(text) or not _LIST.search(text):
        return None
    if metrics_named(_TRADES_ON.sub(" ", text)) or symbols_named(text):
        return None
    return Read("list_my_strategies", {}, "the strategies the user has and can run")


_PRICE_WORDS = r"close|closes|closing|price|prices|stock|shares|quote|chart|candles?|ohlc"
_TICKER = re.compile(
    rf"(?<![a-z0-9/$-])([a-z]{{2,5}})(?:'s)?\s+(?:{_PRICE_WORDS})(?![a-z])"
    rf"|(?<![a-z])(?:{_PRICE_WORDS}) (?:of|for|on) ([a-z]{{2,5}})(?![a-z0-9/-])"
)
_NOT_TICKER_WORDS = (
    "the its a an my our your their his her last first final daily same that this what which "
    "high low open avg mean day days week month year prev next each any all and or to of for "
    "on at in by is was did does do how why when then than bar bars max min sma ema rsi macd "
    "atr bb obv roc vwap adx strat ok so now just only real show give get pull tell me it "
    "share end start whole full entry exit stop"
)
_NOT_TICKERS = frozenset(_NOT_TICKER_WORDS.split())


def unbundled_symbol(text: str) -> str | None:
    """A ticker-like word the message prices that is not a bundled symbol ("msft close on
    2010-06-30", "price of eth"), upper-cased; None when there is none, or a bundled one is
    named. The answer is then market_data's own "not available" (measured on the fourth fresh
    chat set's tune half: the 0.5B turned "msft close on 2010-06-30" into backtest ids)."""
    if symbols_named(text):
        return None
    found = {a or b for a, b in _TICKER.findall(text)} - _NOT_TICKERS
    return found.pop().upper() if len(found) == 1 else None


def _market(text: str) -> Read | None:
    symbols = symbols_named(text)
    if not symbols and not _BACKTESTS.search(text) and (foreign := unbundled_symbol(text)):
        return Read("market_data", {"symbol": foreign, **period(text)}, "a symbol not bundled")
    if len(symbols) != 1 or not _MARKET.search(text) or _BACKTESTS.search(text):
        return None
    if _RUN.search(text) or named_strategy(text) or (_MINE.search(text) and _SEARCH.search(text)):
        return None
    if [m for m in metrics_named(text) if m != "total_return"]:
        return None  # "GOOG's Sharpe": a backtest's metric, not market data
    return Read("market_data", {"symbol": symbols[0], **period(text)}, "market data")


def _parameters(name: str, text: str) -> dict[str, Any] | None:
    """The values the message gives the strategy's own parameters ("entry 10, exit 5",
    "fast=10"), or None when it has a number that is not one of them (left to the model)."""
    known = strategy_parameters(STRATEGIES[name])
    out: dict[str, Any] = {}
    rest = _ID.sub(" ", text)
    for p in known:
        m = re.search(
            rf"(?<![a-z]){re.escape(p)}\s*(?:=|:|of|to|at|is)?\s*(-?\d+(?:\.\d+)?)(?![\d.])",
            rest,
            re.IGNORECASE,
        )
        if m is not None:
            out[p] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
            rest = rest[: m.start()] + " " + rest[m.end() :]
    return None if re.search(r"\d", rest) else out


def _run(text: str, said: str) -> Read | None:
    if not _RUN.search(text) or _SEARCH.search(text) or _ABOUT_PAST.search(text):
        return None  # "how did my SmaCross backtest do?" asks about a stored run
    symbols = symbols_named(text)
    name = named_strategy(said)
    if name is not None and len(symbols) == 1:
        params = _parameters(name, said)
        if params is None:
            return None
        args: dict[str, Any] = {"strategy_name": name, "symbol": symbols[0]}
        if params:
            args["parameters"] = params
        return Read("run_backtest", args, f"a run of the named strategy {name}")
    drafted = draft_spec(said)
    if name is None and drafted.spec is not None:
        spec = drafted.spec
        args = {
            "spec": spec.model_dump(mode="json", exclude_none=True),
            "symbol": spec.symbol or (symbols[0] if len(symbols) == 1 else "GOOG"),
        }
        args.update({k: getattr(spec, k).isoformat() for k in ("start", "end") if getattr(spec, k)})
        return Read("run_strategy_spec", args, "a strategy the message states whole")
    return None


def _by_id(ids: list[str]) -> Read | None:
    distinct = list(dict.fromkeys(ids))
    if len(distinct) == 1:
        return Read("get_backtest", {"backtest_id": distinct[0]}, "the backtest the user named")
    if len(distinct) == 2:
        a, b = distinct
        return Read("compare_backtests", {"id_a": a, "id_b": b}, "the two backtests named")
    return None


def read_call(turn: str, earlier: str = "") -> Read | None:
    """The one call `turn` asks for, or None (module docstring). `earlier`: the user's earlier
    messages of the thread; with them, a message that points back at the conversation is
    left to the model."""
    text = _lower(turn)
    if not text or len(text) > 600:
        return None
    if earlier.strip() and _FOLLOW_UP.search(text):
        return None
    ids = _ID.findall(text)
    if ids:
        return _by_id(ids)
    found = (_rank(text), _search(text), _spend(text), _list(text), _market(text), _run(text, turn))
    readings = [r for r in found if r is not None]
    names = {r.name for r in readings}
    if names == {"top_backtests", "search_my_backtests"}:  # "find my best …": a ranking
        readings = [r for r in readings if r.name == "top_backtests"]
    return readings[0] if len(readings) == 1 else None


_ANOTHER = _words(
    r"same|again|now|and|what about|how about|instead|too|also|only|just",
    r"그럼|그러면|이번엔|같은|도\b|는\?|만\b|만\s*보면",
)


def read_follow_up(turn: str, previous: tuple[str, dict[str, Any]] | None) -> Read | None:
    """The previous turn's call again on another symbol or period, or a named strategy's run
    with other parameters, for a follow-up that only names those ("now the same strategy on
    GOOG?", "그럼 BTCUSD는?", "그럼 11월 한 달만 보면?", "ok now fast 20 / slow 100, same
    ticker"): the call's other arguments stay, and a month without its year takes the previous
    call's year (`window_in_year_of`). None when the message says anything more (a metric, a
    strategy, an id, a rule) or changes nothing. Measured on the fresh chat sets' tune halves:
    the 0.5B repeated such a call only sometimes, and wrote "2017-11-31" for November."""
    text = _lower(turn)
    if previous is None or len(text) > 200 or not _ANOTHER.search(text):
        return None
    name, args = previous
    if _ID.search(text) or _SEARCH.search(text):
        return None
    if [m for m in metrics_named(text) if not (name == "market_data" and m == "total_return")]:
        return None  # "수익률" asks again what market_data gives; any other metric is new
    named = named_strategy(turn)
    if named is not None and named != args.get("strategy_name"):
        return None
    new, what = dict(args), []
    symbols = symbols_named(text)
    if len(symbols) > 1:
        return None
    if symbols and "symbol" in args and symbols[0] != str(args["symbol"]).upper():
        new["symbol"] = symbols[0]
        if isinstance(new.get("spec"), dict) and "symbol" in new["spec"]:
            new["spec"] = {**new["spec"], "symbol": symbols[0]}
        what.append(f"on {symbols[0]}")
    strategy = str(args.get("strategy_name") or "")
    if name == "run_backtest" and strategy in STRATEGIES:
        given = _parameters(strategy, turn)
        if given is None:
            return None  # a number that is not one of the strategy's parameters
        old = dict(args.get("parameters") or {})
        if given and {**old, **given} != old:  # "ok now fast 20 / slow 100, same ticker"
            new["parameters"] = {**old, **given}
            what.append("with " + ", ".join(f"{k}={v}" for k, v in given.items()))
    window = window_in_year_of(text, args) if name in PERIOD_TOOLS else {}
    if window and window != {k: str(args.get(k) or "")[:10] for k in ("start", "end")}:
        new.update(window)
        what.append(f"from {window['start']} to {window['end']}")
    if not what:
        return None
    return Read(name, new, f"the previous {name} {' '.join(what)}")


_COMPARE = _words(
    r"compare|comparison|vs\.?|versus|difference|differ|side by side|"
    r"which of (?:the|those|these|them)(?: two)?",
    r"비교|차이|대비|둘\s*중|두\s*개\s*중",
)
_THE_TWO = _words(
    r"those two|these two|the two|both(?: of them)?|the pair|them",
    r"그\s*두|이\s*두|두\s*개|두\s*가지|두\s*전략|두\s*백테스트|둘",
)


def read_pair(turn: str, shown: str) -> Read | None:
    """`compare_backtests` of the two backtests the previous answer listed, for a follow-up
    that asks to compare "those two" ("그 두 개 비교해줘") and names no id. `shown`: the last
    tool result before this turn; None unless it lists exactly two ids (measured on the
    second fresh chat set's tune half: the 0.5B compared "bt-1" with "bt-2")."""
    text = _lower(turn)
    if len(text) > 200 or _ID.search(text):
        return None
    if not _COMPARE.search(text) or not _THE_TWO.search(text):
        return None
    ids = list(dict.fromkeys(_ID.findall(shown.lower())))
    if len(ids) != 2:
        return None
    return Read("compare_backtests", {"id_a": ids[0], "id_b": ids[1]}, "the two just listed")


__all__ = [
    "Read",
    "metrics_named",
    "period",
    "read_call",
    "read_follow_up",
    "read_pair",
    "symbols_named",
]
