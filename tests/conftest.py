"""Shared fixtures: isolated settings per test, the fake OpenAI-compatible server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents import registry
from agents.settings import Settings
from tests.fakes.openai_server import FakeServer, run_fake_server


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees a developer's key, .env or data directory."""
    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "DATABASE_URL",
        "QUANT_GENAI_BACKEND",
        "QUANT_GENAI_MODEL_ROUTES",
        "QUANT_GENAI_STREAM_USAGE",
        "QUANT_GENAI_FALLBACK",
        "QUANT_GENAI_DAILY_BUDGET_USD",
        "QUANT_GENAI_USER_BUDGETS_USD",
        "CHROMADB_PATH",
        "REDIS_URL",
        "QUANT_GENAI_RATE_LIMITS",
        "QUANT_GENAI_ALERT_WEBHOOK_URL",
        "QUANT_GENAI_CACHE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QUANT_GENAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from a model hub
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    registry.reset()
    yield
    registry.reset()


@pytest.fixture
def serve_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Starts `agents.serve.api.app` under uvicorn on a free port in this process, with the
    given environment (env var names as keywords); returns its URL. Stopped after the test."""
    import uvicorn

    from agents.serve import api

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**env: str) -> str:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        registry.reset()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        srv = uvicorn.Server(
            uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        servers.append((srv, thread))
        deadline = time.monotonic() + 20
        while not srv.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeServer]:
    with run_fake_server() as server:
        yield server


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on a per-test data dir; keyword arguments use the env var names."""

    def make(**env: Any) -> Settings:
        env.setdefault("QUANT_GENAI_DATA_DIR", str(tmp_path / "data"))
        return Settings(_env_file=None, **env)  # type: ignore[call-arg]

    return make


@pytest.fixture
def fake_settings(make_settings: Callable[..., Settings], fake_openai: FakeServer) -> Settings:
    """OpenAI-compatible routing to the fake server, billed like OpenAI, usage in streams."""
    return make_settings(
        OPENAI_API_KEY="sk-test-secret-123",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_STREAM_USAGE=True,
        QUANT_GENAI_MAX_RETRIES=0,
    )


ROOT = Path(__file__).resolve().parents[1]


def _assembled(model_id: str) -> Path:
    from agents.llm.weights import assemble_model

    settings = Settings(_env_file=None, data_dir=ROOT / "data")  # type: ignore[call-arg]
    return assemble_model(settings, progress=False, model_id=model_id)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def local_gguf() -> Path:
    """The packaged 0.5B GGUF, assembled once where `make model` puts it (./data/models)."""
    from agents.llm.weights import LOCAL_MODEL_ID

    return _assembled(LOCAL_MODEL_ID)


@pytest.fixture(scope="session")
def local_large_gguf() -> Path:
    """The packaged 1.5B GGUF, assembled once where `make model` puts it (./data/models)."""
    from agents.llm.weights import LARGE_MODEL_ID

    return _assembled(LARGE_MODEL_ID)


@pytest.fixture(scope="session")
def local_port() -> int:
    """A port for this test session's local model server (not a developer's default)."""
    return _free_port()


@pytest.fixture(scope="session")
def local_large_port(local_port: int) -> int:
    """A port for this test session's 1.5B server (QUANT_GENAI_LOCAL_LARGE_PORT)."""
    port = _free_port()
    while port == local_port:
        port = _free_port()
    return port


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    from tests.pg import postgres_cluster

    with postgres_cluster() as url:
        yield url


@pytest.fixture(scope="session")
def redis_session() -> Iterator[Any]:
    """The session's Redis server (Debian's redis-server on a free loopback port)."""
    from tests.redis_server import redis_server

    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_session: Any) -> Iterator[str]:
    """A running Redis with no keys, for one test; `REDIS_URL` is not set by this fixture."""
    redis_session.start()  # a test before may have stopped it
    redis_session.flush()
    yield redis_session.url
    redis_session.start()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ledger on both backends: a SQLite file, and a fresh database on a real Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    from tests.pg import fresh_database

    return fresh_database(request.getfixturevalue("postgres_admin_url"))


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch, local_gguf: Path, local_port: int) -> None:
    """Process settings that route every model to this session's embedded 0.5B server (one
    GGUF for every tier through QUANT_GENAI_LOCAL_MODEL_PATH: the suite's fast default)."""
    monkeypatch.setenv("QUANT_GENAI_LOCAL_MODEL_PATH", str(local_gguf))
    monkeypatch.setenv("QUANT_GENAI_LOCAL_PORT", str(local_port))
    registry.reset()


@pytest.fixture
def local_models_env(
    tmp_path: Path,
    local_gguf: Path,
    local_large_gguf: Path,
    local_port: int,
    local_large_port: int,
) -> dict[str, str]:
    """Settings (env names) of the embedded defaults proper: both packaged models, routed by
    tier (mini → 0.5B on `local_port`, shared with `local_env`'s server; standard and above →
    1.5B on `local_large_port`). The models are read from ./data/models; the ledger and stores
    are this test's."""
    assert local_gguf.parent == local_large_gguf.parent
    return {
        "QUANT_GENAI_DATA_DIR": str(local_gguf.parent.parent),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        "CHROMADB_PATH": str(tmp_path / "chroma"),
        "QUANT_GENAI_LOCAL_PORT": str(local_port),
        "QUANT_GENAI_LOCAL_LARGE_PORT": str(local_large_port),
    }
