"""Budget alerts: once per threshold per budget per period, a log line and a webhook POST.

After a call's ledger row is written the cost callback asks `Alerter.evaluate` about the
budgets that call counted against: for each, what its period spent so far as a percentage of
its limit; each threshold of `QUANT_GENAI_ALERT_THRESHOLDS` (default 50, 80, 100 %) that is
crossed and not yet recorded is inserted into `budget_alerts`, whose unique key (budget,
period start, threshold) makes the insert succeed in exactly one worker. The worker whose
insert succeeded logs a WARNING and, when `QUANT_GENAI_ALERT_WEBHOOK_URL` is set, queues a JSON
POST for its background thread: `alert_webhook_timeout_s` per attempt, `alert_webhook_retries`
retries with exponential backoff (0.5 s, 1 s, 2 s, …), the outcome written back to the alert's
row (`webhook_status` sent / failed). The model call never waits for the webhook: a dead or
hung receiver delays only later alerts, which queue behind it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.budgets import Budget, period_start, spent, to_unit
from agents.usage.limits import PERIOD_WORDS
from agents.usage.schema import budget_alerts

log = logging.getLogger(__name__)

BACKOFF_S = 0.5
"""The first retry's wait; each further retry waits twice as long."""


@dataclass(frozen=True)
class AlertConfig:
    """Where and when alerts go (from the settings' `alert_*` fields)."""

    thresholds_pct: tuple[float, ...] = (50.0, 80.0, 100.0)
    webhook_url: str | None = None
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = BACKOFF_S

    @classmethod
    def from_settings(cls, s: Settings) -> AlertConfig:
        return cls(
            thresholds_pct=tuple(s.alert_thresholds_pct),
            webhook_url=s.alert_webhook_url,
            timeout_s=s.alert_webhook_timeout_s,
            retries=s.alert_webhook_retries,
        )


def _message(b: Budget, threshold: float, used: int) -> str:
    pct = 100 * used / b.limit
    return (
        f"budget alert: {b.label} has used {pct:.1f}% of its {PERIOD_WORDS[b.period]} "
        f"{b.unit} budget "
        f"({b.amount(used)} of {b.amount(b.limit)}), crossing {threshold:g}%"
    )


def alert_json(m: Any) -> dict[str, Any]:
    """One `budget_alerts` row as the API, the CLI and the webhook show it."""
    return {
        "id": int(m.id),
        "ts": m.ts.isoformat(),
        "scope": m.scope,
        "user_id": m.user_id or None,
        "service": m.service or None,
        "period": m.period,
        "unit": m.unit,
        "period_start": m.period_start.isoformat(),
        "threshold_pct": float(m.threshold_pct),
        "limit": to_unit(m.unit, int(m.limit_amount)),
        "spent": to_unit(m.unit, int(m.spent_amount)),
        "percent_used": round(100 * int(m.spent_amount) / max(int(m.limit_amount), 1), 2),
        "webhook_status": m.webhook_status,
        "webhook_attempts": int(m.webhook_attempts),
    }


class Alerter:
    """Evaluates thresholds after a call and delivers webhooks from one background thread."""

    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self._queue: queue.Queue[tuple[sa.Engine, int, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def evaluate(
        self, engine: sa.Engine, applying: Sequence[Budget], now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Record every newly crossed threshold of these budgets; log and POST each one.
        Returns the new alerts (none when another worker recorded them first)."""
        now = now or datetime.now(UTC).replace(tzinfo=None)
        new: list[dict[str, Any]] = []
        with engine.begin() as conn:
            for b in applying:
                if b.limit > 0:
                    new += self._crossed(conn, b, now)
        for alert in new:
            log.warning("%s", alert["message"])
            if self.config.webhook_url:
                self._send(engine, alert)
        return new

    def _crossed(self, conn: sa.Connection, b: Budget, now: datetime) -> list[dict[str, Any]]:
        used = spent(conn, b, now)
        crossed = [t for t in self.config.thresholds_pct if used * 100 >= t * b.limit]
        if not crossed:
            return []
        start = period_start(b.period, now)
        a = budget_alerts.c
        have = {
            float(t)
            for t in conn.execute(
                sa.select(a.threshold_pct).where(a.budget_key == b.key, a.period_start == start)
            ).scalars()
        }
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        out = []
        for t in (t for t in crossed if t not in have):
            values = {
                "budget_key": b.key,
                "period_start": start,
                "threshold_pct": t,
                "ts": now,
                "scope": b.scope,
                "user_id": b.user_id,
                "service": b.service,
                "period": b.period,
                "unit": b.unit,
                "limit_amount": b.limit,
                "spent_amount": used,
                "webhook_status": "pending" if self.config.webhook_url else "none",
            }
            stmt = dialect.insert(budget_alerts).values(values)
            stmt = stmt.on_conflict_do_nothing(
                index_elements=["budget_key", "period_start", "threshold_pct"]
            ).returning(a.id)
            inserted = conn.execute(stmt).scalar_one_or_none()
            if inserted is None:  # another worker recorded it first: it sends it
                continue
            row = sa.select(budget_alerts).where(a.id == inserted)
            alert = alert_json(conn.execute(row).one())
            alert["message"] = _message(b, t, used)
            out.append(alert)
        return out

    def _send(self, engine: sa.Engine, alert: dict[str, Any]) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="budget-alert-webhook", daemon=True
                )
                self._thread.start()
        self._queue.put((engine, alert["id"], {"type": "budget_alert", **alert}))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:  # closed: end once nothing more is queued
                    if self._queue.empty():
                        return
                    continue
                engine, alert_id, payload = item
                status, attempts, error = self._post(payload)
                a = budget_alerts.c
                with engine.begin() as conn:
                    conn.execute(
                        budget_alerts.update()
                        .where(a.id == alert_id)
                        .values(
                            webhook_status=status, webhook_attempts=attempts, webhook_error=error
                        )
                    )
            except Exception:  # the thread must survive anything (a ledger gone, a bug)
                log.exception("budget alert webhook delivery failed")
            finally:
                self._queue.task_done()

    def _post(self, payload: dict[str, Any]) -> tuple[str, int, str | None]:
        """POST with retries: ("sent" | "failed", attempts, last error)."""
        body = json.dumps(payload).encode("utf-8")
        error: str | None = None
        url = str(self.config.webhook_url)
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(self.config.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as resp:
                    resp.read()
                return "sent", attempt + 1, None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("budget alert webhook attempt %d failed: %s", attempt + 1, error)
        return "failed", self.config.retries + 1, error

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued webhook was delivered or given up (True) or the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def close(self) -> None:
        """Let the thread end after what is queued (never waits: a webhook may hang)."""
        if self._thread is not None:
            self._queue.put(None)


_alerters: ProcessCache[AlertConfig, Alerter] = ProcessCache("alerters", on_evict=Alerter.close)


def get_alerter(settings: Settings | None = None) -> Alerter:
    """The process's alerter for these settings (one webhook thread per configuration)."""
    config = AlertConfig.from_settings(settings or get_settings())
    return _alerters.get(config, lambda: Alerter(config))


def list_alerts(
    engine: sa.Engine,
    *,
    user_id: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Alerts newest first: one user's (their user and user-service budgets) or everyone's."""
    a = budget_alerts.c
    q = sa.select(budget_alerts).order_by(a.id.desc()).limit(limit)
    if user_id is not None:
        q = q.where(a.user_id == user_id)
    if since is not None:
        q = q.where(a.ts >= since)
    with engine.connect() as conn:
        return [alert_json(m) for m in conn.execute(q)]
