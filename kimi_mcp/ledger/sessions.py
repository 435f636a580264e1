"""Sessions: a named stream of requests and tool calls. One "auto" session per model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, update
from sqlmodel import col, select

from kimi_mcp.errors import RequestError, SessionNotFound
from kimi_mcp.ledger import rollup
from kimi_mcp.ledger.models import Alert, Request, Thought, ToolCall, now, row_dict
from kimi_mcp.ledger.models import Session as SessionRow
from kimi_mcp.ledger.store import Ledger, Tx

CONTEXT_SWITCHES = ("sanitize", "memory_tags", "compression")


class Sessions:
    """Session operations over a ledger; writes go through its single writer."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._auto: dict[str, str] = {}

    async def create(
        self, name: str, provider: str | None = None, model: str | None = None, activate: bool = True
    ) -> dict[str, Any]:
        return await self.ledger.write(lambda tx: _create(tx, name, provider, model, activate))

    def create_sync(self, name: str, provider: str | None = None, model: str | None = None,
                    activate: bool = True) -> dict[str, Any]:
        return self.ledger.write_sync(lambda tx: _create(tx, name, provider, model, activate))

    def list(self) -> list[dict[str, Any]]:
        """Every session, newest first, with its totals (from the rollups: every process's rows)."""
        from kimi_mcp.ledger import queries

        with self.ledger.read() as db:
            rows = db.exec(select(SessionRow).order_by(SessionRow.updated_at.desc())).all()  # type: ignore[attr-defined]
            totals = queries.request_totals(db, by=("session_id",))
            tools = queries.tool_totals(db, by=("session_id",))
        out = []
        for row in rows:
            data = row_dict(row)
            t = totals.get((row.id,), queries.Totals())
            data["totals"] = {
                "requests": t.requests,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "cost_usd": t.cost_usd,
                "saved_tokens": t.saved_tokens,
                "last_request_at": t.last_request_at,
                "tool_calls": tools.get((row.id,), queries.ToolTotals()).calls,
            }
            out.append(data)
        return out

    def get(self, session_id: str) -> dict[str, Any]:
        with self.ledger.read() as db:
            row = db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(f"no session with id {session_id!r}")
            return row_dict(row)

    def active(self) -> dict[str, Any] | None:
        with self.ledger.read() as db:
            row = db.exec(select(SessionRow).where(SessionRow.active == True)).first()  # noqa: E712
            return row_dict(row) if row else None

    async def update(self, session_id: str, **changes: Any) -> dict[str, Any]:
        """Rename, activate, or switch context stages: name=, active=True, context={...}."""
        unknown = set(changes.get("context", {})) - set(CONTEXT_SWITCHES)
        if unknown:
            raise RequestError(f"unknown context switch {sorted(unknown)}; use {CONTEXT_SWITCHES}")

        def fn(tx: Tx) -> dict[str, Any]:
            row = tx.db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(f"no session with id {session_id!r}")
            if changes.get("active"):
                _deactivate_all(tx)
            for key, value in changes.items():
                if key == "context":
                    row.context = {**row.context, **value}
                elif value is not None:
                    setattr(row, key, value)
            row.updated_at = now()
            tx.db.add(row)
            tx.db.flush()
            data = row_dict(row)
            tx.emit("session", {"action": "updated", "session": data})
            return data

        return await self.ledger.write(fn)

    async def delete(self, session_id: str) -> None:
        def fn(tx: Tx) -> None:
            row = tx.db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(f"no session with id {session_id!r}")
            for table in (Request, ToolCall, Alert, Thought):
                tx.db.execute(delete(table).where(table.session_id == session_id))  # type: ignore[arg-type]
            rollup.delete_session(tx.db, session_id)
            tx.db.delete(row)
            tx.emit("session", {"action": "deleted", "session": {"id": session_id}})

        await self.ledger.write(fn)
        self._auto = {k: v for k, v in self._auto.items() if v != session_id}
        await self.ledger.vacuum()

    async def auto_for(self, model: str) -> str:
        """The id of the "auto" session of a model, created on first use."""
        cached = self._auto.get(model)
        if cached is not None:
            return cached

        def fn(tx: Tx) -> str:
            found = tx.db.exec(
                select(SessionRow).where(SessionRow.auto == True, SessionRow.model == model)  # noqa: E712
            ).first()
            if found is not None:
                return found.id
            row = SessionRow(name=f"auto · {model}", model=model, auto=True)
            tx.db.add(row)
            tx.db.flush()
            tx.emit("session", {"action": "created", "session": row_dict(row)})
            return row.id

        session_id = await self.ledger.write(fn)
        self._auto[model] = session_id
        return session_id

    def resolve(self, ref: str) -> str | None:
        """A session id from an id or a name (None when neither matches)."""
        with self.ledger.read() as db:
            row = db.get(SessionRow, ref) or db.exec(
                select(SessionRow).where(SessionRow.name == ref)
            ).first()
            return row.id if row else None


def _deactivate_all(tx: Tx) -> None:
    tx.db.execute(update(SessionRow).where(col(SessionRow.active).is_(True)).values(active=False))


def _create(tx: Tx, name: str, provider: str | None, model: str | None, activate: bool) -> dict[str, Any]:
    if activate:
        _deactivate_all(tx)
    row = SessionRow(name=name, provider=provider, model=model, active=activate)
    tx.db.add(row)
    tx.db.flush()
    data = row_dict(row)
    tx.emit("session", {"action": "created", "session": data})
    return data
