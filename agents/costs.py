"""Token and dollar accounting: pricing, the durable usage ledger, and the LangChain callback.

Money is exact: catalog rates have at most 3 decimals per 1M tokens, i.e. a whole number of
nano-dollars per token, so every cost is an integer number of nano-dollars (stored as such; SQL
sums stay exact) and surfaced as `Decimal`.

One ledger row per model call. The callback writes it synchronously and commits before it
returns, so a row acknowledged to the caller survives a `kill -9` (SQLite WAL; Postgres commit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from pydantic import BaseModel

from agents.limits import (
    QuotaExceededError,
    seconds_to_next_window,
    window_start,
    worst_case_tokens,
)
from agents.models import ModelConfig, get_model_config
from agents.settings import Settings, get_settings

log = logging.getLogger(__name__)

NANO = Decimal("1e-9")
GroupBy = Literal["model", "service", "user", "day", "route"]


class UnpricedModelError(ValueError):
    """The model is in the catalog but has no price, so its cost cannot be computed."""


class TokenUsage(BaseModel):
    """Token counts of one call, normalised from LangChain's `usage_metadata`."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_usage_metadata(cls, usage: Mapping[str, Any], *, check: bool = True) -> TokenUsage:
        inp = usage.get("input_token_details") or {}
        out = usage.get("output_token_details") or {}
        u = cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            cached_input_tokens=int(inp.get("cache_read") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            reasoning_tokens=int(out.get("reasoning") or 0),
        )
        if check:
            u.check()
        return u

    def check(self) -> None:
        """Reject usage that cannot be priced consistently (details are subsets of totals)."""
        counts = (
            self.input_tokens,
            self.cached_input_tokens,
            self.output_tokens,
            self.reasoning_tokens,
        )
        if min(counts) < 0:
            raise ValueError(f"negative token count in usage: {self}")
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError("cached input tokens exceed input tokens (they are a subset)")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning tokens exceed output tokens (they are a subset)")


def _nano_rate(rate: Decimal) -> int:
    return int(rate * 1000)  # USD per 1M tokens -> nano-USD per token (exact, see catalog)


def cost_nanousd(model: ModelConfig, usage: TokenUsage) -> int:
    """Exact cost in nano-dollars. Reasoning tokens are inside output tokens: counted once."""
    if model.input is None or model.output is None:
        raise UnpricedModelError(f"model {model.id!r} has no price in the catalog")
    cached_rate = model.cached_input_rate
    assert cached_rate is not None
    uncached = usage.input_tokens - usage.cached_input_tokens
    return (
        uncached * _nano_rate(model.input)
        + usage.cached_input_tokens * _nano_rate(cached_rate)
        + usage.output_tokens * _nano_rate(model.output)
    )


def price_usage(model_id: str, usage_metadata: Mapping[str, Any] | TokenUsage) -> Decimal:
    """USD cost of one call's usage at catalog prices (cached input at the cached rate).

    Raises `UnknownModelError` for a model not in the catalog and `UnpricedModelError` for one
    without a price: never a silent $0.
    """
    usage = (
        usage_metadata
        if isinstance(usage_metadata, TokenUsage)
        else TokenUsage.from_usage_metadata(usage_metadata)
    )
    return cost_nanousd(get_model_config(model_id), usage) * NANO


# ---------------------------------------------------------------------------------------------
# The ledger
# ---------------------------------------------------------------------------------------------

_meta = sa.MetaData()
llm_calls = sa.Table(
    "llm_calls",
    _meta,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("ts", sa.DateTime(), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(256), index=True),
    sa.Column("service", sa.String(64), index=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("served_model", sa.String(256)),
    sa.Column("route", sa.String(16)),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("cost_nanousd", sa.BigInteger()),  # NULL = unpriced
    sa.Column("list_price_nanousd", sa.BigInteger()),
    sa.Column("unpriced", sa.Boolean(), nullable=False, default=False),
    sa.Column("latency_ms", sa.Float()),
    sa.Column("cache_hit", sa.Boolean(), nullable=False, default=False),
    sa.Column("error", sa.Text()),
)

quota_reservations = sa.Table(
    "quota_reservations",
    _meta,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(256), nullable=False, index=True),
    sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
)


@dataclass(frozen=True)
class LedgerRow:
    """One model call as recorded."""

    request_id: str
    user_id: str | None
    service: str | None
    model: str
    served_model: str | None
    route: str | None
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_nanousd: int | None
    list_price_nanousd: int | None
    latency_ms: float | None
    cache_hit: bool
    error: str | None
    ts: datetime | None = None

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


RETRY_WHILE_IN_FLIGHT_S = 2
"""Retry-After when only calls in flight hold the budget: they settle within seconds."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; a committed transaction is in the WAL file before
    # commit returns, so it survives a process kill (synchronous=NORMAL only risks an OS crash).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")  # several processes share one ledger file
    cur.close()


class Ledger:
    """The durable usage ledger: SQLite file by default, Postgres when the URL says so."""

    def __init__(self, url: str):
        self.url = _normalise_url(url)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(self.url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            sa.event.listen(
                self.engine,
                "connect",
                lambda c, _r: c.cursor().execute("SET TIME ZONE 'UTC'"),
            )
        _meta.create_all(self.engine, checkfirst=True)

    def record(self, row: LedgerRow) -> None:
        """Insert one row and commit; returns only once the row is durable."""
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
        }
        with self.engine.begin() as conn:  # the row replaces the call's reservation atomically
            conn.execute(llm_calls.insert(), values)
            conn.execute(
                quota_reservations.delete().where(quota_reservations.c.request_id == row.request_id)
            )

    def reserve(
        self,
        *,
        request_id: str,
        user_id: str,
        amount_nanousd: int,
        budget_nanousd: int,
        ttl_s: float,
    ) -> None:
        """Hold `amount` of the user's budget for one call, or raise `QuotaExceededError`.

        Check and insert run under a lock held to commit (SQLite: BEGIN IMMEDIATE, the
        database's write lock; Postgres: a transaction-scoped advisory lock per user), so two
        concurrent calls can never both fit into the same remaining budget.
        """
        now = datetime.now(UTC).replace(tzinfo=None)
        r = quota_reservations.c
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"quota:{user_id}"},
                )
            conn.execute(quota_reservations.delete().where(r.expires_at < now))
            spent = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(llm_calls.c.cost_nanousd), 0)).where(
                    llm_calls.c.user_id == user_id, llm_calls.c.ts >= window_start(now)
                )
            ).scalar_one()
            held = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(r.amount_nanousd), 0)).where(
                    r.user_id == user_id
                )
            ).scalar_one()
            spent, held = int(spent), int(held)
            if spent + held + amount_nanousd > budget_nanousd:
                conn.rollback()
                settles = spent + amount_nanousd <= budget_nanousd
                raise QuotaExceededError(
                    user_id=user_id,
                    budget_nanousd=budget_nanousd,
                    spent_nanousd=spent,
                    held_nanousd=held,
                    needed_nanousd=amount_nanousd,
                    retry_after_s=RETRY_WHILE_IN_FLIGHT_S if settles else seconds_to_next_window(),
                )
            conn.execute(
                quota_reservations.insert(),
                {
                    "request_id": request_id,
                    "user_id": user_id,
                    "amount_nanousd": amount_nanousd,
                    "expires_at": now + timedelta(seconds=ttl_s),
                },
            )
            conn.commit()

    def held_nanousd(self, user_id: str) -> int:
        """Budget held right now by the user's calls in flight."""
        now = datetime.now(UTC).replace(tzinfo=None)
        r = quota_reservations.c
        q = sa.select(sa.func.coalesce(sa.func.sum(r.amount_nanousd), 0)).where(
            r.user_id == user_id, r.expires_at >= now
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

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

    def dispose(self) -> None:
        self.engine.dispose()


def _normalise_url(url: str) -> str:
    """Accept the URLs users write (`postgres://`, `postgresql://`) and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_ledgers: dict[str, Ledger] = {}
_ledgers_lock = threading.Lock()


def get_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger for the configured URL (one engine and pool per URL per process)."""
    url = (settings or get_settings()).resolved_database_url
    with _ledgers_lock:
        ledger = _ledgers.get(url)
        if ledger is None:
            ledger = _ledgers[url] = Ledger(url)
        return ledger


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


# ---------------------------------------------------------------------------------------------
# The callback
# ---------------------------------------------------------------------------------------------


class CostCallbackHandler(BaseCallbackHandler):
    """Records every model call of one chat model into the ledger.

    One handler per (service, model, user) model instance, so what the call was for never
    depends on metadata a caller could overwrite. `run_inline` keeps it on the calling thread
    or event loop: the write is ~0.1 ms and ordering per run matters more than a thread hop.
    """

    run_inline = True
    # Lets QuotaExceededError from on_chat_model_start stop the call before it is sent; ledger
    # write failures never escape (`_write` logs them), so nothing else is raised.
    raise_error = True

    def __init__(
        self,
        *,
        ledger: Ledger,
        model: ModelConfig,
        service: str | None,
        user_id: str | None,
        served_model: str,
        route: str,
        billed: bool = True,
        budget_nanousd: int | None = None,
        reservation_ttl_s: float = 600.0,
    ):
        self.ledger = ledger
        self.model = model
        self.service = service
        self.user_id = user_id
        self.served_model = served_model
        self.route = route
        self.billed = billed
        self.budget_nanousd = budget_nanousd
        self.reservation_ttl_s = reservation_ttl_s
        self._starts: dict[UUID, float] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        if self.budget_nanousd is not None and self.billed and self.user_id is not None:
            prompt, output = worst_case_tokens(
                self.model, messages[0] if messages else [], kwargs.get("invocation_params")
            )
            worst = cost_nanousd(self.model, TokenUsage(input_tokens=prompt, output_tokens=output))
            self.ledger.reserve(
                request_id=str(run_id),
                user_id=self.user_id,
                amount_nanousd=worst,
                budget_nanousd=self.budget_nanousd,
                ttl_s=self.reservation_ttl_s,
            )
        with self._lock:
            self._starts[run_id] = time.perf_counter()

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any
    ) -> None:
        with self._lock:
            self._starts[run_id] = time.perf_counter()

    def _latency_ms(self, run_id: UUID) -> float | None:
        with self._lock:
            start = self._starts.pop(run_id, None)
        return None if start is None else (time.perf_counter() - start) * 1000

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._on_end(response, run_id)
        except Exception:  # raise_error is on (for the quota): a paid call must never fail here
            log.exception("cost callback failed on a finished call %s", run_id)

    def _on_end(self, response: LLMResult, run_id: UUID) -> None:
        latency = self._latency_ms(run_id)
        usage_md = _first_usage(response)
        cache_hit = usage_md is not None and usage_md.get("total_cost") == 0
        usage = TokenUsage()
        error = None
        if usage_md is not None and not cache_hit:
            usage = TokenUsage.from_usage_metadata(usage_md, check=False)
        cost: int | None
        list_price: int | None
        if cache_hit:
            cost = list_price = 0  # served from LangChain's cache: no tokens were bought
        elif usage_md is None:
            cost = list_price = None  # the endpoint reported no usage: unpriced, not $0
        else:
            try:
                usage.check()
                list_price = cost_nanousd(self.model, usage)
            except ValueError as e:  # unpriced model or inconsistent usage: keep the row
                list_price = None
                error = None if isinstance(e, UnpricedModelError) else f"usage: {e}"
            cost = list_price if self.billed or list_price is None else 0
        self._write(run_id, usage, cost, list_price, latency, cache_hit, error)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        latency = self._latency_ms(run_id)
        # A failed call bills nothing we can see; the row keeps the attempt and the reason.
        self._write(run_id, TokenUsage(), 0, 0, latency, False, _describe(error))

    def _write(
        self,
        run_id: UUID,
        usage: TokenUsage,
        cost: int | None,
        list_price: int | None,
        latency: float | None,
        cache_hit: bool,
        error: str | None,
    ) -> None:
        row = LedgerRow(
            request_id=str(run_id),
            user_id=self.user_id,
            service=self.service,
            model=self.model.id,
            served_model=self.served_model,
            route=self.route,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_nanousd=cost,
            list_price_nanousd=list_price,
            latency_ms=latency,
            cache_hit=cache_hit,
            error=error,
        )
        try:
            self.ledger.record(row)
        except Exception:
            # Never fail the user's (already paid) call; keep the row in the log to replay.
            log.exception("ledger write failed; row: %r", row)


def _first_usage(response: LLMResult) -> Mapping[str, Any] | None:
    """Usage of one API call: the first generation carrying it (n>1 repeats the same total)."""
    for gens in response.generations:
        for gen in gens:
            if isinstance(gen, ChatGeneration):
                um = getattr(gen.message, "usage_metadata", None)
                if um:
                    return um
    return None


def _describe(error: BaseException) -> str:
    """Error text for the ledger: type and message, never request headers (no keys)."""
    text = f"{type(error).__name__}: {error}"
    return text[:500]
