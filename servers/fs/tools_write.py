"""fs tools that write: files, edits, directories, copy/move/delete, batches.

Not registered at all when `[mcp] read_only = true`.
"""

# No `from __future__ import annotations`: real annotation objects spare fastmcp an eval of
# every parameter type when the server is built (a third of the start-up cost).

from typing import Annotated, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace

from . import fileops, textops
from .models import (
    BatchItem,
    BatchResult,
    CopyResult,
    DeleteResult,
    DirectoryCreated,
    EditResult,
    MoveResult,
    WriteResult,
)
from .tooling import (
    CREATE_IDEMPOTENT,
    DESTRUCTIVE,
    DESTRUCTIVE_IDEMPOTENT,
    MAX_CHARS,
    MAX_LIST,
    PathArg,
    offload,
    refusals,
    tool,
)

MAX_EDIT_BYTES = 20 << 20
DryRun = Annotated[bool, Field(description="Only show the diff; change nothing")]
Overwrite = Annotated[bool, Field(description="Replace an existing destination")]


class Edit(BaseModel):
    old_text: str = Field(
        description="Text to find: exact first, else line-by-line ignoring indentation"
    )
    new_text: str = Field(description="Replacement text")
    expected_replacements: int = Field(
        default=1, ge=1, description="How many occurrences must match"
    )


class LineEditSpec(BaseModel):
    line: int = Field(ge=1, description="1-based line number in the file as it is now")
    mode: Literal["replace", "insert_before", "insert_after", "delete"]
    text: str = Field(default="", description="New line(s) for replace/insert; ignored for delete")


class Operation(BaseModel):
    op: Literal["copy", "move", "delete", "mkdir"]
    path: str | None = Field(default=None, description="For delete and mkdir")
    source: str | None = Field(default=None, description="For copy and move")
    destination: str | None = Field(default=None, description="For copy and move")
    overwrite: bool = False
    recursive: bool = Field(default=False, description="For delete of a non-empty directory")


def register(mcp: FastMCP, ws: Workspace) -> None:
    for add in (
        _write_file,
        _edit_file,
        _edit_lines,
        _create_directory,
        _copy,
        _move,
        _delete,
        _batch,
    ):
        add(mcp, ws)


def _write_file(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE)
    async def write_file(
        path: PathArg,
        content: Annotated[str, Field(description="Text to write")],
        append: Annotated[bool, Field(description="Append instead of replacing the file")] = False,
        create_dirs: Annotated[
            bool, Field(description="Create missing parent directories")
        ] = False,
        encoding: Annotated[str, Field(description="Text encoding")] = "utf-8",
    ) -> WriteResult:
        """Create or overwrite a text file (atomically), or append to it.

        An existing file is replaced through a temp file and a rename; a new file is created
        exclusively. Prefer fs_edit_file for changes to part of a file.
        """

        def work() -> WriteResult:
            with refusals("write_file", path=path, encoding=encoding):
                real = ws.resolve(path)
                parent = real.rsplit("/", 1)[0] or "/"
                if not ws.is_dir(parent):
                    if not create_dirs:
                        raise WorkspaceError(
                            f"Parent directory does not exist: {ws.display(parent)}; pass "
                            "create_dirs=true"
                        )
                    ws.makedirs(parent)
                data = content.encode(encoding)
                existed = ws.lstat_or_none(real) is not None
                if append:
                    ws.append(real, data)
                elif existed:
                    ws.write_atomic(real, data)
                else:
                    ws.create_exclusive(real, data)
                return WriteResult(
                    path=ws.display(real),
                    bytes_written=len(data),
                    created=not existed,
                    appended=append,
                )

        return await offload(work, inline=len(content) <= 1 << 20)


def _edit_file(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE)
    async def edit_file(
        path: PathArg,
        edits: Annotated[
            list[Edit], Field(min_length=1, description="Replacements, applied in order")
        ],
        dry_run: DryRun = False,
    ) -> EditResult:
        """Replace text in a file and return a unified diff of the change.

        Each old_text must match expected_replacements times: exactly, or else line by line
        ignoring leading/trailing whitespace (the file's indentation is kept). A miss names the
        edit and shows the nearest lines. All edits apply or none do.
        """

        def work() -> EditResult:
            with refusals("edit_file", path=path):
                real, text = _read_text(ws, path)
                specs = [
                    textops.TextEdit(e.old_text, e.new_text, e.expected_replacements) for e in edits
                ]
                with refusals("edit_file", edits=edits):  # a miss is the edit's fault
                    new, how = textops.apply_edits(text, specs)
                return _finish(ws, real, text, new, dry_run, how)

        return await offload(work, inline=ws.cheap(path))


def _edit_lines(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE)
    async def edit_lines(
        path: PathArg,
        edits: Annotated[
            list[LineEditSpec],
            Field(
                min_length=1,
                description="Line edits; every line number refers to the file before any edit",
            ),
        ],
        dry_run: DryRun = False,
    ) -> EditResult:
        """Edit a file by line number: replace, insert before/after, or delete lines.

        Line numbers all refer to the current file (read it first), so edits do not shift each
        other. Returns a unified diff.
        """

        def work() -> EditResult:
            with refusals("edit_lines", path=path):
                real, text = _read_text(ws, path)
                specs = [textops.LineEdit(e.line, e.mode, e.text) for e in edits]
                with refusals("edit_lines", edits=edits):  # a line out of range is the edit's
                    new = textops.apply_line_edits(text, specs)
                return _finish(ws, real, text, new, dry_run, [])

        return await offload(work, inline=ws.cheap(path))


def _create_directory(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=CREATE_IDEMPOTENT)
    async def create_directory(path: PathArg) -> DirectoryCreated:
        """Create a directory and any missing parents; succeeds if it already exists."""

        def work() -> DirectoryCreated:
            with refusals("create_directory", path=path):
                real = ws.resolve(path)
                return DirectoryCreated(path=ws.display(real), created=ws.makedirs(real))

        return await offload(work, inline=True)


def _copy(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE_IDEMPOTENT)
    async def copy(
        source: PathArg,
        destination: Annotated[
            str, Field(description="Full target path (not a folder to copy into)")
        ],
        overwrite: Overwrite = False,
    ) -> CopyResult:
        """Copy a file or a directory tree; fails if the destination exists unless overwrite=true.

        Links are never followed: a link is copied as a link re-pointed at the same target,
        and skipped (listed) when that target is outside the workspace. With overwrite=true
        a directory is merged into an existing one; a link at the destination is replaced,
        never written through.
        """

        def work() -> CopyResult:
            with refusals("copy", source=source, destination=destination):
                src, dst = ws.resolve(source), ws.resolve(destination)
                report = fileops.copy(ws, src, dst, overwrite)
                return CopyResult(
                    source=ws.display(src),
                    destination=ws.display(dst),
                    files_copied=report.files,
                    links_copied=report.links,
                    skipped=report.skipped[:MAX_LIST],
                )

        return await offload(work, inline=ws.cheap(source))


def _move(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE)
    async def move(
        source: PathArg,
        destination: Annotated[str, Field(description="Full target path")],
        overwrite: Overwrite = False,
    ) -> MoveResult:
        """Move or rename a file or directory; fails if the destination exists unless overwrite=true."""

        def work() -> MoveResult:
            with refusals("move", source=source, destination=destination):
                src, dst = ws.resolve_entry(source), ws.resolve(destination)
                fileops.move(ws, src, dst, overwrite)
                return MoveResult(source=ws.display(src), destination=ws.display(dst))

        return await offload(work, inline=ws.cheap(source, limit=1 << 62))


def _delete(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE_IDEMPOTENT)
    async def delete(
        path: PathArg,
        recursive: Annotated[
            bool, Field(description="Delete a non-empty directory and everything in it")
        ] = False,
    ) -> DeleteResult:
        """Delete a file, a symlink (not its target) or a directory (non-empty needs recursive=true)."""

        def work() -> DeleteResult:
            with refusals("delete", path=path):
                entry = ws.resolve_entry(path)
                removed = fileops.delete(ws, entry, recursive)
                return DeleteResult(path=ws.display(entry), entries_removed=removed)

        return await offload(work, inline=ws.cheap(path, limit=1 << 62))


def _batch(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE)
    def batch(
        operations: Annotated[
            list[Operation],
            Field(
                min_length=1,
                max_length=100,
                description="copy/move (source, destination, overwrite), delete (path, recursive), mkdir (path)",
            ),
        ],
        dry_run: Annotated[
            bool, Field(description="Check every operation and report; change nothing")
        ] = False,
        stop_on_error: Annotated[bool, Field(description="Stop at the first failure")] = True,
    ) -> BatchResult:
        """Run several copy, move, delete and mkdir operations in order, reporting each.

        Operations are not rolled back: use dry_run first for risky batches.
        """
        results: list[BatchItem] = []
        stopped = False
        for index, operation in enumerate(operations, start=1):
            try:
                with refusals(
                    "batch", path=operation.path, source=operation.source,
                    destination=operation.destination,
                ):
                    message = _run_op(ws, operation, dry_run)
                results.append(BatchItem(index=index, op=operation.op, ok=True, message=message))
            except ToolError as exc:
                results.append(BatchItem(index=index, op=operation.op, ok=False, message=str(exc)))
                if stop_on_error:
                    stopped = index < len(operations)
                    break
        failed = sum(1 for r in results if not r.ok)
        return BatchResult(
            dry_run=dry_run,
            succeeded=len(results) - failed,
            failed=failed,
            stopped_early=stopped,
            results=results,
        )


def _read_text(ws: Workspace, path: str) -> tuple[str, str]:
    real = ws.resolve(path)
    with ws.open_read(real) as handle:
        data = handle.read(MAX_EDIT_BYTES + 1)
    if len(data) > MAX_EDIT_BYTES:
        raise WorkspaceError(
            f"File too large to edit here (> {MAX_EDIT_BYTES} bytes): {ws.display(real)}; "
            "use fs_write_file for the whole file"
        )
    if textops.sniff_binary(data[:8192]):
        raise WorkspaceError(
            f"{ws.display(real)} is a binary file (it holds NUL bytes); it cannot be edited as "
            "text"
        )
    try:
        return real, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkspaceError(
            f"{ws.display(real)} is not valid UTF-8 (byte {exc.start}); refusing to rewrite it "
            "as text. Use fs_write_file with the encoding it is in"
        ) from None


def _finish(
    ws: Workspace, real: str, old: str, new: str, dry_run: bool, how: list[str]
) -> EditResult:
    shown = ws.display(real)
    diff, cut = textops.cap(textops.unified_diff(old, new, shown, shown), MAX_CHARS)
    changed = new != old
    if changed and not dry_run:
        ws.write_atomic(real, new.encode("utf-8"))
    return EditResult(
        path=shown, applied=changed and not dry_run, diff=diff, diff_truncated=cut, matches=how
    )


def _need(value: str | None, name: str, op: str) -> str:
    if not value:
        raise WorkspaceError(f"{op} needs `{name}`")
    return value


def _run_op(ws: Workspace, operation: Operation, dry_run: bool) -> str:
    op = operation.op
    if op in ("copy", "move"):
        source = _need(operation.source, "source", op)
        target = ws.resolve(_need(operation.destination, "destination", op))
        src = ws.resolve(source) if op == "copy" else ws.resolve_entry(source)
        if dry_run:
            if ws.lstat_or_none(src) is None:
                raise WorkspaceError(f"Not found: {ws.display(src)}")
            if ws.lstat_or_none(target) is not None and not operation.overwrite:
                raise WorkspaceError(f"Refused: destination exists: {ws.display(target)}")
            return f"would {op} {ws.display(src)} -> {ws.display(target)}"
        if op == "copy":
            fileops.copy(ws, src, target, operation.overwrite)
        else:
            fileops.move(ws, src, target, operation.overwrite)
        return f"{op} {ws.display(src)} -> {ws.display(target)}"
    path = _need(operation.path, "path", op)
    if op == "mkdir":
        real = ws.resolve(path)
        if dry_run:
            return f"would create {ws.display(real)}"
        return f"created {ws.display(real)}" if ws.makedirs(real) else f"exists {ws.display(real)}"
    entry = ws.resolve_entry(path)
    if dry_run:
        if ws.lstat_or_none(entry) is None:
            raise WorkspaceError(f"Not found: {ws.display(entry)}")
        return f"would delete {ws.display(entry)}"
    removed = fileops.delete(ws, entry, operation.recursive)
    return f"deleted {ws.display(entry)} ({removed} entries)"
