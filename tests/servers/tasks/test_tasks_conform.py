"""What the tasks tools write is what claude-task-master requires and writes itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from tasks_support import BOARD, make_server, sub, task, write_board

pytestmark = pytest.mark.anyio


def board(ws: Path, tag: str = "master") -> list[dict[str, Any]]:
    return json.loads((ws / BOARD).read_text())[tag]["tasks"]  # type: ignore[no-any-return]


async def test_a_task_added_with_only_a_title_gets_the_title_as_its_description(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    async with Client(server) as client:
        result = await client.call_tool("add", {"title": "Write docs"})
    [written] = board(ws)
    assert written["description"] == "Write docs"
    assert result.structured_content["task"]["description"] == "Write docs"
    assert (written["id"], written["priority"], written["status"]) == (1, "medium", "pending")


async def test_a_blank_title_is_refused_and_a_blank_description_becomes_the_title(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1)])
    async with Client(server) as client:
        refused = await client.call_tool("add", {"title": "   "}, raise_on_error=False)
        await client.call_tool("update", {"id": 1, "description": " "})
    assert refused.is_error and "title is blank" in refused.content[0].text
    assert board(ws)[0]["description"] == "Task 1"


async def test_a_board_with_string_ids_keeps_string_ids_and_dependencies(tmp_path: Path) -> None:
    # task-master's core (set-status, update) writes "1"; its legacy commands write 1
    server, ws = make_server(tmp_path)
    write_board(ws, [task("1", subtasks=[sub(1)]), task("2", dependencies=["1"])])  # type: ignore[arg-type]
    async with Client(server) as client:
        await client.call_tool("add", {"title": "Three", "dependencies": [2, "1.1"]})
        listed = await client.call_tool("list", {})
    written = board(ws)
    assert [t["id"] for t in written] == ["1", "2", "3"]
    assert written[2]["dependencies"] == ["2", "1.1"]
    assert [r["id"] for r in listed.structured_content["tasks"]] == [1, 2, 3]
    assert listed.structured_content["tasks"][1]["dependencies"] == [1]


async def test_a_subtask_records_its_parent_and_a_sibling_as_a_bare_number(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, subtasks=[sub(1)])])
    async with Client(server) as client:
        await client.call_tool("add", {"title": "Draft", "parent_id": 1, "dependencies": ["1.1"]})
    added = board(ws)[0]["subtasks"][1]
    assert (added["id"], added["parentTaskId"], added["dependencies"]) == (2, 1, [1])
    assert added["description"] == "Draft"


async def test_writing_a_tag_fills_what_task_master_requires_of_older_tasks(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    old = task(1, description="")
    del old["priority"]
    write_board(ws, [old, task(2, subtasks=[sub(1, description="")])])
    async with Client(server) as client:
        await client.call_tool("update", {"id": 2, "status": "in-progress"})
    first, second = board(ws)
    assert (first["description"], first["priority"]) == ("Task 1", "medium")
    assert second["subtasks"][0]["description"] == ""  # task-master allows it: kept
