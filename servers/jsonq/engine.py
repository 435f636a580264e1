"""JSON files in the workspace: a parse cache, atomic rewrites; sizes and previews.

Nothing here knows MCP. Every file access goes through the core workspace primitive
(`kimi_mcp.workspace`: relative to the first root, contained at use time, never through a
link out, regular files only). A parsed document is cached by (canonical path, mtime, size),
so a model exploring a 50 MB file pays for one parse.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kimi_mcp.errors import ToolInputError
from kimi_mcp.workspace import Workspace

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 256 * 1024 * 1024
CACHE_BYTES = 256 * 1024 * 1024
CACHE_ENTRIES = 16
SETTLE_BYTES = 8 * 1024 * 1024
MAX_OUTPUT_CHARS = 60_000
PREVIEW_CHARS = 200
SAMPLES = 20
WIDE_OBJECT_KEYS = 40

Segment = str | int


class JsonError(ToolInputError):
    """A request the json tools refuse: bad expression, bad document, wrong operation."""


class JsonSyntaxError(JsonError):
    def __init__(self, source: str, exc: json.JSONDecodeError) -> None:
        self.line, self.column, self.reason = exc.lineno, exc.colno, exc.msg
        lines = exc.doc.splitlines() or [""]
        text = lines[min(exc.lineno, len(lines)) - 1]
        start = max(0, exc.colno - 40)
        self.context = text[start : exc.colno + 40]
        super().__init__(
            f"Invalid JSON in {source} at line {exc.lineno} column {exc.colno}: {exc.msg}"
        )


# ---- sizes and previews ---------------------------------------------------------------------


def json_size(value: Any, budget: int) -> int:
    """Characters `value` takes as JSON, counting stops a little past `budget`."""
    if isinstance(value, dict):
        total = 2
        for key, item in value.items():
            total += len(key) + 6 + json_size(item, budget - total)
            if total > budget:
                return total
        return total
    if isinstance(value, list):
        total = 2
        for item in value:
            total += 2 + json_size(item, budget - total)
            if total > budget:
                return total
        return total
    if isinstance(value, str):
        return len(value) + 2
    return len(json.dumps(value))


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels in `value` (no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """`value` as JSON if short; else a cut string or a one-line summary of the container."""
    if json_size(value, limit) <= limit:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return json.dumps(value[:limit], ensure_ascii=False) + "…"
    if isinstance(value, dict):
        keys = ", ".join(json.dumps(k, ensure_ascii=False) for k in list(value)[:5])
        return f"<object with {len(value):,} keys: {keys[:limit]}…>"
    return f"<array with {len(value):,} items>"


def spread(items: Sequence[Any], k: int) -> list[Any]:
    n = len(items)
    if n <= k or k < 2:
        return list(items)
    step = (n - 1) / (k - 1)
    return [items[round(i * step)] for i in range(k)]


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


# ---- files ----------------------------------------------------------------------------------


class JsonFiles:
    """Workspace JSON files: resolution through the workspace, a parse cache, atomic rewrites."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace  # reads the roots on every call: client roots may change
        self._cache: OrderedDict[str, tuple[tuple[int, int], Any]] = OrderedDict()
        self._cached_bytes = 0
        self._load_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def resolve(self, raw: str) -> str:
        """The canonical path of an existing regular file inside the workspace."""
        path = self.workspace.resolve(raw)
        found = self.workspace.lstat_or_none(path)
        if found is None:
            raise JsonError(f"No such file: {raw}; give a JSON file in the workspace")
        if not stat.S_ISREG(found.st_mode):
            raise JsonError(f"Not a regular file: {raw}; give a JSON file")
        return path

    def size(self, path: str) -> int:
        return self.workspace.stat(path).st_size

    def read_document(self, path: str) -> tuple[str, tuple[int, int]]:
        name = os.path.basename(path)
        with self.workspace.open_read(path) as handle:
            info = os.fstat(handle.fileno())
            if info.st_size > MAX_FILE_BYTES:
                raise JsonError(
                    f"{name} is {info.st_size:,} bytes; the limit is {MAX_FILE_BYTES:,}"
                )
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise JsonError(f"{name} grew past the limit of {MAX_FILE_BYTES:,} bytes")
        try:
            return data.decode("utf-8"), (info.st_mtime_ns, info.st_size)
        except UnicodeDecodeError as exc:
            raise JsonError(
                f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start}); JSON files "
                "must be UTF-8"
            ) from None

    def load(self, path: str) -> Any:
        """The parsed document, from the cache when the file's mtime and size are unchanged."""
        with self._load_lock:
            info = self.workspace.stat(path)
            hit = self._cache.get(path)
            if hit and hit[0] == (info.st_mtime_ns, info.st_size):
                self._cache.move_to_end(path)
                return hit[1]
            started = time.perf_counter()
            text, key = self.read_document(path)
            value = parse_text(text, os.path.basename(path))
            self._remember(path, key, value)
            if key[1] >= SETTLE_BYTES:
                # the parse ran with the collector paused; settle its objects into the oldest
                # generation now, in the call that already pays for the parse, rather than
                # in a pass that would stall some later call
                gc.collect()
            log.debug("parsed %s (%d bytes) in %.2fs", path, key[1], time.perf_counter() - started)
            return value

    def _remember(self, path: str, key: tuple[int, int], value: Any) -> None:
        old = self._cache.pop(path, None)
        if old:
            self._cached_bytes -= old[0][1]
        if key[1] > CACHE_BYTES:
            return
        self._cache[path] = (key, value)
        self._cached_bytes += key[1]
        while self._cache and (
            self._cached_bytes > CACHE_BYTES or len(self._cache) > CACHE_ENTRIES
        ):
            _, (evicted, _value) = self._cache.popitem(last=False)
            self._cached_bytes -= evicted[1]

    @contextmanager
    def rewriting(self, path: str) -> Iterator[tuple[str, Any]]:
        """Hold the write lock while the caller reads, changes and writes one file."""
        with self._write_lock:
            text, _key = self.read_document(path)
            yield text, parse_text(text, os.path.basename(path))

    def write(self, path: str, text: str, value: Any = None) -> None:
        """Replace `path` atomically (temp file + fsync + rename in its verified directory).

        `value`, when given, is the document `text` encodes; it is cached so the next read
        of a large file does not parse it again.
        """
        self.workspace.write_atomic(path, text.encode("utf-8"), durable=True)
        with self._load_lock:
            if value is None:
                old = self._cache.pop(path, None)
                if old:
                    self._cached_bytes -= old[0][1]
                return
            info = self.workspace.stat(path)
            self._remember(path, (info.st_mtime_ns, info.st_size), value)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for allocation-heavy work on a large document.

    Parsing or walking a 50 MB document allocates millions of objects, and each generation-2
    pass rescans the whole parsed tree; JSON values hold no reference cycles, so nothing is
    lost by collecting afterwards. This makes parsing and queries several times faster.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_text(text: str, source: str) -> Any:
    try:
        with gc_paused():
            return json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(source, exc) from None
    except RecursionError:
        raise JsonError(
            f"The JSON in {source} nests too deeply for the parser (arrays and objects inside "
            f"each other over about {sys.getrecursionlimit() - 100} levels); give a flatter "
            "document"
        ) from None
