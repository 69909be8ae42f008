"""Operating-system confinement of the sandbox process, put up before any user code runs.

Called by `child.main` once the engine is imported and the job read. In order:

1. **rlimits**: address space, CPU seconds, file size 0, 64 file descriptors, no core dumps, no
   new processes (RLIMIT_NPROC 0: the kernel ignores it for root, hence step 2).
2. **privileges**: as root, drop to `nobody` (uid/gid 65534, no supplementary groups) and check
   that it cannot be undone; then (with any OS layer) no-new-privileges — setuid binaries and
   file capabilities no longer elevate — and not dumpable: other processes of that uid cannot
   ptrace it or read its memory.
3. **landlock** (Linux >= 5.13, no privileges needed): reads only beneath the interpreter, its
   libraries and this package; no writes, creations, removals or executions anywhere; no TCP
   (ABI 4) and no signals or abstract sockets outside the sandbox (ABI 6).
4. **seccomp** (`seccomp.py`): no processes, exec, sockets or writing opens, whatever the code.

Each layer that cannot be put up is reported by name (the parent logs it loudly) and the run goes
on with the others — except the privilege drop: as root, user code never runs if it fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import sys
import threading
from collections.abc import Iterable

from agents.quant.sandbox import seccomp

NOBODY = 65534
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38


class ConfinementError(RuntimeError):
    """A layer that must hold could not be put up: the user's code is not run."""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def set_limits(timeout_s: float, memory_mb: int) -> None:
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
    cap(resource.RLIMIT_NPROC, 0)  # per-user; the kernel ignores it for root (step 2)


def drop_root() -> str | None:
    """As root: become nobody for good (None when not root: there is no other uid to take)."""
    if os.geteuid() != 0 and os.getuid() != 0:
        return None
    try:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    except OSError as exc:
        raise ConfinementError(f"could not drop root privileges: {exc}") from exc
    if 0 in (*os.getresuid(), *os.getresgid()) or os.getgroups():
        raise ConfinementError("root privileges survived the drop")
    with contextlib.suppress(OSError):
        os.setuid(0)
    if os.geteuid() == 0:
        raise ConfinementError("root could be regained after the drop")
    return f"uid {NOBODY}"


def no_new_privs() -> None:
    """setuid binaries and file capabilities no longer elevate; required by seccomp and
    Landlock for unprivileged processes. Also not dumpable: other processes of this uid cannot
    ptrace it or read its memory."""
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfinementError(f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


# --------------------------------------------------------------------------------------------
# Landlock
# --------------------------------------------------------------------------------------------

_NR_LANDLOCK = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_FS_EXECUTE = 1 << 0
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_ALL = (1 << 0) | (1 << 1)  # bind / connect TCP, ABI 4
_SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract unix sockets, signals, ABI 6


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    import platform

    nrs = _NR_LANDLOCK.get(platform.machine())
    if nrs is None:
        return 0
    version = _libc().syscall(ctypes.c_long(nrs[0]), None, ctypes.c_size_t(0),
                              ctypes.c_uint32(_CREATE_RULESET_VERSION))  # fmt: skip
    return max(int(version), 0)


def read_roots() -> list[str]:
    """What the sandbox may read: the interpreter and its libraries, this package, system
    libraries and time zones — the same paths the parent binds into the private view."""
    import agents

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr"}
    roots |= {p for p in sys.path if p and os.path.isabs(p)}
    roots |= set(agents.__path__)
    roots |= {"/etc/ld.so.cache", "/etc/localtime", "/dev/null", "/dev/urandom"}
    return sorted({os.path.realpath(r) for r in roots if os.path.exists(r)})


def landlock(paths: Iterable[str]) -> str:
    """Restrict this process (and anything it would start) to reading `paths`; raises OSError."""
    import platform

    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    create, add_rule, restrict = _NR_LANDLOCK[platform.machine()]
    fs = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    fs |= _FS_IOCTL_DEV if abi >= 5 else 0
    net = _NET_ALL if abi >= 4 else 0
    scoped = _SCOPE_ALL if abi >= 6 else 0
    attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    libc = _libc()
    ruleset = int(libc.syscall(ctypes.c_long(create), attr, ctypes.c_size_t(size), 0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = _FS_READ_FILE | (_FS_READ_DIR if os.path.isdir(path) else 0)
                rule = ctypes.create_string_buffer(
                    allowed.to_bytes(8, sys.byteorder) + fd.to_bytes(4, sys.byteorder, signed=True)
                )
                if libc.syscall(ctypes.c_long(add_rule), ruleset, _RULE_PATH_BENEATH, rule, 0):
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
            finally:
                os.close(fd)
        if libc.syscall(ctypes.c_long(restrict), ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return f"landlock v{abi}"


# --------------------------------------------------------------------------------------------
# All of it
# --------------------------------------------------------------------------------------------


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def lock_down(layers: set[str], timeout_s: float, memory_mb: int) -> tuple[list[str], list[str]]:
    """Put up the requested OS layers; (what holds, what is missing and why)."""
    held: list[str] = []
    missing: list[str] = []
    if _threads() != 1:  # seccomp TSYNC covers threads; Landlock and the uid drop may not
        missing.append(f"single thread: {_threads()} threads before lock-down")
    roots = read_roots()  # before Landlock: realpath needs to see the tree
    if "rlimits" in layers:
        set_limits(timeout_s, memory_mb)
        held.append("rlimits")
    if "privileges" in layers:
        dropped = drop_root()  # raises ConfinementError: the run is refused
        held += [dropped] if dropped else []
        missing += [] if dropped else ["privileges: not root, runs as the service's own uid"]
    if layers & {"privileges", "landlock", "seccomp"}:
        no_new_privs()
        held.append("no_new_privs")
    if "landlock" in layers:
        try:
            held.append(landlock(roots))
        except OSError as exc:
            missing.append(f"landlock: {exc}")
    if "seccomp" in layers:
        try:
            seccomp.install()
            held.append("seccomp")
        except OSError as exc:
            missing.append(f"seccomp: {exc}")
    return held, missing
