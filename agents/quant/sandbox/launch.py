"""How the parent starts the sandbox process: the namespaces layer, chosen once per process.

Best first, each probed once (a real start of the interpreter inside it):

1. **bubblewrap** (`bwrap`, Debian's `bubblewrap`; `make sandbox-deps` installs it): a private
   root that holds only read-only binds of /usr, the interpreter, the virtual environment and
   this package (no /etc, /home, /root, /tmp, /proc, no project data), a minimal /dev, and fresh
   network (no interfaces but a down loopback), IPC, PID, UTS and cgroup namespaces. As root it
   runs privileged with every capability dropped but CAP_SETUID/CAP_SETGID, which the child
   needs to become nobody; otherwise it creates a user namespace.
2. **unshare** (util-linux), when bwrap is missing or refused but we are root: fresh network, IPC
   and UTS namespaces only. The whole host filesystem stays visible: Landlock and the uid drop
   are what keep the child from reading it.
3. **nothing**: the host's namespaces. Landlock, seccomp and rlimits still hold.

Whatever is missing is logged as a warning once per process (and listed in every
`SandboxResult.missing`); docs/sandbox.md says what each fallback loses.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

logger = logging.getLogger("agents.quant.sandbox")

_PROBE = "import agents.quant.sandbox.seccomp"
_PROBE_TIMEOUT_S = 20


@dataclass(frozen=True)
class Launcher:
    """A command prefix for the child and what it gives."""

    kind: str  # "bwrap" | "unshare" | "none"
    prefix: tuple[str, ...]
    held: tuple[str, ...]
    missing: tuple[str, ...]

    def exit_status(self, returncode: int) -> int:
        """The child's own status: bwrap reports death by signal N as exit 128 + N."""
        if self.kind == "bwrap" and 128 < returncode < 128 + 65:
            return -(returncode - 128)
        return returncode


def view_paths() -> list[str]:
    """What the child must be able to read, as the parent sees it (the parent's own sys.path is
    not the child's: pytest or a notebook add the project root, which holds user data)."""
    import agents

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr"}
    paths |= {p for p in sysconfig.get_paths().values() if p}
    paths |= set(site.getsitepackages())
    paths |= set(agents.__path__)
    paths |= {"/etc/ld.so.cache"}
    real = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    # a path inside another bound path needs no bind of its own
    return [p for p in real if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in real)]


def bwrap_args(exe: str) -> list[str]:
    args = [exe, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-ipc"]
    args += ["--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user"]
    for name in ("/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
    made: set[str] = {"/"}
    for path in view_paths():
        if path.startswith("/dev/"):
            continue
        parts = path.strip("/").split("/")[:-1]
        for i in range(len(parts)):
            parent = "/" + "/".join(parts[: i + 1])
            if parent not in made:  # bwrap would create it 0700: nobody could not enter it
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", path, path]
        made.add(path)
    for name in ("/lib", "/lib32", "/lib64", "/bin", "/sbin"):
        if os.path.isdir(name) and not os.path.islink(name) and name not in made:
            args += ["--ro-bind", name, name]
    return [*args, "--dev", "/dev", "--chdir", "/", "--"]


def _works(prefix: list[str]) -> str | None:
    """None when a child interpreter starts inside `prefix`, else why not."""
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-I", "-B", "-c", _PROBE],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["failed"])[-1]


@functools.cache
def launcher() -> Launcher:
    """The best namespaces layer this machine permits (probed once per process)."""
    spaces = ("fs view", "netns", "ipcns", "pidns", "utsns")
    why_not: list[str] = []
    exe = shutil.which("bwrap")
    if exe is None:
        why_not.append("bwrap is not installed (Debian: bubblewrap; `make sandbox-deps`)")
    else:
        prefix = bwrap_args(exe)
        problem = _works(prefix)
        if problem is None:
            return Launcher("bwrap", tuple(prefix), spaces, ())
        why_not.append(f"bwrap refused: {problem}")
    exe = shutil.which("unshare")
    if exe is not None and os.geteuid() == 0:
        prefix = [exe, "--net", "--ipc", "--uts", "--"]
        problem = _works(prefix)
        if problem is None:
            missing = (f"fs view, pidns: {'; '.join(why_not)}",)
            _warn(missing)
            return Launcher("unshare", tuple(prefix), ("netns", "ipcns", "utsns"), missing)
        why_not.append(f"unshare refused: {problem}")
    else:
        why_not.append("unshare needs root without bwrap")
    missing = (f"fs view, netns, ipcns, pidns, utsns: {'; '.join(why_not)}",)
    _warn(missing)
    return Launcher("none", (), (), missing)


def _warn(missing: tuple[str, ...]) -> None:
    for line in missing:
        logger.warning(
            "SANDBOX LAYER MISSING — %s. Generated code still runs under rlimits, nobody (as "
            "root), Landlock and seccomp; see docs/sandbox.md for what this loses.",
            line,
        )


_warned: set[str] = set()


def warn_once(missing: list[str]) -> None:
    """Log a layer the child could not put up (Landlock on an old kernel, ...) once."""
    fresh = tuple(m for m in missing if m not in _warned)
    _warned.update(fresh)
    if fresh:
        _warn(fresh)
