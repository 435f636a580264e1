from __future__ import annotations

import itertools
import json
import re
from typing import Any

import anyio
import httpx
import pytest
from context_support import (
    LEGACY,
    agent_conversation,
    apply_stages,
    assert_valid,
    output,
    serve_completions,
)

from kimi_mcp import tokens
from kimi_mcp.context.conversation import is_summary
from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio
CONTEXT = LEGACY  # these tests pin the first masking rule; tests/context/test_outputs.py the new ones
WINDOW = 20_000


async def run(deps: Deps, messages: list[dict[str, Any]], *, window: int = WINDOW,
              session_id: str | None = None, **body: Any) -> Any:
    return await apply_stages(deps, {"model": "m", "messages": messages, **body},
                              session_id=session_id, context_window=window)


def summary_of(result: Any) -> dict[str, Any]:
    found = [m for m in result.body["messages"] if is_summary(m)]
    assert len(found) == 1
    return found[0]


async def next_event(sub: Any, type_: str) -> Any:
    with anyio.fail_after(5):
        while True:
            event = await sub.queue.get()
            if event.type == type_:
                return event


async def test_a_prompt_over_compress_at_is_compressed_to_fit(ctx_deps: Deps) -> None:
    conv = agent_conversation(10)
    assert tokens.count_chat({"messages": conv}) > WINDOW
    result = await run(ctx_deps, conv)
    out = result.body["messages"]
    assert result.error is None
    assert tokens.count_chat(result.body) <= 0.85 * WINDOW
    assert out[:2] == conv[:2] and is_summary(out[2]) and out[2]["role"] == "user"
    assert out[-1] == conv[-1] and out[3]["role"] == "assistant"
    assert result.saved_compress_tokens > 0
    assert_valid(out)


async def test_the_summary_names_calls_files_errors_and_decisions(ctx_deps: Deps) -> None:
    conv = agent_conversation(10)
    conv[5]["content"] = "Traceback (most recent call last):\nValueError: bad config in src/conf.py\n" + output(300)
    text = summary_of(await run(ctx_deps, conv))["content"]
    assert 'run {"path": "src/f0.py"} → ok: t0 line 0' in text
    assert "run {\"path\": \"src/f1.py\"} → error: Traceback (most recent call last):" in text
    assert "Files touched: src/f0.py" in text
    assert "- ValueError: bad config in src/conf.py" in text
    assert "Decisions stated:\n- I will run step 0." in text


async def test_the_compressed_messages_are_recoverable_byte_exact(ctx_deps: Deps) -> None:
    conv = agent_conversation(10)
    conv[3]["content"] = "exact \r\n bytes\t\n" + conv[3]["content"]
    summary = summary_of(await run(ctx_deps, conv))
    cid = re.search(r'ids \["(c-[0-9a-f]{16})"\]', summary["content"]).group(1)  # type: ignore[union-attr]
    [item] = await ctx_deps.memory.get([cid])
    middle = json.loads(item.content)
    n = int(re.search(r'messages="(\d+)"', summary["content"]).group(1))  # type: ignore[union-attr]
    assert middle == conv[2 : 2 + n]


async def test_a_prompt_that_cannot_fit_is_refused_with_a_clear_error(ctx_deps: Deps) -> None:
    conv = agent_conversation(3)
    conv[1]["content"] = output(3000)  # the first user message alone overflows
    result = await run(ctx_deps, conv)
    assert result.error is not None
    assert "context window" in result.error and "20,000" in result.error


async def test_max_tokens_is_reserved_out_of_the_window(ctx_deps: Deps) -> None:
    conv = agent_conversation(3, lines=100)
    assert (await run(ctx_deps, conv)).saved_compress_tokens == 0
    result = await run(ctx_deps, conv, max_tokens=14_000)
    assert result.error is None and result.saved_compress_tokens > 0
    assert tokens.count_chat(result.body) <= WINDOW - 14_000
    refused = await run(ctx_deps, conv, max_tokens=WINDOW)
    assert refused.error is not None and "max_tokens" in refused.error


async def test_protected_tool_output_is_masked_as_a_last_resort(ctx_deps: Deps) -> None:
    conv = agent_conversation(2, lines=1500)  # the last turn alone is over the window
    result = await run(ctx_deps, conv)
    assert result.error is None
    assert tokens.count_chat(result.body) <= WINDOW
    assert result.masked_ids and result.body["messages"][-1]["content"].startswith("[kimi-mcp ")


async def test_a_growing_conversation_keeps_the_same_summary_bytes(ctx_factory: Any) -> None:
    ctx_deps = ctx_factory(context={"sanitize": False})
    conv = agent_conversation(10, lines=60)
    window = 12_000
    summaries = []
    for extra in range(3):
        grown = conv + agent_conversation(extra, lines=60)[2:]
        grown = [dict(m, tool_call_id=f"x{i}") if m["role"] == "tool" else m for i, m in enumerate(grown)]
        for i, m in enumerate(grown):
            if m.get("tool_calls"):
                grown[i] = {**m, "tool_calls": [{**m["tool_calls"][0], "id": f"x{i + 1}"}]}
        result = await run(ctx_deps, grown, window=window, session_id="s")
        assert_valid(result.body["messages"])
        summaries.append(summary_of(result))
    assert summaries[0] == summaries[1] == summaries[2]


async def test_chat_style_compression_keeps_roles_alternating(ctx_deps: Deps) -> None:
    conv: list[dict[str, Any]] = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    for n in range(12):
        conv += [{"role": "assistant", "content": output(80, f"a{n}")},
                 {"role": "user", "content": f"question {n}"}]
    result = await run(ctx_deps, conv, window=6_000)
    roles = [m["role"] for m in result.body["messages"]]
    assert roles[2] == "assistant" and is_summary(result.body["messages"][2])
    assert all(a != b for a, b in itertools.pairwise(roles))


async def test_compressing_twice_changes_nothing_more(ctx_deps: Deps) -> None:
    first = await run(ctx_deps, agent_conversation(10))
    second = await apply_stages(ctx_deps, first.body, session_id=None, context_window=WINDOW)
    assert second.body == first.body and second.saved_compress_tokens == 0


async def test_requested_compression_runs_once_resets_the_flag_and_sticks(ctx_deps: Deps) -> None:
    session = await ctx_deps.sessions.create("work")
    sid = session["id"]
    conv = agent_conversation(8, lines=20)
    plain = await run(ctx_deps, conv, window=100_000, session_id=sid)
    assert plain.saved_compress_tokens == 0
    sub = ctx_deps.ledger.bus.subscribe()
    await ctx_deps.sessions.update(sid, compress_requested=True)
    first = await run(ctx_deps, conv, window=100_000, session_id=sid)
    assert first.saved_compress_tokens > 0
    event = await next_event(sub, "compression")
    assert event.data["reason"] == "requested" and event.data["session_id"] == sid
    assert ctx_deps.sessions.get(sid)["compress_requested"] is False
    grown = [*conv, {"role": "assistant", "content": "done"}, {"role": "user", "content": "thanks"}]
    later = await run(ctx_deps, grown, window=100_000, session_id=sid)
    assert summary_of(later) == summary_of(first)


async def test_compression_can_be_switched_off_per_session(ctx_deps: Deps) -> None:
    session = await ctx_deps.sessions.create("raw")
    conv = agent_conversation(10)
    assert (await run(ctx_deps, conv, session_id=session["id"])).saved_compress_tokens > 0
    await ctx_deps.sessions.update(session["id"], context={"compression": False})
    result = await run(ctx_deps, conv, session_id=session["id"])
    assert result.saved_compress_tokens == 0 and result.error is None


def _summary_transport(status: int) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "down"}})
        answer = json.dumps({"summary": "The agent ran steps 0-6 on src/f*.py; all passed."})
        return httpx.Response(200, json={"choices": [{"message": {"content": answer}}]})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(("status", "source"), [(200, "model"), (500, "deterministic")])
async def test_summary_model_is_used_and_falls_back_when_it_fails(
    ctx_factory: Any, status: int, source: str
) -> None:
    deps = ctx_factory(
        context={"summary_model": "local/sum"},
        providers={"local": {"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "format": "openai",
                             "max_retries": 0, "models": {"sum": {"context_window": 32000}}}},
    )
    serve_completions(deps, _summary_transport(status))
    sub = deps.ledger.bus.subscribe()
    text = summary_of(await run(deps, agent_conversation(10)))["content"]
    event = await next_event(sub, "compression")
    assert event.data["summary_source"] == source
    assert ("all passed" in text) is (source == "model")


async def test_requested_compression_with_nothing_before_the_last_turn_changes_nothing(
    ctx_deps: Deps,
) -> None:
    session = await ctx_deps.sessions.create("short")
    await ctx_deps.sessions.update(session["id"], compress_requested=True)
    conv = agent_conversation(1, lines=200)
    result = await run(ctx_deps, conv, window=100_000, session_id=session["id"])
    assert result.body["messages"] == conv and result.error is None
    assert ctx_deps.sessions.get(session["id"])["compress_requested"] is False


async def test_a_cut_taken_for_size_is_dropped_when_the_prompt_fits_without_it(ctx_deps: Deps) -> None:
    conv = agent_conversation(10)
    assert (await run(ctx_deps, conv, session_id="s")).saved_compress_tokens > 0
    bigger = await run(ctx_deps, conv, window=1_000_000, session_id="s")
    assert bigger.saved_compress_tokens == 0
    assert not any(is_summary(m) for m in bigger.body["messages"])
