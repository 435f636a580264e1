"""The fs tools that write, through fastmcp.Client in memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fs_support import call, make_server, refused, snapshot

pytestmark = pytest.mark.anyio


async def test_write_file_creates_overwrites_and_appends(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    created = await call(server, "write_file", path="f.txt", content="one\n")
    assert (created["created"], created["bytes_written"]) == (True, 4)
    os.chmod(ws / "f.txt", 0o640)
    replaced = await call(server, "write_file", path="f.txt", content="two\n")
    assert replaced["created"] is False
    assert (ws / "f.txt").read_text() == "two\n"
    assert stat.S_IMODE(os.stat(ws / "f.txt").st_mode) == 0o640
    await call(server, "write_file", path="f.txt", content="three\n", append=True)
    assert (ws / "f.txt").read_text() == "two\nthree\n"
    assert [p.name for p in ws.iterdir()] == ["f.txt"]


async def test_write_file_needs_create_dirs_for_a_missing_parent(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    assert "create_dirs=true" in await refused(server, "write_file", path="a/b/f.txt", content="x")
    await call(server, "write_file", path="a/b/f.txt", content="x", create_dirs=True)
    assert (ws / "a" / "b" / "f.txt").read_text() == "x"


async def test_write_file_refuses_a_symlink_out_planted_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kimi_mcp.workspace import Workspace

    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_text("old")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    real_resolve = Workspace.resolve

    def resolve_then_plant(self: Workspace, path: str) -> str:
        real = real_resolve(self, path)
        os.unlink(real)
        os.symlink(outside, real)
        return real

    monkeypatch.setattr(Workspace, "resolve", resolve_then_plant)
    text = await refused(server, "write_file", path="f.txt", content="new")
    assert text.startswith("Access denied") and "fs_write_file" in text
    assert outside.read_text() == "secret"
    assert os.readlink(ws / "f.txt") == str(outside)


async def test_edit_file_replaces_exact_text_and_returns_a_diff(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.py").write_text("a = 1\nb = 2\n")
    got = await call(
        server, "edit_file", path="f.py", edits=[{"old_text": "b = 2", "new_text": "b = 3"}]
    )
    assert got["applied"] is True and got["matches"] == ["exact"]
    assert "-b = 2\n+b = 3\n" in got["diff"]
    assert (ws / "f.py").read_text() == "a = 1\nb = 3\n"


async def test_edit_file_matches_ignoring_indentation_and_keeps_the_files(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.py").write_text("class A:\n    def f(self):\n        return 1\n")
    edit = {"old_text": "def f(self):\n    return 1", "new_text": "def f(self):\n    return 2"}
    got = await call(server, "edit_file", path="f.py", edits=[edit])
    assert got["matches"] == ["whitespace"]
    assert (ws / "f.py").read_text() == "class A:\n    def f(self):\n        return 2\n"


async def test_edit_file_miss_names_the_edit_and_shows_the_nearest_lines(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.py").write_text("def compute_total(items):\n    return sum(items)\n")
    edits = [
        {"old_text": "def compute_total", "new_text": "def total"},
        {"old_text": "return summ(items)", "new_text": "x"},
    ]
    text = await refused(server, "edit_file", path="f.py", edits=edits)
    assert text.startswith("Edit 2: old_text not found")
    assert "2:     return sum(items)" in text
    assert (ws / "f.py").read_text().startswith("def compute_total")


async def test_edit_file_checks_the_number_of_occurrences(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_text("x\nx\n")
    text = await refused(
        server, "edit_file", path="f.txt", edits=[{"old_text": "x", "new_text": "y"}]
    )
    assert "occurs 2 times" in text
    await call(
        server,
        "edit_file",
        path="f.txt",
        edits=[{"old_text": "x", "new_text": "y", "expected_replacements": 2}],
    )
    assert (ws / "f.txt").read_text() == "y\ny\n"


async def test_edit_file_dry_run_changes_nothing_and_crlf_is_kept(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_bytes(b"one\r\ntwo\r\n")
    dry = await call(
        server,
        "edit_file",
        path="f.txt",
        edits=[{"old_text": "two", "new_text": "2"}],
        dry_run=True,
    )
    assert dry["applied"] is False and "+2" in dry["diff"]
    assert (ws / "f.txt").read_bytes() == b"one\r\ntwo\r\n"
    await call(
        server, "edit_file", path="f.txt", edits=[{"old_text": "one\ntwo", "new_text": "1\n2"}]
    )
    assert (ws / "f.txt").read_bytes() == b"1\r\n2\r\n"


async def test_edit_lines_applies_edits_by_original_line_numbers(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_text("a\nb\nc\nd\n")
    edits = [
        {"line": 1, "mode": "insert_before", "text": "top"},
        {"line": 2, "mode": "delete"},
        {"line": 3, "mode": "replace", "text": "C1\nC2"},
        {"line": 4, "mode": "insert_after", "text": "end"},
    ]
    got = await call(server, "edit_lines", path="f.txt", edits=edits)
    assert got["applied"] is True
    assert (ws / "f.txt").read_text() == "top\na\nC1\nC2\nd\nend\n"
    assert "out of range" in await refused(
        server, "edit_lines", path="f.txt", edits=[{"line": 99, "mode": "delete"}]
    )


async def test_create_directory_makes_parents_and_is_idempotent(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    assert (await call(server, "create_directory", path="a/b/c"))["created"] is True
    assert (await call(server, "create_directory", path="a/b/c"))["created"] is False
    (ws / "file").write_text("")
    assert "not a directory" in await refused(server, "create_directory", path="file")


async def test_copy_refuses_an_existing_destination_without_overwrite(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.txt").write_text("A")
    (ws / "b.txt").write_text("B")
    text = await refused(server, "copy", source="a.txt", destination="b.txt")
    assert "exists" in text and (ws / "b.txt").read_text() == "B"
    await call(server, "copy", source="a.txt", destination="b.txt", overwrite=True)
    assert (ws / "b.txt").read_text() == "A"


async def test_copy_copies_a_tree_and_skips_links_that_leave_the_workspace(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "d" / "e").mkdir(parents=True)
    (ws / "d" / "e" / "f.txt").write_text("F")
    (ws / "d" / "inner").symlink_to("e/f.txt")
    (tmp_path / "secret").write_text("S")
    (ws / "d" / "escape").symlink_to(tmp_path / "secret")
    got = await call(server, "copy", source="d", destination="d2")
    assert (got["files_copied"], got["links_copied"]) == (1, 1)
    assert got["skipped"] == ["d/escape (a link out of the workspace)"]
    assert (ws / "d2" / "e" / "f.txt").read_text() == "F"
    assert os.readlink(ws / "d2" / "inner") == "e/f.txt"
    assert not (ws / "d2" / "escape").is_symlink()
    assert "into itself" in await refused(server, "copy", source="d", destination="d/e/again")


async def test_move_refuses_existing_destination_without_overwrite(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.txt").write_text("A")
    (ws / "b.txt").write_text("B")
    assert "overwrite=true" in await refused(server, "move", source="a.txt", destination="b.txt")
    assert (ws / "a.txt").exists() and (ws / "b.txt").read_text() == "B"
    await call(server, "move", source="a.txt", destination="b.txt", overwrite=True)
    assert not (ws / "a.txt").exists() and (ws / "b.txt").read_text() == "A"
    await call(server, "move", source="b.txt", destination="c.txt")
    assert (ws / "c.txt").read_text() == "A"


async def test_move_renames_a_symlink_itself_and_moves_directories(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "d").mkdir()
    (ws / "d" / "f").write_text("x")
    (ws / "l").symlink_to("d/f")
    await call(server, "move", source="l", destination="l2")
    assert os.readlink(ws / "l2") == "d/f" and (ws / "d" / "f").exists()
    await call(server, "move", source="d", destination="e")
    assert (ws / "e" / "f").read_text() == "x"
    assert "into itself" in await refused(server, "move", source="e", destination="e/sub")


async def test_delete_removes_files_links_and_only_recursive_removes_full_dirs(
    tmp_path: Path,
) -> None:
    server, ws = make_server(tmp_path)
    (ws / "d").mkdir()
    (ws / "d" / "f").write_text("x")
    (ws / "l").symlink_to("d")
    assert (await call(server, "delete", path="l"))["entries_removed"] == 1
    assert (ws / "d" / "f").exists()
    assert "recursive=true" in await refused(server, "delete", path="d")
    assert (await call(server, "delete", path="d", recursive=True))["entries_removed"] == 2
    assert list(ws.iterdir()) == []
    assert "workspace root" in await refused(server, "delete", path=".", recursive=True)
    assert "Not found" in await refused(server, "delete", path="gone")


async def test_batch_runs_operations_in_order_and_stops_on_error(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.txt").write_text("A")
    ops = [
        {"op": "mkdir", "path": "out"},
        {"op": "copy", "source": "a.txt", "destination": "out/a.txt"},
        {"op": "move", "source": "missing", "destination": "x"},
        {"op": "delete", "path": "a.txt"},
    ]
    got = await call(server, "batch", operations=ops)
    assert [r["ok"] for r in got["results"]] == [True, True, False]
    assert got["stopped_early"] is True and (ws / "a.txt").exists()
    assert (ws / "out" / "a.txt").read_text() == "A"
    more = await call(server, "batch", operations=ops[2:], stop_on_error=False)
    assert [r["ok"] for r in more["results"]] == [False, True] and not (ws / "a.txt").exists()


async def test_batch_dry_run_changes_nothing(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.txt").write_text("A")
    before = snapshot(ws)
    ops = [
        {"op": "mkdir", "path": "n"},
        {"op": "move", "source": "a.txt", "destination": "b.txt"},
        {"op": "delete", "path": "a.txt"},
        {"op": "copy", "source": "../x", "destination": "y"},
    ]
    got = await call(server, "batch", operations=ops, dry_run=True, stop_on_error=False)
    assert [r["ok"] for r in got["results"]] == [True, True, True, False]
    assert got["results"][1]["message"] == "would move a.txt -> b.txt"
    assert got["results"][3]["message"].startswith("Access denied")
    assert snapshot(ws) == before
