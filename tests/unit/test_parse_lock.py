"""Generated code is parsed one thread at a time.

CPython 3.11 keeps the AST constructor's recursion counter in interpreter-wide state; two threads
in `ast.parse` at once can corrupt it and valid code fails with "SystemError: AST constructor
recursion depth mismatch" (python/cpython#106905). CI hit it in a pool of sandbox runs. The
validator and the strategy builder parse through `parse_module`, which holds one lock; these tests
hold that lock and check that a validation in another thread waits for it.
"""

from __future__ import annotations

import threading

from agents.quant.compiler import compile_spec
from agents.quant.sandbox import parse_module, validate_strategy_code
from agents.quant.sandbox import validate as validate_module
from agents.quant.spec import StrategySpec

SMA_CROSS = {
    "name": "Compiled",
    "entry": {
        "combine": "all",
        "conditions": [
            {
                "left": {"kind": "sma", "period": 10},
                "op": "crosses_above",
                "right": {"kind": "sma", "period": 30},
            }
        ],
    },
}


def test_validation_in_another_thread_waits_for_the_parse_lock() -> None:
    code = compile_spec(StrategySpec.model_validate(SMA_CROSS)).code
    reports = []
    worker = threading.Thread(target=lambda: reports.append(validate_strategy_code(code)))
    with validate_module._PARSE_LOCK:
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive(), "validation parsed without taking the parse lock"
        assert reports == []
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert reports and reports[0].ok, reports


def test_parse_module_returns_the_tree_and_raises_syntax_errors() -> None:
    tree = parse_module("x = 1\n")
    assert type(tree.body[0]).__name__ == "Assign"
    try:
        parse_module("def (:\n")
    except SyntaxError as exc:
        assert exc.filename == "<strategy>"
    else:
        raise AssertionError("a syntax error was not raised")
