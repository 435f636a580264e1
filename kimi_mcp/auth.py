"""Bearer-token guard for every route but /health and the page's static assets."""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qs

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
            query = parse_qs(scope.get("query_string", b"").decode())
            offered = (query.get("token") or [""])[0].encode()
        return bool(offered) and any(hmac.compare_digest(offered, t) for t in self.tokens)
