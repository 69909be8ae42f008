"""The catalog and the seed's service policies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from agents.llm.catalog import (
    MODEL_CATALOG,
    SERVICE_MODEL_POLICIES,
    ModelCapability,
    ModelConfig,
    ModelNotAllowedError,
    ModelTier,
    UnknownModelError,
    UnknownServiceError,
    available_models,
    default_model,
    get_model_config,
    validate_model,
)

SEED_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4-turbo", "o1-preview"]

# The seed's policy table, written out by hand (not read from the catalog file).
SEED_POLICIES = {
    "narrative_report": ({"mini", "standard"}, "gpt-4o-mini", {"chat", "analysis"}),
    "strategy_builder": (
        {"standard", "advanced", "premium"},
        "gpt-4o",
        {"code_gen", "reasoning", "function"},
    ),
    "chatops_advanced": ({"mini", "standard"}, "gpt-4o-mini", {"chat", "function"}),
    "prompt_governance": ({"mini"}, "gpt-4o-mini", {"chat", "analysis"}),
}

# Every (service, seed model) pair, decided by hand from the seed's two tables.
SEED_ALLOWED = {
    ("narrative_report", "gpt-4o-mini"): True,
    ("narrative_report", "gpt-4o"): True,
    ("narrative_report", "gpt-4-turbo"): False,  # advanced tier
    ("narrative_report", "o1-preview"): False,  # premium, no chat
    ("strategy_builder", "gpt-4o-mini"): False,  # mini tier, no reasoning
    ("strategy_builder", "gpt-4o"): True,
    ("strategy_builder", "gpt-4-turbo"): True,
    ("strategy_builder", "o1-preview"): False,  # no function calling
    ("chatops_advanced", "gpt-4o-mini"): True,
    ("chatops_advanced", "gpt-4o"): True,
    ("chatops_advanced", "gpt-4-turbo"): False,  # advanced tier
    ("chatops_advanced", "o1-preview"): False,
    ("prompt_governance", "gpt-4o-mini"): True,
    ("prompt_governance", "gpt-4o"): False,  # standard tier
    ("prompt_governance", "gpt-4-turbo"): False,
    ("prompt_governance", "o1-preview"): False,
}

# (input, cached input, output) USD per 1M tokens, from the seed and the issue.
PRICES = {
    "gpt-4o-mini": ("0.15", "0.075", "0.60"),
    "gpt-4o": ("2.50", "1.25", "10.00"),
    "gpt-4-turbo": ("10.00", None, "30.00"),
    "o1-preview": ("15.00", "7.50", "60.00"),
    "gpt-4.1": ("2.00", "0.50", "8.00"),
    "gpt-4.1-mini": ("0.40", "0.10", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.025", "0.40"),
    "o3": ("2.00", "0.50", "8.00"),
    "o4-mini": ("1.10", "0.275", "4.40"),
    "gpt-5": ("1.25", "0.125", "10.00"),
    "gpt-5-mini": ("0.25", "0.025", "2.00"),
    "gpt-5-nano": ("0.05", "0.005", "0.40"),
    "text-embedding-3-small": ("0.02", None, "0"),
    "text-embedding-3-large": ("0.13", None, "0"),
}


def test_policies_are_exactly_the_seed_table() -> None:
    assert set(SERVICE_MODEL_POLICIES) == set(SEED_POLICIES)
    for service, (tiers, default, caps) in SEED_POLICIES.items():
        pol = SERVICE_MODEL_POLICIES[service]
        assert {t.value for t in pol.allowed_tiers} == tiers
        assert pol.default_model == default
        assert {c.value for c in pol.required_capabilities} == caps


@pytest.mark.parametrize(("service", "model_id"), sorted(SEED_ALLOWED))
def test_every_seed_pair(service: str, model_id: str) -> None:
    if SEED_ALLOWED[(service, model_id)]:
        assert validate_model(service, model_id).id == model_id
        assert model_id in [m.id for m in available_models(service)]
    else:
        with pytest.raises(ModelNotAllowedError) as e:
            validate_model(service, model_id)
        allowed = [m.id for m in available_models(service)]
        assert model_id not in allowed
        assert allowed and all(a in str(e.value) for a in allowed)
        assert e.value.allowed == allowed


@pytest.mark.parametrize("service", sorted(SEED_POLICIES))
def test_every_catalog_model_follows_the_rule(service: str) -> None:
    tiers, _, caps = SEED_POLICIES[service]
    for m in MODEL_CATALOG.values():
        expected = (
            m.kind == "chat" and m.tier.value in tiers and caps <= {c.value for c in m.capabilities}
        )
        if expected:
            validate_model(service, m.id)
        else:
            with pytest.raises(ModelNotAllowedError):
                validate_model(service, m.id)


@pytest.mark.parametrize("model_id", sorted(PRICES))
def test_prices(model_id: str) -> None:
    m = MODEL_CATALOG[model_id]
    inp, cached, out = PRICES[model_id]
    assert m.input == Decimal(inp)
    assert m.output == Decimal(out)
    if cached is None:
        assert m.cached_input is None
        assert m.cached_input_rate == m.input
    else:
        assert m.cached_input == Decimal(cached)


def test_seed_models_at_seed_tiers_and_capabilities() -> None:
    assert MODEL_CATALOG["gpt-4o-mini"].tier == ModelTier.MINI
    assert MODEL_CATALOG["gpt-4o"].tier == ModelTier.STANDARD
    assert MODEL_CATALOG["gpt-4-turbo"].tier == ModelTier.ADVANCED
    assert MODEL_CATALOG["o1-preview"].tier == ModelTier.PREMIUM
    assert MODEL_CATALOG["o1-preview"].capabilities == {
        ModelCapability.REASONING,
        ModelCapability.CODE_GEN,
        ModelCapability.ANALYSIS,
    }


def test_context_window_and_max_output_are_separate() -> None:
    for m in MODEL_CATALOG.values():
        if m.kind == "chat":
            assert m.max_output_tokens < m.context_window, m.id
    assert MODEL_CATALOG["gpt-4-turbo"].max_output_tokens == 4096
    assert MODEL_CATALOG["gpt-4-turbo"].context_window == 128000


def test_reasoning_models_carry_api_flags() -> None:
    for mid in ("o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano"):
        m = MODEL_CATALOG[mid]
        assert not m.supports_temperature
        assert m.system_role == "developer"
    assert MODEL_CATALOG["o1-preview"].system_role == "user"
    assert MODEL_CATALOG["gpt-4o"].supports_temperature
    assert MODEL_CATALOG["qwen2.5-coder-0.5b-instruct"].tool_calling == "json_text"
    assert MODEL_CATALOG["gpt-4o-mini"].tool_calling == "native"


def test_new_models_have_a_tier_reason() -> None:
    for mid in (
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
    ):
        assert MODEL_CATALOG[mid].tier_reason


def test_available_models_cheapest_first_and_by_tier() -> None:
    models = available_models("strategy_builder")
    prices = [(m.input, m.output) for m in models]
    assert prices == sorted(prices)
    assert {m.tier for m in available_models("strategy_builder", "premium")} == {ModelTier.PREMIUM}
    assert [m.id for m in available_models("strategy_builder", ModelTier.ADVANCED)] == [
        "o4-mini",
        "gpt-4-turbo",
    ]
    assert available_models("prompt_governance", "premium") == []


def test_embedding_models_are_never_chat_choices() -> None:
    for service in SEED_POLICIES:
        ids = {m.id for m in available_models(service)}
        assert not ids & {"text-embedding-3-small", "text-embedding-3-large", "all-minilm-l6-v2"}
    with pytest.raises(ModelNotAllowedError, match="embedding model"):
        validate_model("narrative_report", "text-embedding-3-small")


def test_defaults() -> None:
    for service, (_, default, _) in SEED_POLICIES.items():
        assert default_model(service).id == default
        assert validate_model(service, None).id == default


def test_errors_name_the_valid_choices() -> None:
    with pytest.raises(UnknownServiceError, match=r"narrative_report.*strategy_builder"):
        validate_model("nonsense", "gpt-4o")
    with pytest.raises(UnknownModelError, match="gpt-4o-mini") as e:
        validate_model("prompt_governance", "gpt-9")
    assert "gpt-9" in str(e.value)
    with pytest.raises(ValueError, match="tiers: mini, standard, advanced, premium"):
        available_models("narrative_report", "gold")
    for cls in (UnknownServiceError, UnknownModelError, ModelNotAllowedError):
        assert issubclass(cls, ValueError)


def test_snapshot_names_resolve_to_their_family() -> None:
    assert get_model_config("gpt-4o-mini-2024-07-18").id == "gpt-4o-mini"
    assert get_model_config("gpt-4.1-2025-04-14").id == "gpt-4.1"
    with pytest.raises(UnknownModelError):
        get_model_config("gpt-4o-mini-turbo")


def _spec(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "x",
        "tier": "mini",
        "capabilities": ["chat"],
        "input": "1",
        "output": "2",
        "context_window": 1000,
        "max_output_tokens": 100,
        "priced_at": "2026-01-01",
    }
    return {**base, **kw}


def test_catalog_entries_are_validated() -> None:
    assert ModelConfig.model_validate(_spec()).priced
    with pytest.raises(ValidationError, match="more than 3 decimals"):
        ModelConfig.model_validate(_spec(input="0.0001"))
    with pytest.raises(ValidationError, match="negative"):
        ModelConfig.model_validate(_spec(output="-1"))
    with pytest.raises(ValidationError):
        ModelConfig.model_validate(_spec(tier="gold"))
    with pytest.raises(ValidationError):
        ModelConfig.model_validate(_spec(capabilities=["telepathy"]))
    with pytest.raises(ValidationError, match="exceeds context_window"):
        ModelConfig.model_validate(_spec(max_output_tokens=5000))
    assert not ModelConfig.model_validate(_spec(input=None)).priced
