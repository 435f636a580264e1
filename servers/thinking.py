"""The `thinking` family: step-by-step reasoning, recorded per session in the ledger.

The semantics are the reference sequential-thinking server's, in snake_case: a thought number
above the total raises the total, and a branch counts only when both `branch_from_thought`
and `branch_id` are set. Unlike the reference, the history is not lost with the process: each
thought is a `Thought` row, written by the ledger's single writer, readable as the resource
`thinking://sessions/{id}` (and `thinking://sessions` lists the project's recent sessions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastmcp import FastMCP
from fastmcp.exceptions import ResourceError, ToolError
from pydantic import BaseModel, Field

from kimi_mcp.errors import LedgerError, ToolInputError
from kimi_mcp.ledger import thoughts
from kimi_mcp.ledger.models import Thought, new_id

if TYPE_CHECKING:
    from kimi_mcp.deps import Deps
    from kimi_mcp.ledger import Ledger, Tx

# Mount with `root.mount(sub, tool_names=MOUNT_TOOL_NAMES)` and no namespace: a namespace
# would also rewrite the resource to thinking://thinking/sessions/{id}.
MOUNT_TOOL_NAMES = {"sequential": "thinking_sequential"}
MAX_THOUGHT_CHARS = 50_000
MAX_HISTORY = 1000
SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ThoughtError(ToolInputError):
    """A thought the log refuses; the message says how to fix the call."""


@dataclass(frozen=True)
class Step:
    thought: str
    thought_number: int
    total_thoughts: int
    next_thought_needed: bool
    is_revision: bool = False
    revises_thought: int | None = None
    branch_from_thought: int | None = None
    branch_id: str | None = None
    needs_more_thoughts: bool = False

    def check(self) -> None:
        n = self.thought_number
        if not self.thought.strip():
            raise ThoughtError("thought is empty: write the content of this step")
        if len(self.thought) > MAX_THOUGHT_CHARS:
            raise ThoughtError(
                f"thought is {len(self.thought):,} characters; keep one step under {MAX_THOUGHT_CHARS:,}"
            )
        if n < 1:
            raise ThoughtError(
                f"thought_number must be 1 or more (got {n}); number steps 1, 2, 3, …"
            )
        if self.total_thoughts < 1:
            raise ThoughtError(
                f"total_thoughts must be 1 or more (got {self.total_thoughts}); give your current estimate"
            )
        if self.revises_thought is not None and not self.is_revision:
            raise ThoughtError(
                f"revises_thought={self.revises_thought} needs is_revision=true; set it to revise "
                f"thought {self.revises_thought}, or leave revises_thought out"
            )
        if self.is_revision and self.revises_thought is None:
            raise ThoughtError(
                "is_revision=true needs revises_thought: the number of the thought you revise"
            )
        for name, earlier in (
            ("revises_thought", self.revises_thought),
            ("branch_from_thought", self.branch_from_thought),
        ):
            if earlier is not None and not 1 <= earlier < n:
                span = f"1–{n - 1}" if n > 1 else "none: thought 1 has no earlier thought"
                raise ThoughtError(f"{name} must name an earlier thought ({span}), got {earlier}")
        if self.branch_id is not None and not 1 <= len(self.branch_id.strip()) <= 64:
            raise ThoughtError("branch_id must be a short non-empty label, e.g. 'alt-cache'")


@dataclass(frozen=True)
class Recorded:
    session_id: str
    thought_number: int
    total_thoughts: int
    next_thought_needed: bool
    branches: list[str]
    thought_history_length: int


class ThoughtLog:
    """Thought sessions of one project, stored through the ledger's writer."""

    def __init__(self, ledger: Ledger, project: str) -> None:
        self.ledger = ledger
        self.project = project

    async def add(self, step: Step, session_id: str | None = None) -> Recorded:
        """Record a step. Without a session id, thought 1 starts a new session and any other
        thought continues the project's most recent one."""
        step.check()
        if session_id is not None and not SESSION_ID.match(session_id):
            raise ThoughtError("session_id may hold 1–64 letters, digits and _ . : - only")
        return await self.ledger.write(lambda tx: self._record(tx, step, session_id))

    def _record(self, tx: Tx, step: Step, session_id: str | None) -> Recorded:
        sid = session_id or self._current(tx, step)
        total = max(step.total_thoughts, step.thought_number)
        tx.db.add(
            Thought(
                session_id=sid,
                project=self.project,
                thought=step.thought,
                thought_number=step.thought_number,
                total_thoughts=total,
                next_thought_needed=step.next_thought_needed,
                is_revision=step.is_revision,
                revises_thought=step.revises_thought,
                branch_from_thought=step.branch_from_thought,
                branch_id=step.branch_id,
                needs_more_thoughts=step.needs_more_thoughts,
            )
        )
        tx.db.flush()
        count = thoughts.count(tx.db, self.project, sid)
        branches = thoughts.branch_ids(tx.db, self.project, sid)
        return Recorded(
            sid,
            step.thought_number,
            total,
            step.next_thought_needed,
            branches,
            count,
        )

    def _current(self, tx: Tx, step: Step) -> str:
        if step.thought_number == 1:
            return new_id()
        latest = thoughts.latest_session(tx.db, self.project)
        return latest or new_id()

    def history(self, session_id: str) -> dict[str, Any] | None:
        with self.ledger.read() as db:
            rows = thoughts.newest_first(db, self.project, session_id, MAX_HISTORY + 1)
        if not rows:
            return None
        kept = list(reversed(rows[:MAX_HISTORY]))
        branches: dict[str, list[int]] = {}
        for row in kept:
            if row.branch_id and row.branch_from_thought is not None:
                branches.setdefault(row.branch_id, []).append(row.thought_number)
        fields = (
            "thought_number",
            "total_thoughts",
            "thought",
            "next_thought_needed",
            "is_revision",
            "revises_thought",
            "branch_from_thought",
            "branch_id",
            "needs_more_thoughts",
            "created_at",
        )
        return {
            "session_id": session_id,
            "project": self.project,
            "truncated": len(rows) > MAX_HISTORY,
            "branches": branches,
            "thoughts": [{f: getattr(row, f) for f in fields} for row in kept],
        }

    def sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.ledger.read() as db:
            rows = thoughts.sessions(db, self.project, limit)
        return [
            {"session_id": r.session_id, "thoughts": r.thoughts, "started_at": r.started_at,
             "updated_at": r.updated_at}
            for r in rows
        ]


# ---- the MCP face ---------------------------------------------------------------------------


class ThoughtResult(BaseModel):
    session_id: str = Field(description="Pass it back to continue this chain explicitly")
    thought_number: int
    total_thoughts: int = Field(description="Raised to thought_number when that was higher")
    next_thought_needed: bool
    branches: list[str] = Field(description="Branch ids recorded in this session, oldest first")
    thought_history_length: int = Field(description="Thoughts recorded in this session so far")


def completers(deps: Deps) -> dict[tuple[str, str], Callable[[str], list[str]]]:
    """Completions of `thinking://sessions/{id}`: the project's recent session ids by prefix."""

    def session_ids(typed: str) -> list[str]:
        found = ThoughtLog(deps.ledger, deps.project).sessions(limit=200)
        return [s["session_id"] for s in found if s["session_id"].startswith(typed.strip())]

    return {("thinking://sessions/{id}", "id"): session_ids}


def build_server(deps: Deps) -> FastMCP:
    mcp: FastMCP = FastMCP("thinking")

    def log() -> ThoughtLog:
        if deps.ledger is None:
            raise ToolError("The ledger is not available, so thoughts cannot be recorded")
        return ThoughtLog(deps.ledger, deps.project)

    @mcp.tool(
        annotations={
            "readOnlyHint": False,
            "destructiveHint": False,
            "idempotentHint": False,
            "openWorldHint": False,
        }
    )
    async def sequential(
        thought: Annotated[str, Field(description="This step of your reasoning")],
        next_thought_needed: Annotated[
            bool, Field(description="True if another step should follow")
        ],
        thought_number: Annotated[
            int, Field(description="Number of this step, from 1", json_schema_extra={"minimum": 1})
        ],
        total_thoughts: Annotated[
            int,
            Field(
                description="Current estimate of steps needed (may change)",
                json_schema_extra={"minimum": 1},
            ),
        ],
        is_revision: Annotated[
            bool, Field(description="True if this step revises an earlier one")
        ] = False,
        revises_thought: Annotated[
            int | None, Field(description="With is_revision: the number of the step revised")
        ] = None,
        branch_from_thought: Annotated[
            int | None, Field(description="The step this branch starts from (set with branch_id)")
        ] = None,
        branch_id: Annotated[
            str | None, Field(description="A label for the branch (set with branch_from_thought)")
        ] = None,
        needs_more_thoughts: Annotated[
            bool, Field(description="True if you reached the end but need more steps")
        ] = False,
        session_id: Annotated[
            str | None,
            Field(
                description="The chain to add to; omitted: thought 1 starts a new chain, later thoughts continue the latest"
            ),
        ] = None,
    ) -> ThoughtResult:
        """Think through a problem one numbered step at a time, revising or branching as you go.

        Use it for multi-step analysis, planning, or when the approach is unclear. Start at
        thought_number=1 with an estimate in total_thoughts (going past it raises it); set
        next_thought_needed=false only when you have a satisfying answer. Revise with
        is_revision=true plus revises_thought; explore an alternative with branch_from_thought
        plus branch_id (both, or the branch is not recorded). The chain is saved per session.
        """
        step = Step(
            thought,
            thought_number,
            total_thoughts,
            next_thought_needed,
            is_revision,
            revises_thought,
            branch_from_thought,
            branch_id,
            needs_more_thoughts,
        )
        try:
            done = await log().add(step, session_id)
        except ThoughtError as exc:
            raise ToolError(str(exc)) from None
        except LedgerError as exc:
            raise ToolError(f"The thought could not be recorded: {exc}") from None
        return ThoughtResult(**done.__dict__)

    @mcp.resource("thinking://sessions", name="thinking_sessions", mime_type="application/json")
    async def sessions() -> str:
        """The project's recent thinking sessions, newest first."""
        found = await anyio.to_thread.run_sync(log().sessions)
        return json.dumps({"project": deps.project, "sessions": found})

    @mcp.resource("thinking://sessions/{id}", name="thinking_session", mime_type="application/json")
    async def session(id: str) -> str:
        """Every thought of one session in order, with its branches."""
        found = await anyio.to_thread.run_sync(log().history, id)
        if found is None:
            raise ResourceError(f"No thinking session {id!r} in project {deps.project!r}")
        return json.dumps(found)

    return mcp
