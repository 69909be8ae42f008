"""The chat-ops question set: questions users ask, each with the tool, arguments and a fact.

Each case names the tool a good assistant calls (None for a concept question that needs no
tool), constraints on that call's arguments (`args`: argument → value or predicate), and how to
compute the fact the answer must contain (`fact`: a function of the user's `World`). Facts are
computed **independently of the service**: from the user's seeded corpus records with plain
sorting, from the bundled market data with pandas, from hand-written reference strategies run
on the engine, from the ledger's raw rows, or from a keyword set for a definition — never by
calling the tools or the graph under test.

`split="heldout"` cases are never used to tune prompts, tool descriptions or logic: report
both halves. Questions that name a backtest id are templates (`{a}`) filled from the user's
records by a selector (`ids`), so they stay right if the corpus changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover

from agents.quant.backtests import BacktestResult, engine_stats, load_ohlcv
from agents.quant.corpus import COMMISSION, STRATEGIES, rsi, sma

Split = Literal["tune", "heldout"]
Lang = Literal["en", "ko"]

# --------------------------------------------------------------------------------------------
# Facts: what the answer must say
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """A number the answer must state: a rounding of `value` (sign-free by default) written
    with enough precision that it is within `rel` of the value."""

    value: float
    rel: float = 0.025
    signless: bool = True


Term = str | Num
"""A string (matched case-, space- and hyphen-insensitively) or a number."""


@dataclass(frozen=True)
class Fact:
    """`need` of the `groups` (default: all) must match; a group matches when any of its terms
    does."""

    groups: tuple[tuple[Term, ...], ...]
    label: str = ""
    need: int | None = None


Expected = tuple[Fact, ...]
"""Alternatives: the answer is right when any one fact matches."""


@dataclass(frozen=True)
class World:
    """What the judge may look at: the user's seeded records and the ledger's raw rows."""

    user_id: str
    records: tuple[BacktestResult, ...]
    ledger_rows: tuple[Mapping[str, Any], ...] = ()
    budget_usd: float | None = None


def date_terms(d: date | str) -> tuple[str, ...]:
    """Ways to write a date: ISO, "August 19, 2004", "19 August 2004", "2004년 8월 19일"."""
    x = date.fromisoformat(str(d)[:10])
    month = x.strftime("%B")
    return (
        x.isoformat(),
        f"{month} {x.day}, {x.year}",
        f"{month} {x.day} {x.year}",
        f"{x.day} {month} {x.year}",
        f"{x.year}년 {x.month}월 {x.day}일",
        f"{x.year}.{x.month:02d}.{x.day:02d}",
    )


def pick(records: tuple[BacktestResult, ...], **where: Any) -> BacktestResult:
    """The one record whose fields equal `where` (parameters may be given as a subset)."""

    def hit(r: BacktestResult) -> bool:
        for k, v in where.items():
            got = getattr(r, k)
            if k == "parameters":
                if any(got.get(pk) != pv for pk, pv in v.items()):
                    return False
            elif got != v:
                return False
        return True

    found = [r for r in records if hit(r)]
    if len(found) != 1:
        raise ValueError(f"{len(found)} records match {where}; the selector must name one")
    return found[0]


def best(records: tuple[BacktestResult, ...], field_name: str, symbol: str | None = None) -> Any:
    """The record with the highest value of a field (pandas, ties by id), optionally per symbol."""
    frame = pd.DataFrame(
        [{"id": r.id, "symbol": r.symbol, "v": getattr(r, field_name)} for r in records]
    )
    if symbol is not None:
        frame = frame[frame["symbol"] == symbol]
    frame = frame.dropna(subset=["v"]).sort_values(["v", "id"], ascending=[False, True])
    top = frame.iloc[0]
    return next(r for r in records if r.id == top["id"])


def record_fact(r: BacktestResult, *fields: str) -> Expected:
    """The record named by its id, or by its strategy name with the given field values."""
    values = tuple((Num(float(getattr(r, f))),) for f in fields if getattr(r, f) is not None)
    return (
        Fact(((r.id,),), f"id {r.id}"),
        Fact(((r.strategy_name,), *values), f"{r.strategy_name} with {fields}"),
    )


def _dollars_today(w: World) -> Decimal:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return sum(
        (Decimal(r["cost_nanousd"] or 0) for r in w.ledger_rows if r["ts"] >= midnight), Decimal(0)
    ) / Decimal(10**9)


def _dollars_all(w: World) -> Decimal:
    return sum((Decimal(r["cost_nanousd"] or 0) for r in w.ledger_rows), Decimal(0)) / Decimal(
        10**9
    )


# --------------------------------------------------------------------------------------------
# Argument constraints
# --------------------------------------------------------------------------------------------

MISSING: Any = object()
"""The value a predicate gets for an argument the call did not pass."""

Check = Callable[[Any], bool]


def norm(value: Any) -> Any:
    """Strings lowered and stripped; numeric strings and numbers as floats."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        s = value.strip().lower()
        try:
            return float(s)
        except ValueError:
            return s
    return value


def one_of(*values: Any) -> Check:
    allowed = {norm(v) for v in values}
    return lambda v: v is not MISSING and v is not None and norm(v) in allowed


def absent_or(check: Check | Any) -> Check:
    """The argument may be left out (its default is right); if given it must pass."""
    inner = check if callable(check) else one_of(check)
    return lambda v: v is MISSING or v is None or inner(v)


def contains(*subs: str) -> Check:
    """A string argument containing every one of `subs` (any case)."""
    return lambda v: isinstance(v, str) and all(s.lower() in v.lower() for s in subs)


def metric_is(*names: str) -> Check:
    """A metric argument naming one of `names` (spacing, case, hyphens and "_ratio" ignored)."""
    allowed = {n.replace(" ", "_").replace("-", "_") for n in names}

    def check(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        key = v.strip().lower().replace(" ", "_").replace("-", "_")
        return key in allowed or key.removesuffix("_ratio") in allowed

    return check


@dataclass(frozen=True)
class IdOf:
    """The id of one of the question's template records (`ChatCase.ids`), resolved per user."""

    keys: tuple[str, ...]


def id_of(*keys: str) -> IdOf:
    return IdOf(keys)


def distinct(*names: str) -> Check:
    """For the whole-call key "*": the named arguments are all given and all different."""
    return lambda args: (
        len({norm(args.get(n)) for n in names}) == len(names)
        and all(args.get(n) not in (None, "") for n in names)
    )


def date_in(lo: str, hi: str) -> Check:
    """A date argument "YYYY-MM-DD…" between `lo` and `hi` (inclusive)."""

    def check(v: Any) -> bool:
        try:
            d = date.fromisoformat(str(v).strip()[:10])
        except ValueError:
            return False
        return date.fromisoformat(lo) <= d <= date.fromisoformat(hi)

    return check


def spec_mentions(*needles: str) -> Check:
    """A spec argument whose JSON has every needle (e.g. '"rsi"', '30')."""

    def check(v: Any) -> bool:
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                return False
        if not isinstance(v, dict):
            return False
        text = json.dumps(v).lower()
        return all(n.lower() in text for n in needles)

    return check


# --------------------------------------------------------------------------------------------
# Hand-written references for the spec runs (the request's words, not the compiler's code)
# --------------------------------------------------------------------------------------------

SPEC_COMMISSION = 0.002
"""What a spec run pays (the engine's default; named strategies pay the corpus's per symbol)."""


class RefCloseCrossSma(Strategy):
    """Buy when the close crosses above its n-bar SMA; sell when it crosses back below."""

    n = 20

    def init(self) -> None:
        self.ma = self.I(sma, self.data.Close, self.n)

    def next(self) -> None:
        if crossover(self.data.Close, self.ma) and not self.position:
            self.buy()
        elif crossover(self.ma, self.data.Close) and self.position:
            self.position.close()


class RefRsiBand(Strategy):
    """Buy when RSI(n) is below `low`; sell when it is above `high`."""

    n = 14
    low = 30.0
    high = 70.0

    def init(self) -> None:
        self.r = self.I(rsi, self.data.Close, self.n)

    def next(self) -> None:
        if self.r[-1] < self.low and not self.position:
            self.buy()
        elif self.r[-1] > self.high and self.position:
            self.position.close()


def reference_return(
    strategy: type[Strategy], symbol: str, start: str, end: str, **params: Any
) -> float:
    frame = load_ohlcv(symbol).loc[pd.Timestamp(start) : pd.Timestamp(end)]
    stats = engine_stats(strategy, frame, 10_000, SPEC_COMMISSION, params)
    return float(stats["Return [%]"])


def named_run_return(name: str, symbol: str) -> float:
    """A named strategy with its defaults on the whole bundled series, as the engine runs it."""
    stats = engine_stats(STRATEGIES[name], load_ohlcv(symbol), 10_000, COMMISSION[symbol], {})
    return float(stats["Return [%]"])


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

FactFn = Callable[[World], Expected]


@dataclass(frozen=True)
class ChatCase:
    id: str
    split: Split
    lang: Lang
    question: str
    tool: str | None
    args: dict[str, Any]
    fact: FactFn
    also: tuple[str, ...] = ()
    """Other tools that are as right (e.g. explain_metric for a metric's concept question)."""
    ids: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Template fields of `question`: a `pick` selector each, filled with the record's id."""
    budget_usd: float | None = None
    """A daily budget for this case's user (set before the run)."""

    def filled(self, records: tuple[BacktestResult, ...]) -> dict[str, str]:
        return {k: pick(records, **sel).id for k, sel in self.ids.items()}

    def text(self, records: tuple[BacktestResult, ...]) -> str:
        return self.question.format(**self.filled(records)) if self.ids else self.question

    def checks(self, records: tuple[BacktestResult, ...]) -> dict[str, Check]:
        """The argument constraints as predicates (values and template ids resolved); the key
        "*" checks the whole arguments dict."""
        ids = self.filled(records)
        out: dict[str, Check] = {}
        for name, want in self.args.items():
            if isinstance(want, IdOf):
                out[name] = one_of(*(ids[k] for k in want.keys))
            else:
                out[name] = want if callable(want) else one_of(want)
        return out


def _words(*groups: tuple[str, ...], label: str = "definition") -> FactFn:
    fact = Fact(tuple(groups), label)
    return lambda _w: (fact,)


def _best(field_name: str, *shown: str, symbol: str | None = None) -> FactFn:
    return lambda w: record_fact(best(w.records, field_name, symbol), *shown)


def _both(a: dict[str, Any], b: dict[str, Any], field_name: str) -> FactFn:
    def fact(w: World) -> Expected:
        ra, rb = pick(w.records, **a), pick(w.records, **b)
        va, vb = getattr(ra, field_name), getattr(rb, field_name)
        return (Fact(((Num(va),), (Num(vb),)), f"{field_name} of both"),)

    return fact


def _one(sel: dict[str, Any], *fields: str) -> FactFn:
    def fact(w: World) -> Expected:
        r = pick(w.records, **sel)
        return (Fact(tuple((Num(float(getattr(r, f))),) for f in fields), f"{fields} of {r.id}"),)

    return fact


def _named_run(name: str, symbol: str) -> FactFn:
    return lambda _w: (Fact(((Num(named_run_return(name, symbol)),),), "total return"),)


def _spec_run(ref: type[Strategy], symbol: str, start: str, end: str, **p: Any) -> FactFn:
    def fact(_w: World) -> Expected:
        value = reference_return(ref, symbol, start, end, **p)
        return (Fact(((Num(value),),), "total return of the reference"),)

    return fact


def _market(symbol: str, what: str) -> FactFn:
    def fact(_w: World) -> Expected:
        frame = load_ohlcv(symbol)
        if what == "dates":
            first, last = frame.index[0], frame.index[-1]
            return (Fact((date_terms(first), date_terms(last)), "first and last date"),)
        close = float(frame["Close"].iloc[-1])
        return (Fact(((Num(close, rel=0.001),),), "last close"),)

    return fact


def _spend(kind: Literal["today", "all", "left"]) -> FactFn:
    def fact(w: World) -> Expected:
        if kind == "left":
            value = Decimal(str(w.budget_usd)) - _dollars_today(w)
        else:
            value = _dollars_today(w) if kind == "today" else _dollars_all(w)
        return (Fact(((Num(float(value), rel=0.02),),), f"spend ({kind}) in USD"),)

    return fact


def _runnable(at_least: int) -> FactFn:
    fact = Fact(tuple((n,) for n in STRATEGIES), f"{at_least} runnable strategies", at_least)
    return lambda _w: (fact,)


SHARPE = ("sharpe", "sharpe_ratio")
RETURN = ("total_return", "return", "returns", "total_return_pct")
DRAWDOWN = ("max_drawdown", "drawdown", "max_dd", "maximum_drawdown")
CAGR = ("cagr", "cagr_pct", "annual_return", "annualized_return", "annualised_return")
MACD_GOOG = {"strategy_name": "MacdCross", "symbol": "GOOG"}
MOM_GOOG = {"strategy_name": "Momentum", "symbol": "GOOG", "parameters": {"lookback": 50}}
MACD_BTC = {"strategy_name": "MacdCross", "symbol": "BTCUSD"}
MOM_BTC = {"strategy_name": "Momentum", "symbol": "BTCUSD", "parameters": {"lookback": 50}}
DONCHIAN_GOOG = {"strategy_name": "DonchianBreakout", "symbol": "GOOG"}
DONCHIAN_EUR = {"strategy_name": "DonchianBreakout", "symbol": "EURUSD"}
COMPARE = {"id_a": id_of("a", "b"), "id_b": id_of("a", "b"), "*": distinct("id_a", "id_b")}
SINCE_ALL = absent_or(
    date_in("1970-01-01", (datetime.now(UTC).date() - timedelta(days=3)).isoformat())
)
"""A "so far" question: no `since`, or one on or before the oldest seeded call's day."""

USAGE_HISTORY: tuple[tuple[int, str, str, int, int, int], ...] = (
    # (days ago, service, model, input tokens, output tokens, cost in nano-dollars): billed
    # OpenAI calls at catalog prices, written into every case user's ledger before the turn
    (0, "narrative_report", "gpt-4o", 1200, 900, 12_000_000),
    (0, "strategy_builder", "gpt-4o-mini", 2100, 700, 735_000),
    (3, "narrative_report", "gpt-4o", 4000, 2500, 35_000_000),
)


def seeded_ledger_rows() -> tuple[dict[str, Any], ...]:
    """The ledger rows the runner seeds (USAGE_HISTORY), as raw rows dated from now: what the
    case sets' own tests compute usage facts from."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return tuple(
        {
            "ts": now - timedelta(days=d),
            "service": s,
            "model": m,
            "input_tokens": tin,
            "output_tokens": tout,
            "cost_nanousd": cost,
        }
        for d, s, m, tin, tout, cost in USAGE_HISTORY
    )


CASES: tuple[ChatCase, ...] = (
    # ---- tune ------------------------------------------------------------------------------
    ChatCase(
        "t01", "tune", "en", "Which of my backtests has the best Sharpe ratio?",
        "top_backtests", {"metric": metric_is(*SHARPE)}, _best("sharpe", "sharpe"),
    ),
    ChatCase(
        "t02", "tune", "ko", "내 백테스트 중에서 총수익률이 가장 높은 3개를 보여줘.",
        "top_backtests", {"metric": absent_or(metric_is(*RETURN)), "k": one_of(3)},
        _best("total_return_pct", "total_return_pct"),
    ),
    ChatCase(
        "t03", "tune", "en", "Compare my backtests {a} and {b}.",
        "compare_backtests", COMPARE, _both(MACD_GOOG, MOM_GOOG, "total_return_pct"),
        ids={"a": MACD_GOOG, "b": MOM_GOOG},
    ),
    ChatCase(
        "t04", "tune", "en", "Run the SmaCross strategy on GOOG.",
        "run_backtest", {"strategy_name": one_of("SmaCross"), "symbol": one_of("GOOG")},
        _named_run("SmaCross", "GOOG"),
    ),
    ChatCase(
        "t05", "tune", "en",
        "Backtest this on BTCUSD from 2015-01-01 to 2021-12-31: buy when the close crosses "
        "above its 6-bar SMA and sell when it crosses back below.",
        "run_strategy_spec",
        {
            "symbol": one_of("BTCUSD"),
            "spec": spec_mentions('"sma"', "6"),
            "start": date_in("2015-01-01", "2015-01-31"),
            "end": date_in("2021-12-01", "2021-12-31"),
        },
        _spec_run(RefCloseCrossSma, "BTCUSD", "2015-01-01", "2021-12-31", n=6),
    ),
    ChatCase(
        "t06", "tune", "ko", "GOOG 시장 데이터는 언제부터 언제까지 있어?",
        "market_data", {"symbol": one_of("GOOG")}, _market("GOOG", "dates"),
    ),
    ChatCase(
        "t07", "tune", "en", "Explain the Sortino ratio as the platform defines it.",
        "explain_metric", {"name": metric_is("sortino")},
        _words(("downside", "losing", "negative"), ("deviation", "volatility")),
    ),
    ChatCase(
        "t08", "tune", "en", "How much have I spent on models today?",
        "my_spend", {}, _spend("today"), also=("my_usage",),
    ),
    ChatCase(
        "t09", "tune", "ko", "지금까지 내 모델 사용량과 비용을 알려줘.",
        "my_usage", {"since": SINCE_ALL}, _spend("all"),
    ),
    ChatCase(
        "t10", "tune", "en", "Which strategies can I run?",
        "list_my_strategies", {}, _runnable(3),
    ),
    ChatCase(
        "t11", "tune", "en", "Find my momentum backtests on BTCUSD.",
        "search_my_backtests", {"query": contains("momentum"), "symbol": absent_or("BTCUSD")},
        lambda w: record_fact(pick(w.records, **MOM_BTC), "total_return_pct")
        + record_fact(
            pick(w.records, strategy_name="Momentum", symbol="BTCUSD", parameters={"lookback": 20}),
            "total_return_pct",
        ),
    ),
    ChatCase(
        "t12", "tune", "en", "Show me the details of backtest {a}.",
        "get_backtest", {"backtest_id": id_of("a")}, _one(DONCHIAN_GOOG, "total_return_pct"),
        ids={"a": DONCHIAN_GOOG},
    ),
    ChatCase(
        "t13", "tune", "en", "What is a stop-loss order?",
        None, {},
        _words(("price", "level"), ("sell", "sold", "close", "exit", "liquidat"),
               ("limit", "cap", "reduce", "minimi", "protect", "prevent further")),
    ),
    ChatCase(
        "t14", "tune", "ko", "평균 회귀 전략이 뭐야?",
        None, {},
        _words(("평균", "average", "mean"), ("가격", "price"),
               ("돌아", "복귀", "되돌", "revert", "return to", "move back")),
    ),
    # ---- held out: never used to tune prompts, descriptions or logic ----------------------
    ChatCase(
        "h01", "heldout", "ko", "GOOG 백테스트 중에서 샤프 비율이 가장 높은 건 뭐야?",
        "top_backtests", {"metric": metric_is(*SHARPE), "symbol": one_of("GOOG")},
        _best("sharpe", "sharpe", symbol="GOOG"),
    ),
    ChatCase(
        "h02", "heldout", "en", "Rank my backtests by CAGR and give me the top two.",
        "top_backtests", {"metric": metric_is(*CAGR), "k": one_of(2)},
        _best("cagr_pct", "cagr_pct"),
    ),
    ChatCase(
        "h03", "heldout", "ko", "{a} 백테스트와 {b} 백테스트를 비교해줘.",
        "compare_backtests", COMPARE, _both(MACD_BTC, MOM_BTC, "total_return_pct"),
        ids={"a": MACD_BTC, "b": MOM_BTC},
    ),
    ChatCase(
        "h04", "heldout", "en", "Please run RsiMeanReversion on EURUSD for me.",
        "run_backtest", {"strategy_name": one_of("RsiMeanReversion"), "symbol": one_of("EURUSD")},
        _named_run("RsiMeanReversion", "EURUSD"),
    ),
    ChatCase(
        "h05", "heldout", "ko",
        "GOOG에서 2010-01-01부터 2012-12-31까지, 14일 RSI가 30 아래면 사고 70 위면 파는 전략을 "
        "백테스트해줘.",
        "run_strategy_spec",
        {
            "symbol": one_of("GOOG"),
            "spec": spec_mentions('"rsi"', "30", "70"),
            "start": date_in("2010-01-01", "2010-01-31"),
            "end": date_in("2012-12-01", "2012-12-31"),
        },
        _spec_run(RefRsiBand, "GOOG", "2010-01-01", "2012-12-31", n=14, low=30, high=70),
    ),
    ChatCase(
        "h06", "heldout", "en", "What is the last close of EURUSD in the bundled market data?",
        "market_data", {"symbol": one_of("EURUSD")}, _market("EURUSD", "last_close"),
    ),
    ChatCase(
        "h07", "heldout", "ko", "최대 낙폭(max drawdown)이 무슨 뜻이야?",
        "explain_metric", {"name": metric_is(*DRAWDOWN)},
        _words(("peak", "고점", "high"), ("trough", "저점", "low", "fall", "하락", "decline")),
    ),
    ChatCase(
        "h08", "heldout", "en", "How much of my daily budget is left today?",
        "my_spend", {}, _spend("left"), budget_usd=5.0,
    ),
    ChatCase(
        "h09", "heldout", "en", "What have my model calls cost me in total so far?",
        "my_usage", {"since": SINCE_ALL}, _spend("all"), also=("my_spend",),
    ),
    ChatCase(
        "h10", "heldout", "ko", "내가 실행할 수 있는 전략 목록을 보여줘.",
        "list_my_strategies", {}, _runnable(3),
    ),
    ChatCase(
        "h11", "heldout", "en", "Search my backtests for Bollinger band mean reversion on EURUSD.",
        "search_my_backtests", {"query": contains("bollinger"), "symbol": absent_or("EURUSD")},
        lambda w: tuple(
            f
            for r in w.records
            if r.strategy_name == "BollingerReversion" and r.symbol == "EURUSD"
            for f in record_fact(r, "total_return_pct")
        ),
    ),
    ChatCase(
        "h12", "heldout", "en", "What were the win rate and the number of trades of backtest {a}?",
        "get_backtest", {"backtest_id": id_of("a")},
        _one(DONCHIAN_EUR, "win_rate_pct", "num_trades"),
        ids={"a": DONCHIAN_EUR},
    ),
    ChatCase(
        "h13", "heldout", "en", "What is a Sharpe ratio?",
        None, {"name": metric_is(*SHARPE)},
        _words(("return",), ("volatility", "risk", "standard deviation")),
        also=("explain_metric",),
    ),
    ChatCase(
        "h14", "heldout", "ko", "공매도가 뭐야?",
        None, {},
        _words(("빌려", "차입", "대여", "borrow"), ("팔", "매도", "sell", "sold"),
               ("하락", "떨어", "fall", "decline", "drop", "lower")),
    ),
)  # fmt: skip
"""14 tune and 14 held-out cases: every tool of `tools.TOOLS`, 10 Korean, 4 concept questions."""
