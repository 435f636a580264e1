"""compress, extract_archive (zip-slip, tar-slip) and sync_directories."""

from __future__ import annotations

import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from fs_support import call, make_server, refused, snapshot

pytestmark = pytest.mark.anyio


def _tree(ws: Path) -> None:
    (ws / "proj" / "sub").mkdir(parents=True)
    (ws / "proj" / "a.txt").write_text("A")
    (ws / "proj" / "sub" / "b.txt").write_text("B")


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
async def test_compress_and_extract_round_trip(tmp_path: Path, fmt: str) -> None:
    server, ws = make_server(tmp_path)
    _tree(ws)
    packed = await call(server, "compress", paths=["proj"], output_path=f"p.{fmt}", format=fmt)
    assert (packed["files"], packed["bytes_in"]) == (2, 2)
    assert packed["archive_bytes"] == (ws / f"p.{fmt}").stat().st_size
    done = await call(server, "extract_archive", archive_path=f"p.{fmt}", destination="out")
    assert done["files"] == 2
    assert (ws / "out" / "proj" / "sub" / "b.txt").read_text() == "B"


async def test_compress_never_replaces_an_existing_file(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    _tree(ws)
    (ws / "p.zip").write_text("keep")
    assert "Already exists" in await refused(
        server, "compress", paths=["proj"], output_path="p.zip"
    )
    assert (ws / "p.zip").read_text() == "keep"
    assert "Not found" in await refused(server, "compress", paths=["nope"], output_path="q.zip")


async def test_compress_skips_symlinks_instead_of_following_them(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    _tree(ws)
    (tmp_path / "secret.txt").write_text("SECRET")
    (ws / "proj" / "leak").symlink_to(tmp_path / "secret.txt")
    (ws / "proj" / "leakdir").symlink_to(tmp_path)
    got = await call(server, "compress", paths=["proj"], output_path="p.zip")
    assert sorted(got["skipped_symlinks"]) == ["proj/leak", "proj/leakdir"]
    with zipfile.ZipFile(ws / "p.zip") as archive:
        names = archive.namelist()
        assert all(b"SECRET" not in archive.read(n) for n in names if not n.endswith("/"))
    assert not any("leak" in n for n in names)


def _zip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "bad", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt"]
)
async def test_zip_slip_is_refused_before_anything_is_written(tmp_path: Path, bad: str) -> None:
    server, ws = make_server(tmp_path)
    _zip(ws / "bad.zip", {"first.txt": b"1", bad: b"evil"})
    before = snapshot(tmp_path)
    text = await refused(server, "extract_archive", archive_path="bad.zip", destination="out")
    assert text.startswith("Refused archive")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "member",
    [
        _info("../evil.txt"),
        _info("/abs/evil.txt"),
        _info("link", tarfile.SYMTYPE, "/etc/passwd"),
        _info("hard", tarfile.LNKTYPE, "../../outside"),
        _info("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "fifo"],
)
async def test_tar_slip_and_link_entries_are_refused(
    tmp_path: Path, member: tarfile.TarInfo
) -> None:
    server, ws = make_server(tmp_path)
    _tar(ws / "bad.tar.gz", [_info("first.txt"), member])
    before = snapshot(tmp_path)
    text = await refused(server, "extract_archive", archive_path="bad.tar.gz", destination="out")
    assert text.startswith("Refused archive")
    assert snapshot(tmp_path) == before


async def test_an_entry_landing_through_a_symlink_in_the_destination_is_refused(
    tmp_path: Path,
) -> None:
    server, ws = make_server(tmp_path)
    (ws / "out").mkdir()
    (ws / "out" / "jump").symlink_to(tmp_path)
    _zip(ws / "a.zip", {"jump/evil.txt": b"evil"})
    text = await refused(server, "extract_archive", archive_path="a.zip", destination="out")
    assert "through a symlink" in text and not (tmp_path / "evil.txt").exists()


async def test_extract_refuses_existing_files_unless_overwrite(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    _zip(ws / "a.zip", {"d/f.txt": b"new"})
    (ws / "out" / "d").mkdir(parents=True)
    (ws / "out" / "d" / "f.txt").write_text("old")
    assert "overwrite=true" in await refused(
        server, "extract_archive", archive_path="a.zip", destination="out"
    )
    done = await call(
        server, "extract_archive", archive_path="a.zip", destination="out", overwrite=True
    )
    assert (
        done["overwritten"] == ["out/d/f.txt"] and (ws / "out" / "d" / "f.txt").read_text() == "new"
    )
    (ws / "plain.txt").write_text("hello")
    assert "Not a zip or tar" in await refused(
        server, "extract_archive", archive_path="plain.txt", destination="o2"
    )


async def test_sync_update_copies_new_and_newer_files_only(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    _tree(ws)
    first = await call(server, "sync_directories", source="proj", destination="copy")
    assert sorted(first["copied"]) == ["a.txt", "sub/b.txt"]
    again = await call(server, "sync_directories", source="proj", destination="copy")
    assert (again["copied"], again["updated"], again["unchanged"]) == ([], [], 2)
    (ws / "proj" / "a.txt").write_text("A2")
    future = time.time() + 10
    os.utime(ws / "proj" / "a.txt", (future, future))
    (ws / "copy" / "extra.txt").write_text("E")
    upd = await call(server, "sync_directories", source="proj", destination="copy")
    assert upd["updated"] == ["a.txt"] and upd["deleted"] == []
    assert (ws / "copy" / "a.txt").read_text() == "A2" and (ws / "copy" / "extra.txt").exists()


async def test_sync_mirror_deletes_extras_and_dry_run_changes_nothing(tmp_path: Path) -> None:
    server, ws = make_server(tmp_path)
    _tree(ws)
    await call(server, "sync_directories", source="proj", destination="copy")
    (ws / "copy" / "extra").mkdir()
    (ws / "copy" / "extra" / "x.txt").write_text("x")
    (ws / "proj" / "link").symlink_to("a.txt")
    before = snapshot(ws / "copy")
    dry = await call(
        server, "sync_directories", source="proj", destination="copy", mode="mirror", dry_run=True
    )
    assert dry["deleted"] == ["extra"] and dry["skipped_symlinks"] == ["link"]
    assert snapshot(ws / "copy") == before
    await call(server, "sync_directories", source="proj", destination="copy", mode="mirror")
    assert not (ws / "copy" / "extra").exists()
    assert set(snapshot(ws / "copy")) == set(snapshot(ws / "proj")) - {"link"}
    assert "contain each other" in await refused(
        server, "sync_directories", source="proj", destination="proj/sub"
    )
