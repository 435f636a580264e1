"""Archives: zip and tar.gz, created without following symlinks, extracted only after every
entry has been checked (no `../`, no absolute names, no links, nothing landing outside).

Every byte goes through the workspace primitive: sources are read with `open_read`, the
archive and the extracted files are written with `write_stream` (temp file + rename in a
verified directory), so a link planted while an archive is packed or unpacked is never
followed out of the workspace.
"""

from __future__ import annotations

import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Literal

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace, copy_stream, inside, listdir, subdir

ArchiveFormat = Literal["zip", "tar.gz"]
MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 2 << 30
_CHUNK = 1 << 20


@dataclass
class PackResult:
    files: int = 0
    bytes_in: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass
class Item:
    path: str  # canonical
    name: str  # inside the archive, `/`-separated
    is_dir: bool


def collect(ws: Workspace, sources: list[str]) -> tuple[list[Item], list[str]]:
    """Every regular file and directory under `sources` (canonical paths); links and special
    files are listed as skipped, never followed."""
    items: list[Item] = []
    skipped: list[str] = []
    for source in sources:
        st = ws.stat(source, follow=False)
        name = os.path.basename(source.rstrip(os.sep))
        if stat.S_ISREG(st.st_mode):
            items.append(Item(source, name, False))
        elif stat.S_ISDIR(st.st_mode):
            items.append(Item(source, name, True))
            with ws.open_dir(source) as fd:
                _collect_dir(ws, fd, source, name, items, skipped)
        else:
            skipped.append(ws.display(source))
    return items, skipped


def _collect_dir(
    ws: Workspace, fd: int, path: str, name: str, items: list[Item], skipped: list[str]
) -> None:
    for entry in sorted(listdir(fd), key=lambda e: e.name):
        child, child_name = f"{path}/{entry.name}", f"{name}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            items.append(Item(child, child_name, True))
            sub = subdir(fd, entry.name, ws.display(child))
            try:
                _collect_dir(ws, sub, child, child_name, items, skipped)
            finally:
                os.close(sub)
        elif entry.is_file(follow_symlinks=False):
            items.append(Item(child, child_name, False))
        else:
            skipped.append(ws.display(child))
        if len(items) > MAX_MEMBERS:
            raise WorkspaceError(f"Refused: more than {MAX_MEMBERS} entries to pack")


def pack(ws: Workspace, sources: list[str], output: str, fmt: ArchiveFormat) -> PackResult:
    items, skipped = collect(ws, sources)
    result = PackResult(skipped=skipped)
    with ws.write_stream(output, exclusive=True) as handle:
        if fmt == "zip":
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for item in items:
                    _zip_add(ws, archive, item, result)
        else:
            with tarfile.open(fileobj=handle, mode="w:gz") as tar:
                for item in items:
                    _tar_add(ws, tar, item, result)
    return result


def _zip_add(ws: Workspace, archive: zipfile.ZipFile, item: Item, result: PackResult) -> None:
    if item.is_dir:
        st = ws.stat(item.path, follow=False)
        info = zipfile.ZipInfo(item.name + "/", _zip_time(st.st_mtime))
        info.external_attr = (stat.S_IFDIR | stat.S_IMODE(st.st_mode)) << 16 | 0x10
        archive.writestr(info, b"")
        return
    with ws.open_read(item.path) as source:
        st = os.fstat(source.fileno())
        info = zipfile.ZipInfo(item.name, _zip_time(st.st_mtime))
        info.external_attr = (stat.S_IFREG | stat.S_IMODE(st.st_mode)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=st.st_size > (1 << 31)) as out:
            result.bytes_in += copy_stream(source, out)
    result.files += 1


def _tar_add(ws: Workspace, tar: tarfile.TarFile, item: Item, result: PackResult) -> None:
    info = tarfile.TarInfo(item.name)
    if item.is_dir:
        st = ws.stat(item.path, follow=False)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, stat.S_IMODE(st.st_mode), int(st.st_mtime)
        tar.addfile(info)
        return
    with ws.open_read(item.path) as source:
        st = os.fstat(source.fileno())
        info.size, info.mode, info.mtime = st.st_size, stat.S_IMODE(st.st_mode), int(st.st_mtime)
        tar.addfile(info, source)
    result.files += 1
    result.bytes_in += st.st_size


def _zip_time(timestamp: float) -> tuple[int, int, int, int, int, int]:
    year, month, day, hour, minute, second = time.localtime(max(timestamp, 315532800))[:6]
    return (max(year, 1980), month, day, hour, minute, second)


# ---- extraction ------------------------------------------------------------------------------


@dataclass
class Member:
    name: str
    is_dir: bool
    size: int
    info: object = None  # the ZipInfo / TarInfo, opened directly (names can be ambiguous)
    target: str = ""


@dataclass
class UnpackResult:
    files: int = 0
    dirs: int = 0
    bytes_out: int = 0
    overwritten: list[str] = field(default_factory=list)


def detect(handle: BinaryIO, shown: str) -> ArchiveFormat:
    if zipfile.is_zipfile(handle):
        handle.seek(0)
        return "zip"
    handle.seek(0)
    if tarfile.is_tarfile(handle):
        handle.seek(0)
        return "tar.gz"
    raise WorkspaceError(f"Not a zip or tar archive: {shown}; give a .zip, .tar or .tar.gz file")


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[Member, str | None]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        problem = "a symlink entry" if stat.S_ISLNK(mode) else None
        yield Member(info.filename, info.is_dir(), info.file_size, info), problem


def _tar_members(tar: tarfile.TarFile) -> Iterator[tuple[Member, str | None]]:
    # lazily, header by header: `getmembers()` would decompress and list every header before
    # the entry limit is checked (a small tar.gz can hold millions of empty headers)
    for info in tar:
        problem = None
        if info.issym() or info.islnk():
            problem = f"a link entry (-> {info.linkname})"
        elif not (info.isfile() or info.isdir()):
            problem = "a device, fifo or other special entry"
        yield Member(info.name, info.isdir(), info.size, info), problem


def check_members(
    ws: Workspace, listing: Iterator[tuple[Member, str | None]], dest: str, overwrite: bool
) -> list[Member]:
    """Every entry must land inside `dest`, and the entries must fit together and with what is
    on disk (no path both a file and a directory); refuse the whole archive otherwise, before
    anything is written."""
    members: list[Member] = []
    total = 0
    files: set[str] = set()
    dirs: set[str] = set()
    for member, problem in listing:
        name = member.name
        if problem:
            raise WorkspaceError(f"Refused archive: entry {name!r} is {problem}; nothing written")
        if "\x00" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise WorkspaceError(f"Refused archive: entry {name!r} has an absolute name")
        target = os.path.normpath(os.path.join(dest, name.replace("\\", "/")))
        if not inside(target, dest) or (target == dest and not member.is_dir):
            raise WorkspaceError(
                f"Refused archive: entry {name!r} would land outside the destination "
                "(zip-slip); nothing was written"
            )
        real = ws.resolve(target) if ws.is_inside(target) else target
        if not inside(real, dest):
            raise WorkspaceError(
                f"Refused archive: entry {name!r} would be written through a symlink to {real}"
            )
        if not member.is_dir and not overwrite and ws.lstat_or_none(target) is not None:
            raise WorkspaceError(
                f"Refused: {ws.display(target)} already exists; pass overwrite=true to "
                "replace existing files"
            )
        _check_shape(ws, name, target, dest, member.is_dir, files, dirs)
        member.target = target
        total += member.size
        members.append(member)
        if len(members) > MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
            raise WorkspaceError(
                f"Refused archive: more than {MAX_MEMBERS} entries or {MAX_UNPACKED_BYTES} bytes"
            )
    return members


def _check_shape(ws: Workspace, name: str, target: str, dest: str, is_dir: bool,
                 files: set[str], dirs: set[str]) -> None:
    """Refuse an entry whose path another entry needs to be the other kind (a file `./a` and a
    directory `a/`, a file `a` and an entry `a/b`), or a file entry where a directory is on disk:
    extracting it would fail half-way. (A file on disk where an entry needs a directory is
    refused by the containment check above.)"""
    parents: list[str] = []  # the directories this entry needs, itself first when it is one
    parent = target if is_dir else os.path.dirname(target)
    while inside(parent, dest) and parent != dest:
        parents.append(parent)
        parent = os.path.dirname(parent)
    clash = next((p for p in parents if p in files), None)
    if not is_dir and (target in dirs or _is_dir_on_disk(ws, target)):
        clash = target
    if clash:
        raise WorkspaceError(
            f"Refused archive: entry {name!r} needs {ws.display(clash)} to be both a file and a "
            "directory; nothing was written")
    dirs.update(parents)
    if not is_dir:
        files.add(target)


def _is_dir_on_disk(ws: Workspace, path: str) -> bool:
    st = ws.lstat_or_none(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def unpack(ws: Workspace, archive_path: str, dest: str, overwrite: bool) -> UnpackResult:
    result = UnpackResult()
    with ws.open_read(archive_path) as raw:
        fmt = detect(raw, ws.display(archive_path))
        if fmt == "zip":
            with zipfile.ZipFile(raw) as archive:
                members = check_members(ws, _zip_members(archive), dest, overwrite)
                ws.makedirs(dest)
                for member in members:
                    _write_member(ws, member, lambda i: archive.open(i), result)  # type: ignore[arg-type]
        else:
            with tarfile.open(fileobj=raw, mode="r:*") as tar:
                members = check_members(ws, _tar_members(tar), dest, overwrite)
                ws.makedirs(dest)
                for member in members:
                    _write_member(ws, member, tar.extractfile, result)  # type: ignore[arg-type]
    return result


Opener = Callable[[object], "IO[bytes] | None"]


def _write_member(ws: Workspace, member: Member, opener: Opener, result: UnpackResult) -> None:
    if member.is_dir:
        if ws.makedirs(member.target):
            result.dirs += 1
        return
    ws.makedirs(os.path.dirname(member.target))
    if ws.lstat_or_none(member.target) is not None:
        result.overwritten.append(ws.display(member.target))
    source = opener(member.info)
    if source is None:
        return
    with source, ws.write_stream(member.target, follow=False) as out:
        written = 0
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > member.size:
                raise WorkspaceError(
                    f"Refused archive: entry {member.name!r} holds more bytes than it declares"
                )
            out.write(chunk)
        result.bytes_out += written
    result.files += 1
