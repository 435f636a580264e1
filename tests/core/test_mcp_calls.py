"""What real clients send, through `fastmcp.Client(build_mcp(deps))`: `null` for every optional
parameter they do not set, arrays and objects as JSON text, camelCase keys; and what a refused
or failed call says back (the public tool and parameter, what to send; nothing internal)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from tool_samples import SAMPLES, Ctx, setup

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps, build_deps
from kimi_mcp.mcp_arguments import accepted_types
from kimi_mcp.server import build_mcp
from kimi_mcp.workspace import Workspace
from tests.test_docs import TOOLS

pytestmark = pytest.mark.anyio

INTERNALS = ("validation error", "pydantic", "call[", "input_value", "Traceback", "errors.pydantic.dev")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastMCP, Deps]]:
    """One server for the module; each test gets a fresh workspace (`deps.roots`)."""
    base = tmp_path_factory.mktemp("calls")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(base / "xdg"))
        settings = load_settings(
            overrides={"data_dir": str(base / "data"), "mcp": {"workspace": str(base)},
                       "memory": {"embedder": "hash"}, "logwatch": {"enabled": False}},
            launch_dir=base,
        )
        deps = build_deps(settings)
        deps.ledger.start()
        yield build_mcp(deps), deps
        deps.close()


@pytest.fixture
async def client(served: tuple[FastMCP, Deps], tmp_path: Path) -> AsyncIterator[tuple[Client, Ctx]]:
    server, deps = served
    ws = (tmp_path / "ws").resolve()
    deps.roots[:] = [ws]
    async with Client(server) as connected:
        yield connected, await setup(connected, ws)


async def _schemas(client: Client) -> dict[str, dict[str, Any]]:
    return {t.name: t.input_schema for t in await client.list_tools()}


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _assert_clean(text: str) -> None:
    for leak in INTERNALS:
        assert leak not in text, f"{leak!r} leaks into: {text}"


def test_every_public_tool_has_a_sample_call() -> None:
    assert sorted(SAMPLES) == TOOLS


@pytest.mark.parametrize("tool", TOOLS)
async def test_null_for_every_unset_optional_parameter_means_not_given(client, tool: str) -> None:  # type: ignore[no-untyped-def]
    connected, ctx = client
    schema = (await _schemas(connected))[tool]
    args = SAMPLES[tool](ctx)
    optional = [p for p in schema["properties"] if p not in schema.get("required", ())]
    with_nulls = {**{p: None for p in optional if p not in args}, **args}

    result = await connected.call_tool(tool, with_nulls, raise_on_error=False)

    assert not result.is_error, _text(result)
    if len(with_nulls) > len(args) and tool in READ_ONLY:
        plain = await connected.call_tool(tool, args, raise_on_error=False)
        assert _text(result) == _text(plain)


@pytest.mark.parametrize("tool", TOOLS)
async def test_arrays_and_objects_sent_as_json_text_are_accepted(client, tool: str) -> None:  # type: ignore[no-untyped-def]
    connected, ctx = client
    schema = (await _schemas(connected))[tool]
    args = SAMPLES[tool](ctx)
    containers = [p for p, s in schema["properties"].items()
                  if accepted_types(s, schema) & {"array", "object"}
                  and not accepted_types(s, schema) & {"any"}]
    assert set(containers) <= set(args), f"the sample for {tool} leaves out {containers}"
    as_text = {k: json.dumps(v) if k in containers else v for k, v in args.items()}

    result = await connected.call_tool(tool, as_text, raise_on_error=False)

    assert not result.is_error, _text(result)
    if containers and tool in READ_ONLY and not any(
            "string" in accepted_types(schema["properties"][p], schema) for p in containers):
        native = await connected.call_tool(tool, args, raise_on_error=False)
        assert _text(result) == _text(native)


READ_ONLY = {t for t in TOOLS if t.startswith(("fs_read", "fs_list", "fs_get", "fs_hash",
                                              "fs_diff", "fs_search", "fs_find", "fs_disk",
                                              "fs_directory", "fs_extract_lines", "json_query",
                                              "json_structure", "json_validate", "tasks_list",
                                              "tasks_next", "memory_get"))}


async def test_a_single_item_where_an_array_is_expected_becomes_a_one_item_array(client) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    result = await connected.call_tool("fs_read_multiple_files", {"paths": "a.txt"})
    assert result.structured_content["succeeded"] == 1


async def test_python_literal_lists_and_nested_json_text_are_read_by_the_schema(client) -> None:  # type: ignore[no-untyped-def]
    connected, ctx = client
    edits = [json.dumps({"old_text": "gamma", "new_text": "G", "expected_replacements": None})]
    await connected.call_tool("fs_edit_file", {"path": "a.txt", "edits": edits})
    listed = await connected.call_tool("fs_read_multiple_files", {"paths": "['a.txt', 'b.txt']"})
    assert listed.structured_content["succeeded"] == 2
    assert (ctx.workspace / "a.txt").read_text() == "alpha\nbeta\nG\n"


async def test_camel_case_keys_name_their_snake_case_parameters(client) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    result = await connected.call_tool("thinking_sequential", {
        "thought": "reference-style call", "thoughtNumber": 1, "totalThoughts": 1,
        "nextThoughtNeeded": False})
    assert result.structured_content["thought_number"] == 1


async def test_empty_text_for_an_optional_number_means_not_given(client) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    result = await connected.call_tool("fs_read_file", {"path": "a.txt", "offset_line": "",
                                                        "max_lines": ""})
    assert _text(result) == "alpha\nbeta\ngamma\n"


async def test_a_wrong_type_names_the_public_tool_the_parameter_and_what_to_send(client) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    result = await connected.call_tool("fs_read_file", {"path": "a.txt", "offset_line": "x"},
                                       raise_on_error=False)
    text = _text(result)
    assert result.is_error
    assert text.startswith("Invalid arguments for fs_read_file:")
    assert "`offset_line` must be an integer ≥ 1" in text
    assert 'got the string "x"' in text and "default (1)" in text
    _assert_clean(text)


async def test_a_missing_required_parameter_says_what_it_is(client) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    result = await connected.call_tool("fs_edit_file", {"path": "a.txt", "edits": [{"old_text": "x"}]},
                                       raise_on_error=False)
    text = _text(result)
    assert "`edits[0].new_text` is required: send a string (Replacement text)" in text
    _assert_clean(text)


async def test_an_unknown_parameter_and_a_bad_choice_are_named_with_the_alternatives(client) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    unknown = _text(await connected.call_tool("fs_list_directory", {"bogus": 1}, raise_on_error=False))
    choice = _text(await connected.call_tool("fs_list_directory", {"sort_by": "zzz"},
                                             raise_on_error=False))
    assert "`bogus` is not a parameter of fs_list_directory" in unknown
    assert "fs_list_directory takes: path, pattern, show_hidden, sort_by, page, page_size." in unknown
    assert '`sort_by` must be one of "name", "size", "modified", "type"' in choice
    _assert_clean(unknown + choice)


async def test_an_unexpected_exception_becomes_a_clear_error_naming_the_tool(
    served: tuple[FastMCP, Deps], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, deps = served
    deps.roots[:] = [tmp_path]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("SELECT secret FROM internals -- boom")

    monkeypatch.setattr(Workspace, "resolve", broken)
    monkeypatch.setattr(Workspace, "resolve_entry", broken)
    async with Client(server) as connected:
        result = await connected.call_tool("fs_get_file_info", {"path": "a.txt"},
                                           raise_on_error=False)
        with pytest.raises(ToolError, match=r"^fs_hash_file failed with an internal error"):
            await connected.call_tool("fs_hash_file", {"path": "a.txt"})
    text = _text(result)
    assert result.is_error
    assert text.startswith("fs_get_file_info failed with an internal error")
    assert "SELECT" not in text and "RuntimeError" not in text and "get_file_info'" not in text


async def test_resources_and_templates_have_unique_names(client) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    names = [r.name for r in await connected.list_resources()]
    names += [t.name for t in await connected.list_resource_templates()]
    assert len(names) == len(set(names)), sorted(names)


@pytest.mark.parametrize("tool,arguments", [
    ("thinking_sequential", {"thought": " ", "thought_number": 1, "total_thoughts": 1,
                             "next_thought_needed": False}),
    ("tasks_expand", {"id": "999"}),
    ("memory_update", {"id": "m-does-not-exist", "content": "x"}),
    ("json_query", {"path": "missing.json", "query": "$.a"}),
    ("fs_read_file", {"path": "../outside.txt"}),
])
async def test_every_refusal_names_the_public_tool(client, tool: str, arguments: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    connected, _ = client
    result = await connected.call_tool(tool, arguments, raise_on_error=False)
    text = _text(result)
    assert result.is_error, text
    assert tool in text
    _assert_clean(text)
