"""`/api/stats/timeseries`: the charts' figures, bucketed and grouped in SQL."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from sqlmodel import Session as DbSession

from kimi_mcp.deps import Deps
from kimi_mcp.httputil import BadRequest
from kimi_mcp.ledger.queries import COMPLETION, PROMPT

# range name -> (span in seconds, bucket in seconds); about 60 to 100 points each
RANGES: dict[str, tuple[float, float]] = {
    "15m": (900, 15), "1h": (3600, 60), "6h": (21_600, 300), "24h": (86_400, 900),
    "7d": (604_800, 7200), "30d": (2_592_000, 28_800),
}
MAX_POINTS = 2000
PERCENTILES = (0.5, 0.9, 0.99)
# percentiles are taken over at most this many of the newest requests per provider in the range
PERCENTILE_WINDOW = 5000


def window(range_: str | None, since: float | None, until: float | None,
           bucket: float | None) -> tuple[float, float, float]:
    """(since, until, bucket) from a named range or explicit bounds."""
    now = time.time()
    name = range_ or "24h"
    if name not in RANGES:
        raise BadRequest(f"'range' must be one of {sorted(RANGES)}, got {name!r}")
    span, default_bucket = RANGES[name]
    until = now if until is None else until
    since = until - span if since is None else since
    if since >= until:
        raise BadRequest("'since' must be before 'until'")
    explicit = range_ is None and since != until - span
    bucket = bucket or (max(1.0, (until - since) / 60) if explicit else default_bucket)
    if bucket <= 0 or (until - since) / bucket > MAX_POINTS:
        raise BadRequest(f"'bucket' must be positive and give at most {MAX_POINTS} points")
    return since, until, bucket


def _where(since: float, until: float, session: str | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"since": since, "until": until}
    where = " WHERE created_at >= :since AND created_at < :until"
    if session:
        where += " AND session_id = :session"
        params["session"] = session
    return where, params


def timeseries(deps: Deps, since: float, until: float, bucket: float,
               session: str | None = None) -> dict[str, Any]:
    where, params = _where(since, until, session)
    with deps.ledger.read() as db:
        points = _points(db, where, {**params, "bucket": bucket}, since, until, bucket)
        return {
            "since": since, "until": until, "bucket_s": bucket, "points": points,
            "by_source": _by(db, "source", where, params) + _mcp_source(db, where, params),
            "by_provider": _by(db, "provider", where, params),
            "by_model": _by(db, "model", where, params),
            "latency": latency_percentiles(db, where, params),
        }


def _points(db: DbSession, where: str, params: dict[str, Any], since: float, until: float,
            bucket: float) -> list[dict[str, Any]]:
    rows = db.execute(text(
        f"""SELECT CAST((created_at - :since) / :bucket AS INTEGER) AS b, COUNT(*),
        SUM({PROMPT}), SUM({COMPLETION}), SUM(saved_mask_tokens), SUM(saved_compress_tokens),
        SUM(COALESCE(cost_usd, 0)), SUM(status != 'ok') FROM request{where} GROUP BY 1"""),
        params).all()
    tools = dict(db.execute(text(
        f"""SELECT CAST((created_at - :since) / :bucket AS INTEGER) AS b,
        SUM(args_tokens + result_tokens) FROM tool_call{where} GROUP BY 1"""), params).all())
    by_bucket = {int(r[0]): r for r in rows}
    count = max(1, int((until - since) // bucket) + (1 if (until - since) % bucket else 0))
    out = []
    for i in range(count):
        r = by_bucket.get(i)
        out.append({
            "t": since + i * bucket,
            "requests": int(r[1]) if r else 0,
            "prompt_tokens": int(r[2] or 0) if r else 0,
            "completion_tokens": int(r[3] or 0) if r else 0,
            "saved_mask_tokens": int(r[4] or 0) if r else 0,
            "saved_compress_tokens": int(r[5] or 0) if r else 0,
            "cost_usd": float(r[6] or 0) if r else 0.0,
            "errors": int(r[7] or 0) if r else 0,
            "tool_tokens": int(tools.get(i) or 0),
        })
    return out


def _by(db: DbSession, column: str, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = db.execute(text(
        f"""SELECT {column}, COUNT(*), SUM({PROMPT}), SUM({COMPLETION}), SUM(cost_usd),
        SUM(saved_mask_tokens + saved_compress_tokens) FROM request{where}
        GROUP BY {column} ORDER BY COUNT(*) DESC LIMIT 20"""), params).all()
    return [{"key": r[0] or "(none)", "requests": int(r[1]), "prompt_tokens": int(r[2] or 0),
             "completion_tokens": int(r[3] or 0), "cost_usd": float(r[4] or 0),
             "saved_tokens": int(r[5] or 0)} for r in rows]


def _mcp_source(db: DbSession, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """MCP tool calls as one more source, so the chat and tool faces compare side by side."""
    r = db.execute(text(f"SELECT COUNT(*), SUM(args_tokens), SUM(result_tokens) FROM tool_call{where}"),
                   params).one()
    if not r[0]:
        return []
    return [{"key": "mcp", "requests": int(r[0]), "prompt_tokens": int(r[2] or 0),
             "completion_tokens": int(r[1] or 0), "cost_usd": 0.0, "saved_tokens": 0}]


def latency_percentiles(db: DbSession, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """p50/p90/p99 of latency and TTFT per provider, ranked by window functions in SQL."""
    out = []
    for column in ("latency_ms", "ttft_ms"):
        rows = db.execute(text(
            f"""WITH recent AS (
                  SELECT provider, {column} AS v, ROW_NUMBER() OVER (
                    PARTITION BY provider ORDER BY created_at DESC) AS age
                  FROM request{where} AND {column} IS NOT NULL),
                ranked AS (
                  SELECT provider, v, ROW_NUMBER() OVER (PARTITION BY provider ORDER BY v) AS rn,
                    COUNT(*) OVER (PARTITION BY provider) AS n
                  FROM recent WHERE age <= {PERCENTILE_WINDOW})
                SELECT provider, n, rn, v FROM ranked WHERE {_rank_filter()}"""), params).all()
        merged: dict[str, dict[str, Any]] = {}
        for provider, n, rn, v in rows:
            entry = merged.setdefault(provider, {"provider": provider, "samples": int(n)})
            for p in PERCENTILES:
                if rn == _rank(p, n):
                    entry[f"{column[:-3]}_p{round(p * 100)}"] = round(float(v), 1)
        if not out:
            out = list(merged.values())
        else:
            for entry in out:
                entry.update({k: v for k, v in merged.get(entry["provider"], {}).items()
                              if k not in ("provider", "samples")})
    return sorted(out, key=lambda e: e["provider"])


def _rank(p: float, n: int) -> int:
    """Nearest-rank percentile, the same formula the SQL filter uses."""
    return (n * round(p * 100) + 99) // 100


def _rank_filter() -> str:
    # nearest rank: ceil(p * n), written with integer arithmetic that SQLite and PostgreSQL share
    parts = [f"rn = (n * {round(p * 100)} + 99) / 100" for p in PERCENTILES]
    return "(" + " OR ".join(parts) + ")"
