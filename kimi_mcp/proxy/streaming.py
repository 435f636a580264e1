"""Server-sent events from the provider to the client, as they arrive.

OpenAI-format streams pass through byte for byte, cut only at event boundaries; the one
exception is the usage chunk we asked for on the client's behalf, which is removed. Streams in
another format than the client's are translated event by event in `relays.py`. A failure mid-stream ends the client's stream with an
OpenAI-style error event and `data: [DONE]`; a client that goes away closes the upstream at once.
In every case `finish(record)` runs exactly once, after the upstream is closed, and before the
last event goes to the client: the call's ledger row is durable before the answer is complete.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from kimi_mcp.catalog import Provider
from kimi_mcp.proxy.accounting import CallRecord
from kimi_mcp.upstream import to_upstream_error

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
Finish = Callable[[CallRecord], None]


def error_event(message: str, code: str = "upstream_stream_error") -> bytes:
    body = {"error": {"message": message, "type": "api_error", "code": code, "param": None}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def relay_openai(response: httpx.Response, provider: Provider, rec: CallRecord,
                       strip_usage: bool, finish: Finish) -> AsyncIterator[bytes]:
    events: list[bytes] = []
    rec.events = events
    key = (provider.api_key or "").encode()
    buf = b""
    sep = b"\n\n"
    done = finished = False
    try:
        try:
            async for chunk in response.aiter_bytes():
                buf += chunk
                cut = buf.rfind(sep)
                if cut < 0:
                    if b"\r\n\r\n" in buf:
                        sep = b"\r\n\r\n"
                        cut = buf.rfind(sep)
                    else:
                        continue
                block, buf = buf[: cut + len(sep)], buf[cut + len(sep):]
                if b'"usage"' in block and strip_usage:
                    block = _strip_usage(block, sep, rec)
                if key and key in block:  # a provider that echoes the key in an error event
                    block = block.replace(key, b"***")
                events.append(block)
                done = done or b"[DONE]" in block
                finished = finished or b'"finish_reason":"' in block or b'"finish_reason": "' in block
                if block:
                    if rec.first_at is None:
                        rec.first_at = time.perf_counter()
                    if done:  # the last event: the call is recorded before the client has it
                        await _close(response, rec, finish)
                        yield block
                        return
                    yield block
        except httpx.HTTPError as exc:
            failed = _fail(rec, provider, exc)
            await _close(response, rec, finish)
            yield failed
            return
        tail = b""
        if buf.strip():
            if key and key in buf:
                buf = buf.replace(key, b"***")
            events.append(buf)
            tail = buf
        if not done and not finished:
            rec.status, rec.error = "error", f"{provider.name} ended the stream before it finished"
            tail += error_event(rec.error) + DONE
        await _close(response, rec, finish)
        if tail:
            yield tail
    except (GeneratorExit, anyio.get_cancelled_exc_class()):
        rec.status, rec.error = "cancelled", "the client disconnected"
        raise
    finally:
        await _close(response, rec, finish)


def _fail(rec: CallRecord, provider: Provider, exc: BaseException) -> bytes:
    error = to_upstream_error(provider, exc=exc)
    rec.status, rec.error = "error", f"mid-stream: {error}"
    log.warning("stream from %s failed: %s", provider.name, error)
    return error_event(str(error)) + DONE


async def _close(response: httpx.Response, rec: CallRecord, finish: Finish) -> None:
    if rec.ended_at is not None:
        return
    rec.ended_at = time.perf_counter()
    with anyio.CancelScope(shield=True):
        await response.aclose()
    finish(rec)


def _strip_usage(block: bytes, sep: bytes, rec: CallRecord) -> bytes:
    """Drop the usage-only chunk the client did not ask for; keep its numbers for the ledger."""
    kept = []
    for event in block.split(sep):
        if not event:
            continue
        if b'"usage"' in event and event.startswith(b"data:"):
            try:
                data: Any = json.loads(event[5:])
            except ValueError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("usage"), dict):
                rec.usage = data["usage"]
                if not data.get("choices"):
                    continue
                del data["usage"]
                event = b"data: " + json.dumps(data, ensure_ascii=False).encode()
        kept.append(event + sep)
    return b"".join(kept)


class Relay(StreamingResponse):
    """A streamed answer that closes the upstream and accounts the call even if it never ran."""

    def __init__(self, content: AsyncIterator[bytes], upstream: httpx.Response, rec: CallRecord,
                 finish: Finish, headers: dict[str, str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._upstream = upstream
        self._rec = rec
        self._finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
            if self._rec.ended_at is None:  # the body never started: the client left first
                self._rec.status, self._rec.error = "cancelled", "the client disconnected"
                await _close(self._upstream, self._rec, self._finish)
