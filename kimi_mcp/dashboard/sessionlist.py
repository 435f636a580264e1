"""Sessions with their totals for the page, in two scans however many sessions there are."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import select

from kimi_mcp.dashboard.rollup import Rollup
from kimi_mcp.deps import Deps
from kimi_mcp.ledger.models import Session as SessionRow
from kimi_mcp.ledger.models import row_dict
from kimi_mcp.ledger.queries import COMPLETION, PROMPT

# grouping by an expression keeps SQLite from walking the (session_id, created_at) index with
# one table lookup per row: a sequential scan with a small sort is several times faster
_TOTALS = f"""SELECT COALESCE(session_id, '') AS sid, COUNT(*), SUM({PROMPT}), SUM({COMPLETION}),
    SUM(cost_usd), SUM(saved_mask_tokens + saved_compress_tokens), MAX(created_at)
    FROM request GROUP BY COALESCE(session_id, '')"""
_TOOLS = "SELECT COALESCE(session_id, '') AS sid, COUNT(*) FROM tool_call GROUP BY COALESCE(session_id, '')"


def sessions(deps: Deps, rollup: Rollup | None = None) -> list[dict[str, Any]]:
    """The same shape as `Sessions.list()`: each session with `totals` (from the rollup when
    the dashboard keeps one, else from two scans of the ledger)."""
    with deps.ledger.read() as db:
        rows = db.exec(select(SessionRow).order_by(SessionRow.updated_at.desc())).all()  # type: ignore[attr-defined]
        if rollup is None:
            totals = {r[0]: r[1:] for r in db.execute(text(_TOTALS)).all()}
            tools = {r[0]: r[1] for r in db.execute(text(_TOOLS)).all()}
    if rollup is not None:
        found = rollup.query("SELECT * FROM sess")
        totals = {r[0]: r[1:7] for r in found}
        tools = {r[0]: r[7] for r in found}
    out = []
    for row in rows:
        data = row_dict(row)
        t = totals.get(row.id, (0, 0, 0, None, 0, None))
        data["totals"] = {
            "requests": int(t[0]), "prompt_tokens": int(t[1] or 0),
            "completion_tokens": int(t[2] or 0),
            "cost_usd": float(t[3]) if t[3] is not None else None,
            "saved_tokens": int(t[4] or 0), "last_request_at": t[5],
            "tool_calls": int(tools.get(row.id, 0)),
        }
        out.append(data)
    return out
