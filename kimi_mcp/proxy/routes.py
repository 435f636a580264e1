"""The /v1 routes, each also without the /v1 prefix: chat completions, Anthropic Messages (and
its token count), OpenAI Responses, and the model list."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kimi_mcp import tokens
from kimi_mcp.proxy import cluster
from kimi_mcp.proxy.accounting import seed_stats
from kimi_mcp.proxy.pipeline import Proxy

log = logging.getLogger(__name__)
# every path is served under /v1 and without it
PATHS = ("/chat/completions", "/messages", "/messages/count_tokens", "/responses", "/models")


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


def routes(proxy: Proxy) -> list[BaseRoute]:
    models: dict[str, Any] = {}

    inbounds = proxy.inbounds

    async def chat(request: Request) -> Response:
        return await proxy.chat(request)

    async def messages(request: Request) -> Response:
        return await proxy.serve(request, inbounds.anthropic_messages)

    async def count_tokens(request: Request) -> Response:
        return await proxy.count_tokens(request)

    async def responses(request: Request) -> Response:
        return await proxy.serve(request, inbounds.openai_responses)

    async def list_models(request: Request) -> Response:
        if not models:
            models.update(model_list(proxy))
        return JSONResponse(models)

    handlers = (chat, messages, count_tokens, responses, list_models)
    endpoints = [(path, handler, "GET" if path == "/models" else "POST")
                 for path, handler in zip(PATHS, handlers, strict=True)]
    return [Route(prefix + path, endpoint, methods=[method])
            for path, endpoint, method in endpoints for prefix in ("/v1", "")]


def _warm_up(proxy: Proxy) -> None:
    """Load the tokenizer and the routing history now, not during the first call."""
    tokens.encoding()
    seed_stats(proxy.deps, proxy.router.observe)


@asynccontextmanager
async def lifespan(proxy: Proxy) -> AsyncIterator[None]:
    """Runs the accountant (and the shared breakers) while the app serves; closes the upstream
    and Redis clients at the end."""
    proxy.start()
    try:
        await anyio.to_thread.run_sync(_warm_up, proxy)
    except Exception:  # the router starts without history rather than not at all
        log.exception("could not read the routing history from the ledger")
    try:
        async with cluster.running(proxy.cluster, proxy.breakers):
            yield
    finally:
        await proxy.aclose()
