"""What code read in a request, written for the model that fills the spec (`graphs.strategy_builder`
puts it under the request): each claim with its span and role, so the model keeps every stated
value and places every rule; measured on the tune halves (`bench/results/strategies_facts_ab.json`).
"""

from __future__ import annotations

from agents.quant.claims import fmt
from agents.quant.faithfulness import claims

__all__ = ["stated_facts"]

_ROLE_WORDS = {"entry": "(entry rule)", "exit": "(exit rule)", "short": "(short entry rule)"}


def _series_words(key: str | None) -> str:
    """`ema:10` → `ema(10)`, `price` → `close`, `ma` → `sma or ema`."""
    if not key:
        return "?"
    fam, _, period = key.partition(":")
    fam = {"price": "close", "ma": "sma or ema"}.get(fam, fam)
    return f"{fam}({period})" if period else fam


def stated_facts(request: str) -> list[str]:
    """What code read in the request, one line a fact (`"RSI(7)": rsi period 7`), for a model
    that fills the spec: it must keep each. Empty when nothing was read."""
    lines: dict[str, None] = {}
    for c in claims(request):
        role = f" {_ROLE_WORDS[c.role]}" if c.role else ""
        if c.field == "level":
            value = "a level not stated" if c.value is None else fmt(c.value)
            fact = f"{_series_words(c.series)} {c.op} {value}{role}"
        elif c.field == "condition":
            fact = f"{_series_words(c.series)} {c.op} {_series_words(c.other)}{role}"
        elif c.field == "indicator":
            fact = f"uses {_series_words(str(c.value))}"
        else:
            fact = f"{c.field.replace('.', ' ')} = {fmt(c.value)}"
        lines[f'- "{c.text}": {fact}'] = None
    return list(lines)
