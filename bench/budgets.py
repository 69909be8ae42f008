"""What budgets add to one model call's bookkeeping, on the ledger the call writes anyway.

The cost callback's database work per call, timed call by call (median and p95, µs):

* `row only`: the ledger row (`Ledger.record`), what every call paid before budgets;
* `lookup`: finding the budgets that apply (`Ledger.applicable_budgets`), which every call
  now pays even when none applies;
* `N budgets`: lookup + the one reservation covering them (`Ledger.reserve_call`) + the row
  + the alert thresholds' evaluation (`Alerter.evaluate`, no webhook) — the callback's path.

Run: `python -m bench.budgets [--calls 500] [--postgres postgresql://…]`.
Writes `bench/results/budgets.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.usage.alerts import AlertConfig, Alerter
from agents.usage.budgets import make_budget, set_budget
from agents.usage.ledger import Ledger, LedgerRow

RESULTS = Path(__file__).parent / "results"
SERVICE = "chatops_advanced"


def _row(rid: str, user: str) -> LedgerRow:
    return LedgerRow(
        request_id=rid,
        user_id=user,
        service=SERVICE,
        model="gpt-4o-mini",
        served_model="gpt-4o-mini",
        route="openai",
        cost_nanousd=1000,
        list_price_nanousd=1000,
        input_tokens=200,
        output_tokens=20,
    )


def _time(calls: int, one: Callable[[int], object]) -> dict[str, float]:
    took = []
    for i in range(calls):
        t0 = time.perf_counter()
        one(i)
        took.append((time.perf_counter() - t0) * 1e6)
    took.sort()
    return {
        "p50_us": round(statistics.median(took), 1),
        "p95_us": round(took[int(0.95 * calls)], 1),
    }


def _budgeted(ledger: Ledger, alerter: Alerter, user: str) -> Callable[[int], None]:
    def one(i: int) -> None:
        rid = uuid.uuid4().hex
        applying = ledger.applicable_budgets(user, SERVICE)
        ledger.reserve_call(
            request_id=rid,
            user_id=user,
            service=SERVICE,
            amount_nanousd=5000,
            amount_tokens=400,
            applying=applying,
            ttl_s=60,
        )
        ledger.record(_row(rid, user))
        alerter.evaluate(ledger.engine, applying)

    return one


def measure(url: str, calls: int) -> dict[str, Any]:
    ledger = Ledger(url)
    alerter = Alerter(AlertConfig())  # thresholds 50/80/100, no webhook
    big = 10**6  # USD or tokens: never reached
    set_budget(
        ledger.engine, make_budget(scope="user", period="day", unit="usd", limit=big, user_id="one")
    )
    for scope, fields in (
        ("user", {"user_id": "three"}),
        ("service", {"service": SERVICE}),
        ("user_service", {"user_id": "three", "service": SERVICE}),
    ):
        unit = "tokens" if scope != "user" else "usd"
        set_budget(
            ledger.engine, make_budget(scope=scope, period="month", unit=unit, limit=big, **fields)
        )
    out = {
        "row only": _time(calls, lambda i: ledger.record(_row(uuid.uuid4().hex, "none"))),
        "lookup (no budget applies)": _time(
            calls, lambda i: ledger.applicable_budgets("nobody", "narrative_report")
        ),
        "1 budget": _time(calls, _budgeted(ledger, alerter, "one")),
        "3 budgets": _time(calls, _budgeted(ledger, alerter, "three")),
    }
    ledger.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--postgres", help="also measure on this (empty) Postgres database")
    args = ap.parse_args()
    results: dict[str, Any] = {"calls": args.calls, "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/ledger.sqlite3", args.calls)
    if args.postgres:
        results["postgres"] = measure(args.postgres, args.calls)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "budgets.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
