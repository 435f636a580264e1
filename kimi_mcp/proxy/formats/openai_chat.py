"""OpenAI chat completions: the identity inbound adapter, and the OpenAI-format outbound wire.

Inbound, the client's body is the canonical request and an OpenAI-format provider's answer goes
back untouched (`streaming.relay_openai`); answers translated from another wire are written as
`chat.completion` / `chat.completion.chunk`. Outbound, `request_body` is the body an
OpenAI-format provider receives: a chat client's body as it came (only the proxy's changes), a
body translated from another format without the fields chat has no name for.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource

from kimi_mcp.errors import ErrorInfo, UpstreamError
from kimi_mcp.proxy.formats.canonical import ORIGIN, Body, dumps, without_origin
from kimi_mcp.proxy.profiles import PROFILES, Profile

DONE = b"data: [DONE]\n\n"
# content-part types every OpenAI-format provider accepts
_PARTS = frozenset({"text", "image_url", "input_audio", "file"})


def error_event(info: ErrorInfo) -> bytes:
    body = {"error": {"message": info.message, "type": "api_error", "code": info.code, "param": None}}
    return b"data: " + dumps(body) + b"\n\n"


class ChatEncoder:
    """Chunks to a chat client; a usage-only chunk only when it asked for `include_usage`."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.finished = False
        self._usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> bytes:
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finished = True
        if not chunk.get("choices") and "usage" in chunk:
            self._usage = chunk
            return b""
        return b"data: " + dumps(chunk) + b"\n\n"

    def close(self) -> bytes:
        if self.include_usage and self._usage is not None:
            return b"data: " + dumps(self._usage) + b"\n\n" + DONE
        return DONE

    def error(self, info: ErrorInfo) -> bytes:
        return error_event(info) + DONE


def request_body(body: Body) -> Body:
    """What an OpenAI-format provider receives (before the model id, key and dropped fields)."""
    if ORIGIN not in body:
        return body
    out = without_origin(body)
    out["messages"] = [_chat_message(m) for m in out.get("messages") or () if isinstance(m, dict)]
    tools = [t for t in out.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    if tools:
        out["tools"] = tools
    else:
        out.pop("tools", None)
        out.pop("tool_choice", None)
        out.pop("parallel_tool_calls", None)
    return out


def _chat_message(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != "thinking_blocks"}
    content = out.get("content")
    if isinstance(content, list):
        parts = [_chat_part(p) for p in content if isinstance(p, dict)]
        if out.get("role") in ("tool", "system", "assistant"):
            out["content"] = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        else:
            out["content"] = parts
    return out


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") in _PARTS:
        return part
    if part.get("type") == "document" and isinstance(part.get("source"), dict):
        source = part["source"]
        if source.get("type") == "text":
            return {"type": "text", "text": str(source.get("data", ""))}
    return {"type": "text", "text": f"[{part.get('type', 'content')} omitted: this provider does not take it]"}


async def chunks(response: httpx.Response, provider_name: str,
                 profile: Profile = PROFILES["openai"]) -> AsyncIterator[dict[str, Any]]:
    """An OpenAI-format stream's chunks as dicts, usage at the top level wherever the provider
    put it and finish reasons as OpenAI's; an in-band error raises `UpstreamError`."""
    async for event in EventSource(response).aiter_sse():
        data = event.data
        if not data or data.startswith("[DONE]"):
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if not isinstance(chunk, dict):
            continue
        message = profile.stream_error(chunk)
        if message is not None:
            raise UpstreamError(f"{provider_name} reported an error mid-stream: {message}")
        if "usage" in data or "x_groq" in data:
            usage = profile.usage(chunk)
            if usage is not None:
                chunk["usage"] = usage
        if profile.finish_reasons:
            for choice in chunk.get("choices") or ():
                reason = choice.get("finish_reason") if isinstance(choice, dict) else None
                if isinstance(reason, str):
                    choice["finish_reason"] = profile.finish(reason) or reason
        yield chunk
