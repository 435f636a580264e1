"""Aggregate reads: totals of requests and tool calls over a range, grouped or bucketed.

Every aggregate reads the rollups for whole hours and minutes and the raw rows only for the
seconds at the range's edges (`rollup.pieces`), so a summary, a chart, `/metrics` and
`stats://` cost the same however large the ledger is, and count every process's rows. The
results are typed (`Totals`, `ToolTotals`); `summary`, `breakdown`, `timeseries` and
`tool_stats` shape them as the JSON readers get them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session as DbSession

from kimi_mcp.ledger import dialect, rollup
from kimi_mcp.ledger.models import (
    LATENCY_BUCKETS_MS,
    Request,
    RequestRollup,
    ToolCall,
    ToolRollup,
    table_of,
)

REQUEST_GROUPS = ("provider", "model", "source", "session_id", "status")
TOOL_GROUPS = ("tool", "family", "session_id")
DIMENSIONS = {"provider": "provider", "model": "model", "source": "source", "session": "session_id"}
_NR = len(rollup.REQUEST_SUMS)


@dataclass(frozen=True)
class Totals:
    """Sums of request rows. Token counts follow the token rule (reported, else estimated)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None  # None when no row had a price
    saved_mask_tokens: int = 0
    saved_compress_tokens: int = 0
    memory_tokens: int = 0
    avg_latency_ms: float | None = None
    avg_ttft_ms: float | None = None
    last_request_at: float | None = None
    latency_histogram: tuple[int, ...] = ()  # per LATENCY_BUCKETS_MS, then +Inf; not cumulative
    latency_sum_ms: float = 0.0

    @property
    def saved_tokens(self) -> int:
        return self.saved_mask_tokens + self.saved_compress_tokens

    @classmethod
    def of(cls, s: Sequence[float]) -> Totals:
        (n, errors, prompt, completion, cached, cost, cost_n, mask, compress, memory, lat_sum,
         lat_n, ttft_sum, ttft_n) = s[:14]
        return cls(
            requests=int(n), errors=int(errors), prompt_tokens=int(prompt),
            completion_tokens=int(completion), cached_tokens=int(cached),
            cost_usd=round(float(cost), 10) if cost_n else None, saved_mask_tokens=int(mask),
            saved_compress_tokens=int(compress), memory_tokens=int(memory),
            avg_latency_ms=_round(lat_sum / lat_n) if lat_n else None,
            avg_ttft_ms=_round(ttft_sum / ttft_n) if ttft_n else None,
            last_request_at=float(s[_NR]) if s[_NR] else None,
            latency_histogram=tuple(int(v) for v in s[14:_NR]), latency_sum_ms=float(lat_sum),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "errors": self.errors, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens,
            "cost_usd": self.cost_usd, "saved_mask_tokens": self.saved_mask_tokens,
            "saved_compress_tokens": self.saved_compress_tokens,
            "memory_tokens": self.memory_tokens, "avg_latency_ms": self.avg_latency_ms,
            "avg_ttft_ms": self.avg_ttft_ms,
        }


@dataclass(frozen=True)
class ToolTotals:
    calls: int = 0
    errors: int = 0
    args_tokens: int = 0
    result_tokens: int = 0
    latency_sum_ms: float = 0.0
    max_latency_ms: float | None = None
    last_call_at: float | None = None

    @property
    def avg_latency_ms(self) -> float | None:
        return _round(self.latency_sum_ms / self.calls) if self.calls else None

    @classmethod
    def of(cls, s: Sequence[float]) -> ToolTotals:
        calls, errors, args, result, lat_sum, lat_max, last = s
        return cls(int(calls), int(errors), int(args), int(result), float(lat_sum),
                   _round(lat_max) if calls else None, float(last) if last else None)


# ---- the two aggregates everything else is built from --------------------------------------------


def request_totals(db: DbSession, since: float | None = None, until: float | None = None,
                   session_id: str | None = None, by: Sequence[str] = (),
                   bucket_s: float | None = None) -> dict[tuple[Any, ...], Totals]:
    """Totals of [since, until) per combination of the `by` columns (of `REQUEST_GROUPS`); with
    `bucket_s`, the key starts with the bucket's index counted from `since`."""
    sums = _aggregate(db, "request", since, until, session_id, by, bucket_s)
    return {key: Totals.of(values) for key, values in sums.items()}


def tool_totals(db: DbSession, since: float | None = None, until: float | None = None,
                session_id: str | None = None, by: Sequence[str] = (),
                bucket_s: float | None = None) -> dict[tuple[Any, ...], ToolTotals]:
    """Totals of MCP tool calls, like `request_totals` (`by` from `TOOL_GROUPS`)."""
    sums = _aggregate(db, "tool", since, until, session_id, by, bucket_s)
    return {key: ToolTotals.of(values) for key, values in sums.items()}


def _aggregate(db: DbSession, kind: str, since: float | None, until: float | None,
               session_id: str | None, by: Sequence[str], bucket_s: float | None
               ) -> dict[tuple[Any, ...], list[float]]:
    allowed = REQUEST_GROUPS if kind == "request" else TOOL_GROUPS
    unknown = set(by) - set(allowed)
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)}; use {allowed}")
    if bucket_s is not None and since is None:
        raise ValueError("a bucketed aggregate needs `since`")
    largest = rollup.HOUR
    if bucket_s is not None:  # a rollup bucket must fall inside one chart bucket
        largest = max((s for s in (0, *rollup.SIZES)
                       if s == 0 or (bucket_s % s == 0 and (since or 0) % s == 0)), default=0)
    maxes = 1 if kind == "request" else 2
    out: dict[tuple[Any, ...], list[float]] = {}
    for size, lo, hi in rollup.pieces(since, until, largest):
        query = _piece(kind, size, lo, hi, session_id, by, since, bucket_s)
        width = len(by) + (bucket_s is not None)
        for row in db.execute(query).all():
            key = tuple(row[:width])
            if bucket_s is not None:
                key = (int(key[0] // bucket_s), *key[1:])
            key = tuple(None if (name == "session_id" and v == "") else v
                        for name, v in zip(("b", *by) if bucket_s is not None else by, key,
                                           strict=True))
            values = row[width:]
            found = out.get(key)
            if found is None:
                out[key] = [float(v or 0) for v in values]
                continue
            n = len(values) - maxes
            for i in range(n):
                found[i] += float(values[i] or 0)
            for i in range(n, len(values)):
                found[i] = max(found[i], float(values[i] or 0))
    return out


def _piece(kind: str, size: int, lo: float | None, hi: float | None, session_id: str | None,
           by: Sequence[str], since: float | None, bucket_s: float | None) -> Select[Any]:
    if size == 0:
        table = table_of(Request if kind == "request" else ToolCall)
        time_col = table.c.created_at
        aggregates = _raw_request_sums(table) if kind == "request" else _raw_tool_sums(table)
        session_col = table.c.session_id
    else:
        table = table_of(RequestRollup if kind == "request" else ToolRollup)
        time_col = table.c.bucket
        sums = rollup.REQUEST_SUMS if kind == "request" else rollup.TOOL_SUMS
        maxes = rollup.MAXES if kind == "request" else rollup.TOOL_MAXES
        aggregates = [dialect.total(table.c[n]) for n in sums]
        aggregates += [func.coalesce(func.max(table.c[n]), 0) for n in maxes]
        session_col = table.c.session_id
    groups: list[ColumnElement[Any]] = []
    if bucket_s is not None:
        assert since is not None
        groups.append(dialect.floor_to(time_col - since, bucket_s))
    groups += [table.c[name] for name in by]
    query = select(*groups, *aggregates)
    if size:
        query = query.where(table.c.size == size)
    if lo is not None:
        query = query.where(time_col >= lo)
    if hi is not None:
        query = query.where(time_col < hi)
    if session_id is not None:
        query = query.where(session_col == session_id)
    return query.group_by(*groups) if groups else query


def _raw_request_sums(t: Any) -> list[ColumnElement[Any]]:
    hist = []
    low = None
    for bound in (*LATENCY_BUCKETS_MS, None):
        cond = t.c.latency_ms.is_not(None)
        if low is not None:
            cond = cond & (t.c.latency_ms > low)
        if bound is not None:
            cond = cond & (t.c.latency_ms <= bound)
        hist.append(dialect.count_if(cond))
        low = bound
    return [
        func.count(), dialect.count_if(t.c.status != "ok"),
        dialect.total(dialect.effective_prompt()), dialect.total(dialect.effective_completion()),
        dialect.total(t.c.cached_tokens), dialect.total(t.c.cost_usd), func.count(t.c.cost_usd),
        dialect.total(t.c.saved_mask_tokens), dialect.total(t.c.saved_compress_tokens),
        dialect.total(t.c.memory_tokens), dialect.total(t.c.latency_ms),
        func.count(t.c.latency_ms), dialect.total(t.c.ttft_ms), func.count(t.c.ttft_ms), *hist,
        func.coalesce(func.max(t.c.created_at), 0),
    ]


def _raw_tool_sums(t: Any) -> list[ColumnElement[Any]]:
    return [
        func.count(), dialect.count_if(t.c.is_error.is_(True)), dialect.total(t.c.args_tokens),
        dialect.total(t.c.result_tokens), dialect.total(t.c.latency_ms),
        func.coalesce(func.max(t.c.latency_ms), 0), func.coalesce(func.max(t.c.created_at), 0),
    ]


# ---- shaped for readers ----------------------------------------------------------------------------

def summary(db: DbSession, since: float | None = None, until: float | None = None,
            session_id: str | None = None) -> dict[str, Any]:
    totals = request_totals(db, since, until, session_id).get((), Totals())
    tools = tool_totals(db, since, until, session_id).get((), ToolTotals())
    return {
        **totals.as_dict(),
        "tool_calls": tools.calls, "tool_errors": tools.errors,
        "tool_args_tokens": tools.args_tokens, "tool_result_tokens": tools.result_tokens,
        "tool_avg_latency_ms": tools.avg_latency_ms,
    }


def breakdown(db: DbSession, by: str, since: float | None = None, until: float | None = None,
              session_id: str | None = None) -> list[dict[str, Any]]:
    """Totals of proxied/logged requests grouped by provider, model, source or session."""
    groups = request_totals(db, since, until, session_id, by=(DIMENSIONS[by],))
    rows = [{
        "key": key[0], "requests": t.requests, "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens, "cost_usd": t.cost_usd, "errors": t.errors,
        "avg_latency_ms": t.avg_latency_ms, "saved_tokens": t.saved_tokens,
    } for key, t in groups.items()]
    rows.sort(key=lambda r: (-r["requests"], str(r["key"])))
    return rows


def timeseries(db: DbSession, bucket_s: float, since: float | None = None,
               until: float | None = None, session_id: str | None = None) -> list[dict[str, Any]]:
    """Requests per bucket; `t` is the bucket's start (buckets count from `since`, or from
    UNIX time 0 when `since` is not given)."""
    start = 0.0 if since is None else since
    lower = None if since is None else since
    groups = request_totals(db, lower if lower is not None else start, until, session_id,
                            bucket_s=bucket_s)
    out = []
    for key in sorted(groups, key=lambda k: k[0]):
        t = groups[key]
        out.append({"t": start + float(key[0]) * bucket_s, "requests": t.requests,
                    "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
                    "saved_tokens": t.saved_tokens, "cost_usd": t.cost_usd or 0.0})
    return out


def tool_stats(db: DbSession, since: float | None = None, until: float | None = None,
               session_id: str | None = None) -> list[dict[str, Any]]:
    groups = tool_totals(db, since, until, session_id, by=("tool", "family"))
    rows = [{
        "tool": key[0], "family": key[1], "calls": t.calls, "errors": t.errors,
        "error_rate": round(t.errors / t.calls, 4) if t.calls else 0.0,
        "avg_latency_ms": t.avg_latency_ms, "max_latency_ms": t.max_latency_ms,
        "args_tokens": t.args_tokens, "result_tokens": t.result_tokens,
    } for key, t in groups.items()]
    rows.sort(key=lambda r: (-r["calls"], r["tool"]))
    return rows


def _round(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None
