"""The ledger: one writer thread, batched commits, events after commit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session as DbSession
from sqlmodel import SQLModel, create_engine

from kimi_mcp.errors import LedgerError
from kimi_mcp.ledger import migrations, rollup
from kimi_mcp.ledger.bus import Event, EventBus
from kimi_mcp.ledger.models import Alert, Request, ToolCall

log = logging.getLogger(__name__)
T = TypeVar("T")

_EVENT_OF: dict[type[SQLModel], str] = {Request: "request", ToolCall: "tool_call", Alert: "alert"}
_BATCH = 1000
_STOP = object()


@dataclass
class Tx:
    """What a write function receives: the session and a way to publish after commit."""

    db: DbSession
    events: list[Event] = field(default_factory=list)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        self.events.append(Event(type_, data))


@dataclass(slots=True)
class _Row:
    model: type[SQLModel]
    values: dict[str, Any]


@dataclass
class _Maintenance:
    sql: str
    future: concurrent.futures.Future[None]


@dataclass
class _Call:
    fn: Callable[[Tx], Any]
    future: concurrent.futures.Future[Any]


class Ledger:
    def __init__(self, url: str, bus: EventBus | None = None) -> None:
        self.url = url
        self.bus = bus or EventBus()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._read_engine: Engine | None = None
        self.lost_rows = 0
        self._busy_timeout_ms = 10_000

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def path(self) -> Path | None:
        if not self.is_sqlite or ":memory:" in self.url:
            return None
        return Path(self.url.split("///", 1)[1])

    def start(self) -> None:
        if self._thread is not None:
            return
        self._engine = self._open()
        self._read_engine = self._open(readonly=True) if self.is_sqlite else self._engine
        self._thread = threading.Thread(target=self._run, name="kimi-ledger-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._thread = None
        for engine in {self._engine, self._read_engine}:
            if engine is not None:
                engine.dispose()

    def _open(self, readonly: bool = False) -> Engine:
        path = self.path
        if path is not None and not readonly:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(
                    f"cannot create the data dir {path.parent}: {exc.strerror}; "
                    "set KIMI_MCP_DATA_DIR to a writable directory"
                ) from None
        busy = self._busy_timeout_ms
        args = {"check_same_thread": False, "timeout": busy / 1000} if self.is_sqlite else {}
        # batches of different sizes compile to different statements: keep few of them cached
        engine = create_engine(self.url, connect_args=args, query_cache_size=64)
        if self.is_sqlite:
            event.listen(engine, "connect", lambda conn, _rec: _sqlite_pragmas(conn, busy))
        if not readonly:
            self._prepare(engine)
        return engine

    def _prepare(self, engine: Engine) -> None:
        where = self.path or self.url.split("@")[-1]
        try:
            with engine.begin() as conn:
                if self.is_sqlite:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                migrations.upgrade(conn)
        except LedgerError:
            raise
        except OperationalError as exc:
            reason = "it is locked by another process" if "locked" in str(exc) else str(exc.orig)
            raise LedgerError(f"cannot open the ledger {where}: {reason}") from None
        except SQLAlchemyError as exc:
            detail = getattr(exc, "orig", exc)
            raise LedgerError(
                f"cannot open the ledger {where}: {detail}; the file was left as it is — "
                "move it aside or set KIMI_MCP_DATA_DIR / database.url to use another"
            ) from None

    # ---- writing ----------------------------------------------------------------------------

    def add(self, row: SQLModel) -> None:
        """Queue a row for insertion; never blocks. Its event is published after the commit."""
        self.insert(type(row), **row.model_dump(exclude_unset=True))

    def insert(self, table: type[SQLModel], /, **values: Any) -> None:
        """Queue a row given as plain values (the cheap path: no ORM object is built)."""
        self._require_started()
        self._queue.put(_Row(table, values))

    def write_sync(self, fn: Callable[[Tx], T]) -> T:
        return self.submit(fn).result()

    async def write(self, fn: Callable[[Tx], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    def submit(self, fn: Callable[[Tx], T]) -> concurrent.futures.Future[T]:
        self._require_started()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Call(fn, future))
        return future

    async def vacuum(self) -> None:
        """Give deleted space back to the file system (SQLite only; runs outside a transaction)."""
        if self.is_sqlite:
            await asyncio.wrap_future(self._maintain("VACUUM"))

    def _maintain(self, sql: str) -> concurrent.futures.Future[None]:
        self._require_started()
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(_Maintenance(sql, future))
        return future

    def flush(self, timeout: float = 600) -> None:
        """Block until everything queued before this call is committed."""
        if self._thread is not None:
            self.submit(lambda tx: None).result(timeout)

    async def aflush(self) -> None:
        if self._thread is not None:
            await self.write(lambda tx: None)

    def _require_started(self) -> None:
        if self._thread is None:
            raise LedgerError("the ledger is not started")

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in batch):
                stop = True
                batch = [item for item in batch if item is not _STOP]
            for item in [i for i in batch if isinstance(i, _Maintenance)]:
                self._run_maintenance(item)
            batch = [i for i in batch if not isinstance(i, _Maintenance)]
            if batch:
                self._commit(batch)

    def _run_maintenance(self, item: _Maintenance) -> None:
        assert self._engine is not None
        try:
            with self._engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(item.sql)
            item.future.set_result(None)
        except SQLAlchemyError as exc:
            item.future.set_exception(LedgerError(f"{item.sql} failed: {exc}"))

    def _commit(self, batch: list[Any]) -> None:
        for attempt in range(5):
            try:
                self._commit_once(batch)
                return
            except OperationalError as exc:  # locked by a reader or another process: retry
                log.warning("ledger commit failed (attempt %d): %s", attempt + 1, exc.orig)
                threading.Event().wait(0.05 * 2**attempt)
            except (SQLAlchemyError, LedgerError) as exc:
                if len(batch) > 1:  # find the bad item: commit one by one
                    for item in batch:
                        self._commit([item])
                    return
                log.error("ledger write refused: %s", exc)
                break
        rows = [item for item in batch if not isinstance(item, _Call)]
        self.lost_rows += len(rows)
        for item in batch:
            if isinstance(item, _Call) and not item.future.done():
                item.future.set_exception(LedgerError("the ledger could not commit this write"))

    def _commit_once(self, batch: list[Any]) -> None:
        assert self._engine is not None
        events: list[Event] = []
        results: list[tuple[_Call, Any, BaseException | None]] = []
        with DbSession(self._engine, expire_on_commit=False) as db:
            rows_by_table: dict[type[SQLModel], list[dict[str, Any]]] = {}
            for item in batch:
                if isinstance(item, _Call):
                    self._insert(db, rows_by_table, events)
                    tx = Tx(db)
                    try:
                        with db.begin_nested():
                            value = item.fn(tx)
                            db.flush()
                        results.append((item, value, None))
                        events.extend(tx.events)
                    except Exception as exc:  # noqa: BLE001 - handed to the caller through its future
                        results.append((item, None, exc))
                else:
                    values = _with_defaults(item.model, item.values)
                    rows_by_table.setdefault(item.model, []).append(values)
            self._insert(db, rows_by_table, events)
            db.commit()
        for ev in events:
            self.bus.publish(ev)
        for call, value, error in results:
            if error is not None:
                call.future.set_exception(error)
            else:
                call.future.set_result(value)

    @staticmethod
    def _insert(
        db: DbSession,
        rows_by_table: dict[type[SQLModel], list[dict[str, Any]]],
        events: list[Event],
    ) -> None:
        for model, rows in rows_by_table.items():
            table = model.__table__  # type: ignore[attr-defined]
            pk = next(iter(table.primary_key.columns))
            ids = db.execute(insert(table).returning(pk), rows).scalars().all()
            if model is Request:
                rollup.upsert(db, rows)
            kind = _EVENT_OF.get(model)
            if kind is not None:
                for values, new_id in zip(rows, ids, strict=True):
                    values[pk.name] = new_id
                    events.append(Event(kind, values))
        rows_by_table.clear()

    # ---- reading ----------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[DbSession]:
        if self._read_engine is None:
            raise LedgerError("the ledger is not started")
        with DbSession(self._read_engine) as db:
            yield db

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.read() as db:
            return db.execute(text(sql), params).scalar()


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, busy_ms: int) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.execute("PRAGMA foreign_keys=OFF")
    cur.close()


_DEFAULTS: dict[type[SQLModel], list[tuple[str, Any, Callable[[], Any] | None]]] = {}


def _with_defaults(model: type[SQLModel], values: dict[str, Any]) -> dict[str, Any]:
    spec = _DEFAULTS.get(model)
    if spec is None:
        spec = []
        for name, info in model.model_fields.items():
            factory = info.default_factory
            spec.append((name, None if factory else info.default, factory))  # type: ignore[misc]
        _DEFAULTS[model] = spec
    unknown = values.keys() - model.model_fields.keys()
    if unknown:
        raise LedgerError(f"{model.__name__} has no column {sorted(unknown)}")
    out = {}
    for name, default, factory in spec:
        if name in values:
            out[name] = values[name]
        elif factory is not None:
            out[name] = factory()
        elif default is not None or name != "id":
            out[name] = default
    return out
