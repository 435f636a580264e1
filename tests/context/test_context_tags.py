from __future__ import annotations

from typing import Any

import pytest
from context_support import FakeMemory, apply_stages

from kimi_mcp.context.tags import EMPTY_AFTER_STORE, scan
from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio


def chat(*users: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "sys"}]
    for n, text in enumerate(users):
        if n:
            msgs.append({"role": "assistant", "content": f"answer {n}"})
        msgs.append({"role": "user", "content": text})
    return msgs


async def run(deps: Deps, messages: list[dict[str, Any]], session_id: str | None = "s") -> Any:
    return await apply_stages(deps, {"model": "m", "messages": messages}, session_id=session_id,
                              context_window=100_000)


def test_scan_finds_balanced_tags_and_skips_recall_blocks() -> None:
    text = ('a @memory[use list[int] here] b <mcp-memory>x\ny</mcp-memory> @recall(f(x)) '
            '<mcp-recall query="q">@memory[not a tag]</mcp-recall> @memory[unclosed')
    found = scan(text)
    assert [(t.kind, t.text) for t in found] == [
        ("memory", "use list[int] here"), ("memory", "x\ny"), ("recall", "f(x)")]


async def test_memory_tags_are_stored_and_removed(ctx_deps: Deps) -> None:
    conv = chat("Remember @memory[the staging db is pg-2] and <mcp-memory>deploys run at 5pm</mcp-memory> ok")
    result = await run(ctx_deps, conv)
    assert result.body["messages"][1]["content"] == "Remember  and  ok"
    hits = await ctx_deps.memory.recall("staging db", limit=5)
    assert "the staging db is pg-2" in [h.item.content for h in hits]
    hits = await ctx_deps.memory.recall("deploys 5pm", limit=5)
    assert "deploys run at 5pm" in [h.item.content for h in hits]


async def test_a_message_that_was_only_a_tag_stays_non_empty(ctx_deps: Deps) -> None:
    result = await run(ctx_deps, chat("@memory[tabs, not spaces]"))
    assert result.body["messages"][1]["content"] == EMPTY_AFTER_STORE


async def test_recall_is_replaced_by_a_delimited_block_of_memories(ctx_deps: Deps) -> None:
    await run(ctx_deps, chat("@memory[the release branch is release/7.2]"))
    result = await run(ctx_deps, chat("first", "Which branch? @recall(release branch)"))
    text = result.body["messages"][3]["content"]
    assert text.startswith('Which branch? <mcp-recall query="release branch">\n[1] ')
    assert "the release branch is release/7.2" in text and text.endswith("</mcp-recall>")
    assert result.memory_tokens > 0


async def test_the_same_recall_gives_the_same_bytes_in_later_requests(make_deps: Any) -> None:
    deps = make_deps()
    deps.memory = FakeMemory()
    await deps.memory.store("alpha fact")
    conv = chat("q @recall(alpha)")
    first = await run(deps, conv)
    await deps.memory.store("alpha second fact")
    conv += [{"role": "assistant", "content": "a"}, {"role": "user", "content": "more"}]
    second = await run(deps, conv)
    assert second.body["messages"][1] == first.body["messages"][1]
    assert deps.memory.recalls == 1


async def test_tags_are_stored_once_across_requests(make_deps: Any) -> None:
    deps = make_deps()
    deps.memory = FakeMemory()
    conv = chat("@memory[one fact]")
    for n in range(4):
        conv = [*conv, {"role": "assistant", "content": "a"}, {"role": "user", "content": f"u{n}"}]
        await run(deps, conv)
    assert deps.memory.stores == 1


async def test_when_memory_fails_the_tag_is_left_in_place(make_deps: Any) -> None:
    deps = make_deps()
    deps.memory = FakeMemory()
    deps.memory.fail = True
    conv = chat("x @memory[keep me] @recall(me)")
    result = await run(deps, conv)
    assert result.body["messages"] == conv


async def test_tags_in_text_parts_and_only_in_user_messages(ctx_deps: Deps) -> None:
    conv = chat("x")
    conv[1]["content"] = [{"type": "text", "text": "a @memory[part fact] b"},
                          {"type": "image_url", "image_url": {"url": "data:,"}}]
    conv.append({"role": "assistant", "content": "I saw @memory[not mine]"})
    result = await run(ctx_deps, conv)
    assert result.body["messages"][1]["content"][0] == {"type": "text", "text": "a  b"}
    assert result.body["messages"][1]["content"][1] == conv[1]["content"][1]
    assert result.body["messages"][2] == conv[2]


async def test_tags_stage_is_idempotent(ctx_deps: Deps) -> None:
    await run(ctx_deps, chat("@memory[x @recall(y) inside]"))
    first = await run(ctx_deps, chat("see @recall(inside)"))
    second = await apply_stages(ctx_deps, first.body, session_id="s", context_window=100_000)
    assert second.body == first.body


async def test_recall_leaves_out_masked_tool_output(ctx_deps: Deps) -> None:
    await ctx_deps.memory.store("release notes live in docs/releases.md")
    await ctx_deps.memory.store("release notes tool output " * 50, source="sanitizer")
    result = await run(ctx_deps, chat("@recall(release notes)"))
    text = result.body["messages"][1]["content"]
    assert "docs/releases.md" in text and "tool output" not in text
