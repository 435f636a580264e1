"""claude-task-master's own CLI (npm task-master-ai 0.43.1) and the tasks tools on one board.

Installed outside the repo by scripts/test:
    npm install --prefix ~/.cache/kimi-mcp-tests/task-master task-master-ai@0.43.1
or pointed to with KIMI_MCP_TASKMASTER (the install dir, or dist/task-master.js).

Each CLI run loads task-master's whole AI stack (seconds of CPU), so the tests share few runs.
task-master runs with auto-update off (TASKMASTER_SKIP_AUTO_UPDATE, CI) and its anonymous
telemetry off (.taskmaster/config.json), so it never reaches the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from kimi_mcp.server import build_mcp

CLI = Path("node_modules/task-master-ai/dist/task-master.js")
DEFAULT_DIR = Path.home() / ".cache" / "kimi-mcp-tests" / "task-master"
BOARD = Path(".taskmaster") / "tasks" / "tasks.json"


def taskmaster_cli() -> Path | None:
    configured = os.environ.get("KIMI_MCP_TASKMASTER")
    for candidate in ([Path(configured)] if configured else []) + [DEFAULT_DIR]:
        path = candidate if candidate.suffix == ".js" else candidate / CLI
        if path.is_file():
            return path
    return None


CLI_PATH = taskmaster_cli()
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(
        CLI_PATH is None or shutil.which("node") is None,
        reason="task-master CLI not installed: npm install --prefix ~/.cache/kimi-mcp-tests/"
               "task-master task-master-ai@0.43.1 (or set KIMI_MCP_TASKMASTER)",
    ),
    pytest.mark.timeout(900),
]


def prepare(ws: Path, board: dict[str, Any] | None = None) -> None:
    (ws / BOARD).parent.mkdir(parents=True, exist_ok=True)
    (ws / ".taskmaster" / "config.json").write_text(json.dumps({"global": {"anonymousTelemetry": False}}))
    (ws / BOARD).write_text(json.dumps(board or {"master": {"tasks": [], "metadata": {}}}, indent=2))


def tm(ws: Path, *args: str) -> str:
    """Run the task-master CLI in the workspace; its stdout."""
    assert CLI_PATH is not None
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"TASKMASTER_SKIP_AUTO_UPDATE": "1", "CI": "1", "HOME": str(ws.parent / "home"),
                "NO_COLOR": "1", "FORCE_COLOR": "0"})
    done = subprocess.run(["node", str(CLI_PATH), *args], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"task-master {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def tm_json(ws: Path, *args: str) -> Any:
    out = tm(ws, *args)  # a notice line may come first, other text after the document
    start = next(i for i, line in enumerate(out.splitlines(keepends=True)) if line.startswith("{"))
    text = "".join(out.splitlines(keepends=True)[start:])
    return json.JSONDecoder().raw_decode(text)[0]


def tm_next(ws: Path, tag: str = "master") -> str | None:
    found = tm_json(ws, "next", "--tag", tag, "-f", "json")["task"]
    return None if found is None else str(found["id"])


async def kimi_next(client: Client, tag: str = "master") -> str | None:
    found = (await client.call_tool("tasks_next", {"tag": tag})).structured_content["task"]
    return None if found is None else str(found["id"])


def board(ws: Path) -> dict[str, Any]:
    return json.loads((ws / BOARD).read_text())  # type: ignore[no-any-return]


def shape(tasks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What both sides must agree on, ids and dependencies as text."""
    return [(str(t["id"]), t["title"], t["status"], sorted(str(d) for d in t["dependencies"]),
             [(str(s["id"]).split(".")[-1], s["title"], s["status"]) for s in t.get("subtasks") or []])
            for t in tasks]


async def test_task_master_reads_a_board_kimi_mcp_wrote_and_agrees_on_next(make_deps) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps()
    ws = deps.roots[0]
    prepare(ws)
    async with Client(build_mcp(deps)) as client:
        await client.call_tool("tasks_add", {"title": "Write docs"})
        await client.call_tool("tasks_add", {"title": "Ship", "description": "Release it",
                                             "dependencies": [1], "priority": "high"})
        await client.call_tool("tasks_add", {"title": "Outline", "parent_id": 1})
        await client.call_tool("tasks_add", {"title": "Draft", "parent_id": 1,
                                             "dependencies": ["1.1"]})
        await client.call_tool("tasks_add", {"title": "Plan release", "details": "1. Tag\n2. Publish"})
        await client.call_tool("tasks_expand", {"id": 3})
        await client.call_tool("tasks_update", {"id": 1, "status": "in-progress"})
        await client.call_tool("tasks_update", {"id": "1.1", "status": "done"})
        ours = (await client.call_tool("tasks_list", {"with_subtasks": True})).structured_content
        our_next = await kimi_next(client)

    theirs = tm_json(ws, "list", "--json", "--with-subtasks")
    assert shape(theirs["tasks"]) == shape(ours["tasks"])
    assert theirs["tasks"][0]["description"] == "Write docs"
    assert tm_next(ws) == our_next == "1.2"


async def test_kimi_mcp_reads_and_keeps_a_board_task_master_wrote(make_deps) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps()
    ws = deps.roots[0]
    prepare(ws)
    tm(ws, "add-task", "--title", "Design API", "--description", "Endpoints and shapes",
       "--priority", "high")
    tm(ws, "add-task", "--title", "Build", "--description", "Implement it", "--dependencies", "1")
    tm(ws, "add-subtask", "--parent", "1", "--title", "Sketch", "--description", "")
    tm(ws, "add-subtask", "--parent", "1", "--title", "Review", "--description", "With the team",
       "--dependencies", "1.1")
    tm(ws, "set-status", "--id", "1", "--status", "in-progress")  # task-master's core: "1" ids
    written = board(ws)

    async with Client(build_mcp(deps)) as client:
        listed = (await client.call_tool("tasks_list", {"with_subtasks": True})).structured_content
        assert [(r["id"], r["dependencies"]) for r in listed["tasks"]] == [(1, []), (2, [1])]
        assert [s["id"] for s in listed["tasks"][0]["subtasks"]] == ["1.1", "1.2"]
        assert await kimi_next(client) == "1.1"
        await client.call_tool("tasks_update", {"id": "1.1", "status": "done"})
        await client.call_tool("tasks_add", {"title": "Deploy", "dependencies": [2]})
        ours = (await client.call_tool("tasks_list", {"with_subtasks": True})).structured_content
        our_next = await kimi_next(client)

    after = board(ws)
    tasks = after["master"]["tasks"]
    expected = json.loads(json.dumps(written["master"]["tasks"]))
    expected[0]["subtasks"][0]["status"] = "done"
    assert tasks[:2] == expected  # every field task-master wrote, in its types, kept
    assert (tasks[2]["id"], tasks[2]["dependencies"], tasks[2]["description"]) == ("3", ["2"], "Deploy")
    theirs = tm_json(ws, "list", "--json", "--with-subtasks")
    assert shape(theirs["tasks"]) == shape(ours["tasks"])
    assert tm_next(ws) == our_next == "1.2"


def t(id: int, status: str = "pending", priority: str = "medium", deps: list[Any] | None = None,
      subtasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": id, "title": f"Task {id}", "description": f"Do {id}", "status": status,
            "priority": priority, "dependencies": deps or [], "details": "", "testStrategy": "",
            "subtasks": subtasks or []}


def s(id: int, status: str = "pending", deps: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": id, "title": f"Sub {id}", "description": "", "status": status,
            "dependencies": deps or [], **extra}


# One tag per rule of task-master's `next`; each is asked of both sides.
NEXT_BOARDS: dict[str, list[dict[str, Any]]] = {
    "priority-then-deps-then-id": [t(1, "done"), t(2, deps=[1]), t(3, priority="high", deps=[1]),
                                   t(4, priority="high"), t(5, priority="critical", deps=[9])],
    "subtasks-of-in-progress-first": [
        t(1, priority="critical"),
        t(2, "in-progress", "low", subtasks=[s(1, "done"), s(2, deps=[1]), s(3, deps=[2])]),
        t(3, "in-progress", "high", subtasks=[s(1, deps=["2.3"]), s(2, "in-progress", priority="low")])],
    "what-counts-as-done": [
        t(1, "review", subtasks=[s(1, "done")]), t(2, "cancelled"), t(3, "done"),
        t(4, priority="critical", deps=["1.1"]), t(5, priority="high", deps=[2]),
        t(6, priority="low", deps=[3]), t(7, "deferred", "critical")],
    "string-ids": [dict(t(1, "done"), id="1"), dict(t(2, deps=["1"]), id="2"),
                   dict(t(3, priority="high", deps=["2"]), id="3")],
    "nothing-ready": [t(1, deps=[2]), t(2, deps=[1]), t(3, "done")],
}


@pytest.mark.parametrize("tag", sorted(NEXT_BOARDS))
async def test_tasks_next_agrees_with_task_master_next(make_deps, tag: str) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps()
    ws = deps.roots[0]
    prepare(ws, {name: {"tasks": tasks, "metadata": {}} for name, tasks in NEXT_BOARDS.items()})
    async with Client(build_mcp(deps)) as client:
        ours = await kimi_next(client, tag)
    assert tm_next(ws, tag) == ours
