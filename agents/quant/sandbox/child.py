"""The program inside the sandbox process: read the job, lock down, run the strategy, report.

Started by `agents.quant.sandbox.run` (see `launch.py`) as a fresh `python -I -B`, which calls
`main()`. It imports everything a backtest needs, reads the job (code, data as JSON, limits,
layers, the number of the result pipe) from stdin, then puts up, before any user code runs, the
OS layers (`confine.lock_down`: rlimits, nobody, no-new-privileges, Landlock, seccomp) and the
Python ones (restricted builtins for the user's module, a permanent audit hook). On the result
pipe it writes `_READY` with the layers in force (the parent starts the user's clock), then
`_RESULT` and the outcome as one JSON line: the *trades* of the backtest, never its statistics —
the parent checks the trades against its own copy of the data and computes every number itself
(`verify.py`), because whatever runs in this process, user code included, can write that pipe.

Imports stay minimal: the engine, pandas/numpy and the policy (`validate`), never the parent's
runner.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback
from typing import Any

import pandas as pd
from backtesting._util import _indicator_warmup_nbars

from agents.quant.sandbox.confine import ConfinementError, lock_down, read_roots
from agents.quant.sandbox.validate import (
    ALLOWED_IMPORTS,
    DANGEROUS_MODULES,
    DENIED_NAMES,
    STRATEGY_FILENAME,
    _allowed_list,
    _attr_problem,
    _words,
)

_READY = b"\x1esandbox-ready "
_RESULT = b"\x1esandbox-result "
"""Markers on the result pipe, each followed by one JSON line: locked down, with the layers in
force (written before user code runs); the outcome."""


class SandboxViolation(PermissionError):
    """Raised by the audit hook; a PermissionError so library code treats it as one."""


_BLOCKED_EVENTS = tuple(
    _words(
        "socket. subprocess. os.system os.exec os.posix_spawn os.spawn os.fork os.forkpty os.kill "
        "os.killpg os.putenv os.unsetenv os.remove os.rename os.rmdir os.mkdir os.symlink os.link "
        "os.chmod os.chown os.chdir os.chroot os.truncate os.utime os.listxattr os.setxattr "
        "os.removexattr glob. shutil. ctypes. pty. mmap. gc.get_ sys.addaudithook sys.setprofile "
        "sys.settrace resource.setrlimit resource.prlimit signal. sqlite3. urllib. http. ftplib. "
        "smtplib. poplib. imaplib. nntplib. telnetlib. webbrowser. builtins.input pdb. syslog. "
        "pickle.find_class"
    )
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _install_audit_hook(violations: list[str]) -> None:
    """Refuse OS-reaching operations for the rest of the process's life (hooks are permanent).

    An explanation layer: it names what the code tried, but it is not what stops it (Python code
    can reach the OS without an audit event, e.g. `_posixsubprocess.fork_exec`); the OS layers do.
    """
    roots = tuple(r.rstrip("/") + "/" for r in read_roots())
    blocked = _BLOCKED_EVENTS
    deny_modules = DANGEROUS_MODULES - {"io", "sys", "os", "posix", "select", "signal"}
    write_flags = _WRITE_FLAGS
    abspath = os.path.abspath

    def inside(path: str | bytes) -> bool:
        return (abspath(os.fsdecode(path)) + "/").startswith(roots)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        reason: str | None = None
        if event == "open":
            path, mode, flags = (*args, None, None, None)[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags
            )
            if writing:
                reason = f"open({path!r}) for writing"
            elif isinstance(path, str | bytes) and not inside(path):
                reason = f"open({os.fsdecode(path)!r}) outside the Python installation"
        elif event in ("os.listdir", "os.scandir"):  # the import system lists sys.path dirs
            path = args[0] if args else None
            if not isinstance(path, str | bytes) or not inside(path):
                reason = f"{event}({path!r})"
        elif event == "import":
            top = str(args[0]).split(".", 1)[0]
            if top in deny_modules:
                reason = f"import of {args[0]!r}"
        elif event.startswith(blocked):
            reason = event
        if reason is not None:
            if len(violations) < 20:
                violations.append(reason)
            raise SandboxViolation(f"sandbox: {reason} is not allowed")

    sys.addaudithook(hook)


def _restricted_builtins() -> dict[str, Any]:
    """Builtins for the user's module: no eval/exec/open, imports and getattr policed."""
    import builtins

    real_import = builtins.__import__
    real_getattr = builtins.getattr

    def guarded_import(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if level or name not in ALLOWED_IMPORTS:
            raise ImportError(
                f"import of {name!r} is not allowed; allowed modules: {_allowed_list()}"
            )
        return real_import(name, globals, locals, fromlist, level)

    def check(name: Any) -> None:
        if not isinstance(name, str) or _attr_problem(name):
            raise AttributeError(f"sandbox: attribute {name!r} is not allowed")

    def safe_getattr(obj: Any, name: str, *default: Any) -> Any:
        check(name)
        return real_getattr(obj, name, *default)

    def safe_setattr(obj: Any, name: str, value: Any) -> None:
        check(name)
        setattr(obj, name, value)

    def safe_delattr(obj: Any, name: str) -> None:
        check(name)
        delattr(obj, name)

    def safe_hasattr(obj: Any, name: str) -> bool:
        check(name)
        return hasattr(obj, name)

    table = {k: v for k, v in vars(builtins).items() if k not in DENIED_NAMES}
    table.update(
        __import__=guarded_import,
        getattr=safe_getattr,
        setattr=safe_setattr,
        delattr=safe_delattr,
        hasattr=safe_hasattr,
    )
    return table


def _user_error(exc: BaseException, code: str) -> tuple[str, int | None]:
    """The exception and the user's own frames: what a person or a repair loop can act on."""
    lines = code.splitlines()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == STRATEGY_FILENAME]
    if isinstance(exc, SyntaxError) and exc.filename == STRATEGY_FILENAME:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})", exc.lineno
    parts = ["Traceback (most recent call last, your code only):"] if frames else []
    for f in frames[-4:]:
        text = lines[f.lineno - 1].strip() if f.lineno and 0 < f.lineno <= len(lines) else ""
        parts.append(f"  line {f.lineno}, in {f.name}\n    {text}")
    if not frames:
        engine = traceback.extract_tb(exc.__traceback__)
        if engine:
            last = engine[-1]
            parts.append(f"(raised in {os.path.basename(last.filename)}:{last.lineno})")
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    parts.append(detail[:2000])
    return "\n".join(parts), (frames[-1].lineno if frames else None)


def _send(fd: int, marker: bytes, message: dict[str, Any]) -> None:
    data = marker + json.dumps(message, default=str).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def _prepare() -> None:
    """Import what any run needs while files can still be read (the user's allowed modules too:
    without the private view, nobody cannot read an interpreter installed under /root)."""
    import backtesting
    import backtesting.lib
    import backtesting.test  # noqa: F401
    import numpy as np

    for name in sorted(ALLOWED_IMPORTS - {"__future__"}):
        importlib.import_module(name)
    # numpy resolves some array methods on first use, importing from C through the *calling
    # frame's* `__import__`: from user code that is the guarded one, and `array.min()` failed
    # ("import of 'numpy._core._methods' is not allowed"). Used once here, they stay cached.
    for method in ("min", "max", "sum", "mean", "std", "var", "prod", "any", "all"):
        getattr(np.ones(2), method)()
    pd.Series([1.0, 2.0, 3.0]).rolling(2).mean().ewm(span=2).mean().diff().clip(lower=0)


def _trades(stats: pd.Series) -> tuple[list[list[float]], int]:
    """The closed trades (size, entry bar, exit bar, entry price, exit price) and the bars the
    indicators needed to warm up: all the parent needs to compute the result."""
    table = stats["_trades"]
    columns = ["Size", "EntryBar", "ExitBar", "EntryPrice", "ExitPrice"]
    rows = table[columns].astype(float).to_numpy().tolist() if len(table) else []
    return rows, int(_indicator_warmup_nbars(stats["_strategy"]))


def main() -> None:
    """Entry point of the sandbox process: read the job, lock down, run, report."""
    _prepare()
    import numpy as np

    from agents.quant.backtests import engine_stats

    job = json.loads(sys.stdin.buffer.read())
    result_fd = int(job["result_fd"])
    data = job["data"]
    frame = pd.DataFrame(
        np.asarray(data["values"], dtype=float),
        index=pd.DatetimeIndex(np.asarray(data["index"], dtype=f"datetime64[{data['unit']}]")),
        columns=data["columns"],
    )
    frame.attrs["symbol"] = data["symbol"]
    code: str = job["code"]
    layers = set(job["layers"])
    compiled = compile(code, STRATEGY_FILENAME, "exec", dont_inherit=True)

    try:
        held, missing = lock_down(layers, float(job["timeout_s"]), int(job["memory_mb"]))
    except ConfinementError as exc:
        _send(result_fd, _READY, {"held": [], "missing": [str(exc)]})
        _send(result_fd, _RESULT, {"ok": False, "kind": "confinement", "message": str(exc)})
        os._exit(3)
    violations: list[str] = []
    namespace: dict[str, Any] = {"__name__": "strategy"}
    if "builtins" in layers:
        namespace["__builtins__"] = _restricted_builtins()
        held.append("builtins")
    captured = io.StringIO()
    if "audit" in layers:
        _install_audit_hook(violations)
        held.append("audit")
    _send(result_fd, _READY, {"held": held, "missing": missing})

    envelope: dict[str, Any]
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            exec(compiled, namespace)
            cls = _find_strategy(namespace, job["class_name"])
            stats = engine_stats(
                cls, frame, float(job["cash"]), float(job["commission"]), job["parameters"]
            )
            trades, warmup = _trades(stats)
        envelope = {"ok": True, "trades": trades, "warmup": warmup}
    except MemoryError:
        envelope = {
            "ok": False,
            "kind": "memory",
            "message": f"the strategy exceeded the {job['memory_mb']} MB memory limit "
            "(MemoryError)",
        }
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are user errors here too
        message, line = _user_error(exc, code)
        envelope = {"ok": False, "kind": "runtime", "message": message, "line": line}
    if violations:
        message = envelope.get("message") or ""
        envelope = {
            "ok": False,
            "kind": "runtime",
            "blocked": violations[0],
            "message": f"forbidden operation: {violations[0]}"
            + (f"\n{message}" if message else ""),
            "line": envelope.get("line"),
        }
    envelope["output"] = captured.getvalue()[-4000:]
    _send(result_fd, _RESULT, envelope)
    os._exit(0)  # skip interpreter teardown: atexit handlers would run under the audit hook


def _find_strategy(namespace: dict[str, Any], class_name: str | None) -> Any:
    from backtesting import Strategy

    found = [
        v
        for v in namespace.values()
        if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy
    ]
    if class_name:
        found = [v for v in found if v.__name__ == class_name]
    leaves = [v for v in found if not any(o is not v and issubclass(o, v) for o in found)]
    if len(leaves) != 1:
        names = ", ".join(v.__name__ for v in leaves) or "none"
        raise TypeError(f"expected exactly one backtesting.Strategy subclass, found: {names}")
    return leaves[0]
