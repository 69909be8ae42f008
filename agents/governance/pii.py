"""PII and secret detection and masking: the part of governance that rewrites text.

Every pattern is anchored by a look-behind (so a long run of one character class is tried from
one position, not from each) and every repetition that is followed by more pattern is bounded,
which keeps scanning linear in the input (the unit tests time 1 MB adversarial inputs).
Candidates are then validated in code (Luhn, IBAN mod-97, dates and checksums of resident
registration numbers, `ipaddress`) so digit runs that merely look like PII are left alone.

The same detectors scan what the process sends out: `mask_output` masks model output (reports,
chat replies, strategy explanations) as `detect_pii`/`mask_text` mask a prompt.

Findings carry positions and types, never the values. The word rules (banned topics, prompt
injection) are in `agents.governance.rules`.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from itertools import pairwise

from pydantic import BaseModel, ConfigDict


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

    @property
    def label(self) -> str:
        """What it is, for a reason message ("e-mail address")."""
        return _LABELS[self]


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


def _is_year(g: str) -> bool:
    return len(g) == 4 and g[:2] in ("19", "20")


def _is_date8(d: str) -> bool:
    """YYYYMMDD of a real date in 1900–2099 (a date or a timestamp's head, not an account)."""
    with suppress(ValueError):
        return _is_year(d[:4]) and bool(date(int(d[:4]), int(d[4:6]), int(d[6:8])))
    return False


def _round_numbers(groups: Sequence[str]) -> bool:
    """Every group ends in 0 ("250-500-1000", "+10 20 30 40"), as real numbers rarely do."""
    return len(groups) >= 3 and all(g.endswith("0") for g in groups)


# Dates and year ranges written with separators: data, never a phone or an account.
_NUMERIC_DATA = re.compile(
    r"(?:19|20)\d\d(?P<s>[-./])(?:0?[1-9]|1[0-2])(?P=s)(?:0?[1-9]|[12]\d|3[01])"
    r"|(?:19|20)\d\d(?:[-–/ ,]{1,2}(?:19|20)\d\d)+"
)


def _phone_ok(m: re.Match[str]) -> bool:
    """International form: 8–15 digits (16 with a "(0)"), a compact one 11–15; dots only as
    the one separator, twice or more (so "+1234567.89" and "+1.5 (2020)" are numbers)."""
    s = m.group()
    groups = re.findall(r"\d+", s)
    n, seps = sum(map(len, groups)), re.sub(r"[\d+()]", "", s)
    if len(groups) == 1:
        return 11 <= n <= 15
    if "." in seps and (seps.count(".") < 2 or set(seps) != {"."}):
        return False
    return 8 <= n <= 15 + ("(0)" in s) and not _round_numbers(groups)


def _na_phone_ok(m: re.Match[str]) -> bool:
    return not _round_numbers(re.findall(r"\d+", m.group())[-3:])


def _keyword_phone_ok(m: re.Match[str]) -> bool:
    v, d = m["v"], _digits(m["v"])
    if _NUMERIC_DATA.fullmatch(v) or (d == v and len(d) == 8 and _is_date8(d)):
        return False
    return 7 <= len(d) <= 15 and v.count("(") == v.count(")")


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


# Korean banks' digit groups: 신한/케이/광주/신협 3-3-6, SC제일 3-2-6, 하나 3-6-5, 우리 4-3-6,
# 국민/농협/우체국 6-2-6, 국민(old) 3-2-4-3, 농협/부산 3-4-4-2, 기업 3-6-2-3, 씨티 3-5-3/3-6-3,
# 카카오뱅크 4-2-7, 새마을 4-2-7/4-4-4-1, 토스 4-4-4, 대구 3-2-6-1, 경남 3-2-7, 산업 3-4-4-3.
# Dates, ranges, SSNs (3-2-4), business (3-2-5) and resident (6-7) numbers, phones differ.
_KR_ACCOUNT_SHAPES = frozenset({(3, 3, 6), (3, 2, 6), (3, 6, 5), (4, 3, 6), (6, 2, 6), (3, 2, 4, 3),
    (3, 4, 4, 2), (3, 6, 2, 3), (3, 5, 3), (3, 6, 3), (4, 2, 7), (4, 4, 4), (3, 2, 6, 1), (3, 2, 7),
    (3, 4, 4, 3), (4, 4, 4, 1)})  # fmt: skip


def _kr_account_shape_ok(m: re.Match[str]) -> bool:
    groups = m.group().split("-")
    if tuple(len(g) for g in groups) not in _KR_ACCOUNT_SHAPES:
        return False
    return not any(_is_year(a) and _is_year(b) for a, b in pairwise(groups))  # 2010-2013-2016


# Context that makes a bare (or oddly grouped) digit run an account: a bank before it, or a
# transfer verb after it; space-separated groups only without years or round numbers. Words
# that are also ordinary words (우리 "we", 하나 "one", 기업) count only as "…은행".
_BANK_BEFORE = re.compile(
    r"(?i)(?:은행|뱅크|카뱅|신한|국민|농협|우체국|새마을|신협|수협|sc제일|입금|송금|이체|"
    r"(?<![a-z])(?:kb|nh|ibk|kdb|bank|shinhan|kookmin|woori|wire|remit|deposit)(?![a-z]))"
)
_TRANSFER_AFTER = re.compile(r"[ \t]{0,2}(?:으로|로|에)?[ \t]{0,2}(?:입금|송금|이체|보내)")
_BANK_GATE = ("은행", "뱅크", "카뱅", "신한", "국민", "농협", "우체국", "새마을", "신협", "수협",
              "sc제일", "입금", "송금", "이체", "보내", "kb", "nh", "ibk", "kdb", "bank", "shinhan",
              "kookmin", "woori", "wire", "remit", "deposit")  # fmt: skip


def _bank_context_ok(m: re.Match[str]) -> bool:
    d, groups = _digits(m.group()), re.findall(r"\d+", m.group())
    if not 10 <= len(d) <= 14 or (len(d) in (10, 13) and d[0] == "1" and d[1] in "56789"):
        return False  # not an account's length, or an epoch timestamp (s / ms, 2017–2033)
    if len(d) >= 12 and _is_date8(d[:8]):
        return False  # a YYYYMMDDhhmm(ss) timestamp
    if " " in m.group() and (sum(map(_is_year, groups)) > 1 or _round_numbers(groups)):
        return False  # "2020 2021 2022", "110 120 130 140"
    before = m.string[max(0, m.start() - 20) : m.start()]
    return bool(_BANK_BEFORE.search(before) or _TRANSFER_AFTER.match(m.string, m.end()))


_VERSION_BEFORE = re.compile(r"(?i)(?:(?<![a-z])(?:v|version|ver\.?|release)|버전)[ \t:]{0,2}$")


def _ipv4_ok(m: re.Match[str]) -> bool:
    with suppress(ValueError):
        ipaddress.IPv4Address(m.group())
        return not _VERSION_BEFORE.search(m.string[max(0, m.start() - 10) : m.start()])  # v1.2.3.4
    return False


def _ipv6_ok(m: re.Match[str]) -> bool:
    s = m.group()
    if s.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", s):
        return False
    with suppress(ValueError):
        return bool(ipaddress.IPv6Address(s))
    return False


_SECRET_KEYWORDS = (
    r"api[_-]?key|apikey|api[_-]?secret|secret[_-]?key|client[_-]?secret|secret|"
    r"access[_-]?token|auth[_-]?token|refresh[_-]?token|session[_-]?token|private[_-]?key|"
    r"aws_secret_access_key|password|passwd|passphrase|pwd|비밀번호|패스워드|암호"
)

# Around a number: no ASCII word character, "+" or decimal point ("0.0101…") next to it; Korean
# particles may touch it ("010-1234-5678로").
_START = r"(?<![A-Za-z0-9_+-])(?<!\d[.,])"
_END = r"(?![A-Za-z0-9_-]|\.\d)"
_KR_AREA = r"0(?:2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|[78]0|50[2-8])"  # areas, 070 VoIP, 080, 050x
_PHONE_GATE = ("tel", "phone", "mobile", "cell", "fax", "whatsapp", " me ", "전화", "연락",
               "휴대폰", "핸드폰", "문의", "팩스")  # fmt: skip

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
        PiiType.PHONE,  # international / E.164: +82 10 1234 5678, +44 (0)20 7946 0958
        re.compile(
            r"(?<![A-Za-z0-9_+])(?:\+[1-9]\d{0,3}|\(\+[1-9]\d{0,3}\))"
            r"(?:(?:[ .-]|[ ]?\(\d{1,4}\)[ ]?)\d{1,8}){1,6}(?![A-Za-z0-9_-]|[.,]\d)"
            + r"|(?<![A-Za-z0-9_+])\+[1-9]\d{10,14}(?![A-Za-z0-9_.-])"
        ),
        validate=_phone_ok,
        gate=("+",),
    ),
    _Detector(
        PiiType.PHONE,  # Korean mobile 010-1234-5678 / 01012345678 / (010) 1234-5678
        re.compile(_START + r"(?:\(01[016789]\)[ ]?|01[016789][ .-]?)\d{3,4}[ .-]?\d{4}" + _END),
    ),
    _Detector(
        PiiType.PHONE,  # Korean landlines, VoIP, toll-free, safe numbers: 02-123-4567, 070-…
        re.compile(
            _START + rf"(?:\(?{_KR_AREA}\)[ ]?|{_KR_AREA}[ .-])" + r"\d{3,4}[ .-]\d{4}" + _END
        ),
    ),
    _Detector(
        PiiType.PHONE,  # North American, any exchange: (555) 012-3456, 1-800-555-0199
        re.compile(
            _START + r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}" + _END
        ),
        validate=_na_phone_ok,
    ),
    _Detector(
        PiiType.PHONE,  # any grouping after a phone word: "tel 555-0123", "문의 1588-1234"
        re.compile(
            r"(?i)(?:(?<![a-z])(?:tel|phone|mobile|cell(?:phone)?|fax|whatsapp)(?![a-z])"
            r"|(?:call|text|reach)[ \t]me[ \t](?:at|on)|전화|연락처|연락|휴대폰|핸드폰|문의|팩스)"
            r"[^\d\n+]{0,12}(?P<v>\+?\(?\d[\d ().-]{5,18}\d)" + _END
        ),
        group="v",
        validate=_keyword_phone_ok,
        gate=_PHONE_GATE,
        gate_lower=True,
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
        PiiType.ACCOUNT,  # Korean bank formats without a keyword: 110-123-456789, 3333-01-…
        re.compile(r"(?<![A-Za-z0-9_.-])\d{3,6}(?:-\d{1,7}){2,3}" + _END),
        validate=_kr_account_shape_ok,
        gate=("-",),
    ),
    _Detector(
        PiiType.ACCOUNT,  # 10–14 digits after a bank's name or before a transfer verb
        re.compile(r"(?<![A-Za-z0-9_.-])\d{2,14}(?:-\d{1,8}){0,3}(?:[ ]\d{2,8}){0,3}" + _END),
        validate=_bank_context_ok,
        gate=_BANK_GATE,
        gate_lower=True,
    ),
    _Detector(
        PiiType.IPV6,
        re.compile(
            r"(?<![A-Za-z0-9_:.])[0-9A-Fa-f:][0-9A-Fa-f:.]{1,44}(?:%[0-9A-Za-z]{1,16})?"
            r"(?![A-Za-z0-9_:])"
        ),
        validate=_ipv6_ok,
        gate=(":",),
    ),
    _Detector(
        PiiType.IPV4,
        re.compile(r"(?<![A-Za-z0-9_.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![A-Za-z0-9_]|\.\d)"),
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


def detect_pii(text: str) -> list[Finding]:
    """Non-overlapping PII / secret spans of `text` (positions only), in text order."""
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


def mask_text(text: str, findings: Sequence[Finding] | None = None) -> str:
    """`text` with every finding replaced by its typed placeholder (`[EMAIL]`, `[CARD]`, …)."""
    spans = detect_pii(text) if findings is None else findings
    out: list[str] = []
    pos = 0
    for f in spans:
        out += (text[pos : f.start], f.type.placeholder)
        pos = f.end
    return "".join(out) + text[pos:]


def mask_output(text: str) -> tuple[str, list[Finding]]:
    """Model output, masked before it leaves the process: the input side's detectors, so a
    value a user could not send in cannot come back out (echoed, recalled from a store or
    invented). Placeholders are kept as they are. Returns the text and what was masked."""
    findings = detect_pii(text)
    return (mask_text(text, findings) if findings else text), findings
