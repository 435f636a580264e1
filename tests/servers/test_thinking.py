"""The thinking family through fastmcp.Client: the reference server's rules, kept in the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from kimi_mcp.servers.thinking import MOUNT_TOOL_NAMES, build_server

from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(deps: Deps) -> FastMCP:
    return build_server(deps)


def step(n: int, total: int = 3, more: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "thought": f"step {n}",
        "thought_number": n,
        "total_thoughts": total,
        "next_thought_needed": more,
        **extra,
    }


async def think(client: Client[Any], **args: Any) -> dict[str, Any]:
    result = await client.call_tool("sequential", args, raise_on_error=False)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def read(client: Client[Any], uri: str) -> dict[str, Any]:
    contents = await client.read_resource(uri)
    data: dict[str, Any] = json.loads(contents[0].text)  # type: ignore[union-attr]
    return data


async def test_tool_has_docstring_descriptions_annotations_and_output_schema(
    server: FastMCP,
) -> None:
    async with Client(server) as client:
        (tool,) = await client.list_tools()
        templates = await client.list_resource_templates()
    assert tool.name == "sequential" and tool.description and tool.output_schema
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is False and tool.annotations.destructive_hint is False
    assert all(p.get("description") for p in tool.input_schema["properties"].values())
    assert sorted(tool.input_schema["required"]) == [
        "next_thought_needed",
        "thought",
        "thought_number",
        "total_thoughts",
    ]
    assert [t.uri_template for t in templates] == ["thinking://sessions/{id}"]


async def test_a_thought_returns_the_reference_fields(server: FastMCP) -> None:
    async with Client(server) as client:
        out = await think(client, **step(1))
    assert out["thought_number"] == 1 and out["total_thoughts"] == 3
    assert out["next_thought_needed"] is True
    assert out["branches"] == [] and out["thought_history_length"] == 1
    assert out["session_id"]


async def test_a_thought_number_above_the_total_raises_the_total(server: FastMCP) -> None:
    async with Client(server) as client:
        first = await think(client, **step(1, total=2))
        out = await think(client, **step(5, total=2), session_id=first["session_id"])
        history = await read(client, f"thinking://sessions/{first['session_id']}")
    assert out["total_thoughts"] == 5
    assert history["thoughts"][-1]["total_thoughts"] == 5


async def test_a_branch_is_recorded_only_when_both_fields_are_set(server: FastMCP) -> None:
    async with Client(server) as client:
        sid = (await think(client, **step(1)))["session_id"]
        only_id = await think(client, **step(2, branch_id="lonely"), session_id=sid)
        only_from = await think(client, **step(3, branch_from_thought=1), session_id=sid)
        both = await think(
            client, **step(4, branch_from_thought=2, branch_id="alt"), session_id=sid
        )
        again = await think(
            client, **step(5, branch_from_thought=2, branch_id="alt"), session_id=sid
        )
        other = await think(
            client, **step(6, branch_from_thought=1, branch_id="b2"), session_id=sid
        )
    assert only_id["branches"] == [] and only_from["branches"] == []
    assert both["branches"] == ["alt"] and again["branches"] == ["alt"]
    assert other["branches"] == ["alt", "b2"]
    assert other["thought_history_length"] == 6


async def test_explicit_session_ids_keep_chains_apart(server: FastMCP) -> None:
    async with Client(server) as client:
        await think(client, **step(1), session_id="chain-a")
        await think(client, **step(2), session_id="chain-a")
        b = await think(client, **step(1), session_id="chain-b")
        a = await think(client, **step(3), session_id="chain-a")
    assert (a["thought_history_length"], b["thought_history_length"]) == (3, 1)


async def test_without_a_session_id_thought_one_starts_a_chain_and_later_ones_continue_it(
    server: FastMCP,
) -> None:
    async with Client(server) as client:
        first = await think(client, **step(1))
        second = await think(client, **step(2))
        fresh = await think(client, **step(1))
    assert second["session_id"] == first["session_id"] and second["thought_history_length"] == 2
    assert fresh["session_id"] != first["session_id"] and fresh["thought_history_length"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (step(2, revises_thought=1), "revises_thought=1 needs is_revision=true"),
        (step(2, is_revision=True), "is_revision=true needs revises_thought"),
        (step(2, is_revision=True, revises_thought=2), "must name an earlier thought (1–1)"),
        (step(3, branch_from_thought=0, branch_id="x"), "branch_from_thought must name an earlier"),
        (step(0), "thought_number must be 1 or more"),
        (step(1, total=0), "total_thoughts must be 1 or more"),
        ({**step(1), "thought": "   "}, "thought is empty"),
        (step(1, session_id="no spaces please"), "session_id may hold"),
        (step(2, branch_from_thought=1, branch_id=""), "branch_id must be a short"),
    ],
)
async def test_invalid_thoughts_are_refused_with_a_helpful_message(
    server: FastMCP, args: dict[str, Any], message: str
) -> None:
    async with Client(server) as client:
        result = await client.call_tool("sequential", args, raise_on_error=False)
    assert result.is_error
    assert message in result.content[0].text  # type: ignore[union-attr]


async def test_session_resource_shows_every_thought_in_order_with_branches(
    server: FastMCP,
) -> None:
    async with Client(server) as client:
        sid = (await think(client, **step(1), session_id="s1"))["session_id"]
        await think(client, **step(2, is_revision=True, revises_thought=1), session_id=sid)
        await think(
            client, **step(3, more=False, branch_from_thought=1, branch_id="alt"), session_id=sid
        )
        history = await read(client, "thinking://sessions/s1")
        listing = await read(client, "thinking://sessions")
    assert [t["thought"] for t in history["thoughts"]] == ["step 1", "step 2", "step 3"]
    assert history["thoughts"][1]["revises_thought"] == 1
    assert history["branches"] == {"alt": [3]} and history["truncated"] is False
    assert listing["sessions"][0]["session_id"] == "s1" and listing["sessions"][0]["thoughts"] == 3


async def test_unknown_session_resource_is_an_error(server: FastMCP) -> None:
    async with Client(server) as client:
        with pytest.raises(Exception, match="No thinking session 'nope'"):
            await client.read_resource("thinking://sessions/nope")


async def test_history_survives_a_restart(make_deps: Any) -> None:
    before = make_deps()
    async with Client(build_server(before)) as client:
        await think(client, **step(1), session_id="kept")
    before.ledger.close()
    after = make_deps()
    async with Client(build_server(after)) as client:
        out = await think(client, **step(2), session_id="kept")
        history = await read(client, "thinking://sessions/kept")
    assert out["thought_history_length"] == 2
    assert [t["thought_number"] for t in history["thoughts"]] == [1, 2]


async def test_sessions_belong_to_their_project(make_deps: Any, tmp_path: Path) -> None:
    other = tmp_path / "other-project"
    other.mkdir()
    mine, theirs = make_deps(), make_deps(mcp={"workspace": str(other)})
    async with Client(build_server(mine)) as client:
        await think(client, **step(1), session_id="shared-name")
    async with Client(build_server(theirs)) as client:
        out = await think(client, **step(1), session_id="shared-name")
        with pytest.raises(Exception, match="No thinking session"):
            await client.read_resource("thinking://sessions/nothing-here")
    assert out["thought_history_length"] == 1


async def test_mounting_without_namespace_keeps_the_resource_uri(deps: Deps) -> None:
    root = FastMCP("root")
    root.mount(build_server(deps), tool_names=MOUNT_TOOL_NAMES)
    async with Client(root) as client:
        names = [t.name for t in await client.list_tools()]
        sid = (await client.call_tool("thinking_sequential", step(1))).structured_content
        assert sid is not None
        history = await read(client, f"thinking://sessions/{sid['session_id']}")
    assert names == ["thinking_sequential"] and len(history["thoughts"]) == 1
