"""The label-aware number check, report coverage and the template (agents.quant.narration), and
the narrative graph's sentence filter driven by a scripted chat model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from itertools import count, islice
from typing import Any, cast

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic import Field

from agents.quant.backtests import BacktestResult, EquityPoint, backtest_facts
from agents.quant.corpus import generate_corpus
from agents.quant.narration import (
    EXCESS,
    SECTIONS,
    FactSheet,
    covers,
    extend_facts,
    split_sentences,
    unsupported_numbers,
)
from agents.quant.report_template import (
    brief,
    filler,
    meaning_problems,
    template_report,
    template_sections,
)


def result(**changes: Any) -> BacktestResult:
    """The review's backtest: win rate 50.0% (the "$50.00 ... per trade" number), exposure 58.2%."""
    fields: dict[str, Any] = dict(
        id="bt-1",
        user_id="u1",
        strategy_name="SmaCross",
        strategy_code="",
        parameters={"fast": 10, "slow": 30},
        symbol="GOOG",
        start=date(2004, 8, 19),
        end=date(2013, 3, 1),
        initial_cash=10_000,
        final_equity=50_499.4,
        total_return_pct=404.994,
        buy_and_hold_return_pct=522.1,
        cagr_pct=20.93,
        sharpe=0.7634,
        sortino=1.49,
        max_drawdown_pct=-34.02,
        num_trades=33,
        win_rate_pct=50.0,
        exposure_pct=58.2,
        equity_curve=[
            EquityPoint(date=date(2004 + i, 1, 1), equity=10_000 + 4000 * i) for i in range(9)
        ],
        created_at=datetime(2026, 1, 1),
    )
    return BacktestResult(**{**fields, **changes})


FACTS = backtest_facts(result())
SHEET = FactSheet(FACTS)


def problems(sentence: str, sheet: FactSheet = SHEET) -> list[str]:
    return sheet.sentence_problems(sentence)[1]


def test_the_facts_are_extended_with_the_excess_and_the_length() -> None:
    facts = extend_facts(FACTS)
    assert facts[EXCESS] == "lagged it by 117.1 percentage points"
    assert facts["length"] == "8.5 years"
    assert SHEET.values[EXCESS].value == Decimal(
        "-117.1"
    )  # from the rounded returns, as a reader checks


GOOD = [
    "Its Sharpe 0.76 was modest.",
    "It returned 405.0% from 2004 to 2013 with a Sharpe ratio of 0.76.",
    "It made a 405% return.",  # a rounding of 404.994
    "The strategy lagged buy-and-hold (522.1%).",
    "It posted a return of 405.0%, lagging buy-and-hold's 522.1% by 117.1 percentage points.",
    "It lagged buy-and-hold by 117.1%.",
    "The max drawdown was -34.0%.",
    "The drawdown reached 34% at its worst.",  # sign-free, rounded
    "It made 33 trades with a win rate of 50.0% and was in the market 58.2% of the time.",
    "SmaCross (fast=10, slow=30) ran on GOOG from 2004-08-19 to 2013-03-01.",
    "It used 10-day and 30-day moving averages.",
    "The 10/30 crossover had a Sharpe of 0.76.",
    "Sharpe and Sortino ratios of 0.76 and 1.49 show modest risk-adjusted returns.",
    "Equity grew from $10,000 to $50,499.",
    "It turned $10k into about $50.5k.",
    "Over 8.5 years it compounded at 20.9% a year.",
    "From August 2004 to March 1, 2013 the strategy traded GOOG.",
    "The Sharpe ratio of 0.8 is modest.",
    "It did not beat buy-and-hold.",
    "Buy-and-hold outperformed the strategy.",
    "It was outperformed by buy-and-hold.",
    "2. Risk: a Sharpe ratio of 0.76.",  # a list marker is no number
    "수익률은 405.0%, 샤프 지수는 0.76, 최대 낙폭은 -34.0%였습니다.",
    "승률은 50.0%이며 33회 거래했습니다.",
    "매수 후 보유 수익률 522.1%에 뒤처졌습니다.",
    "The strategy was backtested from 2004년 8월 to 2013.",
    "Over the 2004–2013 period it compounded at 20.9% per year.",
    "Buy and hold returned 522.1%, beating the strategy's 405.0%.",
    "It lagged buy-and-hold, which returned 522.1%, by 117.1 percentage points.",
    "The strategy's 405.0% return trailed the 522.1% buy-and-hold benchmark.",
    "It held positions 58.2% of the time over 33 trades.",
    "It was exposed to the market 58.2% of the time.",
    "Buy-and-hold's return was higher.",
    "Against buy-and-hold's 522.1%, its return was lower.",
    "The buy-and-hold return of 522.1% was much higher, so the strategy lagged it.",
]


@pytest.mark.parametrize("sentence", GOOD)
def test_numbers_next_to_their_own_metric_pass(sentence: str) -> None:
    assert problems(sentence) == []


BAD = [
    ("It had a 58.2% Sharpe.", ["58.2%"]),  # 58.2 is the exposure, not the Sharpe
    ("It had a Sharpe of 51.5.", ["51.5"]),
    ("Its Sharpe of 50.0 looks strong.", ["50.0"]),  # the win rate, under the Sharpe's label
    ("The win rate was 58.2%.", ["58.2%"]),  # the exposure, under the win rate's label
    (
        "The max drawdown was -34.0%, which is less than the specified limit of $50.00 per trade.",
        ["$50.00"],
    ),
    ("It returned 450% over the period.", ["450%"]),
    ("A Sharpe ratio of 1.2 is excellent.", ["1.2"]),
    ("A Sharpe of 1 is decent.", ["1"]),  # too coarse a rounding of 0.76
    ("It made 34 trades.", ["34"]),
    ("The drawdown was 31.5%.", ["31.5%"]),
    ("The max drawdown was +34.0%.", ["+34.0%"]),  # an explicit sign must agree
    ("Returns of 405.1% beat 2% inflation.", ["405.1%", "2%"]),
    ("It returned 522.1%, lagging buy-and-hold's 405.0%.", ["522.1%", "405.0%"]),  # swapped
    ("The 2008 crash hurt it.", ["2008"]),
    ("It traded from 2005-01-01 to 2013-03-01.", ["2005-01-01"]),
    ("Volatility was 25%.", ["25%"]),  # a quantity the facts do not have
    ("It made 5.4x its money.", ["5.4x"]),
    ("It used a 20-day average.", ["20-day"]),
    ("Over 9 years it made money.", ["9 years"]),
    ("The Sortino ratio was 1.6 and the Sharpe 0.7.", ["1.6", "0.7"]),
    ("샤프 지수는 50.0입니다.", ["50.0"]),
    ("It scored 7.5 on our scale.", ["7.5"]),  # no label, no fact
]


@pytest.mark.parametrize(("sentence", "bad"), BAD)
def test_numbers_under_another_metric_or_invented_are_named(sentence: str, bad: list[str]) -> None:
    assert unsupported_numbers(sentence, SHEET) == bad


@pytest.mark.parametrize(
    "sentence",
    [
        "It beat buy-and-hold by 117.1 points.",
        "The strategy outperformed buy-and-hold.",
        "It did better than buy-and-hold over the period.",
        "Buy-and-hold lagged the strategy.",
        # read in the narrative bench's tune reports (the 0.5B): a bare comparative with
        # buy-and-hold as its subject, and "a lag of buy-and-hold" (buy-and-hold lagging)
        "This means that while the overall return is 405.0%, the buy-and-hold performance was "
        "slightly lower.",
        "Buy-and-hold's return was lower.",
        "The total return is 405.0%, indicating a lag of buy-and-hold by 117.1 percentage points.",
    ],
)
def test_a_wrong_beat_or_lagged_claim_fails_without_any_wrong_number(sentence: str) -> None:
    assert problems(sentence) == ["it says the strategy beat buy-and-hold"]


@pytest.mark.parametrize(
    ("sentence", "problem"),
    [
        ("The backtest only resulted in a loss.", "not a loss"),
        ("Overall the strategy lost money.", "not a loss"),
        ("The trading strategy is highly profitable with 33 trades.", "a claim no fact supports"),
    ],
)
def test_a_loss_the_facts_do_not_have_and_an_unsupported_claim_fail(
    sentence: str, problem: str
) -> None:
    assert any(problem in p for p in problems(sentence)), problems(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "The max drawdown was -34.0%, a substantial peak-to-trough loss.",
        "It did not end in a loss.",
        "Half of its 33 trades were losses.",
    ],
)
def test_a_drawdown_loss_or_losing_trades_are_no_loss_claim(sentence: str) -> None:
    assert not [p for p in problems(sentence) if "not a loss" in p]


def test_a_losing_trade_is_wrong_only_when_every_trade_won() -> None:
    """Read in the narrative bench's tune reports (BuyAndHold on GOOG: one trade, it won)."""
    said = "The backtest shows a single trade (GOOG) only resulted in a loss."
    won = FactSheet({**FACTS, "win rate": "100.0%", "trades": "1"})
    assert any("every trade won" in p for p in won.sentence_problems(said)[1])
    assert not [p for p in SHEET.sentence_problems(said)[1] if "won" in p or "loss" in p]


def test_every_number_of_the_reviews_examples_is_somewhere_in_the_facts() -> None:
    """What the old check asked, and so passed: only the labels tell these sentences apart."""
    anywhere = {Decimal(n) for v in FACTS.values() for n in re.findall(r"\d+(?:\.\d+)?", v)}
    for sentence in ("It had a 58.2% Sharpe.", "Its Sharpe of 50.0 looks strong.", BAD[4][0]):
        numbers = [Decimal(n) for n in re.findall(r"\d+(?:\.\d+)?", sentence)]
        assert numbers and all(n in anywhere for n in numbers)
        assert problems(sentence) != []


def test_an_unlabelled_number_must_match_one_fact_unambiguously() -> None:
    close = FactSheet({**FACTS, "Sharpe ratio": "0.79", "Sortino ratio": "0.81"})
    assert unsupported_numbers("It scored 0.8 overall.", close) == ["0.8"]  # Sharpe or Sortino?
    assert unsupported_numbers("It scored 0.81 overall.", close) == []
    assert unsupported_numbers("It scored 0.76 overall.", SHEET) == []  # the Sharpe, alone
    assert unsupported_numbers("Then 3 more followed.", SHEET) == ["3"]  # no bare "3" for 1.49


def test_the_users_own_numbers_pass_where_they_stand_but_not_under_another_metric() -> None:
    sheet = FactSheet(FACTS, "Is a 12% target realistic, and is a Sharpe of 1.5 good?")
    assert unsupported_numbers("A 12% target looks ambitious here.", sheet) == []
    assert unsupported_numbers("A Sharpe of 1.5 would be better than 0.76.", sheet) == []
    assert unsupported_numbers("The win rate was 12%.", sheet) == ["12%"]
    assert unsupported_numbers("A 12% target looks ambitious here.", SHEET) == ["12%"]


def test_sentences_split_where_prose_ends_not_inside_numbers() -> None:
    text = "Sharpe 0.76, e.g. modest. It made 33 trades.\n1. Return 405.0%. 2. Risk"
    assert split_sentences(text) == [
        "Sharpe 0.76, e.g. modest.",
        "It made 33 trades.",
        "1. Return 405.0%.",
        "2. Risk",
    ]


# --------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------

COVERING = (
    "SmaCross (fast=10, slow=30) ran on GOOG from 2004-08-19 to 2013-03-01. "
    "It returned 405.0%, lagging buy-and-hold's 522.1% by 117.1 percentage points. "
    "The max drawdown was -34.0% and the Sharpe ratio 0.76. "
    "It made 33 trades, won 50.0% of them and was in the market 58.2% of the time. "
    "Past performance does not guarantee future results."
)


def test_a_report_with_every_section_covers_them() -> None:
    assert covers(COVERING, FACTS) == []


@pytest.mark.parametrize(
    ("old", "new", "missing"),
    [
        ("Past performance does not guarantee future results.", "", ["caveat"]),
        (", slow=30", "", ["setup"]),  # a parameter left out
        ("from 2004-08-19 to 2013-03-01", "in 2013", ["setup"]),  # half the period
        (", lagging buy-and-hold's 522.1% by 117.1 percentage points", "", ["benchmark"]),
        (
            "lagging buy-and-hold's 522.1% by 117.1 percentage points",
            "lagging buy-and-hold",
            ["benchmark"],
        ),
        ("the Sharpe ratio 0.76", "a modest risk", ["risk"]),
        (" and was in the market 58.2% of the time", "", ["trading"]),
        ("It made 33 trades, won 50.0% of them", "It traded often", ["trading"]),
    ],
)
def test_a_report_missing_a_section_is_named(old: str, new: str, missing: list[str]) -> None:
    assert old in COVERING
    assert covers(COVERING.replace(old, new), FACTS) == missing


def test_coverage_of_the_benchmark_needs_the_right_direction() -> None:
    wrong = COVERING.replace("lagging", "beating")
    assert covers(wrong, FACTS) == ["benchmark"]
    assert covers("It returned 405.0%.", FACTS) == list(SECTIONS)  # a return is no comparison


def test_a_korean_report_covers_every_section() -> None:
    report = (
        "SmaCross(fast=10, slow=30)는 2004-08-19부터 2013-03-01까지 GOOG에서 테스트되었습니다. "
        "총 수익률 405.0%로 매수 후 보유(522.1%)보다 117.1%p 뒤처졌습니다. "
        "최대 낙폭은 -34.0%, 샤프 지수는 0.76입니다. "
        "33회 거래했고 승률은 50.0%, 시장 노출은 58.2%였습니다. "
        "과거 성과는 미래 수익을 보장하지 않습니다."
    )
    assert unsupported_numbers(report, SHEET) == [] and covers(report, FACTS) == []


def test_a_shortfall_says_it_lagged() -> None:
    text = COVERING.replace(
        "It returned 405.0%, lagging buy-and-hold's 522.1% by 117.1 percentage points.",
        "It returned 405.0% versus 522.1% for buy-and-hold, a shortfall of 117.1 points.",
    )
    assert covers(text, FACTS) == []


def test_a_backtest_without_trades_or_buy_and_hold_needs_neither() -> None:
    idle = backtest_facts(
        result(
            num_trades=0,
            win_rate_pct=None,
            sharpe=None,
            sortino=None,
            max_drawdown_pct=0.0,
            buy_and_hold_return_pct=None,
            total_return_pct=0.0,
            exposure_pct=0.0,
        )
    )
    assert "buy-and-hold return" not in idle and EXCESS not in extend_facts(idle)
    report = template_report(idle)
    assert covers(report, idle) == [] and unsupported_numbers(report, FactSheet(idle)) == []
    assert "could not be compared with buy-and-hold" in report and "never traded" in report


# --------------------------------------------------------------------------------------------
# The template
# --------------------------------------------------------------------------------------------


def test_the_template_is_a_report_with_every_section_and_its_interpretation() -> None:
    sections = template_sections(FACTS)
    assert list(sections) == list(SECTIONS)
    assert sections["setup"].startswith("SmaCross (fast=10, slow=30) was backtested on GOOG")
    assert "lagged buy-and-hold's 522.1% by 117.1 percentage points" in sections["benchmark"]
    assert "a severe peak-to-trough loss" in sections["risk"]
    assert "modest risk-adjusted returns" in sections["risk"]
    assert "exactly half of its trades made money" in sections["trading"]
    assert "past performance does not guarantee future results" in sections["caveat"]
    assert template_report(FACTS) == " ".join(sections.values())


CORPUS = list(islice(generate_corpus(2), 30))


@pytest.mark.parametrize(
    "bt", CORPUS, ids=[f"{b.strategy_name}-{b.symbol}-{i}" for i, b in enumerate(CORPUS)]
)
def test_the_template_passes_the_check_and_covers_every_section(bt: BacktestResult) -> None:
    facts = backtest_facts(bt)
    sheet = FactSheet(facts)
    report = template_report(facts)
    assert [p for s in split_sentences(report) for p in sheet.sentence_problems(s)[1]] == []
    assert covers(report, sheet) == []
    excess = sheet.values[EXCESS].value
    assert excess is not None
    assert ("lagged buy-and-hold" in report) == (excess < 0)
    assert ("beat buy-and-hold" in report) == (excess > 0)
    assert ("With only" in report) == (0 < bt.num_trades < 10)


def test_the_corpus_has_winners_losers_and_few_trades() -> None:
    """The template cases above are not all alike."""
    excess = [FactSheet(backtest_facts(b)).values[EXCESS].value or 0 for b in CORPUS]
    assert len(CORPUS) >= 20 and any(e > 0 for e in excess) and any(e < 0 for e in excess)
    assert any(b.num_trades == 0 for b in CORPUS) and any(0 < b.num_trades < 10 for b in CORPUS)


# --------------------------------------------------------------------------------------------
# The streaming sentence filter, with a scripted chat model in the graph
# --------------------------------------------------------------------------------------------

BAD_SENTENCE = (
    "The max drawdown was -34.0%, which is less than the specified limit of $50.00 per trade."
)
DRAFTS = [  # one draft per section, in order
    "Sure, here is the report: SmaCross (fast=10, slow=30) ran on GOOG from 2004-08-19 to "
    "2013-03-01.",
    "It returned 405.0%, lagging buy-and-hold's 522.1% by 117.1 percentage points.",
    f"{BAD_SENTENCE} This shows a significant risk of losing money.",
    "It made 33 trades with a 50.0% win rate.",
    "Past performance does not guarantee future results.",
]


class Scripted(GenericFakeChatModel):
    """A chat model answering scripted drafts in turn (word by word), recording each prompt."""

    prompts: list[str] = Field(default_factory=list)

    def _stream(self, messages: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.prompts.append(str(messages[-1].content))
        yield from super()._stream(messages, *args, **kwargs)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    """The graph's model answers `model.drafts` in turn, the last one for ever."""
    import graphs.narrative_report as nr

    drafts: list[str] = []
    replies = (AIMessage(drafts[min(i, len(drafts) - 1)]) for i in count())  # read when called
    model = Scripted(messages=replies)
    model.__dict__["drafts"] = drafts
    monkeypatch.setattr(nr, "create_chat_model_with_fallback", lambda *a, **k: model)
    yield model


def drafts(model: Scripted) -> list[str]:
    return cast(list[str], model.__dict__["drafts"])


def run(bt: BacktestResult, **context: Any) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """The custom events, the final state and how many `messages` events the run streamed."""
    from graphs.narrative_report import Context, InputState, graph

    events: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    messages = 0
    for item in graph.stream(
        InputState(backtest=bt),
        context=Context(user_id="u1", **context),
        stream_mode=["custom", "values", "messages"],
    ):
        mode, event = cast(tuple[str, Any], item)
        if mode == "custom":
            events.append(event)
        elif mode == "messages":
            messages += 1
        else:
            final = event
    return events, final, messages


def test_each_section_is_written_in_order_and_a_rejected_clause_is_never_streamed(
    scripted: Scripted,
) -> None:
    drafts(scripted)[:] = DRAFTS
    events, out, messages = run(result())
    texts = [e["text"] for e in events]
    assert "".join(texts) == out["report"]  # the report is exactly what was shown
    assert not any("$50.00" in t or "limit" in t or "significant" in t for t in texts)
    assert out["rejected_sentences"] == [
        BAD_SENTENCE,
        "This shows a significant risk of losing money.",
    ]
    assert out["rejected_numbers"] == ["$50.00"]
    assert messages == 0  # the model's raw tokens are no user-facing stream
    assert [e["section"] for e in events] == [
        "setup",
        "benchmark",
        "risk",
        "risk",
        "trading",
        "trading",
        "caveat",
    ]
    assert [e["source"] for e in events] == [
        "model",
        "model",
        "model",
        "template",
        "model",
        "template",
        "model",
    ]
    assert texts[0].startswith("SmaCross (fast=10, slow=30) ran on GOOG")  # chatter stripped
    assert texts[2] == " The max drawdown was -34.0%."  # its false clause cut off
    assert texts[3] == " Its Sharpe ratio was 0.76."  # only what the risk section lacked
    assert texts[5] == " It was in the market 58.2% of the time."
    assert out["faithful"] and not out["used_fallback"]
    assert out["model_sentences"] == 5 and out["template_sentences"] == 2
    assert covers(out["report"], FACTS) == [] and unsupported_numbers(out["report"], SHEET) == []
    assert len(scripted.prompts) == len(SECTIONS)  # one draft a section: none was left empty
    for prompt, section in zip(scripted.prompts, SECTIONS, strict=True):
        lines, task = brief(section, extend_facts(FACTS))
        assert task in prompt and all(line in prompt for line in lines)
    assert "lagged buy-and-hold by 117.1 percentage points" in scripted.prompts[1]


def test_a_section_with_nothing_accepted_is_asked_again_with_the_problems_named(
    scripted: Scripted,
) -> None:
    drafts(scripted)[:] = [*DRAFTS[:3], "It made 34 trades.", *DRAFTS[3:]]
    events, out, _ = run(result())
    assert len(scripted.prompts) == len(SECTIONS) + 1
    retry = scripted.prompts[4]
    assert "Your last answer was rejected (34: not the trades)" in retry
    trading = [e for e in events if e["section"] == "trading"]
    assert [e["source"] for e in trading] == ["model", "template"]
    assert "It made 34 trades." in out["rejected_sentences"]


def test_prose_that_never_passes_becomes_the_template_report(scripted: Scripted) -> None:
    drafts(scripted)[:] = ["### Report\nTotal return: 450%\nSharpe: 1.2", "It returned 999%."]
    events, out, _ = run(result())
    assert out["report"] == "".join(e["text"] for e in events) == template_report(FACTS)
    assert out["used_fallback"] and out["model_sentences"] == 0
    assert {e["source"] for e in events} == {"template"}
    assert [e["section"] for e in events] == list(SECTIONS)
    assert len(scripted.prompts) == 2 * len(SECTIONS)  # each section asked twice, then template
    assert "It returned 999%." in out["rejected_sentences"]


def test_no_attempts_means_no_model_call_and_the_template(scripted: Scripted) -> None:
    events, out, _ = run(result(), max_attempts=0)
    assert out["report"] == template_report(out["metrics"])
    assert out["used_fallback"] and len(events) == len(SECTIONS) and not scripted.prompts


def test_the_writer_waits_for_a_sentence_to_end_and_drops_a_cut_off_one() -> None:
    from graphs.narrative_report import ReportWriter

    writer = ReportWriter(SHEET, "risk")
    text = "It had a Sharpe ratio of 0.76. The max drawdown was -3"
    shown = [p.text for ch in text for p in writer.feed(ch)]
    assert shown == ["It had a Sharpe ratio of 0.76."]  # "0." did not end it
    assert writer.finish(truncated=True) == []
    assert writer.rejected == ["The max drawdown was -3"]
    assert writer.model_sentences == 1
    assert [p.text for p in writer.fill()] == [" Its max drawdown was -34.0%."]  # what it lacked


def test_commentary_other_sections_and_echoed_instructions_are_not_shown() -> None:
    from graphs.narrative_report import ReportWriter

    writer = ReportWriter(SHEET, "risk")
    lines = (
        "Sharpe ratio: 0.76\n",  # a label line
        "The max drawdown and the Sharpe ratio.\n",  # the task, echoed
        "Report:\n",
        "This means the strategy is risky.\n",  # commentary: no fact
        "It made 33 trades.\n",  # another section
        "It was the best strategy, with a Sharpe ratio of 0.76.\n",  # praise no fact supports
        "The Sharpe ratio was 0.76, which means the strategy is sound.\n",  # commentary cut
    )
    shown = [p.text for line in lines for p in writer.feed(line)]
    assert shown == ["The Sharpe ratio was 0.76."]
    assert writer.rejected == [
        "Sharpe ratio: 0.76",
        "The max drawdown and the Sharpe ratio.",
        "This means the strategy is risky.",
        "It made 33 trades.",
        "It was the best strategy, with a Sharpe ratio of 0.76.",
    ]
    assert writer.problems[-3:] == [
        "it states no fact",
        "another section",
        "'best': a claim no fact supports",
    ]
    assert [p.source for p in writer.fill()] == ["template"]  # the drawdown it lacked


def test_a_filler_completes_what_the_prose_left_out() -> None:
    assert filler("setup", SHEET, "SmaCross traded GOOG.") == (
        "It ran from 2004-08-19 to 2013-03-01 with fast=10, slow=30."
    )
    assert filler("benchmark", SHEET, "It returned 405.0%.") == (
        "That lagged buy-and-hold's 522.1% by 117.1 percentage points."
    )
    assert filler("benchmark", SHEET, "It lagged buy-and-hold by 117.1 percentage points.") == (
        "Its total return was 405.0%, against buy-and-hold's 522.1%."
    )
    assert filler("risk", SHEET, "Nothing yet.") == template_sections(FACTS)["risk"]


@pytest.mark.parametrize(
    "said",
    [
        "",
        "It returned 405.0%.",
        "It lagged buy-and-hold.",
        "It lagged buy-and-hold by 117.1 percentage points.",
        "Buy-and-hold returned 522.1%.",
        "It returned 405.0% and lagged buy-and-hold.",
        "It lagged buy-and-hold's 522.1%.",
        "The gap to buy-and-hold was 117.1 percentage points.",  # the excess, no direction
    ],
)
def test_every_benchmark_filler_passes_the_check_the_report_is_judged_by(said: str) -> None:
    """The template is never checked by the writer, so it must pass by construction (a full
    e2e run failed on "Its total return of 405.0% lagged buy-and-hold's 522.1% by …": the
    number bound to the nearer "lagged buy-and-hold's")."""
    strict = FactSheet(FACTS, strict=True)
    for sheet in (SHEET, strict):
        text = filler("benchmark", sheet, said)
        problems = [p for s in split_sentences(text) for p in SHEET.sentence_problems(s)[1]]
        assert problems == [] and strict.check(text), (said, text, problems)


@pytest.mark.parametrize(
    ("sentence", "section", "bad"),
    [
        ("The max drawdown of -34.0% was shallow.", "risk", "'shallow'"),  # severe
        ("A Sharpe ratio of 0.76 is excellent.", "risk", "'excellent'"),  # modest
        ("Its win rate of 50.0% was high.", "trading", None),  # average: one level off
        ("It returned 405.0%, slightly below buy-and-hold.", "benchmark", "'slightly'"),
        ("In all, 33 trades made money.", "trading", "'33 trades made money'"),  # 16 or 17
        ("Investors earned 405.0%.", "benchmark", "'Investors'"),
        ("GOOG did not perform well over one period.", "caveat", "'perform well'"),
        ("With 33 trades, past performance does not guarantee future results.", "caveat", None),
        ("The max drawdown of -34.0% was severe.", "risk", None),
        ("Its 33 trades are more than enough to judge it.", "caveat", "'more than enough'"),
        (
            "Costs such as slippage add to the return.",
            "caveat",
            "'Costs such as slippage add to the return'",
        ),
        (
            "The drawdown was -34.0% compared to the average daily return.",
            "risk",
            "'compared to the average'",
        ),
        ("The strategy is called GOOG.", "setup", "GOOG is the symbol, not the strategy's name"),
        ("Its win rate was significantly low at 50.0%.", "trading", None),  # an inflection, 1 off
    ],
)
def test_what_a_sentence_means_must_agree_with_the_grades_computed_in_code(
    sentence: str, section: str, bad: str | None
) -> None:
    found = meaning_problems(sentence, SHEET, section)
    assert (found[0].split(":")[0] if found else None) == bad, found


@pytest.mark.parametrize("excess", [-117.1, 0.0, 35.0])
def test_the_benchmark_template_passes_the_check_without_a_cagr(excess: float) -> None:
    """Without "(CAGR …)" between them, "Its total return of X lagged buy-and-hold's Y" bound
    X to "lagged buy-and-hold's"; the template says "was X; it lagged"."""
    facts = backtest_facts(result(cagr_pct=None, buy_and_hold_return_pct=405.0 - excess))
    text = template_sections(facts)["benchmark"]
    sheet = FactSheet(facts)
    assert [p for s in split_sentences(text) for p in sheet.sentence_problems(s)[1]] == [], text
    assert [
        p
        for s in split_sentences(text)
        for p in FactSheet(facts, strict=True).sentence_problems(s)[1]
    ] == []
