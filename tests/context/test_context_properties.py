"""Property tests: generated agent conversations with tool calls through all the stages."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import pytest
from context_support import apply_stages, assert_valid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_mcp import tokens
from kimi_mcp.context import compressed_id, masked_id, placeholder_id
from kimi_mcp.context.conversation import is_summary, turn_starts
from kimi_mcp.deps import Deps

SETTINGS = {"context": {"mask_threshold_tokens": 60, "keep_last_turns": 2}}
PROFILE = settings(max_examples=25, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
WORDS = ["alpha", "beta", "src/app.py", "Error:", "ok", "{\"k\": 1}", "日本", "  ", "\t", "x" * 30]


@st.composite
def tool_output(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from([0, 1, 3, 12, 40, 90]))
    seed = draw(st.integers(0, 5))
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    end = draw(st.sampled_from(["", "\n", "\r\n"]))
    return "\n".join(f"{seed}:{n} " + " ".join(words) for n in range(lines)) + end


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": "You are an agent."})
    msgs.append({"role": "user", "content": "Do the task."})
    call = 0
    for _ in range(draw(st.integers(0, 10))):
        n_calls = draw(st.integers(0, 3))
        calls = []
        for _ in range(n_calls):
            call += 1
            calls.append({"id": f"c{call}", "type": "function",
                          "function": {"name": "run", "arguments": json.dumps({"n": call})}})
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(st.sampled_from(["", "I will look.", None]))}
        if calls:
            assistant["tool_calls"] = calls
        msgs.append(assistant)
        for c in calls:
            msgs.append({"role": "tool", "tool_call_id": c["id"], "content": draw(tool_output())})
        if not calls or draw(st.booleans()):
            msgs.append({"role": "user", "content": draw(st.sampled_from(
                ["go on", "and now?", "ok", "note @memory[the db is pg] go", "@recall(db) and then?"]))})
    return msgs


def same_slice(original: list[dict[str, Any]], stored: list[dict[str, Any]]) -> bool:
    """Equal, except user messages whose memory tags the first stage rewrote."""
    if len(original) != len(stored):
        return False
    return all(a == b or (a["role"] == b["role"] == "user" and "@" in a["content"])
               for a, b in zip(original, stored, strict=True))


async def stages(deps: Deps, messages: list[dict[str, Any]], window: int) -> Any:
    return await apply_stages(deps, {"model": "m", "messages": messages},
                              session_id=None, context_window=window)


async def contents(deps: Deps, ids: list[str]) -> dict[str, str]:
    return {i.id: i.content for i in await deps.memory.get(ids)}


@pytest.fixture
def pdeps(ctx_factory: Any) -> Deps:
    return ctx_factory(**SETTINGS)  # type: ignore[no-any-return]


async def check_one(deps: Deps, conv: list[dict[str, Any]], window: int) -> None:
    result = await stages(deps, conv, window)
    out = result.body["messages"]
    assert_valid(out)
    if result.error is not None:
        return
    assert tokens.count_chat(result.body) <= window
    again = await stages(deps, out, window)
    assert again.body == result.body and again.error is None
    originals = {masked_id(m["content"]): m["content"] for m in conv if m["role"] == "tool"}
    assert set(result.masked_ids) <= set(originals)
    stored = await contents(deps, result.masked_ids)
    assert stored == {mid: originals[mid] for mid in result.masked_ids}
    for m in out:
        if is_summary(m):
            tid = re.search(r'ids \["(c-[0-9a-f]{16})"\]', m["content"])
            assert tid is not None
            middle = json.loads((await contents(deps, [tid.group(1)]))[tid.group(1)])
            assert any(same_slice(conv[i : i + len(middle)], middle) for i in range(len(conv)))


@PROFILE
@given(conv=conversations(), window=st.sampled_from([1_000_000, 2_500, 1_200]))
def test_stages_keep_requests_valid_idempotent_and_recoverable(
    pdeps: Deps, conv: list[dict[str, Any]], window: int
) -> None:
    anyio.run(check_one, pdeps, conv, window)


async def check_growing(deps: Deps, conv: list[dict[str, Any]]) -> None:
    previous: list[dict[str, Any]] = []
    for end in [*turn_starts(conv), len(conv)]:
        request = conv[:end]
        out = (await stages(deps, request, 1_000_000)).body["messages"]
        for i, before in enumerate(previous):
            now = out[i]
            if now != before:  # only change allowed: an original (or its first-sight form) is masked
                mid = masked_id(request[i]["content"])
                assert before == request[i] or compressed_id(before["content"]) == mid
                assert placeholder_id(now["content"]) == mid
        previous = out


@PROFILE
@given(conv=conversations())
def test_placeholders_are_stable_across_the_requests_of_a_growing_conversation(
    pdeps: Deps, conv: list[dict[str, Any]]
) -> None:
    anyio.run(check_growing, pdeps, conv)
