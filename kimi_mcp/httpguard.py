"""Keeps web pages from driving the local server: Host and Origin checks on every route.

The threat (MCP specification, "Security best practices": local servers; the same as Jupyter's and
VS Code's): any page the user opens can send requests to 127.0.0.1. Two kinds are refused here,
before any route runs, for HTTP and WebSocket alike:

1. **DNS rebinding** — on a loopback bind, a request whose `Host` is not a loopback name or
   address (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`) with the server's port is
   answered `421 Misdirected Request`: a rebound name (`evil.example` resolving to 127.0.0.1)
   never reaches a route.
2. **Cross-site requests** — a browser request whose `Origin` is not the server's own origin
   (`http://<Host>`, or `Origin: null`), or that has no `Origin` but a `Sec-Fetch-Site` of
   `cross-site` or `same-site`, is answered `403` on every state-changing method, on
   `/mcp` (any method) and on the `/ws` handshake. Reads (`GET`, `HEAD`) from other origins
   pass: no CORS header is ever sent, so the browser keeps the answer from the page. Every copy
   of a repeated `Host` or `Origin` header is judged, so a proxy in front that reads another
   copy cannot be misled.

Clients that are not browsers (SDKs, agents, curl) send no `Origin` and are unaffected. The
dashboard page is served from the server's own origin, so its calls pass.
"""

from __future__ import annotations

import ipaddress
import json

from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Fetch Metadata (`Sec-Fetch-Site`): a browser says where a request comes from even when it
# sends no Origin (older browsers' form posts); only "same-origin" and "none" (typed by the user)
# are the dashboard's own
CROSS_SITE = frozenset({"cross-site", "same-site"})
ALWAYS_CHECKED = ("/mcp",)


def _split_host(value: str) -> tuple[str, int | None]:
    """`host[:port]` (IPv6 in brackets) as (lower-case host, port or None); ("", None) if bad."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            return "", None
    else:
        host, _, port_text = value.partition(":")
    if port_text:
        if not port_text.isdigit():
            return "", None
        return host, int(port_text)
    return host, None


def is_loopback_name(host: str) -> bool:
    """`localhost`, a `*.localhost` name (RFC 6761 §6.3) or a loopback address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalOriginGuard:
    """ASGI middleware applying the two rules above (rule 1 only when `loopback`)."""

    def __init__(self, app: ASGIApp, *, loopback: bool, port: int) -> None:
        self.app = app
        self.loopback = loopback
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # every copy of a header is judged (a server or proxy in front may read another one)
        hosts = _values(scope, b"host") or [""]
        problem = next(filter(None, (self._host_problem(scope, h) for h in hosts)), None)
        if problem or len(set(hosts)) > 1:
            await _refuse(scope, receive, send, 421, "misdirected_request",
                          problem or "several different Host headers; send one")
            return
        host = hosts[0]
        origins = _values(scope, b"origin")
        site = _values(scope, b"sec-fetch-site")
        if self._checked(scope) and (
                any(not _same_origin(origin, host, scope) for origin in origins)
                or (not origins and any(s.strip().lower() in CROSS_SITE for s in site))):
            await _refuse(scope, receive, send, 403, "forbidden_origin",
                          "cross-site requests are refused: a web page may not drive this server "
                          "(only its own dashboard, and clients that send no Origin)")
            return
        await self.app(scope, receive, send)

    def _host_problem(self, scope: Scope, host: str) -> str | None:
        if not self.loopback:
            return None
        name, port = _split_host(host)
        server_port = (scope.get("server") or (None, self.port))[1] or self.port
        if not is_loopback_name(name):
            return (f"the Host header {host!r} is not a loopback name; this server answers only "
                    f"http://127.0.0.1:{server_port} and http://localhost:{server_port}")
        if port not in (None, server_port, self.port):
            return f"the Host header {host!r} names another port than this server's ({server_port})"
        return None

    @staticmethod
    def _checked(scope: Scope) -> bool:
        if scope["type"] == "websocket":
            return True
        path: str = scope.get("path", "")
        if path.startswith(ALWAYS_CHECKED):
            return True
        return str(scope.get("method", "GET")).upper() not in SAFE_METHODS


def _values(scope: Scope, name: bytes) -> list[str]:
    """Every value of the header `name` (lower case), in order."""
    return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]


def _same_origin(origin: str, host: str, scope: Scope) -> bool:
    """Whether `origin` is this server's own: same scheme family, host and port as `Host`."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or "/" in rest:
        return False  # "null", file://, chrome-extension://, a malformed value
    own_scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    o_host, o_port = _split_host(rest)
    h_host, h_port = _split_host(host)
    default = 443 if scheme == "https" else 80
    return (scheme == own_scheme and o_host == h_host and bool(o_host)
            and (o_port or default) == (h_port or default))


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                  message: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect; closing instead of accepting fails the handshake (403)
        await send({"type": "websocket.close", "code": 4403, "reason": code})
        return
    body = json.dumps({"error": {"message": message, "type": "forbidden", "code": code,
                                 "param": None}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
