"""A web page cannot drive the local server: DNS-rebinding Hosts and cross-site Origins are refused
on every route (HTTP and WebSocket), before anything runs; clients without Origin are unaffected."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import select
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from kimi_mcp.app import create_app
from kimi_mcp.deps import Deps
from kimi_mcp.ledger.models import Request

pytestmark = pytest.mark.anyio
OWN = "http://127.0.0.1:8765"
PROVIDERS = {"up": {"base_url": "http://up.test/v1", "api_key": "sk-up-secret", "max_retries": 0,
                    "models": {"m": {"context_window": 100_000}}}}
CHAT = {"model": "up/m", "messages": [{"role": "user", "content": "hi"}]}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "page", "version": "1"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

# every kind of route: proxy, API reads and writes, MCP, metrics, the page
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/chat/completions", {"json": CHAT}),
    ("POST", "/chat/completions", {"content": json.dumps(CHAT), "headers": {"content-type": "text/plain"}}),
    ("GET", "/v1/models", {}),
    ("POST", "/mcp", {"json": INIT, "headers": MCP_HEADERS}),
    ("GET", "/mcp", {"headers": {"accept": "text/event-stream"}}),
    ("GET", "/api/sessions", {}),
    ("POST", "/api/sessions", {"json": {"name": "planted"}}),
    ("GET", "/api/requests", {}),
    ("GET", "/metrics", {}),
    ("GET", "/", {}),
]
STATE_CHANGING = [r for r in ROUTES if r[0] != "GET" or r[1] == "/mcp"]
FOREIGN_HOSTS = ["evil.example", "evil.example:8765", "127.0.0.1.nip.io:8765", "localhost.evil:8765",
                 "10.0.0.5:8765", "127.0.0.1:9999", "[::1]:1"]
FOREIGN_ORIGINS = ["http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:8765",
                   "http://localhost:8765", "file://", "chrome-extension://abc"]


@pytest.fixture
def app_and_upstream(make_deps: Callable[..., Deps]) -> tuple[Any, Deps, list[httpx.Request]]:
    deps = make_deps(providers=PROVIDERS)
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "c", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    app = create_app(deps.settings, deps, upstream_transport=httpx.MockTransport(upstream))
    return app, deps, seen


def _nothing_recorded(deps: Deps) -> None:
    with deps.ledger.read() as db:
        assert db.exec(select(Request)).all() == []
    assert all(s["name"] != "planted" for s in deps.sessions.list())


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
@pytest.mark.parametrize(("method", "path", "kwargs"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_a_rebound_host_is_refused_on_every_route(
        app_and_upstream: Any, serve_app: Any, host: str, method: str, path: str,
        kwargs: dict[str, Any]) -> None:
    app, deps, seen = app_and_upstream
    async with serve_app(app) as client:
        headers = {**kwargs.get("headers", {}), "host": host}
        reply = await client.request(method, path, **{**kwargs, "headers": headers})
    assert reply.status_code == 421, reply.text
    assert reply.json()["error"]["code"] == "misdirected_request"
    assert seen == []
    _nothing_recorded(deps)


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
@pytest.mark.parametrize(("method", "path", "kwargs"), STATE_CHANGING,
                         ids=[f"{m} {p}" for m, p, _ in STATE_CHANGING])
async def test_a_cross_site_origin_is_refused_on_state_changing_routes_and_mcp(
        app_and_upstream: Any, serve_app: Any, origin: str, method: str, path: str,
        kwargs: dict[str, Any]) -> None:
    app, deps, seen = app_and_upstream
    async with serve_app(app) as client:
        headers = {**kwargs.get("headers", {}), "origin": origin}
        reply = await client.request(method, path, **{**kwargs, "headers": headers})
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "forbidden_origin"
    assert seen == [] and "access-control-allow-origin" not in reply.headers
    _nothing_recorded(deps)


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "app.localhost:8765"])
async def test_loopback_hosts_and_the_servers_own_origin_pass(
        app_and_upstream: Any, serve_app: Any, host: str) -> None:
    app, _, seen = app_and_upstream
    async with serve_app(app) as client:
        origin = {"origin": f"http://{host}"}
        chat = await client.post("/v1/chat/completions", json=CHAT, headers={"host": host, **origin})
        created = await client.post("/api/sessions", json={"name": "mine"},
                                    headers={"host": host, **origin})
        mcp = await client.post("/mcp", json=INIT, headers={**MCP_HEADERS, "host": host, **origin})
    assert chat.status_code == 200, chat.text
    assert created.status_code == 201 and mcp.status_code == 200
    assert len(seen) == 1


async def test_clients_that_send_no_origin_are_unaffected(app_and_upstream: Any, serve_app: Any) -> None:
    app, _, seen = app_and_upstream
    async with serve_app(app) as client:
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert (await client.post("/mcp", json=INIT, headers=MCP_HEADERS)).status_code == 200
    assert len(seen) == 1


async def test_reads_from_another_origin_get_no_cors_header(app_and_upstream: Any, serve_app: Any) -> None:
    app, _, _ = app_and_upstream
    async with serve_app(app) as client:
        reply = await client.get("/api/sessions", headers={"origin": "http://evil.example"})
    assert reply.status_code == 200
    assert not any(h.startswith("access-control-") for h in reply.headers)


@pytest.mark.parametrize("path", ["/", "/index.html"])
async def test_the_page_may_not_be_framed_by_another_site(
        app_and_upstream: Any, serve_app: Any, path: str) -> None:
    # a cross-site page that frames the dashboard sends no Origin for the frame's GET, so the
    # guard cannot refuse it; the answer itself forbids being framed (click-jacking)
    app, _, _ = app_and_upstream
    async with serve_app(app) as client:
        reply = await client.get(path, headers={"sec-fetch-dest": "iframe"})
    assert reply.status_code == 200
    assert reply.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_the_event_feed_refuses_a_cross_site_or_rebound_handshake(app_and_upstream: Any) -> None:
    app, _, _ = app_and_upstream
    url = "ws://127.0.0.1:8765/ws"
    with TestClient(app, base_url=OWN) as client:
        for headers in ({"origin": "http://evil.example"}, {"host": "evil.example:8765"}):
            with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(url, headers=headers):
                pass
            assert info.value.code == 4403
        with client.websocket_connect(url, headers={"origin": OWN}) as ws:
            assert ws.receive_json()["type"] == "hello"


async def test_off_loopback_the_host_is_free_but_origins_are_still_checked(
        make_deps: Callable[..., Deps], serve_app: Any) -> None:
    deps = make_deps(providers=PROVIDERS, server={"host": "0.0.0.0", "auth_tokens": ["t0k3n-abc"]})
    app = create_app(deps.settings, deps, upstream_transport=httpx.MockTransport(
        lambda r: httpx.Response(500)))
    auth = {"authorization": "Bearer t0k3n-abc"}
    async with serve_app(app, base_url="http://kimi.team.internal:8765") as client:
        assert (await client.get("/api/sessions", headers=auth)).status_code == 200
        refused = await client.post("/api/sessions", json={"name": "x"},
                                    headers={**auth, "origin": "http://evil.example"})
    assert refused.status_code == 403


# a browser that sends no Origin still says where it comes from; a proxy in front may read the
# other copy of a repeated header (uvicorn's h11 refuses a second Host itself, httptools does not)
SLIPS: list[tuple[list[tuple[str, str]], int]] = [
    ([("sec-fetch-site", "cross-site")], 403),
    ([("sec-fetch-site", "same-site")], 403),
    ([("origin", "http://evil.example"), ("origin", OWN)], 403),
    ([("origin", OWN), ("origin", "null")], 403),
    ([("host", "127.0.0.1:8765"), ("host", "evil.example")], 421),
    ([("host", "evil.example"), ("host", "127.0.0.1:8765")], 421),
]


@pytest.mark.parametrize(("headers", "status"), SLIPS, ids=[str(h) for h, _ in SLIPS])
@pytest.mark.parametrize(("method", "path", "kwargs"), STATE_CHANGING,
                         ids=[f"{m} {p}" for m, p, _ in STATE_CHANGING])
async def test_fetch_metadata_and_repeated_headers_cannot_slip_a_cross_site_request_through(
        app_and_upstream: Any, serve_app: Any, headers: list[tuple[str, str]], status: int,
        method: str, path: str, kwargs: dict[str, Any]) -> None:
    app, deps, seen = app_and_upstream
    names = {name for name, _ in headers}
    async with serve_app(app) as client:
        base = [(k, v) for k, v in kwargs.get("headers", {}).items() if k not in names]
        if "host" not in names:
            base.append(("host", "127.0.0.1:8765"))
        request = client.build_request(method, path, **{**kwargs, "headers": base + headers})
        reply = await client.send(request)
    assert reply.status_code == status, reply.text
    assert seen == []
    _nothing_recorded(deps)


async def test_the_dashboard_fetch_metadata_passes(app_and_upstream: Any, serve_app: Any) -> None:
    app, _, seen = app_and_upstream
    async with serve_app(app) as client:
        own = {"origin": OWN, "sec-fetch-site": "same-origin"}
        chat = await client.post("/v1/chat/completions", json=CHAT, headers=own)
        typed = await client.post("/api/sessions", json={"name": "mine"},
                                  headers={"sec-fetch-site": "none"})
    assert chat.status_code == 200 and typed.status_code == 201
    assert len(seen) == 1
