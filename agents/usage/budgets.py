"""Budgets stored in the ledger database, and the one reservation that covers all of them.

A budget limits what calls spend in a UTC period: scope `user`, `service`, `user_service` (one
user on one service) or `global` (everyone); period `day` or `month`; unit `usd` (billed cost,
nano-USD in the database) or `tokens` (input + output tokens, every route including the
embedded model). Admins set them at runtime (REST `PUT /v1/admin/budgets`, CLI
`quant-genai budget set`). The environment's budgets (`QUANT_GENAI_DAILY_BUDGET_USD`,
`QUANT_GENAI_USER_BUDGETS_USD`) are per-user daily USD budgets, the defaults: a stored budget
for the same scope, user, period and unit overrides them.

`reserve` holds a call's worst case against every budget that applies to it in one
transaction, under SQLite's write lock (BEGIN IMMEDIATE) or one Postgres advisory lock per
budget, taken in the order of their lock ids (so two calls never wait on each other's locks:
no deadlock). Each budget must satisfy spent-in-period + held + this call <= limit, or the call
is refused with `QuotaExceededError` naming the budget. When the database cannot answer
(locked past its busy timeout, unreachable) the call is refused with `BudgetUnavailableError`:
budgets fail closed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from agents.llm.catalog import SERVICES
from agents.registry import ProcessCache
from agents.usage.limits import (
    BudgetUnavailableError,
    QuotaExceededError,
    amount_text,
    budget_label,
)
from agents.usage.schema import budgets, llm_calls, quota_reservations

SCOPES = ("user", "service", "user_service", "global")
PERIODS = ("day", "month")
UNITS = ("usd", "tokens")
BUDGET_SERVICES = (*SERVICES, "embeddings")
"""Services a budget may name: the four graphs and the embedding calls' rows."""

RETRY_WHILE_IN_FLIGHT_S = 2
"""Retry-After when only calls in flight hold the budget: they settle within seconds."""

ENVIRONMENT = "environment"
STORED = "stored"


class BudgetError(ValueError):
    """A budget given with a bad scope, period, unit, user, service or limit (HTTP 400)."""

    def __init__(self, message: str, *, allowed: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.allowed = list(allowed) if allowed is not None else None


@dataclass(frozen=True)
class Budget:
    """One limit: `limit` is nano-USD for unit `usd`, tokens for unit `tokens`."""

    scope: str
    period: str
    unit: str
    limit: int
    user_id: str | None = None
    service: str | None = None
    source: str = STORED

    @property
    def key(self) -> str:
        """Names the budget uniquely (its lock and its alerts are keyed by it)."""
        parts = (self.scope, self.user_id or "", self.service or "", self.period, self.unit)
        return "|".join(parts)

    @property
    def lock_id(self) -> int:
        """A signed 64-bit id for Postgres' advisory lock, the same in every process."""
        digest = hashlib.blake2b(self.key.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    @property
    def label(self) -> str:
        return budget_label(self.scope, self.user_id, self.service)

    def amount(self, value: int) -> str:
        return amount_text(self.unit, value)

    def as_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "user_id": self.user_id,
            "service": self.service,
            "period": self.period,
            "unit": self.unit,
            "limit": to_unit(self.unit, self.limit),
            "source": self.source,
        }


def to_unit(unit: str, amount: int) -> float | int:
    """A stored amount as the API shows it: USD as dollars, tokens as a count."""
    return round(amount / 1e9, 9) if unit == "usd" else amount


def _choice(what: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise BudgetError(
            f"unknown {what} {value!r}; {what}s: {', '.join(allowed)}", allowed=allowed
        )
    return value


MAX_LIMIT = 2**62
"""The largest limit stored (tokens, or nano-USD: about $4.6 billion)."""


def check_name(what: str, value: str | None) -> str | None:
    """A user id or service as stored (stripped; None when blank), or `BudgetError`."""
    value = (value or "").strip() or None
    if value is not None and (
        len(value) > 256 or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
    ):
        raise BudgetError(f"a {what} is at most 256 characters, without control characters")
    return value


def make_budget(
    *,
    scope: str,
    period: str,
    unit: str,
    limit: float,
    user_id: str | None = None,
    service: str | None = None,
) -> Budget:
    """A validated budget; `limit` in USD (unit usd) or tokens. Raises `BudgetError`."""
    _choice("scope", scope, SCOPES)
    _choice("period", period, PERIODS)
    _choice("unit", unit, UNITS)
    user_id = check_name("user id", user_id)
    service = check_name("service", service)
    needs_user = scope in ("user", "user_service")
    needs_service = scope in ("service", "user_service")
    if needs_user != (user_id is not None):
        raise BudgetError(
            f"scope {scope!r} {'needs' if needs_user else 'takes no'} user id"
            " (user and user_service budgets name a user; service and global ones do not)"
        )
    if needs_service != (service is not None):
        raise BudgetError(
            f"scope {scope!r} {'needs' if needs_service else 'takes no'} service"
            " (service and user_service budgets name a service; user and global ones do not)"
        )
    if service is not None:
        _choice("service", service, BUDGET_SERVICES)
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit):
        raise BudgetError(f"limit must be a finite number; got {limit!r}")
    if limit < 0:
        raise BudgetError(f"limit must be zero or more (0 blocks every call); got {limit}")
    if limit > (MAX_LIMIT if unit == "tokens" else MAX_LIMIT / 1e9):
        raise BudgetError(f"limit {limit} is too large")
    if unit == "tokens" and limit != int(limit):
        raise BudgetError(f"a token limit is a whole number of tokens; got {limit}")
    amount = int(limit) if unit == "tokens" else round(limit * 1e9)
    return Budget(scope, period, unit, amount, user_id, service)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def period_start(period: str, now: datetime | None = None) -> datetime:
    """Start of the UTC day or month containing `now` (naive UTC like the ledger's `ts`)."""
    now = now or _now()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: str, now: datetime | None = None) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def seconds_to_reset(period: str, now: datetime | None = None) -> int:
    now = now or _now()
    return max(1, math.ceil((period_end(period, now) - now).total_seconds()))


def _from_row(m: Any) -> Budget:
    return Budget(
        scope=m.scope,
        period=m.period,
        unit=m.unit,
        limit=int(m.limit_amount),
        user_id=m.user_id or None,
        service=m.service or None,
    )


def _env_default(
    user_id: str | None, env_limit_nanousd: int | None, found: list[Budget]
) -> list[Budget]:
    """The environment's per-user daily USD budget, unless a stored one overrides it."""
    if user_id is None or env_limit_nanousd is None:
        return []
    env = Budget("user", "day", "usd", env_limit_nanousd, user_id, None, ENVIRONMENT)
    return [] if any(b.key == env.key for b in found) else [env]


BUDGETS_TTL_S = 1.0
"""How long a process reuses its copy of the budgets table: a budget set or removed by another
process (a CLI, another worker) applies to this one's calls within this many seconds; in the
process that set it, at once."""


class _Snapshot:
    """One process's copy of one database's stored budgets, reloaded when older than the TTL
    (so a call that no budget applies to costs no query)."""

    def __init__(self) -> None:
        self.loaded = -math.inf
        self.items: tuple[Budget, ...] = ()
        self.lock = threading.Lock()

    def get(self, engine: sa.Engine) -> tuple[Budget, ...]:
        if time.monotonic() - self.loaded > BUDGETS_TTL_S:
            with self.lock:
                if time.monotonic() - self.loaded > BUDGETS_TTL_S:
                    with engine.connect() as conn:
                        rows = conn.execute(sa.select(budgets).order_by(budgets.c.id))
                        self.items = tuple(_from_row(m) for m in rows)
                    self.loaded = time.monotonic()
        return self.items


_snapshots: ProcessCache[str, _Snapshot] = ProcessCache("stored budgets")


def _snapshot(engine: sa.Engine) -> _Snapshot:
    return _snapshots.get(engine.url.render_as_string(hide_password=False), _Snapshot)


def _applies(b: Budget, user_id: str | None, service: str | None) -> bool:
    if b.scope == "global":
        return True
    if b.scope == "user":
        return b.user_id == user_id
    if b.scope == "service":
        return b.service == service
    return b.user_id == user_id and b.service == service


def applicable_budgets(
    engine: sa.Engine,
    user_id: str | None,
    service: str | None,
    env_limit_nanousd: int | None = None,
) -> list[Budget]:
    """Every budget a call of `user_id` on `service` counts against (stored ones, at most
    `BUDGETS_TTL_S` old, and the environment's per-user daily default)."""
    found = [b for b in _snapshot(engine).get(engine) if _applies(b, user_id, service)]
    return found + _env_default(user_id, env_limit_nanousd, found)


def budgets_of_user(
    engine: sa.Engine, user_id: str, env_limit_nanousd: int | None = None
) -> list[Budget]:
    """The budgets a user's calls may count against on any service (theirs, their services',
    every service budget, the global ones), for `GET /v1/budgets`."""
    b = budgets.c
    q = sa.select(budgets).where(sa.or_(b.scope.in_(("global", "service")), b.user_id == user_id))
    with engine.connect() as conn:
        found = [_from_row(m) for m in conn.execute(q.order_by(b.id))]
    return found + _env_default(user_id, env_limit_nanousd, found)


def list_budgets(
    engine: sa.Engine, *, user_id: str | None = None, service: str | None = None
) -> list[Budget]:
    """Stored budgets (optionally only those naming this user or service), oldest first."""
    b = budgets.c
    q = sa.select(budgets).order_by(b.id)
    if user_id is not None:
        q = q.where(b.user_id == user_id)
    if service is not None:
        q = q.where(b.service == service)
    with engine.connect() as conn:
        return [_from_row(m) for m in conn.execute(q)]


def set_budget(engine: sa.Engine, budget: Budget, *, by: str | None = None) -> Budget:
    """Create or replace the stored budget of that scope, user, service, period and unit."""
    values = {
        "scope": budget.scope,
        "user_id": budget.user_id or "",
        "service": budget.service or "",
        "period": budget.period,
        "unit": budget.unit,
        "limit_amount": budget.limit,
        "updated_at": _now(),
        "updated_by": by,
    }
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(budgets).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "user_id", "service", "period", "unit"],
        set_={k: stmt.excluded[k] for k in ("limit_amount", "updated_at", "updated_by")},
    )
    with engine.begin() as conn:
        conn.execute(stmt)
    _snapshot(engine).loaded = -math.inf
    return dataclasses.replace(budget, source=STORED)


def delete_budget(engine: sa.Engine, budget: Budget) -> bool:
    """Remove a stored budget (its limit is ignored); False when there was none."""
    b = budgets.c
    with engine.begin() as conn:
        res = conn.execute(
            budgets.delete().where(
                b.scope == budget.scope,
                b.user_id == (budget.user_id or ""),
                b.service == (budget.service or ""),
                b.period == budget.period,
                b.unit == budget.unit,
            )
        )
    _snapshot(engine).loaded = -math.inf
    return bool(res.rowcount)


@functools.cache
def _usage_stmt(unit: str, by_user: bool, by_service: bool) -> sa.Select[Any]:
    """SELECT (spent in the period), (held by calls in flight) for one shape of budget: one
    statement, built once (the bound values are the budget's and the period's)."""
    c, r = llm_calls.c, quota_reservations.c
    spent_amount = c.cost_nanousd if unit == "usd" else c.input_tokens + c.output_tokens
    held_amount = r.amount_nanousd if unit == "usd" else r.amount_tokens
    sc = [c.ts >= sa.bindparam("start")]
    hc = [r.expires_at >= sa.bindparam("now")]
    if by_user:
        sc.append(c.user_id == sa.bindparam("spent_user"))
        hc.append(r.user_id == sa.bindparam("held_user"))
    if by_service:
        sc.append(c.service == sa.bindparam("spent_service"))
        hc.append(r.service == sa.bindparam("held_service"))

    def total(amount: Any, conds: list[Any], table: sa.Table) -> Any:
        q = sa.select(sa.func.coalesce(sa.func.sum(amount), 0)).select_from(table)
        return q.where(*conds).scalar_subquery()

    return sa.select(
        total(spent_amount, sc, llm_calls).label("spent"),
        total(held_amount, hc, quota_reservations).label("held"),
    )


def spent_and_held(conn: sa.Connection, budget: Budget, now: datetime) -> tuple[int, int]:
    """What the budget's calls spent in its current period and what calls in flight hold of
    it (nano-USD or tokens). ONE statement, so one snapshot: a call settling meanwhile (its
    reservation replaced by its row in another transaction) is counted exactly once; two
    statements under Postgres' READ COMMITTED could see it in neither and let one call too
    many in."""
    stmt = _usage_stmt(budget.unit, budget.user_id is not None, budget.service is not None)
    params = {
        "start": period_start(budget.period, now),
        "now": now,
        "spent_user": budget.user_id,
        "held_user": budget.user_id,
        "spent_service": budget.service,
        "held_service": budget.service,
    }
    row = conn.execute(stmt, params).one()
    return int(row[0]), int(row[1])


def spent(conn: sa.Connection, budget: Budget, now: datetime) -> int:
    """What the budget's calls spent in its current period (nano-USD or tokens)."""
    return spent_and_held(conn, budget, now)[0]


def held(conn: sa.Connection, budget: Budget, now: datetime) -> int:
    """What calls in flight hold of the budget (their unexpired worst cases)."""
    return spent_and_held(conn, budget, now)[1]


_r = quota_reservations.c
_DELETE_EXPIRED = quota_reservations.delete().where(
    _r.request_id.in_(
        sa.select(_r.request_id)
        .where(_r.expires_at < sa.bindparam("now"))
        .with_for_update(skip_locked=True)
    )
)
"""Expired reservations (their process died) go, skipping rows another transaction is
removing (Postgres), so two cleanups never wait on each other."""


def _refusal(b: Budget, spent_: int, held_: int, need: int, now: datetime) -> QuotaExceededError:
    settles = spent_ + need <= b.limit
    return QuotaExceededError(
        user_id=b.user_id,
        budget_nanousd=b.limit,
        spent_nanousd=spent_,
        held_nanousd=held_,
        needed_nanousd=need,
        retry_after_s=RETRY_WHILE_IN_FLIGHT_S if settles else seconds_to_reset(b.period, now),
        scope=b.scope,
        period=b.period,
        unit=b.unit,
        service=b.service,
    )


def _lock(conn: sa.Connection, applying: Sequence[Budget]) -> None:
    """SQLite: the database's write lock. Postgres: each budget's advisory lock, in id order."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    for lock_id in sorted({b.lock_id for b in applying}):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def reserve(
    engine: sa.Engine,
    *,
    request_id: str,
    user_id: str | None,
    service: str | None,
    amount_nanousd: int,
    amount_tokens: int,
    applying: Sequence[Budget],
    ttl_s: float,
) -> None:
    """Hold one call's worst case against every budget in `applying`, or raise.

    `QuotaExceededError` names the budget that refused (of several, the one that frees last);
    `BudgetUnavailableError` when the database could not answer. Nothing is held on refusal.
    """
    if not applying:
        return
    now = _now()
    try:
        with engine.connect() as conn:
            _lock(conn, applying)
            conn.execute(_DELETE_EXPIRED, {"now": now})
            refusals = []
            for b in applying:
                need = amount_nanousd if b.unit == "usd" else amount_tokens
                s, h = spent_and_held(conn, b, now)
                if s + h + need > b.limit:
                    refusals.append(_refusal(b, s, h, need, now))
            if refusals:
                conn.rollback()
                raise max(refusals, key=lambda e: e.retry_after_s)
            values = {
                "request_id": request_id,
                "user_id": user_id or "",
                "service": service,
                "amount_nanousd": amount_nanousd,
                "amount_tokens": amount_tokens,
                "expires_at": now + timedelta(seconds=ttl_s),
            }
            conn.execute(quota_reservations.insert(), values)
            conn.commit()
    except sa.exc.SQLAlchemyError as exc:
        raise unavailable(exc) from exc


def unavailable(exc: BaseException) -> BudgetUnavailableError:
    """The fail-closed error for a database that could not check the budgets."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    return BudgetUnavailableError(
        f"the budgets could not be checked, so the call was not sent (ledger database: "
        f"{type(exc).__name__}: {reason}); retry shortly"
    )


def status(engine: sa.Engine, found: Sequence[Budget]) -> list[dict[str, Any]]:
    """Each budget with what its period spent, what calls in flight hold, what remains."""
    now = _now()
    out = []
    with engine.connect() as conn:
        for b in found:
            s, h = spent_and_held(conn, b, now)
            out.append(
                {
                    **b.as_json(),
                    "spent": to_unit(b.unit, s),
                    "held": to_unit(b.unit, h),
                    "remaining": to_unit(b.unit, max(b.limit - s - h, 0)),
                    "period_start": period_start(b.period, now).isoformat(),
                    "resets_at": period_end(b.period, now).isoformat(),
                }
            )
    return out
