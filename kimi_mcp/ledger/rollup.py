"""Rollups of requests and tool calls per minute and per hour, and how a range splits into them.

The writer folds each batch of rows into `request_rollup` / `tool_rollup` in the transaction that
inserts the rows, so every process writing to the ledger keeps the same rollups current. Reads
take whole hours, then whole minutes, then raw rows for the seconds at a range's edges
(`pieces`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session as DbSession

from kimi_mcp.ledger import dialect
from kimi_mcp.ledger.models import (
    LATENCY_BUCKETS_MS,
    Request,
    RequestRollup,
    ToolCall,
    ToolRollup,
)

MINUTE, HOUR = 60, 3600
SIZES = (MINUTE, HOUR)
REQUEST_KEY = ("size", "bucket", "session_id", "source", "provider", "model", "status")
HISTOGRAM = tuple(f"h{i}" for i in range(len(LATENCY_BUCKETS_MS) + 1))
REQUEST_SUMS = ("n", "errors", "prompt", "completion", "cached", "cost", "cost_n", "saved_mask",
                "saved_compress", "memory", "latency_sum", "latency_n", "ttft_sum", "ttft_n",
                *HISTOGRAM)
TOOL_KEY = ("size", "bucket", "session_id", "tool", "family")
TOOL_SUMS = ("calls", "errors", "args_tokens", "result_tokens", "latency_sum")
MAXES = ("last_at",)  # request and tool rollups
TOOL_MAXES = ("latency_max", "last_at")

Piece = tuple[int, float | None, float | None]  # (size, lo, hi); size 0: raw rows


def _num(value: Any) -> float:
    return 0 if value is None else value


def histogram_index(latency_ms: float) -> int:
    for i, bound in enumerate(LATENCY_BUCKETS_MS):
        if latency_ms <= bound:
            return i
    return len(LATENCY_BUCKETS_MS)


# ---- folding new rows in (the writer) ------------------------------------------------------------


def fold_requests(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rollup rows (both sizes) of new request rows, sorted by key."""
    minutes: dict[tuple[Any, ...], list[float]] = {}
    width = len(REQUEST_SUMS)
    for r in rows:
        created = float(r["created_at"])
        status = r.get("status") or ""
        key = (int(created // MINUTE * MINUTE), r.get("session_id") or "",
               r.get("source") or "", r.get("provider") or "", r.get("model") or "", status)
        sums = minutes.get(key)
        if sums is None:
            sums = minutes[key] = [0.0] * width + [created]
        latency, ttft, cost = r.get("latency_ms"), r.get("ttft_ms"), r.get("cost_usd")
        prompt, completion = r.get("prompt_tokens"), r.get("completion_tokens")
        sums[0] += 1
        sums[1] += status != "ok"
        sums[2] += _num(prompt if prompt is not None else r.get("est_prompt_tokens"))
        sums[3] += _num(completion if completion is not None else r.get("est_completion_tokens"))
        sums[4] += _num(r.get("cached_tokens"))
        if cost is not None:
            sums[5] += cost
            sums[6] += 1
        sums[7] += _num(r.get("saved_mask_tokens"))
        sums[8] += _num(r.get("saved_compress_tokens"))
        sums[9] += _num(r.get("memory_tokens"))
        if latency is not None:
            sums[10] += latency
            sums[11] += 1
            sums[14 + histogram_index(float(latency))] += 1
        if ttft is not None:
            sums[12] += ttft
            sums[13] += 1
        if created > sums[width]:
            sums[width] = created
    return _with_hours(minutes, width, 1, REQUEST_KEY, REQUEST_SUMS + MAXES)


def fold_tool_calls(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    minutes: dict[tuple[Any, ...], list[float]] = {}
    width = len(TOOL_SUMS)
    for r in rows:
        created = float(r["created_at"])
        latency = float(r.get("latency_ms") or 0)
        key = (int(created // MINUTE * MINUTE), r.get("session_id") or "", r.get("tool") or "",
               r.get("family") or "")
        sums = minutes.get(key)
        if sums is None:
            sums = minutes[key] = [0.0] * width + [latency, created]
        sums[0] += 1
        sums[1] += bool(r.get("is_error"))
        sums[2] += _num(r.get("args_tokens"))
        sums[3] += _num(r.get("result_tokens"))
        sums[4] += latency
        sums[5] = max(sums[5], latency)
        sums[6] = max(sums[6], created)
    return _with_hours(minutes, width, 2, TOOL_KEY, TOOL_SUMS + TOOL_MAXES)


def _with_hours(minutes: dict[tuple[Any, ...], list[float]], width: int, maxes: int,
                key_names: tuple[str, ...], value_names: tuple[str, ...]) -> list[dict[str, Any]]:
    hours: dict[tuple[Any, ...], list[float]] = {}
    for key, sums in minutes.items():
        hour = (key[0] // HOUR * HOUR, *key[1:])
        found = hours.get(hour)
        if found is None:
            hours[hour] = list(sums)
            continue
        for i in range(width):
            found[i] += sums[i]
        for i in range(width, width + maxes):
            found[i] = max(found[i], sums[i])
    out = [((MINUTE, *k), v) for k, v in minutes.items()] + [((HOUR, *k), v) for k, v in hours.items()]
    out.sort(key=lambda item: item[0])  # concurrent writers lock rollup rows in one order
    return [dict(zip(key_names, k, strict=True)) | dict(zip(value_names, v, strict=True))
            for k, v in out]


def upsert(db: DbSession | Connection, model: type[Any], values: list[dict[str, Any]]) -> None:
    """Add `values` to the rollup rows with the same key (insert the missing ones)."""
    if not values:
        return
    bind = db.get_bind() if isinstance(db, DbSession) else db
    db.execute(_upsert_statement(model is RequestRollup, bind.dialect.name), values)


@functools.lru_cache(maxsize=8)
def _upsert_statement(requests: bool, dialect_name: str) -> Any:
    """The INSERT … ON CONFLICT DO UPDATE for one rollup table, built once per dialect (the
    writer runs it on every batch; building its expressions each time cost more than the SQL)."""
    model: Any = RequestRollup if requests else ToolRollup
    table = model.__table__
    key = REQUEST_KEY if requests else TOOL_KEY
    sums = REQUEST_SUMS if requests else TOOL_SUMS
    maxes = MAXES if requests else TOOL_MAXES
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    stmt = dialect_insert(table)
    changes: dict[str, ColumnElement[Any]] = {n: table.c[n] + stmt.excluded[n] for n in sums}
    changes |= {n: dialect.greatest(table.c[n], stmt.excluded[n]) for n in maxes}
    return stmt.on_conflict_do_update(index_elements=list(key), set_=changes)


def delete_session(db: DbSession, session_id: str) -> None:
    for model in (RequestRollup, ToolRollup):
        db.execute(delete(model).where(model.session_id == session_id))  # type: ignore[arg-type]


def rebuild(conn: Connection) -> None:
    """Recompute every rollup from the raw rows (the migration to schema 4 runs this)."""
    conn.execute(delete(RequestRollup))
    conn.execute(delete(ToolRollup))
    r, t = Request.__table__.c, ToolCall.__table__.c  # type: ignore[attr-defined]
    for size in SIZES:
        bucket = dialect.floor_to(r.created_at, size)
        hist = []
        low = None
        for i, bound in enumerate((*LATENCY_BUCKETS_MS, None)):
            cond = r.latency_ms.is_not(None)
            if low is not None:
                cond = cond & (r.latency_ms > low)
            if bound is not None:
                cond = cond & (r.latency_ms <= bound)
            hist.append(dialect.count_if(cond).label(f"h{i}"))
            low = bound
        cols = [
            literal(size).label("size"), bucket.label("bucket"),
            func.coalesce(r.session_id, "").label("session_id"), r.source, r.provider, r.model,
            r.status, func.count().label("n"), dialect.count_if(r.status != "ok").label("errors"),
            dialect.total(dialect.effective_prompt()).label("prompt"),
            dialect.total(dialect.effective_completion()).label("completion"),
            dialect.total(r.cached_tokens).label("cached"), dialect.total(r.cost_usd).label("cost"),
            func.count(r.cost_usd).label("cost_n"),
            dialect.total(r.saved_mask_tokens).label("saved_mask"),
            dialect.total(r.saved_compress_tokens).label("saved_compress"),
            dialect.total(r.memory_tokens).label("memory"),
            dialect.total(r.latency_ms).label("latency_sum"),
            func.count(r.latency_ms).label("latency_n"),
            dialect.total(r.ttft_ms).label("ttft_sum"), func.count(r.ttft_ms).label("ttft_n"),
            func.max(r.created_at).label("last_at"), *hist,
        ]
        query = select(*cols).group_by(*cols[1:7])
        conn.execute(insert(RequestRollup).from_select([c.name for c in cols], query))
        tbucket = dialect.floor_to(t.created_at, size)
        tcols = [
            literal(size).label("size"), tbucket.label("bucket"),
            func.coalesce(t.session_id, "").label("session_id"), t.tool, t.family,
            func.count().label("calls"), dialect.count_if(t.is_error.is_(True)).label("errors"),
            dialect.total(t.args_tokens).label("args_tokens"),
            dialect.total(t.result_tokens).label("result_tokens"),
            dialect.total(t.latency_ms).label("latency_sum"),
            func.coalesce(func.max(t.latency_ms), 0).label("latency_max"),
            func.max(t.created_at).label("last_at"),
        ]
        tquery = select(*tcols).group_by(*tcols[1:5])
        conn.execute(insert(ToolRollup).from_select([c.name for c in tcols], tquery))


# ---- splitting a range ----------------------------------------------------------------------------


def pieces(since: float | None, until: float | None, largest: int = HOUR) -> list[Piece]:
    """[since, until) as whole hours, then whole minutes, then raw seconds at the edges.

    `largest` caps the bucket size used (a chart bucketed by 15 min reads minutes, not hours).
    """
    if largest >= HOUR:
        lo = None if since is None else math.ceil(since / HOUR) * HOUR
        hi = None if until is None else math.floor(until / HOUR) * HOUR
        if lo is None or hi is None or lo < hi:
            out: list[Piece] = [(HOUR, lo, hi)]
            if since is not None and lo is not None and since < lo:
                out += _minutes(since, lo)
            if until is not None and hi is not None and hi < until:
                out += _minutes(hi, until)
            return out
    if largest >= MINUTE:
        return _minutes(since, until)
    return [(0, since, until)]


def _minutes(since: float | None, until: float | None) -> list[Piece]:
    lo = None if since is None else math.ceil(since / MINUTE) * MINUTE
    hi = None if until is None else math.floor(until / MINUTE) * MINUTE
    if lo is not None and hi is not None and lo >= hi:
        return [(0, since, until)]
    out: list[Piece] = [(MINUTE, lo, hi)]
    if since is not None and lo is not None and since < lo:
        out.append((0, since, lo))
    if until is not None and hi is not None and hi < until:
        out.append((0, hi, until))
    return out
