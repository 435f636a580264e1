"""`resources/subscribe`: a client watches the `stats://` resources (its own token spend) live.

A subscriber gets `notifications/resources/updated` for a URI after the ledger commits a
change that resource shows; a burst of commits becomes one notification per URI. Which
ledger events touch which resource:

    stats://summary                requests, tool calls, sessions, masking, compression
    stats://sessions               sessions, requests, tool calls
    stats://sessions/{id}          that session's row, requests and tool calls
    stats://tools                  tool calls
    stats://providers              requests, provider state
    thinking://sessions[/{id}]     calls of thinking_sequential

Any URI may be subscribed (as the reference servers allow); one this server does not serve
never updates. Subscriptions belong to the MCP session (per client connection) and end with it.
The watch reads the ledger's in-process bus and starts the ledger's follower, so the bus also
carries rows other processes wrote (a proxy call through `kimi-mcp serve` reaches a subscriber
of a stdio server), and it starts with the first subscription, so a server nobody watches never opens the ledger
for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types
from fastmcp.server.context import Context
from fastmcp.server.dependencies import bind_request_context
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from kimi_mcp.deps import Deps
    from kimi_mcp.ledger import Event, EventBus

log = logging.getLogger(__name__)

_TOUCHES: dict[str, frozenset[str]] = {
    "stats://summary": frozenset({"request", "tool_call", "session", "masked", "compression"}),
    "stats://sessions": frozenset({"session", "request", "tool_call"}),
    "stats://tools": frozenset({"tool_call"}),
    "stats://providers": frozenset({"request", "provider"}),
}
_ONE_SESSION = "stats://sessions/"
_THINKING = "thinking://sessions"


def touches(uri: str, event: Event) -> bool:
    """Whether `event` (committed to the ledger) may change what `uri` shows."""
    kinds = _TOUCHES.get(uri)
    if kinds is not None:
        return event.type in kinds
    if uri.startswith(_ONE_SESSION):
        wanted = uri[len(_ONE_SESSION):]
        if event.type == "session":
            row = event.data.get("session") or {}
            return isinstance(row, dict) and row.get("id") == wanted
        return event.type in ("request", "tool_call") and event.data.get("session_id") == wanted
    if uri == _THINKING or uri.startswith(_THINKING + "/"):
        return event.type == "tool_call" and event.data.get("tool") == "thinking_sequential"
    return False


@dataclass
class _Subscriber:
    session: ServerSession
    uris: set[str] = field(default_factory=set)


class ResourceWatch:
    """The subscriptions of every connected client, fed by the ledger's bus."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._subscribers: dict[str, _Subscriber] = {}
        self._wanted: anyio.Event | None = None  # set by the first subscription
        self._listening: anyio.Event | None = None  # set once the bus is followed (or cannot be)
        self._root: FastMCP | None = None

    def install(self, root: FastMCP) -> None:
        """Serve `resources/subscribe` and `resources/unsubscribe` (which also declares the
        `resources.subscribe` capability). FastMCP 4 has no public hook for these two spec
        methods, so they are registered on its low-level server, as FastMCP registers its own."""
        low = root._mcp_server
        low.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams,
                                self._subscribe)
        low.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams,
                                self._unsubscribe)
        self._root = root

    @asynccontextmanager
    async def lifespan(self, server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        """Runs the watch for as long as the server runs. FastMCP enters and leaves a lifespan
        in different tasks, so no task group can span it: the watch is one task this lifespan
        starts, and cancels and awaits when it ends."""
        self._wanted, self._listening = anyio.Event(), anyio.Event()
        runner = asyncio.get_running_loop().create_task(self._serve(self._wanted, self._listening))
        try:
            yield {}
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            self._subscribers.clear()

    def subscribed(self) -> dict[str, set[str]]:
        """Each MCP session's subscribed URIs (for the dashboard and tests)."""
        return {key: set(sub.uris) for key, sub in self._subscribers.items()}

    async def _subscribe(self, ctx: ServerRequestContext[Any, Any],
                         params: mcp_types.SubscribeRequestParams) -> mcp_types.EmptyResult:
        key = await self._session_key(ctx)
        subscriber = self._subscribers.setdefault(key, _Subscriber(ctx.session))
        subscriber.session = ctx.session
        subscriber.uris.add(str(params.uri))
        self._start()
        if self._listening is not None:
            # answer only once the ledger's bus is followed: a row committed right after the
            # client hears "subscribed" must reach it (the first subscription starts the watch)
            await self._listening.wait()
        return mcp_types.EmptyResult()

    async def _unsubscribe(self, ctx: ServerRequestContext[Any, Any],
                           params: mcp_types.UnsubscribeRequestParams) -> mcp_types.EmptyResult:
        key = await self._session_key(ctx)
        subscriber = self._subscribers.get(key)
        if subscriber is not None:
            subscriber.uris.discard(str(params.uri))
            if not subscriber.uris:
                del self._subscribers[key]
        return mcp_types.EmptyResult()

    async def _session_key(self, ctx: ServerRequestContext[Any, Any]) -> str:
        assert self._root is not None, "install() registers the handlers"
        with bind_request_context(ctx):
            async with Context(fastmcp=self._root) as fctx:
                return fctx.session_id

    def _start(self) -> None:
        if self._wanted is not None:
            self._wanted.set()

    async def _serve(self, wanted: anyio.Event, listening: anyio.Event) -> None:
        await wanted.wait()
        try:
            bus = await anyio.to_thread.run_sync(self._follow_ledger)
            subscription = bus.subscribe(maxsize=10_000)
        except Exception:  # no ledger: subscriptions simply never update (logged)
            log.exception("resource subscriptions cannot follow the ledger")
            return
        finally:
            listening.set()
        try:
            async for event in subscription:
                batch = [event, *_drain(subscription.queue)]
                await self._notify(batch)
        finally:
            subscription.close()

    def _follow_ledger(self) -> EventBus:
        """The ledger's bus, with the rows other processes write on it too (a stdio server's
        ledger is otherwise opened without its follower)."""
        ledger = self._deps.ledger
        ledger.start(follow=True)
        return ledger.bus

    async def _notify(self, events: Iterable[Event]) -> None:
        events = list(events)
        for key, subscriber in list(self._subscribers.items()):
            for uri in sorted(u for u in subscriber.uris if any(touches(u, e) for e in events)):
                try:
                    await subscriber.session.send_resource_updated(uri)
                except Exception as exc:  # noqa: BLE001 - the client is gone: forget it
                    log.debug("dropping the subscriptions of %s: %s", key, exc)
                    self._subscribers.pop(key, None)
                    break


def _drain(queue: asyncio.Queue[Event]) -> list[Event]:
    out = []
    while True:
        try:
            out.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return out
