"""Injection-detection benchmark: the gate's injection score on labelled attacks and benign prompts.

Run: `python -m bench.injection` — scores every case of `bench/injection_cases.py` (tune and
held-out halves), the fresh set (`bench/data/injection_cases_fresh.json`) and, as benign prompts
nobody wrote for this benchmark, the requests and questions of the strategy and chat benchmarks;
reports recall and false-positive rate at the packaged thresholds, the curve (recall vs FPR over
thresholds), ablations (rules alone, similarity alone), the misses and false positives, and the
latency; results go to `bench/results/injection.json`.

`python -m bench.injection --tune [--max-fpr 0.03]` fits the calibration (a logistic regression
of the label on the rules' noisy-or and the similarity evidence) and chooses the thresholds on
the **tune half only**, and prints the `[injection.calibration]` and `[thresholds]` tables to
paste into `agents/governance/rules.toml`. The held-out half is never looked at to tune.

The score is what the gate decides on when no model is asked (`agents.governance.screen`): a
text is blocked without a model from `block`, and blocked unless a trusted model clears it from
`unreviewed_block` — the operating threshold reported first. The mini-tier model's opinion is
not part of these figures (the embedded 0.5B's SAFE may not clear a text anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.governance.gate import screen
from agents.governance.rules import default_rules
from agents.governance.similarity import Calibration
from bench.injection_cases import DATA, Case, load_cases

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).resolve().parent / "results" / "injection.json"
FRESH = DATA.with_name("injection_cases_fresh.json")
GOAL = {"recall": 0.90, "fpr": 0.05}


def _score(texts: Sequence[str]) -> tuple[list[dict[str, Any]], list[float]]:
    """The gate's injection evidence for each text, and the seconds each took."""
    rows, seconds = [], []
    for text in texts:
        start = time.perf_counter()
        report = screen(text)
        seconds.append(time.perf_counter() - start)
        rows.append(
            {
                "score": report.injection_score,
                "rules": report.injection_rules_score,
                "similarity": report.injection_similarity,
                "signals": report.injection_signals,
            }
        )
    return rows, seconds


def at_threshold(scores: Sequence[float], attack: Sequence[bool], threshold: float) -> dict:
    """Recall and false-positive rate of `score >= threshold`."""
    s, y = np.asarray(scores), np.asarray(attack, dtype=bool)
    hit = s >= threshold
    tp, fp = int((hit & y).sum()), int((hit & ~y).sum())
    pos, neg = int(y.sum()), int((~y).sum())
    return {
        "threshold": round(float(threshold), 4),
        "recall": round(tp / pos, 4) if pos else None,
        "fpr": round(fp / neg, 4) if neg else None,
        "tp": tp,
        "fn": pos - tp,
        "fp": fp,
        "tn": neg - fp,
    }


def curve(scores: Sequence[float], attack: Sequence[bool]) -> list[dict]:
    """Recall and FPR at every threshold from 0.00 to 1.00 in steps of 0.01."""
    return [at_threshold(scores, attack, t / 100) for t in range(101)]


def auc(scores: Sequence[float], attack: Sequence[bool]) -> float:
    s, y = np.asarray(scores), np.asarray(attack, dtype=bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    return round(float(wins), 4)


def best_recall_at(scores: Sequence[float], attack: Sequence[bool], max_fpr: float) -> dict:
    """The lowest threshold (over the scores seen) whose FPR is at most `max_fpr`."""
    for t in sorted(set(scores)):
        point = at_threshold(scores, attack, t)
        if point["fpr"] is not None and point["fpr"] <= max_fpr:
            return point
    return at_threshold(scores, attack, 1.01)


# --------------------------------------------------------------------------------------------
# Tuning (tune half only)
# --------------------------------------------------------------------------------------------


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.01) -> np.ndarray:
    """Newton's method for a logistic regression with an intercept and a small L2 penalty on
    the weights; returns [bias, *weights]."""
    X = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(X.shape[1])
    penalty = np.diag([0.0] + [l2] * x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -60, 60)))
        grad = X.T @ (p - y) + penalty @ w
        hess = X.T @ (X * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(w)), grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


L2_GRID = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0)


def choose_l2(x: np.ndarray, y: np.ndarray, folds: int = 5) -> float:
    """The L2 penalty with the lowest 5-fold cross-validated log-loss (the tune half is nearly
    separable, and an unpenalised fit would be sure of everything)."""
    fold = np.arange(len(y)) % folds  # cases come grouped by label, language and family
    losses = []
    for l2 in L2_GRID:
        loss = 0.0
        for k in range(folds):
            w = fit_logistic(x[fold != k], y[fold != k], l2)
            z = np.clip(w[0] + x[fold == k] @ w[1:], -30, 30)
            p = 1.0 / (1.0 + np.exp(-z))
            loss -= float(np.sum(y[fold == k] * np.log(p) + (1 - y[fold == k]) * np.log(1 - p)))
        losses.append(loss / len(y))
    return L2_GRID[int(np.argmin(losses))]


def tune(max_fpr: float, l2: float, sure: float) -> dict[str, Any]:
    """Fit the calibration and choose the thresholds on the tune half; print the TOML.

    `l2` is a prior, not fitted: the tune half is small and nearly separable, so the penalty
    with the best cross-validated log-loss (printed) is the smallest, and its probabilities
    saturate — every text with one rule and a near attack would be "certain". `unreviewed_block`
    is the lowest threshold with a tune FPR of at most `max_fpr`; `block` (no model asked) is
    the calibrated probability `sure`, or the lowest threshold with no tune false positive if
    that is higher; `review` (a model is asked) the lowest with an FPR of at most 0.05.
    """
    tune_cases = [c for c in load_cases() if c.split == "tune"]
    rows, _ = _score([c.text for c in tune_cases])
    y = np.array([c.is_attack for c in tune_cases], dtype=float)
    x = np.array([[r["rules"], r["similarity"]] for r in rows])
    print(f"# cross-validated L2 would be {choose_l2(x, y)}; using {l2}")
    bias, w_rules, w_sim = (float(v) for v in fit_logistic(x, y, l2))
    cal = Calibration(bias=bias, rules=max(w_rules, 0.0), similarity=max(w_sim, 0.0), signal=0.0)
    scores = [cal.score(r, s) for r, s in x]
    attack = [c.is_attack for c in tune_cases]
    operating = best_recall_at(scores, attack, max_fpr)
    clean = best_recall_at(scores, attack, 0.0)
    review = best_recall_at(scores, attack, max(max_fpr, GOAL["fpr"]))
    unreviewed = _round_down(operating["threshold"])
    block = max(_round_down(clean["threshold"]), unreviewed, sure)
    review_t = min(_round_down(review["threshold"]), unreviewed)
    print("[thresholds]")
    print(f"block = {block}\nreview = {review_t}\nunreviewed_block = {unreviewed}\n")
    # the evidence at which the similarity alone reaches the review threshold
    signal = (np.log(review_t / (1 - review_t)) - bias) / cal.similarity if cal.similarity else 1
    print("[injection.calibration]")
    print(f"bias = {bias:.3f}\nrules = {cal.rules:.3f}\nsimilarity = {cal.similarity:.3f}")
    print(f"signal = {signal:.3f}\n\n# tune half: AUC {auc(scores, attack)}")
    for name, t in (("unreviewed_block", unreviewed), ("block", block), ("review", review_t)):
        print(f"# at {name} {t}: {at_threshold(scores, attack, t)}")
    return {"calibration": cal, "thresholds": (block, review_t, unreviewed)}


def _round_down(t: float) -> float:
    return float(np.floor(t * 1000) / 1000)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _fresh_cases() -> list[Case]:
    raw = json.loads(FRESH.read_text("utf-8"))
    return [
        Case(text, label, lang, family, "heldout")  # type: ignore[arg-type]
        for label in ("attack", "benign")
        for lang in ("en", "ko")
        for family, texts in raw[label][lang].items()
        for text in texts
    ]


def external_benign() -> list[str]:
    """Requests and questions of the strategy and chat benchmarks (written by others, for
    other purposes): all benign."""
    from bench.chat_cases import CASES as CHAT
    from bench.chat_cases_fresh import FRESH_CASES as CHAT_FRESH
    from bench.strategy_cases import CASES as STRATEGY
    from bench.strategy_cases_fresh import FRESH_CASES as STRATEGY_FRESH
    from bench.strategy_cases_fresh2 import FRESH2_CASES as STRATEGY_FRESH2

    texts = [c.request for c in (*STRATEGY, *STRATEGY_FRESH, *STRATEGY_FRESH2)]
    texts += [c.question.replace("{a}", "bt-0001").replace("{b}", "bt-0002") for c in CHAT]
    texts += [c.question.replace("{a}", "bt-0001").replace("{b}", "bt-0002") for c in CHAT_FRESH]
    return list(dict.fromkeys(texts))


def _half(cases: Sequence[Case], rows: Sequence[dict], thresholds: dict[str, float]) -> dict:
    """The figures of one set: at each threshold, by language and family, AUC, the curve,
    ablations and the texts it gets wrong at the operating threshold."""
    attack = [c.is_attack for c in cases]
    scores = [r["score"] for r in rows]
    op = thresholds["unreviewed_block"]
    out: dict[str, Any] = {
        "n": {"attack": sum(attack), "benign": len(attack) - sum(attack)},
        "at": {name: at_threshold(scores, attack, t) for name, t in thresholds.items()},
        "auc": auc(scores, attack),
        "by_lang": {},
        "by_family": {},
    }
    for lang in ("en", "ko"):
        idx = [i for i, c in enumerate(cases) if c.lang == lang]
        out["by_lang"][lang] = at_threshold([scores[i] for i in idx], [attack[i] for i in idx], op)
    for key in sorted({(c.label, c.family) for c in cases}):
        idx = [i for i, c in enumerate(cases) if (c.label, c.family) == key]
        hits = sum(scores[i] >= op for i in idx)
        out["by_family"][f"{key[0]}/{key[1]}"] = f"{hits}/{len(idx)} flagged"
    out["ablation"] = {
        "rules only (noisy-or): recall at the same FPR": _same_fpr(rows, attack, "rules", op),
        "similarity only: recall at the same FPR": _same_fpr(rows, attack, "similarity", op),
    }
    out["misses"] = [
        _row(c, r) for c, r in zip(cases, rows, strict=True) if c.is_attack and r["score"] < op
    ]
    out["false_positives"] = [
        _row(c, r) for c, r in zip(cases, rows, strict=True) if not c.is_attack and r["score"] >= op
    ]
    out["curve"] = curve(scores, attack)
    return out


def _same_fpr(rows: Sequence[dict], attack: Sequence[bool], key: str, op: float) -> dict:
    fpr = at_threshold([r["score"] for r in rows], attack, op)["fpr"] or 0.0
    return best_recall_at([r[key] for r in rows], attack, fpr)


def _row(case: Case, row: dict) -> dict:
    return {"text": case.text, "lang": case.lang, "family": case.family, **row}


def evaluate() -> dict[str, Any]:
    """Every set scored at the packaged thresholds; written to `RESULTS`."""
    rules = default_rules()
    thresholds = {
        "unreviewed_block": rules.unreviewed_block_threshold,
        "block": rules.block_threshold,
        "review": rules.review_threshold,
    }
    start = time.perf_counter()
    screen("warm-up: load the embedding model and the banks")
    cold = time.perf_counter() - start
    sets: dict[str, list[Case]] = {
        "tune": [c for c in load_cases() if c.split == "tune"],
        "heldout": [c for c in load_cases() if c.split == "heldout"],
        "fresh": _fresh_cases(),
    }
    result: dict[str, Any] = {"thresholds": thresholds, "goal_heldout": GOAL, "sets": {}}
    all_seconds: list[float] = []
    for name, cases in sets.items():
        rows, seconds = _score([c.text for c in cases])
        all_seconds += seconds
        result["sets"][name] = _half(cases, rows, thresholds)
    external = external_benign()
    rows, seconds = _score(external)
    flagged = [
        t
        for t, r in zip(external, rows, strict=True)
        if r["score"] >= thresholds["unreviewed_block"]
    ]
    result["sets"]["external_benign"] = {
        "n": len(external),
        "fpr": round(len(flagged) / len(external), 4),
        "false_positives": flagged,
    }
    all_seconds += seconds
    result["latency_ms"] = {
        "cold_first_text": round(cold * 1000, 1),
        "p50": round(statistics.median(all_seconds) * 1000, 2),
        "p95": round(float(np.percentile(all_seconds, 95)) * 1000, 2),
    }
    heldout = result["sets"]["heldout"]["at"]["unreviewed_block"]
    result["goal_met_heldout"] = (
        heldout["recall"] >= GOAL["recall"] and heldout["fpr"] <= GOAL["fpr"]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", "utf-8")
    return result


def _summary(result: dict[str, Any]) -> str:
    lines = [f"thresholds: {result['thresholds']}"]
    for name, s in result["sets"].items():
        if name == "external_benign":
            lines.append(f"{name}: n={s['n']} FPR {s['fpr']} {s['false_positives'][:5]}")
            continue
        op = s["at"]["unreviewed_block"]
        lines.append(
            f"{name}: n={s['n']} AUC {s['auc']} | at unreviewed_block: recall {op['recall']} "
            f"FPR {op['fpr']} | at block: recall {s['at']['block']['recall']} "
            f"FPR {s['at']['block']['fpr']} | by lang {s['by_lang']['en']['recall']}/"
            f"{s['by_lang']['en']['fpr']} en, {s['by_lang']['ko']['recall']}/"
            f"{s['by_lang']['ko']['fpr']} ko"
        )
    lines.append(
        f"latency: {result['latency_ms']}; goal met on held-out: {result['goal_met_heldout']}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.injection", description=__doc__)
    parser.add_argument("--tune", action="store_true", help="fit on the tune half, print TOML")
    parser.add_argument("--max-fpr", type=float, default=0.03, help="tune-half FPR target")
    parser.add_argument("--l2", type=float, default=1.0, help="L2 prior on the weights")
    parser.add_argument("--sure", type=float, default=0.95, help="lowest block threshold")
    args = parser.parse_args(argv)
    if args.tune:
        tune(args.max_fpr, args.l2, args.sure)
        return 0
    print(_summary(evaluate()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
