"""The sandbox's system-call filter: a seccomp-BPF program built here and loaded with `seccomp(2)`.

Why raw BPF over ctypes and not libseccomp (`pyseccomp` / Debian's `python3-seccomp`): the filter
is small (one comparison per refused call, three argument checks), needs nothing installed
beyond the kernel, and every number in it is in this file, where a test compares it with the
kernel headers when they are present. libseccomp would add a native dependency to every
deployment for a table we can state in 200 lines.

The filter is a deny-list over an allow-everything default: the interpreter, numpy and pandas use
a wide and version-dependent set of calls (an allow-list breaks on a library upgrade), while what
a backtest must never do is a short list. Refused:

* creating processes (`fork`, `vfork`, `clone` without `CLONE_THREAD`; `clone3` answers ENOSYS so
  the C library falls back to `clone`, whose flags the filter can read), `execve`, `execveat`;
* sockets of every family, and the calls that would use an inherited one;
* opening files for writing (`open`/`openat` with any of O_WRONLY, O_RDWR, O_CREAT, O_TRUNC,
  O_APPEND; `creat`; `openat2`, whose flags the filter cannot read, answers ENOSYS), and every
  call that changes the filesystem (mkdir, unlink, rename, link, chmod, chown, truncate, xattrs,
  mount, ...);
* reaching other processes (`ptrace`, `process_vm_*`, `kill`/`tgkill` of anyone but itself,
  pidfds) and kernel surfaces a backtest has no use for (io_uring, bpf, perf, userfaultfd,
  keyrings, modules, namespaces, set*id, System V IPC, TIOCSTI).

Process, network and kernel-surface calls kill the process (`SECCOMP_RET_KILL_PROCESS`: the
parent sees SIGSYS, nothing can catch it); filesystem writes fail with EPERM, so library code that
merely probes a cache directory fails cleanly. A call made for another ABI (i386 `int 0x80`, x32)
kills the process too: syscall numbers differ there, so the table would not apply.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

# --------------------------------------------------------------------------------------------
# Syscall numbers (x86_64: asm/unistd_64.h; aarch64: asm-generic/unistd.h; >= 424 are shared)
# --------------------------------------------------------------------------------------------

_SHARED = {
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
    "openat2": 437, "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
    "fchmodat2": 452, "lsm_set_self_attr": 460, "setxattrat": 463, "removexattrat": 466,
    "open_tree_attr": 467,
}  # fmt: skip

X86_64: dict[str, int] = {
    "fork": 57, "vfork": 58, "clone": 56, "execve": 59, "execveat": 322, "socket": 41,
    "socketpair": 53, "connect": 42, "bind": 49, "listen": 50, "accept": 43, "accept4": 288,
    "open": 2, "openat": 257, "creat": 85, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "mkdir": 83, "mkdirat": 258, "rmdir": 84, "unlink": 87, "unlinkat": 263, "rename": 82,
    "renameat": 264, "renameat2": 316, "link": 86, "linkat": 265, "symlink": 88,
    "symlinkat": 266, "chmod": 90, "fchmod": 91, "fchmodat": 268, "chown": 92, "fchown": 93,
    "lchown": 94, "fchownat": 260, "truncate": 76, "ftruncate": 77, "fallocate": 285,
    "mknod": 133, "mknodat": 259, "utime": 132, "utimes": 235, "utimensat": 280,
    "futimesat": 261, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
    "lremovexattr": 198, "fremovexattr": 199, "chroot": 161, "pivot_root": 155, "mount": 165,
    "umount2": 166, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "kcmp": 312, "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297, "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320,
    "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "sethostname": 170,
    "setdomainname": 171, "syslog": 103, "settimeofday": 164, "clock_settime": 227,
    "clock_adjtime": 305, "adjtimex": 159, "iopl": 172, "ioperm": 173, "quotactl": 179,
    "lookup_dcookie": 212, "personality": 135, "vhangup": 153, "fanotify_init": 300,
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117,
    "setresgid": 119, "setgroups": 116, "setfsuid": 122, "setfsgid": 123, "capset": 126,
    "shmget": 29, "shmat": 30, "shmctl": 31, "msgget": 68, "msgsnd": 69, "msgrcv": 70,
    "msgctl": 71, "semget": 64, "semop": 65, "semtimedop": 220, "semctl": 66, "mq_open": 240,
    "mq_unlink": 241, "ioctl": 16, "uselib": 134, "modify_ldt": 154, "nfsservctl": 180,
    **_SHARED,
}  # fmt: skip

AARCH64: dict[str, int] = {
    "clone": 220, "execve": 221, "execveat": 281, "socket": 198, "socketpair": 199,
    "connect": 203, "bind": 200, "listen": 201, "accept": 202, "accept4": 242, "openat": 56,
    "open_by_handle_at": 265, "name_to_handle_at": 264, "mkdirat": 34, "unlinkat": 35,
    "renameat": 38, "renameat2": 276, "linkat": 37, "symlinkat": 36, "fchmod": 52,
    "fchmodat": 53, "fchown": 55, "fchownat": 54, "truncate": 45, "ftruncate": 46,
    "fallocate": 47, "mknodat": 33, "utimensat": 88, "setxattr": 5, "lsetxattr": 6,
    "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16, "chroot": 51,
    "pivot_root": 41, "mount": 40, "umount2": 39, "ptrace": 117, "process_vm_readv": 270,
    "process_vm_writev": 271, "kcmp": 272, "kill": 129, "tkill": 130, "tgkill": 131,
    "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "unshare": 97, "setns": 268, "bpf": 280,
    "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219, "add_key": 217,
    "request_key": 218, "init_module": 105, "finit_module": 273, "delete_module": 106,
    "kexec_load": 104, "kexec_file_load": 294, "reboot": 142, "swapon": 224, "swapoff": 225,
    "acct": 89, "sethostname": 161, "setdomainname": 162, "syslog": 116, "settimeofday": 170,
    "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171, "quotactl": 60,
    "lookup_dcookie": 18, "personality": 92, "vhangup": 58, "fanotify_init": 262,
    "setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143, "setresuid": 147,
    "setresgid": 149, "setgroups": 159, "setfsuid": 151, "setfsgid": 152, "capset": 91,
    "shmget": 194, "shmat": 196, "shmctl": 195, "msgget": 186, "msgsnd": 189, "msgrcv": 188,
    "msgctl": 187, "semget": 190, "semop": 193, "semtimedop": 192, "semctl": 191,
    "mq_open": 180, "mq_unlink": 181, "ioctl": 29, "nfsservctl": 42,
    **_SHARED,
}  # fmt: skip

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_TABLES = {"x86_64": X86_64, "aarch64": AARCH64}
_X32_BIT = 0x40000000


def _names(text: str) -> list[str]:
    return text.split()


KILLED = frozenset(
    _names(
        "fork vfork execve execveat socket socketpair connect bind listen accept accept4 "
        "open_by_handle_at name_to_handle_at chroot pivot_root mount umount2 fsopen fsconfig "
        "fsmount fspick move_mount open_tree open_tree_attr mount_setattr ptrace process_vm_readv "
        "process_vm_writev kcmp pidfd_open pidfd_getfd pidfd_send_signal tkill rt_sigqueueinfo "
        "rt_tgsigqueueinfo unshare setns bpf perf_event_open userfaultfd io_uring_setup "
        "io_uring_enter io_uring_register keyctl add_key request_key init_module finit_module "
        "delete_module kexec_load kexec_file_load reboot swapon swapoff acct sethostname "
        "setdomainname syslog settimeofday clock_settime clock_adjtime adjtimex iopl ioperm "
        "quotactl quotactl_fd lookup_dcookie personality vhangup fanotify_init setuid setgid "
        "setreuid setregid setresuid setresgid setgroups setfsuid setfsgid capset shmget shmat "
        "shmctl msgget msgsnd msgrcv msgctl semget semop semtimedop semctl mq_open mq_unlink "
        "uselib modify_ldt nfsservctl lsm_set_self_attr"
    )
)
"""Calls that kill the process: never part of a backtest, always part of an attack."""

REFUSED = frozenset(
    _names(
        "creat mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link linkat symlink "
        "symlinkat chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat truncate ftruncate "
        "fallocate mknod mknodat utime utimes utimensat futimesat setxattr lsetxattr fsetxattr "
        "removexattr lremovexattr fremovexattr setxattrat removexattrat"
    )
)
"""Calls that fail with EPERM: filesystem changes, which benign library code may attempt."""

# --------------------------------------------------------------------------------------------
# BPF
# --------------------------------------------------------------------------------------------

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_EPERM = 1
_ENOSYS = 38
_CLONE_THREAD = 0x00010000
_OPEN_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277}

_Insn = tuple[int, int, int, int]


def _arg(i: int) -> int:
    """Offset of the low 32 bits of syscall argument `i` in `struct seccomp_data`."""
    return 16 + 8 * i


def _ret(value: int) -> _Insn:
    return (_RET, 0, 0, value)


def _when_arg(nr: int, arg: int, test: list[tuple[int, int, int]], otherwise: int) -> list[_Insn]:
    """`if nr matches: load arg; for (op, k, action) in test: if op(arg, k): return action;
    return otherwise` — a self-contained block that always returns once entered."""
    body: list[_Insn] = [(_LD_W_ABS, 0, 0, _arg(arg))]
    for op, k, action in test:
        body += [(op, 0, 1, k), _ret(action)]
    body.append(_ret(otherwise))
    return [(_JEQ, 0, len(body), nr), *body]


def build_filter(machine: str, pid: int) -> list[_Insn]:
    """The filter program for `machine` (`platform.machine()`); `pid` is the sandboxed process,
    the only one it may signal."""
    table = _TABLES[machine]
    kill, deny = _RET_KILL_PROCESS, _RET_ERRNO | _EPERM
    prog: list[_Insn] = [
        (_LD_W_ABS, 0, 0, 4),  # arch
        (_JEQ, 1, 0, _AUDIT_ARCH[machine]),
        _ret(kill),
        (_LD_W_ABS, 0, 0, 0),  # nr
    ]
    if machine == "x86_64":
        prog += [(_JGE, 0, 1, _X32_BIT), _ret(kill)]
    for name, action in (("clone3", _RET_ERRNO | _ENOSYS), ("openat2", _RET_ERRNO | _ENOSYS)):
        prog += [(_JEQ, 0, 1, table[name]), _ret(action)]
    for name in sorted(KILLED & table.keys()):
        prog += [(_JEQ, 0, 1, table[name]), _ret(kill)]
    for name in sorted(REFUSED & table.keys()):
        prog += [(_JEQ, 0, 1, table[name]), _ret(deny)]
    prog += _when_arg(table["clone"], 0, [(_JSET, _CLONE_THREAD, _RET_ALLOW)], kill)
    prog += _when_arg(table["openat"], 2, [(_JSET, _OPEN_WRITE, deny)], _RET_ALLOW)
    if "open" in table:
        prog += _when_arg(table["open"], 1, [(_JSET, _OPEN_WRITE, deny)], _RET_ALLOW)
    prog += _when_arg(table["kill"], 0, [(_JEQ, pid, _RET_ALLOW)], deny)
    prog += _when_arg(table["tgkill"], 0, [(_JEQ, pid, _RET_ALLOW)], deny)
    prog += _when_arg(table["ioctl"], 1, [(_JEQ, _TIOCSTI, deny), (_JEQ, _TIOCLINUX, deny)],
                      _RET_ALLOW)  # fmt: skip
    prog.append(_ret(_RET_ALLOW))
    return prog


def supported() -> bool:
    return platform.system() == "Linux" and platform.machine() in _TABLES


def install() -> None:
    """Load the filter for this process, all threads (TSYNC); raises OSError if refused.

    Needs no-new-privileges (or CAP_SYS_ADMIN) set before; the filter is permanent and inherited.
    """
    machine = platform.machine()
    if not supported():
        raise OSError(f"seccomp filter not available for {platform.system()} {machine}")
    prog = build_filter(machine, os.getpid())
    raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class _Prog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    fprog = _Prog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(
        ctypes.c_long(_NR_SECCOMP[machine]),
        ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_long(_SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SET_MODE_FILTER) failed: {os.strerror(err)} (rc={rc})")
