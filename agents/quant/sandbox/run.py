"""The parent side of the sandbox: validate, start the child process, read and judge its output.

`run_in_sandbox` runs the AST checks (`validate`), loads and checks the market data here (the
child gets it as JSON and needs no file access), then starts `agents.quant.sandbox.child` in a
fresh `python -I -B` in its own session — inside an empty network namespace when available — with
a minimal environment, an empty temp dir as cwd and a wall-clock timeout that kills the whole
process group, and turns what the child reported into a `SandboxResult`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from agents.quant.backtests import BacktestResult, load_ohlcv, load_ohlcv_csv
from agents.quant.sandbox.child import _READY, _RESULT
from agents.quant.sandbox.validate import ValidationReport, validate_strategy_code

Layer = Literal["ast", "builtins", "audit", "rlimits", "netns"]
ALL_LAYERS: frozenset[Layer] = frozenset({"ast", "builtins", "audit", "rlimits", "netns"})

ErrorKind = Literal["validation", "timeout", "memory", "runtime", "crash"]


class SandboxResult(BaseModel):
    """Outcome of one sandboxed run: the backtest, or why there is none."""

    ok: bool
    result: BacktestResult | None = None
    error_kind: ErrorKind | None = None
    error: str | None = Field(
        default=None, description="What went wrong; runtime errors cite lines of the user's code"
    )
    line: int | None = Field(default=None, description="User-code line of the failure, if known")
    blocked: str | None = Field(
        default=None, description="The forbidden operation (audit event) the code attempted"
    )
    validation: ValidationReport | None = None
    output: str = Field(default="", description="What the code printed (trimmed)")
    duration_s: float


_CHILD_BOOT = """
import sys, types
def unavailable(*args, **kwargs):
    raise RuntimeError("plotting is not available in the sandbox")
stub = types.ModuleType("backtesting._plotting")
stub.plot = stub.plot_heatmaps = stub.set_bokeh_output = unavailable
sys.modules["backtesting._plotting"] = stub
import agents.quant.sandbox.child
agents.quant.sandbox.child.main()
"""
"""The child's entry. backtesting's bokeh plotting is stubbed out before anything imports it: half
the start-up time, and a large surface (bokeh writes HTML, opens browsers) a backtest never uses."""

_MAX_STREAM = 1 << 22  # parent keeps at most 4 MiB of each child stream
_STARTUP_TIMEOUT_S = 60.0  # interpreter + engine imports; not charged to the user's timeout


@functools.cache
def _unshare_prefix() -> tuple[str, ...]:
    """`unshare -n --` when this machine lets us create a network namespace (root), else ()."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    try:
        done = subprocess.run([exe, "-n", "--", "true"], capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ()
    return (exe, "-n", "--") if done.returncode == 0 else ()


def network_isolation_available() -> bool:
    """True when runs get their own empty network namespace."""
    return bool(_unshare_prefix())


def _child_env(home: str) -> dict[str, str]:
    """A minimal environment: nothing from ours (keys, proxies, DATABASE_URL) leaks in."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # One BLAS thread: less address space, and no thread creation under RLIMIT_NPROC.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_MAX_THREADS": "1",
    }


def _frame_payload(frame: pd.DataFrame) -> dict[str, Any]:
    """The bars as JSON-exact lists (floats round-trip through repr), index as epoch ns."""
    return {
        # Native unit kept: the data fingerprint (part of the backtest id) hashes the raw ints.
        "index": pd.DatetimeIndex(frame.index).asi8.tolist(),
        "unit": pd.DatetimeIndex(frame.index).unit,
        "columns": [str(c) for c in frame.columns],
        "values": frame.to_numpy(dtype=float).tolist(),
        "symbol": str(frame.attrs.get("symbol") or "CUSTOM"),
    }


def _load_frame(symbol: str, csv_path: str | None, start: Any, end: Any) -> pd.DataFrame:
    frame = load_ohlcv_csv(csv_path, symbol=None) if csv_path else load_ohlcv(symbol)
    if start is not None or end is not None:
        attrs = dict(frame.attrs)
        lo = pd.Timestamp(start) if start is not None else None
        hi = pd.Timestamp(end) if end is not None else None
        frame = frame.loc[lo:hi]
        frame.attrs.update(attrs)
    if len(frame) < 2:
        raise ValueError(
            f"Not enough bars to backtest {frame.attrs.get('symbol')} between {start} and {end}."
        )
    return frame


def _collect(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[bytes, bytes, bool]:
    """Read both pipes until exit; the user's clock starts when the child says it is ready."""
    assert proc.stdout is not None and proc.stderr is not None
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        os.set_blocking(f.fileno(), False)
        sel.register(f.fileno(), selectors.EVENT_READ)
    out_fd = proc.stdout.fileno()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    ready = False
    timed_out = False
    try:
        while sel.get_map():
            if not ready and _READY in bufs[out_fd]:
                ready = True
                deadline = time.monotonic() + timeout_s
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                fd = int(key.fd)
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    sel.unregister(fd)
                elif len(bufs[fd]) < _MAX_STREAM:
                    bufs[fd] += chunk
    finally:
        sel.close()
    if timed_out:
        _kill_group(proc)
    proc.wait()
    _kill_group(proc)  # anything it left behind dies with it
    return bytes(bufs[out_fd]), bytes(bufs[proc.stderr.fileno()]), timed_out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_in_sandbox(
    code: str,
    *,
    symbol: str = "GOOG",
    csv_path: str | None = None,
    parameters: dict[str, Any] | None = None,
    user_id: str,
    strategy_name: str | None = None,
    class_name: str | None = None,
    timeout_s: float = 30,
    memory_mb: int = 1024,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    _layers: Iterable[Layer] = ALL_LAYERS,
) -> SandboxResult:
    """Validate, then backtest `code` in a locked-down subprocess; never raises for bad code.

    Bad *data* (unknown symbol, invalid CSV, empty date range) raises `ValueError` /
    `InvalidMarketDataError` before anything runs: that is the caller's input, not the model's.
    `timeout_s` is wall-clock for the user's code (interpreter start-up is not charged);
    `memory_mb` caps the child's whole address space. `_layers` exists for tests, which switch
    layers off to prove each of the others holds alone.
    """
    t0 = time.monotonic()
    layers = frozenset(_layers)
    report = validate_strategy_code(code, class_name=class_name, parameters=parameters)
    if not report.ok and "ast" in layers:
        return SandboxResult(
            ok=False,
            error_kind="validation",
            error=report.summary(),
            line=next((e.line for e in report.errors if e.line), None),
            validation=report,
            duration_s=time.monotonic() - t0,
        )
    frame = _load_frame(symbol, csv_path, start, end)
    payload = {
        "code": code,
        "class_name": class_name or report.strategy_class,
        "strategy_name": strategy_name,
        "user_id": user_id,
        "parameters": parameters or {},
        "data": _frame_payload(frame),
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "layers": sorted(layers),
    }
    workdir = tempfile.mkdtemp(prefix="qg-sandbox-")
    try:
        payload_path = os.path.join(workdir, "payload.json")
        with open(payload_path, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        prefix = _unshare_prefix() if "netns" in layers else ()
        cmd = [*prefix, sys.executable, "-I", "-B", "-c", _CHILD_BOOT]
        with open(payload_path, "rb") as stdin:
            proc = subprocess.Popen(
                cmd,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env=_child_env(workdir),
                start_new_session=True,
                close_fds=True,
            )
            out, err, timed_out = _collect(proc, timeout_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    duration = time.monotonic() - t0
    return _interpret(out, err, timed_out, proc.returncode, timeout_s, memory_mb, duration)


def _interpret(
    out: bytes,
    err: bytes,
    timed_out: bool,
    returncode: int,
    timeout_s: float,
    memory_mb: int,
    duration: float,
) -> SandboxResult:
    """Turn what the child printed and how it ended into a SandboxResult."""
    envelope: dict[str, Any] | None = None
    at = out.rfind(_RESULT)
    if at >= 0:
        with contextlib.suppress(ValueError):
            envelope = json.loads(out[at + len(_RESULT) :].split(b"\n", 1)[0])
    stderr = err.decode("utf-8", "replace")
    if timed_out or returncode == -signal.SIGXCPU:
        why = "wall-clock" if timed_out else "CPU"
        return SandboxResult(
            ok=False,
            error_kind="timeout",
            error=f"the strategy exceeded the {timeout_s:g} s {why} time limit and was killed "
            "(an endless loop in init/next?)",
            duration_s=duration,
        )
    if envelope is not None:
        output = str(envelope.get("output", ""))
        if envelope.get("ok"):
            return SandboxResult(
                ok=True,
                result=BacktestResult.model_validate(envelope["result"]),
                output=output,
                duration_s=duration,
            )
        kind = envelope.get("kind", "runtime")
        return SandboxResult(
            ok=False,
            error_kind=kind if kind in ("memory", "runtime") else "runtime",
            error=str(envelope.get("message", "")),
            line=envelope.get("line"),
            blocked=envelope.get("blocked"),
            output=output,
            duration_s=duration,
        )
    if "MemoryError" in stderr or "bad_alloc" in stderr or "Cannot allocate" in stderr:
        return SandboxResult(
            ok=False,
            error_kind="memory",
            error=f"the strategy exceeded the {memory_mb} MB memory limit\n{_tail(stderr, 4)}",
            duration_s=duration,
        )
    how = (
        f"killed by {signal.Signals(-returncode).name}"
        if returncode < 0 and -returncode in signal.valid_signals()
        else f"exit status {returncode}"
    )
    return SandboxResult(
        ok=False,
        error_kind="crash",
        error=f"the sandbox process ended without a result ({how})\n{_tail(stderr)}".strip(),
        duration_s=duration,
    )
