"""The policy-aware chat-model factory: the one place a chat model is built.

`create_chat_model(service, model_id, user_id=...)` resolves the model (policy default when
omitted), validates it against the service's policy, decides where it is served (routing is
separate from the catalog), and returns a cached `ChatOpenAI` with the cost callback and
LangSmith metadata attached. Every instance shares one sync and one async HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import httpx2 as httpx  # the openai SDK's own HTTP library since openai 3
import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, BaseCallbackHandler
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableWithFallbacks
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import (
    _add_gateway_metadata,
    _handle_openai_api_error,
    _handle_openai_bad_request,
)
from pydantic import SecretStr

from agents.governance.similarity import embed
from agents.llm.cached import CachedChatOpenAI
from agents.llm.catalog import (
    MODEL_CATALOG,
    ModelConfig,
    available_models,
    default_model,
    local_model_for,
    validate_model,
)
from agents.llm.local import ServerConfig, ensure_server, ensure_serving, server_config
from agents.llm.structured import local_structured_output
from agents.llm.weights import LOCAL_MODEL_ID
from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.alerts import get_alerter
from agents.usage.cache import ResponseCache, cache_mode
from agents.usage.cache_store import CacheScope, get_cache_store
from agents.usage.callback import CostCallbackHandler, stamp_costs
from agents.usage.ledger import get_ledger
from agents.usage.limits import budget_nanousd
from agents.usage.rates import rate_limit_handler

log = logging.getLogger(__name__)

RouteKind = Literal["openai", "compatible", "local"]
_OPENAI_HOST = re.compile(r"^https://api\.openai\.com(/|$)")
# Keys nobody needs when the endpoint does not check them (llama.cpp, vLLM, Ollama).
_NO_KEY = SecretStr("not-needed")


@dataclass(frozen=True)
class Route:
    """Where and how a logical catalog model is served."""

    kind: RouteKind
    base_url: str | None
    served_model: str
    api_key: SecretStr
    stream_usage: bool
    billed: bool
    request_flags: ModelConfig  # the served model decides the request shape
    timeout_s: float = 60.0

    @property
    def identity(self) -> tuple[str, str | None, str]:
        """What a fallback must differ in. The embedded servers count as one: they share this
        machine's cores (and usually one process), so one failing mostly means both do."""
        if self.kind == "local":
            return ("local", None, "embedded")
        return (self.kind, self.base_url, self.served_model)


class QuantChatOpenAI(CachedChatOpenAI):
    """`ChatOpenAI` that sends system prompts in the role the served model accepts
    (langchain-openai turns `system` into `developer` for `o<digit>`; o1-preview takes neither,
    so its instructions go in as a user message). Its cache: `agents.llm.cached`."""

    system_role: Literal["system", "developer", "user"] = "system"
    catalog_model: str | None = None
    """The catalog id this instance serves; stamped on replies as `catalog_model`."""
    route_kind: str | None = None
    """openai / compatible / local; stamped on replies as `route`."""

    def _stamp(self) -> dict[str, Any]:
        return {"catalog_model": self.catalog_model, "route": self.route_kind}

    def with_structured_output(  # type: ignore[override]
        self, schema: Any = None, *, method: str = "json_schema", **kwargs: Any
    ) -> Any:
        """On the embedded models a pydantic schema goes to llama.cpp as it is, not in OpenAI's
        strict form (`agents.llm.structured`); everywhere else, langchain-openai's own."""
        if self.route_kind == "local":
            adapted = local_structured_output(super(), schema, method=method, **kwargs)
            if adapted is not None:
                return adapted
        return super().with_structured_output(schema, method=method, **kwargs)  # type: ignore[arg-type]

    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        if self.route_kind == "local" and self.openai_api_base:  # restarts a server that died
            ensure_serving(self.openai_api_base)
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if self.system_role != "system":
            for message in payload.get("messages", []):
                if message.get("role") in ("system", "developer"):
                    message["role"] = self.system_role
        return payload

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """langchain-openai's `_agenerate` without its thread hop (docs/performance.md);
        structured output and the Responses API go to it unchanged."""
        payload = self._get_request_payload(messages, stop=stop, **kwargs)
        if "response_format" in payload or self._use_responses_api(payload):
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        raw: Any = None
        try:
            raw = await self.async_client.with_raw_response.create(**payload)
            response = raw.parse()
        except openai.BadRequestError as e:
            _handle_openai_bad_request(e)
        except openai.APIError as e:
            _handle_openai_api_error(e)
        except Exception as e:  # as langchain-openai: a reply that does not parse keeps it
            if raw is not None and hasattr(raw, "http_response"):
                e.response = raw.http_response  # type: ignore[attr-defined]
            raise
        info = {"headers": dict(raw.headers)} if self.include_response_headers else {}
        _add_gateway_metadata(info, raw)
        return self._create_chat_result(response, info)

    def _create_chat_result(
        self, response: Any, generation_info: dict[str, Any] | None = None
    ) -> ChatResult:
        result = super()._create_chat_result(response, {**(generation_info or {}), **self._stamp()})
        stamp_costs(self.callbacks, result.generations)  # before a traced graph's tracer reads it
        return result

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        gen = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        # Only on the closing chunk, as langchain-openai does for model_name: string metadata
        # is concatenated when chunks are merged.
        if gen is not None and gen.generation_info and "finish_reason" in gen.generation_info:
            gen.generation_info.update(self._stamp())
        return gen


def model_used(reply: BaseMessage) -> str | None:
    """The catalog id of the model that produced `reply` (after any fallback)."""
    value = reply.response_metadata.get("catalog_model")
    return value if isinstance(value, str) else None


def route_used(reply: BaseMessage) -> str | None:
    """How the model that produced `reply` was served: openai, compatible or local."""
    value = reply.response_metadata.get("route")
    return value if isinstance(value, str) else None


def route_kind(model: ModelConfig, settings: Settings | None = None) -> RouteKind:
    """Where `model` is served (openai, compatible, local), decided without starting anything."""
    s = settings or get_settings()
    if model.id in s.model_routes:
        return "openai" if _OPENAI_HOST.match(s.model_routes[model.id].base_url) else "compatible"
    if not model.local and s.uses_openai:
        base = s.openai_base_url
        return "openai" if base is None or _OPENAI_HOST.match(base) else "compatible"
    return "local"


def local_server(
    model: ModelConfig, settings: Settings | None = None
) -> tuple[ServerConfig, ModelConfig]:
    """Which embedded server serves `model` routed locally, and the catalog entry of what it
    runs (its request flags); starts nothing. `serves_tiers` picks it by tier (an embedded model
    serves itself); QUANT_GENAI_LOCAL_MODEL_PATH makes one server and GGUF serve every tier."""
    s = settings or get_settings()
    cfg = server_config(s, local_model_for(model).id)
    return cfg, MODEL_CATALOG.get(cfg.served_model, MODEL_CATALOG[LOCAL_MODEL_ID])


def context_window(model: ModelConfig, settings: Settings | None = None) -> int:
    """Tokens per request `model` really has where it is served: the embedded server's slot
    (`QUANT_GENAI_LOCAL_CTX`, or `_LARGE_CTX` for the 1.5B) may be smaller than the catalog's
    window. Starts nothing."""
    s = settings or get_settings()
    if route_kind(model, s) == "local" and model.id not in s.model_routes:
        cfg, served = local_server(model, s)
        return min(model.context_window, served.context_window, cfg.ctx)
    return model.context_window


def resolve_route(
    model: ModelConfig, settings: Settings | None = None, *, start: bool = True
) -> Route:
    """Decide where `model` is served: a configured route, OpenAI(-compatible), or local. The
    local route makes sure its embedded server is up (a health check, or a start) unless
    `start=False` (comparing routes, e.g. to choose a fallback: then nothing starts)."""
    s = settings or get_settings()
    kind = route_kind(model, s)
    if model.id in s.model_routes:
        r = s.model_routes[model.id]
        return Route(
            kind=kind,
            base_url=r.base_url,
            served_model=r.served_model or model.id,
            api_key=r.api_key or s.openai_api_key or _NO_KEY,
            stream_usage=r.stream_usage if r.stream_usage is not None else kind == "openai",
            billed=r.billed,
            request_flags=model,
            timeout_s=s.request_timeout_s,
        )
    if kind != "local":
        return Route(
            kind=kind,
            base_url=s.openai_base_url,
            served_model=model.id,
            api_key=s.openai_api_key or _NO_KEY,
            stream_usage=s.stream_usage if s.stream_usage is not None else kind == "openai",
            billed=kind == "openai" or s.base_url_billed,
            request_flags=model,
            timeout_s=s.request_timeout_s,
        )
    cfg, served = local_server(model, s)
    base_url, served_model = cfg.base_url, cfg.served_model
    if start:
        server = ensure_server(s, cfg.model_id)
        base_url, served_model = server.base_url, server.served_model
    return Route(
        kind="local",
        base_url=base_url,
        served_model=served_model,  # what answers (a custom GGUF has its own name)
        api_key=_NO_KEY,
        stream_usage=s.stream_usage if s.stream_usage is not None else True,
        billed=False,
        request_flags=served,
        timeout_s=s.local_timeout_s,
    )


# The SDK's cap; all may stay alive (the SDK keeps 100): a burst of 200 reuses its connections.
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)


class PerLoopTransport(httpx.AsyncBaseTransport):
    """One connection pool per event loop behind one shared `httpx.AsyncClient`: a connection
    belongs to its loop; langchain-openai's cached client breaks on the second `asyncio.run()`
    (langchain#35783) and the SDK's retry re-sends: a double charge. Keyed weakly by loop."""

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncHTTPTransport]
        self._pools = weakref.WeakKeyDictionary()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = httpx.AsyncHTTPTransport(limits=_LIMITS)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


_http_clients: ProcessCache[str, tuple[httpx.Client, httpx.AsyncClient]] = ProcessCache(
    "http clients", survives_reset=True
)


def shared_http_clients() -> tuple[httpx.Client, httpx.AsyncClient]:
    """The process-wide HTTP clients every factory-built model uses."""
    return _http_clients.get(
        "shared",
        lambda: (
            httpx.Client(limits=_LIMITS, follow_redirects=True),
            httpx.AsyncClient(transport=PerLoopTransport(), follow_redirects=True),
        ),
    )


ChatModel = ChatOpenAI | RunnableWithFallbacks[LanguageModelInput, BaseMessage]
_models: ProcessCache[tuple[Any, ...], ChatOpenAI] = ProcessCache("chat models")
_with_fallback: ProcessCache[tuple[Any, ...], ChatModel] = ProcessCache("chat models + fallback")


def create_chat_model(
    service: str,
    model_id: str | None = None,
    *,
    user_id: str | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> ChatOpenAI:
    """The chat model for (service, requested model, user), validated against the policy.

    Same arguments → the same instance (no duplicate initialisation). `overrides` are
    `ChatOpenAI` fields such as `temperature` or `max_tokens`, adapted to what the served model
    takes (`adapt_overrides`): callers pass the same knobs whatever model answers.
    """
    return _create(service, validate_model(service, model_id), user_id, settings, overrides)


def _create(
    service: str,
    model: ModelConfig,
    user_id: str | None,
    settings: Settings | None,
    overrides: dict[str, Any],
) -> ChatOpenAI:
    s = settings or get_settings()
    key = _cache_key(service, model.id, user_id, s, overrides)
    return _models.get(
        key, lambda: _build(service, model, user_id, resolve_route(model, s), s, overrides)
    )


def _build(
    service: str,
    model: ModelConfig,
    user_id: str | None,
    route: Route,
    s: Settings,
    overrides: dict[str, Any],
) -> ChatOpenAI:
    flags = route.request_flags
    adapted = adapt_overrides(model, flags, overrides)
    handler = CostCallbackHandler(
        ledger=get_ledger(s),
        model=model,
        service=service,
        user_id=user_id,
        served_model=route.served_model,
        route=route.kind,
        billed=route.billed,
        budget_nanousd=budget_nanousd(user_id, s),
        reservation_ttl_s=route.timeout_s * (s.max_retries + 1) + 30,
        alerter=get_alerter(s),
    )
    metadata = {
        "service": service,
        "model": model.id,
        "served_model": route.served_model,
        "route": route.kind,
        "user_id": user_id,
        "tier": model.tier.value,
    }
    sync_client, async_client = shared_http_clients()
    # The rate limit first: a call it refuses stops there and reserves no budget.
    limiter = rate_limit_handler(service, model.id, user_id, s)
    callbacks: list[BaseCallbackHandler] = [handler] if limiter is None else [limiter, handler]
    tags = ["quant-genai", f"service:{service}", f"model:{model.id}"]
    if user_id is not None:
        tags.append(f"user:{user_id}")
    params: dict[str, Any] = {
        "model": route.served_model,
        "api_key": route.api_key,
        "base_url": route.base_url,
        "timeout": route.timeout_s,
        "max_retries": s.max_retries,
        "stream_usage": route.stream_usage,
        "callbacks": callbacks,
        "cache": response_cache(service, model, user_id, s),
        "metadata": metadata,
        "tags": tags,
        "system_role": flags.system_role,
        "catalog_model": model.id,
        "route_kind": route.kind,
        "http_client": sync_client,
        "http_async_client": async_client,
    }
    if not flags.supports_streaming:
        params["disable_streaming"] = True
    params.update(adapted)
    return QuantChatOpenAI(**params)


def response_cache(
    service: str, model: ModelConfig, user_id: str | None, s: Settings
) -> ResponseCache | bool:
    """The per-user cache of one (service, model, user) instance (`agents.usage.cache`), or
    False: never LangChain's global cache, whose keys have no user in them. No user = no scope
    to bind an answer to = no cache."""
    mode = cache_mode(service, s)
    if mode == "off" or user_id is None:
        return False
    try:
        store = get_cache_store(s)
    except Exception as e:  # e.g. an unwritable cache file: the model works without a cache
        log.warning(
            "response cache unavailable, %s runs uncached: %s: %s", service, type(e).__name__, e
        )
        return False
    return ResponseCache(
        store,
        CacheScope(user_id=user_id, service=service, model=model.id),
        mode=mode,
        ttl_s=s.cache_ttl_s,
        similarity=s.cache_similarity,
        embed=embed if mode == "semantic" else None,
    )


ENDPOINT_ERRORS: tuple[type[BaseException], ...] = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.InternalServerError,  # any 5xx
    openai.RateLimitError,
)
"""Failures of the endpoint, not of the request: worth trying another model for."""


def fallback_model(
    service: str, model_id: str | None = None, *, settings: Settings | None = None
) -> ModelConfig | None:
    """The model to try when (service, model_id)'s endpoint keeps failing, or None.

    One of the policy's other models, served elsewhere (another endpoint or served model, so
    the failure is not simply repeated) and calling tools the same way: the service default
    first, then the cheapest. None when fallback is off or no such model exists — e.g. on
    embedded defaults every model is served by the embedded servers, which count as one.
    """
    return _fallback_for(service, validate_model(service, model_id), settings or get_settings())


def _fallback_for(service: str, primary: ModelConfig, s: Settings) -> ModelConfig | None:
    if not s.fallback:
        return None
    route = resolve_route(primary, s, start=False)
    candidates = [default_model(service), *available_models(service)]
    for candidate in dict.fromkeys(c.id for c in candidates):
        config = MODEL_CATALOG[candidate]
        if candidate == primary.id:
            continue
        other = resolve_route(config, s, start=False)  # only the chosen one is built (started)
        if other.identity != route.identity and (
            other.request_flags.tool_calling == route.request_flags.tool_calling
        ):
            return config
    return None


def create_chat_model_with_fallback(
    service: str,
    model_id: str | None = None,
    *,
    user_id: str | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> ChatModel:
    """`create_chat_model`, falling back to `fallback_model` after endpoint errors.

    The primary's retries run first (`QUANT_GENAI_MAX_RETRIES`); both models carry their own
    cost callback, so the ledger has the failed attempt and the fallback's call. Each model gets
    the overrides adapted to it. `model_used(reply)` tells which model answered. The result
    keeps `bind_tools` and the other ChatOpenAI helpers (`RunnableWithFallbacks` forwards them).
    """
    s = settings or get_settings()
    model = validate_model(service, model_id)
    # Choosing the fallback resolves every candidate's route (a health check of the local
    # server each): once per (service, model, user, overrides), not on every graph step.
    key = _cache_key(service, model.id, user_id, s, overrides)
    return _with_fallback.get(key, lambda: _chain(service, model, user_id, s, overrides))


def _chain(
    service: str, model: ModelConfig, user_id: str | None, s: Settings, overrides: dict[str, Any]
) -> ChatModel:
    primary = _create(service, model, user_id, s, overrides)
    backup = _fallback_for(service, model, s)
    if backup is None:
        return primary
    second = _create(service, backup, user_id, s, overrides)
    return primary.with_fallbacks([second], exceptions_to_handle=ENDPOINT_ERRORS)


def _cache_key(
    service: str, model_id: str, user_id: str | None, s: Settings, overrides: Any
) -> tuple[Any, ...]:
    return (
        service,
        model_id,
        user_id,
        s.fingerprint,
        json.dumps(overrides, sort_keys=True, default=repr),
    )


FACTORY_FIELDS = ("callbacks", "api_key", "base_url", "model", "model_name")
"""Set by the factory from the catalog and routing; never an override."""


def adapt_overrides(
    model: ModelConfig, flags: ModelConfig, overrides: dict[str, Any]
) -> dict[str, Any]:
    """`overrides` as the served model takes them: temperature dropped for models that reject
    it (reasoning models), max tokens capped at the model's output limit. The system role is
    adapted per request (`QuantChatOpenAI`). Fields the factory owns are refused."""
    for forbidden in FACTORY_FIELDS:
        if forbidden in overrides:
            raise ValueError(
                f"{forbidden!r} is set by the factory from the catalog and routing; "
                "configure routing with QUANT_GENAI_MODEL_ROUTES / OPENAI_BASE_URL instead"
            )
    adapted = dict(overrides)
    if not flags.supports_temperature:
        adapted.pop("temperature", None)
    limit = min(model.max_output_tokens, flags.max_output_tokens)
    for name in ("max_tokens", "max_completion_tokens"):
        value = adapted.get(name)
        if value is None:
            continue
        if int(value) < 1:
            raise ValueError(f"{name}={value} must be at least 1 (up to {limit} for {model.id})")
        adapted[name] = min(int(value), limit)
    return adapted
