"""Hostile code: every attack in `hostile_code.CATALOG` (well over 80) must have NO EFFECT.

Each attack runs twice, one process at a time: with every layer (what production runs), and with
the Python layers — AST checks, restricted builtins, audit hook — switched off through the
test-only `_layers` argument, so the code runs exactly as written and only the OS layers (rlimits,
nobody, no-new-privileges, Landlock, seccomp, the private view and namespaces) stand between it
and the host. The file, network, signal and spawn attacks run a third time without the private
view and namespaces too, as on a machine where bubblewrap is missing or refused.

"No effect" is checked from outside: the canary file is unchanged, nothing was
created in its world-writable directory, no spawned process printed its token, no secret came
back, the test's TCP/UDP/Unix listeners got nothing, the `sleep` victim is alive and running, and
no result carries a forged identity or number.

A control run with no layers at all shows the detectors see each kind of effect, so a pass here
is not a detector that never fires.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.quant.sandbox import ALL_LAYERS, OS_LAYERS, Layer, SandboxResult, run_in_sandbox
from tests.integration.hostile_code import (
    ALIASES,
    CATALOG,
    FORGED_EMPTY,
    FORGED_OLD,
    FORGED_TRADES,
    WITHOUT_NAMESPACES,
    render,
)

USER = "u-hostile"
CONFIGS: dict[str, frozenset[Layer]] = {
    "all-layers": ALL_LAYERS,
    "os-layers-only": OS_LAYERS,
    "os-layers-without-namespaces": OS_LAYERS - {"namespaces"},
}
RUNS = [
    (name, config)
    for name in sorted(CATALOG)
    for config in CONFIGS
    if config != "os-layers-without-namespaces" or name in WITHOUT_NAMESPACES
]
CANARY_TEXT = "canary: must stay exactly like this\n"


class _Gadget:
    """Unpickling it runs a shell command: the payload of the pickle attacks."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


@dataclass
class Arena:
    """What the attacks aim at, and how the test sees whether they hit."""

    token: str
    dir: Path
    canary: Path
    create: Path
    secret: Path
    tcp: socket.socket
    udp: socket.socket
    unix: socket.socket
    abstract: socket.socket
    abstract_name: bytes
    victim: subprocess.Popen[bytes] | None = None
    stamp: tuple[int, int] = (0, 0)
    listing: set[str] = field(default_factory=set)

    @property
    def markers(self) -> dict[str, str]:
        """Text that appears only if an attack worked (never in its source: see `values`)."""
        return {
            f"SPAWNED-{self.token}": "a forbidden operation succeeded (process, call or socket)",
            f"SECRET-{self.token}": "a file outside the sandbox was read",
            f"LISTED-{self.token}": "a directory outside the sandbox was listed",
            f"ENVSECRET-{self.token}": "another process's environment was read",
            "root:x:0:0": "/etc/passwd was read",
            "pytest": "the test process's command line was read",
        }

    def values(self) -> dict[str, str]:
        """Placeholders for `render`. Markers are split in two literals, so a traceback quoting
        the attack's own source never contains them whole."""
        mark = f"'SPAWNED-' '{self.token}\\n'"
        cmd = f"'echo SPAWNED-' '{self.token}; touch {self.create}; rm -f {self.canary}'"
        gadget = pickle.dumps(_Gadget(f"echo SPAWNED-''{self.token}; touch {self.create}"))
        return {
            "CMD": cmd,
            "CMDB": cmd.replace("'", "b'", 1).replace(" '", " b'"),
            "MARK": mark,
            "MARKB": mark.replace("'", "b'", 1).replace(" '", " b'"),
            "DIR": repr(str(self.dir)),
            "DIRB": repr(str(self.dir).encode()),
            "CANARY": repr(str(self.canary)),
            "CREATE": repr(str(self.create)),
            "SECRET": repr(str(self.secret)),
            "PICKLE": repr(str(self.dir / "gadget.pkl")),
            "NPY": repr(str(self.dir / "gadget.npy")),
            "PICKLEBYTES": repr(gadget),
            "PORT": str(self.tcp.getsockname()[1]),
            "UDP": str(self.udp.getsockname()[1]),
            "UNIX": repr(str(self.dir / "listener.sock")),
            "ABSTRACT": repr(self.abstract_name),
            "VICTIM": str(self.victim.pid if self.victim else 1),
            "FORGED_OLD": repr(FORGED_OLD),
            "FORGED_TRADES": repr(FORGED_TRADES),
            "FORGED_EMPTY": repr(FORGED_EMPTY),
        }

    def reset(self) -> None:
        """Canary, directory, victim and listeners as before any attack."""
        for path in self.dir.iterdir():
            if path.name not in self.listing:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        self.canary.write_text(CANARY_TEXT)
        self.canary.chmod(0o666)
        os.utime(self.canary, ns=(1_600_000_000 * 10**9,) * 2)
        self.stamp = (self.canary.stat().st_mtime_ns, self.canary.stat().st_mode)
        if self.victim is None or self.victim.poll() is not None:
            env = {"PATH": "/usr/bin:/bin", "QG_HOSTILE_ENV": f"ENVSECRET-{self.token}"}
            self.victim = subprocess.Popen(["sleep", "600"], env=env)
        os.kill(self.victim.pid, signal.SIGCONT)
        self._drain()

    def _drain(self) -> list[str]:
        got = []
        for name, sock in (("tcp", self.tcp), ("unix", self.unix), ("abstract", self.abstract)):
            with contextlib.suppress(BlockingIOError):
                conn, _ = sock.accept()
                conn.close()
                got.append(f"the {name} listener accepted a connection")
        with contextlib.suppress(BlockingIOError):
            self.udp.recv(4096)
            got.append("the UDP listener received a datagram")
        return got

    def effects(self, out: SandboxResult, code: str) -> list[str]:
        """Everything the run changed outside the sandbox ([] when it had no effect)."""
        found: list[str] = []
        seen = " ".join(
            [out.output, out.error or "", out.result.model_dump_json() if out.result else ""]
        )
        found += [why for marker, why in self.markers.items() if marker in seen]
        if not self.canary.exists():
            found.append("the canary was deleted")
        else:
            stat = self.canary.stat()
            if self.canary.read_text() != CANARY_TEXT:
                found.append("the canary was changed")
            if (stat.st_mtime_ns, stat.st_mode) != self.stamp:
                found.append("the canary's times or mode changed")
        if os.path.lexists(self.create):
            found.append("a file was created")
        extra = {p.name for p in self.dir.iterdir()} - self.listing
        found += [f"{name} appeared in the canary directory" for name in sorted(extra)]
        found += self._drain()
        assert self.victim is not None
        if self.victim.poll() is not None:
            found.append("the victim process was killed")
        elif Path(f"/proc/{self.victim.pid}/stat").read_text().split(") ")[1][0] in "tT":
            found.append("the victim process was stopped or traced")
        if out.result is not None:
            r = out.result
            if r.strategy_name != "Hostile" or r.user_id != USER or r.strategy_code != code:
                found.append(f"a result with a forged identity was accepted ({r.strategy_name})")
            if r.total_return_pct == 123456.0 or r.final_equity >= 1e9:
                found.append("a result with forged numbers was accepted")
        return found


def _listener(family: int, kind: int, address: Any) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.bind(address)
    if kind == socket.SOCK_STREAM:
        sock.listen(8)
    sock.setblocking(False)
    return sock


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    token = secrets.token_hex(6)
    where = Path(tempfile.mkdtemp(prefix="qg-hostile-", dir="/tmp"))
    where.chmod(0o777)  # so only the sandbox, not file permissions, stands in the way
    secret = where / "secret.txt"
    secret.write_text(f"SECRET-{token}\n")
    (where / f"LISTED-{token}.txt").write_text("x")
    gadget = _Gadget(f"echo SPAWNED-''{token}; touch {where / 'created'}")
    (where / "gadget.pkl").write_bytes(pickle.dumps(gadget))
    np.save(where / "gadget.npy", np.array([gadget], dtype=object), allow_pickle=True)
    name = f"\0qg-hostile-{token}".encode()
    a = Arena(
        token=token,
        dir=where,
        canary=where / "canary.txt",
        create=where / "created",
        secret=secret,
        tcp=_listener(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 0)),
        udp=_listener(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 0)),
        unix=_listener(socket.AF_UNIX, socket.SOCK_STREAM, str(where / "listener.sock")),
        abstract=_listener(socket.AF_UNIX, socket.SOCK_STREAM, name),
        abstract_name=name,
    )
    for path in where.iterdir():
        path.chmod(0o777 if path.suffix == ".sock" else 0o644)
    a.canary.write_text(CANARY_TEXT)
    a.listing = {p.name for p in where.iterdir()}
    mp = pytest.MonkeyPatch()
    mp.setenv("QG_HOSTILE_ENV", f"ENVSECRET-{token}")  # a leaky child environment would show it
    try:
        yield a
    finally:
        mp.undo()
        if a.victim is not None:
            a.victim.kill()
            a.victim.wait()
        for sock in (a.tcp, a.udp, a.unix, a.abstract):
            sock.close()
        shutil.rmtree(where, ignore_errors=True)


def attack(arena: Arena, name: str, layers: frozenset[Layer]) -> tuple[SandboxResult, str]:
    spec = CATALOG[name]
    code = render(spec, arena.values())
    arena.reset()
    out = run_in_sandbox(
        code,
        user_id=USER,
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
        _layers=layers,
    )
    return out, code


@pytest.mark.parametrize(("name", "config"), RUNS)
def test_attack_has_no_effect(arena: Arena, name: str, config: str) -> None:
    out, code = attack(arena, name, CONFIGS[config])
    assert arena.effects(out, code) == [], (out.error_kind, out.blocked, out.error, out.output)
    if config == "all-layers":  # production: every attack is refused or fails
        assert not out.ok, out


CONTROLS = {
    "os.system": "a forbidden operation succeeded",
    "open-w": "the canary was changed",
    "os.remove": "the canary was deleted",
    "read-secret": "a file outside the sandbox was read",
    "os.listdir": "a directory outside the sandbox was listed",
    "open-etc-passwd": "/etc/passwd was read",
    "tcp-connect": "the tcp listener accepted a connection",
    "unix-connect": "the unix listener accepted a connection",
    "stop-victim": "the victim process was stopped or traced",
    "escape:collections._sys-fork_exec": "a file was created",
}


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_the_detectors_see_an_attack_that_works(arena: Arena, name: str) -> None:
    """With no layer at all the attack has its effect, and the check reports it."""
    out, code = attack(arena, name, frozenset())
    found = arena.effects(out, code)
    assert any(e.startswith(CONTROLS[name]) for e in found), (found, out.error, out.output)


def test_a_forged_report_is_refused_even_with_no_layers(arena: Arena) -> None:
    """The result channel is no layer that can be switched off: the parent computes the result
    from the trades whatever the child says; a plausible forgery only claims its own trades."""
    out, code = attack(arena, "forge:result-pipe-identity", frozenset())
    assert arena.effects(out, code) == []
    assert out.ok and out.result is not None and out.result.num_trades == 0, out
    impossible, code = attack(arena, "forge:result-pipe-impossible-trades", frozenset())
    assert not impossible.ok and impossible.blocked == "forged result", impossible
    assert "outside bar" in (impossible.error or "") or "multiple" in (impossible.error or "")
    old, code = attack(arena, "forge:stdout-marker", frozenset())
    assert not old.ok and old.result is None and arena.effects(old, code) == []


def test_the_catalog_covers_the_brief() -> None:
    assert len(CATALOG) >= 80
    required = {
        "escape:collections._sys-fork_exec",
        "forge:stdout-marker",
        "np.save",
        "DataFrame.to_csv",
        "pd.read_csv-etc-passwd",
        "class-body",
        "generator-frame-walk",
        "breakpoint-pdb",
        "recursion",
        "memory-list",
        "fork-bomb",
        "format-string-get_field",
        "typing.get_type_hints-eval",
    }
    assert required <= CATALOG.keys(), required - CATALOG.keys()
    modules = {name.split(":")[1].split(".")[0] for name in ALIASES}
    assert {"random", "collections", "tempfile", "threading"} <= modules
