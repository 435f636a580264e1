"""Searches over a walked tree: names by glob, contents by regex, sizes. No MCP here."""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .walk import Glob, WalkOptions, walk

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY_SNIFF = 8192
MAX_LINE_CHARS = 400


def find_names(top: str, glob: Glob, options: WalkOptions, limit: int) -> tuple[list[str], bool]:
    """Paths (relative to top, `/`-separated; dirs end with `/`) whose name or path matches."""
    found: list[str] = []
    match = glob.regex.match
    by_name = glob.by_name
    for entry, rel, is_dir in walk(top, options):
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
    truncated: bool = False


def search_content(
    top: str,
    regex: re.Pattern[str],
    file_glob: Glob | None,
    options: WalkOptions,
    context: int,
    limit: int,
    max_file_bytes: int,
    show: Callable[[str], str],
) -> ContentSearch:
    """Every line matching `regex` in the text files under top, or in top itself if it is a
    file (binaries are skipped)."""
    out = ContentSearch()
    if not os.path.isdir(top):
        _scan(top, os.stat(top).st_size, regex, context, limit, max_file_bytes, show, out)
        return out
    for entry, rel, is_dir in walk(top, options):
        if is_dir or not entry.is_file(follow_symlinks=False):
            continue
        if file_glob is not None and not file_glob.matches(entry.name, rel):
            continue
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        if _scan(entry.path, size, regex, context, limit, max_file_bytes, show, out):
            out.truncated = True
            return out
    return out


def _scan(
    path: str,
    size: int,
    regex: re.Pattern[str],
    context: int,
    limit: int,
    max_bytes: int,
    show: Callable[[str], str],
    out: ContentSearch,
) -> bool:
    """Search one file; True when the result limit was reached."""
    text = _read_text(path, size, max_bytes, out)
    if text is None:
        return False
    out.files_scanned += 1
    if regex.search(text) is None:
        return False
    out.files_matched += 1
    return _collect(text, regex, show(path), context, limit, out)


def _read_text(path: str, size: int, max_bytes: int, out: ContentSearch) -> str | None:
    if size > max_bytes:
        out.skipped_large += 1
        return None
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if b"\x00" in data[:_BINARY_SNIFF]:
        out.skipped_binary += 1
        return None
    return data.decode("utf-8", errors="replace")


def _collect(
    text: str, regex: re.Pattern[str], shown: str, context: int, limit: int, out: ContentSearch
) -> bool:
    """Add one hit per matching line; True when the limit was reached."""
    lines: list[str] | None = None
    pos, line_no, last = 0, 1, 0
    for match in regex.finditer(text):
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


def largest_files(top: str, options: WalkOptions, min_size: int, limit: int) -> Sizes:
    heap: list[tuple[int, str]] = []
    sizes = Sizes(largest=heap)
    for entry, rel, is_dir in walk(top, options):
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


def usage(top: str, options: WalkOptions) -> tuple[Sizes, dict[str, int]]:
    """Totals under top, and the size of each direct child (files and whole subtrees)."""
    sizes = Sizes(largest=[])
    children: dict[str, int] = {}
    for entry, rel, is_dir in walk(top, options):
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
