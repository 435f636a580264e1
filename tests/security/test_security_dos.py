"""Denial of service: no tool call can stop the server, and every answer is a clear one.

A backtracking regex stops at its time limit and says so; pipes are refused without being
opened (forty at once included); a 50 MB single-line file is read within a fixed memory
budget and can be read on by character; a lone surrogate over stdio gets a JSON-RPC error;
binary and mis-encoded files say what they are; errors name the tool and the parameter.
"""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path

import anyio
import pytest
from security_support import Servers, call_raw, make_world

pytestmark = pytest.mark.anyio

EVIL_REGEX = "(a|aa)+$"  # exponential on "aaaa…a!" in a backtracking engine


@pytest.fixture
def servers(tmp_path: Path) -> Servers:
    world = make_world(tmp_path)
    built = Servers.build(tmp_path)
    built.deps.roots = [world.ws]
    return built


@pytest.fixture
def ws(servers: Servers) -> Path:
    return servers.deps.roots[0]


async def test_a_backtracking_regex_stops_at_the_time_limit_and_says_so(
    servers: Servers, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kimi_mcp.servers.fs import tools_read, tools_search

    monkeypatch.setattr(tools_search, "SEARCH_SECONDS", 0.5)
    monkeypatch.setattr(tools_read, "EXTRACT_SECONDS", 0.5)
    (ws / "evil.txt").write_text("a" * 4000 + "!\n")
    with anyio.fail_after(30):
        is_error, text = await call_raw(servers.fs, "search_content", {"regex": EVIL_REGEX})
        assert is_error and "time limit" in text and "fs_search_content" in text
        is_error, text = await call_raw(
            servers.fs, "extract_lines", {"path": "evil.txt", "pattern": EVIL_REGEX}
        )
        assert is_error and "time limit" in text
        # the server still answers, and a search with matches before the slow file is partial
        (ws / "aaa.txt").write_text("needle\n")
        is_error, text = await call_raw(
            servers.fs, "search_content", {"regex": "needle|" + EVIL_REGEX}
        )
        assert not is_error
        is_error, text = await call_raw(servers.fs, "read_file", {"path": "sub/a.txt"})
        assert not is_error and "inside a" in text


@pytest.mark.parametrize(
    "tool,args",
    [
        ("search_files", {"pattern": "*a*a*a*a*a*a*a*a*a*a*a*a*b"}),
        ("search_files", {"pattern": "**a**a**a**a**a**a**a**b"}),
        ("list_directory", {"pattern": "{a,b}*a*a*a*a*a*a*a*a*a*b"}),
        ("directory_tree", {"exclude_patterns": ["*a*a*a*a*a*a*a*a*a*a*a*a*b"]}),
        ("search_content", {"regex": "x", "file_pattern": "*a*a*a*a*a*a*a*a*a*a*a*b"}),
    ],
)
async def test_a_glob_with_many_wildcards_cannot_hang_a_walk(
    servers: Servers, ws: Path, tool: str, args: dict[str, object]
) -> None:
    (ws / ("a" * 200)).write_text("x\n")
    (ws / "deep" / ("a" * 120) / ("a" * 120)).mkdir(parents=True)
    with anyio.fail_after(30):
        is_error, text = await call_raw(servers.fs, tool, args)
    assert not is_error or "too costly" in text, text


async def test_forty_pipes_at_once_are_refused_without_blocking(
    servers: Servers, ws: Path
) -> None:
    for n in range(40):
        os.mkfifo(ws / f"pipe{n}")
    results: list[tuple[bool, str]] = []

    async def read(n: int) -> None:
        results.append(await call_raw(servers.fs, "read_file", {"path": f"pipe{n}"}))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for n in range(40):
                group.start_soon(read, n)
        assert all(err and "named pipe (FIFO)" in text for err, text in results)
        for family, tool, args in (
            ("json", "query", {"path": "pipe0", "expression": "$"}),
            ("fs", "read_multiple_files", {"paths": ["pipe1", "sub/a.txt"]}),
        ):
            _, text = await call_raw(servers.family(family), tool, args)
            assert "not a regular file" in text or "Not a regular file" in text
        os.symlink(ws / "pipe2", ws / ".taskmaster" / "tasks" / "tasks.json")
        is_error, text = await call_raw(servers.tasks, "list", {})
        assert is_error and "not a regular file" in text


async def test_a_50_mb_single_line_file_is_read_in_a_bounded_window(
    servers: Servers, ws: Path
) -> None:
    line = ("0123456789" * 5_000_000) + "\nsecond line\n"  # 50 MB, then a short line
    (ws / "huge.txt").write_text(line)
    tracemalloc.start()
    try:
        with anyio.fail_after(60):
            is_error, first = await call_raw(servers.fs, "read_file", {"path": "huge.txt"})
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not is_error
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB while reading a 50 MB line"
    got = json.loads(_structured(first))
    assert len(got["content"]) == 128 * 1024 and got["next_offset"] == 1
    assert got["next_char"] == 128 * 1024 and got["total_lines"] == 2
    assert "offset_char=131072" in first
    is_error, more = await call_raw(
        servers.fs, "read_file", {"path": "huge.txt", "offset_line": 1, "offset_char": 49_999_990}
    )
    got = json.loads(_structured(more))
    assert got["content"] == "0123456789\nsecond line\n" and got["next_offset"] is None
    is_error, text = await call_raw(
        servers.fs, "extract_lines", {"path": "huge.txt", "pattern": "second"}
    )
    assert not is_error and "second line" in text


def _structured(text: str) -> str:
    # call_raw appends repr(structured_content); read the JSON the text block does not carry
    start = text.rindex("\n{'path'")
    import ast

    return json.dumps(ast.literal_eval(text[start + 1 :]))


async def test_binary_and_mis_encoded_files_say_what_they_are(
    servers: Servers, ws: Path
) -> None:
    (ws / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    (ws / "latin.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    is_error, text = await call_raw(servers.fs, "read_file", {"path": "image.png"})
    assert is_error and "binary file (image/png)" in text and "read_media_file" in text
    is_error, text = await call_raw(servers.fs, "read_file", {"path": "latin.txt"})
    assert not is_error and "2 byte(s) are not valid utf-8" in text and "encoding=" in text
    is_error, text = await call_raw(
        servers.fs, "read_file", {"path": "latin.txt", "encoding": "latin-1"}
    )
    assert not is_error and "café crème" in text and "note" not in text.split("\n")[0]
    is_error, text = await call_raw(
        servers.fs, "read_file", {"path": "image.png", "encoding": "latin-1"}
    )
    assert not is_error and "PNG" in text
    is_error, text = await call_raw(
        servers.fs, "read_multiple_files", {"paths": ["image.png", "sub/a.txt"]}
    )
    assert "binary file" in text and "inside a" in text
    is_error, text = await call_raw(
        servers.fs, "read_file", {"path": "latin.txt", "encoding": "no-such-codec"}
    )
    assert is_error and "Unknown encoding" in text and "`encoding`" in text


@pytest.mark.parametrize(
    "family,tool,args,param",
    [
        ("fs", "read_file", {"path": "../x"}, "path"),
        ("fs", "copy", {"source": "sub/a.txt", "destination": "/etc/x"}, "destination"),
        ("fs", "move", {"source": "nope.txt", "destination": "b.txt"}, "source"),
        ("fs", "search_content", {"regex": "(unclosed"}, "regex"),
        ("fs", "list_directory", {"path": "sub/a.txt"}, "path"),
        ("fs", "write_file", {"path": "a/b/c.txt", "content": "x"}, "path"),
        ("fs", "write_file", {"path": "e.txt", "content": "é", "encoding": "ascii"}, "encoding"),
        ("json", "query", {"path": "../data.json", "expression": "$"}, "path"),
        ("json", "validate", {"document": "{}", "schema_path": "../s.json"}, "schema_path"),
        ("tasks", "parse_prd", {"prd_path": "/etc/passwd"}, "prd_path"),
    ],
)
async def test_errors_name_the_tool_and_the_parameter_without_internals(
    servers: Servers, family: str, tool: str, args: dict[str, object], param: str
) -> None:
    is_error, text = await call_raw(servers.family(family), tool, args)
    public = {"fs": f"fs_{tool}", "json": f"json_{tool}", "tasks": f"tasks_{tool}"}[family]
    assert is_error and public in text and f"`{param}`" in text, text
    for internal in ("Traceback", "Error calling tool", "Errno", "site-packages"):
        assert internal not in text


async def test_a_lone_surrogate_over_stdio_gets_a_json_rpc_error(tmp_path: Path) -> None:
    ws = tmp_path / "stdio-ws"
    ws.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KIMI_MCP_")},
        "KIMI_MCP_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    command = [sys.executable, "-m", "kimi_mcp", "stdio", "--workspace", str(ws)]
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}
    lines = [
        json.dumps(init),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fs_read_file",'
        '"arguments":{"path":"\\ud800"}}}',
        "this is not json",
        json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    ]
    with anyio.fail_after(60):
        async with await anyio.open_process(command, env=env, cwd=str(tmp_path)) as process:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send(("\n".join(lines) + "\n").encode())
            replies: dict[object, dict[str, object]] = {}
            buffer = b""
            # answers may come in any order: the stdio front answers tools/list from its
            # snapshot at once, while the server that refuses the two bad lines still loads
            while not {2, None, 3} <= replies.keys():
                buffer += await process.stdout.receive()
                *done, buffer = buffer.split(b"\n")
                for raw in done:
                    message = json.loads(raw)
                    replies[message.get("id")] = message
            await process.stdin.aclose()
            await process.wait()
    assert replies[2]["error"]["code"] == -32700  # type: ignore[index]
    assert "surrogate" in replies[2]["error"]["message"]  # type: ignore[index]
    assert replies[None]["error"]["code"] == -32700  # type: ignore[index]
    assert "tools" in replies[3]["result"]  # type: ignore[operator]
