"""Archives: generated hostile archives and destinations never write outside the destination.

Entry names are drawn from slip tricks (`../`, absolute, backslashes, drive letters, `.`),
entry kinds include links, and the destination holds links in and out; whatever is drawn,
nothing outside the workspace changes, nothing lands outside the destination, and a refused
archive writes nothing at all.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_support import MARK, Servers, call_raw, make_world

pytestmark = pytest.mark.anyio

NAME_PARTS = ["..", ".", "a", "b.txt", "link", "out", "", "\\..", "C:", "/", "sub", "evil\\..\\x"]
CASES = {"archives": 0, "refused": 0, "extracted": 0}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Servers:
    built = Servers.build(tmp_path_factory.mktemp("archive-servers"))
    yield built  # type: ignore[misc]
    print(f"\n[archive cases] {CASES}")


names = st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=5).map("/".join)
entries = st.lists(
    st.tuples(names, st.sampled_from(["file", "dir", "symlink", "hardlink"])),
    min_size=1,
    max_size=6,
    unique_by=lambda item: (item[0] or "x").rstrip("/"),
)


def _build(path: Path, fmt: str, members: list[tuple[str, str]], target: str) -> None:
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            for name, kind in members:
                info = zipfile.ZipInfo(name or "x")
                if kind == "symlink":
                    info.external_attr = (0o120777 << 16)
                    archive.writestr(info, target)
                elif kind == "dir":
                    archive.writestr(zipfile.ZipInfo((name or "x").rstrip("/") + "/"), b"")
                else:
                    archive.writestr(info, b"payload\n")
        return
    with tarfile.open(path, "w:gz") as tar:
        for name, kind in members:
            info = tarfile.TarInfo(name or "x")
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, target
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = 8
                tar.addfile(info, io.BytesIO(b"payload\n"))


def _files_under(top: Path) -> set[str]:
    return {
        str(Path(d, n).relative_to(top)) for d, dirs, files in os.walk(top) for n in dirs + files
    }


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    members=entries,
    fmt=st.sampled_from(["zip", "tar.gz"]),
    link_target=st.sampled_from(["../../outside/secret.txt", "/etc/passwd", "a", "../x"]),
    dest_link=st.sampled_from(["none", "out", "in"]),
    overwrite=st.booleans(),
)
def test_generated_hostile_archives_never_write_outside_the_destination(
    servers: Servers,
    members: list[tuple[str, str]],
    fmt: str,
    link_target: str,
    dest_link: str,
    overwrite: bool,
) -> None:
    with tempfile.TemporaryDirectory() as raw:
        world = make_world(Path(raw).resolve())
        servers.deps.roots = [world.ws]
        dest = world.ws / "dest"
        dest.mkdir()
        if dest_link == "out":
            os.symlink(world.outside, dest / "out")
        elif dest_link == "in":
            os.symlink(world.ws / "sub", dest / "out")
        _build(world.ws / "a.arc", fmt, members, link_target)
        before_ws = _files_under(world.ws)
        is_error, text = anyio.run(
            call_raw,
            servers.fs,
            "extract_archive",
            {"archive_path": "a.arc", "destination": "dest", "overwrite": overwrite},
        )
        CASES["archives"] += 1
        assert MARK not in text
        assert world.untouched(), (members, text)
        after_ws = _files_under(world.ws)
        if is_error:
            CASES["refused"] += 1
            assert after_ws == before_ws, (members, text)  # nothing written at all
        else:
            CASES["extracted"] += 1
            new = after_ws - before_ws
            assert all(p.startswith("dest/") for p in new), (members, new)
            assert not any((world.ws / p).is_symlink() for p in new)


async def test_an_archive_that_is_a_link_out_is_not_read(servers: Servers, tmp_path: Path) -> None:
    world = make_world(tmp_path / "w")
    servers.deps.roots = [world.ws]
    with zipfile.ZipFile(world.outside / "x.zip", "w") as archive:
        archive.writestr("a.txt", MARK)
    world.before = world.outside_state()
    os.symlink(world.outside / "x.zip", world.ws / "x.zip")
    is_error, text = await call_raw(
        servers.fs, "extract_archive", {"archive_path": "x.zip", "destination": "d"}
    )
    assert is_error and "points outside" in text and "archive_path" in text
    assert not (world.ws / "d").exists() and world.untouched()


async def test_compress_never_writes_its_output_through_a_link(
    servers: Servers, tmp_path: Path
) -> None:
    world = make_world(tmp_path / "w")
    servers.deps.roots = [world.ws]
    os.symlink(world.outside / "new.zip", world.ws / "out.zip")
    os.symlink(world.outside, world.ws / "outdir")
    for output in ("out.zip", "outdir/new.zip"):
        is_error, text = await call_raw(
            servers.fs, "compress", {"paths": ["sub"], "output_path": output}
        )
        assert is_error and MARK not in text, text
    assert world.untouched()


async def test_an_archive_over_the_size_limit_is_refused_before_writing(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kimi_mcp.servers.fs import archive as archive_module

    monkeypatch.setattr(archive_module, "MAX_UNPACKED_BYTES", 1000)
    world = make_world(tmp_path / "w")
    servers.deps.roots = [world.ws]
    with zipfile.ZipFile(world.ws / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as arc:
        arc.writestr("zeros.bin", b"\0" * 100_000)  # 100 KB of zeros packs to ~100 bytes
    is_error, text = await call_raw(
        servers.fs, "extract_archive", {"archive_path": "bomb.zip", "destination": "d"}
    )
    assert is_error and "1000 bytes" in text and not (world.ws / "d").exists()


# entries that need one path to be both a file and a directory (the first was found by the
# generated test above): refused before anything is written
CLASHES = {
    "a file ./a, then a directory a": [("./a", "file"), ("a", "dir")],
    "a directory a, then a file a": [("a", "dir"), ("a", "file")],
    "a file a, then a file a/b": [("a", "file"), ("a/b", "file")],
    "a file a/b, then a file a": [("a/b", "file"), ("a", "file")],
    "a file in dest/on-disk-file": [("x", "file"), ("on-disk-file/b", "file")],
    "a file over dest/on-disk-dir": [("x", "file"), ("on-disk-dir", "file")],
}


@pytest.mark.parametrize("fmt", ["zip", "tar"])
@pytest.mark.parametrize("case", list(CLASHES))
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_archive_whose_entries_clash_is_refused_before_anything_is_written(
        servers: Servers, tmp_path: Path, fmt: str, case: str, overwrite: bool) -> None:
    world = make_world(tmp_path.resolve())
    servers.deps.roots = [world.ws]
    dest = world.ws / "dest"
    dest.mkdir()
    (dest / "on-disk-file").write_text("kept\n")
    (dest / "on-disk-dir").mkdir()
    _build(world.ws / "a.arc", fmt, CLASHES[case], "")
    before = _files_under(world.ws)
    is_error, text = anyio.run(call_raw, servers.fs, "extract_archive",
                               {"archive_path": "a.arc", "destination": "dest", "overwrite": overwrite})
    assert is_error, text
    if "on-disk" not in case or (overwrite and "dir" in case):
        assert "both a file and a directory" in text and "nothing was written" in text, text
    assert _files_under(world.ws) == before
    assert (dest / "on-disk-file").read_text() == "kept\n"
