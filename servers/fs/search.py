"""Searches over a walked tree: names by glob, contents by regex, sizes. No MCP here.

Content searches run the user's regex with the `regex` module under a time budget for the
whole call, so a backtracking pattern cannot hold the server: the search stops and says so.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import regex as re

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace, read_at

from .walk import Glob, WalkOptions, walk

_BINARY_SNIFF = 8192
MAX_LINE_CHARS = 400


def find_names(
    top_fd: int, glob: Glob, options: WalkOptions, limit: int
) -> tuple[list[str], bool]:
    """Paths (relative to top, `/`-separated; dirs end with `/`) whose name or path matches."""
    found: list[str] = []
    match = glob.regex.match
    by_name = glob.by_name
    for entry, rel, is_dir, _fd in walk(top_fd, options):
        if match(entry.name if by_name else rel) is None:
            continue
        found.append(rel + "/" if is_dir else rel)
        if len(found) > limit:
            found.sort()
            return found[:limit], True
    found.sort()
    return found, False


@dataclass
class Hit:
    path: str
    line: int
    text: str
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


@dataclass
class ContentSearch:
    hits: list[Hit] = field(default_factory=list)
    files_scanned: int = 0
    files_matched: int = 0
    skipped_binary: int = 0
    skipped_large: int = 0
    skipped_special: int = 0
    truncated: bool = False
    timed_out: bool = False


@dataclass
class ContentQuery:
    regex: re.Pattern[str]
    file_glob: Glob | None
    context: int
    limit: int
    max_file_bytes: int
    deadline: float  # time.monotonic() after which the search stops


def search_content(
    ws: Workspace, top: str, query: ContentQuery, options: WalkOptions
) -> ContentSearch:
    """Every line matching the regex in the text files under `top` (a canonical path), or in
    `top` itself if it is a file (binaries are skipped)."""
    out = ContentSearch()
    if not ws.is_dir(top):
        with ws.open_read(top) as handle:
            _scan(handle, ws.display(top), query, out)
        return out
    base = ws.display(top)
    prefix = "" if base == "." else base.rstrip("/") + "/"
    with ws.open_dir(top) as top_fd:
        for entry, rel, is_dir, fd in walk(top_fd, options):
            if is_dir or not entry.is_file(follow_symlinks=False):
                continue
            if query.file_glob is not None and not query.file_glob.matches(entry.name, rel):
                continue
            try:
                opened = read_at(fd, entry.name, prefix + rel)
            except WorkspaceError:
                out.skipped_special += 1
                continue
            if opened is None:
                continue
            with opened as handle:
                done = _scan(handle, prefix + rel, query, out)
            if done:
                return out
    return out


def _scan(handle: BinaryIO, shown: str, query: ContentQuery, out: ContentSearch) -> bool:
    """Search one open file; True when the search must stop (result limit or time budget)."""
    text = _read_text(handle, query.max_file_bytes, out)
    if text is None:
        return False
    out.files_scanned += 1
    try:
        remaining = query.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if query.regex.search(text, timeout=remaining) is None:
            return False
        out.files_matched += 1
        if _collect(text, query, shown, out):
            out.truncated = True
            return True
    except TimeoutError:
        out.timed_out = out.truncated = True
        return True
    return False


def _read_text(handle: BinaryIO, max_bytes: int, out: ContentSearch) -> str | None:
    data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        out.skipped_large += 1
        return None
    if b"\x00" in data[:_BINARY_SNIFF]:
        out.skipped_binary += 1
        return None
    return data.decode("utf-8", errors="replace")


def _collect(text: str, query: ContentQuery, shown: str, out: ContentSearch) -> bool:
    """Add one hit per matching line; True when the limit was reached."""
    lines: list[str] | None = None
    pos, line_no, last = 0, 1, 0
    context, limit = query.context, query.limit
    remaining = max(0.001, query.deadline - time.monotonic())
    for match in query.regex.finditer(text, timeout=remaining):
        start = match.start()
        line_no += text.count("\n", pos, start)
        pos = start
        if line_no == last:
            continue
        last = line_no
        if len(out.hits) >= limit:
            return True
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        line = text[line_start : line_end if line_end >= 0 else len(text)].rstrip("\r")
        hit = Hit(shown, line_no, line[:MAX_LINE_CHARS])
        if context:
            if lines is None:
                lines = text.split("\n")
            hit.before = [
                s[:MAX_LINE_CHARS] for s in lines[max(0, line_no - 1 - context) : line_no - 1]
            ]
            hit.after = [s[:MAX_LINE_CHARS] for s in lines[line_no : line_no + context]]
        out.hits.append(hit)
    return False


@dataclass
class Sizes:
    largest: list[tuple[int, str]]
    files: int = 0
    dirs: int = 0
    total: int = 0


def largest_files(top_fd: int, options: WalkOptions, min_size: int, limit: int) -> Sizes:
    heap: list[tuple[int, str]] = []
    sizes = Sizes(largest=heap)
    for entry, rel, is_dir, _fd in walk(top_fd, options):
        if is_dir:
            sizes.dirs += 1
            continue
        sizes.files += 1
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        if size < min_size:
            continue
        if len(heap) < limit:
            heapq.heappush(heap, (size, rel))
        elif size > heap[0][0]:
            heapq.heapreplace(heap, (size, rel))
    sizes.largest = sorted(heap, reverse=True)
    return sizes


def usage(top_fd: int, options: WalkOptions) -> tuple[Sizes, dict[str, int]]:
    """Totals under top, and the size of each direct child (files and whole subtrees)."""
    sizes = Sizes(largest=[])
    children: dict[str, int] = {}
    for entry, rel, is_dir, _fd in walk(top_fd, options):
        head = rel.split("/", 1)[0]
        if is_dir:
            sizes.dirs += 1
            children.setdefault(head + "/", 0)
            continue
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        sizes.files += 1
        sizes.total += size
        key = head + "/" if "/" in rel else head
        children[key] = children.get(key, 0) + size
    return sizes, children
