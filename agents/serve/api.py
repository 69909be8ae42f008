"""The REST API, mounted in the LangGraph server (`"http": {"app": "./agents/serve/api.py:app"}`).

Same API keys and users as the graph routes (`agents.serve.auth`). Endpoints are plain `def`s:
FastAPI runs them in its threadpool, so a minute-long call to the embedded model never blocks
the server's event loop. `POST /v1/reports/stream` and `POST /v1/chat/stream` take the same
bodies as `/v1/reports` and `/v1/chat` and answer with server-sent events
(`agents.serve.streaming`): the same checks run first (in the threadpool), the graph streams in
a thread of its own, and an error before the first event is the route's usual JSON error.

Every error is `{"error": {"type", "message", "allowed"?}}`: 400 bad input (unknown service,
model, tier, symbol, group; a chart that cannot be drawn), 422 a body or query that fails its
schema or a body that is not strict JSON (`strict_json`), 401 no or bad key (before the body is
read or the route matched: `agents.serve.guards.KeyRequired`), 403
a model the policy forbids or another user's data, 404 a missing backtest, 413 a prompt over the
model's context window where it is served (checked before any model call, with each graph's own
fixed prompt tokens), 429 over a rate limit per service (`agents.usage.rates`) or daily
budget (both with Retry-After), 503 the vector store down.

`/metrics` is Prometheus text from the global registry (`agents.serve.metrics`): calls, tokens
and cost by service and model from the ledger, plus request counters; it takes the metrics token
or an admin's key. `langgraph.json` sets `disable_meta`, so the LangGraph server's own
unauthenticated `/metrics`, `/docs` and `/openapi.json` are gone: ours serve (the REST API's
spec) and `/info` is passed through for Studio. A body over `QUANT_GENAI_MAX_BODY_BYTES` is 413
before it is read; the per-user rate counts a request only after its checks passed.
"""

import logging
from datetime import date, datetime
from typing import Annotated, Any

import openai
from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from agents.governance.gate import screen_is_cheap
from agents.llm.catalog import (
    SERVICES,
    ModelConfig,
    ModelNotAllowedError,
    ModelTier,
    UnknownModelError,
    UnknownServiceError,
    available_models,
    validate_model,
)
from agents.llm.factory import context_window
from agents.quant.backtests import SYMBOLS, BacktestResult
from agents.quant.datasets import (
    DatasetNotFoundError,
    dataset_path,
    list_datasets,
    register_dataset,
)
from agents.rag.store import RetrievalUnavailableError, get_retriever
from agents.serve import admin_budgets, admin_limits, streaming
from agents.serve.auth import is_admin
from agents.serve.errors import ApiError, User
from agents.serve.guards import (
    METRICS_KEY,
    BodyLimit,
    KeyRequired,
    metrics_access,
)
from agents.serve.metrics import CONTENT_TYPE, CountRequests, count_request, exposition
from agents.serve.strict_json import StrictJsonRoute
from agents.usage.budgets import BUDGET_SERVICES
from agents.usage.ledger import usage_report
from agents.usage.limits import BudgetUnavailableError, QuotaExceededError, count_tokens
from agents.usage.rates import RateLimitExceededError, rate_limits
from graphs import chatops_advanced, narrative_report, prompt_governance, strategy_builder

log = logging.getLogger(__name__)

GROUPS = ("model", "service", "user", "day", "route")
# Tokens of the fixed prompt parts around the user's text, computed by each graph from its own
# prompts; a graph's module name is its service id.
PROMPT_OVERHEAD: dict[str, int] = {
    g.__name__.removeprefix("graphs."): g.PROMPT_OVERHEAD_TOKENS
    for g in (strategy_builder, narrative_report, chatops_advanced, prompt_governance)
}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def api_error(exc: BaseException, where: str = "a route") -> ApiError:
    """The API's error for an exception a route or a streamed graph run raised."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RateLimitExceededError):  # which limit, in the message and headers
        return ApiError(429, "rate_limited", str(exc), headers=exc.headers())
    if isinstance(exc, QuotaExceededError):
        retry = {"Retry-After": str(exc.retry_after_s)}
        return ApiError(429, "quota_exceeded", str(exc), headers=retry)
    if isinstance(exc, BudgetUnavailableError):  # fail closed: nothing was sent
        return ApiError(503, "budget_unavailable", str(exc), headers={"Retry-After": "2"})
    if isinstance(exc, narrative_report.BacktestNotFoundError):
        return ApiError(404, "backtest_not_found", str(exc))
    if isinstance(exc, RetrievalUnavailableError):
        return ApiError(503, "retrieval_unavailable", str(exc))
    if isinstance(exc, ModelNotAllowedError | UnknownModelError | UnknownServiceError):
        return _model_error(exc, "")  # a graph's own model check (routes check first)
    if isinstance(
        exc, openai.APIConnectionError | openai.RateLimitError | openai.InternalServerError
    ):
        # the endpoint, after the SDK's retries and any fallback model; the call's ledger row
        # keeps the reason (the message here stays generic: it could name a host)
        return ApiError(
            503,
            "model_unavailable",
            f"the model endpoint did not answer ({type(exc).__name__}); try again",
            headers={"Retry-After": "5"},
        )
    # Same shape for bugs; the message stays generic (it could carry secrets or paths).
    log.error("unhandled error on %s: %s", where, type(exc).__name__, exc_info=exc)
    return ApiError(500, "internal_error", f"internal error ({type(exc).__name__})")


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


def count_model_request(user: str, service: str, model: str | None) -> None:
    """Counts one request against the (user, service) and (service, model) request limits
    (`agents.usage.rates`; 429 when over). Called by a route after its body, model and context
    checks passed: a request refused for bad input costs nothing (a FastAPI dependency would
    run before the body is validated)."""
    try:
        rate_limits().hit_request(service, _validated(service, model).id, user)
    except RateLimitExceededError as exc:
        raise api_error(exc) from exc


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


def _not_blank(text: str) -> str:
    if not text.strip():  # str.strip() also drops control separators such as "\x1e"
        raise ValueError("must contain some words, not only whitespace or control characters")
    return text


Words = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]


class StrategyRequest(_Body):
    request: Annotated[Words, Field(description="The strategy to build, in words")]
    model: str | None = None
    symbol: str = "GOOG"
    max_repairs: int = Field(default=2, ge=0, le=5)
    max_tokens: int = Field(default=600, ge=16, le=4096)
    use_rag: bool = True
    dataset_id: str | None = Field(
        default=None,
        pattern=r"^ds-[0-9a-f]{16}$",
        description="One of your uploaded datasets (POST /v1/datasets) instead of the bundled "
        "symbol's data",
    )


class DatasetUpload(_Body):
    name: str = Field(
        default="upload",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
        description="A label for the dataset",
    )
    csv: str = Field(
        min_length=1,
        description="The OHLCV CSV itself: a Date column, Open, High, Low, Close, optional Volume",
    )


class ReportRequest(_Body):
    backtest: BacktestResult | None = None
    backtest_id: str | None = Field(default=None, min_length=1)  # "" is no id (the graph's view)
    request: str = ""
    chart: bool = False
    model: str | None = None
    max_tokens: int = Field(default=64, ge=16, le=4096)
    max_attempts: int = Field(default=2, ge=0, le=5)


class ChatRequest(_Body):
    message: Words
    thread_id: str = Field(min_length=1, max_length=200)
    model: str | None = None
    max_tokens: int = Field(default=512, ge=16, le=4096)


class GovernanceRequest(_Body):
    text: str
    model: str | None = None
    use_model: bool = True
    banned_words: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------

app = FastAPI(
    title="quant-genai",
    description="Models per service, strategies, reports, chat, governance, usage.",
    version="0.1.0",
)
app.router.route_class = StrictJsonRoute  # before the routes below are declared


app.add_middleware(BodyLimit)
app.add_middleware(KeyRequired)  # outside BodyLimit: no key, no 413 either
app.include_router(admin_limits.router)  # /v1/limits, /v1/admin/limits
app.include_router(admin_budgets.router)  # /v1/budgets, /v1/admin/budgets, /v1/alerts


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


@app.exception_handler(RateLimitExceededError)  # a token limit hit inside a graph run
@app.exception_handler(QuotaExceededError)
async def _quota_error(request: Request, exc: QuotaExceededError) -> JSONResponse:
    """Over the user's daily budget (counting calls in flight): 429, nothing was sent."""
    return api_error(exc).response()


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Schema failures are 422 with each problem located (`body.request: Field required`)."""
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        + (f" ({e['ctx']['error']})" if e.get("type") == "json_invalid" and e.get("ctx") else "")
        for e in exc.errors()
    ]
    return ApiError(422, "validation_error", "; ".join(problems) or "invalid request").response()


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return ApiError(exc.status_code, "http_error", str(exc.detail)).response()


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Same shape for bugs; the message stays generic (it could carry secrets or paths)."""
    return api_error(exc, request.url.path).response()


# Counts our own routes by route template (pure ASGI: `@app.middleware("http")` cost ~0.5 ms).
app.add_middleware(CountRequests, count=count_request)


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
async def governance_check(body: GovernanceRequest, user: User) -> JSONResponse:
    """Verdict, reasons and masked text; a model is asked only when the rules are unsure.
    With `use_model: false` no model runs: the request is not counted against the model-call
    rate and the text is not bounded by a model's context window (and when no embedding is
    needed either, it runs on the event loop: a fraction of a millisecond)."""
    if not body.use_model and screen_is_cheap(body.text):
        return _governance_check(body, user)
    return await run_in_threadpool(_governance_check, body, user)


def _governance_check(body: GovernanceRequest, user: str) -> JSONResponse:
    model = _validated("prompt_governance", body.model)  # the graph refuses it too: 400, not 500
    if body.use_model:
        check_fits("prompt_governance", model, body.text, 0)
        count_model_request(user, "prompt_governance", body.model)
    report = prompt_governance.check_prompt(
        body.text, user_id=user, **body.model_dump(exclude={"text"})
    )
    return JSONResponse(report.model_dump(mode="json"))


@app.post("/v1/strategies")
def generate_strategy(body: StrategyRequest, user: User) -> JSONResponse:
    """Generate, validate, backtest and index a strategy (minutes on the embedded model)."""
    model = _validated("strategy_builder", body.model)
    if body.symbol not in SYMBOLS:
        raise ApiError(
            400,
            "unknown_symbol",
            f"unknown symbol {body.symbol!r}; bundled symbols: {', '.join(SYMBOLS)}",
            allowed=list(SYMBOLS),
        )
    check_fits("strategy_builder", model, body.request, body.max_tokens)
    if body.dataset_id is not None:
        try:
            dataset_path(user, body.dataset_id)
        except DatasetNotFoundError as exc:
            raise ApiError(404, "dataset_not_found", str(exc)) from exc
    count_model_request(user, "strategy_builder", body.model)
    keep = {"model", "symbol", "max_repairs", "max_tokens", "use_rag", "dataset_id"}
    params = body.model_dump(include=keep)
    out = strategy_builder.build_strategy(body.request, user_id=user, **params)
    return _json(out)


@app.post("/v1/datasets", status_code=201)
def upload_dataset(body: DatasetUpload, user: User) -> JSONResponse:
    """Keep an OHLCV CSV as one of the caller's datasets (validated as a backtest reads it; at
    most `QUANT_GENAI_MAX_DATASET_BYTES`); strategies then take its id."""
    try:
        info = register_dataset(user, body.csv, name=body.name)
    except ValueError as exc:
        raise ApiError(400, "invalid_dataset", str(exc)) from exc
    return _json(info.model_dump(), status=201)


@app.get("/v1/datasets")
def my_datasets(user: User) -> JSONResponse:
    """The caller's datasets, newest first."""
    return _json({"datasets": [d.model_dump() for d in list_datasets(user)]})


def _check_report(body: ReportRequest, user: str) -> None:
    """What `/v1/reports` and its stream check before any work (400, 403, 404, 413)."""
    if (body.backtest is None) == (body.backtest_id is None):
        raise ApiError(400, "bad_request", "give exactly one of `backtest` or `backtest_id`")
    model = _validated("narrative_report", body.model)
    check_fits("narrative_report", model, body.request, body.max_tokens)
    if body.chart:
        _check_chart(body.backtest or _stored_backtest(user, str(body.backtest_id)))


def _stored_backtest(user: str, backtest_id: str) -> BacktestResult:
    """One of the caller's backtests, as the report's graph will load it (404, 503)."""
    try:
        found = get_retriever().get_backtest(user, backtest_id)
    except RetrievalUnavailableError as exc:
        raise api_error(exc) from exc
    if found is None:
        raise api_error(
            narrative_report.BacktestNotFoundError(f"no backtest {backtest_id!r} for user {user!r}")
        )
    return found


def _check_chart(backtest: BacktestResult) -> None:
    """400 before any model call when a backtest's equity chart cannot be drawn (the
    chart is drawn after the narrative, so its failure would otherwise be a 500 after the
    model calls): matplotlib refuses dates whose axis reaches past years 1-9999, amounts near
    the float limit, and TeX it cannot parse between `$`s in the strategy's name."""
    try:
        narrative_report.equity_chart_png(backtest)
    except Exception as exc:  # whatever matplotlib raises; the same call fails in the graph
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise ApiError(
            400,
            "chart_unavailable",
            f"the equity chart of this backtest cannot be drawn ({type(exc).__name__}: "
            f"{detail[:200]}); check its equity_curve dates and amounts and its strategy_name "
            "and symbol, or ask without `chart`",
        ) from exc


@app.post("/v1/reports")
def write_report(body: ReportRequest, user: User) -> JSONResponse:
    """A narrative report of one backtest, inline or by id from the caller's store."""
    _check_report(body, user)
    count_model_request(user, "narrative_report", body.model)
    try:
        out = narrative_report.write_report(
            body.backtest,
            user_id=user,
            **body.model_dump(exclude={"backtest"}),
        )
    except (narrative_report.BacktestNotFoundError, RetrievalUnavailableError) as exc:
        raise api_error(exc) from exc
    return _json(streaming.report_json(out))


_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}
}


@app.post("/v1/reports/stream", response_class=StreamingResponse, responses=_SSE)
async def stream_report(body: ReportRequest, user: User, request: Request) -> Response:
    """`/v1/reports` as server-sent events: `sentence` per accepted passage, then `report` (the
    body `/v1/reports` returns); `error` (the error body) if the run fails once started."""
    await run_in_threadpool(_check_report, body, user)
    await run_in_threadpool(count_model_request, user, "narrative_report", body.model)
    run = streaming.report_run(body.backtest, user_id=user, **body.model_dump(exclude={"backtest"}))
    return await streaming.event_stream(request, run, lambda e: api_error(e, request.url.path))


def _check_chat(body: ChatRequest) -> None:
    """What `/v1/chat` and its stream check before any work (400, 403, 413)."""
    model = _validated("chatops_advanced", body.model)
    check_fits("chatops_advanced", model, body.message, body.max_tokens)


@app.post("/v1/chat")
def chat_turn(body: ChatRequest, user: User) -> JSONResponse:
    """One turn of a per-user thread; memory is durable (SQLite under the data dir, or Postgres)."""
    _check_chat(body)
    count_model_request(user, "chatops_advanced", body.model)
    reply = chatops_advanced.chat_turn(
        body.message, user_id=user, **body.model_dump(exclude={"message"})
    )
    return _json(streaming.chat_json(body.thread_id, reply))


@app.post("/v1/chat/stream", response_class=StreamingResponse, responses=_SSE)
async def stream_chat(body: ChatRequest, user: User, request: Request) -> Response:
    """`/v1/chat` as server-sent events: `tool` per call and per result, `answer` once the
    reply is accepted, then `done` (the body `/v1/chat` returns); `error` if the run fails once
    started."""
    await run_in_threadpool(_check_chat, body)
    await run_in_threadpool(count_model_request, user, "chatops_advanced", body.model)
    run = streaming.chat_run(body.message, user_id=user, **body.model_dump(exclude={"message"}))
    return await streaming.event_stream(request, run, lambda e: api_error(e, request.url.path))


@app.post("/v1/backtests", status_code=201)
def index_backtest(result: BacktestResult, user: User) -> JSONResponse:
    """The auto-index hook: a finished backtest of the caller goes into their stores."""
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
    keys = [k.strip() for k in group_by.split(",") if k.strip()]
    bad = [k for k in keys if k not in GROUPS]
    if bad or not keys:
        raise ApiError(
            400,
            "bad_group_by",
            f"cannot group by {bad or group_by!r}; choose from {', '.join(GROUPS)}",
            allowed=list(GROUPS),
        )
    if service is not None and service not in BUDGET_SERVICES:  # and "embeddings"
        raise ApiError(
            400, "unknown_service", f"unknown service {service!r}", allowed=list(BUDGET_SERVICES)
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
def metrics(request: Request) -> Response:
    """Prometheus text: totals by service and model, no user label. Needs the scraper's token
    (`QUANT_GENAI_METRICS_TOKEN`) or an admin's API key (`agents.serve.guards`)."""
    refused = metrics_access(request.headers)
    if refused == "unauthorized":
        raise ApiError(401, "unauthorized", METRICS_KEY)
    if refused == "forbidden":
        raise ApiError(403, "forbidden", "only the metrics token or an admin's key reads metrics")
    return Response(exposition(), media_type=CONTENT_TYPE)  # in the threadpool: fresh numbers


@app.get("/info", include_in_schema=False)
async def info(request: Request) -> Response:
    """The LangGraph server's `/info` (Studio reads it): `langgraph.json` disables the server's
    meta routes so that its unauthenticated `/metrics` is gone, and this one takes its place."""
    try:
        from langgraph_api.api.meta import meta_info
    except Exception:  # not inside the LangGraph server (plain uvicorn)
        return JSONResponse({"version": app.version, "flags": {}})
    response: Response = await meta_info(request)  # type: ignore[arg-type]
    return response
