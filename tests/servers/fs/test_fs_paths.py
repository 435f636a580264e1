"""The workspace path rules, with real temp dirs and real symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fs_support import call, make_deps, make_server, refused, snapshot, workspace_for
from kimi_mcp.servers.fs import build_server

from kimi_mcp.errors import WorkspaceError

pytestmark = pytest.mark.anyio


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace `ws`, a sibling `ws-evil` and an `outside` dir holding a secret."""
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "a.txt").write_text("inside\n")
    (tmp_path / "ws-evil").mkdir()
    (tmp_path / "ws-evil" / "x.txt").write_text("evil\n")
    (tmp_path / "ws2").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    return ws.resolve(), outside.resolve()


def test_relative_paths_resolve_against_the_first_root_not_the_cwd(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, outside = layout
    monkeypatch.chdir(outside)
    assert workspace_for(ws).resolve("sub/a.txt") == str(ws / "sub" / "a.txt")


def test_tilde_expands_to_home(layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, outside = layout
    monkeypatch.setenv("HOME", str(ws / "sub"))
    assert workspace_for(ws).resolve("~/a.txt") == str(ws / "sub" / "a.txt")
    monkeypatch.setenv("HOME", str(outside))
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        workspace_for(ws).resolve("~/secret.txt")


@pytest.mark.parametrize(
    "path",
    ["../outside/secret.txt", "sub/../../outside/secret.txt", "a/../../x", "..", "sub/../.."],
)
def test_traversal_out_of_the_root_is_refused(layout: tuple[Path, Path], path: str) -> None:
    ws, _ = layout
    with pytest.raises(WorkspaceError, match="Access denied: path outside the workspace"):
        workspace_for(ws).resolve(path)


def test_traversal_that_stays_inside_is_allowed(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    assert workspace_for(ws).resolve("sub/../sub/./a.txt") == str(ws / "sub" / "a.txt")


@pytest.mark.parametrize("sibling", ["ws-evil/x.txt", "ws2", "ws-evil"])
def test_a_sibling_dir_sharing_the_prefix_is_outside(
    layout: tuple[Path, Path], sibling: str
) -> None:
    ws, _ = layout
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        workspace_for(ws).resolve(str(ws.parent / sibling))


def test_an_absolute_path_outside_is_refused(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    for path in ("/etc/passwd", str(outside / "secret.txt"), "/"):
        with pytest.raises(WorkspaceError, match="outside the workspace"):
            workspace_for(ws).resolve(path)


def test_a_null_byte_is_refused(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    with pytest.raises(WorkspaceError, match="null byte"):
        workspace_for(ws).resolve("sub/a.txt\x00.png")


def test_a_symlink_pointing_outside_is_refused(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "link").symlink_to(outside / "secret.txt")
    (ws / "dirlink").symlink_to(outside)
    space = workspace_for(ws)
    for path in ("link", "dirlink/secret.txt", "dirlink/new.txt", "dirlink"):
        with pytest.raises(WorkspaceError, match="symlink"):
            space.resolve(path)


def test_a_symlink_chain_that_ends_outside_is_refused(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "c").symlink_to(outside)
    (ws / "b").symlink_to(ws / "c")
    (ws / "a").symlink_to("b")
    with pytest.raises(WorkspaceError, match="symlink"):
        workspace_for(ws).resolve("a/secret.txt")


def test_a_symlink_that_stays_inside_resolves_to_its_target(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    (ws / "alias").symlink_to(ws / "sub")
    assert workspace_for(ws).resolve("alias/a.txt") == str(ws / "sub" / "a.txt")


def test_a_dangling_symlink_to_outside_is_refused(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "dangling").symlink_to(outside / "not-yet.txt")
    with pytest.raises(WorkspaceError, match="symlink"):
        workspace_for(ws).resolve("dangling")


def test_a_new_path_under_a_symlinked_parent_outside_is_refused(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "out").symlink_to(outside)
    with pytest.raises(WorkspaceError):
        workspace_for(ws).resolve("out/deeper/new.txt")


def test_a_symlink_out_planted_after_the_check_is_refused_not_followed(
    layout: tuple[Path, Path],
) -> None:
    ws, outside = layout
    space = workspace_for(ws)
    target = space.resolve("sub/a.txt")
    os.unlink(target)
    os.symlink(outside / "secret.txt", target)
    with pytest.raises(WorkspaceError, match="symlink"):
        space.write_atomic(target, b"new\n")
    assert (outside / "secret.txt").read_text() == "secret\n"
    assert os.readlink(target) == str(outside / "secret.txt")


def test_exclusive_create_refuses_a_symlink_planted_after_the_check(
    layout: tuple[Path, Path],
) -> None:
    ws, outside = layout
    space = workspace_for(ws)
    target = space.resolve("sub/new.txt")
    os.symlink(outside / "created.txt", target)
    with pytest.raises(WorkspaceError, match="Already exists"):
        space.create_exclusive(target, b"x")
    assert not (outside / "created.txt").exists()


def test_reading_refuses_a_symlink_planted_after_the_check(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    space = workspace_for(ws)
    target = space.resolve("sub/a.txt")
    os.unlink(target)
    os.symlink(outside / "secret.txt", target)
    with pytest.raises(WorkspaceError, match="symlink"):
        space.open_read(target)


def test_a_directory_swapped_for_a_symlink_after_the_check_is_not_written_through(
    layout: tuple[Path, Path],
) -> None:
    ws, outside = layout
    space = workspace_for(ws)
    target = space.resolve("sub/a.txt")
    os.rename(ws / "sub", ws / "moved")
    os.symlink(outside, ws / "sub")
    with pytest.raises(WorkspaceError):
        space.write_atomic(target, b"pwned")
    assert snapshot(outside) == {"secret.txt": snapshot(outside)["secret.txt"]}
    assert not (outside / "a.txt").exists()


def test_appending_refuses_a_symlink_planted_after_the_check(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    space = workspace_for(ws)
    target = space.resolve("sub/a.txt")
    os.unlink(target)
    os.symlink(outside / "secret.txt", target)
    with pytest.raises(WorkspaceError, match="symlink"):
        space.append(target, b"more")
    assert (outside / "secret.txt").read_text() == "secret\n"


def test_any_of_several_roots_is_allowed(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    space = workspace_for(ws, outside)
    assert space.resolve(str(outside / "secret.txt")) == str(outside / "secret.txt")
    assert space.resolve("sub") == str(ws / "sub")


async def test_replaced_roots_take_effect_on_the_next_call(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    _, outside = layout
    deps = make_deps(tmp_path)
    server = build_server(deps)
    assert (await refused(server, "read_file", path=str(outside / "secret.txt"))).startswith(
        "Access denied"
    )
    deps.roots = [outside]
    assert (await call(server, "read_file", path="secret.txt"))["content"] == "secret\n"


async def test_unicode_names_are_written_and_read_back(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    name = "données/日本語 ✓.txt"
    await call(server, "write_file", path=name, content="héllo ✓\n", create_dirs=True)
    got = await call(server, "read_file", path=name)
    assert got["content"] == "héllo ✓\n"
    assert (ws / name).read_text(encoding="utf-8") == "héllo ✓\n"
    listing = await call(server, "search_files", pattern="*.txt")
    assert listing["matches"] == [name]


async def test_tools_report_refusals_as_errors_that_name_the_path(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    server, ws = make_server(tmp_path)
    (ws / "link").symlink_to(tmp_path / "outside")
    before = snapshot(tmp_path / "outside")
    cases = [
        ("read_file", {"path": "../outside/secret.txt"}),
        ("read_file", {"path": "link/secret.txt"}),
        ("write_file", {"path": str(tmp_path / "ws-evil" / "y.txt"), "content": "x"}),
        ("write_file", {"path": "link/new.txt", "content": "x"}),
        ("delete", {"path": "../outside/secret.txt"}),
        ("copy", {"source": "link/secret.txt", "destination": "stolen.txt"}),
        ("move", {"source": "sub/a.txt", "destination": "link/a.txt"}),
        ("list_directory", {"path": "link"}),
        ("search_content", {"regex": "secret", "path": ".."}),
        ("hash_file", {"path": "sub/a.txt\x00"}),
    ]
    for tool, args in cases:
        text = await refused(server, tool, **args)
        assert text.startswith("Access denied"), (tool, text)
    assert snapshot(tmp_path / "outside") == before
    assert not (ws / "stolen.txt").exists()


async def test_search_never_follows_a_symlinked_dir_out_of_the_workspace(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    server, ws = make_server(tmp_path)
    (ws / "link").symlink_to(tmp_path / "outside")
    found = await call(server, "search_content", regex="secret")
    assert found["matches"] == []
    tree = await call(server, "directory_tree")
    assert "secret.txt" not in tree["tree"]
    names = await call(server, "search_files", pattern="*secret*")
    assert names["matches"] == []
