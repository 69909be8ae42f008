"""The month's expected cost per service, projected from the ledger's real usage.

Month-to-date spend and tokens per service (UTC calendar month), and a linear projection: the
month-to-date amount divided by the elapsed fraction of the month (elapsed seconds / the
month's seconds; at least one hour elapsed, so the first minutes of a month do not multiply a
single call by thousands). This is the seed's "expected monthly cost" table computed from what
calls actually cost rather than from assumed volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agents.usage.budgets import period_end, period_start
from agents.usage.ledger import Ledger

MIN_ELAPSED = timedelta(hours=1)


@dataclass(frozen=True)
class ServiceProjection:
    service: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    projected_cost_usd: Decimal
    projected_tokens: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class MonthProjection:
    month: str
    month_start: datetime
    as_of: datetime
    days_elapsed: float
    days_in_month: int
    elapsed_fraction: float
    services: list[ServiceProjection] = field(default_factory=list)
    method: str = "linear: month-to-date / elapsed fraction of the month"

    @property
    def cost_usd(self) -> Decimal:
        return sum((s.cost_usd for s in self.services), Decimal(0))

    @property
    def projected_cost_usd(self) -> Decimal:
        return sum((s.projected_cost_usd for s in self.services), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "month_start": self.month_start.isoformat(),
            "as_of": self.as_of.isoformat(timespec="seconds"),
            "days_elapsed": round(self.days_elapsed, 3),
            "days_in_month": self.days_in_month,
            "elapsed_fraction": round(self.elapsed_fraction, 6),
            "method": self.method,
            "services": [
                {
                    "service": s.service,
                    "calls": s.calls,
                    "input_tokens": s.input_tokens,
                    "output_tokens": s.output_tokens,
                    "tokens": s.tokens,
                    "cost_usd": float(s.cost_usd),
                    "projected_cost_usd": float(s.projected_cost_usd),
                    "projected_tokens": s.projected_tokens,
                }
                for s in self.services
            ],
            "total_cost_usd": float(self.cost_usd),
            "projected_total_usd": float(self.projected_cost_usd),
        }


def project_month(
    ledger: Ledger, *, user_id: str | None = None, now: datetime | None = None
) -> MonthProjection:
    """Month-to-date usage per service (one user's, or everyone's) and its linear projection."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    start, end = period_start("month", now), period_end("month", now)
    elapsed = max(now - start, MIN_ELAPSED)
    fraction = min(elapsed / (end - start), 1.0)
    rows = ledger.report(user_id=user_id, since=start, group_by="service")
    q = Decimal(10) ** -9
    services = [
        ServiceProjection(
            service=r.service,
            calls=r.calls,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cost_usd=r.cost_usd,
            projected_cost_usd=(r.cost_usd / Decimal(fraction)).quantize(q),
            projected_tokens=round((r.input_tokens + r.output_tokens) / fraction),
        )
        for r in rows
    ]
    return MonthProjection(
        month=start.strftime("%Y-%m"),
        month_start=start,
        as_of=now,
        days_elapsed=(now - start) / timedelta(days=1),
        days_in_month=(end - start).days,
        elapsed_fraction=fraction,
        services=services,
    )
