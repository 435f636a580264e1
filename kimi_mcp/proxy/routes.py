"""The /v1 routes. Placeholder until the proxy lands: answers 501 with a clear message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kimi_mcp.httputil import json_error
from kimi_mcp.runtime import Runtime


def routes(rt: Runtime) -> list[BaseRoute]:
    async def not_yet(request: Request) -> Response:
        return json_error(501, "the proxy is not part of this build yet", "not_implemented")

    return [Route(p, not_yet, methods=["GET", "POST"]) for p in
            ("/v1/chat/completions", "/chat/completions", "/v1/models", "/models")]


@asynccontextmanager
async def lifespan(rt: Runtime) -> AsyncIterator[None]:
    yield
