"""Read queries over the ledger. Aggregation happens in SQL; every filter is indexed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session as DbSession

PROMPT = "COALESCE(prompt_tokens, est_prompt_tokens, 0)"
COMPLETION = "COALESCE(completion_tokens, est_completion_tokens, 0)"
DIMENSIONS = {"provider": "provider", "model": "model", "source": "source", "session": "session_id"}


def _where(since: float | None, until: float | None, session_id: str | None) -> tuple[str, dict[str, Any]]:
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


def summary(
    db: DbSession, since: float | None = None, until: float | None = None, session_id: str | None = None
) -> dict[str, Any]:
    where, params = _where(since, until, session_id)
    req = db.execute(
        text(
            f"""SELECT COUNT(*), SUM(status != 'ok'), SUM({PROMPT}), SUM({COMPLETION}),
            SUM(COALESCE(cached_tokens, 0)), SUM(cost_usd), SUM(saved_mask_tokens),
            SUM(saved_compress_tokens), AVG(latency_ms), AVG(ttft_ms), SUM(memory_tokens)
            FROM request{where}"""
        ),
        params,
    ).one()
    tools = db.execute(
        text(
            f"""SELECT COUNT(*), SUM(is_error), SUM(args_tokens), SUM(result_tokens), AVG(latency_ms)
            FROM tool_call{where}"""
        ),
        params,
    ).one()
    return {
        "requests": req[0] or 0,
        "errors": int(req[1] or 0),
        "prompt_tokens": int(req[2] or 0),
        "completion_tokens": int(req[3] or 0),
        "cached_tokens": int(req[4] or 0),
        "cost_usd": float(req[5]) if req[5] is not None else None,
        "saved_mask_tokens": int(req[6] or 0),
        "saved_compress_tokens": int(req[7] or 0),
        "avg_latency_ms": _round(req[8]),
        "avg_ttft_ms": _round(req[9]),
        "memory_tokens": int(req[10] or 0),
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
    column = DIMENSIONS[by]
    where, params = _where(since, until, session_id)
    rows = db.execute(
        text(
            f"""SELECT {column} AS key, COUNT(*), SUM({PROMPT}), SUM({COMPLETION}), SUM(cost_usd),
            SUM(status != 'ok'), AVG(latency_ms), SUM(saved_mask_tokens + saved_compress_tokens)
            FROM request{where} GROUP BY {column} ORDER BY COUNT(*) DESC"""
        ),
        params,
    ).all()
    return [
        {
            "key": r[0],
            "requests": r[1],
            "prompt_tokens": int(r[2] or 0),
            "completion_tokens": int(r[3] or 0),
            "cost_usd": float(r[4]) if r[4] is not None else None,
            "errors": int(r[5] or 0),
            "avg_latency_ms": _round(r[6]),
            "saved_tokens": int(r[7] or 0),
        }
        for r in rows
    ]


def timeseries(
    db: DbSession,
    bucket_s: float,
    since: float | None = None,
    until: float | None = None,
    session_id: str | None = None,
) -> list[dict[str, Any]]:
    where, params = _where(since, until, session_id)
    params["bucket"] = bucket_s
    rows = db.execute(
        text(
            f"""SELECT CAST(created_at / :bucket AS INTEGER) * :bucket AS t, COUNT(*),
            SUM({PROMPT}), SUM({COMPLETION}), SUM(saved_mask_tokens + saved_compress_tokens),
            SUM(cost_usd) FROM request{where} GROUP BY 1 ORDER BY 1"""
        ),
        params,
    ).all()
    return [
        {
            "t": float(r[0]),
            "requests": r[1],
            "prompt_tokens": int(r[2] or 0),
            "completion_tokens": int(r[3] or 0),
            "saved_tokens": int(r[4] or 0),
            "cost_usd": float(r[5] or 0),
        }
        for r in rows
    ]


def tool_stats(
    db: DbSession, since: float | None = None, until: float | None = None, session_id: str | None = None
) -> list[dict[str, Any]]:
    where, params = _where(since, until, session_id)
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
