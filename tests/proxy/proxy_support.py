"""A fake provider (OpenAI and Gemini formats) and a way to serve any ASGI app on loopback.

The fake's behaviour is chosen by the model id the proxy sends, e.g. `fake/ok`,
`fake/no-usage`, `fake/drop`, `fake/503-once`, `fake/429-once`, `fake/slow-once`, `fake/hang`,
`fake/reject`. It records every request it receives so tests can check what went upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kimi_mcp.app import create_app
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import open_ledger
from kimi_mcp.ledger.models import Request as RequestRow

OPENAI_KEY = "sk-fake-secret-0123456789"
GEMINI_KEY = "g-fake-secret-9876543210"
USAGE = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13,
         "prompt_tokens_details": {"cached_tokens": 4}}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeState:
    seen: list[Seen] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    closed: threading.Event = field(default_factory=threading.Event)
    delay_s: float = 0.4

    def count(self, key: str) -> int:
        self.calls[key] = self.calls.get(key, 0) + 1
        return self.calls[key]


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _answer(model: str, usage: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                     "finish_reason": "stop"}]}
    if usage:
        out["usage"] = USAGE
    return out


def fake_provider(state: FakeState) -> Starlette:
    async def openai(request: Request) -> Response:
        body = await request.json()
        state.seen.append(Seen(request.url.path, dict(request.headers), body))
        model = body["model"]
        n = state.count(model)
        early = _early(model, n)
        if early is not None:
            return early
        if model.startswith("slow"):
            if n == 1 or model == "slow-always":
                await asyncio.sleep(state.delay_s)
        if not body.get("stream"):
            return JSONResponse(_answer(model, usage=model != "no-usage"))
        wants = (body.get("stream_options") or {}).get("include_usage")
        return StreamingResponse(_stream(state, model, bool(wants)), media_type="text/event-stream")

    async def gemini(request: Request) -> Response:
        body = await request.json()
        state.seen.append(Seen(request.url.path, dict(request.headers), body))
        model, _, verb = request.path_params["rest"].partition(":")
        n = state.count(model)
        early = _early(model, n)
        if early is not None:
            return early
        if verb == "generateContent":
            return JSONResponse(_gemini_answer(body, final=True))
        return StreamingResponse(_gemini_stream(body), media_type="text/event-stream")

    return Starlette(routes=[
        Route("/v1/chat/completions", openai, methods=["POST"]),
        Route("/v1beta/models/{rest:path}", gemini, methods=["POST"]),
    ])


def _early(model: str, n: int) -> Response | None:
    if model == "reject":
        return JSONResponse({"error": {"message": "Unrecognized request argument: foo",
                                       "type": "invalid_request_error"}}, status_code=422)
    if model == "503-once" and n == 1:
        return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
    if model == "503-always":
        return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
    if model == "429-once" and n == 1:
        return JSONResponse({"error": {"message": "slow down"}}, status_code=429,
                            headers={"retry-after": "0"})
    if model == "429-always":
        return JSONResponse({"error": {"message": "slow down"}}, status_code=429,
                            headers={"retry-after": "7"})
    return None


async def _stream(state: FakeState, model: str, usage: bool) -> AsyncIterator[bytes]:
    yield _chunk(model, {"role": "assistant", "content": ""})
    yield _chunk(model, {"content": "Hel"})
    if model == "drop":
        raise ConnectionResetError("the fake provider drops the connection")
    if model == "hang":
        try:
            await asyncio.sleep(30)
        finally:
            state.closed.set()
    yield _chunk(model, {"content": "lo"})
    yield _chunk(model, {}, "stop")
    if usage and model != "no-usage":
        data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [], "usage": USAGE}
        yield b"data: " + json.dumps(data).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _gemini_answer(body: dict[str, Any], final: bool, text: str = "Hello") -> dict[str, Any]:
    tools = body.get("tools")
    if tools and final:
        name = tools[0]["functionDeclarations"][0]["name"]
        parts: list[dict[str, Any]] = [{"functionCall": {"name": name, "args": {"city": "Paris"}}}]
    else:
        parts = [{"text": text}]
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    out: dict[str, Any] = {"candidates": [candidate]}
    if final:
        candidate["finishReason"] = "STOP"
        out["usageMetadata"] = {"promptTokenCount": 9, "candidatesTokenCount": 3,
                                "totalTokenCount": 12, "cachedContentTokenCount": 2}
    return out


async def _gemini_stream(body: dict[str, Any]) -> AsyncIterator[bytes]:
    yield b"data: " + json.dumps(_gemini_answer(body, False, "Hel")).encode() + b"\r\n\r\n"
    yield b"data: " + json.dumps(_gemini_answer({}, True, "lo")).encode() + b"\r\n\r\n"


@contextlib.contextmanager
def serve(app: Any, lifespan: str = "off") -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a random loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", lifespan=lifespan, timeout_graceful_shutdown=0.2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def provider_settings(base: str, **extra: Any) -> dict[str, Any]:
    """`providers` settings naming the fake as `fake` (OpenAI format) and `gfake` (Gemini)."""
    fake = {"base_url": f"{base}/v1", "api_key": OPENAI_KEY, "timeout_s": 5, "max_retries": 2,
            "models": {"ok": {"context_window": 8000, "input_per_mtok": 1.0, "output_per_mtok": 2.0}}}
    gfake = {"base_url": f"{base}/v1beta", "api_key": GEMINI_KEY, "format": "gemini",
             "timeout_s": 5}
    fake.update(extra.pop("fake", {}))
    gfake.update(extra.pop("gfake", {}))
    return {"fake": fake, "gfake": gfake, **extra}


def proxy_app(deps: Any, transport: Any = None, stages: Any = None) -> Starlette:
    """Only the proxy's routes and lifespan around the deps (faster than the whole app);
    `app.state.proxy` is the proxy, retrying with millisecond backoffs."""
    from kimi_mcp.proxy import routes
    from kimi_mcp.proxy.pipeline import Proxy
    from kimi_mcp.upstream import Backoff, Upstream

    upstream = Upstream(deps.settings.upstream, transport=transport,
                        backoff=Backoff(base=0.001, cap=0.002, max_retry_after=0.01))
    proxy = Proxy(deps, upstream, stages=stages)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with routes.lifespan(proxy):
            yield

    app = Starlette(routes=routes.routes(proxy), lifespan=lifespan)
    app.state.proxy = proxy
    return app


async def proxy_rows(deps: Deps, proxy: Any, count: int) -> list[RequestRow]:
    """The ledger's request rows, oldest first, once `proxy` has accounted `count` calls."""
    import anyio

    assert await anyio.to_thread.run_sync(proxy.accountant.wait_for, count, 10)
    await deps.ledger.aflush()
    with deps.ledger.read() as db:
        return list(db.exec(select(RequestRow).order_by(col(RequestRow.id))).all())


# ---- the whole app on loopback, and what a test reads back from its ledger ----------------------


@dataclass
class Served:
    """The app served on loopback (`url`) with its deps and proxy; `mark()` starts a test and
    `rows(n)` waits for its `n` calls to be accounted and returns their ledger rows, oldest first."""

    url: str
    deps: Deps
    proxy: Any
    base_row: int = 0
    base_count: int = 0

    def mark(self) -> None:
        accountant = self.proxy.accountant
        assert accountant.wait_for(accountant.submitted, 10)
        self.deps.ledger.flush()
        self.base_count = accountant.accounted
        with self.deps.ledger.read() as db:
            self.base_row = max([r.id or 0 for r in db.exec(select(RequestRow)).all()], default=0)

    def rows(self, count: int = 1) -> list[Any]:
        assert self.proxy.accountant.wait_for(self.base_count + count, 10), "calls not accounted"
        self.deps.ledger.flush()
        with self.deps.ledger.read() as db:
            return list(db.exec(select(RequestRow).where(col(RequestRow.id) > self.base_row)
                                .order_by(col(RequestRow.id))).all())


@contextlib.contextmanager
def served_app(settings: Any) -> Iterator[tuple[str, Any, Any]]:
    """`create_app` over a started ledger, served by uvicorn on loopback with its lifespan:
    yields (url, deps, proxy); the ledger is closed after the server stops."""
    ledger = open_ledger(settings.database_url(), settings.data_dir)
    ledger.start()
    deps = Deps(settings, ledger=ledger)
    app = create_app(settings, deps)
    try:
        with serve(app, lifespan="on") as url:
            yield url, deps, app.state.proxy
    finally:
        ledger.close()
