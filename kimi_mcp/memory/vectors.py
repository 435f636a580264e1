"""Qdrant: a server (`memory.qdrant_url`, shared by every process, searched there) or local
mode (on disk in the data dir: one process at a time, a mirror of the ledger's vectors).

Point ids are UUIDs derived from the memory id (Qdrant accepts only UUIDs and integers);
the memory id and its project travel in the payload.
"""

from __future__ import annotations

import logging
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kimi_mcp.errors import MemoryEngineError
from kimi_mcp.memory.embedder import Matrix

if TYPE_CHECKING:
    from kimi_mcp.config import Settings

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c5a0e-7f51-4a36-9d9c-6a3f5e0b8c21")


class VectorStoreLocked(MemoryEngineError):
    """Local mode's folder is held by another process (Qdrant allows one)."""


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "is already accessed by another instance" in str(exc)


def point_id(memory_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, memory_id))


class VectorStore:
    """Qdrant behind a lock (the local client is not thread-safe); every failure is a
    `MemoryEngineError` that says where the vectors live."""

    def __init__(
        self,
        collection: str,
        dim: int,
        *,
        path: Path | None = None,
        url: str = "",
        api_key: str | None = None,
        location: str | None = None,
    ) -> None:
        self.collection = collection
        self.dim = dim
        self.remote = bool(url)
        self._where = url or location or str(path)
        self._lock = threading.RLock()
        self._client: Any = self._connect(path, url, api_key, location)
        self._ensure_collection()

    def _connect(self, path: Path | None, url: str, api_key: str | None, location: str | None) -> Any:
        from qdrant_client import QdrantClient

        # Local mode warns past 20k points because its own search is slow; searches here go
        # to the in-process index, so the warning does not apply.
        warnings.filterwarnings(
            "ignore", message="Local mode is not recommended", category=UserWarning
        )

        try:
            if url:
                return QdrantClient(url=url, api_key=api_key, timeout=10)
            if location:
                return QdrantClient(location=location)
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            return QdrantClient(path=str(path))
        except (RuntimeError, OSError, ValueError) as exc:
            if _locked(exc):
                raise VectorStoreLocked(f"the vector store {self._where} is in use: {exc}") from None
            raise MemoryEngineError(
                f"cannot open the vector store {self._where}: {exc}; "
                "check the data dir or memory.qdrant_url"
            ) from None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except MemoryEngineError:
                raise
            except Exception as exc:  # qdrant raises many kinds; all mean "the store failed"
                raise MemoryEngineError(
                    f"vector store {self._where} failed to {what}: {exc}"
                ) from exc

    def _ensure_collection(self) -> None:
        from qdrant_client import models as qm

        if self._call("list collections", self._client.collection_exists, self.collection):
            self._tune_local()
            return
        self._call(
            "create the collection",
            self._client.create_collection,
            self.collection,
            vectors_config=qm.VectorParams(size=self.dim, distance=qm.Distance.COSINE),
        )
        if self.remote:
            for key in ("project", "type"):
                self._call(
                    "index the payload",
                    self._client.create_payload_index,
                    self.collection,
                    key,
                    field_schema=qm.PayloadSchemaType.KEYWORD,
                )
        self._tune_local()

    def _tune_local(self) -> None:
        """Local mode commits every point in its own SQLite transaction with a full fsync
        (about 35 ms each here). WAL with synchronous=NORMAL makes that about 0.1 ms; a crash can
        lose the last vectors, and the engine re-embeds records whose vector is missing when
        it opens."""
        if self.remote:
            return
        try:
            conn = self._client._client.collections[self.collection].storage.storage
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except (AttributeError, KeyError, TypeError) as exc:  # another qdrant-client layout
            log.debug("local Qdrant storage not tuned: %s", exc)

    def recreate(self) -> None:
        self._call("drop the collection", self._client.delete_collection, self.collection)
        self._ensure_collection()

    def upsert(self, rows: Sequence[tuple[str, str, str]], vectors: Matrix) -> None:
        """Write (memory id, project, type) rows with their vectors."""
        from qdrant_client import models as qm

        points = [
            qm.PointStruct(
                id=point_id(mid),
                vector=vector.tolist(),
                payload={"mid": mid, "project": project, "type": type_},
            )
            for (mid, project, type_), vector in zip(rows, vectors, strict=True)
        ]
        if points:
            self._call("write vectors", self._client.upsert, self.collection, points=points)

    def set_type(self, memory_ids: Sequence[str], type_: str) -> None:
        if memory_ids:
            self._call(
                "update payloads",
                self._client.set_payload,
                self.collection,
                payload={"type": type_},
                points=[point_id(m) for m in memory_ids],
            )

    def delete(self, memory_ids: Sequence[str]) -> None:
        from qdrant_client import models as qm

        if memory_ids:
            selector = qm.PointIdsList(points=[point_id(m) for m in memory_ids])
            self._call("delete vectors", self._client.delete, self.collection, points_selector=selector)

    def scan(self, batch: int = 2000) -> Iterator[tuple[str, str, Matrix]]:
        """Every stored vector as (memory id, project, vector), in pages."""
        offset = None
        while True:
            points, offset = self._call(
                "read vectors",
                self._client.scroll,
                self.collection,
                limit=batch,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for p in points:
                yield p.payload["mid"], p.payload["project"], np.asarray(p.vector, dtype=np.float32)
            if offset is None:
                return

    def search(
        self, query: Matrix, k: int, *, project: str | None, type_: str | None
    ) -> list[tuple[str, float]]:
        """Search in Qdrant itself (server mode, where other workers write too)."""
        from qdrant_client import models as qm

        must: list[Any] = []
        if project is not None:
            must.append(qm.FieldCondition(key="project", match=qm.MatchValue(value=project)))
        if type_ is not None:
            must.append(qm.FieldCondition(key="type", match=qm.MatchValue(value=type_)))
        result = self._call(
            "search",
            self._client.query_points,
            self.collection,
            query=query.tolist(),
            limit=k,
            query_filter=qm.Filter(must=must) if must else None,
            with_payload=True,
        )
        return [(p.payload["mid"], float(p.score)) for p in result.points]

    def count(self) -> int:
        return int(self._call("count", self._client.count, self.collection, exact=True).count)

    def close(self) -> None:
        with self._lock:
            try:
                self._client.close()
            except Exception:  # closing is best effort; nothing is lost
                log.debug("closing the vector store failed", exc_info=True)


def open_store(settings: Settings, model: str, dim: int, location: str | None) -> VectorStore | None:
    """Qdrant for this process: the server, or local mode in the data dir; None when another
    process holds local mode's folder (the ledger's vectors are complete without it)."""
    mem = settings.memory
    collection = mem.collection if model == "minilm" else f"{mem.collection}_{model}"
    key = mem.qdrant_api_key.get_secret_value() if mem.qdrant_api_key else None
    path = settings.data_dir / "qdrant"
    try:
        return VectorStore(collection, dim, path=path, url=mem.qdrant_url, api_key=key,
                           location=location)
    except VectorStoreLocked:
        log.info("Qdrant local mode at %s is held by another kimi-mcp process; this process "
                 "searches the ledger's vectors without it", path)
        return None
