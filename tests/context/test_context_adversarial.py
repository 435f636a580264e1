"""Hostile text cannot stall the context stage: every pattern that scans tool output or message
text is linear, so one long line (minified code, a planted file shown by `git diff`) costs
milliseconds. Before the fix these inputs took minutes (the per-test timeout fails them)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from context_support import apply_stages

from kimi_mcp.context import compressors, kinds, summary, tags
from kimi_mcp.context.lines import important
from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio

# runs of path-like characters with no `:digits`/extension end, quotes and words the patterns
# key on: each start position of a backtracking scan would read to the end of the run
UNITS = ["a.", "a-", "a/", "/a", ".", "a.b", "a.py", 'File "', "line ", "1.", "a_", "é."]


def diff_of(line: str) -> str:
    return f"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n {line}\n-old\n+new\n"


@pytest.mark.timeout(30)
def test_every_compressor_is_linear_on_a_long_adversarial_line() -> None:
    for unit in UNITS:
        line = unit * (60_000 // len(unit))
        for text in (diff_of(line), "x.py:1:" + line):
            for kind in compressors.PASSES:
                compressors.compress(kind, text)
            kinds.text_kind(text)
            important(line)


@pytest.mark.timeout(30)
def test_a_summary_of_long_adversarial_paths_and_outputs_is_linear() -> None:
    for unit in UNITS:
        line = unit * (200_000 // len(unit))
        call = {"id": "c1", "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": line})}}
        messages: list[Any] = [
            {"role": "user", "content": line},
            {"role": "assistant", "content": line, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": line},
            {"role": "assistant", "content": f"```sh\n{line}\n```"},
            {"role": "user", "content": line},
        ]
        summary.digest(messages)


@pytest.fixture
def deps(ctx_factory: Any) -> Deps:
    return ctx_factory()  # type: ignore[no-any-return]


@pytest.mark.timeout(30)
async def test_a_proxied_diff_with_one_long_line_passes_the_context_stage(deps: Deps) -> None:
    out = diff_of("a." * 40_000)
    messages = [
        {"role": "user", "content": "show the diff"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "bash", "arguments": json.dumps({"command": "git diff"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": out},
        {"role": "user", "content": "ok?"},
    ]
    result = await apply_stages(deps, {"model": "m", "messages": messages},
                                session_id=None, context_window=200_000)
    assert result.error is None


@pytest.mark.timeout(30)
def test_unclosed_memory_tags_are_scanned_in_linear_time() -> None:
    for opener in ("@memory[", "@recall(", "<mcp-memory>"):
        assert tags.scan(opener * 25_000) == []
    found = tags.scan("@memory[ " * 25_000 + "@memory[kept]")
    assert [tag.text for tag in found] == ["kept"]
