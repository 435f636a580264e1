"""The `tasks` tool family: a task board in claude-task-master's `tasks.json` format."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import Field

from kimi_mcp.deps import Deps

from . import conform, graph, ops
from .board import STATUSES, Document, TagData, key_of
from .family import ADD, EDIT, READ, Family, TagArg, refusals
from .models import (
    ListResult,
    NextResult,
    Priority,
    Status,
    TaskId,
    TaskResult,
    TaskRow,
    UpdateResult,
    detail,
    row,
)
from .tools_plan import register_plan_tools


def build_server(deps: Deps) -> FastMCP:
    """The tasks family; planning asks `deps.completions` when `[tasks] llm_model` is set."""
    mcp = FastMCP("tasks")
    family = Family(deps)
    _read_tools(mcp, family)
    _edit_tools(mcp, family)
    register_plan_tools(mcp, family)
    return mcp


def _counts(view: TagData) -> dict[str, Any]:
    counts = {s: 0 for s in STATUSES}
    subs_total = subs_done = 0
    for task in view.tasks:
        status = str(task.get("status") or "pending")
        counts[status] = counts.get(status, 0) + 1
        for sub in task.get("subtasks") or []:
            subs_total += 1
            subs_done += sub.get("status") in graph.DONE
    total = len(view.tasks)
    done = counts.get("done", 0) + counts.get("completed", 0)
    return {"total": total, "counts": counts, "subtasks_total": subs_total, "subtasks_done": subs_done,
            "progress_percent": round(100 * done / total, 1) if total else 0.0}


def _listed(value: str | list[Any] | None) -> list[Any]:
    """A list argument that may also come comma-separated, as task-master's CLI takes it
    (`--status pending,in-progress`, `--id 1,2`)."""
    if value is None:
        return []
    if isinstance(value, str) and value.lstrip().startswith("["):  # a list sent as JSON text
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    items = value.split(",") if isinstance(value, str) else value
    return [i.strip() if isinstance(i, str) else i for i in items
            if not (isinstance(i, str) and not i.strip())]


def _select(view: TagData, status: str | list[str] | None, ids: list[TaskId] | str | None,
            with_subtasks: bool) -> list[TaskRow]:
    wanted = set(_listed(status)) or None
    ids = _listed(ids)
    unknown = wanted - set(STATUSES) - {"completed"} if wanted else set()
    if unknown:
        raise ToolError(f"Unknown status {sorted(unknown)}; use one of {', '.join(STATUSES)}.")
    if ids:
        with refusals():
            items = [(key_of(i), view.get(i)) for i in ids]
        rows = [row(item, parent=view.parent_of(k), with_subtasks=with_subtasks) for k, item in items]
    else:
        rows = view.remember(("rows", with_subtasks),
                             lambda: [row(t, with_subtasks=with_subtasks) for t in view.tasks])
    if wanted:
        rows = [r for r in rows if r.status in wanted]
    return rows


def _read_tools(mcp: FastMCP, family: Family) -> None:
    @mcp.tool(name="list", annotations=READ)
    def list_tasks(
        status: Annotated[str | list[str] | None, Field(description="only these statuses: a list, or comma-separated, e.g. 'pending,in-progress'")] = None,
        ids: Annotated[list[TaskId] | str | None, Field(description="only these ids: a list of 3 or \"3.2\", or comma-separated, e.g. '1,2,3.2'")] = None,
        with_subtasks: Annotated[bool, Field(description="include each task's subtasks")] = False,
        limit: Annotated[int, Field(ge=0, description="at most this many rows (0: no limit); counts always cover the whole tag")] = 200,
        tag: TagArg = None,
    ) -> ListResult:
        """List the board's tasks with status, priority, dependencies and progress counts.

        Rows are short (no details); filter big boards by status or ids. Use tasks_next to
        pick work and tasks_update to change it.
        """
        view = family.read(tag)
        name = family.tag(tag)
        if view is None:
            return ListResult(tag=name, tasks=[], total=0, counts={}, progress_percent=0.0,
                              subtasks_total=0, subtasks_done=0,
                              message="No tasks yet: call tasks_parse_prd or tasks_add.")
        rows = _select(view, status, ids, with_subtasks)
        note = ""
        if limit and len(rows) > limit:
            note = (f"Showing {limit} of {len(rows)} matching tasks; narrow with status "
                    "(e.g. 'pending,in-progress') or ids, or raise limit.")
            rows = rows[:limit]
        return ListResult(tag=name, tasks=rows, message=note,
                          **view.remember("counts", lambda: _counts(view)))

    @mcp.tool(name="next", annotations=READ)
    def next_task(tag: TagArg = None) -> NextResult:
        """Show the next task to work on, by task-master's rule.

        First an eligible subtask of an in-progress task, else the pending or in-progress task
        whose dependencies are all done, by priority, then fewest dependencies, then lowest id.
        """
        view = family.read(tag)
        name = family.tag(tag)
        if view is None:
            return NextResult(tag=name, task=None, message="No tasks yet: call tasks_parse_prd or tasks_add.")
        found = graph.next_task(view)
        if found is None:
            return NextResult(tag=name, task=None, message=_why_nothing(view))
        key, item = found
        parent = view.parent_of(key)
        what = f"subtask {key} of in-progress task {parent['id']}" if parent else f"task {key}"
        return NextResult(tag=name, task=detail(item, parent=parent), is_subtask=parent is not None,
                          message=f"Work on {what}; set its status with tasks_update when you start.")


def _why_nothing(view: TagData) -> str:
    open_tasks = [t for t in view.tasks if t.get("status", "pending") in graph.WORKABLE]
    if not open_tasks:
        return "Nothing left to do: no task is pending or in progress."
    done = graph.completed(view)
    waiting = []
    for task in open_tasks[:3]:
        blockers = [str(d) for d in task.get("dependencies") or [] if str(d) not in done]
        waiting.append(f"{task['id']} waits on {', '.join(blockers)}")
    return ("No task is ready: every open task waits on an unfinished dependency ("
            + "; ".join(waiting) + "). Run tasks_analyze to check for cycles.")


def _edit_tools(mcp: FastMCP, family: Family) -> None:
    _add_tool(mcp, family)
    _update_tool(mcp, family)


def _add_tool(mcp: FastMCP, family: Family) -> None:
    @mcp.tool(name="add", annotations=ADD)
    def add_task(
        title: Annotated[str, Field(min_length=1, description="short imperative title")],
        description: Annotated[str, Field(description="one or two sentences")] = "",
        details: Annotated[str, Field(description="implementation notes; lists become subtasks on expand")] = "",
        priority: Annotated[Priority, Field(description="low, medium, high or critical")] = "medium",
        dependencies: Annotated[list[TaskId], Field(description="ids this waits for: 3, or \"3.2\"; for a subtask a bare number is a sibling")] = [],  # noqa: B006
        parent_id: Annotated[int | None, Field(description="add as a subtask of this task")] = None,
        test_strategy: Annotated[str, Field(description="how to verify it is done")] = "",
        tag: TagArg = None,
    ) -> TaskResult:
        """Add a task (or a subtask with parent_id) to the board as pending.

        Dependencies must exist and must not form a cycle; the error says which. Without a
        description the title is used (task-master requires one).
        """
        if not title.strip():
            raise ToolError("title is blank: give the task a short imperative title (tasks_add).")
        fields = {"title": title.strip(), "description": description, "details": details,
                  "priority": priority, "testStrategy": test_strategy}

        def edit(view: TagData, _doc: Document) -> TaskResult:
            key = ops.add_task(view, fields, dependencies, parent_id)
            item = view.index[key]
            return TaskResult(tag=view.name, task=detail(item, parent=view.parent_of(key)),
                              message=f"Added {'subtask' if '.' in key else 'task'} {key}.")

        return family.write(tag, edit, create=parent_id is None)


def _update_tool(mcp: FastMCP, family: Family) -> None:
    @mcp.tool(name="update", annotations=EDIT)
    def update_task(
        id: Annotated[TaskId, Field(description="task id 3 or subtask id \"3.2\"")],
        title: Annotated[str | None, Field(description="new title")] = None,
        description: Annotated[str | None, Field(description="new description")] = None,
        details: Annotated[str | None, Field(description="new details (replaces the old)")] = None,
        priority: Annotated[Priority | None, Field(description="new priority")] = None,
        status: Annotated[Status | None, Field(description="new status; done also marks its subtasks done")] = None,
        add_dependencies: Annotated[list[TaskId], Field(description="ids to start waiting for")] = [],  # noqa: B006
        remove_dependencies: Annotated[list[TaskId], Field(description="ids to stop waiting for")] = [],  # noqa: B006
        test_strategy: Annotated[str | None, Field(description="new test strategy")] = None,
        remove: Annotated[bool, Field(description="delete the task (and its subtasks) and references to it")] = False,
        tag: TagArg = None,
    ) -> UpdateResult:
        """Change a task's fields, status or dependencies, or remove it.

        Setting status done cascades to its subtasks. A dependency that is missing, the task
        itself, or closes a cycle is refused and nothing is changed. A blank description
        becomes the title (task-master requires one).
        """
        if title is not None and not title.strip():
            raise ToolError("title cannot be blank: give a new title, or leave title out (tasks_update).")
        fields = {"title": title, "description": description, "details": details,
                  "priority": priority, "testStrategy": test_strategy}

        def edit(view: TagData, _doc: Document) -> UpdateResult:
            key = key_of(id)
            current = view.get(key)
            if description is not None and not description.strip():
                fields["description"] = conform.description(str(title or current.get("title")), None)
            if remove:
                return UpdateResult(tag=view.name, id=id, changed=ops.remove(view, key), removed=True)
            changed = []
            item = view.index[key]
            for name, value in fields.items():
                if value is not None and item.get(name) != value:
                    item[name] = value
                    changed.append(f"{name} of {key} updated")
            changed += ops.remove_dependencies(view, key, remove_dependencies)
            changed += ops.add_dependencies(view, key, add_dependencies)
            if status is not None:
                changed += ops.set_status(view, key, status)
            return UpdateResult(tag=view.name, id=id, changed=changed or ["nothing to change"],
                                task=detail(item, parent=view.parent_of(key)))

        return family.write(tag, edit)
