"""Graphs under endpoint faults and quotas, over real HTTP to the fake OpenAI-compatible server.

The fake server answers `#down=MODEL` with 503 for that model only, so the fallback model (one
the policy allows, served elsewhere) answers; the ledger must hold both attempts and the graph
must say which model answered.
"""

from __future__ import annotations

import pytest

from agents import registry
from agents.llm.factory import fallback_model
from agents.quant.backtests import run_backtest
from agents.quant.corpus import SmaCross
from agents.quant.narration import SECTIONS
from agents.usage.ledger import get_ledger
from agents.usage.limits import QuotaExceededError
from graphs import narrative_report, strategy_builder
from tests.fakes.openai_server import FakeServer


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer) -> None:
    """Process settings (what graphs read) routing every model to the fake server, billed."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("QUANT_GENAI_BASE_URL_BILLED", "true")
    monkeypatch.setenv("QUANT_GENAI_STREAM_USAGE", "true")
    monkeypatch.setenv("QUANT_GENAI_MAX_RETRIES", "0")
    registry.reset()


@pytest.mark.usefixtures("fake_env")
def test_narrative_report_falls_back_when_its_model_is_down() -> None:
    bt = run_backtest(SmaCross, "GOOG", user_id="nr")
    out = narrative_report.graph.invoke(
        narrative_report.InputState(backtest=bt, request="summary #down=gpt-4o-mini"),
        context=narrative_report.Context(user_id="nr", model="gpt-4o-mini", max_attempts=1),
    )
    backup = fallback_model("narrative_report", "gpt-4o-mini")
    assert backup is not None
    assert out["model_used"] == backup.id
    assert out["report"] and out["faithful"]  # the fake's prose fails the check: template
    rows = get_ledger().rows(user_id="nr")
    # one model call per report section, each a 503 from gpt-4o-mini then the fallback's answer
    assert [(r["model"], r["error"] is None) for r in rows] == [
        ("gpt-4o-mini", False),
        (backup.id, True),
    ] * len(SECTIONS)


@pytest.mark.usefixtures("fake_env")
def test_strategy_builder_counts_the_failed_attempts_and_the_fallback() -> None:
    out = strategy_builder.graph.invoke(
        strategy_builder.InputState(request="an SMA crossover on GOOG #down=gpt-4o #out=5"),
        context=strategy_builder.Context(user_id="sb", model="gpt-4o", max_repairs=1, mode="code"),
    )
    # the fake answers words, not code: two drafts (first + one repair), each one 503 from
    # gpt-4o and then the fallback's answer
    assert not out["ok"] and out["failed_stage"] == "validation"
    backup = fallback_model("strategy_builder", "gpt-4o")
    assert backup is not None and out["model_used"] == backup.id
    rows = get_ledger().rows(user_id="sb", service="strategy_builder")  # not the RAG embeddings
    assert sorted((r["model"], r["error"] is None) for r in rows) == sorted(
        [("gpt-4o", False), (backup.id, True)] * 2
    )
    assert out["output_tokens"] == 2 * 5  # the run's own rows, failed ones included
    assert out["cost_usd"] == pytest.approx(sum(r["cost_nanousd"] for r in rows) / 1e9)


@pytest.mark.usefixtures("fake_env")
def test_over_budget_run_raises_quota_error_before_any_call(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer
) -> None:
    monkeypatch.setenv("QUANT_GENAI_USER_BUDGETS_USD", '{"poor": 0.000001}')
    registry.reset()
    served = fake_openai.requests_served()
    with pytest.raises(QuotaExceededError, match="daily budget"):
        strategy_builder.graph.invoke(
            strategy_builder.InputState(request="an SMA crossover on GOOG"),
            context=strategy_builder.Context(user_id="poor"),
        )
    assert fake_openai.requests_served() == served
