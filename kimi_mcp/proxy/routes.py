"""The /v1 routes: chat completions and the model list, with and without the /v1 prefix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kimi_mcp.proxy.accounting import seed_stats
from kimi_mcp.proxy.pipeline import Proxy, Stages
from kimi_mcp.proxy.transport import FastTransport
from kimi_mcp.runtime import Runtime

log = logging.getLogger(__name__)
KEY = "proxy"


def load_stages() -> Stages | None:
    try:
        from kimi_mcp.context import apply_stages  # type: ignore[attr-defined]
    except ImportError:
        return None
    return apply_stages  # type: ignore[no-any-return]


def proxy_of(rt: Runtime) -> Proxy:
    """The proxy's state (router, limiter, accountant, backoff), built once per runtime."""
    found = rt.extras.get(KEY)
    if found is None:
        if rt.deps.http_transport is None:
            # the app's shared client is built with this transport in its lifespan, after routes
            rt.deps.http_transport = FastTransport()
        found = Proxy(rt.deps, lambda: rt.client, stages=load_stages())
        rt.extras[KEY] = found
    return found  # type: ignore[no-any-return]


def model_list(proxy: Proxy) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for provider in proxy.deps.catalog.providers.values():
        for model in provider.models.values():
            data.append({"id": f"{provider.name}/{model.id}", "object": "model", "created": 0,
                         "owned_by": provider.name, "context_window": model.context_window})
    for name, alias in proxy.deps.settings.routing.aliases.items():
        data.append({"id": name, "object": "model", "created": 0, "owned_by": "kimi-mcp",
                     "strategy": alias.strategy, "models": list(alias.models)})
    return {"object": "list", "data": data}


def routes(rt: Runtime) -> list[BaseRoute]:
    proxy = proxy_of(rt)
    models: dict[str, Any] = {}

    async def chat(request: Request) -> Response:
        return await proxy.chat(request)

    async def list_models(request: Request) -> Response:
        if not models:
            models.update(model_list(proxy))
        return JSONResponse(models)

    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/models", list_models, methods=["GET"]),
    ]


def _warm_up(rt: Runtime, proxy: Proxy) -> None:
    """Load the tokenizer and the routing history now, not during the first call."""
    from kimi_mcp import tokens

    tokens.encoding()
    seed_stats(rt.deps, proxy.router.observe)


@asynccontextmanager
async def lifespan(rt: Runtime) -> AsyncIterator[None]:
    proxy = proxy_of(rt)
    proxy.accountant.start()
    rt.deps.ledger.bus.on_event(proxy.on_event)
    try:
        await anyio.to_thread.run_sync(_warm_up, rt, proxy)
    except Exception:  # the router starts without history rather than not at all
        log.exception("could not read the routing history from the ledger")
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(proxy.accountant.close)
