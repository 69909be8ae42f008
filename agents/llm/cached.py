"""The per-user response cache at the chat model: streams that use it, hits that spend no budget.

LangChain's `BaseChatModel.stream()` / `astream()` never look at the cache (only invoke / batch /
generate do): `CachedChatOpenAI.stream/astream` look up first (a hit is served by `invoke`: one
chunk, a $0 row) and store a finished stream.

LangChain reads the cache inside `_generate_with_cache`, after `on_chat_model_start`, where the
cost callback reserves the call's worst case against the user's budgets: a user at a limit was
refused an answer that would have cost $0. `generate` / `agenerate` (the end of invoke, ainvoke,
batch and a stream's hit) therefore peek at the cache before the run starts when a budget
applies. On a hit the run is marked for the cost callback (`CostCallbackHandler.expecting_hit`):
its start reserves nothing, and the $0 `cache_hit` row is written by the same callbacks as
before. If the entry is gone by the time LangChain looks (it expired in between), the call is
reserved right before its request is built (`_get_request_payload`, which every request path of
`ChatOpenAI` goes through), or refused there: a miss always holds its worst case. docs/cache.md.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.callbacks import Callbacks
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.uuid import uuid7
from langchain_openai import ChatOpenAI

from agents.usage.cache import chunk_of, generation_of, prompt_key
from agents.usage.callback import CostCallbackHandler, cost_handler

_NOT_IN_KEY = ("ls_structured_output_format", "structured_output_format")
"""Popped by `generate` before `_generate_with_cache` builds the key from the other kwargs."""

_unreserved: ContextVar[tuple[CostCallbackHandler, uuid.UUID] | None] = ContextVar(
    "quant_genai_unreserved_hit", default=None
)
"""The run of this context that started unreserved as a cache hit (set around `generate`)."""


class CachedChatOpenAI(ChatOpenAI):
    """`ChatOpenAI` whose streams use its cache and whose cache hits reserve no budget."""

    def _cache_key(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[str, str]:
        """The `(prompt, llm_string)` `_generate_with_cache` looks up for these messages."""
        params = {k: v for k, v in kwargs.items() if k not in _NOT_IN_KEY}
        return prompt_key(messages), self._get_llm_string(stop=stop, **params)

    def _stream_cache(
        self, input: LanguageModelInput, stop: list[str] | None, kwargs: dict[str, Any], aio: bool
    ) -> tuple[BaseCache, str, str] | None:
        if not isinstance(self.cache, BaseCache):
            return None
        if not self._should_stream(async_api=aio, **{**kwargs, "stream": True}):
            return None  # the base class answers with invoke, which uses the cache itself
        messages = self._convert_input(input).to_messages()
        return self.cache, *self._cache_key(messages, stop, kwargs)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        keyed = self._stream_cache(input, stop, kwargs, aio=False)
        if keyed is not None and keyed[0].lookup(keyed[1], keyed[2]) is not None:
            yield chunk_of(self.invoke(input, config, stop=stop, **kwargs))
            return
        chunks: list[AIMessageChunk] = []
        for chunk in super().stream(input, config, stop=stop, **kwargs):
            chunks.append(chunk)
            yield chunk
        if keyed is not None and chunks:
            keyed[0].update(keyed[1], keyed[2], generation_of(chunks))

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        keyed = self._stream_cache(input, stop, kwargs, aio=True)
        if keyed is not None and await keyed[0].alookup(keyed[1], keyed[2]) is not None:
            yield chunk_of(await self.ainvoke(input, config, stop=stop, **kwargs))
            return
        chunks: list[AIMessageChunk] = []
        async for chunk in super().astream(input, config, stop=stop, **kwargs):
            chunks.append(chunk)
            yield chunk
        if keyed is not None and chunks:
            await keyed[0].aupdate(keyed[1], keyed[2], generation_of(chunks))

    # -- cache hits reserve no budget -----------------------------------------------------------

    def _budgeted(self, messages: list[list[BaseMessage]]) -> CostCallbackHandler | None:
        """The cost handler, when a peek could spare a reservation: one prompt (a batch of
        prompts in one `generate` reserves as before), a cache, and a budget that applies."""
        if len(messages) != 1 or not isinstance(self.cache, BaseCache):
            return None
        handler = cost_handler(self.callbacks)
        return handler if handler is not None and handler.reserves() else None

    def generate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: builtins.dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        handler = self._budgeted(messages)
        if handler is not None:
            assert isinstance(self.cache, BaseCache)
            if self.cache.lookup(*self._cache_key(messages[0], stop, kwargs)) is None:
                handler = None  # a miss: reserved at the start, as always
        run_id = run_id or (uuid7() if handler is not None else None)
        with _expecting_hit(handler, run_id):
            return super().generate(
                messages, stop, callbacks, tags=tags, metadata=metadata, run_name=run_name,
                run_id=run_id, **kwargs,
            )  # fmt: skip

    async def agenerate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: builtins.dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        handler = self._budgeted(messages)
        if handler is not None:
            assert isinstance(self.cache, BaseCache)
            if await self.cache.alookup(*self._cache_key(messages[0], stop, kwargs)) is None:
                handler = None
        run_id = run_id or (uuid7() if handler is not None else None)
        with _expecting_hit(handler, run_id):
            return await super().agenerate(
                messages, stop, callbacks, tags=tags, metadata=metadata, run_name=run_name,
                run_id=run_id, **kwargs,
            )  # fmt: skip

    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        # Every request path of ChatOpenAI builds its payload here, right before sending: an
        # expected hit that LangChain's own lookup missed is reserved (or refused) now.
        marked = _unreserved.get()
        if marked is not None and marked[0] is cost_handler(self.callbacks):
            marked[0].reserve_deferred(marked[1])
        return super()._get_request_payload(input_, stop=stop, **kwargs)


@contextmanager
def _expecting_hit(handler: CostCallbackHandler | None, run_id: uuid.UUID | None) -> Iterator[None]:
    """With a handler: the run is a peeked hit for it, and this context's sends reserve it
    first. Without: nothing."""
    if handler is None or run_id is None:
        yield
        return
    token = _unreserved.set((handler, run_id))
    try:
        with handler.expecting_hit(run_id):
            yield
    finally:
        _unreserved.reset(token)
