"""aiohttp's connection pool under httpx's API: the transport of the one upstream client.

httpx's own transport costs ~4 ms of CPU per call under load on this project's two-core target
(h11 in pure Python; `bench/bench_proxy.py --transports` measures it beside this one), aiohttp's
C HTTP parser ~1 ms. httpx stays the API everywhere (requests, responses, `MockTransport` in
tests); this module only moves bytes, and maps **every** failure of the wire — a malformed
status line or `Content-Length`, a reset, a timeout, a broken TLS handshake — to an
`httpx.TransportError`, so nothing bypasses the one error mapping in `upstream.errors`.

Pool bounds come from `[upstream]`: `max_connections` in all, idle connections closed after
`keepalive_expiry_s`. The `aiohttp.ClientSession` is created on the first request, inside the
event loop that serves it, and closed by `aclose()`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import certifi
import httpx

from kimi_mcp.config import UpstreamSettings


def _mapped(exc: BaseException, request: httpx.Request, reading: bool) -> httpx.TransportError:
    """The httpx error for an aiohttp (or socket) failure; the message names no internals."""
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(f"timed out connecting: {detail}", request=request)
    if isinstance(exc, TimeoutError):  # aiohttp's socket and total timeouts are TimeoutErrors
        return httpx.ReadTimeout(f"timed out reading the answer: {detail}", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(f"cannot connect: {detail}", request=request)
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError | ValueError):
        return httpx.RemoteProtocolError(f"malformed answer: {detail}", request=request)
    if reading:
        return httpx.ReadError(f"connection failed while reading: {detail}", request=request)
    return httpx.RemoteProtocolError(f"connection failed before the answer: {detail}",
                                     request=request)


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                yield data
        except httpx.HTTPError:
            raise
        except Exception as exc:  # noqa: BLE001 - every wire failure becomes an httpx error
            raise _mapped(exc, self._request, reading=True) from None

    async def aclose(self) -> None:
        # a body read to its end returns the connection to the pool; anything else closes it
        self._response.release()


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one bounded aiohttp connection pool (HTTP/1.1, TLS verified)."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._settings.max_connections,
            keepalive_timeout=self._settings.keepalive_expiry_s,
            ssl=ssl.create_default_context(cafile=certifi.where()),
        )
        # no cookie jar, no decompression, no default headers: bytes go through as sent
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     auto_decompress=False, skip_auto_headers=("User-Agent",),
                                     timeout=aiohttp.ClientTimeout(total=None))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None or self._session.closed:
            self._session = self._open_session()
        timeout = request.extensions.get("timeout", {})
        try:
            response = await self._session.request(
                request.method, str(request.url), headers=request.headers.multi_items(),
                data=await request.aread() or None, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout.get("connect"),
                                              connect=timeout.get("pool"),
                                              sock_read=timeout.get("read")),
            )
        except httpx.HTTPError:
            raise
        except Exception as exc:  # noqa: BLE001 - every wire failure becomes an httpx error
            raise _mapped(exc, request, reading=False) from None
        return httpx.Response(
            status_code=response.status, headers=list(response.raw_headers),
            stream=_Body(response, request), request=request,
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": (response.reason or "").encode("latin-1", "replace")},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
