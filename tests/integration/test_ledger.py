"""The ledger under load: concurrency, several processes, and a kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

from agents.costs import Ledger, get_ledger, price_usage, usage_report
from agents.factory import create_chat_model
from agents.settings import Settings
from tests.fakes.openai_server import FakeServer

ROOT = Path(__file__).resolve().parents[2]


def test_1000_concurrent_async_calls_lose_nothing(fake_settings: Settings) -> None:
    chat = create_chat_model("chatops_advanced", user_id="load", settings=fake_settings)
    n = 1000

    async def main() -> None:
        await asyncio.gather(
            *(
                chat.ainvoke(f"q{i} #in={i % 97 + 7} #cached={i % 7} #out={i % 5 + 1}")
                for i in range(n)
            )
        )

    asyncio.run(main())
    rows = get_ledger(fake_settings).rows()
    assert len(rows) == n
    assert len({r["request_id"] for r in rows}) == n
    want_in = sum(i % 97 + 7 for i in range(n))
    want_cached = sum(i % 7 for i in range(n))
    want_out = sum(i % 5 + 1 for i in range(n))
    want_cost = sum(
        (
            price_usage(
                "gpt-4o-mini",
                {
                    "input_tokens": i % 97 + 7,
                    "output_tokens": i % 5 + 1,
                    "input_token_details": {"cache_read": i % 7},
                },
            )
            for i in range(n)
        ),
        Decimal(0),
    )
    (rep,) = usage_report(settings=fake_settings)
    assert (rep.calls, rep.input_tokens, rep.cached_input_tokens, rep.output_tokens) == (
        n,
        want_in,
        want_cached,
        want_out,
    )
    assert rep.cost_usd == want_cost


WORKER = textwrap.dedent(
    """
    import sys
    from agents.factory import create_chat_model
    from agents.settings import Settings
    data_dir, base_url, worker, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = Settings(_env_file=None, QUANT_GENAI_DATA_DIR=data_dir, OPENAI_API_KEY="sk-x",
                 OPENAI_BASE_URL=base_url, QUANT_GENAI_MAX_RETRIES=0)
    chat = create_chat_model("narrative_report", user_id="w" + worker, settings=s)
    for i in range(calls):
        chat.invoke(f"call {i} #in=10 #cached=4 #out=3")
    """
)


def test_four_processes_write_one_ledger(fake_settings: Settings, fake_openai: FakeServer) -> None:
    data_dir = str(fake_settings.resolved_data_dir)
    get_ledger(fake_settings)  # create the schema first, as a deployed app would
    calls = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, data_dir, fake_openai.base_url, str(w), str(calls)],
            cwd=ROOT,
        )
        for w in range(4)
    ]
    assert [p.wait(timeout=180) for p in procs] == [0, 0, 0, 0]
    by_user = {r.user: r for r in usage_report(group_by="user", settings=fake_settings)}
    assert set(by_user) == {"w0", "w1", "w2", "w3"}
    per_call = price_usage(
        "gpt-4o-mini",
        {"input_tokens": 10, "output_tokens": 3, "input_token_details": {"cache_read": 4}},
    )
    for r in by_user.values():
        assert r.calls == calls and r.input_tokens == 10 * calls
        assert r.cost_usd == per_call * calls


CRASHER = textwrap.dedent(
    """
    import sys, time
    from agents.costs import Ledger, LedgerRow
    ledger = Ledger(sys.argv[1])
    i = 0
    while True:
        ledger.record(LedgerRow(request_id=f"r{i}", user_id="u", service="narrative_report",
            model="gpt-4o-mini", served_model="gpt-4o-mini", route="openai", input_tokens=1,
            cached_input_tokens=0, output_tokens=1, reasoning_tokens=0, cost_nanousd=750,
            list_price_nanousd=750, latency_ms=1.0, cache_hit=False, error=None))
        print(f"ACK r{i}", flush=True)
        i += 1
    """
)


def test_acknowledged_rows_survive_kill_9(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked = []
    for line in proc.stdout:
        acked.append(line.split()[1])
        if len(acked) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ids = {r["request_id"] for r in Ledger(url).rows()}
    assert set(acked) <= ids  # every acknowledged row is there after the crash
