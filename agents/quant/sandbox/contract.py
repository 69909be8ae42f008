"""The interface contract of a strategy module, checked statically (part of `validate`).

One top-level `backtesting.Strategy` subclass (or a chosen one, `class_name`), plain `init` and
`next` methods, and class-level parameters that are simple literals: what the engine and the
service rely on. Class bodies hold nothing else, so no code runs when the class is created.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from agents.quant.sandbox.issues import CodeIssue


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


def check_contract(
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
