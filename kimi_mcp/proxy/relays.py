"""Streams between different formats, and the Anthropic passthrough, event by event.

`relay_translated`: the provider's events are read into canonical chunks by its wire
(`formats.openai_chat.chunks`, `formats.gemini.chunks`, `formats.anthropic_stream`) and written
in the client's format by an inbound encoder, chunk by chunk, never buffered. `relay_anthropic`:
a Messages client in front of an Anthropic-format provider gets the provider's bytes as they
come (cut only at event boundaries, the key scrubbed), so event types kimi-mcp does not know
still arrive. Either way a failure ends the client's stream with its format's own error event,
a stream that stops before it finished is an error, and `finish(record)` runs exactly once,
after the upstream is closed and before the last event goes out (the call's row is durable
before the client has the whole answer).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
from httpx_sse import EventSource

from kimi_mcp.catalog import Provider
from kimi_mcp.errors import ErrorInfo, UpstreamError, describe
from kimi_mcp.proxy.accounting import CallRecord
from kimi_mcp.proxy.formats.anthropic_stream import MessagesDecoder
from kimi_mcp.proxy.formats.canonical import chunk_usage
from kimi_mcp.proxy.formats.inbound import Encoder
from kimi_mcp.proxy.streaming import INVALID, _close, not_events, sse_shaped
from kimi_mcp.upstream import scrub_bytes, scrub_error, to_upstream_error

log = logging.getLogger(__name__)
Finish = Callable[[CallRecord], None]


async def anthropic_chunks(response: httpx.Response, model: str) -> AsyncIterator[dict[str, Any]]:
    """An Anthropic-format provider's stream as canonical chunks."""
    decoder = MessagesDecoder(model)
    async for event in EventSource(response).aiter_sse():
        try:
            data = json.loads(event.data) if event.data else None
        except ValueError:
            continue
        if isinstance(data, dict):
            chunk = decoder.event(data)
            if chunk is not None:
                yield chunk


def _has_content(chunk: dict[str, Any]) -> bool:
    """Whether a canonical chunk carries text, reasoning or a tool call (the first token)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("reasoning_content")
                                        or delta.get("tool_calls")):
            return True
    return False


def _note(rec: CallRecord, texts: list[str], chunk: dict[str, Any]) -> None:
    usage = chunk_usage(chunk)
    if usage is not None:
        rec.usage = usage
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        for key in ("content", "reasoning_content"):
            if isinstance(delta.get(key), str):
                texts.append(delta[key])
        for call in delta.get("tool_calls") or ():
            function = (call.get("function") or {}) if isinstance(call, dict) else {}
            texts += [str(function.get("name") or ""), str(function.get("arguments") or "")]


async def relay_translated(response: httpx.Response, provider: Provider, rec: CallRecord,
                           chunks: AsyncIterator[dict[str, Any]], encoder: Encoder,
                           finish: Finish) -> AsyncIterator[bytes]:
    texts: list[str] = []
    rec.text = texts
    try:
        try:
            async for chunk in chunks:
                _note(rec, texts, chunk)
                if rec.first_at is None and _has_content(chunk):
                    rec.first_at = time.perf_counter()
                out = encoder.feed(chunk)
                if out:
                    yield out
        except httpx.HTTPError as exc:
            last = _fail(rec, encoder, to_upstream_error(provider, exc=exc))
        except UpstreamError as exc:  # an in-band error event: the provider's own words
            last = _fail(rec, encoder, scrub_error(provider, exc))
        else:
            if not encoder.finished:
                last = _fail(rec, encoder,
                             UpstreamError(f"{provider.name} ended the stream before it finished"))
            else:
                last = encoder.close()
        await _close(response, rec, finish)  # recorded before the client has the last event
        yield last
    except (GeneratorExit, anyio.get_cancelled_exc_class()):
        rec.status, rec.error = "cancelled", "the client disconnected"
        raise
    finally:
        await _close(response, rec, finish)


def _fail(rec: CallRecord, encoder: Encoder, error: UpstreamError) -> bytes:
    rec.status, rec.error = "error", f"mid-stream: {error}"
    rec.meta["error_status"] = error.status  # a 4xx (a blocked prompt) is not the provider's fault
    log.warning("stream failed: %s", error)
    return encoder.error(describe(error))


async def relay_anthropic(response: httpx.Response, provider: Provider, rec: CallRecord,
                          error: Callable[[ErrorInfo], bytes], finish: Finish) -> AsyncIterator[bytes]:
    events: list[bytes] = []
    rec.events = events
    buf = b""
    stopped = False
    try:
        try:
            async for piece in response.aiter_bytes():
                buf += piece.replace(b"\r\n", b"\n") if b"\r" in piece else piece
                cut = buf.rfind(b"\n\n")
                if cut < 0:
                    continue
                block, buf = buf[: cut + 2], buf[cut + 2:]
                if not sse_shaped(block):
                    message = not_events(rec, provider, bool(events))
                    await _close(response, rec, finish)
                    yield error(ErrorInfo(502, INVALID, message))
                    return
                block = scrub_bytes(provider, block)
                events.append(block)
                stopped = stopped or b"message_stop" in block
                if rec.first_at is None and b"content_block_delta" in block:
                    rec.first_at = time.perf_counter()  # the first content, not message_start
                if stopped:  # the last event: the call is recorded before the client has it
                    await _close(response, rec, finish)
                    yield block
                    return
                yield block
        except httpx.HTTPError as exc:
            failure = to_upstream_error(provider, exc=exc)
            rec.status, rec.error = "error", f"mid-stream: {failure}"
            await _close(response, rec, finish)
            yield error(describe(failure))
            return
        tail = b""
        if buf.strip() and not sse_shaped(buf):
            message = not_events(rec, provider, bool(events))
            await _close(response, rec, finish)
            yield error(ErrorInfo(502, INVALID, message))
            return
        if buf.strip():
            tail = scrub_bytes(provider, buf)
            events.append(tail)
        if b'"type":"error"' in b"".join(events[-2:]).replace(b" ", b""):
            rec.status, rec.error = "error", f"{provider.name} sent an error event mid-stream"
        elif not stopped:
            rec.status, rec.error = "error", f"{provider.name} ended the stream before it finished"
            tail += error(ErrorInfo(502, "upstream_error", rec.error))
        await _close(response, rec, finish)
        if tail:
            yield tail
    except (GeneratorExit, anyio.get_cancelled_exc_class()):
        rec.status, rec.error = "cancelled", "the client disconnected"
        raise
    finally:
        await _close(response, rec, finish)
