"""Whole-entry operations of the workspace primitive: delete, move and copy, by descriptors.

Part of `kimi_mcp.workspace` (rules 3, 4, 6 and 7 of its docstring), kept apart for size.
Trees are walked with `subdir` (`O_NOFOLLOW | O_DIRECTORY`) from verified descriptors, so a
directory swapped for a link mid-walk is never entered; nothing here opens a path string.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import (
    KERNEL,
    RENAME_NOREPLACE,
    Located,
    Workspace,
    copy_stream,
    inside,
    listdir,
    read_at,
    replace_at,
    subdir,
)
from kimi_mcp.workspace_errors import kernel_errors, os_error


@dataclass
class CopyReport:
    files: int = 0
    links: int = 0
    skipped: list[str] = field(default_factory=list)  # canonical paths not copied, with why


# ---- delete ----------------------------------------------------------------------------------


@kernel_errors
def remove(ws: Workspace, path: str, *, recursive: bool) -> int:
    """Delete a file, a symlink (not its target) or a directory; returns entries removed."""
    with ws.at(path, follow=False) as loc:
        shown = ws.display(loc.path)
        if not loc.name or loc.dir_fd is None:
            raise WorkspaceError("Refused: cannot delete a workspace root")
        st = _lstat(loc, shown)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(loc.name, dir_fd=loc.dir_fd)
            return 1
        if not recursive:
            try:
                os.rmdir(loc.name, dir_fd=loc.dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise WorkspaceError(
                        f"Refused: directory not empty: {shown}; pass recursive=true"
                    ) from None
                raise os_error(exc, shown) from None
            return 1
        return _rmtree_at(loc.dir_fd, loc.name, shown)


def _rmtree_at(parent_fd: int, name: str, shown: str) -> int:
    fd = subdir(parent_fd, name, shown)
    count = 0
    try:
        for entry in listdir(fd):
            if entry.is_dir(follow_symlinks=False):
                count += _rmtree_at(fd, entry.name, f"{shown}/{entry.name}")
            else:
                os.unlink(entry.name, dir_fd=fd)
                count += 1
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)
    return count + 1


def _lstat(loc: Located, shown: str) -> os.stat_result:
    assert loc.dir_fd is not None
    try:
        return os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise os_error(exc, shown) from None


def _lstat_or_none(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


# ---- links -----------------------------------------------------------------------------------


@kernel_errors
def repoint(ws: Workspace, link_path: str, target: str, new_path: str) -> str | None:
    """The target for a copy (or move) of the link at `link_path` placed at `new_path`
    (rule 7): the same text when it still points inside from there (links inside a copied
    tree keep pointing into the copy), else a relative target at what the original points
    to; None when the original points outside the workspace."""
    if os.path.isabs(target):
        original = moved = os.path.normpath(target)
    else:
        original = os.path.normpath(os.path.join(os.path.dirname(link_path), target))
        moved = os.path.normpath(os.path.join(os.path.dirname(new_path), target))
    if not ws.is_inside(original):
        return None
    if ws.is_inside(moved):
        return target
    try:
        real = ws.resolve(original)
    except WorkspaceError:
        return None
    return os.path.relpath(real, os.path.dirname(new_path))


def _outward_links(ws: Workspace, fd: int, old: str, new: str) -> str | None:
    """The first relative link under the open dir `fd` (at `old`) that would point outside
    the workspace once the tree is at `new`."""
    for entry in listdir(fd):
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(entry.name, dir_fd=fd)
            if not os.path.isabs(target):
                moved = os.path.normpath(os.path.join(new, target))
                if not ws.is_inside(moved):
                    return f"{ws.display(old)}/{entry.name} -> {target}"
        elif stat.S_ISDIR(st.st_mode):
            child = subdir(fd, entry.name)
            try:
                found = _outward_links(ws, child, f"{old}/{entry.name}", f"{new}/{entry.name}")
            finally:
                os.close(child)
            if found:
                return found
    return None


# ---- move ------------------------------------------------------------------------------------


@kernel_errors
def move(ws: Workspace, src: str, dst: str, *, overwrite: bool) -> tuple[str, str]:
    """Rename the entry `src` (a link stays a link) to `dst`; returns both canonical paths."""
    with ws.at(src, follow=False) as s, ws.at(dst) as d:
        if not s.name or s.dir_fd is None:
            raise WorkspaceError("Refused: cannot move a workspace root")
        dfd, dname = ws.writable(d)
        shown_src, shown_dst = ws.display(s.path), ws.display(d.path)
        sst = _lstat(s, shown_src)
        is_dir = stat.S_ISDIR(sst.st_mode)
        if is_dir and inside(d.path, s.path):
            raise WorkspaceError("Refused: cannot move a directory into itself")
        there = _lstat_or_none(dfd, dname)
        if there is not None:
            if not overwrite:
                raise WorkspaceError(
                    f"Refused: destination exists: {shown_dst}; pass overwrite=true to replace it"
                )
            if stat.S_ISDIR(there.st_mode) and not is_dir:
                raise WorkspaceError(f"Refused: cannot replace directory {shown_dst} by a file")
        if stat.S_ISLNK(sst.st_mode):
            _move_link(ws, s, d, dfd, dname, overwrite)
            return s.path, d.path
        if is_dir and os.path.dirname(s.path) != os.path.dirname(d.path):
            fd = subdir(s.dir_fd, s.name, shown_src)
            try:
                outward = _outward_links(ws, fd, s.path, d.path)
            finally:
                os.close(fd)
            if outward:
                raise WorkspaceError(
                    f"Refused: after the move the relative link {outward} would point outside "
                    "the workspace; move it separately or make it absolute first"
                )
        _rename(ws, s, dfd, dname, d.path, overwrite, is_dir)
        return s.path, d.path


def _move_link(
    ws: Workspace, s: Located, d: Located, dfd: int, dname: str, overwrite: bool
) -> None:
    assert s.dir_fd is not None
    target = os.readlink(s.name, dir_fd=s.dir_fd)
    pointed = repoint(ws, s.path, target, d.path)
    if pointed is None:
        raise WorkspaceError(
            f"Refused: {ws.display(s.path)} is a symlink to {target}, outside the workspace; "
            "delete it instead of moving it"
        )
    if overwrite and _lstat_or_none(dfd, dname) is not None:
        os.unlink(dname, dir_fd=dfd)
    try:
        os.symlink(pointed, dname, dir_fd=dfd)
    except FileExistsError:
        raise WorkspaceError(f"Refused: destination exists: {ws.display(d.path)}") from None
    os.unlink(s.name, dir_fd=s.dir_fd)


def _rename(
    ws: Workspace, s: Located, dfd: int, dname: str, dpath: str, overwrite: bool, is_dir: bool
) -> None:
    assert s.dir_fd is not None
    shown = ws.display(dpath)
    try:
        if overwrite:
            os.replace(s.name, dname, src_dir_fd=s.dir_fd, dst_dir_fd=dfd)
        elif KERNEL.renameat2 is not None:
            KERNEL.renameat2(s.dir_fd, s.name, dfd, dname, RENAME_NOREPLACE)
        elif not is_dir:  # link-then-unlink: a no-clobber rename for files
            os.link(s.name, dname, src_dir_fd=s.dir_fd, dst_dir_fd=dfd, follow_symlinks=False)
            os.unlink(s.name, dir_fd=s.dir_fd)
        else:
            if _lstat_or_none(dfd, dname) is not None:
                raise FileExistsError(errno.EEXIST, "exists", dname)
            os.rename(s.name, dname, src_dir_fd=s.dir_fd, dst_dir_fd=dfd)
    except FileExistsError:
        raise WorkspaceError(f"Refused: destination exists: {shown}") from None
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            copy(ws, s.path, dpath, overwrite=overwrite)
            remove(ws, s.path, recursive=True)
            return
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise WorkspaceError(
                f"Refused: cannot move onto {shown}: it is a non-empty directory"
            ) from None
        raise os_error(exc, shown) from None


# ---- copy ------------------------------------------------------------------------------------


@kernel_errors
def copy(ws: Workspace, src: str, dst: str, *, overwrite: bool) -> CopyReport:
    """Copy a file or a directory tree (rule 7); links are re-pointed or skipped."""
    report = CopyReport()
    with ws.at(src) as s:
        shown_src = ws.display(s.path)
        if s.dir_fd is None:
            raise WorkspaceError(f"Not found: {shown_src}")
        st = os.fstat(s.dir_fd) if not s.name else _lstat(s, shown_src)
        if not stat.S_ISDIR(st.st_mode):
            _copy_one_file(ws, s, dst, overwrite, report)
            return report
        src_fd = os.dup(s.dir_fd) if not s.name else subdir(s.dir_fd, s.name, shown_src)
    try:
        with ws.at(dst) as d:
            dfd, dname = ws.writable(d)
            if inside(d.path, s.path):
                raise WorkspaceError("Refused: cannot copy a directory into itself")
            there = _lstat_or_none(dfd, dname)
            if there is not None and not overwrite:
                raise WorkspaceError(
                    f"Refused: destination exists: {ws.display(d.path)}; pass overwrite=true "
                    "to merge into it"
                )
            dst_fd = _ensure_dir(ws, dfd, dname, d.path, there)
        try:
            _copy_tree(ws, src_fd, s.path, dst_fd, d.path, overwrite, report)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    return report


def _copy_one_file(
    ws: Workspace, s: Located, dst: str, overwrite: bool, report: CopyReport
) -> None:
    assert s.dir_fd is not None
    with ws.at(dst) as d:
        dfd, dname = ws.writable(d)
        there = _lstat_or_none(dfd, dname)
        if there is not None and stat.S_ISDIR(there.st_mode):
            raise WorkspaceError(
                f"Refused: destination is a directory: {ws.display(d.path)}; give the full "
                "target path"
            )
        if there is not None and not overwrite:
            raise WorkspaceError(
                f"Refused: destination exists: {ws.display(d.path)}; pass overwrite=true"
            )
        _copy_file_at(ws, s.dir_fd, s.name, s.path, dfd, dname, d.path, overwrite)
        report.files += 1


def _copy_file_at(
    ws: Workspace, sfd: int, sname: str, spath: str, dfd: int, dname: str, dpath: str,
    overwrite: bool,
) -> None:
    source = read_at(sfd, sname, ws.display(spath))
    if source is None:
        raise WorkspaceError(f"Refused: {ws.display(spath)} became a symlink during the copy")
    with source:
        st = os.fstat(source.fileno())
        times = (st.st_atime_ns, st.st_mtime_ns)
        with replace_at(dfd, dname, ws.display(dpath), ws.umask, exclusive=not overwrite,
                        mtime_ns=times) as out:
            copy_stream(source, out)


def _ensure_dir(
    ws: Workspace, dfd: int, dname: str, dpath: str, there: os.stat_result | None
) -> int:
    if there is None:
        try:
            os.mkdir(dname, 0o777, dir_fd=dfd)
        except OSError as exc:
            raise os_error(exc, ws.display(dpath)) from None
    elif stat.S_ISLNK(there.st_mode):
        raise WorkspaceError(
            f"Refused: destination {ws.display(dpath)} is a symlink; copies never write "
            "through a link (delete it first)"
        )
    elif not stat.S_ISDIR(there.st_mode):
        raise WorkspaceError(f"Refused: destination {ws.display(dpath)} exists and is a file")
    return subdir(dfd, dname, ws.display(dpath))


def _copy_tree(
    ws: Workspace, sfd: int, spath: str, dfd: int, dpath: str, overwrite: bool,
    report: CopyReport,
) -> None:
    for entry in listdir(sfd):
        name = entry.name
        s_child, d_child = f"{spath}/{name}", f"{dpath}/{name}"
        st = entry.stat(follow_symlinks=False)
        there = _lstat_or_none(dfd, name)
        if stat.S_ISDIR(st.st_mode):
            child_dst = _ensure_dir(ws, dfd, name, d_child, there)
            try:
                child_src = subdir(sfd, name, ws.display(s_child))
                try:
                    _copy_tree(ws, child_src, s_child, child_dst, d_child, overwrite, report)
                finally:
                    os.close(child_src)
            finally:
                os.close(child_dst)
        elif stat.S_ISREG(st.st_mode):
            if there is not None and stat.S_ISDIR(there.st_mode):
                report.skipped.append(f"{ws.display(s_child)} (a directory is in the way)")
                continue
            _copy_file_at(ws, sfd, name, s_child, dfd, name, d_child, overwrite)
            report.files += 1
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=sfd)
            pointed = repoint(ws, s_child, target, d_child)
            if pointed is None:
                report.skipped.append(f"{ws.display(s_child)} (a link out of the workspace)")
                continue
            if there is not None:
                if stat.S_ISDIR(there.st_mode):
                    report.skipped.append(f"{ws.display(s_child)} (a directory is in the way)")
                    continue
                os.unlink(name, dir_fd=dfd)
            os.symlink(pointed, name, dir_fd=dfd)
            report.links += 1
        else:
            report.skipped.append(f"{ws.display(s_child)} (a pipe, socket or device)")
