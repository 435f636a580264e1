"""Backtracking cannot stop the server: no glob or regex from a tool parameter is matched by
stdlib `re` (which holds the GIL) unless its cost is provably small, and the rest run under a
time limit, off the event loop.

Each hostile input here takes minutes to hours on the code before the fix (the per-test
timeout is what fails then) and milliseconds after it.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from security_support import Servers, call_raw, make_world

pytestmark = pytest.mark.anyio

# 4**16 backtracking steps on a name of 16 characters or more: about 45 s on `re`
BRACES = "{?,?,?,?}" * 16 + "Z"


@pytest.fixture
def servers(tmp_path: Path) -> Servers:
    world = make_world(tmp_path)
    built = Servers.build(tmp_path)
    built.deps.roots = [world.ws]
    (world.ws / "a_fairly_long_file_name.txt").write_text("hi\n")
    return built


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "tool,args",
    [
        ("search_files", {"pattern": BRACES}),
        ("search_files", {"pattern": "*.none", "exclude_patterns": [BRACES]}),
        ("list_directory", {"pattern": BRACES}),
        ("directory_tree", {"exclude_patterns": ["x", BRACES]}),
        ("search_content", {"regex": "hi", "file_pattern": BRACES}),
    ],
)
async def test_a_glob_of_brace_groups_is_matched_under_the_time_limit(
    servers: Servers, tool: str, args: dict[str, object]
) -> None:
    is_error, text = await call_raw(servers.fs, tool, args)
    assert not is_error or "too costly" in text, text


@pytest.mark.parametrize("pattern", ["[z-a]*", "{" * 5000 + "a"])
async def test_an_invalid_glob_is_refused_naming_the_parameter(
    servers: Servers, pattern: str
) -> None:
    for tool, args in [
        ("search_files", {"pattern": pattern}),
        ("list_directory", {"pattern": pattern}),
        ("directory_tree", {"exclude_patterns": [pattern]}),
    ]:
        is_error, text = await call_raw(servers.fs, tool, args)
        assert is_error and "is not valid" in text and f"fs_{tool}, parameter" in text, text
        assert "internal error" not in text


async def test_globs_with_braces_still_match(servers: Servers) -> None:
    ws = servers.deps.roots[0]
    (ws / "x.js").write_text("")
    (ws / "y.ts").write_text("")
    (ws / "z.py").write_text("")
    is_error, text = await call_raw(servers.fs, "list_directory", {"pattern": "*.{js,ts}"})
    assert not is_error and "x.js" in text and "y.ts" in text and "z.py" not in text


@pytest.mark.timeout(15)
async def test_parallel_backtracking_extracts_run_side_by_side_off_the_event_loop(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the event loop each call held every route for its whole time limit, one after
    another: 24 calls of 1 s took 24 s. Off the loop they run side by side."""
    from kimi_mcp.servers.fs import tools_read

    monkeypatch.setattr(tools_read, "EXTRACT_SECONDS", 1)
    (servers.deps.roots[0] / "small.txt").write_text("a" * 4000 + "!\n")
    args = {"path": "small.txt", "pattern": "(a|aa)+$"}
    texts: list[str] = []

    async def one() -> None:
        is_error, text = await call_raw(servers.fs, "extract_lines", args)
        assert is_error
        texts.append(text)

    async with anyio.create_task_group() as group:
        for _ in range(24):
            group.start_soon(one)
    assert len(texts) == 24
    assert all("time limit" in t and "parameter `pattern`" in t for t in texts), texts[0]
