"""A valid call of every public tool over a small prepared workspace (not a test module).

`SAMPLES[tool](ctx)` gives arguments that succeed on a fresh workspace made by `prepare`;
every array/object property a tool declares is given a value, so the JSON-string test covers
all of them.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastmcp import Client

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a2d6c3a70000000049454e44ae426082"
)


@dataclass
class Ctx:
    workspace: Path
    memory_id: str


def prepare(ws: Path) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "a.txt").write_text("alpha\nbeta\ngamma\n")
    (ws / "b.txt").write_text("alpha\nBETA\n")
    (ws / "data.json").write_text(json.dumps({"name": "kimi", "items": [1, 2, 3]}))
    (ws / "img.png").write_bytes(PNG)
    (ws / "src").mkdir()
    (ws / "src" / "x.py").write_text("print('x')\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inside.txt", "packed\n")
    (ws / "pack.zip").write_bytes(buffer.getvalue())
    board = ws / ".taskmaster" / "tasks" / "tasks.json"
    board.parent.mkdir(parents=True)
    tasks = [
        {"id": 1, "title": "Design", "description": "Design the API", "status": "pending",
         "priority": "high", "dependencies": [], "details": "1. Sketch\n2. Review",
         "testStrategy": "", "subtasks": []},
        {"id": 2, "title": "Build", "description": "Build it", "status": "pending",
         "priority": "medium", "dependencies": [1], "details": "", "testStrategy": "",
         "subtasks": []},
    ]
    board.write_text(json.dumps({"master": {"tasks": tasks, "metadata": {}}}))


async def setup(client: Client, ws: Path) -> Ctx:
    prepare(ws)
    stored = await client.call_tool("memory_store", {"content": "the build uses make"})
    data = stored.structured_content or {}
    return Ctx(workspace=ws, memory_id=str(data["id"]))


Sample = Callable[[Ctx], dict[str, Any]]

SAMPLES: dict[str, Sample] = {
    "fs_batch": lambda c: {"operations": [{"op": "mkdir", "path": "made"}]},
    "fs_compress": lambda c: {"paths": ["a.txt"], "output_path": "out.zip"},
    "fs_copy": lambda c: {"source": "a.txt", "destination": "copy.txt"},
    "fs_create_directory": lambda c: {"path": "newdir"},
    "fs_delete": lambda c: {"path": "b.txt"},
    "fs_diff_files": lambda c: {"path_a": "a.txt", "path_b": "b.txt"},
    "fs_directory_tree": lambda c: {"exclude_patterns": ["*.log"]},
    "fs_disk_usage": lambda c: {},
    "fs_edit_file": lambda c: {"path": "a.txt", "edits": [{"old_text": "beta", "new_text": "B"}]},
    "fs_edit_lines": lambda c: {"path": "a.txt",
                                "edits": [{"line": 1, "mode": "replace", "text": "A"}]},
    "fs_extract_archive": lambda c: {"archive_path": "pack.zip", "destination": "unpacked"},
    "fs_extract_lines": lambda c: {"path": "a.txt", "start_line": 2},
    "fs_find_large_files": lambda c: {"min_size_bytes": 1, "exclude_patterns": ["*.log"]},
    "fs_get_file_info": lambda c: {"path": "a.txt"},
    "fs_hash_file": lambda c: {"path": "a.txt"},
    "fs_list_allowed_directories": lambda c: {},
    "fs_list_directory": lambda c: {},
    "fs_move": lambda c: {"source": "b.txt", "destination": "moved.txt"},
    "fs_read_file": lambda c: {"path": "a.txt"},
    "fs_read_media_file": lambda c: {"path": "img.png"},
    "fs_read_multiple_files": lambda c: {"paths": ["a.txt", "b.txt"]},
    "fs_search_content": lambda c: {"regex": "alpha", "exclude_patterns": ["*.log"]},
    "fs_search_files": lambda c: {"pattern": "*.txt", "exclude_patterns": ["*.log"]},
    "fs_sync_directories": lambda c: {"source": "src", "destination": "mirror",
                                      "exclude_patterns": ["*.log"]},
    "fs_write_file": lambda c: {"path": "new.txt", "content": "new\n"},
    "json_query": lambda c: {"expression": "$.items[*]", "document": {"items": [1, 2]}},
    "json_structure": lambda c: {"document": {"items": [1, 2], "name": "x"}},
    "json_update": lambda c: {"path": "data.json", "expression": "$.name", "value": "k2"},
    "json_validate": lambda c: {"document": {"name": "x"},
                                "schema": {"type": "object", "required": ["name"]}},
    "memory_consolidate": lambda c: {},
    "memory_delete": lambda c: {"ids": [c.memory_id]},
    "memory_get": lambda c: {"ids": [c.memory_id]},
    "memory_recall": lambda c: {"query": "build", "tags": []},
    "memory_store": lambda c: {"content": "tests run with pytest", "tags": ["dev"],
                               "metadata": {"source": "sample"}},
    "memory_update": lambda c: {"id": c.memory_id, "tags": ["build"],
                                "metadata": {"checked": True}},
    "tasks_add": lambda c: {"title": "Write docs", "dependencies": [1]},
    "tasks_analyze": lambda c: {"ids": [1, 2]},
    "tasks_expand": lambda c: {"id": 1},
    "tasks_list": lambda c: {"ids": [1, 2], "status": ["pending", "in-progress"]},
    "tasks_next": lambda c: {},
    "tasks_parse_prd": lambda c: {"prd_text": "# Login\n- Users sign in with email", "tag": "prd"},
    "tasks_update": lambda c: {"id": 2, "add_dependencies": [], "remove_dependencies": [1]},
    "thinking_sequential": lambda c: {"thought": "first step", "thought_number": 1,
                                      "total_thoughts": 2, "next_thought_needed": True},
}
