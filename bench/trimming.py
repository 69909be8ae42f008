"""Prompt trimming measured on the chat benchmark: tokens saved against answers.

The chat benchmark's questions (bench/chat_cases.py, one half at a time) are asked **in one long
thread** by one user (seeded once with the demo corpus, as the benchmark seeds each case's user),
so every question after the first carries the conversation before it — the case trimming is
for. Run twice in one process, each on a thread of its own:

- `history_tokens=0`: earlier turns limited only by the model's context window (the baseline);
- `history_tokens=N` (default: the chat's `HISTORY_TOKENS`): earlier turns within N tokens, the
  user's questions from the turns left out listed in the system prompt.

Reported per run: prompt tokens the chat model was sent (the ledger's `input_tokens`, as the
endpoint counted them), model calls, and answers right by the benchmark's own judge
(bench/chatops.py `judge`: the right tool and the fact computed independently of the service).
Cases with a budget of their own (they need their own user) are left out.

Run: `QUANT_GENAI_BACKEND=local python -m bench.trimming --split tune` (minutes per question
on 2 cores); results in bench/results/trimming.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chat_cases import CASES
from bench.chatops import World, _seed, judge, turn_of

RESULTS = Path(__file__).resolve().parent / "results" / "trimming.json"


def run_thread(budget: int, split: str, model: str | None, user: str) -> dict[str, Any]:
    """Every case of `split` in one thread of `user` with `history_tokens=budget`."""
    from agents.usage.ledger import get_ledger
    from graphs.chatops_advanced import chat_turn, graph_with_memory, thread_config

    records = _seed(user)
    thread = f"trim-{budget}"
    cases = [c for c in CASES if c.split == split and c.budget_usd is None]
    runs = []
    t0 = time.perf_counter()
    for case in cases:
        question = case.text(records)
        try:
            reply = chat_turn(
                question, user_id=user, thread_id=thread, model=model, history_tokens=budget
            )
            state = graph_with_memory().get_state(thread_config(user, thread)).values
            world = World(user, records, tuple(get_ledger().rows(user_id=user)))
            verdict = judge(case, world, reply.text, turn_of(state["messages"]))
            runs.append({"id": case.id, "success": bool(verdict["success"]), "answer": reply.text})
        except Exception as exc:  # a crash is the service failing: counted, not raised
            runs.append({"id": case.id, "success": False, "error": f"{type(exc).__name__}: {exc}"})
        print(f"  budget {budget:5d} {case.id}: {runs[-1]['success']}", flush=True)
    rows = [r for r in get_ledger().rows(user_id=user) if r["service"] == "chatops_advanced"]
    return {
        "history_tokens": budget,
        "questions": len(cases),
        "success": sum(r["success"] for r in runs),
        "model_calls": len(rows),
        "prompt_tokens": sum(int(r["input_tokens"]) for r in rows),
        "output_tokens": sum(int(r["output_tokens"]) for r in rows),
        "seconds": round(time.perf_counter() - t0, 1),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> None:
    from graphs.chatops_advanced import HISTORY_TOKENS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=("tune", "heldout"), default="tune")
    parser.add_argument("--budget", type=int, default=HISTORY_TOKENS)
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("QUANT_GENAI_DATA_DIR", tempfile.mkdtemp(prefix="qg-bench-trim-"))
    from agents import registry
    from agents.settings import get_settings

    registry.reset()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    base = run_thread(0, args.split, args.model, "bench-trim-window")
    trimmed = run_thread(args.budget, args.split, args.model, "bench-trim-budget")
    saved = 1 - trimmed["prompt_tokens"] / base["prompt_tokens"] if base["prompt_tokens"] else 0
    per_call = [r["prompt_tokens"] / max(1, r["model_calls"]) for r in (base, trimmed)]
    report = {
        "benchmark": "trimming",
        "started_at": started,
        "backend": get_settings().backend,
        "model": args.model,
        "split": args.split,
        "machine": {"cpus": os.cpu_count()},
        "prompt_tokens_saved": round(saved, 3),
        "prompt_tokens_per_call": [round(x) for x in per_call],
        "answers_right": [base["success"], trimmed["success"]],
        "window_only": base,
        "trimmed": trimmed,
    }
    earlier = json.loads(RESULTS.read_text("utf-8")) if RESULTS.exists() else {}
    key = args.split if args.budget == HISTORY_TOKENS else f"{args.split}@{args.budget}"
    earlier[key] = report
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(earlier, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("window_only", "trimmed")}))


if __name__ == "__main__":
    main()
