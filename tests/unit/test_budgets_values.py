"""Budgets as values: validation with clear errors, UTC periods, keys, refusal messages."""

from __future__ import annotations

from datetime import datetime

import pytest

from agents.usage.budgets import (
    PERIODS,
    SCOPES,
    UNITS,
    Budget,
    BudgetError,
    make_budget,
    period_end,
    period_start,
    seconds_to_reset,
)
from agents.usage.limits import QuotaExceededError


def test_a_valid_budget_is_stored_in_its_unit() -> None:
    usd = make_budget(scope="user", period="month", unit="usd", limit=2.5, user_id="alice")
    assert (usd.limit, usd.user_id, usd.service) == (2_500_000_000, "alice", None)
    tokens = make_budget(
        scope="user_service",
        period="day",
        unit="tokens",
        limit=1000,
        user_id=" bob ",
        service="chatops_advanced",
    )
    assert (tokens.limit, tokens.user_id, tokens.service) == (1000, "bob", "chatops_advanced")
    everyone = make_budget(scope="global", period="day", unit="usd", limit=0)
    assert everyone.limit == 0 and everyone.label == "everyone"


@pytest.mark.parametrize(
    ("fields", "message", "allowed"),
    [
        ({"scope": "team"}, "unknown scope 'team'; scopes: user, service", SCOPES),
        ({"period": "week"}, "unknown period 'week'; periods: day, month", PERIODS),
        ({"unit": "eur"}, "unknown unit 'eur'; units: usd, tokens", UNITS),
        ({"limit": -1}, "zero or more", None),
        ({"limit": float("nan")}, "finite number", None),
        ({"unit": "tokens", "limit": 1.5}, "whole number of tokens", None),
        ({"limit": 1e308}, "too large", None),
        ({"unit": "tokens", "limit": 2.0**63}, "too large", None),
        ({"user_id": "a\x00b"}, "without control characters", None),
        ({"user_id": "x" * 257}, "at most 256 characters", None),
        ({"user_id": None}, "scope 'user' needs user id", None),
        ({"scope": "service", "user_id": None}, "needs service", None),
        ({"scope": "global"}, "takes no user id", None),
        (
            {"scope": "user_service", "service": "trading"},
            "unknown service 'trading'; services: narrative_report",
            None,
        ),
    ],
)
def test_bad_budgets_are_refused_naming_what_is_allowed(
    fields: dict[str, object], message: str, allowed: tuple[str, ...] | None
) -> None:
    base: dict[str, object] = {
        "scope": "user",
        "period": "day",
        "unit": "usd",
        "limit": 1.0,
        "user_id": "alice",
    }
    with pytest.raises(BudgetError, match=message) as err:
        make_budget(**{**base, **fields})  # type: ignore[arg-type]
    if allowed is not None:
        assert err.value.allowed == list(allowed)


def test_periods_are_utc_days_and_calendar_months() -> None:
    now = datetime(2026, 12, 31, 18, 30)
    assert period_start("day", now) == datetime(2026, 12, 31)
    assert period_end("day", now) == datetime(2027, 1, 1)
    assert period_start("month", now) == datetime(2026, 12, 1)
    assert period_end("month", now) == datetime(2027, 1, 1)
    assert period_end("month", datetime(2028, 2, 29, 23)) == datetime(2028, 3, 1)
    assert seconds_to_reset("day", now) == 5.5 * 3600
    assert seconds_to_reset("month", datetime(2026, 11, 30)) == 86400


def test_keys_and_lock_ids_name_one_budget_stably() -> None:
    a = Budget("user", "day", "usd", 1, "alice")
    assert a.key == "user|alice||day|usd"
    assert a.lock_id == Budget("user", "day", "usd", 999, "alice").lock_id  # limit not in it
    others = {
        Budget("user", "month", "usd", 1, "alice").lock_id,
        Budget("user", "day", "tokens", 1, "alice").lock_id,
        Budget("user_service", "day", "usd", 1, "alice", "chatops_advanced").lock_id,
        Budget("global", "day", "usd", 1).lock_id,
    }
    assert a.lock_id not in others and len(others) == 4
    assert -(2**63) <= a.lock_id < 2**63


def test_refusal_names_the_budget() -> None:
    err = QuotaExceededError(
        user_id="bob",
        budget_nanousd=1000,
        spent_nanousd=900,
        held_nanousd=0,
        needed_nanousd=200,
        retry_after_s=3600,
        scope="user_service",
        period="month",
        unit="tokens",
        service="chatops_advanced",
    )
    text = str(err)
    assert "monthly token budget of user 'bob' on service 'chatops_advanced'" in text
    assert "scope user_service, period month, unit tokens, limit 1,000 tokens" in text
    assert "900 tokens spent this month" in text and "take up to 200 tokens" in text
    assert "resets at 00:00 UTC on the 1st" in text
    daily = QuotaExceededError(
        user_id="q",
        budget_nanousd=10**9,
        spent_nanousd=0,
        held_nanousd=10**9,
        needed_nanousd=1,
        retry_after_s=2,
    )
    assert "daily budget of user 'q'" in str(daily) and "calls in flight settle" in str(daily)
