"""The `fs` tool family: a fast, safe workspace for agents (mounted under the `fs` namespace)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmcp import FastMCP

from kimi_mcp.workspace import Workspace

from . import tools_archive, tools_read, tools_search, tools_write

if TYPE_CHECKING:
    from kimi_mcp.deps import Deps

__all__ = ["Workspace", "build_server"]


def build_server(deps: Deps) -> FastMCP:
    """The fs family; with `[mcp] read_only = true` the tools that write are not registered."""
    mcp: FastMCP = FastMCP("fs")
    workspace = Workspace(lambda: deps.roots)
    tools_read.register(mcp, workspace)
    tools_search.register(mcp, workspace)
    if not deps.settings.mcp.read_only:
        tools_write.register(mcp, workspace)
        tools_archive.register(mcp, workspace)
    return mcp
