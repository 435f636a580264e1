"""The fs tools that read, through fastmcp.Client in memory."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from fastmcp import Client
from fs_support import call, make_server, refused

pytestmark = pytest.mark.anyio


async def test_list_allowed_directories_returns_the_resolved_roots(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    assert (await call(server, "list_allowed_directories"))["roots"] == [str(ws)]


async def test_read_file_returns_a_window_and_where_to_continue(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    got = await call(server, "read_file", path="f.txt", offset_line=3, max_lines=4)
    assert got["content"] == "line 3\nline 4\nline 5\nline 6\n"
    assert (got["start_line"], got["end_line"], got["total_lines"]) == (3, 6, 10)
    assert got["truncated"] is True
    assert got["next_offset"] == 7
    rest = await call(server, "read_file", path="f.txt", offset_line=7)
    assert rest["content"].startswith("line 7\n") and rest["truncated"] is False
    assert rest["next_offset"] is None


async def test_read_file_caps_a_large_file_by_characters(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "big.txt").write_text(("x" * 99 + "\n") * 5000)
    got = await call(server, "read_file", path="big.txt", max_lines=20000)
    assert got["truncated"] is True
    assert got["total_lines"] == 5000
    assert len(got["content"]) <= 128 * 1024
    assert got["next_offset"] == got["end_line"] + 1


async def test_read_file_decodes_with_the_given_encoding(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "l1.txt").write_bytes("café\n".encode("latin-1"))
    assert (await call(server, "read_file", path="l1.txt", encoding="latin-1"))[
        "content"
    ] == "café\n"
    assert "\ufffd" in (await call(server, "read_file", path="l1.txt"))["content"]


async def test_read_file_says_what_is_wrong_with_a_directory_or_a_missing_file(
    tmp_path: Path,
) -> None:
    server, ws = make_server(tmp_path)
    (ws / "d").mkdir()
    assert "Is a directory" in await refused(server, "read_file", path="d")
    assert "Not found" in await refused(server, "read_file", path="nope.txt")


async def test_read_multiple_files_reports_one_failure_and_reads_the_rest(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.txt").write_text("A\n")
    (ws / "b.txt").write_text("B\n")
    got = await call(server, "read_multiple_files", paths=["a.txt", "missing.txt", "../x", "b.txt"])
    assert (got["succeeded"], got["failed"]) == (2, 2)
    assert [f["content"] for f in got["files"]] == ["A\n", None, None, "B\n"]
    assert "Not found" in got["files"][1]["error"]
    assert got["files"][2]["error"].startswith("Access denied")


async def test_read_media_file_returns_image_audio_or_resource_content(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    (ws / "p.png").write_bytes(png)
    (ws / "s.wav").write_bytes(b"RIFF0000WAVE")
    (ws / "blob.bin").write_bytes(b"\x00\x01")
    async with Client(server) as client:
        image = await client.call_tool("read_media_file", {"path": "p.png"})
        audio = await client.call_tool("read_media_file", {"path": "s.wav"})
        other = await client.call_tool("read_media_file", {"path": "blob.bin"})
    assert image.content[0].type == "image"
    assert base64.b64decode(image.content[0].data) == png
    assert image.structured_content == {
        "path": "p.png",
        "mime_type": "image/png",
        "size": len(png),
        "kind": "image",
    }
    assert audio.content[0].type == "audio"
    assert other.content[0].type == "resource"
    assert other.structured_content["kind"] == "resource"


async def test_extract_lines_returns_a_range_or_the_matches_with_context(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.py").write_text("a\nb\ndef one():\nc\nd\ne\ndef two():\nf\n")
    ranged = await call(server, "extract_lines", path="f.py", start_line=2, end_line=3)
    assert ranged["ranges"] == [{"start_line": 2, "end_line": 3, "text": "b\ndef one():"}]
    found = await call(server, "extract_lines", path="f.py", pattern=r"^def ", context_lines=1)
    assert [(r["start_line"], r["end_line"]) for r in found["ranges"]] == [(2, 4), (6, 8)]
    assert found["ranges"][1]["text"] == "e\ndef two():\nf"
    assert "start_line" in await refused(server, "extract_lines", path="f.py")
    assert "Invalid regex" in await refused(server, "extract_lines", path="f.py", pattern="(")


async def test_get_file_info_describes_files_dirs_and_symlinks(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_text("12345")
    (ws / "d").mkdir()
    (ws / "l").symlink_to("f.txt")
    info = await call(server, "get_file_info", path="f.txt")
    assert (info["type"], info["size"], info["is_symlink"], info["mime_type"]) == (
        "file",
        5,
        False,
        "text/plain",
    )
    assert (await call(server, "get_file_info", path="d"))["type"] == "directory"
    link = await call(server, "get_file_info", path="l")
    assert (link["is_symlink"], link["symlink_target"], link["type"]) == (True, "f.txt", "file")


async def test_hash_file_matches_hashlib(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    data = b"abc" * 1_000_000
    (ws / "f.bin").write_bytes(data)
    got = await call(server, "hash_file", path="f.bin")
    assert got["digest"] == hashlib.sha256(data).hexdigest() and got["size"] == len(data)
    md5 = await call(server, "hash_file", path="f.bin", algorithm="md5")
    assert md5["digest"] == hashlib.md5(data).hexdigest()


async def test_diff_files_shows_a_unified_diff(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.txt").write_text("one\ntwo\n")
    (ws / "b.txt").write_text("one\nTWO\n")
    got = await call(server, "diff_files", path_a="a.txt", path_b="b.txt")
    assert got["identical"] is False
    assert "-two\n+TWO\n" in got["diff"] and got["diff"].startswith("--- a.txt\n+++ b.txt\n")
    same = await call(server, "diff_files", path_a="a.txt", path_b="a.txt")
    assert (same["identical"], same["diff"]) == (True, "")


async def test_list_directory_filters_sorts_and_pages(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    for name, size in [("b.py", 30), ("a.py", 10), ("c.txt", 20), (".hidden", 1)]:
        (ws / name).write_bytes(b"x" * size)
    (ws / "sub").mkdir()
    names = await call(server, "list_directory")
    assert [e["name"] for e in names["entries"]] == ["a.py", "b.py", "c.txt", "sub"]
    hidden = await call(server, "list_directory", show_hidden=True)
    assert hidden["total"] == 5
    by_size = await call(server, "list_directory", pattern="*.py", sort_by="size")
    assert [e["name"] for e in by_size["entries"]] == ["b.py", "a.py"]
    page = await call(server, "list_directory", page=2, page_size=3)
    assert [e["name"] for e in page["entries"]] == ["sub"] and page["next_page"] is None
    first = await call(server, "list_directory", page=1, page_size=3)
    assert first["next_page"] == 2
    assert (await call(server, "list_directory", path="sub"))["entries"] == []


def _project(ws: Path) -> None:
    for rel in [
        "src/app.py",
        "src/lib/util.py",
        "src/lib/test_util.py",
        "README.md",
        ".git/HEAD",
        "node_modules/x/index.js",
        "build/out.py",
        "logs/a.log",
    ]:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {rel}\nneedle = 1\n")
    (ws / ".gitignore").write_text("build/\n*.log\n")
    (ws / "src" / "lib" / ".gitignore").write_text("test_*.py\n")
    (ws / "src" / "blob.bin").write_bytes(b"needle\x00\x01")


async def test_directory_tree_outlines_and_prunes_tool_dirs(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    _project(ws)
    got = await call(server, "directory_tree")
    assert ".git/" not in got["tree"] and "node_modules/" not in got["tree"]
    assert "build/" not in got["tree"] and "a.log" not in got["tree"]
    assert "src/\n  app.py\n  blob.bin\n  lib/\n    .gitignore\n    util.py" in got["tree"]
    shallow = await call(server, "directory_tree", max_depth=1, respect_gitignore=False)
    assert "build/" in shallow["tree"] and "app.py" not in shallow["tree"]
    cut = await call(server, "directory_tree", max_entries=3)
    assert cut["truncated"] is True and cut["hint"]
    excluded = await call(server, "directory_tree", exclude_patterns=["lib", "*.md"])
    assert "lib/" not in excluded["tree"] and "README.md" not in excluded["tree"]


async def test_search_files_matches_names_at_any_depth_or_paths_from_the_root(
    tmp_path: Path,
) -> None:
    server, ws = make_server(tmp_path)
    _project(ws)
    by_name = await call(server, "search_files", pattern="*.py")
    assert by_name["matches"] == [
        "build/out.py",
        "src/app.py",
        "src/lib/test_util.py",
        "src/lib/util.py",
    ]
    by_path = await call(server, "search_files", pattern="src/**/test_*.py")
    assert by_path["matches"] == ["src/lib/test_util.py"]
    under = await call(server, "search_files", pattern="*.py", path="src/lib")
    assert under["matches"] == ["src/lib/test_util.py", "src/lib/util.py"]
    braces = await call(server, "search_files", pattern="*.{md,js}", use_default_excludes=False)
    assert braces["matches"] == ["README.md", "node_modules/x/index.js"]
    dirs = await call(server, "search_files", pattern="lib")
    assert dirs["matches"] == ["src/lib/"]
    cut = await call(server, "search_files", pattern="*", max_results=2)
    assert cut["truncated"] is True and len(cut["matches"]) == 2


async def test_search_content_respects_gitignore_and_skips_binaries(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    _project(ws)
    got = await call(server, "search_content", regex=r"needle = \d")
    paths = sorted(m["path"] for m in got["matches"])
    assert paths == ["README.md", "src/app.py", "src/lib/util.py"]
    assert all(m["line"] == 2 for m in got["matches"])
    plain = await call(server, "search_content", regex="needle")
    assert plain["skipped_binary"] == 1
    below = await call(server, "search_content", regex="needle", path="src/lib")
    assert [m["path"] for m in below["matches"]] == ["src/lib/util.py"]


async def test_search_content_filters_by_file_pattern_case_and_context(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.py").write_text("x = 1\nNEEDLE\ny = 2\n")
    (ws / "b.txt").write_text("needle\n")
    got = await call(
        server,
        "search_content",
        regex="needle",
        case_sensitive=False,
        file_pattern="*.py",
        context_lines=1,
    )
    assert got["matches"] == [
        {"path": "a.py", "line": 2, "text": "NEEDLE", "before": ["x = 1"], "after": ["y = 2"]}
    ]
    capped = await call(server, "search_content", regex=".", max_results=2)
    assert capped["truncated"] is True and len(capped["matches"]) == 2 and capped["hint"]
    assert "Invalid regex" in await refused(server, "search_content", regex="[")


async def test_find_large_files_lists_the_largest_first(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "d").mkdir()
    for name, size in [("small", 10), ("d/mid", 2000), ("big", 5000)]:
        (ws / name).write_bytes(b"x" * size)
    got = await call(server, "find_large_files", min_size_bytes=1000)
    assert got["files"] == [{"path": "big", "size": 5000}, {"path": "d/mid", "size": 2000}]
    assert got["files_scanned"] == 3
    top = await call(server, "find_large_files", min_size_bytes=0, max_results=1)
    assert top["files"] == [{"path": "big", "size": 5000}] and top["truncated"] is True


async def test_disk_usage_totals_a_tree_and_ranks_its_children(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "d" / "e").mkdir(parents=True)
    (ws / "d" / "e" / "f").write_bytes(b"x" * 300)
    (ws / "d" / "g").write_bytes(b"x" * 200)
    (ws / "h").write_bytes(b"x" * 100)
    got = await call(server, "disk_usage")
    assert (got["total_bytes"], got["files"], got["directories"]) == (600, 3, 2)
    assert got["largest_children"] == [{"path": "d/", "size": 500}, {"path": "h", "size": 100}]


async def test_read_file_shows_the_model_plain_text_and_a_note_when_cut(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_text('say "hi"\nline 2\nline 3\n')
    async with Client(server) as client:
        whole = await client.call_tool("read_file", {"path": "f.txt"})
        cut = await client.call_tool("read_file", {"path": "f.txt", "max_lines": 1})
    assert whole.content[0].text == 'say "hi"\nline 2\nline 3\n'
    assert (
        cut.content[0].text == 'say "hi"\n\n[truncated: lines 1-1 of 3; read on with offset_line=2]'
    )
    assert cut.structured_content is not None and cut.structured_content["next_offset"] == 2


async def test_an_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "f.txt").write_text("x\n")
    text = await refused(server, "read_file", path="f.txt", encoding="klingon")
    assert "Unknown encoding" in text and "klingon" in text


async def test_directory_tree_shows_the_model_the_outline_and_a_summary(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "src").mkdir()
    (ws / "src" / "a.py").write_text("")
    async with Client(server) as client:
        got = await client.call_tool("directory_tree", {})
    assert got.content[0].text == "src/\n  a.py\n[1 files, 1 directories under .]"
    assert got.structured_content is not None and got.structured_content["tree"] == "src/\n  a.py"


async def test_search_content_searches_a_single_file_when_given_one(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    (ws / "a.txt").write_text("one\nneedle\n")
    (ws / "b.txt").write_text("needle\n")
    got = await call(server, "search_content", regex="needle", path="a.txt")
    assert [(m["path"], m["line"]) for m in got["matches"]] == [("a.txt", 2)]
    assert "Not found" in await refused(server, "search_content", regex="x", path="nope.txt")
