"""Compression: the middle of a conversation becomes one summary message.

The middle is what lies after the system messages and the first user message and before the
protected window (the last turns). A cut is remembered per conversation, so the following
requests of a growing conversation reuse it and their summary stays byte-identical (the
prompt cache keeps working) until the conversation outgrows it and a later cut is taken.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.context.conversation import Message, head_end, protected_start

SUMMARY_MIN_TOKENS = 256
SUMMARY_MAX_TOKENS = 4000


@dataclass(frozen=True)
class Cut:
    start: int
    end: int
    role: str  # the summary's role: keeps user/assistant alternation where it can


@dataclass(frozen=True)
class Summary:
    text: str
    transcript_id: str | None
    source: str  # "deterministic" | "model"


@dataclass
class Outcome:
    messages: list[Message]
    saved: int
    cut: Cut
    summary: Summary
    new: bool  # a cut not used before: worth an event


Summarize = Callable[[Sequence[Message], int], Awaitable[Summary]]


def summary_budget(budget: int) -> int:
    return max(SUMMARY_MIN_TOKENS, min(SUMMARY_MAX_TOKENS, budget // 10))


def _key(m: Message) -> tuple[Any, ...]:
    calls = m.get("tool_calls")
    content = m.get("content")
    text = content if isinstance(content, str) else tokens.content_text(content)
    return (m.get("role"), text, m.get("tool_call_id"), repr(calls) if calls else None)


def fingerprint(messages: Sequence[Message]) -> int:
    """An in-process fingerprint of messages (str hashes are cached on the objects, so the
    same request's strings are hashed once however often they are fingerprinted)."""
    return hash(tuple(_key(m) for m in messages))


def cut_for(messages: Sequence[Message], keep: int) -> Cut | None:
    """The cut protecting the last `keep` turns, or None when the middle would be empty."""
    start = head_end(messages)
    end = protected_start(messages, keep)
    role = "user"
    if end - 1 > start and messages[end - 1].get("role") == "user":
        end, role = end - 1, "assistant"  # the user message joins the window: roles alternate
    return Cut(start, end, role) if end > start else None


class Compressor:
    def __init__(self, size: int = 1024) -> None:
        self._cuts: OrderedDict[Any, tuple[Cut, int, bool]] = OrderedDict()
        self._summaries: OrderedDict[int, Summary] = OrderedDict()
        self._size = size

    def sticky(self, key: Any, original: Sequence[Message]) -> tuple[Cut, bool] | None:
        """The cut remembered for this conversation, if its compressed part is unchanged,
        and whether it was asked for (rather than forced by the size of the prompt)."""
        found = self._cuts.get(key)
        if found is None:
            return None
        cut, fp, requested = found
        if cut.end >= len(original) or fingerprint(original[: cut.end]) != fp:
            return None
        return cut, requested

    def remember(self, key: Any, cut: Cut, original: Sequence[Message], requested: bool) -> None:
        self._cuts[key] = (cut, fingerprint(original[: cut.end]), requested)
        self._cuts.move_to_end(key)
        while len(self._cuts) > self._size:
            self._cuts.popitem(last=False)

    def has_cuts(self) -> bool:
        return bool(self._cuts)

    def forget(self, key: Any) -> None:
        self._cuts.pop(key, None)

    def candidates(
        self, messages: Sequence[Message], keep: int
    ) -> list[Cut]:
        """Cuts from the most context kept (`keep` turns) to the least (one turn)."""
        out: list[Cut] = []
        for k in range(max(keep, 1), 0, -1):
            cut = cut_for(messages, k)
            if cut is not None and cut not in out:
                out.append(cut)
        return out

    async def summary(
        self, original: Sequence[Message], cut: Cut, budget: int, summarize: Summarize
    ) -> Summary:
        middle = original[cut.start : cut.end]
        key = fingerprint(middle)
        found = self._summaries.get(key)
        if found is None:
            found = await summarize(middle, summary_budget(budget))
            self._summaries[key] = found
            while len(self._summaries) > self._size:
                self._summaries.popitem(last=False)
        return found


def estimate(counts: Sequence[int], total: int, cut: Cut) -> int:
    """Tokens after removing the middle, before adding the summary."""
    return total - sum(counts[cut.start : cut.end])


def splice(messages: Sequence[Message], cut: Cut, summary: Summary) -> list[Message]:
    note: Message = {"role": cut.role, "content": summary.text}
    return [*messages[: cut.start], note, *messages[cut.end :]]
