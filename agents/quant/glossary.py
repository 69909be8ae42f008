"""Trading concepts people ask about ("what is a stop-loss?", "공매도가 뭐야?"): one table in
code, so a definition is never the small model's invention.

`definition_question` recognises a message that only asks what one known term is or means, in
English or Korean, and returns the term; anything else gives None (a backtest id, "my"/"내", a
number, a symbol, a second clause: "What is the Sharpe of my best backtest?", "GOOG의 최대 낙폭이
뭐야?"), so data questions still go to the tools. It takes off the question frame ("what is",
"define", "뭐야", "무슨 뜻", "란", "설명해줘"), articles, particles and a trailing "order",
"strategy", "전략", "주문"; what is left must be one whole alias, in any case, spacing, hyphens,
dots or slashes. `answer` gives the definition in the question's language.

Terms with a `metric` are the backtest metrics of `tools.metrics.METRICS`, under the same canonical
names, so the chat graph can route them to `explain_metric`; their definitions here say the same.
The general concepts are the rows of `agents.quant.glossary_terms`; the metrics and the
backtesting concepts are here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agents.quant.glossary_terms import GENERAL, Row


@dataclass(frozen=True)
class Term:
    """One concept: its name, what traders call it in English and Korean, what it means."""

    name: str
    aliases_en: tuple[str, ...]
    aliases_ko: tuple[str, ...]
    definition_en: str
    definition_ko: str
    metric: str | None = None
    """The canonical name in `tools.metrics.METRICS` when the term is a backtest metric."""

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every name the term answers to: its name and both languages' aliases."""
        return (self.name, *self.aliases_en, *self.aliases_ko)


_METRIC_ROWS: dict[str, Row] = {
    "total_return": (
        "total return|cumulative return|overall return|total_return",
        "총수익률|누적 수익률|전체 수익률|수익률|토탈 리턴",
        "The percentage change of the account over the backtest: final equity divided by the "
        "initial cash, minus one, times 100. Commissions are included.",
        "백테스트 기간 동안 계좌가 변한 비율입니다. 최종 자산을 초기 자금으로 나눈 값에서 "
        "1을 빼고 100을 곱하며, 수수료를 반영합니다.",
    ),
    "cagr": (
        "CAGR|compound annual growth rate|annualized return|annualised return|annual return",
        "연평균 성장률|연평균 수익률|연복리 수익률|연평균 복리 수익률|연복리 성장률|연환산 수익률",
        "Compound annual growth rate: the constant yearly return that turns the initial cash "
        "into the final equity over the backtest's length in years.",
        "연평균 복리 성장률로, 백테스트 기간(연 단위) 동안 초기 자금을 최종 자산으로 만드는 "
        "일정한 연간 수익률입니다. 기간이 다른 결과끼리 비교할 수 있습니다.",
    ),
    "sharpe": (
        "Sharpe ratio|Sharpe|sharpe_ratio",
        "샤프 지수|샤프 비율|샤프|샤프 지표",
        "The annualised return divided by the annualised volatility of the strategy's returns "
        "(risk-free rate 0): return per unit of total risk. Higher is better.",
        "전략 수익률의 연환산 수익을 연환산 변동성으로 나눈 값(무위험 수익률 0)으로, 전체 "
        "위험 한 단위당 수익입니다. 높을수록 좋습니다.",
    ),
    "sortino": (
        "Sortino ratio|Sortino|sortino_ratio",
        "소르티노 지수|소르티노 비율|소르티노|소티노|소티노 지수|소티노 비율",
        "Like the Sharpe ratio, but divided by the downside deviation only, the volatility of "
        "the losing periods, so upside swings are not penalised.",
        "샤프 지수와 비슷하지만 하방 편차(손실 구간의 변동성)로만 나눈 값이라, 상승 쪽 "
        "변동은 불이익을 받지 않습니다.",
    ),
    "max_drawdown": (
        "max drawdown|maximum drawdown|MDD|max DD|max_drawdown",
        "최대 낙폭|최대 손실폭|최대 하락폭|최대 드로다운|최대 자본 하락률",
        "The largest fall of equity from a peak to a later trough, in percent of the peak, "
        "reported as a negative number (or zero). Closer to zero is better.",
        "자산이 고점에서 이후 저점까지 가장 크게 떨어진 비율(고점 대비 %)로, 음수(또는 "
        "0)로 표시합니다. 0에 가까울수록 좋습니다.",
    ),
    "win_rate": (
        "win rate|winrate|hit rate|win ratio|win percentage|percent profitable",
        "승률|적중률|승리 비율",
        "The percentage of closed trades that made a profit. Read it with the total return: a "
        "few large losses can outweigh many small wins.",
        "청산된 거래 중 이익을 낸 거래의 비율입니다. 큰 손실 몇 번이 작은 이익 여러 번을 "
        "넘어설 수 있으므로 총수익률과 함께 봐야 합니다.",
    ),
    "exposure": (
        "exposure|market exposure|exposure time|time in market",
        "노출도|시장 노출|시장 노출도|익스포저|노출 시간|노출 비율",
        "The percentage of bars during which the strategy held a position. Lower exposure for "
        "the same return means the money was at risk for less time.",
        "전략이 포지션을 보유한 봉의 비율입니다. 같은 수익이라면 노출도가 낮을수록 돈이 "
        "위험에 노출된 시간이 짧았다는 뜻입니다.",
    ),
    "buy_and_hold": (
        "buy and hold|buy-and-hold|buy & hold|buy-and-hold return|B&H|buy_and_hold",
        "매수 후 보유|바이앤홀드|매수 후 보유 수익률|단순 보유 수익률",
        "The return of buying the symbol on the first bar of the backtest and holding it to the "
        "last bar: the benchmark a strategy should beat.",
        "백테스트 첫 봉에서 종목을 사서 마지막 봉까지 그대로 보유했을 때의 수익률로, 전략이 "
        "이겨야 할 기준입니다.",
    ),
    "trades": (
        "trades|number of trades|trade count|num trades|total trades",
        "거래 횟수|매매 횟수|거래 수|트레이드 수|총 거래 수",
        "The number of closed trades (a position still open on the last bar is closed there "
        "and counted). Few trades make the other statistics noisy.",
        "청산된 거래의 수입니다(마지막 봉까지 열려 있던 포지션은 그때 청산해 셉니다). "
        "거래가 적으면 다른 통계를 믿기 어렵습니다.",
    ),
}
"""The backtest metrics by their canonical name in `tools.metrics.METRICS`."""

_BACKTESTING: tuple[Row, ...] = (
    (
        "backtest|backtesting|back-test|back test",
        "백테스트|백테스팅|과거 데이터 검증",
        "Running a strategy's rules on historical data to see how it would have performed, "
        "measured by return, Sharpe ratio, max drawdown and so on. Good results are necessary, "
        "not sufficient: overfitting and biases can produce them.",
        "전략 규칙을 과거 데이터에 적용해 그때 어떤 성과를 냈을지 확인하는 것으로, 수익률, "
        "샤프 지수, 최대 낙폭 등으로 평가합니다. 좋은 결과는 필요조건일 뿐, 과최적화나 "
        "편향으로도 나올 수 있습니다.",
    ),
    (
        "overfitting|over-fitting|overfit|curve fitting|over-optimization|over-optimisation",
        "과최적화|과적합|오버피팅|커브 피팅|과대적합",
        "Tuning a strategy so closely to past data that it captures noise instead of a real "
        "pattern: it shines in the backtest and fails on new data. Few rules and out-of-sample "
        "tests guard against it.",
        "전략을 과거 데이터에 너무 맞춰 실제 패턴이 아닌 잡음까지 학습한 상태로, 백테스트에선 "
        "훌륭하지만 새 데이터에선 실패합니다. 규칙을 단순하게 하고 표본 외 검증을 하는 것이 "
        "대책입니다.",
    ),
    (
        "look-ahead bias|lookahead bias|look-ahead|lookahead|future leak|future leakage",
        "미래 참조 편향|룩어헤드 바이어스|미래 정보 편향|미래 데이터 누수",
        "A backtest error where the strategy uses information not yet available at the time of "
        "the trade, e.g. today's close to trade at today's open. It makes results look better "
        "than was possible.",
        "거래 시점에는 아직 알 수 없던 정보를 백테스트가 쓰는 오류입니다(예: 오늘 종가를 "
        "보고 오늘 시가에 거래). 실제로는 불가능했던 좋은 성과가 나옵니다.",
    ),
    (
        "survivorship bias|survivor bias|survival bias",
        "생존 편향|생존자 편향|생존 편의|생존자 편의",
        "Testing only on assets that still exist today and ignoring those delisted or bankrupt. "
        "The failures are left out, so past returns look better than they really were.",
        "상장 폐지되거나 파산한 종목은 빼고 지금 살아남은 자산만으로 검증해 생기는 "
        "편향입니다. 실패한 종목이 빠지므로 과거 수익률이 실제보다 좋아 보입니다.",
    ),
    (
        "walk-forward analysis|walk-forward|walk-forward optimization|walk-forward testing|"
        "walk-forward test|WFA|WFO",
        "워크 포워드 분석|워크포워드|워크 포워드 최적화|전진 분석|전진 검증",
        "Optimising a strategy on one window of data and testing it on the next, unseen window, "
        "then rolling both forward and repeating. The joined test windows estimate live "
        "performance more honestly.",
        "한 구간의 데이터로 전략을 최적화하고 바로 다음의 보지 않은 구간에서 검증하기를 "
        "창을 밀어 가며 반복하는 방법입니다. 이어 붙인 검증 구간이 실전 성과를 더 정직하게 "
        "보여 줍니다.",
    ),
    (
        "out-of-sample|out-of-sample test|out-of-sample testing|out-of-sample data|OOS|holdout",
        "표본 외|표본 외 검증|표본 외 데이터|아웃오브샘플",
        "Data not used to build or tune a strategy, kept aside to test it. It is the honest "
        "check: a big drop from the in-sample results signals overfitting.",
        "전략을 만들거나 조정할 때 쓰지 않고 검증용으로 남겨 둔 데이터입니다. 정직한 "
        "평가이며, 표본 내 결과보다 크게 나빠지면 과최적화를 의심해야 합니다.",
    ),
    (
        "in-sample|in-sample data|in-sample period",
        "표본 내|표본 내 데이터|인샘플",
        "The data a strategy was developed and optimised on. Results on it are optimistic, "
        "because the parameters were chosen to fit it.",
        "전략을 개발하고 최적화하는 데 쓴 데이터입니다. 매개변수를 이 데이터에 맞춰 골랐기 "
        "때문에 여기서 잰 성과는 낙관적입니다.",
    ),
    (
        "paper trading|paper trade|simulated trading|demo trading|forward testing",
        "모의 투자|모의 거래|모의 매매|페이퍼 트레이딩|모의 트레이딩",
        "Running a strategy in real time on live market data with simulated money instead of "
        "real orders. It tests it out of sample without risking capital, though simulated fills "
        "can be kinder than real ones.",
        "실제 주문 대신 가상 자금으로 실시간 시장 데이터에서 전략을 돌려 보는 것입니다. "
        "돈을 걸지 않고 표본 외 검증을 할 수 있지만, 가상 체결은 실제보다 유리할 수 있습니다.",
    ),
)
"""How backtests go wrong and how to check them."""


def _term(row: Row, metric: str | None = None) -> Term:
    names, aliases_ko, definition_en, definition_ko = row
    name, *aliases_en = names.split("|")
    ko = tuple(aliases_ko.split("|"))
    return Term(name, tuple(aliases_en), ko, definition_en, definition_ko, metric)


TERMS: tuple[Term, ...] = (
    *(_term(row, metric) for metric, row in _METRIC_ROWS.items()),
    *(_term(row) for row in (*GENERAL, *_BACKTESTING)),
)
"""Every term: the nine metrics first, then the general and backtesting concepts."""

_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015_./·'\"`]+")


def _key(text: str) -> str:
    """An alias as matching sees it: lower case, "&" as "and", no spaces, hyphens, dots,
    slashes or quotes ("Stop-Loss", "stop loss", "S/L" -> "stoploss", "stoploss", "sl")."""
    return _SEPARATORS.sub("", text.lower().replace("&", "and"))


_INDEX = {_key(alias): term for term in TERMS for alias in term.aliases}


def find_term(name: str) -> Term | None:
    """The term a whole name means ("MDD", "stop loss", "공매도"), any case/spacing, or None."""
    return _INDEX.get(_key(name))


_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")


def question_language(text: str) -> Literal["en", "ko"]:
    """ "ko" when the text has any Hangul, else "en"."""
    return "ko" if _HANGUL.search(text) else "en"


def answer(term: Term, lang: str) -> str:
    """The term's definition in `lang` ("ko" for Korean, anything else English)."""
    if lang == "ko":
        return term.definition_ko or term.definition_en
    return term.definition_en or term.definition_ko


# A definition question is short and has no data in it: a number or date, a backtest id, "my".
_MAX_CHARS = 120
_DATA = re.compile(
    r"\d|\bbt-\w|\b(?:my|mine|our|ours|your)\b|(?:^|\s)(?:내|나의|제|저의|우리|우리의)\s"
)
_LEAD = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|so|and|um|uh|sorry|quick question|question|eli5|tl;?dr)"
    r"[,:!]?\s+"
    r"|(?:혹시|근데|그런데|그럼|그러면|저기|음|아|그래서)[,\s]+"
    r"|(?:트레이딩|주식|투자|매매|퀀트|금융)(?:에서|에서의)?\s+)"
)
_TAIL = re.compile(
    r"[\s,]+(?:please|pls|plz|thanks|thank you|for me|to me|in simple terms|in plain english|"
    r"in simple words|simply|briefly|exactly|again|actually|then|in (?:trading|finance|"
    r"investing|investment|stocks|the stock market|the markets?|quant|quantitative finance|"
    r"quant(?:itative)? trading|backtesting|backtests|forex|fx|crypto|technical analysis)|"
    r"as (?:the|this) (?:platform|system|app|tool) (?:defines|uses|means) it|"
    r"as (?:you|the platform|this platform) define(?:s)? it|as defined (?:here|by the platform))$"
)
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "？": "?", "！": "!"})


def _clean(text: str) -> str:
    """Lower case, one space, no closing punctuation, greeting or "please"/"in trading"."""
    body, previous = " ".join(text.translate(_QUOTES).lower().split()), ""
    while body != previous:
        previous = body
        body = body.strip(" ?!.,~…:;ㅋㅎㅠㅜ^")
        body = _TAIL.sub("", _LEAD.sub("", body))
    return body


_ASK = r"(?:(?:can|could|would|will) you (?:please )?|please |do you know |i want to know |)"
_GIVE = r"(?:줘|줘요|주세요|줄래|줄래요|주라|주실래요|주시겠어요|줄 수 있어|줄 수 있나요|봐|봐요)"
_WHAT_KO = (
    r"(?:뭐|뭔|무엇|무어|뭣)(?:이)?(?:야|예요|에요|여|요|임|지|지요|죠|니|냐|인가|인가요|가요|"
    r"인데|인데요|데|입니까|일까|일까요|까|까요)?|뭡니까|뭘까|뭘까요"
)
_FRAMES = tuple(
    re.compile(frame)
    for frame in (
        # English: what is / what's / what are X, what does X mean, define / explain X ...
        rf"{_ASK}(?:what|wat)(?:'s|s| is| are|'re)(?: meant by| the (?:meaning|definition) of)?"
        r" (?P<x>.+)",
        rf"{_ASK}what (?:does|do) (?P<x>.+) (?:mean|stand for|refer to|do)",
        rf"{_ASK}what do (?:you|we|people|traders|they) mean by (?P<x>.+)",
        rf"{_ASK}(?:explain|define|describe|tell me|clarify)(?: to me)? what (?P<x>.+?)"
        r" (?:is|are|means|mean)",
        rf"{_ASK}(?:explain|define|describe|clarify)(?: to me)?"
        r"(?: the (?:term|concept|idea|meaning|definition)(?: of)?)? (?P<x>.+?)(?: to me)?",
        r"(?:the )?(?:meaning|definition) of (?P<x>.+)",
        r"(?P<x>.+?) (?:meaning|definition|explained)",
        rf"{_ASK}how (?:does|do) (?P<x>.+) work",
        # "why does X reduce risk?", "분산투자가 왜 리스크를 줄여줘?": what X is answers why
        r"why (?:does|do|is|are|would|should|can) (?P<x>.+?) (?:reduce|lower|cut|limit|help|"
        r"work|matter|improve|protect|hedge|smooth|important|useful|needed|necessary)\b.{0,40}",
        r"(?P<x>.+?)\s*왜\s+.{1,30}",
        r"왜\s+(?P<x>.+?)(?:가|이|는|은|을|를)\s+.{1,30}",
        # Korean: X가 뭐야, X가 무슨 뜻이야, X 뜻, X 설명해줘, X에 대해 알려줘, X란
        rf"(?P<x>.+?)\s*(?:{_WHAT_KO})",
        rf"(?P<x>.+?)\s*(?:뭔지|무엇인지|뭐인지)\s*(?:좀\s*)?(?:(?:알려|설명해)\s*{_GIVE}?|궁금해요?)",
        r"(?P<x>.+?)\s*(?:무슨|어떤)\s*(?:뜻|의미|말)\s*(?:이)?(?:야|예요|에요|요|임|지|죠|니|냐|"
        r"인가|인가요|입니까|일까|일까요)?",
        rf"(?P<x>.+?)\s*(?:뜻|의미|정의|개념)(?:\s*(?:좀\s*)?(?:알려|설명해)\s*{_GIVE}?)?",
        rf"(?P<x>.+?)\s*(?:좀\s*)?설명\s*(?:좀\s*)?(?:해\s*{_GIVE}?|해요|하세요|부탁해요?|"
        r"부탁드려요|부탁드립니다|바랍니다)?",
        rf"(?P<x>.+?)\s*에\s*대해서?\s*(?:좀\s*)?(?:알려|가르쳐)\s*{_GIVE}",
        r"(?P<x>.+?(?:이)?란)",
        # Korean: X는 뭘 뜻하는 거야, X가 무엇을 의미하나요
        r"(?P<x>.+?)\s*(?:뭘|무엇을|뭐를|무얼)\s*(?:뜻|의미)(?:하는|해|해요|하나요|합니까|하지|하니)?"
        r"(?:\s*(?:거야|건가요|거예요|거지|걸까|거니|건지|거에요))?",
        # English: "X - what is it(, why …)?", "X: what's that?"
        r"(?P<x>.+?)(?:\s+[-–]|\s*[:,?])\s*(?:what(?:'s|s| is) (?:it|that|this)|meaning)"
        r"(?:\??[,;\s]+.{0,60})?",
    )
)
"""What a definition question looks like around its subject `x` (matched whole)."""

_STRIPS = tuple(
    re.compile(strip)
    for strip in (
        r"^(?:a|an|the|this|that|term|word|concept|concept of|idea of|so-called|so called)\s+",
        r"\s+(?:order|orders|strategy|strategies|indicator|indicators|signal|technique|method|"
        r"approach|concept|rule)$",
        r"(?<=[a-z])s$",
        r"(?<=[a-z])es$",
        r"\s*(?:(?:이)?라(?:는|고\s*하는|고\s*부르는)\s*(?:게|건|것은|것이|것|말은|말이|말|용어는|"
        r"용어가|용어|개념은|개념이|개념)?|(?:이)?란|에\s*대해서?|에\s*대한|에\s*관해서?|"
        r"[은는이가을를의])$",
        r"\s*(?:전략|주문|지표|매매|기법|개념|용어|뜻|의미|정의|현상|신호)$",
        r"^.{1,24}?(?:에\s*나오는|에서\s*나오는|에서\s*말하는|에\s*있는|에\s*뜨는|에서\s*보이는)\s+",
        r"\s*%$",
    )
)
"""What may be taken off a subject, one piece at a time: articles, plurals, particles and a
trailing "order", "strategy", "전략", "주문" ("평균 회귀 전략이" -> "평균 회귀")."""


def _variants(subject: str) -> list[str]:
    """The subject and everything `_STRIPS` leaves of it, fewest strips first."""
    found = [subject.strip(" \"'`")]
    i = 0
    while i < len(found) and len(found) < 64:
        for strip in _STRIPS:
            shorter = strip.sub("", found[i], count=1).strip(" \"'`,")
            if shorter and shorter not in found:
                found.append(shorter)
        i += 1
    return found


def _term_question(text: str) -> str:
    """The cleaned body of a short question with no data in it (a number or date, a backtest
    id, "my"), or "" for anything else."""
    if len(text) > 4 * _MAX_CHARS:  # before any regex: long input is never a term question
        return ""
    body = _clean(text)
    return "" if len(body) > _MAX_CHARS or _DATA.search(body) else body


def definition_question(text: str) -> Term | None:
    """The term a message only asks the meaning of ("What is a stop-loss order?", "MDD란?",
    "슬리피지 설명해줘"), or None for anything else, e.g. a question about the user's data."""
    body = _term_question(text)
    for frame in _FRAMES if body else ():
        match = frame.fullmatch(body)
        if match is None or len(match["x"]) > 60:
            continue
        if term := _subject_term(match["x"]):
            return term
    return None


_DIFFERENCE = r"(?:the )?(?:actual |real |main |key )?differences?"
_COMPARED = tuple(
    re.compile(frame)
    for frame in (
        rf"(?:{_ASK}(?:what(?:'s|s| is| are) |explain |tell me )?)?{_DIFFERENCE} between "
        r"(?P<a>.+?) and (?P<b>.+?)",
        r"(?P<a>.+?)\s+(?:vs\.?|versus|compared to|or)\s+(?P<b>.+?)"
        rf"(?:[\s,;:?-]+(?:(?:so |then )?(?:what(?:'s|s| is| are) |explain |tell me )?{_DIFFERENCE}"
        r"|how (?:do|does) (?:they|it) differ|which is better|which one is better)"
        r"(?:[\s,;:?-]+.{0,30})?)?",
        r"how (?:does|do|is|are) (?:the )?(?P<a>.+?) (?:differ(?:ent)? from|compare to) "
        r"(?:the )?(?P<b>.+?)",
        r"(?P<a>.+?)\s*(?:와|과|랑|이랑|하고|vs\.?)\s*(?P<b>.+?)(?:의|는|은)?\s*차이(?:가|는|점|점이"
        r"|점은)?\s*(?:뭐|무엇|뭔)?.{0,12}",
    )
)
"""A question that only asks how two terms differ ("sharpe vs sortino, whats the actual
difference?", "difference between a stop-loss and a trailing stop", "샤프와 소르티노의 차이가
뭐야?"), around its subjects `a` and `b` (matched whole)."""


def compared_terms(text: str) -> tuple[Term, Term] | None:
    """The two terms a message only asks the difference of, or None (a question about the
    user's data, one term, terms the glossary does not know, or the same term twice)."""
    body = _term_question(text)
    for frame in _COMPARED if body else ():
        match = frame.fullmatch(body)
        if match is None or max(len(match["a"]), len(match["b"])) > 60:
            continue
        a, b = _subject_term(match["a"]), _subject_term(match["b"])
        if a is not None and b is not None and a != b:
            return a, b
    return None


_MEANING = re.compile(
    r"\b(?:mean|means|meaning|meant|definition|define|defines|defined|explain|explained|describe|"
    r"stand for|refer to|concept|how (?:does|do) .+ work)\b|^(?:what(?:'s| is| are)) an? "
    r"|뜻|의미|정의|개념|설명|뭔지|무엇인지|뭐인지|이란|란$"
)
"""Words that make a question ask what a term means, not a value it could also ask for
("what is the max drawdown?" after a backtest may want its number; "what does max drawdown
mean?", "what is a Sharpe ratio?", "최대 낙폭이 무슨 뜻이야?" do not)."""


def asks_meaning(text: str) -> bool:
    """The message asks for a meaning in so many words (`_MEANING`), not only "what is X?"."""
    return len(text) <= 4 * _MAX_CHARS and _MEANING.search(_clean(text)) is not None


_PAREN = re.compile(r"(?P<a>[^()]+?)\s*\((?P<b>[^()]+)\)(?P<rest>.*)")
"""A term glossed in parentheses: "최대 낙폭(max drawdown)이"."""


def _subject_term(subject: str) -> Term | None:
    """The one term a subject names; a glossed one only when both names are that term."""
    glossed = _PAREN.fullmatch(subject)
    if glossed is not None:
        a = _subject_term(glossed["a"] + glossed["rest"])
        b = _subject_term(glossed["b"])
        return a if a is not None and a == b else None
    return next((t for v in _variants(subject) if (t := find_term(v))), None)
