"""Schema creation and the version stamp: later changes migrate an existing file in place."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from kimi_mcp.errors import LedgerError
from kimi_mcp.ledger import models


def _add_rollups(conn: Connection) -> None:
    from kimi_mcp.ledger import rollup

    rollup.rebuild(conn)  # create_all made the table; fill it from the existing requests


def _add_memory_vectors(conn: Connection) -> None:
    """create_all made `memory_vector`; the memory engine re-embeds every record that has no
    row there when it opens, so there is nothing to copy."""


# version -> the step that brings a database from version-1 to version
STEPS: dict[int, Callable[[Connection], None]] = {2: _add_rollups, 3: _add_memory_vectors}


def upgrade(conn: Connection) -> int:
    """Create missing tables, then run every step above the file's stamp; return the version."""
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
