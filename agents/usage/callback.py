"""The cost callback: a LangChain `BaseCallbackHandler` that writes one ledger row per model call.

Per call: input / cached input / output / reasoning tokens from `usage_metadata`, priced from the
catalog; streaming and non-streaming alike; a cache hit is $0 and counts no tokens. Before a
call it reserves the worst case against every budget that applies (`agents.usage.budgets`: USD
budgets for billed routes, token budgets for every route); after the call's row is written it
evaluates those budgets' alert thresholds (`agents.usage.alerts`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from agents.llm.catalog import ModelConfig
from agents.usage.alerts import Alerter, get_alerter
from agents.usage.budgets import Budget
from agents.usage.ledger import Ledger, LedgerRow
from agents.usage.limits import worst_case_tokens
from agents.usage.pricing import TokenUsage, UnpricedModelError, cost_nanousd

log = logging.getLogger(__name__)


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
        alerter: Alerter | None = None,
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
        self.alerter = alerter  # None: the process settings' (`get_alerter()`)
        self._starts: dict[UUID, float] = {}
        self._applying: dict[UUID, list[Budget]] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        # `budget_nanousd` is the environment's per-user daily USD budget (the default)
        applying = [
            b
            for b in self.ledger.applicable_budgets(self.user_id, self.service, self.budget_nanousd)
            if b.unit == "tokens" or self.billed  # an unbilled call costs $0
        ]
        if applying:
            prompt, output = worst_case_tokens(
                self.model, messages[0] if messages else [], kwargs.get("invocation_params")
            )
            worst = 0
            if self.billed and any(b.unit == "usd" for b in applying):
                worst = cost_nanousd(
                    self.model, TokenUsage(input_tokens=prompt, output_tokens=output)
                )
            self.ledger.reserve_call(
                request_id=str(run_id),
                user_id=self.user_id,
                service=self.service,
                amount_nanousd=worst,
                amount_tokens=prompt + output,
                applying=applying,
                ttl_s=self.reservation_ttl_s,
            )
        with self._lock:
            self._starts[run_id] = time.perf_counter()
            if applying:
                self._applying[run_id] = applying

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
        cache_hit = _served_from_cache(response) or (
            usage_md is not None and usage_md.get("total_cost") == 0
        )
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
        row = LedgerRow.of(
            usage,
            request_id=str(run_id),
            user_id=self.user_id,
            service=self.service,
            model=self.model.id,
            served_model=self.served_model,
            route=self.route,
            cost_nanousd=cost,
            list_price_nanousd=list_price,
            latency_ms=latency,
            cache_hit=cache_hit,
            error=error,
        )
        with self._lock:
            applying = self._applying.pop(run_id, None)
        try:
            self.ledger.record(row, reserved=applying is not None)
        except Exception:
            # Never fail the user's (already paid) call; keep the row in the log to replay.
            log.exception("ledger write failed; row: %r", row)
            return
        if applying:
            try:  # the webhook is posted from a background thread: this never waits for it
                (self.alerter or get_alerter()).evaluate(self.ledger.engine, applying)
            except Exception:
                log.exception("budget alerts could not be evaluated after call %s", run_id)


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


def _served_from_cache(response: LLMResult) -> bool:
    """Marked by `agents.usage.cache.decode`; `total_cost == 0` is langchain-core's own mark."""
    return any(
        isinstance(g, ChatGeneration) and g.message.response_metadata.get("cache_hit") is True
        for gens in response.generations
        for g in gens
    )
