"""Streamed CSV / JSON export of requests and tool calls: rows are read in keyset pages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio

from kimi_mcp.deps import Deps
from kimi_mcp.ledger import reads
from kimi_mcp.ledger.rows import RequestRow, ToolCallRow

PAGE = 2000
COLUMNS = [
    "kind", "id", "created_at", "session_id", "source", "provider", "model", "tool", "stream",
    "status", "http_status", "prompt_tokens", "completion_tokens", "cached_tokens",
    "reasoning_tokens", "est_prompt_tokens", "est_completion_tokens", "usage_source", "cost_usd",
    "ttft_ms", "latency_ms", "saved_mask_tokens", "saved_compress_tokens", "args_tokens",
    "result_tokens", "error",
]


def iter_rows(deps: Deps, session: str | None, since: float | None, until: float | None
              ) -> Iterator[list[dict[str, Any]]]:
    """Pages of export rows (requests first, then tool calls); never the whole table at once."""
    after = 0
    while True:
        with deps.ledger.read() as db:
            requests = reads.requests_after(db, after, PAGE, since=since, until=until,
                                            session_id=session)
        if not requests:
            break
        after = int(requests[-1].id or 0)
        yield [_request(r) for r in requests]
    after = 0
    while True:
        with deps.ledger.read() as db:
            calls = reads.tool_calls_after(db, after, PAGE, since=since, until=until,
                                           session_id=session)
        if not calls:
            break
        after = int(calls[-1].id or 0)
        yield [_tool_call(c) for c in calls]


def _request(row: RequestRow) -> dict[str, Any]:
    out: dict[str, Any] = {c: getattr(row, c, None) for c in COLUMNS}
    out["kind"], out["tool"] = "request", None
    return out


def _tool_call(row: ToolCallRow) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    for c in ("id", "created_at", "session_id", "tool", "latency_ms", "args_tokens",
              "result_tokens", "error"):
        out[c] = getattr(row, c)
    out["kind"], out["status"] = "tool_call", "error" if row.is_error else "ok"
    return out


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
