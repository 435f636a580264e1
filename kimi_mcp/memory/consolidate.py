"""Consolidation: near-duplicate memories (cosine ≥ threshold) merge into one `semantic`
memory that keeps its sources' ids in `merged_from`.

Clusters are built greedily, oldest memory first: a leader takes every unassigned memory at
least `threshold` similar to it, so every member is close to its leader (no chaining).
Masked tool outputs (source `sanitizer`) are never merged: placeholders point at their ids.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete
from sqlmodel import col, select

from kimi_mcp.ledger import Tx
from kimi_mcp.ledger.models import MemoryRecord
from kimi_mcp.memory import records, vecrows
from kimi_mcp.memory.embedder import Matrix
from kimi_mcp.memory.records import NewRecord, Vectors
from kimi_mcp.memory.types import (
    Cluster,
    ConsolidateReport,
    MemoryItem,
    Point,
    content_hash,
    tokens_of,
)

if TYPE_CHECKING:
    from kimi_mcp.memory.engine import MemoryEngine

log = logging.getLogger(__name__)

_BLOCK = 1024
NEVER_MERGED = frozenset({"sanitizer"})


def leader_clusters(vectors: Matrix, threshold: float) -> list[list[int]]:
    """Groups of ≥ 2 row indices; rows are taken as leaders in order."""
    n = len(vectors)
    neighbours: list[npt.NDArray[np.intp]] = []
    for start in range(0, n, _BLOCK):
        sims = vectors[start : start + _BLOCK] @ vectors.T
        neighbours.extend(np.flatnonzero(row >= threshold) for row in sims)
    assigned = np.zeros(n, dtype=np.bool_)
    clusters: list[list[int]] = []
    for leader in range(n):
        if assigned[leader]:
            continue
        members = [int(j) for j in neighbours[leader] if not assigned[j] and j != leader]
        assigned[leader] = True
        if members:
            assigned[members] = True
            clusters.append([leader, *members])
    return clusters


def consolidate(
    engine: MemoryEngine, threshold: float, *, dry_run: bool, project: str
) -> ConsolidateReport:
    ids, vectors = _project_vectors(engine, project)
    items = records.get_many(engine.ledger, ids)
    rows = [n for n, mid in enumerate(ids) if mid in items and items[mid].source not in NEVER_MERGED]
    rows.sort(key=lambda n: (items[ids[n]].created_at, ids[n]))
    groups = leader_clusters(vectors[rows], threshold) if rows else []
    report = ConsolidateReport(dry_run, threshold, project, len(rows), [])
    for group in groups:
        members = [items[ids[rows[g]]] for g in group]
        cluster = Cluster([m.id for m in members], members[0].snippet(120))
        if not dry_run:
            cluster.merged_id = _merge(engine, members)
        report.clusters.append(cluster)
    return report


def _project_vectors(engine: MemoryEngine, project: str) -> tuple[list[str], Matrix]:
    """The project's vectors as every process has written them to the ledger."""
    engine.ready()
    model, dim = engine.embedder.name, engine.embedder.dim
    found = vecrows.by_ids(engine.ledger, sorted(vecrows.ids_of(engine.ledger, project, model, dim)),
                           model, dim)
    if not found:
        return [], np.zeros((0, dim), dtype=np.float32)
    return [r.id for r in found], np.stack([r.vector for r in found])


def merged_content(members: Sequence[MemoryItem]) -> str:
    """The distinct texts, oldest first; a text contained in another member is dropped."""
    texts = list(dict.fromkeys(m.content for m in members))
    kept = [t for t in texts if not any(t != o and t.strip() in o for o in texts)]
    return "\n\n".join(kept)


def _merge(engine: MemoryEngine, members: Sequence[MemoryItem]) -> str | None:
    content = merged_content(members)
    merged_from: list[str] = []
    tags: list[str] = []
    metadata: dict[str, object] = {}
    for m in members:
        merged_from.extend([*m.merged_from, m.id])
        tags.extend(m.tags)
        metadata.update(m.metadata)
    project = members[0].project
    new = NewRecord(
        id=uuid.uuid4().hex,
        project=project,
        content=content,
        content_hash=content_hash(content),
        type="semantic",
        source="consolidate",
        tags=list(dict.fromkeys(tags)),
        metadata=metadata,
        tokens=tokens_of(content),
        vector_ok=True,
        merged_from=list(dict.fromkeys(merged_from)),
        recall_count=sum(m.recall_count for m in members),
    )
    vector = engine.embed([content])
    search = engine.vector_search
    merged = Point(new.id, project, new.type)
    sources = [Point(m.id, project, m.type) for m in members]
    search.add([merged], vector)
    source_ids = [m.id for m in members]
    engine.forget_known(source_ids)
    try:
        done = engine.ledger.write_sync(
            _merge_fn(new, source_ids, engine.vectors_for([new.id], vector))
        )
    except BaseException:
        search.remove([merged])
        raise
    search.remove(sources if done else [merged])
    return new.id if done else None  # not done: a source changed meanwhile


def _merge_fn(new: NewRecord, source_ids: list[str], vector: Vectors) -> Callable[[Tx], bool]:
    def fn(tx: Tx) -> bool:
        found = tx.db.exec(
            select(MemoryRecord.id).where(col(MemoryRecord.id).in_(source_ids))
        ).all()
        if len(found) != len(source_ids):
            return False
        tx.db.execute(delete(MemoryRecord).where(col(MemoryRecord.id).in_(source_ids)))
        vecrows.drop(tx.db, source_ids)
        tx.db.add(new.row())
        vecrows.put(tx.db, [(new.id, new.project)], vector.matrix, vector.model)
        tx.emit("memory", {"action": "consolidated", "id": new.id, "merged_from": source_ids})
        return True

    return fn
