"""Helpers shared by the security tests (not a test module): one deps for the three file
families, a world with sentinels outside the workspace, a link swapper thread."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastmcp import Client, FastMCP
from kimi_mcp.servers import fs, jsonq, tasks

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps

MARK = "SENTINEL-" + secrets.token_hex(8)  # the bytes outside; never seen in any answer


def make_deps(base: Path, *, read_only: bool = False) -> Deps:
    workspace = base / "ws"
    workspace.mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        overrides={
            "data_dir": str(base / "data"),
            "mcp": {"workspace": str(workspace), "read_only": read_only},
        },
        launch_dir=base,
    )
    return Deps(
        settings=settings,
        ledger=None,  # type: ignore[arg-type]
        memory=None,  # type: ignore[arg-type]
        roots=[workspace.resolve()],
    )


@dataclass
class Servers:
    """The fs, json and tasks families over one Deps; re-point `deps.roots` per world."""

    deps: Deps
    fs: FastMCP
    json: FastMCP
    tasks: FastMCP

    @classmethod
    def build(cls, base: Path) -> Servers:
        deps = make_deps(base)
        return cls(deps, fs.build_server(deps), jsonq.build_server(deps), tasks.build_server(deps))

    def family(self, name: str) -> FastMCP:
        server: FastMCP = getattr(self, name)
        return server


async def call_raw(server: FastMCP, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    """(is_error, every text the answer carries, structured content included)."""
    async with Client(server) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    parts = [getattr(block, "text", "") or "" for block in result.content]
    if result.structured_content is not None:
        parts.append(repr(result.structured_content))
    return result.is_error, "\n".join(parts)


@dataclass
class World:
    base: Path
    ws: Path
    outside: Path
    before: dict[str, tuple[str, int]] = field(default_factory=dict)

    def outside_state(self) -> dict[str, tuple[str, int]]:
        """Every entry outside the workspace (in the outside dir and beside ws): content hash
        (or link text) and mtime; a new, changed or removed entry shows."""
        seen: dict[str, tuple[str, int]] = {}
        for dirpath, dirs, files in os.walk(self.base):
            if Path(dirpath) == self.base:
                dirs[:] = [d for d in dirs if d not in ("ws", "data")]
            for name in dirs + files:
                full = Path(dirpath) / name
                st = full.lstat()
                if full.is_symlink():
                    digest = "link:" + os.readlink(full)
                elif full.is_file():
                    digest = hashlib.sha256(full.read_bytes()).hexdigest()
                else:
                    digest = "dir"
                seen[str(full.relative_to(self.base))] = (digest, st.st_mtime_ns)
        return seen

    def untouched(self) -> bool:
        return self.outside_state() == self.before


def make_world(base: Path) -> World:
    """ws (files, a tree, JSON, a task board, a PRD) and `outside` full of sentinels."""
    ws, outside = base / "ws", base / "outside"
    (ws / "sub" / "d").mkdir(parents=True)
    (ws / "sub" / "a.txt").write_text("inside a\n")
    (ws / "sub" / "d" / "b.txt").write_text("inside b\n")
    (ws / "data.json").write_text('{"a": 0, "list": [1, 2]}\n')
    (ws / "schema.json").write_text('{"type": "object"}\n')
    (ws / ".taskmaster" / "tasks").mkdir(parents=True)
    (ws / ".taskmaster" / "docs").mkdir()
    (ws / ".taskmaster" / "docs" / "prd.md").write_text("# Plan\n\n- Build the thing\n")
    (outside / "inner").mkdir(parents=True)
    for name in ("secret.txt", "a.txt", "b.txt", "inner/b.txt", "prd.md", ".gitignore"):
        (outside / name).write_text(f"{MARK} {name}\n")
    for name in ("data.json", "secret.json", "tasks.json", "schema.json"):
        (outside / name).write_text(f'{{"{MARK}": "{name}", "a": 1}}\n')
    (base / "beside.txt").write_text(f"{MARK} beside\n")
    world = World(base, ws.resolve(), outside.resolve())
    world.before = world.outside_state()
    return world


# ---- the swapper ----------------------------------------------------------------------------

# inside path -> what the swapper points it at while it is swapped
SWAPS: dict[str, str] = {
    "sub": "outside",
    "sub/a.txt": "outside/secret.txt",
    "sub/d": "outside/inner",
    "data.json": "outside/data.json",
    "schema.json": "outside/schema.json",
    ".taskmaster": "outside",
    ".taskmaster/tasks": "outside",
    ".taskmaster/tasks/tasks.json": "outside/tasks.json",
    ".taskmaster/docs/prd.md": "outside/prd.md",
    "sub/.gitignore": "outside/.gitignore",
}


@contextmanager
def swapping(world: World, targets: list[str], relative: bool = False) -> Iterator[list[int]]:
    """A thread that keeps swapping each target for a link out of the workspace and back
    (rename away, symlink, unlink, rename back) until the block ends; yields [swaps done]."""
    stop = threading.Event()
    count = [0]

    def run() -> None:
        while not stop.is_set():
            for rel in targets:
                path = world.ws / rel
                aside = path.with_name(path.name + ".swapped-away")
                target = world.base / SWAPS[rel]
                link = os.path.relpath(target, path.parent) if relative else str(target)
                try:
                    moved = False
                    if os.path.lexists(path) and not path.is_symlink():
                        os.rename(path, aside)
                        moved = True
                    elif path.is_symlink():
                        os.unlink(path)
                    os.symlink(link, path)
                    count[0] += 1
                    for _ in range(count[0] % 64):  # hold the link a varying while (no sleep)
                        os.lstat(path)
                    os.unlink(path)
                    if moved:
                        os.rename(aside, path)
                except OSError:
                    continue  # a tool moved or deleted it meanwhile

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join(timeout=10)
