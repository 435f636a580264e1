"""The live feed's reads: requests and tool calls in keyset pages, one request in detail."""

from __future__ import annotations

from typing import Any

from kimi_mcp.deps import Deps
from kimi_mcp.errors import RequestError
from kimi_mcp.ledger import reads
from kimi_mcp.ledger.rows import redact_headers

MAX_LIMIT = 500
REQUEST_ITEM = ("id", "uid", "session_id", "created_at", "source", "provider", "model", "stream",
                "status", "http_status", "prompt_tokens", "completion_tokens", "cached_tokens",
                "reasoning_tokens", "est_prompt_tokens", "est_completion_tokens", "usage_source",
                "cost_usd", "ttft_ms", "latency_ms", "saved_mask_tokens", "saved_compress_tokens",
                "memory_tokens", "context_window", "route", "error")
TOOL_ITEM = ("id", "session_id", "created_at", "tool", "family", "args_tokens", "result_tokens",
             "latency_ms", "is_error", "error")


def parse_cursor(raw: str | None) -> reads.Cursor | None:
    """A cursor is `<created_at>:<id>` of the last row of the previous page."""
    if not raw:
        return None
    try:
        return reads.parse_cursor(raw)
    except ValueError:
        raise RequestError(f"'cursor' must be the next_cursor of a previous page, got {raw!r}") from None


def parse_limit(raw: str | None, default: int = 50) -> int:
    if raw in (None, ""):
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise RequestError(f"'limit' must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def _shaped(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def requests_page(deps: Deps, session_id: str | None, cursor: reads.Cursor | None,
                  limit: int, status: str | None = None) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next (older) page."""
    with deps.ledger.read() as db:
        page = reads.request_page(db, session_id=session_id, status=status, cursor=cursor,
                                  limit=limit)
    items = []
    for r in page.items:
        item = _shaped(r, REQUEST_ITEM)
        item["inbound"] = r.meta.get("inbound")  # the client's API format (chat, messages, ...)
        items.append(item)
    return {"items": items, "next_cursor": page.next_cursor}


def tool_calls_page(deps: Deps, session_id: str | None, cursor: reads.Cursor | None,
                    limit: int, tool: str | None = None) -> dict[str, Any]:
    with deps.ledger.read() as db:
        page = reads.tool_call_page(db, session_id=session_id, tool=tool, cursor=cursor,
                                    limit=limit)
    return {"items": [_shaped(r, TOOL_ITEM) for r in page.items], "next_cursor": page.next_cursor}


def request_detail(deps: Deps, row_id: str) -> dict[str, Any] | None:
    """One request with its error, its headers without secrets, and its masked blocks."""
    with deps.ledger.read() as db:
        found = reads.request(db, row_id)
    if found is None:
        return None
    row = found.values() | {"id": found.id}
    meta = dict(found.meta or {})
    row["headers"] = redact_headers(meta.pop("headers", None) or {})
    row["masked"] = _with_previews(deps, masked_blocks(meta))
    meta.pop("masked", None)
    meta.pop("masked_ids", None)
    row["meta"] = meta
    return row


def _with_previews(deps: Deps, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Size and first line of each original, so the drawer can say what was masked."""
    bare = [b["id"] for b in blocks if "preview" not in b]
    if not bare or deps.memory is None:
        return blocks
    found = {m.id: m for m in deps.memory.get_sync(bare)}
    for block in blocks:
        item = found.get(block["id"])
        if item is not None:
            first = next((ln.strip() for ln in item.content.splitlines() if ln.strip()), "")
            block.setdefault("tokens", item.tokens)
            block["preview"] = first[:120]
    return blocks


def masked_blocks(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The masked blocks of a request: `meta.masked_ids` (the proxy) or `meta.masked`; each id
    is the memory that holds the original."""
    blocks = list(meta.get("masked") or []) + list(meta.get("masked_ids") or [])
    out = []
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, str):
            out.append({"id": block})
        elif isinstance(block, dict) and block.get("id"):
            out.append({k: v for k, v in block.items() if k != "content"})
    return out
