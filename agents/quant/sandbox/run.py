"""The parent side of the sandbox: validate, start the child process, read and judge its output.

`run_in_sandbox` runs the AST checks (`validate`), loads and checks the market data here (the
child gets it as JSON and needs no file access), then starts `agents.quant.sandbox.child` in a
fresh `python -I -B` in its own session — inside bubblewrap's private view and namespaces when
available (`launch`) — with a minimal environment, `/` as cwd and a wall-clock timeout that kills
the whole process group. The child answers on a pipe of its own (never stdout); its report is a
list of trades, which `verify` checks against the parent's data and turns into the result.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
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
from agents.quant.sandbox.launch import Launcher, launcher, warn_once
from agents.quant.sandbox.validate import ValidationReport, validate_strategy_code
from agents.quant.sandbox.verify import ForgedResultError, result_from_report

Layer = Literal[
    "ast", "builtins", "audit", "rlimits", "privileges", "landlock", "seccomp", "namespaces"
]
PYTHON_LAYERS: frozenset[Layer] = frozenset({"ast", "builtins", "audit"})
"""In-process layers: they explain refusals; the OS layers are what must hold without them."""
OS_LAYERS: frozenset[Layer] = frozenset(
    {"rlimits", "privileges", "landlock", "seccomp", "namespaces"}
)
ALL_LAYERS: frozenset[Layer] = PYTHON_LAYERS | OS_LAYERS

ErrorKind = Literal["validation", "timeout", "memory", "runtime", "crash"]

CASH = 10_000.0
COMMISSION = 0.002
"""The account every sandboxed backtest runs with (`run_backtest`'s defaults)."""


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
        default=None, description="The forbidden operation the code attempted, if known"
    )
    validation: ValidationReport | None = None
    output: str = Field(default="", description="What the code printed (trimmed)")
    confinement: list[str] = Field(
        default_factory=list, description="The sandbox layers in force for this run"
    )
    missing: list[str] = Field(
        default_factory=list, description="Layers that could not be put up here, and why"
    )
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
_MAX_REPORT = 1 << 25  # and 32 MiB of the result pipe (a report beyond it is refused)
_STARTUP_TIMEOUT_S = 60.0  # interpreter + engine imports; not charged to the user's timeout


def network_isolation_available() -> bool:
    """True when runs get their own empty network namespace."""
    return "netns" in launcher().held


def _child_env() -> dict[str, str]:
    """A minimal environment: nothing from ours (keys, proxies, DATABASE_URL) leaks in."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "TMPDIR": "/nonexistent",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # One BLAS thread: less address space, no thread creation under RLIMIT_NPROC, and a
        # single-threaded process when the OS layers go up.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_MAX_THREADS": "1",
    }


def _frame_payload(frame: pd.DataFrame) -> dict[str, Any]:
    """The bars as JSON-exact lists (floats round-trip through repr), index as epoch ns."""
    return {
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


def _collect(
    proc: subprocess.Popen[bytes], report_fd: int, timeout_s: float
) -> tuple[dict[str, bytes], bool, bool]:
    """Read the child's streams and result pipe until all close; the user's clock starts when the
    child reports it is locked down. (streams by name, timed out, report overflowed)."""
    assert proc.stdout is not None and proc.stderr is not None
    names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", report_fd: "report"}
    bufs = {fd: bytearray() for fd in names}
    sel = selectors.DefaultSelector()
    for fd in names:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    ready = timed_out = overflow = False
    try:
        while sel.get_map():
            if not ready and b"\n" in bufs[report_fd]:
                ready = True
                deadline = time.monotonic() + timeout_s
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                fd = int(key.fd)
                chunk = os.read(fd, 1 << 16)
                limit = _MAX_REPORT if fd == report_fd else _MAX_STREAM
                if not chunk:
                    sel.unregister(fd)
                elif len(bufs[fd]) < limit:
                    bufs[fd] += chunk
                elif fd == report_fd:
                    overflow = True
    finally:
        sel.close()
    if timed_out or overflow:
        _kill_group(proc)
    proc.wait()
    _kill_group(proc)  # anything it left behind dies with it
    return {names[fd]: bytes(buf) for fd, buf in bufs.items()}, timed_out, overflow


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
    layers off to prove the others hold alone; no request reaches it.
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
            confinement=["ast"],
            duration_s=time.monotonic() - t0,
        )
    frame = _load_frame(symbol, csv_path, start, end)
    launch = launcher() if "namespaces" in layers else None
    job = {
        "code": code,
        "class_name": class_name or report.strategy_class,
        "parameters": parameters or {},
        "data": _frame_payload(frame),
        "cash": CASH,
        "commission": COMMISSION,
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "layers": sorted(layers),
    }
    streams, timed_out, overflow, returncode = _spawn(job, launch, timeout_s)
    outcome, trades = _interpret(streams, timed_out, overflow, returncode, timeout_s, memory_mb)
    if trades is not None:
        identity = {
            "user_id": user_id,
            "strategy_name": strategy_name or class_name or report.strategy_class or "Strategy",
            "strategy_code": code,
            "parameters": {**report.parameters, **(parameters or {})},
        }
        outcome = _verified(outcome, frame, trades, identity)
    outcome.confinement = (
        ["ast"] * ("ast" in layers) + [*(launch.held if launch else ())] + [*outcome.confinement]
    )
    outcome.missing = [*(launch.missing if launch else ()), *outcome.missing]
    warn_once([m for m in outcome.missing if not launch or m not in launch.missing])
    outcome.duration_s = time.monotonic() - t0
    return outcome


def _spawn(
    job: dict[str, Any], launch: Launcher | None, timeout_s: float
) -> tuple[dict[str, bytes], bool, bool, int]:
    """Start the child (inside `launch`), hand it the job and its result pipe, collect it."""
    read_fd, write_fd = os.pipe()
    try:
        with tempfile.TemporaryFile() as stdin:  # unlinked: nothing is left on disk
            stdin.write(json.dumps({**job, "result_fd": write_fd}).encode())
            stdin.seek(0)
            cmd = [*(launch.prefix if launch else ()), sys.executable, "-I", "-B", "-c"]
            proc = subprocess.Popen(
                [*cmd, _CHILD_BOOT],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd="/",
                env=_child_env(),
                start_new_session=True,
                close_fds=True,
                pass_fds=(write_fd,),
            )
        os.close(write_fd)
        write_fd = -1
        streams, timed_out, overflow = _collect(proc, read_fd, timeout_s)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    returncode = launch.exit_status(proc.returncode) if launch else proc.returncode
    return streams, timed_out, overflow, returncode


def _verified(
    outcome: SandboxResult, frame: pd.DataFrame, trades: dict[str, Any], identity: dict[str, Any]
) -> SandboxResult:
    """The child's claimed success, checked and computed here (`verify`), or refused."""
    try:
        outcome.result = result_from_report(
            frame, trades, cash=CASH, commission=COMMISSION, **identity
        )
    except Exception as exc:  # a hostile report must not crash the parent: refuse it
        return SandboxResult(
            ok=False,
            error_kind="runtime",
            blocked="forged result",
            error=f"the sandbox reported trades no backtest of this data can make ({exc}); "
            "the result is refused"
            if isinstance(exc, ForgedResultError)
            else f"the sandbox's report could not be checked ({type(exc).__name__}); refused",
            output=outcome.output,
            confinement=outcome.confinement,
            missing=outcome.missing,
            duration_s=0.0,
        )
    return outcome


def _channel(report: bytes, overflow: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(ready, result) from the result pipe, or ValueError when it holds anything else: the
    child writes exactly one ready line, then at most one result line."""
    if overflow:
        raise ValueError("more data than any report")
    lines = report.split(b"\n")
    if lines[-1]:
        raise ValueError("an unterminated line")
    lines.pop()
    if not lines:
        return None, None
    if len(lines) > 2 or not lines[0].startswith(_READY):
        raise ValueError(f"{len(lines)} lines where the child writes at most two")
    ready = json.loads(lines[0][len(_READY) :])
    if len(lines) == 1:
        return ready, None
    if not lines[1].startswith(_RESULT):
        raise ValueError("a second line that is not a result")
    result = json.loads(lines[1][len(_RESULT) :])
    if not isinstance(ready, dict) or not isinstance(result, dict):
        raise ValueError("messages that are not objects")
    return ready, result


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _reported(
    envelope: dict[str, Any], raw: str, result: Any
) -> tuple[SandboxResult, dict[str, Any] | None]:
    """What the child reported: a success to verify, or its error (user code's word, shown)."""
    output = (str(envelope.get("output", "")) + raw)[-4000:]
    if envelope.get("ok") is True:
        return result(ok=True, output=output), envelope
    kind = envelope.get("kind")
    kind = kind if isinstance(kind, str) else "runtime"
    line = envelope.get("line")
    message = str(envelope.get("message", ""))
    return result(
        ok=False,
        error_kind={"memory": "memory", "confinement": "crash"}.get(kind, "runtime"),
        error=message + (" (the code was not run)" if kind == "confinement" else ""),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        blocked=str(envelope["blocked"]) if envelope.get("blocked") else None,
        output=output,
    ), None


def _interpret(
    streams: dict[str, bytes],
    timed_out: bool,
    overflow: bool,
    returncode: int,
    timeout_s: float,
    memory_mb: int,
) -> tuple[SandboxResult, dict[str, Any] | None]:
    """Turn what the child reported and how it ended into a SandboxResult, and the report to
    verify when it claims success."""
    stderr = streams["stderr"].decode("utf-8", "replace")
    raw = (streams["stdout"] + streams["stderr"]).decode("utf-8", "replace")
    try:
        ready, envelope = _channel(streams["report"], overflow)
    except (ValueError, RecursionError) as exc:
        return SandboxResult(
            ok=False,
            error_kind="runtime",
            blocked="result channel",
            error=f"the sandbox's result pipe held {exc}: written by the strategy, not the "
            "sandbox; no result is reported",
            output=raw[-4000:],
            duration_s=0.0,
        ), None
    held = [str(x) for x in _strings((ready or {}).get("held"))]
    missing = [str(x) for x in _strings((ready or {}).get("missing"))]

    def result(**fields: Any) -> SandboxResult:
        fields.setdefault("output", raw[-4000:])
        return SandboxResult(confinement=held, missing=missing, duration_s=0.0, **fields)

    if timed_out or returncode == -signal.SIGXCPU:
        why = "wall-clock" if timed_out else "CPU"
        return result(
            ok=False,
            error_kind="timeout",
            error=f"the strategy exceeded the {timeout_s:g} s {why} time limit and was killed "
            "(an endless loop in init/next?)",
        ), None
    if returncode == -signal.SIGSYS:
        return result(
            ok=False,
            error_kind="runtime",
            blocked="forbidden system call (seccomp)",
            error="the strategy made a forbidden system call (a process, a program, a socket or "
            "a kernel interface a backtest has no use for) and was killed",
        ), None
    if envelope is not None:
        return _reported(envelope, raw, result)
    if "MemoryError" in stderr or "bad_alloc" in stderr or "Cannot allocate" in stderr:
        return result(
            ok=False,
            error_kind="memory",
            error=f"the strategy exceeded the {memory_mb} MB memory limit\n{_tail(stderr, 4)}",
        ), None
    how = (
        f"killed by {signal.Signals(-returncode).name}"
        if returncode < 0 and -returncode in signal.valid_signals()
        else f"exit status {returncode}"
    )
    return result(
        ok=False,
        error_kind="crash",
        error=f"the sandbox process ended without a result ({how})\n{_tail(stderr)}".strip(),
    ), None
