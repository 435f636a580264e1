"""Vectors in the ledger database (`memory_vector`): the durable home of every vector.

SQLite in WAL mode (or PostgreSQL) is safe for several processes, so the proxy (`serve`) and
an editor's `stdio` server share their memories through it. Writes are functions of a ledger
transaction (`tx.db`), so a record and its vector are committed together. Every write gives
the rows a `seq` above every existing one; a reader keeps the highest `seq` it has seen and
asks only for newer rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, text, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from kimi_mcp.ledger import Ledger
from kimi_mcp.ledger.models import MemoryRecord, MemoryVector
from kimi_mcp.memory.embedder import Matrix

_IN_CHUNK = 500
_LE_F32 = np.dtype("<f4")


@dataclass
class VectorRow:
    id: str
    project: str
    type: str
    seq: int
    vector: Matrix


def stack(vectors: Sequence[Matrix]) -> Matrix:
    """Rows read from the table as one matrix (row n is `vectors[n]`)."""
    out: Matrix = np.stack(vectors).astype(np.float32)
    return out


def encode(vector: Matrix) -> bytes:
    return np.asarray(vector, dtype=_LE_F32).tobytes()


def decode(blob: bytes) -> Matrix:
    return np.frombuffer(blob, dtype=_LE_F32).astype(np.float32)


def _next_seq(db: Any) -> int:
    """Called after a write statement of the transaction, so SQLite holds its write lock and
    no other process can take the same number (PostgreSQL may; readers check counts too)."""
    found = db.exec(select(func.max(MemoryVector.seq))).one()
    return int(found or 0) + 1


def put(db: Any, rows: Sequence[tuple[str, str]], vectors: Matrix, model: str) -> None:
    """Write (memory id, project) rows with their vectors, replacing earlier ones."""
    if not rows:
        return
    ids = [mid for mid, _ in rows]
    drop(db, ids)
    seq = _next_seq(db)
    for (mid, project), vector in zip(rows, vectors, strict=True):
        db.add(MemoryVector(id=mid, project=project, model=model, dim=int(vector.shape[-1]),
                            seq=seq, vector=encode(vector)))
    db.flush()


def drop(db: Any, ids: Sequence[str]) -> None:
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[start : start + _IN_CHUNK])
        db.execute(delete(MemoryVector).where(col(MemoryVector.id).in_(chunk)))


def touch(db: Any, ids: Sequence[str]) -> None:
    """Give rows a new `seq` (their record's type changed), so other processes re-read them."""
    if not ids:
        return
    db.execute(text("UPDATE memory_vector SET seq = seq WHERE 1 = 0"))  # take the write lock
    seq = _next_seq(db)
    stmt = update(MemoryVector).where(col(MemoryVector.id).in_(bindparam("ids", expanding=True)))
    db.execute(stmt.values(seq=seq), {"ids": list(ids)})


def _joined(model: str, dim: int) -> Any:
    return (
        sa_select(col(MemoryVector.id), col(MemoryVector.project), col(MemoryRecord.type),
                  col(MemoryVector.seq), col(MemoryVector.vector))
        .join(MemoryRecord, col(MemoryRecord.id) == col(MemoryVector.id))
        .where(col(MemoryVector.model) == model, col(MemoryVector.dim) == dim)
    )


def _rows(result: Iterable[Any]) -> list[VectorRow]:
    return [VectorRow(r[0], r[1], r[2], int(r[3]), decode(r[4])) for r in result]


def since(ledger: Ledger, seq: int, model: str, dim: int) -> list[VectorRow]:
    """Rows written after `seq` (all of them for 0), with their record's current type."""
    stmt = _joined(model, dim).where(col(MemoryVector.seq) > seq)
    with ledger.read() as db:
        return _rows(db.execute(stmt))


def by_ids(ledger: Ledger, ids: Sequence[str], model: str, dim: int) -> list[VectorRow]:
    out: list[VectorRow] = []
    with ledger.read() as db:
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[start : start + _IN_CHUNK])
            stmt = _joined(model, dim).where(col(MemoryVector.id).in_(chunk))
            out.extend(_rows(db.execute(stmt)))
    return out


def counts(ledger: Ledger, model: str, dim: int, project: str | None) -> dict[str, int]:
    """How many vectors each project has (only `project` when given)."""
    stmt = select(MemoryVector.project, func.count()).where(
        MemoryVector.model == model, MemoryVector.dim == dim
    )
    if project is not None:
        stmt = stmt.where(MemoryVector.project == project)
    with ledger.read() as db:
        return {r[0]: int(r[1]) for r in db.exec(stmt.group_by(col(MemoryVector.project)))}


def ids_of(ledger: Ledger, project: str, model: str, dim: int) -> set[str]:
    stmt = select(MemoryVector.id).where(
        MemoryVector.project == project, MemoryVector.model == model, MemoryVector.dim == dim
    )
    with ledger.read() as db:
        return set(db.exec(stmt))


def missing(ledger: Ledger, model: str, dim: int) -> list[str]:
    """Ids of records that have no vector from this embedder (to embed again)."""
    stmt = (
        select(MemoryRecord.id)
        .outerjoin(
            MemoryVector,
            (col(MemoryVector.id) == col(MemoryRecord.id))
            & (col(MemoryVector.model) == model)
            & (col(MemoryVector.dim) == dim),
        )
        .where(col(MemoryVector.id).is_(None))
    )
    with ledger.read() as db:
        return list(db.exec(stmt))


def count(ledger: Ledger) -> int:
    with ledger.read() as db:
        return int(db.exec(select(func.count()).select_from(MemoryVector)).one())
