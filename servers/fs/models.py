"""The results the fs tools return (clients get them as outputSchema + structuredContent)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class AllowedDirectories(BaseModel):
    roots: list[str] = Field(description="Absolute allowed roots; relative paths use the first")


class FileContent(BaseModel):
    path: str
    content: str
    start_line: int = Field(description="1-based number of the first line returned")
    end_line: int = Field(description="1-based number of the last line returned (0 if none)")
    total_lines: int
    truncated: bool
    next_offset: int | None = Field(
        default=None, description="Pass as offset_line to read on; null when at the end"
    )
    next_char: int | None = Field(
        default=None,
        description="Set when a line too long for one answer was cut: pass as offset_char "
        "(with offset_line=next_offset) to read on inside it",
    )
    note: str | None = Field(
        default=None, description="Set when bytes were not valid in the encoding"
    )


class FileEntry(BaseModel):
    path: str
    content: str | None = None
    total_lines: int | None = None
    truncated: bool = False
    next_offset: int | None = None
    next_char: int | None = None
    note: str | None = None
    error: str | None = None


class MultipleFiles(BaseModel):
    files: list[FileEntry]
    succeeded: int
    failed: int


class MediaInfo(BaseModel):
    path: str
    mime_type: str
    size: int
    kind: Literal["image", "audio", "resource"]


class WriteResult(BaseModel):
    path: str
    bytes_written: int
    created: bool
    appended: bool


class EditResult(BaseModel):
    path: str
    applied: bool = Field(description="False for a dry run or when nothing changed")
    diff: str = Field(description="Unified diff of the change")
    diff_truncated: bool
    matches: list[str] = Field(default_factory=list, description="Per edit: exact or whitespace")


class LineRange(BaseModel):
    start_line: int
    end_line: int
    text: str


class Extract(BaseModel):
    path: str
    ranges: list[LineRange]
    truncated: bool
    hint: str | None = None


class DirectoryCreated(BaseModel):
    path: str
    created: bool = Field(description="False when it already existed")


class ListedEntry(BaseModel):
    name: str
    type: Literal["file", "directory", "symlink", "other"]
    size: int
    modified: str


class DirectoryListing(BaseModel):
    path: str
    entries: list[ListedEntry]
    total: int
    page: int
    page_size: int
    next_page: int | None = Field(default=None, description="Page to ask for next, if any")


class TreeResult(BaseModel):
    path: str
    tree: str = Field(description="One entry per line, two spaces per level, dirs end with /")
    files: int
    directories: int
    truncated: bool
    hint: str | None = None


class FileInfo(BaseModel):
    path: str
    type: Literal["file", "directory", "symlink", "other"]
    size: int
    modified: str
    accessed: str
    created: str | None
    permissions: str
    is_symlink: bool
    symlink_target: str | None = None
    mime_type: str | None = None


class CopyResult(BaseModel):
    source: str
    destination: str
    files_copied: int
    links_copied: int = Field(default=0, description="Links re-created (pointing where they did)")
    skipped: list[str] = Field(
        default_factory=list,
        description="Entries not copied, with why (links out of the workspace, pipes, devices)",
    )


class MoveResult(BaseModel):
    source: str
    destination: str


class DeleteResult(BaseModel):
    path: str
    entries_removed: int


class BatchItem(BaseModel):
    index: int
    op: str
    ok: bool
    message: str


class BatchResult(BaseModel):
    dry_run: bool
    succeeded: int
    failed: int
    stopped_early: bool
    results: list[BatchItem]


class SearchFiles(BaseModel):
    path: str
    matches: list[str] = Field(description="Paths relative to the first workspace root")
    truncated: bool
    hint: str | None = None


class ContentMatch(BaseModel):
    path: str
    line: int
    text: str
    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)


class SearchContent(BaseModel):
    matches: list[ContentMatch]
    files_scanned: int
    files_matched: int
    skipped_binary: int
    skipped_large: int
    truncated: bool
    timed_out: bool = Field(
        default=False, description="True when the search stopped at its time limit"
    )
    hint: str | None = None


class SizedEntry(BaseModel):
    path: str
    size: int


class LargeFiles(BaseModel):
    files: list[SizedEntry]
    files_scanned: int
    truncated: bool


class DiskUsage(BaseModel):
    path: str
    total_bytes: int
    files: int
    directories: int
    largest_children: list[SizedEntry]
    truncated: bool


class CompressResult(BaseModel):
    output_path: str
    format: str
    files: int
    bytes_in: int
    archive_bytes: int
    skipped_symlinks: list[str]


class ExtractResult(BaseModel):
    destination: str
    files: int
    directories: int
    bytes_written: int
    overwritten: list[str]


class SyncResult(BaseModel):
    dry_run: bool
    copied: list[str]
    updated: list[str]
    deleted: list[str]
    skipped_symlinks: list[str]
    unchanged: int
    truncated: bool = Field(description="True when the lists above were cut to the cap")


class HashResult(BaseModel):
    path: str
    algorithm: str
    digest: str
    size: int


class DiffResult(BaseModel):
    identical: bool
    diff: str
    truncated: bool
