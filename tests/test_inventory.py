"""The public tool names: exactly these 43, sorted. Change them only with a README migration note."""

from __future__ import annotations

import pytest
from fastmcp import Client

from kimi_mcp.server import build_mcp
from tests.test_docs import TOOLS

pytestmark = pytest.mark.anyio


async def test_the_server_exposes_exactly_the_43_public_tools(deps) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_mcp(deps)) as client:
        names = sorted(t.name for t in await client.list_tools())
    assert names == TOOLS


async def test_every_tool_has_a_docstring_descriptions_annotations_and_an_output_schema(deps) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_mcp(deps), mode="legacy") as client:
        tools = await client.list_tools()
    for tool in tools:
        assert tool.description and len(tool.description) > 20, tool.name
        hints = tool.annotations
        assert hints is not None, tool.name
        for hint in ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint"):
            assert getattr(hints, hint) is not None, f"{tool.name} leaves {hint} unset"
        assert tool.output_schema, f"{tool.name} has no output schema"
        for name, prop in (tool.input_schema.get("properties") or {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


async def test_families_setting_mounts_only_the_chosen_families(make_deps) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps(mcp={"families": ["json", "thinking"]})
    async with Client(build_mcp(deps)) as client:
        names = sorted(t.name for t in await client.list_tools())
    assert names == [t for t in TOOLS if t.startswith(("json_", "thinking_"))]


async def test_the_resources_keep_their_public_uris(deps) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_mcp(deps)) as client:
        uris = {str(r.uri) for r in await client.list_resources()}
        templates = {t.uri_template for t in await client.list_resource_templates()}
    assert {"stats://summary", "stats://sessions", "stats://tools", "stats://providers",
            "thinking://sessions"} <= uris
    assert "stats://sessions/{session_id}" in templates
    assert any(t.startswith("thinking://sessions/{") for t in templates)


def test_the_settings_keep_their_public_sections_and_cluster_keys() -> None:
    from kimi_mcp.config import ClusterSettings, Settings

    assert sorted(Settings.model_fields) == [
        "cluster", "context", "data_dir", "database", "logwatch", "mcp", "memory", "providers",
        "routing", "server", "tasks", "upstream"]
    assert sorted(ClusterSettings.model_fields) == ["key_prefix", "redis_url"]


async def test_read_only_mode_lists_only_tools_annotated_read_only_and_none_that_writes(make_deps) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps(mcp={"read_only": True})
    async with Client(build_mcp(deps), mode="legacy") as client:
        listed = await client.list_tools()
        for tool in listed:
            assert tool.annotations is not None and tool.annotations.read_only_hint, tool.name
        names = {t.name for t in listed}
        refused = [name for name in WRITES if name in names]
        for name in WRITES:
            result = await client.call_tool(name, {}, raise_on_error=False)
            assert result.is_error, f"{name} answered in read-only mode"
    assert refused == []
    assert names and names == set(TOOLS) - set(WRITES)


async def test_the_tools_that_write_are_exactly_those_not_annotated_read_only(deps) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_mcp(deps), mode="legacy") as client:
        tools = await client.list_tools()
    assert sorted(t.name for t in tools if not (t.annotations and t.annotations.read_only_hint)) \
        == sorted(WRITES)


WRITES = [  # every tool that changes a file, the board, the memory store (a recall counts) or the thought log
    "fs_batch", "fs_compress", "fs_copy", "fs_create_directory", "fs_delete", "fs_edit_file",
    "fs_edit_lines", "fs_extract_archive", "fs_move", "fs_sync_directories", "fs_write_file",
    "json_update",
    "memory_consolidate", "memory_delete", "memory_recall", "memory_store", "memory_update",
    "tasks_add", "tasks_analyze", "tasks_expand", "tasks_parse_prd", "tasks_update",
    "thinking_sequential",
]
