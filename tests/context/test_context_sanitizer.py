from __future__ import annotations

import copy
import json
from typing import Any

import anyio
import pytest
from context_support import (
    LEGACY,
    FakeMemory,
    agent_conversation,
    apply_stages,
    assert_valid,
    output,
)

from kimi_mcp import tokens
from kimi_mcp.context import masked_id, placeholder_id
from kimi_mcp.context.sanitizer import has_masked_argument, masked_arguments, placeholder
from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio
CONTEXT = LEGACY  # these tests pin the first masking rule; tests/context/test_outputs.py the new ones
WINDOW = 1_000_000


async def run(deps: Deps, messages: list[dict[str, Any]], **kw: Any) -> Any:
    kw.setdefault("session_id", None)
    kw.setdefault("context_window", WINDOW)
    return await apply_stages(deps, {"model": "m", "messages": messages}, **kw)


async def next_event(sub: Any, type_: str) -> Any:
    with anyio.fail_after(5):
        while True:
            event = await sub.queue.get()
            if event.type == type_:
                return event


def test_placeholder_is_one_line_with_the_size_the_id_and_how_to_read_it() -> None:
    text = output(50)
    mid = masked_id(text)
    ph = placeholder(text, mid, 1234)
    assert ph == f"[kimi-mcp masked 1,234 tokens, 50 lines: memory_get {mid}]"
    assert placeholder_id(ph) == mid
    assert placeholder_id(placeholder("one line", masked_id("one line"), 3)) == masked_id("one line")


def test_a_placeholder_in_an_older_form_is_still_recognised() -> None:
    older = "[kimi-mcp masked a tool output: 4,056 tokens, id m-1b7b301710b74865]\n<first line>"
    assert placeholder_id(older) == "m-1b7b301710b74865"
    one_line = "[kimi-mcp masked a tool output: 4,056 tokens, 198 lines, id m-1b7b301710b74865; memory_get returns it]"
    assert placeholder_id(one_line) == "m-1b7b301710b74865"
    assert placeholder_id("[kimi-mcp masked 4,056 tokens, 198 lines: memory_get m-1b7b301710b74865] and more") is None
    assert placeholder_id("[kimi-mcp masked a tool output: 4,056 tokens, id m-1b7b301710b74865] and more") is None


def test_placeholder_is_a_pure_function_of_the_content() -> None:
    text = output(100)
    assert masked_id(text) == masked_id(str(text))
    assert masked_id(text).startswith("m-") and len(masked_id(text)) == 18
    assert placeholder(text, masked_id(text), 9) == placeholder("".join(text), masked_id(text), 9)
    assert masked_id(text) != masked_id(text + " ")


async def test_old_verbose_tool_output_is_masked_and_recent_turns_are_kept(ctx_deps: Deps) -> None:
    conv = agent_conversation(8)
    result = await run(ctx_deps, conv)
    out = result.body["messages"]
    tool_idx = [i for i, m in enumerate(out) if m["role"] == "tool"]
    masked = [i for i in tool_idx if placeholder_id(out[i]["content"])]
    assert masked == tool_idx[:3]  # 8 turns, the last 5 protected
    assert all(out[i] == conv[i] for i in tool_idx[3:])
    assert result.masked_ids == [masked_id(conv[i]["content"]) for i in masked]
    saved = sum(tokens.count_message(conv[i]) - tokens.count_message(out[i]) for i in masked)
    assert result.saved_mask_tokens == saved > 10_000
    assert out[:2] == conv[:2]
    assert_valid(out)


async def test_masked_originals_are_recovered_byte_exact(ctx_deps: Deps) -> None:
    conv = agent_conversation(7)
    conv[3]["content"] = "ünïcödé \r\n\ttabs  trailing  \n" + output(300) + "\n\n"
    result = await run(ctx_deps, conv)
    items = await ctx_deps.memory.get(result.masked_ids)
    assert [i.content for i in items] == [conv[3]["content"], conv[5]["content"]]
    assert {i.source for i in items} == {"sanitizer"}


async def test_short_tool_output_and_other_roles_are_never_masked(ctx_deps: Deps) -> None:
    conv = agent_conversation(8, lines=20)
    conv[1]["content"] = output(400)  # a long first user message stays
    conv.insert(2, {"role": "system", "content": output(400)})
    result = await run(ctx_deps, conv)
    assert result.body["messages"] == conv
    assert result.masked_ids == [] and result.saved_mask_tokens == 0


async def test_threshold_and_window_come_from_settings(ctx_factory: Any) -> None:
    deps = ctx_factory(context={"mask_threshold_tokens": 100, "keep_output_turns": 1})
    conv = agent_conversation(4, lines=20)
    result = await run(deps, conv)
    tools = [m for m in result.body["messages"] if m["role"] == "tool"]
    assert [bool(placeholder_id(m["content"])) for m in tools] == [True, True, True, False]


async def test_text_part_lists_are_masked_as_their_text(ctx_factory: Any) -> None:
    deps = ctx_factory(context={"keep_output_turns": 1})
    conv = agent_conversation(2)
    original = conv[3]["content"]
    conv[3]["content"] = [{"type": "text", "text": original}]
    result = await run(deps, conv)
    [part] = result.body["messages"][3]["content"]
    assert part["type"] == "text" and placeholder_id(part["text"]) == masked_id(original)


async def test_input_body_is_never_mutated(ctx_deps: Deps) -> None:
    conv = agent_conversation(8)
    conv[1]["content"] += " @memory[keep this]"
    body = {"model": "m", "messages": conv, "temperature": 0}
    before = copy.deepcopy(body)
    result = await apply_stages(ctx_deps, body, session_id=None, context_window=9000)
    assert body == before
    assert result.body is not body and result.body["temperature"] == 0


async def test_running_twice_changes_nothing_more(ctx_deps: Deps) -> None:
    first = await run(ctx_deps, agent_conversation(9))
    second = await apply_stages(ctx_deps, first.body, session_id=None, context_window=WINDOW)
    assert second.body == first.body
    assert second.saved_mask_tokens == 0


async def test_a_block_is_stored_once_however_often_it_is_masked(make_deps: Any) -> None:
    deps = make_deps(context=LEGACY)
    deps.memory = FakeMemory()
    conv = agent_conversation(8)
    for _ in range(5):
        await run(deps, conv)
    assert deps.memory.stores == 3


async def test_a_block_that_cannot_be_stored_is_sent_unmasked(make_deps: Any) -> None:
    deps = make_deps(context=LEGACY)
    deps.memory = FakeMemory()
    deps.memory.fail = True
    conv = agent_conversation(8)
    result = await run(deps, conv)
    assert result.body["messages"] == conv and result.masked_ids == []
    deps.memory.fail = False
    assert len((await run(deps, conv)).masked_ids) == 3


async def test_a_masked_event_is_published_once_per_new_block(ctx_deps: Deps) -> None:
    sub = ctx_deps.ledger.bus.subscribe()
    conv = agent_conversation(7)
    result = await run(ctx_deps, conv, session_id="s1")
    event = await next_event(sub, "masked")
    assert [i["id"] for i in event.data["items"]] == result.masked_ids
    assert event.data["session_id"] == "s1" and event.data["items"][0]["tool"] == "run"
    await run(ctx_deps, conv, session_id="s1")
    conv2 = agent_conversation(8)
    await run(ctx_deps, conv2, session_id="s1")
    event = await next_event(sub, "masked")
    assert [i["id"] for i in event.data["items"]] == [masked_id(conv2[7]["content"])]


def test_an_argument_note_in_the_current_or_the_older_form_is_recognised() -> None:
    arguments = json.dumps({"command": "cat > x.py << 'EOF'\n" + "x = 1\n" * 60 + "EOF"})
    masked = masked_arguments(arguments, masked_id(arguments), 300)
    assert masked is not None and has_masked_argument(masked)
    assert has_masked_argument('{"command": "cat > x.py [kimi-mcp masked this argument: memory_get ids [\\"m-1\\"]"}')
    assert not has_masked_argument(arguments)


def test_a_summary_names_a_masked_output_by_its_id_and_size_in_either_form() -> None:
    from kimi_mcp.context.summary import outcome

    text = output(50)
    mid = masked_id(text)
    assert outcome(placeholder(text, mid, 1234)) == f"masked output {mid} (1,234 tokens)"
    older = "[kimi-mcp masked a tool output: 4,056 tokens, 198 lines, id m-1b7b301710b74865; memory_get returns it]"
    assert outcome(older) == "masked output m-1b7b301710b74865 (4,056 tokens)"
