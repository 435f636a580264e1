"""The stages as users meet them: through the proxy of the real app, with a mock upstream."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from context_support import LEGACY, agent_conversation
from sqlmodel import select

from kimi_mcp.app import create_app
from kimi_mcp.context import masked_id, placeholder_id
from kimi_mcp.deps import Deps
from kimi_mcp.ledger.models import Request

pytestmark = pytest.mark.anyio
CONTEXT = LEGACY  # these tests pin the first masking rule; tests/context/test_outputs.py the new ones
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
PROVIDERS = {"up": {"base_url": "http://up.test/v1", "api_key": "sk-test", "max_retries": 0,
                    "models": {"m": {"context_window": 100_000}}}}


def build(ctx_factory: Any) -> tuple[Deps, list[dict[str, Any]], httpx.MockTransport]:
    deps: Deps = ctx_factory(providers=PROVIDERS, logwatch={"enabled": False})
    seen: list[dict[str, Any]] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=ANSWER)

    return deps, seen, httpx.MockTransport(upstream)


async def next_event(sub: Any, type_: str) -> Any:
    with anyio.fail_after(10):
        while True:
            event = await sub.queue.get()
            if event.type == type_:
                return event


async def test_old_tool_output_goes_upstream_masked_and_reads_back_exactly(
    ctx_factory: Any, serve_app: Any
) -> None:
    deps, seen, transport = build(ctx_factory)
    conv = agent_conversation(7)
    async with serve_app(create_app(deps.settings, deps, upstream_transport=transport)) as client:
        sub = deps.ledger.bus.subscribe()
        r = await client.post("/v1/chat/completions", json={"model": "up/m", "messages": conv})
        assert r.status_code == 200, r.text
        sent = seen[-1]["messages"]
        mid = masked_id(conv[3]["content"])
        assert placeholder_id(sent[3]["content"]) == mid
        masked = await client.get(f"/api/masked/{mid}", params={"raw": "1"})
        assert masked.status_code == 200 and masked.text == conv[3]["content"]
        await next_event(sub, "request")
        with deps.ledger.read() as db:
            [row] = db.exec(select(Request)).all()
        assert row.saved_mask_tokens > 5_000
        figures = row.meta["context"]
        assert figures["by_transform"]["mask"]["tokens"] == row.saved_mask_tokens
        assert figures["by_kind"]["log"]["tokens"] == row.saved_mask_tokens
        totals = (await client.get("/api/stats/context", params={"range": "1h"})).json()
        assert totals["requests"] == 1 and totals["by_kind"]["log"]["tokens"] == row.saved_mask_tokens
        off = await client.post("/v1/chat/completions", json={"model": "up/m", "messages": conv},
                                headers={"X-Kimi-Context": "off"})
        assert off.status_code == 200 and seen[-1]["messages"] == conv


async def test_a_conversation_that_cannot_fit_is_refused_before_going_upstream(
    ctx_factory: Any, serve_app: Any
) -> None:
    deps, seen, transport = build(ctx_factory)
    conv = [{"role": "user", "content": "word " * 120_000}]
    async with serve_app(create_app(deps.settings, deps, upstream_transport=transport)) as client:
        r = await client.post("/v1/chat/completions", json={"model": "up/m", "messages": conv})
    assert r.status_code == 400 and "context window" in r.json()["error"]["message"]
    assert seen == []
