"""Prometheus metrics of the REST app, in prometheus_client's global `REGISTRY`.

`REQUESTS` counts our own REST routes (`quant_genai_http_requests_total`, by method, route
template and status). The ledger's totals by service and model (`quant_genai_llm_*_total`) live
in the database, so a custom collector reads them at scrape time from a snapshot that a daemon
thread refreshes every 5 s: the LangGraph server serves `/metrics` from an async handler, where
a SQL query would block the event loop (`langgraph dev` raises on it).

Everything registers once, at the import of this module. The LangGraph server loads `api.py`
twice (by path as `user_router_module`, and by name), but both copies import this module by
name, so it runs once per process and `REGISTRY` never sees a duplicate. It must not import
`api.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.usage.ledger import UsageRow, usage_report

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4"

REQUESTS = Counter(
    "quant_genai_http_requests",
    "REST requests by method, route and status",
    ["method", "route", "status"],
)


def count_request(method: str, route: str, status: int) -> None:
    REQUESTS.labels(method, route, str(status)).inc()


_COUNTED_PREFIX = "/v1/"


class CountRequests:
    """Pure ASGI middleware: counts our own routes (`/v1/...` and `/metrics`) by route template
    (so ids do not explode the labels), once the response has started.

    Replaces an `@app.middleware("http")` function: Starlette's `BaseHTTPMiddleware` runs the
    app in a task group and streams the response through memory channels, which cost more per
    request than the rules-only governance check itself. The router writes the matched route
    into the shared `scope`, so it is there once the app has answered.
    """

    def __init__(self, app: Any, count: Callable[[str, str, int], None] = count_request) -> None:
        self.app, self.count = app, count

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an app that raises before answering is a 500

        async def tracked(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            path = getattr(scope.get("route"), "path", None)
            if isinstance(path, str) and (path.startswith(_COUNTED_PREFIX) or path == "/metrics"):
                self.count(scope["method"], path, status)


class _LedgerSnapshot:
    """Ledger totals by service and model, refreshed off the event loop.

    Scrapes read the last snapshot, which a daemon thread refreshes every `REFRESH_S` (started
    by the first scrape, so importing this module runs no SQL).
    """

    REFRESH_S = 5.0

    def __init__(self) -> None:
        self.rows: list[UsageRow] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        try:
            rows = usage_report(group_by=("service", "model"))
        except Exception as exc:  # a scrape must not fail because the ledger is busy
            log.warning("metrics: ledger unavailable: %s", type(exc).__name__)
            return
        self.rows = rows

    def _loop(self) -> None:
        while True:
            self.refresh()
            time.sleep(self.REFRESH_S)

    def current(self) -> list[UsageRow]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="quant-genai-metrics", daemon=True
                )
                self._thread.start()
        return self.rows


LEDGER = _LedgerSnapshot()


class QuantGenaiCollector(Collector):
    """Ledger totals by service and model, at scrape time."""

    @staticmethod
    def _families() -> dict[str, CounterMetricFamily]:
        labels = ["service", "model"]
        return {
            "calls": CounterMetricFamily("quant_genai_llm_calls", "Model calls", labels=labels),
            "errors": CounterMetricFamily(
                "quant_genai_llm_errors", "Failed model calls", labels=labels
            ),
            "tokens": CounterMetricFamily(
                "quant_genai_llm_tokens", "Tokens by kind", labels=[*labels, "kind"]
            ),
            "cost": CounterMetricFamily(
                "quant_genai_llm_cost_usd", "Cost actually paid (USD)", labels=labels
            ),
            "list_price": CounterMetricFamily(
                "quant_genai_llm_list_price_usd",
                "Catalog list price of the same tokens (USD)",
                labels=labels,
            ),
        }

    def describe(self) -> Iterator[Metric]:
        """The names alone: registration then neither scrapes nor starts the refresh thread."""
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        for r in LEDGER.current():
            lv = [r.service or "", r.model or ""]
            f["calls"].add_metric(lv, r.calls)
            f["errors"].add_metric(lv, r.errors)
            for kind in ("input", "cached_input", "output", "reasoning"):
                f["tokens"].add_metric([*lv, kind], getattr(r, f"{kind}_tokens"))
            f["cost"].add_metric(lv, float(r.cost_usd))
            f["list_price"].add_metric(lv, float(r.list_price_usd))
        yield from f.values()


REGISTRY.register(QuantGenaiCollector())


def exposition() -> bytes:
    """Prometheus text of the whole registry, with ledger numbers read just now.

    For a threadpool route only (it runs SQL); the LangGraph server's async `/metrics` serves
    the same registry from the snapshot.
    """
    LEDGER.refresh()
    return generate_latest(REGISTRY)
