"""Named reads of single rows and pages of rows, returned as the ledger's typed rows.

These are the only queries outside the aggregates (`queries.py`): the live feed's keyset pages,
one request in detail, the export's pages, the newest requests of a session or a provider, the
routing history, the last alert of a session, and the proxy rows Continue's log watcher merges
into. Every filter is served by an index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select, update
from sqlmodel import Session as DbSession

from kimi_mcp.ledger import dialect
from kimi_mcp.ledger.models import Alert, Request, ToolCall, table_of
from kimi_mcp.ledger.models import Session as SessionModel
from kimi_mcp.ledger.rows import RequestRow, Row, ToolCallRow
from kimi_mcp.ledger.store import Tx

R = TypeVar("R", bound=Row)
ERROR_PREVIEW = 300  # characters of an error a list shows; the detail has all of it
Cursor = tuple[float, int]  # (created_at, id) of the last row of the previous page


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    next_cursor: str | None  # `<created_at>:<id>`, to pass back as the cursor


def parse_cursor(raw: str) -> Cursor:
    """A cursor from `Page.next_cursor`; `ValueError` when it is not one."""
    at, sep, row_id = raw.partition(":")
    if not sep:
        raise ValueError(raw)
    return float(at), int(row_id)


LIST_META = ("inbound",)  # the keys of a request's `meta` a list row carries


def _list_columns(table: Any) -> list[Any]:
    """Every column but `meta` (of which only `LIST_META`), the error cut to its preview."""
    cols = [c for c in table.columns if c.name not in ("meta", "error")]
    if "meta" in table.c:
        cols += [table.c.meta[key].as_string().label(f"meta_{key}") for key in LIST_META]
    return [*cols, func.substr(table.c.error, 1, ERROR_PREVIEW).label("error")]


def _listed(row_type: type[R], mapping: Any) -> R:
    data = dict(mapping)
    meta = {k: data.pop(f"meta_{k}") for k in LIST_META if f"meta_{k}" in data}
    if meta:
        data["meta"] = {k: v for k, v in meta.items() if v is not None}
    return row_type.of(data)


def _page(db: DbSession, row_type: type[R], table: Any, filters: dict[str, Any],
          cursor: Cursor | None, limit: int) -> Page[R]:
    query: Select[Any] = select(*_list_columns(table))
    for column, value in filters.items():
        if value is not None:
            query = query.where(table.c[column] == value)
    if cursor is not None:
        at, row_id = cursor
        query = query.where((table.c.created_at < at)
                            | ((table.c.created_at == at) & (table.c.id < row_id)))
    query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
    rows = [_listed(row_type, m) for m in db.execute(query).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    nxt = f"{last.created_at!r}:{last.id}" if more and last is not None else None  # type: ignore[attr-defined]
    return Page(rows, nxt)


def request_page(db: DbSession, *, session_id: str | None = None, status: str | None = None,
                 cursor: Cursor | None = None, limit: int = 50) -> Page[RequestRow]:
    """Requests newest first (errors cut to `ERROR_PREVIEW`, no `meta`)."""
    return _page(db, RequestRow, table_of(Request), {"session_id": session_id, "status": status},
                 cursor, limit)


def tool_call_page(db: DbSession, *, session_id: str | None = None, tool: str | None = None,
                   cursor: Cursor | None = None, limit: int = 50) -> Page[ToolCallRow]:
    return _page(db, ToolCallRow, table_of(ToolCall), {"session_id": session_id, "tool": tool},
                 cursor, limit)


def request(db: DbSession, ref: str) -> RequestRow | None:
    """One request, whole, by its id (digits) or its uid."""
    table = table_of(Request)
    column = table.c.id if ref.isdigit() else table.c.uid
    found = db.execute(select(table).where(column == (int(ref) if ref.isdigit() else ref))
                       .limit(1)).mappings().first()
    return None if found is None else RequestRow.of(found)


def requests_after(db: DbSession, after_id: int, limit: int, *, since: float | None = None,
                   until: float | None = None, session_id: str | None = None
                   ) -> list[RequestRow]:
    """The export's pages: requests by id, without `meta`."""
    table = table_of(Request)
    query = _ranged(select(*[c for c in table.columns if c.name != "meta"]), table, since, until,
                    session_id)
    query = query.where(table.c.id > after_id).order_by(table.c.id).limit(limit)
    return [RequestRow.of(m) for m in db.execute(query).mappings()]


def tool_calls_after(db: DbSession, after_id: int, limit: int, *, since: float | None = None,
                     until: float | None = None, session_id: str | None = None
                     ) -> list[ToolCallRow]:
    table = table_of(ToolCall)
    query = _ranged(select(table), table, since, until, session_id)
    query = query.where(table.c.id > after_id).order_by(table.c.id).limit(limit)
    return [ToolCallRow.of(m) for m in db.execute(query).mappings()]


def _ranged(query: Select[Any], table: Any, since: float | None, until: float | None,
            session_id: str | None) -> Select[Any]:
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    if session_id is not None:
        query = query.where(table.c.session_id == session_id)
    return query


def latest_requests(db: DbSession, session_id: str, limit: int = 20) -> list[RequestRow]:
    table = table_of(Request)
    query = (select(*_list_columns(table)).where(table.c.session_id == session_id)
             .order_by(table.c.created_at.desc()).limit(limit))
    return [_listed(RequestRow, m) for m in db.execute(query).mappings()]


@dataclass(frozen=True)
class RecentStats:
    """A provider's newest requests: moving figures for the providers panel."""

    requests: int
    errors: int
    avg_latency_ms: float | None
    avg_ttft_ms: float | None
    completion_tokens: int
    latency_sum_ms: float


def recent_provider_stats(db: DbSession, provider: str, since: float, limit: int
                          ) -> RecentStats | None:
    """Over the provider's newest `limit` requests since `since` (one indexed query)."""
    t = table_of(Request)
    recent = (select(t.c.status, t.c.latency_ms, t.c.ttft_ms,
                     dialect.effective_completion().label("out_tokens"))
              .where(t.c.provider == provider, t.c.created_at >= since)
              .order_by(t.c.created_at.desc()).limit(limit).subquery())
    n, errors, latency, ttft, tokens, total_ms = db.execute(select(
        func.count(), dialect.count_if(recent.c.status != "ok"), func.avg(recent.c.latency_ms),
        func.avg(recent.c.ttft_ms), dialect.total(recent.c.out_tokens),
        dialect.total(recent.c.latency_ms))).one()
    if not n:
        return None
    return RecentStats(int(n), int(errors or 0), None if latency is None else float(latency),
                       None if ttft is None else float(ttft), int(tokens or 0),
                       float(total_ms or 0))


@dataclass(frozen=True)
class RouteHistory:
    provider: str
    model: str
    avg_ttft_ms: float | None
    completion_tokens: int
    generation_ms: float  # latency after the first token, summed


def routing_history(db: DbSession, since: float) -> list[RouteHistory]:
    """Per model, the successful proxied calls since `since` (the router's starting averages)."""
    t = table_of(Request)
    rows = db.execute(
        select(t.c.provider, t.c.model, func.avg(t.c.ttft_ms),
               dialect.total(dialect.effective_completion()),
               dialect.total(t.c.latency_ms - func.coalesce(t.c.ttft_ms, 0)))
        .where(t.c.source == "proxy", t.c.status == "ok", t.c.created_at >= since)
        .group_by(t.c.provider, t.c.model)).all()
    return [RouteHistory(r[0], r[1], None if r[2] is None else float(r[2]), int(r[3] or 0),
                         float(r[4] or 0)) for r in rows]


def highest_alert(db: DbSession, session_id: str) -> float:
    """The highest context threshold a session has been alerted about (0 when none)."""
    t = table_of(Alert)
    found = db.execute(select(func.max(t.c.threshold)).where(t.c.session_id == session_id)).scalar()
    return float(found or 0.0)


def unlinked_proxy_requests(db: DbSession, lo: float, hi: float) -> list[RequestRow]:
    """Proxy rows in [lo, hi] that no Continue log record has been merged into, oldest first."""
    t = table_of(Request)
    query = (select(*[c for c in t.columns if c.name != "meta"])
             .where(t.c.source == "proxy", t.c.created_at >= lo, t.c.created_at <= hi,
                    t.c.linked_uid.is_(None))
             .order_by(t.c.created_at))
    return [RequestRow.of(m) for m in db.execute(query).mappings()]


MERGEABLE = frozenset({"status", "http_status", "error", "provider", "model",
                       "est_prompt_tokens", "est_completion_tokens", "meta"})


def update_request(tx: Tx, uid: str, changes: dict[str, Any]) -> None:
    """A write function's step: amend a request row by uid (Continue's log watcher completes
    its own rows with what a second log file says). Only `MERGEABLE` columns; the rollups
    count a request by its status and tokens at insert, so those amendments stay out of them."""
    unknown = set(changes) - MERGEABLE
    if unknown:
        raise TypeError(f"request rows cannot be amended in {sorted(unknown)}")
    t = table_of(Request)
    tx.db.execute(update(t).where(t.c.uid == uid).values(**changes))


@dataclass(frozen=True)
class Percentiles:
    provider: str
    samples: int
    values: dict[str, float]  # latency_p50, latency_p90, latency_p99, ttft_p50, …


def latency_percentiles(db: DbSession, providers: Sequence[str], since: float, until: float,
                        session_id: str | None = None, window: int = 1000,
                        points: Sequence[float] = (0.5, 0.9, 0.99)) -> list[Percentiles]:
    """Nearest-rank percentiles of latency and TTFT over each provider's newest `window`
    requests in [since, until), through the (provider, created_at) index."""
    t = table_of(Request)
    out = []
    for provider in providers:
        query = (select(t.c.latency_ms, t.c.ttft_ms)
                 .where(t.c.provider == provider, t.c.created_at >= since, t.c.created_at < until))
        if session_id is not None:
            query = query.where(t.c.session_id == session_id)
        rows = db.execute(query.order_by(t.c.created_at.desc()).limit(window)).all()
        latencies = sorted(float(r[0]) for r in rows if r[0] is not None)
        if not latencies:
            continue
        ttfts = sorted(float(r[1]) for r in rows if r[1] is not None)
        values: dict[str, float] = {}
        for name, series in (("latency", latencies), ("ttft", ttfts)):
            for p in points:
                if series:
                    rank = (len(series) * round(p * 100) + 99) // 100  # nearest rank: ceil(p·n)
                    values[f"{name}_p{round(p * 100)}"] = round(series[max(rank, 1) - 1], 1)
        out.append(Percentiles(provider, len(latencies), values))
    return sorted(out, key=lambda p: p.provider)


def saving_metas(db: DbSession, since: float, until: float, session_id: str | None,
                 limit: int) -> list[dict[str, Any]]:
    """The `meta` of the newest `limit` requests in [since, until) that saved tokens (masking
    or compression), newest first; what the context stages recorded about their savings."""
    t = table_of(Request)
    query = (select(t.c.meta)
             .where(t.c.created_at >= since, t.c.created_at < until)
             .where((t.c.saved_mask_tokens > 0) | (t.c.saved_compress_tokens > 0))
             .order_by(t.c.created_at.desc()).limit(limit))
    if session_id:
        query = query.where(t.c.session_id == session_id)
    return [m if isinstance(m, dict) else {} for m in db.execute(query).scalars()]


def session_count(db: DbSession) -> int:
    return int(db.execute(select(func.count()).select_from(table_of(SessionModel))).scalar() or 0)


def session_rows(db: DbSession) -> list[dict[str, Any]]:
    """Every session as stored, newest update first (plain values, JSON-ready)."""
    t = table_of(SessionModel)
    return [dict(m) for m in db.execute(select(t).order_by(t.c.updated_at.desc())).mappings()]
