from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from kimi_mcp.servers.memory import build_server

from kimi_mcp.deps import Deps
from kimi_mcp.memory.engine import MemoryEngine

pytestmark = pytest.mark.anyio

TOOLS = ["consolidate", "delete", "get", "recall", "store", "update"]


@pytest.fixture
def memory_deps(make_deps: Callable[..., Deps]) -> Iterator[Callable[..., Deps]]:
    """make_deps, with each engine closed before its ledger."""
    built: list[Deps] = []

    def build(**overrides: Any) -> Deps:
        deps = make_deps(**overrides)
        if deps.memory is None:  # the engine may not be wired in the shared fixture yet
            deps.memory = MemoryEngine(deps.settings, deps.ledger)
        built.append(deps)
        return deps

    yield build
    for deps in built:
        deps.memory.close()


async def _call(client: Client, name: str, **args: Any) -> Any:
    result = await client.call_tool(name, args)
    return result.structured_content


async def test_the_family_has_six_tools_with_honest_annotations(
    memory_deps: Callable[..., Deps],
) -> None:
    async with Client(build_server(memory_deps())) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert sorted(tools) == TOOLS
    assert tools["get"].annotations.read_only_hint is True
    for name in ("store", "recall", "update", "delete", "consolidate"):
        assert tools[name].annotations.read_only_hint is False
    assert tools["delete"].annotations.destructive_hint is True
    assert tools["store"].annotations.destructive_hint is False
    assert all(t.annotations.open_world_hint is False for t in tools.values())
    assert all(t.output_schema and t.description for t in tools.values())


async def test_store_recall_get_update_delete_round_trip(memory_deps: Callable[..., Deps]) -> None:
    deps = memory_deps()
    content = "the API base url is https://api.internal/v2  \r\n"
    async with Client(build_server(deps)) as client:
        stored = await _call(client, "store", content=content, tags=["api"], metadata={"by": "me"})
        assert stored["created"] and stored["project"] == "ws"
        again = await _call(client, "store", content=content)
        assert again["id"] == stored["id"] and not again["created"]
        recalled = await _call(client, "recall", query="API base url", limit=3)
        [hit] = recalled["results"]
        assert hit["id"] == stored["id"] and hit["score"] > 0.5
        assert hit["snippet"] == "the API base url is https://api.internal/v2"
        got = await _call(client, "get", ids=[stored["id"], "nope"])
        assert got["memories"][0]["content"] == content
        assert got["memories"][0]["metadata"] == {"by": "me"} and got["missing"] == ["nope"]
        updated = await _call(client, "update", id=stored["id"], type="semantic", tags=["x"])
        assert updated["type"] == "semantic" and updated["tags"] == ["x"]
        assert updated["content"] == content
        deleted = await _call(client, "delete", ids=[stored["id"], "nope"])
        assert deleted == {"deleted": [stored["id"]], "missing": ["nope"]}
        gone = await client.call_tool("get", {"ids": [stored["id"]]}, raise_on_error=False)
        assert gone.is_error and "memory_recall" in gone.content[0].text


async def test_recall_by_meaning_through_the_tool_with_the_real_model(
    memory_deps: Callable[..., Deps],
) -> None:
    deps = memory_deps(memory={"embedder": "minilm"})
    memories = [
        "Alice is allergic to peanuts",
        "The staging cluster runs Kubernetes 1.29",
        "Invoices are archived for ten years",
        "Standup is at 9:30 every weekday",
    ]
    async with Client(build_server(deps)) as client:
        for text in memories:
            await _call(client, "store", content=text)
        result = await _call(client, "recall", query="which foods can make my colleague sick?")
    assert result["results"][0]["snippet"] == "Alice is allergic to peanuts"


async def test_recall_is_scoped_to_the_workspace_project(
    memory_deps: Callable[..., Deps], tmp_path: Path
) -> None:
    deps = memory_deps()
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = Deps(settings=deps.settings, ledger=deps.ledger, memory=deps.memory, roots=[other_root])
    async with Client(build_server(deps)) as mine, Client(build_server(other)) as theirs:
        await _call(mine, "store", content="mine: the port is 8080")
        await _call(theirs, "store", content="theirs: the port is 9090")
        local = await _call(mine, "recall", query="the port is")
        assert [h["snippet"] for h in local["results"]] == ["mine: the port is 8080"]
        assert local["project"] == "ws"
        everywhere = await _call(mine, "recall", query="the port is", all_projects=True)
        assert len(everywhere["results"]) == 2 and everywhere["project"] is None


async def test_promotion_is_visible_through_recall(memory_deps: Callable[..., Deps]) -> None:
    deps = memory_deps(memory={"promote_after": 2})
    async with Client(build_server(deps)) as client:
        await _call(client, "store", content="the on-call phone is in the top drawer")
        first = await _call(client, "recall", query="on-call phone")
        second = await _call(client, "recall", query="on-call phone")
        listed = await _call(client, "recall", type="frequent")
    assert first["results"][0]["type"] == "episodic"
    assert second["results"][0]["type"] == "frequent"
    assert second["results"][0]["recall_count"] == 2
    assert len(listed["results"]) == 1 and listed["results"][0]["score"] is None


async def test_consolidate_dry_run_then_merge(memory_deps: Callable[..., Deps]) -> None:
    deps = memory_deps()
    async with Client(build_server(deps)) as client:
        a = await _call(client, "store", content="Releases are cut on Fridays")
        b = await _call(client, "store", content="releases are cut on fridays!")
        await _call(client, "store", content="Something else entirely")
        dry = await _call(client, "consolidate", threshold=0.95)
        assert dry["dry_run"] and dry["merged"] == 2 and dry["clusters"][0]["merged_id"] is None
        real = await _call(client, "consolidate", threshold=0.95, dry_run=False)
        merged_id = real["clusters"][0]["merged_id"]
        got = await _call(client, "get", ids=[merged_id, a["id"]])
    [memory] = got["memories"]
    assert memory["type"] == "semantic"
    assert sorted(memory["merged_from"]) == sorted([a["id"], b["id"]])
    assert got["merged_into"] == {a["id"]: merged_id}


async def test_masked_blocks_are_read_back_byte_exact(memory_deps: Callable[..., Deps]) -> None:
    deps = memory_deps()
    block = "FAILED tests/test_x.py::test_y\r\n\tAssertionError: \x00 🧠 é trailing   \n"
    stored = deps.memory.store_text_sync(block, project=deps.project)
    async with Client(build_server(deps)) as client:
        got = await _call(client, "get", ids=[stored.id])
    assert got["memories"][0]["content"] == block
    assert got["memories"][0]["source"] == "sanitizer"


async def test_bad_arguments_are_tool_errors(memory_deps: Callable[..., Deps]) -> None:
    async with Client(build_server(memory_deps())) as client:
        empty = await client.call_tool("store", {"content": ""}, raise_on_error=False)
        nothing = await client.call_tool("update", {"id": "x"}, raise_on_error=False)
        unknown = await client.call_tool("update", {"id": "x", "content": "y"}, raise_on_error=False)
    assert empty.is_error and nothing.is_error and "Nothing to update" in nothing.content[0].text
    assert unknown.is_error and "no memory with id 'x'" in unknown.content[0].text


async def test_lone_surrogates_are_replaced_on_the_wire_and_counted(
    memory_deps: Callable[..., Deps],
) -> None:
    deps = memory_deps()
    stored = deps.memory.store_text_sync("half a pair \ud800 here", project=deps.project)
    async with Client(build_server(deps)) as client:
        got = await _call(client, "get", ids=[stored.id])
    assert got["memories"][0]["content"] == "half a pair \ufffd here"
    assert got["memories"][0]["replaced_surrogates"] == 1
    [exact] = await deps.memory.get([stored.id])
    assert exact.content == "half a pair \ud800 here"


def _locked(statement: str, content: str) -> Exception:
    """What SQLAlchemy raises when SQLite stays locked: it carries the SQL and the content."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    return OperationalError(statement, {"content": content}, sqlite3.OperationalError("database is locked"))


async def test_a_locked_ledger_is_a_tool_error_without_sql_or_content(
    memory_deps: Callable[..., Deps], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "the deploy key is hunter2"

    def failing_insert(new: object, *, dedupe: bool, vector: object = None) -> object:
        def fn(tx: object) -> None:
            raise _locked("INSERT INTO memory (id, content) VALUES (?, ?)", secret)

        return fn

    def failing_read(ledger: object, ids: object) -> object:
        raise _locked("SELECT memory.content FROM memory WHERE memory.id IN (?)", secret)

    deps = memory_deps()
    async with Client(build_server(deps)) as client:
        kept = await _call(client, "store", content="kept before the lock")
        monkeypatch.setattr("kimi_mcp.memory.records.insert_fn", failing_insert)
        stored = await client.call_tool("store", {"content": secret}, raise_on_error=False)
        monkeypatch.setattr("kimi_mcp.memory.records.get_many", failing_read)
        read = await client.call_tool("get", {"ids": [kept["id"]]}, raise_on_error=False)
    for result in (stored, read):
        text = result.content[0].text
        assert result.is_error and "busy" in text and "try again" in text
        assert "INSERT" not in text and "SELECT" not in text and "hunter2" not in text
    assert "could not store the memory" in stored.content[0].text
    assert "could not read memories" in read.content[0].text
    assert deps.memory.count() == 1
