"""Prompt-governance rules: PII and secret masking, banned topics, prompt-injection scoring.

Every graph runs `check_text` before a model sees user text, so it is a pure, deterministic,
model-free function that is safe on hostile input: every pattern is anchored by a look-behind
(so a long run of one character class is tried from one position, not from each) and every
repetition that is followed by more pattern is bounded, which keeps scanning linear in the input
(the unit tests time 1 MB adversarial inputs). Candidates are then validated in code (Luhn,
IBAN mod-97, dates and checksums of resident registration numbers, `ipaddress`) so digit runs
that merely look like PII are left alone.

Reports never carry raw values: findings are (type, start, end) and reasons name types and counts.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["allow", "mask", "block"]
SecondOpinion = Literal["SAFE", "INJECTION", "UNCLEAR", "ERROR"]


class PiiType(StrEnum):
    """What a masked span was; the placeholder is `[<value>]`."""

    PRIVATE_KEY = "PRIVATE_KEY"
    API_KEY = "API_KEY"
    SECRET = "SECRET"
    EMAIL = "EMAIL"
    IBAN = "IBAN"
    CARD = "CARD"
    KR_RRN = "KR_RRN"
    US_SSN = "US_SSN"
    PHONE = "PHONE"
    ACCOUNT = "ACCOUNT"
    IPV6 = "IPV6"
    IPV4 = "IPV4"

    @property
    def placeholder(self) -> str:
        return f"[{self.value}]"


# Earlier = more specific: wins a tie between two candidates covering the same span.
_PRIORITY = {t: i for i, t in enumerate(PiiType)}

_LABELS = {
    PiiType.PRIVATE_KEY: "private key block",
    PiiType.API_KEY: "API key",
    PiiType.SECRET: "secret, password or token",
    PiiType.EMAIL: "e-mail address",
    PiiType.IBAN: "IBAN",
    PiiType.CARD: "payment card number",
    PiiType.KR_RRN: "Korean resident registration number",
    PiiType.US_SSN: "US social security number",
    PiiType.PHONE: "phone number",
    PiiType.ACCOUNT: "bank account number",
    PiiType.IPV6: "IPv6 address",
    PiiType.IPV4: "IPv4 address",
}


class Finding(BaseModel):
    """One masked span of the original text (positions only, never the value)."""

    model_config = ConfigDict(frozen=True)

    type: PiiType
    start: int
    end: int


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
        default_factory=list, description="ids of the injection rules that fired"
    )
    needs_review: bool = Field(
        default=False,
        description="the injection score is between the review and block thresholds: the rules "
        "are unsure and a model's second opinion is worth its cost",
    )
    second_opinion: SecondOpinion | None = None


# --------------------------------------------------------------------------------------------
# Validators
# --------------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_brand_ok(d: str) -> bool:
    """Issuer prefix and length: cuts Luhn's 1-in-10 false positives on random ids."""
    n = len(d)
    p2, p4 = int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # Amex
    if p2 in (36, 38, 39) or 300 <= int(d[:3]) <= 305:
        return n in (14, 16, 19)  # Diners
    if d.startswith(("6011", "65")) or 644 <= int(d[:3]) <= 649 or 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # Discover, JCB
    if p2 == 62 or p2 == 81:
        return 16 <= n <= 19  # UnionPay
    if p2 == 50 or 56 <= p2 <= 69:
        return 12 <= n <= 19  # Maestro
    return False


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """ISO 13616: country length (where known) and the mod-97 check digits."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    if _IBAN_LENGTHS.get(s[:2], len(s)) != len(s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_RRN_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000,
                "8": 2000}  # fmt: skip
_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


def rrn_date_ok(d: str) -> bool:
    """YYMMDD is a real date, not in the future, with a valid gender/century digit (1–8)."""
    century = _RRN_CENTURY.get(d[6])
    if century is None:
        return False
    try:
        born = date(century + int(d[:2]), int(d[2:4]), int(d[4:6]))
    except ValueError:
        return False
    return born <= date.today()


def rrn_checksum_ok(d: str) -> bool:
    """The check digit of numbers issued before October 2020 (later ones have none)."""
    total = sum(int(c) * w for c, w in zip(d[:12], _RRN_WEIGHTS, strict=True))
    return (11 - total % 11) % 10 == int(d[12])


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA never issues area 000, 666 or 9xx, group 00 or serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# --------------------------------------------------------------------------------------------
# PII and secret detectors
# --------------------------------------------------------------------------------------------

# A value that is already a placeholder is never masked again (idempotence).
_NOT_PLACEHOLDER = r"(?!\[[A-Z0-9_]{2,16}\])"


@dataclass(frozen=True)
class _Detector:
    type: PiiType
    pattern: re.Pattern[str]
    group: int | str = 0  # which group is the sensitive span (the rest is context)
    validate: Callable[[re.Match[str]], bool] | None = None
    gate: tuple[str, ...] = ()  # skip the scan unless one of these is in the text
    gate_lower: bool = False  # the gate is checked against the lower-cased text


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _card_ok(m: re.Match[str]) -> bool:
    d = _digits(m.group())
    return 12 <= len(d) <= 19 and _card_brand_ok(d) and luhn_valid(d)


def _phone_ok(m: re.Match[str]) -> bool:
    n = len(_digits(m.group()))
    return 8 <= n <= 15 and m.group().count("(") == m.group().count(")")


def _rrn_sep_ok(m: re.Match[str]) -> bool:
    return rrn_date_ok(m["a"] + m["b"])


def _rrn_bare_ok(m: re.Match[str]) -> bool:
    d = m["a"] + m["b"]
    if not rrn_date_ok(d):
        return False
    before = m.string[max(0, m.start() - 24) : m.start()].lower()
    return rrn_checksum_ok(d) or any(k in before for k in ("주민", "rrn", "resident"))


def _ssn_ok(m: re.Match[str]) -> bool:
    return ssn_valid(m["area"], m["group"], m["serial"])


def _account_ok(m: re.Match[str]) -> bool:
    return 6 <= len(_digits(m["num"])) <= 20


def _ipv4_ok(m: re.Match[str]) -> bool:
    try:
        ipaddress.IPv4Address(m.group())
    except ValueError:
        return False
    return True


def _ipv6_ok(m: re.Match[str]) -> bool:
    s = m.group()
    if s.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", s):
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


_SECRET_KEYWORDS = (
    r"api[_-]?key|apikey|api[_-]?secret|secret[_-]?key|client[_-]?secret|secret|"
    r"access[_-]?token|auth[_-]?token|refresh[_-]?token|session[_-]?token|private[_-]?key|"
    r"aws_secret_access_key|password|passwd|passphrase|pwd|비밀번호|패스워드|암호"
)

_DETECTORS: tuple[_Detector, ...] = (
    _Detector(
        PiiType.API_KEY,
        re.compile(
            r"(?<![\w-])(?:"
            r"sk-(?:proj-|svcacct-|admin-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}"
            r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
            r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|AIza[0-9A-Za-z_-]{35}"
            r"|hf_[A-Za-z0-9]{30,}"
            r"|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"
            r")"
        ),
        gate=("sk-", "sk_", "rk_", "pk_", "gh", "github_pat_", "xox", "AIza", "hf_", "A"),
    ),
    _Detector(
        PiiType.SECRET,  # JSON web tokens
        re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        gate=("eyJ",),
    ),
    _Detector(
        PiiType.SECRET,  # Authorization: Bearer <token>
        re.compile(
            r"(?i)\bbearer[ \t]{1,4}" + _NOT_PLACEHOLDER + r"(?P<v>[A-Za-z0-9._~+/=-]{12,})"
        ),
        group="v",
        gate=("bearer",),
        gate_lower=True,
    ),
    _Detector(
        PiiType.SECRET,  # api_key=..., "password": "...", 비밀번호: ...
        re.compile(
            r"(?i)(?<![A-Za-z0-9])(?:" + _SECRET_KEYWORDS + r")(?![A-Za-z0-9])"
            r"[\"']?[ \t]{0,3}(?:[:=]|=>|is|는|은)[ \t]{0,3}[\"']?"
            + _NOT_PLACEHOLDER
            + r"(?P<v>[^\s\"'`,;]{4,})"
        ),
        group="v",
        gate=("key", "secret", "token", "pass", "pwd", "비밀번호", "패스워드", "암호"),
        gate_lower=True,
    ),
    _Detector(
        PiiType.EMAIL,
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}"
            r"(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
        ),
        gate=("@",),
    ),
    _Detector(
        PiiType.CARD,
        re.compile(
            r"(?<![\d-])(?:\d{12,19}"
            r"|\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{4}(?:(?P=s)\d{3})?"
            r"|\d{4}(?P<t>[ -])\d{6}(?P=t)\d{4,5})(?![\d-]?\d)"
        ),
        validate=_card_ok,
    ),
    _Detector(
        PiiType.KR_RRN,  # YYMMDD-GNNNNNN (also the alien registration number, G = 5..8)
        re.compile(r"(?<![\d-])(?P<a>\d{6})[ \t]?[-–][ \t]?(?P<b>[1-8]\d{6})(?![\d-]?\d)"),
        validate=_rrn_sep_ok,
    ),
    _Detector(
        PiiType.KR_RRN,  # bare 13 digits: only with the checksum or a keyword before it
        re.compile(r"(?<![\d-])(?P<a>\d{6})(?P<b>[1-8]\d{6})(?![\d-]?\d)"),
        validate=_rrn_bare_ok,
    ),
    _Detector(
        PiiType.US_SSN,
        re.compile(
            r"(?<![\d-])(?P<area>\d{3})(?P<sep>[- ])(?P<group>\d{2})(?P=sep)(?P<serial>\d{4})"
            r"(?![\d-]?\d)"
        ),
        validate=_ssn_ok,
    ),
    _Detector(
        PiiType.US_SSN,
        re.compile(
            r"(?i)\b(?:ssn|social[ \t]security(?:[ \t]number|[ \t]no\.?)?)\b[^\d\n]{0,12}"
            r"(?P<v>(?P<area>\d{3})(?P<group>\d{2})(?P<serial>\d{4}))(?!\d)"
        ),
        group="v",
        validate=_ssn_ok,
        gate=("ssn", "social"),
        gate_lower=True,
    ),
    _Detector(
        PiiType.PHONE,  # international / E.164
        re.compile(r"(?<![\w+])\+[1-9][\d \t().-]{6,22}\d(?![\w-])"),
        validate=_phone_ok,
        gate=("+",),
    ),
    _Detector(
        PiiType.PHONE,  # Korean mobile 010-1234-5678 / 01012345678
        re.compile(r"(?<![\w+-])01[016789][ .-]?\d{3,4}[ .-]?\d{4}(?![\w-])"),
    ),
    _Detector(
        PiiType.PHONE,  # Korean landlines and VoIP: 02-123-4567, (031) 1234-5678, 070-...
        re.compile(
            r"(?<![\w+-])(?:\(0(?:2|[3-6][1-5]|70)\)[ ]?|0(?:2|[3-6][1-5]|70)[ .-])"
            r"\d{3,4}[ .-]\d{4}(?![\w-])"
        ),
    ),
    _Detector(
        PiiType.PHONE,  # North American: (212) 555-0123, 212-555-0123, 1-212-555-0123
        re.compile(
            r"(?<![\w+-])(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"
            r"(?![\w-])"
        ),
    ),
    _Detector(
        PiiType.ACCOUNT,  # a digit group right after an account keyword
        re.compile(
            r"(?i)(?:\b(?:bank[ \t]account|account|acct|a/c)\b|계좌|통장)"
            r"(?:[ \t:#=.]|number|num|no|is|번호|는|은|:){0,8}"
            r"(?P<num>\d[\d -]{4,28}\d)(?![\d-]?\d)"
        ),
        group="num",
        validate=_account_ok,
        gate=("account", "acct", "a/c", "계좌", "통장"),
        gate_lower=True,
    ),
    _Detector(
        PiiType.IPV6,
        re.compile(r"(?<![\w:.])[0-9A-Fa-f:][0-9A-Fa-f:.]{1,44}(?:%[0-9A-Za-z]{1,16})?(?![\w:])"),
        validate=_ipv6_ok,
        gate=(":",),
    ),
    _Detector(
        PiiType.IPV4,
        re.compile(r"(?<![\w.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)"),
        validate=_ipv4_ok,
        gate=(".",),
    ),
)

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_BASE64_TAIL = re.compile(r"[A-Za-z0-9+/=\s]*")


def _private_keys(text: str) -> list[tuple[int, int]]:
    """PEM private-key blocks; a block without its END line is masked to its base64 tail."""
    if "PRIVATE KEY" not in text:
        return []
    ends = [m.end() for m in _PEM_END.finditer(text)]
    spans: list[tuple[int, int]] = []
    covered = -1
    for m in _PEM_BEGIN.finditer(text):
        if m.start() < covered:
            continue
        i = bisect_left(ends, m.end())
        if i < len(ends):
            end = ends[i]
        else:
            tail = _BASE64_TAIL.match(text, m.end())
            end = m.end() + len(tail.group().rstrip()) if tail else m.end()
        spans.append((m.start(), end))
        covered = end
    return spans


_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")


def _ibans(text: str) -> list[tuple[int, int]]:
    """IBANs passing mod-97; a candidate that swallowed a trailing word is cut back at spaces."""
    spans = []
    for m in _IBAN.finditer(text):
        cand = m.group()
        ends = [len(cand)] + [i for i in range(len(cand) - 1, 14, -1) if cand[i] == " "]
        for end in ends:
            if iban_valid(cand[:end]):
                spans.append((m.start(), m.start() + end))
                break
    return spans


def _candidates(text: str) -> list[Finding]:
    found = [(s, e, PiiType.PRIVATE_KEY) for s, e in _private_keys(text)]
    found += [(s, e, PiiType.IBAN) for s, e in _ibans(text)]
    lower = text.lower()
    for det in _DETECTORS:
        if det.gate and not any(g in (lower if det.gate_lower else text) for g in det.gate):
            continue
        for m in det.pattern.finditer(text):
            if det.validate is not None and not det.validate(m):
                continue
            s, e = m.span(det.group)
            if e > s:
                found.append((s, e, det.type))
    # Longest first, then most specific; keep what does not overlap an earlier pick. A byte
    # per character marks what is taken: linear in the total length of the candidates.
    found.sort(key=lambda c: (c[0] - c[1], _PRIORITY[c[2]], c[0]))
    taken = bytearray(len(text))
    chosen = []
    for s, e, kind in found:
        if taken.find(1, s, e) == -1:
            taken[s:e] = b"\x01" * (e - s)
            chosen.append((s, e, kind))
    chosen.sort()
    return [Finding(type=kind, start=s, end=e) for s, e, kind in chosen]


def detect_pii(text: str) -> list[Finding]:
    """Non-overlapping PII / secret spans of `text` (positions only), in text order."""
    return _candidates(text)


def mask_text(text: str, findings: Sequence[Finding] | None = None) -> str:
    """`text` with every finding replaced by its typed placeholder (`[EMAIL]`, `[CARD]`, …)."""
    spans = detect_pii(text) if findings is None else findings
    out: list[str] = []
    pos = 0
    for f in spans:
        out.append(text[pos : f.start])
        out.append(f.type.placeholder)
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


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
# Banned topics
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
class Rules:
    """Banned topics and injection thresholds, loaded from TOML (`governance_rules.toml`)."""

    topics: tuple[BannedTopic, ...]
    block_threshold: float
    review_threshold: float


def load_rules(path: str | Path | None = None) -> Rules:
    """Rules from `path`, or the packaged `governance_rules.toml`."""
    if path is None:
        raw_text = resources.files(__package__).joinpath("governance_rules.toml").read_text("utf-8")
    else:
        raw_text = Path(path).read_text("utf-8")
    raw = tomllib.loads(raw_text)
    th = raw.get("thresholds", {})
    block, review = float(th.get("block", 0.8)), float(th.get("review", 0.3))
    if not 0.0 < review < block <= 1.0:
        raise ValueError(f"need 0 < review ({review}) < block ({block}) <= 1")
    topics = tuple(
        _topic(name, spec.get("description", name.replace("_", " ")), spec["terms"])
        for name, spec in raw.get("topics", {}).items()
    )
    return Rules(topics=topics, block_threshold=block, review_threshold=review)


@lru_cache(maxsize=1)
def default_rules() -> Rules:
    return load_rules()


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


@dataclass(frozen=True)
class InjectionRule:
    id: str
    weight: float  # how sure this rule alone makes us (combined by noisy-or)
    pattern: re.Pattern[str]
    message: str
    gate: tuple[str, ...]  # lower-case substrings, one of which the rule cannot match without


def _rule(
    id: str, weight: float, pattern: str, message: str, gate: tuple[str, ...] = ()
) -> InjectionRule:
    """Compile a rule written with readable gaps: " ?" = optional spaces, " " = 1–3 spaces.

    The gaps are bounded so a megabyte of whitespace cannot make a rule backtrack for long.
    (Inside character classes write a space as \x20.)
    """
    source = pattern.replace(" ?", r"[\x20\t]{0,3}").replace(" ", r"[\x20\t]{1,3}")
    flags = re.IGNORECASE | re.MULTILINE
    return InjectionRule(id, weight, re.compile(source, flags), message, gate)


_INSTRUCTIONS = (
    r"(?:instructions?|prompts?|rules|directives?|guidelines|guardrails|system messages?)"
)
_EARLIER = (
    r"(?:all|any|every|each|the|your|my|these|those|of|previous|prior|above|earlier|preceding|"
    r"former|initial|original|existing|system|developer|safety|other)"
)

INJECTION_RULES: tuple[InjectionRule, ...] = (
    _rule(
        "ignore_previous",
        0.9,
        rf"\b(?:ignore|disregard|forget|override|bypass) (?:{_EARLIER} ){{1,4}}{_INSTRUCTIONS}\b",
        "asks to ignore earlier instructions",
        ("ignore", "disregard", "forget", "override", "bypass"),
    ),
    _rule(
        "disregard_above",
        0.6,
        r"\b(?:ignore|disregard|forget) (?:(?:all|everything|anything|the) )?"
        r"(?:above|foregoing|preceding|before this|you were told|you have been told)\b",
        "asks to disregard what came before",
        ("ignore", "disregard", "forget"),
    ),
    _rule(
        "new_instructions",
        0.45,
        r"\b(?:new|updated|real|actual) (?:instructions?|task|rules|system prompt) ?:"
        r"|\bfrom now on,? (?:you|act|respond|answer|ignore)\b"
        r"|\byour new (?:role|task|instructions?|purpose)\b",
        "tries to install new instructions",
        ("new", "updated", "real", "actual", "from now on"),
    ),
    _rule(
        "persona_dan",
        0.9,
        r"\b(?:you are (?:now )?DAN|do anything now|DAN mode)\b",
        "DAN-style jailbreak persona",
        ("dan", "anything now"),
    ),
    _rule(
        "persona_unrestricted",
        0.85,
        r"\b(?:you are (?:now )?|act as |become )(?:an? )?"
        r"(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral)\b"
        r"|\b(?:developer|god|jailbreak|unrestricted) mode\b|\bjailbr(?:eak|oken)\b",
        "asks the model to drop its restrictions (jailbreak persona)",
        ("unrestricted", "unfiltered", "uncensored", "jailbr", "evil", "rogue", "amoral", "mode"),
    ),
    _rule(
        "roleplay_no_rules",
        0.8,
        r"\b(?:pretend|act|role-?play|imagine|behave|respond)\b[^\n]{0,60}?"
        r"\b(?:no|without|free of|not bound by|ignoring) (?:any )?(?:restrictions|rules|filters?|"
        r"limits|limitations|guidelines|censorship|policies|ethics)\b"
        r"|\byou are (?:no longer|not) (?:bound|restricted|limited) by\b",
        "role-play that removes the rules",
        ("restrict", "rule", "filter", "limit", "guideline", "censor", "polic", "ethic", "bound"),
    ),
    _rule(
        "reveal_system_prompt",
        0.9,
        r"\b(?:print|reveal|show|display|output|repeat|recite|tell|give|leak|dump|expose|share|"
        r"write|copy|what)\b[^\n]{0,30}?\b(?:your|the|its) (?:full |whole |exact )?"
        r"(?:system|initial|original|hidden|secret|developer|pre-?prompt|internal) "
        r"(?:prompt|instructions?)\b|\bsystem prompt ?\?",
        "tries to extract the system prompt",
        ("prompt", "instruction"),
    ),
    _rule(
        "ask_instructions",
        0.85,
        r"\bwhat (?:are|were) your (?:(?:original|initial|exact|hidden|secret) )?"
        r"(?:instructions|rules|guidelines|directives)\b"
        r"|\b(?:repeat|print|output) (?:the )?(?:words|text|everything) above\b"
        r"|\bwhat were you told\b",
        "asks for the model's own instructions",
        ("instructions", "rules", "guidelines", "directives", "above", "told"),
    ),
    _rule(
        "fake_system_block",
        0.9,
        r"<\|?(?:im_start|im_end|system|endoftext|eot_id|start_header_id)\|?>|\[/?(?:INST|SYS)\]"
        r"|<</?SYS>>|</?(?:system|instructions?)>|^ ?#{1,4} ?(?:system|new instructions?)\b"
        r"|^ ?(?:system|developer) ?:|\"role\" ?: ?\"(?:system|developer)\"",
        "opens or closes a fake system block",
        ("<", "[inst", "[sys", "system", "developer"),
    ),
    _rule(
        "encoded_payload",
        0.35,
        r"[A-Za-z0-9+/](?<![A-Za-z0-9+/][A-Za-z0-9+/])[A-Za-z0-9+/]{119,}={0,2}",
        "contains a long base64-looking payload",
    ),
    _rule(
        "decode_and_follow",
        0.65,
        r"\b(?:decode|base64|rot13|hex)\b[^\n]{0,40}?\b(?:follow|execute|run|obey|do what)\b",
        "asks to decode a payload and follow it",
        ("decode", "base64", "rot13", "hex"),
    ),
    _rule(
        "bypass_safety",
        0.8,
        r"\b(?:bypass|disable|turn off|circumvent|evade) (?:your|the|all|any) "
        r"(?:(?:safety|content|security) )?(?:filters?|guardrails|policy|policies|restrictions|"
        r"moderation|safeguards)\b",
        "asks to bypass safety controls",
        ("bypass", "disable", "turn", "circumvent", "evade"),
    ),
    # Korean: particles attach to words, so no word boundaries.
    _rule(
        "ko_ignore_previous",
        0.9,
        r"(?:이전|앞|위|기존|모든|앞선)[의에서\x20\t]{0,3}(?:모든 ?)?"
        r"(?:지시|지침|명령|규칙|프롬프트|설정|대화)[을를은는이가사항들내용\x20\t]{0,6}"
        r"(?:(?:모두|전부|다) ?)?(?:무시|잊어|잊고|따르지)",
        "asks to ignore earlier instructions (Korean)",
        ("무시", "잊", "따르지"),
    ),
    _rule(
        "ko_ignore_generic",
        0.6,
        r"(?:지시|지침|명령|규칙)[^\n]{0,12}?(?:무시하|무시해)",
        "mentions ignoring instructions (Korean)",
        ("무시",),
    ),
    _rule(
        "ko_reveal_system_prompt",
        0.9,
        r"(?:시스템|초기|원래|숨겨진) ?(?:프롬프트|지시문|지시사항|메시지|설정)"
        r"[^\n]{0,15}?(?:보여|알려|출력|공개|말해|뭐|무엇|그대로)",
        "tries to extract the system prompt (Korean)",
        ("시스템", "초기", "원래", "숨겨진"),
    ),
    _rule(
        "ko_ask_instructions",
        0.85,
        r"(?:너의|당신의|네|니) ?(?:지시사항|지침|규칙|설정|프롬프트|명령)[^\n]{0,12}?"
        r"(?:뭐|무엇|알려|보여|출력|말해)",
        "asks for the model's own instructions (Korean)",
        ("지시사항", "지침", "규칙", "설정", "프롬프트", "명령"),
    ),
    _rule(
        "ko_jailbreak",
        0.8,
        r"(?:제한|규칙|필터|검열|제약)[이가]? ?(?:없는|없이|없다고)[^\n]{0,15}?"
        r"(?:AI|인공지능|역할|척|처럼|모드|대답|답)|탈옥|개발자 ?모드|DAN ?모드",
        "jailbreak role-play (Korean)",
        ("없", "탈옥", "모드"),
    ),
    _rule(
        "ko_new_instructions",
        0.45,
        r"지금부터 ?(?:너는|당신은|넌)|새로운 ?(?:지시|명령|규칙) ?:",
        "tries to install new instructions (Korean)",
        ("지금부터", "새로운"),
    ),
)


def injection_score(text: str) -> tuple[float, list[InjectionRule]]:
    """Noisy-or of the weights of the rules that fire: 0 = nothing, → 1 = sure injection."""
    return _injection(normalize(text))


def _injection(norm: str) -> tuple[float, list[InjectionRule]]:
    low = norm.lower()
    fired = [
        r
        for r in INJECTION_RULES
        if (not r.gate or any(g in low for g in r.gate)) and r.pattern.search(norm)
    ]
    miss = 1.0
    for r in fired:
        miss *= 1.0 - r.weight
    return round(1.0 - miss, 4), fired


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


def check_text(
    text: str, *, banned: Iterable[str] | None = None, rules: Rules | None = None
) -> GovernanceReport:
    """Rules-only verdict: block on a banned topic or confident injection, mask PII, else allow.

    An injection score between the review and block thresholds sets `needs_review`; the
    prompt_governance graph then asks a model. Pure and deterministic.
    """
    r = rules or default_rules()
    findings = detect_pii(text)
    masked = mask_text(text, findings)
    norm = normalize(text)
    topics = _find_banned(norm, banned, r)
    score, fired = _injection(norm)

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
    if fired:
        level = "confident" if confident else "possible" if review else "weak"
        for rule in fired:
            reasons.append(Reason(code=f"injection:{rule.id}", message=rule.message))
        reasons.append(
            Reason(
                code="injection:score",
                message=f"{level} prompt injection (score {score:.2f}; "
                f"block at {r.block_threshold:.2f}, review at {r.review_threshold:.2f})",
            )
        )
    for pii_type, n in Counter(f.type for f in findings).items():
        label = _LABELS[pii_type]
        reasons.append(
            Reason(
                code=f"pii:{pii_type.value.lower()}",
                message=f"{label} masked as {pii_type.placeholder} ({n} found)",
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
        injection_signals=[rule.id for rule in fired],
        needs_review=review and verdict != "block",
    )
