"""`DeferredStarts`: what an expected cache hit would have counted is kept once, and only
within the peek's block."""

from __future__ import annotations

from uuid import uuid4

from agents.usage.deferral import DeferredStarts


def test_only_an_expected_run_keeps_its_count_and_only_within_the_block() -> None:
    hits: DeferredStarts[int] = DeferredStarts()
    expected, other = uuid4(), uuid4()
    assert not hits.keep_if_expected(other, 5)  # not expected: count it now
    with hits.expecting(expected):
        assert hits.keep_if_expected(expected, 7)
        assert not hits.keep_if_expected(other, 5)
        assert hits.take(expected) == 7
        assert hits.take(expected) is None  # once
        assert hits.keep_if_expected(expected, 9)
    assert hits.take(expected) is None  # forgotten when the block ends
    assert not hits.keep_if_expected(expected, 1)  # and no longer expected
    assert hits.take(other) is None
