"""The in-process event bus: the ledger publishes after each commit, readers subscribe."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp.ledger.rows import now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    type: str  # request | tool_call | alert | session | masked | compression | provider
    data: dict[str, Any]
    at: float = field(default_factory=now)
    # True when another process wrote it (followed from the database, not from this writer)
    remote: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data, "at": self.at}


class Subscription:
    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self._bus = bus
        self._loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def deliver(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def deliver_many(self, events: list[Event]) -> None:
        for event in events:
            self.deliver(event)

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        try:
            while True:
                yield await self.queue.get()
        finally:
            self.close()


class EventBus:
    """Thread-safe: `publish` may be called from the writer thread or any event loop."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._callbacks: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, asyncio.get_running_loop(), maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call `callback` synchronously for every event (it must be quick and not raise)."""
        with self._lock:
            self._callbacks.append(callback)

    def publish(self, event: Event) -> None:
        self.publish_many([event])

    def publish_many(self, events: list[Event]) -> None:
        """Publish events in order: callbacks first, then one hand-over per subscriber."""
        if not events:
            return
        with self._lock:
            subs = list(self._subs)
            callbacks = list(self._callbacks)
        for event in events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    log.exception("event callback failed for %s", event.type)
        for sub in subs:
            try:
                sub._loop.call_soon_threadsafe(sub.deliver_many, events)
            except RuntimeError:  # its loop is closed: the subscriber is gone
                self.unsubscribe(sub)
