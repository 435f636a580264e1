"""`QdrantSearch`: the scale-out `VectorSearch` — a Qdrant server (`memory.qdrant_url`) shared
by every process and worker, searched there.

The ledger stays the durable home of every vector; Qdrant is where they are searched. At
`open` the collection is created if needed (cosine, with keyword indexes on `project` and
`type`), and when its count differs from the ledger's, the vectors it lacks are copied from
the ledger (no re-embedding): a new server, or one that missed writes while it was down,
catches up by itself. Points whose record is gone are harmless (recall drops them).

Point ids are UUIDs derived from the memory id (Qdrant accepts only UUIDs and integers);
the memory id, its project and its type travel in the payload.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from kimi_mcp.errors import MemoryEngineError
from kimi_mcp.ledger import Ledger
from kimi_mcp.memory import vecrows
from kimi_mcp.memory.embedder import Matrix
from kimi_mcp.memory.types import Point

log = logging.getLogger(__name__)
T = TypeVar("T")

_NAMESPACE = uuid.UUID("6f1c5a0e-7f51-4a36-9d9c-6a3f5e0b8c21")
_PAGE = 1000


def point_id(memory_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, memory_id))


class QdrantSearch:
    """`location` is qdrant-client's own: tests pass ":memory:" (its in-process mode) instead
    of a server URL."""

    def __init__(
        self,
        ledger: Ledger,
        model: str,
        dim: int,
        *,
        collection: str,
        url: str = "",
        api_key: str | None = None,
        location: str | None = None,
        timeout_s: int = 10,
    ) -> None:
        if not url and not location:
            raise MemoryEngineError("a Qdrant search needs memory.qdrant_url")
        self.ledger = ledger
        self.model = model
        self.dim = dim
        self.collection = collection
        self._url, self._api_key, self._location, self._timeout = url, api_key, location, timeout_s
        self._where = url or str(location)
        self._client: QdrantClient | None = None
        # qdrant-client's in-process mode is not thread-safe; a server client is.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if location else contextlib.nullcontext()
        )

    # ---- VectorSearch -------------------------------------------------------------------

    def open(self) -> None:
        if self._client is not None:
            return
        if self._location:
            self._client = QdrantClient(location=self._location)
        else:
            # no version check: it is a request at construction that warns when it fails
            self._client = QdrantClient(url=self._url, api_key=self._api_key,
                                        timeout=self._timeout, check_compatibility=False)
        try:
            self._ensure_collection()
            self._catch_up()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with self._lock, contextlib.suppress(Exception):  # closing loses nothing
                client.close()

    def add(self, points: Sequence[Point], vectors: Matrix) -> None:
        structs = [
            qm.PointStruct(id=point_id(p.id), vector=vector.tolist(),
                           payload={"mid": p.id, "project": p.project, "type": p.type})
            for p, vector in zip(points, vectors, strict=True)
        ]
        for start in range(0, len(structs), _PAGE):
            self._call("write vectors", partial(QdrantClient.upsert, collection_name=self.collection,
                                                points=structs[start : start + _PAGE]))

    def remove(self, points: Sequence[Point]) -> None:
        if points:
            selector = qm.PointIdsList(points=[point_id(p.id) for p in points])
            self._call("delete vectors", lambda c: c.delete(self.collection, points_selector=selector))

    def retype(self, points: Sequence[Point]) -> None:
        for type_ in {p.type for p in points}:
            ids: list[qm.ExtendedPointId] = [point_id(p.id) for p in points if p.type == type_]
            self._call("update payloads", partial(
                QdrantClient.set_payload, collection_name=self.collection, payload={"type": type_},
                points=ids))

    def search(
        self, query: Matrix, k: int, *, project: str | None, type_: str | None
    ) -> list[tuple[str, float]]:
        must: list[qm.Condition] = []
        if project is not None:
            must.append(qm.FieldCondition(key="project", match=qm.MatchValue(value=project)))
        if type_ is not None:
            must.append(qm.FieldCondition(key="type", match=qm.MatchValue(value=type_)))
        result = self._call("search", lambda c: c.query_points(
            self.collection, query=query.tolist(), limit=k, with_payload=["mid"],
            query_filter=qm.Filter(must=must) if must else None))
        return [(str(p.payload["mid"]), float(p.score)) for p in result.points if p.payload]

    def refresh(self) -> None:
        """Nothing to do: every process writes to the server itself."""

    def clear(self) -> None:
        self._call("drop the collection", lambda c: c.delete_collection(self.collection))
        self._ensure_collection()

    def count(self) -> int:
        return int(self._call("count", lambda c: c.count(self.collection, exact=True)).count)

    # ---- internals ----------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[QdrantClient], T]) -> T:
        client = self._client
        if client is None:
            raise MemoryEngineError(f"the vector search at {self._where} is closed")
        with self._lock:
            try:
                return fn(client)
            except UnexpectedResponse as exc:
                raise self._failed(what, f"it answered HTTP {exc.status_code} {exc.reason_phrase}") from None
            except ResponseHandlingException:
                raise self._failed(what, "it cannot be reached") from None
            except Exception as exc:  # qdrant-client raises many kinds; all mean "it failed"
                log.debug("Qdrant failed to %s", what, exc_info=exc)
                raise self._failed(what, type(exc).__name__) from None

    def _failed(self, what: str, reason: str) -> MemoryEngineError:
        return MemoryEngineError(
            f"the Qdrant server at {self._where} failed to {what}: {reason}; check that it "
            "runs and memory.qdrant_url, or empty memory.qdrant_url to search in process"
        )

    def _ensure_collection(self) -> None:
        if self._call("list collections", lambda c: c.collection_exists(self.collection)):
            return
        self._call("create the collection", lambda c: c.create_collection(
            self.collection,
            vectors_config=qm.VectorParams(size=self.dim, distance=qm.Distance.COSINE)))
        for key in ("project", "type"):
            self._call("index the payload", partial(_payload_index, collection=self.collection, key=key))

    def _catch_up(self) -> None:
        """Copy the ledger's vectors that the collection lacks."""
        stored = vecrows.counts(self.ledger, self.model, self.dim, None)
        if sum(stored.values()) == self.count():
            return
        have = set(self._ids())
        missing = sorted(
            mid for project in stored
            for mid in vecrows.ids_of(self.ledger, project, self.model, self.dim) - have
        )
        for start in range(0, len(missing), _PAGE):
            rows = vecrows.by_ids(self.ledger, missing[start : start + _PAGE], self.model, self.dim)
            if rows:
                self.add([Point(r.id, r.project, r.type) for r in rows],
                         vecrows.stack([r.vector for r in rows]))
        if missing:
            log.info("copied %d vectors from the ledger to Qdrant at %s", len(missing), self._where)

    def _ids(self) -> Iterator[str]:
        offset: qm.ExtendedPointId | None = None
        while True:
            points, offset = self._call("read point ids", partial(
                QdrantClient.scroll, collection_name=self.collection, limit=_PAGE * 5,
                offset=offset, with_payload=["mid"], with_vectors=False))
            yield from (str(p.payload["mid"]) for p in points if p.payload)
            if offset is None:
                return


def _payload_index(client: QdrantClient, collection: str, key: str) -> None:
    with warnings.catch_warnings():
        # qdrant-client's in-process mode (tests) says the index has no effect there
        warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
        client.create_payload_index(collection, key, field_schema=qm.PayloadSchemaType.KEYWORD)
