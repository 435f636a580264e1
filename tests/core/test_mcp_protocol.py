"""The protocol around the tools, through `fastmcp.Client(build_mcp(deps))` on the handshake
era (2025-06-18 / 2025-11-25): completions for the resource templates, and subscriptions to
`stats://` that notify when the ledger commits."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types
import pytest
from fastmcp import Client
from fastmcp.client.messages import MessageHandler

from kimi_mcp.deps import Deps
from kimi_mcp.ledger.rows import RequestRow
from kimi_mcp.server import build_mcp

pytestmark = pytest.mark.anyio


class Updates(MessageHandler):
    """Collects `notifications/resources/updated` and lets a test wait for a URI."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._arrived = anyio.Event()

    async def on_resource_updated(self, message: mcp_types.ResourceUpdatedNotification) -> None:
        self.uris.append(str(message.params.uri))
        self._arrived.set()
        self._arrived = anyio.Event()

    async def wait_for(self, uri: str) -> None:
        with anyio.fail_after(10):
            while uri not in self.uris:
                await self._arrived.wait()


async def subscribe(client: Client, uri: str, *, off: bool = False) -> None:
    request: Any = (mcp_types.UnsubscribeRequest(params=mcp_types.UnsubscribeRequestParams(uri=uri))
                    if off else
                    mcp_types.SubscribeRequest(params=mcp_types.SubscribeRequestParams(uri=uri)))
    await client.session.send_request(request, mcp_types.EmptyResult)


def template(uri: str) -> mcp_types.ResourceTemplateReference:
    return mcp_types.ResourceTemplateReference(type="ref/resource", uri=uri)


async def test_the_handshake_declares_completions_and_resource_subscriptions(deps: Deps) -> None:
    async with Client(build_mcp(deps), mode="legacy") as client:
        capabilities = client.initialize_result.capabilities
    assert capabilities.completions is not None
    assert capabilities.resources is not None and capabilities.resources.subscribe is True


async def test_session_ids_complete_by_prefix_and_by_session_name(deps: Deps) -> None:
    refactor = await deps.sessions.create("refactor-login", "kimi", "k2")
    docs = await deps.sessions.create("write-docs", "kimi", "k2")
    async with Client(build_mcp(deps), mode="legacy") as client:
        ref = template("stats://sessions/{session_id}")
        everything = await client.complete(ref, {"name": "session_id", "value": ""})
        by_prefix = await client.complete(ref, {"name": "session_id", "value": refactor["id"][:6]})
        by_name = await client.complete(ref, {"name": "session_id", "value": "DOCS"})
    assert set(everything.values) == {refactor["id"], docs["id"]}
    assert everything.total == 2 and not everything.has_more
    assert by_prefix.values == [refactor["id"]]
    assert by_name.values == [docs["id"]]


async def test_thought_session_ids_complete_and_other_references_get_no_candidates(deps: Deps) -> None:
    async with Client(build_mcp(deps), mode="legacy") as client:
        thought = await client.call_tool("thinking_sequential", {
            "thought": "first", "thought_number": 1, "total_thoughts": 1, "next_thought_needed": False})
        session_id = thought.structured_content["session_id"]
        found = await client.complete(template("thinking://sessions/{id}"),
                                      {"name": "id", "value": session_id[:3]})
        prompt = await client.complete(
            mcp_types.PromptReference(type="ref/prompt", name="no_such_prompt"),
            {"name": "arg", "value": "x"})
    assert found.values == [session_id]
    assert prompt.values == []


async def test_a_subscriber_is_told_when_a_tool_call_lands_in_the_ledger(deps: Deps) -> None:
    updates = Updates()
    async with Client(build_mcp(deps), mode="legacy", message_handler=updates) as client:
        await subscribe(client, "stats://tools")
        await client.call_tool("fs_list_allowed_directories", {})
        await updates.wait_for("stats://tools")
        listed = await client.read_resource("stats://tools")
    assert "fs_list_allowed_directories" in listed[0].text


async def test_one_sessions_resource_updates_only_for_that_session(deps: Deps) -> None:
    watched = await deps.sessions.create("watched", "kimi", "k2", activate=False)
    other = await deps.sessions.create("other", "kimi", "k2", activate=False)
    updates = Updates()
    async with Client(build_mcp(deps), mode="legacy", message_handler=updates) as client:
        await subscribe(client, f"stats://sessions/{watched['id']}")
        await subscribe(client, "stats://summary")
        deps.ledger.append(RequestRow(session_id=other["id"], provider="kimi", model="k2"))
        await updates.wait_for("stats://summary")
        assert updates.uris == ["stats://summary"]
        deps.ledger.append(RequestRow(session_id=watched["id"], provider="kimi", model="k2"))
        await updates.wait_for(f"stats://sessions/{watched['id']}")


async def test_after_unsubscribing_no_more_updates_arrive_for_that_uri(deps: Deps) -> None:
    updates = Updates()
    async with Client(build_mcp(deps), mode="legacy", message_handler=updates) as client:
        await subscribe(client, "stats://providers")
        await subscribe(client, "stats://summary")
        await subscribe(client, "stats://providers", off=True)
        deps.ledger.append(RequestRow(provider="kimi", model="k2"))
        await updates.wait_for("stats://summary")
    assert "stats://providers" not in updates.uris


async def test_subscribing_to_a_uri_this_server_does_not_serve_is_accepted(deps: Deps) -> None:
    async with Client(build_mcp(deps), mode="legacy") as client:
        await subscribe(client, "test://watched-resource")
        await subscribe(client, "test://watched-resource", off=True)


async def test_a_row_committed_right_after_the_first_subscribe_answer_is_notified(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the watch starts following the ledger's bus on the first subscription, in a worker
    # thread; a slow start (a loaded machine) must not lose the rows committed meanwhile
    slow = anyio.to_thread.run_sync

    async def late(*args: Any, **kwargs: Any) -> Any:
        await anyio.sleep(0.3)
        return await slow(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", late)
    updates = Updates()
    async with Client(build_mcp(deps), mode="legacy", message_handler=updates) as client:
        await subscribe(client, "stats://summary")
        deps.ledger.append(RequestRow(provider="kimi", model="k2"))
        await updates.wait_for("stats://summary")
