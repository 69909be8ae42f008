"""strategy_builder cites the user's similar backtests with how they did, whole (the stored
text cut at 80 characters once ended in "initial cash $")."""

from __future__ import annotations

from agents.quant.backtests import backtest_facts, run_backtest
from agents.quant.corpus import SmaCross
from agents.rag.store import RetrievedContext, backtest_metadata
from graphs.strategy_builder import Context, State, _how_it_did, spec_answer


def test_a_similar_backtest_is_cited_with_its_own_results() -> None:
    result = run_backtest(SmaCross, "GOOG", user_id="alice")
    found = RetrievedContext(
        id=result.id,
        content="x" * 500,
        metadata=backtest_metadata(result, "alice"),
        score=0.9,
    )
    f = backtest_facts(result)
    cite = _how_it_did(found)
    assert cite == (
        f"SmaCross on GOOG, {f['period']}: total return {f['total return']}, Sharpe ratio "
        f"{f['Sharpe ratio']}, max drawdown {f['max drawdown']}, {f['trades']} trades"
    )
    related = [{"backtest_id": result.id, "summary": found.content, "cite": cite, "score": 0.9}]
    answer = spec_answer(State(request="r", related=related), Context(user_id="alice"))
    assert f"Your similar past backtests: {result.id} ({cite})." in answer


def test_a_result_that_cannot_be_read_is_cited_by_its_text_cut_at_a_word() -> None:
    found = RetrievedContext(
        id="bt-1", content="SmaCross on GOOG " + "word " * 40, metadata={}, score=0.5
    )
    cite = _how_it_did(found)
    assert cite.startswith("SmaCross on GOOG word") and cite.endswith(" …") and len(cite) <= 100
