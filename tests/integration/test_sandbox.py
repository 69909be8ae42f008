"""The strategy sandbox, layer by layer, on real backtests.

Each runtime layer is proved *alone*: the other layers are switched off through the private
`_layers` argument, so a hostile snippet that the AST checks would have stopped reaches the
layer under test. Subprocess runs are batched through a thread pool to keep the suite fast.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import socket
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agents.quant.backtests import BacktestResult, load_ohlcv, run_backtest
from agents.quant.sandbox import (
    ALL_LAYERS,
    Layer,
    SandboxResult,
    confine,
    network_isolation_available,
    run_in_sandbox,
    seccomp,
    validate_strategy_code,
    verify,
)
from agents.quant.sandbox.launch import launcher

SMA_CROSS = '''\
"""Trend following with two simple moving averages."""
from backtesting import Strategy
from backtesting.lib import crossover
import pandas as pd


def sma(values, n):
    return pd.Series(values).rolling(n).mean().to_numpy()


class SmaCross(Strategy):
    fast = 10
    slow = 30

    def init(self):
        self.a = self.I(sma, self.data.Close, self.fast)
        self.b = self.I(sma, self.data.Close, self.slow)

    def next(self):
        if crossover(self.a, self.b):
            self.buy()
        elif crossover(self.b, self.a):
            self.position.close()
'''


def strategy(body: str, *, imports: str = "", where: str = "init") -> str:
    """A valid strategy with `body` placed in `init` or `next` (or at module level)."""
    body = textwrap.dedent(body).strip()
    init = next_ = "pass"
    top = ""
    if where == "init":
        init = textwrap.indent(body, " " * 8).strip()
    elif where == "next":
        next_ = textwrap.indent(body, " " * 8).strip()
    else:
        top = body + "\n"
    return (
        f"from backtesting import Strategy\n{textwrap.dedent(imports).strip()}\n{top}\n"
        "class Hostile(Strategy):\n"
        "    def init(self):\n"
        f"        {init}\n\n"
        "    def next(self):\n"
        f"        {next_}\n"
    )


def where_line(code: str, needle: str) -> int:
    return next(i for i, line in enumerate(code.splitlines(), 1) if needle in line)


# --------------------------------------------------------------------------------------------
# Happy path
# --------------------------------------------------------------------------------------------


def test_valid_strategy_runs_and_matches_an_in_process_backtest() -> None:
    report = validate_strategy_code(SMA_CROSS)
    assert report.ok, report.summary()
    assert report.strategy_class == "SmaCross"
    assert report.parameters == {"fast": 10, "slow": 30}

    out = run_in_sandbox(SMA_CROSS, user_id="alice", parameters={"fast": 5}, timeout_s=10)
    assert out.ok, out.error
    assert isinstance(out.result, BacktestResult)
    res = out.result
    assert res.symbol == "GOOG" and res.user_id == "alice" and res.strategy_name == "SmaCross"
    assert res.parameters == {"fast": 5, "slow": 30}
    assert res.num_trades > 0 and res.equity_curve

    # The same code run in-process (trusted here) gives the same deterministic id and numbers:
    # the data crossed the process boundary exactly.
    namespace: dict[str, Any] = {}
    exec(compile(SMA_CROSS, "<trusted>", "exec"), namespace)
    direct = run_backtest(
        namespace["SmaCross"],
        "GOOG",
        user_id="alice",
        strategy_code=SMA_CROSS,
        parameters={"fast": 5},
    )
    assert res.id == direct.id
    assert res.total_return_pct == pytest.approx(direct.total_return_pct)
    assert res.sharpe == pytest.approx(direct.sharpe)


def corpus_code(name: str) -> str:
    """A corpus strategy as a self-contained module, like the code a model would write."""
    from agents.quant import corpus

    helpers: list[Callable[..., Any]] = [corpus.sma, corpus.ema, corpus.rsi, corpus.bollinger]
    helpers += [corpus.macd]
    helpers += [corpus.rolling_max, corpus.rolling_min, corpus.roc]
    header = (
        "from typing import Any\n\nimport numpy as np\nimport pandas as pd\n"
        "from backtesting import Strategy\nfrom backtesting.lib import crossover\n\n"
    )
    parts = [inspect.getsource(f) for f in helpers]
    return header + "\n\n".join([*parts, inspect.getsource(corpus.STRATEGIES[name])])


def test_numpy_array_reductions_work_in_user_code() -> None:
    """numpy resolves `array.min()` & co. on first use by importing from the caller's frame:
    from user code, the guarded import refused it (a compiled short trailing stop failed)."""
    code = """
from backtesting import Strategy
import numpy as np


class Reductions(Strategy):
    def init(self):
        pass

    def next(self):
        closes = np.asarray(self.data.Close[-5:])
        low, high = closes.min(), closes.max()
        if not self.position and closes.mean() > low and closes.std() >= 0 and high > 0:
            self.buy()
"""
    out = run_in_sandbox(code, user_id="alice", timeout_s=20)
    assert out.ok, out.error
    assert out.result is not None and out.result.num_trades >= 1


def test_every_corpus_strategy_passes_validation() -> None:
    """No false positives on realistic strategies (e.g. MACD's `signal` parameter)."""
    from agents.quant.corpus import STRATEGIES

    for name in STRATEGIES:
        report = validate_strategy_code(corpus_code(name))
        assert report.ok and report.strategy_class == name, (name, report.summary())


def test_user_csv_and_date_range(tmp_path: Path) -> None:
    csv = tmp_path / "acme.csv"
    load_ohlcv("GOOG").iloc[:400].to_csv(csv)
    out = run_in_sandbox(SMA_CROSS, user_id="bob", csv_path=str(csv), start="2004-10-01")
    assert out.ok, out.error
    assert out.result is not None
    assert out.result.symbol == "ACME"
    assert out.result.start >= date(2004, 10, 1)


def test_bad_data_is_the_callers_error_not_the_models() -> None:
    with pytest.raises(ValueError, match="bundled symbols"):
        run_in_sandbox(SMA_CROSS, user_id="u", symbol="NOPE")
    with pytest.raises(ValueError, match="Not enough bars"):
        run_in_sandbox(SMA_CROSS, user_id="u", start="2030-01-01")


# --------------------------------------------------------------------------------------------
# Layer 1: static validation (no process is started)
# --------------------------------------------------------------------------------------------

HOSTILE_STATIC: dict[str, tuple[str, str]] = {
    # network
    "socket": (
        strategy('socket.create_connection(("1.1.1.1", 80))', imports="import socket"),
        "forbidden-import",
    ),
    "urllib": (
        strategy('urllib.request.urlopen("http://x")', imports="import urllib.request"),
        "forbidden-import",
    ),
    "requests": (
        strategy('requests.get("http://x")', imports="import requests"),
        "forbidden-import",
    ),
    "http.client": (
        strategy(
            'HTTPConnection("x").request("GET", "/")',
            imports="from http.client import HTTPConnection",
        ),
        "forbidden-import",
    ),
    # files
    "open-write": (strategy('open("/tmp/pwn", "w").write("x")'), "forbidden-name"),
    "pathlib": (
        strategy('Path("/tmp/pwn").write_text("x")', imports="from pathlib import Path"),
        "forbidden-import",
    ),
    "to_csv": (strategy('self.data.df.to_csv("/tmp/pwn.csv")'), "forbidden-attribute"),
    "to_pickle": (strategy('self.data.df.to_pickle("/tmp/pwn.pkl")'), "forbidden-attribute"),
    "np.save": (
        strategy('np.save("/tmp/pwn.npy", np.zeros(3))', imports="import numpy as np"),
        "forbidden-attribute",
    ),
    "read_csv": (
        strategy('pd.read_csv("/etc/passwd")', imports="import pandas as pd"),
        "forbidden-attribute",
    ),
    "fromfile": (
        strategy('np.fromfile("/etc/passwd")', imports="import numpy as np"),
        "forbidden-attribute",
    ),
    # processes
    "subprocess": (
        strategy('subprocess.run(["id"])', imports="import subprocess"),
        "forbidden-import",
    ),
    "os.system": (strategy('os.system("id")', imports="import os"), "forbidden-import"),
    "os.popen": (strategy('os.popen("id").read()', imports="import os"), "forbidden-import"),
    "os.fork": (strategy("os.fork()", imports="import os", where="next"), "forbidden-import"),
    "multiprocessing": (
        strategy("Process(target=print).start()", imports="from multiprocessing import Process"),
        "forbidden-import",
    ),
    "threading": (
        strategy("threading.Thread(target=print).start()", imports="import threading"),
        "forbidden-import",
    ),
    # import tricks and escapes
    "__import__": (strategy('__import__("os").system("id")'), "underscore"),
    "importlib": (
        strategy('importlib.import_module("os").system("id")', imports="import importlib"),
        "forbidden-import",
    ),
    "getattr-builtins": (strategy('getattr(__builtins__, "ev" + "al")("1")'), "dynamic-attribute"),
    "subclasses": (strategy("().__class__.__bases__[0].__subclasses__()"), "underscore"),
    "globals-builtins": (strategy('globals()["__builtins__"]["eval"]("1")'), "forbidden-name"),
    "string-built-name": (strategy('name = "sys"\nvars()[name]'), "forbidden-name"),
    "exec-compile": (strategy('exec(compile("import os", "x", "exec"))'), "forbidden-name"),
    "eval": (strategy('eval("1 + 1")'), "forbidden-name"),
    "star-import": (strategy("pass", imports="from os import *"), "star-import"),
    "sys.modules": (
        strategy('sys.modules["os"].system("id")', imports="import sys"),
        "forbidden-import",
    ),
    "module-via-attribute": (
        strategy('pd.io.common.os.system("id")', imports="import pandas as pd"),
        "forbidden-attribute",
    ),
    "getattr-dunder-literal": (strategy('getattr(self, "__class__")'), "underscore"),
    "code-object": (strategy("(lambda: 0).__code__"), "underscore"),
    "ctypes": (
        strategy('ctypes.CDLL(None).system(b"id")', imports="import ctypes"),
        "forbidden-import",
    ),
    "pickle": (strategy('pickle.loads(b"")', imports="import pickle"), "forbidden-import"),
    "breakpoint": (strategy("breakpoint()"), "forbidden-name"),
    "relative-import": (strategy("pass", imports="from . import x"), "forbidden-import"),
    "frame-walk": (strategy("self.next.__func__"), "underscore"),
    # the review's escapes and what the RestrictedPython-based layer adds
    "module-alias-_sys": (
        strategy('collections._sys.modules["subprocess"]', imports="import collections"),
        "underscore",
    ),
    "module-alias-_os": (
        strategy('random._os.write(1, b"x")', imports="import random"),
        "underscore",
    ),
    "underscore-name": (strategy("_x = 1\nprint(_x)"), "underscore"),
    "underscore-function": (strategy("pass", imports="def _helper():\n    pass"), "underscore"),
    "dunder-method": (
        strategy("pass", imports="class A:\n    def __repr__(self):\n        return ''"),
        "underscore",
    ),
    "format-string": (strategy("'{0.__init__.__globals__}'.format(self)"), "format-string"),
    "format-built-string": (strategy("('{0.' + 'x}').format(self)"), "format-string"),
    "format_map": (strategy("'{x.real}'.format_map({'x': 1})"), "format-string"),
    "string-names-dunder": (strategy('name = "__globals__"'), "underscore"),
    "attrgetter": (
        strategy('operator.attrgetter("a")(self)', imports="import operator"),
        "introspection",
    ),
    "frame-attribute": (strategy("g = (i for i in [0])\ng.gi_frame.f_back"), "introspection"),
    "get_type_hints": (
        strategy("typing.get_type_hints(self.next)", imports="import typing"),
        "introspection",
    ),
    "getattr-as-value": (
        strategy("functools.reduce(getattr, ['a'], self)", imports="import functools"),
        "dynamic-attribute",
    ),
    "type-three-args": (strategy("T = type('T', (), {})"), "forbidden-name"),
    "dataclasses.inspect": (
        strategy("dataclasses.inspect.currentframe()", imports="import dataclasses"),
        "forbidden-attribute",
    ),
    "to_string-writes": (strategy('self.data.df.to_string("/tmp/x")'), "forbidden-attribute"),
    "monkeypatch": (strategy("np.mean = print", imports="import numpy as np"), "monkeypatch"),
    "async": (strategy("pass", imports="async def f():\n    pass"), "not-allowed"),
    "metaclass": (
        strategy("pass", imports="class M(type):\n    pass\n\nclass X(metaclass=M):\n    pass"),
        "not-allowed",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_STATIC))
def test_ast_layer_rejects_hostile_code(name: str) -> None:
    code, expected = HOSTILE_STATIC[name]
    report = validate_strategy_code(code)
    assert not report.ok
    assert expected in report.codes, report.summary()
    assert all(e.line for e in report.errors if e.code == expected)


def test_at_least_twenty_hostile_snippets() -> None:
    assert len(HOSTILE_STATIC) >= 20


def test_refusals_say_what_is_refused_and_what_is_allowed() -> None:
    under = validate_strategy_code(strategy("import random\nrandom._os.system('id')"))
    assert "_os" in under.summary() and "starting with '_'" in under.summary()
    assert "self.data" in under.summary()  # what to use instead
    fmt = validate_strategy_code(strategy("'{0.x}'.format(self)"))
    assert "f-string" in fmt.summary()
    imp = validate_strategy_code(strategy("import os"))
    assert "allowed modules: backtesting" in imp.summary()


def test_throwaway_underscore_bindings_are_allowed() -> None:
    """`lower, mid, _upper = ...` binds a name no code can read back (RestrictedPython's rule is
    relaxed for plain single-underscore bindings only)."""
    code = strategy("lower, mid, _upper = 1, 2, 3\nfor _i in range(2):\n    pass")
    assert validate_strategy_code(code).ok, validate_strategy_code(code).summary()
    assert not validate_strategy_code(strategy("__x = 1")).ok


def test_every_module_reachable_from_an_allowed_one_is_refused_or_harmless() -> None:
    """Walk the allowed modules' public attributes: each module-valued one is either refused by
    name, allowed, or part of numpy/pandas/backtesting's public numeric API."""
    import importlib
    import types

    from agents.quant.sandbox.validate import ALLOWED_IMPORTS, MODULE_HANDLES

    harmless = {"abc", "contextlib", "copy", "keyword", "numbers", "re", "math", "random"}
    harmless |= {"functools", "itertools", "operator", "collections", "typing", "enum"}
    own = ("numpy", "pandas", "backtesting")
    unexpected = []
    for name in sorted(ALLOWED_IMPORTS - {"__future__"}):
        module = importlib.import_module(name)
        for attr in dir(module):
            value = getattr(module, attr, None)
            if attr.startswith("_") or not isinstance(value, types.ModuleType):
                continue
            target = value.__name__
            if attr in MODULE_HANDLES or target in harmless or target.split(".")[0] in harmless:
                continue
            if target.startswith(own) and target.split(".")[-1] not in MODULE_HANDLES:
                continue
            unexpected.append(f"{name}.{attr} -> {target}")
    assert unexpected == []


def test_ast_rejection_explains_and_never_runs() -> None:
    out = run_in_sandbox(strategy('os.system("id")', imports="import os"), user_id="u")
    assert not out.ok and out.error_kind == "validation" and out.result is None
    assert out.error is not None
    assert "import of 'os' is not allowed" in out.error
    assert "allowed modules: backtesting" in out.error
    assert out.line == 2
    assert out.duration_s < 0.5  # no process was started


CONTRACT: dict[str, tuple[str, str]] = {
    "syntax": ("class X(:\n    pass\n", "syntax"),
    "no-strategy": ("import pandas as pd\n\nclass X:\n    def init(self): pass\n", "no-strategy"),
    "own-Strategy-class": (
        "class Strategy: pass\n\nclass X(Strategy):\n"
        "    def init(self): pass\n    def next(self): pass\n",
        "no-strategy",
    ),
    "missing-next": (
        "from backtesting import Strategy\n\nclass X(Strategy):\n    def init(self): pass\n",
        "missing-method",
    ),
    "missing-init": (
        "from backtesting import Strategy\n\nclass X(Strategy):\n    def next(self): pass\n",
        "missing-method",
    ),
    "bad-signature": (
        "from backtesting import Strategy\n\nclass X(Strategy):\n"
        "    def init(self): pass\n    def next(self, bar): pass\n",
        "bad-signature",
    ),
    "computed-parameter": (
        "from backtesting import Strategy\n\nclass X(Strategy):\n    n = len('abc')\n"
        "    def init(self): pass\n    def next(self): pass\n",
        "bad-parameter",
    ),
    "two-strategies": (
        "from backtesting import Strategy\n\nclass A(Strategy):\n"
        "    def init(self): pass\n    def next(self): pass\n\n"
        "class B(Strategy):\n    def init(self): pass\n    def next(self): pass\n",
        "ambiguous-strategy",
    ),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_interface_contract(name: str) -> None:
    code, expected = CONTRACT[name]
    report = validate_strategy_code(code)
    assert not report.ok and expected in report.codes, report.summary()


def test_contract_details() -> None:
    syntax = validate_strategy_code("x = 1\nclass X(:\n    pass\n")
    assert syntax.errors[0].line == 2
    two = CONTRACT["two-strategies"][0]
    assert validate_strategy_code(two, class_name="B").strategy_class == "B"
    missing = validate_strategy_code(CONTRACT["missing-next"][0])
    assert "def next(self)" in missing.summary()
    inherited = (
        "import backtesting\n\nclass Base(backtesting.Strategy):\n    n = 3\n"
        "    def init(self): pass\n\nclass Leaf(Base):\n    m = (1, 2)\n    def next(self): pass\n"
    )
    report = validate_strategy_code(inherited)
    assert report.ok and report.strategy_class == "Leaf", report.summary()
    assert report.parameters == {"n": 3, "m": (1, 2)}
    unknown = validate_strategy_code(SMA_CROSS, parameters={"fats": 5})
    assert unknown.codes == {"unknown-parameter"} and "fast, slow" in unknown.summary()


# --------------------------------------------------------------------------------------------
# Runtime layers, each alone (validation skipped on purpose: these snippets are "obfuscated")
#
# Every sandboxed run of the section below is submitted at once to one pool (fixture `runs`):
# the runs are separate processes, and the timeout cases mostly wait, so they overlap well.
# --------------------------------------------------------------------------------------------

AUDIT_ONLY: frozenset[Layer] = frozenset({"audit"})
BUILTINS_ONLY: frozenset[Layer] = frozenset({"builtins"})
RLIMITS_ONLY: frozenset[Layer] = frozenset({"rlimits"})
NO_LAYERS: frozenset[Layer] = frozenset()

SUBCLASS_ESCAPE = """
wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == "_wrap_close"][0]
wrap.__init__.__globals__["system"]("touch /tmp/qg-sandbox-pwned")
"""

AUDIT_CASES: dict[str, tuple[str, str]] = {
    # name: (snippet in init, expected fragment of the blocked operation)
    "socket": ('import socket\nsocket.create_connection(("127.0.0.1", 9))', "socket."),
    "urllib": ('import urllib.request\nurllib.request.urlopen("http://example.com")', "urllib"),
    "http.client": ('import http.client\nhttp.client.HTTPConnection("x").connect()', "http"),
    "open-write": ('open("out.txt", "w")', "for writing"),
    "pathlib-write": ('import pathlib\npathlib.Path("out.txt").write_text("x")', "for writing"),
    "to_csv": ('self.data.df.to_csv("out.csv")', "for writing"),
    "np.save": ('import numpy as np\nnp.save("out.npy", np.zeros(3))', "for writing"),
    "read-secrets": ('open("/etc/passwd").read()', "outside the Python installation"),
    "os.system": ('import os\nos.system("true")', "os.system"),
    "os.popen": ('import os\nos.popen("true").read()', "subprocess.Popen"),
    "subprocess": ('import subprocess\nsubprocess.run(["true"])', "subprocess.Popen"),
    "fork-bomb": ("import os\nwhile True:\n    os.fork()", "os.fork"),
    "ctypes": ('import ctypes\nctypes.CDLL(None).system(b"true")', "ctypes"),
    "listdir": ('import os\nos.listdir("/")', "os.listdir"),
    "subclasses-escape": (SUBCLASS_ESCAPE, "os.system"),
    "eval-built-name": (
        "import builtins\ngetattr(builtins, 'ev' + 'al')(\"__import__('os').system('true')\")",
        "os.system",
    ),
    "sys.modules": ('import sys\nsys.modules["os"].system("true")', "os.system"),
    "swallowed": (
        "import socket\ntry:\n    socket.socket()\nexcept Exception:\n    pass",
        "socket.",
    ),
}

STRING_LOOP = 's = "x" * 1_000_000\nwhile True:\n    s = s + s'
RLIMIT_PROBE = os.path.join(tempfile.gettempdir(), f"qg-rlimits-probe-{os.getpid()}.txt")
"""rlimits alone (as root, no other layer) may create this file, empty: never anywhere else."""
MEMORY_MB = 768
RUNTIME_ERROR = strategy("x = len(self.data)\nratio = x / 0", where="next")
ENV_PROBE = strategy("import os\nprint(sorted(os.environ), os.getcwd())")


def _network_probe(port: int) -> str:
    return strategy(
        f'import socket\nsocket.create_connection(("127.0.0.1", {port}), timeout=2)\n'
        'print("connected")'
    )


def _jobs(port: int) -> dict[str, tuple[str, frozenset[Layer], dict[str, Any]]]:
    jobs: dict[str, tuple[str, frozenset[Layer], dict[str, Any]]] = {
        f"audit:{name}": (strategy(body), AUDIT_ONLY, {}) for name, (body, _) in AUDIT_CASES.items()
    }
    builtins_cases = {
        "__import__": strategy('__import__("os").system("true")'),
        "eval": strategy('eval("1")'),
        "open": strategy('open("out.txt", "w")'),
        "getattr-dunder": strategy('getattr(self, "__cl" + "ass__")'),
        "builtins-dict": strategy('__builtins__["exec"]("1")'),
    }
    jobs |= {f"builtins:{k}": (v, BUILTINS_ONLY, {}) for k, v in builtins_cases.items()}
    limits = {"memory_mb": MEMORY_MB}
    rlimit_cases = {
        "list": strategy("x = [0] * 10**10"),
        "bytearray": strategy("x = bytearray(10**10)"),
        "numpy": strategy("x = np.ones(10**9)", imports="import numpy as np"),
        "string-loop": strategy(STRING_LOOP, where="next"),
        "write": strategy(f'with open("{RLIMIT_PROBE}", "w") as f:\n    f.write("x" * 100)'),
    }
    jobs |= {f"rlimits:{k}": (v, RLIMITS_ONLY, limits) for k, v in rlimit_cases.items()}
    loops = {
        "next": strategy("while True:\n    pass", where="next"),
        "init": strategy("x = 0\nwhile True:\n    x += 1"),
        "module": strategy("while True:\n    pass", where="module"),
    }
    jobs |= {f"timeout:{k}": (v, ALL_LAYERS, {"timeout_s": 2}) for k, v in loops.items()}
    jobs["all:memory"] = (strategy("x = bytearray(10**10)"), ALL_LAYERS, {})
    jobs["all:runtime-error"] = (RUNTIME_ERROR, ALL_LAYERS, {})
    jobs["env"] = (ENV_PROBE, NO_LAYERS, {})
    jobs["crash"] = (strategy("import ctypes\nctypes.string_at(0)"), NO_LAYERS, {})
    jobs["corpus:MacdCross"] = (corpus_code("MacdCross"), ALL_LAYERS, {"symbol": "BTCUSD"})
    jobs |= _os_layer_jobs()
    if network_isolation_available():
        jobs["netns:isolated"] = (_network_probe(port), frozenset({"namespaces"}), {})
        jobs["netns:control"] = (_network_probe(port), NO_LAYERS, {})
    return jobs


def _os_layer_jobs() -> dict[str, tuple[str, frozenset[Layer], dict[str, Any]]]:
    """Each OS layer alone, against what it alone must stop."""
    probe = f"{RLIMIT_PROBE}.os"
    ids = strategy("import os\nprint(os.getresuid(), os.getresgid(), os.getgroups())")
    repo = Path(__file__).resolve().parents[2]
    hidden = ("/etc/passwd", "/tmp", str(repo / "data"), str(repo / "pyproject.toml"))
    view = strategy(f"import os\nprint([os.path.exists(p) for p in {hidden!r}])")
    return {
        "seccomp:fork": (strategy("import os\nos.fork()"), frozenset({"seccomp"}), {}),
        "seccomp:socket": (strategy("import socket\nsocket.socket()"), frozenset({"seccomp"}), {}),
        "seccomp:write": (strategy(f'open("{probe}", "w")'), frozenset({"seccomp"}), {}),
        "landlock:read": (strategy('open("/etc/passwd").read()'), frozenset({"landlock"}), {}),
        "landlock:write": (strategy(f'open("{probe}", "w")'), frozenset({"landlock"}), {}),
        "privileges:ids": (ids, frozenset({"privileges"}), {}),
        "namespaces:view": (view, frozenset({"namespaces"}), {}),
        "all:confinement": (SMA_CROSS, ALL_LAYERS, {}),
    }


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, SandboxResult]]:
    """All runtime-layer runs, concurrently; a host listener proves the network probe is real."""
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", "sk-must-not-leak")  # the child must not inherit it
    mp.setenv("HTTPS_PROXY", "http://proxy:3128")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        jobs = _jobs(int(server.getsockname()[1]))

        def one(name: str) -> tuple[str, SandboxResult]:
            code, layers, extra = jobs[name]
            extra = {"timeout_s": 10, **extra}
            return name, run_in_sandbox(code, user_id="u-test", _layers=layers, **extra)

        with ThreadPoolExecutor(max_workers=6) as pool:
            yield dict(pool.map(one, jobs))
    mp.undo()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(RLIMIT_PROBE)


@pytest.mark.parametrize("name", sorted(AUDIT_CASES))
def test_audit_hook_alone_blocks(name: str, runs: dict[str, SandboxResult]) -> None:
    out = runs[f"audit:{name}"]
    assert not out.ok and out.error_kind == "runtime", out
    assert out.blocked is not None and AUDIT_CASES[name][1] in out.blocked, out
    assert out.error is not None and "forbidden operation" in out.error
    assert not Path("/tmp/qg-sandbox-pwned").exists()


def test_restricted_builtins_alone(runs: dict[str, SandboxResult]) -> None:
    expected = {
        "__import__": "import of 'os' is not allowed",
        "eval": "name 'eval' is not defined",
        "open": "name 'open' is not defined",
        "getattr-dunder": "'__class__' is not allowed",
        "builtins-dict": "KeyError: 'exec'",
    }
    for name, message in expected.items():
        out = runs[f"builtins:{name}"]
        assert not out.ok and out.error_kind == "runtime" and out.blocked is None, out
        assert message in (out.error or ""), out


@pytest.mark.parametrize("name", ["list", "bytearray", "numpy", "string-loop"])
def test_rlimits_alone_cap_memory(name: str, runs: dict[str, SandboxResult]) -> None:
    out = runs[f"rlimits:{name}"]
    assert out.error_kind == "memory", out
    assert f"{MEMORY_MB} MB" in (out.error or "")


def test_rlimits_alone_stop_file_writes(runs: dict[str, SandboxResult]) -> None:
    out = runs["rlimits:write"]
    assert out.error_kind == "runtime" and "File too large" in (out.error or ""), out


@pytest.mark.skipif(not network_isolation_available(), reason="no bwrap/unshare here")
def test_network_namespace_alone(runs: dict[str, SandboxResult]) -> None:
    control = runs["netns:control"]
    assert control.ok and "connected" in control.output, control  # the probe is real
    isolated = runs["netns:isolated"]
    assert not isolated.ok and isolated.error_kind == "runtime", isolated
    assert "connected" not in isolated.output
    # its own namespace: no route out (unshare), or a loopback of its own (bwrap)
    assert "unreachable" in (isolated.error or "") or "refused" in (isolated.error or ""), isolated


def test_corpus_strategy_runs_with_all_layers(runs: dict[str, SandboxResult]) -> None:
    out = runs["corpus:MacdCross"]
    assert out.ok and out.result is not None, out.error
    assert out.result.symbol == "BTCUSD" and out.result.num_trades > 0
    assert out.result.parameters == {"fast": 12, "slow": 26, "signal": 9}


def test_a_dying_interpreter_is_reported_as_a_crash(runs: dict[str, SandboxResult]) -> None:
    out = runs["crash"]  # a segfault: what a C-level escape or bug looks like from outside
    assert not out.ok and out.error_kind == "crash", out
    assert "SIGSEGV" in (out.error or "")


def test_environment_is_minimal(runs: dict[str, SandboxResult]) -> None:
    out = runs["env"]
    assert out.ok, out.error
    assert "OPENAI_API_KEY" not in out.output and "HTTPS_PROXY" not in out.output
    assert out.output.rstrip().endswith(" /")  # cwd: the root (of the private view, if any)


# --------------------------------------------------------------------------------------------
# All layers on: timeouts, memory, readable runtime errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["next", "init", "module"])
def test_infinite_loops_are_killed_by_the_timeout(
    where: str, runs: dict[str, SandboxResult]
) -> None:
    out = runs[f"timeout:{where}"]
    assert out.error_kind == "timeout", out
    assert "2 s" in (out.error or "")
    assert out.duration_s < 15


def test_memory_bomb_with_all_layers(runs: dict[str, SandboxResult]) -> None:
    out = runs["all:memory"]
    assert not out.ok and out.error_kind == "memory", out


def test_runtime_error_cites_the_users_line(runs: dict[str, SandboxResult]) -> None:
    out = runs["all:runtime-error"]
    assert not out.ok and out.error_kind == "runtime", out
    line = where_line(RUNTIME_ERROR, "ratio = x / 0")
    assert out.line == line
    assert out.error is not None
    assert f"line {line}, in next" in out.error and "ZeroDivisionError" in out.error
    assert "ratio = x / 0" in out.error
    assert "site-packages" not in out.error  # engine frames are trimmed


# --------------------------------------------------------------------------------------------
# The OS layers, each alone (the hostile-code suite runs them together on 150 attacks)
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not seccomp.supported(), reason="no seccomp filter for this machine")
def test_seccomp_alone_kills_process_and_socket_creation_and_refuses_writes(
    runs: dict[str, SandboxResult],
) -> None:
    for name in ("seccomp:fork", "seccomp:socket"):
        out = runs[name]
        assert not out.ok and out.blocked == "forbidden system call (seccomp)", out
        assert "seccomp" in out.confinement
    write = runs["seccomp:write"]
    assert not write.ok and "Operation not permitted" in (write.error or ""), write
    assert not os.path.exists(f"{RLIMIT_PROBE}.os")


@pytest.mark.skipif(confine.landlock_abi() < 1, reason="no Landlock in this kernel")
def test_landlock_alone_confines_reads_and_refuses_writes(runs: dict[str, SandboxResult]) -> None:
    for name in ("landlock:read", "landlock:write"):
        out = runs[name]
        assert not out.ok and "Permission denied" in (out.error or ""), out
        assert any(layer.startswith("landlock") for layer in out.confinement)
    assert not os.path.exists(f"{RLIMIT_PROBE}.os")


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop happens as root")
def test_privileges_alone_make_the_child_nobody(runs: dict[str, SandboxResult]) -> None:
    out = runs["privileges:ids"]
    assert out.ok, out.error
    assert "(65534, 65534, 65534) (65534, 65534, 65534) []" in out.output
    assert {"uid 65534", "no_new_privs"} <= set(out.confinement)


@pytest.mark.skipif(launcher().kind != "bwrap", reason="bubblewrap is not usable here")
def test_namespaces_alone_give_a_private_read_only_view(runs: dict[str, SandboxResult]) -> None:
    out = runs["namespaces:view"]
    assert out.ok, out.error
    assert "[False, False, False, False]" in out.output  # no /etc, /tmp, project data
    assert {"fs view", "netns", "pidns"} <= set(out.confinement)


def test_every_layer_holds_on_this_machine_or_is_reported_missing(
    runs: dict[str, SandboxResult],
) -> None:
    out = runs["all:confinement"]
    assert out.ok, out.error
    held = " ".join(out.confinement)
    expected = ["ast", "rlimits", "no_new_privs", "builtins", "audit"]
    expected += ["seccomp"] * seccomp.supported() + ["landlock"] * (confine.landlock_abi() > 0)
    expected += ["uid 65534"] * (os.geteuid() == 0) + ["fs view"] * (launcher().kind == "bwrap")
    assert all(layer in held for layer in expected), (out.confinement, out.missing)
    if launcher().kind != "bwrap":
        assert any("fs view" in m for m in out.missing)  # said, not silently lost


# --------------------------------------------------------------------------------------------
# The result channel: the parent's numbers are the engine's, and impossible trades are refused
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["GOOG", "BTCUSD", "EURUSD"])
def test_the_parent_recomputes_what_the_engine_computes(symbol: str) -> None:
    """Equity bar by bar and every reported metric, from the trades alone, for each corpus
    strategy (long, short-free and fractional-unit books on three markets)."""
    from backtesting._util import _indicator_warmup_nbars

    from agents.quant.backtests import _metrics, engine_stats
    from agents.quant.corpus import STRATEGIES

    frame = load_ohlcv(symbol)
    for name, cls in STRATEGIES.items():
        stats = engine_stats(cls, frame, 10_000, 0.002, {})
        table = stats["_trades"][["Size", "EntryBar", "ExitBar", "EntryPrice", "ExitPrice"]]
        trades = verify.check_trades(frame, table.astype(float).to_numpy().tolist(), 10_000)
        warmup = _indicator_warmup_nbars(stats["_strategy"])
        mine = verify.stats_from_trades(frame, trades, warmup, 10_000, 0.002)
        engine_equity = stats["_equity_curve"]["Equity"].to_numpy()
        assert verify.equity_curve(frame, trades, 10_000, 0.002) == pytest.approx(engine_equity)
        theirs, ours = _metrics(stats), _metrics(mine)
        for key, value in theirs.items():
            assert ours[key] == (value if value is None else pytest.approx(value)), (name, key)


IMPOSSIBLE: dict[str, tuple[Any, str]] = {
    "not a list": ("trades", "are not a list"),
    "short row": ([[1.0, 5, 10]], "is not [size"),
    "price above the bar": ([[1.0, 5, 10, 1e9, 100.0]], "outside bar"),
    "price below the bar": ([[1.0, 5, 10, 0.01, 100.0]], "outside bar"),
    "bar past the data": ([[1.0, 5, 10**6, 100.0, 100.0]], "not a bar"),
    "exit before entry": ([[1.0, 10, 5, 100.0, 100.0]], "bars 10..5"),
    "zero size": ([[0.0, 5, 10, 100.0, 100.0]], "size 0.0"),
    "fraction of a unit": ([[0.123456, 5, 10, 100.0, 100.0]], "not a multiple"),
    "not finite": ([[float("nan"), 5, 10, 100.0, 100.0]], "not a finite number"),
    "a bool": ([[True, 5, 10, 100.0, 100.0]], "not a finite number"),
}


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE))
def test_reports_no_backtest_can_make_are_refused(name: str) -> None:
    frame = load_ohlcv("GOOG")
    rows, message = IMPOSSIBLE[name]
    if name.startswith("price"):  # a real fill price of bar 5 elsewhere in the row
        rows[0][4] = float(frame["Close"].iloc[10])
    elif isinstance(rows, list) and len(rows[0]) == 5:
        rows[0][3] = rows[0][4] = float(frame["Close"].iloc[5])
    with pytest.raises(verify.ForgedResultError, match=re.escape(message)):
        verify.check_trades(frame, rows, 10_000)
    with pytest.raises(verify.ForgedResultError, match="trades on"):
        verify.check_trades(frame, [[1.0, 5, 10, 100.0, 100.0]] * (40 * len(frame)), 10_000)


# --------------------------------------------------------------------------------------------
# The seccomp filter's numbers and shape
# --------------------------------------------------------------------------------------------

HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", r"#define __NR_(\w+)\s+(\d+)"),
    "aarch64": ("/usr/include/asm-generic/unistd.h", r"#define __NR(?:3264)?_(\w+)\s+(\d+)"),
}


@pytest.mark.parametrize("machine", sorted(HEADERS))
def test_syscall_numbers_match_the_kernel_headers(machine: str) -> None:
    path, pattern = HEADERS[machine]
    if not os.path.exists(path):
        pytest.skip(f"{path} is not installed")
    header = {m[1]: int(m[2]) for m in re.finditer(pattern, Path(path).read_text())}
    table = seccomp.X86_64 if machine == "x86_64" else seccomp.AARCH64
    compared = {name for name in table if name in header}
    assert len(compared) > 80  # the header really was read
    assert {name: table[name] for name in compared} == {name: header[name] for name in compared}


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_filter_program_is_well_formed(machine: str) -> None:
    prog = seccomp.build_filter(machine, 1234)
    assert 50 < len(prog) < 4096
    for i, (code, jt, jf, _) in enumerate(prog):
        if code & 0x07 == 0x05:  # a jump stays inside the program
            assert i + 1 + max(jt, jf) < len(prog)
    assert prog[-1] == (0x06, 0, 0, 0x7FFF0000)  # the default is allow: a deny-list
    killed = {k for (c, _, _, k) in prog if c == 0x15}
    table = seccomp.X86_64 if machine == "x86_64" else seccomp.AARCH64
    for name in ("execve", "socket", "ptrace", "io_uring_setup", "clone", "openat", "kill"):
        assert table[name] in killed, name
