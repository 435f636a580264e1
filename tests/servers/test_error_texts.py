"""Error texts name tools by their public names and blame the argument at fault, through the
aggregating server as a client sees it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from fastmcp import Client

from kimi_mcp.deps import Deps
from kimi_mcp.server import build_mcp
from tests.test_docs import TOOLS

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


async def _error(deps: Deps, tool: str, **arguments: object) -> str:
    async with Client(build_mcp(deps)) as client:
        result = await client.call_tool(tool, arguments, raise_on_error=False)
    assert result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_a_binary_file_points_to_the_public_media_tool(deps: Deps) -> None:
    (deps.roots[0] / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    text = await _error(deps, "fs_read_file", path="blob.bin")
    assert "fs_read_media_file" in text
    assert re.search(r"(?<!fs_)read_media_file", text) is None


async def test_an_unknown_encoding_is_named_once(deps: Deps) -> None:
    (deps.roots[0] / "a.txt").write_text("hello\n")
    text = await _error(deps, "fs_read_file", path="a.txt", encoding="nope")
    assert text.lower().count("unknown encoding") == 1, text
    assert "'nope'" in text and "parameter `encoding`" in text


@pytest.mark.parametrize("old_text,expected", [("absent", 1), ("x", 1)],
                         ids=["not-found", "occurs-3-times"])
async def test_an_edit_that_does_not_match_blames_the_edits(deps: Deps, old_text: str,
                                                            expected: int) -> None:
    (deps.roots[0] / "e.txt").write_text("x\nx\nx\n")
    edits = [{"old_text": old_text, "new_text": "y", "expected_replacements": expected}]
    text = await _error(deps, "fs_edit_file", path="e.txt", edits=edits)
    assert "(fs_edit_file, parameter `edits`)" in text, text


async def test_a_line_edit_out_of_range_blames_the_edits(deps: Deps) -> None:
    (deps.roots[0] / "l.txt").write_text("one\n")
    text = await _error(deps, "fs_edit_lines", path="l.txt",
                        edits=[{"line": 40, "mode": "replace", "text": "y"}])
    assert "parameter `edits`" in text, text


def test_no_message_or_description_names_a_tool_by_its_internal_name() -> None:
    local = {t.split("_", 1)[1]: t for t in TOOLS if "_" in t.split("_", 1)[1]}
    bare = re.compile(r"(?<![\w.`/-])(" + "|".join(sorted(local, key=len, reverse=True))
                      + r")(?![\w(])")
    found = []
    for path in sorted((ROOT / "servers").rglob("*.py")) + sorted((ROOT / "kimi_mcp").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if node.value in local:  # the name a tool is registered or refused under
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {m.group(1)} (say {local[m.group(1)]})"
                      for m in bare.finditer(node.value)]
    assert found == []
