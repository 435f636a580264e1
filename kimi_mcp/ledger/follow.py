"""Following the rows other processes write, so one bus carries every process's calls.

`kimi-mcp serve` publishes on its `/ws` what its own writer commits; a stdio server or another
worker writes to the same database from its own process. The follower publishes those rows too,
as `Event(..., remote=True)`, within a second of their commit:

- SQLite: every `POLL_S` it reads the rows with an id above the last one seen (SQLite has one
  writer at a time, so ids commit in order) and skips the ids this process's writer inserted.
  Sessions, updated in place, are followed by `updated_at` and their deletions by id.
- PostgreSQL: every writer sends `NOTIFY kimi_ledger` with the ids it inserted in the
  transaction that inserted them; the follower `LISTEN`s on its own connection and fetches
  the rows of notifications from other processes.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session as DbSession

from kimi_mcp.errors import LedgerError
from kimi_mcp.ledger.bus import Event
from kimi_mcp.ledger.models import Session, table_of
from kimi_mcp.ledger.writer import CHANNEL, TABLES

if TYPE_CHECKING:
    from kimi_mcp.ledger.store import Ledger
    from kimi_mcp.ledger.writer import Writer

log = logging.getLogger(__name__)
POLL_S = 0.25
READY_S = 5.0
PAGE = 1000


class Follower:
    def __init__(self, ledger: Ledger, writer: Writer) -> None:
        self.ledger = ledger
        self.writer = writer
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once every later commit is sure to be seen
        self._thread = threading.Thread(target=self._run, name="kimi-ledger-follow", daemon=True)

    def start(self) -> Follower:
        """Start following; returns once a row another process commits from now on will be
        published (at most `READY_S`: a database that is slow to answer is followed later)."""
        self._thread.start()
        self.ready.wait(READY_S)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        raise NotImplementedError

    def _publish(self, table: str, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.ledger.followed_rows += 1
            self.ledger.bus.publish(Event(table, row, remote=True))


class SqliteFollower(Follower):
    def __init__(self, ledger: Ledger, writer: Writer) -> None:
        super().__init__(ledger, writer)
        with writer.own_lock:
            writer.own_ids = {}
        with ledger.read() as db:
            self.marks = {name: int(db.execute(select(func.coalesce(func.max(model.id), 0)))
                                    .scalar() or 0) for name, model in TABLES.items()}
            self.session_ids = set(db.execute(select(Session.id)).scalars())  # type: ignore[call-overload]
            self.session_mark = float(db.execute(select(func.max(Session.updated_at))).scalar() or 0)
        self.ready.set()  # the marks are taken: every row above them is published

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except (LedgerError, SQLAlchemyError) as exc:
                log.debug("following the ledger failed for now: %s", type(exc).__name__)

    def poll(self) -> None:
        assert self.writer.read_engine is not None
        with DbSession(self.writer.read_engine) as db:
            for name, model in TABLES.items():
                table = model.__table__
                while True:
                    # ids first (the primary key alone): this process's own rows, most of them
                    # on a busy server, are skipped without reading their columns
                    ids = list(db.execute(
                        select(table.c.id).where(table.c.id > self.marks[name])
                        .order_by(table.c.id).limit(PAGE)).scalars())
                    if not ids:
                        newest = db.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar()
                        if int(newest or 0) < self.marks[name]:  # rows deleted: ids may repeat
                            self.marks[name] = int(newest or 0)
                        break
                    self.marks[name] = int(ids[-1])
                    with self.writer.own_lock:
                        own = (self.writer.own_ids or {}).get(name, set())
                        foreign = [i for i in ids if i not in own]
                        own.difference_update(ids)
                    if foreign:
                        self._publish(name, [dict(r) for r in db.execute(
                            select(table).where(table.c.id.in_(foreign))
                            .order_by(table.c.id)).mappings()])
                    if len(ids) < PAGE:
                        break
            self._follow_sessions(db)

    def _follow_sessions(self, db: DbSession) -> None:
        """Sessions are updated in place: follow them by `updated_at`, deletions by their ids."""
        table = table_of(Session)
        changed = [dict(m) for m in db.execute(
            select(table).where(table.c.updated_at > self.session_mark)
            .order_by(table.c.updated_at)).mappings()]
        for row in changed:
            action = "updated" if row["id"] in self.session_ids else "created"
            self.session_ids.add(row["id"])
            self.session_mark = max(self.session_mark, float(row["updated_at"]))
            self.ledger.bus.publish(Event("session", {"action": action, "session": row},
                                          remote=True))
        count = int(db.execute(select(func.count()).select_from(table)).scalar() or 0)
        if count < len(self.session_ids):
            now = set(db.execute(select(table.c.id)).scalars())
            for gone in sorted(self.session_ids - now):
                self.ledger.bus.publish(Event("session", {"action": "deleted",
                                                          "session": {"id": gone}}, remote=True))
            self.session_ids = now


class PostgresFollower(Follower):
    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._listen()
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - a lost connection is retried, never fatal
                log.warning("following the ledger's notifications failed (%s); retrying",
                            type(exc).__name__)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _listen(self) -> None:
        import psycopg

        assert self.writer.engine is not None
        url = self.writer.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.ready.set()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=0.5):
                    self._take(note.payload)

    def _take(self, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict) or data.get("o") == self.writer.origin:
            return
        table = data.get("t")
        if table in TABLES and isinstance(data.get("ids"), list):
            model = TABLES[table].__table__
            with self.ledger.read() as db:
                rows = [dict(r) for r in db.execute(
                    select(model).where(model.c.id.in_(data["ids"])).order_by(model.c.id)
                ).mappings()]
            self._publish(table, rows)
        elif isinstance(data.get("e"), str) and isinstance(data.get("d"), dict):
            self.ledger.bus.publish(Event(data["e"], data["d"], remote=True))


def start_follower(ledger: Ledger, writer: Writer) -> Follower:
    cls = SqliteFollower if writer.dialect == "sqlite" else PostgresFollower
    return cls(ledger, writer).start()
