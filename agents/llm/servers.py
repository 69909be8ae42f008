"""One llama.cpp server per embedded model: its port and window, probing, the handle, the registry.

* Each packaged model (`agents.llm.weights.PACKAGED_MODELS`) has its own server on its own port:
  the 0.5B on QUANT_GENAI_LOCAL_PORT (8766) with QUANT_GENAI_LOCAL_CTX tokens per request, the
  1.5B on QUANT_GENAI_LOCAL_LARGE_PORT (default: that port + 1) with QUANT_GENAI_LOCAL_LARGE_CTX
  (default: QUANT_GENAI_LOCAL_CTX). `server_config(settings, model_id)` says which.
  QUANT_GENAI_LOCAL_MODEL_PATH collapses them: that one GGUF serves every model, on the
  0.5B's port and window.
* `xllamacpp.Server` runs llama.cpp's own OpenAI-compatible HTTP server inside this process, so
  the rest of the code talks plain OpenAI HTTP to it (usage, cached tokens, streaming usage) and
  other processes share one server per port: `ensure_server` reuses a healthy server already
  answering there (if it serves the expected model) instead of loading a second copy. Two
  servers can live in one process (measured: both models in one process, ~2.7 GB RSS at
  4096 tokens x 2 slots each).
* Context: llama.cpp splits `n_ctx` evenly across its parallel slots, so the window *per
  request* is the setting and the server is sized `n_ctx = ctx * N_PARALLEL`. KV cache (f16):
  the 0.5B ~12 KiB/token (2 x 8192 tokens ~200 MB), the 1.5B ~28 KiB/token (~450 MB).
* The served model id is the packaged model's id (set as llama.cpp's model alias), and that is
  what `/v1/models` and the `model` field of every completion report whatever name a request
  sends; a GGUF given through QUANT_GENAI_LOCAL_MODEL_PATH is served under its file stem (or
  the packaged id whose file name it has), so the ledger records what actually answered.

Caveats measured with xllamacpp 2026.10 (see also `_after_fork_in_child`):

* `xllamacpp.Server(...)` holds the GIL while it loads (~1.5 s for the 0.5B): other threads of
  this process stall once, on the first `ensure_server` of each model.
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
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

import httpx

from agents.llm.weights import (
    LARGE_MODEL_ID,
    LOCAL_MODEL_ID,
    LocalModelError,
    assemble_model,
    configured_model_path,
    packaged_model,
    served_model_id,
)
from agents.settings import Settings, get_settings

log = logging.getLogger(__name__)

N_PARALLEL: Final = 2
"""llama.cpp slots; n_ctx = per-request window x N_PARALLEL (see module docstring)."""
PROMPT_CACHE_RAM_MIB: Final = 1024
"""Host-RAM prompt cache beyond the slots, per server (llama.cpp defaults to 8 GiB)."""
START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 10.0
PORT_ENV: Final = "QUANT_GENAI_LOCAL_PORT"
LARGE_PORT_ENV: Final = "QUANT_GENAI_LOCAL_LARGE_PORT"


class LocalServerError(LocalModelError):
    """The llama.cpp server could not be started, reached or shared."""


# ---- which server serves which model ---------------------------------------------------------


_Knobs = tuple[Callable[[Settings], int], Callable[[Settings], int], str]
_KNOBS: dict[str, _Knobs] = {
    LOCAL_MODEL_ID: (lambda s: s.local_model_port, lambda s: s.local_model_ctx, PORT_ENV),
    LARGE_MODEL_ID: (
        lambda s: s.resolved_local_large_port,
        lambda s: s.resolved_local_large_ctx,
        LARGE_PORT_ENV,
    ),
}
"""Per packaged model: its port, its per-request window, and the variable that moves the port."""


class _Endpoint:
    """Where a server answers, for anything with a `host` and a `port`."""

    host: str
    port: int

    @property
    def root_url(self) -> str:
        return root_url(self.host, self.port)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (any non-empty api key is accepted)."""
        return f"{self.root_url}/v1"


@dataclass(frozen=True, eq=False)
class ServerConfig(_Endpoint):
    """Where and how one embedded model is served, from settings (computing it starts nothing)."""

    settings: Settings = field(repr=False)
    model_id: str
    """The packaged model whose server this is (the 0.5B's when QUANT_GENAI_LOCAL_MODEL_PATH
    serves everything)."""
    served_model: str
    host: str
    port: int
    ctx: int
    threads: int
    port_env: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def model_path(self) -> Path:
        """The GGUF it would serve (whether or not it is assembled yet)."""
        return configured_model_path(self.settings, self.model_id)

    def gguf(self, *, progress: bool) -> Path:
        """The GGUF to serve, assembled and verified once (or QUANT_GENAI_LOCAL_MODEL_PATH)."""
        return assemble_model(self.settings, progress=progress, model_id=self.model_id)


def server_config(settings: Settings | None = None, model_id: str = LOCAL_MODEL_ID) -> ServerConfig:
    """The server of a packaged model under these settings; starts nothing."""
    s = settings or get_settings()
    if s.local_model_path is not None:
        model_id = LOCAL_MODEL_ID  # one GGUF serves every model, as the default one
    packaged_model(model_id)  # an unknown id is an error naming the packaged ones
    port, ctx, env = _KNOBS[model_id]
    return ServerConfig(
        settings=s,
        model_id=model_id,
        served_model=served_model_id(s, model_id),
        host=s.local_model_host,
        port=port(s),
        ctx=ctx(s),
        threads=s.local_model_threads,
        port_env=env,
    )


def server_configs(settings: Settings | None = None) -> list[ServerConfig]:
    """Every embedded server these settings may use: one per packaged model, or the one
    QUANT_GENAI_LOCAL_MODEL_PATH server."""
    s = settings or get_settings()
    ids = [LOCAL_MODEL_ID] if s.local_model_path is not None else list(_KNOBS)
    return [server_config(s, m) for m in ids]


# ---- probing ---------------------------------------------------------------------------------


class Probe(Enum):
    FREE = "free"  # nothing listening
    HEALTHY = "healthy"  # a llama.cpp server, ready
    LOADING = "loading"  # a llama.cpp server, still loading its model
    OTHER = "other"  # something else holds the port


def _connect_host(host: str) -> str:
    """A host to connect to for a bind address (wildcards are not connectable everywhere)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def root_url(host: str, port: int) -> str:
    return f"http://{_connect_host(host)}:{port}"


def _get(url: str, timeout: float = 3.0) -> httpx.Response:
    # trust_env=False: a loopback call must never go through an HTTP(S)_PROXY
    return httpx.get(url, timeout=timeout, trust_env=False)


def probe(root: str) -> Probe:
    try:
        r = _get(f"{root}/health")
    except httpx.ConnectError:
        return Probe.FREE
    except httpx.HTTPError:
        return Probe.OTHER
    if not r.headers.get("server", "").lower().startswith("llama"):
        return Probe.OTHER  # llama.cpp's server sends `Server: llama.cpp` on every response
    if r.status_code == 200:
        return Probe.HEALTHY
    if r.status_code == 503:  # {"error": {"message": "Loading model", ...}}
        return Probe.LOADING
    return Probe.OTHER


def wait_healthy(cfg: ServerConfig, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = probe(cfg.root_url)
        if state is Probe.HEALTHY:
            return
        if state is Probe.OTHER:
            raise port_taken(cfg)
        if time.monotonic() > deadline:
            raise LocalServerError(
                f"The local model server at {cfg.root_url} was not healthy after "
                f"{timeout:.0f} s (last state: {state.value})"
            )
        time.sleep(0.1)


def port_taken(cfg: ServerConfig) -> LocalServerError:
    return LocalServerError(
        f"{cfg.root_url} is taken by something that is not a healthy llama.cpp server; stop it "
        f"or choose another port with {cfg.port_env}"
    )


def start_failed(cfg: ServerConfig, model: Path, exc: BaseException) -> LocalServerError:
    return LocalServerError(
        f"llama.cpp could not serve {model} on {cfg.root_url} ({exc}); the port may be in use "
        f"(choose another with {cfg.port_env}) or the GGUF may be unreadable"
    )


def server_info(root: str) -> tuple[list[str], Path | None, int | None]:
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


# ---- the handle and the process-wide registry ------------------------------------------------


@dataclass(eq=False)
class LocalModelServer(_Endpoint):
    """A handle on a llama.cpp server: ours (`owned`, stopped by `stop`) or a shared one."""

    host: str
    port: int
    model_path: Path | None
    served_model: str
    owned: bool
    context_window: int | None = None
    """Tokens per request (llama.cpp's per-slot n_ctx), when the server reports it."""
    _server: Any = field(default=None, repr=False)

    def is_healthy(self) -> bool:
        return probe(self.root_url) is Probe.HEALTHY

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


def registry_lock() -> threading.RLock:
    """The registry's lock (replaced in a forked child: always fetch it through this)."""
    return _REGISTRY_LOCK


def registered(cfg: ServerConfig) -> LocalModelServer | None:
    with _REGISTRY_LOCK:
        return _REGISTRY.get(cfg.key)


def register(cfg: ServerConfig, handle: LocalModelServer) -> None:
    with _REGISTRY_LOCK:
        _REGISTRY[cfg.key] = handle


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


# ---- attach or start -------------------------------------------------------------------------


def attach(cfg: ServerConfig) -> LocalModelServer:
    """A handle on the healthy server at cfg's port, if it serves the model cfg expects."""
    try:
        ids, path, n_ctx = server_info(cfg.root_url)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise port_taken(cfg) from exc
    if cfg.served_model not in ids:
        raise LocalServerError(
            f"{cfg.root_url} is a llama.cpp server but serves {ids or 'nothing'}, not "
            f"{cfg.served_model}; stop it or choose another port with {cfg.port_env}"
        )
    return LocalModelServer(
        host=cfg.host,
        port=cfg.port,
        model_path=path,
        served_model=cfg.served_model,
        owned=False,
        context_window=n_ctx,
    )


def start_owned(cfg: ServerConfig, model: Path, *, verbosity: int) -> LocalModelServer:
    """Start llama.cpp's server in this process (the constructor returns once it is loaded)."""
    import xllamacpp as xlc  # loads llama.cpp's native library: only where a server starts

    p = xlc.CommonParams()
    p.model.path = str(model)
    p.model_alias = {cfg.served_model}
    p.hostnames = [cfg.host]
    p.port = cfg.port
    p.n_parallel = N_PARALLEL
    p.n_ctx = cfg.ctx * N_PARALLEL
    p.cpuparams.n_threads = cfg.threads
    p.cpuparams_batch.n_threads = cfg.threads
    p.use_jinja = True
    p.cache_prompt = True
    p.cache_ram_mib = PROMPT_CACHE_RAM_MIB
    p.fit_params = False  # GPU-memory fitting: costs ~1.4 s at load, nothing to fit on CPU
    p.ui = False  # the prebuilt wheel has no web UI assets
    p.verbosity = verbosity
    server = xlc.Server(p)  # raises RuntimeError when the port cannot be bound or load fails
    handle = LocalModelServer(
        host=cfg.host,
        port=cfg.port,
        model_path=model,
        served_model=cfg.served_model,
        owned=True,
        context_window=cfg.ctx,
        _server=server,
    )
    atexit.register(handle.stop)
    try:
        wait_healthy(cfg)
    except BaseException:
        handle.stop()
        raise
    return handle


def _attach_or_start(cfg: ServerConfig, *, verbosity: int) -> LocalModelServer:
    state = probe(cfg.root_url)
    if state is Probe.OTHER:
        raise port_taken(cfg)
    if state is not Probe.FREE:
        wait_healthy(cfg)
        return attach(cfg)
    model = cfg.gguf(progress=sys.stderr.isatty())
    try:
        return start_owned(cfg, model, verbosity=verbosity)
    except RuntimeError as exc:
        if isinstance(exc, LocalModelError):
            raise
        # Usually another process won the race to this port: share its server.
        state = probe(cfg.root_url)
        if state is Probe.OTHER:
            raise port_taken(cfg) from exc
        if state is not Probe.FREE:
            wait_healthy(cfg)
            return attach(cfg)
        raise start_failed(cfg, model, exc) from exc


def ensure_server(
    settings: Settings | None = None, model_id: str = LOCAL_MODEL_ID
) -> LocalModelServer:
    """The process-wide handle on `model_id`'s server: reuse one already answering on its port,
    else start one (lazily: the first call for each model pays the load).

    Thread-safe; repeated calls return the same handle while it stays usable.
    """
    cfg = server_config(settings, model_id)
    with _REGISTRY_LOCK:
        _SERVING[cfg.base_url] = cfg
        handle = _REGISTRY.get(cfg.key)
        if handle is not None and handle.served_model != cfg.served_model:
            raise LocalServerError(
                f"This process already serves {handle.served_model} on {handle.root_url}, not "
                f"{cfg.served_model}; use another port ({cfg.port_env}) for a second model"
            )
        if handle is not None and (handle.owned or handle.is_healthy()):
            return handle
        if handle is not None:
            log.warning("the local model server at %s is gone: starting it again", cfg.root_url)
        handle = _attach_or_start(cfg, verbosity=1)  # errors only: this process has other output
        _REGISTRY[cfg.key] = handle
        return handle


_SERVING: dict[str, ServerConfig] = {}
"""base URL → the config `ensure_server` served it for, so a call can find its server again."""


def ensure_serving(base_url: str) -> None:
    """Before a call to an embedded server: the server `ensure_server` gave `base_url` still
    answers, else it is started again in this process (or found again on its port: another
    process restarted it first). Free for a server this process runs; one `/health` probe for
    a shared one (`local-model serve`, another worker's), which another process may have
    killed. A URL `ensure_server` never returned is left alone.

    Raises `LocalServerError` (naming the port and the variable) when it cannot be restarted.
    """
    with _REGISTRY_LOCK:
        cfg = _SERVING.get(base_url)
        if cfg is None:
            return
        handle = _REGISTRY.get(cfg.key)
        if handle is not None and handle.owned:
            return
    ensure_server(cfg.settings, cfg.model_id)
