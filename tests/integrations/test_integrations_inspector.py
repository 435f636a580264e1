"""The MCP Inspector CLI (npm @modelcontextprotocol/inspector@0.15.0) against kimi-mcp.

Installed outside the repo by .ci/run:
    npm install --prefix ~/.cache/kimi-mcp-tests/inspector @modelcontextprotocol/inspector@0.15.0
or pointed to with KIMI_MCP_INSPECTOR (the install dir, or the CLI's build/index.js).

The inspector runs one method per process, and over stdio each process starts a fresh
`kimi-mcp stdio`; so /mcp (one server for the module) gets the full matrix, stdio the handshake,
tools/list, resources/list, a stats read and a call. The SDK tests cover the full matrix on stdio.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integrations_support import (
    FAMILY_CALLS,
    HttpServer,
    make_workspace,
    run_http_server,
    server_env,
    stdio_command,
)
from jsonschema.validators import validator_for

CLI = Path("node_modules/@modelcontextprotocol/inspector-cli/build/index.js")
DEFAULT_DIR = Path.home() / ".cache" / "kimi-mcp-tests" / "inspector"


def inspector_cli() -> Path | None:
    configured = os.environ.get("KIMI_MCP_INSPECTOR")
    for candidate in ([Path(configured)] if configured else []) + [DEFAULT_DIR]:
        path = candidate if candidate.suffix == ".js" else candidate / CLI
        if path.is_file():
            return path
    return None


CLI_PATH = inspector_cli()
pytestmark = [
    pytest.mark.skipif(
        CLI_PATH is None or shutil.which("node") is None,
        reason="MCP Inspector CLI not installed: npm install --prefix ~/.cache/kimi-mcp-tests/"
               "inspector @modelcontextprotocol/inspector@0.15.0 (or set KIMI_MCP_INSPECTOR)",
    ),
    # real processes: a cold `kimi-mcp` start is seconds, much more on a loaded machine
    pytest.mark.timeout(150),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspector")


@pytest.fixture(scope="module")
def http_server(root: Path) -> Iterator[HttpServer]:
    with run_http_server(root / "http", make_workspace(root / "http")) as server:
        yield server


def inspect(target: list[str], method: str, *extra: str, root: Path) -> Any:
    assert CLI_PATH is not None
    if target[0].startswith("http"):
        argv = ["node", str(CLI_PATH), *target, "--method", method, *extra]
    else:
        argv = ["node", str(CLI_PATH), target[0], "--method", method, *extra, "--", *target[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=root,
                          env=server_env(root), check=False)
    assert done.returncode == 0, f"{method}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def tool_args(args: dict[str, object]) -> list[str]:
    pairs = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in args.items()]
    return ["--tool-arg", *pairs] if pairs else []


def check_tools(listed: dict[str, Any]) -> set[str]:
    tools = listed["tools"]
    assert len(tools) == 43, sorted(t["name"] for t in tools)
    for tool in tools:
        for key in ("inputSchema", "outputSchema"):
            if key in tool:
                validator_for(tool[key]).check_schema(tool[key])
    return {t["name"] for t in tools}


# ---- /mcp over streamable HTTP: the full matrix ----------------------------------------------

def test_inspector_over_http_lists_43_tools_with_valid_schemas(http_server: HttpServer, root: Path) -> None:
    names = check_tools(inspect([http_server.url], "tools/list", root=root))
    assert {tool for tool, _ in FAMILY_CALLS.values()} <= names


def test_inspector_over_http_reads_every_stats_resource(http_server: HttpServer, root: Path) -> None:
    resources = inspect([http_server.url], "resources/list", root=root)["resources"]
    stats = [r["uri"] for r in resources if r["uri"].startswith("stats://")]
    assert "stats://summary" in stats
    for uri in stats:
        [content] = inspect([http_server.url], "resources/read", "--uri", uri, root=root)["contents"]
        json.loads(content["text"])


@pytest.mark.parametrize("family", sorted(FAMILY_CALLS))
def test_inspector_over_http_calls_a_tool_of_each_family(
    http_server: HttpServer, root: Path, family: str
) -> None:
    tool, args = FAMILY_CALLS[family]
    result = inspect([http_server.url], "tools/call", "--tool-name", tool, *tool_args(args), root=root)
    assert not result.get("isError"), result


# ---- kimi-mcp stdio ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stdio(root: Path) -> list[str]:
    return stdio_command(make_workspace(root / "stdio"))


# one inspector process (so one `kimi-mcp stdio` start) per test keeps each under the timeout
def test_inspector_over_stdio_lists_43_tools_with_valid_schemas(stdio: list[str], root: Path) -> None:
    check_tools(inspect(stdio, "tools/list", root=root))


def test_inspector_over_stdio_lists_the_stats_resources(stdio: list[str], root: Path) -> None:
    resources = inspect(stdio, "resources/list", root=root)["resources"]
    assert "stats://summary" in [r["uri"] for r in resources]


def test_inspector_over_stdio_reads_the_stats_summary(stdio: list[str], root: Path) -> None:
    [content] = inspect(stdio, "resources/read", "--uri", "stats://summary", root=root)["contents"]
    assert "totals" in json.loads(content["text"])


def test_inspector_over_stdio_calls_a_tool(stdio: list[str], root: Path) -> None:
    tool, args = FAMILY_CALLS["json"]
    result = inspect(stdio, "tools/call", "--tool-name", tool, *tool_args(args), root=root)
    assert not result.get("isError"), result


# ---- what a refused call says, as the Inspector shows it ---------------------------------------

def test_inspector_shows_a_refused_argument_by_public_tool_and_parameter(
    http_server: HttpServer, root: Path
) -> None:
    result = inspect([http_server.url], "tools/call", "--tool-name", "fs_list_directory",
                     "--tool-arg", "sort_by=zzz", root=root)
    text = result["content"][0]["text"]
    assert result["isError"] is True
    assert text.startswith("Invalid arguments for fs_list_directory:")
    assert '`sort_by` must be one of "name", "size", "modified", "type"' in text
    for leak in ("call[", "list_directory]", "pydantic", "input_value"):
        assert leak not in text


def test_inspector_null_for_an_optional_number_means_not_given(http_server: HttpServer, root: Path) -> None:
    # the Inspector sends a number field it cannot parse as null
    result = inspect([http_server.url], "tools/call", "--tool-name", "fs_read_file",
                     "--tool-arg", "path=data.json", "offset_line=not-a-number", root=root)
    assert not result.get("isError"), result
    assert json.loads(result["content"][0]["text"])["name"] == "kimi"
