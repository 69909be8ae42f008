"""Process-wide state: every cache of things built from settings, in one registry, one reset.

The runtime builds a few expensive things once per process and shares them: the settings, chat
models, HTTP pools, ledgers (one engine per URL), the retriever, embedding models, the API-key
map, the rate limiter. Each is a `ProcessCache` (or a function decorated with `@cached`), so a
newcomer finds them all here and tests (or a long-lived notebook after changing the environment)
call `reset()` once instead of a different `clear_*` per module.

Not here: memos of constants that no setting changes (compiled regexes, the bundled market data,
a class's source), which stay `functools` caches beside the function they speed up.

Caches marked `survives_reset` hold a pure function of their key (an embedding model loaded from
disk for a given model id): a reset would only make the next use slow, so only
`reset(everything=True)` drops them. Builds run under the cache's lock, so two threads asking for
the same key get the same instance (the factory's "no duplicate initialisation").
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
P = ParamSpec("P")

_caches: list[ProcessCache[object, object]] = []
_caches_lock = threading.Lock()


class ProcessCache(Generic[K, V]):
    """A named, thread-safe, build-once map registered for `reset()`."""

    def __init__(
        self,
        name: str,
        *,
        survives_reset: bool = False,
        on_evict: Callable[[V], None] | None = None,
    ) -> None:
        self.name = name
        self.survives_reset = survives_reset
        self._on_evict = on_evict
        self._items: dict[K, V] = {}
        self._lock = threading.RLock()
        with _caches_lock:
            _caches.append(self)  # type: ignore[arg-type]

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The value for `key`, built by `build()` the first time (under the lock)."""
        try:
            return self._items[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]

    def peek(self, key: K) -> V | None:
        return self._items.get(key)

    def clear(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), {}
        if self._on_evict is not None:
            for item in items:
                self._on_evict(item)

    def __len__(self) -> int:
        return len(self._items)


def cached(
    name: str, *, survives_reset: bool = False
) -> Callable[[Callable[P, V]], Callable[P, V]]:
    """Memoise a function of hashable arguments in a registered `ProcessCache`."""

    def wrap(fn: Callable[P, V]) -> Callable[P, V]:
        cache: ProcessCache[Hashable, V] = ProcessCache(name, survives_reset=survives_reset)

        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> V:
            key = (args, tuple(sorted(kwargs.items())))
            return cache.get(key, lambda: fn(*args, **kwargs))

        inner.cache = cache  # type: ignore[attr-defined]
        return inner

    return wrap


def reset(*, everything: bool = False) -> None:
    """Forget every process-wide cache (tests; after changing the environment)."""
    with _caches_lock:
        caches = list(_caches)
    for cache in caches:
        if everything or not cache.survives_reset:
            cache.clear()


def caches() -> list[str]:
    """Names of the registered caches (for docs and the architecture test)."""
    with _caches_lock:
        return [c.name for c in _caches]
