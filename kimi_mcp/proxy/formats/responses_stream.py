"""Canonical `chat.completion.chunk` dicts -> the OpenAI Responses event stream, as they arrive.

`response.created`, `response.in_progress`; per output item `response.output_item.added`, then
for a message `response.content_part.added`, `response.output_text.delta`...,
`response.output_text.done`, `response.content_part.done`; for reasoning
`response.reasoning_text.delta`... `response.reasoning_text.done`; for a tool call
`response.function_call_arguments.delta`... `response.function_call_arguments.done` (custom
tools: `response.custom_tool_call_input.done`); each item ends with `response.output_item.done`
(the whole item, which is what Codex reads). The stream ends with `response.completed` (or
`response.incomplete`) carrying the usage; a failure ends it with `response.failed` and `error`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kimi_mcp.errors import ErrorInfo
from kimi_mcp.proxy.formats.canonical import chunk_usage, first_choice, new_id, reasoning_text, sse
from kimi_mcp.proxy.formats.responses_answer import (
    call_item,
    finish,
    message_item,
    reasoning_item,
    skeleton,
)
from kimi_mcp.proxy.formats.responses_request import ResponsesCall

Keep = Callable[[dict[str, Any], dict[str, Any]], None]  # (response, assistant message)


class ResponsesEncoder:
    def __init__(self, call: ResponsesCall, model: str, keep: Keep | None = None) -> None:
        self.call = call
        self.response = skeleton(call, new_id("resp_"), model, int(time.time()))
        self.keep = keep
        self.seq = 0
        self.started = False
        self.finished = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.item: dict[str, Any] | None = None  # the open output item
        self.text = ""
        self.calls: dict[int, dict[str, Any]] = {}  # canonical index -> canonical tool call
        self.items: dict[int, dict[str, Any]] = {}  # canonical index -> its output item
        self.reasoning = ""
        self.texts: list[str] = []

    def _event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return sse(kind, payload)

    def _start(self, out: list[bytes]) -> None:
        self.started = True
        out.append(self._event("response.created", response=dict(self.response)))
        out.append(self._event("response.in_progress", response=dict(self.response)))

    def _open(self, item: dict[str, Any], out: list[bytes]) -> None:
        self._close_item(out)
        self.item = item
        self.text = ""
        self.response["output"].append(item)
        out.append(self._event("response.output_item.added", output_index=self._index(), item=dict(item)))
        if item["type"] == "message":
            out.append(self._event("response.content_part.added", item_id=item["id"],
                                   output_index=self._index(), content_index=0,
                                   part={"type": "output_text", "text": "", "annotations": []}))

    def _index(self) -> int:
        return len(self.response["output"]) - 1

    def _close_item(self, out: list[bytes]) -> None:
        item, self.item = self.item, None
        if item is None:
            return
        index, item_id = self._index(), item["id"]
        if item["type"] == "message":
            done = message_item(self.text, item_id)
            out.append(self._event("response.output_text.done", item_id=item_id, output_index=index,
                                   content_index=0, text=self.text, logprobs=[]))
            out.append(self._event("response.content_part.done", item_id=item_id, output_index=index,
                                   content_index=0, part=done["content"][0]))
        elif item["type"] == "reasoning":
            done = reasoning_item(self.text, item_id)
            out.append(self._event("response.reasoning_text.done", item_id=item_id,
                                   output_index=index, content_index=0, text=self.text))
        else:
            number = next(n for n, i in self.items.items() if i is item)
            done = call_item(self.calls[number], item_id, self.call)
            if done["type"] == "custom_tool_call":
                out.append(self._event("response.custom_tool_call_input.done", item_id=item_id,
                                       output_index=index, input=done["input"]))
            else:
                out.append(self._event("response.function_call_arguments.done", item_id=item_id,
                                       output_index=index, name=done["name"],
                                       arguments=done["arguments"]))
        self.response["output"][index] = done
        out.append(self._event("response.output_item.done", output_index=index, item=done))

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
            if self.item is None or self.item["type"] != "reasoning":
                self._open({"type": "reasoning", "id": new_id("rs_"), "summary": [], "content": []}, out)
            self.text += reasoning
            self.reasoning += reasoning
            out.append(self._event("response.reasoning_text.delta", item_id=self.item["id"],  # type: ignore[index]
                                   output_index=self._index(), content_index=0, delta=reasoning))
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.item is None or self.item["type"] != "message":
                self._open({"type": "message", "id": new_id("msg_"), "status": "in_progress",
                            "role": "assistant", "content": []}, out)
            self.text += text
            self.texts.append(text)
            out.append(self._event("response.output_text.delta", item_id=self.item["id"],  # type: ignore[index]
                                   output_index=self._index(), content_index=0, delta=text,
                                   logprobs=[]))
        for call in delta.get("tool_calls") or ():
            self._tool_call(call, out)
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
            self.finished = True
        return b"".join(out)

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        number = int(call.get("index") or 0)
        function = call.get("function") or {}
        if number not in self.calls:
            self.calls[number] = {"id": str(call.get("id") or new_id("call_")), "type": "function",
                                  "function": {"name": str(function.get("name") or ""), "arguments": ""}}
            item = call_item(self.calls[number], new_id("fc_"), self.call, "in_progress")
            if item["type"] == "custom_tool_call":
                item["input"] = ""
            self.items[number] = item
            self._open(item, out)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.calls[number]["function"]["arguments"] += arguments
            item = self.items[number]
            if item is self.item and item["type"] == "function_call":
                out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                       output_index=self._index(), delta=arguments))

    def close(self) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self._start(out)
        self._close_item(out)
        finish(self.response, self.finish_reason, self.usage)
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=self.response))
        if self.keep is not None:
            self.keep(self.response, self.assistant())
        return b"".join(out)

    def assistant(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.texts) or None}
        if self.calls:
            message["tool_calls"] = [self.calls[n] for n in sorted(self.calls)]
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        return message

    def error(self, info: ErrorInfo) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self._start(out)
        self.response["status"] = "failed"
        self.response["error"] = {"code": info.code, "message": info.message}
        out.append(self._event("response.failed", response=self.response))
        out.append(self._event("error", code=info.code, message=info.message, param=None))
        return b"".join(out)
