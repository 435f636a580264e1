"""Edits to one tag's tasks: plain functions over `TagData`, no MCP, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import conform
from .board import STATUSES, TagData, Task, TaskBoardError, key_of
from .graph import check_new_dependency, dep_key, dependents_of
from .planner import Planned


def _normalise_target(key: str, target: int | str) -> str:
    """A subtask's bare-number dependency names a sibling, as in task-master."""
    text = str(target).strip()
    if "." in key and "." not in text:
        return f"{key.split('.')[0]}.{text}"
    return key_of(text)


def add_dependencies(view: TagData, key: str, targets: Sequence[int | str]) -> list[str]:
    item = view.index[key]
    notes = []
    for target in targets:
        dep = _normalise_target(key, target)
        value = check_new_dependency(view, key, dep)
        if value is None:
            notes.append(f"{key} already depends on {dep}")
            continue
        item.setdefault("dependencies", []).append(conform.dependency(view, key, dep))
        notes.append(f"added dependency {key} → {dep}")
    return notes


def remove_dependencies(view: TagData, key: str, targets: Sequence[int | str]) -> list[str]:
    item = view.index[key]
    parent = key.split(".")[0] if "." in key else None
    notes = []
    for target in targets:
        dep = _normalise_target(key, target)
        before = list(item.get("dependencies") or [])
        item["dependencies"] = [d for d in before if dep_key(d, parent) != dep]
        found = len(item["dependencies"]) != len(before)
        notes.append(f"removed dependency {key} → {dep}" if found else f"{key} did not depend on {dep}")
    return notes


def add_task(view: TagData, fields: dict[str, Any], dependencies: Sequence[int | str],
             parent_id: int | None) -> str:
    if parent_id is not None:
        parent = view.get(parent_id)
        if "." in key_of(parent_id):
            raise TaskBoardError(f"{parent_id} is a subtask; subtasks cannot have subtasks.")
        subs = parent.setdefault("subtasks", [])
        new_id = max((int(s.get("id", 0)) for s in subs), default=0) + 1
        item: Task = {"id": new_id, "title": fields["title"],
                      "description": conform.description(fields["title"], fields["description"]),
                      "details": fields["details"], "status": "pending", "dependencies": [],
                      "testStrategy": fields["testStrategy"], "parentTaskId": _number(parent["id"])}
        if fields.get("priority"):
            item["priority"] = fields["priority"]
        subs.append(item)
        key = f"{parent['id']}.{new_id}"
    else:
        number = view.next_task_id()
        item = {"id": conform.task_id(view, number), "title": fields["title"],
                "description": conform.description(fields["title"], fields["description"]),
                "status": "pending", "dependencies": [],
                "priority": fields.get("priority") or conform.DEFAULT_PRIORITY,
                "details": fields["details"], "testStrategy": fields["testStrategy"], "subtasks": []}
        view.tasks.append(item)
        key = str(number)
    view.reindex()
    add_dependencies(view, key, dependencies)
    return key


def set_status(view: TagData, key: str, status: str) -> list[str]:
    if status not in STATUSES:
        raise TaskBoardError(f"unknown status '{status}'; use one of {', '.join(STATUSES)}")
    item = view.index[key]
    notes = []
    if item.get("status") != status:
        notes.append(f"status of {key}: {item.get('status', 'pending')} → {status}")
        item["status"] = status
    if status == "done" and "." not in key:
        for sub in item.get("subtasks") or []:
            if sub.get("status") not in ("done", "completed", "cancelled"):
                notes.append(f"status of {key}.{sub.get('id')}: {sub.get('status', 'pending')} → done")
                sub["status"] = "done"
    return notes


def remove(view: TagData, key: str) -> list[str]:
    """Delete a task or subtask and every dependency that pointed at it."""
    item = view.index[key]
    gone = {key}
    if "." in key:
        parent = view.parent_of(key)
        assert parent is not None
        parent["subtasks"] = [s for s in parent.get("subtasks") or [] if s is not item]
    else:
        gone |= {f"{key}.{s.get('id')}" for s in item.get("subtasks") or []}
        view.tasks[:] = [t for t in view.tasks if t is not item]
    notes = [f"removed {key}" + (f" and its {len(gone) - 1} subtasks" if len(gone) > 1 else "")]
    for dependent, dep in dependents_of(view, gone):
        remove_dependencies(view, dependent, [dep])
        notes.append(f"removed dependency {dependent} → {dep}")
    view.reindex()
    return notes


def apply_plan(view: TagData, plan: list[Planned]) -> list[str]:
    """Append planned tasks with fresh ids; plan indices become task ids."""
    first = view.next_task_id()
    keys = []
    for offset, planned in enumerate(plan):
        key = str(first + offset)
        view.tasks.append({
            "id": conform.task_id(view, first + offset), "title": planned.title,
            "description": conform.description(planned.title, planned.description),
            "status": "pending",
            "dependencies": [conform.dependency(view, key, str(first + d))
                             for d in sorted(planned.depends_on)],
            "priority": planned.priority, "details": planned.details,
            "testStrategy": planned.test_strategy, "subtasks": [],
        })
        keys.append(key)
    view.reindex()
    return keys


def replace_subtasks(view: TagData, task_id: int, plan: list[Planned], force: bool) -> list[str]:
    task = view.get(task_id)
    existing = task.get("subtasks") or []
    if existing and not force:
        raise TaskBoardError(
            f"Task {task_id} already has {len(existing)} subtasks; pass force=true to replace them."
        )
    old = {f"{task_id}.{s.get('id')}" for s in existing}
    for dependent, dep in dependents_of(view, old):
        if dependent.split(".")[0] != str(task_id):
            remove_dependencies(view, dependent, [dep])
    task["subtasks"] = [{
        "id": i + 1, "title": p.title, "description": conform.description(p.title, p.description),
        "dependencies": [d + 1 for d in p.depends_on], "details": p.details,
        "status": "pending", "testStrategy": p.test_strategy,
    } for i, p in enumerate(plan)]
    view.reindex()
    return [f"{task_id}.{i + 1}" for i in range(len(plan))]


def _number(value: object) -> int | object:
    """A task id as task-master's add-subtask records it in `parentTaskId`: a number."""
    text = str(value)
    return int(text) if text.isdigit() else value
