"""The REST API, mounted in the LangGraph server (`"http": {"app": "./agents/api.py:app"}`).

Same API keys and users as the graph routes (`agents.auth`). Endpoints are plain `def`s: FastAPI
runs them in its threadpool, so a minute-long call to the embedded model never blocks the
server's event loop. Every error is `{"error": {"type", "message", "allowed"?}}`:
400 bad input (unknown service, model, tier, symbol, group), 422 a body or query that fails its
schema, 401 no or bad key, 403 a model the policy forbids or another user's data, 404 a missing
backtest, 413 a prompt over the model's context window (checked before any model call),
429 over the per-user rate or daily budget (with Retry-After), 503 the vector store down.

`/metrics` is Prometheus text from the global registry: calls, tokens and cost by service and
model from the ledger, plus request counters. Under `langgraph dev` the server's own `/metrics`
route serves that same registry (it shadows ours), with the server's metrics alongside; there
the ledger numbers are a snapshot at most 5 s old (no SQL on the server's event loop).
"""

import logging
import math
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from agents.auth import is_admin, key_from_headers, user_for_key
from agents.backtests import SYMBOLS, BacktestResult
from agents.limits import QuotaExceededError, count_tokens
from agents.models import (
    SERVICES,
    ModelConfig,
    ModelNotAllowedError,
    ModelTier,
    UnknownModelError,
    UnknownServiceError,
    available_models,
    validate_model,
)
from agents.settings import get_settings

log = logging.getLogger(__name__)

GROUPS = ("model", "service", "user", "day", "route")
# Tokens of the fixed prompt parts around the user's text (system prompt, few-shot example,
# retrieved context, tool descriptions), measured from the graphs' prompts and rounded up.
PROMPT_OVERHEAD = {
    "strategy_builder": 1500,
    "narrative_report": 600,
    "chatops_advanced": 1200,
    "prompt_governance": 150,
}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error with its HTTP status; rendered as the one JSON error shape."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        allowed: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.allowed = allowed
        self.headers = headers


def error_response(
    status: int,
    type_: str,
    message: str,
    allowed: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "message": message}
    if allowed is not None:
        body["allowed"] = allowed
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _model_error(exc: Exception, service: str) -> ApiError:
    """Map the model layer's errors to statuses, naming the valid choices."""
    if isinstance(exc, ModelNotAllowedError):
        return ApiError(403, "model_not_allowed", str(exc), allowed=exc.allowed)
    if isinstance(exc, UnknownServiceError):
        return ApiError(400, "unknown_service", str(exc), allowed=list(SERVICES))
    if isinstance(exc, UnknownModelError):
        allowed = [m.id for m in available_models(service)] if service in SERVICES else None
        return ApiError(400, "unknown_model", str(exc), allowed=allowed)
    raise exc


# --------------------------------------------------------------------------------------------
# Auth, rate limit, the context-window check
# --------------------------------------------------------------------------------------------


def current_user(request: Request) -> str:
    """The caller's user id from `x-api-key` or `Authorization: Bearer` (same keys as graphs)."""
    key = key_from_headers(request.headers)
    if key is None:
        raise ApiError(401, "unauthorized", "missing API key: send 'x-api-key' or a Bearer token")
    user = user_for_key(key)
    if user is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    request.state.user_id = user
    return user


User = Annotated[str, Depends(current_user)]


class TokenBucket:
    """Per-user token bucket: `burst` requests at once, refilled at `per_min` a minute.

    In-process only; a multi-worker deployment needs the shared (Redis) limiter of the quota
    work, which will also reserve worst-case spend before a call.
    """

    def __init__(self, per_min: float, burst: int) -> None:
        self.rate = per_min / 60.0
        self.burst = float(burst)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float | None:
        """None if allowed, else seconds until a request would be."""
        if self.rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                return None
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


_bucket: TokenBucket | None = None
_bucket_lock = threading.Lock()


def _rate_bucket() -> TokenBucket:
    global _bucket
    with _bucket_lock:
        if _bucket is None:
            s = get_settings()
            _bucket = TokenBucket(s.rate_per_min, s.rate_burst)
        return _bucket


def rate_limited_user(user: User) -> str:
    """The caller, if under the per-user rate of model-calling routes (else 429)."""
    wait = _rate_bucket().take(user)
    if wait is not None:
        retry = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests for user {user!r}; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
    return user


LimitedUser = Annotated[str, Depends(rate_limited_user)]


def context_window(model: ModelConfig) -> int:
    """Tokens per request the model will really have: the local server's slot may be smaller.

    Mirrors `agents.factory.resolve_route` without starting the local server.
    """
    s = get_settings()
    window = model.context_window
    if model.id not in s.model_routes and (model.local or not s.uses_openai):
        window = min(window, s.local_model_ctx)
    return window


def check_fits(service: str, model: ModelConfig, text: str, max_tokens: int) -> None:
    """413 before any model call when the prompt plus the output cap cannot fit."""
    window = context_window(model)
    need = count_tokens(text) + PROMPT_OVERHEAD[service] + max_tokens
    if need > window:
        raise ApiError(
            413,
            "prompt_too_large",
            f"the prompt needs about {need} tokens (with {max_tokens} for the answer) but "
            f"{model.id} has a context window of {window} tokens here; shorten it",
        )


def _validated(service: str, model: str | None) -> ModelConfig:
    try:
        return validate_model(service, model)
    except (ModelNotAllowedError, UnknownModelError, UnknownServiceError) as exc:
        raise _model_error(exc, service) from exc


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class StrategyRequest(_Body):
    request: str = Field(min_length=1, description="The strategy to build, in words")
    model: str | None = None
    symbol: str = "GOOG"
    max_repairs: int = Field(default=2, ge=0, le=5)
    max_tokens: int = Field(default=600, ge=16, le=4096)
    use_rag: bool = True


class ReportRequest(_Body):
    backtest: BacktestResult | None = None
    backtest_id: str | None = None
    request: str = ""
    chart: bool = False
    model: str | None = None
    max_tokens: int = Field(default=256, ge=16, le=4096)
    max_attempts: int = Field(default=2, ge=0, le=5)


class ChatRequest(_Body):
    message: str = Field(min_length=1)
    thread_id: str = Field(min_length=1, max_length=200)
    model: str | None = None
    max_tokens: int = Field(default=512, ge=16, le=4096)


class GovernanceRequest(_Body):
    text: str
    model: str | None = None
    use_model: bool = True
    banned_words: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


class _RequestCounter:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self.lock = threading.Lock()

    def add(self, method: str, route: str, status: int) -> None:
        with self.lock:
            key = (method, route, str(status))
            self.counts[key] = self.counts.get(key, 0) + 1


REQUESTS = _RequestCounter()


class _LedgerSnapshot:
    """Ledger totals by service and model, refreshed off the event loop.

    The LangGraph server serves `/metrics` from an async handler, where a SQL query would block
    the event loop (`langgraph dev` raises on it): scrapes read the last snapshot, which a
    daemon thread refreshes every `REFRESH_S` (started by the first scrape).
    """

    REFRESH_S = 5.0

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        try:
            from agents.costs import usage_report

            rows = usage_report(group_by=("service", "model"))
        except Exception as exc:  # a scrape must not fail because the ledger is busy
            log.warning("metrics: ledger unavailable: %s", type(exc).__name__)
            return
        self.rows = rows

    def _loop(self) -> None:
        while True:
            self.refresh()
            time.sleep(self.REFRESH_S)

    def current(self) -> list[Any]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="quant-genai-metrics", daemon=True
                )
                self._thread.start()
        return self.rows


LEDGER = _LedgerSnapshot()


class QuantGenaiCollector(Collector):
    """Ledger totals by service and model, and REST request counts, at scrape time."""

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "quant_genai_http_requests",
            "REST requests by method, route and status",
            labels=["method", "route", "status"],
        )
        with REQUESTS.lock:
            for (method, route, status), n in sorted(REQUESTS.counts.items()):
                requests.add_metric([method, route, status], n)
        yield requests
        rows = LEDGER.current()
        labels = ["service", "model"]
        calls = CounterMetricFamily("quant_genai_llm_calls", "Model calls", labels=labels)
        errors = CounterMetricFamily("quant_genai_llm_errors", "Failed model calls", labels=labels)
        tokens = CounterMetricFamily(
            "quant_genai_llm_tokens", "Tokens by kind", labels=[*labels, "kind"]
        )
        cost = CounterMetricFamily(
            "quant_genai_llm_cost_usd", "Cost actually paid (USD)", labels=labels
        )
        list_price = CounterMetricFamily(
            "quant_genai_llm_list_price_usd",
            "Catalog list price of the same tokens (USD)",
            labels=labels,
        )
        for r in rows:
            lv = [r.service or "", r.model or ""]
            calls.add_metric(lv, r.calls)
            errors.add_metric(lv, r.errors)
            for kind in ("input", "cached_input", "output", "reasoning"):
                tokens.add_metric([*lv, kind], getattr(r, f"{kind}_tokens"))
            cost.add_metric(lv, float(r.cost_usd))
            list_price.add_metric(lv, float(r.list_price_usd))
        yield from (calls, errors, tokens, cost, list_price)


def _register_collector() -> None:
    """Once per process, even if this module is loaded twice (by path and by name)."""
    if getattr(REGISTRY, "_quant_genai_registered", False):
        return
    REGISTRY.register(QuantGenaiCollector())
    REGISTRY._quant_genai_registered = True  # type: ignore[attr-defined]


_register_collector()


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------

app = FastAPI(
    title="quant-genai",
    description="Models per service, strategies, reports, chat, governance, usage.",
    version="0.1.0",
)


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.type, exc.message, exc.allowed, exc.headers)


@app.exception_handler(QuotaExceededError)
async def _quota_error(request: Request, exc: QuotaExceededError) -> JSONResponse:
    """Over the user's daily budget (counting calls in flight): 429, nothing was sent."""
    return error_response(
        429, "quota_exceeded", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
    )


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Schema failures are 422 with each problem located (`body.request: Field required`)."""
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    ]
    return error_response(422, "validation_error", "; ".join(problems) or "invalid request")


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, "http_error", str(exc.detail))


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Same shape for bugs; the message stays generic (it could carry secrets or paths)."""
    log.error("unhandled error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", f"internal error ({type(exc).__name__})")


@app.middleware("http")
async def _count_requests(request: Request, call_next: Any) -> Response:
    """Counts our own routes only (by route template, so ids do not explode the labels)."""
    response: Response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and (path.startswith("/v1/") or path == "/metrics"):
        REQUESTS.add(request.method, path, response.status_code)
    return response


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status)


@app.get("/v1/models")
def list_models(
    user: User,
    service: Annotated[str, Query(description="One of the four services")],
    tier: Annotated[str | None, Query(description="mini, standard, advanced or premium")] = None,
) -> JSONResponse:
    """Models the service's policy allows (optionally one tier), cheapest first."""
    if service not in SERVICES:
        raise ApiError(
            400,
            "unknown_service",
            f"unknown service {service!r}; services: {', '.join(SERVICES)}",
            allowed=list(SERVICES),
        )
    tiers = [t.value for t in ModelTier]
    if tier is not None and tier not in tiers:
        raise ApiError(
            400, "unknown_tier", f"unknown tier {tier!r}; tiers: {', '.join(tiers)}", allowed=tiers
        )
    models = available_models(service, tier)
    return _json({"service": service, "tier": tier, "models": [m.model_dump() for m in models]})


@app.post("/v1/governance/check")
def governance_check(body: GovernanceRequest, user: LimitedUser) -> JSONResponse:
    """Verdict, reasons and masked text; a model is asked only when the rules are unsure."""
    from graphs.prompt_governance import check_prompt

    model = _validated("prompt_governance", body.model)
    check_fits("prompt_governance", model, body.text, 0)
    report = check_prompt(
        body.text,
        user_id=user,
        model=body.model,
        use_model=body.use_model,
        banned_words=body.banned_words,
    )
    return _json(report.model_dump())


@app.post("/v1/strategies")
def generate_strategy(body: StrategyRequest, user: LimitedUser) -> JSONResponse:
    """Generate, validate, backtest and index a strategy (minutes on the embedded model)."""
    from graphs.strategy_builder import Context, InputState, graph

    model = _validated("strategy_builder", body.model)
    if body.symbol not in SYMBOLS:
        raise ApiError(
            400,
            "unknown_symbol",
            f"unknown symbol {body.symbol!r}; bundled symbols: {', '.join(SYMBOLS)}",
            allowed=list(SYMBOLS),
        )
    check_fits("strategy_builder", model, body.request, body.max_tokens)
    ctx = Context(
        user_id=user,
        model=body.model,
        symbol=body.symbol,
        max_repairs=body.max_repairs,
        max_tokens=body.max_tokens,
        use_rag=body.use_rag,
    )
    out = graph.invoke(InputState(request=body.request), context=ctx)
    return _json(out)


@app.post("/v1/reports")
def write_report(body: ReportRequest, user: LimitedUser) -> JSONResponse:
    """A narrative report of one backtest, inline or by id from the caller's store."""
    from agents.retrieval import RetrievalUnavailableError
    from graphs.narrative_report import BacktestNotFoundError, Context, InputState, graph

    if (body.backtest is None) == (body.backtest_id is None):
        raise ApiError(400, "bad_request", "give exactly one of `backtest` or `backtest_id`")
    model = _validated("narrative_report", body.model)
    check_fits("narrative_report", model, body.request, body.max_tokens)
    ctx = Context(
        user_id=user,
        model=body.model,
        max_tokens=body.max_tokens,
        max_attempts=body.max_attempts,
    )
    inp = InputState(
        backtest=body.backtest, backtest_id=body.backtest_id, request=body.request, chart=body.chart
    )
    try:
        out = graph.invoke(inp, context=ctx)
    except BacktestNotFoundError as exc:
        raise ApiError(404, "backtest_not_found", str(exc)) from exc
    except RetrievalUnavailableError as exc:
        raise ApiError(503, "retrieval_unavailable", str(exc)) from exc
    return _json(out)


@app.post("/v1/chat")
def chat_turn(body: ChatRequest, user: LimitedUser) -> JSONResponse:
    """One turn of a per-user thread (memory in this server process)."""
    from graphs.chatops import chat

    model = _validated("chatops_advanced", body.model)
    check_fits("chatops_advanced", model, body.message, body.max_tokens)
    reply = chat(
        body.message,
        user_id=user,
        thread_id=body.thread_id,
        model=body.model,
        max_tokens=body.max_tokens,
    )
    return _json({"thread_id": body.thread_id, "reply": reply})


@app.post("/v1/backtests", status_code=201)
def index_backtest(result: BacktestResult, user: User) -> JSONResponse:
    """The auto-index hook: a finished backtest of the caller goes into their stores."""
    from agents.retrieval import RetrievalUnavailableError, get_retriever

    if result.user_id != user:
        raise ApiError(
            403, "forbidden", f"backtest belongs to user {result.user_id!r}, not to the caller"
        )
    try:
        get_retriever().on_backtest_completed(result)
    except RetrievalUnavailableError as exc:
        raise ApiError(503, "retrieval_unavailable", str(exc)) from exc
    return _json({"id": result.id, "user_id": user, "indexed": True}, status=201)


@app.get("/v1/usage")
def usage(
    user: User,
    group_by: Annotated[str, Query(description="Comma-separated: " + ", ".join(GROUPS))] = "model",
    since: Annotated[date | datetime | None, Query(description="ISO date or datetime")] = None,
    service: str | None = None,
    all_users: Annotated[bool, Query(description="Every user's usage (admins only)")] = False,
) -> JSONResponse:
    """The caller's usage and cost; admins (QUANT_GENAI_ADMIN_USERS) may ask for everyone's."""
    from agents.costs import usage_report

    keys = [k.strip() for k in group_by.split(",") if k.strip()]
    bad = [k for k in keys if k not in GROUPS]
    if bad or not keys:
        raise ApiError(
            400,
            "bad_group_by",
            f"cannot group by {bad or group_by!r}; choose from {', '.join(GROUPS)}",
            allowed=list(GROUPS),
        )
    if service is not None and service not in SERVICES:
        raise ApiError(
            400, "unknown_service", f"unknown service {service!r}", allowed=list(SERVICES)
        )
    if all_users and not is_admin(user):
        raise ApiError(403, "forbidden", "only admin users may read every user's usage")
    rows = usage_report(
        None if all_users else user,
        service,
        since,
        group_by=keys,  # type: ignore[arg-type]
    )
    return _json(
        {
            "user_id": None if all_users else user,
            "group_by": keys,
            "since": since,
            "rows": [r.model_dump() for r in rows],
        }
    )


@app.get("/metrics")
def metrics() -> Response:
    """Prometheus text (also served by the LangGraph server's own `/metrics`)."""
    LEDGER.refresh()  # in the threadpool here: fresh numbers for free
    return Response(generate_latest(REGISTRY), media_type="text/plain; version=0.0.4")
