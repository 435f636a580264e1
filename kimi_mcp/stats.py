"""The figures behind `stats://` and `/api/stats`: ledger queries shaped for readers."""

from __future__ import annotations

from typing import Any

from kimi_mcp.catalog import describe
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import queries, reads

LATEST_COLUMNS = ("id", "created_at", "provider", "model", "status", "prompt_tokens",
                  "completion_tokens", "est_prompt_tokens", "cost_usd", "latency_ms",
                  "context_window")


def summary(deps: Deps, since: float | None = None, until: float | None = None,
            session_id: str | None = None) -> dict[str, Any]:
    with deps.ledger.read() as db:
        return {
            "totals": queries.summary(db, since, until, session_id),
            "by_source": queries.breakdown(db, "source", since, until, session_id),
            "by_provider": queries.breakdown(db, "provider", since, until, session_id),
            "by_model": queries.breakdown(db, "model", since, until, session_id),
        }


def sessions(deps: Deps) -> list[dict[str, Any]]:
    return deps.sessions.list()


def session(deps: Deps, session_id: str) -> dict[str, Any]:
    row = deps.sessions.get(session_id)
    with deps.ledger.read() as db:
        latest = reads.latest_requests(db, session_id, 20)
        return {
            "session": row,
            "totals": queries.summary(db, session_id=session_id),
            "by_model": queries.breakdown(db, "model", session_id=session_id),
            "latest_requests": [{name: getattr(r, name) for name in LATEST_COLUMNS}
                                for r in latest],
        }


def tools(deps: Deps) -> list[dict[str, Any]]:
    with deps.ledger.read() as db:
        return queries.tool_stats(db)


def providers(deps: Deps) -> list[dict[str, Any]]:
    with deps.ledger.read() as db:
        traffic = {row["key"]: row for row in queries.breakdown(db, "provider")}
    out = []
    for provider in deps.catalog.providers.values():
        data = describe(provider)
        data["traffic"] = traffic.get(provider.name)
        out.append(data)
    return out
