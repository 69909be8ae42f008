"""Layer 1 of the sandbox: the policy and the static checks on generated strategy code.

`validate_strategy_code` parses the code (never runs it) and reports, with stable codes and line
numbers for the repair loop:

* what RestrictedPython's transformer refuses (`underscore`, `not-allowed`): every name, attribute,
  function, argument or class starting with `_` — the way into the interpreter's internals
  (`__globals__`, `__subclasses__`, `random._os`, `collections._sys`) — and statements outside
  its allow-list (async, match, nonlocal, `except*`). A throwaway like `_unused = ...` may be
  bound, never read;
* imports outside `ALLOWED_IMPORTS`; denied names (eval, open, breakpoint, vars, ...); `getattr`
  & co. except called with a literal, allowed name; `type()` with three arguments;
* attribute access through format strings (`.format`, `.format_map`; `string.Formatter` is not
  importable), introspection (frames, code objects, `attrgetter`, `get_type_hints`, ...), module
  handles (`pd.io.common.os`, `dataclasses.inspect`), file and network I/O (`to_csv`, `np.save`,
  `read_*`), and strings naming underscore attributes (`"__globals__"`);
* assignments to attributes of imported modules or classes (`np.x = ...`, `Strategy.buy = ...`);
* the interface contract (`contract.py`).

This layer explains; it is not what keeps the host safe. The OS layers under it (`confine`,
`seccomp`, `launch`) hold when it is bypassed — docs/sandbox.md has the division of labour.
"""

from __future__ import annotations

import ast
import re
import threading
from typing import Any

from RestrictedPython import RestrictingNodeTransformer

from agents.quant.sandbox.contract import check_contract
from agents.quant.sandbox.issues import CodeIssue, ValidationReport

__all__ = [
    "ALLOWED_IMPORTS",
    "DANGEROUS_MODULES",
    "DENIED_ATTRIBUTES",
    "DENIED_NAMES",
    "MODULE_HANDLES",
    "CodeIssue",
    "ValidationReport",
    "validate_strategy_code",
]

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
        "eval exec compile __import__ open input breakpoint globals locals vars help "
        "__builtins__ __loader__ __spec__ __file__"
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
        "os sys subprocess socket shutil pathlib importlib ctypes ctypeslib pickle marshal "
        "builtins bltns urllib requests multiprocessing threading gc io posix tempfile glob "
        "inspect types warnings copyreg compat core util testing f2py distutils plotting npyio "
        "linecache traceback code codeop runpy pkgutil zipimport atexit faulthandler tracemalloc "
        "resource mmap pty fcntl termios pwd grp sysconfig site weakref ast dis tokenize logging "
        "string stdlib_re"
    )
)
"""Names of modules reachable as attributes (`pd.io.common.os`, `dataclasses.inspect`,
`typing.sys`); refused as names and attributes. Narrower than DANGEROUS_MODULES so identifiers
like `signal` or `code` (a MACD signal, a ticker code) stay usable; a test walks the allowed
modules to find every module-valued attribute and checks each is here or harmless."""

IO_ATTRIBUTES: frozenset[str] = frozenset(
    _words(
        "load loads save savez savez_compressed savetxt loadtxt genfromtxt fromfile tofile "
        "fromregex memmap open_memmap dump dumps DataSource HDFStore ExcelWriter ExcelFile "
        "savefig"
    )
)
"""File I/O by name (plus every `read_*`/`write_*`, and `to_*` outside `SAFE_CONVERSIONS`)."""

SAFE_CONVERSIONS: frozenset[str] = frozenset(
    _words(
        "to_numpy to_list to_dict to_frame to_records to_period to_timestamp to_datetime "
        "to_timedelta to_numeric to_pydatetime to_series to_flat_index to_tuples to_julian_date "
        "to_datetime64 to_timedelta64 to_pytimedelta to_offset"
    )
)
"""`to_*` methods that convert in memory (the rest — to_csv, to_pickle, to_string — can write)."""

INTROSPECTION: frozenset[str] = frozenset(
    _words(
        "f_back f_builtins f_code f_globals f_locals f_lasti f_lineno f_trace gi_frame gi_code "
        "gi_yieldfrom gi_running gi_suspended cr_frame cr_code cr_await cr_origin ag_frame ag_code "
        "ag_await tb_frame tb_next tb_lasti tb_lineno co_code co_consts co_names co_varnames "
        "co_filename with_traceback mro attrgetter methodcaller get_type_hints ForwardRef "
        "singledispatch singledispatchmethod update_wrapper wraps make_dataclass eval query"
    )
)
"""Frames, code objects and the library calls that turn a string into an attribute lookup or
into evaluated code (`operator.attrgetter`, `typing.get_type_hints`, `DataFrame.eval/query`)."""

FORMAT_METHODS: frozenset[str] = frozenset({"format", "format_map"})

MODULE_NAMES: frozenset[str] = frozenset(
    _words(
        "os sys subprocess socket shutil pathlib importlib ctypes pickle marshal builtins urllib "
        "requests multiprocessing threading _thread gc io posix _posixsubprocess tempfile glob"
    )
)
"""Module names refused as plain names too: a model writing `os.path` without importing it
learns why."""

DENIED_ATTRIBUTES: frozenset[str] = MODULE_HANDLES | IO_ATTRIBUTES | INTROSPECTION | FORMAT_METHODS
DYNAMIC_ATTR_CALLS: frozenset[str] = frozenset({"getattr", "setattr", "delattr", "hasattr"})

MAX_CODE_CHARS = 100_000
STRATEGY_FILENAME = "<strategy>"
"""Filename the user's code is compiled under: traceback frames with it are the user's lines."""

_UNDERSCORE_STRING = re.compile(r"__|^\s*_[A-Za-z_]")
_PUBLIC_API = "use public names (self.data, self.I, self.buy, self.sell, self.position)"


def _allowed_list() -> str:
    return ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))


def _attr_problem(name: str) -> tuple[str, str] | None:
    """(code, message) when an attribute name is refused, else None."""
    if name.startswith("_"):
        return "underscore", (
            f"attribute {name!r} is not allowed: names starting with '_' reach the "
            f"interpreter's internals; {_PUBLIC_API}"
        )
    if name in FORMAT_METHODS:
        return "format-string", (
            f"`.{name}()` is not allowed: format fields read attributes ('{{0.attr}}'); "
            "use an f-string or the % operator"
        )
    if name in INTROSPECTION:
        return "introspection", (
            f"attribute {name!r} is not allowed: it reaches frames or code, or looks names up "
            "from strings; use plain attribute access"
        )
    if name in MODULE_HANDLES:
        return "forbidden-attribute", (
            f"attribute {name!r} reaches a module outside the sandbox; allowed modules: "
            f"{_allowed_list()}"
        )
    if (
        name in IO_ATTRIBUTES
        or name.startswith(("read_", "write_"))
        or (name.startswith("to_") and name not in SAFE_CONVERSIONS)
    ):
        return "forbidden-attribute", (
            f"attribute {name!r} (file I/O) is not allowed: the sandbox has no files; the bars "
            "are in self.data"
        )
    return None


# --------------------------------------------------------------------------------------------
# RestrictedPython's transformer: underscore names and the statement allow-list
# --------------------------------------------------------------------------------------------


class _Restricted(RestrictingNodeTransformer):
    """RestrictedPython's policy, recording its findings instead of compiling.

    Differences: a single-underscore name may be bound (`lower, mid, _upper = bands`) since it
    can never be read back; and what our own checker reports better (exec/eval calls, the
    `print`/`printed` names its print machinery reserves) is left to it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[int | None, int | None, str]] = []

    def error(self, node: ast.AST, info: str) -> None:
        if "calls are not allowed" in info or "is a reserved name" in info:
            return
        self.found.append((getattr(node, "lineno", None), getattr(node, "col_offset", None), info))

    def visit_Name(self, node: ast.Name) -> Any:
        name = node.id
        if isinstance(node.ctx, ast.Store) and name.startswith("_") and not name.startswith("__"):
            return node
        return super().visit_Name(node)


# CPython 3.11 keeps the AST constructor's recursion counter in interpreter-wide state, so two
# threads parsing at once (the server's worker threads, a pool of sandbox runs) can corrupt it and
# `ast.parse` raises "SystemError: AST constructor recursion depth mismatch" on valid code
# (python/cpython#106905; seen in CI). Every parse of generated code goes through this lock.
_PARSE_LOCK = threading.Lock()


def parse_module(code: str, filename: str = STRATEGY_FILENAME) -> ast.Module:
    """`ast.parse`, one thread at a time (see `_PARSE_LOCK`)."""
    with _PARSE_LOCK:
        return ast.parse(code, filename=filename)


def _restricted_issues(tree: ast.Module) -> list[CodeIssue]:
    policy = _Restricted()
    policy.visit(tree)
    issues = []
    for line, col, info in policy.found:
        underscore = 'starts with "_"' in info or "__roles__" in info
        code = "underscore" if underscore else "not-allowed"
        text = info.rstrip(".")
        if underscore:
            text += f": names starting with '_' reach the interpreter's internals; {_PUBLIC_API}"
        elif "not allowed" in info:
            text += " (the sandbox runs plain synchronous code: functions, classes, loops)"
        issues.append(CodeIssue(code=code, message=text, line=line, col=col))
    return issues


# --------------------------------------------------------------------------------------------
# Our checks
# --------------------------------------------------------------------------------------------


class _Checker(ast.NodeVisitor):
    """Walks the whole tree (functions included: everything may execute)."""

    def __init__(self, tree: ast.Module) -> None:
        self.errors: list[CodeIssue] = []
        self.called: set[int] = set()
        self.imported: set[str] = set()
        self.inert: set[int] = {
            id(n.value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
        }  # docstrings and bare string statements: never used as names

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
            self.imported.add(alias.asname or alias.name.split(".")[0])
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add("forbidden-import", "relative imports are not allowed", node)
        else:
            self._check_module(node.module or "", node)
        for alias in node.names:
            self.imported.add(alias.asname or alias.name)
            if alias.name == "*":
                self.add("star-import", "`from ... import *` is not allowed", node)
            elif alias.name in DENIED_NAMES or (
                _attr_problem(alias.name) and not alias.name.startswith("_")
            ):
                self.add("forbidden-name", f"importing {alias.name!r} is not allowed", node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            pass  # binding a name (a parameter called `exit`, `input`) gives no access
        elif node.id in DENIED_NAMES and not node.id.startswith("__"):
            self.add("forbidden-name", f"use of {node.id!r} is not allowed", node)
        elif node.id in MODULE_NAMES:
            self.add("forbidden-name", f"name {node.id!r} refers to a forbidden module", node)
        elif node.id in DYNAMIC_ATTR_CALLS and id(node) not in self.called:
            self.add(
                "dynamic-attribute",
                f"{node.id} may only be called directly, with a literal attribute name",
                node,
            )
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        problem = _attr_problem(node.attr)
        if problem and problem[0] != "underscore":  # underscores: RestrictedPython's report
            self.add(*problem, node)
        if isinstance(node.ctx, ast.Store | ast.Del):
            root: ast.expr = node.value
            while isinstance(root, ast.Attribute | ast.Subscript | ast.Call):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name) and root.id in self.imported:
                self.add(
                    "monkeypatch",
                    f"assigning to {root.id}.…{node.attr} changes an imported module or class; "
                    "keep your state on self",
                    node,
                )
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in DYNAMIC_ATTR_CALLS:
            self.called.add(id(func))
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                self.add(
                    "dynamic-attribute",
                    f"{func.id}() needs a literal attribute name (string-built names are refused)",
                    node,
                )
            elif problem := _attr_problem(name.value):
                self.add(*problem, node)
        elif isinstance(func, ast.Name) and func.id == "type" and len(node.args) != 1:
            self.add(
                "forbidden-name",
                "type() with three arguments builds a class outside a class statement; "
                "write `class Name(Base): ...`",
                node,
            )
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if (
            isinstance(value, str)
            and id(node) not in self.inert
            and _UNDERSCORE_STRING.search(value)
        ):
            self.add(
                "underscore",
                f"string {value[:40]!r} names an underscore attribute; such strings only "
                "serve dynamic lookups and are not allowed",
                node,
            )

    def visit_Global(self, node: ast.Global) -> None:
        self.add("forbidden-name", "`global` statements are not allowed", node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.add("forbidden-name", "`nonlocal` statements are not allowed", node)


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
        tree = parse_module(code)
        restricted = _restricted_issues(parse_module(code))
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

    checker = _Checker(tree)
    checker.visit(tree)
    chosen, params, contract = check_contract(tree, class_name)
    errors = restricted + checker.errors + contract
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
