"""Helpers shared by the tasks tests (not a test module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastmcp import FastMCP
from kimi_mcp.servers.tasks import build_server

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps

BOARD = Path(".taskmaster") / "tasks" / "tasks.json"


def make_server(tmp_path: Path, *, llm_model: str = "", read_only: bool = False,
                providers: dict[str, Any] | None = None) -> tuple[FastMCP, Path]:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    settings = load_settings(
        overrides={"data_dir": str(tmp_path / "data"),
                   "mcp": {"workspace": str(workspace), "read_only": read_only},
                   "tasks": {"llm_model": llm_model}, "providers": providers or {}},
        launch_dir=tmp_path,
    )
    deps = Deps(settings, roots=[workspace.resolve()])
    return build_server(deps), workspace.resolve()


def task(id: int, status: str = "pending", priority: str = "medium",
         dependencies: list[Any] | None = None, subtasks: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": id, "title": f"Task {id}", "description": f"Do {id}",
                            "status": status, "priority": priority,
                            "dependencies": dependencies or [], "details": "", "testStrategy": ""}
    if subtasks is not None:
        item["subtasks"] = subtasks
    item.update(extra)
    return item


def sub(id: int, status: str = "pending", dependencies: list[Any] | None = None,
        **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": id, "title": f"Sub {id}", "description": "", "status": status,
                            "dependencies": dependencies or []}
    item.update(extra)
    return item


def write_board(workspace: Path, tasks: list[dict[str, Any]], tag: str = "master") -> Path:
    path = workspace / BOARD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({tag: {"tasks": tasks, "metadata": {"created": "2025-01-01T00:00:00.000Z"}}}))
    return path


def read_board(workspace: Path) -> dict[str, Any]:
    data = json.loads((workspace / BOARD).read_text())
    assert isinstance(data, dict)
    return data
