"""Paths and links: the escapes of issue 11 as regression tests, one family after another.

Each test builds a world with sentinel files outside the workspace and asserts, after the
calls, that no answer carries a sentinel byte and that nothing outside changed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import anyio
import pytest
from security_support import MARK, Servers, World, call_raw, make_world

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace

pytestmark = pytest.mark.anyio


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def servers(tmp_path: Path, world: World) -> Servers:
    return Servers.build(tmp_path)


async def refused(servers: Servers, family: str, tool: str, **args: object) -> str:
    is_error, text = await call_raw(servers.family(family), tool, dict(args))
    assert is_error, text
    assert MARK not in text
    return text


# ---- tasks: the board and the PRD -----------------------------------------------------------


async def test_a_taskmaster_link_out_of_the_workspace_makes_tasks_add_refuse(
    servers: Servers, world: World
) -> None:
    os.rename(world.ws / ".taskmaster", world.ws / "tm-real")
    os.symlink(world.outside, world.ws / ".taskmaster")
    text = await refused(servers, "tasks", "add", title="Write docs", description="d")
    assert "Access denied" in text and ".taskmaster" in text
    assert world.untouched() and not (world.outside / "tasks").exists()


async def test_a_tasks_json_link_to_an_outside_file_is_never_printed(
    servers: Servers, world: World
) -> None:
    os.symlink(world.outside / "tasks.json", world.ws / ".taskmaster" / "tasks" / "tasks.json")
    text = await refused(servers, "tasks", "list")
    assert "points outside" in text
    await refused(servers, "tasks", "add", title="x", description="y")
    assert world.untouched()


async def test_a_state_json_link_out_is_not_read_for_the_current_tag(
    servers: Servers, world: World
) -> None:
    (world.outside / "state.json").write_text(json.dumps({"currentTag": MARK}))
    world.before = world.outside_state()
    os.symlink(world.outside / "state.json", world.ws / ".taskmaster" / "state.json")
    is_error, text = await call_raw(servers.tasks, "add", {"title": "t", "description": "d"})
    assert not is_error and MARK not in text
    board = json.loads((world.ws / ".taskmaster" / "tasks" / "tasks.json").read_text())
    assert list(board) == ["master"] and world.untouched()


@pytest.mark.parametrize("prd", ["outside", "link", "dirlink"])
async def test_parse_prd_never_reads_a_prd_outside_the_workspace(
    servers: Servers, world: World, prd: str
) -> None:
    os.symlink(world.outside / "prd.md", world.ws / "prd-link.md")
    os.symlink(world.outside, world.ws / "docs-link")
    path = {
        "outside": str(world.outside / "prd.md"),
        "link": "prd-link.md",
        "dirlink": "docs-link/prd.md",
    }[prd]
    text = await refused(servers, "tasks", "parse_prd", prd_path=path)
    assert "Access denied" in text and "prd_path" in text
    assert world.untouched()


# ---- fs: copies and moves never follow links -------------------------------------------------


@pytest.mark.parametrize("tool", ["copy", "batch"])
async def test_overwriting_copies_never_write_through_a_destination_link(
    servers: Servers, world: World, tool: str
) -> None:
    (world.ws / "src" / "inner").mkdir(parents=True)
    (world.ws / "src" / "inner" / "b.txt").write_text("pwned\n")
    (world.ws / "src" / "a.txt").write_text("pwned\n")
    (world.ws / "dst").mkdir()
    os.symlink(world.outside / "inner", world.ws / "dst" / "inner")
    os.symlink(world.outside / "a.txt", world.ws / "dst" / "a.txt")
    args: dict[str, object] = {"source": "src", "destination": "dst", "overwrite": True}
    if tool == "batch":
        args = {"operations": [{"op": "copy", **args}]}
    is_error, text = await call_raw(servers.fs, tool, args)
    assert is_error == (tool == "copy") and MARK not in text
    assert "never write through a link" in text
    assert world.untouched(), text
    assert os.readlink(world.ws / "dst" / "inner") == str(world.outside / "inner")


async def test_a_single_file_copy_onto_a_link_out_replaces_the_link_not_its_target(
    servers: Servers, world: World
) -> None:
    os.symlink(world.outside / "a.txt", world.ws / "target.txt")
    text = await refused(
        servers, "fs", "copy", source="sub/a.txt", destination="target.txt", overwrite=True
    )
    assert "points outside" in text and world.untouched()


async def test_a_relative_link_copied_to_a_shallower_directory_never_points_outside(
    servers: Servers, world: World
) -> None:
    # deep/er/link -> ../../sub/a.txt points inside; copied verbatim to the top it would be
    # ../../sub/a.txt from ws, i.e. outside: it must be re-pointed
    (world.ws / "deep" / "er").mkdir(parents=True)
    os.symlink("../../sub/a.txt", world.ws / "deep" / "er" / "link")
    for source, destination in (("deep/er", "top"), ("deep/er/link", "toplink")):
        is_error, text = await call_raw(
            servers.fs, "copy", {"source": source, "destination": destination}
        )
        assert not is_error, text
    copied = world.ws / "top" / "link"
    assert (world.base / "ws" / "top" / os.readlink(copied)).resolve() == world.ws / "sub/a.txt"
    assert (world.ws / "toplink").read_text() == "inside a\n"
    # and a write through the copies lands inside
    for path in ("top/link", "toplink"):
        is_error, text = await call_raw(
            servers.fs, "write_file", {"path": path, "content": "changed\n"}
        )
        assert not is_error, text
    assert world.untouched()


async def test_moving_a_relative_link_keeps_it_pointing_inside(
    servers: Servers, world: World
) -> None:
    (world.ws / "deep" / "er").mkdir(parents=True)
    os.symlink("../../sub/a.txt", world.ws / "deep" / "er" / "link")
    is_error, text = await call_raw(servers.fs, "move", {"source": "deep/er/link", "destination": "l"})
    assert not is_error, text
    assert (world.ws / "l").resolve() == world.ws / "sub" / "a.txt"
    is_error, text = await call_raw(servers.fs, "move", {"source": "deep", "destination": "sub/d/deep"})
    assert not is_error, text


async def test_a_directory_move_that_would_turn_a_relative_link_outward_is_refused(
    servers: Servers, world: World
) -> None:
    (world.ws / "pkg").mkdir()
    os.symlink("../sub/a.txt", world.ws / "pkg" / "link")  # inside now; outside from ws/sub/d
    text = await refused(servers, "fs", "move", source="pkg", destination="../pkg")
    assert "outside the workspace" in text
    (world.ws / "a" / "b" / "c").mkdir(parents=True)
    os.symlink("../../../sub/a.txt", world.ws / "a" / "b" / "c" / "link")
    text = await refused(servers, "fs", "move", source="a/b", destination="b")
    assert "would point outside" in text
    assert (world.ws / "a" / "b" / "c" / "link").is_symlink() and world.untouched()


# ---- json: schema refs and files ------------------------------------------------------------


async def test_json_validate_never_reads_a_file_ref_outside_the_workspace(
    servers: Servers, world: World
) -> None:
    schema = {"$ref": (world.outside / "schema.json").as_uri()}
    text = await refused(servers, "json", "validate", document="{}", schema=schema)
    assert "cannot be resolved offline" in text and world.untouched()


async def test_json_validate_resolves_a_relative_ref_inside_the_workspace(
    servers: Servers, world: World
) -> None:
    (world.ws / "schemas").mkdir()
    (world.ws / "schemas" / "item.json").write_text('{"type": "integer"}')
    (world.ws / "schemas" / "main.json").write_text('{"type": "array", "items": {"$ref": "item.json"}}')
    is_error, text = await call_raw(
        servers.json, "validate", {"document": "[1, \"x\"]", "schema_path": "schemas/main.json"}
    )
    assert not is_error and "'error_count': 1" in text
    os.symlink(world.outside / "schema.json", world.ws / "schemas" / "item.json.out")
    (world.ws / "schemas" / "evil.json").write_text('{"$ref": "item.json.out"}')
    text = await refused(servers, "json", "validate", document="1", schema_path="schemas/evil.json")
    assert "cannot be resolved offline" in text


async def test_json_validate_never_fetches_an_http_ref(servers: Servers, world: World) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        for uri in (f"http://127.0.0.1:{port}/s.json", f"https://127.0.0.1:{port}/s.json"):
            text = await refused(servers, "json", "validate", document="{}", schema={"$ref": uri})
            assert "never fetched" in text
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert accepted == []


async def test_json_update_refuses_a_file_linked_out_and_leaves_it_alone(
    servers: Servers, world: World
) -> None:
    os.unlink(world.ws / "data.json")
    os.symlink(world.outside / "data.json", world.ws / "data.json")
    text = await refused(servers, "json", "update", path="data.json", expression="$.a", value=2)
    assert "json_update, parameter `path`" in text
    await refused(servers, "json", "query", path="data.json", expression="$")
    assert world.untouched()


# ---- walks ----------------------------------------------------------------------------------


async def test_a_gitignore_that_is_a_link_is_never_read(servers: Servers, world: World) -> None:
    (world.outside / ".gitignore").write_text("*.py\n")
    world.before = world.outside_state()
    (world.ws / "code.py").write_text("x = 1\n")
    os.symlink(world.outside / ".gitignore", world.ws / ".gitignore")
    os.mkfifo(world.ws / "sub" / ".gitignore")  # a pipe would hang a reader
    with anyio.fail_after(30):
        is_error, tree = await call_raw(servers.fs, "directory_tree", {"path": "."})
        assert not is_error and "code.py" in tree
        is_error, found = await call_raw(servers.fs, "search_content", {"regex": "x = 1"})
    assert not is_error and "code.py" in found
    assert world.untouched()


async def test_special_files_are_refused_or_skipped_never_opened(
    servers: Servers, world: World
) -> None:
    os.mkfifo(world.ws / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(world.ws / "sock"))
    try:
        with anyio.fail_after(30):
            for tool, args in (
                ("read_file", {"path": "pipe"}),
                ("hash_file", {"path": "pipe"}),
                ("read_media_file", {"path": "sock"}),
                ("extract_lines", {"path": "pipe", "start_line": 1}),
                ("diff_files", {"path_a": "pipe", "path_b": "sub/a.txt"}),
            ):
                text = await refused(servers, "fs", tool, **args)
                assert "not a regular file" in text, (tool, text)
            is_error, text = await call_raw(servers.fs, "search_content", {"regex": "inside"})
            assert not is_error and "sub/a.txt" in text
            is_error, text = await call_raw(servers.fs, "copy", {"source": ".", "destination": "sub/d/c"})
            assert "into itself" in text
            (world.ws / "box").mkdir()
            os.rename(world.ws / "pipe", world.ws / "box" / "pipe")
            is_error, text = await call_raw(servers.fs, "copy", {"source": "box", "destination": "box2"})
            assert not is_error and "pipe, socket or device" in text
    finally:
        sock.close()


# ---- roots ----------------------------------------------------------------------------------


def test_a_symlinked_root_is_admitted_in_its_link_and_real_forms(world: World) -> None:
    link = world.base / "ws-link"
    os.symlink(world.ws, link)
    space = Workspace(lambda: [link])
    for path in (str(link / "sub" / "a.txt"), str(world.ws / "sub" / "a.txt"), "sub/a.txt"):
        with space.open_read(path) as handle:
            assert handle.read() == b"inside a\n"
    for path in (str(world.outside / "secret.txt"), str(link / ".." / "outside" / "secret.txt")):
        with pytest.raises(WorkspaceError, match="outside the workspace"):
            space.open_read(path)
