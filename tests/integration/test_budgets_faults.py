"""Budgets fail closed: a locked or vanished ledger database refuses the call, sends nothing.

Real ChatOpenAI calls to the fake OpenAI-compatible server with the real cost callback; a real
SQLite file held locked by another connection; a private Postgres cluster stopped mid-test.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from agents.llm.catalog import MODEL_CATALOG
from agents.usage.budgets import make_budget, set_budget
from agents.usage.callback import CostCallbackHandler
from agents.usage.ledger import Ledger
from agents.usage.limits import BudgetUnavailableError
from tests.fakes.openai_server import FakeServer

PROMPT = "price this call #out=3"
CHAT = "chatops_advanced"


def _chat(ledger: Ledger, fake: FakeServer, user: str) -> ChatOpenAI:
    handler = CostCallbackHandler(
        ledger=ledger,
        model=MODEL_CATALOG["gpt-4o-mini"],
        service=CHAT,
        user_id=user,
        served_model="gpt-4o-mini",
        route="openai",
        reservation_ttl_s=60,
    )
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=fake.base_url,
        api_key="sk-test",  # type: ignore[arg-type]
        max_retries=0,
        max_tokens=20,
        callbacks=[handler],
    )


def _budget(ledger: Ledger, user: str) -> None:
    budget = make_budget(scope="user", period="day", unit="tokens", limit=10**6, user_id=user)
    set_budget(ledger.engine, budget)


def test_a_locked_sqlite_ledger_refuses_the_call(tmp_path: Path, fake_openai: FakeServer) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(f"sqlite:///{path}", busy_timeout_s=0.3)
    _budget(ledger, "lk")
    chat = _chat(ledger, fake_openai, "lk")
    assert chat.invoke(PROMPT).content == "w0 w1 w2"
    other = sqlite3.connect(path, timeout=0.1)  # another process's connection, say
    other.execute("BEGIN IMMEDIATE")  # holds the write lock past the busy timeout
    served = fake_openai.requests_served()
    try:
        with pytest.raises(BudgetUnavailableError, match="database is locked") as err:
            chat.invoke(PROMPT)
        assert "the call was not sent" in str(err.value)
        assert fake_openai.requests_served() == served  # fail closed: nothing went out
    finally:
        other.rollback()
        other.close()
    assert chat.invoke(PROMPT).content == "w0 w1 w2"  # the lock is gone: calls pass again
    assert len(ledger.rows(user_id="lk")) == 2 and ledger.held_nanousd("lk") == 0


@pytest.mark.postgres
def test_postgres_going_away_refuses_the_call(fake_openai: FakeServer) -> None:
    from tests.pg import fresh_database, postgres_cluster

    with contextlib.ExitStack() as stack:
        admin = stack.enter_context(postgres_cluster())  # a private cluster: this test stops it
        ledger = Ledger(fresh_database(admin))
        _budget(ledger, "pg")
        chat = _chat(ledger, fake_openai, "pg")
        assert chat.invoke(PROMPT).content == "w0 w1 w2"
        stack.close()  # the server stops (immediate shutdown) and its data is removed
        served = fake_openai.requests_served()
        with pytest.raises(BudgetUnavailableError, match="could not be checked"):
            chat.invoke(PROMPT)
        assert fake_openai.requests_served() == served
        ledger.dispose()
