"""The spec compiler: every series and op compiles to code the sandbox's static checks accept,
assumptions are exact, output is deterministic, and the words match the numbers.

Behaviour (real backtests against hand-written references) is in
tests/integration/test_compiled_strategies.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
from pydantic import ValidationError

from agents.quant import corpus
from agents.quant.backtests import load_ohlcv
from agents.quant.compiler import (
    Assumption,
    CompiledStrategy,
    compile_spec,
    describe_spec,
    opposite,
)
from agents.quant.sandbox import validate_strategy_code
from agents.quant.spec import (
    MACD_KINDS,
    PRICE_KINDS,
    STREAK_KINDS,
    WINDOWED_KINDS,
    Op,
    Rule,
    SeriesKind,
    StrategySpec,
)

ROOT = Path(__file__).resolve().parents[2]
KINDS: tuple[str, ...] = get_args(SeriesKind)
OPS: tuple[str, ...] = get_args(Op)


def spec(**fields: Any) -> StrategySpec:
    """A spec from plain JSON-like fields, as a model would return it (validated)."""
    return StrategySpec.model_validate({"name": "Compiled", **fields})


def cond(left: dict[str, Any], op: str, right: dict[str, Any] | None = None, value: Any = None):
    out: dict[str, Any] = {"left": left, "op": op}
    if right is not None:
        out["right"] = right
    if value is not None:
        out["value"] = value
    return out


def rule(*conditions: dict[str, Any], combine: str = "all") -> dict[str, Any]:
    return {"combine": combine, "conditions": list(conditions)}


SMA_CROSS = rule(
    cond({"kind": "sma", "period": 10}, "crosses_above", {"kind": "sma", "period": 30})
)
RSI_LOW = rule(cond({"kind": "rsi", "period": 14}, "below", value=30))
RSI_HIGH = rule(cond({"kind": "rsi", "period": 14}, "above", value=70))


def check_valid(compiled: CompiledStrategy) -> None:
    """What the sandbox's layer 1 demands, and what the service relies on."""
    report = validate_strategy_code(compiled.code, parameters=compiled.parameters)
    assert report.ok, report.summary() + "\n" + compiled.code
    assert report.strategy_class == compiled.class_name
    assert report.parameters == compiled.parameters
    assert all(type(v) in (int, float) for v in compiled.parameters.values())
    namespace: dict[str, Any] = {}
    exec(compile(compiled.code, "<strategy>", "exec"), namespace)
    cls = namespace[compiled.class_name]
    assert {k: getattr(cls, k) for k in compiled.parameters} == compiled.parameters
    assert all(len(line) <= 100 for line in compiled.code.splitlines())


# ---- every series kind and op ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", OPS)
def test_every_series_kind_and_op_compiles_to_valid_code(kind: str, op: str) -> None:
    # against a fixed level, and against another series
    other = "open" if kind == "close" else "close"  # a series against itself is no spec
    for right in ({"value": 1.5}, {"right": {"kind": other}}):
        compiled = compile_spec(spec(entry=rule({"left": {"kind": kind}, "op": op, **right})))
        check_valid(compiled)
        attribute = {"macd": "macd_line", "bb_upper": "upper_band", "bb_lower": "lower_band"}
        attribute |= {"bb_middle": "middle_band"}
        if kind in PRICE_KINDS:
            assert f"self.data.{kind.capitalize()}" in compiled.code
        else:
            assert f"self.{attribute.get(kind, kind)} = self.I(" in compiled.code
        crossing = "crossover(" in compiled.code
        assert crossing == op.startswith("crosses")
        assert ("from backtesting.lib import crossover" in compiled.code) == crossing


def test_each_kind_gets_exactly_the_windows_it_uses() -> None:
    """The spec's groups of kinds are the compiler's (a kind added to the spec fails here)."""
    assert set(KINDS) == PRICE_KINDS | WINDOWED_KINDS | MACD_KINDS | STREAK_KINDS
    windows = {"macd": 2, "macd_signal": 3, "macd_hist": 3, "bb_upper": 2, "bb_lower": 2}
    for kind in KINDS:
        compiled = compile_spec(spec(entry=rule(cond({"kind": kind}, "above", value=1))))
        expected = 0 if kind in PRICE_KINDS | STREAK_KINDS else windows.get(kind, 1)
        found = [p for p in compiled.parameters if p.endswith(("_period", "_std_dev"))]
        assert len(found) == expected, (kind, compiled.parameters)


def test_compiled_code_is_formatted_and_lint_clean(tmp_path: Path) -> None:
    """The code is for people: the project's ruff rules and formatter leave it as it is."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    specs = [
        spec(entry=SMA_CROSS, stop_loss_pct=5, take_profit_pct=10, size_pct=50),
        spec(
            direction="both",
            entry=RSI_LOW,
            short_entry=RSI_HIGH,
            exit=rule(cond({"kind": "rsi", "period": 14}, "above", value=50)),
            stop_loss_pct=4,
            take_profit_pct=8,
            atr_stop_multiple=2.5,
            trailing_stop_pct=5,
            max_bars=20,
            size_pct=25,
        ),
        spec(
            direction="short",
            entry=rule(
                cond({"kind": "macd_hist"}, "crosses_below", value=0),
                cond({"kind": "close"}, "above", {"kind": "bb_upper"}),
                cond({"kind": "volume"}, "above", {"kind": "volume_sma"}),
                cond({"kind": "up_streak"}, "above", value=2),
                combine="any",
            ),
            trailing_stop_pct=3,
        ),
    ]
    for i, s in enumerate(specs):
        (tmp_path / f"s{i}.py").write_text(compile_spec(s).code, encoding="utf-8")
    config = ["--config", str(ROOT / "pyproject.toml")]
    lint = subprocess.run([ruff, "check", *config, str(tmp_path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    fmt = [ruff, "format", "--check", "--diff", *config, str(tmp_path)]
    formatted = subprocess.run(fmt, capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


# ---- readable names ---------------------------------------------------------------------------


def test_parameters_are_named_after_what_they_are() -> None:
    assert compile_spec(spec(entry=SMA_CROSS)).parameters == {"fast_period": 10, "slow_period": 30}
    rsi = compile_spec(spec(entry=RSI_LOW, exit=RSI_HIGH))
    assert rsi.parameters == {"rsi_period": 14, "oversold": 30, "overbought": 70}
    assert "self.rsi[-1] < self.oversold" in rsi.code
    stops = compile_spec(
        spec(
            entry=rule(cond({"kind": "ema", "period": 8}, "crosses_above", {"kind": "sma"})),
            stop_loss_pct=5,
            take_profit_pct=12.5,
            trailing_stop_pct=3,
            atr_stop_multiple=2,
            max_bars=10,
            size_pct=50,
        )
    )
    assert list(stops.parameters.items()) == [  # class-body order: windows, levels, exits
        ("ema_period", 8),
        ("sma_period", 20),  # two families with one window each keep their family's name
        ("atr_period", 14),
        ("stop_loss_pct", 5.0),
        ("take_profit_pct", 12.5),
        ("trailing_stop_pct", 3.0),
        ("atr_stop_multiple", 2.0),
        ("max_bars", 10),
        ("size_pct", 50.0),
    ]
    macd = compile_spec(
        spec(entry=rule(cond({"kind": "macd"}, "crosses_above", {"kind": "macd_signal"})))
    )
    assert macd.parameters == {
        "macd_fast_period": 12,
        "macd_slow_period": 26,
        "macd_signal_period": 9,
    }
    assert re.search(r"self\.macd_line = self\.I\(\s*macd_line,", macd.code)
    assert re.search(r"self\.macd_signal = self\.I\(\s*macd_signal,", macd.code)


def test_one_attribute_per_distinct_series_and_one_parameter_per_value() -> None:
    """The same series in entry and exit is one indicator; a default and the same value
    written out are the same series too."""
    compiled = compile_spec(
        spec(
            entry=rule(cond({"kind": "close"}, "crosses_above", {"kind": "sma"})),
            exit=rule(cond({"kind": "close"}, "crosses_below", {"kind": "sma", "period": 20})),
        )
    )
    assert compiled.code.count("= self.I(") == 1
    assert compiled.parameters == {"sma_period": 20}
    three = compile_spec(
        spec(
            entry=rule(
                cond({"kind": "sma", "period": 5}, "above", {"kind": "sma", "period": 20}),
                cond({"kind": "sma", "period": 20}, "above", {"kind": "sma", "period": 50}),
            )
        )
    )
    assert three.parameters == {"sma_period_1": 5, "sma_period_2": 20, "sma_period_3": 50}
    assert three.code.count("= self.I(") == 3
    levels = compile_spec(
        spec(
            entry=rule(cond({"kind": "roc", "period": 20}, "above", value=1)),
            exit=rule(cond({"kind": "roc", "period": 20}, "below", value=-1)),
        )
    )
    assert levels.parameters == {"roc_period": 20, "lower_roc_level": -1, "upper_roc_level": 1}


# ---- assumptions ------------------------------------------------------------------------------


def pairs(compiled: CompiledStrategy) -> list[tuple[str, Any]]:
    return [(a.field, a.value) for a in compiled.assumptions]


def test_assumptions_list_exactly_the_omitted_values() -> None:
    compiled = compile_spec(
        spec(
            entry=rule(
                cond({"kind": "rsi"}, "below", value=30),
                cond({"kind": "close"}, "below", {"kind": "bb_lower", "period": 20}),
            )
        )
    )
    assert pairs(compiled) == [
        ("entry.conditions[0].left.period", 14),
        ("entry.conditions[1].right.std_dev", 2.0),
        ("direction", "long"),
        ("exit", "the opposite of the entry signal"),
        ("size_pct", 100.0),
        ("symbol", "GOOG"),
        ("start", None),
        ("end", None),
    ]
    reasons = {a.field: a.reason for a in compiled.assumptions}
    assert reasons["entry.conditions[0].left.period"] == "RSI period not given: the default 14"
    assert reasons["exit"] == "no exit rule: exits on the opposite of the entry signal"
    assert reasons["size_pct"] == "size not given: 100% of equity"
    assert reasons["symbol"] == "symbol not given: GOOG"


def test_no_assumptions_for_a_spec_that_states_everything() -> None:
    full = spec(
        direction="long",
        entry=rule(
            cond(
                {"kind": "macd_hist", "period": 8, "slow_period": 17, "signal_period": 9},
                "crosses_above",
                value=0,
            )
        ),
        exit=rule(
            cond({"kind": "close"}, "above", {"kind": "bb_upper", "period": 20, "std_dev": 2})
        ),
        size_pct=100,
        symbol="GOOG",
        start="2006-01-01",
        end="2012-12-31",
    )
    assert compile_spec(full).assumptions == []
    # leaving one window out is reported, at its path, and nothing else is
    less = full.model_copy(update={"exit": Rule.model_validate(
        rule(cond({"kind": "close"}, "above", {"kind": "bb_upper", "std_dev": 2}))
    )})  # fmt: skip
    assert pairs(compile_spec(less)) == [("exit.conditions[0].right.period", 20)]


def test_assumptions_for_exits_stops_and_directions() -> None:
    timed = compile_spec(spec(direction="short", entry=SMA_CROSS, max_bars=5))
    assert ("exit", None) in pairs(timed)
    assert "def exit_signal" not in timed.code  # a time exit replaces the opposite signal
    stopped = compile_spec(spec(entry=SMA_CROSS, stop_loss_pct=5, trailing_stop_pct=3))
    assert ("exit", "the opposite of the entry signal") in pairs(stopped)
    assert "def exit_signal" in stopped.code  # stops do not replace the signal exit
    both = compile_spec(spec(direction="both", entry=SMA_CROSS, atr_stop_multiple=2))
    assert [p for p in pairs(both) if p[0] in ("short_entry", "exit", "atr_stop_period")] == [
        ("short_entry", "the opposite of the entry signal"),
        ("exit", None),
        ("atr_stop_period", 14),
    ]
    both_exit = compile_spec(spec(direction="both", entry=RSI_LOW, exit=RSI_HIGH))
    assert ("short_entry", "the exit rule") in pairs(both_exit)
    assert "def exit_signal" not in both_exit.code  # the exit rule *is* the short entry
    four = compile_spec(spec(direction="both", entry=RSI_LOW, short_entry=RSI_HIGH, exit=RSI_HIGH))
    assert ("short_exit", "the opposite of the exit rule") in pairs(four)
    assert "def short_exit_signal" in four.code


def test_a_period_on_a_streak_is_refused_by_the_spec() -> None:
    """A streak counts bars (`up_streak above 2` = 3 in a row); a period would be ignored."""
    with pytest.raises(ValidationError, match="up_streak takes no period"):
        spec(entry=rule(cond({"kind": "up_streak", "period": 3}, "above", value=2)))


# ---- determinism, opposite(), words -----------------------------------------------------------

RICH = dict(
    direction="both",
    entry=rule(
        cond({"kind": "ema", "period": 12}, "crosses_above", {"kind": "ema", "period": 26}),
        cond({"kind": "rsi", "period": 7}, "below", value=60),
    ),
    short_entry=rule(
        cond({"kind": "close"}, "crosses_below", {"kind": "lowest_low", "period": 15})
    ),
    exit=rule(cond({"kind": "roc", "period": 5}, "below", value=-2.5), combine="any"),
    stop_loss_pct=4.5,
    take_profit_pct=9,
    trailing_stop_pct=6,
    atr_stop_multiple=1.5,
    max_bars=40,
    size_pct=30,
    symbol="BTCUSD",
    start="2015-01-01",
    end="2020-06-30",
)


def test_same_spec_same_bytes_even_in_another_process() -> None:
    first = compile_spec(spec(**RICH))
    assert compile_spec(spec(**RICH)) == first
    again = compile_spec(StrategySpec.model_validate_json(spec(**RICH).model_dump_json()))
    assert again.code == first.code
    script = (
        "import json, sys; from agents.quant.compiler import compile_spec;"
        "from agents.quant.spec import StrategySpec;"
        "print(compile_spec(StrategySpec.model_validate(json.loads(sys.argv[1]))).code, end='')"
    )
    payload = json.dumps({"name": "Compiled", **RICH})
    for seed in ("1", "2"):  # a different hash seed changes every set's order
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, payload], capture_output=True, text=True, env=env,
            cwd=ROOT, check=True,
        )  # fmt: skip
        assert out.stdout == first.code


@pytest.mark.parametrize(
    "r",
    [
        rule(cond({"kind": "sma"}, "crosses_above", {"kind": "ema"})),
        rule(
            cond({"kind": "rsi"}, "below", value=30),
            cond({"kind": "close"}, "above", {"kind": "bb_lower"}),
            combine="any",
        ),
        rule(
            cond({"kind": "roc"}, "crosses_below", value=0),
            cond({"kind": "up_streak"}, "above", value=2),
            cond({"kind": "volume"}, "below", {"kind": "volume_sma", "period": 50}),
        ),
    ],
)
def test_opposite_is_an_involution_that_mirrors_each_condition(r: dict[str, Any]) -> None:
    original = Rule.model_validate(r)
    mirrored = opposite(original)
    assert opposite(mirrored) == original
    assert mirrored != original
    assert mirrored.combine == {"all": "any", "any": "all"}[original.combine]
    mirror = {"crosses_above": "crosses_below", "crosses_below": "crosses_above"}
    mirror |= {"above": "below", "below": "above"}
    for a, b in zip(original.conditions, mirrored.conditions, strict=True):
        assert b.op == mirror[a.op]
        assert (b.left, b.right, b.value) == (a.left, a.right, a.value)


def numbers(value: Any) -> list[Any]:
    """Every number (and date) in a dumped spec."""
    if isinstance(value, dict):
        return [n for k, v in value.items() if k != "name" for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    if isinstance(value, bool) or value is None:
        return []
    return [value] if isinstance(value, int | float) or re.match(r"\d{4}-", str(value)) else []


@pytest.mark.parametrize(
    "fields",
    [
        RICH,
        dict(entry=SMA_CROSS, exit=rule(cond({"kind": "close"}, "below", value=123.25))),
        dict(
            direction="short",
            entry=rule(
                cond(
                    {"kind": "macd_signal", "period": 5, "slow_period": 35, "signal_period": 7},
                    "crosses_below",
                    {"kind": "bb_middle", "period": 33},
                )
            ),
            max_bars=17,
            stop_loss_pct=0.75,
        ),
        dict(
            entry=rule(
                cond(
                    {"kind": "atr", "period": 21},
                    "above",
                    {"kind": "bb_upper", "period": 30, "std_dev": 2.5},
                ),
                cond({"kind": "highest_high", "period": 55}, "below", {"kind": "high"}),
            ),
            size_pct=12.5,
        ),
    ],
)
def test_describe_spec_mentions_every_number_in_the_spec(fields: dict[str, Any]) -> None:
    s = spec(**fields)
    text = describe_spec(s)
    assert text == compile_spec(s).description
    for n in numbers(s.model_dump()):
        written = format(n, "g") if isinstance(n, float) else str(n)
        assert re.search(rf"(?<![\d.]){re.escape(written)}(?![\d])", text), (written, text)
    namespace = helpers_of(compile_spec(s).code)
    assert " ".join(namespace["Compiled"].__doc__.split()) == " ".join(text.split())


def test_the_class_docstring_is_the_description_and_free_text_cannot_reach_code() -> None:
    s = spec(entry=SMA_CROSS, start="2010-01-01", end="2011-06-30")
    compiled = compile_spec(s)
    check_valid(compiled)
    namespace: dict[str, Any] = {}
    exec(compile(compiled.code, "<strategy>", "exec"), namespace)
    doc = " ".join(namespace["Compiled"].__doc__.split())
    assert doc == " ".join(describe_spec(s).split())
    with pytest.raises(ValidationError):  # dates are dates: no string reaches the docstring
        spec(entry=SMA_CROSS, start='2010-01-01"""; import os #')


# ---- the helpers compute what the corpus computes ----------------------------------------------


def helpers_of(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<strategy>", "exec"), namespace)
    return namespace


def test_indicator_helpers_equal_the_corpus_definitions() -> None:
    bars = load_ohlcv("GOOG")
    close, high, low = bars.Close.to_numpy(), bars.High.to_numpy(), bars.Low.to_numpy()
    computed = [cond({"kind": k}, "above", value=0) for k in KINDS if k not in PRICE_KINDS]
    code = compile_spec(
        spec(
            direction="both",
            entry=rule(*computed[:6]),
            exit=rule(*computed[6:12]),
            short_entry=rule(*computed[12:]),
        )
    ).code
    h = helpers_of(code)
    same = np.testing.assert_array_equal
    same(h["sma"](close, 20), corpus.sma(close, 20))
    same(h["ema"](close, 12), corpus.ema(close, 12))
    same(h["rsi"](close, 14), corpus.rsi(close, 14))
    same(h["roc"](close, 10), corpus.roc(close, 10))
    same(h["highest_high"](high, 20), corpus.rolling_max(high, 20))
    same(h["lowest_low"](low, 20), corpus.rolling_min(low, 20))
    lower, _middle, upper = corpus.bollinger(close, 20, 2.0)
    same(h["bollinger_band"](close, 20, 2.0), upper)
    same(h["bollinger_band"](close, 20, -2.0), lower)
    line, signal = corpus.macd(close, 12, 26, 9)
    same(h["macd_line"](close, 12, 26), line)
    same(h["macd_signal"](close, 12, 26, 9), signal)
    same(h["macd_histogram"](close, 12, 26, 9), line - signal)
    assert sorted(n for n in h if callable(h[n]) and n[0].islower() and n != "crossover") == sorted(
        ["sma", "ema", "rsi", "roc", "highest_high", "lowest_low", "bollinger_band", "atr",
         "macd_line", "macd_signal", "macd_histogram", "up_streak", "down_streak"]
    )  # fmt: skip


def test_atr_and_streaks_by_their_definitions() -> None:
    bars = load_ohlcv("GOOG").iloc[:300]
    close, high, low = bars.Close.to_numpy(), bars.High.to_numpy(), bars.Low.to_numpy()
    code = compile_spec(
        spec(
            entry=rule(cond({"kind": "up_streak"}, "above", value=2)),
            exit=rule(cond({"kind": "down_streak"}, "above", {"kind": "atr", "period": 5})),
        )
    ).code
    h = helpers_of(code)
    # Wilder's ATR by its textbook recursion, seeded like pandas' ewm(adjust=False)
    tr = [high[0] - low[0]] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, len(close))
    ]
    avg = [tr[0]]
    for x in tr[1:]:
        avg.append(avg[-1] + (x - avg[-1]) / 5)
    expected = np.array([math.nan] * 4 + avg[4:])
    np.testing.assert_allclose(h["atr"](high, low, close, 5), expected, rtol=1e-12)
    up, down, run_up, run_down = [], [], 0, 0
    for i in range(len(close)):
        run_up = run_up + 1 if i and close[i] > close[i - 1] else 0
        run_down = run_down + 1 if i and close[i] < close[i - 1] else 0
        up.append(run_up)
        down.append(run_down)
    np.testing.assert_array_equal(h["up_streak"](close), up)
    np.testing.assert_array_equal(h["down_streak"](close), down)
    assert max(up) >= 5 and max(down) >= 5  # the data really has streaks


def test_only_the_helpers_and_imports_in_use_are_emitted() -> None:
    sma = compile_spec(spec(entry=SMA_CROSS)).code
    assert re.findall(r"^def (\w+)", sma, re.M) == ["sma"]
    assert "import numpy" not in sma
    macd = compile_spec(spec(entry=rule(cond({"kind": "macd_hist"}, "above", value=0)))).code
    assert re.findall(r"^def (\w+)", macd, re.M) == [
        "ema", "macd_line", "macd_signal", "macd_histogram"
    ]  # fmt: skip
    assert "import numpy as np" in macd
    prices = compile_spec(spec(entry=rule(cond({"kind": "close"}, "above", {"kind": "open"}))))
    assert re.findall(r"^def (\w+)", prices.code, re.M) == []
    assert "import pandas" not in prices.code and "crossover" not in prices.code
    assert "        pass" in prices.code  # init has nothing to compute
    check_valid(prices)


def test_sizing_and_stops_on_the_order() -> None:
    full = compile_spec(spec(entry=SMA_CROSS, size_pct=100)).code
    assert "self.buy()" in full and "size_pct" not in full
    half = compile_spec(spec(entry=SMA_CROSS, size_pct=50, stop_loss_pct=5, take_profit_pct=10))
    assert half.parameters["size_pct"] == 50.0
    code = " ".join(half.code.split())
    assert "size=self.size_pct / 100" in code
    assert "sl=price * (1 - self.stop_loss_pct / 100)" in code
    assert "tp=price * (1 + self.take_profit_pct / 100)" in code
    short = " ".join(compile_spec(spec(direction="short", entry=SMA_CROSS, stop_loss_pct=5,
                                       atr_stop_multiple=3)).code.split())  # fmt: skip
    assert "stop = min( price * (1 + self.stop_loss_pct / 100)" in short
    assert "price + self.atr_stop_multiple * self.atr[-1]" in short
    assert "self.sell(sl=stop)" in short


def test_a_level_that_is_no_number_is_refused() -> None:
    """NaN or Infinity as a level would not be a literal the sandbox accepts: the spec refuses."""
    text = '{"name": "Nan", "entry": {"conditions": [{"left": {"kind": "rsi"}, "op": "below", '
    for level in ("NaN", "Infinity"):
        with pytest.raises(ValidationError, match="finite"):
            StrategySpec.model_validate_json(text + f'"value": {level}}}]}}}}')


def test_results_are_frozen_and_carry_symbol_and_description() -> None:
    a = Assumption(field="symbol", value="GOOG", reason="symbol not given: GOOG")
    with pytest.raises(ValidationError):
        a.value = "BTCUSD"  # type: ignore[misc]
    compiled = compile_spec(spec(entry=SMA_CROSS, symbol="EURUSD"))
    with pytest.raises(ValidationError):
        compiled.code = ""  # type: ignore[misc]
    assert compiled.symbol == "EURUSD"
    assert compiled.description.startswith("Long only on EURUSD, all bars.")
    assert compile_spec(spec(entry=SMA_CROSS)).symbol == "GOOG"


def test_a_fixed_price_level_means_the_quoted_price_not_the_engines_units() -> None:
    """GOOG trades in 0.1-share units, so the strategy sees 0.1 × the quote; a level of $600
    must still mean $600 (the engine hands compiled code its `price_unit`)."""
    from agents.quant.backtests import engine_stats, run_backtest

    data = load_ohlcv("GOOG")
    spec = StrategySpec.model_validate(
        {
            "name": "AboveLevel",
            "entry": {"conditions": [{"left": {"kind": "close"}, "op": "above", "value": 600}]},
        }
    )
    compiled = compile_spec(spec)
    assert "self.close_level * self.price_unit" in compiled.code
    namespace: dict[str, Any] = {}
    exec(compile(compiled.code, "<spec>", "exec"), namespace)
    result = run_backtest(namespace[compiled.class_name], data, user_id="u1")
    assert result.num_trades > 1  # in engine units every bar is "above 600": one trade only
    stats = engine_stats(namespace[compiled.class_name], data, 10_000, 0.0, {})
    closes = data["Close"].to_numpy()  # each entry follows a close above $600 (next-open fills)
    assert all(closes[int(bar) - 1] > 600 for bar in stats["_trades"]["EntryBar"])
