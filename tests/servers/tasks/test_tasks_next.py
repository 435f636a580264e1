"""tasks_next follows claude-task-master's find-next-task rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from tasks_support import make_server, sub, task, write_board

pytestmark = pytest.mark.anyio


async def next_of(tmp_path: Path, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    server, ws = make_server(tmp_path)
    write_board(ws, tasks)
    async with Client(server) as client:
        result = await client.call_tool("next", {})
    assert result.structured_content is not None
    return result.structured_content


async def next_id(tmp_path: Path, tasks: list[dict[str, Any]]) -> Any:
    found = (await next_of(tmp_path, tasks))["task"]
    return None if found is None else found["id"]


async def test_next_picks_the_highest_priority_ready_task(tmp_path: Path) -> None:
    tasks = [task(1, priority="low"), task(2, priority="high"), task(3, priority="medium")]
    assert await next_id(tmp_path, tasks) == 2


async def test_critical_outranks_high(tmp_path: Path) -> None:
    assert await next_id(tmp_path, [task(1, priority="high"), task(2, priority="critical")]) == 2


async def test_next_skips_tasks_whose_dependencies_are_not_done(tmp_path: Path) -> None:
    tasks = [task(1, status="in-progress", priority="low"), task(2, priority="high", dependencies=[1]),
             task(3, priority="medium")]
    assert await next_id(tmp_path, tasks) == 3


async def test_done_dependencies_make_a_task_ready(tmp_path: Path) -> None:
    tasks = [task(1, status="done"), task(2, priority="high", dependencies=[1]), task(3, priority="medium")]
    assert await next_id(tmp_path, tasks) == 2


async def test_equal_priority_prefers_fewer_dependencies_then_lower_id(tmp_path: Path) -> None:
    tasks = [task(1, status="done"), task(2, status="done"),
             task(3, dependencies=[1, 2]), task(4, dependencies=[1]), task(5, dependencies=[1])]
    assert await next_id(tmp_path, tasks) == 4


async def test_only_pending_and_in_progress_tasks_are_eligible(tmp_path: Path) -> None:
    tasks = [task(1, status="deferred", priority="critical"), task(2, status="blocked", priority="high"),
             task(3, status="review", priority="high"), task(4, status="cancelled", priority="high"),
             task(5, status="in-progress", priority="low")]
    assert await next_id(tmp_path, tasks) == 5


async def test_subtask_of_in_progress_parent_comes_before_a_higher_priority_task(tmp_path: Path) -> None:
    tasks = [task(1, priority="critical"),
             task(2, status="in-progress", priority="low", subtasks=[sub(1, "done"), sub(2)])]
    found = await next_of(tmp_path, tasks)
    assert found["task"]["id"] == "2.2"
    assert found["task"]["parent_id"] == 2
    assert found["is_subtask"] is True


async def test_subtask_numeric_dependency_names_a_sibling(tmp_path: Path) -> None:
    parent = task(3, status="in-progress", subtasks=[sub(1), sub(2, dependencies=[1]), sub(3)])
    # 3.2 waits on 3.1; 3.1 and 3.3 are ready with no dependencies → lowest id first.
    assert await next_id(tmp_path, [parent]) == "3.1"
    parent["subtasks"][0]["status"] = "done"
    assert await next_id(tmp_path, [parent]) == "3.3"  # no deps beats one dep


async def test_subtask_dotted_dependency_is_honoured(tmp_path: Path) -> None:
    tasks = [task(1, status="pending", subtasks=[sub(1)]),
             task(2, status="in-progress", priority="low", subtasks=[sub(1, dependencies=["1.1"])]),
             task(3, priority="high")]
    assert await next_id(tmp_path, tasks) == 3  # 2.1 waits on 1.1; falls back to top level
    tasks[0]["subtasks"][0]["status"] = "done"
    assert await next_id(tmp_path, tasks) == "2.1"


async def test_subtask_inherits_parent_priority(tmp_path: Path) -> None:
    tasks = [task(1, status="in-progress", priority="low", subtasks=[sub(1)]),
             task(2, status="in-progress", priority="high", subtasks=[sub(1)])]
    assert await next_id(tmp_path, tasks) == "2.1"


async def test_subtasks_of_pending_parents_are_not_offered(tmp_path: Path) -> None:
    tasks = [task(1, priority="low", subtasks=[sub(1)]), task(2, priority="high")]
    assert await next_id(tmp_path, tasks) == 2


async def test_a_task_may_wait_on_another_tasks_subtask(tmp_path: Path) -> None:
    tasks = [task(1, status="in-progress", priority="low", subtasks=[sub(1, "done"), sub(2, "done")]),
             task(2, priority="high", dependencies=["1.1"])]
    assert await next_id(tmp_path, tasks) == 2


async def test_nothing_ready_explains_what_waits(tmp_path: Path) -> None:
    found = await next_of(tmp_path, [task(1, dependencies=[2]), task(2, dependencies=[1])])
    assert found["task"] is None
    assert "1 waits on 2" in found["message"]
    assert "tasks_analyze" in found["message"]


async def test_all_done_says_nothing_left(tmp_path: Path) -> None:
    found = await next_of(tmp_path, [task(1, status="done")])
    assert found["task"] is None
    assert "Nothing left" in found["message"]


async def test_next_on_a_workspace_without_a_board_suggests_how_to_start(tmp_path: Path) -> None:
    server, _ = make_server(tmp_path)
    async with Client(server) as client:
        result = await client.call_tool("next", {})
    assert result.structured_content is not None
    assert result.structured_content["task"] is None
    assert "tasks_parse_prd" in result.structured_content["message"]


async def test_next_returns_full_details_of_the_task(tmp_path: Path) -> None:
    found = await next_of(tmp_path, [task(1, details="Use sqlite", testStrategy="restart test",
                                          subtasks=[sub(1)])])
    assert found["task"]["details"] == "Use sqlite"
    assert found["task"]["test_strategy"] == "restart test"
    assert found["task"]["subtasks"][0]["id"] == "1.1"


async def test_done_counts_as_task_master_counts_it_only_under_a_task_it_reads(tmp_path: Path) -> None:
    # tm-core's getNextTask reads tasks that are pending, in-progress or done: a done subtask
    # under a task in review, or a cancelled task, does not satisfy a dependency
    tasks = [task(1, status="review", subtasks=[sub(1, "done")]),
             task(2, status="cancelled"),
             task(3, priority="high", dependencies=["1.1"]),
             task(4, priority="high", dependencies=[2]),
             task(5, priority="low")]
    assert await next_id(tmp_path, tasks) == 5
