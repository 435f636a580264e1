"""Dependencies between tasks: normalisation, checks, repair, and the next-task rule.

Keys are strings: "3" for a task, "3.2" for a subtask. As in task-master, a subtask's numeric
dependency names a sibling (`2` in task 3's subtask means "3.2"); a "5.1" string names any
subtask; a task's numeric dependency names a task. "A → B" in messages means A depends on B.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .board import TagData, Task, TaskBoardError, key_of, public_id

PRIORITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
DONE = frozenset({"done", "completed"})
WORKABLE = frozenset({"pending", "in-progress"})
NEXT_READS = frozenset({"pending", "in-progress", "done"})


def dep_key(dep: object, parent_id: object | None) -> str:
    """The key a raw dependency value refers to, read from a task or from a parent's subtask."""
    text = str(dep).strip()
    if parent_id is not None and "." not in text:
        return f"{parent_id}.{text}"
    return text


def deps_of(view: TagData, key: str) -> list[str]:
    item = view.index[key]
    parent = key.split(".")[0] if "." in key else None
    return [dep_key(d, parent) for d in item.get("dependencies") or []]


def graph_of(view: TagData) -> dict[str, list[str]]:
    return {key: deps_of(view, key) for key in view.index}


def arrow(path: Iterable[str]) -> str:
    return " → ".join(path)


def find_path(graph: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """A dependency path start → … → goal, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def check_new_dependency(view: TagData, key: str, target: int | str) -> object | None:
    """Validate `key` → `target`: the raw value to store, None if already there, or raise."""
    dep = key_of(target)
    if dep == key:
        raise TaskBoardError(f"Task {key} cannot depend on itself.")
    if dep not in view.index:
        hint = "call tasks_list to see valid ids."
        parent = key.split(".")[0]
        if "." in key and dep.split(".")[0] == parent:
            hint = (f"for a subtask a bare number names a sibling ({dep}); to wait for a "
                    f"top-level task, make task {parent} depend on it instead.")
        raise TaskBoardError(f"Dependency target {dep} does not exist in tag '{view.name}'; {hint}")
    if "." in key and "." not in dep:
        raise TaskBoardError(
            f"Subtask {key} can depend only on subtasks (e.g. \"{key.split('.')[0]}.1\"); "
            f"to wait for task {dep}, make task {key.split('.')[0]} depend on it."
        )
    if dep in deps_of(view, key):
        return None
    path = find_path(graph_of(view), dep, key)
    if path is not None:
        raise TaskBoardError(
            f"Adding {key} → {dep} would create a cycle: {arrow([key, *path])} "
            "(→ means 'depends on'); remove one of these dependencies first."
        )
    return public_id(dep)


@dataclass
class Issue:
    kind: str  # duplicate | missing | self | cycle
    task_id: str
    dependency_id: str | None
    message: str
    cycle: list[str] = field(default_factory=list)


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per back edge found by an iterative depth-first search, each closed (a … a)."""
    color: dict[str, int] = {}
    cycles: list[list[str]] = []
    for root in graph:
        if color.get(root):
            continue
        color[root] = 1
        path = [root]
        iters = [iter(graph.get(root, ()))]
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                color[path.pop()] = 2
                iters.pop()
                continue
            if nxt not in graph:
                continue
            state = color.get(nxt, 0)
            if state == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif state == 0:
                color[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph.get(nxt, ())))
    return cycles


def validate(view: TagData) -> list[Issue]:
    issues: list[Issue] = []
    for key in view.index:
        seen: set[str] = set()
        for dep in deps_of(view, key):
            if dep in seen:
                issues.append(Issue("duplicate", key, dep, f"{key} lists dependency {dep} twice"))
                continue
            seen.add(dep)
            if dep == key:
                issues.append(Issue("self", key, dep, f"{key} depends on itself"))
            elif dep not in view.index:
                issues.append(Issue("missing", key, dep, f"{key} depends on missing {dep}"))
    graph = {k: [d for d in v if d != k] for k, v in graph_of(view).items()}
    for cycle in find_cycles(graph):
        issues.append(Issue("cycle", cycle[0], cycle[1], f"cycle: {arrow(cycle)}", cycle))
    return issues


def _remove_dep(view: TagData, key: str, dep: str) -> bool:
    item = view.index[key]
    parent = key.split(".")[0] if "." in key else None
    before = list(item.get("dependencies") or [])
    kept = [d for d in before if dep_key(d, parent) != dep]
    item["dependencies"] = kept
    return len(kept) != len(before)


def fix(view: TagData) -> list[str]:
    """Remove duplicate, self and missing references, then break cycles; say what changed."""
    changes: list[str] = []
    for key, item in view.index.items():
        parent = key.split(".")[0] if "." in key else None
        kept: list[object] = []
        seen: set[str] = set()
        for raw in item.get("dependencies") or []:
            dep = dep_key(raw, parent)
            if dep in seen:
                changes.append(f"removed duplicate dependency {key} → {dep}")
            elif dep == key:
                changes.append(f"removed self-dependency {key} → {dep}")
            elif dep not in view.index:
                changes.append(f"removed dependency {key} → {dep} (no such task)")
            else:
                seen.add(dep)
                kept.append(raw)
        if "dependencies" in item or kept:
            item["dependencies"] = kept
    for _ in range(sum(len(v) for v in graph_of(view).values())):
        cycles = find_cycles(graph_of(view))
        if not cycles:
            break
        cycle = cycles[0]
        # Break at the closing edge: the last task in the walk stops waiting for the first.
        _remove_dep(view, cycle[-2], cycle[-1])
        changes.append(f"removed {cycle[-2]} → {cycle[-1]} to break cycle {arrow(cycle)}")
    return changes


def completed(view: TagData) -> set[str]:
    return {k for k, t in view.index.items() if t.get("status") in DONE}


def _rank(priority: object) -> int:
    return PRIORITY_RANK.get(str(priority or "medium"), 2)


def next_task(view: TagData) -> tuple[str, Task] | None:
    """task-master's rule: an eligible subtask of an in-progress parent, else the best task.

    Eligible: status pending or in-progress and every dependency done. Order: priority
    (a subtask inherits its parent's), then fewest dependencies, then id. A snapshot view
    remembers the answer; snapshots are replaced whenever the file changes.
    """
    found: tuple[str, Task] | None = view.remember("next", lambda: _next_task(view))
    return found


def _done_for_next(view: TagData) -> set[str]:
    """What task-master's `next` counts as done: status exactly "done", read only from tasks
    that are pending, in-progress or done (so a done subtask of a task in review, or a
    cancelled dependency, does not count) — tm-core's `TaskService.getNextTask`."""
    done: set[str] = set()
    for task in view.tasks:
        status = task.get("status")
        if status not in NEXT_READS:
            continue
        if status == "done":
            done.add(str(task.get("id")))
        for sub in task.get("subtasks") or []:
            if sub.get("status") == "done":
                done.add(f"{task.get('id')}.{sub.get('id')}")
    return done


def _next_task(view: TagData) -> tuple[str, Task] | None:
    done = _done_for_next(view)
    best: tuple[tuple[int, int, int, int], str] | None = None
    for task in view.tasks:
        if task.get("status") != "in-progress":
            continue
        for sub in task.get("subtasks") or []:
            if str(sub.get("status") or "pending").lower() not in WORKABLE:
                continue
            key = f"{task.get('id')}.{sub.get('id')}"
            deps = deps_of(view, key)
            if all(d in done for d in deps):
                rank = (-_rank(sub.get("priority") or task.get("priority")), len(deps),
                        int(task["id"]), int(sub["id"]))
                if best is None or rank < best[0]:
                    best = (rank, key)
    if best is not None:
        return best[1], view.index[best[1]]
    top: tuple[tuple[int, int, int], Task] | None = None
    for task in view.tasks:
        if task.get("status") not in WORKABLE:
            continue
        deps = task.get("dependencies") or []
        if all(str(d) in done for d in deps):
            rank3 = (-_rank(task.get("priority")), len(deps), int(task["id"]))
            if top is None or rank3 < top[0]:
                top = (rank3, task)
    return (str(top[1]["id"]), top[1]) if top is not None else None


def dependents_of(view: TagData, keys: set[str]) -> list[tuple[str, str]]:
    """(dependent, dependency) pairs whose dependency is in `keys`."""
    return [(k, d) for k in view.index if k not in keys for d in deps_of(view, k) if d in keys]
