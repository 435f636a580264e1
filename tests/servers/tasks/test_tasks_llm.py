"""With `[tasks] llm_model` set, planning asks the model; any failure falls back with a warning."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client, FastMCP
from tasks_support import make_server, read_board, task, write_board

from kimi_mcp.config import load_settings
from kimi_mcp.llm import LlmError, complete_json

pytestmark = pytest.mark.anyio
PROVIDERS = {"local": {"base_url": "http://llm.test/v1", "api_key": "sk-test"}}


def answering(content: Any, seen: list[httpx.Request] | None = None,
              status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        text = content if isinstance(content, str) else json.dumps(content)
        return httpx.Response(status, json={"choices": [{"message": {"role": "assistant", "content": text}}]})

    return httpx.MockTransport(handler)


def server_with(tmp_path: Path, transport: httpx.MockTransport) -> tuple[FastMCP, Path]:
    return make_server(tmp_path, llm_model="local/planner-1", transport=transport, providers=PROVIDERS)


async def test_parse_prd_uses_the_model_and_maps_its_dependencies(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    answer = {"tasks": [
        {"title": "Set up repo", "description": "Init", "priority": "high"},
        {"title": "Build API", "description": "REST", "details": "FastAPI", "testStrategy": "pytest",
         "dependencies": [1]},
    ]}
    server, ws = server_with(tmp_path, answering(answer, seen))
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


async def test_an_invalid_answer_falls_back_to_the_deterministic_planner(tmp_path: Path) -> None:
    server, ws = server_with(tmp_path, answering({"tasks": [{"description": "no title"}]}))
    async with Client(server) as client:
        result = await client.call_tool("parse_prd", {"prd_text": "## Features\n- Login page\n- Logout"})
    assert result.structured_content is not None
    assert result.structured_content["method"] == "deterministic"
    assert "does not match the schema" in result.structured_content["warnings"][0]
    assert [t["title"] for t in read_board(ws)["master"]["tasks"]] == ["Login page", "Logout"]


async def test_a_provider_error_falls_back_with_a_warning(tmp_path: Path) -> None:
    server, ws = server_with(tmp_path, answering("boom", status=500))
    write_board(ws, [task(1, details="- one thing\n- another thing")])
    async with Client(server) as client:
        result = await client.call_tool("expand", {"id": 1})
    assert result.structured_content is not None
    assert result.structured_content["method"] == "deterministic"
    assert "HTTP 500" in result.structured_content["warnings"][0]
    assert len(result.structured_content["subtasks"]) == 2


async def test_expand_uses_the_models_subtasks(tmp_path: Path) -> None:
    answer = {"subtasks": [{"title": "A", "description": "a"}, {"title": "B", "description": "b",
                                                                "dependencies": [1]}]}
    server, ws = server_with(tmp_path, answering(answer))
    write_board(ws, [task(1)])
    async with Client(server) as client:
        result = await client.call_tool("expand", {"id": 1, "num_subtasks": 2})
    assert result.structured_content is not None and result.structured_content["method"] == "llm"
    subs = read_board(ws)["master"]["tasks"][0]["subtasks"]
    assert [(s["id"], s["title"], s["dependencies"]) for s in subs] == [(1, "A", []), (2, "B", [1])]


async def test_analyze_uses_the_models_scores_and_falls_back_when_one_is_missing(tmp_path: Path) -> None:
    good = {"tasks": [{"id": 1, "score": 8, "recommended_subtasks": 5, "reason": "hard"},
                      {"id": 2, "score": 2, "recommended_subtasks": 0, "reason": "easy"}]}
    server, ws = server_with(tmp_path, answering(good))
    write_board(ws, [task(1), task(2)])
    async with Client(server) as client:
        result = await client.call_tool("analyze", {})
    assert result.structured_content is not None and result.structured_content["method"] == "llm"
    assert [(r["id"], r["score"], r["reason"]) for r in result.structured_content["tasks"]] == [
        (1, 8, "hard"), (2, 2, "easy")]

    partial = {"tasks": [{"id": 1, "score": 8, "recommended_subtasks": 5, "reason": "hard"}]}
    server, _ = server_with(tmp_path, answering(partial))
    async with Client(server) as client:
        fallback = await client.call_tool("analyze", {})
    assert fallback.structured_content is not None
    assert fallback.structured_content["method"] == "deterministic"
    assert "did not score tasks [2]" in fallback.structured_content["warnings"][0]


async def test_complete_json_retries_with_json_object_when_json_schema_is_rejected(tmp_path: Path) -> None:
    formats: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        kind = json.loads(request.content)["response_format"]["type"]
        formats.append(kind)
        if kind == "json_schema":
            return httpx.Response(400, json={"error": {"message": "unsupported"}})
        return httpx.Response(200, json={"choices": [{"message": {"content": '```json\n{"ok": true}\n```'}}]})

    settings = load_settings(overrides={"data_dir": str(tmp_path), "providers": PROVIDERS}, launch_dir=tmp_path)
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    answer = await complete_json(settings, "local/m", [{"role": "user", "content": "hi"}], schema,
                                 transport=httpx.MockTransport(handler))
    assert answer == {"ok": True}
    assert formats == ["json_schema", "json_object"]


@pytest.mark.parametrize(("ref", "fragment"), [
    ("no-slash", "must look like 'provider/model'"),
    ("ghost/model", "provider 'ghost' is not available"),
])
async def test_complete_json_rejects_bad_model_references(tmp_path: Path, ref: str, fragment: str) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path)}, launch_dir=tmp_path)
    transport: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(500)  # noqa: E731
    with pytest.raises(LlmError, match=fragment):
        await complete_json(settings, ref, [], {"type": "object"}, transport=httpx.MockTransport(transport))


async def test_complete_json_reports_an_unreachable_provider(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    settings = load_settings(overrides={"data_dir": str(tmp_path), "providers": PROVIDERS}, launch_dir=tmp_path)
    with pytest.raises(LlmError, match="could not be reached: ConnectError"):
        await complete_json(settings, "local/m", [], {"type": "object"}, transport=httpx.MockTransport(handler))
