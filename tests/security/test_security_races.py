"""Races: a thread swaps workspace paths for links out of the workspace while tools run.

Whatever the timing, no byte outside the workspace may be read (no sentinel in any answer)
or written (every entry outside keeps its content and mtime, nothing new appears). The
property tests generate link layouts (which paths are swapped, absolute or relative links)
and race the swapper against every path-taking tool of the fs, json and tasks families, and
against every operation of the workspace primitive directly. Counts of what was tried are
printed at the end of the module (run with -s to see them).
"""

from __future__ import annotations

import inspect
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kimi_mcp.servers.fs.walk import Excluder, WalkOptions, walk
from security_support import MARK, SWAPS, Servers, make_world, swapping

from kimi_mcp import workspace_tree
from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace

COUNTS: Counter[str] = Counter()
PATHS = ["sub", "sub/a.txt", "sub/d", "sub/d/b.txt", "data.json", "schema.json", "."]
FILES = ["sub/a.txt", "sub/d/b.txt", "data.json", "schema.json"]
ROUNDS = 3  # calls per example while the swapper runs

Args = Callable[[str, str], dict[str, Any]]
# (family, tool, arguments from a drawn path and a drawn file)
TOOLS: list[tuple[str, str, Args]] = [
    ("fs", "read_file", lambda p, f: {"path": f}),
    ("fs", "read_multiple_files", lambda p, f: {"paths": [f, "sub/a.txt"]}),
    ("fs", "read_media_file", lambda p, f: {"path": f}),
    ("fs", "extract_lines", lambda p, f: {"path": f, "pattern": "."}),
    ("fs", "get_file_info", lambda p, f: {"path": p}),
    ("fs", "hash_file", lambda p, f: {"path": f}),
    ("fs", "diff_files", lambda p, f: {"path_a": f, "path_b": "sub/d/b.txt"}),
    ("fs", "list_directory", lambda p, f: {"path": p, "show_hidden": True}),
    ("fs", "directory_tree", lambda p, f: {"path": p}),
    ("fs", "search_files", lambda p, f: {"path": p, "pattern": "*"}),
    ("fs", "search_content", lambda p, f: {"path": p, "regex": "SENTINEL|inside|a"}),
    ("fs", "find_large_files", lambda p, f: {"path": p, "min_size_bytes": 0}),
    ("fs", "disk_usage", lambda p, f: {"path": p}),
    ("fs", "write_file", lambda p, f: {"path": f, "content": "w\n"}),
    ("fs", "write_file", lambda p, f: {"path": f, "content": "w\n", "append": True}),
    ("fs", "edit_file", lambda p, f: {"path": f, "edits": [{"old_text": "a", "new_text": "A"}]}),
    ("fs", "edit_lines", lambda p, f: {"path": f, "edits": [{"line": 1, "mode": "insert_before", "text": "x"}]}),
    ("fs", "create_directory", lambda p, f: {"path": p + "/new/deeper"}),
    ("fs", "copy", lambda p, f: {"source": p, "destination": "copied", "overwrite": True}),
    ("fs", "copy", lambda p, f: {"source": "sub/d", "destination": p, "overwrite": True}),
    ("fs", "move", lambda p, f: {"source": p, "destination": "moved", "overwrite": True}),
    ("fs", "move", lambda p, f: {"source": "sub/d/b.txt", "destination": f, "overwrite": True}),
    ("fs", "delete", lambda p, f: {"path": p, "recursive": True}),
    ("fs", "batch", lambda p, f: {"operations": [
        {"op": "copy", "source": f, "destination": p, "overwrite": True},
        {"op": "mkdir", "path": p + "/m"},
        {"op": "move", "source": p, "destination": "bm", "overwrite": True},
        {"op": "delete", "path": "bm", "recursive": True}], "stop_on_error": False}),
    ("fs", "compress", lambda p, f: {"paths": [p, f], "output_path": p + "/out.zip"}),
    ("fs", "extract_archive", lambda p, f: {"archive_path": "arch.zip", "destination": p, "overwrite": True}),
    ("fs", "sync_directories", lambda p, f: {"source": "sub", "destination": p + "/mirror", "mode": "mirror"}),
    ("fs", "sync_directories", lambda p, f: {"source": p, "destination": "synced", "mode": "update"}),
    ("json", "query", lambda p, f: {"path": f, "expression": "$"}),
    ("json", "structure", lambda p, f: {"path": f}),
    ("json", "validate", lambda p, f: {"path": f, "schema_path": "schema.json"}),
    ("json", "update", lambda p, f: {"path": f, "expression": "$.a", "value": 5}),
    ("tasks", "list", lambda p, f: {}),
    ("tasks", "add", lambda p, f: {"title": "t", "description": "d"}),
    ("tasks", "parse_prd", lambda p, f: {"prd_path": f}),
    ("tasks", "parse_prd", lambda p, f: {}),
]
TOOL_IDS = list(range(len(TOOLS)))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    yield Servers.build(tmp_path_factory.mktemp("race-servers"))
    line = ", ".join(f"{k}: {v}" for k, v in sorted(COUNTS.items()))
    print(f"\n[race cases] {line}")


def _archive(ws: Path) -> None:
    import zipfile

    with zipfile.ZipFile(ws / "arch.zip", "w") as archive:
        archive.writestr("sub/a.txt", "from the archive\n")
        archive.writestr("data.json", '{"a": 9}\n')


def _race(servers: Servers, tool_index: int, path: str, file: str, targets: list[str],
          relative: bool) -> None:
    family, tool, make_args = TOOLS[tool_index]
    with tempfile.TemporaryDirectory() as raw:
        world = make_world(Path(raw).resolve())
        _archive(world.ws)
        servers.deps.roots = [world.ws]
        with swapping(world, targets, relative) as swaps:
            texts = anyio.run(_calls, servers, family, tool, make_args(path, file))
        COUNTS["swaps"] += swaps[0]
        leaked = [t for t in texts if MARK in t]
        assert not leaked, (tool, path, file, targets, leaked[0][:500])
        assert world.untouched(), (tool, path, file, targets)


async def _calls(servers: Servers, family: str, tool: str, args: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    async with Client(servers.family(family)) as client:
        for _ in range(ROUNDS):
            result = await client.call_tool(tool, args, raise_on_error=False)
            texts.extend(getattr(b, "text", "") or "" for b in result.content)
            texts.append(repr(result.structured_content))
            COUNTS["tool calls"] += 1
    return texts


@pytest.mark.parametrize("tool_index", TOOL_IDS, ids=[f"{t[0]}_{t[1]}" for t in TOOLS])
def test_every_path_taking_tool_survives_a_link_swapper(servers: Servers, tool_index: int) -> None:
    # every tool against every swap target at once, with absolute then relative links
    for relative, path, file in ((False, "sub", "sub/a.txt"), (True, "sub/d", "data.json")):
        _race(servers, tool_index, path, file, list(SWAPS), relative)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    tool_index=st.sampled_from(TOOL_IDS),
    path=st.sampled_from(PATHS),
    file=st.sampled_from(FILES),
    targets=st.lists(st.sampled_from(sorted(SWAPS)), min_size=1, max_size=4, unique=True),
    relative=st.booleans(),
)
def test_generated_link_layouts_never_let_a_tool_out(
    servers: Servers, tool_index: int, path: str, file: str, targets: list[str], relative: bool
) -> None:
    COUNTS["generated layouts"] += 1
    _race(servers, tool_index, path, file, targets, relative)


# ---- the primitive itself, without MCP in between: many more rounds -------------------------


def _walk_names(ws: Workspace, path: str) -> str:
    with ws.open_dir(path) as fd:
        return " ".join(rel for _, rel, _, _ in walk(fd, WalkOptions(excluder=Excluder([]))))


def _read(ws: Workspace, path: str) -> str:
    with ws.open_read(path) as handle:
        return handle.read().decode("utf-8", "replace")


OPERATIONS: dict[str, Callable[[Workspace, str, str], object]] = {
    "open_read": lambda ws, p, f: _read(ws, f),
    "read_capped": lambda ws, p, f: ws.read_capped(f, 1 << 20),
    "stat": lambda ws, p, f: repr(ws.stat(p)),
    "lstat": lambda ws, p, f: repr(ws.lstat_or_none(p)),
    "resolve": lambda ws, p, f: ws.resolve(p),
    "walk": lambda ws, p, f: _walk_names(ws, p),
    "write_atomic": lambda ws, p, f: ws.write_atomic(f, b"w"),
    "create_exclusive": lambda ws, p, f: ws.create_exclusive(p + "/new.txt", b"n"),
    "append": lambda ws, p, f: ws.append(f, b"+"),
    "makedirs": lambda ws, p, f: ws.makedirs(p + "/x/y"),
    "copy_tree": lambda ws, p, f: workspace_tree.copy(ws, p, "c", overwrite=True),
    "copy_into": lambda ws, p, f: workspace_tree.copy(ws, "sub", p + "/c", overwrite=True),
    "move": lambda ws, p, f: workspace_tree.move(ws, p, "mv", overwrite=True),
    "move_back": lambda ws, p, f: workspace_tree.move(ws, "mv", p, overwrite=True),
    "remove": lambda ws, p, f: workspace_tree.remove(ws, p + "/d", recursive=True),
}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    operations=st.lists(st.sampled_from(sorted(OPERATIONS)), min_size=1, max_size=6),
    path=st.sampled_from(PATHS),
    file=st.sampled_from(FILES),
    targets=st.lists(st.sampled_from(sorted(SWAPS)), min_size=1, max_size=5, unique=True),
    relative=st.booleans(),
)
def test_no_primitive_operation_follows_a_link_swapped_in_mid_call(
    operations: list[str], path: str, file: str, targets: list[str], relative: bool
) -> None:
    with tempfile.TemporaryDirectory() as raw:
        world = make_world(Path(raw).resolve())
        space = Workspace(lambda: [world.ws])
        seen: list[str] = []
        with swapping(world, targets, relative) as swaps:
            for _ in range(20):
                for name in operations:
                    try:
                        seen.append(str(OPERATIONS[name](space, path, file)))
                    except WorkspaceError:
                        pass
                    COUNTS["primitive operations"] += 1
        COUNTS["primitive swaps"] += swaps[0]
        assert not [s for s in seen if MARK in s]
        assert world.untouched(), (operations, path, file, targets)


# ---- what a lost race looks like to the caller ------------------------------------------------


def _public_operations() -> list[tuple[str, Callable[..., object]]]:
    """Workspace methods whose first parameter is `path`, and workspace_tree functions whose
    first parameter is the workspace: everything a tool family calls with a path."""

    def first(fn: object, skip: int) -> str:
        names = list(inspect.signature(fn).parameters)  # type: ignore[arg-type]
        return names[skip] if len(names) > skip else ""

    methods = [
        (f"Workspace.{name}", fn)
        for name, fn in vars(Workspace).items()
        if not name.startswith("_") and inspect.isfunction(fn) and first(fn, 1) == "path"
    ]
    tree = [
        (f"workspace_tree.{name}", fn)
        for name, fn in vars(workspace_tree).items()
        if not name.startswith("_")
        and inspect.isfunction(fn)
        and fn.__module__ == workspace_tree.__name__
        and first(fn, 0) == "ws"
    ]
    return methods + tree


def test_every_path_taking_workspace_operation_maps_kernel_errors() -> None:
    operations = _public_operations()
    assert {"Workspace.makedirs", "Workspace.open_read", "workspace_tree.move"} <= {
        name for name, _ in operations
    }
    unmapped = [name for name, fn in operations if not getattr(fn, "kernel_errors", False)]
    assert unmapped == []


def test_an_entry_removed_between_the_walk_and_the_operation_is_a_clear_refusal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "link").symlink_to("a.txt")
    space = Workspace(lambda: [tmp_path])

    def vanished(*args: object, **kwargs: object) -> str:
        raise FileNotFoundError(2, "No such file or directory", "link")

    monkeypatch.setattr(workspace_tree.os, "readlink", vanished)
    with pytest.raises(WorkspaceError, match="Not found: sub/link"):
        workspace_tree.move(space, "sub/link", "moved", overwrite=True)

    monkeypatch.undo()
    real_mkdir = workspace_tree.os.mkdir

    def parent_gone(name: str, *args: object, **kwargs: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", name)

    monkeypatch.setattr(workspace_tree.os, "mkdir", parent_gone)
    with pytest.raises(WorkspaceError, match="Not found: new/x/y"):
        space.makedirs("new/x/y")
    assert real_mkdir is not parent_gone
