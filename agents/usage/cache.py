"""The per-user response cache: a LangChain `BaseCache` bound to one (user, service, model).

LangChain's own caches key an answer by (prompt, llm_string) only, so with a global
`InMemoryCache` user B got user A's answer. Here the factory gives every chat model instance
(one per service, model and user) its own `ResponseCache(scope=...)` through
`ChatOpenAI(cache=...)`: the scope is part of every key and of every semantic neighbourhood,
so no lookup can ever see another user's, service's or model's entry.

Storage (`agents.usage.cache_store.get_cache_store`): Redis when `REDIS_URL` is set (keys with
a TTL, one bounded socket timeout), otherwise SQL beside the ledger (a SQLite file next to the
ledger's, or a table on the ledger's Postgres). A store that fails (Redis down or hung, a locked
database) is a miss and one WARNING per outage, never a failed or hung call. docs/cache.md.

Modes (`cache_mode`): `settings.cache` (off / exact / semantic) capped by the service's `cache`
in catalog.toml. `semantic` also serves an answer stored for a prompt whose last human message is
similar (MiniLM cosine >= `settings.cache_similarity`) when everything before it is identical
and the two messages state the same numbers, tickers and directions (`salient`): MiniLM scores
"RSI(7)" against "RSI(14)" at 0.96 and 2023 against 2024 at 0.995 (bench/cache.py).

Not stored: empty replies, replies with malformed tool calls, content-filtered replies, and any
call without a user (no scope to bind it to). Errors never reach `update` (LangChain raises).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.language_models._utils import _normalize_messages
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    message_chunk_to_message,
    messages_from_dict,
)
from langchain_core.outputs import ChatGeneration, Generation

from agents.llm.catalog import get_policy
from agents.settings import Settings, get_settings
from agents.usage.cache_store import CacheScope, CacheStore, Entry, digest, guarded

log = logging.getLogger(__name__)

CacheMode = Literal["off", "exact", "semantic"]
_ORDER: dict[str, int] = {"off": 0, "exact": 1, "semantic": 2}

Embed = Callable[[list[str]], Any]
"""Texts → L2-normalised vectors (n, d): the factory passes MiniLM's (`agents.governance`)."""


def cache_mode(service: str, settings: Settings | None = None) -> CacheMode:
    """The mode a service's calls use: `settings.cache`, at most the service's catalog cap."""
    s = settings or get_settings()
    cap = get_policy(service).cache
    mode = s.cache if _ORDER[s.cache] <= _ORDER[cap] else cap
    return mode


# --------------------------------------------------------------------------------------------
# What a prompt states: the semantic mode's text and its salient tokens
# --------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_CAPS = re.compile(r"\b[A-Z][A-Z0-9.]{1,9}\b")
_WORD = re.compile(r"[a-z]+|[가-힣]+")
_DIRECTIONS = {
    "buy": "buy", "buys": "buy", "buying": "buy", "bought": "buy", "long": "buy",
    "매수": "buy", "sell": "sell", "sells": "sell", "selling": "sell", "sold": "sell",
    "short": "sell", "매도": "sell", "above": "above", "upper": "above",
    "exceeds": "above", "below": "below", "under": "below", "lower": "below",
    "beneath": "below", "rise": "up", "rises": "up", "increase": "up",
    "fall": "down", "falls": "down", "drops": "down", "decrease": "down",
    "enter": "enter", "entry": "enter", "exit": "exit", "bullish": "bull", "bearish": "bear",
    "max": "max", "maximum": "max", "min": "min", "minimum": "min", "not": "not",
    "never": "not", "without": "not", "before": "before", "after": "after",
}  # fmt: skip


def salient(text: str) -> str:
    """A digest of what a paraphrase must keep: numbers, upper-case symbols (tickers,
    indicators) and direction words. Two prompts with different digests never share a
    semantic hit, whatever their similarity."""
    numbers = sorted(set(_NUMBER.findall(text)))
    caps = sorted({m.rstrip(".") for m in _CAPS.findall(text)})
    words = sorted({_DIRECTIONS[w] for w in _WORD.findall(text.lower()) if w in _DIRECTIONS})
    return digest([*numbers, "|", *caps, "|", *words])[:32]


def split_prompt(prompt: str) -> tuple[str, str] | None:
    """(everything but the last message, the last message's text) of a LangChain-serialised
    prompt when its last message is a human one; None otherwise (a tool result, a system-only
    prompt): only a person's words are compared by meaning."""
    try:
        messages = json.loads(prompt)
    except ValueError:
        return None
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if (last.get("id") or [None])[-1] != "HumanMessage":
        return None
    content = (last.get("kwargs") or {}).get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        return None
    return json.dumps(messages[:-1], sort_keys=True), content


# --------------------------------------------------------------------------------------------
# The BaseCache
# --------------------------------------------------------------------------------------------

_DONT_STORE_FINISH = frozenset({"content_filter"})


def storable(generations: Sequence[Generation]) -> bool:
    """Whether a reply may be served again: chat generations with text or well-formed tool
    calls, not cut by a content filter."""
    if not generations:
        return False
    for gen in generations:
        if not isinstance(gen, ChatGeneration) or not isinstance(gen.message, AIMessage):
            return False
        msg = gen.message
        if msg.invalid_tool_calls or not (msg.tool_calls or msg.text.strip()):
            return False
        finish = (gen.generation_info or {}).get("finish_reason") or msg.response_metadata.get(
            "finish_reason"
        )
        if finish in _DONT_STORE_FINISH:
            return False
    return True


_COST_KEYS = frozenset({"input_cost", "output_cost", "total_cost", "input_cost_details"})


def encode(generations: Sequence[Generation]) -> str:
    """Plain JSON of the replies (`message_to_dict`'s shape), without the run's message id: a
    hit is a new message, not the stored one again (LangGraph's `add_messages` merges equal
    ids). A structured output's `parsed` model is stored as its JSON; langchain-openai's
    parser rebuilds the schema from a dict. The call's price (`agents.usage.callback` stamps
    it on the reply before the cache sees it) is not stored: a hit costs nothing."""
    out = []
    for gen in generations:
        assert isinstance(gen, ChatGeneration)
        data = {**gen.message.model_dump(mode="json"), "type": "ai", "id": None}
        if isinstance(data.get("usage_metadata"), dict):
            data["usage_metadata"] = {
                k: v for k, v in data["usage_metadata"].items() if k not in _COST_KEYS
            }
        out.append({"message": {"type": "ai", "data": data}, "info": gen.generation_info})
    return json.dumps(out, default=str)


def decode(value: str) -> list[Generation]:
    """`encode`'s replies, marked `response_metadata["cache_hit"]`; no object revival
    (`langchain_core.load.loads`) from a store."""
    out: list[Generation] = []
    for item in json.loads(value):
        (message,) = messages_from_dict([item["message"]])
        message.response_metadata = {**message.response_metadata, "cache_hit": True}
        out.append(ChatGeneration(message=message, generation_info=item.get("info")))
    return out


def prompt_key(messages: Sequence[BaseMessage]) -> str:
    """The `prompt` LangChain's `_generate_with_cache` gives a cache for `messages`, so a
    streamed answer is stored under the key an `invoke` looks up (the tests pin the match)."""
    normal = _normalize_messages(list(messages))
    return dumps([m.model_copy(update={"id": None}) if m.id is not None else m for m in normal])


def chunk_of(message: BaseMessage) -> AIMessageChunk:
    """A cached reply as the one chunk `.stream()` yields for it."""
    assert isinstance(message, AIMessage)
    calls = [
        {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
        for i, c in enumerate(message.tool_calls)
    ]
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        tool_call_chunks=calls,  # type: ignore[arg-type]
        id=message.id,
        chunk_position="last",
    )


def generation_of(chunks: Sequence[AIMessageChunk]) -> list[Generation]:
    """A finished stream's chunks as the generation `invoke` would have stored."""
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    message = message_chunk_to_message(merged)
    finish = message.response_metadata.get("finish_reason")
    return [ChatGeneration(message=message, generation_info={"finish_reason": finish})]


class ResponseCache(BaseCache):
    """LangChain's cache interface for one scope's calls (see the module docstring)."""

    def __init__(
        self,
        store: CacheStore,
        scope: CacheScope,
        *,
        mode: CacheMode = "exact",
        ttl_s: int = 86_400,
        similarity: float = 0.9,
        embed: Embed | None = None,
    ):
        if mode == "off":
            raise ValueError(
                "mode 'off' has no cache object (use cache=False); allowed: exact, semantic"
            )
        if mode == "semantic" and embed is None:
            raise ValueError("the semantic mode needs an embedding function")
        self.store, self.scope, self.mode = store, scope, mode
        self.ttl_s, self.similarity, self.embed = ttl_s, similarity, embed
        self._vectors: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, prompt: str, llm_string: str) -> str:
        s = self.scope
        return digest(["exact", s.user_id, s.service, s.model, llm_string, prompt])

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        key = self._key(prompt, llm_string)
        value = guarded(self.store, lambda: self.store.get(self.scope, key))
        if value is None and self.mode == "semantic":
            value = guarded(self.store, lambda: self._nearest(prompt, llm_string))
        if value is None:
            return None
        try:
            return decode(value)
        except (ValueError, KeyError, TypeError) as e:  # not what `encode` wrote: a miss
            log.warning("response cache: unreadable entry ignored: %s: %s", type(e).__name__, e)
            return None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store a finished call's reply; never raises (the call is already paid for)."""
        if not storable(return_val):
            return
        try:
            entry = Entry(self._key(prompt, llm_string), self.scope, encode(return_val))
            if self.mode == "semantic":
                entry = self._with_vector(entry, prompt, llm_string)
        except Exception:
            log.exception("response cache: a reply could not be stored")
            return
        guarded(self.store, lambda: self.store.put(entry, self.ttl_s))

    def clear(self, **kwargs: Any) -> None:
        """Forget this scope's answers (no other user's, service's or model's)."""
        guarded(self.store, lambda: self.store.clear(self.scope))

    # -- the semantic mode --------------------------------------------------------------------

    def _hood(self, prompt: str, llm_string: str) -> tuple[str, str, str] | None:
        split = split_prompt(prompt)
        if split is None:
            return None
        context, text = split
        s = self.scope
        hood = digest(["semantic", s.user_id, s.service, s.model, llm_string, context])
        return hood[:32], salient(text), text

    def _vector(self, text: str) -> bytes:
        with self._lock:
            known = self._vectors.get(text)
        if known is not None:
            return known
        assert self.embed is not None
        vector = np.asarray(self.embed([text])[0], dtype=np.float32).tobytes()
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > 256:
                self._vectors.popitem(last=False)
        return vector

    def _nearest(self, prompt: str, llm_string: str) -> str | None:
        hood = self._hood(prompt, llm_string)
        if hood is None:
            return None
        neighbourhood, digest, text = hood
        found = self.store.candidates(self.scope, neighbourhood, digest)
        if not found:
            return None
        mine = np.frombuffer(self._vector(text), dtype=np.float32)
        matrix = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in found])
        scores = matrix @ mine
        best = int(scores.argmax())
        if float(scores[best]) < self.similarity:
            return None
        return self.store.get(self.scope, found[best][0])

    def _with_vector(self, entry: Entry, prompt: str, llm_string: str) -> Entry:
        hood = self._hood(prompt, llm_string)
        if hood is None:
            return entry
        neighbourhood, digest, text = hood
        vector = self._vector(text)
        return Entry(entry.key, entry.scope, entry.value, neighbourhood, vector, digest)
