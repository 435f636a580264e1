"""Anthropic Messages streams <-> canonical `chat.completion.chunk` dicts, one event at a time.

`MessagesEncoder` writes Anthropic's event sequence for a Messages client: `message_start`,
`ping`, then per block `content_block_start` / `content_block_delta` (`text_delta`,
`input_json_delta`, `thinking_delta`) / `content_block_stop`, then `message_delta` (stop reason
and usage) and `message_stop`; a failure is an `error` event. `MessagesDecoder` reads an
Anthropic-format provider's events into chunks for any other client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kimi_mcp.errors import ErrorInfo, UpstreamError
from kimi_mcp.proxy.formats.anthropic_answer import error_body
from kimi_mcp.proxy.formats.canonical import (
    FROM_STOP_REASON,
    TO_STOP_REASON,
    chunk_usage,
    first_choice,
    new_id,
    reasoning_text,
    sse,
    usage_from_anthropic,
    usage_to_anthropic,
)


class MessagesEncoder:
    def __init__(self, model: str) -> None:
        self.model = model
        self.id = new_id("msg_")
        self.started = False
        self.finished = False
        self.index = -1
        self.open: str | None = None  # text | thinking | tool_use
        self.tools: dict[int, int] = {}  # canonical tool-call index -> block index
        self.stop: str | None = None
        self.usage: dict[str, Any] | None = None

    def _start(self, out: list[bytes]) -> None:
        self.started = True
        message: dict[str, Any] = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        out.append(sse("message_start", {"type": "message_start", "message": message}))
        out.append(sse("ping", {"type": "ping"}))

    def _block(self, kind: str, block: dict[str, Any], out: list[bytes]) -> None:
        self._close_block(out)
        self.index += 1
        self.open = kind
        out.append(sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                               "content_block": block}))

    def _close_block(self, out: list[bytes]) -> None:
        if self.open is not None:
            out.append(sse("content_block_stop", {"type": "content_block_stop", "index": self.index}))
            self.open = None

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(sse("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                               "delta": delta}))

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self._start(out)
        usage = chunk_usage(chunk)
        if usage is not None:
            self.usage = usage
        choice = first_choice(chunk)
        delta = choice.get("delta") or {}
        reasoning = reasoning_text(delta)
        if reasoning:
            if self.open != "thinking":
                self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._delta({"type": "thinking_delta", "thinking": reasoning}, out)
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.open != "text":
                self._block("text", {"type": "text", "text": ""}, out)
            self._delta({"type": "text_delta", "text": text}, out)
        for call in delta.get("tool_calls") or ():
            self._tool_call(call, out)
        if choice.get("finish_reason"):
            self.stop = TO_STOP_REASON.get(str(choice["finish_reason"]), "end_turn")
            self.finished = True
        return b"".join(out)

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        number = int(call.get("index") or 0)
        function = call.get("function") or {}
        if number not in self.tools:
            self._block("tool_use", {"type": "tool_use", "id": str(call.get("id") or new_id("toolu_")),
                                     "name": str(function.get("name") or ""), "input": {}}, out)
            self.tools[number] = self.index
        elif self.tools[number] != self.index:
            return  # a late fragment of an earlier call: its block is closed
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._delta({"type": "input_json_delta", "partial_json": arguments}, out)

    def close(self) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self._start(out)
        self._close_block(out)
        stop = "tool_use" if self.tools else (self.stop or "end_turn")
        out.append(sse("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop, "stop_sequence": None},
                                         "usage": usage_to_anthropic(self.usage)}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, info: ErrorInfo) -> bytes:
        return sse("error", error_body(info))


class MessagesDecoder:
    """An Anthropic-format provider's events, as chunks (None for events that carry nothing)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = new_id("chatcmpl-")
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # block index -> canonical tool-call index
        self.finished = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def event(self, data: dict[str, Any]) -> dict[str, Any] | None:
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self.usage.update(message.get("usage") or {})
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            return self._block_start(int(data.get("index") or 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(data.get("index") or 0), data.get("delta") or {})
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            stop = (data.get("delta") or {}).get("stop_reason")
            self.finished = True
            chunk = self._chunk({}, FROM_STOP_REASON.get(str(stop), "stop"))
            chunk["usage"] = usage_from_anthropic(self.usage)
            return chunk
        if kind == "error":
            error = data.get("error") or {}
            raise UpstreamError(f"the provider reported an error mid-stream: "
                                f"{error.get('message') or error.get('type') or 'unknown'}")
        return None

    def _block_start(self, index: int, block: dict[str, Any]) -> dict[str, Any] | None:
        if block.get("type") == "tool_use":
            number = len(self.tools)
            self.tools[index] = number
            return self._chunk({"tool_calls": [{"index": number, "id": str(block.get("id", "")),
                                                "type": "function", "function": {
                                                    "name": str(block.get("name", "")),
                                                    "arguments": ""}}]})
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        return None

    def _block_delta(self, index: int, delta: dict[str, Any]) -> dict[str, Any] | None:
        kind = delta.get("type")
        if kind == "text_delta":
            return self._chunk({"content": str(delta.get("text", ""))})
        if kind == "thinking_delta":
            return self._chunk({"reasoning_content": str(delta.get("thinking", ""))})
        if kind == "input_json_delta" and index in self.tools:
            return self._chunk({"tool_calls": [{"index": self.tools[index], "function": {
                "arguments": str(delta.get("partial_json", ""))}}]})
        return None


def events_of(block: bytes) -> Iterator[dict[str, Any]]:
    """The JSON data of each server-sent event in `block` (complete events only)."""
    for line in block.splitlines():
        if line.startswith(b"data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(data, dict):
                yield data


def usage_and_text(events: list[bytes]) -> tuple[dict[str, Any] | None, str]:
    """The usage (OpenAI shape) and generated text of a relayed Messages stream, for the ledger."""
    decoder = MessagesDecoder("")
    parts: list[str] = []
    usage = None
    for block in events:
        for data in events_of(block):
            try:
                chunk = decoder.event(data)
            except UpstreamError:
                continue
            if chunk is None:
                continue
            usage = chunk.get("usage", usage)
            delta = chunk["choices"][0]["delta"]
            parts += [str(delta.get(k) or "") for k in ("content", "reasoning_content")]
            for call in delta.get("tool_calls") or ():
                parts += [call["function"].get("name") or "", call["function"].get("arguments") or ""]
    return usage, "".join(parts)
