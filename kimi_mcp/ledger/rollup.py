"""Hourly rollups of requests: accumulated per batch by the writer, read by the summaries."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.engine import Connection
from sqlmodel import Session as DbSession

from kimi_mcp.ledger.models import Rollup

HOUR = 3600
KEY = ("bucket", "session_id", "source", "provider", "model", "status")
SUMS = ("n", "errors", "prompt", "completion", "cached", "cost", "cost_n", "saved_mask",
        "saved_compress", "memory", "latency_sum", "latency_n", "ttft_sum", "ttft_n")


def _num(value: Any) -> float:
    return 0 if value is None else value  # type: ignore[no-any-return]


def accumulate(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[float]]:
    acc: dict[tuple[Any, ...], list[float]] = {}
    for r in rows:
        key = (int(r["created_at"] // HOUR * HOUR), r.get("session_id") or "", r.get("source") or "",
               r.get("provider") or "", r.get("model") or "", r.get("status") or "")
        sums = acc.get(key)
        if sums is None:
            sums = acc[key] = [0.0] * len(SUMS)
        prompt = r.get("prompt_tokens")
        completion = r.get("completion_tokens")
        cost, latency, ttft = r.get("cost_usd"), r.get("latency_ms"), r.get("ttft_ms")
        for i, value in enumerate((
            1, r.get("status") != "ok",
            _num(prompt if prompt is not None else r.get("est_prompt_tokens")),
            _num(completion if completion is not None else r.get("est_completion_tokens")),
            _num(r.get("cached_tokens")), _num(cost), cost is not None,
            _num(r.get("saved_mask_tokens")), _num(r.get("saved_compress_tokens")),
            _num(r.get("memory_tokens")), _num(latency), latency is not None, _num(ttft),
            ttft is not None,
        )):
            sums[i] += value
    return acc


def upsert(db: DbSession, rows: list[dict[str, Any]]) -> None:
    acc = accumulate(rows)
    if not acc:
        return
    table = Rollup.__table__  # type: ignore[attr-defined]
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: table.c[name] + stmt.excluded[name] for name in SUMS},
    )
    values = [dict(zip(KEY, key, strict=True)) | dict(zip(SUMS, sums, strict=True))
              for key, sums in acc.items()]
    db.execute(stmt, values)


def delete_session(db: DbSession, session_id: str) -> None:
    db.execute(delete(Rollup).where(Rollup.session_id == session_id))  # type: ignore[arg-type]


def rebuild(conn: Connection) -> None:
    """Recompute every rollup from the request rows (the migration to schema 2 runs this)."""
    conn.execute(text("DELETE FROM rollup"))
    conn.execute(text(
        f"""INSERT INTO rollup ({", ".join(KEY + SUMS)})
        SELECT CAST(created_at / {HOUR} AS INTEGER) * {HOUR}, COALESCE(session_id, ''), source,
            provider, model, status, COUNT(*), SUM(status != 'ok'),
            SUM(COALESCE(prompt_tokens, est_prompt_tokens, 0)),
            SUM(COALESCE(completion_tokens, est_completion_tokens, 0)),
            SUM(COALESCE(cached_tokens, 0)), COALESCE(SUM(cost_usd), 0), COUNT(cost_usd),
            SUM(saved_mask_tokens), SUM(saved_compress_tokens), SUM(memory_tokens),
            COALESCE(SUM(latency_ms), 0), COUNT(latency_ms), COALESCE(SUM(ttft_ms), 0), COUNT(ttft_ms)
        FROM request GROUP BY 1, 2, 3, 4, 5, 6"""
    ))


def spans(since: float | None, until: float | None
          ) -> tuple[list[tuple[float | None, float | None]], tuple[float | None, float | None] | None]:
    """Split [since, until) into raw-row edges and a whole-hour middle served by rollups."""
    lo = None if since is None else math.ceil(since / HOUR) * HOUR
    hi = None if until is None else math.floor(until / HOUR) * HOUR
    if lo is not None and hi is not None and lo >= hi:
        return [(since, until)], None
    raw: list[tuple[float | None, float | None]] = []
    if since is not None and lo is not None and since < lo:
        raw.append((since, lo))
    if until is not None and hi is not None and hi < until:
        raw.append((hi, until))
    return raw, (lo, hi)
