"""`Memory`: what the faces use of the memory engine (the memory tools, the context stages,
the dashboard and the composition root).

`MemoryEngine` (`kimi_mcp.memory.engine`) is the one implementation. This module imports
nothing heavy, so a face can be typed with `Memory` while the engine (numpy, SQLAlchemy,
onnxruntime) is built only on first use.

Every method raises `MemoryEngineError` when the embedder, the vector search or the ledger
failed (its message says what to do and never carries SQL or stored content), and
`MemoryNotFound` (a `MemoryEngineError`) where an id must exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kimi_mcp.memory.types import ConsolidateReport, Hit, MemoryItem, StoreResult


class Memory(Protocol):
    """Memories recalled by meaning, scoped by project (a workspace's name)."""

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
        """Store a memory with its vector. The same content in the project (or an existing
        explicit id) returns the existing id with `created=False`."""
        ...

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
        """Queue a record at once (readable by `get` immediately); its vector is computed in
        the background. The id defaults to `masked_id(content)`."""
        ...

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
        """Memories ranked by cosine similarity to the query; an empty query lists by recency
        (score None). Each hit is counted as a recall."""
        ...

    async def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        """The memories with these ids, in the order asked, byte-exact; unknown ids are
        skipped."""
        ...

    def get_sync(self, ids: Sequence[str]) -> list[MemoryItem]:
        """`get` for code that is not async."""
        ...

    def merged_into(self, mid: str) -> str | None:
        """The id of the memory a consolidated id was merged into, if any."""
        ...

    def count(self, project: str | None = None) -> int:
        """How many memories a project has (all projects when None)."""
        ...

    async def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        type: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryItem:
        """Change a memory; a new content is embedded again. Raises `MemoryNotFound`."""
        ...

    async def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete memories; returns the ids that existed."""
        ...

    async def consolidate(
        self, threshold: float | None = None, *, dry_run: bool = True, project: str | None = None
    ) -> ConsolidateReport:
        """Merge near-duplicates (cosine ≥ threshold) of a project into `semantic` memories."""
        ...

    def flush_vectors(self) -> None:
        """Block until every deferred embedding has been written (or has failed)."""
        ...

    def close(self) -> None:
        """Stop background work and release the vector search; the ledger stays open."""
        ...
