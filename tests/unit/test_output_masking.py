"""Model output is masked before it leaves the process (`agents.governance.pii.mask_output`),
at the one place each service's words go out: the chat's final reply, the report and its
stream, the strategy builder's answer and notes."""

from __future__ import annotations

from langchain_core.messages import AIMessage

from agents.quant.report_writer import Piece

LEAK = "Reach Kim at kim.minsu@example.com or 010-1234-5678."
MASKED = "Reach Kim at [EMAIL] or [PHONE]."


def test_the_chats_final_reply_is_masked_whoever_wrote_it() -> None:
    from graphs.chatops_advanced import _final

    for reply in (LEAK, AIMessage(content=LEAK)):
        out = _final(reply, "model", None)
        assert out["messages"][0].content == MASKED
    plain = "Your best backtest bt-38c8ab6be758b0a51e58 made 12.5% with SMA 10/30 (2004-2013)."
    assert _final(plain, "model", None)["messages"][0].content == plain  # quant text is kept


def test_the_report_and_its_stream_are_masked() -> None:
    from graphs.narrative_report import State, _shown, respond

    out = respond(State(report="Summary. " + LEAK, rejected_sentences=[LEAK]))
    assert out["report"] == "Summary. " + MASKED and out["rejected_sentences"] == [MASKED]
    event = _shown(Piece(" " + LEAK, "model", "return"))
    assert event == {"text": " " + MASKED, "source": "model", "section": "return"}


def test_the_strategy_builders_words_are_masked_and_its_code_is_not() -> None:
    from graphs.strategy_builder import _masked

    code = "NOTE = 'kim.minsu@example.com'\n"
    out = _masked({"answer": LEAK, "notes": [LEAK, "fixed in code"], "code": code, "ok": True})
    assert out["answer"] == MASKED and out["notes"] == [MASKED, "fixed in code"]
    assert out["code"] == code and out["ok"] is True
