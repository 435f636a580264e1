"""`create_app(settings, deps=None)`: one Starlette app = proxy + dashboard + /mcp + /health."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kimi_mcp import __version__, logwatch, metrics
from kimi_mcp.auth import BearerAuth
from kimi_mcp.config import Settings
from kimi_mcp.dashboard import api, page
from kimi_mcp.deps import Deps, build_deps
from kimi_mcp.errors import ConfigError
from kimi_mcp.proxy import routes as proxy
from kimi_mcp.runtime import Runtime
from kimi_mcp.server import build_mcp

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    if not is_loopback(settings.server.host) and not settings.server.auth_tokens:
        raise ConfigError(
            f"refusing to listen on {settings.server.host} without authentication: set "
            "server.auth_tokens (or KIMI_MCP_SERVER__AUTH_TOKENS='[\"...\"]'), or bind to 127.0.0.1"
        )


def create_app(settings: Settings, deps: Deps | None = None) -> Starlette:
    check_bind(settings)
    deps = deps or build_deps(settings)
    rt = Runtime(deps)
    mcp = build_mcp(deps)
    rt.extras["mcp"] = mcp  # the dashboard's MCP panel lists every mounted tool
    loopback = is_loopback(settings.server.host)
    mcp_app = mcp.http_app(
        path="/mcp",
        host_origin_protection=loopback,  # off the loopback, bearer tokens guard /mcp instead
        allowed_hosts=[settings.server.host, f"{settings.server.host}:{settings.server.port}"],
    )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__,
                             "uptime_s": round(time.time() - rt.started_at, 3)})

    async def prometheus(request: Request) -> Response:
        import anyio

        body = await anyio.to_thread.run_sync(metrics.render, deps)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owns_ledger = deps.ledger._thread is None
        deps.ledger.start()
        rt.started_at = time.time()
        try:
            async with AsyncExitStack() as stack:
                rt.http = await stack.enter_async_context(httpx.AsyncClient(
                    transport=deps.http_transport, timeout=None, follow_redirects=False,
                    limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
                ))
                await stack.enter_async_context(mcp_app.lifespan(app))
                await stack.enter_async_context(api.lifespan(rt))  # warms the charts' cache
                await stack.enter_async_context(proxy.lifespan(rt))
                await stack.enter_async_context(logwatch.lifespan(rt))
                yield
        finally:
            if owns_ledger:
                deps.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        *proxy.routes(rt),  # first: the hottest routes are matched first
        *api.routes(rt),
        *page.routes(rt),
        *mcp_app.routes,
    ]
    tokens = [t.get_secret_value() for t in settings.server.auth_tokens]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(BearerAuth, tokens=tokens)])
    app.state.runtime = rt
    return app
