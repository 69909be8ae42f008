"""Model catalog and per-service policies.

The catalog is data (`catalog.toml` beside this file), validated here with pydantic so a bad price
or an unknown tier fails at import, not as a silent $0 on a bill. Public names are a contract the
other modules and the REST layer import.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ModelTier(StrEnum):
    MINI = "mini"
    STANDARD = "standard"
    ADVANCED = "advanced"
    PREMIUM = "premium"


class ModelCapability(StrEnum):
    CHAT = "chat"
    CODE_GEN = "code_gen"
    ANALYSIS = "analysis"
    REASONING = "reasoning"
    VISION = "vision"
    FUNCTION = "function"


SERVICES = ("narrative_report", "strategy_builder", "chatops_advanced", "prompt_governance")
_RATE_QUANTUM = Decimal("0.001")  # USD per 1M tokens == 1 nano-dollar per token


class ModelConfig(BaseModel):
    """One logical model: capabilities, prices (USD / 1M tokens), limits and API flags."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["chat", "embedding"] = "chat"
    tier: ModelTier
    tier_reason: str | None = None
    capabilities: frozenset[ModelCapability]
    input: Decimal | None = Field(description="USD per 1M input tokens; None = unpriced")
    cached_input: Decimal | None = Field(
        default=None, description="USD per 1M cached input tokens; None = billed at `input`"
    )
    output: Decimal | None = Field(description="USD per 1M output tokens; None = unpriced")
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(ge=0)
    supports_temperature: bool = True
    supports_streaming: bool = True
    system_role: Literal["system", "developer", "user"] = "system"
    tool_calling: Literal["native", "json_text", "none"] = "native"
    local: bool = False
    serves_tiers: frozenset[ModelTier] = Field(
        default=frozenset(),
        description="Embedded chat models only: the tiers this model serves when no key is set",
    )
    dimensions: int | None = None
    priced_at: date
    description: str = ""

    @field_validator("input", "cached_input", "output")
    @classmethod
    def _rate_is_exact(cls, v: Decimal | None) -> Decimal | None:
        if v is None:
            return v
        if v < 0:
            raise ValueError("a price cannot be negative")
        if v.quantize(_RATE_QUANTUM) != v:
            raise ValueError(f"price {v} has more than 3 decimals (USD per 1M tokens)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.kind == "chat" and ModelCapability.FUNCTION not in self.capabilities:
            object.__setattr__(self, "tool_calling", "none")
        if self.kind == "chat" and self.max_output_tokens > self.context_window:
            raise ValueError(f"{self.id}: max_output_tokens exceeds context_window")
        if self.serves_tiers and not (self.local and self.kind == "chat"):
            raise ValueError(f"{self.id}: only embedded chat models serve tiers")
        return self

    @property
    def priced(self) -> bool:
        return self.input is not None and self.output is not None

    @property
    def cached_input_rate(self) -> Decimal | None:
        return self.cached_input if self.cached_input is not None else self.input

    # ---- the seed's field names, read-only, for code written against the seed ----------------

    @property
    def model_id(self) -> str:
        return self.id

    @property
    def input_price_per_1m(self) -> float | None:
        """The seed's float (USD per 1M input tokens); bills use the exact `input`."""
        return None if self.input is None else float(self.input)

    @property
    def output_price_per_1m(self) -> float | None:
        """The seed's float (USD per 1M output tokens); bills use the exact `output`."""
        return None if self.output is None else float(self.output)


class ServicePolicy(BaseModel):
    """Which models a service may use: the seed's table, one row per service."""

    model_config = ConfigDict(frozen=True)

    service: str
    allowed_tiers: frozenset[ModelTier]
    default_model: str
    required_capabilities: frozenset[ModelCapability]
    cache: Literal["off", "exact", "semantic"] = Field(
        default="exact",
        description="The most the response cache may do for this service (QUANT_GENAI_CACHE "
        "picks the mode up to it): off, exact prompt match, or semantic (docs/cache.md)",
    )

    def allows(self, model: ModelConfig) -> bool:
        return (
            model.kind == "chat"
            and model.tier in self.allowed_tiers
            and self.required_capabilities <= model.capabilities
        )

    def why_not(self, model: ModelConfig) -> str:
        if model.kind != "chat":
            return f"{model.id} is an {model.kind} model, not a chat model"
        reasons = []
        if model.tier not in self.allowed_tiers:
            tiers = ", ".join(sorted(t.value for t in self.allowed_tiers))
            reasons.append(f"tier {model.tier.value} is not one of {tiers}")
        missing = self.required_capabilities - model.capabilities
        if missing:
            reasons.append("it lacks " + ", ".join(sorted(c.value for c in missing)))
        return "; ".join(reasons)


class UnknownServiceError(ValueError):
    """The service name is not one of the four services."""


class UnknownModelError(ValueError):
    """The model id is not in the catalog (so it cannot be priced or validated)."""


class ModelNotAllowedError(ValueError):
    """The model exists but the service's policy does not allow it."""

    def __init__(self, message: str, *, service: str, model_id: str, allowed: list[str]):
        super().__init__(message)
        self.service = service
        self.model_id = model_id
        self.allowed = allowed


def _load() -> tuple[dict[str, ModelConfig], dict[str, ServicePolicy]]:
    raw = tomllib.loads(resources.files(__package__).joinpath("catalog.toml").read_text("utf-8"))
    catalog = {
        mid: ModelConfig.model_validate({"id": mid, **spec}) for mid, spec in raw["models"].items()
    }
    policies = {
        name: ServicePolicy.model_validate({"service": name, **spec})
        for name, spec in raw["policies"].items()
    }
    if set(policies) != set(SERVICES):
        raise ValueError(f"catalog.toml must define policies for exactly {SERVICES}")
    for tier in ModelTier:
        serving = [m.id for m in catalog.values() if tier in m.serves_tiers]
        if len(serving) != 1:
            raise ValueError(f"tier {tier.value} must be served by exactly one embedded model")
    for pol in policies.values():
        default = catalog.get(pol.default_model)
        if default is None or not pol.allows(default):
            raise ValueError(f"default model of {pol.service} is not allowed by its own policy")
    return catalog, policies


MODEL_CATALOG, SERVICE_MODEL_POLICIES = _load()

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def resolve_model_id(model_id: str) -> str:
    """Map a dated snapshot name (`gpt-4o-mini-2024-07-18`) to its catalog id."""
    if model_id in MODEL_CATALOG:
        return model_id
    base = _SNAPSHOT.sub("", model_id)
    if base in MODEL_CATALOG:
        return base
    known = ", ".join(sorted(MODEL_CATALOG))
    raise UnknownModelError(f"unknown model {model_id!r}; known models: {known}")


def get_model_config(model_id: str) -> ModelConfig:
    """The catalog entry for a model id (snapshot names resolve to their family)."""
    return MODEL_CATALOG[resolve_model_id(model_id)]


def get_policy(service: str) -> ServicePolicy:
    try:
        return SERVICE_MODEL_POLICIES[service]
    except KeyError:
        raise UnknownServiceError(
            f"unknown service {service!r}; services: {', '.join(SERVICES)}"
        ) from None


def local_model_for(model: ModelConfig) -> ModelConfig:
    """The embedded model that serves `model` when it is routed locally (no key): an embedded
    chat model serves itself, any other the embedded model whose `serves_tiers` has its tier."""
    if model.local and model.kind == "chat":
        return model
    return next(m for m in MODEL_CATALOG.values() if model.tier in m.serves_tiers)


def _price_key(m: ModelConfig) -> tuple[Decimal, Decimal, str]:
    big = Decimal("1e9")
    return (
        m.input if m.input is not None else big,
        m.output if m.output is not None else big,
        m.id,
    )


def available_models(service: str, tier: ModelTier | str | None = None) -> list[ModelConfig]:
    """Models the service's policy allows, optionally of one tier, cheapest first."""
    policy = get_policy(service)
    if tier is not None:
        try:
            tier = ModelTier(tier)
        except ValueError:
            raise ValueError(
                f"unknown tier {tier!r}; tiers: {', '.join(t.value for t in ModelTier)}"
            ) from None
    models = [
        m for m in MODEL_CATALOG.values() if policy.allows(m) and (tier is None or m.tier == tier)
    ]
    return sorted(models, key=_price_key)


def default_model(service: str) -> ModelConfig:
    return MODEL_CATALOG[get_policy(service).default_model]


def validate_model(service: str, model_id: str | None) -> ModelConfig:
    """The ModelConfig for (service, model), or an error naming the valid choices.

    `None` means the service's default.
    """
    policy = get_policy(service)
    if model_id is None:
        return MODEL_CATALOG[policy.default_model]
    allowed = [m.id for m in available_models(service)]
    try:
        model = get_model_config(model_id)
    except UnknownModelError:
        raise UnknownModelError(
            f"unknown model {model_id!r}; {service} may use: {', '.join(allowed)}"
        ) from None
    if not policy.allows(model):
        raise ModelNotAllowedError(
            f"model {model.id!r} is not allowed for {service} ({policy.why_not(model)}); "
            f"allowed: {', '.join(allowed)}",
            service=service,
            model_id=model.id,
            allowed=allowed,
        )
    return model
