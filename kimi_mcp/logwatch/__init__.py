"""The Continue.dev log watcher (placeholder lifespan until it lands)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kimi_mcp.runtime import Runtime


@asynccontextmanager
async def lifespan(rt: Runtime) -> AsyncIterator[None]:
    yield
