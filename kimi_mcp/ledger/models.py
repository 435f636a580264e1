"""The ledger's tables. Times are UNIX seconds (float) so buckets are plain arithmetic in SQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Table, Text
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 4
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


def now() -> float:
    return time.time()


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class Meta(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class Session(SQLModel, table=True):
    __tablename__ = "session"
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str
    provider: str | None = None
    model: str | None = None
    auto: bool = False
    active: bool = False
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    # per-session switches: {"sanitize": bool, "memory_tags": bool, "compression": bool}
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    compress_requested: bool = False


class Request(SQLModel, table=True):
    """One proxied chat call (or one call seen in Continue's logs, `source = continue-log`)."""

    __tablename__ = "request"
    __table_args__ = (
        Index("ix_request_created", "created_at"),
        Index("ix_request_session_created", "session_id", "created_at"),
        Index("ix_request_provider_created", "provider", "created_at"),
        Index("ix_request_model", "model"),
    )
    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(default_factory=new_id, index=True)
    session_id: str | None = None
    created_at: float = Field(default_factory=now)
    source: str = "proxy"
    provider: str = ""
    model: str = ""
    stream: bool = False
    status: str = "ok"  # ok | error | cancelled
    http_status: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    # as the provider reported them (None when it did not)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    # as tiktoken estimated them
    est_prompt_tokens: int | None = None
    est_completion_tokens: int | None = None
    usage_source: str = "provider"  # provider | estimate
    cost_usd: float | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    saved_mask_tokens: int = 0
    saved_compress_tokens: int = 0
    memory_tokens: int = 0
    context_window: int | None = None
    route: str | None = None
    linked_uid: str | None = None  # a continue-log row that matched a proxy row
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RequestRollup(SQLModel, table=True):
    """Sums of `request` rows per minute (`size` 60) and per hour (`size` 3600), kept by the
    writer in the same transaction as the rows, by every process that writes to the ledger.

    Summaries, charts, `/metrics` and `stats://` read whole buckets here and raw rows only for
    the partial minutes at a range's edges, so they cost the same at 1M rows as at 10k.
    Request rows are insert-only; deleting a session deletes its rollups with it.
    """

    __tablename__ = "request_rollup"
    __table_args__ = (Index("ix_request_rollup_bucket", "size", "bucket"),)
    size: int = Field(primary_key=True)
    bucket: int = Field(primary_key=True)  # the bucket's start, UNIX seconds
    session_id: str = Field(default="", primary_key=True)
    source: str = Field(default="", primary_key=True)
    provider: str = Field(default="", primary_key=True)
    model: str = Field(default="", primary_key=True)
    status: str = Field(default="", primary_key=True)
    n: int = 0
    errors: int = 0
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    cost: float = 0.0
    cost_n: int = 0
    saved_mask: int = 0
    saved_compress: int = 0
    memory: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    ttft_sum: float = 0.0
    ttft_n: int = 0
    last_at: float = 0.0
    # how many latencies fell in each of LATENCY_BUCKETS_MS (not cumulative; the last is +Inf)
    h0: int = 0
    h1: int = 0
    h2: int = 0
    h3: int = 0
    h4: int = 0
    h5: int = 0
    h6: int = 0
    h7: int = 0
    h8: int = 0
    h9: int = 0
    h10: int = 0


class ToolRollup(SQLModel, table=True):
    """Sums of `tool_call` rows per minute and per hour, like `RequestRollup`."""

    __tablename__ = "tool_rollup"
    __table_args__ = (Index("ix_tool_rollup_bucket", "size", "bucket"),)
    size: int = Field(primary_key=True)
    bucket: int = Field(primary_key=True)
    session_id: str = Field(default="", primary_key=True)
    tool: str = Field(default="", primary_key=True)
    family: str = Field(default="", primary_key=True)
    calls: int = 0
    errors: int = 0
    args_tokens: int = 0
    result_tokens: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    last_at: float = 0.0


class ToolCall(SQLModel, table=True):
    __tablename__ = "tool_call"
    __table_args__ = (
        Index("ix_tool_call_created", "created_at"),
        Index("ix_tool_call_tool", "tool"),
        Index("ix_tool_call_uid", "uid"),
    )
    id: int | None = Field(default=None, primary_key=True)
    uid: str | None = None  # None only on rows written before schema 4
    session_id: str | None = None
    created_at: float = Field(default_factory=now)
    tool: str
    family: str
    args_tokens: int = 0
    result_tokens: int = 0
    latency_ms: float = 0.0
    is_error: bool = False
    error: str | None = Field(default=None, sa_column=Column(Text))


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_session", "session_id", "created_at"),
                      Index("ix_alert_uid", "uid"))
    id: int | None = Field(default=None, primary_key=True)
    uid: str | None = None
    session_id: str | None = None
    created_at: float = Field(default_factory=now)
    threshold: float
    usage: float
    prompt_tokens: int
    context_window: int
    model: str = ""
    message: str = ""


class MemoryRecord(SQLModel, table=True):
    """A memory: its text lives here, its vector in `memory_vector` under the same id."""

    __tablename__ = "memory"
    __table_args__ = (
        Index("ix_memory_project_hash", "project", "content_hash"),
        Index("ix_memory_project_updated", "project", "updated_at"),
    )
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True)
    project: str = "default"
    content: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str
    type: str = "episodic"  # episodic | semantic | frequent
    source: str = "tool"  # tool | sanitizer | tag | consolidate
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    merged_from: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tokens: int = 0
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    recall_count: int = 0
    last_recalled_at: float | None = None
    recalls: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    vector_ok: bool = False


class MemoryVector(SQLModel, table=True):
    """A memory's vector (float32 little-endian), written in the same transaction as its
    record. `seq` grows with every write, so another process can pick up what changed."""

    __tablename__ = "memory_vector"
    __table_args__ = (Index("ix_memory_vector_scope", "project", "model", "dim"),)
    id: str = Field(primary_key=True)  # the memory id
    project: str
    model: str = "minilm"  # the embedder that made it
    dim: int
    seq: int = Field(default=0, index=True)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Thought(SQLModel, table=True):
    __tablename__ = "thought"
    __table_args__ = (Index("ix_thought_session", "session_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    session_id: str
    project: str = "default"
    created_at: float = Field(default_factory=now)
    thought: str = Field(sa_column=Column(Text, nullable=False))
    thought_number: int
    total_thoughts: int
    next_thought_needed: bool
    is_revision: bool = False
    revises_thought: int | None = None
    branch_from_thought: int | None = None
    branch_id: str | None = None
    needs_more_thoughts: bool = False


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model (SQLModel does not type `__table__`)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def row_dict(row: SQLModel) -> dict[str, Any]:
    return row.model_dump(mode="json")
