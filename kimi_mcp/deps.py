"""The core services every face and tool family is given, built once by a composition root.

    deps = build_deps(settings)                       # `serve`: the ledger opens at start
    deps = build_deps(settings, lazy=True)            # `stdio`: heavy services open on first use
    Deps(settings, ledger=ledger, memory=engine)      # tests: instances (or fakes) directly

A service that is slow to import or to open (memory: numpy and ONNX) may be given as
`Lazy(factory)`: it is built on first use, once, under a lock. That is the one mechanism that
keeps `kimi-mcp stdio`'s handshake fast; faces never see the difference. The ledger needs none:
a `Ledger` is cheap to build, takes rows at once, and opens its database on first use. The composition roots (`app.create_app`, `commands.stdio`) add what
only they can build, such as `completions` (the product's own model calls, served by the proxy).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from kimi_mcp.config import Settings
from kimi_mcp.errors import LedgerError

if TYPE_CHECKING:
    from kimi_mcp.catalog import Catalog
    from kimi_mcp.ledger import Event, Ledger
    from kimi_mcp.ledger.sessions import Sessions
    from kimi_mcp.llm import Completions
    from kimi_mcp.memory import Memory

T = TypeVar("T")


class Lazy(Generic[T]):
    """A service built by `factory` on first `get()`, exactly once, even across threads."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._factory()
            return self._value

    def built(self) -> T | None:
        """The service if it was built, without building it."""
        with self._lock:
            return self._value


class Deps:
    """Typed services: settings, ledger, memory, catalog, sessions, workspace roots, completions."""

    def __init__(self, settings: Settings, *, ledger: Ledger | Lazy[Ledger] | None = None,
                 memory: Memory | Lazy[Memory] | None = None,
                 roots: list[Path] | None = None,
                 completions: Completions | Lazy[Completions] | None = None) -> None:
        self.settings = settings
        self._ledger = _given(ledger)
        self._memory = _given(memory)
        self.roots: list[Path] = roots or settings.workspace_roots()
        self._completions = _given(completions)
        self._active: str | None = None
        self._active_known = False
        self._lock = threading.Lock()

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise LedgerError("this server was built without a ledger")
        return self._ledger.get()

    @property
    def ledger_opened(self) -> bool:
        """Whether the ledger exists yet (a lazy one opens on first use)."""
        return self._ledger is not None and self._ledger.built() is not None

    @property
    def memory(self) -> Memory | None:
        """The memory engine, or None when this build has none."""
        return None if self._memory is None else self._memory.get()

    @memory.setter
    def memory(self, engine: Memory | Lazy[Memory] | None) -> None:
        self._memory = _given(engine)

    @property
    def completions(self) -> Completions | None:
        """The product's own model calls (planning, summaries), or None in a build without them."""
        return None if self._completions is None else self._completions.get()

    @completions.setter
    def completions(self, service: Completions | Lazy[Completions] | None) -> None:
        self._completions = _given(service)

    @property
    def project(self) -> str:
        """The project memories and thoughts belong to: the first workspace root's name."""
        return self.roots[0].name if self.roots else "default"

    @cached_property
    def catalog(self) -> Catalog:
        from kimi_mcp.catalog import Catalog

        return Catalog(self.settings)

    @cached_property
    def sessions(self) -> Sessions:
        from kimi_mcp.ledger.sessions import Sessions

        self.ledger.bus.on_event(self._on_event)
        return Sessions(self.ledger)

    def mcp_session_id(self) -> str | None:
        """The session MCP tool calls are recorded under: the active one, if any."""
        with self._lock:
            if self._active_known:
                return self._active
        active = self.sessions.active()
        found = str(active["id"]) if active else None
        with self._lock:
            self._active, self._active_known = found, True
        return found

    def close(self) -> None:
        """Stop the memory engine's background work, then the ledger's writer (if they opened)."""
        memory = None if self._memory is None else self._memory.built()
        if memory is not None:
            memory.close()
        ledger = None if self._ledger is None else self._ledger.built()
        if ledger is not None:
            ledger.close()

    def _on_event(self, event: Event) -> None:
        if event.type == "session":
            with self._lock:
                self._active_known = False


class _Built(Lazy[T]):
    """An instance given directly: `get()` returns it."""

    def __init__(self, value: T) -> None:
        super().__init__(lambda: value)
        self._value = value


def _given(service: T | Lazy[T] | None) -> Lazy[T] | None:
    if service is None or isinstance(service, Lazy):
        return service
    return _Built(service)


def build_deps(settings: Settings, lazy: bool = False) -> Deps:
    """The real services: the ledger in the data dir (started now unless `lazy`) and the memory
    engine (built on first use: `serve` warms it in the background; stdio answers `initialize`
    before SQLAlchemy, numpy or ONNX are even imported).

    The ledger object itself is cheap (no database library is imported until it starts), so it
    exists from the start: a tool call records its row in the spool at once, even when the
    client closes stdio before the database was ever opened."""
    from kimi_mcp.ledger.store import open_ledger

    ledger = open_ledger(settings.database_url(), settings.data_dir)

    def open_memory() -> Memory:
        from kimi_mcp.memory.engine import MemoryEngine

        return MemoryEngine(settings, ledger)

    memory: Lazy[Memory] = Lazy(open_memory)
    if not lazy:
        ledger.start()
    return Deps(settings, ledger=ledger, memory=memory)
