"""Properties of the dependency graph code on random boards (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kimi_mcp.servers.tasks.board import TagData
from kimi_mcp.servers.tasks.graph import (
    completed,
    deps_of,
    find_cycles,
    fix,
    graph_of,
    next_task,
    validate,
)


@st.composite
def boards(draw: Any) -> TagData:
    n = draw(st.integers(min_value=1, max_value=12))
    tasks = []
    for i in range(1, n + 1):
        subs = [{"id": s, "status": draw(st.sampled_from(["pending", "done", "in-progress"])),
                 "dependencies": draw(st.lists(st.one_of(st.integers(0, 5), st.sampled_from(["1.1", "2.2", "9.9"])),
                                               max_size=3))}
                for s in range(1, draw(st.integers(0, 3)) + 1)]
        tasks.append({"id": i, "title": f"t{i}",
                      "status": draw(st.sampled_from(["pending", "done", "in-progress", "deferred"])),
                      "priority": draw(st.sampled_from(["low", "medium", "high", "critical"])),
                      "dependencies": draw(st.lists(st.one_of(st.integers(0, n + 2), st.just("1.1")), max_size=4)),
                      "subtasks": subs})
    return TagData("master", {"tasks": tasks})


@settings(max_examples=50, deadline=None)
@given(boards())
def test_fix_always_leaves_a_board_without_dependency_issues(view: TagData) -> None:
    fix(view)
    assert validate(view) == []
    assert find_cycles(graph_of(view)) == []


@settings(max_examples=50, deadline=None)
@given(boards())
def test_fix_only_removes_dependencies_and_is_idempotent(view: TagData) -> None:
    before = {k: set(deps_of(view, k)) for k in view.index}
    fix(view)
    after = {k: set(deps_of(view, k)) for k in view.index}
    assert all(after[k] <= before[k] for k in before)
    assert fix(view) == []


@settings(max_examples=50, deadline=None)
@given(boards())
def test_the_next_task_is_always_workable_with_every_dependency_done(view: TagData) -> None:
    found = next_task(view)
    if found is None:
        return
    key, item = found
    assert item.get("status", "pending") in ("pending", "in-progress")
    done = completed(view)
    assert all(d in done for d in deps_of(view, key))
    if "." in key:
        assert view.index[key.split(".")[0]]["status"] == "in-progress"
