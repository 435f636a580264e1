"""Hard links (SECURITY.md, "Not covered"): a file that already has a second name inside the
workspace is the same file, so reading it is not an escape kimi-mcp can see. Writing is: every
write replaces the name through a rename and leaves the other name's bytes alone, and the only
writes made in place (appends, the task board's lock) refuse a file with more than one name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from security_support import Servers, call_raw, make_world

pytestmark = pytest.mark.anyio


@pytest.fixture
def world_and_servers(tmp_path: Path) -> tuple[object, Servers]:
    world = make_world(tmp_path)
    built = Servers.build(tmp_path)
    built.deps.roots = [world.ws]
    return world, built


async def test_appending_to_a_hard_link_of_an_outside_file_is_refused(
    world_and_servers: tuple[object, Servers],
) -> None:
    world, servers = world_and_servers
    os.link(world.outside / "secret.txt", world.ws / "hard.txt")  # type: ignore[attr-defined]
    is_error, text = await call_raw(
        servers.fs, "write_file", {"path": "hard.txt", "content": "PWN", "append": True}
    )
    assert is_error and "hard links" in text and "fs_write_file" in text, text
    assert world.untouched()  # type: ignore[attr-defined]


async def test_every_other_write_to_a_hard_link_replaces_only_the_name_inside(
    world_and_servers: tuple[object, Servers],
) -> None:
    world, servers = world_and_servers
    ws, outside = world.ws, world.outside  # type: ignore[attr-defined]
    os.link(outside / "secret.txt", ws / "hard.txt")
    os.link(outside / "tasks.json", ws / ".taskmaster" / "tasks" / "tasks.json")
    os.link(outside / "data.json", ws / "linked.json")
    calls = [
        ("fs", "write_file", {"path": "hard.txt", "content": "replaced"}),
        ("fs", "edit_lines", {"path": "hard.txt", "edits": [
            {"line": 1, "mode": "replace", "text": "edited"}]}),
        ("json", "update", {"path": "linked.json", "expression": "$.a", "operation": "set", "value": 5}),
        ("tasks", "add", {"title": "planted board"}),
    ]
    for family, tool, args in calls:
        is_error, text = await call_raw(servers.family(family), tool, args)
        assert not is_error, (tool, text)
    assert world.untouched()  # type: ignore[attr-defined]
