"""Rate limits without Redis: the configuration (packaged file, settings, runtime overrides),
which number applies, counting in memory, the 429's content, overrides in a real SQLite."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.llm.catalog import MODEL_CATALOG, SERVICES, available_models
from agents.settings import Settings
from agents.usage import rates
from agents.usage.ledger import get_ledger
from agents.usage.rate_config import (
    LIMIT_FIELDS,
    Effective,
    OverrideStore,
    RateLimitConfigError,
    Window,
    check_merged,
    merge,
    merge_layer,
    request_window,
    static_config,
    validate_layer,
)
from agents.usage.rates import RateLimitExceededError, RateLimits, rate_limit_handler

MINI = "gpt-4o-mini"
GOV, CHAT, STRAT = "prompt_governance", "chatops_advanced", "strategy_builder"


def _limits(
    make: Callable[..., Settings], doc: dict[str, Any] | None = None, **env: Any
) -> RateLimits:
    if doc is not None:
        env["QUANT_GENAI_RATE_LIMITS"] = json.dumps(doc)
    return RateLimits(make(**env))


def _refused(
    limits: RateLimits, service: str, model: str, user: str | None, tokens: int | None = None
) -> RateLimitExceededError:
    with pytest.raises(RateLimitExceededError) as caught:
        if tokens is None:
            limits.hit_request(service, model, user)
        else:
            limits.hit_tokens(service, model, user, tokens)
    return caught.value


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def test_the_packaged_defaults_and_the_old_rate_settings(
    make_settings: Callable[..., Settings],
) -> None:
    eff = Effective(static_config(make_settings()))
    assert eff.enabled
    for service in SERVICES:  # every service has a default of each kind
        user = eff.limits("user", service, "anyone")
        assert user.requests == Window(10, 10)  # QUANT_GENAI_RATE_PER_MIN 60, _BURST 10
        assert user.tokens is not None and user.tokens.seconds == 60
        model = eff.limits("model", service, MINI)
        assert model.requests == Window(6000, 60) and model.tokens == Window(50_000_000, 60)
    assert eff.limits("user", STRAT, "a").tokens == Window(3_000_000, 60)  # the file's override
    old = Effective(
        static_config(make_settings(QUANT_GENAI_RATE_PER_MIN=1, QUANT_GENAI_RATE_BURST=2))
    )
    assert old.limits("user", GOV, "a").requests == Window(
        2, 120
    )  # as the old limiter: 2 per 2 min
    off = Effective(static_config(make_settings(QUANT_GENAI_RATE_PER_MIN=0)))
    assert off.limits("user", GOV, "a").requests is None  # 0 = no per-user request limit
    assert off.limits("model", GOV, MINI).requests is not None  # the shared one stays


@pytest.mark.parametrize(
    ("per_min", "burst", "window"),
    [(60, None, Window(60, 60)), (60, 10, Window(10, 10)), (0.5, None, Window(1, 120)),
     (7, 3, Window(3, 26)), (0, 5, None)],
)  # fmt: skip
def test_request_windows(per_min: float, burst: int | None, window: Window | None) -> None:
    assert request_window(per_min, burst) == window


def test_the_most_specific_table_wins(make_settings: Callable[..., Settings]) -> None:
    doc = {
        "user": {"requests_per_minute": 100, "tokens_per_minute": 1000},
        "users": {"bob": {"tokens_per_minute": 2000}},
        "models": {MINI: {"requests_per_minute": 50}},
        "services": {
            CHAT: {
                "user": {"requests_per_minute": 30, "request_burst": 3},
                "users": {"bob": {"requests_per_minute": 5}},
                "model": {"tokens_per_minute": 777},
                "models": {MINI: {"tokens_per_minute": 555}},
            }
        },
    }
    eff = Effective(static_config(make_settings(QUANT_GENAI_RATE_LIMITS=json.dumps(doc))))
    assert eff.limits("user", GOV, "ann").requests == Window(100, 60)  # [user]
    assert eff.limits("user", CHAT, "ann").requests == Window(3, 6)  # [services.s.user]
    assert eff.limits("user", CHAT, "bob").requests == Window(5, 60)  # [services.s.users.u]
    assert eff.limits("user", CHAT, "bob").tokens == Window(2000, 60)  # [users.u]
    assert eff.limits("user", GOV, "bob").tokens == Window(2000, 60)
    assert eff.limits("model", GOV, MINI).requests == Window(50, 60)  # [models.m]
    assert eff.limits("model", CHAT, MINI).tokens == Window(555, 60)  # [services.s.models.m]
    other = next(m.id for m in available_models(CHAT) if m.id != MINI)
    assert eff.limits("model", CHAT, other).tokens == Window(777, 60)  # [services.s.model]
    table = eff.table()
    assert set(table) == set(SERVICES) and "bob" in table[CHAT]["users"]
    assert table[CHAT]["models"][MINI]["tokens"] == {"limit": 555, "window_s": 60}


@pytest.mark.parametrize(
    ("doc", "says", "allowed"),
    [
        ({"services": {"chat": {}}}, "services.chat: unknown service 'chat'", list(SERVICES)),
        ({"models": {"gpt-9": {}}}, "models.gpt-9: unknown model", sorted(MODEL_CATALOG)),
        ({"user": {"rpm": 1}}, "user.rpm: unknown limit", list(LIMIT_FIELDS)),
        ({"usr": {}}, "usr: unknown key", None),
        ({"user": {"requests_per_minute": -1}}, "between 0 and 1e12", None),
        ({"user": {"tokens_per_minute": 1.5}}, "must be a whole number", None),
        ({"user": {"tokens_per_minute": "many"}}, "must be a number", None),
        ({"user": {"tokens_per_minute": True}}, "must be a number", None),
        ({"user": {"request_burst": 0, "requests_per_minute": 5}}, "between 1 and", None),
        (
            {"services": {GOV: {"model": {"request_burst": 4}}}},
            f"services.{GOV}.model.request_burst: needs requests_per_minute",
            None,
        ),
        ({"user": 5}, "user: must be a table", None),
        ({"enabled": "yes"}, "enabled: must be true or false", None),
        ({"users": {" ": {}}}, "a user id is 1-200 characters", None),
        ({"services": []}, "services: must be a table", None),
        ({"user": {"tokens_per_minute": 10**400}}, "between 0 and 1e12, not 1000", None),
    ],
)
def test_bad_configuration_names_what_and_what_is_allowed(
    make_settings: Callable[..., Settings],
    doc: dict[str, Any],
    says: str,
    allowed: list[str] | None,
) -> None:
    with pytest.raises(RateLimitConfigError) as caught:
        static_config(make_settings(QUANT_GENAI_RATE_LIMITS=json.dumps(doc)))
    assert str(caught.value).startswith("QUANT_GENAI_RATE_LIMITS")
    assert says in str(caught.value)
    if allowed is not None or "unknown key" in says:
        assert caught.value.allowed == (allowed or caught.value.allowed) and caught.value.allowed
    if "unknown key" in says:
        assert caught.value.allowed is not None and "services" in caught.value.allowed


def test_a_model_the_service_does_not_allow_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    allowed = [m.id for m in available_models(GOV)]
    outside = next(m for m in MODEL_CATALOG if m not in allowed)
    doc = {"services": {GOV: {"models": {outside: {"tokens_per_minute": 5}}}}}
    with pytest.raises(RateLimitConfigError) as caught:
        static_config(make_settings(QUANT_GENAI_RATE_LIMITS=json.dumps(doc)))
    assert f"services.{GOV}.models.{outside}" in str(caught.value)
    assert caught.value.allowed == allowed


def test_files_toml_and_json_and_their_errors(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    toml = tmp_path / "limits.toml"
    toml.write_text(f"[services.{GOV}.user]\nrequests_per_minute = 6\n", "utf-8")
    eff = Effective(static_config(make_settings(QUANT_GENAI_RATE_LIMITS=str(toml))))
    assert eff.limits("user", GOV, "a").requests == Window(6, 60)
    js = tmp_path / "limits.json"
    js.write_text(json.dumps({"enabled": False}), "utf-8")
    assert not Effective(static_config(make_settings(QUANT_GENAI_RATE_LIMITS=str(js)))).enabled
    cases = {
        str(tmp_path / "missing.toml"): "cannot read",
        str(tmp_path / "limits.yaml"): "neither inline JSON nor a .toml or .json file",
        '{"user": ': "not valid JSON",
    }
    bad = tmp_path / "bad.toml"
    bad.write_text("[user\n", "utf-8")
    cases[str(bad)] = "not valid TOML"
    for value, says in cases.items():
        with pytest.raises(RateLimitConfigError, match=says):
            static_config(make_settings(QUANT_GENAI_RATE_LIMITS=value))


def test_merge_patch() -> None:
    base = {
        "user": {"requests_per_minute": 5, "request_burst": 2},
        "users": {"a": {"tokens_per_minute": 1}},
    }
    patch = {
        "user": {"request_burst": None},
        "users": {"a": None, "b": {"tokens_per_minute": 3, "x": None}},
    }
    assert merge(base, patch) == {
        "user": {"requests_per_minute": 5},
        "users": {"b": {"tokens_per_minute": 3}},
    }
    assert base["users"] == {"a": {"tokens_per_minute": 1}}  # not modified


# --------------------------------------------------------------------------------------------
# Counting (memory storage)
# --------------------------------------------------------------------------------------------


def test_requests_per_user_and_service_never_block_another_service(
    make_settings: Callable[..., Settings],
) -> None:
    limits = _limits(make_settings, QUANT_GENAI_RATE_PER_MIN=60, QUANT_GENAI_RATE_BURST=2)
    assert limits.storage == "memory"
    limits.hit_request(GOV, MINI, "alice")
    limits.hit_request(GOV, MINI, "alice")
    refused = _refused(limits, GOV, MINI, "alice")
    assert (refused.scope, refused.kind, refused.limit, refused.window_s) == (
        "user",
        "requests",
        2,
        2,
    )
    assert 1 <= refused.retry_after_s <= 2
    assert "scope=user key=prompt_governance/alice limit=2 requests window=2s" in str(refused)
    assert refused.headers()["Retry-After"] == str(refused.retry_after_s)
    for service in (CHAT, STRAT, "narrative_report"):  # other services: their own windows
        limits.hit_request(service, MINI, "alice")
    limits.hit_request(GOV, MINI, "bob")  # another user
    assert limits.usage("alice")[GOV]["requests"] == {"limit": 2, "window_s": 2, "remaining": 0}
    assert limits.usage("alice")[CHAT]["requests"]["remaining"] == 1


def test_the_model_window_is_shared_and_a_user_refused_alone_uses_none_of_it(
    make_settings: Callable[..., Settings],
) -> None:
    doc = {"user": {"requests_per_minute": 2}, "model": {"requests_per_minute": 3}}
    limits = _limits(make_settings, doc)
    limits.hit_request(CHAT, MINI, "alice")
    limits.hit_request(CHAT, MINI, "alice")
    for _ in range(5):  # alice over her own limit: never reaches the shared window
        assert _refused(limits, CHAT, MINI, "alice").scope == "user"
    limits.hit_request(CHAT, MINI, "bob")  # the third of the model's three
    refused = _refused(limits, CHAT, MINI, "carol")
    assert refused.scope == "model" and "across all users" in str(refused)
    assert "key=chatops_advanced/gpt-4o-mini limit=3 requests window=60s" in str(refused)
    other = next(m.id for m in available_models(CHAT) if m.id != MINI)
    limits.hit_request(CHAT, other, "carol")  # another model: its own window


def test_tokens_count_the_cost_and_a_call_bigger_than_the_limit_never_fits(
    make_settings: Callable[..., Settings],
) -> None:
    limits = _limits(make_settings, {"user": {"tokens_per_minute": 1000}})
    limits.hit_tokens(GOV, MINI, "alice", 700)
    refused = _refused(limits, GOV, MINI, "alice", tokens=400)
    assert refused.kind == "tokens" and refused.cost == 400 and "needs up to 400" in str(refused)
    assert 1 <= refused.retry_after_s <= 120
    limits.hit_tokens(GOV, MINI, "alice", 300)  # exactly the rest
    never = _refused(limits, CHAT, MINI, "alice", tokens=1001)
    assert "more than the limit of 1000 tokens per 60 s" in str(
        never
    ) and "smaller max_tokens" in str(never)
    limits.hit_tokens(CHAT, MINI, "alice", 1000)  # the other service's window was untouched


def test_a_graph_call_without_a_user_counts_only_the_model_window(
    make_settings: Callable[..., Settings],
) -> None:
    limits = _limits(
        make_settings, {"user": {"tokens_per_minute": 10}, "model": {"tokens_per_minute": 100}}
    )
    limits.hit_tokens(GOV, MINI, None, 60)
    assert _refused(limits, GOV, MINI, None, tokens=60).scope == "model"


def test_disabled_limits_count_nothing_and_attach_no_handler(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(
        QUANT_GENAI_RATE_LIMITS='{"enabled": false}',
        QUANT_GENAI_RATE_PER_MIN=1,
        QUANT_GENAI_RATE_BURST=1,
    )
    limits = rates.rate_limits(s)
    for _ in range(50):
        limits.hit_request(GOV, MINI, "alice")
        limits.hit_tokens(GOV, MINI, "alice", 10**9)
    assert rate_limit_handler(GOV, MINI, "alice", s) is None
    assert rate_limit_handler(GOV, MINI, "alice", make_settings()) is not None


# --------------------------------------------------------------------------------------------
# Runtime overrides (a real SQLite ledger under the test's data dir)
# --------------------------------------------------------------------------------------------


def test_overrides_patch_replace_and_reach_another_instance(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = make_settings()
    one, two = RateLimits(s), RateLimits(s)  # two processes' views of one database
    assert two.effective().limits("user", GOV, "alice").requests == Window(10, 10)
    patch = {"services": {GOV: {"users": {"alice": {"requests_per_minute": 1}}}}}
    stored = one.set_overrides(patch, replace=False, by="root")
    assert stored.version == 1 and stored.updated_by == "root" and stored.doc == patch
    assert one.effective().limits("user", GOV, "alice").requests == Window(1, 60)  # at once here
    monkeypatch.setattr(rates, "REFRESH_S", 0.0)  # the other re-reads on its next use
    assert two.effective().limits("user", GOV, "alice").requests == Window(1, 60)
    one.hit_request(GOV, MINI, "alice")
    assert _refused(one, GOV, MINI, "alice").limit == 1
    patched = one.set_overrides(
        {"users": {"bob": {"tokens_per_minute": 5}}}, replace=False, by="root"
    )
    assert set(patched.doc) == {"services", "users"} and patched.version == 2
    cleared = one.set_overrides({"services": None}, replace=False, by="root")
    assert cleared.doc == {"users": {"bob": {"tokens_per_minute": 5}}}
    replaced = one.set_overrides({"model": {"tokens_per_minute": 9}}, replace=True, by="admin2")
    assert replaced.doc == {"model": {"tokens_per_minute": 9}} and replaced.updated_by == "admin2"
    assert two.effective().limits("model", CHAT, MINI).tokens == Window(9, 60)
    assert two.effective().limits("user", GOV, "alice").requests == Window(10, 10)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"enabled": False}, "overrides: enabled: unknown key"),
        ({"services": {"chat": None}}, "services.chat: unknown service"),  # even as a deletion
        ({"users": {"a": {"request_burst": 3}}}, "users.a.request_burst: needs requests_per"),
    ],
)
def test_bad_overrides_are_refused_and_nothing_is_stored(
    make_settings: Callable[..., Settings], doc: dict[str, Any], says: str
) -> None:
    limits = RateLimits(make_settings())
    with pytest.raises(RateLimitConfigError, match=says.replace("(", r"\(")):
        limits.set_overrides(doc, replace=False, by="root")
    assert limits.overrides().version == 0


def test_a_stale_write_loses_and_stored_nonsense_is_ignored(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = make_settings()
    store = OverrideStore(get_ledger(s).engine)
    assert store.write({"user": {"tokens_per_minute": 50}}, "root", 0)
    assert not store.write({}, "root", 0)  # someone else wrote version 1 first
    assert store.write({"models": {"gpt-9": {}}}, "root", 1)  # e.g. a model since removed
    limits = RateLimits(s)
    with caplog.at_level(logging.ERROR, logger="agents.usage.rates"):
        eff = limits.effective()
    assert "ignoring stored overrides v2" in caplog.text and "gpt-9" in caplog.text
    assert eff.limits("user", GOV, "a").tokens == Window(2_000_000, 60)  # the static limits


def test_the_process_cache_is_per_settings_and_reset(
    make_settings: Callable[..., Settings],
) -> None:
    from agents import registry

    s = make_settings()
    first = rates.rate_limits(s)
    assert rates.rate_limits(s) is first
    assert rates.rate_limits(make_settings(QUANT_GENAI_RATE_PER_MIN=5)) is not first
    registry.reset()
    assert rates.rate_limits(s) is not first


_LIMIT = st.fixed_dictionaries(
    {},
    optional={
        "requests_per_minute": st.one_of(st.floats(allow_nan=True), st.integers(), st.none()),
        "request_burst": st.one_of(st.integers(-2, 50), st.floats(0, 9), st.none()),
        "tokens_per_minute": st.one_of(st.integers(-5, 10**13), st.text(max_size=3), st.none()),
    },
)
_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=6,
)
_NAMES = st.sampled_from([*SERVICES, MINI, "alice", "gpt-9", "user", "model"])
_DOC = st.dictionaries(
    st.sampled_from(["enabled", "user", "model", "users", "models", "services", "other"]),
    st.one_of(
        _LIMIT,
        st.dictionaries(
            _NAMES,
            st.one_of(_LIMIT, st.dictionaries(_NAMES, _LIMIT | _ANY, max_size=3), _ANY),
            max_size=3,
        ),
        _ANY,
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(base=_DOC, patch=_DOC)
def test_any_document_is_valid_or_a_config_error_and_valid_ones_resolve(
    base: dict[str, Any], patch: dict[str, Any]
) -> None:
    """What an admin may PUT: anything is either refused with RateLimitConfigError or resolves
    to windows for every service, user and model without another error."""
    try:
        doc = merge_layer(validate_layer("base", base), validate_layer("patch", patch))
        check_merged("merged", doc)
    except RateLimitConfigError:
        return
    eff = Effective(doc)
    for service in SERVICES:
        for scope, name in (("user", "alice"), ("user", None), ("model", MINI)):
            limits = eff.limits(scope, service, name)  # type: ignore[arg-type]
            for w in (limits.requests, limits.tokens):
                assert w is None or (w.amount >= 1 and w.seconds >= 1)
    assert set(eff.table()) == set(SERVICES)
