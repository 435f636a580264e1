"""A lean HTTP/1.1 transport for the shared `httpx.AsyncClient`, on plain asyncio streams.

httpx's default transport (httpcore + h11 + anyio) costs about 1.5 ms of CPU per call on a small
machine, more than everything else the proxy does. This one keeps httpx's client API (requests,
`Response.aiter_bytes`, decoding, errors) and replaces only the wire: pooled keep-alive
connections, TLS through `ssl`, content-length / chunked / until-close bodies, per-phase
timeouts from the request's `timeout` extension, and httpx's exception classes, so callers
cannot tell the difference. Chunks are yielded as they arrive: SSE is never re-chunked.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator

import httpx

log = logging.getLogger(__name__)

LIMIT = 1 << 20  # the longest header block or chunk-size line we accept
READ_SIZE = 1 << 16
MAX_IDLE = 256  # idle connections kept per host


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Conn:
    __slots__ = ("key", "reader", "writer")

    def __init__(self, key: tuple[str, str, int], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer

    def alive(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class FastTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        conn = await self._acquire(request, timeouts.get("connect"))
        try:
            head, body = await _serialise(request)
            async with asyncio.timeout(timeouts.get("write")):
                conn.writer.write(head + body)
                await conn.writer.drain()
            async with asyncio.timeout(timeouts.get("read")):
                status, headers = await _read_head(conn.reader)
        except TimeoutError:
            conn.close()
            raise httpx.ReadTimeout("timed out waiting for the response headers", request=request) from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            raise httpx.RemoteProtocolError(f"the server broke the connection: {exc!r}",
                                            request=request) from None
        except BaseException:
            conn.close()
            raise
        stream = _Body(self, conn, request, status, headers, timeouts.get("read"))
        return httpx.Response(status, headers=headers, stream=stream,
                              extensions={"http_version": b"HTTP/1.1"})

    async def _acquire(self, request: httpx.Request, connect_s: float | None) -> _Conn:
        url = request.url
        secure = url.scheme == "https"
        key = (url.scheme, url.host, url.port or (443 if secure else 80))
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.alive():
                return conn
            conn.close()
        if secure and self._ssl is None:
            self._ssl = _ssl_context()
        try:
            async with asyncio.timeout(connect_s):
                reader, writer = await asyncio.open_connection(
                    key[1], key[2], ssl=self._ssl if secure else None,
                    server_hostname=key[1] if secure else None, limit=LIMIT)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {key[1]}:{key[2]}",
                                       request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {key[1]}:{key[2]}: {exc}",
                                     request=request) from None
        return _Conn(key, reader, writer)

    def release(self, conn: _Conn) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) < MAX_IDLE and conn.alive():
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


async def _serialise(request: httpx.Request) -> tuple[bytes, bytes]:
    body = await request.aread()
    url = request.url
    lines = [request.method.encode() + b" " + url.raw_path + b" HTTP/1.1"]
    has_length = False
    for name, value in request.headers.raw:
        lower = name.lower()
        if lower == b"transfer-encoding":  # the body was read whole: send it with a length
            continue
        has_length = has_length or lower == b"content-length"
        lines.append(name + b": " + value)
    if not has_length and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n", body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]]]:
    while True:
        block = await reader.readuntil(b"\r\n\r\n")
        status_line, _, rest = block[:-4].partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200:  # interim responses carry no body
            continue
        headers = []
        for line in rest.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                headers.append((name.strip(), value.strip()))
        return status, headers


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: FastTransport, conn: _Conn, request: httpx.Request, status: int,
                 headers: list[tuple[bytes, bytes]], timeout: float | None) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self._request = request
        self._timeout = timeout
        self._complete = False
        self._length: int | None = None
        self._chunked = False
        self._keep = True
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                self._length = int(value)
            elif lower == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
            elif lower == b"connection" and b"close" in value.lower():
                self._keep = False
        if request.method == "HEAD" or status in (204, 304):
            self._length = 0
        if self._length is None and not self._chunked:
            self._keep = False  # the body ends when the server closes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert self._conn is not None, "the body was already read"
        reader = self._conn.reader
        try:
            if self._chunked:
                async for data in self._chunks(reader):
                    yield data
            elif self._length is not None:
                left = self._length
                while left:
                    async with asyncio.timeout(self._timeout):
                        data = await reader.read(min(left, READ_SIZE))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", left)
                    left -= len(data)
                    yield data
            else:
                while True:
                    async with asyncio.timeout(self._timeout):
                        data = await reader.read(READ_SIZE)
                    if not data:
                        break
                    yield data
            self._complete = True
        except TimeoutError:
            raise httpx.ReadTimeout("timed out reading the response body",
                                    request=self._request) from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body: {exc!r}",
                request=self._request) from None

    async def _chunks(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while True:
            async with asyncio.timeout(self._timeout):
                line = await reader.readuntil(b"\r\n")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers: ignored
                    return
                data = await reader.readexactly(size + 2)
            yield data[:-2]

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._complete and self._keep:
            self._pool.release(conn)
        else:
            conn.close()
