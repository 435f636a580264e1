"""What the context stages saved in a time range: by transformation and by tool kind.

Sums each request row's `meta.context` (see `kimi_mcp.context.figures`): tokens, cost in
uncached-token units, and USD where the model's price was known. Reads at most MAX_ROWS rows,
the newest first, and says so when it stopped there.
"""

from __future__ import annotations

from typing import Any

from kimi_mcp.deps import Deps
from kimi_mcp.ledger import reads

MAX_ROWS = 20_000


def _add(into: dict[str, dict[str, float]], figures: Any) -> None:
    if not isinstance(figures, dict):
        return
    for name, f in figures.items():
        if not isinstance(f, dict):
            continue
        row = into.setdefault(str(name), {"tokens": 0, "cost_tokens": 0.0, "cost_usd": 0.0})
        row["tokens"] += int(f.get("tokens") or 0)
        row["cost_tokens"] += float(f.get("cost_tokens") or 0)
        row["cost_usd"] += float(f.get("cost_usd") or 0)


def context_savings(deps: Deps, since: float, until: float, session: str | None = None) -> dict[str, Any]:
    """`{by_transform: {name: {tokens, cost_tokens, cost_usd}}, by_kind: {...}, requests, truncated}`."""
    with deps.ledger.read() as db:
        metas = reads.saving_metas(db, since, until, session, MAX_ROWS + 1)
    by_transform: dict[str, dict[str, float]] = {}
    by_kind: dict[str, dict[str, float]] = {}
    counted = 0
    for meta in metas[:MAX_ROWS]:
        context = meta.get("context") if isinstance(meta, dict) else None
        if not isinstance(context, dict):
            continue
        counted += 1
        _add(by_transform, context.get("by_transform"))
        _add(by_kind, context.get("by_kind"))
    return {"since": since, "until": until, "requests": counted, "truncated": len(metas) > MAX_ROWS,
            "by_transform": by_transform, "by_kind": by_kind}
