"""fs tools for archives and directory sync (they write, so read_only mode drops them)."""

# No `from __future__ import annotations`: real annotation objects spare fastmcp an eval of
# every parameter type when the server is built (a third of the start-up cost).

from typing import Annotated, Literal

from fastmcp import FastMCP
from pydantic import Field

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace

from . import archive, fileops
from .models import CompressResult, ExtractResult, SyncResult
from .tooling import (
    CREATE,
    DESTRUCTIVE,
    DESTRUCTIVE_IDEMPOTENT,
    MAX_LIST,
    ExcludePatterns,
    PathArg,
    refusals,
    require_dir,
    tool,
)
from .walk import Excluder


def register(mcp: FastMCP, ws: Workspace) -> None:
    for add in (_compress, _extract_archive, _sync_directories):
        add(mcp, ws)


def _compress(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=CREATE)
    def compress(
        paths: Annotated[
            list[str],
            Field(min_length=1, max_length=100, description="Files and directories to pack"),
        ],
        output_path: Annotated[str, Field(description="Archive to create; must not exist yet")],
        format: Annotated[Literal["zip", "tar.gz"], Field(description="Archive format")] = "zip",
    ) -> CompressResult:
        """Pack files and directories into a new zip or tar.gz archive.

        Entries are named from each path's own name down. Symlinks are skipped (listed), never
        followed. The output is created exclusively and never replaces an existing file.
        """
        with refusals("compress", paths=paths, output_path=output_path):
            sources = [ws.resolve(p) for p in paths]
            output = ws.resolve(output_path)
            for source in sources:
                if ws.lstat_or_none(source) is None:
                    raise WorkspaceError(f"Not found: {ws.display(source)}")
            packed = archive.pack(ws, sources, output, format)
            return CompressResult(
                output_path=ws.display(output),
                format=format,
                files=packed.files,
                bytes_in=packed.bytes_in,
                archive_bytes=ws.stat(output).st_size,
                skipped_symlinks=packed.skipped[:MAX_LIST],
            )


def _extract_archive(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE)
    def extract_archive(
        archive_path: PathArg,
        destination: Annotated[
            str, Field(description="Directory to extract into (created if missing)")
        ],
        overwrite: Annotated[bool, Field(description="Replace files that already exist")] = False,
    ) -> ExtractResult:
        """Extract a zip or tar(.gz/.bz2/.xz) archive into a directory of the workspace.

        Every entry is checked first: `../` or absolute names, link entries and anything that
        would land outside the destination refuse the whole archive before a byte is written.
        """
        with refusals("extract_archive", archive_path=archive_path, destination=destination):
            source = ws.resolve(archive_path)
            dest = ws.resolve(destination)
            done = archive.unpack(ws, source, dest, overwrite)
            return ExtractResult(
                destination=ws.display(dest),
                files=done.files,
                directories=done.dirs,
                bytes_written=done.bytes_out,
                overwritten=done.overwritten[:MAX_LIST],
            )


def _sync_directories(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=DESTRUCTIVE_IDEMPOTENT)
    def sync_directories(
        source: Annotated[str, Field(description="Directory to copy from")],
        destination: Annotated[str, Field(description="Directory to bring up to date")],
        mode: Annotated[
            Literal["mirror", "update"],
            Field(
                description="update: copy new and newer files; mirror: make destination identical, deleting extras"
            ),
        ] = "update",
        dry_run: Annotated[
            bool, Field(description="Report what would change; change nothing")
        ] = False,
        exclude_patterns: ExcludePatterns = [],  # noqa: B006
    ) -> SyncResult:
        """Synchronise one directory into another (mirror deletes files missing from source).

        Symlinks are skipped. Use dry_run=true first with mode=mirror.
        """
        with refusals("sync_directories", source=source, destination=destination):
            src, dst = ws.resolve(source), ws.resolve(destination)
            require_dir(ws, src)
            plan = fileops.sync(
                ws, src, dst, mode, dry_run, Excluder(exclude_patterns, defaults=False)
            )
            lists = (plan.copied, plan.updated, plan.deleted, plan.skipped)
            cut = any(len(items) > MAX_LIST for items in lists)
            return SyncResult(
                dry_run=dry_run,
                copied=plan.copied[:MAX_LIST],
                updated=plan.updated[:MAX_LIST],
                deleted=plan.deleted[:MAX_LIST],
                skipped_symlinks=plan.skipped[:MAX_LIST],
                unchanged=plan.unchanged,
                truncated=cut,
            )
