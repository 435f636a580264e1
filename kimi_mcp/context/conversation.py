"""The shape of a chat conversation: turns, the protected window, validity, cheap counting.

A turn starts at each assistant message and runs until the next one, so an agent's tool
results always belong to the turn of the assistant message that asked for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kimi_mcp import tokens

Message = dict[str, Any]
TOOL_ROLES = ("tool", "function")
SUMMARY_TAG = "<conversation-summary"


def turn_starts(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant"]


def protected_start(messages: Sequence[Mapping[str, Any]], keep_last_turns: int, step: int = 1) -> int:
    """Index of the first message of the last `keep_last_turns` turns (len when 0).

    With `step` > 1 the boundary moves forward `step` turns at a time (the window holds
    `keep_last_turns` to `keep_last_turns + step - 1` turns): what lies before it changes
    once every `step` requests instead of on every one, which keeps prompt caches warm.
    """
    starts = turn_starts(messages)
    outside = max(0, len(starts) - max(keep_last_turns, 0))
    outside -= outside % max(step, 1)
    if outside >= len(starts):
        return len(messages)
    return starts[outside]


def head_end(messages: Sequence[Mapping[str, Any]]) -> int:
    """End of the part compression never touches: the leading system messages, the first
    user message, and a summary kimi-mcp inserted earlier right after them."""
    end = 0
    while end < len(messages) and messages[end].get("role") in ("system", "developer"):
        end += 1
    for i in range(end, len(messages)):
        if messages[i].get("role") == "user":
            end = i + 1
            break
    if end < len(messages) and is_summary(messages[end]):
        end += 1
    return end


def is_summary(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, str) and content.startswith(SUMMARY_TAG)


def has_summary(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(is_summary(m) for m in messages)


def message_tokens(message: Mapping[str, Any]) -> int:
    return tokens.count_message(message)


def chat_tokens(messages: Sequence[Mapping[str, Any]], tools_tokens: int) -> int:
    total = sum(tokens.count_message(m) for m in messages) + tools_tokens
    return total + tokens.REPLY_PRIMING if messages else total


def call_ids(message: Mapping[str, Any]) -> list[str]:
    out = []
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping) and isinstance(call.get("id"), str):
            out.append(call["id"])
    return out


def problems(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """What makes a conversation invalid for providers: tool results that do not answer the
    assistant message before them, tool calls left without a result before the next turn."""
    found: list[str] = []
    open_ids: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "tool":
            tid = m.get("tool_call_id")
            if tid not in open_ids:
                found.append(f"message {i}: tool result {tid!r} answers no pending tool call")
            else:
                open_ids.remove(tid)
            continue
        if open_ids and i > 0:
            found.append(f"message {i}: tool calls {open_ids} have no result")
        open_ids = call_ids(m) if role == "assistant" else []
    return found
