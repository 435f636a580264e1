"""Memory records in the ledger: reads through `ledger.read()`, writes as functions for
`ledger.write(fn)` (they run in the writer thread inside a transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, delete, func
from sqlmodel import col, select

from kimi_mcp.errors import MemoryEngineError
from kimi_mcp.ledger import Ledger, Tx
from kimi_mcp.ledger.models import MemoryRecord, now
from kimi_mcp.memory import vecrows
from kimi_mcp.memory.embedder import Matrix
from kimi_mcp.memory.types import (
    MemoryItem,
    StoreResult,
    check_type,
    clean_tags,
    content_hash,
    decode_content,
    encode_content,
    tokens_of,
)

_IN_CHUNK = 500


@dataclass
class Vectors:
    """Vectors to write with records: one row of `matrix` per id, from embedder `model`."""

    model: str
    ids: list[str]
    matrix: Matrix


@dataclass
class NewRecord:
    id: str
    project: str
    content: str
    content_hash: str
    type: str
    source: str
    tags: list[str]
    metadata: dict[str, Any]
    tokens: int
    vector_ok: bool
    merged_from: list[str] | None = None
    recall_count: int = 0
    created_at: float = field(default_factory=now)

    def item(self) -> MemoryItem:
        return MemoryItem(
            id=self.id, content=self.content, project=self.project, type=self.type,
            source=self.source, tags=list(self.tags), metadata=dict(self.metadata),
            tokens=self.tokens, created_at=self.created_at, updated_at=self.created_at,
            vector_ok=False,
        )

    def row(self) -> MemoryRecord:
        content, meta = encode_content(self.content, self.metadata)
        return MemoryRecord(
            id=self.id,
            project=self.project,
            content=content,
            content_hash=self.content_hash,
            type=self.type,
            source=self.source,
            tags=list(self.tags),
            meta=meta,
            merged_from=list(self.merged_from or []),
            tokens=self.tokens,
            recall_count=self.recall_count,
            vector_ok=self.vector_ok,
            created_at=self.created_at,
            updated_at=self.created_at,
        )


def new_record(
    content: str,
    type_: str,
    tags: Sequence[str],
    metadata: dict[str, Any] | None,
    source: str,
    project: str,
    mid: str | None,
    *,
    vector_ok: bool,
    tokens: int | None = None,
) -> NewRecord:
    """A record to insert, checked: a known type and some content (else `MemoryEngineError`)."""
    check_type(type_)
    if not content:
        raise MemoryEngineError("a memory needs content: the text was empty")
    return NewRecord(
        id=mid or uuid.uuid4().hex,
        project=project,
        content=content,
        content_hash=content_hash(content),
        type=type_,
        source=source,
        tags=clean_tags(tags),
        metadata=dict(metadata or {}),
        tokens=tokens if tokens is not None else tokens_of(content),
        vector_ok=vector_ok,
    )


def item_of(row: MemoryRecord) -> MemoryItem:
    content, meta = decode_content(row.content, row.meta)
    return MemoryItem(
        id=row.id,
        content=content,
        project=row.project,
        type=row.type,
        source=row.source,
        tags=list(row.tags),
        metadata=meta,
        merged_from=list(row.merged_from),
        tokens=row.tokens,
        created_at=row.created_at,
        updated_at=row.updated_at,
        recall_count=row.recall_count,
        last_recalled_at=row.last_recalled_at,
        vector_ok=row.vector_ok,
        recalls=list(row.recalls),
    )


def find_id(ledger: Ledger, memory_id: str) -> bool:
    with ledger.read() as db:
        stmt = select(MemoryRecord.id).where(MemoryRecord.id == memory_id)
        return db.exec(stmt).first() is not None


def find_duplicate(ledger: Ledger, project: str, content_hash: str) -> str | None:
    with ledger.read() as db:
        return _duplicate(db, project, content_hash)


def _duplicate(db: Any, project: str, content_hash: str) -> str | None:
    stmt = select(MemoryRecord.id).where(
        MemoryRecord.project == project, MemoryRecord.content_hash == content_hash
    )
    found: str | None = db.exec(stmt.order_by(col(MemoryRecord.created_at)).limit(1)).first()
    return found


def insert_fn(
    new: NewRecord, *, dedupe: bool, vector: Vectors | None = None
) -> Callable[[Tx], StoreResult]:
    """Insert (with its vector, when given) unless the id (or, with `dedupe`, the same
    content in the project) exists."""

    def fn(tx: Tx) -> StoreResult:
        if tx.db.get(MemoryRecord, new.id) is not None:
            return StoreResult(new.id, False)
        if dedupe:
            existing = _duplicate(tx.db, new.project, new.content_hash)
            if existing is not None:
                return StoreResult(existing, False)
        tx.db.add(new.row())
        if vector is not None:
            vecrows.put(tx.db, [(new.id, new.project)], vector.matrix, vector.model)
        tx.emit("memory", {"action": "stored", "id": new.id, "project": new.project,
                           "source": new.source, "tokens": new.tokens})
        return StoreResult(new.id, True)

    return fn


def get_many(ledger: Ledger, ids: Sequence[str]) -> dict[str, MemoryItem]:
    out: dict[str, MemoryItem] = {}
    with ledger.read() as db:
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[start : start + _IN_CHUNK])
            for row in db.exec(select(MemoryRecord).where(col(MemoryRecord.id).in_(chunk))):
                out[row.id] = item_of(row)
    return out


def recent(
    ledger: Ledger,
    *,
    project: str | None,
    type_: str | None,
    limit: int,
    offset: int = 0,
) -> list[MemoryItem]:
    stmt = select(MemoryRecord)
    if project is not None:
        stmt = stmt.where(MemoryRecord.project == project)
    if type_ is not None:
        stmt = stmt.where(MemoryRecord.type == type_)
    stmt = stmt.order_by(col(MemoryRecord.updated_at).desc(), col(MemoryRecord.id))
    with ledger.read() as db:
        return [item_of(r) for r in db.exec(stmt.offset(offset).limit(limit))]


def merged_into(ledger: Ledger, memory_id: str) -> str | None:
    """The id of the memory a consolidated id was merged into, if any."""
    pattern = f'%"{memory_id}"%'
    stmt = select(MemoryRecord).where(cast(col(MemoryRecord.merged_from), Text).like(pattern))
    with ledger.read() as db:
        for row in db.exec(stmt.limit(20)):
            if memory_id in row.merged_from:
                return row.id
    return None


def count(ledger: Ledger, project: str | None) -> int:
    stmt = select(func.count()).select_from(MemoryRecord)
    if project is not None:
        stmt = stmt.where(MemoryRecord.project == project)
    with ledger.read() as db:
        return int(db.exec(stmt).one())


def page_after(ledger: Ledger, after: str, limit: int) -> list[MemoryItem]:
    stmt = select(MemoryRecord).where(MemoryRecord.id > after).order_by(col(MemoryRecord.id))
    with ledger.read() as db:
        return [item_of(r) for r in db.exec(stmt.limit(limit))]


def put_vectors_fn(vectors: Vectors) -> Callable[[Tx], list[tuple[str, str]]]:
    """Write the vectors of records that exist (and flag them); returns (id, project) of
    those written, in the order given."""

    def fn(tx: Tx) -> list[tuple[str, str]]:
        rows: dict[str, MemoryRecord] = {}
        for start in range(0, len(vectors.ids), _IN_CHUNK):
            chunk = vectors.ids[start : start + _IN_CHUNK]
            for row in tx.db.exec(select(MemoryRecord).where(col(MemoryRecord.id).in_(chunk))):
                rows[row.id] = row
        keep = [n for n, mid in enumerate(vectors.ids) if mid in rows]
        written = [(vectors.ids[n], rows[vectors.ids[n]].project) for n in keep]
        vecrows.put(tx.db, written, vectors.matrix[keep], vectors.model)
        for mid, _ in written:
            rows[mid].vector_ok = True
            tx.db.add(rows[mid])
        return written

    return fn


def record_recalls_fn(
    ids: Sequence[str], *, promote_after: int, window_s: float
) -> Callable[[Tx], dict[str, str]]:
    """Count a recall of each id; promote episodic → frequent when recalled often enough.
    Returns {id: type after the recall}."""

    def fn(tx: Tx) -> dict[str, str]:
        t = now()
        types: dict[str, str] = {}
        promoted: list[str] = []
        for row in tx.db.exec(select(MemoryRecord).where(col(MemoryRecord.id).in_(list(ids)))):
            recalls = [r for r in row.recalls if r > t - window_s] + [t]
            row.recalls = recalls
            row.recall_count += 1
            row.last_recalled_at = t
            if row.type == "episodic" and len(recalls) >= promote_after:
                row.type = "frequent"
                promoted.append(row.id)
            types[row.id] = row.type
            tx.db.add(row)
        if promoted:
            tx.db.flush()
            vecrows.touch(tx.db, promoted)
            tx.emit("memory", {"action": "promoted", "ids": promoted, "type": "frequent"})
        return types

    return fn


def update_fn(
    memory_id: str, changes: dict[str, Any], *, vector: Vectors | None = None
) -> Callable[[Tx], MemoryItem | None]:
    """Change a record; a new content comes with its new vector, written together."""

    def fn(tx: Tx) -> MemoryItem | None:
        row = tx.db.get(MemoryRecord, memory_id)
        if row is None:
            return None
        current = item_of(row)
        content = changes.get("content", current.content)
        meta = changes.get("metadata", current.metadata)
        row.content, row.meta = encode_content(content, dict(meta))
        for key in ("content_hash", "tokens", "type", "tags"):
            if key in changes:
                setattr(row, key, changes[key])
        row.updated_at = now()
        tx.db.add(row)
        tx.db.flush()
        if vector is not None:
            vecrows.put(tx.db, [(row.id, row.project)], vector.matrix, vector.model)
            row.vector_ok = True
            tx.db.add(row)
        elif current.type != row.type:
            vecrows.touch(tx.db, [row.id])
        tx.emit("memory", {"action": "updated", "id": memory_id})
        return item_of(row)

    return fn


def delete_fn(ids: Sequence[str]) -> Callable[[Tx], list[tuple[str, str]]]:
    """Delete records; returns the (id, project) of those that existed."""

    def fn(tx: Tx) -> list[tuple[str, str]]:
        found = [
            (r[0], r[1])
            for r in tx.db.exec(
                select(MemoryRecord.id, MemoryRecord.project).where(
                    col(MemoryRecord.id).in_(list(ids))
                )
            )
        ]
        if found:
            gone = [f[0] for f in found]
            tx.db.execute(delete(MemoryRecord).where(col(MemoryRecord.id).in_(gone)))
            vecrows.drop(tx.db, gone)
            tx.emit("memory", {"action": "deleted", "ids": [f[0] for f in found]})
        return found

    return fn


def tags_match(item: MemoryItem, tags: Sequence[str] | None) -> bool:
    """Every requested tag is on the memory (case-insensitive)."""
    if not tags:
        return True
    have = {t.lower() for t in item.tags}
    return all(t.lower() in have for t in tags)

