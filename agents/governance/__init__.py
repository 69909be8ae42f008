"""Prompt governance: PII masking, banned topics and prompt-injection scoring, then one decision.

Graphs call the gate, `agents.governance.gate`: `gate(text)` for the final verdict without a
model, or `screen(text)` then `decide(report, opinion)` when a model gives a second opinion;
`blocked_reasons(report)` is the text of a refusal. The rules are in `agents.governance.rules`
(data in `rules.toml`; the similarity to known attacks, one input of the injection score, in
`agents.governance.similarity`) and the PII detectors in `agents.governance.pii`; model output
is masked with `agents.governance.pii.mask_output`. The function `gate` is
imported from its module (`from agents.governance.gate import gate`), not re-exported here, so
`agents.governance.gate` stays the module.
"""

from agents.governance.gate import blocked_reasons, decide, screen
from agents.governance.pii import Finding, PiiType
from agents.governance.rules import (
    GovernanceReport,
    Reason,
    Rules,
    RulesError,
    SecondOpinion,
    Verdict,
    default_rules,
    load_rules,
)

__all__ = [
    "Finding",
    "GovernanceReport",
    "PiiType",
    "Reason",
    "Rules",
    "RulesError",
    "SecondOpinion",
    "Verdict",
    "blocked_reasons",
    "decide",
    "default_rules",
    "load_rules",
    "screen",
]
