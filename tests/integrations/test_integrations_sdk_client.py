"""The official `mcp` Python SDK client against `kimi-mcp stdio` and `kimi-mcp serve`'s /mcp,
with each handshake version a client may ask for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from integrations_support import (
    FAMILY_CALLS,
    HttpServer,
    make_workspace,
    run_http_server,
    server_env,
    stdio_command,
)
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

# real processes: a cold `kimi-mcp` start is seconds, much more on a loaded machine
pytestmark = pytest.mark.timeout(150)

VERSIONS = ["2025-06-18", "2025-11-25"]
TOOL_COUNT = 43  # all five families are mounted by default


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk")


@pytest.fixture(scope="module")
def http_server(root: Path) -> Iterator[HttpServer]:
    with run_http_server(root / "http", make_workspace(root / "http")) as server:
        yield server


async def handshake(session: ClientSession, version: str) -> types.InitializeResult:
    """`initialize` offering exactly `version` (ClientSession.initialize offers the newest)."""
    result = await session.send_request(
        types.InitializeRequest(params=types.InitializeRequestParams(
            protocol_version=version, capabilities=types.ClientCapabilities(),
            client_info=types.Implementation(name="conformance", version="1.0"),
        )),
        types.InitializeResult,
    )
    session.adopt(result)
    await session.send_notification(types.InitializedNotification())
    return result


def check_schema(schema: dict[str, Any] | None, where: str) -> None:
    if schema is None:
        return
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise AssertionError(f"{where}: invalid JSON Schema: {exc}") from exc


async def exercise(session: ClientSession, version: str) -> None:
    result = await handshake(session, version)
    assert result.protocol_version == version
    tools = (await session.list_tools()).tools
    names = {t.name for t in tools}
    assert len(tools) == TOOL_COUNT, sorted(names)
    for tool in tools:
        check_schema(tool.input_schema, f"{tool.name} inputSchema")
        check_schema(tool.output_schema, f"{tool.name} outputSchema")
    uris = [str(r.uri) for r in (await session.list_resources()).resources]
    stats = [u for u in uris if u.startswith("stats://")]
    assert "stats://summary" in stats
    for uri in stats:
        read = await session.read_resource(uri)
        [content] = read.contents
        assert isinstance(content, types.TextResourceContents)
        json.loads(content.text)
    for family, (tool, args) in FAMILY_CALLS.items():
        assert tool in names, family
        called = await session.call_tool(tool, args)
        assert not called.is_error, (tool, called.content)


def stdio_session(root: Path) -> AbstractAsyncContextManager[Any]:
    ws = make_workspace(root)
    params = StdioServerParameters(command=stdio_command(ws)[0], args=stdio_command(ws)[1:],
                                   env=server_env(root), cwd=str(root))
    return stdio_client(params)


@pytest.mark.anyio
@pytest.mark.parametrize("version", VERSIONS)
async def test_sdk_client_over_stdio_lists_reads_and_calls_every_family(
    root: Path, version: str
) -> None:
    with anyio.fail_after(120):
        async with stdio_session(root / f"stdio-{version}") as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session, version)


@pytest.mark.anyio
@pytest.mark.parametrize("version", VERSIONS)
async def test_sdk_client_over_streamable_http_lists_reads_and_calls_every_family(
    http_server: HttpServer, version: str
) -> None:
    with anyio.fail_after(120):
        async with streamable_http_client(http_server.url) as (read, write):
            async with ClientSession(read, write) as session:
                await exercise(session, version)

