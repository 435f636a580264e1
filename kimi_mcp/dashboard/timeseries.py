"""`/api/stats/timeseries`: the charts' figures, bucketed and grouped in SQL."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from sqlmodel import Session as DbSession

from kimi_mcp.dashboard.rollup import LATENCY_KEEP, SUMS, Rollup
from kimi_mcp.deps import Deps
from kimi_mcp.errors import RequestError
from kimi_mcp.ledger.queries import COMPLETION, PROMPT

# range name -> (span in seconds, bucket in seconds); about 60 to 100 points each
RANGES: dict[str, tuple[float, float]] = {
    "15m": (900, 15), "1h": (3600, 60), "6h": (21_600, 300), "24h": (86_400, 900),
    "7d": (604_800, 7200), "30d": (2_592_000, 28_800),
}
MAX_POINTS = 2000
PERCENTILES = (0.5, 0.9, 0.99)
# percentiles are taken over at most this many of the newest requests per provider in the range
PERCENTILE_WINDOW = LATENCY_KEEP


def window(range_: str | None, since: float | None, until: float | None,
           bucket: float | None) -> tuple[float, float, float]:
    """(since, until, bucket) from a named range or explicit bounds."""
    now = time.time()
    name = range_ or "24h"
    if name not in RANGES:
        raise RequestError(f"'range' must be one of {sorted(RANGES)}, got {name!r}")
    span, default_bucket = RANGES[name]
    until = now if until is None else until
    since = until - span if since is None else since
    if since >= until:
        raise RequestError("'since' must be before 'until'")
    explicit = range_ is None and since != until - span
    bucket = bucket or (max(1.0, (until - since) / 60) if explicit else default_bucket)
    if bucket <= 0 or (until - since) / bucket > MAX_POINTS:
        raise RequestError(f"'bucket' must be positive and give at most {MAX_POINTS} points")
    return since, until, bucket


def _where(db: DbSession, since: float, until: float, session: str | None
           ) -> tuple[str, dict[str, Any]]:
    """The range filter; `+created_at` (no index) when the range holds most of the table,
    where one sequential scan beats a lookup per row through the time index."""
    params: dict[str, Any] = {"since": since, "until": until}
    in_range = db.execute(text("SELECT COUNT(*) FROM request WHERE created_at >= :since "
                               "AND created_at < :until"), params).scalar() or 0
    total = db.execute(text("SELECT MAX(id) FROM request")).scalar() or 0
    col = "+created_at" if in_range * 4 > total else "created_at"
    where = f" WHERE {col} >= :since AND {col} < :until"
    if session:
        where += " AND session_id = :session"
        params["session"] = session
    return where, params


def timeseries(deps: Deps, since: float, until: float, bucket: float,
               session: str | None = None, rollup: Rollup | None = None) -> dict[str, Any]:
    """Minute-aligned ranges over all sessions read the rollup; the rest reads the ledger."""
    use_rollup = rollup is not None and session is None and bucket % 60 == 0
    size = 900 if bucket % 900 == 0 else 60
    if use_rollup and since % size:
        since = since - since % size + size  # whole slots; the range's first seconds fall off
    with deps.ledger.read() as db:
        params: dict[str, Any] = {"since": since, "until": until, "bucket": bucket, "size": size}
        if use_rollup:
            assert rollup is not None
            groups, tools = _rollup_groups(rollup, params)
        else:
            where, params = _where(db, since, until, session)
            params["bucket"] = bucket
            groups = _groups(db, where, params)
            tools = _tool_buckets(db, where.replace("+created_at", "created_at"), params)
        by_provider = _fold(groups, lambda g: g["provider"])
        return {
            "since": since, "until": until, "bucket_s": bucket,
            "points": _points(groups, tools, since, until, bucket),
            "by_source": _fold(groups, lambda g: g["source"]) + _mcp_source(tools),
            "by_provider": by_provider,
            "by_model": _fold(groups, lambda g: g["model"]),
            "latency": latency_percentiles(db, [p["key"] for p in by_provider], params,
                                           rollup if use_rollup else None),
        }


_SUMS = SUMS


def _groups(db: DbSession, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One scan: totals per (bucket, source, provider, model); everything else folds these."""
    rows = db.execute(text(
        f"""SELECT CAST((created_at - :since) / :bucket AS INTEGER) AS b, source, provider,
        model, COUNT(*), SUM({PROMPT}), SUM({COMPLETION}), SUM(saved_mask_tokens),
        SUM(saved_compress_tokens), SUM(COALESCE(cost_usd, 0)), SUM(status != 'ok'),
        SUM(COALESCE(cached_tokens, 0)) FROM request{where} GROUP BY 1, 2, 3, 4"""), params).all()
    out = []
    for r in rows:
        g = {"b": int(r[0]), "source": r[1], "provider": r[2], "model": r[3]}
        g.update({k: (float(v or 0) if k == "cost_usd" else int(v or 0))
                  for k, v in zip(_SUMS, r[4:], strict=True)})
        out.append(g)
    return out


def _rollup_groups(rollup: Rollup, params: dict[str, Any]
                   ) -> tuple[list[dict[str, Any]], dict[int, tuple[int, int, int]]]:
    window = "WHERE size = :size AND slot >= :since / :size AND slot * :size < :until"
    bucket = "CAST((slot * :size - :since) / :bucket AS INTEGER)"
    rows = rollup.query(
        f"""SELECT {bucket}, source, provider, model, {", ".join(f"SUM({c})" for c in SUMS)}
        FROM roll {window} GROUP BY 1, 2, 3, 4""", params)
    groups = []
    for r in rows:
        g = {"b": int(r[0]), "source": r[1], "provider": r[2], "model": r[3]}
        g.update({k: (float(v or 0) if k == "cost_usd" else int(v or 0))
                  for k, v in zip(SUMS, r[4:], strict=True)})
        groups.append(g)
    minutes = "WHERE minute >= :since / 60 AND minute * 60 < :until"
    tools = rollup.query(
        f"""SELECT CAST((minute * 60 - :since) / :bucket AS INTEGER), SUM(calls),
        SUM(args_tokens), SUM(result_tokens) FROM tools {minutes} GROUP BY 1""", params)
    return groups, {int(r[0]): (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in tools}


def _tool_buckets(db: DbSession, where: str, params: dict[str, Any]) -> dict[int, tuple[int, int, int]]:
    rows = db.execute(text(
        f"""SELECT CAST((created_at - :since) / :bucket AS INTEGER) AS b, COUNT(*),
        SUM(args_tokens), SUM(result_tokens) FROM tool_call{where} GROUP BY 1"""), params).all()
    return {int(r[0]): (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}


def _points(groups: list[dict[str, Any]], tools: dict[int, tuple[int, int, int]], since: float,
            until: float, bucket: float) -> list[dict[str, Any]]:
    count = max(1, int((until - since) // bucket) + (1 if (until - since) % bucket else 0))
    points = [{"t": since + i * bucket, **{k: 0 for k in _SUMS}, "cost_usd": 0.0,
               "tool_tokens": 0} for i in range(count)]
    for g in groups:
        if 0 <= g["b"] < count:
            point = points[g["b"]]
            for k in _SUMS:
                point[k] += g[k]
    for b, (_, args, result) in tools.items():
        if 0 <= b < count:
            points[b]["tool_tokens"] = args + result
    return points


def _fold(groups: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for g in groups:
        name = key(g) or "(none)"
        e = out.setdefault(name, {"key": name, "requests": 0, "prompt_tokens": 0,
                                  "completion_tokens": 0, "cost_usd": 0.0, "saved_tokens": 0})
        e["requests"] += g["requests"]
        e["prompt_tokens"] += g["prompt_tokens"]
        e["completion_tokens"] += g["completion_tokens"]
        e["cost_usd"] += g["cost_usd"]
        e["saved_tokens"] += g["saved_mask_tokens"] + g["saved_compress_tokens"]
    return sorted(out.values(), key=lambda e: -e["requests"])[:20]


def _mcp_source(tools: dict[int, tuple[int, int, int]]) -> list[dict[str, Any]]:
    """MCP tool calls as one more source, so the chat and tool faces compare side by side."""
    calls = sum(t[0] for t in tools.values())
    if not calls:
        return []
    return [{"key": "mcp", "requests": calls, "prompt_tokens": sum(t[2] for t in tools.values()),
             "completion_tokens": sum(t[1] for t in tools.values()), "cost_usd": 0.0,
             "saved_tokens": 0}]


def latency_percentiles(db: DbSession, providers: list[str], params: dict[str, Any],
                        rollup: Rollup | None = None) -> list[dict[str, Any]]:
    """p50/p90/p99 of latency and TTFT per provider over its newest requests in the range,
    ranked in SQL (nearest rank): in the rollup's sample of the newest requests when the range
    runs to now, else in the ledger through the (provider, created_at) index."""
    live = rollup is not None and params["until"] >= time.time() - 1
    session = "AND session_id = :session" if "session" in params else ""
    source = ("SELECT l, t FROM lat WHERE provider = :provider" if live else
              "SELECT latency_ms AS l, ttft_ms AS t FROM request WHERE provider = :provider")
    sql = f"""WITH recent AS (
              {source} AND created_at >= :since AND created_at < :until {session}
              ORDER BY created_at DESC LIMIT {PERCENTILE_WINDOW}),
            rl AS (SELECT 'latency' AS k, l AS v, ROW_NUMBER() OVER (ORDER BY l) AS rn,
                     COUNT(*) OVER () AS n FROM recent WHERE l IS NOT NULL),
            rt AS (SELECT 'ttft' AS k, t AS v, ROW_NUMBER() OVER (ORDER BY t) AS rn,
                     COUNT(*) OVER () AS n FROM recent WHERE t IS NOT NULL)
            SELECT k, n, rn, v FROM rl WHERE {_rank_filter()}
            UNION ALL SELECT k, n, rn, v FROM rt WHERE {_rank_filter()}"""
    out = []
    for provider in providers:
        entry: dict[str, Any] = {"provider": provider}
        args = {**params, "provider": provider}
        found = (rollup.query(sql, args) if live and rollup is not None
                 else db.execute(text(sql), args).all())
        for kind, n, rn, v in found:
            if kind == "latency":
                entry["samples"] = int(n)
            for p in PERCENTILES:
                if rn == _rank(p, n):
                    entry[f"{kind}_p{round(p * 100)}"] = round(float(v), 1)
        if "samples" in entry:
            out.append(entry)
    return sorted(out, key=lambda e: e["provider"])


def _rank(p: float, n: int) -> int:
    """Nearest-rank percentile, the same formula the SQL filter uses."""
    return (n * round(p * 100) + 99) // 100


def _rank_filter() -> str:
    # nearest rank: ceil(p * n), written with integer arithmetic that SQLite and PostgreSQL share
    parts = [f"rn = (n * {round(p * 100)} + 99) / 100" for p in PERCENTILES]
    return "(" + " OR ".join(parts) + ")"
