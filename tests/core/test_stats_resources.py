from __future__ import annotations

import json

import anyio
import pytest
from fastmcp import Client

from kimi_mcp.deps import Deps
from kimi_mcp.ledger.models import Request
from kimi_mcp.server import build_mcp

pytestmark = pytest.mark.anyio


async def _read(client: Client, uri: str) -> object:
    contents = await client.read_resource(uri)
    return json.loads(contents[0].text)


async def test_summary_resource_reports_ledger_totals(deps: Deps) -> None:
    deps.ledger.insert(Request, provider="kimi", model="k2", prompt_tokens=100, completion_tokens=7,
                       cost_usd=0.5)
    deps.ledger.insert(Request, provider="groq", model="m", est_prompt_tokens=40, status="error")
    await deps.ledger.aflush()
    async with Client(build_mcp(deps)) as client:
        data = await _read(client, "stats://summary")
    assert data["totals"]["requests"] == 2
    assert data["totals"]["prompt_tokens"] == 140
    assert data["totals"]["errors"] == 1
    assert {row["key"] for row in data["by_provider"]} == {"kimi", "groq"}


async def test_session_resource_shows_one_session_and_unknown_id_is_an_error(deps: Deps) -> None:
    created = await deps.sessions.create("refactor", "kimi", "kimi-k2-0905-preview")
    deps.ledger.insert(Request, session_id=created["id"], provider="kimi", model="k2", prompt_tokens=9)
    await deps.ledger.aflush()
    async with Client(build_mcp(deps), mode="legacy") as client:
        data = await _read(client, f"stats://sessions/{created['id']}")
        listed = await _read(client, "stats://sessions")
        with pytest.raises(Exception, match="no session"):
            await client.read_resource("stats://sessions/nope")
    assert data["session"]["name"] == "refactor"
    assert data["totals"]["prompt_tokens"] == 9
    assert [s["name"] for s in listed] == ["refactor"]


async def test_providers_resource_never_shows_a_key(make_deps, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-very-secret-value")
    deps = make_deps()
    async with Client(build_mcp(deps)) as client:
        contents = await client.read_resource("stats://providers")
    raw = contents[0].text
    assert "sk-very-secret-value" not in raw
    kimi = next(p for p in json.loads(raw) if p["name"] == "kimi")
    assert kimi["has_key"] is True
    assert kimi["key_env"] == "MOONSHOT_API_KEY"


async def test_every_tool_call_lands_in_the_ledger(deps: Deps) -> None:
    server = build_mcp(deps)

    @server.tool
    def echo(text: str) -> str:
        """Echo the text."""
        return text

    async with Client(server) as client:
        await client.call_tool("echo", {"text": "hello world"})
        tools = await _read(client, "stats://tools")
        with anyio.fail_after(5):
            while not tools:
                await deps.ledger.aflush()
                tools = await _read(client, "stats://tools")
    assert tools[0]["tool"] == "echo"
    assert tools[0]["calls"] == 1
    assert tools[0]["result_tokens"] == 2


async def test_under_stdio_the_clients_roots_replace_the_workspace(make_deps, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chosen = tmp_path / "client-project"
    chosen.mkdir()
    deps = make_deps()
    server = build_mcp(deps, warm_up=True)
    async with Client(server, roots=[chosen.as_uri()], mode="legacy") as client:
        result = await client.call_tool("fs_list_allowed_directories", {})
    assert str(chosen) in json.dumps(result.structured_content)
    assert deps.roots == [chosen]


async def test_a_client_without_roots_keeps_the_configured_workspace(make_deps) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps()
    before = list(deps.roots)
    async with Client(build_mcp(deps, warm_up=True)) as client:
        await client.call_tool("fs_list_allowed_directories", {})
    assert deps.roots == before


async def test_a_call_of_a_tool_that_does_not_exist_adds_no_family_or_tool_label(deps: Deps) -> None:
    async with Client(build_mcp(deps)) as client:
        result = await client.call_tool("no_such_tool", {}, raise_on_error=False)
        assert result.is_error
        await client.call_tool("thinking_sequential", {"thought": "t", "thought_number": 1,
                                                       "total_thoughts": 1,
                                                       "next_thought_needed": False})
        with anyio.fail_after(5):
            while len(tools := await _read(client, "stats://tools")) < 2:
                await deps.ledger.aflush()
    with deps.ledger.read() as db:
        from sqlalchemy import text

        labels = set(db.execute(text("SELECT tool, family FROM tool_call")).all())
    assert labels == {("unknown", "unknown"), ("thinking_sequential", "thinking")}
    assert {t["tool"] for t in tools} == {"unknown", "thinking_sequential"}
