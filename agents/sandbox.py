"""Validate and run model-generated strategy code without trusting it.

Generated code is hostile until proven otherwise, so it passes independent layers; each one alone
stops a class of attack, and a bypass of one (the AST checks are the easiest to fool) meets the
next:

1. **AST** (`validate_strategy_code`, in this process, ~1 ms): syntax, an import allow-list, a
   denylist of names / attributes / calls (eval, open, dunder access, pandas/numpy I/O...), and
   the interface contract (one `backtesting.Strategy` subclass with `init`/`next`, literal
   class-level parameters). Its errors carry codes and line numbers for the repair loop.
2. **Restricted builtins** (child): the user's module runs with builtins lacking eval/exec/open/...,
   an `__import__` enforcing the same allow-list, and getattr/setattr refusing dunder names.
3. **Audit hook** (child, `sys.addaudithook`, cannot be removed): refuses sockets, processes
   (subprocess, os.system, exec*, fork, spawn), file writes and reads outside the Python
   installation, directory listing, ctypes, gc introspection and imports of dangerous modules.
   Any attempt fails the run even if the code catches the exception.
4. **rlimits** (child): address space (`memory_mb`), CPU seconds, no file writes (FSIZE 0),
   few file descriptors, no new processes (NPROC 0 — ignored by the kernel for root).
5. **Network namespace** (`unshare -n`, when available, e.g. as root): no interfaces but a down
   loopback, so even a socket that slipped through cannot connect anywhere.
6. **Process boundary**: a fresh `python -I -B` in its own session, minimal environment (no keys,
   no proxies), cwd in an empty temp dir, wall-clock timeout that kills the whole process group.

Data is loaded and validated by the parent and passed in as JSON, so the child needs no file
access beyond importing the engine.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from agents.backtests import BacktestResult, load_ohlcv, load_ohlcv_csv

# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


ALLOWED_IMPORTS: frozenset[str] = frozenset(
    {
        "__future__",
        "backtesting",
        "backtesting.lib",
        "backtesting.test",
        "pandas",
        "numpy",
        "math",
        "statistics",
        "dataclasses",
        "typing",
        "functools",
        "itertools",
        "collections",
        "collections.abc",
        "datetime",
        "enum",
        "operator",
        "random",
    }
)
"""Modules generated strategies may import (exact names: `numpy.lib` is not implied)."""

DENIED_NAMES: frozenset[str] = frozenset(
    _words(
        "eval exec compile __import__ open input breakpoint globals locals vars __builtins__ "
        "__loader__ __spec__ __file__"
    )
)
"""Builtins (and module globals) that give code execution, I/O or introspection."""

DANGEROUS_MODULES: frozenset[str] = frozenset(
    _words(
        "os sys subprocess socket ssl select selectors shutil pathlib glob io tempfile importlib "
        "imp ctypes cffi pickle marshal shelve dill cloudpickle joblib requests httpx aiohttp "
        "urllib urllib3 http ftplib smtplib telnetlib webbrowser asyncio multiprocessing "
        "concurrent threading _thread signal resource pty posix builtins gc inspect code codeop "
        "runpy mmap sqlite3 zipimport pkgutil platform _posixsubprocess"
    )
)
"""Modules that reach the OS: never importable by user code, nor (at run time) by anyone."""

MODULE_HANDLES: frozenset[str] = frozenset(
    _words(
        "os sys subprocess socket shutil pathlib importlib ctypes pickle marshal builtins urllib "
        "requests multiprocessing threading _thread gc io posix _posixsubprocess tempfile glob"
    )
)
"""Names of modules often reachable as attributes (`pd.io.common.os`); refused as names and
attributes. Narrower than DANGEROUS_MODULES so ordinary identifiers like `signal` or `code`
(a MACD signal, a ticker code) stay usable."""

DENIED_ATTRIBUTES: frozenset[str] = frozenset(
    _words(
        "load loads save savez savez_compressed savetxt loadtxt genfromtxt fromfile tofile "
        "fromregex memmap dump dumps DataSource ctypeslib npyio f2py to_csv to_pickle to_parquet "
        "to_feather to_hdf to_sql to_excel to_json to_html to_latex to_markdown to_stata "
        "to_clipboard to_xml to_orc to_gbq HDFStore ExcelWriter f_globals f_locals f_builtins "
        "f_back f_code gi_frame gi_code cr_frame ag_frame tb_frame tb_next co_code"
    )
)
"""Attribute names refused wherever they appear (plus every `read_*` and `MODULE_HANDLES`)."""

SAFE_DUNDERS: frozenset[str] = frozenset({"__name__", "__doc__", "__init__"})
"""Dunder attributes with no path to globals/builtins; every other `__x__` access is refused."""

DYNAMIC_ATTR_CALLS: frozenset[str] = frozenset({"getattr", "setattr", "delattr", "hasattr"})

MAX_CODE_CHARS = 100_000
STRATEGY_FILENAME = "<strategy>"
"""Filename the user's code is compiled under: traceback frames with it are the user's lines."""

Layer = Literal["ast", "builtins", "audit", "rlimits", "netns"]
ALL_LAYERS: frozenset[Layer] = frozenset({"ast", "builtins", "audit", "rlimits", "netns"})

ErrorKind = Literal["validation", "timeout", "memory", "runtime", "crash"]


# --------------------------------------------------------------------------------------------
# Layer 1: static validation
# --------------------------------------------------------------------------------------------


class CodeIssue(BaseModel):
    """One reason the code was rejected; `code` is stable (tests and prompts key on it)."""

    code: str
    message: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}[{self.code}] {self.message}"


class ValidationReport(BaseModel):
    """The static verdict on a piece of generated code."""

    ok: bool
    strategy_class: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    errors: list[CodeIssue] = Field(default_factory=list)

    @property
    def codes(self) -> set[str]:
        return {e.code for e in self.errors}

    def summary(self) -> str:
        """All errors, one per line: what the repair loop shows the model."""
        return "\n".join(str(e) for e in self.errors) if self.errors else "ok"


def _allowed_list() -> str:
    return ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _attr_problem(name: str) -> str | None:
    """Why an attribute name is refused, or None."""
    if _is_dunder(name) and name not in SAFE_DUNDERS:
        return f"access to dunder attribute {name!r} is not allowed"
    if name in MODULE_HANDLES:
        return f"attribute {name!r} reaches a module outside the sandbox"
    if name in DENIED_ATTRIBUTES or name.startswith("read_"):
        return f"attribute {name!r} (file I/O or introspection) is not allowed"
    return None


class _Checker(ast.NodeVisitor):
    """Walks the whole tree (functions included: everything may execute)."""

    def __init__(self) -> None:
        self.errors: list[CodeIssue] = []

    def add(self, code: str, message: str, node: ast.AST) -> None:
        self.errors.append(
            CodeIssue(
                code=code,
                message=message,
                line=getattr(node, "lineno", None),
                col=getattr(node, "col_offset", None),
            )
        )

    def _check_module(self, name: str, node: ast.AST) -> None:
        if name not in ALLOWED_IMPORTS:
            self.add(
                "forbidden-import",
                f"import of {name!r} is not allowed; allowed modules: {_allowed_list()}",
                node,
            )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(alias.name, node)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add("forbidden-import", "relative imports are not allowed", node)
        else:
            self._check_module(node.module or "", node)
        for alias in node.names:
            if alias.name == "*":
                self.add("star-import", "`from ... import *` is not allowed", node)
            else:
                problem = _attr_problem(alias.name)
                if problem or alias.name in DENIED_NAMES:
                    self.add("forbidden-name", f"importing {alias.name!r} is not allowed", node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            pass  # binding a name (a parameter called `exit`, `input`) gives no access
        elif node.id in DENIED_NAMES:
            self.add("forbidden-name", f"use of {node.id!r} is not allowed", node)
        elif node.id in MODULE_HANDLES:
            self.add("forbidden-name", f"name {node.id!r} refers to a forbidden module", node)
        elif _is_dunder(node.id) and node.id not in SAFE_DUNDERS:
            self.add("dunder", f"use of dunder name {node.id!r} is not allowed", node)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        problem = _attr_problem(node.attr)
        if problem:
            code = "dunder" if _is_dunder(node.attr) else "forbidden-attribute"
            self.add(code, problem, node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in DYNAMIC_ATTR_CALLS:
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.add(
                    "dynamic-attribute",
                    f"{func.id}() needs a literal attribute name (string-built names are refused)",
                    node,
                )
            else:
                problem = _attr_problem(name.value)
                if problem:
                    self.add("dunder" if _is_dunder(name.value) else "forbidden-attribute",
                             problem, node)  # fmt: skip
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        # "__builtins__" / "__import__" as strings only serve subscript or getattr tricks.
        if isinstance(node.value, str) and _is_dunder(node.value.strip()):
            self.add("dunder", f"string {node.value!r} names a dunder; not allowed", node)

    def visit_Global(self, node: ast.Global) -> None:
        self.add("forbidden-name", "`global` statements are not allowed", node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.add("forbidden-name", "`nonlocal` statements are not allowed", node)


def _literal(node: ast.AST | None) -> tuple[bool, Any]:
    """(True, value) for simple literals: numbers, strings, bools, None, tuples/lists of them."""
    if node is None:
        return False, None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    scalar = (int, float, str, bool, type(None))
    if isinstance(value, scalar):
        return True, value
    if isinstance(value, tuple | list) and all(isinstance(v, scalar) for v in value):
        return True, value
    return False, None


def _strategy_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to backtesting's Strategy, and names bound to the backtesting module."""
    direct: set[str] = set()
    modules: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "backtesting" and not node.level:
            direct |= {a.asname or a.name for a in node.names if a.name == "Strategy"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "backtesting"}
    return direct, modules


def _check_contract(
    tree: ast.Module, class_name: str | None
) -> tuple[str | None, dict[str, Any], list[CodeIssue]]:
    """The interface contract: which class is the strategy, its parameters, what is missing."""
    errors: list[CodeIssue] = []
    direct, modules = _strategy_aliases(tree)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def names_strategy(base: ast.expr) -> bool:
        if isinstance(base, ast.Name):
            return base.id in direct
        return (
            isinstance(base, ast.Attribute)
            and base.attr == "Strategy"
            and isinstance(base.value, ast.Name)
            and base.value.id in modules
        )

    @functools.cache
    def is_strategy(name: str) -> bool:
        node = classes[name]
        for base in node.bases:
            if names_strategy(base):
                return True
            if not isinstance(base, ast.Name) or base.id == name or base.id not in classes:
                continue
            if is_strategy(base.id):
                return True
        return False

    strategies = [n for n in classes if is_strategy(n)]
    used_as_base = {b.id for n in strategies for b in classes[n].bases if isinstance(b, ast.Name)}
    leaves = [n for n in strategies if n not in used_as_base]
    if class_name is not None:
        if class_name not in strategies:
            found = ", ".join(strategies) or "none"
            errors.append(
                CodeIssue(
                    code="no-strategy",
                    message=f"class {class_name!r} subclassing backtesting.Strategy not found "
                    f"(Strategy subclasses found: {found})",
                )
            )
            return None, {}, errors
        chosen = class_name
    elif not strategies:
        hint = "" if direct or modules else " (import it: `from backtesting import Strategy`)"
        errors.append(
            CodeIssue(
                code="no-strategy",
                message=f"no top-level class subclassing backtesting.Strategy{hint}",
            )
        )
        return None, {}, errors
    elif len(leaves) != 1:
        errors.append(
            CodeIssue(
                code="ambiguous-strategy",
                message="define exactly one strategy class; found: " + ", ".join(leaves),
                line=classes[leaves[-1]].lineno,
            )
        )
        return None, {}, errors
    else:
        chosen = leaves[0]

    # Methods and parameters along the in-module inheritance chain (leaf wins).
    chain: list[ast.ClassDef] = []
    todo = [chosen]
    while todo:
        name = todo.pop(0)
        if name in classes and classes[name] not in chain:
            chain.append(classes[name])
            todo += [b.id for b in classes[name].bases if isinstance(b, ast.Name)]
    methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    params: dict[str, Any] = {}
    for klass in reversed(chain):
        for stmt in klass.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                methods[stmt.name] = stmt
                continue
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign):
                targets, value = [stmt.target], stmt.value
                if value is None:
                    continue  # a bare annotation binds nothing
            elif isinstance(stmt, ast.Pass) or (
                isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            ):
                continue
            else:
                errors.append(
                    CodeIssue(
                        code="bad-class-body",
                        message=f"class {klass.name} may only hold methods and literal "
                        f"parameters; found a {type(stmt).__name__} statement",
                        line=stmt.lineno,
                    )
                )
                continue
            ok, literal = _literal(value)
            for target in targets:
                if not isinstance(target, ast.Name):
                    errors.append(
                        CodeIssue(
                            code="bad-parameter",
                            message="class-level parameters must be plain names",
                            line=stmt.lineno,
                        )
                    )
                elif not ok:
                    errors.append(
                        CodeIssue(
                            code="bad-parameter",
                            message=f"parameter {target.id!r} must be a simple literal "
                            "(number, string, bool, None, or a tuple/list of them)",
                            line=stmt.lineno,
                        )
                    )
                elif not target.id.startswith("_"):
                    params[target.id] = literal
    for required in ("init", "next"):
        method = methods.get(required)
        if method is None:
            errors.append(
                CodeIssue(
                    code="missing-method",
                    message=f"strategy {chosen} must define `def {required}(self)`",
                    line=classes[chosen].lineno,
                )
            )
            continue
        a = method.args
        if (
            isinstance(method, ast.AsyncFunctionDef)
            or len(a.posonlyargs) + len(a.args) != 1
            or a.vararg
            or a.kwarg
            or a.kwonlyargs
        ):
            errors.append(
                CodeIssue(
                    code="bad-signature",
                    message=f"`{required}` must be a plain `def {required}(self)` method",
                    line=method.lineno,
                )
            )
    return chosen, params, errors


def validate_strategy_code(
    code: str,
    *,
    class_name: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> ValidationReport:
    """Static checks on generated code; never executes it.

    `class_name` picks the strategy when the module defines several; `parameters` (overrides the
    caller will pass) must name class-level parameters and be JSON scalars.
    """
    if len(code) > MAX_CODE_CHARS:
        issue = CodeIssue(
            code="too-large", message=f"code is {len(code)} chars; the limit is {MAX_CODE_CHARS}"
        )
        return ValidationReport(ok=False, errors=[issue])
    try:
        tree = ast.parse(code, filename=STRATEGY_FILENAME)
    except SyntaxError as exc:
        issue = CodeIssue(
            code="syntax",
            message=f"syntax error: {exc.msg}" + (f" in `{exc.text.strip()}`" if exc.text else ""),
            line=exc.lineno,
            col=exc.offset,
        )
        return ValidationReport(ok=False, errors=[issue])
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        issue = CodeIssue(code="syntax", message=f"code cannot be parsed: {exc}")
        return ValidationReport(ok=False, errors=[issue])

    checker = _Checker()
    checker.visit(tree)
    chosen, params, contract = _check_contract(tree, class_name)
    errors = checker.errors + contract
    for key, value in (parameters or {}).items():
        if chosen and key not in params:
            known = ", ".join(params) or "none"
            errors.append(
                CodeIssue(
                    code="unknown-parameter",
                    message=f"parameter {key!r} is not a class-level parameter of {chosen} "
                    f"(parameters: {known})",
                )
            )
        elif not isinstance(value, int | float | str | bool | type(None)):
            errors.append(
                CodeIssue(
                    code="bad-parameter",
                    message=f"parameter {key!r} must be a number, string, bool or None",
                )
            )
    errors.sort(key=lambda e: (e.line or 0, e.col or 0))
    return ValidationReport(ok=not errors, strategy_class=chosen, parameters=params, errors=errors)


# --------------------------------------------------------------------------------------------
# Running: the parent side
# --------------------------------------------------------------------------------------------


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
import agents.sandbox
agents.sandbox._child()
"""
"""The child's entry. backtesting's bokeh plotting is stubbed out before anything imports it: half
the start-up time, and a large surface (bokeh writes HTML, opens browsers) a backtest never uses."""

_READY = b"\x1esandbox-ready\n"
_RESULT = b"\x1esandbox-result "
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


# --------------------------------------------------------------------------------------------
# Running: the child side (everything below runs only inside the sandbox process)
# --------------------------------------------------------------------------------------------


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


def _child() -> None:
    """Entry point of the sandbox process: read the job, lock down, run, report on `fd`."""
    import backtesting
    import backtesting.lib
    import backtesting.test  # noqa: F401
    import numpy as np

    from agents.backtests import run_backtest

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
