"""The seed's `OpenAIClientManager`, for services written against the seed while they migrate.

A facade, not a second model layer: models and prices come from `agents.llm.catalog`, where a
call goes from the factory's routing, the HTTP pool from `shared_http_clients()`, and usage goes
to the durable ledger (the seed's process-local usage dict lost every restart). New code should
call `create_chat_model` instead: calls through this raw client bypass the factory's request
shaping (system role, temperature), per-user budgets, fallback and the automatic cost callback,
so the caller must `track_usage` itself, as the seed's services do.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import TypedDict

import openai

from agents.llm.catalog import (
    MODEL_CATALOG,
    ModelConfig,
    ModelNotAllowedError,
    ModelTier,
    UnknownModelError,
    available_models,
    default_model,
    get_policy,
    validate_model,
)
from agents.llm.catalog import get_model_config as _catalog_config
from agents.llm.factory import Route, resolve_route, shared_http_clients
from agents.llm.weights import LOCAL_MODEL_ID, served_model_id
from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.ledger import LedgerRow, get_ledger, usage_report
from agents.usage.pricing import NANO, TokenUsage, cost_nanousd

LEDGER_ROUTE = "seed-manager"
"""The ledger's `route` for rows written by `track_usage`: migrating traffic stays visible."""


class ModelUsage(TypedDict):
    """One model's line of the seed's usage report."""

    input_tokens: int
    output_tokens: int
    total_cost_usd: float


class _SharedAsyncOpenAI(openai.AsyncOpenAI):
    """`close()` (or `async with`) must not close the pool every factory-built model shares."""

    async def close(self) -> None:
        return None


_clients: ProcessCache[tuple[str | None, str, float, int], openai.AsyncOpenAI] = ProcessCache(
    "seed manager clients"
)


class OpenAIClientManager:
    """The seed's manager API over our catalog, routing and ledger."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._route: Route | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._lock = threading.Lock()

    def _resolved_route(self) -> Route:
        """Where this manager's one client points, decided by the factory's `resolve_route`.

        One client has one base URL, so per-model routes (QUANT_GENAI_MODEL_ROUTES) cannot
        apply: OPENAI_API_KEY / OPENAI_BASE_URL when configured, else the embedded model.
        """
        with self._lock:
            if self._route is None:
                s = self.settings.model_copy(update={"model_routes": {}})
                # with routes gone every non-local model resolves to the same OpenAI route
                model_id = "gpt-4o-mini" if s.uses_openai else LOCAL_MODEL_ID
                self._route = resolve_route(MODEL_CATALOG[model_id], s)
            return self._route

    def get_client(self) -> openai.AsyncOpenAI:
        """The one shared `AsyncOpenAI`: same object on every call and for equal routes.

        Pass the catalog id as `model=` and to `track_usage`. On embedded defaults (no key) the
        client talks to the local llama.cpp server (started on first use), which serves its one
        model whatever name is sent (`response.model` says which answered); `track_usage` then
        records $0 actual cost and the catalog list price. `close()` is a no-op: the HTTP pool
        under the client is the factory's.
        """
        with self._lock:
            if self._client is not None:
                return self._client
        route = self._resolved_route()
        key = (
            route.base_url,
            route.api_key.get_secret_value(),
            route.timeout_s,
            self.settings.max_retries,
        )
        client = _clients.get(
            key,
            lambda: _SharedAsyncOpenAI(
                api_key=key[1],
                base_url=route.base_url,
                timeout=route.timeout_s,
                max_retries=self.settings.max_retries,
                http_client=shared_http_clients()[1],  # httpx2, the SDK's own library
            ),
        )
        with self._lock:
            self._client = client
        return client

    def get_model_config(self, model_id: str) -> ModelConfig:
        """The catalog entry; unknown ids raise `UnknownModelError` naming the known ones."""
        return _catalog_config(model_id)

    def get_available_models(
        self, service_name: str, user_preference: str | None = None
    ) -> list[ModelConfig]:
        """The models the service may use, cheapest first.

        `user_preference` is a tier name (only that tier's models) or a model id the policy
        allows (moved first, the rest cheapest first). Anything else raises an error naming the
        allowed tiers and models, so a bad preference is never silently ignored.
        """
        models = available_models(service_name)
        if user_preference is None:
            return models
        allowed_tiers = sorted({m.tier.value for m in models})
        allowed_ids = [m.id for m in models]
        if user_preference in {t.value for t in ModelTier}:
            if user_preference not in allowed_tiers:
                raise ValueError(
                    f"tier {user_preference!r} is not allowed for {service_name}; "
                    f"allowed tiers: {', '.join(allowed_tiers)}"
                )
            return available_models(service_name, user_preference)
        try:
            chosen = validate_model(service_name, user_preference)
        except UnknownModelError:
            raise UnknownModelError(
                f"{user_preference!r} is neither a tier nor a known model; {service_name} "
                f"allows tiers {', '.join(allowed_tiers)} and models {', '.join(allowed_ids)}"
            ) from None
        return [chosen, *(m for m in models if m.id != chosen.id)]

    def get_default_model(self, service_name: str) -> str:
        return default_model(service_name).id

    def validate_model_for_service(self, service_name: str, model_id: str) -> bool:
        """True if the policy allows the model; an unknown model is False, an unknown service
        raises `UnknownServiceError` (a typo in a service name is a bug, not a user's choice)."""
        get_policy(service_name)
        try:
            validate_model(service_name, model_id)
        except (UnknownModelError, ModelNotAllowedError):
            return False
        return True

    def track_usage(
        self,
        model_id: str,
        input_tokens: int,
        output_tokens: int,
        *,
        service: str | None = None,
        user_id: str | None = None,
        cached_input_tokens: int = 0,
    ) -> Decimal:
        """Record one call as a durable ledger row priced from the catalog; return its cost (USD).

        Cost is what was paid: $0 when this manager's calls go to the embedded model or an
        unbilled endpoint, with the catalog price kept as the row's list price.
        """
        model = _catalog_config(model_id)
        if service is not None:
            get_policy(service)
        usage = TokenUsage(
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
        )
        usage.check()
        list_price = cost_nanousd(model, usage)  # unpriced → UnpricedModelError, never $0
        if self.settings.uses_openai:  # resolving the OpenAI route starts nothing
            billed, served = self._resolved_route().billed, model.id
        else:  # every call went to the embedded model; don't start it just to name it
            billed, served = False, served_model_id(self.settings)
        cost = list_price if billed else 0
        get_ledger(self.settings).record(
            LedgerRow.of(
                usage,
                request_id=uuid.uuid4().hex,
                user_id=user_id,
                service=service,
                model=model.id,
                served_model=served,
                route=LEDGER_ROUTE,
                cost_nanousd=cost,
                list_price_nanousd=list_price,
            )
        )
        return cost * NANO

    def get_usage_report(self) -> dict[str, ModelUsage]:
        """Per model, from the whole ledger: factory calls and `track_usage` rows alike."""
        return {
            row.model or "": ModelUsage(
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                total_cost_usd=float(row.cost_usd),
            )
            for row in usage_report(group_by="model", settings=self.settings)
        }
