"""Property tests: whatever path a model sends, nothing outside the root is read or written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from fs_support import make_deps, snapshot, workspace_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kimi_mcp.servers.fs import build_server
from kimi_mcp.servers.fs.fileops import copy, delete, move

from kimi_mcp.deps import Deps
from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import inside

PARTS = [
    "..",
    ".",
    "",
    "sub",
    "a.txt",
    "link_out",
    "link_in",
    "chain",
    "dangling",
    "ws",
    "ws-evil",
    "outside",
    "secret.txt",
    "new",
    "日本",
    "x\x00y",
    "~",
]


INSIDE = ["sub", "a.txt", "link_in", "new", "日本", ".", "sub/a.txt", "link_in/a.txt"]


@st.composite
def paths(draw: st.DrawFn) -> str:
    """Half plausible paths inside the workspace, half hostile mixtures of the parts above."""
    if draw(st.booleans()):
        parts = draw(st.lists(st.sampled_from(INSIDE), min_size=1, max_size=3))
        lead = draw(st.sampled_from(["", "{base}/ws/"]))
    else:
        parts = draw(st.lists(st.sampled_from(PARTS), min_size=1, max_size=6))
        lead = draw(st.sampled_from(["", "/", "{base}/", "{base}/ws/", "~/"]))
    return lead + "/".join(parts)


@contextmanager
def world() -> Iterator[tuple[Path, Path, Path]]:
    """A fresh base with ws (holding inward and outward links), ws-evil and outside."""
    with tempfile.TemporaryDirectory() as raw:
        base = Path(raw).resolve()
        ws, outside, evil = base / "ws", base / "outside", base / "ws-evil"
        (ws / "sub").mkdir(parents=True)
        (ws / "sub" / "a.txt").write_text("inside")
        outside.mkdir()
        (outside / "secret.txt").write_text("secret")
        evil.mkdir()
        (evil / "a.txt").write_text("evil")
        (ws / "link_out").symlink_to(outside)
        (ws / "link_in").symlink_to("sub")
        (ws / "chain").symlink_to("link_out")
        (ws / "dangling").symlink_to(outside / "nope")
        yield base, ws, outside


def _untouched(base: Path, ws: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(base).items() if not inside(str(base / k), str(ws))}


SLOW_OK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.fixture(autouse=True)
def _home_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nonexistent-home")


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(path=paths())
def test_resolve_returns_only_paths_whose_real_location_is_inside(path: str) -> None:
    with world() as (base, ws, _):
        space = workspace_for(ws)
        try:
            real = space.resolve(path.format(base=base))
        except WorkspaceError as exc:
            assert str(exc)
            return
        assert inside(os.path.realpath(real), str(ws))


OPS = ["read", "write", "append", "create", "mkdir", "delete", "copy_to", "move_to", "copy_from"]


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(op=st.sampled_from(OPS), path=paths(), other=paths())
def test_no_operation_reads_or_changes_anything_outside(op: str, path: str, other: str) -> None:
    with world() as (base, ws, _):
        space = workspace_for(ws)
        before = _untouched(base, ws)
        target, second = path.format(base=base), other.format(base=base)
        try:
            _apply(space, op, target, second)
        except (WorkspaceError, OSError):
            pass
        assert _untouched(base, ws) == before


def _apply(space: Any, op: str, target: str, second: str) -> None:
    if op == "read":
        with space.open_read(space.resolve(target)) as handle:
            assert handle.read() != b"secret"
    elif op == "write":
        space.write_atomic(space.resolve(target), b"w")
    elif op == "append":
        space.append(space.resolve(target), b"a")
    elif op == "create":
        space.create_exclusive(space.resolve(target), b"c")
    elif op == "mkdir":
        space.makedirs(space.resolve(target))
    elif op == "delete":
        delete(space, space.resolve_entry(target), recursive=True)
    elif op == "copy_to":
        copy(space, space.resolve("sub"), space.resolve(target), overwrite=True)
    elif op == "move_to":
        move(space, space.resolve_entry("sub/a.txt"), space.resolve(target), overwrite=True)
    else:
        copy(space, space.resolve(target), space.resolve(second), overwrite=True)


TOOL_CALLS = [
    ("read_file", "path"),
    ("write_file", "path"),
    ("get_file_info", "path"),
    ("list_directory", "path"),
    ("directory_tree", "path"),
    ("search_content", "path"),
    ("delete", "path"),
    ("create_directory", "path"),
    ("hash_file", "path"),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deps, FastMCP]:
    """One server for every example; each example points its root at a fresh world."""
    deps = make_deps(tmp_path_factory.mktemp("fs-props"))
    return deps, build_server(deps)


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
@given(call=st.sampled_from(TOOL_CALLS), path=paths())
def test_no_tool_reveals_or_changes_anything_outside(
    shared: tuple[Deps, FastMCP], call: tuple[str, str], path: str
) -> None:
    tool, key = call
    deps, server = shared
    with world() as (base, ws, _):
        deps.roots = [ws]
        args: dict[str, Any] = {key: path.format(base=base)}
        if tool == "write_file":
            args["content"] = "w"
        if tool == "search_content":
            args["regex"] = "secret|evil"
        if tool == "delete":
            args["recursive"] = True
        before = _untouched(base, ws)

        async def run() -> Any:
            async with Client(server) as client:
                return await client.call_tool(tool, args, raise_on_error=False)

        result = anyio.run(run)
        assert _untouched(base, ws) == before
        shown = str(result.structured_content or "") + "".join(
            getattr(block, "text", "") for block in result.content
        )
        assert "secret" not in shown.replace("secret|evil", "").replace("secret.txt", "")
        assert '"evil"' not in shown
