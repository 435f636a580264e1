"""Copy, move, delete and sync inside the workspace, through the core primitive.

Symlinks are moved, copied or deleted as links and never followed: a copied link is
re-pointed at the same target when it stays inside, skipped when it would leave.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Literal

from kimi_mcp import workspace_tree
from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace, inside

from .walk import Excluder, WalkOptions, walk


def copy(ws: Workspace, src: str, dst: str, overwrite: bool) -> workspace_tree.CopyReport:
    """Copy a file or a directory tree; the report counts files and lists what was skipped."""
    return workspace_tree.copy(ws, src, dst, overwrite=overwrite)


def move(ws: Workspace, src: str, dst: str, overwrite: bool) -> None:
    """Rename `src` (the entry itself, a symlink stays a symlink) to `dst`."""
    workspace_tree.move(ws, src, dst, overwrite=overwrite)


def delete(ws: Workspace, entry: str, recursive: bool) -> int:
    """Delete a file, a symlink (not its target) or a directory; returns entries removed."""
    return workspace_tree.remove(ws, entry, recursive=recursive)


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
    if not ws.is_dir(src):
        raise WorkspaceError(f"Not a directory: {ws.display(src)}; give a directory")
    if inside(dst, src) or inside(src, dst):
        raise WorkspaceError("Refused: source and destination must not contain each other")
    plan = SyncPlan()
    seen: set[str] = set()
    options = WalkOptions(excluder=excluder)
    with ws.open_dir(src) as top:
        for entry, rel, is_dir, _fd in walk(top, options):
            seen.add(rel)
            target = f"{dst}/{rel}"
            if entry.is_symlink():
                plan.skipped.append(rel)
                continue
            if is_dir:
                if not dry_run:
                    ws.makedirs(target)
                continue
            if not entry.is_file(follow_symlinks=False):
                plan.skipped.append(rel)
                continue
            status = _compare(ws, entry.stat(follow_symlinks=False), target, mode)
            if status == "same":
                plan.unchanged += 1
                continue
            (plan.copied if status == "new" else plan.updated).append(rel)
            if not dry_run:
                ws.makedirs(os.path.dirname(target))
                workspace_tree.copy(ws, f"{src}/{rel}", target, overwrite=True)
    if mode == "mirror" and ws.is_dir(dst):
        _mirror_deletions(ws, dst, options, seen, plan, dry_run)
    return plan


def _mirror_deletions(
    ws: Workspace, dst: str, options: WalkOptions, seen: set[str], plan: SyncPlan, dry_run: bool
) -> None:
    with ws.open_dir(dst) as top:
        extras = [rel for _, rel, _, _ in walk(top, options) if rel not in seen]
    for rel in sorted(extras):
        if any(rel.startswith(gone + "/") for gone in plan.deleted):
            continue
        plan.deleted.append(rel)
        if not dry_run:
            workspace_tree.remove(ws, f"{dst}/{rel}", recursive=True)


def _compare(ws: Workspace, ours: os.stat_result, target: str, mode: SyncMode) -> str:
    theirs = ws.lstat_or_none(target)
    if theirs is None:
        return "new"
    if stat.S_ISLNK(theirs.st_mode):
        return "changed"
    if mode == "update":
        return "changed" if ours.st_mtime_ns > theirs.st_mtime_ns else "same"
    if ours.st_size != theirs.st_size or ours.st_mtime_ns != theirs.st_mtime_ns:
        return "changed"
    return "same"
