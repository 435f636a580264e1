"""fs tools that only read: files, media, lines, listings, info, hashes, diffs."""

# No `from __future__ import annotations`: real annotation objects spare fastmcp an eval of
# every parameter type when the server is built (a third of the start-up cost).

import base64
import hashlib
import mimetypes
import os
import stat
import time
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

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
from kimi_mcp.workspace import Workspace

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
from .tooling import (
    MAX_CHARS,
    READ,
    Encoding,
    PathArg,
    compile_regex,
    iso,
    kind,
    offload,
    refusals,
    tool,
)

MAX_MEDIA_BYTES = 10 << 20
READ_MAX_CHARS = 128 * 1024  # a 128 KB text file comes back whole
MAX_FILES = 50
MAX_DIFF_BYTES = 20 << 20
EXTRACT_SECONDS = 5.0  # time budget of a pattern extract (the regex included)
_SNIFF = 8192


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
            with refusals("list_allowed_directories"):
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
        offset_char: Annotated[
            int,
            Field(
                ge=0,
                description="0-based character in offset_line to start at: to read on inside "
                "a line too long for one answer (pass the next_char a cut answer gave)",
            ),
        ] = 0,
    ) -> ToolResult:
        """Read a text file, or a window of its lines.

        Returns at most max_lines lines and about 128k characters; when `truncated` is true,
        call again with offset_line=next_offset (and offset_char=next_char when a single long
        line was cut). Files are streamed and never loaded whole, whatever their size. A
        binary file (NUL bytes) is refused with a pointer to fs_read_media_file; bytes that are
        not valid in `encoding` are shown as U+FFFD and reported in `note`.
        """

        def work() -> FileContent:
            with refusals("read_file", path=path, encoding=encoding):
                real = ws.resolve(path)
                with ws.open_read(real) as handle:
                    _refuse_binary(handle, ws.display(real), encoding)
                    window = textops.read_window(
                        handle, encoding, offset_line, max_lines, READ_MAX_CHARS, offset_char
                    )
                return _content(ws.display(real), offset_line, window, encoding)

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
                    with refusals("read_multiple_files", paths=item, encoding=encoding):
                        real = ws.resolve(item)
                        with ws.open_read(real) as handle:
                            _refuse_binary(handle, ws.display(real), encoding)
                            window = textops.read_window(handle, encoding, 1, 20_000, budget)
                    got = _content(ws.display(real), 1, window, encoding)
                    files.append(
                        FileEntry(
                            path=got.path,
                            content=got.content,
                            total_lines=got.total_lines,
                            truncated=got.truncated,
                            next_offset=got.next_offset,
                            next_char=got.next_char,
                            note=got.note,
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
            with refusals("read_media_file", path=path):
                real = ws.resolve(path)
                with ws.open_read(real) as handle:
                    raw = handle.read(MAX_MEDIA_BYTES + 1)
                    size = len(raw)
                    if size > MAX_MEDIA_BYTES:
                        raise WorkspaceError(
                            f"File too large for fs_read_media_file: over {MAX_MEDIA_BYTES} bytes; "
                            "use fs_hash_file or fs_get_file_info to learn about it"
                        )
                    data = base64.b64encode(raw).decode("ascii")
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
            with refusals("extract_lines", path=path, pattern=pattern, encoding=encoding):
                real = ws.resolve(path)
                if pattern is None and start_line is None:
                    raise WorkspaceError("Give start_line (and end_line) or a pattern")
                if pattern is not None:
                    regex = compile_regex(pattern, 0, "pattern")
                    deadline = time.monotonic() + EXTRACT_SECONDS
                    with ws.open_read(real) as handle:
                        _refuse_binary(handle, ws.display(real), encoding)
                        try:
                            found, cut = textops.extract_by_pattern(
                                handle, encoding, regex, context_lines, 100, deadline
                            )
                        except TimeoutError:
                            raise ToolError(
                                f"The pattern ran past the {EXTRACT_SECONDS:.0f} s time limit "
                                "(it likely backtracks catastrophically); simplify it or use "
                                "start_line/end_line (fs_extract_lines, parameter `pattern`)"
                            ) from None
                    ranges = [
                        LineRange(start_line=r.start, end_line=r.end, text="\n".join(r.lines))
                        for r in found
                    ]
                    return _capped_extract(ws.display(real), ranges, cut)
                return _line_range(ws, real, start_line or 1, end_line, encoding)

        # a pattern may run up to its time limit: never on the loop, even on a small file
        return await offload(work, inline=pattern is None and ws.cheap(path))


def _get_file_info(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def get_file_info(path: PathArg) -> FileInfo:
        """Get metadata of a file or directory: type, size, times, permissions, symlink target."""

        def work() -> FileInfo:
            with refusals("get_file_info", path=path):
                entry = ws.resolve_entry(path)
                lst = ws.stat(entry, follow=False)
                st = ws.stat(entry) if stat.S_ISLNK(lst.st_mode) else lst
                target = ws.readlink(entry) if stat.S_ISLNK(lst.st_mode) else None
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
            with refusals("hash_file", path=path):
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
            with refusals("diff_files", path_a=path_a, path_b=path_b, encoding=encoding):
                real_a, real_b = ws.resolve(path_a), ws.resolve(path_b)
                texts = []
                for real in (real_a, real_b):
                    with ws.open_read(real) as handle:
                        _refuse_binary(handle, ws.display(real), encoding)
                        data = handle.read(MAX_DIFF_BYTES + 1)
                    if len(data) > MAX_DIFF_BYTES:
                        raise WorkspaceError(
                            f"{ws.display(real)} is over {MAX_DIFF_BYTES >> 20} MB, too large "
                            "to diff here; compare fs_hash_file digests or fs_extract_lines ranges"
                        )
                    texts.append(data.decode(encoding, errors="replace"))
                diff = textops.unified_diff(
                    texts[0], texts[1], ws.display(real_a), ws.display(real_b), context_lines
                )
                shown, cut = textops.cap(diff, MAX_CHARS)
                return DiffResult(identical=texts[0] == texts[1], diff=shown, truncated=cut)

        return await offload(work, inline=ws.cheap(path_a, path_b, limit=256 * 1024))


def _content(
    shown: str, start: int, window: textops.LineWindow, encoding: str
) -> FileContent:
    count = window.count
    note = None
    if window.invalid_bytes:
        note = (
            f"{window.invalid_bytes} byte(s) are not valid {encoding} and show as U+FFFD; "
            "if the file uses another encoding pass it as encoding= (e.g. latin-1, cp1252, "
            "utf-16), or use fs_read_media_file for binary data"
        )
    return FileContent(
        path=shown,
        content=window.text,
        start_line=start,
        end_line=start + count - 1 if count else 0,
        total_lines=window.total_lines,
        truncated=window.stopped_at is not None,
        next_offset=window.stopped_at,
        next_char=window.stopped_char,
        note=note,
    )


def _as_text(got: FileContent) -> TextContent:
    # The model reads the file itself, not a JSON string of it (escaped newlines and quotes
    # cost tokens); the structured result carries the same fields for clients that use it.
    text = got.content
    if got.note:
        text += f"\n[note: {got.note}]"
    if got.truncated:
        onward = f"offset_line={got.next_offset}"
        if got.next_char is not None:
            onward += f", offset_char={got.next_char} (line {got.next_offset} is long and was cut)"
        text += (
            f"\n[truncated: lines {got.start_line}-{got.end_line} of {got.total_lines}; "
            f"read on with {onward}]"
        )
    return TextContent(type="text", text=text)


def _refuse_binary(handle: BinaryIO, shown: str, encoding: str) -> None:
    """A file with NUL bytes in its first block is not text (unless the caller chose a wide
    encoding such as utf-16, which has them): say what it is and what to use instead."""
    if encoding.replace("_", "-").lower() not in ("utf-8", "utf8", "ascii"):
        return
    sample = handle.read(_SNIFF)
    handle.seek(0)
    if not textops.sniff_binary(sample):
        return
    guessed = mimetypes.guess_type(shown)[0]
    what = f" ({guessed})" if guessed else ""
    raise WorkspaceError(
        f"{shown} is a binary file{what}: it holds NUL bytes, so it is not {encoding} text. "
        "Read it with fs_read_media_file (images, audio, other binaries as base64), or pass "
        "encoding='latin-1' to see its bytes as text, or utf-16 if it is UTF-16 text"
    )


def _birth(st: os.stat_result) -> str | None:
    born = getattr(st, "st_birthtime", None)
    return iso(born) if born is not None else None


def _line_range(ws: Workspace, real: str, first: int, last: int | None, encoding: str) -> Extract:
    count = (last - first + 1) if last else 20_000
    if count < 1:
        raise WorkspaceError("end_line is before start_line")
    with ws.open_read(real) as handle:
        _refuse_binary(handle, ws.display(real), encoding)
        window = textops.read_window(handle, encoding, first, count, MAX_CHARS)
    text = window.text.removesuffix("\n")
    ranges = [LineRange(start_line=first, end_line=first + window.count - 1, text=text)]
    hint = None
    if window.stopped_char is not None:
        hint = (
            f"line {window.stopped_at} is too long for one answer; read on with fs_read_file "
            f"offset_line={window.stopped_at} offset_char={window.stopped_char}"
        )
    elif window.stopped_at is not None and (last is None or window.stopped_at <= last):
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
