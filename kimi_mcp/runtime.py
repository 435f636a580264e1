"""What the HTTP faces share while the app runs, built once by `create_app`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kimi_mcp.deps import Deps

if TYPE_CHECKING:
    from fastmcp import FastMCP


class ProviderState(Protocol):
    """Live routing state per provider, for the dashboard (the proxy implements it)."""

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """`{provider: {"breaker", "open_models", "rate_limit", "ewma_ttft_ms", "ewma_tps"}}`."""
        ...


@dataclass
class Runtime:
    deps: Deps
    mcp: FastMCP | None = None  # the aggregating server, for the dashboard's MCP panel
    providers: ProviderState | None = None
    started_at: float = field(default_factory=time.time)
