"""Memory tags in user messages: `@memory[text]` and `<mcp-memory>text</mcp-memory>` are stored
and removed; `@recall(query)` becomes a delimited block of the memories recalled for it.

Agents resend the whole conversation on every call, so the same tag comes back again and
again: a stored text is stored once, and a recall is answered once per session, message and
query, so the expanded message stays byte-identical (cache-friendly) in later requests.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.context.conversation import Message

log = logging.getLogger(__name__)

MEMORY_OPEN = "@memory["
XML_OPEN, XML_CLOSE = "<mcp-memory>", "</mcp-memory>"
RECALL_OPEN = "@recall("
BLOCK_OPEN, BLOCK_CLOSE = "<mcp-recall", "</mcp-recall>"
EMPTY_AFTER_STORE = "(noted in memory)"
RECALL_LIMIT = 5
RECALL_CHARS = 1500


@dataclass(frozen=True)
class Tag:
    kind: str  # "memory" | "recall"
    start: int
    end: int
    text: str


class _Closers:
    """Where each bracket of a text closes, found in one pass per bracket kind: scanning on
    from every opener instead is quadratic on `@memory[@memory[…` with nothing closed."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._ends: dict[str, dict[int, int]] = {}
        self._no_xml_close_after = len(text) + 1

    def balanced(self, start: int, open_ch: str, close_ch: str) -> int:
        """Index just past the bracket closing the one opened before `start`, or -1."""
        ends = self._ends.get(open_ch)
        if ends is None:
            ends = self._ends[open_ch] = {}
            stack: list[int] = []
            for match in re.finditer(re.escape(open_ch) + "|" + re.escape(close_ch), self._text):
                if match.group() == open_ch:
                    stack.append(match.start())
                elif stack:
                    ends[stack.pop()] = match.end()
        return ends.get(start - 1, -1)

    def xml_close(self, start: int) -> int:
        if start >= self._no_xml_close_after:
            return -1  # none after an earlier opener, so none after this one
        close = self._text.find(XML_CLOSE, start)
        if close == -1:
            self._no_xml_close_after = start
        return close


_OPENERS = re.compile(r"@memory\[|<mcp-memory>|@recall\(|<mcp-recall")


def scan(text: str) -> list[Tag]:
    """The tags in `text`, in order; text inside recall blocks this stage wrote is skipped."""
    if MEMORY_OPEN not in text and XML_OPEN not in text and RECALL_OPEN not in text:
        return []
    found: list[Tag] = []
    closers = _Closers(text)
    at = 0
    while (match := _OPENERS.search(text, at)) is not None:
        i = match.start()
        if text.startswith(BLOCK_OPEN, i):
            close = text.find(BLOCK_CLOSE, i)
            at = len(text) if close == -1 else close + len(BLOCK_CLOSE)
            continue
        tag = _tag_at(text, i, closers)
        if tag is None:
            at = i + 1
            continue
        found.append(tag)
        at = tag.end
    return found


def _tag_at(text: str, i: int, closers: _Closers) -> Tag | None:
    if text.startswith(MEMORY_OPEN, i):
        end = closers.balanced(i + len(MEMORY_OPEN), "[", "]")
        if end != -1:
            return Tag("memory", i, end, text[i + len(MEMORY_OPEN) : end - 1])
    elif text.startswith(XML_OPEN, i):
        close = closers.xml_close(i + len(XML_OPEN))
        if close != -1:
            return Tag("memory", i, close + len(XML_CLOSE), text[i + len(XML_OPEN) : close])
    elif text.startswith(RECALL_OPEN, i):
        end = closers.balanced(i + len(RECALL_OPEN), "(", ")")
        if end != -1:
            return Tag("recall", i, end, text[i + len(RECALL_OPEN) : end - 1])
    return None


def recall_block(query: str, hits: Sequence[Any]) -> str:
    lines = [f'{BLOCK_OPEN} query="{html.escape(query.strip(), quote=True)}">']
    if not hits:
        lines.append("(no memories found)")
    for n, hit in enumerate(hits, 1):
        item = hit.item
        content = item.content
        if len(content) > RECALL_CHARS:
            content = content[:RECALL_CHARS] + f'… [memory_get ids ["{item.id}"] for the rest]'
        score = "" if hit.score is None else f", score {hit.score:.2f}"
        lines.append(f"[{n}] {item.id} ({item.type}{score}): {content}")
    lines.append(BLOCK_CLOSE)
    return "\n".join(lines)


def rewrite(text: str, found: Sequence[Tag], recalled: dict[str, str]) -> str:
    """The text with memory tags removed and recall tags expanded (`recalled`: query → block)."""
    out, at = [], 0
    for tag in found:
        out.append(text[at : tag.start])
        if tag.kind == "recall":
            out.append(recalled[tag.text])
        at = tag.end
    out.append(text[at:])
    new = "".join(out)
    return new if new.strip() else EMPTY_AFTER_STORE


class MemoryTags:
    """The stage, with what it already did in this process."""

    def __init__(self, cache_size: int = 2048) -> None:
        self.stored: set[str] = set()
        self._recalls: dict[tuple[str | None, int, str], str] = {}
        self._cache_size = cache_size

    async def apply(
        self, messages: list[Message], memory: Any, *, session_id: str | None, project: str
    ) -> int:
        """Rewrite user messages in place (the list is the caller's copy); recall tokens added."""
        added = 0
        for i, m in enumerate(messages):
            if m.get("role") != "user":
                continue
            content = m.get("content")
            if isinstance(content, str):
                new, n = await self._text(content, i, memory, session_id, project)
                if new is not None:
                    messages[i] = {**m, "content": new}
                    added += n
            elif isinstance(content, list):
                new_parts, n = await self._parts(content, i, memory, session_id, project)
                if new_parts is not None:
                    messages[i] = {**m, "content": new_parts}
                    added += n
        return added

    async def _parts(
        self, parts: list[Any], i: int, memory: Any, session_id: str | None, project: str
    ) -> tuple[list[Any] | None, int]:
        changed, added, out = False, 0, []
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                new, n = await self._text(part["text"], i, memory, session_id, project)
                if new is not None:
                    part, changed, added = {**part, "text": new}, True, added + n
            out.append(part)
        return (out if changed else None), added

    async def _text(
        self, text: str, i: int, memory: Any, session_id: str | None, project: str
    ) -> tuple[str | None, int]:
        found = scan(text)
        if not found or memory is None:
            return None, 0
        recalled: dict[str, str] = {}
        for tag in found:
            if tag.kind == "memory":
                if not await self._store(tag.text.strip(), memory, session_id, project):
                    return None, 0
            elif tag.text not in recalled:
                block = await self._recall(tag.text, i, memory, session_id, project)
                if block is None:
                    return None, 0
                recalled[tag.text] = block
        return rewrite(text, found, recalled), sum(tokens.count_text(b) for b in recalled.values())

    async def _store(self, content: str, memory: Any, session_id: str | None, project: str) -> bool:
        if not content or content in self.stored:
            return True
        try:
            await memory.store(
                content, source="memory_tag", tags=["memory-tag"], project=project,
                metadata={"session_id": session_id} if session_id else {},
            )
        except Exception:  # the tag stays in the message and is retried on the next request
            log.warning("storing a @memory tag failed; the tag is left in place", exc_info=True)
            return False
        self.stored.add(content)
        return True

    async def _recall(
        self, query: str, i: int, memory: Any, session_id: str | None, project: str
    ) -> str | None:
        key = (session_id, i, query)
        block = self._recalls.get(key)
        if block is not None:
            return block
        try:
            found = await memory.recall(query.strip(), limit=RECALL_LIMIT * 3, project=project)
        except Exception:  # the tag stays in the message and is retried on the next request
            log.warning("@recall(%s) failed; the tag is left in place", query[:80], exc_info=True)
            return None
        # masked tool output and transcripts are read with memory_get, not recalled here
        hits = [h for h in found if getattr(h.item, "source", "") != "sanitizer"][:RECALL_LIMIT]
        block = recall_block(query, hits)
        if len(self._recalls) >= self._cache_size:
            self._recalls.pop(next(iter(self._recalls)))
        self._recalls[key] = block
        return block
