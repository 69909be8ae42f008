"""Prompt-governance rules: banned topics, prompt-injection scoring and the rules-only check.

All rule data (thresholds, banned topics, injection rules and their vocabulary, the similarity
layer's banks and the calibration) is in `rules.toml`, compiled and validated by `load_rules`: a
bad entry fails the load with an error naming it. PII masking is in `agents.governance.pii`;
graphs call `agents.governance.gate`, which adds the final decision (a model's second opinion,
the fail-closed block of an unreviewed uncertain text).

The injection score is one calibrated probability: the noisy-or of the rules that fire and the
similarity evidence (`agents.governance.similarity`: the most suspicious segment against a bank
of known attacks, embedded with the shipped MiniLM) through a logistic function fitted on the
tune half of `bench/injection_cases.py` (`[injection.calibration]`); the thresholds apply to it.
A rules file with its own injection rules and no calibration scores with the noisy-or alone.

`check_text` is deterministic and safe on hostile input (no chat model; at most `max_segments`
bounded segments are embedded): every repetition in the rules that is followed by more pattern
is bounded, and the gaps written as spaces in the TOML are bounded on compilation, so scanning
is linear in the input (the unit tests time 1 MB adversarial inputs). The word rules see
NFKC-normalised text without zero-width characters, and the injection rules also the text with
spaced-out letters, leetspeak and dotted syllables undone.

Reports never carry raw values: findings are (type, start, end) and reasons name types and counts.
"""

from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.governance.pii import Finding, detect_pii, mask_text
from agents.governance.similarity import (
    NONE,
    Calibration,
    Similarity,
    SimilarityConfig,
    deobfuscate,
    parse_calibration,
    parse_config,
    similarity,
)
from agents.registry import cached

log = logging.getLogger(__name__)

Verdict = Literal["allow", "mask", "block"]
SecondOpinion = Literal["SAFE", "INJECTION", "UNCLEAR", "ERROR"]


class Reason(BaseModel):
    """A machine-readable code (`pii:email`, `banned_topic:…`, `injection:…`) and a message."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class GovernanceReport(BaseModel):
    """The verdict on one text, with what the rules found and the text safe to pass on."""

    verdict: Verdict
    reasons: list[Reason] = Field(default_factory=list)
    masked_text: str
    findings: list[Finding] = Field(default_factory=list)
    banned_topics: list[str] = Field(default_factory=list)
    injection_score: float = Field(ge=0.0, le=1.0, default=0.0)
    injection_signals: list[str] = Field(
        default_factory=list,
        description="ids of the injection rules that fired, and `similar:<family>` when the "
        "text resembles a known attack",
    )
    injection_rules_score: float = Field(
        ge=0.0, le=1.0, default=0.0, description="the noisy-or of the injection rules that fired"
    )
    injection_similarity: float = Field(
        default=0.0,
        description="the similarity layer's evidence: the most suspicious segment's cosine "
        "similarity to the nearest known attack, less benign_weight times that to the nearest "
        "trading request",
    )
    needs_review: bool = Field(
        default=False,
        description="the injection score is between the review and block thresholds: the rules "
        "are unsure and a model's second opinion is worth its cost",
    )
    second_opinion: SecondOpinion | None = None


# --------------------------------------------------------------------------------------------
# Normalisation for the word rules (not for PII: positions there refer to the original text)
# --------------------------------------------------------------------------------------------

_INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"), None
)


def normalize(text: str) -> str:
    """NFKC (full-width letters, ligatures) without zero-width characters: evasions undone."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


# --------------------------------------------------------------------------------------------
# Compiled rules
# --------------------------------------------------------------------------------------------

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


def _term_pattern(term: str) -> str:
    words = term.strip().split()
    if not words:
        raise ValueError("a banned term cannot be empty")
    if _HANGUL.search(term):  # Korean: substring, spaces inside optional
        return r"[ \t]{0,3}".join(re.escape(w) for w in words)
    parts = [r"[ \t_-]{0,3}".join(re.escape(p) for p in re.split(r"[-_]", w) if p) for w in words]
    return r"(?<!\w)" + r"[ \t_-]{1,3}".join(parts) + r"(?!\w)"


@dataclass(frozen=True)
class BannedTopic:
    """One topic; matched against lower-cased text, scanned only if a first word occurs."""

    name: str
    description: str
    pattern: re.Pattern[str]
    gate: frozenset[str]


def _topic(name: str, description: str, terms: Iterable[str]) -> BannedTopic:
    ordered = sorted({t.strip().lower() for t in terms if t.strip()}, key=len, reverse=True)
    if not ordered:
        raise ValueError(f"banned topic {name!r} has no terms")
    pattern = re.compile("|".join(_term_pattern(t) for t in ordered))
    gate = frozenset(re.split(r"[\s_-]", t)[0] for t in ordered)
    return BannedTopic(name=name, description=description, pattern=pattern, gate=gate)


@dataclass(frozen=True)
class InjectionRule:
    id: str
    weight: float  # how sure this rule alone makes us (combined by noisy-or)
    pattern: re.Pattern[str]
    message: str
    gate: tuple[str, ...]  # lower-case substrings, one of which the rule cannot match without


@dataclass(frozen=True)
class Rules:
    """Thresholds, banned topics and injection rules, loaded from TOML (`rules.toml`)."""

    topics: tuple[BannedTopic, ...]
    block_threshold: float
    review_threshold: float
    unreviewed_block_threshold: float  # an uncertain text nobody cleared is blocked from here
    injection: tuple[InjectionRule, ...]
    similarity: SimilarityConfig | None = None  # None: the rules' noisy-or is the score
    calibration: Calibration | None = None


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file and the entry."""


# --------------------------------------------------------------------------------------------
# Loading and validating the TOML
# --------------------------------------------------------------------------------------------

_THRESHOLD_DEFAULTS = {"block": 0.8, "review": 0.3, "unreviewed_block": 0.5}
_RULE_FIELDS = ("id", "weight", "pattern", "message", "gate")
_RULE_REQUIRED = ("id", "weight", "pattern", "message")
# Reason codes `injection:<id>` the check and the gate write themselves.
_RESERVED_IDS = frozenset(
    {"score", "model", "model_safe", "unreviewed", "similar", "similarity_unavailable"}
)

_NAME = re.compile(r"[a-z][a-z0-9_]*")
# `${name}`: in a regex `$` is an anchor and `{` after it a literal, so nobody writes this.
_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RulesError(f"{where} must be a table")
    return value


def _no_unknown(table: dict[str, Any], known: Iterable[str], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise RulesError(f"{where}: unknown field(s) {', '.join(unknown)}")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RulesError(f"{where} must be a number, not {value!r}")
    return float(value)


def _thresholds(raw: object) -> tuple[float, float, float]:
    th = _table(raw, "[thresholds]")
    _no_unknown(th, _THRESHOLD_DEFAULTS, "[thresholds]")
    block, review, unreviewed = (
        _number(th.get(k, d), f"thresholds.{k}") for k, d in _THRESHOLD_DEFAULTS.items()
    )
    if not 0.0 < review < block <= 1.0:
        raise RulesError(f"need 0 < review ({review}) < block ({block}) <= 1")
    if not review <= unreviewed <= block:
        default = "" if "unreviewed_block" in th else ", the default"
        raise RulesError(
            f"need review ({review}) <= unreviewed_block ({unreviewed}{default}) <= block ({block})"
        )
    return block, review, unreviewed


def _topics(raw: object) -> tuple[BannedTopic, ...]:
    topics = []
    for name, value in _table(raw, "[topics]").items():
        where = f"banned topic {name!r}"
        spec = _table(value, where)
        _no_unknown(spec, ("description", "terms"), where)
        terms = spec.get("terms")
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise RulesError(f"{where}: terms must be a list of strings")
        description = spec.get("description", name.replace("_", " "))
        if not isinstance(description, str):
            raise RulesError(f"{where}: description must be a string")
        try:
            topics.append(_topic(name, description, terms))
        except ValueError as exc:
            raise RulesError(str(exc)) from None
    return tuple(topics)


def _regex_text(value: object, where: str) -> str:
    """A string, or a list of strings joined (a long rule written over several lines)."""
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        raise RulesError(f"{where} must be a string or a non-empty list of strings")
    text = "".join(parts)
    if not text:
        raise RulesError(f"{where} is empty")
    if "\n" in text or "\r" in text:
        raise RulesError(f"{where} contains a line break (write a newline as \\n)")
    return text


def _vocabulary(raw: object) -> dict[str, str]:
    vocab = {}
    for name, value in _table(raw, "[injection.vocabulary]").items():
        where = f"injection vocabulary {name!r}"
        if not _NAME.fullmatch(name):
            raise RulesError(f"{where}: a name is lower-case letters, digits and _")
        fragment = _regex_text(value, where)
        if _PLACEHOLDER.search(fragment):
            raise RulesError(f"{where} cannot use another fragment")
        try:
            re.compile(fragment)
        except re.error as exc:
            raise RulesError(f"{where} is not a valid regex: {exc}") from None
        vocab[name] = fragment
    return vocab


def _expand(pattern: str, vocab: dict[str, str], where: str) -> str:
    """`${name}` replaced by its fragment; an unknown name is an error, never left in place."""

    def fragment(m: re.Match[str]) -> str:
        if m[1] not in vocab:
            known = ", ".join(sorted(vocab)) or "none"
            raise RulesError(f"{where}: unknown vocabulary ${{{m[1]}}} (known: {known})")
        return vocab[m[1]]

    return _PLACEHOLDER.sub(fragment, pattern)


def _compile_rule(
    id: str, weight: float, pattern: str, message: str, gate: tuple[str, ...]
) -> InjectionRule:
    """Compile a rule written with readable gaps: " ?" = optional spaces, " " = 1–3 spaces.

    The gaps are bounded so a megabyte of whitespace cannot make a rule backtrack for long.
    (Inside character classes write a space as \x20.)
    """
    source = pattern.replace(" ?", r"[\x20\t]{0,3}").replace(" ", r"[\x20\t]{1,3}")
    flags = re.IGNORECASE | re.MULTILINE
    try:
        compiled = re.compile(source, flags)
    except re.error as exc:
        raise RulesError(f"injection rule {id!r}: pattern is not a valid regex: {exc}") from None
    if compiled.search("") is not None:
        raise RulesError(f"injection rule {id!r}: pattern matches the empty text")
    return InjectionRule(id, weight, compiled, message, gate)


def _injection_rule(
    raw: object, index: int, vocab: dict[str, str], seen: set[str]
) -> InjectionRule:
    where = f"injection rule #{index + 1}"
    spec = _table(raw, where)
    if isinstance(spec.get("id"), str):
        where = f"injection rule {spec['id']!r}"
    missing = [k for k in _RULE_REQUIRED if k not in spec]
    if missing:
        raise RulesError(f"{where}: missing field(s) {', '.join(missing)}")
    _no_unknown(spec, _RULE_FIELDS, where)
    rid = spec["id"]
    if not isinstance(rid, str) or not _NAME.fullmatch(rid):
        raise RulesError(f"{where}: id must be lower-case letters, digits and _")
    if rid in _RESERVED_IDS or rid in seen:
        raise RulesError(f"{where}: id is {'reserved' if rid in _RESERVED_IDS else 'a duplicate'}")
    weight = _number(spec["weight"], f"{where}: weight")
    if not 0.0 < weight < 1.0:
        raise RulesError(f"{where}: weight must be between 0 and 1 (exclusive), not {weight}")
    message = spec["message"]
    if not isinstance(message, str) or not message.strip():
        raise RulesError(f"{where}: message must be a non-empty string")
    gate = spec.get("gate", [])
    if not isinstance(gate, list) or not all(isinstance(g, str) and g for g in gate):
        raise RulesError(f"{where}: gate must be a list of non-empty strings")
    if any(g != g.lower() for g in gate):  # checked against lower-cased text: never matches
        raise RulesError(f"{where}: gate strings must be lower case")
    pattern = _expand(_regex_text(spec["pattern"], f"{where}: pattern"), vocab, where)
    seen.add(rid)
    return _compile_rule(rid, weight, pattern, message, tuple(gate))


def _injection_rules(raw: object) -> tuple[InjectionRule, ...]:
    section = _table(raw, "[injection]")
    _no_unknown(section, ("vocabulary", "rules", "calibration"), "[injection]")
    vocab = _vocabulary(section.get("vocabulary", {}))
    rules = section.get("rules")
    if not isinstance(rules, list) or not rules:
        raise RulesError("[injection] needs at least one [[injection.rules]]")
    seen: set[str] = set()
    return tuple(_injection_rule(r, i, vocab, seen) for i, r in enumerate(rules))


def _detector(
    raw: dict[str, Any], packaged: bool
) -> tuple[tuple[InjectionRule, ...], SimilarityConfig | None, Calibration | None]:
    """The injection rules, the similarity layer and the calibration of a rules file."""
    if "injection" not in raw and not packaged:  # a topics-only file keeps the packaged ones
        default = default_rules()
        return default.injection, default.similarity, default.calibration
    injection = _injection_rules(raw.get("injection"))
    section = raw["injection"]
    has_cal, has_sim = "calibration" in section, "similarity" in raw
    if has_cal != has_sim:
        raise RulesError("[injection.calibration] and [similarity] go together (or neither)")
    if not has_cal:
        return injection, None, None
    try:
        return injection, parse_config(raw["similarity"]), parse_calibration(section["calibration"])
    except ValueError as exc:
        raise RulesError(str(exc)) from None


def load_rules(path: str | Path | None = None) -> Rules:
    """Rules from `path`, or the packaged `rules.toml`; `RulesError` names a bad entry.

    A file replaces the packaged topics (it bans only what it lists); a file without an
    [injection] section keeps the packaged injection rules, similarity layer and calibration,
    so a topics-only file never turns injection detection off. A file with its own rules has a
    similarity layer only if it has both [similarity] and [injection.calibration]. Missing
    thresholds take their defaults (0.8, 0.3, 0.5).
    """
    if path is None:
        source = "packaged rules.toml"
        raw_text = resources.files(__package__).joinpath("rules.toml").read_text("utf-8")
    else:
        source = str(path)
        raw_text = Path(path).read_text("utf-8")
    try:
        raw = tomllib.loads(raw_text)
        _no_unknown(raw, ("thresholds", "topics", "injection", "similarity"), "top level")
        block, review, unreviewed = _thresholds(raw.get("thresholds", {}))
        topics = _topics(raw.get("topics", {}))
        injection, sim, calibration = _detector(raw, packaged=path is None)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: not valid TOML: {exc}") from None
    except RulesError as exc:
        raise RulesError(f"{source}: {exc}") from None
    return Rules(
        topics=topics,
        block_threshold=block,
        review_threshold=review,
        unreviewed_block_threshold=unreviewed,
        injection=injection,
        similarity=sim,
        calibration=calibration,
    )


@cached("governance rules")
def default_rules() -> Rules:
    """The packaged rules (read once per process; `registry.reset()` re-reads them)."""
    return load_rules()


# --------------------------------------------------------------------------------------------
# Banned topics
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _custom_topic(terms: tuple[str, ...]) -> BannedTopic:
    return _topic("custom", "a term banned by configuration", terms)


def find_banned(
    text: str, *, banned: Iterable[str] | None = None, rules: Rules | None = None
) -> list[tuple[BannedTopic, str]]:
    """Names of the banned topics `text` touches, with the configured term that matched."""
    return _find_banned(normalize(text), banned, rules or default_rules())


def _find_banned(
    norm: str, banned: Iterable[str] | None, rules: Rules
) -> list[tuple[BannedTopic, str]]:
    topics = list(rules.topics)
    if banned:
        extra = tuple(sorted({t.strip() for t in banned if t and t.strip()}))
        if extra:
            topics.append(_custom_topic(extra))
    low = norm.lower()
    hits = []
    for topic in topics:
        if not any(g in low for g in topic.gate):
            continue
        m = topic.pattern.search(low)
        if m is not None:
            hits.append((topic, m.group()))
    return hits


# --------------------------------------------------------------------------------------------
# Prompt injection and system-prompt extraction
# --------------------------------------------------------------------------------------------


def injection_score(text: str, *, rules: Rules | None = None) -> tuple[float, list[InjectionRule]]:
    """The calibrated injection score (0 = nothing, → 1 = sure injection), the rules that fired."""
    evidence = _injection(normalize(text), rules or default_rules())
    return evidence.score, evidence.fired


@dataclass(frozen=True)
class _Evidence:
    score: float  # the calibrated score (the rules' noisy-or without a calibration)
    fired: list[InjectionRule]
    rules_score: float
    similar: Similarity | None  # None: no similarity layer, or it could not be loaded
    unavailable: bool = False


def _fired(norm: str, rules: Rules) -> list[InjectionRule]:
    views = {norm, deobfuscate(norm)}
    lows = [(v, v.lower()) for v in views]
    return [
        r
        for r in rules.injection
        if any(
            (not r.gate or any(g in low for g in r.gate)) and r.pattern.search(view)
            for view, low in lows
        )
    ]


def _injection(norm: str, rules: Rules) -> _Evidence:
    fired = _fired(norm, rules)
    miss = 1.0
    for r in fired:
        miss *= 1.0 - r.weight
    rules_score = round(1.0 - miss, 4)
    cfg, cal = rules.similarity, rules.calibration
    if cfg is None or cal is None or not cfg.enabled:
        return _Evidence(rules_score, fired, rules_score, None)
    try:
        similar = similarity(norm, cfg)
    except Exception as exc:  # the wheel or torch broken: say so, score with the rules alone
        log.error("injection similarity layer unavailable: %s: %s", type(exc).__name__, exc)
        return _Evidence(rules_score, fired, rules_score, None, unavailable=True)
    score = round(cal.score(rules_score, similar.score), 4)
    return _Evidence(score, fired, rules_score, similar)


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


def _injection_reasons(evidence: _Evidence, r: Rules) -> tuple[list[Reason], list[str]]:
    """The reasons and signal ids of an injection score (none for an unremarkable text)."""
    score, similar = evidence.score, evidence.similar or NONE
    reasons = [Reason(code=f"injection:{rule.id}", message=rule.message) for rule in evidence.fired]
    signals = [rule.id for rule in evidence.fired]
    cal = r.calibration
    if cal is not None and similar.family and similar.score >= cal.signal:
        if score >= r.review_threshold:
            family = similar.family.replace("_", " ")
            reasons.append(
                Reason(
                    code="injection:similar",
                    message=f"resembles known {family} attacks (similarity {similar.attack:.2f})",
                )
            )
        signals.append(f"similar:{similar.family}")
    if evidence.unavailable:
        reasons.append(
            Reason(
                code="injection:similarity_unavailable",
                message="the similarity layer could not be loaded: scored by the rules alone",
            )
        )
    if evidence.fired or (len(reasons) > len(evidence.fired) and score >= r.review_threshold):
        confident = score >= r.block_threshold
        review = r.review_threshold <= score < r.block_threshold
        level = "confident" if confident else "possible" if review else "weak"
        reasons.append(
            Reason(
                code="injection:score",
                message=f"{level} prompt injection (score {score:.2f}; "
                f"block at {r.block_threshold:.2f}, review at {r.review_threshold:.2f})",
            )
        )
    return reasons, signals


def check_text(
    text: str, *, banned: Iterable[str] | None = None, rules: Rules | None = None
) -> GovernanceReport:
    """Rules-only verdict: block on a banned topic or confident injection, mask PII, else allow.

    An injection score between the review and block thresholds sets `needs_review`; the
    gate (`agents.governance.gate.decide`) settles it. Deterministic (no chat model).
    """
    r = rules or default_rules()
    findings = detect_pii(text)
    masked = mask_text(text, findings)
    norm = normalize(text)
    topics = _find_banned(norm, banned, r)
    evidence = _injection(norm, r)
    score = evidence.score

    reasons: list[Reason] = []
    for topic, term in topics:
        reasons.append(
            Reason(
                code=f"banned_topic:{topic.name}",
                message=f"mentions a banned topic: {topic.description} ({term!r})",
            )
        )
    confident = score >= r.block_threshold
    review = r.review_threshold <= score < r.block_threshold
    injection_reasons, signals = _injection_reasons(evidence, r)
    reasons.extend(injection_reasons)
    for pii_type, n in Counter(f.type for f in findings).items():
        reasons.append(
            Reason(
                code=f"pii:{pii_type.value.lower()}",
                message=f"{pii_type.label} masked as {pii_type.placeholder} ({n} found)",
            )
        )

    verdict: Verdict
    if topics or confident:
        verdict = "block"
    elif findings:
        verdict = "mask"
    else:
        verdict = "allow"
    return GovernanceReport(
        verdict=verdict,
        reasons=reasons,
        masked_text=masked,
        findings=findings,
        banned_topics=[t.name for t, _ in topics],
        injection_score=score,
        injection_signals=signals,
        injection_rules_score=evidence.rules_score,
        injection_similarity=(evidence.similar or NONE).score,
        needs_review=review and verdict != "block",
    )


# The packaged injection rules (loaded on import: a broken rules.toml fails loudly and early).
INJECTION_RULES: tuple[InjectionRule, ...] = default_rules().injection
