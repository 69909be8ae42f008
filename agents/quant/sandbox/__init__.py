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

Three programs, one module each:

* `validate` — the policy (allow- and deny-lists) and layer 1: `validate_strategy_code`.
* `run` — the parent: `run_in_sandbox` starts the child (layers 5 and 6), collects and interprets
  its output into a `SandboxResult`.
* `child` — what runs inside the sandbox process: layers 2 to 4, then the backtest.

The runner is imported on first use of one of its names, not with this package: the child
imports the package on its way to `child` and must not load the parent's side.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agents.quant.sandbox.validate import (
    ALLOWED_IMPORTS,
    CodeIssue,
    ValidationReport,
    validate_strategy_code,
)

if TYPE_CHECKING:
    from agents.quant.sandbox.run import (
        ALL_LAYERS,
        Layer,
        SandboxResult,
        network_isolation_available,
        run_in_sandbox,
    )

__all__ = [
    "ALLOWED_IMPORTS",
    "ALL_LAYERS",
    "CodeIssue",
    "Layer",
    "SandboxResult",
    "ValidationReport",
    "network_isolation_available",
    "run_in_sandbox",
    "validate_strategy_code",
]

_FROM_RUN = frozenset(
    {"ALL_LAYERS", "Layer", "SandboxResult", "network_isolation_available", "run_in_sandbox"}
)


def __getattr__(name: str) -> Any:
    """The runner's names, imported lazily (see the module docstring)."""
    if name in _FROM_RUN:
        return getattr(importlib.import_module("agents.quant.sandbox.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
