"""With `[tasks] llm_model` set, planning asks the model through the proxy's pipeline (recorded in
the ledger like any call); any failure falls back to the deterministic planner with a warning."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastmcp import Client, FastMCP
from kimi_mcp.servers.tasks import build_server
from sqlmodel import select
from tasks_support import read_board, task, write_board

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Ledger
from kimi_mcp.ledger.models import Request
from kimi_mcp.llm import LlmError
from kimi_mcp.proxy.completions import ProxyCompletions
from kimi_mcp.proxy.pipeline import Proxy
from kimi_mcp.upstream import Backoff, Upstream

pytestmark = pytest.mark.anyio
PROVIDERS = {"local": {"base_url": "http://llm.test/v1", "api_key": "sk-test", "max_retries": 0}}


def answering(content: Any, seen: list[httpx.Request] | None = None,
              status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        text = content if isinstance(content, str) else json.dumps(content)
        return httpx.Response(status, json={"choices": [{"message": {"role": "assistant", "content": text}}]})

    return httpx.MockTransport(handler)


Planning = tuple[Deps, Proxy]


@pytest.fixture
def planning(tmp_path: Path) -> Iterator[Callable[[httpx.MockTransport], Planning]]:
    """Deps over a real ledger whose `completions` go through a proxy to `transport`."""
    built: list[Planning] = []

    def build(transport: httpx.MockTransport) -> Planning:
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        settings = load_settings(overrides={
            "data_dir": str(tmp_path / "data"), "mcp": {"workspace": str(workspace)},
            "tasks": {"llm_model": "local/planner-1"}, "providers": PROVIDERS}, launch_dir=tmp_path)
        ledger = Ledger(settings.database_url())
        ledger.start()
        deps = Deps(settings, ledger=ledger, roots=[workspace.resolve()])
        proxy = Proxy(deps, Upstream(settings.upstream, transport=transport,
                                     backoff=Backoff(base=0.001, cap=0.002)))
        proxy.start()
        deps.completions = ProxyCompletions(lambda: proxy)
        built.append((deps, proxy))
        return deps, proxy

    yield build
    for deps, proxy in built:
        anyio.run(proxy.aclose)
        deps.close()


def server_with(planning: Callable[[httpx.MockTransport], Planning],
                transport: httpx.MockTransport) -> tuple[FastMCP, Path]:
    deps, _ = planning(transport)
    return build_server(deps), deps.roots[0]


async def test_parse_prd_uses_the_model_and_maps_its_dependencies(planning: Any) -> None:
    seen: list[httpx.Request] = []
    answer = {"tasks": [
        {"title": "Set up repo", "description": "Init", "priority": "high"},
        {"title": "Build API", "description": "REST", "details": "FastAPI", "testStrategy": "pytest",
         "dependencies": [1]},
    ]}
    server, ws = server_with(planning, answering(answer, seen))
    async with Client(server) as client:
        result = await client.call_tool("parse_prd", {"prd_text": "# PRD\n- something"})
    assert result.structured_content is not None
    assert result.structured_content["method"] == "llm"
    assert result.structured_content["warnings"] == []
    tasks = read_board(ws)["master"]["tasks"]
    assert [(t["id"], t["title"], t["dependencies"]) for t in tasks] == [
        (1, "Set up repo", []), (2, "Build API", [1])]
    assert tasks[1]["testStrategy"] == "pytest"
    request = seen[0]
    assert request.url == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = json.loads(request.content)
    assert body["model"] == "planner-1"
    assert body["response_format"]["type"] == "json_schema"


async def test_an_invalid_answer_falls_back_to_the_deterministic_planner(planning: Any) -> None:
    server, ws = server_with(planning, answering({"tasks": [{"description": "no title"}]}))
    async with Client(server) as client:
        result = await client.call_tool("parse_prd", {"prd_text": "## Features\n- Login page\n- Logout"})
    assert result.structured_content is not None
    assert result.structured_content["method"] == "deterministic"
    assert "does not match the schema" in result.structured_content["warnings"][0]
    assert [t["title"] for t in read_board(ws)["master"]["tasks"]] == ["Login page", "Logout"]


async def test_a_provider_error_falls_back_with_a_warning(planning: Any) -> None:
    server, ws = server_with(planning, answering("boom", status=500))
    write_board(ws, [task(1, details="- one thing\n- another thing")])
    async with Client(server) as client:
        result = await client.call_tool("expand", {"id": 1})
    assert result.structured_content is not None
    assert result.structured_content["method"] == "deterministic"
    assert "HTTP 500" in result.structured_content["warnings"][0]
    assert len(result.structured_content["subtasks"]) == 2


async def test_expand_uses_the_models_subtasks(planning: Any) -> None:
    answer = {"subtasks": [{"title": "A", "description": "a"}, {"title": "B", "description": "b",
                                                                "dependencies": [1]}]}
    server, ws = server_with(planning, answering(answer))
    write_board(ws, [task(1)])
    async with Client(server) as client:
        result = await client.call_tool("expand", {"id": 1, "num_subtasks": 2})
    assert result.structured_content is not None and result.structured_content["method"] == "llm"
    subs = read_board(ws)["master"]["tasks"][0]["subtasks"]
    assert [(s["id"], s["title"], s["dependencies"]) for s in subs] == [(1, "A", []), (2, "B", [1])]


async def test_analyze_uses_the_models_scores_and_falls_back_when_one_is_missing(planning: Any) -> None:
    good = {"tasks": [{"id": 1, "score": 8, "recommended_subtasks": 5, "reason": "hard"},
                      {"id": 2, "score": 2, "recommended_subtasks": 0, "reason": "easy"}]}
    server, ws = server_with(planning, answering(good))
    write_board(ws, [task(1), task(2)])
    async with Client(server) as client:
        result = await client.call_tool("analyze", {})
    assert result.structured_content is not None and result.structured_content["method"] == "llm"
    assert [(r["id"], r["score"], r["reason"]) for r in result.structured_content["tasks"]] == [
        (1, 8, "hard"), (2, 2, "easy")]

    partial = {"tasks": [{"id": 1, "score": 8, "recommended_subtasks": 5, "reason": "hard"}]}
    server, _ = server_with(planning, answering(partial))
    async with Client(server) as client:
        fallback = await client.call_tool("analyze", {})
    assert fallback.structured_content is not None
    assert fallback.structured_content["method"] == "deterministic"
    assert "did not score tasks [2]" in fallback.structured_content["warnings"][0]


async def test_planning_calls_are_recorded_in_the_ledger_with_their_purpose(planning: Any) -> None:
    deps, proxy = planning(answering({"tasks": [{"title": "Only task", "description": "d"}]}))
    async with Client(build_server(deps)) as client:
        await client.call_tool("parse_prd", {"prd_text": "# PRD\n- one"})
    assert await anyio.to_thread.run_sync(proxy.accountant.wait_for, 1, 10)
    await deps.ledger.aflush()
    with deps.ledger.read() as db:
        [row] = db.exec(select(Request)).all()
    assert (row.provider, row.model, row.status) == ("local", "planner-1", "ok")
    assert row.meta["purpose"] == "tasks_parse_prd" and "for tasks_parse_prd" in (row.route or "")


async def test_complete_json_retries_with_json_object_when_json_schema_is_rejected(planning: Any) -> None:
    formats: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        kind = json.loads(request.content)["response_format"]["type"]
        formats.append(kind)
        if kind == "json_schema":
            return httpx.Response(400, json={"error": {"message": "unsupported"}})
        return httpx.Response(200, json={"choices": [{"message": {"content": '```json\n{"ok": true}\n```'}}]})

    deps, _ = planning(httpx.MockTransport(handler))
    assert deps.completions is not None
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    answer = await deps.completions.complete_json("local/m", [{"role": "user", "content": "hi"}],
                                                  schema, purpose="test")
    assert answer == {"ok": True}
    assert formats == ["json_schema", "json_object"]


@pytest.mark.parametrize(("ref", "fragment"), [
    ("no-such-model-anywhere", "is not configured"),
    ("ghost/model", "is not configured"),
])
async def test_complete_json_rejects_unknown_models(planning: Any, ref: str, fragment: str) -> None:
    deps, _ = planning(httpx.MockTransport(lambda r: httpx.Response(500)))
    assert deps.completions is not None
    with pytest.raises(LlmError, match=fragment):
        await deps.completions.complete_json(ref, [], {"type": "object"}, purpose="test")


async def test_complete_json_reports_an_unreachable_provider(planning: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    deps, _ = planning(httpx.MockTransport(handler))
    assert deps.completions is not None
    with pytest.raises(LlmError, match="could not be reached"):
        await deps.completions.complete_json("local/m", [], {"type": "object"}, purpose="test")
