"""Planning without a model: parse_prd, expand, analyze, plus status cascade and add/update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from tasks_support import make_server, read_board, sub, task, write_board

pytestmark = pytest.mark.anyio

PRD = """# Todo CLI — Product Requirements

## Overview
A small command-line todo manager for developers.

## Goals
- Be fast
- Be simple

## Features

### Storage layer
Persist todos in a SQLite database.
- Schema with id, text, done, created_at
- Migrations run on startup

#### Acceptance criteria
- A todo survives a restart
- Running migrations twice changes nothing

### Command parsing (P1, must have)
Parse the add, list and done subcommands. Depends on task #1.

**Acceptance criteria:**
- `todo add x` prints the new id

### Optional colour output
Nice to have: colour the list output when stdout is a terminal.

## Implementation Plan
1. Set up the repository and CI
2. Package the CLI for PyPI
3. Publish release 1.0

## Open Questions
- Should todos sync between machines?
"""


async def call(server: Any, name: str, args: dict[str, Any]) -> dict[str, Any]:
    async with Client(server) as client:
        result = await client.call_tool(name, args)
    assert result.structured_content is not None
    return result.structured_content


async def test_parse_prd_makes_tasks_from_headings_lists_and_acceptance_criteria(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    result = await call(server, "parse_prd", {"prd_text": PRD})
    assert result["method"] == "deterministic"
    titles = [t["title"] for t in result["created"]]
    assert titles == ["Storage layer", "Command parsing (P1, must have)", "Optional colour output",
                      "Set up the repository and CI", "Package the CLI for PyPI", "Publish release 1.0"]
    tasks = read_board(ws)["master"]["tasks"]
    storage, parsing, colour, setup, package, publish = tasks
    assert storage["description"] == "Persist todos in a SQLite database."
    assert "- Migrations run on startup" in storage["details"]
    assert storage["testStrategy"] == "- A todo survives a restart\n- Running migrations twice changes nothing"
    assert parsing["testStrategy"] == "- todo add x prints the new id"
    assert parsing["priority"] == "high" and colour["priority"] == "low"
    assert parsing["dependencies"] == [1]  # "Depends on task #1"
    assert (setup["dependencies"], package["dependencies"], publish["dependencies"]) == ([], [4], [5])
    assert all(t["status"] == "pending" and t["subtasks"] == [] for t in tasks)
    assert not any("Overview" in t or "sync" in t["title"] for t in titles for t in tasks)


async def test_parse_prd_merges_neighbours_to_respect_num_tasks(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    result = await call(server, "parse_prd", {"prd_text": PRD, "num_tasks": 3})
    assert len(result["created"]) == 3
    assert any("merged" in w for w in result["warnings"])
    tasks = read_board(ws)["master"]["tasks"]
    assert tasks[0]["title"] == "Storage layer (+1 related)"
    assert [t["dependencies"] for t in tasks] == [[], [], [2]]  # "package" waited on "set up"


async def test_parse_prd_refuses_a_tag_with_tasks_unless_append(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1), task(2)])
    async with Client(server) as client:
        refused = await client.call_tool("parse_prd", {"prd_text": PRD}, raise_on_error=False)
        appended = await client.call_tool("parse_prd", {"prd_text": PRD, "append": True})
        other = await client.call_tool("parse_prd", {"prd_text": PRD, "tag": "v2"})
    assert refused.is_error and "append=true" in refused.content[0].text
    assert appended.structured_content is not None and other.structured_content is not None
    assert appended.structured_content["created"][0]["id"] == 3
    board = read_board(ws)
    assert board["master"]["tasks"][3]["dependencies"] == [3]  # "#1" of the PRD is now task 3
    assert [t["id"] for t in board["v2"]["tasks"]][:2] == [1, 2]
    assert board["v2"]["metadata"]["description"] == "Tasks for v2 context"


async def test_parse_prd_reads_a_file_inside_the_workspace_only(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "docs").mkdir()
    (ws / "docs" / "prd.md").write_text(PRD)
    (tmp_path / "secret.md").write_text(PRD)
    async with Client(server) as client:
        ok = await client.call_tool("parse_prd", {"prd_path": "docs/prd.md"})
        outside = await client.call_tool("parse_prd", {"prd_path": "../secret.md", "tag": "x"},
                                         raise_on_error=False)
        missing = await client.call_tool("parse_prd", {"prd_path": "nope.md", "tag": "y"},
                                         raise_on_error=False)
    assert ok.structured_content is not None and len(ok.structured_content["created"]) == 6
    assert outside.is_error and "outside the workspace" in outside.content[0].text
    assert missing.is_error and "PRD file not found" in missing.content[0].text


async def test_parse_prd_without_structure_falls_back_to_sentences(tmp_path: Path) -> None:
    server, _ = make_server(tmp_path)
    result = await call(server, "parse_prd", {
        "prd_text": "Build a login page for users. Add password reset by email. Log every failed attempt."})
    assert [t["title"] for t in result["created"]] == [
        "Build a login page for users", "Add password reset by email", "Log every failed attempt"]
    assert result["warnings"]


async def test_expand_splits_details_into_subtasks(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    details = ("Build it in steps:\n1. Define the schema\n2. Write the migration runner\n"
               "3. Add the repository layer\n   - with a connection pool\n4. Test restart survival")
    write_board(ws, [task(1, details=details)])
    result = await call(server, "expand", {"id": 1})
    assert [s["id"] for s in result["subtasks"]] == ["1.1", "1.2", "1.3", "1.4"]
    subs = read_board(ws)["master"]["tasks"][0]["subtasks"]
    assert [s["title"] for s in subs] == ["Define the schema", "Write the migration runner",
                                         "Add the repository layer", "Test restart survival"]
    assert [s["dependencies"] for s in subs] == [[], [1], [2], [3]]  # an ordered list is a sequence
    assert subs[2]["details"] == "- with a connection pool"
    assert all(s["status"] == "pending" for s in subs)


async def test_expand_makes_test_steps_wait_for_the_work_in_bullet_lists(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, details="- Parse flags\n- Read config\n- Write tests for both")])
    await call(server, "expand", {"id": 1})
    subs = read_board(ws)["master"]["tasks"][0]["subtasks"]
    assert [s["dependencies"] for s in subs] == [[], [], [1, 2]]


async def test_expand_respects_num_subtasks_and_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, details="- a one\n- b two\n- c three\n- d four\n- e five\n- f six")])
    async with Client(server) as client:
        first = await client.call_tool("expand", {"id": 1, "num_subtasks": 3})
        refused = await client.call_tool("expand", {"id": 1}, raise_on_error=False)
        forced = await client.call_tool("expand", {"id": 1, "num_subtasks": 2, "force": True})
    assert first.structured_content is not None and len(first.structured_content["subtasks"]) == 3
    assert refused.is_error and "force=true" in refused.content[0].text
    assert forced.structured_content is not None and len(forced.structured_content["subtasks"]) == 2
    assert len(read_board(ws)["master"]["tasks"][0]["subtasks"]) == 2


async def test_expand_without_details_uses_a_generic_split_and_says_so(tmp_path: Path) -> None:
    server, _ = make_server(tmp_path)
    async with Client(server) as client:
        await client.call_tool("add", {"title": "Ship it"})
        result = await client.call_tool("expand", {"id": 1})
    assert result.structured_content is not None
    assert [s["title"] for s in result.structured_content["subtasks"]] == [
        "Design Ship it", "Implement Ship it", "Test Ship it"]
    assert result.structured_content["warnings"]


async def test_analyze_scores_complexity_with_a_reason(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    hard = task(2, title="OAuth login with encrypted token cache and database migration",
                details="\n".join(f"- step {i} touching the auth schema" for i in range(9)),
                dependencies=[1])
    write_board(ws, [task(1, title="Fix typo in README"), hard, task(3, status="done")])
    result = await call(server, "analyze", {})
    rows = {r["id"]: r for r in result["tasks"]}
    assert set(rows) == {1, 2}  # done tasks are not scored by default
    assert rows[1]["score"] <= 2 and rows[1]["recommended_subtasks"] == 0
    assert rows[2]["score"] >= 6 and rows[2]["recommended_subtasks"] >= 5
    assert "9 listed steps" in rows[2]["reason"] and "auth" in rows[2]["reason"]
    only = await call(server, "analyze", {"ids": [3]})
    assert [r["id"] for r in only["tasks"]] == [3]


async def test_done_cascades_to_subtasks(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, status="in-progress", subtasks=[sub(1, "done"), sub(2), sub(3, "cancelled")])])
    result = await call(server, "update", {"id": 1, "status": "done"})
    assert result["changed"] == ["status of 1: in-progress → done", "status of 1.2: pending → done"]
    subs = read_board(ws)["master"]["tasks"][0]["subtasks"]
    assert [s["status"] for s in subs] == ["done", "done", "cancelled"]


async def test_update_changes_fields_and_reports_them(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1)])
    result = await call(server, "update", {"id": 1, "title": "New", "details": "d", "priority": "low"})
    assert result["changed"] == ["title of 1 updated", "details of 1 updated", "priority of 1 updated"]
    assert result["task"]["title"] == "New"
    stored = read_board(ws)["master"]["tasks"][0]
    assert (stored["title"], stored["details"], stored["priority"]) == ("New", "d", "low")


async def test_bad_status_and_priority_values_are_rejected(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1)])
    async with Client(server) as client:
        status = await client.call_tool("update", {"id": 1, "status": "finished"}, raise_on_error=False)
        priority = await client.call_tool("add", {"title": "x", "priority": "urgent"}, raise_on_error=False)
    assert status.is_error and priority.is_error


async def test_add_subtask_numbers_it_under_its_parent(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, subtasks=[sub(1)])])
    result = await call(server, "add", {"title": "Second step", "parent_id": 1, "dependencies": [1]})
    assert result["task"]["id"] == "1.2" and result["task"]["parent_id"] == 1
    assert read_board(ws)["master"]["tasks"][0]["subtasks"][1]["dependencies"] == [1]


async def test_add_to_an_unknown_parent_is_an_error(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1)])
    async with Client(server) as client:
        result = await client.call_tool("add", {"title": "x", "parent_id": 7}, raise_on_error=False)
    assert result.is_error and "Task 7 not found" in result.content[0].text


async def test_the_family_exposes_seven_annotated_tools_with_output_schemas(tmp_path: Path) -> None:
    server, _ = make_server(tmp_path)
    async with Client(server) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert sorted(tools) == ["add", "analyze", "expand", "list", "next", "parse_prd", "update"]
    assert tools["list"].annotations is not None and tools["list"].annotations.read_only_hint
    assert tools["next"].annotations is not None and tools["next"].annotations.read_only_hint
    assert tools["update"].annotations is not None and tools["update"].annotations.destructive_hint
    for tool in tools.values():
        assert tool.output_schema is not None
        assert tool.description
        assert all("description" in p for p in tool.input_schema["properties"].values())


async def test_parse_prd_reads_task_masters_default_prd_file(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / ".taskmaster" / "docs").mkdir(parents=True)
    (ws / ".taskmaster" / "docs" / "prd.txt").write_text("## Features\n- Login page\n- Logout button\n")
    result = await call(server, "parse_prd", {})
    assert [t["title"] for t in result["created"]] == ["Login page", "Logout button"]


async def test_a_subtask_can_be_updated_by_its_dotted_id(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    write_board(ws, [task(1, status="in-progress", subtasks=[sub(1), sub(2)])])
    result = await call(server, "update", {"id": "1.2", "status": "done", "details": "shipped"})
    assert result["task"]["id"] == "1.2" and result["task"]["status"] == "done"
    stored = read_board(ws)["master"]["tasks"][0]["subtasks"][1]
    assert (stored["status"], stored["details"]) == ("done", "shipped")


async def test_parse_prd_reads_task_masters_prd_template_sections(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    prd = (Path(__file__).parent / "data" / "taskmaster_style_prd.md").read_text()
    await call(server, "parse_prd", {"prd_text": prd})
    tasks = {t["title"]: t for t in read_board(ws)["master"]["tasks"]}
    assert list(tasks) == [
        "Snippet storage", "Search", "Sharing", "Technical Architecture",
        "Project skeleton, packaging and CI", "Snippet storage with migrations",
        "Full-text search command", "Share service with expiring links", "Sync between machines"]
    assert tasks["Search"]["description"] == "Full-text search over titles and bodies, ranked by recency."
    # phase 2 waits for all of phase 1; "future enhancements" are low priority and unordered
    assert tasks["Full-text search command"]["dependencies"] == [5, 6]
    assert tasks["Share service with expiring links"]["dependencies"] == [5, 6]
    assert tasks["Sync between machines"]["priority"] == "low"
    assert tasks["Sync between machines"]["dependencies"] == []
