"""Copy, move, delete and sync inside the workspace; symlinks are moved or deleted as links,
never followed out of the workspace."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from typing import Literal

from kimi_mcp.errors import WorkspaceError

from .walk import Excluder, WalkOptions, walk
from .workspace import Workspace, inside

_CHUNK = 1 << 20


def copy_file(ws: Workspace, src: str, dst: str, overwrite: bool) -> int:
    """Copy one regular file's bytes and times; returns the bytes copied."""
    with ws.open_read(src) as source, ws.write_stream(dst, exclusive=not overwrite) as out:
        shutil.copyfileobj(source, out, _CHUNK)
        size = out.tell()
    st = os.stat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return size


def copy(ws: Workspace, src: str, dst: str, overwrite: bool) -> int:
    """Copy a file or a directory tree; returns how many files were copied."""
    if not os.path.lexists(src):
        raise WorkspaceError(f"Not found: {ws.display(src)}")
    if os.path.isdir(src):
        if inside(dst, src):
            raise WorkspaceError("Refused: cannot copy a directory into itself")
        if os.path.lexists(dst) and not overwrite:
            raise WorkspaceError(
                f"Refused: destination exists: {ws.display(dst)}; pass overwrite=true to merge"
            )
        copied = 0

        def skip_escaping(directory: str, names: list[str]) -> set[str]:
            nonlocal copied
            ignored = set()
            for name in names:
                full = os.path.join(directory, name)
                if os.path.islink(full) and not ws.is_inside(os.path.realpath(full)):
                    ignored.add(name)
                elif not os.path.isdir(full):
                    copied += 1
            return ignored

        shutil.copytree(src, dst, symlinks=True, ignore=skip_escaping, dirs_exist_ok=overwrite)
        return copied
    if os.path.isdir(dst):
        raise WorkspaceError(
            f"Refused: destination is a directory: {ws.display(dst)}; give the full target path"
        )
    copy_file(ws, src, dst, overwrite)
    return 1


def move(ws: Workspace, src: str, dst: str, overwrite: bool) -> None:
    """Rename `src` (the entry itself, a symlink stays a symlink) to `dst`."""
    if not os.path.lexists(src):
        raise WorkspaceError(f"Not found: {ws.display(src)}")
    if src in ws.roots:
        raise WorkspaceError("Refused: cannot move a workspace root")
    src_is_dir = os.path.isdir(src) and not os.path.islink(src)
    if src_is_dir and inside(dst, src):
        raise WorkspaceError("Refused: cannot move a directory into itself")
    if os.path.lexists(dst):
        if not overwrite:
            raise WorkspaceError(
                f"Refused: destination exists: {ws.display(dst)}; pass overwrite=true to replace it"
            )
        if os.path.isdir(dst) and not os.path.islink(dst) and not src_is_dir:
            raise WorkspaceError(f"Refused: cannot replace directory {ws.display(dst)} by a file")
    elif not src_is_dir:
        # Link-then-unlink is a no-clobber rename for files: fails if `dst` appeared meanwhile.
        try:
            os.link(src, dst, follow_symlinks=False)
        except FileExistsError:
            raise WorkspaceError(f"Refused: destination exists: {ws.display(dst)}") from None
        except OSError:
            shutil.move(src, dst)
            return
        os.unlink(src)
        return
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            shutil.move(src, dst)
            return
        raise WorkspaceError(f"Cannot move onto {ws.display(dst)}: {exc.strerror}") from None


def delete(ws: Workspace, entry: str, recursive: bool) -> int:
    """Delete a file, a symlink (not its target) or a directory; returns entries removed."""
    if entry in ws.roots:
        raise WorkspaceError("Refused: cannot delete a workspace root")
    try:
        st = os.lstat(entry)
    except FileNotFoundError:
        raise WorkspaceError(f"Not found: {ws.display(entry)}") from None
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(entry)
        return 1
    if not recursive:
        try:
            os.rmdir(entry)
        except OSError:
            raise WorkspaceError(
                f"Refused: directory not empty: {ws.display(entry)}; pass recursive=true"
            ) from None
        return 1
    count = sum(len(dirs) + len(files) for _, dirs, files in os.walk(entry)) + 1
    shutil.rmtree(entry)
    return count


# ---- sync ------------------------------------------------------------------------------------

SyncMode = Literal["mirror", "update"]


@dataclass
class SyncPlan:
    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unchanged: int = 0


def sync(
    ws: Workspace, src: str, dst: str, mode: SyncMode, dry_run: bool, excluder: Excluder
) -> SyncPlan:
    """Make `dst` match `src`: `update` copies new and newer files; `mirror` also deletes extras."""
    if not os.path.isdir(src):
        raise WorkspaceError(f"Not a directory: {ws.display(src)}")
    if inside(dst, src) or inside(src, dst):
        raise WorkspaceError("Refused: source and destination must not contain each other")
    plan = SyncPlan()
    seen: set[str] = set()
    options = WalkOptions(excluder=excluder)
    for entry, rel, is_dir in walk(src, options):
        seen.add(rel)
        target = os.path.join(dst, rel)
        if entry.is_symlink():
            plan.skipped.append(rel)
            continue
        if is_dir:
            if not dry_run:
                ws.makedirs(target)
            continue
        status = _compare(entry, target, mode)
        if status == "same":
            plan.unchanged += 1
            continue
        (plan.copied if status == "new" else plan.updated).append(rel)
        if not dry_run:
            ws.makedirs(os.path.dirname(target))
            copy_file(ws, entry.path, target, overwrite=True)
    if mode == "mirror" and os.path.isdir(dst):
        extras = [rel for _, rel, _ in walk(dst, options) if rel not in seen]
        for rel in sorted(extras):
            if any(rel.startswith(gone + "/") for gone in plan.deleted):
                continue
            plan.deleted.append(rel)
            if not dry_run:
                delete(ws, os.path.join(dst, rel), recursive=True)
    return plan


def _compare(entry: os.DirEntry[str], target: str, mode: SyncMode) -> str:
    try:
        theirs = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        return "new"
    ours = entry.stat(follow_symlinks=False)
    if mode == "update":
        return "changed" if ours.st_mtime_ns > theirs.st_mtime_ns else "same"
    if ours.st_size != theirs.st_size or ours.st_mtime_ns != theirs.st_mtime_ns:
        return "changed"
    return "same"
