"""Streamed CSV / JSON export of requests and tool calls: rows are read in keyset pages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from sqlalchemy import text

from kimi_mcp.deps import Deps
from kimi_mcp.ledger.queries import where_clause

PAGE = 2000
COLUMNS = [
    "kind", "id", "created_at", "session_id", "source", "provider", "model", "tool", "stream",
    "status", "http_status", "prompt_tokens", "completion_tokens", "cached_tokens",
    "reasoning_tokens", "est_prompt_tokens", "est_completion_tokens", "usage_source", "cost_usd",
    "ttft_ms", "latency_ms", "saved_mask_tokens", "saved_compress_tokens", "args_tokens",
    "result_tokens", "error",
]
_REQUEST_SQL = """SELECT id, created_at, session_id, source, provider, model, stream, status,
    http_status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
    est_prompt_tokens, est_completion_tokens, usage_source, cost_usd, ttft_ms, latency_ms,
    saved_mask_tokens, saved_compress_tokens, error FROM request{where} id > :after
    ORDER BY id LIMIT :limit"""
_TOOL_SQL = """SELECT id, created_at, session_id, tool, family, is_error, args_tokens,
    result_tokens, latency_ms, error FROM tool_call{where} id > :after
    ORDER BY id LIMIT :limit"""


def iter_rows(deps: Deps, session: str | None, since: float | None, until: float | None
              ) -> Iterator[list[dict[str, Any]]]:
    """Pages of export rows (requests first, then tool calls); never the whole table at once."""
    where, params = where_clause(since, until, session)
    where = f"{where} AND" if where else " WHERE"
    for kind, sql in (("request", _REQUEST_SQL), ("tool_call", _TOOL_SQL)):
        after = 0
        while True:
            with deps.ledger.read() as db:
                page = db.execute(text(sql.format(where=where)),
                                  {**params, "after": after, "limit": PAGE}).mappings().all()
            if not page:
                break
            after = page[-1]["id"]
            yield [_shape(kind, dict(r)) for r in page]


def _shape(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {c: None for c in COLUMNS}
    out.update(row)
    out["kind"] = kind
    if kind == "tool_call":
        out["model"] = None
        out["status"] = "error" if row["is_error"] else "ok"
        out.pop("is_error", None)
        out.pop("family", None)
    return {c: out[c] for c in COLUMNS}


async def stream_export(deps: Deps, fmt: str, session: str | None, since: float | None,
                        until: float | None) -> AsyncIterator[bytes]:
    pages = iter_rows(deps, session, since, until)
    sentinel: list[dict[str, Any]] = []

    def next_page() -> list[dict[str, Any]]:
        return next(pages, sentinel)

    first = True
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerow(COLUMNS)
        yield buf.getvalue().encode()
    else:
        yield b"["
    while True:
        page = await anyio.to_thread.run_sync(next_page)
        if page is sentinel:
            break
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, COLUMNS)
            writer.writerows(page)
            yield buf.getvalue().encode()
        else:
            chunk = ",\n".join(json.dumps(r, default=str) for r in page)
            yield ((b"" if first else b",\n") + chunk.encode())
            first = False
    if fmt != "csv":
        yield b"]\n"
