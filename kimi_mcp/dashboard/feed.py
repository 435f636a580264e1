"""The live feed's reads: requests and tool calls in keyset pages, one request in detail."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from kimi_mcp.deps import Deps
from kimi_mcp.errors import RequestError

MAX_LIMIT = 500
SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key", "cookie",
                  "proxy-authorization", "set-cookie")
_REQUEST_COLUMNS = """id, uid, session_id, created_at, source, provider, model, stream, status,
    http_status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
    est_prompt_tokens, est_completion_tokens, usage_source, cost_usd, ttft_ms, latency_ms,
    saved_mask_tokens, saved_compress_tokens, memory_tokens, context_window, route, meta,
    CASE WHEN error IS NULL THEN NULL ELSE SUBSTR(error, 1, 300) END AS error"""
_TOOL_COLUMNS = """id, session_id, created_at, tool, family, args_tokens, result_tokens,
    latency_ms, is_error, CASE WHEN error IS NULL THEN NULL ELSE SUBSTR(error, 1, 300) END AS error"""


def parse_cursor(raw: str | None) -> tuple[float, int] | None:
    """A cursor is `<created_at>:<id>` of the last row of the previous page."""
    if not raw:
        return None
    try:
        at, _, row_id = raw.partition(":")
        return float(at), int(row_id)
    except ValueError:
        raise RequestError(f"'cursor' must be the next_cursor of a previous page, got {raw!r}") from None


def parse_limit(raw: str | None, default: int = 50) -> int:
    if raw in (None, ""):
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise RequestError(f"'limit' must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def _page(deps: Deps, table: str, columns: str, filters: dict[str, Any],
          cursor: tuple[float, int] | None, limit: int) -> dict[str, Any]:
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": limit + 1}
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if cursor is not None:
        clauses.append("(created_at < :c_at OR (created_at = :c_at AND id < :c_id))")
        params.update(c_at=cursor[0], c_id=cursor[1])
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = f"SELECT {columns} FROM {table}{where} ORDER BY created_at DESC, id DESC LIMIT :limit"
    with deps.ledger.read() as db:
        rows = [dict(r) for r in db.execute(text(sql), params).mappings().all()]
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1]['created_at']!r}:{rows[-1]['id']}" if more and rows else None
    return {"items": rows, "next_cursor": nxt}


def requests_page(deps: Deps, session_id: str | None, cursor: tuple[float, int] | None,
                  limit: int, status: str | None = None) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next (older) page."""
    page = _page(deps, "request", _REQUEST_COLUMNS,
                 {"session_id": session_id, "status": status}, cursor, limit)
    for row in page["items"]:
        row["stream"] = bool(row["stream"])
        row["inbound"] = _meta(row.pop("meta", None)).get("inbound")  # the client's API format
    return page


def _meta(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def tool_calls_page(deps: Deps, session_id: str | None, cursor: tuple[float, int] | None,
                    limit: int, tool: str | None = None) -> dict[str, Any]:
    page = _page(deps, "tool_call", _TOOL_COLUMNS, {"session_id": session_id, "tool": tool},
                 cursor, limit)
    for row in page["items"]:
        row["is_error"] = bool(row["is_error"])
    return page


def request_detail(deps: Deps, row_id: str) -> dict[str, Any] | None:
    """One request with its error, its headers without secrets, and its masked blocks."""
    key = "id" if row_id.isdigit() else "uid"
    with deps.ledger.read() as db:
        found = db.execute(text(f"SELECT * FROM request WHERE {key} = :v"),
                           {"v": int(row_id) if key == "id" else row_id}).mappings().first()
    if found is None:
        return None
    row = dict(found)
    row["stream"] = bool(row["stream"])
    meta = row.get("meta")
    if isinstance(meta, str):
        meta = json.loads(meta or "{}")
    meta = dict(meta or {})
    row["headers"] = redact_headers(meta.pop("headers", None) or {})
    row["masked"] = _with_previews(deps, masked_blocks(meta))
    meta.pop("masked", None)
    meta.pop("masked_ids", None)
    row["meta"] = meta
    return row


def redact_headers(headers: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        lower = str(name).lower()
        secret = lower in SECRET_HEADERS or "key" in lower or "token" in lower or "secret" in lower
        out[str(name)] = "[redacted]" if secret else str(value)
    return out


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
