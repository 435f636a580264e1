"""The fs family's public surface: names, hints, schemas, read-only mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastmcp import Client, FastMCP
from fs_support import make_deps
from kimi_mcp.servers.fs import build_server

pytestmark = pytest.mark.anyio

READ_TOOLS = [
    "diff_files",
    "directory_tree",
    "disk_usage",
    "extract_lines",
    "find_large_files",
    "get_file_info",
    "hash_file",
    "list_allowed_directories",
    "list_directory",
    "read_file",
    "read_media_file",
    "read_multiple_files",
    "search_content",
    "search_files",
]
WRITE_TOOLS = [
    "batch",
    "compress",
    "copy",
    "create_directory",
    "delete",
    "edit_file",
    "edit_lines",
    "extract_archive",
    "move",
    "sync_directories",
    "write_file",
]
DESTRUCTIVE = {
    "batch",
    "copy",
    "delete",
    "edit_file",
    "edit_lines",
    "extract_archive",
    "move",
    "sync_directories",
    "write_file",
}


async def test_the_family_has_exactly_the_25_public_tools(tmp_path: Path) -> None:
    async with Client(build_server(make_deps(tmp_path))) as client:
        names = sorted(t.name for t in await client.list_tools())
    assert names == sorted(READ_TOOLS + WRITE_TOOLS)
    assert len(names) == 25


async def test_mounted_under_fs_every_name_gets_the_prefix(tmp_path: Path) -> None:
    root = FastMCP("root")
    root.mount(build_server(make_deps(tmp_path)), namespace="fs")
    async with Client(root) as client:
        names = {t.name for t in await client.list_tools()}
        got = await client.call_tool("fs_list_allowed_directories", {})
    assert names == {f"fs_{n}" for n in READ_TOOLS + WRITE_TOOLS}
    assert got.structured_content == {"roots": [str((tmp_path / "ws").resolve())]}


async def test_every_tool_documents_itself_and_sets_all_four_hints(tmp_path: Path) -> None:
    async with Client(build_server(make_deps(tmp_path))) as client:
        tools = await client.list_tools()
    for tool in tools:
        hints = tool.annotations
        assert hints is not None, tool.name
        assert hints.read_only_hint is (tool.name in READ_TOOLS), tool.name
        assert hints.destructive_hint is (tool.name in DESTRUCTIVE), tool.name
        assert hints.idempotent_hint is not None and hints.open_world_hint is False, tool.name
        assert tool.description and tool.description[0].isupper(), tool.name
        assert tool.output_schema is not None and tool.output_schema.get("type") == "object", (
            tool.name
        )
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


async def test_read_only_mode_registers_no_tool_that_writes(tmp_path: Path) -> None:
    async with Client(build_server(make_deps(tmp_path, read_only=True))) as client:
        tools = await client.list_tools()
        missing = await client.call_tool(
            "write_file", {"path": "x", "content": "y"}, raise_on_error=False
        )
    assert sorted(t.name for t in tools) == READ_TOOLS
    assert all(t.annotations and t.annotations.read_only_hint for t in tools)
    assert missing.is_error
    assert not (tmp_path / "ws" / "x").exists()
