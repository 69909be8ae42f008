"""Chat memory survives a restart: a thread written by one process is read back, and continued,
by another — on the default SQLite file under the data dir, and on Postgres (`DATABASE_URL`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from agents import registry
from agents.settings import get_settings
from graphs.chatops_advanced import (
    MEMORY_FILE,
    chat,
    chat_turn,
    durable_checkpointer,
    graph_with_memory,
    memory_location,
    thread_config,
)
from tests.fakes.openai_server import FakeServer

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from graphs.chatops_advanced import chat
print(chat(sys.argv[1], user_id="alice", thread_id="t1"))
"""


@pytest.fixture(params=["sqlite", "postgres"])
def memory_backend(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    fake_openai: FakeServer,
) -> str:
    """gpt-4o-mini on the fake server (so no model is needed), memory on either backend."""
    route = {"base_url": fake_openai.base_url, "billed": True, "stream_usage": True}
    monkeypatch.setenv("QUANT_GENAI_MODEL_ROUTES", json.dumps({"gpt-4o-mini": route}))
    monkeypatch.setenv("QUANT_GENAI_MAX_RETRIES", "0")
    if request.param == "postgres":
        from tests.pg import fresh_database

        monkeypatch.setenv(
            "DATABASE_URL", fresh_database(request.getfixturevalue("postgres_admin_url"))
        )
    registry.reset()
    return str(request.param)


def _other_process(message: str) -> str:
    """One chat turn in a fresh interpreter with this test's environment."""
    done = subprocess.run(
        [sys.executable, "-c", WRITER, message],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_thread_outlives_the_process_that_wrote_it(
    memory_backend: str, fake_openai: FakeServer
) -> None:
    assert _other_process("my favourite symbol is BTCUSD") == "w0 w1 w2"
    registry.reset()  # as after a restart: nothing of this process remembers the thread
    state = graph_with_memory().get_state(thread_config("alice", "t1"))
    messages = state.values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage]
    assert messages[0].content == "my favourite symbol is BTCUSD"

    reply = chat_turn("what is my favourite symbol?", user_id="alice", thread_id="t1")
    assert reply.text == "w0 w1 w2" and reply.answer_source == "model"
    assert reply.model_used is not None and reply.model_used.startswith("gpt-4o-mini (served by")
    sent = [m["content"] for m in fake_openai.last_request()["messages"]]
    assert "my favourite symbol is BTCUSD" in sent  # the other process's turn reached the model
    assert len(graph_with_memory().get_state(thread_config("alice", "t1")).values["messages"]) == 4

    chat("what is my favourite symbol?", user_id="mallory", thread_id="t1")
    sent = [m["content"] for m in fake_openai.last_request()["messages"]]
    assert "my favourite symbol is BTCUSD" not in sent  # threads are per user

    where = memory_location()
    if memory_backend == "sqlite":
        assert where == str(get_settings().resolved_data_dir / MEMORY_FILE)
        assert Path(where).is_file()
    else:
        assert where.startswith("postgresql://") and "+psycopg" not in where


def test_one_saver_per_location_and_reset_closes_it(memory_backend: str) -> None:
    saver = durable_checkpointer()
    assert durable_checkpointer() is saver and graph_with_memory() is graph_with_memory()
    registry.reset()
    assert durable_checkpointer() is not saver


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///elsewhere/ledger.sqlite3", None),  # SQLite ledger: memory in the data dir
    ],
)
def test_memory_location(make_settings: object, url: str, expected: str | None) -> None:
    s = make_settings(DATABASE_URL=url)  # type: ignore[operator]
    assert memory_location(s) == (expected or str(s.resolved_data_dir / MEMORY_FILE))
