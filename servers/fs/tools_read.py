"""fs tools that only read: files, media, lines, listings, info, hashes, diffs."""

# No `from __future__ import annotations`: real annotation objects spare fastmcp an eval of
# every parameter type when the server is built (a third of the start-up cost).

import base64
import hashlib
import mimetypes
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools.base import ToolResult
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    EmbeddedResource,
    ImageContent,
    TextContent,
)
from pydantic import Field

from kimi_mcp.errors import WorkspaceError

from . import textops
from .models import (
    AllowedDirectories,
    DiffResult,
    Extract,
    FileContent,
    FileEntry,
    FileInfo,
    HashResult,
    LineRange,
    MediaInfo,
    MultipleFiles,
)
from .tooling import MAX_CHARS, READ, Encoding, PathArg, iso, kind, offload, refusals, tool
from .workspace import Workspace

MAX_MEDIA_BYTES = 10 << 20
READ_MAX_CHARS = 128 * 1024  # a 128 KB text file comes back whole
MAX_FILES = 50


def register(mcp: FastMCP, ws: Workspace) -> None:
    for add in (
        _list_allowed_directories,
        _read_file,
        _read_multiple_files,
        _read_media_file,
        _extract_lines,
        _get_file_info,
        _hash_file,
        _diff_files,
    ):
        add(mcp, ws)


def _list_allowed_directories(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def list_allowed_directories() -> AllowedDirectories:
        """List the directories this server may read and write.

        Relative paths in every other fs tool resolve against the first one.
        """

        def work() -> AllowedDirectories:
            with refusals():
                return AllowedDirectories(roots=list(ws.roots))

        return await offload(work, inline=True)


def _read_file(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ, output_schema=FileContent.model_json_schema())
    async def read_file(
        path: PathArg,
        offset_line: Annotated[int, Field(ge=1, description="1-based line to start at")] = 1,
        max_lines: Annotated[
            int, Field(ge=1, le=20_000, description="Most lines to return")
        ] = 2000,
        encoding: Encoding = "utf-8",
    ) -> ToolResult:
        """Read a text file, or a window of its lines.

        Returns at most max_lines lines and about 128k characters; when `truncated` is true,
        call again with offset_line=next_offset. Large files are streamed, never loaded whole.
        """

        def work() -> FileContent:
            with refusals():
                real = ws.resolve(path)
                with ws.open_read(real) as handle:
                    window = textops.read_window(
                        handle, encoding, offset_line, max_lines, READ_MAX_CHARS
                    )
                return _content(ws.display(real), offset_line, window)

        got = await offload(work, inline=ws.cheap(path))
        return ToolResult(content=[_as_text(got)], structured_content=got.model_dump())


def _read_multiple_files(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def read_multiple_files(
        paths: Annotated[
            list[str],
            Field(min_length=1, max_length=MAX_FILES, description="Paths to read (at most 50)"),
        ],
        encoding: Encoding = "utf-8",
    ) -> MultipleFiles:
        """Read several text files at once; a file that fails is reported, the rest still read.

        The 100k-character budget is shared: each file gets an equal part; read a truncated
        file on with read_file(offset_line=next_offset).
        """

        def work() -> MultipleFiles:
            budget = max(1000, MAX_CHARS // len(paths))
            files: list[FileEntry] = []
            for item in paths:
                try:
                    with refusals():
                        real = ws.resolve(item)
                        with ws.open_read(real) as handle:
                            window = textops.read_window(handle, encoding, 1, 20_000, budget)
                    got = _content(ws.display(real), 1, window)
                    files.append(
                        FileEntry(
                            path=got.path,
                            content=got.content,
                            total_lines=got.total_lines,
                            truncated=got.truncated,
                            next_offset=got.next_offset,
                        )
                    )
                except ToolError as exc:
                    files.append(FileEntry(path=item, error=str(exc)))
            failed = sum(1 for f in files if f.error)
            return MultipleFiles(files=files, succeeded=len(files) - failed, failed=failed)

        return await offload(work, inline=ws.cheap(*paths))


def _read_media_file(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ, output_schema=MediaInfo.model_json_schema())
    async def read_media_file(path: PathArg) -> ToolResult:
        """Read an image or audio file and return it as MCP image/audio content.

        Other binary files come back as an embedded resource (base64). At most 10 MB.
        """

        def work() -> ToolResult:
            with refusals():
                real = ws.resolve(path)
                with ws.open_read(real) as handle:
                    size = os.fstat(handle.fileno()).st_size
                    if size > MAX_MEDIA_BYTES:
                        raise WorkspaceError(
                            f"File too large for read_media_file: {size} bytes (limit {MAX_MEDIA_BYTES})"
                        )
                    data = base64.b64encode(handle.read()).decode("ascii")
            mime = mimetypes.guess_type(real)[0] or "application/octet-stream"
            block: ImageContent | AudioContent | EmbeddedResource
            if mime.startswith("image/"):
                block = ImageContent(type="image", data=data, mime_type=mime)
            elif mime.startswith("audio/"):
                block = AudioContent(type="audio", data=data, mime_type=mime)
            else:
                resource = BlobResourceContents(uri=Path(real).as_uri(), mime_type=mime, blob=data)
                block = EmbeddedResource(type="resource", resource=resource)
            media_kind: Literal["image", "audio", "resource"] = (
                "resource" if block.type == "resource" else block.type
            )
            info = MediaInfo(path=ws.display(real), mime_type=mime, size=size, kind=media_kind)
            return ToolResult(content=[block], structured_content=info.model_dump())

        return await offload(work, inline=ws.cheap(path))


def _extract_lines(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def extract_lines(
        path: PathArg,
        start_line: Annotated[
            int | None, Field(ge=1, description="First line (1-based) of a range")
        ] = None,
        end_line: Annotated[
            int | None, Field(ge=1, description="Last line of the range, inclusive")
        ] = None,
        pattern: Annotated[
            str | None,
            Field(description="Regex: return every matching line with context instead of a range"),
        ] = None,
        context_lines: Annotated[
            int, Field(ge=0, le=50, description="Lines of context around each pattern match")
        ] = 2,
        encoding: Encoding = "utf-8",
    ) -> Extract:
        """Extract a line range (start_line..end_line) or the lines matching a regex, with context.

        Give either start_line (and optionally end_line) or pattern. At most 100 match ranges
        and about 100k characters are returned.
        """

        def work() -> Extract:
            with refusals():
                real = ws.resolve(path)
                if pattern is None and start_line is None:
                    raise WorkspaceError("Give start_line (and end_line) or a pattern")
                if pattern is not None:
                    regex = _compile(pattern, 0)
                    with ws.open_read(real) as handle:
                        found, cut = textops.extract_by_pattern(
                            handle, encoding, regex, context_lines, 100
                        )
                    ranges = [
                        LineRange(start_line=r.start, end_line=r.end, text="\n".join(r.lines))
                        for r in found
                    ]
                    return _capped_extract(ws.display(real), ranges, cut)
                return _line_range(ws, real, start_line or 1, end_line, encoding)

        return await offload(work, inline=ws.cheap(path))


def _get_file_info(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def get_file_info(path: PathArg) -> FileInfo:
        """Get metadata of a file or directory: type, size, times, permissions, symlink target."""

        def work() -> FileInfo:
            with refusals():
                entry = ws.resolve_entry(path)
                ws.resolve(path)
                lst = os.lstat(entry)
                st = os.stat(entry) if stat.S_ISLNK(lst.st_mode) else lst
                target = os.readlink(entry) if stat.S_ISLNK(lst.st_mode) else None
                return FileInfo(
                    path=ws.display(entry),
                    type=kind(st.st_mode),
                    size=st.st_size,
                    modified=iso(st.st_mtime),
                    accessed=iso(st.st_atime),
                    created=_birth(st),
                    permissions=oct(stat.S_IMODE(st.st_mode)),
                    is_symlink=target is not None,
                    symlink_target=target,
                    mime_type=mimetypes.guess_type(entry)[0] if stat.S_ISREG(st.st_mode) else None,
                )

        return await offload(work, inline=True)


def _hash_file(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def hash_file(
        path: PathArg,
        algorithm: Annotated[
            Literal["sha256", "sha1", "md5", "sha512", "blake2b"],
            Field(description="Hash algorithm"),
        ] = "sha256",
    ) -> HashResult:
        """Compute a file's hash (sha256 by default), streaming it in 1 MB chunks."""

        def work() -> HashResult:
            with refusals():
                real = ws.resolve(path)
                digest = hashlib.new(algorithm)
                size = 0
                with ws.open_read(real) as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                        size += len(chunk)
                return HashResult(
                    path=ws.display(real), algorithm=algorithm, digest=digest.hexdigest(), size=size
                )

        return await offload(work, inline=ws.cheap(path))


def _diff_files(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def diff_files(
        path_a: PathArg,
        path_b: PathArg,
        context_lines: Annotated[
            int, Field(ge=0, le=20, description="Unchanged lines around each change")
        ] = 3,
        encoding: Encoding = "utf-8",
    ) -> DiffResult:
        """Show a unified diff between two text files (at most about 100k characters)."""

        def work() -> DiffResult:
            with refusals():
                real_a, real_b = ws.resolve(path_a), ws.resolve(path_b)
                texts = []
                for real in (real_a, real_b):
                    with ws.open_read(real) as handle:
                        texts.append(handle.read(20 << 20).decode(encoding, errors="replace"))
                diff = textops.unified_diff(
                    texts[0], texts[1], ws.display(real_a), ws.display(real_b), context_lines
                )
                shown, cut = textops.cap(diff, MAX_CHARS)
                return DiffResult(identical=texts[0] == texts[1], diff=shown, truncated=cut)

        return await offload(work, inline=ws.cheap(path_a, path_b, limit=256 * 1024))


def _content(shown: str, start: int, window: textops.LineWindow) -> FileContent:
    count = window.count
    return FileContent(
        path=shown,
        content=window.text,
        start_line=start,
        end_line=start + count - 1 if count else 0,
        total_lines=window.total_lines,
        truncated=window.stopped_at is not None,
        next_offset=window.stopped_at,
    )


def _as_text(got: FileContent) -> TextContent:
    # The model reads the file itself, not a JSON string of it (escaped newlines and quotes
    # cost tokens); the structured result carries the same fields for clients that use it.
    text = got.content
    if got.truncated:
        text += (
            f"\n[truncated: lines {got.start_line}-{got.end_line} of {got.total_lines}; "
            f"read on with offset_line={got.next_offset}]"
        )
    return TextContent(type="text", text=text)


def _birth(st: os.stat_result) -> str | None:
    born = getattr(st, "st_birthtime", None)
    return iso(born) if born is not None else None


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise WorkspaceError(f"Invalid regex {pattern!r}: {exc}") from None


def _line_range(ws: Workspace, real: str, first: int, last: int | None, encoding: str) -> Extract:
    count = (last - first + 1) if last else 20_000
    if count < 1:
        raise WorkspaceError("end_line is before start_line")
    with ws.open_read(real) as handle:
        window = textops.read_window(handle, encoding, first, count, MAX_CHARS)
    text = window.text.removesuffix("\n")
    ranges = [LineRange(start_line=first, end_line=first + window.count - 1, text=text)]
    hint = None
    if window.stopped_at is not None and (last is None or window.stopped_at <= last):
        hint = f"cut at the size cap; continue with start_line={window.stopped_at}"
    return Extract(path=ws.display(real), ranges=ranges, truncated=hint is not None, hint=hint)


def _capped_extract(shown: str, ranges: list[LineRange], cut: bool) -> Extract:
    total = 0
    for index, item in enumerate(ranges):
        total += len(item.text)
        if total > MAX_CHARS:
            ranges, cut = ranges[:index], True
            break
    hint = "more matches exist; narrow the pattern or use start_line/end_line" if cut else None
    return Extract(path=shown, ranges=ranges, truncated=cut, hint=hint)
