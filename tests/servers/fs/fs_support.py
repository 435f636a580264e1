"""Helpers shared by the fs tests (not a test module)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from kimi_mcp.servers.fs import build_server

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.workspace import Workspace


def make_deps(tmp_path: Path, *, read_only: bool = False, roots: list[Path] | None = None) -> Deps:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    settings = load_settings(
        overrides={
            "data_dir": str(tmp_path / "data"),
            "mcp": {"workspace": str(workspace), "read_only": read_only},
        },
        launch_dir=tmp_path,
    )
    return Deps(
        settings=settings,
        ledger=None,  # type: ignore[arg-type]
        memory=None,  # type: ignore[arg-type]
        roots=roots or [workspace.resolve()],
    )


_SHARED: dict[bool, tuple[Deps, FastMCP]] = {}


def make_server(tmp_path: Path, *, read_only: bool = False) -> tuple[FastMCP, Path]:
    """The fs server with `tmp_path / "ws"` as its only root.

    One server per mode is built for the whole run (building costs more than most tests) and
    re-pointed at each test's workspace: the family reads `deps.roots` on every call.
    """
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    if read_only not in _SHARED:
        deps = make_deps(tmp_path, read_only=read_only)
        _SHARED[read_only] = (deps, build_server(deps))
    deps, server = _SHARED[read_only]
    deps.roots = [workspace.resolve()]
    return server, deps.roots[0]


def workspace_for(*roots: Path) -> Workspace:
    listed = [r.resolve() for r in roots]
    return Workspace(lambda: listed)


async def call(server: FastMCP, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    async with Client(server) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refused(server: FastMCP, tool: str, **args: Any) -> str:
    """Call a tool that must fail; return its error text."""
    async with Client(server) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error, result.structured_content
    return "".join(getattr(block, "text", "") for block in result.content)


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under a directory (links not followed) with a hash of its bytes."""
    seen: dict[str, str] = {}
    for base, dirs, files in os.walk(directory):
        for name in dirs + files:
            full = os.path.join(base, name)
            rel = os.path.relpath(full, directory)
            if os.path.islink(full):
                seen[rel] = "link:" + os.readlink(full)
            elif os.path.isfile(full):
                seen[rel] = hashlib.sha256(Path(full).read_bytes()).hexdigest()
            else:
                seen[rel] = "dir"
    return seen
