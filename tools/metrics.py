"""The backtest metrics people ask about: one table in code, for ranking and for definitions.

`explain_metric` answers from this table only, so a definition is never the model's invention;
`top_backtests` ranks by the same names (one validated vocabulary, listed in every error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from langchain.tools import tool
from langchain_core.tools import ToolException

from agents.quant.glossary import find_term


@dataclass(frozen=True)
class MetricInfo:
    """One metric: the `BacktestResult` field, the label the facts use, what it means."""

    name: str
    field: str
    label: str
    definition: str
    reading: str
    aliases: tuple[str, ...] = ()
    rankable: bool = True
    order: str = "highest first"
    worst_order: str = "lowest first"


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo(
            "total_return",
            "total_return_pct",
            "total return",
            "The percentage change of the account over the backtest: final equity divided by "
            "the initial cash, minus one, times 100. Commissions are included.",
            "Higher is better; compare it with buy-and-hold to see if trading added anything.",
            ("return", "returns", "profit", "performance", "total_return_pct"),
        ),
        MetricInfo(
            "cagr",
            "cagr_pct",
            "CAGR",
            "Compound annual growth rate: the constant yearly return that turns the initial "
            "cash into the final equity over the backtest's length in years.",
            "Higher is better; unlike total return it is comparable across periods of "
            "different lengths.",
            ("annual_return", "annualized_return", "annualised_return", "cagr_pct"),
        ),
        MetricInfo(
            "sharpe",
            "sharpe",
            "Sharpe ratio",
            "The annualised return divided by the annualised volatility of the strategy's "
            "returns (risk-free rate 0): return per unit of total risk.",
            "Higher is better; negative means the strategy lost money; it punishes upside and "
            "downside swings alike.",
            ("sharpe_ratio",),
        ),
        MetricInfo(
            "sortino",
            "sortino",
            "Sortino ratio",
            "Like the Sharpe ratio, but divided by the downside deviation only: the "
            "volatility of the losing periods.",
            "Higher is better; well above the Sharpe ratio means most volatility was upside.",
            ("sortino_ratio",),
        ),
        MetricInfo(
            "max_drawdown",
            "max_drawdown_pct",
            "max drawdown",
            "The largest fall of equity from a peak to a later trough, in percent of the peak. "
            "It is reported as a negative number (or zero).",
            "Closer to zero is better: it is the worst loss an investor who bought at the top "
            "would have sat through.",
            ("drawdown", "max_dd", "maximum_drawdown", "risk", "max_drawdown_pct"),
            order="smallest drawdown first",
            worst_order="deepest drawdown first",
        ),
        MetricInfo(
            "win_rate",
            "win_rate_pct",
            "win rate",
            "The percentage of closed trades that made a profit.",
            "Higher is not always better: a strategy can win often and lose more on the "
            "losing trades; read it with the total return.",
            ("winrate", "hit_rate", "win_pct", "win_rate_pct"),
        ),
        MetricInfo(
            "exposure",
            "exposure_pct",
            "exposure",
            "The percentage of bars during which the strategy held a position.",
            "Lower exposure for the same return means the money was at risk for less time.",
            ("exposure_time", "time_in_market", "exposure_pct"),
            rankable=False,
        ),
        MetricInfo(
            "buy_and_hold",
            "buy_and_hold_return_pct",
            "buy-and-hold return",
            "The return of buying the symbol on the first bar of the backtest and holding it "
            "to the last bar: the benchmark a strategy should beat.",
            "A strategy whose total return is below it did worse than doing nothing.",
            ("buy_and_hold_return", "buy_hold", "benchmark", "buy_and_hold_return_pct"),
            rankable=False,
        ),
        MetricInfo(
            "trades",
            "num_trades",
            "trades",
            "The number of closed trades (a position still open on the last bar is closed "
            "there and counted).",
            "Few trades make the other statistics noisy; many trades pay more commission.",
            ("num_trades", "trade_count", "number_of_trades"),
            order="most trades first",
            worst_order="fewest trades first",
        ),
    )
}
"""Every metric by its canonical name."""

_ALIASES = {alias: m.name for m in METRICS.values() for alias in (m.name, *m.aliases)}


def metric_names(*, rankable_only: bool = False) -> list[str]:
    return [n for n, m in METRICS.items() if m.rankable or not rankable_only]


def find_metric(name: str) -> MetricInfo | None:
    """The metric a user or model means: canonical name, alias, or label, any case/spacing."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower()).replace("&", "and")
    key = key.removesuffix("_ratio") if key.removesuffix("_ratio") in _ALIASES else key
    if key in _ALIASES:
        return METRICS[_ALIASES[key]]
    by_label = {m.label.lower(): m for m in METRICS.values()}
    return by_label.get(name.strip().lower())


@tool
def explain_metric(name: str) -> dict[str, Any] | str:
    """The platform's definition of a backtest metric (Sharpe, Sortino, max drawdown, CAGR,
    win rate, exposure, buy-and-hold, total return, trades), or of a trading term from the
    platform's glossary (slippage, leverage, ...), for "what is / explain" questions.

    name: the metric, e.g. "sharpe" or "max drawdown".
    """
    m = find_metric(name)
    if m is not None:
        return {"metric": m.label, "definition": m.definition, "how_to_read": m.reading}
    term = find_term(name)  # "slippage": a trading term, not a metric: the glossary's words
    if term is not None and term.metric is None:
        return {"metric": term.name, "definition": term.definition_en, "how_to_read": ""}
    raise ToolException(f"Unknown metric {name!r}; valid metrics are: {', '.join(metric_names())}.")
