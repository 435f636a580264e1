"""`VectorSearch`: where the memory engine searches vectors, and the choice between its two
implementations.

The ledger's `memory_vector` table is the durable home of every vector: it is written in
the same transaction as its record, by whichever process stores the memory. A
`VectorSearch` makes those vectors searchable:

- `LedgerSearch` (`memory.qdrant_url` empty, the embedded default): an in-process exact
  index loaded from `memory_vector` that follows what other processes write there.
- `QdrantSearch` (`memory.qdrant_url` set): a Qdrant server shared by every process and
  worker; searched there. At open it is given the ledger's vectors it lacks.

Nothing else holds vectors: there is no on-disk Qdrant folder and no folder lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from kimi_mcp.memory.ledgersearch import LedgerSearch
from kimi_mcp.memory.types import Point

if TYPE_CHECKING:
    from kimi_mcp.config import Settings
    from kimi_mcp.ledger import Ledger
    from kimi_mcp.memory.embedder import Matrix


class VectorSearch(Protocol):
    """Cosine search over memory vectors (float32 rows of unit length, so cosine is a dot
    product). Every failure is a `MemoryEngineError` that says where the vectors live."""

    def open(self) -> None:
        """Get ready to search; called before any other method, and again after `close`."""
        ...

    def close(self) -> None:
        """Release what `open` took (nothing is lost: the ledger holds the vectors)."""
        ...

    def add(self, points: Sequence[Point], vectors: Matrix) -> None:
        """Make vectors searchable, replacing earlier ones of the same ids (row n of
        `vectors` belongs to `points[n]`). The engine calls this before it commits a new
        record, so a failure here stores nothing."""
        ...

    def remove(self, points: Sequence[Point]) -> None:
        """Stop finding these memories (deleted, or merged by consolidation)."""
        ...

    def retype(self, points: Sequence[Point]) -> None:
        """The memories' type changed to `point.type` (the type filter follows)."""
        ...

    def search(
        self, query: Matrix, k: int, *, project: str | None, type_: str | None
    ) -> list[tuple[str, float]]:
        """Up to `k` (memory id, cosine) pairs, best first, in `project` (every project when
        None) and of `type_` (any when None). An id may belong to a record another process
        deleted a moment ago: callers read the records and drop those that are gone."""
        ...

    def refresh(self) -> None:
        """Catch up now with every process's writes to the ledger (the next `search` would
        anyway, within a second)."""
        ...

    def clear(self) -> None:
        """Forget every vector (`kimi-mcp memory reindex` adds them all again)."""
        ...

    def count(self) -> int:
        """How many vectors are searchable."""
        ...



def open_search(settings: Settings, ledger: Ledger, model: str, dim: int) -> VectorSearch:
    """The implementation the settings ask for (not opened yet)."""
    mem = settings.memory
    if not mem.qdrant_url:
        return LedgerSearch(ledger, model, dim)
    # qdrant-client loads only when a server is configured (about 0.5 s of imports)
    from kimi_mcp.memory.qdrant import QdrantSearch

    collection = mem.collection if model == "minilm" else f"{mem.collection}_{model}"
    key = mem.qdrant_api_key.get_secret_value() if mem.qdrant_api_key else None
    return QdrantSearch(ledger, model, dim, collection=collection, url=mem.qdrant_url, api_key=key)
