"""The `memory` tool family (mounted under the `memory` namespace): memories that are
recalled by meaning, scoped to the workspace's project, stored offline."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from kimi_mcp.errors import MemoryEngineError, MemoryNotFound

if TYPE_CHECKING:
    from kimi_mcp import memory as mem
    from kimi_mcp.deps import Deps
    from kimi_mcp.memory import ConsolidateReport, Hit, MemoryItem

T = TypeVar("T")
_SURROGATE = re.compile("[\ud800-\udfff]")
MemoryType = Literal["episodic", "semantic", "frequent"]


class Memory(BaseModel):
    id: str
    content: str
    type: str
    tags: list[str]
    metadata: dict[str, Any]
    project: str
    source: str
    tokens: int
    created_at: float
    updated_at: float
    recall_count: int
    merged_from: list[str]
    replaced_surrogates: int = Field(
        default=0, description="lone UTF-16 surrogates in the stored text that JSON cannot "
        "carry, sent as U+FFFD (the ledger keeps the original)")

    @classmethod
    def of(cls, item: MemoryItem) -> Memory:
        content, replaced = _json_safe(item.content)
        return cls(
            id=item.id, content=content, replaced_surrogates=replaced, type=item.type, tags=item.tags,
            metadata=item.metadata, project=item.project, source=item.source,
            tokens=item.tokens, created_at=item.created_at, updated_at=item.updated_at,
            recall_count=item.recall_count, merged_from=item.merged_from,
        )


class StoreResult(BaseModel):
    id: str
    created: bool = Field(description="False when an identical memory existed: its id is returned")
    project: str


class RecallHit(BaseModel):
    id: str
    score: float | None = Field(description="cosine similarity; null when listed by recency")
    type: str
    tags: list[str]
    snippet: str
    project: str
    tokens: int
    created_at: float
    recall_count: int


class RecallResult(BaseModel):
    query: str
    project: str | None = Field(description="the project searched; null for all projects")
    results: list[RecallHit]


class GetResult(BaseModel):
    memories: list[Memory]
    missing: list[str] = Field(default_factory=list)
    merged_into: dict[str, str] = Field(
        default_factory=dict, description="ids consolidated into another memory → its id"
    )


class DeleteResult(BaseModel):
    deleted: list[str]
    missing: list[str]


class ClusterOut(BaseModel):
    ids: list[str]
    preview: str
    merged_id: str | None


class ConsolidateResult(BaseModel):
    dry_run: bool
    threshold: float
    project: str
    examined: int
    clusters: list[ClusterOut]
    merged: int = Field(description="memories in the clusters (merged, or to merge on a dry run)")

    @classmethod
    def of(cls, report: ConsolidateReport) -> ConsolidateResult:
        return cls(
            dry_run=report.dry_run, threshold=report.threshold, project=report.project,
            examined=report.examined, merged=report.merged,
            clusters=[ClusterOut(ids=c.ids, preview=c.preview, merged_id=c.merged_id)
                      for c in report.clusters],
        )


def _json_safe(text: str) -> tuple[str, int]:
    safe, lone = _SURROGATE.subn("\ufffd", text)
    return safe, lone


def _hit(hit: Hit) -> RecallHit:
    item = hit.item
    return RecallHit(
        id=item.id, score=None if hit.score is None else round(hit.score, 4), type=item.type,
        tags=item.tags, snippet=_json_safe(item.snippet())[0], project=item.project, tokens=item.tokens,
        created_at=item.created_at, recall_count=item.recall_count,
    )


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except MemoryNotFound as exc:
        raise ToolError(f"{exc}; use memory_recall to find the ids of memories") from None
    except MemoryEngineError as exc:
        raise ToolError(str(exc)) from None


def _annotations(read_only: bool, destructive: bool, idempotent: bool) -> dict[str, bool]:
    return {"readOnlyHint": read_only, "destructiveHint": destructive,
            "idempotentHint": idempotent, "openWorldHint": False}


Content = Annotated[str, Field(min_length=1, description="The text to remember, verbatim.")]
Ids = Annotated[list[str], Field(min_length=1, max_length=100, description="Memory ids.")]
Tags = Annotated[list[str] | None, Field(description="Labels to filter or group by.")]


def build_server(deps: Deps) -> FastMCP:
    mcp: FastMCP = FastMCP("memory")
    def engine() -> mem.Memory:  # read on every call: deps.memory may be replaced
        found = deps.memory
        if found is None:
            raise ToolError("memory_* tools are unavailable: this server was built without a "
                            "memory engine")
        return found

    @mcp.tool(annotations=_annotations(False, False, True))
    async def store(
        content: Content,
        type: Annotated[MemoryType, Field(description="episodic (default): an event or fact "
                                          "of this session; semantic: durable knowledge; "
                                          "frequent: something needed often.")] = "episodic",
        tags: Tags = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Any JSON object kept "
                                                         "with the memory.")] = None,
    ) -> StoreResult:
        """Store a memory for later recall by meaning in this project.

        Storing the exact same text again returns the existing id (created=false)."""
        project = deps.project
        result = await _guard(engine().store(
            content, type=type, tags=tags or (), metadata=metadata, project=project
        ))
        return StoreResult(id=result.id, created=result.created, project=project)

    @mcp.tool(annotations=_annotations(False, False, False))
    async def recall(
        query: Annotated[str, Field(description="What to look for, in plain words; matched by "
                                    "meaning, not keywords. Empty: the most recent memories.")] = "",
        limit: Annotated[int, Field(ge=1, le=50, description="How many results.")] = 5,
        type: Annotated[MemoryType | None, Field(description="Only this type.")] = None,
        tags: Annotated[list[str] | None, Field(description="Only memories carrying all of "
                                                "these tags.")] = None,
        min_score: Annotated[float, Field(ge=-1, le=1, description="Minimum cosine similarity "
                                          "(0.3 is loosely related, 0.6 close).")] = 0.0,
        all_projects: Annotated[bool, Field(description="Search every project, not only this "
                                            "workspace's.")] = False,
    ) -> RecallResult:
        """Recall memories by meaning, best match first, with scores and snippets.

        Read a result in full with memory_get. Each recall is counted: an episodic memory
        recalled often becomes `frequent`."""
        project = None if all_projects else deps.project
        hits = await _guard(engine().recall(
            query, limit=limit, type=type, tags=tags, min_score=min_score,
            project=project, all_projects=all_projects,
        ))
        return RecallResult(query=query, project=project, results=[_hit(h) for h in hits])

    @mcp.tool(annotations=_annotations(True, False, True))
    async def get(ids: Ids) -> GetResult:
        """Read memories in full by id, byte-exact (also masked tool outputs: `m-…` ids).

        Unknown ids are listed in `missing`; ids merged by consolidation point to the
        memory that holds them now."""
        items = await _guard(engine().get(ids))
        found = {i.id for i in items}
        missing = [m for m in dict.fromkeys(ids) if m not in found]
        merged = {m: target for m in missing if (target := engine().merged_into(m)) is not None}
        if not items and not merged:
            raise ToolError(f"No memory with id {', '.join(missing)}; use memory_recall to "
                            "find the ids of memories")
        return GetResult(memories=[Memory.of(i) for i in items], missing=missing,
                         merged_into=merged)

    @mcp.tool(annotations=_annotations(False, True, True))
    async def update(
        id: Annotated[str, Field(description="The memory's id.")],
        content: Annotated[str | None, Field(min_length=1, description="New text (replaces "
                                             "the old; the memory is re-embedded).")] = None,
        type: Annotated[MemoryType | None, Field(description="New type.")] = None,
        tags: Annotated[list[str] | None, Field(description="New tags (replace the old).")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="New metadata (replaces "
                                                         "the old).")] = None,
    ) -> Memory:
        """Change a memory's text, type, tags or metadata; fields left out stay as they are."""
        if content is None and type is None and tags is None and metadata is None:
            raise ToolError("Nothing to update: give content, type, tags or metadata")
        item = await _guard(engine().update(id, content=content, type=type, tags=tags,
                                            metadata=metadata))
        return Memory.of(item)

    @mcp.tool(annotations=_annotations(False, True, True))
    async def delete(ids: Ids) -> DeleteResult:
        """Delete memories by id, for good."""
        deleted = await _guard(engine().delete(ids))
        return DeleteResult(deleted=deleted, missing=[m for m in dict.fromkeys(ids)
                                                      if m not in set(deleted)])

    @mcp.tool(annotations=_annotations(False, True, False))
    async def consolidate(
        threshold: Annotated[float | None, Field(gt=0, le=1, description="Cosine similarity "
                                                 "at which memories count as near-duplicates "
                                                 "(default from settings, 0.92).")] = None,
        dry_run: Annotated[bool, Field(description="Only report the clusters (default); "
                                       "false merges them.")] = True,
    ) -> ConsolidateResult:
        """Merge near-duplicate memories of this project into single `semantic` memories.

        Run with dry_run=true first to see the clusters. A merged memory keeps its sources'
        ids in merged_from; masked tool outputs are never merged."""
        report = await _guard(engine().consolidate(threshold, dry_run=dry_run,
                                                   project=deps.project))
        return ConsolidateResult.of(report)

    return mcp
