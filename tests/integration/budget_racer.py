"""A process racing for budgets (`test_budgets`): imports only the ledger, so spawns fast."""

from __future__ import annotations

from typing import Any

from agents.usage.ledger import Ledger, LedgerRow
from agents.usage.limits import QuotaExceededError

CHAT = "chatops_advanced"
ATTEMPTS, WORKERS, AMOUNT_USD, AMOUNT_TOKENS = 12, 4, 1000, 100


def racer(url: str, worker: int, barrier: Any, out: Any) -> None:
    """One process reserving and settling calls as fast as it can (spawned)."""
    ledger = Ledger(url)
    applying = ledger.applicable_budgets("mp", CHAT)
    barrier.wait()
    ok = 0
    for i in range(ATTEMPTS):
        rid = f"{worker}-{i}"
        try:
            ledger.reserve_call(
                request_id=rid,
                user_id="mp",
                service=CHAT,
                amount_nanousd=AMOUNT_USD,
                amount_tokens=AMOUNT_TOKENS,
                applying=applying,
                ttl_s=60,
            )
        except QuotaExceededError:
            continue
        ok += 1
        ledger.record(
            LedgerRow(
                request_id=rid,
                user_id="mp",
                service=CHAT,
                model="gpt-4o-mini",
                served_model="gpt-4o-mini",
                route="openai",
                cost_nanousd=AMOUNT_USD,
                list_price_nanousd=AMOUNT_USD,
                input_tokens=60,
                output_tokens=40,
            )
        )
    ledger.dispose()
    out.put(ok)
