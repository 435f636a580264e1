"""Read queries over the ledger. Aggregation happens in SQL; every filter is indexed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session as DbSession

from kimi_mcp.ledger import rollup

PROMPT = "COALESCE(prompt_tokens, est_prompt_tokens, 0)"
COMPLETION = "COALESCE(completion_tokens, est_completion_tokens, 0)"
DIMENSIONS = {"provider": "provider", "model": "model", "source": "source", "session": "session_id"}


def where_clause(since: float | None, until: float | None, session_id: str | None) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if since is not None:
        clauses.append("created_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("created_at < :until")
        params["until"] = until
    if session_id is not None:
        clauses.append("session_id = :session")
        params["session"] = session_id
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_RAW_SUMS = f"""COUNT(*), SUM(status != 'ok'), SUM({PROMPT}), SUM({COMPLETION}),
    SUM(COALESCE(cached_tokens, 0)), SUM(cost_usd), COUNT(cost_usd), SUM(saved_mask_tokens),
    SUM(saved_compress_tokens), SUM(memory_tokens), SUM(latency_ms), COUNT(latency_ms),
    SUM(ttft_ms), COUNT(ttft_ms)"""
_ROLLUP_SUMS = ", ".join(f"SUM({name})" for name in rollup.SUMS)


def _aggregate(
    db: DbSession, group: str | None, since: float | None, until: float | None,
    session_id: str | None, bucket_s: float | None = None,
) -> dict[Any, list[float]]:
    """Sums per group key over [since, until): rollups for whole hours, raw rows at the edges."""
    use_rollups = bucket_s is None or bucket_s % rollup.HOUR == 0
    raw_spans, middle = rollup.spans(since, until) if use_rollups else ([(since, until)], None)
    out: dict[Any, list[float]] = {}

    def add(rows: Any) -> None:
        for row in rows:
            key = row[0] if group else None
            if group == "session_id" and key == "":
                key = None
            sums = out.setdefault(key, [0.0] * len(rollup.SUMS))
            for i, value in enumerate(row[1:] if group else row):
                sums[i] += value or 0

    for lo, hi in raw_spans:
        where, params = where_clause(lo, hi, session_id)
        select = _group_expr(group, "created_at", bucket_s)
        sql = f"SELECT {select + ', ' if select else ''}{_RAW_SUMS} FROM request{where}"
        add(db.execute(text(sql + (" GROUP BY 1" if group else "")), params).all())
    if middle is not None:
        clauses, params = [], {}
        if middle[0] is not None:
            clauses.append("bucket >= :lo")
            params["lo"] = middle[0]
        if middle[1] is not None:
            clauses.append("bucket < :hi")
            params["hi"] = middle[1]
        if session_id is not None:
            clauses.append("session_id = :session")
            params["session"] = session_id
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        select = _group_expr(group, "bucket", bucket_s)
        sql = f"SELECT {select + ', ' if select else ''}{_ROLLUP_SUMS} FROM rollup{where}"
        add(db.execute(text(sql + (" GROUP BY 1" if group else "")), params).all())
    return out


def _group_expr(group: str | None, time_column: str, bucket_s: float | None) -> str:
    if group == "bucket":
        size = float(bucket_s or rollup.HOUR)
        return f"CAST({time_column} / {size!r} AS INTEGER) * {size!r}"
    return group or ""


def _shape(sums: list[float]) -> dict[str, Any]:
    (n, errors, prompt, completion, cached, cost, cost_n, mask, compress, memory,
     lat_sum, lat_n, ttft_sum, ttft_n) = sums
    return {
        "requests": int(n),
        "errors": int(errors),
        "prompt_tokens": int(prompt),
        "completion_tokens": int(completion),
        "cached_tokens": int(cached),
        "cost_usd": round(cost, 10) if cost_n else None,
        "saved_mask_tokens": int(mask),
        "saved_compress_tokens": int(compress),
        "memory_tokens": int(memory),
        "avg_latency_ms": _round(lat_sum / lat_n) if lat_n else None,
        "avg_ttft_ms": _round(ttft_sum / ttft_n) if ttft_n else None,
    }


def summary(
    db: DbSession, since: float | None = None, until: float | None = None, session_id: str | None = None
) -> dict[str, Any]:
    sums = _aggregate(db, None, since, until, session_id).get(None, [0.0] * len(rollup.SUMS))
    where, params = where_clause(since, until, session_id)
    tools = db.execute(
        text(
            f"""SELECT COUNT(*), SUM(is_error), SUM(args_tokens), SUM(result_tokens), AVG(latency_ms)
            FROM tool_call{where}"""
        ),
        params,
    ).one()
    return {
        **_shape(sums),
        "tool_calls": tools[0] or 0,
        "tool_errors": int(tools[1] or 0),
        "tool_args_tokens": int(tools[2] or 0),
        "tool_result_tokens": int(tools[3] or 0),
        "tool_avg_latency_ms": _round(tools[4]),
    }


def breakdown(
    db: DbSession,
    by: str,
    since: float | None = None,
    until: float | None = None,
    session_id: str | None = None,
) -> list[dict[str, Any]]:
    """Totals of proxied/logged requests grouped by provider, model, source or session."""
    groups = _aggregate(db, DIMENSIONS[by], since, until, session_id)
    rows = []
    for key, sums in groups.items():
        shaped = _shape(sums)
        rows.append({
            "key": key,
            "requests": shaped["requests"],
            "prompt_tokens": shaped["prompt_tokens"],
            "completion_tokens": shaped["completion_tokens"],
            "cost_usd": shaped["cost_usd"],
            "errors": shaped["errors"],
            "avg_latency_ms": shaped["avg_latency_ms"],
            "saved_tokens": shaped["saved_mask_tokens"] + shaped["saved_compress_tokens"],
        })
    rows.sort(key=lambda r: (-r["requests"], str(r["key"])))
    return rows


def timeseries(
    db: DbSession,
    bucket_s: float,
    since: float | None = None,
    until: float | None = None,
    session_id: str | None = None,
) -> list[dict[str, Any]]:
    groups = _aggregate(db, "bucket", since, until, session_id, bucket_s=bucket_s)
    out = []
    for t in sorted(groups):
        shaped = _shape(groups[t])
        out.append({
            "t": float(t),
            "requests": shaped["requests"],
            "prompt_tokens": shaped["prompt_tokens"],
            "completion_tokens": shaped["completion_tokens"],
            "saved_tokens": shaped["saved_mask_tokens"] + shaped["saved_compress_tokens"],
            "cost_usd": shaped["cost_usd"] or 0.0,
        })
    return out


def tool_stats(
    db: DbSession, since: float | None = None, until: float | None = None, session_id: str | None = None
) -> list[dict[str, Any]]:
    where, params = where_clause(since, until, session_id)
    rows = db.execute(
        text(
            f"""SELECT tool, family, COUNT(*), SUM(is_error), AVG(latency_ms), MAX(latency_ms),
            SUM(args_tokens), SUM(result_tokens) FROM tool_call{where}
            GROUP BY tool, family ORDER BY COUNT(*) DESC"""
        ),
        params,
    ).all()
    return [
        {
            "tool": r[0],
            "family": r[1],
            "calls": r[2],
            "errors": int(r[3] or 0),
            "error_rate": round(int(r[3] or 0) / r[2], 4) if r[2] else 0.0,
            "avg_latency_ms": _round(r[4]),
            "max_latency_ms": _round(r[5]),
            "args_tokens": int(r[6] or 0),
            "result_tokens": int(r[7] or 0),
        }
        for r in rows
    ]


def _round(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None
