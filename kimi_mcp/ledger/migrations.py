"""Schema creation and the version stamp: later changes migrate an existing database in place.

The same steps run on SQLite and PostgreSQL. On PostgreSQL an advisory lock makes workers that
start together migrate one after the other; on SQLite the write lock does.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from kimi_mcp.errors import LedgerError
from kimi_mcp.ledger import models

_ADVISORY_KEY = 0x6B696D69  # "kimi"


def _add_rollups(conn: Connection) -> None:
    """Schema 2 added hourly rollups; schema 4 replaces them (see `_minute_rollups`)."""


def _add_memory_vectors(conn: Connection) -> None:
    """create_all made `memory_vector`; the memory engine re-embeds every record that has no
    row there when it opens, so there is nothing to copy."""


def _minute_rollups(conn: Connection) -> None:
    """Schema 4: uids on tool calls and alerts (spool replay looks rows up by uid), and rollups
    per minute and per hour of requests and tool calls in place of the hourly `rollup`."""
    from kimi_mcp.ledger import rollup

    columns = {t: {c["name"] for c in inspect(conn).get_columns(t)} for t in ("tool_call", "alert")}
    for table in ("tool_call", "alert"):
        if "uid" not in columns[table]:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN uid VARCHAR"))
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_{table}_uid ON {table} (uid)"))
    conn.execute(text("DROP TABLE IF EXISTS rollup"))
    rollup.rebuild(conn)


# version -> the step that brings a database from version-1 to version
STEPS: dict[int, Callable[[Connection], None]] = {
    2: _add_rollups, 3: _add_memory_vectors, 4: _minute_rollups,
}


def upgrade(conn: Connection) -> int:
    """Create missing tables, then run every step above the stamp; return the version."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
    existing = set(inspect(conn).get_table_names())
    SQLModel.metadata.create_all(conn)
    found = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
    if found is None:
        version = models.SCHEMA_VERSION if not existing - {"meta"} else 1
        _stamp(conn, version, insert=True)
    else:
        version = int(found)
    if version > models.SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger was written by a newer kimi-mcp (schema {version} > "
            f"{models.SCHEMA_VERSION}); upgrade kimi-mcp or point database.url elsewhere"
        )
    for target in range(version + 1, models.SCHEMA_VERSION + 1):
        STEPS[target](conn)
        _stamp(conn, target)
    return max(version, models.SCHEMA_VERSION)


def _stamp(conn: Connection, version: int, insert: bool = False) -> None:
    sql = (
        "INSERT INTO meta (key, value) VALUES ('schema_version', :v)"
        if insert
        else "UPDATE meta SET value = :v WHERE key = 'schema_version'"
    )
    conn.execute(text(sql), {"v": str(version)})
