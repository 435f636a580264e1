"""`create_app(settings, deps=None)`: the composition root of the HTTP server.

It builds every service once, as typed objects, and hands each to what needs it:

    deps (settings, ledger, memory, catalog, sessions)      the core, shared with the MCP face
    upstream  = Upstream(settings.upstream)                 the one HTTP client to providers
    cluster   = cluster.connect(settings.cluster)           the one Redis client ([cluster]), or None
    stages    = ContextStages.from_deps(deps)               memory tags, masking, compression
    proxy     = Proxy(deps, upstream, stages, cluster)      /v1/*, and deps.completions
    mcp       = build_mcp(deps)                             /mcp
    runtime   = Runtime(deps, mcp, providers=proxy)        /api/*, /ws, the page

One error mapping (`errors.describe`) is registered once for the whole app; the proxy also
answers its own failures so each one still writes its ledger row.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kimi_mcp import __version__, logwatch, metrics, tokens
from kimi_mcp.auth import BearerAuth
from kimi_mcp.config import Settings
from kimi_mcp.context import ContextStages
from kimi_mcp.dashboard import api, page
from kimi_mcp.deps import Deps, build_deps
from kimi_mcp.errors import ConfigError, KimiError, describe
from kimi_mcp.httpguard import LocalOriginGuard
from kimi_mcp.httputil import error_response
from kimi_mcp.proxy import cluster
from kimi_mcp.proxy import routes as proxy_routes
from kimi_mcp.proxy.completions import ProxyCompletions
from kimi_mcp.proxy.pipeline import Proxy
from kimi_mcp.runtime import Runtime
from kimi_mcp.server import build_mcp
from kimi_mcp.server import http_app as mcp_http_app
from kimi_mcp.upstream import Upstream

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


async def _known_error(request: Request, exc: Exception) -> Response:
    return error_response(describe(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(describe(exc))


async def _warm_up(deps: Deps) -> None:
    """Load the tokenizer (~30 MB) and the embedding model now, not during the first proxied
    request or memory call."""
    try:
        await anyio.to_thread.run_sync(tokens.encoding, abandon_on_cancel=True)
    except Exception:  # counting reports the failure on the first request
        log.exception("the tokenizer could not be loaded")
    try:
        await anyio.to_thread.run_sync(lambda: deps.memory, abandon_on_cancel=True)
    except Exception:  # the memory tools report the failure when they are called
        log.exception("the memory engine could not be loaded")


def create_app(settings: Settings, deps: Deps | None = None, *,
               upstream_transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The app. Without `deps` it builds (and at shutdown closes) its own; `upstream_transport`
    replaces the network under the upstream client (tests use `httpx.MockTransport`)."""
    check_bind(settings)
    owns_deps = deps is None
    deps = deps or build_deps(settings, lazy=True)
    if deps.completions is None:  # before the stages: a summary model asks through the proxy
        deps.completions = ProxyCompletions(lambda: proxy)
    proxy = Proxy(deps, Upstream(settings.upstream, transport=upstream_transport),
                  stages=ContextStages.from_deps(deps), cluster=cluster.connect(settings.cluster))
    mcp = build_mcp(deps)
    rt = Runtime(deps, mcp=mcp, providers=proxy)
    watcher = logwatch.Watcher(deps) if settings.logwatch.enabled else None
    loopback = is_loopback(settings.server.host)
    # LocalOriginGuard checks Host and Origin for every route, /mcp included (only the MCP
    # app's routes are mounted here, so FastMCP's own guard would not run)
    mcp_app = mcp_http_app(mcp)

    async def health(request: Request) -> Response:
        # the writer of this process: rows waiting, rows refused for good, rows in the spool;
        # whether this worker shares limits and breakers through Redis right now
        return JSONResponse({"status": "ok", "version": __version__,
                             "uptime_s": round(time.time() - rt.started_at, 3),
                             "ledger": deps.ledger.stats().as_dict(),
                             "cluster": proxy.cluster_state()})

    async def prometheus(request: Request) -> Response:
        shared = bool(proxy.cluster_state()["shared"])
        body = await anyio.to_thread.run_sync(metrics.render, deps, shared)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        deps.ledger.start(follow=True)  # /ws also carries other processes' rows
        rt.started_at = time.time()
        try:
            async with AsyncExitStack() as stack:
                tasks = await stack.enter_async_context(anyio.create_task_group())
                tasks.start_soon(_warm_up, deps)
                await stack.enter_async_context(mcp_app.lifespan(app))
                await stack.enter_async_context(proxy_routes.lifespan(proxy))
                if watcher is not None:
                    await stack.enter_async_context(logwatch.lifespan(watcher))
                yield
                tasks.cancel_scope.cancel()
        finally:
            if owns_deps:
                deps.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        *proxy_routes.routes(proxy),  # first: the hottest routes are matched first
        *api.routes(rt),
        *page.routes(rt),
        *mcp_app.routes,
    ]
    tokens = [t.get_secret_value() for t in settings.server.auth_tokens]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(LocalOriginGuard, loopback=loopback,
                                           port=settings.server.port),
                                Middleware(BearerAuth, tokens=tokens)],
                    exception_handlers={KimiError: _known_error, Exception: _unexpected})
    app.state.runtime = rt
    app.state.proxy = proxy
    app.state.watcher = watcher
    return app
