"""Validate and run model-generated strategy code without trusting it.

Generated code is hostile until proven otherwise. It passes two kinds of layers, and the second
kind must hold alone (the hostile-code suite runs every attack with the first kind switched off):

*Explanation layers*, in Python, which say precisely what was refused:

1. **ast** (`validate`, in this process, ~2 ms): RestrictedPython's transformer (no `_` names or
   attributes, statement allow-list) plus our policy — an import allow-list, denied names and
   attributes (eval, open, format strings, frames, module handles, pandas/numpy I/O), and the
   interface contract (`contract`). Its errors carry codes and line numbers for the repair loop.
2. **builtins** (child): the user's module runs with builtins lacking eval/exec/open/..., an
   `__import__` enforcing the same allow-list, and getattr/setattr refusing the same names.
3. **audit** (child, `sys.addaudithook`, permanent): names OS-reaching operations (sockets,
   processes, writes, reads outside the installation) and fails the run even if caught.

*Confinement layers*, enforced by the kernel, which hold when all of the above are bypassed:

4. **rlimits** (child, `confine`): address space, CPU seconds, file size 0, few descriptors.
5. **privileges** (child, `confine`): as root, uid/gid 65534 with no groups; no-new-privileges;
   not dumpable.
6. **landlock** (child, `confine`): reads only beneath the interpreter, /usr and this package; no
   filesystem writes anywhere; no TCP; no signals outside the sandbox.
7. **seccomp** (child, `seccomp`): no fork/clone of processes, exec, sockets, opens for writing,
   ptrace, io_uring and other kernel surfaces (killed with SIGSYS).
8. **namespaces** (parent, `launch`): bubblewrap's private read-only filesystem view with fresh
   network/IPC/PID/UTS namespaces; else `unshare` (network/IPC/UTS, as root); else none, loudly.

And the **result channel** (`verify`): the child writes on a pipe of its own, and reports only its
trades; the parent refuses trades the data cannot produce and computes every number and every
identity field itself, so a forged report cannot claim a result (docs/sandbox.md).

Modules: `validate` + `contract` + `issues` (layer 1), `run` (the parent), `launch` (how the
child is started), `child` (the program inside), `confine` + `seccomp` (layers 4-7), `verify`.

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
    parse_module,
    validate_strategy_code,
)

if TYPE_CHECKING:
    from agents.quant.sandbox.run import (
        ALL_LAYERS,
        OS_LAYERS,
        PYTHON_LAYERS,
        Layer,
        SandboxResult,
        network_isolation_available,
        run_in_sandbox,
    )

__all__ = [
    "ALLOWED_IMPORTS",
    "ALL_LAYERS",
    "OS_LAYERS",
    "PYTHON_LAYERS",
    "CodeIssue",
    "Layer",
    "SandboxResult",
    "ValidationReport",
    "network_isolation_available",
    "parse_module",
    "run_in_sandbox",
    "validate_strategy_code",
]

_FROM_RUN = frozenset(
    {
        "ALL_LAYERS",
        "OS_LAYERS",
        "PYTHON_LAYERS",
        "Layer",
        "SandboxResult",
        "network_isolation_available",
        "run_in_sandbox",
    }
)


def __getattr__(name: str) -> Any:
    """The runner's names, imported lazily (see the module docstring)."""
    if name in _FROM_RUN:
        return getattr(importlib.import_module("agents.quant.sandbox.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
