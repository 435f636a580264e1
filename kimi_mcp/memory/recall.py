"""Recall: ranking by cosine with filters, listing by recency, and counting recalls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kimi_mcp.ledger.models import now
from kimi_mcp.memory import records
from kimi_mcp.memory.embedder import Matrix
from kimi_mcp.memory.types import Hit, MemoryItem

if TYPE_CHECKING:
    from kimi_mcp.config import MemorySettings
    from kimi_mcp.ledger import Ledger, Tx

Search = Callable[..., list[tuple[str, float]]]


def recent(
    ledger: Ledger, scope: str | None, type_: str | None, tags: Sequence[str] | None, limit: int
) -> list[Hit]:
    hits: list[Hit] = []
    offset, page = 0, max(limit * 4, 50)
    while len(hits) < limit:
        items = records.recent(ledger, project=scope, type_=type_, limit=page, offset=offset)
        hits.extend(Hit(i, None) for i in items if records.tags_match(i, tags))
        if len(items) < page:
            break
        offset += page
    return hits[:limit]


def ranked(
    search: Search,
    ledger: Ledger,
    query_vector: Matrix,
    *,
    scope: str | None,
    type_: str | None,
    tags: Sequence[str] | None,
    min_score: float,
    limit: int,
) -> list[Hit]:
    """The best `limit` hits; with a tag filter the search widens until enough match."""
    k = limit * 4 if tags else limit
    while True:
        found = [(m, s) for m, s in search(query_vector, k, project=scope, type_=type_)
                 if s >= min_score]
        items = records.get_many(ledger, [m for m, _ in found])
        hits = [
            Hit(items[m], s)
            for m, s in found
            if m in items
            and (type_ is None or items[m].type == type_)
            and records.tags_match(items[m], tags)
        ]
        if len(hits) >= limit or len(found) < k:
            return hits[:limit]
        k *= 4


def count_recalls(
    hits: Sequence[Hit], settings: MemorySettings
) -> tuple[Callable[[Tx], dict[str, str]], list[MemoryItem]]:
    """Update the hits as the recall will be committed; returns the write and the promoted."""
    window_s = settings.promote_window_days * 86400
    t = now()
    promoted: list[MemoryItem] = []
    for hit in hits:
        item = hit.item
        item.recalls = [r for r in item.recalls if r > t - window_s] + [t]
        item.recall_count += 1
        item.last_recalled_at = t
        if item.type == "episodic" and len(item.recalls) >= settings.promote_after:
            item.type = "frequent"
            promoted.append(item)
    fn = records.record_recalls_fn(
        [h.item.id for h in hits], promote_after=settings.promote_after, window_s=window_s
    )
    return fn, promoted
