"""A few fs calls through `kimi-mcp stdio` as a real subprocess (the way an agent runs it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_fs_tools_work_and_refuse_over_stdio(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KIMI_MCP_")},
        "KIMI_MCP_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    transport = StdioTransport(
        sys.executable,
        ["-m", "kimi_mcp", "stdio", "--workspace", str(ws)],
        env=env,
        cwd=str(tmp_path),
    )
    with anyio.fail_after(55):
        async with Client(transport) as client:
            names = {t.name for t in await client.list_tools()}
            written = await client.call_tool(
                "fs_write_file", {"path": "hello.txt", "content": "hi\n"}
            )
            read = await client.call_tool("fs_read_file", {"path": "hello.txt"})
            denied = await client.call_tool(
                "fs_read_file", {"path": "../secret.txt"}, raise_on_error=False
            )
    assert {"fs_read_file", "fs_write_file", "fs_search_content"} <= names
    assert written.structured_content is not None and written.structured_content["created"] is True
    assert read.structured_content is not None and read.structured_content["content"] == "hi\n"
    assert denied.is_error
    assert denied.content[0].text.startswith("Access denied: path outside the workspace")  # type: ignore[union-attr]
    assert (ws / "hello.txt").read_text() == "hi\n"
