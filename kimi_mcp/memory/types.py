"""What the memory engine returns: plain dataclasses, no MCP, no ORM.

This module imports nothing heavy (no numpy, no SQLAlchemy): the faces type their code with
it before the engine is loaded.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.errors import MemoryEngineError

TYPES = ("episodic", "semantic", "frequent")
SNIPPET_CHARS = 240
# Content with lone surrogates (JSON can carry them) cannot be stored as UTF-8 text:
# it is kept as base64 of its surrogatepass bytes and flagged in meta.
_ENCODING_KEY = "_encoding"
_B64 = "b64-surrogatepass"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Point:
    """A memory as a `VectorSearch` sees it: its id, its project and its type (filters)."""

    id: str
    project: str
    type: str


@dataclass(frozen=True)
class StoreResult:
    id: str
    created: bool


@dataclass
class MemoryItem:
    id: str
    content: str
    project: str
    type: str = "episodic"
    source: str = "tool"
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    merged_from: list[str] = field(default_factory=list)
    tokens: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    recall_count: int = 0
    last_recalled_at: float | None = None
    vector_ok: bool = False
    recalls: list[float] = field(default_factory=list, repr=False)

    def snippet(self, chars: int = SNIPPET_CHARS) -> str:
        text = " ".join(self.content.split())
        return text if len(text) <= chars else text[: chars - 1] + "…"


@dataclass
class Hit:
    item: MemoryItem
    score: float | None  # None when listed by recency (empty query)


@dataclass
class Cluster:
    ids: list[str]
    preview: str
    merged_id: str | None = None


@dataclass
class ConsolidateReport:
    dry_run: bool
    threshold: float
    project: str
    examined: int
    clusters: list[Cluster]

    @property
    def merged(self) -> int:
        return sum(len(c.ids) for c in self.clusters)


def decode_content(stored: str, meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The inverse of `encode_content`: the original text and the caller's meta."""
    meta = dict(meta)
    if meta.pop(_ENCODING_KEY, None) == _B64:
        return base64.b64decode(stored).decode("utf-8", "surrogatepass"), meta
    return stored, meta


def encode_content(content: str, meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The text to store and the meta to store with it (lossless for any str)."""
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        raw = content.encode("utf-8", "surrogatepass")
        return base64.b64encode(raw).decode("ascii"), {**meta, _ENCODING_KEY: _B64}
    return content, meta


def embeddable(content: str) -> str:
    """The text given to the embedder (lone surrogates replaced)."""
    return _SURROGATE.sub("\ufffd", content)


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def masked_id(content: str) -> str:
    """The content-addressed id the sanitizer gives a masked block."""
    return "m-" + content_hash(content)[:16]


def tokens_of(content: str) -> int:
    return tokens.count_text(embeddable(content))


def check_type(type_: str) -> None:
    if type_ not in TYPES:
        raise MemoryEngineError(f"unknown memory type {type_!r}; use one of {', '.join(TYPES)}")


def clean_tags(tags: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in tags if t.strip()))
