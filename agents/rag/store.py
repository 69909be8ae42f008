"""Per-user retrieval over backtests and strategies (Chroma through langchain-chroma).

Isolation — enforced in one place (`Retriever._scope`): every read and write goes through it,
it validates the user id and hands back only that user's collections and a positive
`{"user_id": <id>}` filter. The layout is one collection per (store, embedding model, user),
named from a hash of the user id:

* Measured (DESIGN.md, chromadb 1.5.9): a metadata-filtered query over one shared collection
  scans — p50 ≈ 2 / 6 / 15 / 50 ms at 1k / 5k / 20k / 50k records — while a per-user collection
  answers in ≈ 1 ms. `bench/retrieval.py` re-measures this layout.
* Chroma's own traps: a query with no filter returns every user's documents, `$ne`/`$nin` match
  records lacking the field, and `upsert` silently replaces another user's record with the same
  id. So, as defence in depth inside the user's own collection, records also carry `user_id`
  metadata, every query filters on it positively, record ids are prefixed with the user's hash,
  and results whose metadata names another user are dropped.

Persistence (`HNSW_CONFIG`): Chroma's embedded server keeps every write in a log table
(`embeddings_queue`, one table for all collections) until the collection's HNSW index is
persisted, which by default happens only every 1,000 records. Per-user collections rarely reach
1,000, so nothing was ever purged, and the first query of a collection after start-up replayed its
log by scanning the whole shared table: a bare top-k query took 42 ms at 10k records, growing
with the total. With `sync_threshold = batch_size = 1` each write persists its (small) index and
lets the log be purged; the same first query then took ~11 ms, and a warm one ~2 ms
(`bench/retrieval.py` reports cold and warm figures of the full query). Collections created
with other values are updated when opened.

User ids: None, non-strings, empty or whitespace-only ids, and ids with surrounding whitespace
are rejected (`ValueError`) rather than stripped, so " u1" can never alias "u1". Ids are
case-sensitive: "U1" and "u1" are two users.

Scores: collections use cosine space (set at creation; Chroma cannot change it later), whose
distance is `d = 1 - cos` in [0, 2]. We report `score = 1 - d / 2 = (1 + cos) / 2`, clamped to
[0, 1]: 1 = same direction, 0.5 = orthogonal, higher = closer (the seed reported the distance).

Token budget: `format_rag_prompt` keeps the best refs that fit a budget counted with
`agents.usage.limits.count_tokens` (cl100k, offline), and returns the bare query if none do.

Rendering: what is embedded and shown to models is `agents.quant.backtests.render_backtest`, the
one text rendering of a backtest.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx
import openai
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, Field
from tqdm import tqdm

from agents.quant.backtests import BacktestResult, render_backtest
from agents.rag.embeddings import MeteredEmbeddings, embedding_model_id, get_embeddings
from agents.registry import ProcessCache
from agents.settings import Settings, get_settings
from agents.usage.limits import count_tokens, keep_within_budget

if TYPE_CHECKING:
    from chromadb.api.collection_configuration import CreateHNSWConfiguration

log = logging.getLogger(__name__)

Store = Literal["backtests", "strategies"]
_STORE_PREFIX: dict[Store, str] = {"backtests": "bt", "strategies": "st"}
HNSW_CONFIG: CreateHNSWConfiguration = {"space": "cosine", "sync_threshold": 1, "batch_size": 1}
"""Collection index settings (see "Persistence" above); space cannot change after creation."""
CHUNK_CHARS = 800
"""MiniLM reads at most 256 word pieces; ~800 chars of Python stays inside that."""


class RetrievalUnavailableError(RuntimeError):
    """The vector store cannot be reached; callers answer without RAG and say so."""


class RetrievedContext(BaseModel):
    """One retrieved record: `score` is a similarity in [0, 1], higher = closer."""

    id: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    score: float = Field(ge=0.0, le=1.0)


@dataclass(frozen=True)
class BulkIndexStats:
    docs: int
    seconds: float
    docs_per_s: float
    embed_seconds: float
    embed_share: float


# ---- user ids -------------------------------------------------------------------------------


def validate_user_id(user_id: object) -> str:
    """The rule every store operation applies before touching Chroma."""
    if user_id is None:
        raise ValueError("user_id is required: every retrieval is scoped to one user")
    if not isinstance(user_id, str):
        raise ValueError(f"user_id must be a string, not {type(user_id).__name__}")
    if not user_id.strip():
        raise ValueError("user_id must not be empty or whitespace-only")
    if user_id != user_id.strip():
        raise ValueError("user_id must not have leading or trailing whitespace")
    return user_id


def user_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


def collection_name(store: Store, model_id: str, user_id: str) -> str:
    """`bt-all-minilm-l6-v2-<32 hex>`: valid Chroma name for any user id, one per model."""
    return f"{_STORE_PREFIX[store]}-{model_id}-{user_hash(user_id)}"


# ---- what is stored -----------------------------------------------------------------------


def backtest_metadata(result: BacktestResult, user_id: str) -> dict[str, str | int | float]:
    """Filterable fields; None values are omitted (Chroma metadata cannot hold None)."""
    meta: dict[str, str | int | float] = {
        "kind": "backtest",
        "backtest_id": result.id,
        "user_id": user_id,
        "strategy_name": result.strategy_name,
        "symbol": result.symbol,
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "start_ord": result.start.toordinal(),
        "end_ord": result.end.toordinal(),
        "total_return_pct": float(result.total_return_pct),
        "max_drawdown_pct": float(result.max_drawdown_pct),
        "num_trades": int(result.num_trades),
        "created_at": result.created_at.isoformat(),
        # the whole result, so tools and reports can fetch a backtest by id from the store
        "result_json": result.model_dump_json(),
    }
    if result.sharpe is not None and math.isfinite(result.sharpe):
        meta["sharpe"] = float(result.sharpe)
    return meta


def chunk_code(code: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Split code at line boundaries, preferring `class`/`def` lines; "".join(chunks) == code.

    Lossless on purpose (langchain's splitters strip whitespace between chunks), so a strategy
    is reassembled byte for byte from its chunks.
    """
    if len(code) <= max_chars:
        return [code]
    lines = code.splitlines(keepends=True)
    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for line in lines:
        starts_block = line.lstrip().startswith(("def ", "class ", "async def ", "@"))
        if cur and (size + len(line) > max_chars or (starts_block and size > max_chars // 2)):
            chunks.append("".join(cur))
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        chunks.append("".join(cur))
    return chunks


def default_strategy_id(strategy_name: str, code: str) -> str:
    """Same name and code → same id (re-indexing updates); edited code → a new version."""
    return f"{strategy_name}-{hashlib.sha256(code.encode('utf-8')).hexdigest()[:16]}"


RAG_HEADER = "Here are the user's past backtest results:\n"
RAG_FOOTER = "\n\nUser request: {query}\n\nAnswer with reference to the past data above."


def format_rag_prompt(query: str, contexts: Sequence[RetrievedContext], max_tokens: int) -> str:
    """The seed's format, keeping refs (best first) while they fit; the bare query if none do.

    The budget covers the retrieved context (header + refs), not the user's own query.
    """
    refs = keep_within_budget(
        contexts, lambda n, c: f"\n[ref {n}] {c.content}", max_tokens, used=count_tokens(RAG_HEADER)
    )
    if not refs:
        return query
    return RAG_HEADER.rstrip("\n") + "".join(refs) + RAG_FOOTER.format(query=query)


# ---- the store ------------------------------------------------------------------------------


def _score(distance: float) -> float:
    return min(1.0, max(0.0, 1.0 - float(distance) / 2.0))


@dataclass(frozen=True)
class _UserStore:
    """One user's collection: langchain's vector store for embedding writes and similarity
    search, chromadb's collection (public API) for gets, deletes and pre-embedded upserts."""

    vectors: Any  # langchain_chroma.Chroma
    collection: Any  # chromadb.Collection


@dataclass(frozen=True)
class _Scope:
    """What `_scope` hands out: a validated user, their collections and the mandatory filter."""

    user_id: str
    retriever: Retriever

    @property
    def backtests(self) -> _UserStore:
        return self.retriever._store("backtests", self.user_id)

    @property
    def strategies(self) -> _UserStore:
        return self.retriever._store("strategies", self.user_id)

    @property
    def where(self) -> dict[str, Any]:
        return {"user_id": self.user_id}

    def and_(self, *clauses: dict[str, Any]) -> dict[str, Any]:
        return {"$and": [self.where, *clauses]} if clauses else self.where

    def record_id(self, store: Store, local_id: str) -> str:
        return f"{_STORE_PREFIX[store]}:{user_hash(self.user_id)}:{local_id}"


class Retriever:
    """The backtest and strategy stores of one Chroma (embedded, or the server at CHROMA_HOST)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embeddings: Embeddings | None = None,
        model_id: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.embeddings = embeddings or get_embeddings(self.settings)
        self.model_id = model_id or embedding_model_id(self.settings)
        self._client: Any = None
        self._stores: dict[tuple[Store, str], _UserStore] = {}
        self._lock = threading.RLock()

    # -- connection --------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> RetrievalUnavailableError:
        """Naming the store: the server's host; the embedded store's path only in the log."""
        if host := self.settings.chroma_host:
            return RetrievalUnavailableError(f"the Chroma server at {host} is unavailable: {exc}")
        log.warning("Chroma at %s failed: %s", self.settings.resolved_chromadb_path, exc)
        return RetrievalUnavailableError(f"the embedded Chroma store is unavailable: {exc}")

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        try:
            yield
        except openai.APIError as exc:  # OpenAIEmbeddings: endpoint down, 4xx/5xx, timeout
            raise RetrievalUnavailableError(f"the embedding endpoint failed: {exc}") from exc
        except Exception as exc:  # a dead server; a corrupt, vanished or refusing database
            from chromadb import errors  # loaded already: only a store operation gets here

            down = httpx.TransportError | ConnectionError | TimeoutError | errors.InternalError
            if isinstance(exc, down | errors.ChromaAuthError | errors.QuotaError):
                raise self._unavailable(exc) from exc
            raise

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import chromadb  # ~1 s to import: only when a store is first used

                host = self.settings.chroma_host
                try:
                    if host:
                        name, _, port = host.rpartition(":") if ":" in host else (host, "", "8000")
                        self._client = chromadb.HttpClient(host=name, port=int(port))
                    else:
                        path = self.settings.resolved_chromadb_path
                        path.mkdir(parents=True, exist_ok=True)
                        self._client = chromadb.PersistentClient(path=str(path))
                except Exception as exc:  # chromadb raises ValueError for a dead server
                    raise self._unavailable(exc) from exc
            return self._client

    def _store(self, store: Store, user_id: str) -> _UserStore:
        key = (store, user_id)
        with self._lock:
            found = self._stores.get(key)
            if found is None:
                from langchain_chroma import Chroma  # imports chromadb: only when a store is used

                name = collection_name(store, self.model_id, user_id)
                with self._unavailable_as_error():
                    collection = self.client.get_or_create_collection(
                        name=name,
                        embedding_function=None,
                        configuration={"hnsw": HNSW_CONFIG.copy()},
                    )
                    _persist_every_write(collection)
                    metered = MeteredEmbeddings(
                        self.embeddings, user_id=user_id, settings=self.settings
                    )  # each embedding call a ledger row charged to this user
                    vectors = Chroma(
                        collection_name=name, embedding_function=metered, client=self.client
                    )
                found = self._stores[key] = _UserStore(vectors, collection)
            return found

    def _scope(self, user_id: object) -> _Scope:
        """The single gate: no store operation gets a collection except through here."""
        uid = validate_user_id(user_id)
        return _Scope(uid, self)

    # -- writes ------------------------------------------------------------------------------

    def index_backtest_result(self, user_id: str, result: BacktestResult) -> str:
        """Upsert one backtest (same id twice → one record, updated); returns its record id."""
        scope = self._scope(user_id)
        if result.user_id != scope.user_id:
            raise ValueError("result.user_id does not match user_id: refusing to index it")
        rid = scope.record_id("backtests", result.id)
        with self._unavailable_as_error():
            scope.backtests.vectors.add_texts(
                [render_backtest(result)],
                metadatas=[backtest_metadata(result, scope.user_id)],
                ids=[rid],
            )
        return rid

    def index_strategy(
        self,
        user_id: str,
        strategy_name: str,
        code: str,
        *,
        strategy_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Index a strategy as ordered chunks; re-indexing replaces all its old chunks."""
        scope = self._scope(user_id)
        sid = strategy_id or default_strategy_id(strategy_name, code)
        chunks = chunk_code(code)
        extra = {k: v for k, v in (metadata or {}).items() if isinstance(v, str | int | float)}
        metas = [
            {
                **extra,
                "kind": "strategy",
                "user_id": scope.user_id,
                "strategy_id": sid,
                "strategy_name": strategy_name,
                "chunk": i,
                "n_chunks": len(chunks),
            }
            for i in range(len(chunks))
        ]
        ids = [scope.record_id("strategies", f"{sid}:{i:05d}") for i in range(len(chunks))]
        with self._unavailable_as_error():
            scope.strategies.collection.delete(where=scope.and_({"strategy_id": sid}))
            scope.strategies.vectors.add_texts(chunks, metadatas=metas, ids=ids)
        return sid

    def on_backtest_completed(self, result: BacktestResult) -> None:
        """The engine's one call when a backtest finishes: index it and its strategy code."""
        self.index_backtest_result(result.user_id, result)
        if result.strategy_code.strip():
            self.index_strategy(
                result.user_id,
                result.strategy_name,
                result.strategy_code,
                metadata={"backtest_id": result.id, "symbol": result.symbol},
            )

    def bulk_index(
        self,
        results: Iterable[BacktestResult],
        *,
        batch_size: int = 256,
        progress: bool = False,
    ) -> BulkIndexStats:
        """Index many backtests, embedding `batch_size` texts per model call (the slow part)."""
        # Grouped by user (stable), so a batch upserts a few large runs into a few collections
        # rather than one record into each of hundreds: Chroma pays per upsert call.
        items = sorted(results, key=lambda r: r.user_id)
        t0 = time.perf_counter()
        embed_s = 0.0
        bar = None
        if progress:
            bar = tqdm(total=len(items), unit="doc", desc="indexing")
        for i in range(0, len(items), batch_size):
            batch = items[i : i + batch_size]
            scopes = [self._scope(r.user_id) for r in batch]
            texts = [render_backtest(r) for r in batch]
            te = time.perf_counter()
            metered = MeteredEmbeddings(self.embeddings, user_id=None, settings=self.settings)
            vectors = metered.embed_for_users(texts, [s.user_id for s in scopes])
            embed_s += time.perf_counter() - te
            by_user: dict[str, list[int]] = defaultdict(list)
            for j, scope in enumerate(scopes):
                by_user[scope.user_id].append(j)
            with self._unavailable_as_error():
                for js in by_user.values():
                    scope = scopes[js[0]]
                    scope.backtests.collection.upsert(
                        ids=[scope.record_id("backtests", batch[j].id) for j in js],
                        embeddings=[vectors[j] for j in js],
                        documents=[texts[j] for j in js],
                        metadatas=[backtest_metadata(batch[j], scope.user_id) for j in js],
                    )
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        return BulkIndexStats(
            docs=len(items),
            seconds=seconds,
            docs_per_s=len(items) / seconds if seconds > 0 else 0.0,
            embed_seconds=embed_s,
            embed_share=embed_s / seconds if seconds > 0 else 0.0,
        )

    # -- reads -------------------------------------------------------------------------------

    def _query(
        self, scope: _Scope, store: _UserStore, query: str, k: int, where: dict[str, Any]
    ) -> list[tuple[str, str, dict[str, Any], float]]:
        if k <= 0:
            return []
        with self._unavailable_as_error():
            hits = store.vectors.similarity_search_with_score(query, k=k, filter=where)
        out = []
        for doc, distance in hits:
            if doc.metadata.get("user_id") != scope.user_id:  # never, but never is the point
                log.error("dropped a record of another user from %s", store.collection.name)
                continue
            out.append((str(doc.id), doc.page_content, dict(doc.metadata), _score(distance)))
        return out

    def search_similar_backtests(
        self,
        user_id: str,
        query: str,
        k: int = 5,
        *,
        symbol: str | None = None,
        strategy_name: str | None = None,
        min_sharpe: float | None = None,
        start_after: date | datetime | None = None,
        end_before: date | datetime | None = None,
    ) -> list[RetrievedContext]:
        """The user's k most similar backtests, best first. Date bounds are inclusive:
        `start_after` keeps backtests starting on/after it, `end_before` ending on/before it."""
        scope = self._scope(user_id)
        clauses: list[dict[str, Any]] = []
        if symbol is not None:
            clauses.append({"symbol": symbol})
        if strategy_name is not None:
            clauses.append({"strategy_name": strategy_name})
        if min_sharpe is not None:
            clauses.append({"sharpe": {"$gte": float(min_sharpe)}})
        if start_after is not None:
            clauses.append({"start_ord": {"$gte": _as_date(start_after).toordinal()}})
        if end_before is not None:
            clauses.append({"end_ord": {"$lte": _as_date(end_before).toordinal()}})
        hits = self._query(scope, scope.backtests, query, k, scope.and_(*clauses))
        return [
            RetrievedContext(
                id=str(meta.get("backtest_id", rid)), content=text, metadata=meta, score=score
            )
            for rid, text, meta, score in hits
        ]

    def search_similar_strategies(
        self, user_id: str, query: str, k: int = 3
    ) -> list[RetrievedContext]:
        """The user's k most similar strategies, whole (chunks reassembled), best chunk's score."""
        scope = self._scope(user_id)
        hits = self._query(scope, scope.strategies, query, k * 4, scope.where)
        best: dict[str, tuple[float, dict[str, Any]]] = {}
        for _rid, _text, meta, score in hits:
            sid = str(meta["strategy_id"])
            if sid not in best or score > best[sid][0]:
                best[sid] = (score, meta)
        top = sorted(best.items(), key=lambda kv: -kv[1][0])[:k]
        out = []
        for sid, (score, meta) in top:
            with self._unavailable_as_error():
                got = scope.strategies.collection.get(
                    where=scope.and_({"strategy_id": sid}), include=["documents", "metadatas"]
                )
            parts = sorted(
                (int(m["chunk"]), d)
                for d, m in zip(got["documents"], got["metadatas"], strict=True)
                if m.get("user_id") == scope.user_id
            )
            meta = {k2: v for k2, v in meta.items() if k2 != "chunk"}
            out.append(
                RetrievedContext(
                    id=sid, content="".join(d for _, d in parts), metadata=meta, score=score
                )
            )
        return out

    def build_rag_prompt(
        self, user_id: str, query: str, k: int = 3, max_context_tokens: int = 1500
    ) -> str:
        """The seed's RAG prompt over the user's top-k backtests, within the token budget."""
        contexts = self.search_similar_backtests(user_id, query, k=k)
        return format_rag_prompt(query, contexts, max_context_tokens)

    def get_backtest(self, user_id: str, backtest_id: str) -> BacktestResult | None:
        """One of the user's backtests by id (None if this user has no such backtest)."""
        scope = self._scope(user_id)
        rid = scope.record_id("backtests", backtest_id)
        with self._unavailable_as_error():
            got = scope.backtests.collection.get(
                ids=[rid], where=scope.where, include=["metadatas"]
            )
        metas = [m for m in got["metadatas"] if m and m.get("user_id") == scope.user_id]
        if not metas or "result_json" not in metas[0]:
            return None
        return BacktestResult.model_validate_json(str(metas[0]["result_json"]))

    def list_backtests(self, user_id: str, *, limit: int = 20) -> list[BacktestResult]:
        """The user's backtests, newest first."""
        scope = self._scope(user_id)
        with self._unavailable_as_error():
            got = scope.backtests.collection.get(where=scope.where, include=["metadatas"])
        results = [
            BacktestResult.model_validate_json(str(m["result_json"]))
            for m in got["metadatas"]
            if m and m.get("user_id") == scope.user_id and "result_json" in m
        ]
        results.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return results[: max(0, limit)]

    def list_strategies(self, user_id: str) -> list[dict[str, Any]]:
        """The user's indexed strategies (one entry per strategy, not per chunk), by name."""
        scope = self._scope(user_id)
        with self._unavailable_as_error():
            got = scope.strategies.collection.get(where=scope.where, include=["metadatas"])
        seen: dict[str, dict[str, Any]] = {}
        for m in got["metadatas"]:
            if not m or m.get("user_id") != scope.user_id:
                continue
            sid = str(m["strategy_id"])
            entry = {k: v for k, v in m.items() if k not in ("chunk", "kind", "user_id")}
            seen.setdefault(sid, entry)
        return sorted(seen.values(), key=lambda e: (str(e["strategy_name"]), str(e["strategy_id"])))

    def count(self, user_id: str, store: Store = "backtests") -> int:
        scope = self._scope(user_id)
        with self._unavailable_as_error():
            got = getattr(scope, store).collection.get(where=scope.where, include=[])
        return len(got["ids"])


def _persist_every_write(collection: Any) -> None:
    """Bring a collection created with Chroma's default sync settings to `HNSW_CONFIG`."""
    hnsw = (collection.configuration or {}).get("hnsw") or {}
    if hnsw.get("sync_threshold") != HNSW_CONFIG["sync_threshold"]:  # batch_size isn't reported
        wanted = {
            "sync_threshold": HNSW_CONFIG["sync_threshold"],
            "batch_size": HNSW_CONFIG["batch_size"],
        }
        collection.modify(configuration={"hnsw": wanted})


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


# ---- the process's retriever ---------------------------------------------------------------


_retrievers: ProcessCache[str, Retriever] = ProcessCache("retrievers")


def get_retriever(settings: Settings | None = None) -> Retriever:
    """The retriever for these settings (default: the process's), made once per process: one
    Chroma client per data directory (a directory is safe for one process only)."""
    s = settings or get_settings()
    return _retrievers.get(s.fingerprint, lambda: Retriever(s))
