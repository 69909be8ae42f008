"""Prompts of the strategy builder: the spec the model fills, its repair, and free-form code mode.

Kept apart from the graph so a prompt change is one small diff. Examples here come only from the
benchmark's tune half (`bench/strategy_cases.py`); the held-out half is never shown to a model.
"""

from __future__ import annotations

SPEC_SYSTEM = (
    "You turn a trading-strategy request into a JSON StrategySpec. Fill ONLY what the request "
    "states and leave every other optional field null: never invent stop losses, take profits, "
    "trailing stops, time exits, position sizes, dates or a symbol the request does not mention.\n"
    "Series kinds: close, open, high, low, volume, sma, ema, rsi, macd (the MACD line), "
    "macd_signal, macd_hist, bb_upper, bb_middle, bb_lower (Bollinger), atr, highest_high and "
    "lowest_low (over the previous `period` bars: breakouts), roc (rate of change, %), "
    "volume_sma, up_streak and down_streak (consecutive up/down closes; '3 up days in a row' is "
    "up_streak above 2).\n"
    "A condition is {left, op, right} with another series, or {left, op, value} with a fixed "
    "level; ops: crosses_above, crosses_below, above, below. A 'cross' of two averages is "
    "left=fast crosses_above right=slow. entry says when to buy (when to sell short if "
    "direction is short). exit says when to close; leave exit null when the request's exit is "
    "simply the opposite of its entry (the reverse cross).\n"
    "direction: long unless the request says short (short) or both ways (both). Put anything the "
    "request asks for that this schema cannot express, in the request's own words, in "
    "`unsupported`.\n"
    "Example. Request: 'Buy when the 50-day SMA crosses above the 200-day SMA and sell when it "
    "crosses back below.' Spec: "
    '{"name": "SmaCross50200", "entry": {"combine": "all", "conditions": [{"left": {"kind": '
    '"sma", "period": 50}, "op": "crosses_above", "right": {"kind": "sma", "period": 200}}]}}'
)
SPEC_USER = "Request: {request}"
SPEC_FACTS_USER = (
    "Request: {request}\n\nFacts code read from the request (keep every one in your spec; place "
    "a condition marked neither entry nor exit where the request means it):\n{facts}"
)
STYLE_SYSTEM = (
    "A trading-strategy request names no indicator or rule. Choose the one style that fits its "
    'words best: {styles}. Reply with JSON: {{"style": "<style>"}}.'
)
SPEC_REPAIR_USER = (
    "Request: {request}\n\nYour spec:\n{spec}\n\n{instructions}\n\n"
    "Reply with the corrected spec only."
)
SPEC_INVALID_USER = (
    "Request: {request}\n\nYour reply was not a valid StrategySpec: {error}\n\n"
    "Reply with a valid spec only."
)

CODE_SYSTEM_RULES = (
    "- Tunable parameters are class attributes with literal values (e.g. `fast = 10`).\n"
    "- `def init(self):` computes every indicator with `self.I(func, self.data.Close, ...)`, "
    "where `func` is a plain function you define with pandas/numpy returning an array.\n"
    "- `def next(self):` trades with `self.buy()`, `self.sell()` or `self.position.close()`, "
    "reading the latest values as `indicator[-1]` or with `crossover(a, b)`.\n"
    "- Positions are fractional units: use ratios and comparisons between prices and "
    "indicators only, never fixed price levels or share counts.\n"
    "- No file, network or process access, no eval/exec/open, no printing.\n"
    "Reply with the complete code in one ```python block and nothing else."
)
CODE_USER = "Write a strategy for this request: {request}"
CODE_REPAIR_USER = (
    "Request: {request}\n\n"
    "This strategy code failed {stage}:\n```python\n{code}\n```\n\n"
    "Error{where}:\n{error}\n\n"
    "{hint}"
    "Fix the error and reply with the complete corrected code in one ```python block."
)
# The mistakes small models repeat in free-form code, each with the concrete fix.
CODE_REPAIR_HINTS: tuple[tuple[str, str], ...] = (
    (
        "must be a simple literal",
        "Class attributes are tunable parameters and must be plain numbers (`fast = 5`). "
        "Compute indicators inside `def init(self):`, e.g. "
        "`self.ema_fast = self.I(ema, self.data.Close, self.fast)`.",
    ),
    (
        "same length as `data`",
        "The function given to `self.I` must return an array exactly as long as its input: "
        "use pandas rolling windows, e.g. "
        "`return pd.Series(values).rolling(n).max().to_numpy()`, never a single number.",
    ),
    (
        "'Position' object has no attribute",
        "`self.position` only has `size`, `pl`, `pl_pct`, `is_long`, `is_short` and `close()`. "
        "For a stop loss pass it when buying: `self.buy(sl=self.data.Close[-1] * 0.95)`.",
    ),
    (
        "object has no attribute",
        "Every `self.<name>` you read must be a class parameter (`name = 20`) or be assigned "
        "in `init()` before it is used.",
    ),
    (
        "no Python code",
        "Reply with Python code only: one ```python block containing the whole class.",
    ),
)
BLOCKED_NOTE = "blocked by prompt governance: {reasons}"
NO_CODE_ERROR = "the reply contained no Python code defining a backtesting.Strategy subclass"
CANNOT_EXPRESS = "Cannot express {what} as a strategy on daily bars of one symbol."
CLOSEST = " The closest I can build: {description}"
NOT_BACKED = (
    "Not built: the spec has rules I could not read in your request, so it may not do what you "
    "asked ({what})."
)
UNBACKED_FIX = (
    "use only the rules the request states, in the rule its words give them (entry, exit or "
    "short), with no window it does not state; leave exit null when the request states no exit "
    "rule"
)
