"""Dependency checks are errors with reasons; tasks_analyze reports and repairs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastmcp import Client
from tasks_support import BOARD, make_server, read_board, sub, task, write_board

pytestmark = pytest.mark.anyio


async def test_adding_a_dependency_on_a_missing_task_is_refused(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1), task(2)])
    async with Client(server) as client:
        result = await client.call_tool("update", {"id": 2, "add_dependencies": [9]}, raise_on_error=False)
    assert result.is_error
    assert "Dependency target 9 does not exist" in result.content[0].text
    assert read_board(ws)["master"]["tasks"][1]["dependencies"] == []


async def test_a_task_cannot_depend_on_itself(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1)])
    async with Client(server) as client:
        result = await client.call_tool("update", {"id": 1, "add_dependencies": [1]}, raise_on_error=False)
    assert result.is_error
    assert "cannot depend on itself" in result.content[0].text


async def test_a_cycle_is_refused_and_shown(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1), task(2, dependencies=[1]), task(3, dependencies=[2])])
    before = (ws / BOARD).read_bytes()
    async with Client(server) as client:
        result = await client.call_tool(
            "update", {"id": 1, "add_dependencies": [3], "title": "renamed"}, raise_on_error=False)
    assert result.is_error
    assert "1 → 3 → 2 → 1" in result.content[0].text
    assert (ws / BOARD).read_bytes() == before  # nothing of the update was written


async def test_a_cycle_through_subtasks_is_refused(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, subtasks=[sub(1), sub(2, dependencies=[1])]),
                     task(2, dependencies=["1.2"])])
    async with Client(server) as client:
        result = await client.call_tool("update", {"id": "1.1", "add_dependencies": ["1.2"]},
                                        raise_on_error=False)
    assert result.is_error
    assert "1.1 → 1.2 → 1.1" in result.content[0].text


async def test_a_subtask_may_not_wait_on_a_top_level_task(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, subtasks=[sub(1)]), task(2, subtasks=[sub(1)])])
    async with Client(server) as client:
        ok = await client.call_tool("update", {"id": "2.1", "add_dependencies": ["1.1"]})
        refused = await client.call_tool("update", {"id": "1.1", "add_dependencies": ["2"]},
                                         raise_on_error=False)
    assert not ok.is_error
    assert refused.is_error
    assert "a bare number names a sibling (1.2)" in refused.content[0].text
    assert "make task 1 depend on it" in refused.content[0].text


async def test_sibling_dependencies_are_stored_as_bare_numbers_like_task_master(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, subtasks=[sub(1), sub(2)]), task(2, subtasks=[sub(1)])])
    async with Client(server) as client:
        await client.call_tool("update", {"id": "1.2", "add_dependencies": [1]})
        await client.call_tool("update", {"id": "2.1", "add_dependencies": ["1.1"]})
        await client.call_tool("update", {"id": 2, "add_dependencies": [1, "1.2"]})
    tasks = read_board(ws)["master"]["tasks"]
    assert tasks[0]["subtasks"][1]["dependencies"] == [1]
    assert tasks[1]["subtasks"][0]["dependencies"] == ["1.1"]
    assert tasks[1]["dependencies"] == [1, "1.2"]


async def test_removing_a_dependency_it_does_not_have_is_reported_not_an_error(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1), task(2, dependencies=[1])])
    async with Client(server) as client:
        result = await client.call_tool("update", {"id": 2, "remove_dependencies": [1, 5]})
    assert result.structured_content is not None
    assert result.structured_content["changed"] == ["removed dependency 2 → 1", "2 did not depend on 5"]


async def test_analyze_reports_missing_self_duplicate_and_cyclic_dependencies(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, dependencies=[1]), task(2, dependencies=[7, 3, 3]),
                     task(3, dependencies=[4]), task(4, dependencies=[2])])
    before = (ws / BOARD).read_bytes()
    async with Client(server) as client:
        result = await client.call_tool("analyze", {})
    assert result.structured_content is not None
    issues = {(i["kind"], i["task_id"], i["dependency_id"]) for i in result.structured_content["dependency_issues"]}
    assert ("self", "1", "1") in issues
    assert ("missing", "2", "7") in issues
    assert ("duplicate", "2", "3") in issues
    cycles = [i["cycle"] for i in result.structured_content["dependency_issues"] if i["kind"] == "cycle"]
    assert cycles == [["2", "3", "4", "2"]]
    assert result.structured_content["fixes"] == []
    assert (ws / BOARD).read_bytes() == before  # analysis alone writes nothing


async def test_fix_dependencies_repairs_everything_and_says_what_changed(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, dependencies=[1]), task(2, dependencies=[7, 3, 3]),
                     task(3, dependencies=[4]), task(4, dependencies=[2]),
                     task(5, subtasks=[sub(1, dependencies=[1, 9]), sub(2, dependencies=[1, "5.1"])])])
    async with Client(server) as client:
        result = await client.call_tool("analyze", {"fix_dependencies": True})
        again = await client.call_tool("analyze", {"fix_dependencies": True})
    assert result.structured_content is not None and again.structured_content is not None
    fixes = result.structured_content["fixes"]
    assert "removed self-dependency 1 → 1" in fixes
    assert "removed dependency 2 → 7 (no such task)" in fixes
    assert "removed duplicate dependency 2 → 3" in fixes
    assert "removed self-dependency 5.1 → 5.1" in fixes
    assert "removed dependency 5.1 → 5.9 (no such task)" in fixes
    assert "removed duplicate dependency 5.2 → 5.1" in fixes
    assert any(f.startswith("removed 4 → 2 to break cycle 2 → 3 → 4 → 2") for f in fixes)
    tasks = read_board(ws)["master"]["tasks"]
    assert [t["dependencies"] for t in tasks[:4]] == [[], [3], [4], []]
    assert tasks[4]["subtasks"][1]["dependencies"] == [1]
    assert again.structured_content["dependency_issues"] == []
    assert again.structured_content["fixes"] == []


async def test_removing_a_task_drops_references_to_it_and_its_subtasks(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, subtasks=[sub(1)]), task(2, dependencies=[1, "1.1"]), task(3, dependencies=[2])])
    async with Client(server) as client:
        result = await client.call_tool("update", {"id": 1, "remove": True})
    assert result.structured_content is not None
    assert result.structured_content["removed"] is True
    assert "removed 1 and its 1 subtasks" in result.structured_content["changed"]
    tasks = read_board(ws)["master"]["tasks"]
    assert [t["id"] for t in tasks] == [2, 3]
    assert tasks[0]["dependencies"] == []
    assert tasks[1]["dependencies"] == [2]


async def test_adding_a_task_with_valid_dependencies_records_them(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1), task(2, subtasks=[sub(1)])])
    async with Client(server) as client:
        result = await client.call_tool("add", {"title": "Ship", "dependencies": [1, "2.1"], "priority": "high"})
        bad = await client.call_tool("add", {"title": "Nope", "dependencies": [42]}, raise_on_error=False)
    assert result.structured_content is not None
    assert result.structured_content["task"]["id"] == 3
    assert result.structured_content["task"]["dependencies"] == [1, "2.1"]
    assert bad.is_error and "42 does not exist" in bad.content[0].text
    assert [t["id"] for t in read_board(ws)["master"]["tasks"]] == [1, 2, 3]
