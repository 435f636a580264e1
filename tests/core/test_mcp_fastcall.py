"""The stdio front's direct tool calls answer exactly as FastMCP and the SDK answer the same
call over the stdio transport, refusals included, and record every call in the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from tool_samples import SAMPLES, Ctx, prepare

from kimi_mcp.deps import Deps
from kimi_mcp.mcp_fastcall import FastCalls
from kimi_mcp.server import build_mcp, drain_tool_calls
from kimi_mcp.stdio import converse
from kimi_mcp.stdio_front import SNAPSHOT_PATH

pytestmark = pytest.mark.anyio

_LISTED = json.loads(SNAPSHOT_PATH.read_text())["tool_lists"][0]["tools"]
READ_ONLY = sorted(t["name"] for t in _LISTED if t["annotations"]["readOnlyHint"])

REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("fs_read_file", {"path": "../outside.txt"}),
    ("fs_read_file", {}),
    ("fs_read_file", {"path": "a.txt", "bogus": 1}),
    ("fs_read_file", {"path": "a.txt", "head": "many"}),
    ("fs_read_file", {"path": "missing.txt"}),
    ("json_query", {"expression": "$[", "document": {}}),
    ("tasks_list", {"ids": "[1, 99]"}),
]
COERCED: list[tuple[str, dict[str, Any]]] = [
    ("fs_read_multiple_files", {"paths": "[\"a.txt\", \"b.txt\"]"}),
    ("fs_list_directory", {"path": None, "pattern": None}),
    ("fs_extract_lines", {"path": "a.txt", "startLine": "2"}),
]


def _calls(ws: Path) -> list[tuple[str, dict[str, Any]]]:
    ctx = Ctx(workspace=ws, memory_id="0")
    return [(name, SAMPLES[name](ctx)) for name in READ_ONLY] + REFUSED + COERCED


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", "2024-11-05"])
async def test_a_direct_call_answers_as_the_sdk_answers(deps: Deps, tmp_path: Path,
                                                        version: str) -> None:
    ws = tmp_path / "ws"
    prepare(ws)
    calls = FastCalls()
    server = build_mcp(deps, calls=calls)
    plan = _calls(ws)
    opening = [
        {"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    requests = [{"jsonrpc": "2.0", "id": n, "method": "tools/call",
                 "params": {"name": name, "arguments": arguments}}
                for n, (name, arguments) in enumerate(plan)]
    answered = await converse(server, opening + requests)
    refused = [n for n in answered if answered[n].get("result", {}).get("isError")]
    assert len(refused) >= len(REFUSED)
    for n, (name, arguments) in enumerate(plan):
        assert calls.takes(name, {"name": name, "arguments": arguments})
        direct = await calls.answer(name, arguments, version)
        assert direct == answered[n]["result"], (name, arguments)
    assert drain_tool_calls(server)
    deps.ledger.flush()
    with deps.ledger.read() as db:
        recorded = db.execute(text("SELECT tool FROM tool_call")).scalars().all()
    assert sorted(recorded) == sorted(name for name, _ in plan * 2)


async def test_calls_the_front_cannot_answer_as_fastmcp_would_go_the_ordinary_way(
        deps: Deps) -> None:
    calls = FastCalls()
    build_mcp(deps, calls=calls)
    assert not calls.takes("no_such_tool", {"name": "no_such_tool"})
    assert not calls.takes("fs_read_file", {"name": "fs_read_file",
                                            "_meta": {"progressToken": 1}})
    assert not calls.takes("fs_read_file", {"name": "fs_read_file", "task": {"ttl": 1}})
    assert not calls.takes("fs_read_file", {"name": "fs_read_file", "arguments": "[]"})
    assert calls.takes("fs_read_file", {"name": "fs_read_file", "_meta": {}})
