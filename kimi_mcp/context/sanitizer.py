"""The sanitizer: old, verbose tool output becomes a small placeholder; the original is kept.

The placeholder is a pure function of the content (a content-addressed id, a fixed one-line
format), so a block masked in one request is byte-identical in every later one
and provider prompt caches keep working. Nothing here reads settings that could change it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.context.conversation import TOOL_ROLES, Message

LINE_CHARS = 80  # a masked argument keeps its first line, clipped to this
_HEADER = "[kimi-mcp masked "
# this module's placeholders: the current one-line form, and the older ones (one line, or with
# preview lines)
_PLACEHOLDER = re.compile(
    r"^\[kimi-mcp masked (?:[\d,]+ tokens, [\d,]+ lines?: memory_get (m-[0-9a-f]{16})\]"
    r"|a tool output: [\d,]+ tokens, (?:[\d,]+ lines?, )?id (m-[0-9a-f]{16})(?:\]|; [^\n]*\]))(?:\n|$)"
)


def masked_id(content: str) -> str:
    """The content-addressed id of a masked block (the memory engine's id for it)."""
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
    return "m-" + digest[:16]


def placeholder_id(content: str) -> str | None:
    """The id when `content` is a placeholder this module wrote, else None."""
    if not content.startswith(_HEADER):
        return None
    match = _PLACEHOLDER.match(content)
    return (match.group(1) or match.group(2)) if match else None


def _clip(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def placeholder(content: str, mid: str, size: int) -> str:
    """One line: the size in tokens and lines, and the `memory_get` id that returns the original
    byte-exact (`[kimi-mcp masked 4,056 tokens, 198 lines: memory_get m-…]`, 25 tokens). No
    preview lines and no words the id and the tool name do not need: a placeholder is resent on
    every later request, so each of its tokens is billed many times, and the call that made the
    output stands right before it (each preview line cost ~1.5% of the input tokens and ~1.4% of
    the cost saved on the dev trace set; the eight words of the previous one-line form ~0.9% of
    both, on the dev and test sets alike; JetBrains' "The Complexity Trap" masks observations with
    a bare placeholder, solve rate kept)."""
    lines = content.count("\n") + (0 if content.endswith("\n") or not content else 1)
    return f"[kimi-mcp masked {size:,} tokens, {lines:,} line{'' if lines == 1 else 's'}: memory_get {mid}]"


ARGUMENT_CHARS = 200
_ARGUMENT = "[kimi-mcp masked the rest of the arguments: memory_get {mid}]"
# the notes this module writes in arguments: the current one, and the older one
_ARGUMENT_NOTES = ("[kimi-mcp masked the rest of the arguments: memory_get m-", "[kimi-mcp masked this argument")


def has_masked_argument(arguments: str) -> bool:
    """Whether a tool call's arguments hold a note this module wrote."""
    return any(note in arguments for note in _ARGUMENT_NOTES)


def masked_arguments(arguments: str, mid: str, size: int) -> str | None:
    """A tool call's JSON arguments with each string value over ARGUMENT_CHARS characters cut to
    its first line and a note naming the id of the whole arguments; None when not a JSON object
    or nothing is long. The note is short (the arguments' JSON escapes every quote in it, and an
    assistant message is resent on every later request)."""
    try:
        data = json.loads(arguments)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    note = _ARGUMENT.format(mid=mid)
    new = {k: _clip(v.split("\n", 1)[0]) + " " + note if isinstance(v, str) and len(v) > ARGUMENT_CHARS else v
           for k, v in data.items()}
    return None if new == data else json.dumps(new, ensure_ascii=False)


@dataclass(frozen=True)
class Masked:
    id: str
    original: str
    text: str
    tokens: int  # of the original content


def maskable_text(content: Any) -> str | None:
    """The text of a tool result that can be masked: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
        isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return tokens.content_text(content)
    return None


class Sanitizer:
    """Masks tool messages; keeps a bounded cache of placeholders by content."""

    def __init__(self, cache_size: int = 4096) -> None:
        self._cache: dict[str, Masked] = {}
        self._cache_size = cache_size

    def masked(self, text: str) -> Masked:
        found = self._cache.get(text)
        if found is None:
            mid = masked_id(text)
            size = tokens.count_text(text)
            found = Masked(mid, text, placeholder(text, mid, size), size)
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = found
        return found

    def candidates(
        self, messages: Sequence[Message], end: int, threshold: int
    ) -> list[tuple[int, Masked]]:
        """Tool messages before `end` whose content is over `threshold` tokens."""
        out = []
        for i in range(min(end, len(messages))):
            m = messages[i]
            if m.get("role") not in TOOL_ROLES:
                continue
            text = maskable_text(m.get("content"))
            if text is None or placeholder_id(text) is not None:
                continue
            if tokens.count_text(text) > threshold:
                item = self.masked(text)
                if tokens.count_text(item.text) < item.tokens:
                    out.append((i, item))
        return out


def apply_masks(messages: list[Message], chosen: Sequence[tuple[int, Masked]]) -> int:
    """Replace the chosen messages in place (the list is the caller's copy); tokens saved."""
    saved = 0
    for i, item in chosen:
        before = tokens.count_message(messages[i])
        new = dict(messages[i])
        new["content"] = item.text
        messages[i] = new
        saved += before - tokens.count_message(new)
    return saved
