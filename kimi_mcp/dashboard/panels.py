"""The providers and MCP panels: catalog and settings joined with ledger figures.

Live proxy state (circuit breakers, rate-limit headroom, moving averages) comes from
`proxystate.snapshot`; without a proxy the panel shows what the ledger knows.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from kimi_mcp.catalog import describe
from kimi_mcp.dashboard import proxystate
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import queries, reads
from kimi_mcp.runtime import Runtime

log = logging.getLogger(__name__)
RECENT_S = 3600.0  # the window of the moving averages and the error rate
RECENT_N = 50  # and at most this many of the newest requests per provider


def providers(rt: Runtime) -> list[dict[str, Any]]:
    deps = rt.deps
    recent = _recent_by_provider(deps)
    live = proxystate.snapshot(rt.providers)
    out = []
    for provider in deps.catalog.providers.values():
        data = describe(provider)
        stats = recent.get(provider.name)
        state = live.get(provider.name, {})
        data["recent"] = stats
        data["breaker"] = state.get("breaker") or ("closed" if live else "unknown")
        data["rate_limit"] = state.get("rate_limit") or state.get("limiter")
        data["health"] = _health(provider.ready, stats, data["breaker"])
        data["live"] = state
        out.append(data)
    return out


def _health(ready: bool, stats: dict[str, Any] | None, breaker: str) -> str:
    if not ready:  # it needs a key and has none
        return "no key"
    if breaker == "open":
        return "down"
    if not stats or not stats["requests"]:
        return "idle"
    if stats["error_rate"] >= 0.5:
        return "failing"
    return "degraded" if stats["error_rate"] >= 0.1 or breaker == "half-open" else "ok"


def _recent_by_provider(deps: Deps) -> dict[str, dict[str, Any]]:
    """Moving averages over each provider's newest requests in the last hour (one indexed
    query per provider, so the cost does not grow with the ledger)."""
    out = {}
    with deps.ledger.read() as db:
        for name in deps.catalog.providers:
            r = reads.recent_provider_stats(db, name, time.time() - RECENT_S, RECENT_N)
            if r is None:
                continue
            out[name] = {
                "requests": r.requests, "errors": r.errors,
                "error_rate": round(r.errors / r.requests, 4),
                "avg_latency_ms": None if r.avg_latency_ms is None else round(r.avg_latency_ms, 1),
                "avg_ttft_ms": None if r.avg_ttft_ms is None else round(r.avg_ttft_ms, 1),
                "tokens_per_s": round(r.completion_tokens / (r.latency_sum_ms / 1000), 1)
                if r.completion_tokens and r.latency_sum_ms else None,
            }
    return out


async def mcp_panel(rt: Runtime) -> dict[str, Any]:
    import anyio

    deps = rt.deps
    tools = await _mounted_tools(rt)
    stats = await anyio.to_thread.run_sync(_tool_stats, deps)
    by_name = {s["tool"]: s for s in stats}
    for name, family in tools.items():
        by_name.setdefault(name, {"tool": name, "family": family, "calls": 0, "errors": 0,
                                  "error_rate": 0.0, "avg_latency_ms": None,
                                  "max_latency_ms": None, "args_tokens": 0, "result_tokens": 0})
    families: dict[str, dict[str, Any]] = {
        f: {"name": f, "tools": [], "calls": 0, "errors": 0} for f in deps.settings.mcp.families}
    for entry in sorted(by_name.values(), key=lambda s: s["tool"]):
        fam = families.setdefault(entry["family"], {"name": entry["family"], "tools": [],
                                                     "calls": 0, "errors": 0})
        fam["tools"].append(entry)
        fam["calls"] += entry["calls"]
        fam["errors"] += entry["errors"]
    return {
        "families": list(families.values()),
        "read_only": deps.settings.mcp.read_only,
        "memory": await anyio.to_thread.run_sync(_memory_size, deps),
        "tasks": await anyio.to_thread.run_sync(task_progress, deps.roots[0] if deps.roots else None),
    }


def _tool_stats(deps: Deps) -> list[dict[str, Any]]:
    """Calls per tool from the ledger's tool rollups (every process's calls, all time)."""
    with deps.ledger.read() as db:
        return queries.tool_stats(db)


async def _mounted_tools(rt: Runtime) -> dict[str, str]:
    """Tool name -> family of the aggregating server the app mounts at /mcp."""
    server = rt.mcp
    if server is None:
        return {}
    try:
        listed = await server.list_tools()
    except Exception:
        log.exception("listing the MCP tools failed")
        return {}
    families = rt.deps.settings.mcp.families
    out = {}
    for tool in listed:
        name = getattr(tool, "name", str(tool))
        out[name] = next((f for f in families if name.startswith(f + "_")), "other")
    return out


def _memory_size(deps: Deps) -> dict[str, Any] | None:
    if deps.memory is None:
        return None
    try:
        return {"project": deps.project, "memories": deps.memory.count(deps.project),
                "all_projects": deps.memory.count(None)}
    except Exception:
        log.exception("counting memories failed")
        return None


def task_progress(root: Path | None) -> dict[str, Any] | None:
    """Counts by status of the task board in `.taskmaster/tasks/tasks.json` (task-master's file)."""
    if root is None:
        return None
    path = root / ".taskmaster" / "tasks" / "tasks.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"error": f"cannot read {path}: {exc}"}
    tags = {"master": data} if isinstance(data, dict) and "tasks" in data else data
    out: dict[str, Any] = {"tags": {}}
    for tag, board in (tags or {}).items():
        tasks = board.get("tasks", []) if isinstance(board, dict) else []
        counts: dict[str, int] = {}
        subtasks = 0
        for task in tasks:
            if not isinstance(task, dict):
                continue
            status = str(task.get("status", "pending"))
            counts[status] = counts.get(status, 0) + 1
            subtasks += len(task.get("subtasks") or [])
        total = sum(counts.values())
        out["tags"][tag] = {"total": total, "by_status": counts, "subtasks": subtasks,
                            "done_ratio": round(counts.get("done", 0) / total, 4) if total else 0.0}
    return out
