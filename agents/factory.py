"""The policy-aware chat-model factory: the one place a chat model is built.

`create_chat_model(service, model_id, user_id=...)` resolves the model (policy default when
omitted), validates it against the service's policy, decides where it is served (routing is
separate from the catalog), and returns a cached `ChatOpenAI` with the cost callback and
LangSmith metadata attached. Every instance shares one sync and one async HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableWithFallbacks
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from agents.costs import CostCallbackHandler, get_ledger
from agents.limits import budget_nanousd
from agents.models import (
    MODEL_CATALOG,
    ModelConfig,
    available_models,
    default_model,
    validate_model,
)
from agents.settings import Settings, get_settings

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
        return (self.kind, self.base_url, self.served_model)


class QuantChatOpenAI(ChatOpenAI):
    """`ChatOpenAI` that sends system prompts in the role the served model accepts.

    langchain-openai already turns `system` into `developer` for `o<digit>` names; o1-preview
    takes neither, so its instructions go in as a user message.
    """

    system_role: Literal["system", "developer", "user"] = "system"
    catalog_model: str | None = None
    """The catalog id this instance serves; stamped on replies as `catalog_model`."""
    route_kind: str | None = None
    """openai / compatible / local; stamped on replies as `route`."""

    def _stamp(self) -> dict[str, Any]:
        return {"catalog_model": self.catalog_model, "route": self.route_kind}

    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if self.system_role != "system":
            for message in payload.get("messages", []):
                if message.get("role") in ("system", "developer"):
                    message["role"] = self.system_role
        return payload

    def _create_chat_result(
        self, response: Any, generation_info: dict[str, Any] | None = None
    ) -> ChatResult:
        return super()._create_chat_result(response, {**(generation_info or {}), **self._stamp()})

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


def resolve_route(model: ModelConfig, settings: Settings | None = None) -> Route:
    """Decide where `model` is served: a configured route, OpenAI(-compatible), or local."""
    s = settings or get_settings()
    if model.id in s.model_routes:
        r = s.model_routes[model.id]
        kind: RouteKind = "openai" if _OPENAI_HOST.match(r.base_url) else "compatible"
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
    if not model.local and s.uses_openai:
        base = s.openai_base_url
        kind = "openai" if base is None or _OPENAI_HOST.match(base) else "compatible"
        return Route(
            kind=kind,
            base_url=base,
            served_model=model.id,
            api_key=s.openai_api_key or _NO_KEY,
            stream_usage=s.stream_usage if s.stream_usage is not None else kind == "openai",
            billed=kind == "openai" or s.base_url_billed,
            request_flags=model,
            timeout_s=s.request_timeout_s,
        )
    from agents.local_model import LOCAL_MODEL_ID, ensure_server

    local = model if model.local else MODEL_CATALOG[LOCAL_MODEL_ID]
    server = ensure_server(s)
    return Route(
        kind="local",
        base_url=server.base_url,
        served_model=server.served_model,  # what answers (a custom GGUF has its own name)
        api_key=_NO_KEY,
        stream_usage=s.stream_usage if s.stream_usage is not None else True,
        billed=False,
        request_flags=local,
        timeout_s=s.local_timeout_s,
    )


# The openai SDK's own pool sizes.
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)


class PerLoopTransport(httpx.AsyncBaseTransport):
    """One connection pool per event loop behind one shared `httpx.AsyncClient`.

    Async connections belong to the loop that opened them. langchain-openai's process-wide
    cached client breaks on the second `asyncio.run()` ("Event loop is closed", langchain#35783)
    and the SDK's retry then re-sends the request: a double charge. Pools keyed by loop (weakly,
    so a finished loop's pool goes with it) keep sharing without crossing loops.
    """

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


_http_lock = threading.Lock()
_http_clients: tuple[httpx.Client, httpx.AsyncClient] | None = None


def shared_http_clients() -> tuple[httpx.Client, httpx.AsyncClient]:
    """The process-wide HTTP clients every factory-built model uses."""
    global _http_clients
    with _http_lock:
        if _http_clients is None:
            _http_clients = (
                httpx.Client(limits=_LIMITS, follow_redirects=True),
                httpx.AsyncClient(transport=PerLoopTransport(), follow_redirects=True),
            )
        return _http_clients


_cache: dict[tuple[Any, ...], ChatOpenAI] = {}
_cache_lock = threading.Lock()
_with_fallback: dict[tuple[Any, ...], ChatOpenAI | RunnableWithFallbacks[Any, BaseMessage]] = {}


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
    `ChatOpenAI` fields such as `temperature` or `max_tokens`; values a model cannot take are
    rejected here with the reason rather than by the API after a paid round trip.
    """
    model = validate_model(service, model_id)
    s = settings or get_settings()
    key = _cache_key(service, model.id, user_id, s, overrides)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        route = resolve_route(model, s)
        chat = _build(service, model, user_id, route, s, overrides)
        _cache[key] = chat
        return chat


def _build(
    service: str,
    model: ModelConfig,
    user_id: str | None,
    route: Route,
    s: Settings,
    overrides: dict[str, Any],
) -> ChatOpenAI:
    flags = route.request_flags
    _check_overrides(model, flags, overrides)
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
        "callbacks": [handler],
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
    params.update(overrides)
    return QuantChatOpenAI(**params)


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
    embedded defaults every model is served by the one local server.
    """
    s = settings or get_settings()
    primary = validate_model(service, model_id)
    if not s.fallback:
        return None
    route = resolve_route(primary, s)
    candidates = [default_model(service), *available_models(service)]
    for candidate in dict.fromkeys(c.id for c in candidates):
        config = MODEL_CATALOG[candidate]
        if candidate == primary.id:
            continue
        other = resolve_route(config, s)
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
) -> ChatOpenAI | RunnableWithFallbacks[LanguageModelInput, BaseMessage]:
    """`create_chat_model`, falling back to `fallback_model` after endpoint errors.

    The primary's retries run first (`QUANT_GENAI_MAX_RETRIES`); both models carry their own
    cost callback, so the ledger has the failed attempt and the fallback's call. Overrides the
    fallback cannot take are adapted (temperature dropped for a reasoning model, max_tokens
    clamped to its limit). `model_used(reply)` tells which model answered. The result keeps
    `bind_tools` and the other ChatOpenAI helpers (`RunnableWithFallbacks` forwards them).
    """
    s = settings or get_settings()
    primary = create_chat_model(service, model_id, user_id=user_id, settings=s, **overrides)
    # Choosing the fallback resolves every candidate's route (a health check of the local
    # server each): once per (service, model, user, overrides), not on every graph step.
    key = _cache_key(service, validate_model(service, model_id).id, user_id, s, overrides)
    with _cache_lock:
        cached = _with_fallback.get(key)
    if cached is not None:
        return cached
    backup = fallback_model(service, model_id, settings=s)
    if backup is None:
        with _cache_lock:
            return _with_fallback.setdefault(key, primary)
    adapted = dict(overrides)
    flags = resolve_route(backup, s).request_flags
    if not flags.supports_temperature:
        adapted.pop("temperature", None)
    limit = min(backup.max_output_tokens, flags.max_output_tokens)
    for name in ("max_tokens", "max_completion_tokens"):
        if adapted.get(name) is not None:
            adapted[name] = min(int(adapted[name]), limit)
    second = create_chat_model(service, backup.id, user_id=user_id, settings=s, **adapted)
    chained = primary.with_fallbacks([second], exceptions_to_handle=ENDPOINT_ERRORS)
    with _cache_lock:
        return _with_fallback.setdefault(key, chained)


def _cache_key(
    service: str, model_id: str | None, user_id: str | None, s: Settings, overrides: Any
) -> tuple[Any, ...]:
    return (service, model_id, user_id, id(s), json.dumps(overrides, sort_keys=True, default=repr))


def _check_overrides(model: ModelConfig, flags: ModelConfig, overrides: dict[str, Any]) -> None:
    if "temperature" in overrides and not flags.supports_temperature:
        raise ValueError(
            f"{model.id} does not accept temperature (reasoning model); leave it unset"
        )
    limit = min(model.max_output_tokens, flags.max_output_tokens)
    for name in ("max_tokens", "max_completion_tokens"):
        value = overrides.get(name)
        if value is not None and not 0 < int(value) <= limit:
            raise ValueError(
                f"{name}={value} is outside 1..{limit} for {model.id} as served by {flags.id}"
            )
    for forbidden in ("callbacks", "api_key", "base_url", "model", "model_name"):
        if forbidden in overrides:
            raise ValueError(
                f"{forbidden!r} is set by the factory from the catalog and routing; "
                "configure routing with QUANT_GENAI_MODEL_ROUTES / OPENAI_BASE_URL instead"
            )


def clear_model_cache() -> None:
    """Forget built models (tests; after changing settings)."""
    with _cache_lock:
        _cache.clear()
        _with_fallback.clear()
