"""Server-sent events from the provider to the client, as they arrive.

OpenAI-format streams pass through byte for byte, cut only at event boundaries; the one
exception is the usage chunk we asked for on the client's behalf, which is removed (its figures
read where the provider's profile says), and a provider's own finish reasons, written as
OpenAI's. Streams in
another format than the client's are translated event by event in `relays.py`. A failure mid-stream ends the client's stream with an
OpenAI-style error event and `data: [DONE]`; so does a stream that ends (`[DONE]` or not) with no
finish reason. An in-band error chunk (OpenRouter's `finish_reason: "error"`) reaches the client
as sent and makes the call an error row. The time to first token is taken at the first event
with content (`has_content`), never at a comment, keep-alive or role-only chunk. A client that
goes away closes the upstream at once.
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
from kimi_mcp.proxy import profiles
from kimi_mcp.proxy.accounting import CallRecord
from kimi_mcp.proxy.profiles import Profile
from kimi_mcp.upstream import scrub_bytes, to_upstream_error

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
INVALID = "upstream_invalid_answer"  # the code of an answer that is not the kind asked for
Finish = Callable[[CallRecord], None]


def error_event(message: str, code: str = "upstream_stream_error") -> bytes:
    body = {"error": {"message": message, "type": "api_error", "code": code, "param": None}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def relay_openai(response: httpx.Response, provider: Provider, rec: CallRecord,
                       strip_usage: bool, finish: Finish,
                       profile: Profile | None = None) -> AsyncIterator[bytes]:
    profile = profile or profiles.of(provider)
    events: list[bytes] = []
    rec.events = events
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
                if not sse_shaped(block):
                    failed = error_event(not_events(rec, provider, bool(events)), INVALID) + DONE
                    await _close(response, rec, finish)
                    yield failed
                    return
                block = scrub_bytes(provider, block)  # a provider that echoes the key in an error
                if strip_usage and b'"usage"' in block:
                    block = _strip_usage(block, sep, rec, profile)
                if b'"error"' in block:  # an in-band error (OpenRouter) is an error row
                    _note_error(block, sep, rec, provider, profile)
                if profile.finish_reasons:
                    block = profile.rewrite_finish(block)
                events.append(block)
                done = done or b"[DONE]" in block
                finished = finished or b'"finish_reason":"' in block or b'"finish_reason": "' in block
                if block:
                    if rec.first_at is None and has_content(block):
                        rec.first_at = time.perf_counter()
                    if done:  # the last event: the call is recorded before the client has it
                        if not finished and rec.status == "ok":
                            block = _cut(block, rec, provider)
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
        if buf.strip() and not sse_shaped(buf):
            failed = error_event(not_events(rec, provider, bool(events)), INVALID) + DONE
            await _close(response, rec, finish)
            yield failed
            return
        if buf.strip():
            buf = scrub_bytes(provider, buf)
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


_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")


def sse_shaped(block: bytes) -> bool:
    """Whether every line of `block` is a server-sent event's field or comment (an HTML page or
    a JSON body is not: it must never reach the client glued to the stream)."""
    return all(not line.strip() or line.lstrip(b"\xef\xbb\xbf").startswith(_SSE_FIELDS)
               for line in block.splitlines())


def not_events(rec: CallRecord, provider: Provider, started: bool) -> str:
    """Make the call an error because the provider sent something else than events (the
    message); with no event before it, nothing says the provider took the call."""
    rec.status, rec.error = "error", f"{provider.name} sent something that is not an event stream"
    rec.meta["error_status"] = 502
    rec.billable = rec.billable and started
    log.warning("%s", rec.error)
    return rec.error


# what a chunk with something for the client starts with: text, reasoning or a tool call
_CONTENT_KEYS = (b'"content":', b'"reasoning_content":', b'"reasoning":', b'"tool_calls":')


def has_content(block: bytes) -> bool:
    """Whether SSE events carry content: a non-empty string after `content`, `reasoning_content`
    or `reasoning`, or `tool_calls`. Comments, keep-alives and role-only chunks do not count,
    so the time to first token is the time to the first content (a byte scan, no JSON)."""
    for needle in _CONTENT_KEYS:
        start = 0
        while (at := block.find(needle, start)) >= 0:
            start = at + len(needle)
            rest = block[start: start + 3].lstrip()
            if needle == b'"tool_calls":':
                if rest[:1] == b"[" and rest[1:2] != b"]":
                    return True
            elif rest[:1] == b'"' and rest[1:2] != b'"':
                return True
    return False


def _cut(block: bytes, rec: CallRecord, provider: Provider) -> bytes:
    """`[DONE]` with no finish reason before it: the stream was cut; the client gets an error
    event before the end."""
    rec.status, rec.error = "error", f"{provider.name} ended the stream before it finished"
    done = block.rfind(b"[DONE]")
    at = block.rfind(b"data:", 0, done) if done >= 0 else -1
    if at < 0:
        return block + error_event(rec.error) + DONE
    return block[:at] + error_event(rec.error) + block[at:]


def _note_error(block: bytes, sep: bytes, rec: CallRecord, provider: Provider,
                profile: Profile) -> None:
    for event in block.split(sep):
        if b'"error"' not in event:
            continue
        for line in event.splitlines():  # `event: error` may come before the data line
            if not line.startswith(b"data:"):
                continue
            try:
                data: Any = json.loads(line[5:])
            except ValueError:
                continue
            message = profile.stream_error(data)
            if message is not None:
                rec.status, rec.error = "error", f"mid-stream: {provider.name}: {message}"
                return


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


def _strip_usage(block: bytes, sep: bytes, rec: CallRecord,
                 profile: Profile = profiles.PROFILES["openai"]) -> bytes:
    """Drop the usage-only chunk the client did not ask for; keep its numbers for the ledger
    (read where the profile says: top level, inside the choice, `x_groq`)."""
    kept = []
    for event in block.split(sep):
        if not event:
            continue
        if b'"usage"' in event and event.startswith(b"data:"):
            try:
                data: Any = json.loads(event[5:])
            except ValueError:
                data = None
            usage = profile.usage(data)
            if usage is not None:
                rec.usage = usage
            if isinstance(data, dict) and isinstance(data.get("usage"), dict):
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
