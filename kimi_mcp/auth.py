"""Bearer-token guard for every route but /health and the page's static assets.

A token offered in the query (`/ws?token=`, the only place a browser can put it for a
WebSocket) is taken out of the request before anything else sees it: uvicorn logs every
WebSocket handshake with its query string (whatever `access_log` says), and no route needs it.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = ("/health",)
OPEN_PREFIXES = ("/static/",)


class BearerAuth:
    def __init__(self, app: ASGIApp, tokens: list[str]) -> None:
        self.app = app
        if any(not t.strip() for t in tokens):  # config validation refuses these first
            raise ValueError("an empty bearer token would let every request in")
        self.tokens = [t.encode() for t in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and b"token=" in scope.get("query_string", b""):
            scope["query_token"] = _take_query_token(scope)
        if scope["type"] not in ("http", "websocket") or not self.tokens or self._open(scope):
            await self.app(scope, receive, send)
            return
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "unauthorized"})
            return
        body = json.dumps({"error": {
            "message": "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                       "with one of server.auth_tokens",
            "type": "authentication_error", "code": "unauthorized"}}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _open(scope: Scope) -> bool:
        path: str = scope.get("path", "")
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return True
        # the page itself carries no data; it asks for the token and sends it on every call
        return scope["type"] == "http" and path in ("/", "/index.html")

    def _authorized(self, scope: Scope) -> bool:
        offered = b""
        for key, value in scope.get("headers", ()):
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                offered = value[7:].strip()
        if not offered and scope["type"] == "websocket":  # browsers cannot set WS headers
            offered = scope.get("query_token", b"")
        return bool(offered) and any(hmac.compare_digest(offered, t) for t in self.tokens)


def _take_query_token(scope: Scope) -> bytes:
    """The first `token` of the query string, removed from the scope in place (the server's
    own handshake log line reads the same scope)."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    token = next((value for key, value in pairs if key == "token"), "")
    kept = [(key, value) for key, value in pairs if key != "token"]
    scope["query_string"] = urlencode(kept).encode("latin-1")
    return token.encode()
