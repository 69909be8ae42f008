"""A callback that records what chat models are sent: proof of what would leave the process."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage


class PromptSpy(BaseCallbackHandler):
    """Each chat-model call's messages, joined into one string per call."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.prompts.extend("\n".join(str(m.content) for m in batch) for batch in messages)
