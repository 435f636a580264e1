"""What claude-task-master requires of a tag, and the id types it writes.

Read from task-master 0.43 (`packages/tm-core/src/modules/tasks/entities/task.entity.ts`,
`.../storage/adapters/file-storage/format-handler.ts`, `scripts/modules/task-manager/`):

1. `list`, `next` and `show` build a `TaskEntity` from every top-level task of the tag and
   give up on the whole tag when one has no id, a blank title, a blank description, a status
   outside pending, in-progress, done, deferred, cancelled, blocked, review, or a priority
   outside low, medium, high, critical. So every top-level task kimi-mcp writes has all of
   them: a task added with only a title gets the title as its description.
2. Its legacy commands (add-task, expand, parse-prd) write task ids and a task's dependencies
   as integers; its newer core (set-status, update) rewrites them as strings ("3"). A tag
   keeps the style it has: new ids and dependencies follow the tag's existing tasks (integers
   for a new tag).
3. Subtask ids are integers either way. A subtask's dependency on a sibling is the sibling's
   bare number; any other subtask is named "3.2". `add-subtask` records `parentTaskId`.
4. Subtasks are not validated (their description may be empty), and fields kimi-mcp does not
   know are kept, so nothing task-master wrote is rewritten.
"""

from __future__ import annotations

from .board import TagData, Task

STATUSES = ("pending", "in-progress", "done", "deferred", "cancelled", "blocked", "review")
DEFAULT_PRIORITY = "medium"


def string_ids(view: TagData) -> bool:
    """True when the tag's tasks carry string ids (task-master's core wrote the tag last)."""
    return any(isinstance(t.get("id"), str) for t in view.tasks)


def task_id(view: TagData, number: int) -> int | str:
    """A new top-level task id in the tag's style."""
    return str(number) if string_ids(view) else number


def dependency(view: TagData, key: str, target: str) -> int | str:
    """How a dependency of `key` on `target` (both keys: "3", "3.2") is written."""
    if "." in target:
        if "." in key and key.split(".")[0] == target.split(".")[0]:
            return int(target.split(".")[1])
        return target
    return target if string_ids(view) else int(target)


def description(title: str, text: str | None) -> str:
    """task-master refuses a blank description; the title stands in for a missing one."""
    return text if text is not None and text.strip() else title


def conform(view: TagData) -> list[str]:
    """Give every top-level task what task-master requires, where it can be derived, and
    nothing else (no field is added for tidiness); returns what was filled in. Tasks written
    by kimi-mcp before 0.1 could lack a description."""
    notes = []
    for task in view.tasks:
        notes += _fill(task)
    return notes


def _fill(task: Task) -> list[str]:
    filled = []
    title = task.get("title")
    if isinstance(title, str) and title.strip():
        text = task.get("description")
        if not isinstance(text, str) or not text.strip():
            task["description"] = title
            filled.append(f"description of {task.get('id')} set to its title")
    if task.get("status") is None:
        task["status"] = "pending"
        filled.append(f"status of {task.get('id')} set to pending")
    if task.get("priority") is None:
        task["priority"] = DEFAULT_PRIORITY
        filled.append(f"priority of {task.get('id')} set to {DEFAULT_PRIORITY}")
    return filled

