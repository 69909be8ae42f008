"""The narrative benchmark's own label-aware checker (bench/narrative.py), independent of the
graph's: hand-made sentences that must pass and must fail, and coverage that can fail."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from agents.quant.backtests import BacktestResult
from bench.narrative import CASES, check_report, direction


def result(**changes: object) -> BacktestResult:
    """RSI on GOOG that lagged buy-and-hold: 52.5% against 688.0%, 9 trades."""
    base = BacktestResult(
        id="bt-1",
        user_id="u1",
        strategy_name="RsiMeanReversion",
        strategy_code="",
        parameters={"period": 14, "lower": 30, "upper": 70},
        symbol="GOOG",
        start=date(2004, 8, 19),
        end=date(2013, 3, 1),
        initial_cash=10_000,
        final_equity=15_251.3,
        total_return_pct=52.513,
        cagr_pct=5.07,
        sharpe=0.7634,
        sortino=1.49,
        max_drawdown_pct=-33.98,
        num_trades=9,
        win_rate_pct=50.0,
        exposure_pct=29.31,
        buy_and_hold_return_pct=688.04,
        created_at=datetime(2026, 1, 1),
    )
    return base.model_copy(update=changes)


def failures(text: str, r: BacktestResult | None = None) -> list[str]:
    return check_report(text, r or result()).failures


@pytest.mark.parametrize(
    "sentence",
    [
        "RsiMeanReversion (period=14, lower=30, upper=70) ran on GOOG from 2004-08-19 to "
        "2013-03-01 (8.5 years), starting with $10,000 and ending with $15,251.",
        "Its total return of 52.5% (CAGR 5.1%) lagged buy-and-hold's 688.0% by 635.5 "
        "percentage points.",
        "The strategy returned 52.5% while buy-and-hold returned 688.0%.",
        "It returned 52.5%, compared with 688.0% for buy-and-hold.",
        "The max drawdown was -34.0%, and the Sharpe ratio was 0.76 (Sortino ratio 1.49).",
        "It had a Sharpe of 0.8 and a maximum drawdown of 34%.",
        "It made 9 trades with a win rate of 50.0% and was in the market 29.3% of the time.",
        "There were 9 trades, half of them winners, and an exposure of 29.3%.",
        "It used a 14-period RSI, buying below 30 and selling when the RSI rose above 70.",
        "From August 19, 2004 to March 2013, the strategy underperformed buy-and-hold.",
        "Buy-and-hold beat the strategy by 635.5 percentage points.",
        "With only 9 trades, past performance does not guarantee future results.",
        "The strategy lagged the buy-and-hold return of 688.0% by 635.5%.",
        "With a period of 14, its lower and upper limits were 30 and 70, respectively.",
        "The strategy traded 9 times.",
    ],
)
def test_numbers_standing_with_their_own_metric_pass(sentence: str) -> None:
    assert failures(sentence) == []


@pytest.mark.parametrize(
    ("sentence", "bad"),
    [
        # the example: 50 is the win rate, not a limit per trade
        (
            "The max drawdown was -34.0%, which is less than the specified limit of $50.00 "
            "per trade.",
            "$50.00",
        ),
        ("It reached a 50.0% Sharpe ratio.", "50.0%"),
        ("The Sharpe ratio was 50.0.", "50.0"),
        ("The win rate was 0.76.", "0.76"),
        ("It made 14 trades.", "14"),
        ("The total return was 688.0%.", "688.0%"),
        ("Buy-and-hold returned 52.5%.", "52.5%"),
        ("The strategy returned 52.5% while buy-and-hold returned 52.5%.", "52.5%"),
        ("Its volatility was 29.3%.", "29.3%"),
        ("The max drawdown was +34.0%.", "+34.0%"),
        ("It finished in 2008.", "2008"),
        ("The result was 52.5%.", "52.5%"),
        ("Its edge came from 3 signals.", "3"),
        ("It traded 2.5x more than buy-and-hold.", "2.5x"),
        ("It lagged buy-and-hold by 600.0 percentage points.", "600.0 percentage points"),
        ("It used a 20-day RSI.", "20-day"),
        ("Fees of 0.1% per trade reduced the return.", "0.1%"),
        ("Its lower limit was 25.", "25"),  # no "respectively": the limit is no parameter
        ("The total return was 52.5% less than buy-and-hold.", "52.5%"),  # a gap, not the return
    ],
)
def test_a_number_with_another_metric_no_label_or_made_up_fails(
    sentence: str, bad: str | None
) -> None:
    found = failures(sentence)
    assert found and (bad is None or any(f.startswith(bad) for f in found)), found


def test_a_negative_return_must_read_as_a_loss() -> None:
    r = result(total_return_pct=-23.2, buy_and_hold_return_pct=156.5)
    assert failures("The strategy had a total return of 23.2%.", r)
    assert failures("The strategy lost 23.2%.", r) == []
    assert failures("The total return was -23.2%.", r) == []


@pytest.mark.parametrize(
    "sentence",
    [
        "The strategy beat buy-and-hold.",
        "It outperformed the buy-and-hold return of 688.0%.",
        "Buy-and-hold lagged the strategy.",
        "The strategy did better than simply holding.",
        "While the overall return is 52.5%, the buy-and-hold performance was slightly lower.",
        "The total return is 52.5%, indicating a lag of buy-and-hold by 635.5 percentage points.",
    ],
)
def test_a_wrong_beat_or_lagged_claim_fails(sentence: str) -> None:
    assert direction(sentence) is True
    assert failures(sentence)


def test_direction_reads_negations_subjects_and_the_passive() -> None:
    assert direction("It did not beat buy-and-hold.") is False
    assert direction("It was outperformed by buy-and-hold.") is False
    assert direction("Buy-and-hold outperformed it.") is False
    assert direction("Compared with buy-and-hold, the strategy lagged.") is False
    assert direction("The Sharpe ratio was 0.76.") is None
    assert direction("Buy-and-hold's return was much higher, so the strategy lagged it.") is False
    assert direction("Against buy-and-hold's 688.0%, its return was lower.") is False


FULL = (
    "RsiMeanReversion (period=14, lower=30, upper=70) was backtested on GOOG from 2004-08-19 to "
    "2013-03-01. Its total return of 52.5% lagged buy-and-hold's 688.0% by 635.5 percentage "
    "points. The max drawdown was -34.0% and the Sharpe ratio 0.76. It made 9 trades with a win "
    "rate of 50.0% and was in the market 29.3% of the time. With so few trades, past "
    "performance does not guarantee future results."
)


def test_a_full_report_is_faithful_and_covers_everything() -> None:
    check = check_report(FULL, result())
    assert check.label_faithful, check.failures
    assert all(check.covers.values()), check.covers


@pytest.mark.parametrize(
    ("old", "new", "section"),
    [
        ("lagged buy-and-hold's 688.0% by 635.5 percentage points", "was fine", "buy_and_hold"),
        ("lagged buy-and-hold's 688.0%", "lagged buy-and-hold", "buy_and_hold"),
        ("The max drawdown was -34.0% and the", "The", "risk"),
        ("a win rate of 50.0% and ", "", "trading"),
        (", upper=70", "", "parameters"),
        ("to 2013-03-01", "onwards", "period"),
        ("With so few trades, past performance does not guarantee future results.", "", "caveat"),
    ],
)
def test_a_report_missing_a_section_is_named(old: str, new: str, section: str) -> None:
    assert old in FULL
    check = check_report(FULL.replace(old, new), result())
    assert not check.covers[section]


def test_a_report_that_says_it_beat_buy_and_hold_does_not_cover_it() -> None:
    check = check_report(FULL.replace("lagged", "beat"), result())
    assert not check.label_faithful and not check.covers["buy_and_hold"]


def test_no_buy_and_hold_or_trades_needs_neither() -> None:
    r = result(buy_and_hold_return_pct=None, num_trades=0, win_rate_pct=None, sharpe=None)
    text = "It made 0 trades and was in the market 29.3% of the time."
    check = check_report(text, r)
    assert check.label_faithful and check.covers["trading"] and check.covers["buy_and_hold"]
    assert failures("Its win rate was 50.0%.", r)  # n/a: nothing to cite


def test_the_cases_are_two_halves_with_winners_losers_and_few_trades() -> None:
    halves = {s: [c for c in CASES if c.split == s] for s in ("tune", "heldout")}
    assert len(halves["tune"]) == len(halves["heldout"]) >= 12
    assert len({c.id for c in CASES}) == len(CASES)
    for cases in halves.values():
        assert {c.symbol for c in cases} == {"GOOG", "EURUSD", "BTCUSD"}
        assert len({c.strategy for c in cases}) >= 6


def test_the_umbrella_skips_an_absent_benchmark_and_judges_goals_on_the_held_out_half() -> None:
    from bench import services

    assert services.run_bench("no_such_bench", [])["status"] == "skipped"
    rows = services.table(
        {"narrative": {"tune": {"label_faithful": 1.0}, "heldout": {"label_faithful": 0.9}}}
    )
    row = next(r for r in rows if r["figure"] == "label_faithful")
    assert (row["tune"], row["heldout"], row["heldout_meets_goal"]) == (1.0, 0.9, False)


def test_the_umbrella_runs_a_benchmark_by_name_and_records_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from bench import services

    seen: list[list[str]] = []
    ok, bad = types.ModuleType("bench.fake_ok"), types.ModuleType("bench.fake_bad")
    ok.main = seen.append  # type: ignore[attr-defined]
    bad.main = lambda argv: 1 / 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.fake_ok", ok)
    monkeypatch.setitem(sys.modules, "bench.fake_bad", bad)
    assert services.run_bench("fake_ok", ["--split", "tune"]) == {"status": "ran"}
    assert seen == [["--split", "tune"]]
    assert services.run_bench("fake_bad", [])["status"] == "failed"
