"""The `quant-genai` CLI: JSON shapes, tables, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.llm.catalog import available_models
from agents.llm.factory import create_chat_model
from agents.quant.backtests import run_backtest
from agents.quant.corpus import BuyAndHold, SmaCross, corpus_to_json
from agents.registry import reset
from agents.serve.cli import app
from tests.fakes.openai_server import FakeServer

runner = CliRunner()

USAGE_KEYS = {
    "model",
    "calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "list_price_usd",
}


def test_models_json_matches_the_policy() -> None:
    res = runner.invoke(app, ["models", "--service", "strategy_builder", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [m["id"] for m in data["models"]] == [m.id for m in available_models("strategy_builder")]
    assert data["policy"]["default_model"] == "gpt-4o"
    gpt4o = next(m for m in data["models"] if m["id"] == "gpt-4o")
    assert gpt4o["input"] == 2.5 and gpt4o["cached_input"] == 1.25 and gpt4o["output"] == 10.0


def test_models_by_tier_and_table() -> None:
    res = runner.invoke(app, ["models", "--tier", "premium", "--json"])
    data = json.loads(res.output)
    assert {m["id"] for m in data["strategy_builder"]["models"]} == {"o3", "gpt-5"}
    assert data["narrative_report"]["models"] == []
    table = runner.invoke(app, ["models", "--service", "chatops_advanced"])
    assert table.exit_code == 0 and "gpt-4o-mini *" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "--service", "trading"], "services: narrative_report"),
        (["models", "--tier", "gold"], "tiers: mini, standard, advanced, premium"),
        (["usage", "--by", "colour"], "model, service, user, day, route"),
        (["usage", "--since", "yesterday"], "not a date like"),
        (["usage", "--service", "x"], "services: narrative_report"),
    ],
)
def test_bad_input_names_what_is_allowed(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output.replace("\n", " ")


def test_usage_json_rows(monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("QUANT_GENAI_STREAM_USAGE", "true")
    reset()
    create_chat_model("narrative_report", user_id="u1").invoke("a #in=100 #cached=50 #out=10")
    create_chat_model("strategy_builder", "o3", user_id="u2").invoke(
        "b #in=10 #out=30 #reasoning=20"
    )
    res = runner.invoke(app, ["usage", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {r["model"] for r in rows} == {"gpt-4o-mini", "o3"}
    for r in rows:
        assert set(r) >= USAGE_KEYS
    o3 = next(r for r in rows if r["model"] == "o3")
    assert (o3["output_tokens"], o3["reasoning_tokens"]) == (50, 20)
    assert o3["cost_usd"] == pytest.approx((10 * 2 + 50 * 8) / 1e6)
    mini = next(r for r in rows if r["model"] == "gpt-4o-mini")
    assert mini["cost_usd"] == pytest.approx((50 * 0.15 + 50 * 0.075 + 10 * 0.6) / 1e6)
    only_u1 = json.loads(runner.invoke(app, ["usage", "--user", "u1", "--json"]).output)
    assert [r["model"] for r in only_u1] == ["gpt-4o-mini"]
    table = runner.invoke(app, ["usage", "--by", "service"])
    assert "strategy_builder" in table.output and "total" in table.output


def test_index_a_json_file_then_search(tmp_path: Path) -> None:
    reset()
    results = [
        run_backtest(SmaCross, "GOOG", user_id="alice"),
        run_backtest(BuyAndHold, "BTCUSD", user_id="alice"),
        run_backtest(SmaCross, "EURUSD", user_id="bob"),
    ]
    path = corpus_to_json(results, tmp_path / "results.json")
    res = runner.invoke(app, ["index", "--file", str(path)])
    assert res.exit_code == 0, res.output
    assert "indexed 3 backtests" in res.output and "docs/s" in res.output
    hits = json.loads(
        runner.invoke(
            app, ["search", "--user", "alice", "--k", "5", "--json", "buy and hold bitcoin"]
        ).output
    )
    assert {h["id"] for h in hits} == {results[0].id, results[1].id}  # never bob's
    assert hits[0]["id"] == results[1].id  # the BTCUSD buy-and-hold ranks first
    assert all(set(h) >= {"id", "score", "content", "metadata"} for h in hits)
    assert all(0 <= h["score"] <= 1 for h in hits)
    assert hits[0]["score"] >= hits[1]["score"]
    reset()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--user", " ", "x"], "user"),
        (["index", "--file", "/nonexistent/results.json"], "cannot read backtest results"),
        (["index", "--users", "0"], "--users must be at least 1"),
    ],
)
def test_index_and_search_bad_input(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output
