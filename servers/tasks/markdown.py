"""A small markdown outline reader: headings into sections, list items with nesting.

Enough structure for planning, not a renderer: code fences are skipped, emphasis is stripped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(\s*)(?:([-*+])|(\d+)[.)])\s+(?:\[[ xX]\]\s+)?(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_EMPHASIS = re.compile(r"(\*\*|__|`)")


def clean(text: str) -> str:
    return _EMPHASIS.sub("", text).strip()


@dataclass
class Item:
    text: str
    ordered: bool
    children: list[Item] = field(default_factory=list)

    def flatten(self, depth: int = 0) -> list[str]:
        lines = ["  " * depth + "- " + self.text]
        for child in self.children:
            lines.extend(child.flatten(depth + 1))
        return lines


@dataclass
class Block:
    """A paragraph (`items` empty) or one list (`items` set) inside a section."""

    text: str = ""
    items: list[Item] = field(default_factory=list)

    @property
    def ordered(self) -> bool:
        return bool(self.items) and self.items[0].ordered


@dataclass
class Section:
    level: int
    title: str
    blocks: list[Block] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)

    def has_list(self) -> bool:
        return any(b.items for b in self.blocks)


def _lines(text: str) -> list[str]:
    out: list[str] = []
    fenced = False
    raw = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(raw):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        nxt = raw[i + 1] if i + 1 < len(raw) else ""
        if line.strip() and not _ITEM.match(line) and _SETEXT.match(nxt) and not _HEADING.match(line):
            out.append(("# " if nxt.startswith("=") else "## ") + line.strip())
            raw[i + 1] = ""
            continue
        out.append(line)
    return out


def _add_item(block: Block, indent: int, stack: list[tuple[int, Item]], item: Item) -> None:
    while stack and stack[-1][0] >= indent:
        stack.pop()
    if stack:
        stack[-1][1].children.append(item)
    else:
        block.items.append(item)
    stack.append((indent, item))


def parse(text: str) -> Section:
    """The document as a tree of sections under a level-0 root."""
    root = Section(0, "")
    path = [root]
    block: Block | None = None
    stack: list[tuple[int, Item]] = []
    for line in _lines(text):
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            while path[-1].level >= level:
                path.pop()
            section = Section(level, clean(heading.group(2)))
            path[-1].children.append(section)
            path.append(section)
            block, stack = None, []
            continue
        item = _ITEM.match(line)
        if item:
            if block is None or not block.items:
                block = Block()
                path[-1].blocks.append(block)
                stack = []
            indent = len(item.group(1).replace("\t", "    "))
            _add_item(block, indent, stack, Item(clean(item.group(4)), item.group(3) is not None))
            continue
        if not line.strip():
            if block is not None and not block.items:
                block = None
            continue
        if block is not None and block.items and line.startswith((" ", "\t")) and stack:
            stack[-1][1].text += " " + clean(line)
            continue
        if block is None or block.items:
            block = Block()
            path[-1].blocks.append(block)
            stack = []
        block.text = f"{block.text} {clean(line)}".strip()
    return root


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?;])\s+(?=[A-Z0-9`\"'(])", " ".join(text.split()))
    return [p.strip() for p in parts if len(p.split()) >= 3]


def list_items(text: str) -> tuple[list[Item], bool]:
    """The top-level list items of a free-text field (e.g. a task's details), and whether ordered."""
    root = parse(text)
    items: list[Item] = []
    ordered = False
    for section in [root, *_walk(root)]:
        for block in section.blocks:
            if block.items:
                ordered = ordered or block.ordered
                items.extend(block.items)
    return items, ordered


def _walk(section: Section) -> list[Section]:
    out: list[Section] = []
    for child in section.children:
        out.append(child)
        out.extend(_walk(child))
    return out
