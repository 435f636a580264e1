"""The writer thread: batched commits, retries when the database is busy, events after commit.

One thread per process owns the write connection. It takes up to `BATCH` queued items, inserts
the appended rows and folds them into the rollups, runs each write function in a savepoint of the
same transaction, and commits. Then, and only then, it publishes the events and marks the rows'
spool entries done.

- Busy (another process holds SQLite's write lock, a PostgreSQL deadlock or lost connection): the
  whole batch is retried with exponential backoff. Write functions get a `LedgerError` after
  `CALL_ATTEMPTS` (when the error kept coming from one write function's own statements, only
  that one is told, and the rest of its batch gets one more try without it); appended rows are kept and retried until they commit or the ledger closes
  (they are in the spool either way). SQLite transactions start with `BEGIN IMMEDIATE`, so a
  write never fails half-way on a lock taken after its first read.
- Refused (a constraint, a bad value): the batch is split until the one bad item is found; a bad
  row is dropped and counted, a bad write function gets the error.
- Nothing the database says reaches a caller or an info-level log line verbatim: callers get a
  `LedgerError` saying what to do, logs get the error class; the statement and the values are
  logged at debug level only.
"""

from __future__ import annotations

import json
import logging
import operator
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session as DbSession
from sqlmodel import create_engine

from kimi_mcp.errors import KimiError, LedgerError
from kimi_mcp.ledger import migrations, rollup
from kimi_mcp.ledger.bus import Event
from kimi_mcp.ledger.models import Alert, Request, RequestRollup, ToolCall, ToolRollup
from kimi_mcp.ledger.rows import APPENDABLE
from kimi_mcp.ledger.spool import Entry
from kimi_mcp.ledger.store import STOP, Append, Call, Maintenance, Tx

if TYPE_CHECKING:
    from kimi_mcp.ledger.store import Ledger

log = logging.getLogger(__name__)

BATCH = 1000
HOUSEKEEPING_S = 2.0  # how often orphaned spool segments and stuck provisional rows are looked at
STALE_S = 30.0  # a provisional row whose final form did not come by then is stored as it is
CALL_ATTEMPTS = 8  # a write function waits about 6 s of retries before it is told "busy"
MAX_BACKOFF_S = 2.0
CHANNEL = "kimi_ledger"
BUSY = ("the ledger is busy: another process has held the database for several seconds; the "
        "change was not made, retry in a moment")
TABLES: dict[str, Any] = {"request": Request, "tool_call": ToolCall, "alert": Alert}


class Busy(LedgerError):
    """The batch could not be committed for now (the database is locked or unreachable).

    `culprit` is the write function whose statement met the error, when it came from one (and
    not from the rows' insert or the commit)."""

    def __init__(self, kind: str, culprit: Call | None = None) -> None:
        super().__init__(kind)
        self.culprit = culprit


class Writer:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.engine: Engine | None = None
        self.read_engine: Engine | None = None
        self.dialect = "sqlite" if ledger.is_sqlite else "postgresql"
        self.origin = f"{id(self):x}{time.monotonic_ns():x}"  # this process's NOTIFY tag
        self._stop = threading.Event()
        self._deferred: list[Append] = []
        self._next_housekeeping = 0.0
        # ids this writer inserted, so a follower does not publish them a second time
        self.own_ids: dict[str, set[int]] | None = None
        self.own_lock = threading.Lock()

    # ---- opening ----------------------------------------------------------------------------

    def open(self) -> None:
        self.engine = self._engine(write=True)
        self._prepare(self.engine)
        self.read_engine = self._engine(write=False) if self.dialect == "sqlite" else self.engine

    def _engine(self, write: bool) -> Engine:
        ledger = self.ledger
        path = ledger.path
        if path is not None and write:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(
                    f"cannot create the data dir {path.parent}: {exc.strerror}; "
                    "set KIMI_MCP_DATA_DIR to a writable directory"
                ) from None
        busy = ledger.busy_timeout_ms
        if self.dialect == "sqlite":
            args: dict[str, Any] = {"check_same_thread": False, "timeout": busy / 1000}
            engine = create_engine(ledger.url, connect_args=args, query_cache_size=64)
            event.listen(engine, "connect", lambda conn, _rec: _sqlite_pragmas(conn, busy, write))
            if write:  # take the write lock when the transaction begins, not at its first write
                event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            return engine
        return create_engine(ledger.url, query_cache_size=64, pool_pre_ping=True, pool_size=5,
                             max_overflow=20, connect_args={"connect_timeout": 5})

    def _prepare(self, engine: Engine) -> None:
        where = self.ledger.path or self.ledger.url.split("@")[-1]
        try:
            with engine.begin() as conn:
                migrations.upgrade(conn)
        except LedgerError:
            engine.dispose()
            raise
        except OperationalError as exc:
            engine.dispose()
            reason = ("it is locked by another process" if "locked" in str(exc.orig)
                      else _first_line(exc.orig or exc))
            raise LedgerError(f"cannot open the ledger {where}: {reason}") from None
        except SQLAlchemyError as exc:
            engine.dispose()
            raise LedgerError(
                f"cannot open the ledger {where}: {_first_line(getattr(exc, 'orig', None) or exc)}; the "
                "file was left as it is — move it aside or set KIMI_MCP_DATA_DIR / database.url "
                "to use another"
            ) from None

    def dispose(self) -> None:
        for engine in {self.engine, self.read_engine}:
            if engine is not None:
                engine.dispose()

    def abandon(self) -> None:
        """close() gave up waiting: stop retrying and leave what is queued to the spool."""
        self._stop.set()

    # ---- reading ----------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[DbSession]:
        assert self.read_engine is not None
        try:
            with DbSession(self.read_engine) as db:
                yield db
        except OperationalError as exc:
            log.debug("ledger read failed", exc_info=True)
            raise LedgerError(f"the ledger could not be read right now ({_kind(exc)}); "
                              "retry in a moment") from None
        except DBAPIError as exc:
            log.debug("ledger read failed", exc_info=True)
            raise LedgerError(f"the ledger could not be read ({_kind(exc)})") from None

    # ---- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        q = self.ledger.queue
        self._housekeeping()
        stopping = False
        while not stopping and not self._stop.is_set():
            batch: list[Any] = list(self._deferred)
            self._deferred = []
            try:
                if not batch:
                    batch.append(q.get(timeout=HOUSEKEEPING_S))
            except queue.Empty:
                self._housekeeping()
                continue
            while len(batch) < BATCH:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            if any(item is STOP for item in batch):
                stopping = True
                batch = [item for item in batch if item is not STOP]
            self._process(batch)
            if time.monotonic() >= self._next_housekeeping:
                self._housekeeping()
        if stopping:
            self._finish()

    def _finish(self) -> None:
        """At close: what was appended meanwhile, and provisional rows that never got their
        final form (their producer was still counting tokens), are stored as they are."""
        q = self.ledger.queue
        rest: list[Any] = list(self._deferred)
        self._deferred = []
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if item is not STOP:
                rest.append(item)
        rest += [self._rescued(e) for e in self.ledger.spool.stale(0)]
        for start in range(0, len(rest), BATCH):
            self._process(rest[start:start + BATCH])

    def _housekeeping(self) -> None:
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING_S
        spool = self.ledger.spool
        for entry in spool.stale(STALE_S):
            self._deferred.append(self._rescued(entry))
        for orphan in spool.orphans():
            try:
                count = self._replay(orphan.rows)
            except (Busy, SQLAlchemyError):
                orphan.release()
                log.warning("a spool segment of an earlier process could not be replayed yet; "
                            "retrying later")
                return
            orphan.remove()
            if count or orphan.unreadable:
                log.info("replayed %d rows from an earlier process's spool (%d unreadable lines)",
                         count, orphan.unreadable)

    def _rescued(self, entry: Entry) -> Append:
        return Append(APPENDABLE[entry.kind].of(_without_id(entry.values)), entry)

    def _replay(self, rows: list[tuple[str, str, dict[str, Any]]]) -> int:
        """Insert the spooled rows the database does not hold yet (their uids are looked up in
        the transaction that inserts them, so a row is never stored twice)."""
        todo: list[Any] = []
        for kind, _uid, values in rows:
            if kind not in TABLES:
                continue
            try:
                todo.append(Append(APPENDABLE[kind].of(_without_id(values)), None, replayed=True))
            except TypeError:
                log.warning("a spooled %s row does not fit the table; skipped", kind)
        stored = 0
        for start in range(0, len(todo), BATCH):
            stored += self._commit_once(todo[start:start + BATCH])
        self.ledger.replayed_rows += stored
        return stored

    # ---- committing -------------------------------------------------------------------------

    def _process(self, batch: list[Any]) -> None:
        for item in [i for i in batch if isinstance(i, Maintenance)]:
            self._maintain(item)
        batch = [i for i in batch if not isinstance(i, Maintenance)]
        if batch:
            self._commit(batch)

    def _commit(self, batch: list[Any]) -> None:
        attempt = 0
        while True:
            try:
                self._commit_once(batch)
                return
            except Busy as exc:
                attempt += 1
                self.ledger.retries += 1
                log.warning("the ledger is busy (%s); retrying %d rows (attempt %d)", exc,
                            len(batch), attempt)
                if attempt >= CALL_ATTEMPTS:
                    if exc.culprit is not None and attempt == CALL_ATTEMPTS:
                        # one write function kept meeting the error: it alone is told, and
                        # the rest of its batch gets one more try without it
                        self._give_up_calls([exc.culprit])
                        batch = [i for i in batch if i is not exc.culprit]
                        if not batch:
                            return
                        continue
                    self._give_up_calls(batch)
                    batch = [i for i in batch if isinstance(i, Append)]
                    if not batch:
                        return
                if self._stop.wait(min(MAX_BACKOFF_S, 0.05 * 2 ** attempt)):
                    return  # closing: the rows stay in the spool
            except DBAPIError as exc:  # the database refused something in the batch
                self._refused(batch, exc)
                return
            except SQLAlchemyError:  # a fault of ours, not of the rows: they stay in the spool
                log.exception("the ledger writer failed on a batch of %d items", len(batch))
                self._give_up_calls(batch, "the ledger could not make the change (an internal "
                                           "error, in the server's log)")
                return

    def _give_up_calls(self, batch: list[Any], why: str = BUSY) -> None:
        for item in batch:
            if isinstance(item, Call) and not item.future.done():
                item.future.set_exception(LedgerError(why))

    def _refused(self, batch: list[Any], exc: DBAPIError) -> None:
        if len(batch) > 1:  # find the bad item
            half = len(batch) // 2
            self._commit(batch[:half])
            self._commit(batch[half:])
            return
        item = batch[0]
        log.debug("ledger write refused", exc_info=True)
        if isinstance(item, Call):
            if not item.future.done():
                item.future.set_exception(_user_error(exc))
            return
        self.ledger.dropped_rows += 1
        log.warning("the database refused a %s row (%s); it was dropped", item.row.TABLE,
                    _kind(exc))
        if item.entry is not None:
            self.ledger.spool.done([item.entry])  # never replay a row the database refuses

    def _commit_once(self, batch: list[Any]) -> int:
        """Commit one batch; returns how many rows were inserted."""
        assert self.engine is not None
        events: list[Event] = []
        results: list[tuple[Call, Any, BaseException | None]] = []
        appended: list[Append] = []
        own: dict[str, list[int]] = {}
        current: Call | None = None
        try:
            with DbSession(self.engine, expire_on_commit=False) as db:
                pending: list[Append] = []
                for item in batch:
                    if isinstance(item, Call):
                        self._insert(db, pending, events, own)
                        current = item
                        results.append(self._call(db, item, events))
                        current = None
                    else:
                        pending.append(item)
                        appended.append(item)
                self._insert(db, pending, events, own)
                if self.dialect == "postgresql":
                    self._notify(db, events)
                if self._stop.is_set():  # close() gave up on us: the spool has these rows now
                    db.rollback()
                    self._give_up_calls(batch, "the ledger closed before the change was made")
                    return 0
                self._remember(own)
                db.commit()
        except OperationalError as exc:
            self._forget(own)
            raise Busy(_kind(exc), current) from exc
        except BaseException:
            self._forget(own)
            raise
        inserted = sum(len(ids) for ids in own.values())
        self.ledger.committed_rows += inserted
        self.ledger.bus.publish_many(events)
        self.ledger.spool.done(a.entry for a in appended if a.entry is not None)
        for call, value, error in results:
            if call.future.done():
                continue
            if error is not None:
                call.future.set_exception(error)
            else:
                call.future.set_result(value)
        return inserted

    def _call(self, db: DbSession, item: Call, events: list[Event]
              ) -> tuple[Call, Any, BaseException | None]:
        tx = Tx(db)
        try:
            with db.begin_nested():
                value = item.fn(tx)
                db.flush()
        except OperationalError:
            raise  # the whole batch is retried
        except SQLAlchemyError as exc:
            log.debug("a ledger write function failed", exc_info=True)
            return item, None, _user_error(exc)
        except Exception as exc:  # noqa: BLE001 - handed to the caller through its future
            return item, None, exc
        events.extend(tx.events)
        return item, value, None

    def _insert(self, db: DbSession, pending: list[Append], events: list[Event],
                own: dict[str, list[int]]) -> None:
        if not pending:
            return
        by_table: dict[str, list[dict[str, Any]]] = {}
        replayed: dict[str, set[str]] = {}
        for item in pending:
            values = item.values if item.values is not None else item.row.values()
            by_table.setdefault(item.row.TABLE, []).append(values)
            if item.replayed:
                replayed.setdefault(item.row.TABLE, set()).add(item.row.uid)  # type: ignore[attr-defined]
        pending.clear()
        for name, rows in by_table.items():
            table = TABLES[name].__table__
            if name in replayed:
                rows = self._not_stored(db, table, rows, replayed[name])
                if not rows:
                    continue
            if self.dialect == "sqlite":
                # the transaction holds SQLite's write lock (BEGIN IMMEDIATE): no other process
                # can take ids meanwhile, so they are assigned here and inserted in one statement
                top = db.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar()
                ids = list(range(int(top or 0) + 1, int(top or 0) + 1 + len(rows)))
                for values, new_id in zip(rows, ids, strict=True):
                    values["id"] = new_id
                _sqlite_insert(db, table, rows)
            else:
                ids = _pg_insert(db, table, rows)
            for values, new_id in zip(rows, ids, strict=True):
                values["id"] = new_id
                events.append(Event(name, values))
            own.setdefault(name, []).extend(ids)
            if name == "request":
                rollup.upsert(db, RequestRollup, rollup.fold_requests(rows))
            elif name == "tool_call":
                rollup.upsert(db, ToolRollup, rollup.fold_tool_calls(rows))

    @staticmethod
    def _not_stored(db: DbSession, table: Any, rows: list[dict[str, Any]], uids: set[str]
                    ) -> list[dict[str, Any]]:
        found: set[str] = set()
        ordered = sorted(uids)
        for start in range(0, len(ordered), 500):
            found.update(db.execute(select(table.c.uid).where(
                table.c.uid.in_(ordered[start:start + 500]))).scalars())
        return [r for r in rows if r["uid"] not in found]

    def _notify(self, db: DbSession, events: list[Event]) -> None:
        """Tell other workers what this transaction wrote (delivered when it commits)."""
        ids: dict[str, list[int]] = {}
        payloads = []
        for ev in events:
            if ev.type in TABLES:
                ids.setdefault(ev.type, []).append(int(ev.data["id"]))
            else:
                data = json.dumps({"o": self.origin, "e": ev.type, "d": ev.data}, default=str)
                if len(data) > 7000:
                    data = json.dumps({"o": self.origin, "e": ev.type, "d": {"action": "changed"}})
                payloads.append(data)
        for table, found in ids.items():
            for start in range(0, len(found), 800):
                payloads.append(json.dumps({"o": self.origin, "t": table,
                                            "ids": found[start:start + 800]}))
        for payload in payloads:
            db.execute(select(func.pg_notify(CHANNEL, payload)))

    def _remember(self, own: dict[str, list[int]]) -> None:
        if self.own_ids is None:
            return
        with self.own_lock:
            for table, ids in own.items():
                self.own_ids.setdefault(table, set()).update(ids)

    def _forget(self, own: dict[str, list[int]]) -> None:
        if self.own_ids is None:
            return
        with self.own_lock:
            for table, ids in own.items():
                self.own_ids.get(table, set()).difference_update(ids)

    def _maintain(self, item: Maintenance) -> None:
        assert self.engine is not None
        try:
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute(item.sql)  # type: ignore[union-attr]
            finally:
                raw.close()
            item.future.set_result(None)
        except Exception as exc:
            log.debug("ledger maintenance failed", exc_info=True)
            item.future.set_exception(LedgerError(f"{item.sql} failed ({type(exc).__name__})"))


_INSERTS: dict[str, tuple[str, Any, list[int]]] = {}


def _sqlite_insert(db: DbSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany through the driver: SQLAlchemy's per-row parameter processing costs more
    than the insert itself at thousands of rows a second. JSON columns are encoded here."""
    found = _INSERTS.get(table.name)
    if found is None:
        names = [c.name for c in table.columns]
        json_at = [i for i, c in enumerate(table.columns) if c.type.__class__.__name__ == "JSON"]
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) "
               f"VALUES ({', '.join('?' for _ in names)})")
        found = _INSERTS[table.name] = (sql, operator.itemgetter(*names), json_at)
    sql, getter, json_at = found
    params = []
    for r in rows:
        values = list(getter(r))
        for i in json_at:
            values[i] = json.dumps(values[i])
        params.append(tuple(values))
    db.connection().exec_driver_sql(sql, params)


def _pg_insert(db: DbSession, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Ids from the table's sequence, then one COPY: a multi-row INSERT of a thousand rows costs
    psycopg more to parse than PostgreSQL needs to store them."""
    ids = list(db.execute(
        select(func.nextval(func.pg_get_serial_sequence(table.name, "id")))
        .select_from(func.generate_series(1, len(rows)))).scalars())
    names = [c.name for c in table.columns]
    json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
    for values, new_id in zip(rows, ids, strict=True):
        values["id"] = new_id
    raw = db.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row([json.dumps(r.get(n)) if n in json_cols else r.get(n) for n in names])
    return ids


def _without_id(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "id"}


def _sqlite_pragmas(dbapi_conn: Any, busy_ms: int, write: bool) -> None:
    if write:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event issues BEGIN IMMEDIATE
    cur = dbapi_conn.cursor()
    if write:
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.execute("PRAGMA foreign_keys=OFF")
    cur.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


_PLAIN_SQLITE = ("database is locked", "database table is locked", "disk I/O error",
                 "database or disk is full", "attempt to write a readonly database",
                 "unable to open database file", "database disk image is malformed")


def _kind(exc: BaseException) -> str:
    """What went wrong, without the statement or the values: the driver's error class and its
    SQLSTATE, or SQLite's message when it is one that carries neither ("database is locked")."""
    orig = getattr(exc, "orig", exc)
    name = type(orig).__name__
    message = _first_line(orig)
    if message in _PLAIN_SQLITE:
        return f"{name}: {message}"
    state = getattr(orig, "sqlstate", None)
    return f"{name} {state}" if state else name


def _user_error(exc: SQLAlchemyError) -> KimiError:
    if isinstance(exc, IntegrityError):
        return LedgerError("the ledger refused the change: it conflicts with a stored record")
    if isinstance(exc, OperationalError):
        return LedgerError("the ledger is busy; the change was not made, retry in a moment")
    return LedgerError(f"the ledger could not make the change ({_kind(exc)})")
