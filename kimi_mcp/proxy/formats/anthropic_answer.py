"""Anthropic Messages answers <-> the canonical chat completion, and Anthropic's error shape.

    to_canonical_answer(message, model)   an Anthropic-format provider's message -> chat.completion
    from_canonical_answer(completion)     any provider's chat.completion -> a Messages `message`
    error_body(info)                      {"type": "error", "error": {"type", "message"}}

Thinking travels as `reasoning_content` plus `thinking_blocks` (their signatures kept); a
reasoning text from a chat provider becomes a `thinking` block with an empty signature.
"""

from __future__ import annotations

import json
from typing import Any

from kimi_mcp.errors import ErrorInfo
from kimi_mcp.proxy.formats.canonical import (
    FROM_STOP_REASON,
    TO_STOP_REASON,
    first_choice,
    loads_object,
    new_id,
    reasoning_text,
    text_of,
    usage_from_anthropic,
    usage_to_anthropic,
)

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors)
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                500: "api_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(info: ErrorInfo) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(info.status), "message": info.message}}


def to_canonical_answer(message: dict[str, Any], model: str) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        elif kind == "tool_use":
            calls.append({"id": str(block.get("id", "")), "type": "function", "function": {
                "name": str(block.get("name", "")),
                "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)}})
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if thinking:
        reply["reasoning_content"] = "".join(str(b.get("thinking", "")) for b in thinking)
        reply["thinking_blocks"] = thinking
    if calls:
        reply["tool_calls"] = calls
    stop = message.get("stop_reason")
    out: dict[str, Any] = {
        "id": str(message.get("id") or new_id("chatcmpl-")), "object": "chat.completion",
        "created": 0, "model": model,
        "choices": [{"index": 0, "message": reply,
                     "finish_reason": FROM_STOP_REASON.get(str(stop), "stop") if stop else "stop"}]}
    if isinstance(message.get("usage"), dict):
        out["usage"] = usage_from_anthropic(message["usage"])
    return out


def from_canonical_answer(completion: dict[str, Any], model: str) -> dict[str, Any]:
    choice = first_choice(completion)
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    blocks = reply.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        content.extend(b for b in blocks if isinstance(b, dict))
    else:
        reasoning = reasoning_text(reply)
        if reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = text_of(reply.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in reply.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": str(call.get("id") or new_id("toolu_")),
                        "name": str(function.get("name", "")),
                        "input": loads_object(function.get("arguments"))})
    finish = choice.get("finish_reason")
    stop = TO_STOP_REASON.get(str(finish), "end_turn")
    if reply.get("tool_calls"):
        stop = "tool_use"
    return {"id": _message_id(completion.get("id")), "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": usage_to_anthropic(completion.get("usage"))}


def _message_id(found: Any) -> str:
    if isinstance(found, str) and found.startswith("msg_"):
        return found
    return new_id("msg_")


def usage_and_text(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The usage (OpenAI shape) and generated text of a raw Messages answer, for the ledger."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None, ""
    if not isinstance(message, dict):
        return None, ""
    answer = to_canonical_answer(message, "")
    reply = answer["choices"][0]["message"]
    parts = [str(reply.get("content") or ""), str(reply.get("reasoning_content") or "")]
    for call in reply.get("tool_calls") or ():
        parts += [call["function"]["name"], call["function"]["arguments"]]
    return answer.get("usage"), "".join(parts)
