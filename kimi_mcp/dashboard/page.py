"""`/`: the dashboard page and its static files, and `/ws`: ledger events pushed live."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from kimi_mcp.runtime import Runtime

# The page may not be framed by another site (click-jacking: CSP Level 2 `frame-ancestors`,
# with RFC 7034 `X-Frame-Options` for older browsers), and nothing it serves is sniffed into
# another type.
PAGE_HEADERS = {"cache-control": "no-cache", "content-security-policy": "frame-ancestors 'none'",
                "x-frame-options": "DENY", "x-content-type-options": "nosniff"}


def web_dir() -> Path:
    return Path(str(resources.files("kimi_mcp.web")))


def routes(rt: Runtime) -> list[BaseRoute]:
    root = web_dir()

    async def index(request: Request) -> Response:
        page = root / "index.html"
        if page.is_file():
            return FileResponse(page, headers=PAGE_HEADERS)
        return HTMLResponse("<!doctype html><title>kimi-mcp</title><h1>kimi-mcp</h1>"
                            "<p>The dashboard is not built into this package yet; "
                            "the API is at <a href=/api/stats>/api/stats</a>.</p>",
                            headers=PAGE_HEADERS)

    async def events(ws: WebSocket) -> None:
        await ws.accept()
        sub = rt.deps.ledger.bus.subscribe()
        try:
            await ws.send_json({"type": "hello", "data": {"version": _version()}})
            async with anyio.create_task_group() as tg:
                async def drain_client() -> None:
                    try:
                        while True:
                            await ws.receive_text()
                    except WebSocketDisconnect:
                        tg.cancel_scope.cancel()

                tg.start_soon(drain_client)
                async for event in sub:
                    await ws.send_text(json.dumps(event.as_json(), default=str))
        except WebSocketDisconnect:
            pass
        finally:
            sub.close()

    out: list[BaseRoute] = [Route("/", index), Route("/index.html", index),
                            WebSocketRoute("/ws", events)]
    if root.is_dir():
        out.append(Mount("/static", StaticFiles(directory=root), name="static"))
    return out


def _version() -> str:
    from kimi_mcp import __version__

    return __version__
