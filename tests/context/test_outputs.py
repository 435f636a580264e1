"""Tool outputs through the stages: kinds kept whole while recent, masks chosen by the cost model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from context_support import apply_stages, assert_valid

from kimi_mcp.context import compressed_id, masked_id, placeholder_id
from kimi_mcp.context.caches import ByteLRU
from kimi_mcp.context.costmodel import Candidate, cached_ratio, choose, mask_value
from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio
WINDOW = 1_000_000


def grep_output(n: int, tag: str) -> str:
    return "\n".join(f"src/{tag}/mod.py:{k}:    value = compute_{tag}({k})  # checks" for k in range(n))


def read_output(tag: str) -> str:
    return "\n".join(f"    def method_{tag}_{k}(self, argument):  return self.{tag}_{k}" for k in range(120))


def turn(n: int, command: str, result: str, args: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cid = f"call_{n}"
    arguments = json.dumps(args or {"command": command})
    return [{"role": "assistant", "content": f"Step {n}.", "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": "bash", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": cid, "content": result}]


def conversation(kinds: list[str]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent."},
                                  {"role": "user", "content": "Fix the bug."}]
    for n, kind in enumerate(kinds):
        if kind == "read":
            msgs += turn(n, f"cat src/file_{n}.py", read_output(str(n)))
        else:
            msgs += turn(n, f"grep -rn value src/{n}", grep_output(60, str(n)))
    return msgs


async def run(deps: Deps, messages: list[dict[str, Any]]) -> Any:
    return await apply_stages(deps, {"model": "m", "messages": messages}, session_id="s", context_window=WINDOW)


def test_the_cost_model_masks_only_when_the_saving_pays_for_the_rebilled_suffix() -> None:
    assert mask_value(1000, 1000, 1.0, 4) > 0  # no cache discount: always worth it
    assert mask_value(1000, 1000, 0.1, 4) > 0  # one output just sent: little to re-bill
    assert mask_value(1000, 50_000, 0.1, 4) < 0  # a long cached suffix: not worth it
    sizes = [10] * 10
    sizes[2], sizes[7] = 2000, 2000
    picked = choose([Candidate(2, 1900), Candidate(7, 1900)], sizes, 9, 0.1, 8)
    assert picked is not None and picked.start == 2 and picked.rebilled == sum(sizes[2:9])
    assert choose([Candidate(2, 100)], [10_000] * 10, 9, 0.1, 4) is None
    assert cached_ratio(1.0, 0.25) == 0.25 and cached_ratio(None, None) == 0.1


def test_a_byte_bounded_cache_evicts_by_size_not_by_count() -> None:
    cache: ByteLRU[str, str] = ByteLRU(100)
    cache.put("a", "x", 60)
    cache.put("b", "y", 30)
    assert cache.get("a") == "x"  # a is now the most recent
    cache.put("c", "z", 30)
    assert "b" not in cache and "a" in cache and cache.bytes == 90
    cache.put("huge", "w", 1000)
    assert "huge" not in cache


async def test_a_search_output_is_compressed_at_first_sight_and_masked_a_turn_later(ctx_deps: Deps) -> None:
    conv = conversation(["search"])
    first = await run(ctx_deps, conv)
    sent = first.body["messages"][3]["content"]
    assert compressed_id(sent) == masked_id(conv[3]["content"])
    again = await run(ctx_deps, conv)
    assert again.body["messages"][3]["content"] == sent  # the same bytes on every request
    later = await run(ctx_deps, conversation(["search", "search"]))
    assert placeholder_id(later.body["messages"][3]["content"]) == masked_id(conv[3]["content"])
    assert later.savings.by_kind["search"].tokens > 0
    [item] = await ctx_deps.memory.get([masked_id(conv[3]["content"])])
    assert item.content == conv[3]["content"]


async def test_a_file_read_stays_byte_exact_while_recent(ctx_deps: Deps) -> None:
    keep = ctx_deps.settings.context.keep_read_turns
    for turns in range(1, keep + 1):
        conv = conversation(["read"] + ["search"] * (turns - 1))
        out = (await run(ctx_deps, conv)).body["messages"]
        assert out[3] == conv[3]
    conv = conversation(["read"] + ["search"] * keep)
    out = (await run(ctx_deps, conv)).body["messages"]
    assert placeholder_id(out[3]["content"]) == masked_id(conv[3]["content"])


async def test_a_mask_once_made_stays_across_a_growing_conversation(ctx_deps: Deps) -> None:
    kinds = ["search", "read", "search", "search", "read", "search", "search", "search"]
    previous: list[dict[str, Any]] = []
    for end in range(1, len(kinds) + 1):
        out = (await run(ctx_deps, conversation(kinds[:end]))).body["messages"]
        for before, now in zip(previous, out, strict=False):
            if placeholder_id(str(before.get("content"))):
                assert now == before
        assert_valid(out)
        previous = out


async def test_old_long_tool_call_arguments_are_masked_inside_valid_json(ctx_deps: Deps) -> None:
    script = "cat > repro.py << 'EOF'\n" + "\n".join(f"print('case {k}', compute({k}))" for k in range(80)) + "\nEOF"
    msgs = conversation([])
    msgs += turn(0, script, "ok")
    for n in range(1, 8):
        msgs += turn(n, f"grep -rn value src/{n}", grep_output(3, str(n)))
    out = (await run(ctx_deps, msgs)).body["messages"]
    arguments = out[2]["tool_calls"][0]["function"]["arguments"]
    command = json.loads(arguments)["command"]
    original = msgs[2]["tool_calls"][0]["function"]["arguments"]
    assert command == f"cat > repro.py << 'EOF' [kimi-mcp masked the rest of the arguments: memory_get {masked_id(original)}]"
    [item] = await ctx_deps.memory.get([masked_id(original)])
    assert item.content == original
    assert out[-2:] == msgs[-2:] and out[:2] == msgs[:2]
    assert_valid(out)


async def test_cache_control_on_a_tool_result_part_survives(ctx_deps: Deps) -> None:
    conv = conversation(["search", "search"])
    text = conv[3]["content"]
    conv[3] = {**conv[3], "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}
    out = (await run(ctx_deps, conv)).body["messages"]
    [part] = out[3]["content"]
    assert part["cache_control"] == {"type": "ephemeral"} and placeholder_id(part["text"]) == masked_id(text)


async def test_the_savings_are_given_by_transformation_and_kind(ctx_deps: Deps) -> None:
    result = await run(ctx_deps, conversation(["search", "search", "read", "search"]))
    meta = result.savings.as_meta()
    assert meta["saved_tokens"] == result.saved_mask_tokens > 0
    assert set(meta["by_transform"]) <= {"first_sight", "repeat", "mask", "compress"}
    assert "search" in meta["by_kind"] and meta["cached_ratio"] == 0.1
