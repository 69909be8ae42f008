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
`ChatOpenAI` goes through), or refused there: a miss always holds its worst case. The token rate
limit (`RateLimitCallbackHandler`) is marked and counted late the same way, before the cost:
a hit buys no tokens. docs/cache.md.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from langchain_core.caches import BaseCache
from langchain_core.callbacks import Callbacks
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.utils.uuid import uuid7
from langchain_openai import ChatOpenAI

from agents.usage.cache import chunk_of, generation_of, prompt_key
from agents.usage.callback import CostCallbackHandler, stamping_first
from agents.usage.rates import RateLimitCallbackHandler

_NOT_IN_KEY = ("ls_structured_output_format", "structured_output_format")
"""Popped by `generate` before `_generate_with_cache` builds the key from the other kwargs."""


class _Deferring(Protocol):
    """A handler whose start holds something a cache hit does not need: the cost callback
    (budget) and the token rate limit (`agents.usage.rates.RateLimitCallbackHandler`)."""

    def reserves(self) -> bool: ...
    def expecting_hit(self, run_id: uuid.UUID) -> AbstractContextManager[None]: ...
    def reserve_deferred(self, run_id: uuid.UUID) -> None: ...
    def refuse_deferred(self, run_id: uuid.UUID) -> None: ...


_unreserved: ContextVar[tuple[tuple[_Deferring, ...], uuid.UUID] | None] = ContextVar(
    "quant_genai_unreserved_hit", default=None
)
"""The run of this context that started unreserved as a cache hit (set around `generate`)."""


def _stamping(config: RunnableConfig | None, own: Any) -> RunnableConfig:
    """The run's config with our cost stamp ahead of the handlers it inherits
    (`agents.usage.callback.stamping_first`): a streamed reply's cost reaches LangSmith through
    a traced parent's tracer."""
    config = ensure_config(config)
    callbacks = config.get("callbacks")
    first = stamping_first(callbacks, own)
    return config if first is callbacks else {**config, "callbacks": first}


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
        config = _stamping(config, self.callbacks)
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
        config = _stamping(config, self.callbacks)
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

    def _budgeted(self, messages: list[list[BaseMessage]]) -> tuple[_Deferring, ...]:
        """The handlers a peek could spare a reservation, in the model's callback order (the
        rate limit before the cost): one prompt (a batch of prompts in one `generate` reserves
        as before), a cache, and a budget or token limit that applies."""
        if len(messages) != 1 or not isinstance(self.cache, BaseCache):
            return ()
        found = self.callbacks if isinstance(self.callbacks, list) else []
        return tuple(
            h
            for h in found
            if isinstance(h, CostCallbackHandler | RateLimitCallbackHandler) and h.reserves()
        )

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
        handlers = self._budgeted(messages)
        if handlers:
            assert isinstance(self.cache, BaseCache)
            if self.cache.lookup(*self._cache_key(messages[0], stop, kwargs)) is None:
                handlers = ()  # a miss: reserved at the start, as always
        run_id = run_id or (uuid7() if handlers else None)
        callbacks = stamping_first(callbacks, self.callbacks)  # a reply streamed under invoke
        with _expecting_hit(handlers, run_id):
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
        handlers = self._budgeted(messages)
        if handlers:
            assert isinstance(self.cache, BaseCache)
            if await self.cache.alookup(*self._cache_key(messages[0], stop, kwargs)) is None:
                handlers = ()
        run_id = run_id or (uuid7() if handlers else None)
        callbacks = stamping_first(callbacks, self.callbacks)
        with _expecting_hit(handlers, run_id):
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
        if marked is not None:
            _reserve_now(marked, self.callbacks)
        return super()._get_request_payload(input_, stop=stop, **kwargs)


def _reserve_now(marked: tuple[tuple[_Deferring, ...], uuid.UUID], callbacks: Any) -> None:
    """Reserve, in order, for an expected hit being sent (only the handlers of this model: a
    nested model call in the same context is not the marked run); a refusal leaves the later
    handlers unreserved and rowless, as a refusal at the start does."""
    handlers, run_id = marked
    own = [h for h in handlers if isinstance(callbacks, list) and any(h is c for c in callbacks)]
    for i, handler in enumerate(own):
        try:
            handler.reserve_deferred(run_id)
        except Exception:
            for later in own[i + 1 :]:
                later.refuse_deferred(run_id)
            raise


@contextmanager
def _expecting_hit(handlers: tuple[_Deferring, ...], run_id: uuid.UUID | None) -> Iterator[None]:
    """With handlers: the run is a peeked hit for them, and this context's sends reserve it
    first. Without: nothing."""
    if not handlers or run_id is None:
        yield
        return
    token = _unreserved.set((handlers, run_id))
    try:
        with ExitStack() as stack:
            for handler in handlers:
                stack.enter_context(handler.expecting_hit(run_id))
            yield
    finally:
        _unreserved.reset(token)
