"""The durable usage ledger: one row per model call, reservations, reports, run totals.

Its tables are in `agents.usage.schema`; the budgets and the reservation that covers them in
`agents.usage.budgets` (`reserve_call`).

SQLite file by default, Postgres when `DATABASE_URL` says so (SQLAlchemy Core). The cost callback
writes a row synchronously and commits before it returns, so a row acknowledged to the caller
survives a `kill -9` (SQLite WAL; Postgres commit). Money is integer nano-dollars
(`agents.usage.pricing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage import budgets
from agents.usage.budgets import Budget
from agents.usage.pricing import NANO, TokenUsage
from agents.usage.schema import create_schema, llm_calls, quota_reservations

GroupBy = Literal["model", "service", "user", "day", "route"]


__all__ = ["Ledger", "LedgerRow", "RunTotals", "UsageRow", "llm_calls", "quota_reservations"]


@dataclass(frozen=True)
class LedgerRow:
    """One model call as recorded."""

    request_id: str
    user_id: str | None
    service: str | None
    model: str
    served_model: str | None
    route: str | None
    cost_nanousd: int | None  # None = unpriced
    list_price_nanousd: int | None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    latency_ms: float | None = None
    cache_hit: bool = False
    error: str | None = None
    ts: datetime | None = None
    estimated: bool = False  # tokens counted locally: the endpoint reported no usage

    @classmethod
    def of(cls, usage: TokenUsage, **fields: Any) -> LedgerRow:
        """A row for one call: its token counts from `usage`, the rest from `fields`."""
        return cls(**fields, **usage.model_dump())

    @property
    def unpriced(self) -> bool:
        return self.cost_nanousd is None


class UsageRow(BaseModel):
    """One line of a usage report (aggregated by the report's `group_by`)."""

    model: str | None = None
    service: str | None = None
    user: str | None = None
    day: str | None = None
    route: str | None = None
    calls: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    list_price_usd: Decimal
    cache_hits: int
    errors: int
    unpriced_calls: int
    estimated_calls: int = 0


@dataclass(frozen=True)
class RunTotals:
    """What a set of calls (one graph run) used and cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    list_price_usd: float = 0.0
    estimated_calls: int = 0  # calls whose tokens were counted locally (no usage reported)


RETRY_WHILE_IN_FLIGHT_S = budgets.RETRY_WHILE_IN_FLIGHT_S

BUSY_TIMEOUT_S = 30.0
"""How long a SQLite ledger waits for another connection's write lock before giving up (then a
call's budget check fails closed: `BudgetUnavailableError`)."""


def _sqlite_pragmas(busy_timeout_s: float) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL: readers never block the writer; a committed transaction is in the WAL file
        # before commit returns, so it survives a process kill (synchronous=NORMAL only risks
        # an OS crash).
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # several processes share one ledger file
        cur.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        cur.close()

    return on_connect


_DELETE_RESERVATION = quota_reservations.delete().where(
    quota_reservations.c.request_id == sa.bindparam("rid")
)


class Ledger:
    """The durable usage ledger: SQLite file by default, Postgres when the URL says so."""

    def __init__(self, url: str, *, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.url = _normalise_url(url)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": busy_timeout_s, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(self.url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas(busy_timeout_s))
        else:
            sa.event.listen(
                self.engine,
                "connect",
                lambda c, _r: c.cursor().execute("SET TIME ZONE 'UTC'"),
            )
        create_schema(self.engine)

    def record(self, row: LedgerRow, *, reserved: bool = True) -> None:
        """Insert one row and commit; returns only once the row is durable. `reserved=False`:
        the call held no reservation (no budget applied), so there is none to delete."""
        values = {
            "ts": (row.ts or datetime.now(UTC)).replace(tzinfo=None),
            "request_id": row.request_id,
            "user_id": row.user_id,
            "service": row.service,
            "model": row.model,
            "served_model": row.served_model,
            "route": row.route,
            "input_tokens": row.input_tokens,
            "cached_input_tokens": row.cached_input_tokens,
            "output_tokens": row.output_tokens,
            "reasoning_tokens": row.reasoning_tokens,
            "cost_nanousd": row.cost_nanousd,
            "list_price_nanousd": row.list_price_nanousd,
            "unpriced": row.unpriced,
            "latency_ms": row.latency_ms,
            "cache_hit": row.cache_hit,
            "error": row.error,
            "estimated": row.estimated,
        }
        with self.engine.begin() as conn:  # the row replaces the call's reservation atomically
            conn.execute(llm_calls.insert(), values)
            if reserved:
                conn.execute(_DELETE_RESERVATION, {"rid": row.request_id})

    def reserve(
        self,
        *,
        request_id: str,
        user_id: str,
        amount_nanousd: int,
        budget_nanousd: int,
        ttl_s: float,
        service: str | None = None,
    ) -> None:
        """Hold `amount` of the user's daily USD budget `budget_nanousd` for one call, or raise
        `QuotaExceededError` (the original per-user quota; calls use `reserve_call`)."""
        budget = Budget("user", "day", "usd", budget_nanousd, user_id, None, budgets.ENVIRONMENT)
        self.reserve_call(
            request_id=request_id,
            user_id=user_id,
            service=service,
            amount_nanousd=amount_nanousd,
            amount_tokens=0,
            applying=[budget],
            ttl_s=ttl_s,
        )

    def applicable_budgets(
        self, user_id: str | None, service: str | None, env_limit_nanousd: int | None = None
    ) -> list[Budget]:
        """Every budget a call of this user on this service counts against (stored ones and
        the environment's per-user daily default); `BudgetUnavailableError` if unreadable."""
        try:
            return budgets.applicable_budgets(self.engine, user_id, service, env_limit_nanousd)
        except sa.exc.SQLAlchemyError as exc:
            raise budgets.unavailable(exc) from exc

    def reserve_call(
        self,
        *,
        request_id: str,
        user_id: str | None,
        service: str | None,
        amount_nanousd: int,
        amount_tokens: int,
        applying: Sequence[Budget],
        ttl_s: float,
    ) -> None:
        """Hold one call's worst case (nano-USD and tokens) against every budget in
        `applying` in one transaction, or raise `QuotaExceededError` naming the budget."""
        budgets.reserve(
            self.engine,
            request_id=request_id,
            user_id=user_id,
            service=service,
            amount_nanousd=amount_nanousd,
            amount_tokens=amount_tokens,
            applying=applying,
            ttl_s=ttl_s,
        )

    def held_nanousd(self, user_id: str) -> int:
        """Budget held right now by the user's calls in flight."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.connect() as conn:
            return budgets.held(conn, Budget("user", "day", "usd", 0, user_id), now)

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        """Raw rows, newest last (for tests, exports and the dashboard)."""
        q = sa.select(llm_calls).where(*self._where(**filters)).order_by(llm_calls.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    @staticmethod
    def _where(
        user_id: str | None = None,
        service: str | None = None,
        model: str | None = None,
        since: datetime | date | None = None,
    ) -> list[sa.ColumnElement[bool]]:
        conds: list[sa.ColumnElement[bool]] = []
        if user_id is not None:
            conds.append(llm_calls.c.user_id == user_id)
        if service is not None:
            conds.append(llm_calls.c.service == service)
        if model is not None:
            conds.append(llm_calls.c.model == model)
        if since is not None:
            if not isinstance(since, datetime):
                since = datetime(since.year, since.month, since.day)
            if since.tzinfo is not None:
                since = since.astimezone(UTC).replace(tzinfo=None)
            conds.append(llm_calls.c.ts >= since)
        return conds

    def report(
        self,
        *,
        user_id: str | None = None,
        service: str | None = None,
        since: datetime | date | None = None,
        group_by: GroupBy | Sequence[GroupBy] = "model",
    ) -> list[UsageRow]:
        keys = [group_by] if isinstance(group_by, str) else list(group_by)
        c = llm_calls.c
        columns = {
            "model": c.model,
            "service": c.service,
            "user": c.user_id,
            "route": c.route,
            "day": sa.func.date(c.ts),
        }
        unknown = [k for k in keys if k not in columns]
        if unknown:
            raise ValueError(f"cannot group by {unknown}; choose from {sorted(columns)}")
        group_cols = [columns[k].label(k) for k in keys]

        def total(col: Any) -> Any:
            return sa.func.coalesce(sa.func.sum(col), 0)

        q = (
            sa.select(
                *group_cols,
                sa.func.count().label("calls"),
                total(c.input_tokens).label("input_tokens"),
                total(c.cached_input_tokens).label("cached_input_tokens"),
                total(c.output_tokens).label("output_tokens"),
                total(c.reasoning_tokens).label("reasoning_tokens"),
                total(c.cost_nanousd).label("cost"),
                total(c.list_price_nanousd).label("list_price"),
                total(sa.case((c.cache_hit, 1), else_=0)).label("cache_hits"),
                total(sa.case((c.error.is_not(None), 1), else_=0)).label("errors"),
                total(sa.case((c.unpriced, 1), else_=0)).label("unpriced_calls"),
                total(sa.case((c.estimated, 1), else_=0)).label("estimated_calls"),
            )
            .where(*self._where(user_id=user_id, service=service, since=since))
            .group_by(*[columns[k] for k in keys])
            .order_by(sa.desc("cost"), *[columns[k] for k in keys])
        )
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                m = dict(r._mapping)
                cost, list_price = int(m.pop("cost")), int(m.pop("list_price"))
                if "day" in m and m["day"] is not None:
                    m["day"] = str(m["day"])
                out.append(
                    UsageRow(
                        **{k: (int(v) if k not in keys else v) for k, v in m.items()},
                        cost_usd=cost * NANO,
                        list_price_usd=list_price * NANO,
                    )
                )
        return out

    def totals(self, request_ids: Sequence[str]) -> RunTotals:
        """Tokens and dollars of exactly these calls (a run's model calls), from their rows."""
        if not request_ids:
            return RunTotals()
        c = llm_calls.c
        q = sa.select(
            sa.func.coalesce(sa.func.sum(c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.cost_nanousd), 0),
            sa.func.coalesce(sa.func.sum(c.list_price_nanousd), 0),
            sa.func.coalesce(sa.func.sum(sa.case((c.estimated, 1), else_=0)), 0),
        ).where(c.request_id.in_(list(request_ids)))
        with self.engine.connect() as conn:
            inp, out, cost, listed, estimated = conn.execute(q).one()
        return RunTotals(
            input_tokens=int(inp),
            output_tokens=int(out),
            cost_usd=int(cost) / 1e9,
            list_price_usd=int(listed) / 1e9,
            estimated_calls=int(estimated),
        )

    def dispose(self) -> None:
        self.engine.dispose()


def _normalise_url(url: str) -> str:
    """Accept the URLs users write (`postgres://`, `postgresql://`) and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_ledgers: ProcessCache[str, Ledger] = ProcessCache("ledgers", on_evict=Ledger.dispose)


def get_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger for the configured URL (one engine and pool per URL per process)."""
    url = (settings or get_settings()).resolved_database_url
    return _ledgers.get(url, lambda: Ledger(url))


def usage_report(
    user_id: str | None = None,
    service: str | None = None,
    since: datetime | date | None = None,
    *,
    group_by: GroupBy | Sequence[GroupBy] = "model",
    settings: Settings | None = None,
) -> list[UsageRow]:
    """Aggregated usage and spend from the ledger, most expensive first."""
    return get_ledger(settings).report(
        user_id=user_id, service=service, since=since, group_by=group_by
    )
