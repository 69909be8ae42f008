"""The model layer against a misbehaving OpenAI-compatible server, over real HTTP: rate-limit
bursts, 500s, hung and cut-off answers, bodies that are not JSON. Every call ends in an answer or
a clear error, never a hang; every attempt is one ledger row; no budget stays held."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import openai
import pytest

from agents.llm.factory import create_chat_model, create_chat_model_with_fallback
from agents.settings import Settings
from agents.usage.ledger import get_ledger
from tests.fakes.openai_server import FakeServer

USER = "faulty"


def _settings(make_settings: Callable[..., Settings], fake: FakeServer, **env: Any) -> Settings:
    env.setdefault("QUANT_GENAI_MAX_RETRIES", 0)
    return make_settings(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake.base_url,
        QUANT_GENAI_STREAM_USAGE=True,
        QUANT_GENAI_USER_BUDGETS_USD={USER: 5.0},  # every billed call reserves its worst case
        **env,
    )


def _settled(s: Settings) -> list[dict[str, Any]]:
    """The user's rows, after checking nothing they reserved is still held."""
    ledger = get_ledger(s)
    assert ledger.held_nanousd(USER) == 0
    return ledger.rows(user_id=USER)


def test_a_burst_of_429s_is_retried_through(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = _settings(make_settings, fake_openai, QUANT_GENAI_MAX_RETRIES=2)
    chat = create_chat_model("chatops_advanced", user_id=USER, settings=s, max_tokens=50)
    before = fake_openai.requests_served()
    reply = chat.invoke(f"hello #out=2 #flaky=2:{uuid.uuid4().hex}")
    assert reply.content == "w0 w1"
    assert fake_openai.requests_served() - before == 3  # two 429s, then the answer
    (row,) = _settled(s)  # the SDK's retries are one call: one row, priced
    assert row["error"] is None and row["output_tokens"] == 2 and row["cost_nanousd"] > 0


def test_429s_past_the_retries_are_a_rate_limit_error_with_a_row(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = _settings(make_settings, fake_openai, QUANT_GENAI_MAX_RETRIES=1)
    chat = create_chat_model("chatops_advanced", user_id=USER, settings=s, max_tokens=50)
    with pytest.raises(openai.RateLimitError):
        chat.invoke(f"hello #flaky=5:{uuid.uuid4().hex}")
    (row,) = _settled(s)
    assert "RateLimitError" in row["error"] and row["cost_nanousd"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_hung_answer_times_out(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, stream: bool
) -> None:
    s = _settings(make_settings, fake_openai, QUANT_GENAI_TIMEOUT_S=0.5)
    chat = create_chat_model("chatops_advanced", user_id=USER, settings=s, max_tokens=50)
    with pytest.raises(openai.APITimeoutError):
        if stream:
            list(chat.stream("hello #sleep=4000"))
        else:
            chat.invoke("hello #sleep=4000")
    (row,) = _settled(s)
    assert "Timeout" in row["error"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", ["malformed", "cut"])
def test_a_broken_answer_is_an_error_row_not_a_crash_or_a_hang(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, fault: str, stream: bool
) -> None:
    s = _settings(make_settings, fake_openai)
    chat = create_chat_model("chatops_advanced", user_id=USER, settings=s, max_tokens=50)
    with pytest.raises(Exception) as err:  # which one depends on where it broke
        if stream:
            list(chat.stream(f"hello #fault={fault}"))
        else:
            chat.invoke(f"hello #fault={fault}")
    assert not isinstance(err.value, AssertionError)
    (row,) = _settled(s)
    assert row["error"] and row["output_tokens"] == 0
    # the pool is not poisoned: the next call on the same client is answered
    assert chat.invoke("again #out=1").content == "w0"


def test_a_500_on_one_model_falls_back_and_both_attempts_are_rows(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = _settings(make_settings, fake_openai)
    chat = create_chat_model_with_fallback(
        "chatops_advanced", "gpt-4o", user_id=USER, settings=s, max_tokens=50
    )
    reply = chat.invoke("hello #out=1 #down=gpt-4o")
    assert reply.content == "w0"
    rows = _settled(s)
    assert len(rows) == 2 and (rows[0]["model"], rows[0]["error"] is None) == ("gpt-4o", False)
    assert rows[1]["error"] is None and rows[1]["model"] != "gpt-4o"
