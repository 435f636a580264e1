"""Text operations on file contents: streaming line reads, edits, line edits, diffs.

Pure functions over strings and binary handles; no paths, no MCP. Refusals raise WorkspaceError
with a message that tells the model what to change.
"""

from __future__ import annotations

import codecs
import difflib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

import regex as re

from kimi_mcp.errors import WorkspaceError

_CHUNK = 1 << 20
MAX_LINE_BYTES = 1 << 20
EXTRACT_LINE_CHARS = 2000  # per line of a pattern extract; read_file reads a long line whole


@dataclass
class LineWindow:
    text: str
    count: int  # lines in `text` (a cut line counts as one)
    total_lines: int
    stopped_at: int | None  # 1-based line to continue from, when cut short
    stopped_char: int | None = None  # character within that line to continue from (a cut line)
    invalid_bytes: int = 0  # bytes not valid in the encoding, shown as U+FFFD


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def read_window(
    handle: BinaryIO,
    encoding: str,
    start: int,
    max_lines: int,
    max_chars: int,
    start_char: int = 0,
) -> LineWindow:
    """Lines `start`.. (1-based), at most max_lines and max_chars, from character `start_char`
    of the first line on.

    Memory stays bounded by the budget whatever the file: it is decoded chunk by chunk, lines
    before the window and the rest after it are only counted, and a line longer than the
    whole budget is cut, with `stopped_char` saying where to continue in it.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogateescape")
    reader = _Reader(start, max_lines, max_chars, start_char)
    while not reader.done:
        chunk = handle.read(_CHUNK)
        text = decoder.decode(chunk, final=not chunk)
        if text:
            reader.feed(text)
        if not chunk:
            break
    if reader.done:
        reader.count_rest(handle)
    return reader.window()


class _Reader:
    """The state of one read_window pass: position, the window, and what follows it."""

    def __init__(self, start: int, max_lines: int, max_chars: int, start_char: int) -> None:
        self.start, self.max_lines, self.max_chars = start, max_lines, max_chars
        self.skip_chars = start_char
        self.line = 1  # the line the next character belongs to
        self.newlines = 0
        self.last = ""  # the last character seen (for the line count of a file without \n)
        self.parts: list[str] = []
        self.used = 0
        self.count = 0
        self.col = 0  # characters taken from the current window line so far
        self.done = False
        self.stop: tuple[int, int | None] | None = None
        self.more = False

    def feed(self, text: str) -> None:
        pos, n = 0, len(text)
        if self.done:
            self._count(text)
            return
        while pos < n and self.line < self.start:  # lines before the window: only counted
            newline = text.find("\n", pos)
            if newline < 0:
                self.last = text[-1]
                return
            self.newlines += 1
            self.line += 1
            pos = newline + 1
        while pos < n and self.skip_chars:  # into the first line, from start_char
            newline = text.find("\n", pos, pos + self.skip_chars)
            if newline >= 0:
                self.skip_chars = 0
                pos = newline
                break
            step = min(self.skip_chars, n - pos)
            self.skip_chars -= step
            self.col += step
            pos += step
        while pos < n:
            newline = text.find("\n", pos)
            end = n if newline < 0 else newline + 1
            piece = text[pos:end]
            if self.used + len(piece) > self.max_chars:
                if self.parts and self.col == 0:
                    self._finish(text, pos, (self.line, None))
                    return
                take = self.max_chars - self.used
                self._take(piece[:take])
                self.col += take
                self._finish(text, pos + take, (self.line, self.col))
                return
            self._take(piece)
            pos = end
            if newline < 0:
                self.col += len(piece)
                continue
            self.newlines += 1
            self.line += 1
            self.count += 1
            self.col = 0
            if self.count >= self.max_lines:
                self._finish(text, pos, (self.line, None))
                return

    def _take(self, piece: str) -> None:
        if piece:
            self.parts.append(piece)
            self.used += len(piece)
            self.last = piece[-1]

    def _finish(self, text: str, pos: int, stop: tuple[int, int | None]) -> None:
        self.done = True
        self.stop = stop
        self._count(text[pos:])

    def _count(self, rest: str) -> None:
        if rest:
            self.more = True
            self.newlines += rest.count("\n")
            self.last = rest[-1]

    def count_rest(self, handle: BinaryIO) -> None:
        # after the window, only newlines matter: counted on the raw bytes, chunk by chunk
        while chunk := handle.read(_CHUNK):
            self.more = True
            self.newlines += chunk.count(b"\n")
            self.last = "\n" if chunk.endswith(b"\n") else "x"

    def window(self) -> LineWindow:
        text = "".join(self.parts)
        invalid = 0
        if _UNDECODABLE.search(text):
            text, invalid = _UNDECODABLE.subn("\ufffd", text)
        total = self.newlines + (1 if self.last and self.last != "\n" else 0)
        count = self.count + (1 if self.col and self.parts and self.stop is None else 0)
        if self.stop is not None and self.stop[1] is not None:
            count += 1  # the cut line
        stopped_at = stopped_char = None
        if self.stop is not None and self.more:
            stopped_at, stopped_char = self.stop
        return LineWindow(text, count, total, stopped_at, stopped_char, invalid)


def sniff_binary(sample: bytes) -> bool:
    """A NUL byte in the first block: what git and grep call a binary file."""
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


def bounded_lines(handle: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary handle, each cut at `limit` bytes (the rest of a longer line is
    skipped unread into memory), so one huge line cannot be loaded whole."""
    while line := handle.readline(limit):
        if len(line) == limit and not line.endswith(b"\n"):
            while rest := handle.readline(limit):
                if rest.endswith(b"\n"):
                    break
        yield line


def extract_by_pattern(
    handle: BinaryIO,
    encoding: str,
    pattern: re.Pattern[str],
    context: int,
    max_ranges: int,
    deadline: float | None = None,
) -> tuple[list[Range], bool]:
    """Ranges of lines around each match (merged when they overlap), streamed.

    With `deadline` (a time.monotonic() value) the regex runs under a timeout and
    TimeoutError is raised when it passes.
    """
    ranges: list[Range] = []
    before: list[tuple[int, str]] = []
    current: Range | None = None
    after_left = 0
    search = pattern.search
    for number, raw in enumerate(bounded_lines(handle), start=1):
        line = raw.decode(encoding, errors="replace").rstrip("\r\n")
        if deadline is None:
            hit = search(line)
        else:
            hit = search(line, timeout=max(0.001, deadline - time.monotonic()))
        if len(line) > EXTRACT_LINE_CHARS:
            line = line[:EXTRACT_LINE_CHARS] + f"… [line cut at {EXTRACT_LINE_CHARS} characters]"
        if hit:
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
