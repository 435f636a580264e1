"""A dashboard on `kimi-mcp serve` sees, live on `/ws`, the tool calls an editor makes through
its own `kimi-mcp stdio` process on the same data dir (two real processes, one SQLite ledger)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dashboard_harness import FakeProvider, Server, write_config
from websockets.sync.client import connect

import tests.core.test_stdio_ledger as stdio

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_websocket_on_serve_receives_a_tool_call_made_through_a_separate_stdio_process(
        tmp_path: Path) -> None:
    with FakeProvider() as fake:
        server = Server(tmp_path, write_config(tmp_path / "kimi-mcp.toml", fake.base_url)).start()
        try:
            with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=30) as ws:
                assert json.loads(ws.recv(timeout=30))["type"] == "hello"
                editor = stdio.Stdio(tmp_path)  # same data dir, its own process
                try:
                    editor.start()
                    result = editor.tool("json_validate", {"document": "{\"live\": true}"})
                    while True:
                        event = json.loads(ws.recv(timeout=30))
                        if event["type"] == "tool_call":
                            break
                finally:
                    assert editor.proc.stdin is not None
                    editor.proc.stdin.close()
                    code, err = editor.finish()
        finally:
            server.stop()
    assert not result.get("isError") and code == 0, err
    assert event["data"]["tool"] == "json_validate" and event["data"]["family"] == "json"
