from __future__ import annotations

from typing import Any

import pytest
from context_support import LEGACY, agent_conversation, apply_stages

from kimi_mcp.context import Switches
from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio
CONTEXT = LEGACY  # these tests pin the first masking rule; tests/context/test_outputs.py the new ones


async def run(deps: Deps, messages: list[dict[str, Any]], **kw: Any) -> Any:
    kw.setdefault("session_id", None)
    kw.setdefault("context_window", 20_000)
    return await apply_stages(deps, {"model": "m", "messages": messages}, **kw)


def tagged_conversation() -> list[dict[str, Any]]:
    conv = agent_conversation(10)
    conv[1] = {**conv[1], "content": conv[1]["content"] + " @memory[a fact]"}
    return conv


async def test_context_off_for_the_request_returns_the_body_unchanged(ctx_deps: Deps) -> None:
    conv = tagged_conversation()
    body = {"model": "m", "messages": conv}
    result = await apply_stages(ctx_deps, body, session_id=None, context_window=20_000, enabled=False)
    assert result.body == body and result.body is not body
    assert (result.saved_mask_tokens, result.saved_compress_tokens, result.masked_ids) == (0, 0, [])


async def test_each_stage_can_be_switched_off_in_settings(ctx_factory: Any) -> None:
    conv = tagged_conversation()
    deps = ctx_factory(context={"sanitize": False, "memory_tags": False, "compression": False})
    result = await run(deps, conv)
    assert result.body["messages"] == conv


async def test_session_switches_override_settings_and_follow_updates(ctx_deps: Deps) -> None:
    session = await ctx_deps.sessions.create("s")
    sid = session["id"]
    conv = agent_conversation(7)
    assert (await run(ctx_deps, conv, session_id=sid)).masked_ids
    await ctx_deps.sessions.update(sid, context={"sanitize": False})
    assert (await run(ctx_deps, conv, session_id=sid)).masked_ids == []
    await ctx_deps.sessions.update(sid, context={"sanitize": True})
    assert (await run(ctx_deps, conv, session_id=sid)).masked_ids


async def test_a_session_can_switch_on_a_stage_the_settings_switch_off(ctx_factory: Any) -> None:
    deps = ctx_factory(context={"sanitize": False})
    session = await deps.sessions.create("s")
    await deps.sessions.update(session["id"], context={"sanitize": True})
    assert (await run(deps, agent_conversation(7), session_id=session["id"])).masked_ids


async def test_an_unknown_session_uses_the_settings(ctx_deps: Deps) -> None:
    assert (await run(ctx_deps, agent_conversation(7), session_id="nope")).masked_ids


def test_switch_resolution_reads_the_session_context_dict(ctx_deps: Deps) -> None:
    cfg = ctx_deps.settings.context
    assert Switches.resolve(cfg, {}) == Switches(True, False, True, True)  # LEGACY: no first sight
    assert Switches.resolve(cfg, {"context": {"compression": False}}) == Switches(True, False, True, False)


async def test_a_body_without_messages_passes_through(ctx_deps: Deps) -> None:
    body: dict[str, Any] = {"model": "m", "prompt": "legacy"}
    result = await apply_stages(ctx_deps, body, session_id=None, context_window=1000)
    assert result.body == body and result.error is None
