"""The lean HTTP/1.1 transport against a scripted raw server on loopback."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from kimi_mcp.proxy.transport import FastTransport

pytestmark = pytest.mark.anyio



@asynccontextmanager
async def raw_server(answers: list[bytes | None]) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """Answers requests in order with the given raw bytes; None closes without answering."""
    seen: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                seen.append(head + await reader.readexactly(length))
                answer = answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", seen, connections


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body


async def test_keep_alive_connections_are_reused_and_bodies_framed_by_length() -> None:
    async with raw_server([ok(b"one"), ok(b"two")]) as (base, seen, conns), \
            httpx.AsyncClient(transport=FastTransport()) as client:
        first = await client.post(f"{base}/v1/x?y=1", content=b'{"a":1}')
        second = await client.post(f"{base}/v1/x", json={"b": 2})
    assert (first.text, second.text) == ("one", "two")
    assert len(conns) == 1
    assert seen[0].startswith(b"POST /v1/x?y=1 HTTP/1.1\r\n") and seen[0].endswith(b'{"a":1}')
    assert b"Content-Length: 7" in seen[0] or b"content-length: 7" in seen[0].lower()


async def test_chunked_bodies_stream_chunk_by_chunk_and_gzip_is_decoded() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    packed = gzip.compress(b"zipped text")
    async with raw_server([chunked, ok(packed, b"content-encoding: gzip\r\n")]) as (base, _, conns), \
            httpx.AsyncClient(transport=FastTransport()) as client:
        async with client.stream("POST", f"{base}/s", content=b"") as reply:
            parts = [part async for part in reply.aiter_raw()]
        zipped = await client.post(f"{base}/z", content=b"")
    assert parts == [b"hello", b" world"]
    assert zipped.text == "zipped text"
    assert len(conns) == 1


async def test_a_body_without_length_ends_at_close_and_the_connection_is_not_reused() -> None:
    async with raw_server([b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it", ok(b"next")]) \
            as (base, _, conns), httpx.AsyncClient(transport=FastTransport()) as client:
        first = await client.post(f"{base}/a", content=b"")
        second = await client.post(f"{base}/b", content=b"")
    assert (first.text, second.text) == ("all of it", "next")
    assert len(conns) == 2


async def test_failures_become_httpx_errors() -> None:
    truncated = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nshort"
    async with raw_server([None, truncated]) as (base, _, _conns), \
            httpx.AsyncClient(transport=FastTransport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{base}/gone", content=b"")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(f"{base}/short", content=b"")
    with socket_closed_port() as port, pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(transport=FastTransport()) as client:
            await client.post(f"http://127.0.0.1:{port}/", content=b"")


async def test_a_silent_server_is_a_read_timeout() -> None:
    hold = anyio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=FastTransport(), timeout=0.05) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"http://127.0.0.1:{port}/", content=b"")
        hold.set()


class socket_closed_port:
    """A loopback port with nothing listening on it."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
