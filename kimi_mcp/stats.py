"""The figures behind `stats://` and `/api/stats`: ledger queries shaped for readers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from kimi_mcp.catalog import describe
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import queries


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
        latest = db.execute(
            text(
                """SELECT id, created_at, provider, model, status, prompt_tokens, completion_tokens,
                est_prompt_tokens, cost_usd, latency_ms, context_window FROM request
                WHERE session_id = :s ORDER BY created_at DESC LIMIT 20"""
            ),
            {"s": session_id},
        ).mappings().all()
        return {
            "session": row,
            "totals": queries.summary(db, session_id=session_id),
            "by_model": queries.breakdown(db, "model", session_id=session_id),
            "latest_requests": [dict(r) for r in latest],
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
