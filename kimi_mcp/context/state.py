"""What the stages remember in this process, one instance per Deps (kept in `deps.extras`).

- the ids of blocks already stored, so a block masked on every request is stored once;
- the sessions' stage switches and compression requests, read once and dropped on `session`
  events;
- the placeholder, recall and compression caches of the stages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.from_thread
import anyio.to_thread

from kimi_mcp.context.compress import Compressor
from kimi_mcp.context.sanitizer import Masked, Sanitizer
from kimi_mcp.context.tags import MemoryTags

if TYPE_CHECKING:
    from kimi_mcp.deps import Deps
    from kimi_mcp.ledger import Event

log = logging.getLogger(__name__)
EXTRAS_KEY = "kimi_mcp.context"
_MISSING: dict[str, Any] = {}


class ContextState:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.sanitizer = Sanitizer()
        self.tags = MemoryTags()
        self.compressor = Compressor()
        self.stored: set[str] = set()
        self._sessions: dict[str, dict[str, Any]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        ledger = getattr(deps, "ledger", None)
        if ledger is not None:
            ledger.bus.on_event(self._on_event)

    @classmethod
    def of(cls, deps: Deps) -> ContextState:
        state = deps.extras.get(EXTRAS_KEY)
        if state is None:
            state = deps.extras[EXTRAS_KEY] = cls(deps)
        return state

    # ---- sessions -----------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type == "session":
            with self._lock:
                self._generation += 1
                self._sessions.clear()

    async def session(self, session_id: str | None) -> dict[str, Any]:
        """The session row (as a dict), cached until a `session` event; {} when unknown."""
        if session_id is None or getattr(self.deps, "ledger", None) is None:
            return _MISSING
        with self._lock:
            found = self._sessions.get(session_id)
            generation = self._generation
        if found is not None:
            return found
        found = await anyio.to_thread.run_sync(self._read_session, session_id)
        with self._lock:
            if generation == self._generation:
                self._sessions[session_id] = found
        return found

    def _read_session(self, session_id: str) -> dict[str, Any]:
        from kimi_mcp.ledger.sessions import SessionNotFound

        try:
            return self.deps.sessions.get(session_id)
        except SessionNotFound:
            return {}

    async def clear_compress_request(self, session_id: str) -> None:
        with self._lock:
            row = self._sessions.get(session_id)
            if row is not None:
                self._sessions[session_id] = {**row, "compress_requested": False}
        await self.deps.sessions.update(session_id, compress_requested=False)

    # ---- storing originals --------------------------------------------------------------

    async def store_blocks(
        self, items: Sequence[Masked], *, source: str, session_id: str | None, tags: Sequence[str] = ()
    ) -> tuple[set[str], list[Masked]]:
        """Store the blocks not stored yet: the ids safely stored now, and the blocks this
        call stored for the first time."""
        memory = getattr(self.deps, "memory", None)
        if memory is None:
            return set(), []
        fresh = [m for m in {m.id: m for m in items}.values() if m.id not in self.stored]
        done: list[Masked] = []
        if fresh:
            ok = await anyio.to_thread.run_sync(self._store_sync, memory, fresh, source, session_id, tags)
            self.stored.update(ok)
            done = [m for m in fresh if m.id in ok]
        return {m.id for m in items if m.id in self.stored}, done

    def _store_sync(
        self, memory: Any, items: Sequence[Masked], source: str, session_id: str | None,
        tags: Sequence[str],
    ) -> set[str]:
        ok: set[str] = set()
        cheap = getattr(memory, "store_text_sync", None)
        metadata = {"session_id": session_id} if session_id else {}
        for item in items:
            try:
                if cheap is not None:
                    cheap(item.original, id=item.id, source=source, project=self.deps.project,
                          tags=list(tags), metadata=metadata, tokens_count=item.tokens)
                else:
                    anyio.from_thread.run(_store_async, memory, item, source, self.deps.project,
                                          list(tags), metadata)
            except Exception:  # that block stays unmasked in this request and is retried later
                log.warning("storing masked block %s failed; it is sent unmasked", item.id, exc_info=True)
                continue
            ok.add(item.id)
        return ok


async def _store_async(
    memory: Any, item: Masked, source: str, project: str, tags: list[str], metadata: dict[str, Any]
) -> None:
    await memory.store(item.original, id=item.id, source=source, project=project, tags=tags,
                       metadata=metadata)
