"""`kimi-mcp memory reindex`: embed every record again, rewriting its vector in the ledger
and in the vector search (the in-process index, or the Qdrant server)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kimi_mcp.memory import records
from kimi_mcp.memory.engine import MemoryEngine
from kimi_mcp.memory.types import Point

log = logging.getLogger(__name__)

BATCH = 128


def reindex(engine: MemoryEngine, progress: Callable[[int, int], None] | None = None) -> int:
    """Re-embed every memory of every project; returns how many vectors were written.
    `progress(done, total)` is called after each batch (and once at the start)."""
    engine.ready()
    total = engine.count()
    search = engine.vector_search
    search.clear()
    done, after = 0, ""
    if progress is not None:
        progress(0, total)
    while True:
        page = records.page_after(engine.ledger, after, BATCH)
        if not page:
            break
        vectors = engine.embed([item.content for item in page])
        search.add([Point(i.id, i.project, i.type) for i in page], vectors)
        engine.ledger.write_sync(
            records.put_vectors_fn(engine.vectors_for([i.id for i in page], vectors))
        )
        done += len(page)
        after = page[-1].id
        if progress is not None:
            progress(done, max(total, done))
    log.info("reindexed %d memories", done)
    return done
