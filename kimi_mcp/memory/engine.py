"""The memory engine: records and their vectors in the ledger, search by meaning.

The ledger database (SQLite in WAL mode, or PostgreSQL) is the durable home of the records
and of their vectors, written in one transaction, so several processes (the proxy and an
editor's stdio server) share one memory. Searches go to an in-process exact index that
follows the database. Qdrant is a server shared by every process when `memory.qdrant_url`
is set (searched there), or local mode in the data dir: a mirror kept by the one process
that holds its folder lock; the others run without it.

Nothing heavy happens at construction: the embedding model and the vector store open on the
first call that needs them. Every public coroutine runs its work in a worker thread, and has
a `*_sync` twin for code that is not async (the CLI, the sanitizer, reindex).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from kimi_mcp.errors import MemoryEngineError, MemoryNotFound
from kimi_mcp.memory import recall, records, vecrows
from kimi_mcp.memory.backfill import Backfill
from kimi_mcp.memory.embedder import Embedder, Matrix, create_embedder
from kimi_mcp.memory.index import SyncedIndex, VectorIndex
from kimi_mcp.memory.records import NewRecord, Vectors
from kimi_mcp.memory.types import (
    ConsolidateReport,
    Hit,
    MemoryItem,
    StoreResult,
    check_type,
    clean_tags,
    content_hash,
    embeddable,
    masked_id,
    tokens_of,
)
from kimi_mcp.memory.vectors import VectorStore, open_store

if TYPE_CHECKING:
    from kimi_mcp.config import Settings
    from kimi_mcp.ledger import Ledger

log = logging.getLogger(__name__)
T = TypeVar("T")
_KNOWN_MAX = 100_000


class MemoryEngine:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        embedder: Embedder | None = None,
        *,
        vector_location: str | None = None,
        search_in_qdrant: bool | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self._embedder = embedder
        self._location = vector_location  # e.g. ":memory:" (tests)
        self._search_in_qdrant = search_in_qdrant
        self._opened = False
        self._mirror: VectorStore | None = None
        self._synced: SyncedIndex | None = None
        self._ready_lock = threading.Lock()
        self._pending: dict[str, MemoryItem] = {}
        self._pending_lock = threading.Lock()
        self._backfill = Backfill(self._embed_ids)
        self._bookkeeping: Future[Any] | None = None
        self._known: set[str] = set()
        roots = settings.workspace_roots()
        self.default_project = roots[0].name if roots else "default"

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._pending_lock:
                if self._embedder is None:
                    self._embedder = create_embedder(self.settings.memory.embedder)
        return self._embedder

    @property
    def loaded(self) -> bool:
        return self._opened

    @property
    def index(self) -> VectorIndex | None:
        """The in-process index (None when searches go to a Qdrant server)."""
        return self._synced.index if self._synced is not None else None

    @property
    def mirror(self) -> VectorStore | None:
        """Qdrant in this process: the server, local mode when this process holds its
        folder, None when another process holds it."""
        self.ready()
        return self._mirror

    @property
    def vectors(self) -> VectorStore:
        store = self.mirror
        if store is None:
            raise MemoryEngineError(
                "Qdrant local mode is held by another kimi-mcp process; this process uses the "
                "vectors in the ledger (set memory.qdrant_url to share a Qdrant server)"
            )
        return store

    def ready(self) -> None:
        """Load the embedder, open the vector store and build the index (once)."""
        if self._opened:
            return
        with self._ready_lock:
            if not self._opened:
                self._open()

    def _open(self) -> None:
        embedder = self.embedder
        load = getattr(embedder, "load", None)
        if callable(load):
            load()
        store = open_store(self.settings, embedder.name, embedder.dim, self._location)
        remote = store is not None and store.remote
        in_qdrant = store is not None and (
            self._search_in_qdrant if self._search_in_qdrant is not None else remote
        )
        try:
            synced = None
            if not in_qdrant:
                synced = SyncedIndex(self.ledger, embedder.name, embedder.dim)
                synced.load()
            missing = vecrows.missing(self.ledger, embedder.name, embedder.dim)
        except BaseException:
            if store is not None:
                store.close()  # local mode holds a folder lock until closed
            raise
        self._mirror, self._synced, self._opened = store, synced, True
        if missing:
            log.info("%d memories have no vector yet; embedding them in the background", len(missing))
            self._backfill.put(missing)

    def reload_index(self) -> None:
        """Load the in-process index again from the ledger (after a reindex)."""
        if self._synced is not None:
            self._synced.load()

    def sync_index(self, project: str | None) -> None:
        """Bring the index up to what every process has written to the ledger."""
        if self._synced is not None:
            self._synced.sync(project, full=True)

    def close(self) -> None:
        self._backfill.stop()
        with self._ready_lock:
            store, self._mirror, self._synced, self._opened = self._mirror, None, None, False
        if store is not None:
            store.close()

    def flush_vectors(self) -> None:
        """Wait until every deferred embedding has been written (or has failed)."""
        self._backfill.join()

    # ---- embedding and vectors ----------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> Matrix:
        try:
            return self.embedder.embed([embeddable(t) for t in texts])
        except MemoryEngineError:
            raise
        except Exception as exc:  # onnxruntime/tokenizers errors: the embedder failed
            raise MemoryEngineError(f"the embedder failed: {exc}") from exc

    def _index_add(self, project: str, items: list[tuple[str, str]], vectors: Matrix) -> None:
        index = self.index
        if index is not None:
            index.add(project, items, vectors)

    def vectors_for(self, ids: Sequence[str], matrix: Matrix) -> Vectors:
        return Vectors(self.embedder.name, list(ids), matrix)

    def _mirror_upsert(self, rows: Sequence[tuple[str, str, str]], vectors: Matrix) -> None:
        if self._mirror is not None:
            self._mirror.upsert(rows, vectors)

    def _embed_ids(self, ids: Sequence[str]) -> None:
        """Backfill work: embed records that have no vector yet and write the vectors."""
        self.ready()
        found = self.get_sync(ids)
        if not found:
            return
        vectors = self.embed([item.content for item in found])
        self._mirror_upsert([(i.id, i.project, i.type) for i in found], vectors)
        self.ledger.write_sync(records.put_vectors_fn(self.vectors_for([i.id for i in found], vectors)))
        for project in {i.project for i in found}:
            rows = [(n, i) for n, i in enumerate(found) if i.project == project]
            self._index_add(project, [(i.id, i.type) for _, i in rows], vectors[[n for n, _ in rows]])

    def search(
        self, query_vector: Matrix, k: int, *, project: str | None, type_: str | None
    ) -> list[tuple[str, float]]:
        self.ready()
        synced = self._synced
        if synced is not None:
            synced.sync(project)
            return synced.index.search(query_vector, k, project=project, type_=type_)
        return self.vectors.search(query_vector, k, project=project, type_=type_)

    # ---- store --------------------------------------------------------------------------

    def store_sync(
        self,
        content: str,
        *,
        type: str = "episodic",
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        source: str = "tool",
        project: str | None = None,
        id: str | None = None,
    ) -> StoreResult:
        """Store a memory with its vector. An exact duplicate in the project (or an existing
        explicit id) returns the existing id with `created=False`."""
        new = self._new_record(content, type, tags, metadata, source, project, id, vector_ok=True)
        if id is not None:
            if self._exists(id):
                return StoreResult(id, False)
        else:
            duplicate = records.find_duplicate(self.ledger, new.project, new.content_hash)
            if duplicate is not None:
                return StoreResult(duplicate, False)
        vector = self.embed([content])
        self.ready()
        self._mirror_upsert([(new.id, new.project, new.type)], vector)
        try:
            result = self.ledger.write_sync(
                records.insert_fn(new, dedupe=id is None, vector=self.vectors_for([new.id], vector))
            )
        except BaseException:
            self._forget_vector(new.id)
            raise
        if result.created:
            self._index_add(new.project, [(new.id, new.type)], vector)
        elif result.id != new.id:
            self._forget_vector(new.id)
        return result

    def store_text_sync(
        self,
        content: str,
        *,
        id: str | None = None,
        source: str = "sanitizer",
        project: str | None = None,
        type: str = "episodic",
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        tokens_count: int | None = None,
    ) -> StoreResult:
        """The cheap path: the record is queued at once (readable by `get` immediately), its
        vector is computed in the background. The id defaults to `masked_id(content)`."""
        mid = id or masked_id(content)
        with self._pending_lock:
            if mid in self._pending:
                return StoreResult(mid, False)
        if self._exists(mid):
            return StoreResult(mid, False)
        new = self._new_record(
            content, type, tags, metadata, source, project, mid, vector_ok=False, tokens=tokens_count
        )
        with self._pending_lock:
            if mid in self._pending:
                return StoreResult(mid, False)
            self._pending[mid] = new.item()
        future = self.ledger.submit(records.insert_fn(new, dedupe=False))
        future.add_done_callback(lambda f: self._settled(mid, f))
        self._backfill.put([mid])
        return StoreResult(mid, True)

    def _settled(self, mid: str, future: Future[Any]) -> None:
        with self._pending_lock:
            self._pending.pop(mid, None)
        if future.exception() is not None:
            log.error("storing memory %s failed: %s", mid, future.exception())
        else:
            self._remember(mid)

    def _new_record(
        self,
        content: str,
        type_: str,
        tags: Sequence[str],
        metadata: dict[str, Any] | None,
        source: str,
        project: str | None,
        mid: str | None,
        *,
        vector_ok: bool,
        tokens: int | None = None,
    ) -> NewRecord:
        check_type(type_)
        if not content:
            raise MemoryEngineError("a memory needs content: the text was empty")
        return NewRecord(
            id=mid or uuid.uuid4().hex,
            project=project or self.default_project,
            content=content,
            content_hash=content_hash(content),
            type=type_,
            source=source,
            tags=clean_tags(tags),
            metadata=dict(metadata or {}),
            tokens=tokens if tokens is not None else tokens_of(content),
            vector_ok=vector_ok,
        )

    def _exists(self, mid: str) -> bool:
        """Whether the id is stored; a hit is remembered, since the sanitizer asks about the
        same masked blocks on every request of a conversation."""
        with self._pending_lock:
            if mid in self._pending or mid in self._known:
                return True
        found = records.find_id(self.ledger, mid)
        if found:
            self._remember(mid)
        return found

    def forget_known(self, ids: Sequence[str]) -> None:
        with self._pending_lock:
            self._known.difference_update(ids)

    def _remember(self, mid: str) -> None:
        with self._pending_lock:
            if len(self._known) >= _KNOWN_MAX:
                self._known.clear()
            self._known.add(mid)

    def _forget_vector(self, mid: str) -> None:
        if self._mirror is None:
            return
        try:
            self._mirror.delete([mid])
        except MemoryEngineError as exc:  # an orphan vector is skipped and cleaned at next load
            log.warning("could not remove the vector of %s: %s", mid, exc)

    # ---- read ---------------------------------------------------------------------------

    def get_sync(self, ids: Sequence[str]) -> list[MemoryItem]:
        """The memories with these ids, in the order asked, byte-exact; unknown ids are skipped."""
        self._settle()
        wanted = list(dict.fromkeys(ids))
        with self._pending_lock:
            found = {m: self._pending[m] for m in wanted if m in self._pending}
        rest = [m for m in wanted if m not in found]
        if rest:
            found.update(records.get_many(self.ledger, rest))
        return [found[m] for m in wanted if m in found]

    def merged_into(self, mid: str) -> str | None:
        return records.merged_into(self.ledger, mid)

    def count(self, project: str | None = None) -> int:
        """How many memories a project has (all projects when None)."""
        self._settle()
        return records.count(self.ledger, project)

    def recall_sync(
        self,
        query: str,
        *,
        limit: int = 5,
        type: str | None = None,
        tags: Sequence[str] | None = None,
        min_score: float = 0.0,
        project: str | None = None,
        all_projects: bool = False,
    ) -> list[Hit]:
        """Memories ranked by meaning (cosine); an empty query lists by recency."""
        if type is not None:
            check_type(type)
        scope = None if all_projects else (project or self.default_project)
        if not query.strip():
            self._settle()
            return recall.recent(self.ledger, scope, type, tags, limit)
        query_vector = self.embed([query])[0]
        self._settle()  # usually already committed while the query was embedded
        hits = recall.ranked(self.search, self.ledger, query_vector, scope=scope, type_=type,
                             tags=tags, min_score=min_score, limit=limit)
        if hits:
            self._count_recalls(hits)
        return hits

    def _count_recalls(self, hits: list[Hit]) -> None:
        """Count the recall without waiting for the ledger's writer (it is shared with the
        proxy); the hits show the counts and type as they will be committed."""
        fn, promoted = recall.count_recalls(hits, self.settings.memory)
        future = self.ledger.submit(fn)
        self._bookkeeping = future
        future.add_done_callback(self._recalls_counted)
        if promoted:
            self._retype(promoted)

    def _recalls_counted(self, future: Future[Any]) -> None:
        if future.exception() is not None:
            log.warning("recall counts not recorded: %s", future.exception())

    def _settle(self) -> None:
        """Reads see this process's own recall counts: wait for the last bookkeeping write."""
        future = self._bookkeeping
        if future is not None and not future.done():
            futures_wait([future], timeout=30)

    def _retype(self, items: Sequence[MemoryItem]) -> None:
        index, store = self.index, self._mirror
        for item in items:
            if index is not None:
                index.set_type(item.project, item.id, item.type)
            if store is None:
                continue
            try:
                store.set_type([item.id], item.type)
            except MemoryEngineError as exc:  # only server-mode filtering reads it
                log.warning("could not update the vector payload of %s: %s", item.id, exc)

    # ---- update and delete --------------------------------------------------------------

    def update_sync(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        type: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryItem:
        found = self.get_sync([memory_id])
        if not found:
            raise MemoryNotFound(f"no memory with id {memory_id!r}")
        current = found[0]
        changes: dict[str, Any] = {}
        if type is not None:
            check_type(type)
            changes["type"] = type
        if tags is not None:
            changes["tags"] = clean_tags(tags)
        if metadata is not None:
            changes["metadata"] = dict(metadata)
        if content is not None and not content:
            raise MemoryEngineError("a memory needs content: the text was empty")
        if content is not None and content != current.content:
            changes.update(content=content, content_hash=content_hash(content), tokens=tokens_of(content))
            return self._update_content(current, changes)
        item = self.ledger.write_sync(records.update_fn(memory_id, changes))
        if item is None:
            raise MemoryNotFound(f"no memory with id {memory_id!r}")
        if item.type != current.type:
            self._retype([item])
        return item

    def _update_content(self, current: MemoryItem, changes: dict[str, Any]) -> MemoryItem:
        vector = self.embed([changes["content"]])
        self.ready()
        fn = records.update_fn(current.id, changes, vector=self.vectors_for([current.id], vector))
        item = self.ledger.write_sync(fn)  # the record and its vector change together
        if item is None:
            raise MemoryNotFound(f"no memory with id {current.id!r}")
        self._index_add(item.project, [(item.id, item.type)], vector)
        try:
            self._mirror_upsert([(item.id, item.project, item.type)], vector)
        except MemoryEngineError as exc:
            log.warning("Qdrant's copy of %s not written (%s); it will be repaired", item.id, exc)
            self._backfill.put([item.id])
        return item

    def delete_sync(self, ids: Sequence[str]) -> list[str]:
        """Delete memories; returns the ids that existed."""
        self._settle()
        self.forget_known(ids)
        found = self.ledger.write_sync(records.delete_fn(list(dict.fromkeys(ids))))
        if not found:
            return []
        deleted = [mid for mid, _ in found]
        self.ready()
        if self._mirror is not None:
            try:
                self._mirror.delete(deleted)
            except MemoryEngineError as exc:  # Qdrant points without a record are never returned
                log.warning("Qdrant's copies of %d deleted memories remain: %s", len(deleted), exc)
        index = self.index
        if index is not None:
            for project in {p for _, p in found}:
                index.remove(project, [m for m, p in found if p == project])
        return deleted

    def consolidate_sync(
        self, threshold: float | None = None, *, dry_run: bool = True, project: str | None = None
    ) -> ConsolidateReport:
        from kimi_mcp.memory.consolidate import consolidate

        self._settle()
        return consolidate(self, threshold or self.settings.memory.consolidate_threshold,
                           dry_run=dry_run, project=project or self.default_project)

    # ---- async faces --------------------------------------------------------------------

    async def store(self, content: str, **kwargs: Any) -> StoreResult:
        return await _thread(lambda: self.store_sync(content, **kwargs))

    async def recall(self, query: str, **kwargs: Any) -> list[Hit]:
        return await _thread(lambda: self.recall_sync(query, **kwargs))

    async def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        return await _thread(lambda: self.get_sync(ids))

    async def update(self, memory_id: str, **kwargs: Any) -> MemoryItem:
        return await _thread(lambda: self.update_sync(memory_id, **kwargs))

    async def delete(self, ids: Sequence[str]) -> list[str]:
        return await _thread(lambda: self.delete_sync(ids))

    async def consolidate(
        self, threshold: float | None = None, *, dry_run: bool = True, project: str | None = None
    ) -> ConsolidateReport:
        return await _thread(lambda: self.consolidate_sync(threshold, dry_run=dry_run, project=project))


async def _thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)
