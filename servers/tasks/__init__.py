"""The `tasks` family: a claude-task-master compatible task board (`build_server(deps)`)."""

from kimi_mcp.servers.tasks.server import build_server

__all__ = ["build_server"]
