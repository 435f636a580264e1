"""`ContextStages`: every proxied request's context stages, built once by the composition root.

    stages = ContextStages.from_deps(deps)     # or ContextStages(settings, ledger=..., memory=...)
    result = await stages.apply(body, session_id=sid, context_window=window, enabled=True,
                                model_ref="kimi/kimi-k2-0905-preview")
    # result.body goes upstream; result.error set -> answer 400 with it

The request is OpenAI chat-completions shaped (`messages` with `role`, `content` as a string or
parts, `tool_calls`, `tool` messages with `tool_call_id`). The stages run in order: memory tags
-> tool outputs (first-sight compression, masking by the cost model) -> compression of the middle
when the prompt is over `compress_at`. `apply` never mutates the body it is given; unknown keys
of messages and content parts are kept. What the stages remember (sessions' switches, stored
ids, conversations) is bounded in bytes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread

from kimi_mcp.context import costmodel
from kimi_mcp.context.caches import ByteLRU
from kimi_mcp.context.compress import Compressor
from kimi_mcp.context.figures import StageResult
from kimi_mcp.context.outputs import ToolOutputs
from kimi_mcp.context.sanitizer import Masked
from kimi_mcp.context.tags import MemoryTags
from kimi_mcp.deps import Deps, Lazy
from kimi_mcp.errors import KimiError

if TYPE_CHECKING:
    from kimi_mcp.catalog import Catalog
    from kimi_mcp.config import Settings
    from kimi_mcp.ledger import Event, Ledger
    from kimi_mcp.ledger.sessions import Sessions
    from kimi_mcp.llm import Completions
    from kimi_mcp.memory import Memory

log = logging.getLogger(__name__)
_MISSING: dict[str, Any] = {}
STORED_IDS_BYTES = 4 * 1024 * 1024
CONVERSATIONS_BYTES = 24 * 1024 * 1024


class ContextStages:
    def __init__(
        self, settings: Settings, *, ledger: Ledger | None = None,
        memory: Memory | Lazy[Memory] | None = None, catalog: Catalog | None = None,
        sessions: Sessions | None = None, project: str = "default",
        completions: Completions | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self._memory = memory
        self.catalog = catalog
        self.sessions = sessions
        self.project = project
        self.completions = completions  # `[context] summary_model` asks through it
        self.tags = MemoryTags()
        self.compressor = Compressor()
        self.outputs = ToolOutputs(CONVERSATIONS_BYTES)
        self.stored: ByteLRU[str, bool] = ByteLRU(STORED_IDS_BYTES)
        self._sessions: dict[str, dict[str, Any]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        if ledger is not None:
            ledger.bus.on_event(self._on_event)

    @classmethod
    def from_deps(cls, deps: Deps) -> ContextStages:
        """The stages over a composition root's services (memory is built on first use)."""
        memory: Lazy[Memory] = Lazy(lambda: cast("Memory", deps.memory))
        return cls(deps.settings, ledger=deps.ledger, memory=memory, catalog=deps.catalog,
                   sessions=deps.sessions, project=deps.project, completions=deps.completions)

    @property
    def memory(self) -> Memory | None:
        if isinstance(self._memory, Lazy):
            return self._memory.get()
        return self._memory

    async def apply(
        self, body: dict[str, Any], *, session_id: str | None, context_window: int, enabled: bool = True,
        model_ref: str | None = None,
    ) -> StageResult:
        """Run the stages on a chat-completions body; see the module docstring."""
        from kimi_mcp.context.pipeline import run

        return await run(self, body, session_id=session_id, context_window=context_window,
                         enabled=enabled, model_ref=model_ref)

    # ---- prices -------------------------------------------------------------------------------

    def prices(self, model_ref: str | None) -> tuple[float, float | None]:
        """The cached-price ratio and the input price in USD per token for `model_ref`."""
        if not model_ref or self.catalog is None:
            return costmodel.DEFAULT_CACHED_RATIO, None
        try:
            model = self.catalog.resolve(model_ref).model
        except KimiError:  # an alias or unknown model: the default ratio, no price
            return costmodel.DEFAULT_CACHED_RATIO, None
        if model.prices is None:
            return costmodel.DEFAULT_CACHED_RATIO, None
        ratio = costmodel.cached_ratio(model.prices.input, model.prices.cached_input)
        return ratio, model.prices.input / 1_000_000

    # ---- sessions -----------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type == "session":
            with self._lock:
                self._generation += 1
                self._sessions.clear()

    async def session(self, session_id: str | None) -> dict[str, Any]:
        """The session row (as a dict), cached until a `session` event; {} when unknown."""
        if session_id is None or self.sessions is None:
            return _MISSING
        with self._lock:
            found = self._sessions.get(session_id)
            generation = self._generation
        if found is not None:
            return found
        found = await anyio.to_thread.run_sync(self._read_session, session_id)
        with self._lock:
            if generation == self._generation:
                if len(self._sessions) > 4096:
                    self._sessions.clear()
                self._sessions[session_id] = found
        return found

    def _read_session(self, session_id: str) -> dict[str, Any]:
        from kimi_mcp.errors import SessionNotFound

        assert self.sessions is not None
        try:
            return self.sessions.get(session_id)
        except SessionNotFound:
            return {}

    async def clear_compress_request(self, session_id: str) -> None:
        with self._lock:
            row = self._sessions.get(session_id)
            if row is not None:
                self._sessions[session_id] = {**row, "compress_requested": False}
        if self.sessions is not None:
            await self.sessions.update(session_id, compress_requested=False)

    # ---- storing originals --------------------------------------------------------------------

    async def store_blocks(
        self, items: Sequence[Masked], *, source: str, session_id: str | None, tags: Sequence[str] = ()
    ) -> tuple[set[str], list[Masked]]:
        """Store the originals not stored yet: the ids safely stored (now or before), and the
        blocks this call stored for the first time."""
        if self.memory is None or not items:
            return set(), []
        fresh = [m for m in {m.id: m for m in items}.values() if m.id not in self.stored]
        done: list[Masked] = []
        if fresh:
            ok = await anyio.to_thread.run_sync(self._store_sync, fresh, source, session_id, tags)
            for mid in ok:
                self.stored.put(mid, True, 96)
            done = [m for m in fresh if m.id in ok]
        return {m.id for m in items if m.id in self.stored}, done

    def _store_sync(
        self, items: Sequence[Masked], source: str, session_id: str | None, tags: Sequence[str]
    ) -> set[str]:
        assert self.memory is not None
        ok: set[str] = set()
        metadata = {"session_id": session_id} if session_id else {}
        for item in items:
            try:
                self.memory.store_text_sync(item.original, id=item.id, source=source, project=self.project,
                                            tags=list(tags), metadata=metadata, tokens_count=item.tokens)
            except Exception:  # that block stays unchanged in this request and is retried later
                log.warning("storing original %s failed; it is sent unchanged", item.id, exc_info=True)
                continue
            ok.add(item.id)
        return ok

    # ---- events -------------------------------------------------------------------------------

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        if self.ledger is None:
            return
        try:
            future: Future[None] = self.ledger.submit(lambda tx: tx.emit(type_, data))
        except Exception:  # a ledger that is not started (tests, shutdown): the event is dropped
            log.warning("could not publish the %s event", type_, exc_info=True)
            return
        future.add_done_callback(_log_failure)


def _log_failure(future: Future[None]) -> None:
    if future.exception() is not None:
        log.warning("publishing a context event failed: %s", future.exception())
