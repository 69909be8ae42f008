"""Runs whose start counts nothing because the response cache will answer them.

`agents.llm.cached` peeks at the cache before a run starts and, on a hit, marks the run for
every handler that counts at the start (the token rate limit, the budget reservation): their
`on_chat_model_start` then keeps what it would have counted here instead of counting it. If
the run is sent to the model after all (the entry expired between the peek and the lookup), the
model takes the kept value and counts it right before the send; when the peek's block ends,
whatever is left is forgotten. One small thread-safe piece, used by both handlers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")


class DeferredStarts(Generic[T]):
    """The runs expected to be cache hits, and what each would count if it is sent."""

    def __init__(self) -> None:
        self._expected: set[UUID] = set()
        self._kept: dict[UUID, T] = {}
        self._lock = threading.Lock()

    @contextmanager
    def expecting(self, run_id: UUID) -> Iterator[None]:
        """Within: `run_id` is expected to be answered from the cache."""
        with self._lock:
            self._expected.add(run_id)
        try:
            yield
        finally:
            with self._lock:
                self._expected.discard(run_id)
                self._kept.pop(run_id, None)

    def keep_if_expected(self, run_id: UUID, value: T) -> bool:
        """At the run's start: keep `value` instead of counting it when the run is expected to
        be a hit (True), else False (count it now)."""
        with self._lock:
            if run_id not in self._expected:
                return False
            self._kept[run_id] = value
            return True

    def take(self, run_id: UUID) -> T | None:
        """What an expected run kept, once (None for any other run, and the second time)."""
        with self._lock:
            return self._kept.pop(run_id, None)


__all__ = ["DeferredStarts"]
