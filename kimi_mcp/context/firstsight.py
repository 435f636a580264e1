"""First-sight compression: a tool output is compressed once, when it is first sent, and then
sent in that same form on every later request, so the provider's prompt cache stays warm.

The form is a pure function of the output and the earlier outputs of the conversation (its
kind's compressor, then the runs it repeats from an earlier output), headed by a line giving
the original's size and the `memory_get` call that returns it byte-exact:

    [kimi-mcp compressed this test output (3,412 tokens); memory_get ids ["m-…"] returns it whole]

File reads and edit results (`read`, `edit`) are never compressed at first sight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kimi_mcp import tokens
from kimi_mcp.context.compressors import PASSES, clean_lines, collapse_repeats
from kimi_mcp.context.kinds import WORKING_KINDS
from kimi_mcp.context.repeats import RepeatIndex

_HEADER = re.compile(
    r'^\[kimi-mcp compressed this \w+ output \([\d,]+ tokens\); memory_get ids \["(m-[0-9a-f]{16})"\] '
    r"returns it whole\]\n"
)
MIN_CHARS = 600  # shorter outputs are not worth a header
MIN_SAVED_TOKENS = 48
MIN_SAVED_SHARE = 0.12


def header(kind: str, size: int, mid: str) -> str:
    return f'[kimi-mcp compressed this {kind} output ({size:,} tokens); memory_get ids ["{mid}"] returns it whole]'


def compressed_id(text: str) -> str | None:
    """The id when `text` is a first-sight form this module wrote, else None."""
    if not text.startswith("[kimi-mcp compressed this "):
        return None
    match = _HEADER.match(text)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Form:
    text: str  # what is sent instead of the original
    tokens: int
    how: str  # "first_sight" | "repeat": what made most of the saving
    refers: frozenset[str]  # ids of earlier outputs the text points to


def body(kind: str, text: str, index: RepeatIndex | None) -> tuple[str, set[str]]:
    """The compressed text without its header, and the earlier outputs' ids it names."""
    lines = text.split("\n")
    named: set[str] = set()
    if index is not None:
        lines, named = index.replace(lines)
    passes = PASSES.get(kind, ())
    lines = clean_lines("\n".join(lines))
    for step in passes:
        lines = step(lines)
    return "\n".join(collapse_repeats(lines)), named  # lines a pass made identical (clipped ones)


def first_sight(kind: str, text: str, mid: str, size: int, index: RepeatIndex | None) -> Form | None:
    """The form to send instead of `text` (`size` tokens), or None when it stays as it is: a
    read or an edit, short, or not made enough smaller to be worth it."""
    if kind in WORKING_KINDS or len(text) < MIN_CHARS or compressed_id(text) is not None:
        return None
    new, named = body(kind, text, index)
    if new == text:
        return None
    full = header(kind, size, mid) + "\n" + new
    after = tokens.count_text(full)
    if size - after < max(MIN_SAVED_TOKENS, MIN_SAVED_SHARE * size):
        return None
    return Form(full, after, "repeat" if named else "first_sight", frozenset(named))
