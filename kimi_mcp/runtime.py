"""What the HTTP faces share while the app runs: the deps and the lifespan's resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from kimi_mcp.deps import Deps


@dataclass
class Runtime:
    deps: Deps
    http: httpx.AsyncClient | None = None  # the one upstream client, created in the lifespan
    started_at: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            raise RuntimeError("the app's lifespan has not started")
        return self.http
