"""fs tools that list and search: directory listing, tree, name/content search, sizes."""

# No `from __future__ import annotations`: real annotation objects spare fastmcp an eval of
# every parameter type when the server is built (a third of the start-up cost).

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import regex as re
from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult
from mcp.types import TextContent
from pydantic import Field

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace, listdir

from . import search
from .models import (
    ContentMatch,
    DirectoryListing,
    DiskUsage,
    LargeFiles,
    ListedEntry,
    SearchContent,
    SearchFiles,
    SizedEntry,
    TreeResult,
)
from .tooling import (
    MAX_LIST,
    READ,
    ExcludePatterns,
    compile_regex,
    iso,
    kind,
    offload,
    refusals,
    require_dir,
    tool,
)
from .walk import Excluder, Glob, WalkOptions, bounded_glob_regex, gitignore_for, tree

SEARCH_SECONDS = 10.0  # time budget of one content search (the regex included)

SearchPath = Annotated[str, Field(description="Directory to search recursively, or a single file")]
DirArg = Annotated[
    str, Field(description="Directory inside the workspace (relative to the first root)")
]
UseDefaults = Annotated[
    bool,
    Field(description="Also skip .git, node_modules, .venv, __pycache__ and other tool dirs"),
]
_SORT_KEYS: dict[str, Callable[[ListedEntry], Any]] = {
    "name": lambda e: e.name.lower(),
    "size": lambda e: -e.size,
    "modified": lambda e: e.modified,
    "type": lambda e: (e.type, e.name.lower()),
}


def register(mcp: FastMCP, ws: Workspace) -> None:
    for add in (
        _list_directory,
        _directory_tree,
        _search_files,
        _search_content,
        _find_large_files,
        _disk_usage,
    ):
        add(mcp, ws)


def _list_directory(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    async def list_directory(
        path: DirArg = ".",
        pattern: Annotated[
            str | None, Field(description="Glob on entry names, e.g. `*.py`")
        ] = None,
        show_hidden: Annotated[
            bool, Field(description="Include names starting with a dot")
        ] = False,
        sort_by: Annotated[
            Literal["name", "size", "modified", "type"],
            Field(description="Sort order; size is largest first, modified oldest first"),
        ] = "name",
        page: Annotated[int, Field(ge=1, description="1-based page number")] = 1,
        page_size: Annotated[int, Field(ge=1, le=MAX_LIST, description="Entries per page")] = 200,
    ) -> DirectoryListing:
        """List one directory's entries with type, size and modification time, a page at a time.

        When next_page is set, call again with page=next_page for the rest.
        """

        def work() -> DirectoryListing:
            with refusals("list_directory", path=path):
                real = ws.resolve(path)
                require_dir(ws, real)
                glob = Glob(pattern) if pattern else None
                entries: list[ListedEntry] = []
                with ws.open_dir(real) as fd:
                    for entry in listdir(fd):
                        if not show_hidden and entry.name.startswith("."):
                            continue
                        if glob is not None and not glob.regex.match(entry.name):
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue  # removed while listing
                        entries.append(
                            ListedEntry(
                                name=entry.name,
                                type=kind(st.st_mode),
                                size=st.st_size,
                                modified=iso(st.st_mtime),
                            )
                        )
                entries.sort(key=_SORT_KEYS[sort_by])
                start = (page - 1) * page_size
                more = start + page_size < len(entries)
                return DirectoryListing(
                    path=ws.display(real),
                    entries=entries[start : start + page_size],
                    total=len(entries),
                    page=page,
                    page_size=page_size,
                    next_page=page + 1 if more else None,
                )

        # a glob that `regex` must match under its time limit could hold the loop that long
        return await offload(work, inline=not pattern or bounded_glob_regex(pattern)[1])


def _directory_tree(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ, output_schema=TreeResult.model_json_schema())
    def directory_tree(
        path: DirArg = ".",
        max_depth: Annotated[int, Field(ge=1, le=50, description="Levels to descend")] = 6,
        exclude_patterns: ExcludePatterns = [],  # noqa: B006 - pydantic copies defaults
        use_default_excludes: UseDefaults = True,
        respect_gitignore: Annotated[
            bool, Field(description="Skip what .gitignore files ignore")
        ] = True,
        max_entries: Annotated[
            int, Field(ge=1, le=20_000, description="Stop after this many entries")
        ] = 2000,
    ) -> ToolResult:
        """Show a directory's tree as an indented outline (two spaces per level, dirs end with /).

        Symlinks are listed but never followed. When truncated, narrow path, lower max_depth or
        add exclude_patterns.
        """
        with refusals("directory_tree", path=path):
            real = ws.resolve(path)
            require_dir(ws, real)
            options = _options(ws, real, exclude_patterns, use_default_excludes, respect_gitignore)
            options.max_depth = max_depth
            with ws.open_dir(real) as fd:
                result = tree(fd, options, max_entries)
            hint = (
                "cut at max_entries; narrow path, lower max_depth or add exclude_patterns"
                if result.truncated
                else None
            )
            got = TreeResult(
                path=ws.display(real),
                tree="\n".join(result.lines),
                files=result.files,
                directories=result.dirs,
                truncated=result.truncated,
                hint=hint,
            )
            # the model reads the outline itself, not a JSON string with escaped newlines
            summary = f"[{got.files} files, {got.directories} directories under {got.path}"
            summary += f"; truncated: {hint}]" if hint else "]"
            text = TextContent(type="text", text=f"{got.tree}\n{summary}")
            return ToolResult(content=[text], structured_content=got.model_dump())


def _search_files(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    def search_files(
        pattern: Annotated[
            str,
            Field(
                description="Glob: `*.py` matches names at any depth; `src/**/test_*.py` matches paths from `path`; `{a,b}` alternation"
            ),
        ],
        path: DirArg = ".",
        exclude_patterns: ExcludePatterns = [],  # noqa: B006
        use_default_excludes: UseDefaults = True,
        max_results: Annotated[
            int, Field(ge=1, le=MAX_LIST, description="Most paths to return")
        ] = 200,
    ) -> SearchFiles:
        """Find files and directories by glob under a directory (recursive; dirs end with /).

        Paths are relative to the first workspace root. Symlinked dirs are not entered.
        """
        with refusals("search_files", path=path, pattern=pattern):
            real = ws.resolve(path)
            require_dir(ws, real)
            options = _options(ws, real, exclude_patterns, use_default_excludes, False)
            with ws.open_dir(real) as fd:
                found, cut = search.find_names(fd, Glob(pattern), options, max_results)
            base = ws.display(real)
            prefix = "" if base == "." else base.rstrip("/") + "/"
            hint = (
                f"more than {max_results} matches; narrow the pattern or the path" if cut else None
            )
            return SearchFiles(
                path=base, matches=[prefix + p for p in found], truncated=cut, hint=hint
            )


def _search_content(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    def search_content(
        regex: Annotated[
            str, Field(description="Python regular expression, matched per line (MULTILINE)")
        ],
        path: SearchPath = ".",
        file_pattern: Annotated[
            str | None, Field(description="Only files matching this glob, e.g. `*.py`")
        ] = None,
        case_sensitive: Annotated[bool, Field(description="Match case exactly")] = True,
        context_lines: Annotated[
            int, Field(ge=0, le=10, description="Lines shown before and after each match")
        ] = 0,
        max_results: Annotated[
            int, Field(ge=1, le=MAX_LIST, description="Most matching lines to return")
        ] = 100,
        exclude_patterns: ExcludePatterns = [],  # noqa: B006
        use_default_excludes: UseDefaults = True,
    ) -> SearchContent:
        """Search file contents for a regex (like grep -rn); skips binaries, respects .gitignore.

        `path` may be a directory (searched recursively) or one file. Files over 5 MB are
        skipped. The search stops after 10 s (a backtracking regex cannot hang the server);
        `timed_out` then says so. When truncated, narrow path or file_pattern.
        """
        with refusals("search_content", path=path, regex=regex, file_pattern=file_pattern):
            real = ws.resolve(path)
            flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
            compiled = compile_regex(regex, flags, "regex")
            if ws.lstat_or_none(real) is None:
                raise WorkspaceError(f"Not found: {ws.display(real)}")
            options = _options(ws, real, exclude_patterns, use_default_excludes, True)
            query = search.ContentQuery(
                regex=compiled,
                file_glob=Glob(file_pattern) if file_pattern else None,
                context=context_lines,
                limit=max_results,
                max_file_bytes=5 << 20,
                deadline=time.monotonic() + SEARCH_SECONDS,
            )
            found = search.search_content(ws, real, query, options)
            if found.timed_out and not found.hits:
                raise WorkspaceError(
                    f"The regex ran past the {SEARCH_SECONDS:.0f} s time limit after "
                    f"{found.files_scanned} file(s) without a match; it likely backtracks "
                    "catastrophically (nested quantifiers like (a+)+). Simplify the regex or "
                    "narrow path / file_pattern"
                )
            hint = None
            if found.timed_out:
                hint = (
                    f"stopped at the {SEARCH_SECONDS:.0f} s time limit; results are partial: "
                    "simplify the regex or narrow path / file_pattern"
                )
            elif found.truncated:
                hint = f"stopped at {max_results} matches; narrow path, regex or file_pattern"
            return SearchContent(
                matches=[
                    ContentMatch(
                        path=h.path, line=h.line, text=h.text, before=h.before, after=h.after
                    )
                    for h in found.hits
                ],
                files_scanned=found.files_scanned,
                files_matched=found.files_matched,
                skipped_binary=found.skipped_binary,
                skipped_large=found.skipped_large,
                truncated=found.truncated,
                timed_out=found.timed_out,
                hint=hint,
            )


def _find_large_files(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    def find_large_files(
        path: DirArg = ".",
        min_size_bytes: Annotated[
            int, Field(ge=0, description="Ignore files smaller than this")
        ] = 1 << 20,
        max_results: Annotated[
            int, Field(ge=1, le=MAX_LIST, description="How many of the largest to return")
        ] = 50,
        exclude_patterns: ExcludePatterns = [],  # noqa: B006
        use_default_excludes: UseDefaults = False,
    ) -> LargeFiles:
        """Find the largest files under a directory, largest first."""
        with refusals("find_large_files", path=path):
            real = ws.resolve(path)
            require_dir(ws, real)
            options = _options(ws, real, exclude_patterns, use_default_excludes, False)
            with ws.open_dir(real) as fd:
                sizes = search.largest_files(fd, options, min_size_bytes, max_results)
            base = ws.display(real)
            prefix = "" if base == "." else base.rstrip("/") + "/"
            files = [SizedEntry(path=prefix + rel, size=size) for size, rel in sizes.largest]
            return LargeFiles(
                files=files, files_scanned=sizes.files, truncated=len(files) >= max_results
            )


def _disk_usage(mcp: FastMCP, ws: Workspace) -> None:
    @tool(mcp, annotations=READ)
    def disk_usage(
        path: DirArg = ".",
        top_n: Annotated[
            int,
            Field(ge=1, le=MAX_LIST, description="How many of the largest direct children to list"),
        ] = 20,
    ) -> DiskUsage:
        """Measure the total size of a directory and of its largest direct children (like du)."""
        with refusals("disk_usage", path=path):
            real = ws.resolve(path)
            require_dir(ws, real)
            options = WalkOptions(excluder=Excluder([], defaults=False))
            with ws.open_dir(real) as fd:
                sizes, children = search.usage(fd, options)
            ranked = sorted(children.items(), key=lambda item: -item[1])
            return DiskUsage(
                path=ws.display(real),
                total_bytes=sizes.total,
                files=sizes.files,
                directories=sizes.dirs,
                largest_children=[
                    SizedEntry(path=name, size=size) for name, size in ranked[:top_n]
                ],
                truncated=len(ranked) > top_n,
            )


def _options(
    ws: Workspace, real: str, patterns: list[str], defaults: bool, gitignore: bool
) -> WalkOptions:
    ignore = None
    if gitignore:
        root = next(
            (r for r in ws.roots if real == r or real.startswith(r.rstrip("/") + "/")), real
        )
        ignore = gitignore_for(ws, real, root)
    return WalkOptions(excluder=Excluder(patterns, defaults=defaults), gitignore=ignore)
