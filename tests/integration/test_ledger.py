"""The ledger under load: concurrency, several processes, and a kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from agents.llm.factory import create_chat_model
from agents.settings import Settings
from agents.usage.ledger import Ledger, get_ledger, usage_report
from agents.usage.pricing import price_usage
from tests.fakes.openai_server import FakeServer

ROOT = Path(__file__).resolve().parents[2]
NO_RATE_LIMITS = '{"enabled": false}'
"""These tests load the ledger, not the limits: a thousand uncapped calls of one user in a
second are over the default token limit (their worst case is the 16k output cap each)."""


def test_1000_concurrent_async_calls_lose_nothing(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, ledger_url: str
) -> None:
    fake_settings = make_settings(
        OPENAI_API_KEY="sk-x",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_MAX_RETRIES=0,
        DATABASE_URL=ledger_url,
        QUANT_GENAI_RATE_LIMITS=NO_RATE_LIMITS,
    )
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
    from agents.llm.factory import create_chat_model
    from agents.settings import Settings
    url, base_url, worker, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = Settings(_env_file=None, DATABASE_URL=url, OPENAI_API_KEY="sk-x",
                 OPENAI_BASE_URL=base_url, QUANT_GENAI_MAX_RETRIES=0,
                 QUANT_GENAI_RATE_LIMITS='{"enabled": false}', QUANT_GENAI_CACHE="off")
    chat = create_chat_model("narrative_report", user_id="w" + worker, settings=s)
    for i in range(calls):
        chat.invoke(f"call {i} #in=10 #cached=4 #out=3")
    """
)


def test_four_processes_write_one_ledger(
    make_settings: Callable[..., Settings], fake_openai: FakeServer, ledger_url: str
) -> None:
    fake_settings = make_settings(DATABASE_URL=ledger_url)
    get_ledger(fake_settings)  # create the schema first, as a deployed app would
    calls = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, ledger_url, fake_openai.base_url, str(w), str(calls)],
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
    from agents.usage.ledger import Ledger, LedgerRow
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


def test_acknowledged_rows_survive_kill_9(ledger_url: str) -> None:
    url = ledger_url
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


def test_reports_on_both_backends(ledger_url: str) -> None:
    from datetime import UTC, datetime

    from agents.usage.ledger import LedgerRow

    ledger = Ledger(ledger_url)
    days = [datetime(2026, 11, 20, 23, 59, tzinfo=UTC), datetime(2026, 11, 21, 0, 1, tzinfo=UTC)]
    for i, ts in enumerate(days * 2):
        ledger.record(
            LedgerRow(
                request_id=f"r{i}",
                user_id=f"u{i % 2}",
                service="narrative_report",
                model="gpt-4o" if i < 2 else "gpt-4o-mini",
                served_model=None,
                route="openai",
                input_tokens=10,
                cached_input_tokens=2,
                output_tokens=5,
                reasoning_tokens=1,
                cost_nanousd=None if i == 3 else 1000 + i,
                list_price_nanousd=1000 + i,
                latency_ms=1.0,
                cache_hit=i == 2,
                error="boom" if i == 1 else None,
                ts=ts,
            )
        )
    by_day = {r.day: r for r in ledger.report(group_by="day")}
    assert set(by_day) == {"2026-11-20", "2026-11-21"}
    assert by_day["2026-11-20"].calls == 2
    assert by_day["2026-11-20"].cost_usd == Decimal("0.000002002")
    assert by_day["2026-11-21"].unpriced_calls == 1
    (total,) = ledger.report(group_by="route")
    assert (total.calls, total.cache_hits, total.errors, total.unpriced_calls) == (4, 1, 1, 1)
    assert total.input_tokens == 40 and total.reasoning_tokens == 4
    since = ledger.report(since=datetime(2026, 11, 21, tzinfo=UTC), group_by="user")
    assert sum(r.calls for r in since) == 2
    ledger.dispose()


def test_threads_sharing_one_model_lose_nothing(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fake_settings = make_settings(
        OPENAI_API_KEY="sk-x",
        OPENAI_BASE_URL=fake_openai.base_url,
        QUANT_GENAI_STREAM_USAGE=True,
        QUANT_GENAI_MAX_RETRIES=0,
        QUANT_GENAI_RATE_LIMITS=NO_RATE_LIMITS,
    )
    chat = create_chat_model("narrative_report", user_id="threads", settings=fake_settings)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: chat.invoke(f"t{i} #in=20 #out=2"), range(200)))
    (rep,) = usage_report(settings=fake_settings)
    assert (rep.calls, rep.input_tokens, rep.output_tokens) == (200, 4000, 400)
    assert all(r["latency_ms"] is not None for r in get_ledger(fake_settings).rows())
