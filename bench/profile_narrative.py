"""Where a narrative report's CPU goes: cProfile of `write_report` against the fake
OpenAI-compatible server (docs/performance.md, "Narrative report").

    python -m bench.profile_narrative [--reports 40] [--latency-ms 0] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from collections.abc import Sequence

from bench.load import USER, _backtest, _env
from tests.fakes.openai_server import run_fake_server


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_narrative", description=__doc__)
    ap.add_argument("--reports", type=int, default=40)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args(argv)
    with run_fake_server(args.latency_ms) as model, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(_env(tmp, model.base_url))
        from graphs.narrative_report import write_report

        backtest = _backtest()
        for _ in range(5):  # warm: models, ledger, connections
            write_report(backtest, user_id=USER, max_attempts=1)
        profile = cProfile.Profile()
        cpu, wall = time.process_time(), time.perf_counter()
        profile.enable()
        for _ in range(args.reports):
            write_report(backtest, user_id=USER, max_attempts=1)
        profile.disable()
        cpu_ms = (time.process_time() - cpu) / args.reports * 1000
        wall_ms = (time.perf_counter() - wall) / args.reports * 1000
        print(f"per report (under cProfile): CPU {cpu_ms:.1f} ms, wall {wall_ms:.1f} ms")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
