"""Endpoints that report no usage: the callback counts the tokens locally and prices them.

ChatOpenAI built by the factory → real HTTP → the fake OpenAI server answering `#nousage` (no
usage in the body, no usage chunk in a stream even though `include_usage` is sent) → a ledger
row marked `estimated`, priced from the catalog. The fake server counts one token per
whitespace word (`plan`); the prompt below is words cl100k counts as one token each, so the
local count (cl100k plus OpenAI's per-message framing) is within 20% of the server's. The reply
words "w0 w1 …" are two cl100k tokens each: the local count is between the server's and twice
it, and never below (an estimate must not under-bill).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from agents.llm.catalog import get_model_config
from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.ledger import Ledger, get_ledger, usage_report
from agents.usage.limits import count_tokens
from agents.usage.pricing import TokenUsage, cost_nanousd
from tests.fakes.openai_server import FakeServer, plan

WORDS = " ".join(["the quick brown fox jumps over the lazy dog"] * 8)  # 72 words
PROMPT = f"{WORDS} #nousage #out=20"
INPUT_TOLERANCE = 0.20


@pytest.fixture
def nousage(make_settings: Callable[..., Settings], fake_openai: FakeServer) -> Settings:
    return make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_STREAM_USAGE=True,  # include_usage is sent: the server still omits it
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_CACHE="off",
    )


def _only_row(settings: Settings) -> dict[str, Any]:
    (row,) = get_ledger(settings).rows()
    return row


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_no_usage_is_counted_locally_priced_and_marked_estimated(
    nousage: Settings, fake_openai: FakeServer, mode: str
) -> None:
    chat = create_chat_model("narrative_report", user_id="alice", settings=nousage)
    if mode == "invoke":
        reply = chat.invoke(PROMPT)
        text = str(reply.content)
    else:
        text = "".join(str(c.content) for c in chat.stream(PROMPT))
    sent = fake_openai.last_request()
    assert (sent.get("stream_options") or {}).get("include_usage") is (mode == "stream" or None)
    server = plan(sent)  # what the server would have reported
    row = _only_row(nousage)
    assert row["estimated"] and not row["unpriced"]
    assert abs(row["input_tokens"] - server["in"]) <= INPUT_TOLERANCE * server["in"], row
    assert row["output_tokens"] == count_tokens(text)
    assert server["out"] <= row["output_tokens"] <= 2 * server["out"] + 2
    usage = TokenUsage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])
    assert row["cost_nanousd"] == cost_nanousd(get_model_config("gpt-4o-mini"), usage)
    assert row["cost_nanousd"] > 0 and row["list_price_nanousd"] == row["cost_nanousd"]
    (rep,) = usage_report(settings=nousage)
    assert rep.estimated_calls == 1 and rep.unpriced_calls == 0
    totals = get_ledger(nousage).totals([row["request_id"]])
    assert totals.estimated_calls == 1


def test_reported_usage_is_not_estimated(nousage: Settings) -> None:
    create_chat_model("narrative_report", user_id="alice", settings=nousage).invoke("hi #in=50")
    row = _only_row(nousage)
    assert not row["estimated"] and row["input_tokens"] == 50
    (rep,) = usage_report(settings=nousage)
    assert rep.estimated_calls == 0


def test_tool_call_arguments_are_counted(nousage: Settings) -> None:
    args = '{"symbol": "AAPL", "start": "2020-01-01", "end": "2021-12-31", "window": 20}'
    chat = create_chat_model("narrative_report", user_id="alice", settings=nousage)
    reply = chat.invoke(f"run it #nousage #tool=run_backtest:{args}")
    assert reply.tool_calls and reply.tool_calls[0]["args"]["symbol"] == "AAPL"
    row = _only_row(nousage)
    assert row["estimated"]
    # the name and the JSON arguments, as the model generated them
    assert row["output_tokens"] >= count_tokens("run_backtest" + args) - 4
    assert row["output_tokens"] > 10


def test_a_ledger_created_before_gets_the_column(ledger_url: str) -> None:
    old = Ledger(ledger_url)
    with old.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE llm_calls DROP COLUMN estimated")
        conn.exec_driver_sql(
            "INSERT INTO llm_calls (ts, request_id, model, input_tokens, cached_input_tokens,"
            " output_tokens, reasoning_tokens, unpriced, cache_hit)"
            " VALUES ('2026-01-01 00:00:00', 'old-1', 'gpt-4o-mini', 1, 0, 1, 0, false, false)"
        )
    old.dispose()
    assert "estimated" not in {c["name"] for c in sa.inspect(old.engine).get_columns("llm_calls")}
    new = Ledger(ledger_url)
    try:
        (row,) = new.rows()
        assert row["request_id"] == "old-1" and row["estimated"] is False
        (rep,) = new.report()
        assert rep.estimated_calls == 0
    finally:
        new.dispose()
