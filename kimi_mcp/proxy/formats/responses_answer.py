"""The canonical chat completion -> an OpenAI Responses `response` object, and its error shape.

Output items in order: a `reasoning` item (the reasoning text as `reasoning_text` content), a
`message` item (`output_text`), then one `function_call` item per tool call — or a
`custom_tool_call` item when the tool was a custom (freeform) tool of the request. A finish for
length makes the response `incomplete` (`max_output_tokens`).
"""

from __future__ import annotations

import time
from typing import Any

from kimi_mcp.errors import ErrorInfo
from kimi_mcp.proxy.formats.canonical import (
    first_choice,
    loads_object,
    new_id,
    reasoning_text,
    text_of,
    usage_to_responses,
)
from kimi_mcp.proxy.formats.responses_request import ResponsesCall

_ECHOED = ("instructions", "max_output_tokens", "metadata", "parallel_tool_calls",
           "previous_response_id", "reasoning", "store", "temperature", "text", "tool_choice",
           "tools", "top_p", "truncation", "user", "service_tier", "prompt_cache_key")
_DEFAULTS: dict[str, Any] = {"instructions": None, "metadata": {}, "parallel_tool_calls": True,
                             "previous_response_id": None, "temperature": 1.0, "tool_choice": "auto",
                             "tools": [], "top_p": 1.0, "truncation": "disabled", "store": True,
                             "text": {"format": {"type": "text"}}, "reasoning": None}


def error_object(info: ErrorInfo) -> dict[str, Any]:
    """OpenAI's error body (the Responses API answers failures in chat's error shape)."""
    return {"error": {"message": info.message, "type": info.type, "code": info.code, "param": None}}


def skeleton(call: ResponsesCall, response_id: str, model: str, created: int) -> dict[str, Any]:
    """The `response` object with no output yet (`status: in_progress`)."""
    out: dict[str, Any] = {"id": response_id, "object": "response", "created_at": created,
                           "status": "in_progress", "error": None, "incomplete_details": None,
                           "model": model, "output": [], "usage": None}
    for key in _ECHOED:
        out[key] = call.body.get(key, _DEFAULTS.get(key))
    return out


def message_item(text: str, item_id: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def reasoning_item(text: str, item_id: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}


def call_item(call: dict[str, Any], item_id: str, request: ResponsesCall,
              status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    name = str(function.get("name", ""))
    call_id = str(call.get("id") or new_id("call_"))
    namespace = None
    custom = name in request.custom_tools
    if name in request.namespaced:
        namespace, name = request.namespaced[name]
    if custom:
        arguments = loads_object(function.get("arguments"))
        text = arguments.get("input", arguments.get("value", ""))
        item = {"type": "custom_tool_call", "id": item_id, "call_id": call_id, "name": name,
                "input": text if isinstance(text, str) else str(text), "status": status}
    else:
        item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
                "arguments": str(function.get("arguments") or ""), "status": status}
    if namespace is not None:
        item["namespace"] = namespace
    return item


def finish(response: dict[str, Any], finish_reason: str | None, usage: dict[str, Any] | None) -> None:
    """Mark the response completed (or incomplete for length) with its usage."""
    response["usage"] = usage_to_responses(usage)
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"


def from_canonical_answer(completion: dict[str, Any], call: ResponsesCall,
                          model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `response` object, and the assistant message to keep for `previous_response_id`."""
    response = skeleton(call, new_id("resp_"), model, int(time.time()))
    choice = first_choice(completion)
    reply = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    reasoning = reasoning_text(reply)
    if reasoning:
        output.append(reasoning_item(reasoning, new_id("rs_")))
    text = text_of(reply.get("content"))
    if text:
        output.append(message_item(text, new_id("msg_")))
    for tool_call in reply.get("tool_calls") or ():
        output.append(call_item(tool_call, new_id("fc_"), call))
    response["output"] = output
    finish(response, choice.get("finish_reason"), completion.get("usage"))
    kept = {"role": "assistant", "content": text or None}
    if reply.get("tool_calls"):
        kept["tool_calls"] = reply["tool_calls"]
    if isinstance(reasoning, str) and reasoning:
        kept["reasoning_content"] = reasoning
    return response, kept
