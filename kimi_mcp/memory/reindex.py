"""`kimi-mcp memory reindex`: drop the vectors and recreate them from the records."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kimi_mcp.memory import records
from kimi_mcp.memory.engine import MemoryEngine
from kimi_mcp.memory.index import VectorIndex

log = logging.getLogger(__name__)

BATCH = 128


def reindex(engine: MemoryEngine, progress: Callable[[int, int], None] | None = None) -> int:
    """Re-embed every memory of every project; returns how many vectors were written.
    `progress(done, total)` is called after each batch (and once at the start)."""
    engine.ready()
    total = engine.count()
    store = engine.vectors
    store.recreate()
    index = VectorIndex(store.dim) if engine.index is not None else None
    done, after = 0, ""
    if progress is not None:
        progress(0, total)
    while True:
        page = records.page_after(engine.ledger, after, BATCH)
        if not page:
            break
        vectors = engine.embed([item.content for item in page])
        store.upsert([(i.id, i.project, i.type) for i in page], vectors)
        engine.ledger.write_sync(records.mark_vectors_fn([i.id for i in page], True))
        if index is not None:
            for project in {i.project for i in page}:
                rows = [n for n, i in enumerate(page) if i.project == project]
                index.add(project, [(page[n].id, page[n].type) for n in rows], vectors[rows])
        done += len(page)
        after = page[-1].id
        if progress is not None:
            progress(done, max(total, done))
    engine.replace_index(index)
    log.info("reindexed %d memories", done)
    return done
