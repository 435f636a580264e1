"""`/api/stats/timeseries`: the charts' figures, read from the ledger's rollups.

Buckets of whole minutes read the minute rollups, of whole hours the hourly ones, and the raw
rows are read only for ranges bucketed by seconds (the 15 minute range). The rollups are kept by
every process's writer, so the charts count every process's calls.
"""

from __future__ import annotations

import math
import time
from typing import Any

from kimi_mcp.deps import Deps
from kimi_mcp.errors import RequestError
from kimi_mcp.ledger import queries, reads

# range name -> (span in seconds, bucket in seconds); about 60 to 100 points each
RANGES: dict[str, tuple[float, float]] = {
    "15m": (900, 15), "1h": (3600, 60), "6h": (21_600, 300), "24h": (86_400, 900),
    "7d": (604_800, 7200), "30d": (2_592_000, 28_800),
}
MAX_POINTS = 2000
PERCENTILES = (0.5, 0.9, 0.99)
# percentiles are taken over at most this many of the newest requests per provider in the range
PERCENTILE_WINDOW = 1000
SUMS = ("requests", "prompt_tokens", "completion_tokens", "saved_mask_tokens",
        "saved_compress_tokens", "cost_usd", "errors", "cached_tokens")


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


def timeseries(deps: Deps, since: float, until: float, bucket: float,
               session: str | None = None) -> dict[str, Any]:
    """Points per bucket, totals by source, provider and model, and latency percentiles."""
    if bucket % 60 == 0:
        since = math.ceil(since / bucket) * bucket  # whole buckets; the first seconds fall off
        since = min(since, until - bucket)
    with deps.ledger.read() as db:
        requests = queries.request_totals(db, since, until, session,
                                          by=("source", "provider", "model"), bucket_s=bucket)
        tools = queries.tool_totals(db, since, until, session, bucket_s=bucket)
        groups = [_group(key, t) for key, t in requests.items()]
        by_provider = _fold(groups, "provider")
        latency = reads.latency_percentiles(db, [p["key"] for p in by_provider], since, until,
                                            session, PERCENTILE_WINDOW, PERCENTILES)
    return {
        "since": since, "until": until, "bucket_s": bucket,
        "points": _points(groups, tools, since, until, bucket),
        "by_source": _fold(groups, "source") + _mcp_source(tools),
        "by_provider": by_provider,
        "by_model": _fold(groups, "model"),
        "latency": [{"provider": p.provider, "samples": p.samples, **p.values} for p in latency],
    }


def _group(key: tuple[Any, ...], t: queries.Totals) -> dict[str, Any]:
    return {"b": int(key[0]), "source": key[1], "provider": key[2], "model": key[3],
            "requests": t.requests, "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.completion_tokens, "saved_mask_tokens": t.saved_mask_tokens,
            "saved_compress_tokens": t.saved_compress_tokens, "cost_usd": t.cost_usd or 0.0,
            "errors": t.errors, "cached_tokens": t.cached_tokens}


def _points(groups: list[dict[str, Any]], tools: dict[tuple[Any, ...], queries.ToolTotals],
            since: float, until: float, bucket: float) -> list[dict[str, Any]]:
    count = max(1, int((until - since) // bucket) + (1 if (until - since) % bucket else 0))
    points = [{"t": since + i * bucket, **{k: 0 for k in SUMS}, "cost_usd": 0.0,
               "tool_tokens": 0} for i in range(count)]
    for g in groups:
        if 0 <= g["b"] < count:
            point = points[g["b"]]
            for k in SUMS:
                point[k] += g[k]
    for (b,), t in tools.items():
        if 0 <= b < count:
            points[b]["tool_tokens"] = t.args_tokens + t.result_tokens
    return points


def _fold(groups: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for g in groups:
        name = g[key] or "(none)"
        e = out.setdefault(name, {"key": name, "requests": 0, "prompt_tokens": 0,
                                  "completion_tokens": 0, "cost_usd": 0.0, "saved_tokens": 0})
        e["requests"] += g["requests"]
        e["prompt_tokens"] += g["prompt_tokens"]
        e["completion_tokens"] += g["completion_tokens"]
        e["cost_usd"] += g["cost_usd"]
        e["saved_tokens"] += g["saved_mask_tokens"] + g["saved_compress_tokens"]
    return sorted(out.values(), key=lambda e: -e["requests"])[:20]


def _mcp_source(tools: dict[tuple[Any, ...], queries.ToolTotals]) -> list[dict[str, Any]]:
    """MCP tool calls as one more source, so the chat and tool faces compare side by side."""
    calls = sum(t.calls for t in tools.values())
    if not calls:
        return []
    return [{"key": "mcp", "requests": calls,
             "prompt_tokens": sum(t.result_tokens for t in tools.values()),
             "completion_tokens": sum(t.args_tokens for t in tools.values()), "cost_usd": 0.0,
             "saved_tokens": 0}]
