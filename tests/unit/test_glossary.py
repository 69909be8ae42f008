"""The trading glossary (agents.quant.glossary): the table's shape, and which messages are
"what is X?" questions it answers from code and which are data questions it must leave alone."""

from __future__ import annotations

import re

import pytest

from agents.quant.glossary import (
    TERMS,
    Term,
    answer,
    compared_terms,
    definition_question,
    find_term,
    question_language,
)

# tools/metrics.py's METRICS names, written out: the glossary may not import tools/ (layers).
METRIC_NAMES = {
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "exposure",
    "buy_and_hold",
    "trades",
}
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _sentences(text: str) -> int:
    text = re.sub(r"\b(?:e\.g|i\.e)\.", "eg", text.strip())
    return len([s for s in re.split(r"(?<=[.!?])\s+", text) if s])


# --- the table ---------------------------------------------------------------------------------


def test_the_nine_metrics_are_terms_under_their_canonical_names() -> None:
    metrics = [t.metric for t in TERMS if t.metric is not None]
    assert sorted(metrics) == sorted(METRIC_NAMES)  # each exactly once, no invented name


def test_there_are_at_least_fifty_general_concepts() -> None:
    assert len([t for t in TERMS if t.metric is None]) >= 50


def test_every_concept_has_both_definitions_in_one_to_three_sentences() -> None:
    for term in TERMS:
        if term.metric is not None and not (term.definition_en or term.definition_ko):
            continue  # a metric may leave its definition to tools.metrics
        assert term.definition_en and term.definition_ko, term.name
        assert 1 <= _sentences(term.definition_en) <= 3, term.name
        assert 1 <= _sentences(term.definition_ko) <= 3, term.name
        assert not HANGUL.search(term.definition_en), term.name
        assert HANGUL.search(term.definition_ko), term.name
        assert len(term.definition_en) <= 400 and len(term.definition_ko) <= 250, term.name


def test_every_term_has_korean_aliases_and_english_aliases_are_not_korean() -> None:
    for term in TERMS:
        assert term.aliases_ko, term.name
        assert all(HANGUL.search(a) for a in term.aliases_ko), term.name
        assert not any(HANGUL.search(a) for a in (term.name, *term.aliases_en)), term.name


def test_aliases_are_unique_across_terms() -> None:
    """Every alias finds its own term (matching ignores case, spaces, hyphens, dots, slashes),
    so no spelling is claimed by two terms."""
    clashes = [
        f"{alias!r}: {term.name} / {found.name if found else None}"
        for term in TERMS
        for alias in term.aliases
        if (found := find_term(alias)) is not term
    ]
    assert clashes == []
    names = [t.name.lower() for t in TERMS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("stop loss", "stop-loss"),
        ("Stop-Loss", "stop-loss"),
        ("STOPLOSS", "stop-loss"),
        ("S/L", "stop-loss"),
        ("TP", "take-profit"),
        ("손절", "stop-loss"),
        ("익절", "take-profit"),
        ("공매도", "short selling"),
        ("레버리지", "leverage"),
        ("증거금", "margin"),
        ("평균회귀", "mean reversion"),
        ("추세 추종", "trend following"),
        ("이동평균", "moving average"),
        ("골든 크로스", "golden cross"),
        ("과매수", "overbought and oversold"),
        ("지지선", "support and resistance"),
        ("슬리피지", "slippage"),
        ("분산 투자", "diversification"),
        ("헤지", "hedging"),
        ("백테스트", "backtest"),
        ("과최적화", "overfitting"),
        ("과적합", "overfitting"),
    ],
)
def test_traders_words_find_the_term(alias: str, name: str) -> None:
    term = find_term(alias)
    assert term is not None and term.name == name


@pytest.mark.parametrize(
    ("alias", "metric"),
    [
        ("최대 낙폭", "max_drawdown"),
        ("최대 손실폭", "max_drawdown"),
        ("MDD", "max_drawdown"),
        ("샤프 지수", "sharpe"),
        ("샤프 비율", "sharpe"),
        ("소르티노", "sortino"),
        ("승률", "win_rate"),
        ("연평균 성장률", "cagr"),
        ("연복리 수익률", "cagr"),
        ("총수익률", "total_return"),
        ("매수 후 보유", "buy_and_hold"),
        ("거래 횟수", "trades"),
        ("노출도", "exposure"),
        ("시장 노출", "exposure"),
        ("max drawdown", "max_drawdown"),
        ("Sharpe ratio", "sharpe"),
    ],
)
def test_metric_names_in_both_languages_find_the_metric(alias: str, metric: str) -> None:
    term = find_term(alias)
    assert term is not None and term.metric == metric


def test_general_drawdown_is_not_the_metric() -> None:
    drawdown = find_term("drawdown")
    assert drawdown is not None and drawdown.metric is None
    assert find_term("max drawdown") is not drawdown


def test_definitions_say_what_the_concept_is() -> None:
    short = find_term("short selling")
    assert short is not None
    assert "borrow" in short.definition_en.lower() and "falls" in short.definition_en
    assert "빌려" in short.definition_ko
    stop = find_term("stop-loss")
    assert stop is not None and "loss" in stop.definition_en and "손실" in stop.definition_ko


# --- the questions -----------------------------------------------------------------------------

DEFINITION_QUESTIONS = [
    ("What is a stop-loss order?", "stop-loss"),
    ("look-ahead bias: what's that, and how do I avoid it?", "look-ahead bias"),
    ("slippage - what is it?", "slippage"),
    ("리포트에 나오는 샤프 비율은 뭘 뜻하는 거야?", "Sharpe ratio"),
    ("손절매가 무엇을 의미하나요?", "stop-loss"),
    ("결과에 뜨는 노출도 %가 뭐야?", "exposure"),
    ("what's mean reversion", "mean reversion"),
    ("Define slippage.", "slippage"),
    ("Explain what leverage means", "leverage"),
    ("What does RSI stand for?", "RSI"),
    ("Can you tell me what short selling is?", "short selling"),
    ("공매도가 뭐야?", "short selling"),
    ("평균 회귀 전략이 뭐야?", "mean reversion"),
    ("손절이 무슨 뜻이야", "stop-loss"),
    ("MDD란?", "max drawdown"),
    ("레버리지가 뭔가요", "leverage"),
    ("슬리피지 설명해줘", "slippage"),
    ("골든크로스는 무엇인가요?", "golden cross"),
    ("What are Bollinger Bands?", "Bollinger Bands"),
    ("what are moving averages", "moving average"),
    ("Hey, what is a golden cross in trading?", "golden cross"),
    ("How does a trailing stop work?", "trailing stop"),
    ("what is meant by look-ahead bias", "look-ahead bias"),
    ("What is the definition of alpha?", "alpha"),
    ("VWAP meaning", "VWAP"),
    ("what is S/L", "stop-loss"),
    ("What’s TP?", "take-profit"),
    ("what does a market maker do?", "market maker"),
    ("could you explain the bid-ask spread please", "bid-ask spread"),
    ("What is the Sharpe ratio?", "Sharpe ratio"),
    ("what are stop-limit orders?", "stop-limit order"),
    ("define the term survivorship bias", "survivorship bias"),
    ("공매도의 뜻이 뭐야", "short selling"),
    ("RSI 지표가 뭐야?", "RSI"),
    ("헤지란 무엇인가요", "hedging"),
    ("익절 뜻", "take-profit"),
    ("과최적화가 뭔지 설명해줘", "overfitting"),
    ("소르티노 비율이 무엇인가요", "Sortino ratio"),
    ("시장가가 뭐예요?", "market order"),
    ("혹시 ATR이 뭔가요?", "ATR"),
    ("볼린저 밴드 설명 좀 해주세요", "Bollinger Bands"),
    ("MDD라는 용어가 뭐야", "max drawdown"),
    ("레버리지에 대해 설명해줘", "leverage"),
    ("연평균 성장률이란?", "CAGR"),
    ("물타기가 뭐야", "averaging down"),
    ("분산투자가 왜 리스크를 줄여준다는 거야?", "diversification"),  # why: what it is says why
    ("왜 분산 투자가 위험을 줄여?", "diversification"),
    ("why does diversification reduce risk?", "diversification"),
    ("손절이 왜 필요해?", "stop-loss"),
]


@pytest.mark.parametrize(("question", "name"), DEFINITION_QUESTIONS)
def test_a_definition_question_finds_its_term(question: str, name: str) -> None:
    term = definition_question(question)
    assert term is not None, question
    assert term.name == name
    assert term in TERMS


DATA_QUESTIONS = [
    "What is the Sharpe of my best backtest?",
    "my backtest - what is it?",
    "GOOG: what is it doing lately?",
    "What was the max drawdown of bt-1234abcd?",
    "Run an RSI strategy on GOOG",
    "what is my spend",
    "What is the last close of EURUSD?",
    "내 백테스트 중 샤프가 가장 높은 건 뭐야?",
    "GOOG의 최대 낙폭이 뭐야?",
    "what is the stop-loss in my last backtest",
    "what is the RSI of GOOG",
    "what is the sharpe of bt-1a2b3c4d",
    "What is RSI and MACD?",
    "what is the difference between SMA and EMA",
    "what is a stop loss and how do I set one",
    "what is GOOG",
    "BTCUSD가 뭐야",
    "what is a 5% stop loss",
    "Backtest GOOG with a 5% stop-loss",
    "what's the best strategy",
    "샤프가 가장 높은 백테스트는 뭐야?",
    "최근 백테스트의 손절이 뭐야",
    "내 승률이 뭐야",
    "EURUSD의 슬리피지가 뭐야",
    "what's the max drawdown for GOOG in 2020?",
    "explain my last backtest",
    "what is the spread on EURUSD",
    "승률 알려줘",
    "GOOG 승률 알려줘",
    "show me the sharpe",
    "RSI",
    "공매도",
    "stop-loss?",
    "what is your stop-loss",
    "백테스트 결과 설명해줘",
    "이게 뭐야",
    "what is the weather",
    "why did my backtest lose money?",
    "왜 내 전략이 손해를 봤어?",
    "GOOG가 왜 떨어졌어?",
    "why does the SMA crossover lag the price so much in my GOOG runs?",
    "",
    "what is " + "a " * 400 + "stop-loss",
]


@pytest.mark.parametrize("question", DATA_QUESTIONS)
def test_anything_else_is_not_a_definition_question(question: str) -> None:
    assert definition_question(question) is None


def test_the_question_language_picks_the_definition() -> None:
    assert question_language("공매도가 뭐야?") == "ko"
    assert question_language("MDD란?") == "ko"
    assert question_language("What is short selling?") == "en"
    term = definition_question("공매도가 뭐야?")
    assert isinstance(term, Term)
    assert answer(term, "ko") == term.definition_ko and HANGUL.search(answer(term, "ko"))
    assert answer(term, "en") == term.definition_en and not HANGUL.search(answer(term, "en"))


def test_a_term_glossed_in_parentheses_is_that_term_only_when_both_names_agree() -> None:
    term = definition_question("최대 낙폭(MDD)이 무슨 뜻이야?")
    assert term is not None and term.metric == "max_drawdown"
    assert definition_question("공매도(short selling)가 뭐야?") == find_term("short selling")
    assert definition_question("공매도(leverage)가 뭐야?") is None
    assert definition_question("최대 낙폭(GOOG)이 뭐야?") is None


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("What's the difference between a stop-loss and a trailing stop?",
         ("stop-loss", "trailing stop")),
        ("max drawdown vs volatility?", ("max drawdown", "volatility")),
        ("how does the sortino ratio differ from the sharpe ratio?",
         ("Sortino ratio", "Sharpe ratio")),
        ("CAGR or total return - which is better?", ("CAGR", "total return")),
        ("MDD랑 변동성 차이 설명해줘", ("max drawdown", "volatility")),
        ("샤프 비율과 소르티노 비율의 차이가 뭐야?", ("Sharpe ratio", "Sortino ratio")),
    ],
)  # fmt: skip
def test_a_question_for_the_difference_of_two_terms_names_both(
    question: str, names: tuple[str, str]
) -> None:
    pair = compared_terms(question)
    assert pair is not None and (pair[0].name, pair[1].name) == names


@pytest.mark.parametrize(
    "question",
    [
        "my sharpe vs my sortino",  # the user's numbers
        "GOOG vs EURUSD",  # not terms
        "sharpe vs sharpe ratio",  # one term
        "sharpe vs sortino on bt-0123456789abcdef0123",
        "what is a stop-loss?",  # one term: definition_question's
    ],
)
def test_other_questions_are_not_comparisons(question: str) -> None:
    assert compared_terms(question) is None
