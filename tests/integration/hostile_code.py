"""The hostile-code catalog for tests/integration/test_hostile_code.py: one `Attack` per snippet.

Every attack aims at an effect the test can see from outside the sandbox:

* `@CMD@` is a shell command that prints `SPAWNED-<token>`, creates `@CREATE@` and deletes
  `@CANARY@`; attacks on kernel interfaces print `SPAWNED-<token>` (`@MARK@`) when a call they
  must not be allowed to make succeeds;
* file attacks write, change or delete the canary, or create `@CREATE@`, in a world-writable
  directory (so only the sandbox, not file permissions, stands in the way);
* read attacks raise or print what they read: `SECRET-<token>` (a world-readable file there),
  `LISTED-<token>` (a file name there), /etc/passwd, the test process's command line;
* network attacks reach listeners the test holds (TCP, UDP, a Unix socket in that directory, an
  abstract Unix socket);
* signal and ptrace attacks aim at a `sleep` process the test started;
* forgery attacks try to get a result accepted with `strategy_name` FORGED, another user or a
  123456 % return.

Placeholders are replaced by `render`: paths and strings as Python literals, numbers as is.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Attack:
    body: str
    where: str = "init"  # init | next | module | class
    timeout_s: float = 10
    memory_mb: int = 1024
    x86_64_only: bool = False


def render(attack: Attack, values: dict[str, str]) -> str:
    body = textwrap.dedent(attack.body).strip("\n")
    for key, value in values.items():
        body = body.replace(f"@{key}@", value)
    init = next_ = "pass"
    top = klass = ""
    if attack.where == "init":
        init = textwrap.indent(body, " " * 8).strip()
    elif attack.where == "next":
        next_ = textwrap.indent(body, " " * 8).strip()
    elif attack.where == "class":
        klass = textwrap.indent(body, " " * 4) + "\n\n"
    else:
        top = body + "\n"
    return (
        f"from backtesting import Strategy\n\n{top}\n\nclass Hostile(Strategy):\n{klass}"
        f"    def init(self):\n        {init}\n\n    def next(self):\n        {next_}\n"
    )


FORGED_IDENTITY = {"strategy_name": "FORGED", "user_id": "mallory", "total_return_pct": 123456.0}
FORGED_OLD = json.dumps(
    {
        "ok": True,
        "result": {
            "id": "bt-forged", "strategy_code": "", "parameters": {}, "symbol": "GOOG",
            "start": "2010-01-01", "end": "2011-01-01", "initial_cash": 10000,
            "final_equity": 1e9, "cagr_pct": None, "sharpe": 99.0, "sortino": None,
            "max_drawdown_pct": 0.0, "num_trades": 1, "win_rate_pct": 100.0,
            "exposure_pct": 1.0, "equity_curve": [], "created_at": "2020-01-01T00:00:00",
            **FORGED_IDENTITY,
        },
        "output": "",
    }
)  # fmt: skip
"""What the old child printed on stdout, as the review's forged-result escape wrote it."""
FORGED_TRADES = json.dumps(
    {"ok": True, "trades": [[1000000.0, 5, 10, 0.01, 1e9]], "warmup": 0, **FORGED_IDENTITY}
)
FORGED_EMPTY = json.dumps({"ok": True, "trades": [], "warmup": 0, **FORGED_IDENTITY})

_PIPES = """
def _is_fifo(fd):
    import os, stat
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False
import os
pipes = [fd for fd in range(3, 4096) if _is_fifo(fd)]
"""
"""Module-level prelude of the forgeries: every pipe the process holds besides stdout/stderr —
the result pipe among them, whatever its number (the parent passes it under its own number,
which in a full test run with many files open is above 63)."""


def _on_pipes(body: str) -> Attack:
    return Attack(_PIPES + textwrap.dedent(body), where="module")


_FIND_ALIASES = """
import contextlib, importlib, io, json, sys
skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "venv", "ensurepip",
        "lib2to3", "pydoc_data"}
found = []
for name in sorted(sys.stdlib_module_names):
    if name.startswith("_") or name in skip:
        continue
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            module = importlib.import_module(name)
    except Exception:
        continue
    found += [[name, attr] for attr in ("_os", "_sys") if hasattr(module, attr)]
print(json.dumps(found))
"""


def _module_alias_attacks() -> dict[str, Attack]:
    """One attack per stdlib module that keeps `_os` or `_sys`: every module is imported, in a
    separate interpreter (no side effects here), and asked."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", _FIND_ALIASES], capture_output=True, check=True, timeout=120
    )
    found: dict[str, Attack] = {}
    for name, attr in json.loads(done.stdout.decode().strip().splitlines()[-1]):
        via = f"{name}.{attr}" if attr == "_os" else f"{name}.{attr}.modules['os']"
        found[f"alias:{name}.{attr}"] = Attack(f"import {name}\n{via}.system(@CMD@)")
    return found


ALIASES = _module_alias_attacks()

PROCESSES = {
    "escape:collections._sys-fork_exec": Attack(
        """
        import collections
        m = collections._sys.modules
        sp = m.get("subprocess") or __import__("subprocess")
        errpipe = m["os"].pipe()
        args = [b"/bin/sh", b"-c", @CMDB@]
        pid = sp._fork_exec(args, [b"/bin/sh"], True, (), None, None, -1, -1, -1, -1, -1, -1,
                            *errpipe, False, False, -1, None, None, None, -1, None, False)
        m["os"].waitpid(pid, 0)
        """
    ),
    "random._os.system": Attack("import random\nrandom._os.system(@CMD@)"),
    "os.system": Attack("import os\nos.system(@CMD@)"),
    "os.popen": Attack("import os\nos.popen(@CMD@).read()"),
    "subprocess.run": Attack("import subprocess\nsubprocess.run(['/bin/sh', '-c', @CMD@])"),
    "subprocess.Popen-shell": Attack(
        "import subprocess\nsubprocess.Popen(@CMD@, shell=True).wait()"
    ),
    "os.fork": Attack(
        "import os\nif os.fork() == 0:\n    os.system(@CMD@)\n    os.write(1, @MARKB@)\n"
        "    os._exit(0)"
    ),
    "os.forkpty": Attack("import os\npid, fd = os.forkpty()\nif pid == 0:\n    os.system(@CMD@)"),
    "os.posix_spawn": Attack(
        "import os\nos.posix_spawn('/bin/sh', ['sh', '-c', @CMD@], {})\nos.wait()"
    ),
    "os.spawnv": Attack("import os\nos.spawnv(os.P_WAIT, '/bin/sh', ['sh', '-c', @CMD@])"),
    "os.execv": Attack("import os\nos.execv('/bin/sh', ['sh', '-c', @CMD@])"),
    "pty.spawn": Attack("import pty\npty.spawn(['/bin/sh', '-c', @CMD@])"),
    "multiprocessing": Attack(
        "import multiprocessing, os\np = multiprocessing.Process(target=os.system, args=(@CMD@,))"
        "\np.start()\np.join()"
    ),
    "process-pool": Attack(
        "import concurrent.futures, os\nwith concurrent.futures.ProcessPoolExecutor(1) as pool:\n"
        "    pool.submit(os.system, @CMD@).result()"
    ),
    "webbrowser": Attack(
        "import webbrowser\nwebbrowser.GenericBrowser(['/bin/sh', '-c', @CMD@ + ' %s']).open('x')"
    ),
    "pydoc-pager": Attack("import pydoc\npydoc.pipepager('x', @CMD@)"),
    "fork-bomb": Attack("import os\nwhile True:\n    os.fork()", where="next"),
    "thread-bomb": Attack(
        "import threading, time\nfor _ in range(100000):\n"
        "    threading.Thread(target=time.sleep, args=(60,)).start()"
    ),
    "ctypes-system": Attack("import ctypes\nctypes.CDLL(None).system(@CMDB@)"),
    "ctypes-fork-syscall": Attack(
        "import ctypes, os\nif ctypes.CDLL(None).syscall(57) == 0:\n    os.write(1, @MARKB@)\n"
        "    os._exit(0)",
        x86_64_only=True,
    ),
    "ctypes-clone-syscall": Attack(
        "import ctypes, os\nif ctypes.CDLL(None).syscall(56, 17, 0, 0, 0, 0) == 0:\n"
        "    os.write(1, @MARKB@)\n    os._exit(0)",
        x86_64_only=True,
    ),
    "ctypes-execve": Attack(
        "import ctypes\nargv = (ctypes.c_char_p * 4)(b'sh', b'-c', @CMDB@, None)\n"
        "ctypes.CDLL(None).execve(b'/bin/sh', argv, None)"
    ),
    "memfd-exec": Attack(
        "import os\nfd = os.memfd_create('x', 0)\nos.write(fd, b'#!/bin/sh\\n' + @CMDB@)\n"
        "os.execv(f'/proc/self/fd/{fd}', ['x'])"
    ),
}


def _shellcode(code: bytes) -> str:
    return f"""
        import ctypes, mmap, os
        buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        buf.write({code!r})
        call = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
        if call() == 0:
            os.write(1, @MARKB@)
            os._exit(0)
        """


KERNEL = {
    # fork by the i386 ABI (int 0x80, eax=2) and the x32 ABI (syscall, eax=0x40000039)
    "i386-int80-fork": Attack(_shellcode(b"\xb8\x02\x00\x00\x00\xcd\x80\xc3"), x86_64_only=True),
    "x32-abi-fork": Attack(_shellcode(b"\xb8\x39\x00\x00\x40\x0f\x05\xc3"), x86_64_only=True),
    "io_uring_setup": Attack(
        "import ctypes\nparams = ctypes.create_string_buffer(120)\n"
        "if ctypes.CDLL(None).syscall(425, 8, params) >= 0:\n    print(@MARK@)",
    ),
    "ptrace-attach": Attack(
        "import ctypes\nif ctypes.CDLL(None).ptrace(16, @VICTIM@, 0, 0) == 0:\n    print(@MARK@)"
    ),
    "process_vm_readv": Attack(
        "import ctypes\nbuf = ctypes.create_string_buffer(8)\n"
        "iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)\n"
        "if ctypes.CDLL(None).process_vm_readv(@VICTIM@, iov, 1, iov, 1, 0) > 0:\n"
        "    print(@MARK@)"
    ),
    "unshare-user": Attack(
        "import ctypes\nif ctypes.CDLL(None).unshare(0x10000000) == 0:\n    print(@MARK@)"
    ),
    "mount-tmpfs": Attack(
        "import ctypes\nif ctypes.CDLL(None).mount(b'x', @DIRB@, b'tmpfs', 0, None) == 0:\n"
        "    print(@MARK@)"
    ),
    "setuid-root": Attack("import os\nos.setuid(0)\nprint(@MARK@)"),
    "chroot": Attack("import os\nos.chroot(@DIR@)\nprint(@MARK@)"),
    "raise-rlimit": Attack(
        "import resource\ninf = resource.RLIM_INFINITY\n"
        "resource.setrlimit(resource.RLIMIT_AS, (inf, inf))\nprint(@MARK@)"
    ),
    "kill-victim": Attack("import os\nos.kill(@VICTIM@, 9)"),
    "stop-victim": Attack("import os, signal\nos.kill(@VICTIM@, signal.SIGSTOP)"),
}

WRITES = {
    "open-w": Attack("open(@CANARY@, 'w').write('pwned')"),
    "open-a": Attack("open(@CANARY@, 'a').write('pwned')"),
    "open-r+": Attack("f = open(@CANARY@, 'r+')\nf.write('pwned')\nf.close()"),
    "open-x": Attack("open(@CREATE@, 'x').write('pwned')"),
    "os.open-creat": Attack("import os\nos.close(os.open(@CREATE@, os.O_CREAT | os.O_WRONLY))"),
    "os.open-tmpfile": Attack(
        "import os\nos.open(@DIR@, os.O_TMPFILE | os.O_WRONLY)\nprint(@MARK@)"
    ),
    "io.FileIO": Attack("import io\nio.FileIO(@CREATE@, 'w').write(b'x')"),
    "os.remove": Attack("import os\nos.remove(@CANARY@)"),
    "os.rename": Attack("import os\nos.rename(@CANARY@, @CREATE@)"),
    "os.chmod": Attack("import os\nos.chmod(@CANARY@, 0o600)"),
    "os.chown": Attack("import os\nos.chown(@CANARY@, 65534, 65534)"),
    "os.utime": Attack("import os\nos.utime(@CANARY@, (0, 0))"),
    "os.truncate": Attack("import os\nos.truncate(@CANARY@, 0)"),
    "os.symlink": Attack("import os\nos.symlink(@CANARY@, @CREATE@)"),
    "os.link": Attack("import os\nos.link(@CANARY@, @CREATE@)"),
    "os.mkdir": Attack("import os\nos.mkdir(@CREATE@)"),
    "os.mkfifo": Attack("import os\nos.mkfifo(@CREATE@)"),
    "os.mknod": Attack("import os\nos.mknod(@CREATE@)"),
    "os.setxattr": Attack("import os\nos.setxattr(@CANARY@, 'user.pwned', b'1')"),
    "shutil.rmtree": Attack("import shutil\nshutil.rmtree(@DIR@)"),
    "shutil.copy": Attack("import shutil\nshutil.copy(shutil.__file__, @CREATE@)"),
    "pathlib.write_text": Attack("import pathlib\npathlib.Path(@CREATE@).write_text('x')"),
    "tempfile.mkstemp": Attack("import tempfile\ntempfile.mkstemp(dir=@DIR@)"),
    "sqlite3.connect": Attack(
        "import sqlite3\nsqlite3.connect(@CREATE@).execute('create table t(x)')"
    ),
    "logging.FileHandler": Attack(
        "import logging\nlogging.FileHandler(@CREATE@).emit(logging.makeLogRecord({}))"
    ),
    "zipfile": Attack("import zipfile\nzipfile.ZipFile(@CREATE@, 'w').writestr('a', 'b')"),
    "np.save": Attack("import numpy as np\nnp.save(@CREATE@, np.zeros(3))"),
    "np.savetxt": Attack("import numpy as np\nnp.savetxt(@CREATE@, np.zeros(3))"),
    "ndarray.tofile": Attack("import numpy as np\nnp.zeros(3).tofile(@CREATE@)"),
    "np.memmap": Attack("import numpy as np\nnp.memmap(@CREATE@, mode='w+', shape=(8,))[:] = 1"),
    "DataFrame.to_csv": Attack("self.data.df.to_csv(@CREATE@)"),
    "DataFrame.to_pickle": Attack("self.data.df.to_pickle(@CREATE@)"),
    "DataFrame.to_json": Attack("self.data.df.to_json(@CREATE@)"),
    "DataFrame.to_string": Attack("self.data.df.to_string(@CREATE@)"),
    "proc-self-mem": Attack("f = open('/proc/self/mem', 'r+b')\nprint(@MARK@)"),
}

READS = {
    "open-etc-passwd": Attack("raise RuntimeError(open('/etc/passwd').read())"),
    "pd.read_csv-etc-passwd": Attack(
        "import pandas as pd\nraise RuntimeError(pd.read_csv('/etc/passwd', sep='|').to_string())"
    ),
    "np.fromfile-etc-passwd": Attack(
        "import numpy as np\nraise RuntimeError(np.fromfile('/etc/passwd', dtype='u1').tobytes())"
    ),
    "read-secret": Attack("raise RuntimeError(open(@SECRET@).read())"),
    "np.loadtxt-secret": Attack(
        "import numpy as np\nraise RuntimeError(np.loadtxt(@SECRET@, dtype=str))"
    ),
    "pathlib-read-secret": Attack(
        "import pathlib\nraise RuntimeError(pathlib.Path(@SECRET@).read_text())"
    ),
    "mmap-secret": Attack(
        "import mmap\nf = open(@SECRET@, 'rb')\n"
        "raise RuntimeError(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:])"
    ),
    "os.listdir": Attack("import os\nraise RuntimeError(os.listdir(@DIR@))"),
    "glob": Attack("import glob\nraise RuntimeError(glob.glob(@DIR@ + '/*'))"),
    "proc-parent-cmdline": Attack(
        "import os\nraise RuntimeError(open(f'/proc/{os.getppid()}/cmdline').read())"
    ),
    "proc-victim-environ": Attack("raise RuntimeError(open('/proc/@VICTIM@/environ').read())"),
    "environment": Attack("import os\nraise RuntimeError(dict(os.environ))"),
    "pd.read_pickle-gadget": Attack("import pandas as pd\npd.read_pickle(@PICKLE@)"),
    "np.load-pickle-gadget": Attack("import numpy as np\nnp.load(@NPY@, allow_pickle=True)"),
}

NETWORK = {
    "tcp-connect": Attack(
        "import socket\nsocket.create_connection(('127.0.0.1', @PORT@), timeout=2).sendall(@MARKB@)"
    ),
    "udp-sendto": Attack(
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(@MARKB@, "
        "('127.0.0.1', @UDP@))"
    ),
    "unix-connect": Attack(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(@UNIX@)\ns.sendall(@MARKB@)"
    ),
    "abstract-unix-connect": Attack(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(@ABSTRACT@)\n"
        "s.sendall(@MARKB@)"
    ),
    "socketpair": Attack("import socket\nsocket.socketpair()\nprint(@MARK@)"),
    "getaddrinfo": Attack("import socket\nsocket.getaddrinfo('localhost', 80)\nprint(@MARK@)"),
    "urllib": Attack(
        "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:@PORT@/', timeout=2)"
    ),
    "http.client": Attack(
        "import http.client\nc = http.client.HTTPConnection('127.0.0.1', @PORT@, timeout=2)\n"
        "c.request('GET', '/')"
    ),
    "ctypes-socket": Attack(
        "import ctypes\nif ctypes.CDLL(None).socket(2, 1, 0) >= 0:\n    print(@MARK@)"
    ),
    "swallowed-socket": Attack(
        "import socket\ntry:\n    socket.socket().connect(('127.0.0.1', @PORT@))\n"
        "except Exception:\n    pass"
    ),
}

ESCAPES = {
    "format-string-get_field": Attack(
        "import random, string\n"
        "g = string.Formatter().get_field('0.__init__.__globals__', [random.Random], {})[0]\n"
        "g['_os'].system(@CMD@)"
    ),
    "format-string-format": Attack(
        "import random\nprint('{0.__init__.__globals__[_os].system}'.format(random.Random))"
    ),
    "format-string-format_map": Attack(
        "import random\nprint('{r.__init__.__globals__[_os]}'.format_map({'r': random.Random}))"
    ),
    "f-string-repr": Attack("import random\nprint(f'{random.Random.__init__.__globals__!r}')"),
    "subclasses-wrap_close": Attack(
        "wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']"
        "[0]\nwrap.__init__.__globals__['system'](@CMD@)"
    ),
    "traceback-frame-walk": Attack(
        """
        try:
            raise ValueError
        except ValueError as e:
            f = e.__traceback__.tb_frame
        while f is not None and "os" not in f.f_globals:
            f = f.f_back
        f.f_globals["os"].system(@CMD@)
        """
    ),
    "generator-frame-walk": Attack(
        """
        def frames():
            try:
                raise ValueError
            except ValueError as e:
                f = e.__traceback__.tb_frame
            while f is not None and "os" not in f.f_globals:
                f = f.f_back  # walked while the generator runs: its callers are above it
            yield f
        next(frames()).f_globals["os"].system(@CMD@)
        """
    ),
    "generator-f_builtins": Attack(
        "g = (i for i in [0])\ng.gi_frame.f_builtins['__import__']('os').system(@CMD@)"
    ),
    "sys._getframe": Attack(
        "import collections\nf = collections._sys._getframe(1)\n"
        "while 'os' not in f.f_globals:\n    f = f.f_back\nf.f_globals['os'].system(@CMD@)"
    ),
    "dataclasses.inspect-frames": Attack(
        "import dataclasses\nf = dataclasses.inspect.currentframe()\n"
        "while 'os' not in f.f_globals:\n    f = f.f_back\nf.f_globals['os'].system(@CMD@)"
    ),
    "operator.attrgetter": Attack(
        "import operator\nsubs = operator.attrgetter('__class__.__base__.__subclasses__')(())()\n"
        "w = [c for c in subs if c.__name__ == '_wrap_close'][0]\n"
        "operator.attrgetter('__init__.__globals__')(w)['system'](@CMD@)"
    ),
    "reduce-getattr": Attack(
        "import functools, random\n"
        "g = functools.reduce(getattr, ['__init__', '__globals__'], random.Random)\n"
        "g['_os'].system(@CMD@)"
    ),
    "getattr-built-name": Attack(
        "import random\nname = '_' + 'os'\ngetattr(random, name).system(@CMD@)"
    ),
    "typing.get_type_hints-eval": Attack(
        'import typing\ndef f(x: "__import__(\'os\').system(" + repr(@CMD@) + ")"): pass\n'
        "typing.get_type_hints(f)"
    ),
    "pandas-eval": Attack(
        'import pandas as pd\npd.eval("__import__(\'os\').system(" + repr(@CMD@) + ")", '
        "engine='python')"
    ),
    "pickle-gadget": Attack("import pickle\npickle.loads(@PICKLEBYTES@)"),
    "type-3-args": Attack(
        "import os\nT = type('T', (), {'__init__': lambda s: os.system(@CMD@)})\nT()"
    ),
    "breakpoint-pdb": Attack(
        "import io, sys\n"
        "sys.stdin = io.StringIO('import os; os.system(' + repr(@CMD@) + ')\\nc\\n')"
        "\nbreakpoint()"
    ),
    "code.interact": Attack(
        "import code, io, sys\n"
        "sys.stdin = io.StringIO('import os; os.system(' + repr(@CMD@) + ')\\n')"
        "\ncode.interact()"
    ),
    "class-body": Attack("import os\nos.system(@CMD@)", where="class"),
    "module-level": Attack("import os\nos.system(@CMD@)", where="module"),
    "metaclass": Attack(
        "import os\nclass Meta(type):\n    def __init__(cls, *args):\n        os.system(@CMD@)\n"
        "class X(metaclass=Meta):\n    pass",
        where="module",
    ),
    "decorator": Attack(
        "import os\ndef deco(f):\n    os.system(@CMD@)\n    return f\n"
        "@deco\ndef helper():\n    pass",
        where="module",
    ),
    "default-argument": Attack(
        "import os\ndef helper(x=os.system(@CMD@)):\n    pass", where="module"
    ),
    "init_subclass": Attack(
        "import os\nclass Base:\n    def __init_subclass__(cls):\n        os.system(@CMD@)\n"
        "class Child(Base):\n    pass",
        where="module",
    ),
    "finalizer": Attack(
        "import os\nclass Bomb:\n    def __del__(self):\n        os.system(@CMD@)\n"
        "self.bomb = Bomb()"
    ),
    "monkeypatch-engine": Attack(
        "import os, backtesting\nbacktesting.Strategy.buy = lambda *a, **k: os.system(@CMD@)\n"
        "self.buy()"
    ),
    "recursion": Attack("def f(n):\n    return f(n + 1)\nf(0)"),
    "deep-recursion": Attack(
        "import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return f(n + 1)\nf(0)",
        timeout_s=3,
        memory_mb=512,
    ),
    "memory-list": Attack("x = [0] * 10 ** 10", memory_mb=768),
    "memory-numpy": Attack("import numpy as np\nx = np.ones(10 ** 10)", memory_mb=768),
    "memory-string-doubling": Attack(
        "s = 'x' * 1000000\nwhile True:\n    s = s + s", where="next", memory_mb=768
    ),
    "cpu-loop": Attack("while True:\n    pass", where="next", timeout_s=2),
}

FORGERIES = {
    "forge:stdout-marker": Attack(
        "import random\nrandom._os.write(1, b'\\x1esandbox-result ' + @FORGED_OLD@.encode() + "
        "b'\\n')\nrandom._os._exit(0)"
    ),
    "forge:result-pipe-impossible-trades": _on_pipes(
        """
        for fd in pipes:
            os.write(fd, b"\\x1esandbox-result " + @FORGED_TRADES@.encode() + b"\\n")
        os._exit(0)
        """
    ),
    "forge:result-pipe-identity": _on_pipes(
        """
        for fd in pipes:
            os.write(fd, b"\\x1esandbox-result " + @FORGED_EMPTY@.encode() + b"\\n")
        os._exit(0)
        """
    ),
    "forge:result-pipe-second-result": _on_pipes(
        """
        for fd in pipes:
            os.write(fd, b"\\x1esandbox-result " + @FORGED_EMPTY@.encode() + b"\\n")
        """
    ),
    "forge:result-pipe-second-ready": _on_pipes(
        """
        for fd in pipes:
            os.write(fd, b"\\x1esandbox-ready {}\\n")
        """
    ),
    "forge:result-pipe-flood": _on_pipes(
        """
        for fd in pipes:
            for _ in range(600):
                os.write(fd, b"x" * (1 << 16))
        os._exit(0)
        """
    ),
    "forge:result-pipe-deep-json": _on_pipes(
        """
        for fd in pipes:
            os.write(fd, b"\\x1esandbox-result " + b"[" * 200000 + b"\\n")
        os._exit(0)
        """
    ),
    "forge:result-pipe-huge-numbers": _on_pipes(
        """
        big = b"1" + b"0" * 400
        for fd in pipes:
            os.write(fd, b'\\x1esandbox-result {"ok": true, "warmup": ' + big + b', "trades": [['
                     + big + b', 5, 10, ' + big + b', 1e999]]}\\n')
        os._exit(0)
        """
    ),
    "forge:result-pipe-wrong-types": _on_pipes(
        """
        for fd in pipes:
            os.write(fd, b'\\x1esandbox-result {"ok": false, "kind": ["x"], "line": true, '
                     b'"blocked": {"a": 1}, "message": 7}\\n')
        os._exit(0)
        """
    ),
    "forge:close-result-pipe": _on_pipes("for fd in pipes:\n    os.close(fd)"),
    "forge:patch-json-dumps": Attack("import json\njson.dumps = lambda *a, **k: @FORGED_TRADES@"),
    "forge:patch-reporter": Attack(
        "import agents.quant.sandbox.child as child\n"
        "child._trades = lambda stats: ([[1e6, 5.0, 10.0, 0.01, 1e9]], 0)"
    ),
    "forge:patch-reporter-plausible": Attack(
        "import agents.quant.sandbox.child as child\nchild._trades = lambda stats: ([], 0)"
    ),
}

WITHOUT_NAMESPACES = {*READS, *WRITES, *NETWORK, *KERNEL, "os.system", "fork-bomb"}
WITHOUT_NAMESPACES |= {"escape:collections._sys-fork_exec", "traceback-frame-walk"}
"""Attacks also run with the namespaces layer off: where bubblewrap is missing, Landlock,
seccomp and nobody must stop file, network and signal attacks without the private view."""

CATALOG: dict[str, Attack] = {
    **PROCESSES, **ALIASES, **KERNEL, **WRITES, **READS, **NETWORK, **ESCAPES, **FORGERIES
}  # fmt: skip
CATALOG = {
    name: attack
    for name, attack in CATALOG.items()
    if not attack.x86_64_only or platform.machine() == "x86_64"
}
