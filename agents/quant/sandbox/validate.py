"""Layer 1 of the sandbox: the policy and the static checks on generated strategy code.

`validate_strategy_code` parses the code (never runs it) and reports, with stable codes and line
numbers for the repair loop: syntax errors, imports outside `ALLOWED_IMPORTS`, denied names,
attributes and calls (eval, open, dunder access, pandas/numpy I/O...), and breaches of the
interface contract (one `backtesting.Strategy` subclass with plain `init`/`next` methods and
literal class-level parameters). The child process (`agents.quant.sandbox.child`) enforces the
same allow- and deny-lists at run time.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from pydantic import BaseModel, Field

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


def _literal(node: ast.AST) -> tuple[bool, Any]:
    """(True, value) for simple literals: numbers, strings, bools, None, tuples/lists of them."""
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


# The interface contract, one rule per function; `_check_contract` composes them.

_Method = ast.FunctionDef | ast.AsyncFunctionDef


def _strategy_subclasses(
    classes: dict[str, ast.ClassDef], direct: set[str], modules: set[str]
) -> list[str]:
    """Top-level classes deriving from backtesting's Strategy, directly or via in-module classes."""

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

    return [n for n in classes if is_strategy(n)]


def _choose_strategy(
    tree: ast.Module, classes: dict[str, ast.ClassDef], class_name: str | None
) -> str | CodeIssue:
    """Which class is the strategy: `class_name`, else the one leaf Strategy subclass."""
    direct, modules = _strategy_aliases(tree)
    strategies = _strategy_subclasses(classes, direct, modules)
    used_as_base = {b.id for n in strategies for b in classes[n].bases if isinstance(b, ast.Name)}
    leaves = [n for n in strategies if n not in used_as_base]
    if class_name is not None:
        if class_name in strategies:
            return class_name
        found = ", ".join(strategies) or "none"
        return CodeIssue(
            code="no-strategy",
            message=f"class {class_name!r} subclassing backtesting.Strategy not found "
            f"(Strategy subclasses found: {found})",
        )
    if not strategies:
        hint = "" if direct or modules else " (import it: `from backtesting import Strategy`)"
        return CodeIssue(
            code="no-strategy",
            message=f"no top-level class subclassing backtesting.Strategy{hint}",
        )
    if len(leaves) != 1:
        return CodeIssue(
            code="ambiguous-strategy",
            message="define exactly one strategy class; found: " + ", ".join(leaves),
            line=classes[leaves[-1]].lineno,
        )
    return leaves[0]


def _inheritance_chain(classes: dict[str, ast.ClassDef], chosen: str) -> list[ast.ClassDef]:
    """The chosen class and its in-module ancestors, leaf first."""
    chain: list[ast.ClassDef] = []
    todo = [chosen]
    while todo:
        name = todo.pop(0)
        if name in classes and classes[name] not in chain:
            chain.append(classes[name])
            todo += [b.id for b in classes[name].bases if isinstance(b, ast.Name)]
    return chain


def _check_parameters(
    stmt: ast.stmt, targets: list[ast.expr], value: ast.expr
) -> tuple[dict[str, Any], list[CodeIssue]]:
    """Class-level parameters are plain names bound to simple literals (`_private` ones are kept
    out of the parameters)."""
    params: dict[str, Any] = {}
    errors: list[CodeIssue] = []
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
    return params, errors


def _check_class_statement(
    klass: ast.ClassDef, stmt: ast.stmt
) -> tuple[dict[str, Any], list[CodeIssue]]:
    """A class-body statement that is not a method must be a literal parameter, or bind nothing
    (`pass`, a docstring, a bare annotation)."""
    if isinstance(stmt, ast.Assign):
        return _check_parameters(stmt, stmt.targets, stmt.value)
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        return _check_parameters(stmt, [stmt.target], stmt.value)
    if isinstance(stmt, ast.AnnAssign | ast.Pass) or (
        isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
    ):
        return {}, []
    issue = CodeIssue(
        code="bad-class-body",
        message=f"class {klass.name} may only hold methods and literal "
        f"parameters; found a {type(stmt).__name__} statement",
        line=stmt.lineno,
    )
    return {}, [issue]


def _class_members(
    chain: list[ast.ClassDef],
) -> tuple[dict[str, _Method], dict[str, Any], list[CodeIssue]]:
    """Methods and parameters along the inheritance chain (the leaf's win), and the class-body
    statements that are neither."""
    methods: dict[str, _Method] = {}
    params: dict[str, Any] = {}
    errors: list[CodeIssue] = []
    for klass in reversed(chain):
        for stmt in klass.body:
            if isinstance(stmt, _Method):
                methods[stmt.name] = stmt
            else:
                found, issues = _check_class_statement(klass, stmt)
                params.update(found)
                errors += issues
    return methods, params, errors


def _check_required_methods(klass: ast.ClassDef, methods: dict[str, _Method]) -> list[CodeIssue]:
    """The strategy defines (or inherits in-module) `init` and `next` as plain `def m(self)`."""
    errors: list[CodeIssue] = []
    for required in ("init", "next"):
        method = methods.get(required)
        if method is None:
            errors.append(
                CodeIssue(
                    code="missing-method",
                    message=f"strategy {klass.name} must define `def {required}(self)`",
                    line=klass.lineno,
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
    return errors


def _check_contract(
    tree: ast.Module, class_name: str | None
) -> tuple[str | None, dict[str, Any], list[CodeIssue]]:
    """The interface contract: which class is the strategy, its parameters, what is missing."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    chosen = _choose_strategy(tree, classes, class_name)
    if isinstance(chosen, CodeIssue):
        return None, {}, [chosen]
    chain = _inheritance_chain(classes, chosen)
    methods, params, errors = _class_members(chain)
    errors += _check_required_methods(chain[0], methods)
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
