"""Embedded-model benchmark: load time, speed and strategy-spec filling of the 0.5B and the 1.5B.

Run: `python -m bench.local_models [--models ID ...] [--skip-strict] [--out PATH]` (not in CI;
~10 min on 2 cores). Both packaged models must be assembled (`make model`). For each model:

* load: `ensure_server` on a fresh port until healthy, 3 times (weights in the page cache);
* speed: llama.cpp's own timings of a 538-token prompt (prompt cache off) and 128 generated
  tokens (`ignore_eos`), 5 times, median and best (`--speed-only` re-measures at a quieter
  moment);
* memory: resident size of this process with both servers loaded at the default window;
* spec filling: `create_chat_model(...).with_structured_output(StrategySpec,
  method="json_schema")` through the factory (so through `agents.llm.structured` on the local
  route) for 12 requests (6 English, 4 Korean, 2 vague), each scored by the hand-written
  expectations below (indicator kinds, periods, levels, op, direction, exits, and no invented
  stops, sizes or dates): per-request pass/fail and totals, with latency;
* grammar: a schema whose only valid answer no model would guess, to show that llama.cpp
  decodes `response_format` json_schema under a grammar;
* strict (unless `--skip-strict`): one request through langchain-openai's own path (OpenAI's
  strict schema: every key required), to show why the local route sends pydantic's schema.

Results go to `bench/results/local_models.json`; the README's table is written from them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")

import httpx
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from agents.llm import servers
from agents.llm.factory import create_chat_model
from agents.llm.weights import LARGE_MODEL_ID, LOCAL_MODEL_ID, model_file_path
from agents.quant.spec import DEFAULTS, Condition, Rule, Series, StrategySpec
from agents.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "local_models.json"
MODELS = (LOCAL_MODEL_ID, LARGE_MODEL_ID)
SERVICE = "narrative_report"  # a policy that allows both embedded models by name
MAX_TOKENS = 600

SYSTEM_PROMPT = """\
You turn a trading-strategy request into a StrategySpec (JSON). Fields:
- name: CamelCase letters and digits only, e.g. SmaBreakdown.
- A series is {"kind": K, "period": N}. close/open/high/low/volume take no period. sma, ema,
  rsi, atr, roc (rate of change), volume_sma, highest_high / lowest_low (of the last N bars),
  up_streak / down_streak (N bars in a row) take a period. Bollinger bands: bb_upper /
  bb_middle / bb_lower with period and std_dev. MACD: macd (the MACD line), macd_signal (its
  signal line), macd_hist (the histogram) with period (fast), slow_period, signal_period.
- A condition is {"left": series, "op": "crosses_above"|"crosses_below"|"above"|"below"} and
  then either "right": another series, or "value": a fixed level (RSI 30, MACD 0).
- entry: when to open. exit: when to close; leave it out for "the opposite of the entry".
  combine "all" or "any" joins a rule's conditions. direction: long (default), short or both.
- symbol: GOOG (Google), EURUSD or BTCUSD (Bitcoin), when the request names one.
- Numbers only when the request gives them: stop_loss_pct, take_profit_pct, trailing_stop_pct
  (percents: 5 means 5%), atr_stop_multiple (N in "N x ATR"), max_bars (close after N bars),
  size_pct (percent of equity per trade). Otherwise leave these fields out: never invent stops,
  sizes, dates or conditions. Put what the spec cannot express in "unsupported".
Example: "short when the close crosses below the 100-day SMA" ->
{"name": "SmaBreakdown", "direction": "short", "entry": {"conditions": [{"left": {"kind":
"close"}, "op": "crosses_below", "right": {"kind": "sma", "period": 100}}]}}"""


# ---- expectations ----------------------------------------------------------------------------

OPTIONAL_NUMBERS = (
    "stop_loss_pct",
    "take_profit_pct",
    "trailing_stop_pct",
    "atr_stop_multiple",
    "max_bars",
    "size_pct",
    "start",
    "end",
)
_MIRROR = {
    "crosses_above": "crosses_below",
    "crosses_below": "crosses_above",
    "above": "below",
    "below": "above",
}
CROSS_UP = frozenset({"crosses_above"})
CROSS_DOWN = frozenset({"crosses_below"})
UP = frozenset({"above", "crosses_above"})
DOWN = frozenset({"below", "crosses_below"})


@dataclass(frozen=True)
class S:
    """An expected series: kind and windows (None = the spec's default is fine too)."""

    kind: str
    period: int | None = None
    std_dev: float | None = None
    slow: int | None = None
    signal: int | None = None

    def matches(self, s: Series) -> bool:
        def same(got: float | None, want: float | None, default: object) -> bool:
            return got == want or (got is None and want == default)

        base = self.kind.split("_")[0] if self.kind.startswith(("bb_", "macd")) else self.kind
        return (
            s.kind == self.kind
            and same(s.period, self.period, DEFAULTS.get(f"{base}.period"))
            and same(s.std_dev, self.std_dev, DEFAULTS.get("bb.std_dev"))
            and same(s.slow_period, self.slow, DEFAULTS.get("macd.slow_period"))
            and same(s.signal_period, self.signal, DEFAULTS.get("macd.signal_period"))
        )


@dataclass(frozen=True)
class C:
    """An expected condition: left, one of the ops, and a right series or a level."""

    left: S
    ops: frozenset[str]
    right: S | None = None
    value: float | None = None

    def matches(self, c: Condition) -> bool:
        if self.value is not None:
            return (
                c.right is None
                and c.value is not None
                and abs(c.value - self.value) < 1e-9
                and c.op in self.ops
                and self.left.matches(c.left)
            )
        assert self.right is not None
        if c.right is None:
            return False
        straight = self.left.matches(c.left) and self.right.matches(c.right) and c.op in self.ops
        mirrored = (
            self.left.matches(c.right)
            and self.right.matches(c.left)
            and _MIRROR[c.op] in self.ops  # "fast crosses above slow" == "slow crosses below fast"
        )
        return straight or mirrored


def _rule_is(rule: Rule | None, conds: tuple[C, ...]) -> bool:
    """Exactly these conditions (in any order), none invented; one condition needs no combine."""
    if rule is None or len(rule.conditions) != len(conds):
        return False
    left = list(rule.conditions)
    for want in conds:
        hit = next((c for c in left if want.matches(c)), None)
        if hit is None:
            return False
        left.remove(hit)
    return len(conds) == 1 or rule.combine == "all"


Check = tuple[str, Callable[[StrategySpec], bool]]


def expect(
    *,
    entry: tuple[C, ...] | None,
    exit: tuple[C, ...] | Literal["opposite", "any"] = "any",
    direction: str = "long",
    symbol: str | None = None,
    also: tuple[Check, ...] = (),
    **numbers: float,
) -> list[Check]:
    """The checks of one request. `entry=None`: any entry (vague requests); `exit="opposite"`:
    no exit rule or the stated one (`exit_if_given`); every optional number not given must be
    left out; `also`: more checks."""
    checks: list[Check] = [("direction", lambda s: s.direction == direction), *also]
    if entry is not None:
        checks.append(("entry", lambda s: _rule_is(s.entry, entry)))
    if isinstance(exit, tuple):
        checks.append(("exit", lambda s: _rule_is(s.exit, exit)))
    checks.append(("no short_entry", lambda s: s.short_entry is None or direction == "both"))
    want_symbol = {symbol} if symbol not in (None, "GOOG") else {None, "GOOG"}
    checks.append(("symbol", lambda s: s.symbol in want_symbol))
    for name in OPTIONAL_NUMBERS:
        if name in numbers:
            checks.append((name, partial(_field_is, name, numbers[name])))
        else:
            checks.append((f"no invented {name}", partial(_field_is, name, None)))
    return checks


def _field_is(name: str, want: object, spec: StrategySpec) -> bool:
    return bool(getattr(spec, name) == want)


def exit_if_given(*conds: C) -> Check:
    """The exit may be left out (the opposite of the entry) or be exactly these conditions."""
    return ("exit (if given)", lambda s: s.exit is None or _rule_is(s.exit, conds))


def any_of_kinds(kinds: set[str]) -> Check:
    return ("entry kinds", lambda s: any(x.kind in kinds for x in s.series()))


@dataclass(frozen=True)
class Request:
    id: str
    lang: Literal["en", "ko", "vague"]
    text: str
    checks: list[Check]


RSI = S("rsi", 14)
REQUESTS: tuple[Request, ...] = (
    Request(
        "en-rsi",
        "en",
        "Buy GOOG when the 14-day RSI drops below 30 and sell when it climbs above 70.",
        expect(entry=(C(RSI, DOWN, value=30),), exit=(C(RSI, UP, value=70),), symbol="GOOG"),
    ),
    Request(
        "en-sma-cross-stop",
        "en",
        "Go long when the 10-day SMA crosses above the 50-day SMA and exit when it crosses "
        "back below. Use a 5% stop loss.",
        expect(
            entry=(C(S("sma", 10), CROSS_UP, right=S("sma", 50)),),
            exit="opposite",
            stop_loss_pct=5,
            also=(exit_if_given(C(S("sma", 10), CROSS_DOWN, right=S("sma", 50))),),
        ),
    ),
    Request(
        "en-donchian-btc",
        "en",
        "Trade BTCUSD: buy when the close breaks above the 20-day highest high and exit when "
        "the close falls below the 10-day lowest low.",
        expect(
            entry=(C(S("close"), UP, right=S("highest_high", 20)),),
            exit=(C(S("close"), DOWN, right=S("lowest_low", 10)),),
            symbol="BTCUSD",
        ),
    ),
    Request(
        "en-macd-short",
        "en",
        "Short EURUSD when the MACD line crosses below its signal line and cover when it "
        "crosses back above. Take profit at 3%.",
        expect(
            entry=(C(S("macd"), CROSS_DOWN, right=S("macd_signal")),),
            direction="short",
            symbol="EURUSD",
            take_profit_pct=3,
            also=(exit_if_given(C(S("macd"), CROSS_UP, right=S("macd_signal"))),),
        ),
    ),
    Request(
        "en-bollinger-size",
        "en",
        "Buy when the price closes below the lower Bollinger band (20, 2) and sell when it "
        "closes above the middle band. Put 50% of equity in each trade.",
        expect(
            entry=(C(S("close"), DOWN, right=S("bb_lower", 20, 2.0)),),
            exit=(C(S("close"), UP, right=S("bb_middle", 20, 2.0)),),
            size_pct=50,
        ),
    ),
    Request(
        "en-ema-rsi-atr",
        "en",
        "Go long when the 5-day EMA is above the 20-day EMA and RSI(14) is above 50. Exit "
        "after 10 bars, with a stop at 2 times ATR.",
        expect(
            entry=(C(S("ema", 5), UP, right=S("ema", 20)), C(RSI, UP, value=50)),
            max_bars=10,
            atr_stop_multiple=2,
        ),
    ),
    Request(
        "ko-rsi",
        "ko",
        "RSI(14)가 30 아래로 떨어지면 매수하고 70 위로 올라가면 매도하는 전략을 만들어 줘.",
        expect(entry=(C(RSI, DOWN, value=30),), exit=(C(RSI, UP, value=70),)),
    ),
    Request(
        "ko-sma-cross-stop",
        "ko",
        "20일 이동평균선이 60일 이동평균선을 상향 돌파하면 매수하고, 하향 돌파하면 매도해 줘. "
        "손절은 3%로 해 줘.",
        expect(
            entry=(C(S("sma", 20), CROSS_UP, right=S("sma", 60)),),
            exit="opposite",
            stop_loss_pct=3,
            also=(exit_if_given(C(S("sma", 20), CROSS_DOWN, right=S("sma", 60))),),
        ),
    ),
    Request(
        "ko-breakout-trailing",
        "ko",
        "비트코인(BTCUSD)에서 종가가 20일 최고가를 돌파하면 매수하고, 10% 트레일링 스탑으로 "
        "청산해 줘.",
        expect(
            entry=(C(S("close"), UP, right=S("highest_high", 20)),),
            symbol="BTCUSD",
            trailing_stop_pct=10,
        ),
    ),
    Request(
        "ko-macd-hist",
        "ko",
        "EURUSD에서 MACD(12, 26, 9) 히스토그램이 0 위로 올라가면 매수하고 0 아래로 내려가면 "
        "매도해 줘.",
        expect(
            entry=(C(S("macd_hist", 12, slow=26, signal=9), UP, value=0),),
            exit="opposite",
            symbol="EURUSD",
            also=(exit_if_given(C(S("macd_hist", 12, slow=26, signal=9), DOWN, value=0)),),
        ),
    ),
    Request(
        "vague-momentum",
        "vague",
        "Make me a momentum strategy for Google.",
        expect(
            entry=None,
            also=(any_of_kinds({"roc", "rsi", "sma", "ema", "macd", "macd_hist", "highest_high"}),),
        ),
    ),
    Request(
        "vague-dips",
        "vague",
        "I want something safe that buys the dips.",
        expect(
            entry=None,
            also=(
                any_of_kinds({"rsi", "bb_lower", "lowest_low", "down_streak", "sma", "ema", "roc"}),
            ),
        ),
    ),
)


def score(request: Request, spec: StrategySpec | None) -> dict[str, Any]:
    if spec is None:
        return {"pass": False, "failed": ["a valid StrategySpec"]}
    failed = [name for name, check in request.checks if not check(spec)]
    return {"pass": not failed, "failed": failed}


# ---- measurements ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(db_dir: Path) -> Settings:
    """Both packaged models from ./data/models, on free ports, the default windows, and a
    throw-away ledger (the developer's is not touched)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=ROOT / "data",
        database_url=f"sqlite:///{db_dir / 'ledger.sqlite3'}",
        local_model_path=None,
        local_model_port=_free_port(),
        local_large_port=_free_port(),
        openai_api_key=None,
        backend="local",
    )


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_load(s: Settings, model_id: str, repeats: int = 3) -> dict[str, Any]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        handle = servers.ensure_server(s, model_id)
        times.append(time.perf_counter() - t0)
        handle.stop()
    return {
        "runs_s": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "load_1min": round(os.getloadavg()[0], 2),
    }


_PROSE = (
    "Backtest report. The strategy bought when the fast moving average crossed above the slow "
    "one and sold on the opposite cross; it traded the bundled daily GOOG data from 2004 to "
    "2013 with a commission of 0.1 percent per trade. "
)


def measure_speed(base_url: str, served: str, repeats: int = 5) -> dict[str, Any]:
    """Medians and bests of llama.cpp's own timings: on a shared machine the best run is the
    least disturbed one."""
    body = {
        "model": served,
        "messages": [{"role": "user", "content": _PROSE * 9 + "Summarise it."}],
        "max_tokens": 128,
        "temperature": 0,
        "cache_prompt": False,  # llama.cpp: process the whole prompt every time
        "ignore_eos": True,  # llama.cpp: generate all 128 tokens
    }
    runs = []
    with httpx.Client(timeout=600, trust_env=False) as client:
        for _ in range(repeats):
            t = client.post(f"{base_url}/chat/completions", json=body).json()["timings"]
            runs.append(t)
    return {
        "prompt_tokens": runs[0]["prompt_n"],
        "generated_tokens": runs[0]["predicted_n"],
        "prompt_tok_s": round(statistics.median(r["prompt_per_second"] for r in runs), 1),
        "generated_tok_s": round(statistics.median(r["predicted_per_second"] for r in runs), 1),
        "best_prompt_tok_s": round(max(r["prompt_per_second"] for r in runs), 1),
        "best_generated_tok_s": round(max(r["predicted_per_second"] for r in runs), 1),
        "runs_generated_tok_s": [round(r["predicted_per_second"], 1) for r in runs],
        "load_1min": round(os.getloadavg()[0], 2),
    }


def _messages(text: str) -> list[tuple[str, str]]:
    return [("system", SYSTEM_PROMPT), ("user", text)]


def fill_specs(s: Settings, model_id: str, requests: tuple[Request, ...]) -> dict[str, Any]:
    chat = create_chat_model(SERVICE, model_id, settings=s, max_tokens=MAX_TOKENS, temperature=0)
    structured = chat.with_structured_output(StrategySpec, method="json_schema", include_raw=True)
    runs = []
    for req in requests:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = structured.invoke(_messages(req.text))
        dt = time.perf_counter() - t0
        raw, spec, error = out["raw"], out["parsed"], out["parsing_error"]
        usage = raw.usage_metadata or {}
        try:
            json.loads(str(raw.content))
            json_ok = True
        except ValueError:
            json_ok = False
        runs.append(
            {
                "id": req.id,
                "lang": req.lang,
                **score(req, spec),
                "json": json_ok,
                "valid_spec": spec is not None,
                "error": None if error is None else str(error).splitlines()[:6],
                "latency_s": round(dt, 2),
                "input_tokens": usage.get("input_tokens"),
                "output_tokens": usage.get("output_tokens"),
                "served_model": raw.response_metadata.get("model_name"),
                "load_1min": round(load, 2),
                "spec": None if spec is None else spec.model_dump(exclude_none=True),
                "raw": None if spec is not None else str(raw.content),
            }
        )
        print(f"  {model_id} {req.id}: {'PASS' if runs[-1]['pass'] else 'fail'} {dt:.1f} s")
    return {**summarise(runs), "runs": runs}


def _rules_right(run: dict[str, Any]) -> bool:
    """A valid spec whose only failed checks (if any) are invented values."""
    return bool(run["valid_spec"]) and all(f.startswith("no invented") for f in run["failed"])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of one model's runs: passed (every check), and the two halves of a failure."""
    latencies = [r["latency_s"] for r in runs]
    by_lang = {
        lang: f"{sum(r['pass'] for r in runs if r['lang'] == lang)}/"
        f"{sum(r['lang'] == lang for r in runs)}"
        for lang in ("en", "ko", "vague")
    }
    return {
        "passed": sum(r["pass"] for r in runs),
        "requests": len(runs),
        "by_lang": by_lang,
        "rules_right": sum(_rules_right(r) for r in runs),
        "nothing_invented": sum(
            r["valid_spec"] and not any(f.startswith("no invented") for f in r["failed"])
            for r in runs
        ),
        "valid_specs": sum(r["valid_spec"] for r in runs),
        "json": sum(r["json"] for r in runs),
        "latency_s": {
            "median": round(statistics.median(latencies), 1),
            "max": round(max(latencies), 1),
            "total": round(sum(latencies), 1),
        },
        "output_tokens_median": statistics.median(r["output_tokens"] or 0 for r in runs),
    }


class _Sentinel(BaseModel):
    """Grammar check: the only valid answer is one no model would guess."""

    answer: Literal["zebra-7"]
    count: int


def grammar_check(s: Settings, model_id: str) -> dict[str, Any]:
    chat = create_chat_model(SERVICE, model_id, settings=s, max_tokens=40, temperature=0)
    out = chat.with_structured_output(_Sentinel, method="json_schema").invoke(
        "What is the capital of France? Answer in one word."
    )
    assert isinstance(out, _Sentinel)
    return {"asked": "capital of France", "got": out.model_dump(), "constrained": True}


STRICT_TIMEOUT_S = 240.0


def strict_check(s: Settings, model_id: str, request: Request) -> dict[str, Any]:
    """langchain-openai's own json_schema path (the SDK's strict schema), bypassing ours: one
    attempt, cut at STRICT_TIMEOUT_S (the local route's 300 s x 3 attempts would take 15 min)."""
    once = s.model_copy(update={"max_retries": 0, "local_timeout_s": STRICT_TIMEOUT_S})
    chat = create_chat_model(SERVICE, model_id, settings=once, max_tokens=1000, temperature=0)
    structured = ChatOpenAI.with_structured_output(
        chat, StrategySpec, method="json_schema", include_raw=True
    )
    t0 = time.perf_counter()
    try:
        out = structured.invoke(_messages(request.text))
    except Exception as exc:  # the SDK raises when the JSON was cut at max_tokens; timeouts
        dt = time.perf_counter() - t0
        return {
            "id": request.id,
            "latency_s": round(dt, 1),
            "valid_spec": False,
            "error": f"{type(exc).__name__}: {str(exc)[:300]}",
        }
    dt = time.perf_counter() - t0
    usage = out["raw"].usage_metadata or {}
    return {
        "id": request.id,
        "latency_s": round(dt, 1),
        "output_tokens": usage.get("output_tokens"),
        "valid_spec": out["parsed"] is not None,
        "error": None if out["parsing_error"] is None else str(out["parsing_error"])[:600],
    }


# ---- main ------------------------------------------------------------------------------------


def run_model(
    s: Settings, model_id: str, *, strict: bool, requests: tuple[Request, ...] = REQUESTS
) -> dict[str, Any]:
    print(f"{model_id}: load")
    load = measure_load(s, model_id)
    handle = servers.ensure_server(s, model_id)
    print(f"{model_id}: speed")
    speed = measure_speed(handle.base_url, handle.served_model)
    print(f"{model_id}: spec filling")
    result = {
        "gguf_bytes": model_file_path(s, model_id).stat().st_size,
        "load": load,
        "speed": speed,
        "grammar": grammar_check(s, model_id),
        "spec_filling": fill_specs(s, model_id, requests),
    }
    if strict:
        print(f"{model_id}: strict schema")
        result["strict_schema"] = strict_check(s, model_id, REQUESTS[0])
    return result


def remeasure_speed(path: Path, models: list[str]) -> None:
    report = json.loads(path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        s = _settings(Path(tmp))
        for m in models:
            entry = report["models"][m]
            entry["load"] = measure_load(s, m)
            handle = servers.ensure_server(s, m)
            entry["speed"] = measure_speed(handle.base_url, handle.served_model)
            print(f"{m}: load {entry['load']}, speed {entry['speed']}")
        report["memory"] = {
            "servers_rss_mib": round(_rss_mib()),
            "servers": models,
            "ctx_per_request": s.local_model_ctx,
        }
        for m in models:
            servers.ensure_server(s, m).stop()
    report["speed_measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write(path, report)


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--skip-strict", action="store_true")
    parser.add_argument("--requests", nargs="+", help="only these request ids (a quick look)")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="re-measure load time, speed and memory into the existing --out file (on a busy "
        "machine, at a quieter moment)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.speed_only:
        remeasure_speed(args.out, args.models)
        return
    with tempfile.TemporaryDirectory() as tmp:
        s = _settings(Path(tmp))
        started = datetime.now(UTC).isoformat(timespec="seconds")
        load_before = os.getloadavg()
        chosen = tuple(r for r in REQUESTS if not args.requests or r.id in args.requests)
        report: dict[str, Any] = {
            "benchmark": "local_models",
            "started_at": started,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_avg_before": [round(x, 2) for x in load_before],
            },
            "service": SERVICE,
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "system_prompt": SYSTEM_PROMPT,
            "requests": [{"id": r.id, "lang": r.lang, "text": r.text} for r in chosen],
            "models": {},
        }
        results: dict[str, Any] = report["models"]
        for m in args.models:
            results[m] = run_model(s, m, strict=not args.skip_strict, requests=chosen)
            _write(args.out, report)  # after each model: a long run interrupted keeps its data
        for m in args.models:
            servers.ensure_server(s, m)
        report["memory"] = {
            "servers_rss_mib": round(_rss_mib()),
            "servers": list(args.models),
            "ctx_per_request": s.local_model_ctx,
        }
        for m in args.models:
            servers.ensure_server(s, m).stop()
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    _write(args.out, report)
    for m, r in results.items():
        sf = r["spec_filling"]
        print(
            f"{m}: load {r['load']['median_s']} s, {r['speed']['generated_tok_s']} gen tok/s, "
            f"{r['speed']['prompt_tok_s']} prompt tok/s, specs {sf['passed']}/{sf['requests']} "
            f"(valid {sf['valid_specs']}), median {sf['latency_s']['median']} s"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
