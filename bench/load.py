"""Load on the REST app, beside the bare function, in one run.

The REST app (`agents.serve.api:app`) runs under uvicorn in a subprocess (`--workers N`;
`--langgraph` also under `langgraph dev`; `--tree NAME=DIR` also from another checkout, e.g.
the commit before a change). An asyncio client (`--client raw`: keep-alive HTTP/1.1 over plain
streams; `--client httpx` costs ~2 ms of CPU per request, too much for 1,500/s on 2 cores)
keeps `--concurrency` requests in flight. Server and bare function run in alternating chunks
(`--rounds`), so a shared machine's drift hits both:

* `floor_404`: `GET /v1/_floor` with a valid key (every middleware, the router, the 404 error
  body): the framework's floor, and this client's ceiling.
* `governance_repeated[_sequential]`: `POST /v1/governance/check` with `use_model: false` on
  40 texts seen before (every embedding memoised on both sides), 50 (1) in flight: the REST
  path's own cost. Bare: `prompt_governance.check_prompt(..., use_model=False)`.
* `governance_distinct`: the same on texts neither side has seen (one MiniLM encode each).
* `narrative`: `POST /v1/reports` on an inline backtest, the model being the fake
  OpenAI-compatible server at `--latency-ms` (50) per call. Bare: `write_report` in a pool of
  `--concurrency` threads, same model.

Reported per side: requests/s, p50, p95 (ms) and CPU ms per request (the server's process and
workers from /proc, the bench's own for the bare side: robust on a shared machine); then the
ratio server/bare and what the server adds (p50, p95, wall ms per request at that concurrency,
CPU ms per request). Response cache and rate limits are off (the same bodies repeat).
Run: `python -m bench.load [--quick] [--workers 1] [--langgraph]`; writes
`bench/results/load.json` (`--quick`: 200 requests a scenario, for a CI smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.openai_server import run_fake_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "load.json"
KEY = "bench-load-key"
USER = "bench-user"
HEADERS = {"x-api-key": KEY}
GOALS = {
    "governance_rps": 1500,
    "governance_added_ms": 0.7,
    "narrative_rps": 200,
    "narrative_added_p95_ms": 20,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: str, model_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("REDIS_URL", "DATABASE_URL", "QUANT_GENAI_RATE_LIMITS", "QUANT_GENAI_CACHE"):
        env.pop(var, None)
    env.update(
        QUANT_GENAI_DATA_DIR=data_dir,
        QUANT_GENAI_API_KEYS=json.dumps({KEY: USER}),
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=model_url,
        QUANT_GENAI_MAX_RETRIES="0",
        QUANT_GENAI_FALLBACK="false",
        QUANT_GENAI_CACHE="off",  # every report reaches the model (the same body repeats)
        # the bench measures the path, not the limiter (the first for an older checkout)
        QUANT_GENAI_RATE_PER_MIN="100000000",
        QUANT_GENAI_RATE_BURST="100000000",
        QUANT_GENAI_RATE_LIMITS='{"enabled": false}',
        LANGSMITH_TRACING="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


@contextmanager
def serve(
    env: dict[str, str], workers: int, langgraph: bool, tree: Path | None = None
) -> Iterator[str]:
    """The REST app in a subprocess (from the checkout `tree`, by default this one); yields its
    base URL once `/info` answers."""
    port = _free_port()
    if langgraph:
        cmd = [
            str(Path(sys.executable).with_name("langgraph")),
            *("dev", "--port", str(port), "--no-browser", "--no-reload"),
        ]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "agents.serve.api:app", "--port", str(port)]
        cmd += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    log = Path(env["QUANT_GENAI_DATA_DIR"]) / f"server-{port}.log"  # a pipe could fill up
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=tree or ROOT, stdout=err, stderr=err)
    url = f"http://127.0.0.1:{port}"
    _server_pid[0] = proc.pid
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 120 s")
            time.sleep(0.2)
        try:
            yield url
        except Exception as exc:  # what the server logged, for the results
            raise RuntimeError(f"{exc}; server log: {log.read_text()[-1500:]}") from exc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def stats(ms: Sequence[float], wall_s: float, cpu_s: float = 0.0) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "requests": len(ms),
        "rps": round(len(ms) / wall_s, 1),
        "p50_ms": round(q[49], 3),
        "p95_ms": round(q[94], 3),
        "cpu_ms_per_request": round(cpu_s * 1000 / len(ms), 3),
    }


Sample = tuple[list[float], float, float]  # (latency of each request in ms, wall s, CPU s)
_server_pid = [0]


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its descendants (uvicorn's workers), from
    /proc: on a shared machine, what a request costs the server whatever else runs."""
    total, stack, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


async def _drive_httpx(
    url: str,
    path: str,
    bodies: Sequence[dict[str, Any] | None],
    concurrency: int,
    want: int = 200,
) -> Sample:
    """`bodies` POSTed (a GET for None) with `concurrency` in flight through httpx; every
    answer must be 200."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ms: list[float] = []
    errors: dict[int, int] = {}
    it = iter(bodies)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits, timeout=120) as c:

        async def worker() -> None:
            for body in it:
                t0 = time.perf_counter()
                r = await (c.get(path) if body is None else c.post(path, json=body))
                ms.append((time.perf_counter() - t0) * 1000)
                if r.status_code != want:
                    errors[r.status_code] = errors.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{path}: answers other than {want}: {errors}")
    return ms, wall, 0.0


def _request(host: str, path: str, body: dict[str, Any] | None) -> bytes:
    head = f"{'GET' if body is None else 'POST'} {path} HTTP/1.1\r\nhost: {host}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    if body is None:
        return (head + "\r\n").encode()
    data = json.dumps(body).encode()
    head += f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def _drive_raw(
    url: str,
    path: str,
    bodies: Sequence[dict[str, Any] | None],
    concurrency: int,
    want: int = 200,
) -> Sample:
    """Like `_drive_httpx` over plain asyncio streams: one keep-alive HTTP/1.1 connection per
    request in flight, each answer read by its Content-Length. httpx spends ~2 ms of CPU per
    request, so on a shared 2-core machine it could not offer more than ~400 requests/s; this
    client costs a few tens of microseconds (the `floor_404` row shows its ceiling)."""
    host, _, port = url.removeprefix("http://").partition(":")
    ms: list[float] = []
    errors: dict[int, int] = {}
    it = iter(bodies)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for body in it:
                t0 = time.perf_counter()
                writer.write(_request(host, path, body))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                ms.append((time.perf_counter() - t0) * 1000)
                if status != want:
                    errors[status] = errors.get(status, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{path}: answers other than {want}: {errors}")
    return ms, wall, 0.0


CLIENT = {"raw": _drive_raw, "httpx": _drive_httpx}
_client = ["raw"]


def drive(
    url: str, path: str, bodies: Sequence[dict[str, Any] | None], conc: int, want: int = 200
) -> Sample:
    cpu = _cpu_s(_server_pid[0])
    ms, wall, _ = asyncio.run(CLIENT[_client[0]](url, path, bodies, conc, want))
    return ms, wall, _cpu_s(_server_pid[0]) - cpu


def bare(fn: Callable[[Any], Any], inputs: Sequence[Any], threads: int = 1) -> Sample:
    """`fn` on each input in this process (`threads` at a time)."""
    ms: list[float] = []

    def one(x: Any) -> None:
        t0 = time.perf_counter()
        fn(x)
        ms.append((time.perf_counter() - t0) * 1000)

    t0, cpu = time.perf_counter(), time.process_time()
    if threads == 1:
        for x in inputs:
            one(x)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, inputs))
    return ms, time.perf_counter() - t0, time.process_time() - cpu


def paired(
    server: Callable[[Sequence[Any]], Sample],
    base: Callable[[Sequence[Any]], Sample],
    server_inputs: Sequence[Any],
    base_inputs: Sequence[Any],
    rounds: int,
) -> dict[str, Any]:
    """Server and bare in alternating chunks (`rounds` of each), so the load of a shared
    machine drifts over both alike; then `compare`."""
    got: dict[str, Sample] = {"server": ([], 0.0, 0.0), "bare": ([], 0.0, 0.0)}
    for r in range(rounds):
        for side, fn, inputs in (("server", server, server_inputs), ("bare", base, base_inputs)):
            chunk = inputs[r * len(inputs) // rounds : (r + 1) * len(inputs) // rounds]
            ms, wall, cpu = fn(chunk)
            had = got[side]
            got[side] = (had[0] + ms, had[1] + wall, had[2] + cpu)
    return compare(stats(*got["server"]), stats(*got["bare"]))


def compare(server: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": server,
        "bare": base,
        "rps_ratio": round(server["rps"] / base["rps"], 3),
        "added_p50_ms": round(server["p50_ms"] - base["p50_ms"], 3),
        "added_p95_ms": round(server["p95_ms"] - base["p95_ms"], 3),
        "added_ms_per_request": round(1000 / server["rps"] - 1000 / base["rps"], 3),
        # robust on a shared machine: the server's own CPU per request over the bare call's
        "added_cpu_ms_per_request": round(
            server["cpu_ms_per_request"] - base["cpu_ms_per_request"], 3
        ),
        "one_core_capacity_rps": round(1000 / server["cpu_ms_per_request"], 1)
        if server["cpu_ms_per_request"]
        else None,
    }


def _texts() -> tuple[list[str], list[str]]:
    """(a small set for the repeated workload, the rest unseen for the distinct one)."""
    from bench.injection import external_benign
    from bench.injection_cases import load_cases

    texts = list(dict.fromkeys([c.text for c in load_cases()] + external_benign()))
    return texts[:40], texts[40:]


def governance(
    url: str, n: int, concurrency: int, rounds: int, unseen: Sequence[str]
) -> dict[str, Any]:
    """The governance scenarios; `unseen`: texts neither side has checked yet."""
    from agents.governance.gate import screen
    from graphs.prompt_governance import check_prompt

    small, _ = _texts()
    path = "/v1/governance/check"

    def post(conc: int) -> Callable[[Sequence[str]], Sample]:
        def run(texts: Sequence[str]) -> Sample:
            return drive(url, path, [{"text": t, "use_model": False} for t in texts], conc)

        return run

    def check(texts: Sequence[str]) -> Sample:
        return bare(lambda t: check_prompt(t, user_id=USER, use_model=False), texts)

    check(small)  # warm both sides: MiniLM loaded, every embedding memoised
    post(concurrency)(small * concurrency)  # on every connection, so in every worker
    repeated = [small[i % len(small)] for i in range(n)]
    out: dict[str, Any] = {}
    # The framework's floor: an unknown path under /v1 (key check, body limit, counter,
    # router, the 404 error body), no route work; and this client's ceiling with it.
    out["floor_404"] = paired(
        lambda xs: drive(url, "/v1/_floor", [None] * len(xs), concurrency, 404),
        lambda xs: bare(screen, xs),
        repeated,
        repeated,
        rounds,
    )
    out["governance_repeated_sequential"] = paired(post(1), check, repeated, repeated, rounds)
    out["governance_repeated"] = paired(post(concurrency), check, repeated, repeated, rounds)
    out["governance_repeated"]["bare_rules_only_screen"] = stats(*bare(screen, repeated))
    fresh = unseen[: min(n, len(unseen))]
    half = len(fresh) // 2  # each side sees each text once: server one half, bare the other
    out["governance_distinct"] = paired(
        post(concurrency), check, fresh[:half], fresh[half:], rounds
    )
    return out


def _backtest() -> dict[str, Any]:
    from agents.quant.backtests import run_backtest
    from agents.quant.corpus import SmaCross

    result = run_backtest(SmaCross, "GOOG", user_id=USER, start="2010-01-01", end="2011-12-31")
    return result.model_dump(mode="json")


def narrative(url: str, n: int, concurrency: int, rounds: int) -> dict[str, Any]:
    from graphs.narrative_report import write_report

    body = {"backtest": _backtest(), "max_attempts": 1}

    def run(b: dict[str, Any]) -> Any:
        return write_report(b["backtest"], user_id=USER, max_attempts=1)

    bodies = [body] * n
    drive(url, "/v1/reports", bodies[:concurrency], concurrency)  # warm both
    bare(run, bodies[:concurrency], concurrency)
    return {
        "narrative": paired(
            lambda xs: drive(url, "/v1/reports", xs, concurrency),
            lambda xs: bare(run, xs, concurrency),
            bodies,
            bodies,
            rounds,
        )
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a few hundred requests (CI smoke)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="alternating chunks per side")
    ap.add_argument("--latency-ms", type=int, default=50, help="the fake model's latency")
    ap.add_argument("--langgraph", action="store_true", help="also under `langgraph dev`")
    ap.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also serve the app from another checkout (e.g. `git archive HEAD` unpacked), "
        "measured against the same bare function in the same run",
    )
    ap.add_argument("--client", choices=sorted(CLIENT), default="raw", help="load generator")
    ap.add_argument("--skip", nargs="*", default=[], choices=["governance", "narrative"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    _client[0] = args.client
    n = 200 if args.quick else args.requests
    n_report = 100 if args.quick else max(args.requests // 2, args.concurrency)
    result: dict[str, Any] = {"benchmark": "load", "goals": GOALS, "runs": {}}
    with run_fake_server(args.latency_ms) as model, tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp, model.base_url)
        for var in set(os.environ) - set(env):
            del os.environ[var]
        os.environ.update(env)  # the bare side runs with the server's settings
        servers: list[tuple[str, bool, Path | None]] = [("uvicorn", False, None)]
        for spec in args.tree:
            name, _, tree = spec.partition("=")
            servers.append((f"uvicorn_{name}", False, Path(tree)))
        if args.langgraph:
            servers.append(("langgraph_dev", True, None))
        unseen = _texts()[1]
        share = len(unseen) // len(servers)  # each server its own unseen texts
        for i, (name, langgraph, tree) in enumerate(servers):
            run: dict[str, Any] = {"tree": str(tree or ROOT)}
            fresh = unseen[i * share : (i + 1) * share]
            try:
                with serve(env, args.workers, langgraph, tree) as url:
                    if "governance" not in args.skip:
                        run.update(governance(url, n, args.concurrency, args.rounds, fresh))
                    if "narrative" not in args.skip:
                        run.update(narrative(url, n_report, args.concurrency, args.rounds))
            except Exception as exc:  # one server failing keeps the others' figures
                run["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            result["runs"][name] = run
            print(json.dumps({name: run}, indent=1), flush=True)
    result.update(
        settings={
            "requests": n,
            "report_requests": n_report,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "workers": args.workers,
            "model_latency_ms": args.latency_ms,
            "quick": args.quick,
            "client": args.client,
        },
        environment={"python": platform.python_version(), "cpus": os.cpu_count()},
        reproduce="python -m bench.load" + (" --quick" if args.quick else ""),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
