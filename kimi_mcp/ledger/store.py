"""The ledger: the one writer to the database, fed through a queue, durable through a spool.

    append(row) ─► spool (write(), before returning) ─► queue ─► writer thread ─► batched commit
                                                                    └─► events on the bus, spool entry done

Appending never waits for the database: a row is durable against a crash of the process once
`append` returns (see `spool.py`), and the writer commits it in the next batch. Rows may be
appended before `start()` (the stdio server answers `initialize` before the database is opened);
reads and write functions start the ledger on first use. `close()` drains what is queued within a
bound; what could not be committed stays in the spool for the next process to replay.

Nothing in this module imports SQLAlchemy: the writer (`writer.py`) is loaded by `start()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kimi_mcp.errors import LedgerError
from kimi_mcp.ledger.bus import Event, EventBus
from kimi_mcp.ledger.rows import APPENDABLE, Row
from kimi_mcp.ledger.spool import Entry, Spool

if TYPE_CHECKING:
    from sqlmodel import Session as DbSession

    from kimi_mcp.ledger.writer import Writer

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", bound=Row)
DRAIN_S = 5.0  # how long close() may spend committing what is queued


@dataclass
class Tx:
    """What a write function receives: the session and a way to publish after commit."""

    db: DbSession
    events: list[Event] = field(default_factory=list)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        self.events.append(Event(type_, data))


@dataclass(slots=True)
class Append:
    row: Row
    entry: Entry | None
    replayed: bool = False  # from an orphaned spool: stored only if its uid is not there yet
    values: dict[str, Any] | None = None  # row.values(), when the spool already computed them


@dataclass
class Call:
    fn: Callable[[Tx], Any]
    future: concurrent.futures.Future[Any]


@dataclass
class Maintenance:
    sql: str
    future: concurrent.futures.Future[None]


STOP = object()


@dataclass
class LedgerStats:
    """The writer's health, for `/health` and `/metrics`."""

    queue_depth: int
    committed_rows: int
    dropped_rows: int
    spooled_rows: int
    spool_pending: int
    replayed_rows: int
    followed_rows: int
    retries: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Pending(Generic[R]):
    """A row written to the spool on the request path; `Ledger.complete` queues its final form."""

    row: R
    entry: Entry


class Ledger:
    def __init__(self, url: str, bus: EventBus | None = None, *, spool_dir: Path | None = None,
                 busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.bus = bus or EventBus()
        self.spool = Spool(spool_dir, url)
        self.busy_timeout_ms = busy_timeout_ms
        self.queue: queue.Queue[Any] = queue.Queue()
        self._writer: Writer | None = None
        self._thread: threading.Thread | None = None
        self._follower: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self.committed_rows = 0
        self.dropped_rows = 0
        self.replayed_rows = 0
        self.followed_rows = 0
        self.retries = 0

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def path(self) -> Path | None:
        if not self.is_sqlite or ":memory:" in self.url:
            return None
        return Path(self.url.split("///", 1)[1])

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, *, follow: bool = False) -> None:
        """Open the database (creating or migrating it), replay orphaned spool segments, and start
        the writer. With `follow`, rows other processes write are published on the bus too.
        Raises `LedgerError` when the database cannot be opened."""
        with self._lock:
            if self._thread is None:
                from kimi_mcp.ledger.writer import Writer

                writer = Writer(self)
                writer.open()
                self._writer = writer
                self._closed = False
                self._thread = threading.Thread(target=writer.run, name="kimi-ledger-writer",
                                                daemon=True)
                self._thread.start()
            if follow and self._follower is None:
                from kimi_mcp.ledger.follow import start_follower

                assert self._writer is not None
                self._follower = start_follower(self, self._writer)

    def close(self, timeout: float = DRAIN_S) -> None:
        """Commit what is queued (at most `timeout` seconds), then stop. Rows not committed by
        then stay in the spool and are replayed by the next process that opens the ledger."""
        deadline = time.monotonic() + timeout
        if self._thread is None and not self._closed and self.spool.pending_count:
            try:  # rows were appended before the database was ever opened
                self.start()
            except LedgerError as exc:
                log.warning("the ledger could not be opened to store %d rows (%s); they stay in "
                            "the spool for the next start", self.spool.pending_count, exc)
        with self._lock:
            follower, self._follower = self._follower, None
            thread, self._thread = self._thread, None
            writer, self._writer = self._writer, None
            self._closed = True
        if follower is not None:
            follower.stop()
        if thread is not None and writer is not None:
            self.queue.put(STOP)
            thread.join(max(0.1, deadline - time.monotonic()))
            if thread.is_alive():
                writer.abandon()
                left = self.spool.pending_count or self.queue.qsize()
                log.warning("the ledger writer did not finish within %.1f s; %d rows not yet "
                            "committed stay in the spool for the next start", timeout, left)
            writer.dispose()
        left = self.spool.close()
        if left and self.spool.durable:
            log.info("%d rows left in the spool for the next start to replay", left)
        elif left:
            log.warning("%d rows could not be stored before the ledger closed (it has no spool "
                        "to replay them from)", left)

    # ---- writing ----------------------------------------------------------------------------

    def append(self, row: Row) -> None:
        """Queue a row; never blocks on the database. Durable against a crash of this process
        once it returns (when the ledger has a spool). Its event follows the commit."""
        entry = values = None
        if self.spool.durable:
            values = row.values()
            entry = self.spool.append(row.TABLE, _uid(row), values, queued=True)
        elif self._closed:
            raise LedgerError("the ledger is closed")
        self.queue.put(Append(row, entry, values=values))

    def reserve(self, row: R) -> Pending[R]:
        """Write a provisional row durably without queuing it; `complete` queues its final form
        (same uid). If the final form never comes, the writer stores the provisional row."""
        return Pending(row, self.spool.append(row.TABLE, _uid(row), row.values(), queued=False))

    def complete(self, pending: Pending[R], row: R) -> None:
        """Queue the final form of a reserved row (it must keep the reserved row's uid)."""
        if _uid(row) != _uid(pending.row) or type(row) is not type(pending.row):
            raise ValueError("complete() needs a row of the reserved type with the reserved uid")
        if not self.spool.supersede(pending.entry, row.values()):
            return  # already stored from its provisional form
        self.queue.put(Append(row, pending.entry))

    def insert(self, table: type[Any], /, **values: Any) -> None:
        """Queue a row given as a table model and its columns (a misspelt column: `TypeError`).
        Prefer `append(RequestRow(...))`."""
        row_type = APPENDABLE.get(getattr(table, "__tablename__", ""))
        if row_type is None:
            raise TypeError(f"{table!r} is not a table rows are appended to")
        self.append(row_type(**values).check())

    def write_sync(self, fn: Callable[[Tx], T]) -> T:
        return self.submit(fn).result()

    async def write(self, fn: Callable[[Tx], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    def submit(self, fn: Callable[[Tx], T]) -> concurrent.futures.Future[T]:
        """Run `fn` in the writer thread inside the next batch's transaction (a savepoint of
        its own); its result or its error comes back through the future. Database failures
        arrive as `LedgerError` with a message fit for a user (no SQL, no stored values)."""
        self._ensure_started()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.queue.put(Call(fn, future))
        return future

    async def vacuum(self) -> None:
        """Give deleted space back to the file system (SQLite only; runs outside a transaction)."""
        if self.is_sqlite:
            self._ensure_started()
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            self.queue.put(Maintenance("VACUUM", future))
            await asyncio.wrap_future(future)

    def flush(self, timeout: float = 600) -> None:
        """Block until everything queued before this call is committed."""
        if self._thread is not None:
            self.submit(lambda tx: None).result(timeout)

    async def aflush(self) -> None:
        if self._thread is not None:
            await self.write(lambda tx: None)

    def _ensure_started(self) -> None:
        if self._thread is None:
            if self._closed:
                raise LedgerError("the ledger is closed")
            self.start()

    # ---- reading ----------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[DbSession]:
        """A read-only session (opens the ledger on first use). Database failures surface as
        `LedgerError` without SQL text."""
        self._ensure_started()
        writer = self._writer
        if writer is None:
            raise LedgerError("the ledger is closed")
        with writer.reading() as db:
            yield db

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value of one SQL query (for tests and tools that inspect the ledger)."""
        from sqlalchemy import text

        with self.read() as db:
            return db.execute(text(sql), params).scalar()

    # ---- health -----------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        spool = self.spool
        return LedgerStats(
            queue_depth=self.queue.qsize(), committed_rows=self.committed_rows,
            dropped_rows=self.dropped_rows, spooled_rows=spool.appended if spool.durable else 0,
            spool_pending=spool.pending_count, replayed_rows=self.replayed_rows,
            followed_rows=self.followed_rows, retries=self.retries,
        )

    @property
    def lost_rows(self) -> int:
        """Rows the database refused for good (kept for older callers: `stats().dropped_rows`)."""
        return self.dropped_rows


def _uid(row: Row) -> str:
    uid = getattr(row, "uid", None)
    if not isinstance(uid, str):
        raise TypeError(f"{type(row).__name__} has no uid")
    return uid


def open_ledger(url: str, data_dir: Path | None, bus: EventBus | None = None) -> Ledger:
    """The ledger of a data dir: its database `url` and the spool in `<data_dir>/spool`."""
    return Ledger(url, bus, spool_dir=None if data_dir is None else data_dir / "spool")
