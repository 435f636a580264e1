"""The task board: `.taskmaster/tasks/tasks.json` in claude-task-master's tagged format.

The file maps tag names to `{"tasks": [...], "metadata": {...}}`; the legacy untagged form
`{"tasks": [...]}` is read as the tag `master` and written back tagged, as task-master does.
Tasks are kept as the raw dicts read from the file and edited in place, so fields this module
does not know survive a write. Writes are atomic (temp file + rename) and happen under an
exclusive lock after re-reading the file, so two writers never lose each other's updates.
Every file access goes through the core workspace primitive, so a `.taskmaster` or
`tasks.json` that is a link out of the workspace is refused, never read or written through.
"""

from __future__ import annotations

import contextlib
import json
import logging
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kimi_mcp.errors import ToolInputError, WorkspaceError
from kimi_mcp.workspace import Workspace

try:  # POSIX; elsewhere only the in-process lock guards writes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Task = dict[str, Any]
STATUSES = ("pending", "in-progress", "done", "review", "deferred", "cancelled", "blocked")
PRIORITIES = ("low", "medium", "high", "critical")
DEFAULT_TAG = "master"
BOARD_PATH = Path(".taskmaster") / "tasks" / "tasks.json"
STATE_PATH = Path(".taskmaster") / "state.json"
MAX_BOARD_BYTES = 64 << 20


class TaskBoardError(ToolInputError):
    """A request the board refuses; the message says what to do instead."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_id(value: int | str) -> tuple[int, int | None]:
    """`3` or `"3"` → (3, None); `"3.2"` → (3, 2)."""
    text = str(value).strip()
    head, dot, tail = text.partition(".")
    try:
        parent = int(head)
        sub = int(tail) if dot else None
    except ValueError:
        raise TaskBoardError(
            f"'{value}' is not a task id: use an integer like 3 or a subtask id like \"3.2\""
        ) from None
    return parent, sub


def key_of(value: int | str) -> str:
    parent, sub = parse_id(value)
    return f"{parent}" if sub is None else f"{parent}.{sub}"


def public_id(key: str) -> int | str:
    """The id as task-master writes it: an int for a task, a "3.2" string for a subtask."""
    return key if "." in key else int(key)


@dataclass
class TagData:
    """One tag's tasks, indexed by key ("3", "3.2")."""

    name: str
    raw: dict[str, Any]
    index: dict[str, Task] = field(default_factory=dict)
    frozen: bool = False  # a snapshot view: never edited, so derived answers may be kept
    memo: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reindex()

    @property
    def tasks(self) -> list[Task]:
        tasks = self.raw.setdefault("tasks", [])
        assert isinstance(tasks, list)
        return tasks

    def remember(self, key: Any, compute: Any) -> Any:
        """`compute()`, kept for the life of a frozen view; recomputed every time otherwise."""
        if not self.frozen:
            return compute()
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def reindex(self) -> None:
        self.index = {}
        for task in self.tasks:
            self.index[str(task.get("id"))] = task
            for sub in task.get("subtasks") or []:
                self.index[f"{task.get('id')}.{sub.get('id')}"] = sub

    def get(self, value: int | str) -> Task:
        key = key_of(value)
        found = self.index.get(key)
        if found is None:
            raise TaskBoardError(self._missing_message(key))
        return found

    def parent_of(self, key: str) -> Task | None:
        return self.index.get(key.split(".")[0]) if "." in key else None

    def next_task_id(self) -> int:
        return max((int(t.get("id", 0)) for t in self.tasks), default=0) + 1

    def _missing_message(self, key: str) -> str:
        if "." in key:
            parent_key = key.split(".")[0]
            parent = self.index.get(parent_key)
            if parent is not None:
                subs = [str(s.get("id")) for s in parent.get("subtasks") or []]
                have = f"its subtasks are {', '.join(subs)}" if subs else "it has no subtasks"
                return f"Subtask {key} not found in tag '{self.name}': task {parent_key} exists but {have}."
        ids = [int(t["id"]) for t in self.tasks if isinstance(t.get("id"), int)]
        span = f"task ids run {min(ids)}–{max(ids)}" if ids else "the tag has no tasks yet"
        return f"Task {key} not found in tag '{self.name}' ({span}); call tasks_list to see them."


@dataclass
class Document:
    """The whole file: every tag, plus the stat signature it was read with."""

    data: dict[str, Any]
    legacy: bool = False
    changed: bool = True  # a transaction writes only when this is still true
    frozen: bool = False
    signature: tuple[int, int, int] | None = None
    _tags: dict[str, TagData] = field(default_factory=dict)

    def tag_names(self) -> list[str]:
        return [k for k, v in self.data.items() if isinstance(v, dict) and "tasks" in v]

    def tag(self, name: str, *, create: bool = False) -> TagData:
        cached = self._tags.get(name)
        if cached is not None:
            return cached
        raw = self.data.get(name)
        if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list):
            if not create:
                tags = ", ".join(self.tag_names()) or "none"
                raise TaskBoardError(f"Tag '{name}' does not exist (tags: {tags}).")
            raw = {"tasks": [], "metadata": {"created": now_iso(), "updated": now_iso(),
                                             "description": f"Tasks for {name} context"}}
            self.data[name] = raw
        view = TagData(name, raw, frozen=self.frozen)
        self._tags[name] = view
        return view


def _decode(text: str, path: str) -> Document:
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise TaskBoardError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}); fix or move it."
        ) from None
    if not isinstance(data, dict):
        raise TaskBoardError(f"{path} must hold a JSON object of tags.")
    if isinstance(data.get("tasks"), list):  # legacy untagged form
        master = {"tasks": data.pop("tasks")}
        master.update(data)
        return Document({DEFAULT_TAG: master}, legacy=True)
    return Document(data)


class TaskBoard:
    """The board in one workspace; safe to share between threads and processes."""

    def __init__(self, root: Path, workspace: Workspace | None = None) -> None:
        self.root = root
        self.workspace = workspace or Workspace(lambda: [root])
        self.path = str(root / BOARD_PATH)
        self._lock = threading.Lock()
        self._cache: Document | None = None

    @contextlib.contextmanager
    def _refusals(self) -> Iterator[None]:
        try:
            yield
        except WorkspaceError as exc:
            raise TaskBoardError(
                f"The task board ({BOARD_PATH}) cannot be used: {exc}. Fix or remove that "
                "path in the workspace."
            ) from None

    def default_tag(self) -> str:
        """task-master's current tag from `.taskmaster/state.json`, else `master`."""
        try:
            raw = self.workspace.read_capped(str(self.root / STATE_PATH), 1 << 20)
            state = json.loads(raw.decode("utf-8"))
        except (WorkspaceError, ValueError):
            return DEFAULT_TAG
        tag = state.get("currentTag") if isinstance(state, dict) else None
        return tag if isinstance(tag, str) and tag else DEFAULT_TAG

    def _signature(self) -> tuple[int, int, int] | None:
        with self._refusals():
            entry = self.workspace.lstat_or_none(self.path)
            if entry is None:
                return None
            st = self.workspace.stat(self.path) if stat.S_ISLNK(entry.st_mode) else entry
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> Document:
        signature = self._signature()
        if signature is None:
            return Document({})
        with self._refusals():
            data = self.workspace.read_capped(self.path, MAX_BOARD_BYTES)
        doc = _decode(data.decode("utf-8", errors="replace"), str(BOARD_PATH))
        doc.signature = signature
        return doc

    def snapshot(self) -> Document:
        """The current document for reading; reparsed only when the file changed.

        Callers must not modify it: use `transaction()` to change the board.
        """
        signature = self._signature()
        cached = self._cache
        if cached is not None and signature is not None and cached.signature == signature:
            return cached
        doc = self._read()
        doc.frozen = True
        if doc.signature is not None:
            self._cache = doc
        return doc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Document]:
        """Lock, re-read, let the caller edit, then write atomically if nothing raised."""
        with self._refusals():
            self.workspace.makedirs(str(Path(self.path).parent))
        with self._lock, self._file_lock():
            doc = self._read()
            yield doc
            if not doc.changed:
                return
            for name, view in doc._tags.items():
                if name in doc.data:
                    meta = view.raw.setdefault("metadata", {})
                    if isinstance(meta, dict):
                        meta["updated"] = now_iso()
            self._write(doc)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        lock_path = str(Path(self.path).parent / ".tasks.json.lock")
        with self._refusals(), self.workspace.open_update(lock_path) as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _write(self, doc: Document) -> None:
        text = json.dumps(doc.data, indent=2, ensure_ascii=False) + "\n"
        with self._refusals():
            self.workspace.write_atomic(self.path, text.encode("utf-8"), durable=True)
        self._cache = None
        log.debug("wrote %s (%d bytes)", self.path, len(text))
