"""Rate limits per (user, service) and per (service, model): requests and tokens a minute, on
the `limits` library, shared by every worker and server through Redis when `REDIS_URL` is set.

What is counted where:
- requests: `RateLimits.hit_request`, called by each model-calling REST route after its checks
  passed (a moving window: exact, `limit` requests in any `window` seconds);
- tokens: `RateLimitCallbackHandler.on_chat_model_start`, the call's worst case (prompt x 1.25
  + output cap, `agents.usage.limits.worst_case_tokens`) before it is sent, on every path that
  builds its model through the factory (REST, LangGraph server, notebooks, code). A sliding
  window counter (two counters per key, O(1) per call): exact within its first minute, then a
  weighted estimate of the last 60 s. Counted at the worst case and never refunded.

The (user, service) window is hit before the (service, model) one, so a user refused by their
own limit never uses up the shared one (a request refused by the shared one has counted against
the user's). Over a limit → `RateLimitExceededError` (HTTP 429 with Retry-After, naming the
limit). Keys hold the service: a limit on one service never blocks another.

Storage: `memory://` without `REDIS_URL` (each process counts alone: N workers allow N x the
limit); with it, Redis (bounded by `REDIS_TIMEOUT_S` connect and socket timeouts, no retries),
so every process counts together. If Redis stops answering, decisions fall back to this
process's memory (the `memory://` limits above, per process) with a WARNING and the counter
`quant_genai_rate_limit_fallbacks_total`; Redis is tried again every `REDIS_RETRY_S`, and
counting moves back to it (with its old counts) once it answers. A Redis outage costs at most
one timeout per `REDIS_RETRY_S` per process, never a hung request.

Limits (`agents.usage.rate_config`): the packaged file, the settings, and the admin's runtime
overrides from the ledger database, re-read at most every `REFRESH_S` by each process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.limits import safe_string
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.util import WindowStats
from prometheus_client import Counter, Gauge

from agents.llm.catalog import SERVICES, get_model_config
from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.deferral import DeferredStarts
from agents.usage.ledger import get_ledger
from agents.usage.limits import worst_case_tokens
from agents.usage.rate_config import (
    Effective,
    Overrides,
    OverrideStore,
    RateLimitConfigError,
    Scope,
    Window,
    check_merged,
    merge_layer,
    static_config,
    validate_layer,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Kind = Literal["requests", "tokens"]

REFRESH_S = 2.0
"""Each process re-reads the runtime overrides at most this often (and at once after its own
PUT)."""
REDIS_TIMEOUT_S = 0.25
"""Connect and socket timeout of the rate limits' Redis calls (loopback or LAN: ~0.2 ms)."""
REDIS_RETRY_S = 2.0
"""After a Redis failure, this process counts in memory for this long, then tries Redis."""
NAMESPACE = "quant-genai-rate"

FALLBACKS = Counter(
    "quant_genai_rate_limit_fallbacks",
    "Rate-limit decisions made in this process's memory because Redis did not answer",
)
REDIS_UP = Gauge(
    "quant_genai_rate_limit_redis_up",
    "1 while the rate limits' Redis answers (or is not configured), 0 while falling back",
)
REFUSED = Counter(
    "quant_genai_rate_limited",
    "Requests and model calls refused by a rate limit",
    ["scope", "kind", "service"],
)
REDIS_UP.set(1)


@dataclass(eq=False, kw_only=True)
class RateLimitExceededError(RuntimeError):
    """Over a rate limit; nothing was sent. HTTP 429 with Retry-After.

    `scope` "user": the (user `name`, `service`) window; "model": the (`service`, model
    `name`) window, all users together. `kind`: "requests" or "tokens"; `cost`: what this
    request or call needed (1 request, or its worst-case tokens).
    """

    scope: Scope
    kind: Kind
    service: str
    name: str
    limit: int
    window_s: int
    cost: int
    retry_after_s: int

    def __post_init__(self) -> None:
        who = (
            f"(user {self.name!r}, service {self.service})"
            if self.scope == "user"
            else f"(service {self.service}, model {self.name}) across all users"
        )
        what = f"the limit of {self.limit} {self.kind} per {self.window_s} s for {who}"
        if self.cost > self.limit:
            text = (
                f"rate limit: this call needs up to {self.cost} tokens, more than {what}; ask "
                "for a smaller max_tokens or a shorter prompt, or an admin for a higher limit"
            )
        else:
            need = "" if self.kind == "requests" else f" (this call needs up to {self.cost})"
            text = f"rate limit: over {what}{need}; retry after {self.retry_after_s} s"
        super().__init__(
            f"{text} [scope={self.scope} key={self.service}/{self.name} limit={self.limit} "
            f"{self.kind} window={self.window_s}s]"
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after_s),
            "X-RateLimit-Scope": f"{self.scope}-{self.kind}",
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Window": str(self.window_s),
        }


class _Item(RateLimitItemPerSecond):
    """A window whose key has no amount in it: an admin changing a limit keeps its counts."""

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join([self.namespace, *(safe_string(i) for i in identifiers)])


def _item(kind: Kind, scope: Scope, window: Window) -> _Item:
    return _Item(window.amount, window.seconds, namespace=f"{NAMESPACE}/{kind}/{scope}")


class _InlineExpiryMemory(MemoryStorage):
    """`limits`' memory storage without its cleanup thread.

    `MemoryStorage` starts a `threading.Timer` (a new OS thread) whenever its last one finished
    (every 10 ms under load) to drop expired keys: ~0.1 ms and a GIL hand-off on a model call.
    Counts never depend on that cleanup (reads check expiry themselves), so here it runs inline,
    at most every `CLEANUP_S`, in the thread that counts.
    """

    CLEANUP_S = 1.0

    def __init__(self, uri: str | None = None, **options: Any) -> None:
        super().__init__(uri, **options)
        self.timer.cancel()
        self._next_cleanup = time.monotonic() + self.CLEANUP_S

    # The name `MemoryStorage` calls (its private `__schedule_expiry`, name-mangled).
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_cleanup:
            self._next_cleanup = now + self.CLEANUP_S
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class _Strategies:
    """The two `limits` strategies over one storage."""

    def __init__(self, uri: str, **options: Any) -> None:
        storage = (
            _InlineExpiryMemory(uri) if uri == "memory://" else storage_from_string(uri, **options)
        )
        self.requests = MovingWindowRateLimiter(storage)
        self.tokens = SlidingWindowCounterRateLimiter(storage)

    def of(self, kind: Kind) -> MovingWindowRateLimiter | SlidingWindowCounterRateLimiter:
        return self.requests if kind == "requests" else self.tokens


def _redis_strategies(url: str) -> _Strategies:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return _Strategies(
        url,
        wrap_exceptions=True,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),  # one attempt: the fallback is the retry
        health_check_interval=30,
    )


class RateLimits:
    """The limits of one process for one `Settings`: windows, storage, overrides."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.static = static_config(settings)
        self.enabled = bool(self.static.get("enabled", True))
        self._memory = _Strategies("memory://")
        url = settings.redis_url.get_secret_value() if settings.redis_url else None
        self._redis = _redis_strategies(url) if url else None
        self._redis_down_until = 0.0
        self._outage_since: float | None = None
        self._outage_logged = 0.0
        self._lock = threading.Lock()
        self._store: OverrideStore | None = None
        self._overrides = Overrides(0, {}, None, None)
        self._effective = Effective(self.static)
        self._checked = -math.inf

    # -- storage, with the memory fallback ---------------------------------------------------

    @property
    def storage(self) -> str:
        if self._redis is None:
            return "memory"
        return "redis" if self._outage_since is None else "memory (Redis unreachable)"

    def _run(self, op: Callable[[_Strategies], T]) -> T:
        if self._redis is None:
            return op(self._memory)
        if time.monotonic() >= self._redis_down_until:
            try:
                out = op(self._redis)
            except (StorageError, OSError) as exc:
                self._redis_failed(exc)
            else:
                if self._outage_since is not None:
                    self._redis_back()
                return out
        FALLBACKS.inc()
        return op(self._memory)

    def _redis_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._redis_down_until = now + REDIS_RETRY_S
        REDIS_UP.set(0)
        cause = type(getattr(exc, "storage_error", None) or exc.__cause__ or exc).__name__
        if self._outage_since is None:
            self._outage_since = self._outage_logged = now
            log.warning(
                "RATE LIMITS: Redis does not answer (%s); counting in this process's memory "
                "only (each worker allows the full limit) until it does; retrying every %.0f s",
                cause,
                REDIS_RETRY_S,
            )
        elif now - self._outage_logged >= 60:
            self._outage_logged = now
            log.warning(
                "RATE LIMITS: Redis still unreachable after %.0f s (%s); per-process limits",
                now - self._outage_since,
                cause,
            )

    def _redis_back(self) -> None:
        assert self._outage_since is not None
        log.warning(
            "RATE LIMITS: Redis answers again after %.0f s; limits are shared again",
            time.monotonic() - self._outage_since,
        )
        self._outage_since = None
        REDIS_UP.set(1)

    # -- the limits in force -----------------------------------------------------------------

    def _override_store(self) -> OverrideStore:
        if self._store is None:
            self._store = OverrideStore(get_ledger(self.settings).engine)
        return self._store

    def effective(self) -> Effective:
        """The merged limits, re-reading the runtime overrides at most every `REFRESH_S`."""
        if time.monotonic() - self._checked >= REFRESH_S:
            with self._lock:
                if time.monotonic() - self._checked >= REFRESH_S:
                    self._refresh()
                    self._checked = time.monotonic()
        return self._effective

    def _refresh(self) -> None:
        try:
            stored = self._override_store().read()
        except Exception as exc:  # the ledger busy or down: keep the limits we have
            log.warning("rate limits: cannot read the runtime overrides (%s)", exc)
            return
        if stored.version == self._overrides.version:
            return
        try:
            layer = validate_layer("stored overrides", stored.doc, runtime=True)
            doc = merge_layer(self.static, layer)
            check_merged("stored overrides", doc)
        except RateLimitConfigError as exc:  # e.g. a model the catalog no longer has
            log.error("rate limits: ignoring stored overrides v%d: %s", stored.version, exc)
            doc = dict(self._effective.doc)
        self._overrides, self._effective = stored, Effective(doc)

    def overrides(self) -> Overrides:
        self.effective()
        return self._overrides

    def set_overrides(self, doc: Any, *, replace: bool, by: str) -> Overrides:
        """Replace the runtime overrides with `doc`, or merge-patch them with it (RFC 7396:
        `null` deletes). Raises `RateLimitConfigError` naming what is wrong."""
        source = "overrides"
        validate_layer(source, doc, runtime=True)  # names in the patch itself, nulls included
        store = self._override_store()
        for _ in range(20):  # compare-and-set against concurrent admins
            current = store.read()
            new = merge_layer({} if replace else current.doc, doc)  # without nulls
            new = validate_layer(source, new, runtime=True)
            check_merged(source, merge_layer(self.static, new))
            if store.write(new, by, current.version):
                with self._lock:
                    self._checked = -math.inf
                return self.overrides()
        raise RuntimeError("the rate-limit overrides changed 20 times during one write")

    # -- counting ----------------------------------------------------------------------------

    def hit_request(self, service: str, model_id: str, user_id: str | None) -> None:
        """One model-calling request; `RateLimitExceededError` when over a limit."""
        self._hit("requests", service, model_id, user_id, 1)

    def hit_tokens(self, service: str, model_id: str, user_id: str | None, tokens: int) -> None:
        """A call's worst-case tokens; `RateLimitExceededError` when over a limit."""
        self._hit("tokens", service, model_id, user_id, max(1, tokens))

    def limits_tokens(self, service: str, model_id: str, user_id: str | None) -> bool:
        """Whether a call of `model_id` for `user_id` on `service` counts against a token
        window now (False when rate limits are off)."""
        return self.enabled and bool(self._windows("tokens", service, model_id, user_id))

    def _windows(
        self, kind: Kind, service: str, model_id: str, user_id: str | None
    ) -> list[tuple[Scope, str, Window]]:
        eff = self.effective()
        found: list[tuple[Scope, str, Window]] = []
        scopes: tuple[tuple[Scope, str | None], ...] = (("user", user_id), ("model", model_id))
        for scope, name in scopes:
            if name is None:
                continue
            limits = eff.limits(scope, service, name)
            window = limits.requests if kind == "requests" else limits.tokens
            if window is not None:
                found.append((scope, name, window))
        return found

    def _hit_one(self, kind: Kind, item: _Item, ident: tuple[str, str], cost: int) -> bool:
        return self._run(lambda st: st.of(kind).hit(item, *ident, cost=cost))

    def _stats(self, kind: Kind, item: _Item, ident: tuple[str, str]) -> WindowStats:
        return self._run(lambda st: st.of(kind).get_window_stats(item, *ident))

    def _hit(self, kind: Kind, service: str, model_id: str, user_id: str | None, cost: int) -> None:
        if not self.enabled:
            return
        for scope, name, window in self._windows(kind, service, model_id, user_id):
            item = _item(kind, scope, window)
            if cost <= window.amount and self._hit_one(kind, item, (service, name), cost):
                continue
            REFUSED.labels(scope, kind, service).inc()
            raise RateLimitExceededError(
                scope=scope,
                kind=kind,
                service=service,
                name=name,
                limit=window.amount,
                window_s=window.seconds,
                cost=cost,
                retry_after_s=self._retry_after(kind, item, (service, name), cost, window),
            )

    def _retry_after(
        self, kind: Kind, item: _Item, ident: tuple[str, str], cost: int, window: Window
    ) -> int:
        if cost > window.amount:
            return window.seconds  # never fits; the message says so
        stats = self._stats(kind, item, ident)
        if kind == "requests":  # the moving window: exact, when the oldest request ages out
            wait = stats.reset_time - time.time()
        else:  # tokens free at about amount / window a second
            wait = window.seconds * (cost - stats.remaining) / window.amount
        return max(1, min(math.ceil(wait), 2 * window.seconds))

    def usage(self, user_id: str) -> dict[str, Any]:
        """Per service: the (user, service) limits of `user_id` and what is left of them."""
        eff = self.effective()
        out: dict[str, Any] = {}
        for service in SERVICES:
            limits = eff.limits("user", service, user_id)
            entry = limits.as_json()
            kinds: tuple[tuple[Kind, Window | None], ...] = (
                ("requests", limits.requests),
                ("tokens", limits.tokens),
            )
            for kind, window in kinds:
                if window is not None and self.enabled:
                    stats = self._stats(kind, _item(kind, "user", window), (service, user_id))
                    entry[kind]["remaining"] = stats.remaining
            out[service] = entry
        return out


_limits: ProcessCache[str, RateLimits] = ProcessCache("rate limits")


def rate_limits(settings: Settings | None = None) -> RateLimits:
    """The process's limits for these settings (forgotten by `agents.registry.reset()`)."""
    s = settings or get_settings()
    return _limits.get(s.fingerprint, lambda: RateLimits(s))


# --------------------------------------------------------------------------------------------
# The token limit on every model call
# --------------------------------------------------------------------------------------------


class RateLimitCallbackHandler(BaseCallbackHandler):
    """Counts each call's worst-case tokens against the (user, service) and (service, model)
    token windows before it is sent; over a limit it raises `RateLimitExceededError`, which
    stops the call (`raise_error`). Attach it before the cost callback, so a refused call
    reserves no budget. Inline like the cost callback, so the order holds in async runs too."""

    run_inline = True
    raise_error = True

    def __init__(
        self, *, service: str, model_id: str, user_id: str | None, settings: Settings | None
    ) -> None:
        self.service = service
        self.model = get_model_config(model_id)
        self.user_id = user_id
        self.settings = settings
        # runs the model found in its response cache before they started (`expecting_hit`),
        # and the tokens each would count if it is sent after all
        self._hits: DeferredStarts[int] = DeferredStarts()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        prompt, output = worst_case_tokens(
            self.model, messages[0] if messages else [], kwargs.get("invocation_params")
        )
        if self._hits.keep_if_expected(run_id, prompt + output):
            return  # a cache hit buys no tokens: counted only if it is sent after all
        limits = rate_limits(self.settings)
        limits.hit_tokens(self.service, self.model.id, self.user_id, prompt + output)

    # -- cache hits count no tokens (`agents.llm.cached` peeks at the cache before the run) ---

    def reserves(self) -> bool:
        """Whether a call would count against a token window now."""
        return rate_limits(self.settings).limits_tokens(self.service, self.model.id, self.user_id)

    def expecting_hit(self, run_id: UUID) -> AbstractContextManager[None]:
        """Within: the run `run_id` is answered from the response cache, so its start counts
        nothing; if it is sent after all, the model calls `reserve_deferred` first."""
        return self._hits.expecting(run_id)

    def reserve_deferred(self, run_id: UUID) -> None:
        """Count an expected hit that is being sent to the model now (a no-op for any other
        run, and the second time); raises `RateLimitExceededError` like the start would."""
        tokens = self._hits.take(run_id)
        if tokens is not None:
            limits = rate_limits(self.settings)
            limits.hit_tokens(self.service, self.model.id, self.user_id, tokens)

    def refuse_deferred(self, run_id: UUID) -> None:
        """An earlier handler refused the run before it was sent: nothing to count."""
        self._hits.take(run_id)


def rate_limit_handler(
    service: str, model_id: str, user_id: str | None, settings: Settings | None = None
) -> BaseCallbackHandler | None:
    """The token-limit callback for one (service, model, user) chat model, or None when the
    configuration turns rate limits off (`enabled = false`, which only files can set)."""
    if not rate_limits(settings).enabled:
        return None
    return RateLimitCallbackHandler(
        service=service, model_id=model_id, user_id=user_id, settings=settings
    )
