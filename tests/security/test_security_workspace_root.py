"""The workspace can never silently become the whole filesystem: a root that is `/` is refused
however it was set — `--workspace`, the config file, the launch directory or the client's MCP
roots — with one line that says to pass a project directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from kimi_mcp.deps import Deps
from kimi_mcp.server import build_mcp
from tests.core.test_stdio_ledger import EXE, env_for


def _stdio_from(cwd: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "raw", "version": "1"}}})
    return subprocess.run([*EXE, "stdio", *args], cwd=cwd, env=env_for(tmp_path),
                          input=init + "\n", capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [("--workspace", "."), ("--workspace", "/"), ()],
                         ids=["dot-from-root", "slash", "launch-dir"])
def test_stdio_started_from_the_filesystem_root_refuses_to_serve_it(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    done = _stdio_from(Path("/"), tmp_path, *args)
    assert done.returncode != 0
    assert done.stdout == ""  # nothing was served, not even the handshake
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "whole filesystem" in lines[0] and "pass a project directory" in lines[0]


def test_a_config_file_whose_workspace_is_the_filesystem_root_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "kimi-mcp.toml"
    config.write_text('[mcp]\nworkspace = "/"\n')
    done = _stdio_from(tmp_path, tmp_path, "--config", str(config))
    assert done.returncode != 0
    assert "whole filesystem" in done.stderr and "pass a project directory" in done.stderr


def test_a_home_directory_workspace_is_named_on_stderr(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**env_for(tmp_path), "HOME": str(home)}
    done = subprocess.run([*EXE, "stdio", "--workspace", str(home)], cwd=tmp_path, env=env,
                          input="", capture_output=True, text=True, timeout=60)
    assert "whole home directory" in done.stderr


@pytest.mark.anyio
async def test_client_roots_that_are_the_filesystem_root_are_refused(make_deps) -> None:  # type: ignore[no-untyped-def]
    deps: Deps = make_deps()
    before = list(deps.roots)
    async with Client(build_mcp(deps, warm_up=True), roots=["file:///"], mode="legacy") as client:
        with pytest.raises(ToolError, match=r"whole filesystem.*pass a project directory"):
            await client.call_tool("fs_get_file_info", {"path": "/etc/passwd"})
    assert deps.roots == before


@pytest.mark.anyio
async def test_the_workspace_refuses_a_filesystem_root_it_is_handed_at_use_time(make_deps) -> None:  # type: ignore[no-untyped-def]
    deps: Deps = make_deps()
    deps.roots[:] = [Path("/")]
    async with Client(build_mcp(deps)) as client:
        result = await client.call_tool("fs_get_file_info", {"path": "/etc/passwd"},
                                        raise_on_error=False)
    assert result.is_error
    assert "whole filesystem" in result.content[0].text  # type: ignore[union-attr]
