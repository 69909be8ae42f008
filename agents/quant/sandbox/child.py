"""The program inside the sandbox process: read the job, lock down, run the strategy, report.

Started by `agents.quant.sandbox.run` as a fresh `python -I -B` (see `_CHILD_BOOT` there), which
calls `main()`. It reads the job (code, data as JSON, limits, layers) from stdin, then puts up the
runtime layers it was asked for before running any user code: rlimits, restricted builtins for
the user's module and a permanent audit hook. On the original stdout it writes `_READY` once
locked down (the parent starts the user's clock), then `_RESULT` and the outcome as one JSON line.

Imports stay minimal: the engine, pandas/numpy and the policy (`validate`), never the parent's
runner.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import sys
import traceback
from typing import Any

import pandas as pd

from agents.quant.sandbox.validate import (
    ALLOWED_IMPORTS,
    DANGEROUS_MODULES,
    DENIED_NAMES,
    STRATEGY_FILENAME,
    _allowed_list,
    _attr_problem,
    _words,
)

_READY = b"\x1esandbox-ready\n"
_RESULT = b"\x1esandbox-result "
"""Markers on the child's stdout for the parent: locked down and about to run user code; the
result envelope (JSON) follows on the same line."""


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


def _readable_roots() -> tuple[str, ...]:
    """Where reads stay allowed after lock-down: the Python installation and our package."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots = set(prefixes)
    roots |= {p for p in sys.path if p and any(os.path.abspath(p).startswith(x) for x in prefixes)}
    roots.add(os.path.dirname(os.path.abspath(__file__)))
    roots.add("/usr/share/zoneinfo")
    return tuple(sorted(os.path.abspath(r).rstrip("/") + "/" for r in roots))


def _install_audit_hook(violations: list[str]) -> None:
    """Refuse OS-reaching operations for the rest of the process's life (hooks are permanent)."""
    roots = _readable_roots()
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


def _set_limits(timeout_s: float, memory_mb: int) -> None:
    """Hard limits equal soft ones so the code cannot raise them back."""
    import resource

    def cap(which: int, value: int) -> None:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write then fails with EFBIG, not a kill
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_used = used.ru_utime + used.ru_stime
    cap(resource.RLIMIT_CPU, math.ceil(cpu_used + timeout_s) + 2)
    cap(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    cap(resource.RLIMIT_FSIZE, 0)
    cap(resource.RLIMIT_NOFILE, 64)
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NPROC, 0)  # per-user; the kernel ignores it for root


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


def _emit(fd: int, envelope: dict[str, Any]) -> None:
    data = _RESULT + json.dumps(envelope, default=str).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def main() -> None:
    """Entry point of the sandbox process: read the job, lock down, run, report on `fd`."""
    import backtesting
    import backtesting.lib
    import backtesting.test  # noqa: F401
    import numpy as np

    # numpy resolves some array methods on first use, importing from C through the *calling
    # frame's* `__import__`: from user code that is the guarded one, and `array.min()` failed
    # ("import of 'numpy._core._methods' is not allowed"). Used once here, they stay cached.
    for method in ("min", "max", "sum", "mean", "std", "var", "prod", "any", "all"):
        getattr(np.ones(2), method)()

    from agents.quant.backtests import run_backtest

    job = json.loads(sys.stdin.buffer.read())
    data = job["data"]
    frame = pd.DataFrame(
        np.asarray(data["values"], dtype=float),
        index=pd.DatetimeIndex(np.asarray(data["index"], dtype=f"datetime64[{data['unit']}]")),
        columns=data["columns"],
    )
    frame.attrs["symbol"] = data["symbol"]
    code: str = job["code"]
    layers = set(job["layers"])
    result_fd = os.dup(1)
    os.set_inheritable(result_fd, False)
    compiled = compile(code, STRATEGY_FILENAME, "exec", dont_inherit=True)

    violations: list[str] = []
    if "rlimits" in layers:
        _set_limits(float(job["timeout_s"]), int(job["memory_mb"]))
    namespace: dict[str, Any] = {"__name__": "strategy"}
    if "builtins" in layers:
        namespace["__builtins__"] = _restricted_builtins()
    captured = io.StringIO()
    if "audit" in layers:
        _install_audit_hook(violations)
    os.write(result_fd, _READY)

    envelope: dict[str, Any]
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            exec(compiled, namespace)
            cls = _find_strategy(namespace, job["class_name"])
            result = run_backtest(
                cls,
                frame,
                user_id=job["user_id"],
                strategy_name=job["strategy_name"] or cls.__name__,
                strategy_code=code,
                parameters=job["parameters"] or None,
            )
        envelope = {"ok": True, "result": result.model_dump(mode="json")}
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
    _emit(result_fd, envelope)
    sys.stdout.flush()
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
