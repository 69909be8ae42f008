"""The cost callback: a LangChain `BaseCallbackHandler` that writes one ledger row per model call.

Per call: input / cached input / output / reasoning tokens from `usage_metadata`, priced from the
catalog; streaming and non-streaming alike; a cache hit is $0 and counts no tokens. Before a
call it reserves the worst case against every budget that applies (`agents.usage.budgets`: USD
budgets for billed routes, token budgets for every route); after the call's row is written it
evaluates those budgets' alert thresholds (`agents.usage.alerts`). A call the model already
found in its response cache (`agents.llm.cached`, `expecting_hit`) reserves nothing; if it is
sent after all (the entry expired in between), it reserves right before the request
(`reserve_deferred`).

An endpoint that reports no usage (a stream without `stream_options.include_usage`, a server
that omits it) gets its tokens counted locally with the worst-case counter
(`agents.usage.limits`: the prompt seen at `on_chat_model_start`, the generated text and
tool-call arguments at `on_llm_end`), priced from the catalog, the row marked `estimated`.

When the call is priced, its cost in USD is written into the reply's `usage_metadata`
(`input_cost`, `output_cost`, `total_cost`, `input_cost_details.cache_read`) so LangSmith shows
our exact cost instead of pricing the run from its own map. The tracer copies the message at
its own `on_llm_end`, so the cost must be there before: at the top level the tracer is appended
after the model's own callbacks; inside a traced parent (a graph node) it is inherited and runs
first, so the factory stamps a built reply in `_create_chat_result` and puts `CostStamp` ahead
of the inherited handlers for streamed replies (`stamping_first`). A reply whose tokens are
counted locally (no usage from the endpoint) gets its cost at this handler's `on_llm_end`, which
inside a traced parent is after the tracer: LangSmith prices those itself (docs/decisions.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager, Callbacks
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from agents.llm.catalog import ModelConfig
from agents.usage.alerts import Alerter, get_alerter
from agents.usage.budgets import Budget
from agents.usage.deferral import DeferredStarts
from agents.usage.ledger import Ledger, LedgerRow
from agents.usage.limits import completion_tokens, prompt_tokens, worst_case_tokens
from agents.usage.pricing import TokenUsage, UnpricedModelError, cost_nanousd, cost_parts_nanousd

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
        # the prompt of each call in flight, counted only if the endpoint reports no usage
        self._prompts: dict[UUID, tuple[list[BaseMessage], Any]] = {}
        # runs the model found in the response cache before they started (`expecting_hit`),
        # their prompt and invocation params while unreserved, and late refusals
        self._hits: DeferredStarts[tuple[list[BaseMessage], Any]] = DeferredStarts()
        self.stamp = CostStamp(self)  # this handler's cost, ahead of an inherited tracer
        self._refused: set[UUID] = set()
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        prompt = messages[0] if messages else []
        invocation = kwargs.get("invocation_params")
        # the model found it in the cache: reserve only if it is sent after all
        hit = self._hits.keep_if_expected(run_id, (prompt, invocation))
        applying = [] if hit else self._reserve(run_id, prompt, invocation)
        params = invocation or {}
        with self._lock:
            self._starts[run_id] = time.perf_counter()
            self._prompts[run_id] = (prompt, params.get("tools"))
            if applying:
                self._applying[run_id] = applying

    def _budgets(self) -> list[Budget]:
        """The budgets a call of this model counts against (`budget_nanousd` is the
        environment's per-user daily USD default); an unbilled call costs $0, so only token
        budgets apply to it."""
        return [
            b
            for b in self.ledger.applicable_budgets(self.user_id, self.service, self.budget_nanousd)
            if b.unit == "tokens" or self.billed
        ]

    def _reserve(self, run_id: UUID, prompt: list[BaseMessage], invocation: Any) -> list[Budget]:
        """Hold the call's worst case against every budget that applies (or raise
        `QuotaExceededError` / `BudgetUnavailableError`); the budgets held."""
        applying = self._budgets()
        if applying:
            tokens_in, tokens_out = worst_case_tokens(self.model, prompt, invocation)
            worst = 0
            if self.billed and any(b.unit == "usd" for b in applying):
                worst = cost_nanousd(
                    self.model, TokenUsage(input_tokens=tokens_in, output_tokens=tokens_out)
                )
            self.ledger.reserve_call(
                request_id=str(run_id),
                user_id=self.user_id,
                service=self.service,
                amount_nanousd=worst,
                amount_tokens=tokens_in + tokens_out,
                applying=applying,
                ttl_s=self.reservation_ttl_s,
            )
        return applying

    # -- cache hits reserve nothing (`agents.llm.cached` peeks at the cache before the run) ---

    def reserves(self) -> bool:
        """Whether a call would hold budget now; True when the budgets cannot be read (the
        call's start then fails closed as usual)."""
        try:
            return bool(self._budgets())
        except Exception:
            return True

    @contextmanager
    def expecting_hit(self, run_id: UUID) -> Iterator[None]:
        """Within: the run `run_id` is answered from the response cache, so its start reserves
        nothing; if it is sent after all (the entry expired meanwhile), the model calls
        `reserve_deferred` first."""
        try:
            with self._hits.expecting(run_id):
                yield
        finally:
            with self._lock:
                self._refused.discard(run_id)

    def reserve_deferred(self, run_id: UUID) -> None:
        """Reserve now for an expected hit that is being sent to the model (a no-op for any
        other run, and the second time); raises like a reservation at the start would."""
        pending = self._hits.take(run_id)
        if pending is None:
            return
        try:
            applying = self._reserve(run_id, *pending)
        except Exception:
            with self._lock:
                self._refused.add(run_id)  # refused before it was sent: no row, as at the start
            raise
        if applying:
            with self._lock:
                self._applying[run_id] = applying

    def refuse_deferred(self, run_id: UUID) -> None:
        """An earlier handler (the token rate limit) refused an expected hit before it was
        sent: reserve nothing and record no row, as when the limit refuses at the start."""
        if self._hits.take(run_id) is not None:
            with self._lock:
                self._refused.add(run_id)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any
    ) -> None:
        with self._lock:
            self._starts[run_id] = time.perf_counter()

    def _latency_ms(self, run_id: UUID) -> float | None:
        with self._lock:
            start = self._starts.pop(run_id, None)
        return None if start is None else (time.perf_counter() - start) * 1000

    def _estimate(self, run_id: UUID, response: LLMResult) -> TokenUsage | None:
        """The call's tokens counted locally, or None when its prompt was not seen (a legacy
        `on_llm_start` call): the prompt with its framing and tools, the first reply."""
        with self._lock:
            prompt = self._prompts.pop(run_id, None)
        message = _first_message(response)
        if prompt is None or message is None:
            return None
        return TokenUsage(
            input_tokens=prompt_tokens(prompt[0], prompt[1]),
            output_tokens=completion_tokens(message),
        )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._on_end(response, run_id)
        except Exception:  # raise_error is on (for the quota): a paid call must never fail here
            log.exception("cost callback failed on a finished call %s", run_id)

    def _on_end(self, response: LLMResult, run_id: UUID) -> None:
        latency = self._latency_ms(run_id)
        usage_md = _first_usage(response)
        cache_hit = _served_from_cache(response) or _core_cache_mark(usage_md)
        usage = TokenUsage()
        error = None
        estimated = None
        if not cache_hit:
            if usage_md is not None:
                usage = TokenUsage.from_usage_metadata(usage_md, check=False)
            else:
                estimated = self._estimate(run_id, response)
        unreserved = self._hits.take(run_id) is not None
        with self._lock:
            self._prompts.pop(run_id, None)
        if unreserved and not cache_hit:  # a path to the model that skipped `reserve_deferred`
            log.warning("call %s was expected to be a cache hit and was sent unreserved", run_id)
        cost: int | None
        list_price: int | None
        if cache_hit:
            cost = list_price = 0  # served from LangChain's cache: no tokens were bought
        elif usage_md is None and estimated is None:
            cost = list_price = None  # no usage and nothing to count: unpriced, not $0
        else:
            usage = estimated or usage
            try:
                usage.check()
                list_price = cost_nanousd(self.model, usage)
            except ValueError as e:  # unpriced model or inconsistent usage: keep the row
                list_price = None
                error = None if isinstance(e, UnpricedModelError) else f"usage: {e}"
            cost = list_price if self.billed or list_price is None else 0
        if cost is not None and not cache_hit and error is None:
            _send_cost(response, self.model, usage, billed=self.billed, estimated=estimated)
        self._write(
            run_id, usage, cost, list_price, latency, cache_hit, error, estimated is not None
        )

    def stamp_cost(self, generations: Sequence[ChatGeneration]) -> None:
        """Our cost in the reply's `usage_metadata` as soon as the reply exists (the factory
        calls this from `QuantChatOpenAI._create_chat_result`, and `CostStamp` at the end of a
        streamed reply): inside a traced graph the inherited tracer reads the reply before this
        handler's `on_llm_end` runs, so that is too late for LangSmith."""
        try:
            carrying = [u for g in generations if (u := getattr(g.message, "usage_metadata", None))]
            if len(carrying) != 1 or self.model.input is None:
                return
            usage = TokenUsage.from_usage_metadata(carrying[0], check=False)
            usage.check()
            _send_cost(LLMResult(generations=[list(generations)]), self.model, usage,
                       billed=self.billed, estimated=None)  # fmt: skip
        except Exception:  # a cost for tracing must never fail the call
            log.debug("cost not stamped on a reply", exc_info=True)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        latency = self._latency_ms(run_id)
        with self._lock:
            self._prompts.pop(run_id, None)
            refused = run_id in self._refused
            self._refused.discard(run_id)
        if refused:  # `reserve_deferred` refused it before it was sent: nothing to record
            return
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
        estimated: bool = False,
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
            estimated=estimated,
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


class CostStamp(BaseCallbackHandler):
    """Stamps a finished reply's cost, ahead of a traced parent's tracer (`stamping_first`):
    for a streamed reply the model merges the chunks right before `on_llm_end`, with no hook of
    the model's in between, and the inherited tracer copies the reply at its own `on_llm_end`,
    which runs before the model's own callbacks. Writes no row (its cost handler does)."""

    run_inline = True  # in order with the tracer, which is inline too
    raise_error = False

    def __init__(self, cost: CostCallbackHandler) -> None:
        self.cost = cost

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        if _served_from_cache(response) or _core_cache_mark(_first_usage(response)):
            return  # a hit is $0: the stored reply keeps its tokens, never a price
        self.cost.stamp_cost(
            [g for gens in response.generations for g in gens if isinstance(g, ChatGeneration)]
        )


def stamping_first(callbacks: Callbacks, own: Any) -> Callbacks:
    """A run's inherited `callbacks` with the cost stamp of the model's own cost handler (among
    `own`) first, so a traced parent's tracer sends LangSmith our exact cost for streamed
    replies too; `callbacks` unchanged when the model has no cost handler or none is given (the
    environment's tracer is then appended after the model's own callbacks)."""
    handler = cost_handler(own)
    if handler is None or callbacks is None:
        return callbacks
    stamp = handler.stamp
    if isinstance(callbacks, BaseCallbackManager):
        first = callbacks.copy()
        first.handlers = [stamp, *(h for h in callbacks.handlers if h is not stamp)]
        return first
    return [stamp, *(h for h in callbacks if h is not stamp)]


def cost_handler(callbacks: Any) -> CostCallbackHandler | None:
    """The cost handler among a model's own `callbacks` (the factory attaches one)."""
    for handler in callbacks if isinstance(callbacks, list) else ():
        if isinstance(handler, CostCallbackHandler):
            return handler
    return None


def stamp_costs(callbacks: Any, generations: Sequence[ChatGeneration]) -> None:
    """`CostCallbackHandler.stamp_cost` of the cost handler among a model's `callbacks`."""
    handler = cost_handler(callbacks)
    if handler is not None:
        handler.stamp_cost(generations)


def _first_usage(response: LLMResult) -> Mapping[str, Any] | None:
    """Usage of one API call: the first generation carrying it (n>1 repeats the same total)."""
    for gens in response.generations:
        for gen in gens:
            if isinstance(gen, ChatGeneration):
                um = getattr(gen.message, "usage_metadata", None)
                if um:
                    return um
    return None


def _first_message(response: LLMResult) -> BaseMessage | None:
    for gens in response.generations:
        for gen in gens:
            if isinstance(gen, ChatGeneration):
                return gen.message
    return None


def _core_cache_mark(usage_md: Mapping[str, Any] | None) -> bool:
    """langchain-core's cache-hit mark: `total_cost` set to the int 0 (and no other cost key,
    `_convert_cached_generations`). The costs this handler writes are floats beside
    `input_cost` / `output_cost`, so a real $0 call priced here is never read as a hit."""
    if usage_md is None:
        return False
    total = usage_md.get("total_cost")
    return type(total) is int and total == 0


def _send_cost(
    response: LLMResult,
    model: ModelConfig,
    usage: TokenUsage,
    *,
    billed: bool,
    estimated: TokenUsage | None,
) -> None:
    """Write the call's cost in USD (what was paid: $0 on an unbilled route) into the reply's
    `usage_metadata`, where LangChain's tracer reads it for LangSmith. An estimated call gets
    its locally counted tokens there too. Only one generation may carry usage: the tracer sums
    the generations' usage with `add_usage`, which accepts ints only."""
    carrying = [
        g
        for gens in response.generations
        for g in gens
        if isinstance(g, ChatGeneration) and getattr(g.message, "usage_metadata", None)
    ]
    if estimated is not None:
        message = _first_message(response)
        if carrying or message is None or not hasattr(message, "usage_metadata"):
            return
        target = message
        base: dict[str, Any] = {
            "input_tokens": estimated.input_tokens,
            "output_tokens": estimated.output_tokens,
            "total_tokens": estimated.input_tokens + estimated.output_tokens,
        }
    elif len(carrying) == 1:
        target = carrying[0].message
        base = dict(target.usage_metadata)  # type: ignore[attr-defined]
    else:
        return
    inp, cached, out = cost_parts_nanousd(model, usage) if billed else (0, 0, 0)
    base.update(
        input_cost=inp / 1e9,
        output_cost=out / 1e9,
        total_cost=(inp + out) / 1e9,
        input_cost_details={"cache_read": cached / 1e9},
    )
    target.usage_metadata = base  # type: ignore[attr-defined]


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
