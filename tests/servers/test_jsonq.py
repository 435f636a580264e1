"""The json family through fastmcp.Client: query, structure, update, validate, containment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kimi_mcp.servers.jsonq import build_server
from kimi_mcp.servers.jsonq.engine import JsonFiles

from kimi_mcp.deps import Deps
from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace

pytestmark = pytest.mark.anyio

DOC = {
    "name": "shop",
    "items": [
        {"id": 1, "title": "pen", "price": 2.5, "tags": ["office"]},
        {"id": 2, "title": "book", "price": 12.0},
        {"id": 3, "title": "lamp", "price": 30, "tags": []},
    ],
    "owner": {"name": "Ada", "it's": True},
}


@pytest.fixture
def ws(deps: Deps) -> Path:
    return deps.roots[0]


@pytest.fixture
def server(deps: Deps) -> FastMCP:
    return build_server(deps)


def write(path: Path, value: Any, indent: int | str | None = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=indent) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


async def call(server: FastMCP, tool: str, **args: Any) -> dict[str, Any]:
    async with Client(server) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def refused(server: FastMCP, tool: str, **args: Any) -> str:
    async with Client(server) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


# ---- the surface ----------------------------------------------------------------------------


async def test_tools_have_docstrings_descriptions_annotations_and_output_schemas(
    server: FastMCP,
) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert sorted(tools) == ["query", "structure", "update", "validate"]
    for tool in tools.values():
        assert tool.description and tool.output_schema
        assert tool.annotations is not None and tool.annotations.open_world_hint is False
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    assert tools["query"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["update"].annotations.destructive_hint is True  # type: ignore[union-attr]


async def test_read_only_setting_removes_update(make_deps: Any) -> None:
    server = build_server(make_deps(mcp={"read_only": True}))
    async with Client(server) as client:
        names = sorted(t.name for t in await client.list_tools())
    assert names == ["query", "structure", "validate"]


# ---- query ----------------------------------------------------------------------------------


async def test_query_filter_returns_values_with_normalised_paths(server: FastMCP, ws: Path) -> None:
    write(ws / "shop.json", DOC)
    out = await call(server, "query", expression="$.items[?(@.price > 10)].title", path="shop.json")
    assert out["total"] == 2
    assert out["matches"] == [
        {"path": "$['items'][1]['title']", "value": "book"},
        {"path": "$['items'][2]['title']", "value": "lamp"},
    ]


async def test_query_result_type_selects_values_or_paths(server: FastMCP) -> None:
    doc = json.dumps(DOC)
    values = await call(server, "query", expression="$..id", document=doc, result_type="value")
    paths = await call(server, "query", expression="$.items[-1]", document=DOC, result_type="path")
    assert values["values"] == [1, 2, 3] and values["paths"] is None
    assert paths["paths"] == ["$['items'][2]"] and paths["values"] is None


async def test_query_paths_escape_quotes_and_parse_back(server: FastMCP) -> None:
    out = await call(server, "query", expression="$.owner.*", document=DOC, result_type="path")
    assert out["paths"] == ["$['owner']['name']", "$['owner']['it\\'s']"]
    back = await call(server, "query", expression=out["paths"][1], document=DOC)
    assert back["matches"][0]["value"] is True


async def test_query_pages_with_limit_and_offset(server: FastMCP) -> None:
    doc = {"xs": list(range(10))}
    first = await call(
        server, "query", expression="$.xs[*]", document=doc, limit=4, result_type="value"
    )
    assert first["values"] == [0, 1, 2, 3]
    assert first["truncated"] is True and first["next_offset"] == 4
    last = await call(
        server, "query", expression="$.xs[*]", document=doc, offset=8, limit=4, result_type="value"
    )
    assert last["values"] == [8, 9] and last["truncated"] is False and last["next_offset"] is None


async def test_query_withholds_a_match_larger_than_the_output_cap(server: FastMCP) -> None:
    doc = {"big": "x" * 100_000, "small": 1}
    out = await call(server, "query", expression="$.*", document=doc)
    assert out["returned"] == 0 and out["truncated"] is True
    assert "$['big']" in out["hint"] and out["next_offset"] == 1
    rest = await call(server, "query", expression="$.*", document=doc, offset=1)
    assert rest["matches"] == [{"path": "$['small']", "value": 1}]


async def test_query_needs_exactly_one_of_path_and_document(server: FastMCP, ws: Path) -> None:
    write(ws / "a.json", {})
    assert "exactly one" in await refused(server, "query", expression="$")
    assert "exactly one" in await refused(
        server, "query", expression="$", path="a.json", document="{}"
    )


async def test_query_bad_expression_is_an_error_with_examples(server: FastMCP) -> None:
    text = await refused(server, "query", expression="$.items[", document="{}")
    assert "Invalid JSONPath" in text and "$..id" in text


async def test_query_on_broken_file_reports_line_and_column(server: FastMCP, ws: Path) -> None:
    (ws / "bad.json").write_text('{\n  "a": 1,\n  "b": ,\n}\n')
    text = await refused(server, "query", expression="$", path="bad.json")
    assert "line 3 column 8" in text


async def test_query_sees_a_changed_file_despite_the_cache(server: FastMCP, ws: Path) -> None:
    target = write(ws / "c.json", {"v": 1})
    async with Client(server) as client:
        first = await client.call_tool("query", {"expression": "$.v", "path": "c.json"})
        write(target, {"v": 22222})
        second = await client.call_tool("query", {"expression": "$.v", "path": "c.json"})
    assert first.structured_content["matches"][0]["value"] == 1  # type: ignore[index]
    assert second.structured_content["matches"][0]["value"] == 22222  # type: ignore[index]


# ---- containment ----------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "ws-evil" / "secret.json"
    write(secret, {"secret": True})
    return secret


@pytest.mark.parametrize(
    "raw",
    ["../ws-evil/secret.json", "a/../../ws-evil/secret.json", "sub/../../ws-evil/secret.json"],
)
async def test_traversal_out_of_the_workspace_is_refused(
    server: FastMCP, outside: Path, raw: str
) -> None:
    text = await refused(server, "query", expression="$", path=raw)
    assert text.startswith("Access denied: path outside the workspace")


async def test_sibling_prefix_directory_is_refused(server: FastMCP, outside: Path) -> None:
    text = await refused(server, "query", expression="$", path=str(outside))
    assert "Access denied" in text


async def test_symlink_and_symlink_chain_escapes_are_refused(
    server: FastMCP, ws: Path, outside: Path
) -> None:
    (ws / "link.json").symlink_to(outside)
    (ws / "hop").symlink_to(outside.parent)
    (ws / "chain.json").symlink_to(ws / "hop" / "secret.json")
    for name in ("link.json", "chain.json", "hop/secret.json"):
        text = await refused(server, "query", expression="$", path=name)
        assert "points outside" in text and "json_query, parameter `path`" in text


async def test_dangling_symlink_pointing_outside_is_refused_for_writes(
    server: FastMCP, ws: Path, tmp_path: Path
) -> None:
    (ws / "dangling.json").symlink_to(tmp_path / "nowhere" / "x.json")
    text = await refused(server, "update", path="dangling.json", expression="$.a", value=1)
    assert "Access denied" in text
    assert not (tmp_path / "nowhere").exists()


async def test_null_byte_in_path_is_refused(server: FastMCP) -> None:
    assert "null byte" in await refused(server, "query", expression="$", path="a\x00.json")


async def test_symlink_inside_the_workspace_and_unicode_names_are_allowed(
    server: FastMCP, ws: Path
) -> None:
    write(ws / "données" / "é.json", {"ok": "ü"})
    (ws / "alias.json").symlink_to(ws / "données" / "é.json")
    out = await call(server, "query", expression="$.ok", path="alias.json")
    assert out["matches"][0]["value"] == "ü"


async def test_replaced_roots_apply_to_the_next_call(deps: Deps, tmp_path: Path) -> None:
    server = build_server(deps)
    other = tmp_path / "client-root"
    write(other / "c.json", {"from": "client"})
    deps.roots = [other.resolve()]
    out = await call(server, "query", expression="$.from", path="c.json")
    assert out["matches"][0]["value"] == "client"


async def test_absolute_path_inside_the_workspace_is_allowed(server: FastMCP, ws: Path) -> None:
    target = write(ws / "abs.json", [1])
    out = await call(server, "query", expression="$[0]", path=str(target))
    assert out["total"] == 1


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(
        st.sampled_from(["..", ".", "a", "b", "ws", "ws-evil", "", "~", "/"]), max_size=8
    )
)
def test_contained_paths_never_leave_the_root(tmp_path: Path, parts: list[str]) -> None:
    root = tmp_path / "ws"
    (root / "a").mkdir(parents=True, exist_ok=True)
    raw = "/".join(parts) or "."
    try:
        resolved = Path(Workspace(lambda: [root.resolve()]).resolve(raw))
    except WorkspaceError:
        return
    assert resolved == root.resolve() or resolved.is_relative_to(root.resolve())


def test_write_refuses_a_symlink_out_planted_after_the_check(
    tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "ws"
    target = write(root / "t.json", {"a": 1})
    files = JsonFiles(Workspace(lambda: [root.resolve()]))
    checked = files.resolve("t.json")
    target.unlink()
    target.symlink_to(outside)  # an attacker swaps the file for a link after the check
    with pytest.raises(WorkspaceError, match="points outside"):
        files.write(checked, '{"a": 2}\n')
    assert read_json(outside) == {"secret": True}
    assert target.is_symlink()


# ---- structure ------------------------------------------------------------------------------


async def test_structure_outlines_keys_types_lengths_and_samples(server: FastMCP, ws: Path) -> None:
    write(ws / "shop.json", DOC)
    out = await call(server, "structure", path="shop.json")
    nodes = {n["path"]: n for n in out["nodes"]}
    assert out["root_type"] == "object" and out["bytes"] == (ws / "shop.json").stat().st_size
    assert nodes["$['items']"]["type"] == "array" and nodes["$['items']"]["count"] == 3
    assert nodes["$['items'][*]['price']"]["type"] == "number|integer"
    assert nodes["$['items'][*]['title']"]["sample"] == "pen"
    assert nodes["$['items'][*]['tags']"]["optional"] is True
    assert nodes["$['items'][*]['tags']"]["note"] == "lengths 0–1 across 2 sampled arrays"


async def test_structure_stops_at_max_depth(server: FastMCP) -> None:
    out = await call(server, "structure", document={"a": {"b": {"c": {"d": 1}}}}, max_depth=2)
    assert [n["path"] for n in out["nodes"]] == ["$", "$['a']", "$['a']['b']"]
    assert out["nodes"][-1]["count"] == 1


async def test_structure_merges_wide_objects_under_a_wildcard(server: FastMCP) -> None:
    doc = {"by_id": {f"k{i}": {"n": i} for i in range(500)}}
    out = await call(server, "structure", document=doc)
    paths = [n["path"] for n in out["nodes"]]
    assert paths == ["$", "$['by_id']", "$['by_id'][*]", "$['by_id'][*]['n']"]
    assert out["nodes"][1]["count"] == 500 and "500 keys" in out["nodes"][1]["note"]


async def test_structure_caps_nodes_and_says_how_to_narrow(server: FastMCP) -> None:
    doc = {f"key{i}": {"a": 1, "b": 2} for i in range(30)}
    out = await call(server, "structure", document=doc, max_nodes=10)
    assert len(out["nodes"]) == 10 and out["truncated"] is True and "at=" in out["hint"]


async def test_structure_at_outlines_one_part_with_its_real_path(server: FastMCP) -> None:
    out = await call(server, "structure", document=DOC, at="$.items[0]")
    assert out["nodes"][0]["path"] == "$['items'][0]"
    assert "$['items'][0]['tags'][*]" in [n["path"] for n in out["nodes"]]


async def test_structure_shortens_long_sample_strings(server: FastMCP) -> None:
    out = await call(server, "structure", document={"s": "y" * 500})
    assert out["nodes"][1]["sample"] == "y" * 80 + "…"


# ---- update ---------------------------------------------------------------------------------


async def test_update_set_keeps_key_order_and_four_space_indent(server: FastMCP, ws: Path) -> None:
    target = write(ws / "cfg.json", {"b": 1, "a": {"x": 1}, "c": 3}, indent=4)
    out = await call(server, "update", path="cfg.json", expression="$.a.x", value=[1, 2])
    assert out["written"] is True
    assert out["changes"] == [
        {"path": "$['a']['x']", "action": "set", "before": "1", "after": "[1, 2]"}
    ]
    text = target.read_text()
    assert list(json.loads(text)) == ["b", "a", "c"]
    assert text == json.dumps({"b": 1, "a": {"x": [1, 2]}, "c": 3}, indent=4) + "\n"


async def test_queries_after_an_update_see_the_new_document(server: FastMCP, ws: Path) -> None:
    write(ws / "shop.json", DOC)
    await call(server, "query", expression="$.name", path="shop.json")  # cache the old parse
    await call(server, "update", path="shop.json", expression="$.name", value="renamed")
    out = await call(server, "query", expression="$.name", path="shop.json", result_type="value")
    assert out["values"] == ["renamed"]


async def test_update_set_adds_a_missing_key_to_its_parent(server: FastMCP, ws: Path) -> None:
    target = write(ws / "cfg.json", {"a": {}})
    out = await call(server, "update", path="cfg.json", expression="$.a.new", value={"z": None})
    assert out["changes"][0]["action"] == "created"
    assert read_json(target) == {"a": {"new": {"z": None}}}


async def test_update_set_on_nothing_without_a_parent_is_an_error(
    server: FastMCP, ws: Path
) -> None:
    write(ws / "cfg.json", {"a": 1})
    text = await refused(server, "update", path="cfg.json", expression="$.x.y", value=1)
    assert "matched nothing" in text


async def test_update_delete_removes_every_match_highest_index_first(
    server: FastMCP, ws: Path
) -> None:
    target = write(ws / "shop.json", DOC)
    out = await call(
        server,
        "update",
        path="shop.json",
        expression="$.items[?(@.price < 20)]",
        operation="delete",
    )
    assert [c["path"] for c in out["changes"]] == ["$['items'][0]", "$['items'][1]"]
    assert [i["id"] for i in read_json(target)["items"]] == [3]


async def test_update_edits_by_the_normalized_paths_query_returns(
    server: FastMCP, ws: Path
) -> None:
    target = write(ws / "shop.json", DOC)
    found = await call(
        server, "query", path="shop.json", expression="$..[?@.price > 10]", result_type="path"
    )
    assert found["paths"] == ["$['items'][1]", "$['items'][2]"]
    for path in found["paths"]:
        await call(server, "update", path="shop.json", expression=path + "['sale']", value=True)
    await call(server, "update", path="shop.json", expression="$['owner']['it\\'s']", value=0)
    doc = read_json(target)
    assert [item.get("sale") for item in doc["items"]] == [None, True, True]
    assert doc["owner"] == {"name": "Ada", "it's": 0}


async def test_update_append_adds_to_arrays_and_refuses_objects(server: FastMCP, ws: Path) -> None:
    target = write(ws / "shop.json", DOC)
    out = await call(
        server,
        "update",
        path="shop.json",
        expression="$.items[0].tags",
        operation="append",
        value="new",
    )
    assert out["changes"][0]["path"] == "$['items'][0]['tags'][1]"
    assert read_json(target)["items"][0]["tags"] == ["office", "new"]
    text = await refused(
        server, "update", path="shop.json", expression="$.owner", operation="append", value=1
    )
    assert "append needs an array" in text


async def test_update_dry_run_reports_without_writing(server: FastMCP, ws: Path) -> None:
    target = write(ws / "shop.json", DOC)
    before = target.read_bytes()
    out = await call(
        server, "update", path="shop.json", expression="$.name", value="x", dry_run=True
    )
    assert out["changed"] == 1 and out["written"] is False
    assert target.read_bytes() == before


async def test_update_matching_nothing_on_delete_writes_nothing(server: FastMCP, ws: Path) -> None:
    target = write(ws / "shop.json", DOC)
    mtime = target.stat().st_mtime_ns
    out = await call(server, "update", path="shop.json", expression="$.nope", operation="delete")
    assert out["changed"] == 0 and out["written"] is False and "matched nothing" in out["hint"]
    assert target.stat().st_mtime_ns == mtime


async def test_update_refuses_to_delete_the_root(server: FastMCP, ws: Path) -> None:
    write(ws / "shop.json", DOC)
    assert "root" in await refused(
        server, "update", path="shop.json", expression="$", operation="delete"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a":1,"b":[1,2]}', '{"a":1,"b":[1,2],"c":true}'),
        ('{"a": 1, "b": [1, 2]}\n', '{"a": 1, "b": [1, 2], "c": true}\n'),
        (
            '{\n\t"a": 1,\n\t"b": [\n\t\t1,\n\t\t2\n\t]\n}',
            '{\n\t"a": 1,\n\t"b": [\n\t\t1,\n\t\t2\n\t],\n\t"c": true\n}',
        ),
        ('{\r\n  "a": 1\r\n}\r\n', '{\r\n  "a": 1,\r\n  "c": true\r\n}\r\n'),
    ],
)
async def test_update_keeps_the_files_layout(
    server: FastMCP, ws: Path, text: str, expected: str
) -> None:
    (ws / "s.json").write_bytes(text.encode())
    await call(server, "update", path="s.json", expression="$.c", value=True)
    assert (ws / "s.json").read_bytes() == expected.encode()


async def test_update_keeps_file_mode_and_leaves_no_temp_files(server: FastMCP, ws: Path) -> None:
    target = write(ws / "m.json", {"a": 1})
    os.chmod(target, 0o640)
    await call(server, "update", path="m.json", expression="$.a", value=2)
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(ws)) == ["m.json"]


async def test_update_outside_the_workspace_is_refused(server: FastMCP, outside: Path) -> None:
    text = await refused(
        server, "update", path="../ws-evil/secret.json", expression="$.secret", value=0
    )
    assert text.startswith("Access denied")
    assert read_json(outside) == {"secret": True}


# ---- validate -------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["name", "items"],
    "properties": {
        "name": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {"price": {"type": "number", "maximum": 20}},
            },
        },
    },
}


async def test_validate_reports_syntax_errors_with_line_column_and_context(server: FastMCP) -> None:
    out = await call(server, "validate", document='{\n  "a": [1, 2,,]\n}')
    assert out["valid"] is False
    assert out["syntax_error"] == {
        "message": "Expecting value",
        "line": 2,
        "column": 14,
        "context": '  "a": [1, 2,,]',
    }


async def test_validate_without_schema_accepts_good_json(server: FastMCP, ws: Path) -> None:
    write(ws / "shop.json", DOC)
    out = await call(server, "validate", path="shop.json")
    assert out["valid"] is True and out["schema_checked"] is False


async def test_validate_schema_errors_carry_the_failing_values_path(
    server: FastMCP, ws: Path
) -> None:
    write(ws / "shop.json", DOC)
    out = await call(server, "validate", path="shop.json", schema=SCHEMA)
    assert out["valid"] is False and out["error_count"] == 1
    assert out["errors"][0]["path"] == "$['items'][2]['price']"
    assert out["errors"][0]["validator"] == "maximum"
    assert out["errors"][0]["schema_path"] == "#/properties/items/items/properties/price/maximum"


async def test_validate_reads_the_schema_from_a_workspace_file(server: FastMCP, ws: Path) -> None:
    write(ws / "schema.json", {"type": "array"})
    out = await call(server, "validate", document="{}", schema_path="schema.json")
    assert out["valid"] is False and out["errors"][0]["path"] == "$"


async def test_validate_caps_the_error_list(server: FastMCP) -> None:
    doc = json.dumps(list(range(100)))
    out = await call(
        server, "validate", document=doc, schema='{"items": {"type": "string"}}', max_errors=5
    )
    assert out["error_count"] == 100 and len(out["errors"]) == 5 and out["truncated"] is True


async def test_validate_rejects_an_invalid_schema(server: FastMCP) -> None:
    text = await refused(server, "validate", document="{}", schema={"type": "nonsense"})
    assert "schema itself is invalid" in text


async def test_validate_never_fetches_a_remote_ref(server: FastMCP) -> None:
    schema = {"$ref": "https://example.invalid/schema.json"}
    text = await refused(server, "validate", document="{}", schema=schema)
    assert "cannot be resolved offline" in text
