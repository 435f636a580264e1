"""Archives: zip and tar.gz, created without following symlinks, extracted only after every
entry has been checked (no `../`, no absolute names, no links, nothing landing outside)."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Literal

from kimi_mcp.errors import WorkspaceError

from .workspace import Workspace, inside

ArchiveFormat = Literal["zip", "tar.gz"]
MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 2 << 30


@dataclass
class PackResult:
    files: int = 0
    bytes_in: int = 0
    skipped: list[str] = field(default_factory=list)


def collect(ws: Workspace, sources: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(real path, name in archive) for every regular file and dir under `sources`."""
    items: list[tuple[str, str]] = []
    skipped: list[str] = []
    for source in sources:
        base = os.path.dirname(source.rstrip(os.sep))
        if not os.path.isdir(source):
            items.append((source, os.path.relpath(source, base)))
            continue
        items.append((source, os.path.relpath(source, base)))
        for directory, dirs, files in os.walk(source):
            for name in list(dirs):
                full = os.path.join(directory, name)
                if os.path.islink(full):
                    dirs.remove(name)
                    skipped.append(ws.display(full))
                else:
                    items.append((full, os.path.relpath(full, base)))
            for name in files:
                full = os.path.join(directory, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    skipped.append(ws.display(full))
                else:
                    items.append((full, os.path.relpath(full, base)))
    return items, skipped


def pack(ws: Workspace, sources: list[str], output: str, fmt: ArchiveFormat) -> PackResult:
    items, skipped = collect(ws, sources)
    result = PackResult(skipped=skipped)
    with ws.write_stream(output, exclusive=True) as handle:
        if fmt == "zip":
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for real, name in items:
                    archive.write(real, name.replace(os.sep, "/"))
                    _count(result, real)
        else:
            with tarfile.open(fileobj=handle, mode="w:gz") as tar:
                for real, name in items:
                    tar.add(real, name.replace(os.sep, "/"), recursive=False)
                    _count(result, real)
    return result


def _count(result: PackResult, real: str) -> None:
    if os.path.isfile(real):
        result.files += 1
        result.bytes_in += os.path.getsize(real)


# ---- extraction ------------------------------------------------------------------------------


@dataclass
class Member:
    name: str
    is_dir: bool
    size: int
    target: str = ""


@dataclass
class UnpackResult:
    files: int = 0
    dirs: int = 0
    bytes_out: int = 0
    overwritten: list[str] = field(default_factory=list)


def detect(path: str) -> ArchiveFormat:
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar.gz"
    raise WorkspaceError(f"Not a zip or tar archive: {path}")


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[Member, str | None]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        problem = "a symlink entry" if stat.S_ISLNK(mode) else None
        yield Member(info.filename, info.is_dir(), info.file_size), problem


def _tar_members(tar: tarfile.TarFile) -> Iterator[tuple[Member, str | None]]:
    for info in tar.getmembers():
        problem = None
        if info.issym() or info.islnk():
            problem = f"a link entry (-> {info.linkname})"
        elif not (info.isfile() or info.isdir()):
            problem = "a device, fifo or other special entry"
        yield Member(info.name, info.isdir(), info.size), problem


def check_members(
    ws: Workspace, listing: Iterator[tuple[Member, str | None]], dest: str, overwrite: bool
) -> list[Member]:
    """Every entry must land inside `dest`; refuse the whole archive otherwise."""
    members: list[Member] = []
    total = 0
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
        real = os.path.realpath(target)
        if not inside(real, dest) or not ws.is_inside(real):
            raise WorkspaceError(
                f"Refused archive: entry {name!r} would be written through a symlink to {real}"
            )
        if os.path.lexists(target) and not member.is_dir:
            if not overwrite:
                raise WorkspaceError(
                    f"Refused: {ws.display(target)} already exists; pass overwrite=true to "
                    "replace existing files"
                )
        member.target = target
        total += member.size
        members.append(member)
        if len(members) > MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
            raise WorkspaceError(
                f"Refused archive: more than {MAX_MEMBERS} entries or {MAX_UNPACKED_BYTES} bytes"
            )
    return members


def unpack(ws: Workspace, archive_path: str, dest: str, overwrite: bool) -> UnpackResult:
    fmt = detect(archive_path)
    result = UnpackResult()
    with ws.open_read(archive_path) as raw:
        if fmt == "zip":
            with zipfile.ZipFile(raw) as archive:
                members = check_members(ws, _zip_members(archive), dest, overwrite)
                ws.makedirs(dest)
                for member in members:
                    _write_member(ws, member, lambda n: archive.open(n), result)
        else:
            with tarfile.open(fileobj=raw, mode="r:*") as tar:
                members = check_members(ws, _tar_members(tar), dest, overwrite)
                ws.makedirs(dest)
                for member in members:
                    _write_member(ws, member, tar.extractfile, result)
    return result


Opener = Callable[[str], "IO[bytes] | None"]


def _write_member(ws: Workspace, member: Member, opener: Opener, result: UnpackResult) -> None:
    if member.is_dir:
        if ws.makedirs(member.target):
            result.dirs += 1
        return
    ws.makedirs(os.path.dirname(member.target))
    if os.path.lexists(member.target):
        result.overwritten.append(ws.display(member.target))
    source = opener(member.name)
    if source is None:
        return
    with source, ws.write_stream(member.target) as out:
        shutil.copyfileobj(source, out, 1 << 20)
        result.bytes_out += out.tell()
    result.files += 1
