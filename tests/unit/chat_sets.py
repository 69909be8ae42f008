"""Checks the fresh chat sets' own tests share: a set's questions are new against the earlier
sets, and every case's templates resolve and its facts compute."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from typing import Any

from bench.chat_cases import Fact, Num, World


def _squash(text: str) -> str:
    return re.sub(r"\W+", " ", re.sub(r"\{\w+\}|bt-[0-9a-f]+", "", text.lower())).strip()


def assert_new_against(earlier: Iterable[Any], mine: Iterable[Any], most_alike: float) -> None:
    """No question (or earlier turn) of `mine` is one of `earlier`'s, none repeats, and none is
    a copy with a word or two swapped (similarity below `most_alike`)."""
    old = [_squash(t) for c in earlier for t in (c.question, *getattr(c, "before", ()))]
    new = [_squash(t) for c in mine for t in (c.question, *c.before)]
    assert not set(old) & set(new)
    assert len(set(new)) == len(new)
    for text in new:
        closest = max(difflib.SequenceMatcher(None, text, e).ratio() for e in old)
        assert closest < most_alike, text


def assert_case_well_formed(case: Any, records: Any, world: World) -> None:
    """The case's texts have no unresolved template, its argument checks build, and each of
    its facts has groups of finite numbers and non-blank words."""
    for text in (case.text(records), *case.prior(records)):
        assert "{" not in text and "}" not in text, text
    assert case.checks(records) is not None
    facts = case.fact(world)
    assert facts and all(isinstance(f, Fact) and f.groups for f in facts)
    for fact in facts:
        for group in fact.groups:
            assert group
            for term in group:
                if isinstance(term, Num):
                    assert math.isfinite(term.value), (case.id, fact.label)
                else:
                    assert term.strip(), (case.id, fact.label)
