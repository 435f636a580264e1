"""The board file: task-master's format round-trips, writes are atomic and never lose updates."""

from __future__ import annotations

import copy
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from kimi_mcp.servers.tasks.board import TaskBoard
from tasks_support import BOARD, make_server, read_board, task, write_board

pytestmark = pytest.mark.anyio
REAL = Path(__file__).parent / "data" / "taskmaster_tasks.json"


def install_real_board(ws: Path) -> dict:
    (ws / BOARD).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL, ws / BOARD)
    return json.loads(REAL.read_text(encoding="utf-8"))


async def test_a_real_task_master_board_round_trips_with_unknown_fields_kept(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    original = install_real_board(ws)
    async with Client(server) as client:
        await client.call_tool("update", {"id": "2.2", "status": "in-progress"})
    after = read_board(ws)
    expected = copy.deepcopy(original)
    expected["master"]["tasks"][1]["subtasks"][1]["status"] = "in-progress"
    assert after["master"]["metadata"].pop("updated") != original["master"]["metadata"]["updated"]
    expected["master"]["metadata"].pop("updated")
    assert after == expected  # every other field, key and tag exactly as it was


async def test_the_written_file_keeps_key_order_and_unicode(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    install_real_board(ws)
    async with Client(server) as client:
        await client.call_tool("update", {"id": 3, "priority": "critical"})
    text = (ws / BOARD).read_text(encoding="utf-8")
    assert "ünïcödé ✓" in text
    keys = list(json.loads(text)["master"]["tasks"][0])
    assert keys[:4] == ["id", "title", "description", "status"]
    assert keys[-3:] == ["previousStatus", "complexity", "updatedAt"]


async def test_list_reads_a_real_board_with_counts_and_progress(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    install_real_board(ws)
    async with Client(server) as client:
        result = await client.call_tool("list", {"with_subtasks": True})
        other = await client.call_tool("list", {"tag": "feature-dunning"})
    data = result.structured_content
    assert data is not None and other.structured_content is not None
    assert data["total"] == 3
    assert data["counts"]["done"] == 1 and data["counts"]["in-progress"] == 1
    assert data["progress_percent"] == pytest.approx(33.3)
    assert data["subtasks_total"] == 3 and data["subtasks_done"] == 1
    assert data["tasks"][1]["subtask_progress"] == "1/3"
    assert [s["id"] for s in data["tasks"][1]["subtasks"]] == ["2.1", "2.2", "2.3"]
    assert [t["title"] for t in other.structured_content["tasks"]] == ["Dunning emails"]


async def test_list_filters_by_status_and_ids(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    install_real_board(ws)
    async with Client(server) as client:
        by_status = await client.call_tool("list", {"status": "pending,in-progress"})
        by_ids = await client.call_tool("list", {"ids": [3, "2.3"]})
        bad = await client.call_tool("list", {"status": "finished"}, raise_on_error=False)
    assert by_status.structured_content is not None and by_ids.structured_content is not None
    assert [t["id"] for t in by_status.structured_content["tasks"]] == [2, 3]
    assert [t["id"] for t in by_ids.structured_content["tasks"]] == [3, "2.3"]
    assert bad.is_error and "Unknown status ['finished']" in bad.content[0].text


@pytest.mark.parametrize("status,ids", [(["pending", "in-progress"], "3,2.3"),
                                        ("pending, in-progress", " 3 , 2.3 ")],
                         ids=["lists", "comma-separated"])
async def test_tasks_list_takes_statuses_and_ids_as_lists_or_comma_separated(
        deps: Any, status: Any, ids: Any) -> None:
    from kimi_mcp.server import build_mcp

    install_real_board(deps.roots[0])
    async with Client(build_mcp(deps)) as client:
        by_status = await client.call_tool("tasks_list", {"status": status})
        by_ids = await client.call_tool("tasks_list", {"ids": ids})
    assert by_status.structured_content is not None and by_ids.structured_content is not None
    assert [t["id"] for t in by_status.structured_content["tasks"]] == [2, 3]
    assert [t["id"] for t in by_ids.structured_content["tasks"]] == [3, "2.3"]


async def test_the_legacy_untagged_form_is_read_as_master_and_written_tagged(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / BOARD).parent.mkdir(parents=True)
    (ws / BOARD).write_text(json.dumps({"tasks": [task(1)], "metadata": {"projectName": "old"}}))
    async with Client(server) as client:
        listed = await client.call_tool("list", {})
        await client.call_tool("add", {"title": "Second"})
    assert listed.structured_content is not None
    assert listed.structured_content["tag"] == "master"
    data = read_board(ws)
    assert list(data) == ["master"]
    assert [t["id"] for t in data["master"]["tasks"]] == [1, 2]
    assert data["master"]["metadata"]["projectName"] == "old"


async def test_the_current_tag_comes_from_task_masters_state_file(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    install_real_board(ws)
    (ws / ".taskmaster" / "state.json").write_text(json.dumps({"currentTag": "feature-dunning"}))
    async with Client(server) as client:
        result = await client.call_tool("next", {})
    assert result.structured_content is not None
    assert result.structured_content["tag"] == "feature-dunning"
    assert result.structured_content["task"]["title"] == "Dunning emails"


async def test_an_unknown_tag_is_an_error_that_names_the_tags(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    install_real_board(ws)
    async with Client(server) as client:
        result = await client.call_tool("list", {"tag": "nope"}, raise_on_error=False)
    assert result.is_error
    assert "Tag 'nope' does not exist (tags: master, feature-dunning)" in result.content[0].text


async def test_unknown_ids_are_errors_that_say_what_exists(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    install_real_board(ws)
    async with Client(server) as client:
        missing = await client.call_tool("update", {"id": 42, "status": "done"}, raise_on_error=False)
        missing_sub = await client.call_tool("update", {"id": "2.9", "status": "done"}, raise_on_error=False)
        garbage = await client.call_tool("update", {"id": "two", "status": "done"}, raise_on_error=False)
    assert missing.is_error and "Task 42 not found in tag 'master' (task ids run 1–3)" in missing.content[0].text
    assert missing_sub.is_error and "its subtasks are 1, 2, 3" in missing_sub.content[0].text
    assert garbage.is_error and "'two' is not a task id" in garbage.content[0].text


async def test_invalid_json_on_disk_is_reported_with_its_position(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / BOARD).parent.mkdir(parents=True)
    (ws / BOARD).write_text('{"master": {"tasks": [}')
    async with Client(server) as client:
        result = await client.call_tool("list", {}, raise_on_error=False)
    assert result.is_error and "is not valid JSON (line 1" in result.content[0].text


async def test_a_read_only_server_refuses_to_change_the_board(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path, read_only=True)
    write_board(ws, [task(1)])
    async with Client(server) as client:
        listed = await client.call_tool("list", {})
        refused = await client.call_tool("add", {"title": "x"}, raise_on_error=False)
    assert not listed.is_error
    assert refused.is_error and "read-only" in refused.content[0].text


def test_concurrent_writers_do_not_lose_updates(tmp_path: Path) -> None:
    write_board(tmp_path, [task(1)])
    boards = [TaskBoard(tmp_path) for _ in range(4)]  # separate instances, as separate processes would be

    def add_many(board: TaskBoard, n: int) -> None:
        for i in range(n):
            with board.transaction() as doc:
                view = doc.tag("master")
                view.tasks.append(task(view.next_task_id(), title=f"t{i}"))

    threads = [threading.Thread(target=add_many, args=(b, 15)) for b in boards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [t["id"] for t in read_board(tmp_path)["master"]["tasks"]]
    assert ids == list(range(1, 62))


def test_a_failed_edit_writes_nothing_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = write_board(tmp_path, [task(1)])
    before = path.read_bytes()
    board = TaskBoard(tmp_path)
    with pytest.raises(RuntimeError), board.transaction() as doc:
        doc.tag("master").tasks.clear()
        raise RuntimeError("boom")
    assert path.read_bytes() == before
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_snapshots_are_reused_until_the_file_changes(tmp_path: Path) -> None:
    write_board(tmp_path, [task(1)])
    board = TaskBoard(tmp_path)
    first = board.snapshot()
    assert board.snapshot() is first
    with board.transaction() as doc:
        doc.tag("master").tasks.append(task(2))
    second = board.snapshot()
    assert second is not first
    assert [t["id"] for t in second.tag("master").tasks] == [1, 2]


async def test_list_limits_rows_but_counts_the_whole_tag(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(i, status="done" if i % 2 else "pending") for i in range(1, 251)])
    async with Client(server) as client:
        default = await client.call_tool("list", {})
        everything = await client.call_tool("list", {"limit": 0})
    assert default.structured_content is not None and everything.structured_content is not None
    assert len(default.structured_content["tasks"]) == 200
    assert default.structured_content["total"] == 250
    assert default.structured_content["counts"]["done"] == 125
    assert "Showing 200 of 250" in default.structured_content["message"]
    assert len(everything.structured_content["tasks"]) == 250
    assert everything.structured_content["message"] == ""
