"""The context stages for Anthropic Messages and OpenAI Responses clients, through the real app:
old tool results are masked like chat `tool` messages, recoverable the same way, in front of
a chat provider and (untouched otherwise) in front of an Anthropic-format provider."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from context_support import LEGACY, agent_conversation

from kimi_mcp.app import create_app
from kimi_mcp.context import masked_id, placeholder_id
from kimi_mcp.deps import Deps

pytestmark = pytest.mark.anyio
CONTEXT = LEGACY
CHAT_ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
MESSAGES_ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                   "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                   "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
MODEL = {"m": {"context_window": 100_000}}
PROVIDERS = {"up": {"base_url": "http://up.test/v1", "api_key": "sk-test", "max_retries": 0, "models": MODEL},
             "an": {"base_url": "http://an.test/v1", "api_key": "sk-ant", "max_retries": 0,
                    "format": "anthropic", "models": MODEL}}
BREAKPOINT = {"type": "ephemeral"}


def build(ctx_factory: Any) -> tuple[Deps, list[dict[str, Any]], httpx.MockTransport]:
    deps: Deps = ctx_factory(providers=PROVIDERS, logwatch={"enabled": False})
    seen: list[dict[str, Any]] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        answer = MESSAGES_ANSWER if request.url.host == "an.test" else CHAT_ANSWER
        return httpx.Response(200, json=answer)

    return deps, seen, httpx.MockTransport(upstream)


def as_messages(conv: list[dict[str, Any]]) -> dict[str, Any]:
    """An agent conversation as a Messages body; the last tool result carries a breakpoint."""
    messages: list[dict[str, Any]] = []
    for m in conv[1:]:
        if m["role"] == "assistant":
            blocks = [{"type": "text", "text": m["content"]}]
            blocks += [{"type": "tool_use", "id": c["id"], "name": c["function"]["name"],
                        "input": json.loads(c["function"]["arguments"])} for c in m["tool_calls"]]
            messages.append({"role": "assistant", "content": blocks})
        elif m["role"] == "tool":
            messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": m["tool_call_id"],
                                                          "content": m["content"], "cache_control": BREAKPOINT}]})
        else:
            messages.append({"role": "user", "content": m["content"]})
    return {"model": "up/m", "max_tokens": 100, "system": [{"type": "text", "text": conv[0]["content"],
                                                            "cache_control": BREAKPOINT}],
            "messages": messages}


def as_responses(conv: list[dict[str, Any]]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for m in conv[1:]:
        if m["role"] == "assistant":
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": m["content"]}]})
            items += [{"type": "function_call", "call_id": c["id"], "name": c["function"]["name"],
                       "arguments": c["function"]["arguments"]} for c in m["tool_calls"]]
        elif m["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
        else:
            items.append({"role": "user", "content": m["content"]})
    return {"model": "up/m", "instructions": conv[0]["content"], "input": items, "store": False}


async def test_an_old_tool_result_block_goes_to_a_chat_provider_masked_and_reads_back(
    ctx_factory: Any, serve_app: Any
) -> None:
    deps, seen, transport = build(ctx_factory)
    conv = agent_conversation(7)
    async with serve_app(create_app(deps.settings, deps, upstream_transport=transport)) as client:
        r = await client.post("/v1/messages", json=as_messages(conv))
        assert r.status_code == 200, r.text
        assert r.json()["content"] == [{"type": "text", "text": "ok"}]
        sent = seen[-1]["messages"]
        mid = masked_id(conv[3]["content"])
        assert sent[3]["role"] == "tool" and placeholder_id(sent[3]["content"]) == mid
        assert sent[-1]["content"] == conv[-1]["content"]  # recent results stay whole
        masked = await client.get(f"/api/masked/{mid}", params={"raw": "1"})
        assert masked.status_code == 200 and masked.text == conv[3]["content"]
        assert "kimi_origin" not in json.dumps(seen[-1])


async def test_an_old_function_call_output_is_masked_like_a_tool_message(
    ctx_factory: Any, serve_app: Any
) -> None:
    deps, seen, transport = build(ctx_factory)
    conv = agent_conversation(7)
    async with serve_app(create_app(deps.settings, deps, upstream_transport=transport)) as client:
        r = await client.post("/v1/responses", json=as_responses(conv))
        assert r.status_code == 200, r.text
        assert r.json()["output"][0]["content"][0]["text"] == "ok"
        sent = seen[-1]["messages"]
        assert sent[0] == {"role": "system", "content": conv[0]["content"]}
        assert placeholder_id(sent[3]["content"]) == masked_id(conv[3]["content"])


async def test_messages_to_an_anthropic_provider_change_only_the_masked_results(
    ctx_factory: Any, serve_app: Any
) -> None:
    deps, seen, transport = build(ctx_factory)
    conv = agent_conversation(7)
    body = as_messages(conv)
    body["model"] = "an/m"
    body["messages"][0]["content"] = [{"type": "text", "text": conv[1]["content"]},
                                      {"type": "future_block", "payload": [1, 2]}]
    async with serve_app(create_app(deps.settings, deps, upstream_transport=transport)) as client:
        r = await client.post("/v1/messages", json=body)
        assert r.status_code == 200, r.text
        sent = seen[-1]
        assert sent["model"] == "m" and sent["system"] == body["system"]
        changed = [i for i, (a, b) in enumerate(zip(sent["messages"], body["messages"], strict=True)) if a != b]
        assert changed and all(body["messages"][i]["content"][0]["type"] == "tool_result" for i in changed)
        block = sent["messages"][2]["content"][0]
        assert placeholder_id(block["content"]) == masked_id(conv[3]["content"])
        assert block["cache_control"] == BREAKPOINT and block["tool_use_id"] == "call_0"
        off = await client.post("/v1/messages", json=body, headers={"X-Kimi-Context": "off"})
        assert off.status_code == 200
        assert seen[-1] == {**body, "model": "m"}
        assert list(seen[-1]) == list(body)  # the client's key order, too
