"""Named queries over the `thought` table (the thinking family's sessions).

Each takes an open database session — a write transaction's `tx.db` or a `Ledger.read()`
session — so the family's rules (numbering, branches, which session continues) stay in
`servers/thinking.py` and the SQL stays here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session as DbSession
from sqlmodel import col, select

from kimi_mcp.ledger.models import Thought


@dataclass(frozen=True)
class ThoughtSession:
    """One session of a project: its id, how many thoughts, first and last write (Unix seconds)."""

    session_id: str
    thoughts: int
    started_at: float
    updated_at: float


def count(db: DbSession, project: str, session_id: str) -> int:
    """Thoughts recorded in one session."""
    stmt = select(func.count()).select_from(Thought).where(
        col(Thought.project) == project, col(Thought.session_id) == session_id
    )
    return int(db.exec(stmt).one())


def branch_ids(db: DbSession, project: str, session_id: str) -> list[str]:
    """The session's branch ids (thoughts with both `branch_id` and `branch_from_thought`),
    oldest branch first."""
    stmt = (
        select(Thought.branch_id)
        .where(
            col(Thought.project) == project,
            col(Thought.session_id) == session_id,
            col(Thought.branch_id).is_not(None),
            col(Thought.branch_from_thought).is_not(None),
        )
        .group_by(Thought.branch_id)
        .order_by(func.min(Thought.id))
    )
    return [b for b in db.exec(stmt).all() if b]


def latest_session(db: DbSession, project: str) -> str | None:
    """The session the project wrote to last, or None."""
    stmt = (
        select(Thought.session_id)
        .where(Thought.project == project)
        .order_by(col(Thought.id).desc())
        .limit(1)
    )
    return db.exec(stmt).first()


def newest_first(db: DbSession, project: str, session_id: str, limit: int) -> list[Thought]:
    """At most `limit` thoughts of one session, newest first."""
    stmt = (
        select(Thought)
        .where(Thought.project == project, Thought.session_id == session_id)
        .order_by(col(Thought.id).desc())
        .limit(limit)
    )
    return list(db.exec(stmt).all())


def sessions(db: DbSession, project: str, limit: int) -> list[ThoughtSession]:
    """The project's sessions, most recently written first."""
    stmt = (
        select(
            Thought.session_id,
            func.count(),
            func.min(Thought.created_at),
            func.max(Thought.created_at),
        )
        .where(Thought.project == project)
        .group_by(Thought.session_id)
        .order_by(func.max(Thought.id).desc())
        .limit(limit)
    )
    return [ThoughtSession(sid, int(n), first, last) for sid, n, first, last in db.exec(stmt).all()]
