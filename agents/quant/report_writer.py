"""The narrative report's sentence filter: model tokens of one section in, accepted sentences
out (graphs/narrative_report.py streams every section's draft through a `ReportWriter`).

A sentence is shown only when it is prose (not a heading, "label: value" line or echoed
instruction), every number stands with its own metric and no beat/lagged claim is wrong
(`narration.FactSheet`), no grade word contradicts the grade computed in code
(`report_template.meaning_problems`), it states a fact (a number or the comparison with
buy-and-hold; the caveat section: a caveat) and it is about the section being written. An
interpretive clause that states no fact or fails the check (", which is less than the specified
limit of $50.00 per trade") is cut off when what comes before it passes; the sentence as
written is then recorded as rejected. Rejected sentences are never shown; `fill` adds the
template text the section still lacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.quant.narration import FactSheet, NumberCheck, covers, cut_sentences
from agents.quant.report_template import NARRATIVE_SYSTEM, TASKS, filler, meaning_problems

__all__ = ["MAX_SENTENCES", "Piece", "ReportWriter", "is_prose"]

MAX_SENTENCES = 2
"""Model sentences one section may take; what the model writes beyond them is not shown."""
_CHATTER = re.compile(
    r"^(?:(?:sure|certainly|of course|okay)\b[^:]*:|(?:here(?:'s| is| are)|below is)[^:]*:)\s*",
    re.I,
)
_NOT_PROSE = re.compile(r"^(?:sure|certainly|okay|i hope|let me know|feel free)\b|:$", re.I)
_LABEL_LINE = re.compile(r"^[\w\s'&/()-]{1,40}:\s|[\\|{}]")  # "Total return: 154.5%", LaTeX


@dataclass(frozen=True)
class Piece:
    """One emitted passage; `text` carries its leading separator."""

    text: str
    source: Literal["model", "template", "notice"]
    section: str | None = None

    def event(self) -> dict[str, Any]:
        """The custom-stream event of this passage."""
        return {"text": self.text, "source": self.source, "section": self.section}


@dataclass
class ReportWriter:
    """One section's model tokens in, accepted sentences out. `feed` emits each finished sentence
    that passes the check and is about `section` (the caveat section: states a caveat); a
    rejected sentence is never shown; chatter, repeats, sentences about other sections and any
    beyond `MAX_SENTENCES` are dropped. `fill` then adds the template text the section still
    lacks. `report` is the report so far (earlier sections)."""

    sheet: FactSheet
    section: str
    report: str = ""
    rejected: list[str] = field(default_factory=list)
    rejected_numbers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    model_sentences: int = 0
    template_sentences: int = 0
    _rest: str = ""

    def covered(self) -> bool:
        """The section's facts are in the report, and this section said something."""
        return bool(self.model_sentences + self.template_sentences) and self.section not in covers(
            self.report, self.sheet
        )

    def partly(self) -> bool:
        """Some of the section is covered: the template completes it rather than a retry."""
        return self.model_sentences > 0

    def feed(self, chunk: str) -> list[Piece]:
        done, self._rest = cut_sentences(self._rest + chunk)
        return [piece for sentence in done for piece in self._take(sentence)]

    def finish(self, truncated: bool = False) -> list[Piece]:
        """The last sentence: checked, or rejected when the draft was cut off mid-sentence."""
        rest, self._rest = self._rest.strip(), ""
        if rest and truncated:
            self._reject(rest, ["it was cut off at the token limit"], [])
            return []
        return self._take(rest) if rest else []

    def fill(self) -> list[Piece]:
        """Template text for what the section still lacks (nothing once it is covered)."""
        if self.covered():
            return []
        self.template_sentences += 1
        return [self._emit(filler(self.section, self.sheet, self.report), "template")]

    def _take(self, raw: str) -> list[Piece]:
        sentence = re.sub(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+|[*#`]+", "", raw).strip()
        sentence = _CHATTER.sub("", sentence).strip()
        if not sentence or _NOT_PROSE.search(sentence) or sentence in self.report:
            return []
        if not is_prose(sentence) or _echoes_instructions(sentence):
            return self._reject(sentence, [f"{sentence[:40]!r} is not a sentence of prose"], [])
        checks, problems = self._problems(sentence)
        head, tail = _split_tail(sentence)
        caveat = self.section == "caveat"
        commentary = not self.sheet.sentence_problems(tail)[0] and not self.sheet.is_caveat(tail)
        if tail and (problems or commentary):  # a clause that states no number: where models err
            head_checks, head_problems = self._problems(head)
            if not head_problems and (self.sheet.is_caveat(head) if caveat else head_checks):
                if problems:  # a false clause: the sentence as written is rejected, never shown
                    self._reject(sentence, problems, [c.text for c in checks if not c.ok])
                sentence, checks, problems = head, head_checks, []  # the clause cut off
        if problems:
            return self._reject(sentence, problems, [c.text for c in checks if not c.ok])
        if self.section == "caveat":
            why = "" if self.sheet.is_caveat(sentence) else "it states no caveat"
        elif self._states_nothing(sentence):
            why = "it states no fact"  # commentary: where small models invent
        else:
            why = "" if self.sheet.section_of(sentence) == self.section else "another section"
        if why or self.model_sentences >= MAX_SENTENCES or sentence in self.report:
            return self._reject(sentence, [why], []) if why else []
        self.model_sentences += 1
        return [self._emit(sentence, "model")]

    def _problems(self, sentence: str) -> tuple[list[NumberCheck], list[str]]:
        checks, problems = self.sheet.sentence_problems(sentence)
        return checks, problems + meaning_problems(sentence, self.sheet, self.section)

    def _states_nothing(self, text: str) -> bool:
        """No number and no beat/lagged claim: commentary, not a fact."""
        return not self.sheet.sentence_problems(text)[0] and self.sheet.direction(text) is None

    def _reject(self, sentence: str, problems: list[str], numbers: list[str]) -> list[Piece]:
        self.rejected.append(sentence)
        self.rejected_numbers += numbers
        self.problems += problems
        return []

    def _emit(self, text: str, source: Literal["model", "template"]) -> Piece:
        piece = Piece((" " if self.report else "") + text, source, self.section)
        self.report += piece.text
        return piece


_TAIL = re.compile(
    r",\s+(?:which|indicating|suggesting|meaning|showing|implying|reflecting|highlighting|"
    r"demonstrating|signifying|signall?ing|representing|illustrating|revealing|pointing to|as|"
    r"because|due to|thanks to)\b|\s+because\b",
    re.I,
)


def _split_tail(sentence: str) -> tuple[str, str]:
    """The sentence up to its first interpretive clause (", indicating that ...") that states
    no number, and the rest; the tail is "" when every such clause has a number."""
    for m in _TAIL.finditer(sentence):
        nxt = _TAIL.search(sentence, m.end())
        if not re.search(r"\d", sentence[m.end() : nxt.start() if nxt else len(sentence)]):
            return sentence[: m.start()].rstrip(" ,;") + ".", sentence[m.start() :]
    first = _TAIL.search(sentence)
    if first is None:
        return sentence, ""
    return sentence[: first.start()].rstrip() + ".", sentence[first.start() :]


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z가-힣]+", text.lower()))


_INSTRUCTIONS, _SYSTEM = _words(" ".join(TASKS.values())), _words(NARRATIVE_SYSTEM).split()
_SYSTEM_RUNS = {" ".join(_SYSTEM[i : i + 5]) for i in range(len(_SYSTEM) - 4)}


def _echoes_instructions(sentence: str) -> bool:
    """A sentence copied from a task, or five words in a row from the system prompt, is no
    report ("a trading backtest for quant developers")."""
    words = _words(sentence).split()
    runs = {" ".join(words[i : i + 5]) for i in range(len(words) - 4)}
    return (len(words) >= 5 and " ".join(words) in _INSTRUCTIONS) or bool(runs & _SYSTEM_RUNS)


def is_prose(sentence: str) -> bool:
    """A sentence, not a heading, "label: value" line or formula: it ends with . ! or ? and has
    at least three words."""
    words = re.findall(r"[A-Za-z가-힣]+", sentence)
    return (
        sentence[-1:] in (".", "!", "?", "。")
        and len(words) >= 3
        and not _LABEL_LINE.search(sentence)
    )
