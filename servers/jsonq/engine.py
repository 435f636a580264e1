"""JSON files in the workspace: containment, a parse cache, atomic rewrites; sizes and previews.

Nothing here knows MCP. A path is resolved against the first root, normalised, and must stay
inside a root both lexically and after every symlink is resolved. A parsed document is cached
by (real path, mtime, size), so a model exploring a 50 MB file pays for one parse.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kimi_mcp.errors import WorkspaceError

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


class JsonError(ValueError):
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


# ---- workspace containment ------------------------------------------------------------------


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def contain(raw: str, roots: Sequence[Path]) -> Path:
    """The real path of `raw` if it stays inside a root (lexically and after symlinks)."""
    if "\x00" in raw:
        raise WorkspaceError(f"Access denied: null byte in path: {raw!r}")
    if not raw.strip():
        raise WorkspaceError("Access denied: empty path")
    if not roots:
        raise WorkspaceError("Access denied: no workspace root is configured")
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    normal = Path(os.path.normpath(candidate))
    if not _within(normal, roots):
        raise WorkspaceError(f"Access denied: path outside the workspace: {raw}")
    # realpath resolves every existing component, so a dangling link or a link in the nearest
    # existing parent is judged by where it really points
    real = Path(os.path.realpath(normal))
    if not _within(real, [Path(os.path.realpath(r)) for r in roots]):
        raise WorkspaceError(f"Access denied: path resolves outside the workspace: {raw}")
    return real


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
    """Workspace JSON files: containment, a parse cache, atomic rewrites."""

    def __init__(self, roots: Callable[[], Sequence[Path]]) -> None:
        self._roots = roots  # read on every call: client roots may replace the workspace
        self._cache: OrderedDict[Path, tuple[tuple[int, int], Any]] = OrderedDict()
        self._cached_bytes = 0
        self._load_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def resolve(self, raw: str) -> Path:
        path = contain(raw, self._roots())
        if not path.exists():
            raise JsonError(f"No such file: {raw}")
        if not path.is_file():
            raise JsonError(f"Not a regular file: {raw}")
        return path

    def read_text(self, path: Path) -> tuple[str, tuple[int, int]]:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_size > MAX_FILE_BYTES:
                raise JsonError(
                    f"{path.name} is {info.st_size:,} bytes; the limit is {MAX_FILE_BYTES:,}"
                )
            data = handle.read()
        try:
            return data.decode("utf-8"), (info.st_mtime_ns, info.st_size)
        except UnicodeDecodeError as exc:
            raise JsonError(
                f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None

    def load(self, path: Path) -> Any:
        """The parsed document, from the cache when the file's mtime and size are unchanged."""
        with self._load_lock:
            info = path.stat()
            hit = self._cache.get(path)
            if hit and hit[0] == (info.st_mtime_ns, info.st_size):
                self._cache.move_to_end(path)
                return hit[1]
            started = time.perf_counter()
            text, key = self.read_text(path)
            value = parse_text(text, path.name)
            self._remember(path, key, value)
            if key[1] >= SETTLE_BYTES:
                # the parse ran with the collector paused; settle its objects into the oldest
                # generation now, in the call that already pays for the parse, rather than
                # in a pass that would stall some later call
                gc.collect()
            log.debug("parsed %s (%d bytes) in %.2fs", path, key[1], time.perf_counter() - started)
            return value

    def _remember(self, path: Path, key: tuple[int, int], value: Any) -> None:
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
    def rewriting(self, path: Path) -> Iterator[tuple[str, Any]]:
        """Hold the write lock while the caller reads, changes and writes one file."""
        with self._write_lock:
            text, _key = self.read_text(path)
            yield text, parse_text(text, path.name)

    def write(self, path: Path, text: str, value: Any = None) -> None:
        """Replace `path` atomically: a temp file in the same directory, fsync, rename.

        `value`, when given, is the document `text` encodes; it is cached so the next read
        of a large file does not parse it again.
        """
        current = os.lstat(path)
        mode = stat.S_IMODE(current.st_mode) if stat.S_ISREG(current.st_mode) else 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            # the rename replaces whatever is at `path` now, a planted symlink included
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._load_lock:
            if value is None:
                old = self._cache.pop(path, None)
                if old:
                    self._cached_bytes -= old[0][1]
                return
            info = os.stat(path)
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
