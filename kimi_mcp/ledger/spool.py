"""The spool: an appended row survives a crash of its process before the row is committed.

Rules, in the order they apply:

1. Each process appends to its own segment file, `<ledger>-<host>-<pid>-<random>.spool` in the
   spool directory, and holds an exclusive `flock` on it while it lives.
2. `append` writes one JSON line with a plain `write()` before it returns. The kernel keeps the
   bytes when the process is killed (`kill -9`, an OOM kill); only a power cut needs `fsync`,
   which would cost milliseconds per call, so it is not done.
3. A line is `{"k": table, "u": uid, "v": {columns}}`. A later line with the same uid supersedes
   an earlier one: a provisional row written on the request path is superseded by the complete
   row once tokens are counted off the path.
4. The writer marks an entry done once its row is committed. A segment that reached
   `segment_bytes` takes no new entries and is deleted as soon as none of its entries is pending;
   on a clean close every segment without pending entries is deleted.
5. A segment whose flock is free belongs to a dead process: an orphan. The next ledger to start on
   the same database, and a running one every few seconds, inserts the rows of an orphan that the
   database does not hold yet (looked up by uid), then deletes the file.

Nothing here imports SQLAlchemy: the stdio server records calls before the database is opened.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SEGMENT_BYTES = 8 << 20
SUFFIX = ".spool"
CLOSED = -1  # a segment released at close
MEMORY = -2  # the one segment of a spool without a directory: entries are tracked, not written


@dataclass(eq=False)
class Segment:
    path: Path
    fd: int
    size: int = 0
    pending: int = 0
    sealed: bool = False  # full: no new entries, deleted once nothing is pending


@dataclass(eq=False)
class Entry:
    """One appended row: `queued` once a row for it went to the writer, `done` once committed."""

    kind: str
    uid: str
    values: dict[str, Any]
    segment: Segment
    at: float = field(default_factory=time.monotonic)
    queued: bool = False
    done: bool = False


@dataclass
class Orphan:
    """A dead process's segment, locked by us: its latest row per uid, in file order."""

    path: Path
    fd: int
    rows: list[tuple[str, str, dict[str, Any]]]  # (kind, uid, values)
    unreadable: int = 0

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)

    def release(self) -> None:
        os.close(self.fd)


class Spool:
    """Without a `directory` (tests, in-memory databases) nothing is written: entries are only
    tracked, so a reserved row is still stored at close, but a crash loses what is queued."""

    def __init__(self, directory: Path | None, database: str,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        # a segment is replayed only into the database it was written for
        self.prefix = hashlib.sha256(database.encode()).hexdigest()[:10]
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._current: Segment | None = None
        self._segments: list[Segment] = []
        self._pending: set[Entry] = set()
        self.appended = 0

    # ---- appending (any thread) -----------------------------------------------------------------

    @property
    def durable(self) -> bool:
        return self.directory is not None

    def append(self, kind: str, uid: str, values: dict[str, Any], *, queued: bool) -> Entry:
        """Write the row durably (against a process crash) and return its pending entry."""
        line = _line(kind, uid, values) if self.directory is not None else b""
        with self._lock:
            segment = self._current
            if segment is None or segment.sealed:
                segment = self._current = self._open_segment()
            if segment.fd != MEMORY:
                _write_all(segment.fd, line)
            segment.size += len(line)
            segment.pending += 1
            entry = Entry(kind, uid, values, segment, queued=queued)
            self._pending.add(entry)
            if segment.size >= self.segment_bytes:
                segment.sealed = True
            self.appended += 1
            return entry

    def supersede(self, entry: Entry, values: dict[str, Any]) -> bool:
        """Write the complete row of a provisional entry. False when it was already handled (the
        writer rescued the provisional row, or it is committed): then the caller drops it."""
        durable = entry.segment.fd != MEMORY
        line = _line(entry.kind, entry.uid, values) if durable else b""
        with self._lock:
            if entry.queued or entry.done or entry.segment.fd == CLOSED:
                return False
            if durable:
                _write_all(entry.segment.fd, line)
            entry.segment.size += len(line)
            entry.values = values
            entry.queued = True
            return True

    # ---- the writer's side ----------------------------------------------------------------------

    def done(self, entries: Iterable[Entry]) -> None:
        """These entries' rows are committed (or refused for good): forget them."""
        with self._lock:
            for entry in entries:
                if entry.done or entry.segment.fd == CLOSED:
                    continue  # committed already, or its segment was released at close
                entry.done = True
                self._pending.discard(entry)
                entry.segment.pending -= 1
                if entry.segment.sealed and entry.segment.pending == 0:
                    self._drop(entry.segment)

    def stale(self, older_than_s: float) -> list[Entry]:
        """Provisional entries whose complete row never came (its producer failed or is stuck):
        they are marked queued, and the caller queues their provisional rows."""
        limit = time.monotonic() - older_than_s
        with self._lock:
            found = [e for e in self._pending if not e.queued and e.at < limit]
            for entry in found:
                entry.queued = True
            return found

    def unfinished(self) -> list[Entry]:
        """Every entry not committed yet (at close: what must still be written)."""
        with self._lock:
            return list(self._pending)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def close(self) -> int:
        """Delete the segments with nothing pending, release the rest for the next process to
        replay. Returns how many entries were left for replay."""
        with self._lock:
            left = len(self._pending)
            for segment in list(self._segments):
                if segment.pending == 0 or segment.fd == MEMORY:
                    self._drop(segment)
                else:
                    os.close(segment.fd)  # releases the flock: an orphan now
                    segment.fd = CLOSED
                    self._segments.remove(segment)
            self._current = None
            self._pending.clear()
            return left

    # ---- orphans ----------------------------------------------------------------------------------

    def orphans(self) -> Iterator[Orphan]:
        """Segments of dead processes on this database, each locked until `remove`/`release`."""
        if self.directory is None:
            return
        try:
            names = sorted(p for p in self.directory.iterdir()
                           if p.name.startswith(self.prefix + "-") and p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return
        with self._lock:
            ours = {s.path for s in self._segments}
        for path in names:
            if path in ours:
                continue
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # replayed and removed by another process meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its process is alive
            try:
                yield _read_orphan(path, fd)
            except OSError as exc:
                os.close(fd)
                log.warning("spool segment %s cannot be read (%s); left in place", path.name,
                            exc.strerror)

    # ---- internals --------------------------------------------------------------------------------

    def _open_segment(self) -> Segment:
        if self.directory is None:
            segment = Segment(Path(), MEMORY)
            self._segments.append(segment)
            return segment
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = (f"{self.prefix}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
                f"{SUFFIX}")
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        segment = Segment(path, fd)
        self._segments.append(segment)
        return segment

    def _drop(self, segment: Segment) -> None:
        if self._current is segment:
            self._current = None
        self._segments.remove(segment)
        if segment.fd == MEMORY:
            segment.fd = CLOSED
            return
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
        os.close(segment.fd)
        segment.fd = CLOSED


def _line(kind: str, uid: str, values: dict[str, Any]) -> bytes:
    text = json.dumps({"k": kind, "u": uid, "v": values}, default=str, separators=(",", ":"))
    return text.encode("ascii") + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_orphan(path: Path, fd: int) -> Orphan:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    latest: dict[str, tuple[str, str, dict[str, Any]]] = {}
    bad = 0
    for raw in data.split(b"\n")[:-1]:  # a last line without its newline was never acknowledged
        try:
            item = json.loads(raw)
            kind, uid, values = item["k"], item["u"], item["v"]
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        if isinstance(kind, str) and isinstance(uid, str) and isinstance(values, dict):
            latest.pop(uid, None)  # keep file order of the latest version
            latest[uid] = (kind, uid, values)
        else:
            bad += 1
    return Orphan(path, fd, list(latest.values()), bad)
