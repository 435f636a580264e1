"""What the task tools share: the board per workspace root, settings, error mapping."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
from fastmcp.exceptions import ToolError
from pydantic import Field

from kimi_mcp.deps import Deps
from kimi_mcp.errors import WorkspaceError
from kimi_mcp.llm import Completions, LlmError
from kimi_mcp.workspace import Workspace

from .board import Document, TagData, TaskBoard, TaskBoardError
from .conform import conform

log = logging.getLogger(__name__)
T = TypeVar("T")

READ = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}
ADD = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": False}
EDIT = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": False}
REPAIR = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True, "openWorldHint": False}

TagArg = Annotated[str | None, Field(description="board tag; default: task-master's current tag or 'master'")]
MAX_PRD_BYTES = 4 << 20
DEFAULT_PRD = (Path(".taskmaster") / "docs" / "prd.txt", Path(".taskmaster") / "docs" / "prd.md")


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    try:
        yield
    except TaskBoardError as exc:
        raise ToolError(str(exc)) from None


class Family:
    """State shared by the tools: the boards (one per workspace root) and the settings."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._boards: dict[Path, TaskBoard] = {}
        self.workspace = Workspace(lambda: self.deps.roots)

    @property
    def root(self) -> Path:
        if not self.deps.roots:
            raise ToolError("No workspace root is configured; set [mcp] workspace.")
        return self.deps.roots[0]

    @property
    def board(self) -> TaskBoard:
        root = self.root
        if root not in self._boards:
            self._boards[root] = TaskBoard(root, self.workspace)
        return self._boards[root]

    @property
    def model(self) -> str:
        return self.deps.settings.tasks.llm_model.strip()

    @property
    def completions(self) -> Completions:
        """The model service, or `LlmError` (the tools fall back) when this build has none."""
        if self.deps.completions is None:
            raise LlmError("no model service in this build (the proxy is not part of it)")
        return self.deps.completions

    def tag(self, tag: str | None) -> str:
        return tag or self.board.default_tag()

    def read(self, tag: str | None) -> TagData | None:
        """The tag for reading; None when the board file does not exist yet."""
        with refusals():
            doc = self.board.snapshot()
            if not doc.data:
                return None
            return doc.tag(self.tag(tag))

    def write(self, tag: str | None, edit: Callable[[TagData, Document], T], *, create: bool = False) -> T:
        if self.deps.settings.mcp.read_only:
            raise ToolError("The server is read-only ([mcp] read_only = true); the board cannot change.")
        name = self.tag(tag)
        with refusals(), self.board.transaction() as doc:
            view = doc.tag(name, create=create)
            result = edit(view, doc)
            conform(view)  # whatever the edit did, task-master can still read the tag
            return result

    def prd_text(self, prd_text: str | None, prd_path: str | None) -> str:
        if prd_text and prd_text.strip():
            return prd_text
        candidates = [prd_path] if prd_path else [str(self.root / p) for p in DEFAULT_PRD]
        for candidate in candidates:
            path = candidate if Path(candidate).is_absolute() else str(self.root / candidate)
            try:
                if self.workspace.lstat_or_none(path) is None:
                    continue
                data = self.workspace.read_capped(path, MAX_PRD_BYTES)
            except WorkspaceError as exc:
                raise ToolError(f"{exc} (tasks_parse_prd, parameter `prd_path`)") from None
            return data.decode("utf-8", errors="replace")
        if prd_path:
            raise ToolError(
                f"PRD file not found: {prd_path} (relative paths start at {self.root}); "
                "give prd_path to an existing file, or prd_text (tasks_parse_prd)"
            )
        raise ToolError("Give prd_text, or prd_path to a markdown file (default .taskmaster/docs/prd.txt).")


async def in_thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)
