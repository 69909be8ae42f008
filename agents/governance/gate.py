"""The governance gate: the one decision every graph applies to text before a model sees it.

`screen` runs the deterministic checks (`agents.governance.rules.check_text`): PII, banned topics
and the one calibrated injection score — the injection rules and the similarity layer over a
bank of known attacks (`agents.governance.similarity`, MiniLM), combined in `rules.py`. When
that score is uncertain (between the review and block thresholds) the report `needs_review`,
and `decide` settles it: a model's INJECTION blocks, its SAFE clears (unless it
came from a model whose SAFE is not trusted), and without a usable opinion the text is blocked
from the `unreviewed_block` threshold of `rules.toml` up — fail closed. `gate` does both, for
graphs that ask no model, so the same uncertain text is blocked by every graph.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents.governance.rules import (
    GovernanceReport,
    Reason,
    SecondOpinion,
    Verdict,
    check_text,
    default_rules,
    normalize,
)
from agents.governance.similarity import memoised

__all__ = ["blocked_reasons", "decide", "gate", "screen", "screen_is_cheap"]

_WHY_UNREVIEWED: dict[SecondOpinion | None, str] = {
    None: "no model second opinion (switched off)",
    "UNCLEAR": "the model's answer was unclear",
    "ERROR": "the model could not be reached",
    "SAFE": "the embedded local model's SAFE cannot clear a text (unreliable)",
}


def screen(text: str, *, banned: Iterable[str] | None = None) -> GovernanceReport:
    """The rules' verdict on `text` (PII masked, banned topics, injection score); no chat model."""
    return check_text(text, banned=banned)


def screen_is_cheap(text: str) -> bool:
    """Whether `screen(text)` runs no embedding model (its similarity layer is off, or every
    segment of the text is memoised): a fraction of a millisecond, fit for an event loop."""
    cfg = default_rules().similarity
    return cfg is None or not cfg.enabled or memoised(normalize(text), cfg)


def decide(
    report: GovernanceReport,
    opinion: SecondOpinion | None = None,
    *,
    opinion_can_clear: bool = True,
) -> GovernanceReport:
    """The final verdict: `report` (from `screen`) with a model's second opinion folded in.

    Only a report that `needs_review` changes; any other passes through unchanged. INJECTION
    blocks; SAFE clears the uncertainty when `opinion_can_clear`; otherwise (no opinion, an
    unclear or failed call, an untrusted SAFE) the text is blocked if its injection score is at
    least the `unreviewed_block` threshold. A reason records which of these happened.
    """
    if not report.needs_review:
        return report
    verdict: Verdict = report.verdict
    reasons = list(report.reasons)
    if opinion == "INJECTION":
        verdict = "block"
        reasons.append(Reason(code="injection:model", message="the model judged it an injection"))
    elif opinion == "SAFE" and opinion_can_clear:
        reasons.append(Reason(code="injection:model_safe", message="the model judged it safe"))
    else:
        why = _WHY_UNREVIEWED[opinion]
        threshold = default_rules().unreviewed_block_threshold
        if report.injection_score >= threshold:
            verdict = "block"
            why += f"; blocked as the score is at least {threshold}"
        reasons.append(Reason(code="injection:unreviewed", message=why))
    return report.model_copy(
        update={"verdict": verdict, "reasons": reasons, "second_opinion": opinion}
    )


def gate(text: str, *, banned: Iterable[str] | None = None) -> GovernanceReport:
    """`decide(screen(text))`: the final verdict for a graph that asks no model."""
    return decide(screen(text, banned=banned))


def blocked_reasons(report: GovernanceReport) -> str:
    """The reason messages joined with "; ", for a refusal that says why."""
    return "; ".join(r.message for r in report.reasons)
