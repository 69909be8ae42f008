"""Where the response cache keeps its entries (`agents.usage.cache` is the `BaseCache`).

Redis when `REDIS_URL` is set (values with a TTL, one bounded socket timeout and no retries),
otherwise SQL beside the ledger: a `response_cache` table on the ledger's engine when it is
Postgres, a SQLite file of its own next to the ledger's file otherwise (the cache's writes never
hold the write lock a ledger row waits for). A miss costs one read and one upsert (~0.1 ms each
on SQLite); a background writer thread was measured slower (GIL hand-offs: +1.8 ms p50 against
+0.7 ms, bench/cache.py).

A store that fails (Redis down or hung, a locked database) is a miss and one WARNING per outage,
never a failed or hung call (`guarded`): after a failure it is skipped for `_BACKOFF_S` seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.ledger import get_ledger

log = logging.getLogger(__name__)

_BACKOFF_S = 10.0
"""After a store failure, lookups and updates skip it this long (misses, no waiting)."""
SEMANTIC_CANDIDATES = 500
"""The newest entries of one semantic neighbourhood compared with a new prompt."""


@dataclass(frozen=True)
class CacheScope:
    """Whose answers one cache object may store and serve."""

    user_id: str
    service: str
    model: str

    @property
    def id(self) -> str:
        return digest(["scope", self.user_id, self.service, self.model])[:32]


def digest(parts: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(parts)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One stored answer: its exact key, and for the semantic mode its neighbourhood (scope,
    model settings and every message but the last), vector and salient tokens."""

    key: str
    scope: CacheScope
    value: str
    neighbourhood: str | None = None
    vector: bytes | None = None
    salient: str | None = None


class CacheStore(Protocol):
    """Where entries live. Every method may raise; `ResponseCache` turns that into a miss."""

    kind: str

    def get(self, scope: CacheScope, key: str) -> str | None: ...

    def put(self, entry: Entry, ttl_s: int) -> None: ...

    def candidates(
        self, scope: CacheScope, neighbourhood: str, salient: str
    ) -> list[tuple[str, bytes]]: ...

    def clear(self, scope: CacheScope) -> None: ...


# --------------------------------------------------------------------------------------------
# SQL (the ledger's engine)
# --------------------------------------------------------------------------------------------

_meta = sa.MetaData()
response_cache = sa.Table(
    "response_cache",
    _meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(32), nullable=False, index=True),
    sa.Column("user_id", sa.String(256), nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("neighbourhood", sa.String(64), index=True),
    sa.Column("salient", sa.String(64)),
    sa.Column("vector", sa.LargeBinary()),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False, index=True),
    sa.Column("value", sa.Text(), nullable=False),
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class SqlStore:
    """A `response_cache` table: on the ledger's Postgres, or a SQLite file of its own."""

    kind = "sql"

    def __init__(self, engine: sa.Engine, *, owns_engine: bool = False):
        self.engine = engine
        self.owns_engine = owns_engine
        _meta.create_all(engine, checkfirst=True)
        self._puts = 0
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the response cache runs on sqlite or postgresql, not {dialect}")
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        stmt = insert(response_cache)
        updated = {c.name: stmt.excluded[c.name] for c in response_cache.c if c.name != "key"}
        self._upsert = stmt.on_conflict_do_update(index_elements=["key"], set_=updated)

    def get(self, scope: CacheScope, key: str) -> str | None:
        c = response_cache.c
        query = sa.select(c.value).where(c.key == key, c.scope == scope.id, c.expires_at > _now())
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else str(value)

    def put(self, entry: Entry, ttl_s: int) -> None:
        now = _now()
        c = response_cache.c
        values = {
            "key": entry.key,
            "scope": entry.scope.id,
            "user_id": entry.scope.user_id,
            "service": entry.scope.service,
            "model": entry.scope.model,
            "neighbourhood": entry.neighbourhood,
            "salient": entry.salient,
            "vector": entry.vector,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
            "value": entry.value,
        }
        self._puts += 1
        with self.engine.begin() as conn:
            conn.execute(self._upsert, values)  # the same key again: the newer answer wins
            if self._puts % 100 == 1:  # expired rows go now and then, not on every write
                conn.execute(response_cache.delete().where(c.expires_at <= now))

    def candidates(
        self, scope: CacheScope, neighbourhood: str, salient: str
    ) -> list[tuple[str, bytes]]:
        c = response_cache.c
        query = (
            sa.select(c.key, c.vector)
            .where(
                c.scope == scope.id,
                c.neighbourhood == neighbourhood,
                c.salient == salient,
                c.vector.is_not(None),
                c.expires_at > _now(),
            )
            .order_by(c.created_at.desc())
            .limit(SEMANTIC_CANDIDATES)
        )
        with self.engine.connect() as conn:
            return [(str(k), bytes(v)) for k, v in conn.execute(query)]

    def clear(self, scope: CacheScope) -> None:
        with self.engine.begin() as conn:
            conn.execute(response_cache.delete().where(response_cache.c.scope == scope.id))

    def close(self) -> None:
        """Close the pool when the store is the cache's own (a SQLite file), not the ledger's."""
        if self.owns_engine:
            self.engine.dispose()


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


class RedisStore:
    """Values under `qg:rc:<scope>:<key>` with a TTL; a semantic neighbourhood is a hash
    `qg:rs:<scope>:<neighbourhood>:<salient>` of key → vector, expiring with its newest entry."""

    kind = "redis"

    def __init__(self, url: str, timeout_s: float):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # a miss now beats a retried wait
            health_check_interval=0,
        )

    @staticmethod
    def _value_key(scope: CacheScope, key: str) -> str:
        return f"qg:rc:{scope.id}:{key}"

    @staticmethod
    def _hood_key(scope: CacheScope, neighbourhood: str, salient: str) -> str:
        return f"qg:rs:{scope.id}:{neighbourhood}:{salient}"

    def get(self, scope: CacheScope, key: str) -> str | None:
        value = self.client.get(self._value_key(scope, key))
        return None if value is None else bytes(value).decode("utf-8")  # type: ignore[arg-type]

    def put(self, entry: Entry, ttl_s: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._value_key(entry.scope, entry.key), entry.value.encode("utf-8"), ex=ttl_s)
        if entry.neighbourhood and entry.vector is not None and entry.salient is not None:
            hood = self._hood_key(entry.scope, entry.neighbourhood, entry.salient)
            pipe.hset(hood, entry.key, entry.vector)
            pipe.expire(hood, ttl_s)
        pipe.execute()

    def candidates(
        self, scope: CacheScope, neighbourhood: str, salient: str
    ) -> list[tuple[str, bytes]]:
        raw: dict[bytes, bytes] = self.client.hgetall(  # type: ignore[assignment]
            self._hood_key(scope, neighbourhood, salient)
        )
        return [(k.decode("ascii"), v) for k, v in raw.items()][:SEMANTIC_CANDIDATES]

    def clear(self, scope: CacheScope) -> None:
        for pattern in (f"qg:rc:{scope.id}:*", f"qg:rs:{scope.id}:*"):
            keys = list(self.client.scan_iter(match=pattern, count=500))
            if keys:
                self.client.delete(*keys)

    def close(self) -> None:
        self.client.close()


_T = TypeVar("_T")
_outages: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_outage_lock = threading.Lock()


def guarded(store: CacheStore, op: Callable[[], _T]) -> _T | None:
    """`op()`, or None when the store fails (then one WARNING, and the store is skipped for
    `_BACKOFF_S` seconds): a cache that is down is a miss, never a failed call."""
    now = time.monotonic()
    with _outage_lock:
        until = _outages.get(store)
    if until is not None and now < until:
        return None
    try:
        result = op()
    except Exception as e:  # any store error: the call goes on without the cache
        with _outage_lock:
            first = store not in _outages
            _outages[store] = now + _BACKOFF_S
        if first:
            log.warning(
                "response cache (%s) unavailable, serving misses for %.0f s: %s: %s",
                store.kind, _BACKOFF_S, type(e).__name__, e,
            )  # fmt: skip
        return None
    if until is not None:
        with _outage_lock:
            _outages.pop(store, None)
        log.warning("response cache (%s) is back", store.kind)
    return result


_stores: ProcessCache[tuple[str, str], SqlStore | RedisStore] = ProcessCache(
    "response cache stores", on_evict=lambda store: store.close()
)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ledger URL (None: in memory, or not SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None


def _sql_store(s: Settings) -> SqlStore:
    """Postgres: a table on the ledger's engine (row locks: no contention). SQLite: a file of
    its own beside the ledger's (`response_cache.sqlite3`), so the cache's writes never hold
    the one write lock a ledger row is waiting for."""
    ledger = get_ledger(s)
    beside = _sqlite_file(ledger.url)
    if beside is None:
        return SqlStore(ledger.engine)
    engine = sa.create_engine(
        f"sqlite:///{beside.with_name('response_cache.sqlite3')}",
        connect_args={"timeout": 1, "check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return SqlStore(engine, owns_engine=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
    cur.execute("PRAGMA synchronous=NORMAL")  # a cache entry may be lost to an OS crash
    cur.execute("PRAGMA busy_timeout=1000")  # writes take ~0.1 ms: a longer wait is a fault
    cur.close()


def get_cache_store(settings: Settings | None = None) -> SqlStore | RedisStore:
    """Redis when `REDIS_URL` is set, else SQL beside the ledger (`_sql_store`)."""
    s = settings or get_settings()
    if s.redis_url is not None:
        url = s.redis_url.get_secret_value()
        return _stores.get(("redis", url), lambda: RedisStore(url, s.cache_timeout_s))
    return _stores.get(("sql", s.resolved_database_url), lambda: _sql_store(s))
