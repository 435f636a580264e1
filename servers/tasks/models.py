"""What the task tools return (pydantic, so clients get an output schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .board import Task

Status = Literal["pending", "in-progress", "done", "review", "deferred", "cancelled", "blocked"]
Priority = Literal["low", "medium", "high", "critical"]
TaskId = int | str


class TaskRow(BaseModel):
    """One line of the board: enough to choose, not the whole task."""

    id: TaskId
    title: str
    status: str
    priority: str | None = None
    dependencies: list[TaskId] = Field(default_factory=list)
    subtask_progress: str | None = Field(default=None, description="done/total subtasks")
    subtasks: list[TaskRow] | None = None


class TaskDetail(BaseModel):
    id: TaskId
    parent_id: int | None = None
    title: str
    description: str = ""
    status: str
    priority: str | None = None
    dependencies: list[TaskId] = Field(default_factory=list)
    details: str = ""
    test_strategy: str = ""
    subtasks: list[TaskRow] = Field(default_factory=list)


class ListResult(BaseModel):
    tag: str
    tasks: list[TaskRow]
    total: int = Field(description="top-level tasks in the tag (before filtering)")
    counts: dict[str, int] = Field(description="top-level tasks per status")
    progress_percent: float = Field(description="share of top-level tasks done")
    subtasks_total: int
    subtasks_done: int
    message: str = ""


class NextResult(BaseModel):
    tag: str
    task: TaskDetail | None
    is_subtask: bool = False
    message: str


class TaskResult(BaseModel):
    tag: str
    task: TaskDetail
    message: str


class UpdateResult(BaseModel):
    tag: str
    id: TaskId
    changed: list[str]
    removed: bool = False
    task: TaskDetail | None = None


class PlanResult(BaseModel):
    tag: str
    created: list[TaskRow]
    total_tasks: int
    method: Literal["deterministic", "llm"]
    warnings: list[str] = Field(default_factory=list)


class ExpandResult(BaseModel):
    tag: str
    id: int
    subtasks: list[TaskRow]
    method: Literal["deterministic", "llm"]
    warnings: list[str] = Field(default_factory=list)


class ComplexityRow(BaseModel):
    id: int
    title: str
    score: int = Field(ge=1, le=10)
    recommended_subtasks: int
    reason: str


class IssueRow(BaseModel):
    kind: Literal["duplicate", "missing", "self", "cycle"]
    task_id: str
    dependency_id: str | None = None
    message: str
    cycle: list[str] = Field(default_factory=list)


class AnalyzeResult(BaseModel):
    tag: str
    tasks: list[ComplexityRow]
    dependency_issues: list[IssueRow]
    fixes: list[str] = Field(default_factory=list, description="what fix_dependencies changed")
    method: Literal["deterministic", "llm"]
    warnings: list[str] = Field(default_factory=list)


def _progress(task: Task) -> str | None:
    subs = task.get("subtasks") or []
    if not subs:
        return None
    done = sum(1 for s in subs if s.get("status") in ("done", "completed"))
    return f"{done}/{len(subs)}"


def _public(value: Any) -> Any:
    """A task id as the tools show it: an int, even where task-master's core wrote "3"."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _deps(item: Task, *, top: bool = True) -> list[Any]:
    deps = [d for d in item.get("dependencies") or [] if isinstance(d, int | str)]
    return [_public(d) for d in deps] if top else deps


def _ident(item: Task, parent: Task | None) -> TaskId:
    return f"{parent.get('id')}.{item.get('id')}" if parent else _public(item.get("id", 0))


def row(item: Task, *, parent: Task | None = None, with_subtasks: bool = False) -> TaskRow:
    ident = _ident(item, parent)
    subs = None
    if with_subtasks and parent is None:
        subs = [row(s, parent=item) for s in item.get("subtasks") or []]
    return TaskRow(
        id=ident,
        title=str(item.get("title", "")),
        status=str(item.get("status") or "pending"),
        priority=item.get("priority") or (parent.get("priority") if parent else None),
        dependencies=_deps(item, top=parent is None),
        subtask_progress=None if parent else _progress(item),
        subtasks=subs,
    )


def detail(item: Task, *, parent: Task | None = None) -> TaskDetail:
    return TaskDetail(
        id=_ident(item, parent),
        parent_id=int(parent["id"]) if parent else None,
        title=str(item.get("title", "")),
        description=str(item.get("description") or ""),
        status=str(item.get("status") or "pending"),
        priority=item.get("priority") or (parent.get("priority") if parent else None),
        dependencies=_deps(item, top=parent is None),
        details=str(item.get("details") or ""),
        test_strategy=str(item.get("testStrategy") or ""),
        subtasks=[row(s, parent=item) for s in item.get("subtasks") or []] if not parent else [],
    )
