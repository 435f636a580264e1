"""Text operations on file contents: streaming line reads, edits, line edits, diffs.

Pure functions over strings and binary handles; no paths, no MCP. Refusals raise WorkspaceError
with a message that tells the model what to change.
"""

from __future__ import annotations

import difflib
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

from kimi_mcp.errors import WorkspaceError

_CHUNK = 1 << 20


@dataclass
class LineWindow:
    text: str
    count: int  # lines in `text`
    total_lines: int
    stopped_at: int | None  # 1-based line to continue from, when cut short


def read_window(
    handle: BinaryIO, encoding: str, start: int, max_lines: int, max_chars: int
) -> LineWindow:
    """Lines `start`.. (1-based), at most max_lines and max_chars, decoded once.

    A file that fits the budget is read in one call; a larger one is streamed line by line and
    the rest only counted, chunk by chunk, so it is never held whole.
    """
    try:
        size = os.fstat(handle.fileno()).st_size
    except (OSError, io.UnsupportedOperation):
        size = max_chars + 1
    if size <= max_chars:  # bytes >= characters, so the whole text fits
        return _window_of(handle.read(), encoding, start, max_lines)
    chosen: list[bytes] = []
    used = 0
    number = 0
    for raw in handle:
        number += 1
        if number < start:
            continue
        if len(chosen) >= max_lines or (chosen and used + len(raw) > max_chars):
            # line `number` was read but not returned; the rest is only counted
            total = number + _count_newlines(handle)
            return LineWindow(_decode(chosen, encoding), len(chosen), total, number)
        chosen.append(raw)
        used += len(raw)
    return LineWindow(_decode(chosen, encoding), len(chosen), number, None)


def _window_of(data: bytes, encoding: str, start: int, max_lines: int) -> LineWindow:
    lines = data.split(b"\n")
    trailing = lines[-1] == b""
    if trailing:
        lines.pop()
    total = len(lines)
    chosen = lines[start - 1 : start - 1 + max_lines]
    more = start - 1 + max_lines < total
    text = b"\n".join(chosen)
    if chosen and (more or trailing):
        text += b"\n"
    stopped = start + len(chosen) if more else None
    return LineWindow(text.decode(encoding, errors="replace"), len(chosen), total, stopped)


def _decode(chunks: list[bytes], encoding: str) -> str:
    return b"".join(chunks).decode(encoding, errors="replace")


def _count_newlines(handle: BinaryIO) -> int:
    count = 0
    tail = b""
    while chunk := handle.read(_CHUNK):
        count += chunk.count(b"\n")
        tail = chunk[-1:]
    return count + (1 if tail and tail != b"\n" else 0)


def looks_binary(sample: bytes) -> bool:
    return b"\x00" in sample


# ---- edits by text ---------------------------------------------------------------------------


@dataclass
class TextEdit:
    old_text: str
    new_text: str
    expected_replacements: int = 1


def apply_edits(text: str, edits: Sequence[TextEdit]) -> tuple[str, list[str]]:
    """Apply edits in order; exact match first, else a whitespace-tolerant line match.

    Returns the new text and, per edit, how it matched ("exact" or "whitespace").
    """
    crlf = "\r\n" in text
    work = text.replace("\r\n", "\n") if crlf else text
    how: list[str] = []
    for index, edit in enumerate(edits, start=1):
        old = edit.old_text.replace("\r\n", "\n")
        new = edit.new_text.replace("\r\n", "\n")
        if not old:
            raise WorkspaceError(f"Edit {index}: old_text is empty; give the exact text to replace")
        found = work.count(old)
        if found == edit.expected_replacements:
            work = work.replace(old, new)
            how.append("exact")
            continue
        if found:
            raise WorkspaceError(
                f"Edit {index}: old_text occurs {found} times but expected_replacements is "
                f"{edit.expected_replacements}; add surrounding lines to make it unique or set "
                f"expected_replacements={found}"
            )
        work = _tolerant_replace(work, old, new, edit.expected_replacements, index)
        how.append("whitespace")
    return (work.replace("\n", "\r\n") if crlf else work), how


def _tolerant_replace(text: str, old: str, new: str, expected: int, index: int) -> str:
    lines = text.split("\n")
    old_lines = old.strip("\n").split("\n")
    wanted = [line.strip() for line in old_lines]
    stripped = [line.strip() for line in lines]
    width = len(wanted)
    hits: list[int] = []
    i = 0
    while i <= len(lines) - width:
        if stripped[i] == wanted[0] and stripped[i : i + width] == wanted:
            hits.append(i)
            i += width
        else:
            i += 1
    if len(hits) != expected:
        if not hits:
            raise WorkspaceError(f"Edit {index}: old_text not found. {_nearest(lines, wanted)}")
        raise WorkspaceError(
            f"Edit {index}: old_text matches {len(hits)} places (ignoring whitespace) but "
            f"expected_replacements is {expected}; add context to make it unique"
        )
    old_indent = _indent(old_lines[0])
    for start in reversed(hits):
        file_indent = _indent(lines[start])
        replacement = [_reindent(line, old_indent, file_indent) for line in new.split("\n")]
        if new.endswith("\n") and replacement and replacement[-1] == file_indent:
            replacement[-1] = ""
        lines[start : start + width] = replacement
    return "\n".join(lines)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(line: str, old_indent: str, file_indent: str) -> str:
    if not line.strip():
        return line.strip(" \t")
    if line.startswith(old_indent):
        return file_indent + line[len(old_indent) :]
    return file_indent + line.lstrip()


def _nearest(lines: list[str], wanted: list[str], limit: int = 20000) -> str:
    probe = next((w for w in wanted if w), "")
    if not probe:
        return "The old_text is only whitespace."
    best, best_ratio = -1, 0.0
    matcher = difflib.SequenceMatcher(b=probe, autojunk=False)
    for number, line in enumerate(lines[:limit]):
        candidate = line.strip()
        if not candidate:
            continue
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() <= best_ratio or matcher.quick_ratio() <= best_ratio:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best, best_ratio = number, ratio
    if best < 0 or best_ratio < 0.4:
        return "No similar line in the file; read the file again before editing."
    low, high = max(0, best - 2), min(len(lines), best + len(wanted) + 2)
    shown = "\n".join(f"{n + 1}: {lines[n]}" for n in range(low, high))
    return f"Nearest lines (similarity {best_ratio:.0%}):\n{shown}"


# ---- edits by line number -------------------------------------------------------------------

LineMode = Literal["replace", "insert_before", "insert_after", "delete"]


@dataclass
class LineEdit:
    line: int
    mode: LineMode
    text: str = ""


def apply_line_edits(text: str, edits: Sequence[LineEdit]) -> str:
    """Apply edits whose line numbers all refer to the original text (1-based)."""
    crlf = "\r\n" in text
    work = text.replace("\r\n", "\n") if crlf else text
    trailing = work.endswith("\n")
    lines = work.split("\n")
    if trailing:
        lines.pop()
    count = len(lines)
    touched: set[int] = set()
    for index, edit in enumerate(edits, start=1):
        upper = count + 1 if edit.mode == "insert_before" else count
        if not 1 <= edit.line <= max(upper, 0):
            raise WorkspaceError(
                f"Line edit {index}: line {edit.line} is out of range (the file has {count} lines)"
            )
        if edit.mode in ("replace", "delete"):
            if edit.line in touched:
                raise WorkspaceError(
                    f"Line edit {index}: line {edit.line} is already replaced or deleted by an "
                    "earlier edit"
                )
            touched.add(edit.line)
    order = {"insert_after": 0, "replace": 1, "delete": 1, "insert_before": 2}
    for edit in sorted(edits, key=lambda e: (e.line, order[e.mode]), reverse=True):
        at = edit.line - 1
        new = edit.text.replace("\r\n", "\n").removesuffix("\n").split("\n")
        if edit.mode == "replace":
            lines[at : at + 1] = new
        elif edit.mode == "delete":
            del lines[at]
        elif edit.mode == "insert_before":
            lines[at:at] = new
        else:
            lines[at + 1 : at + 1] = new
    result = "\n".join(lines) + ("\n" if trailing or (lines and not count) else "")
    return result.replace("\n", "\r\n") if crlf else result


# ---- diffs and extracts ---------------------------------------------------------------------


def unified_diff(old: str, new: str, old_name: str, new_name: str, context: int = 3) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
            n=context,
        )
    )


def cap(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit], True


@dataclass
class Range:
    start: int
    end: int
    lines: list[str]


def extract_by_pattern(
    handle: Iterable[bytes], encoding: str, pattern: re.Pattern[str], context: int, max_ranges: int
) -> tuple[list[Range], bool]:
    """Ranges of lines around each match (merged when they overlap), streamed."""
    ranges: list[Range] = []
    before: list[tuple[int, str]] = []
    current: Range | None = None
    after_left = 0
    for number, raw in enumerate(handle, start=1):
        line = raw.decode(encoding, errors="replace").rstrip("\r\n")
        if pattern.search(line):
            if current is None:
                if len(ranges) >= max_ranges:
                    return ranges, True
                first = before[0][0] if before else number
                current = Range(first, number, [text for _, text in before])
                ranges.append(current)
            current.lines.append(line)
            current.end = number
            after_left = context
            before = []
            continue
        if current is not None and after_left > 0:
            current.lines.append(line)
            current.end = number
            after_left -= 1
            if after_left == 0:
                current = None
            continue
        current = None
        before.append((number, line))
        if len(before) > context:
            before.pop(0)
    return ranges, False
